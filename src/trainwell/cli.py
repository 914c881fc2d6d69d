"""The ``trainwell`` command line: train, evaluate, predict, summary, datasets, plot-schedule, lr-find, doctor,
reproduce, report, tune.

Each command reads its options, calls what it runs (a recipe of :mod:`trainwell.recipes`, or
the catalog) and prints the outcome. It is one module: one function per command, whose
click decorators (the options and their help) are most of its lines, and which share the
two consoles and :func:`main`, the one place that turns errors into exit statuses.

Every user mistake (a bad config, a missing file, a corrupted model) ends in one
line on stderr and exit status 2; ``main(argv)`` returns the status so tests can call
it without a subprocess.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from pathlib import Path
from typing import Iterator

import click
from rich.console import Console
from rich.table import Table

from trainwell.errors import TrainwellError
from trainwell.recipes.plot_schedule import MAX_PLOT_STEPS  # plot-schedule's options are bounded by it

# soft_wrap: a line is never broken by rich, whatever the width; when the output is not a
# terminal (a pipe, a file) rich would otherwise wrap every line at 80 columns.
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

INT64_MAX = 2**63 - 1  # numeric options end up in torch and in JSON/SQLite as 64-bit integers
MAX_SEEDS = 1_000  # reproduce --seeds: each seed is a whole run of every entry (the book uses 1, the report 3)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="trainwell")
def app() -> None:
    """Train deep neural networks well: the chapter's techniques from a config file."""


@app.command()
@click.argument("config", type=click.Path(path_type=Path))
@click.option("--set", "set_", multiple=True, metavar="KEY=VALUE",
              help="Override a config key, e.g. --set train.epochs=2 (repeatable).")
@click.option("--epochs", type=int, help="Override train.epochs.")
@click.option("--seed", type=int, help="Override the seed.")
@click.option("--output-dir", "-o", type=click.Path(path_type=Path), help="Where to write the outputs (default runs/<name>).")
@click.option("--quiet", "-q", is_flag=True, help="No per-epoch lines.")
@click.option("--threads", type=click.IntRange(min=1, max=INT64_MAX),
              help="Override train.threads (CPU threads while fitting; at most 4 per CPU).")
@click.option("--overwrite", is_flag=True,
              help="Replace the files of a finished run in the output folder (train.overwrite; refused by default).")
@click.option("--restart", is_flag=True,
              help="Drop an interrupted run's saved state (OUTPUT_DIR/resume) and train from epoch 1 (train.restart).")
@click.option("--tensorboard", "tensorboard", is_flag=False, flag_value="", default=None, metavar="[DIR]",
              help="Log to TensorBoard, into DIR (default OUTPUT_DIR/tensorboard): [callbacks.tensorboard].")
@click.option("--csv-log", "csv_log", type=click.Path(path_type=Path),
              help="Log each epoch as a CSV row into this file: [callbacks.csv_logger].")
@click.option("--sync-batchnorm", is_flag=True,
              help="Under torchrun: BatchNormalization statistics over every rank's batch (train.sync_batchnorm).")
@click.option("--process-group-timeout", type=click.FloatRange(min=0, min_open=True, max=1e9), metavar="SECONDS",
              help="Under torchrun: how long a collective waits for the other ranks before it fails "
                   "(train.process_group_timeout; default torch's, 30 minutes).")
@click.option("--compile", "compile_", is_flag=True,
              help="Run the fused step through torch.compile (train.compile; pays on long runs).")
def train(config: Path, set_: tuple[str, ...], epochs: int | None, seed: int | None, output_dir: Path | None,
          quiet: bool, threads: int | None, overwrite: bool, restart: bool, tensorboard: str | None,
          csv_log: Path | None, sync_batchnorm: bool, process_group_timeout: float | None, compile_: bool) -> None:
    """Train the model a CONFIG file (.toml, .yaml or .json) describes.

    Prints the validation and test accuracy and writes the model, its history and
    metrics to the output folder once training has finished. Under
    ``torchrun --nproc_per_node=N`` it trains data-parallel; rank 0 prints and writes.
    """
    from trainwell.config import load_config
    from trainwell.train.distributed import process_group_from_env
    from trainwell.recipes.train import train_config

    overrides = list(set_)
    if epochs is not None:
        overrides.append(f"train.epochs={epochs}")
    if seed is not None:
        overrides.append(f"seed={seed}")
    if threads is not None:
        overrides.append(f"train.threads={threads}")
    if sync_batchnorm:
        overrides.append("train.sync_batchnorm=true")
    if process_group_timeout is not None:
        overrides.append(f"train.process_group_timeout={process_group_timeout!r}")
    if compile_:
        overrides.append("train.compile=true")
    # the folder is set as given, not parsed as a --set value: any characters a path may hold
    run_config = load_config(config, overrides, values={"output_dir": str(output_dir)} if output_dir else None)
    run_config = _with_loggers(run_config, tensorboard=tensorboard, csv_log=csv_log)
    with _lost_rank_said(run_config), process_group_from_env(run_config.train.process_group_timeout) as group:
        try:
            result = train_config(run_config, verbose=not quiet, overwrite=True if overwrite else None,
                                  restart=True if restart else None)
        except KeyboardInterrupt:
            _say_how_to_resume(run_config)
            raise
    if group is not None and not group.is_main:
        return
    for key in ("val_accuracy", "test_accuracy"):
        if key in result.metrics:
            out.print(f"{key}: {result.metrics[key]:.4f}")
    if result.diagnosis is not None:  # [diagnostics] in the config; details in diagnostics.json
        found = [f"{f.severity}: {f.title}" for f in result.diagnosis.findings]
        out.print("diagnostics: " + ("; ".join(found) if found else "no problems found"), markup=False, soft_wrap=True)
    out.print(f"saved: {result.output_dir}")


def _with_loggers(run_config, *, tensorboard: str | None, csv_log: Path | None):
    """The config with the loggers --tensorboard and --csv-log ask for (their paths set as given, not parsed)."""
    if tensorboard is None and csv_log is None:
        return run_config
    from trainwell.config import CallbacksConfig, CSVLoggerConfig, TensorBoardConfig

    section = run_config.callbacks or CallbacksConfig()
    update = {}
    if tensorboard is not None:
        update["tensorboard"] = (section.tensorboard or TensorBoardConfig()).model_copy(
            update={"log_dir": tensorboard} if tensorboard else {})
    if csv_log is not None:
        update["csv_logger"] = (section.csv_logger or CSVLoggerConfig()).model_copy(update={"filename": str(csv_log)})
    return run_config.model_copy(update={"callbacks": section.model_copy(update=update)})


@contextlib.contextmanager
def _lost_rank_said(run_config) -> Iterator[None]:
    """A data-parallel run whose ranks cannot all go on (one died; after a restart, one cannot join the others
    again) ends in one error line: the run did not finish (its ``resume/`` stays, so a new run completes it),
    and its training state waits for the same command."""
    import torch.distributed

    from trainwell.recipes.run_folder import output_dir_for

    try:
        yield
    except RuntimeError as error:  # torch.distributed.DistError, and gloo's own (a peer closed the connection)
        if not (isinstance(error, torch.distributed.DistError) or "gloo" in str(error).lower()):
            raise
        reason = " ".join(str(error).split())
        reason = reason if len(reason) <= 300 else reason[:297] + "..."
        folder = output_dir_for(run_config) / "resume"
        kept = (f"the training state is kept in {folder}; run the same command again to resume"
                if any(folder.glob("phase-*")) else "run the same command again")
        timeout = run_config.train.process_group_timeout
        if "timeout" in reason.lower() or "timed out" in reason.lower():  # or the ranks only needed longer
            kept += (f"; if every rank was alive but slow (starting, loading data, saving), raise "
                     f"[train] process_group_timeout ({'torch default, 1800' if timeout is None else timeout} s)")
        raise TrainwellError(f"data-parallel training stopped: a rank died or could not reach the others "
                             f"({type(error).__name__}: {reason}); the run did not finish; {kept}") from error


def _say_how_to_resume(run_config) -> None:
    """After Ctrl-C: where the training state is, when there is one to resume from."""
    from trainwell.recipes.run_folder import output_dir_for

    folder = output_dir_for(run_config) / "resume"
    if any(folder.glob("phase-*")):
        err.print(f"interrupted: the training state is kept in {folder}; run the same command again to resume",
                  markup=False, soft_wrap=True)


@app.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--data", help="Dataset name (default: the one the model was trained on).")
@click.option("--split", default="test", show_default=True, help="Which split: test, validation or train.")
@click.option("--input", "input_path", type=click.Path(path_type=Path),
              help="Evaluate on these files instead (a CSV with the target column, an .npz with y, a folder of "
                   "class folders), prepared as the model's training files were.")
def evaluate(model: Path, data: str | None, split: str, input_path: Path | None) -> None:
    """Evaluate a saved MODEL file on a dataset split, preprocessed as at training time."""
    from trainwell.recipes.evaluate import evaluate_model_file

    with _warnings_as_lines():
        results = evaluate_model_file(model, data=data, split=split, input=input_path)
    for key, value in results.items():
        out.print(f"{key}: {value:.4f}" if key != "samples" else f"{key}: {int(value)}")


@app.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--data", help="Dataset name (default: the one the model was trained on).")
@click.option("--split", default="test", show_default=True, help="Which split: test, validation or train.")
@click.option("--mc", type=int, default=0, metavar="N",
              help="Also predict with MC dropout: N stochastic passes with only dropout active (e.g. 100; "
                   "at most 10,000).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the MC dropout masks.")
@click.option("--csv", "csv_path", type=click.Path(path_type=Path),
              help="Write per-instance probabilities (MC: their mean and std) and entropy to this CSV.")
@click.option("--reliability", type=click.Path(path_type=Path),
              help="Write a reliability diagram (deterministic and MC side by side): .png, .jpg, .pdf, .svg or .eps.")
@click.option("--input", "input_path", type=click.Path(path_type=Path),
              help="Predict for these files (a .csv, .parquet, .npz or .npy file, a folder of images), prepared as "
                   "the model's training files were; --csv writes one row per example with the class names.")
def predict(model: Path, data: str | None, split: str, mc: int, seed: int, csv_path: Path | None,
            reliability: Path | None, input_path: Path | None) -> None:
    """Predict with a saved MODEL: accuracy, NLL, Brier score and ECE (15 bins), optionally with MC dropout.

    With --input, predict for new files (the class predicted for each row or image, by name).
    """
    from trainwell.recipes import evaluate as evaluation

    evaluation.check_prediction_outputs(csv_path=csv_path, reliability=reliability)
    with _warnings_as_lines():
        predictions = evaluation.predict_model_file(model, data=data, split=split, mc=mc, seed=seed,
                                                    input=input_path)
    if predictions.labels is None or predictions.regression:  # new files: what was predicted, not how well
        if reliability is not None:
            raise TrainwellError(f"--reliability: {input_path} holds no class labels to check the probabilities "
                                 "against (a target column, y in an .npz, class folders)")
        _print_file_predictions(predictions, csv_path)
        return
    reports = predictions.reports()
    out.print(f"samples: {len(predictions.labels)}")
    width = max(len(name) for name in reports)
    out.print(f"{'':<9} " + " ".join(f"{name:>{width}}" for name in reports))
    for metric in ("accuracy", "nll", "brier", "ece"):
        out.print(f"{metric:<9} " + " ".join(f"{report[metric]:>{width}.4f}" for report in reports.values()))
    if csv_path is not None:
        out.print(f"saved: {predictions.to_csv(csv_path)}")
    if reliability is not None:
        out.print(f"saved: {predictions.reliability_diagram(reliability)}")


def _print_file_predictions(predictions, csv_path: Path | None) -> None:
    """``predict --input`` on files without targets (or a regression): counts per class, and the CSV."""
    out.print(f"samples: {len(predictions.probabilities)}")
    if not predictions.regression:
        names = predictions.predicted_names()
        counts = ", ".join(f"{name} {names.count(name)}" for name in predictions.class_names if name in names)
        out.print(f"predicted: {counts}", markup=False)
    if csv_path is not None:
        out.print(f"saved: {predictions.to_csv(csv_path)}")
    else:
        out.print("pass --csv PATH to write one row per example", markup=False)


@app.command()
@click.argument("source", type=click.Path(path_type=Path))
def summary(source: Path) -> None:
    """Print each layer's output shape and parameter count for a config or model file."""
    from trainwell.recipes.evaluate import model_for_summary
    from trainwell.model.summary import summary as summarize

    out.print(str(summarize(model_for_summary(source))), markup=False)


@app.command()
@click.argument("names", nargs=-1)
@click.option("--verify", is_flag=True,
              help="Check each file's SHA-256 checksum; exit 1 if a dataset is missing or corrupt.")
def datasets(names: tuple[str, ...], verify: bool) -> None:
    """Where each dataset (NAMES, default all) is found, and with --verify whether its files check out.

    --verify exits 1 unless every dataset named (or, without names, every registered one) is on
    this machine with good files; scikit-learn's digits are bundled, so always there.
    """
    from trainwell import data as data_module

    chosen = [data_module.get_spec(name).name for name in names] or data_module.dataset_names()
    rows: list[tuple[str, str, str]] = []
    failed = False
    for name in chosen:
        try:
            location = data_module.locate(name)
            where, status = location.source, "found" if location.found else "not found"
            if verify and location.found:
                bad = [check for check in data_module.verify(name) if not check.ok]
                status = "verified" if not bad else "BAD: " + "; ".join(f"{c.file}: {c.detail}" for c in bad)
                failed |= bool(bad)
            failed |= verify and not location.found
        except TrainwellError as error:
            where, status = "-", f"error: {str(error).splitlines()[0]}"
            failed = True
        rows.append((name, where, status))
    _print_rows(("dataset", "where", "status"), rows)
    if failed and verify:
        err.print("error: not every dataset is here with good files (see the table); `trainwell datasets` "
                  "says where each is looked for, and the README's Datasets section how to get them", markup=False,
                  soft_wrap=True)
        raise click.exceptions.Exit(1)


def _print_rows(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """A table on a terminal; piped, one tab-separated line per row, never cut or wrapped."""
    if out.is_terminal:
        table = Table(*header)
        for row in rows:
            table.add_row(*row)
        out.print(table)
        return
    for row in (header, *rows):
        click.echo("\t".join(row))  # rich would turn the tabs into spaces


@app.command("plot-schedule")
@click.argument("config", type=click.Path(path_type=Path))
@click.option("--set", "set_", multiple=True, metavar="KEY=VALUE", help="Override a config key (repeatable).")
@click.option("--epochs", type=click.IntRange(min=1, max=MAX_PLOT_STEPS), help="Override train.epochs.")
@click.option("--steps-per-epoch", type=click.IntRange(min=1, max=MAX_PLOT_STEPS),
              help="Steps per epoch (default: counted from the dataset and train.batch_size).")
@click.option("--log", "log_scale", is_flag=True, help="Log-scale learning-rate axis.")
@click.option("--output", "-o", type=click.Path(path_type=Path),
              help="PNG to write (default runs/<name>/schedule.png).")
def plot_schedule(config: Path, set_: tuple[str, ...], epochs: int | None, steps_per_epoch: int | None,
                  log_scale: bool, output: Path | None) -> None:
    """Write a PNG of the learning rate (and momentum) at every step of the run a CONFIG describes."""
    from trainwell.config import load_config
    from trainwell.figures import check_figure_path
    from trainwell.recipes.plot_schedule import plot_schedule_for_config
    from trainwell.recipes.run_folder import output_dir_for

    run_config = load_config(config, [*set_, *([f"train.epochs={epochs}"] if epochs else [])])
    target = check_figure_path(output or output_dir_for(run_config) / "schedule.png", what="--output")
    plot = plot_schedule_for_config(run_config, target, steps_per_epoch=steps_per_epoch, log=log_scale)
    lrs = plot.lrs
    out.print(f"lr: {lrs[0]:.4g} at the first step, {max(lrs):.4g} at most, {lrs[-1]:.4g} at the last "
              f"({plot.total} steps)")
    out.print(f"saved: {plot.path}")


@app.command("lr-find")
@click.argument("config", type=click.Path(path_type=Path))
@click.option("--set", "set_", multiple=True, metavar="KEY=VALUE", help="Override a config key (repeatable).")
@click.option("--min-lr", type=float, help="Start of the sweep (lr_find.min_lr, default 1e-5).")
@click.option("--max-lr", type=float, help="End of the sweep (lr_find.max_lr, default 10).")
@click.option("--steps", type=int, help="Steps of the sweep (lr_find.steps, default one epoch, at least 100).")
@click.option("--batch-size", type=int, help="Batch size of the sweep (lr_find.batch_size, default 128).")
@click.option("--output", "-o", type=click.Path(path_type=Path),
              help="PNG to write (default runs/<name>/lr_find.png); the sweep's numbers go beside it as .json.")
def lr_find(config: Path, set_: tuple[str, ...], min_lr: float | None, max_lr: float | None, steps: int | None,
            batch_size: int | None, output: Path | None) -> None:
    """Sweep the learning rate exponentially on the model a CONFIG describes; print the suggested rate.

    The model's weights and the optimizer's state are restored after the sweep.
    """
    from trainwell.config import load_config
    from trainwell.fileio import write_json
    from trainwell.figures import check_figure_path
    from trainwell.recipes import lr_find as recipe
    from trainwell.recipes.run_folder import output_dir_for

    options = {"min_lr": min_lr, "max_lr": max_lr, "steps": steps, "batch_size": batch_size}
    overrides = [*set_, *(f"lr_find.{key}={value!r}" for key, value in options.items() if value is not None)]
    run_config = load_config(config, overrides)
    target = check_figure_path(output or output_dir_for(run_config) / "lr_find.png", what="--output")
    result = recipe.find_lr_for_config(run_config)
    path = result.plot(target)
    write_json(path.with_suffix(".json"), result.to_dict())
    out.print(f"swept {len(result.lrs)} steps, lr {result.lrs[0]:.3g} to {result.lrs[-1]:.3g}"
              + (" (stopped: the loss diverged)" if result.stopped_early else ""))
    out.print(f"lowest smoothed loss at lr {result.min_loss_lr:.3g}")
    out.print(f"suggested learning rate: {result.suggestion:.3g} (a tenth of that)")
    out.print(f"saved: {path}")


@app.command()
@click.argument("config", type=click.Path(path_type=Path))
@click.option("--set", "set_", multiple=True, metavar="KEY=VALUE", help="Override a config key (repeatable).")
@click.option("--steps", type=click.IntRange(min=1, max=INT64_MAX), help="Training steps (diagnostics.steps, default 200).")
@click.option("--every", type=click.IntRange(min=1, max=INT64_MAX),
              help="Record every K steps (default: diagnostics.every if set, else steps / 20).")
@click.option("--plot", "plot_dir", type=click.Path(path_type=Path),
              help="Write depth.png and time.png (per-layer statistics) into this folder.")
@click.option("--json", "json_path", type=click.Path(path_type=Path),
              help="Write the findings and the recorded statistics to this JSON file.")
def doctor(config: Path, set_: tuple[str, ...], steps: int | None, every: int | None, plot_dir: Path | None,
           json_path: Path | None) -> None:
    """Train the model a CONFIG describes briefly and report vanishing/exploding gradients, dead or
    saturated units and broken SELU self-normalization, with the layers, the numbers and what to try."""
    from trainwell.config import load_config
    from trainwell.recipes.doctor import run_doctor
    from trainwell.fileio import write_json

    run_config = load_config(config, list(set_))
    checkup = run_doctor(run_config, steps=steps, every=every)
    context = checkup.diagnosis.context
    optimizer = ", ".join(f"{k} {v}" for k, v in context["optimizer"].items() if k != "name")
    out.print(f"{run_config.name}: {context['steps']} steps of {context['optimizer'].get('name')} "
              f"({optimizer or 'defaults'}), batch {context['batch_size']}, "
              f"{context['samples']} recorded steps (every {context['every']}); "
              f"loss {_loss_span(checkup.recording)}", markup=False)
    if checkup.diagnosis.healthy:
        out.print("no problems found")
    for finding in checkup.diagnosis.findings:
        color = "red" if finding.severity == "error" else "yellow"
        out.print(f"[bold {color}]{finding.severity.upper()}[/]: [bold]{finding.title}[/]")
        for label, text in (("", finding.detail), ("try: ", finding.advice)):
            out.print(f"  {label}{text}", markup=False)
    if checkup.diagnosis.measured():
        out.print(f"measured: {checkup.diagnosis.measured()}", markup=False)
    if plot_dir is not None:
        from trainwell.doctor.plots import plot_recording

        for path in plot_recording(checkup.recording, plot_dir, name=run_config.name or ""):
            out.print(f"saved: {path}")
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        write_json(json_path, checkup.to_dict())
        out.print(f"saved: {json_path}")


@app.command()
@click.argument("ids", nargs=-1)
@click.option("--budget", type=click.Choice(["quick", "full", "smoke"]), default="quick", show_default=True,
              help="quick: a few epochs on 10,000 images (minutes); full: the book's epochs and data (hours).")
@click.option("--seeds", type=click.IntRange(min=1, max=MAX_SEEDS), default=1, show_default=True, help="Seeds per entry (42, 43, ...).")
@click.option("--out", "-o", "out_dir", type=click.Path(path_type=Path), default=Path("reproduce"), show_default=True,
              help="Run store and report folder; run again to resume.")
@click.option("--jobs", type=click.IntRange(min=1, max=1024), help="Parallel processes, one torch thread each (default: CPU cores).")
@click.option("--list", "list_", is_flag=True, help="List the catalog's ids and exit.")
def reproduce(ids: tuple[str, ...], budget: str, seeds: int, out_dir: Path, jobs: int | None, list_: bool) -> None:
    """Reproduce the chapter: run catalog entries (IDS, default all), then write the report.

    Finished runs in OUT are skipped; an interrupted run resumes from its last saved state.
    """
    from trainwell import catalog as experiments

    if list_:
        for entry in experiments.entries():
            out.print(f"{entry.id:<24} {entry.kind:<9} {entry.section}: {entry.shows}", markup=False, soft_wrap=True)
        return
    for entry_id in ids:
        experiments.get(entry_id)
    summary = experiments.reproduce(list(ids) or None, budget=budget, seeds=seeds, out=out_dir, jobs=jobs,
                                    echo=lambda line: out.print(line, markup=False, soft_wrap=True))
    unfinished = summary["failed"] + summary["skipped"]
    if unfinished:
        err.print(f"error: {unfinished} of {summary['runs']} runs failed (the first failure's message is above); "
                  "the finished ones are kept, so run the same command again once it is fixed", markup=False,
                  soft_wrap=True)
        raise click.exceptions.Exit(1)


@app.command()
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("--budget", type=click.Choice(["quick", "full", "smoke"]), help="Which budget's runs (default: the last).")
@click.option("--tol-long", type=float, default=0.015, show_default=True, help="Tolerance for runs of 10+ epochs.")
@click.option("--tol-short", type=float, default=0.025, show_default=True, help="Tolerance for shorter runs.")
def report(out_dir: Path, budget: str | None, tol_long: float, tol_short: float) -> None:
    """Write OUT_DIR/report.html and report.md from the run store of `trainwell reproduce`."""
    from trainwell.catalog.report import write_report

    html_path, md_path = write_report(out_dir, budget=budget, tolerance_long=tol_long, tolerance_short=tol_short)
    out.print(f"report: {html_path}")
    out.print(f"summary: {md_path}")


@app.command()
@click.argument("config", type=click.Path(path_type=Path))
@click.option("--trials", type=click.IntRange(min=1, max=INT64_MAX), help="Finished trials the study should have in all, over every worker (search.trials).")
@click.option("--storage", metavar="URL",
              help="Optuna storage, e.g. postgresql://user:pw@host/db to share a study between machines "
                   "(default: sqlite:///<output folder>/study.db).")
@click.option("--study", help="Study name (default: the config's name).")
@click.option("--set", "set_", multiple=True, metavar="KEY=VALUE", help="Override a config key (repeatable).")
@click.option("--output-dir", "-o", type=click.Path(path_type=Path),
              help="Where to write best_config.json and best_trial.json (default runs/<name>/tune).")
@click.option("--worker-index", type=click.IntRange(min=0, max=INT64_MAX),
              help="This worker's index: its sampler seeds with search.sampler_seed + index (default: the lowest "
                   "index no other worker on the study holds; 0 for a lone worker).")
@click.option("--quiet", "-q", is_flag=True, help="No line per trial.")
def tune(config: Path, trials: int | None, storage: str | None, study: str | None, set_: tuple[str, ...],
         output_dir: Path | None, worker_index: int | None, quiet: bool) -> None:
    """Search the [search.space] of a CONFIG with Optuna, one training run per trial.

    Run the same command on several machines with one --storage database URL to
    share the study; a killed worker's trial is run again by the others (or by running
    the command again). Writes the best trial's config, ready for `trainwell train`.
    """
    from trainwell.recipes.tune import tune as run_tune

    def show(record) -> None:
        values = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.params.items())
        outcome = f"{record.value:.4f}" if record.value is not None else record.note
        retry = "" if record.retry_of is None else f" (trial {record.retry_of} again: its worker stopped)"
        out.print(f"trial {record.number}: {outcome} ({values}){retry}", markup=False)

    def wait(numbers) -> None:
        out.print(f"waiting for trial{'s' if len(numbers) > 1 else ''} {', '.join(map(str, numbers))} in other "
                  "workers (a killed worker's trial is run again once its heartbeat is stale)", markup=False)

    result = run_tune(config, trials=trials, storage=storage, study=study, overrides=list(set_),
                      output_dir=output_dir, on_trial=None if quiet else show, worker_index=worker_index,
                      on_wait=None if quiet else wait)
    counts = ", ".join(f"{n} {state}" for state, n in result.counts.items())
    out.print(f"study {result.study_name!r} in {result.storage}: {counts or 'no trials'}", markup=False)
    if result.best_config is None:
        out.print("no trial has finished yet; nothing to write", markup=False)
        return
    out.print(f"best trial {result.best_number}: {result.metric} {result.best_value:.4f}", markup=False)
    for key, value in result.best_params.items():
        out.print(f"  {key} = {value!r}", markup=False)
    out.print(f"saved: {result.best_config}", markup=False)


@contextlib.contextmanager
def _warnings_as_lines() -> Iterator[None]:
    """Each warning raised inside as one ``warning: ...`` line on stderr, every time, rather than
    Python's two lines with the source file and code."""
    def show(message, category, filename, lineno, file=None, line=None) -> None:
        err.print(f"warning: {message}", markup=False)

    with warnings.catch_warnings():
        warnings.simplefilter("always", UserWarning)
        warnings.showwarning = show
        yield


def _loss_span(recording) -> str:
    losses = [s.loss for s in recording.samples if s.loss is not None]
    return f"{losses[0]:.3f} -> {losses[-1]:.3f}" if losses else "not recorded"


def os_error_text(error: OSError) -> str:
    """``PATH: what went wrong`` of an OSError, on one line (``PATH -> OTHER`` for a rename)."""
    where = "" if error.filename is None else os.fsdecode(error.filename)
    if error.filename2 is not None:
        where += f" -> {os.fsdecode(error.filename2)}"
    text = str(error.strerror or error).replace("\n", " ")
    return f"{where}: {text}" if where else text


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit status instead of exiting (for tests and embedding)."""
    try:
        result = app.main(args=argv, prog_name="trainwell", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except TrainwellError as error:
        err.print(f"error: {error}", markup=False, soft_wrap=True)
        return 2
    except OSError as error:  # a full disk, a read-only folder: say which file (trainwell's writes keep what was there)
        err.print(f"error: {os_error_text(error)}", markup=False, soft_wrap=True)
        return 1
    except click.exceptions.Exit as stop:
        return stop.exit_code
    except click.exceptions.Abort:
        err.print("aborted", markup=False)
        return 130
    except click.UsageError as error:  # a bad option or argument: one line, as every other mistake
        command = error.ctx.command_path if error.ctx is not None else "trainwell"
        err.print(f"error: {error.format_message()} (see {command} --help)", markup=False, soft_wrap=True)
        return error.exit_code
    except click.ClickException as error:
        error.show(file=sys.stderr)
        return error.exit_code


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    run()

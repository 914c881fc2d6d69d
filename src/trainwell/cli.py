"""The ``trainwell`` command line: train, evaluate, summary, datasets.

Every user mistake (a bad config, a missing file, a corrupted model) ends in one
line on stderr and exit status 2; ``main(argv)`` returns the status so tests can call
it without a subprocess.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from trainwell.errors import TrainwellError

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


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
def train(config: Path, set_: tuple[str, ...], epochs: int | None, seed: int | None, output_dir: Path | None,
          quiet: bool) -> None:
    """Train the model a CONFIG file (.toml, .yaml or .json) describes.

    Prints the validation and test accuracy and writes the model, its history and
    metrics to the output folder once training has finished.
    """
    from trainwell.config import load_config
    from trainwell.experiment import train_config

    overrides = list(set_)
    if epochs is not None:
        overrides.append(f"train.epochs={epochs}")
    if seed is not None:
        overrides.append(f"seed={seed}")
    if output_dir is not None:
        overrides.append(f"output_dir={json.dumps(str(output_dir))}")
    run_config = load_config(config, overrides)
    result = train_config(run_config, verbose=not quiet)
    for key in ("val_accuracy", "test_accuracy"):
        if key in result.metrics:
            out.print(f"{key}: {result.metrics[key]:.4f}")
    out.print(f"saved: {result.output_dir}")


@app.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--data", help="Dataset name (default: the one the model was trained on).")
@click.option("--split", default="test", show_default=True, help="Which split: test, validation or train.")
def evaluate(model: Path, data: str | None, split: str) -> None:
    """Evaluate a saved MODEL file on a dataset split, preprocessed as at training time."""
    from trainwell.evaluation import evaluate_model_file

    results = evaluate_model_file(model, data=data, split=split)
    for key, value in results.items():
        out.print(f"{key}: {value:.4f}" if key != "samples" else f"{key}: {int(value)}")


@app.command()
@click.argument("source", type=click.Path(path_type=Path))
def summary(source: Path) -> None:
    """Print each layer's output shape and parameter count for a config or model file."""
    from trainwell.evaluation import model_for_summary
    from trainwell.summary import summary as summarize

    out.print(str(summarize(model_for_summary(source))), markup=False)


@app.command()
@click.option("--verify", is_flag=True, help="Check each file's SHA-256 checksum.")
def datasets(verify: bool) -> None:
    """Where each dataset is found (and whether its files check out, with --verify)."""
    from trainwell import data as data_module

    table = Table("dataset", "where", "status")
    failed = False
    for name in data_module.dataset_names():
        try:
            location = data_module.locate(name)
            where, status = location.source, "found" if location.found else "not found"
            if verify and location.found:
                bad = [check for check in data_module.verify(name) if not check.ok]
                status = "verified" if not bad else "BAD: " + "; ".join(f"{c.file}: {c.detail}" for c in bad)
                failed |= bool(bad)
        except TrainwellError as error:
            where, status = "-", f"error: {str(error).splitlines()[0]}"
        table.add_row(name, where, status)
    out.print(table)
    if failed:
        raise click.exceptions.Exit(1)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit status instead of exiting (for tests and embedding)."""
    try:
        result = app.main(args=argv, prog_name="trainwell", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except TrainwellError as error:
        err.print(f"error: {error}", markup=False, soft_wrap=True)
        return 2
    except click.exceptions.Exit as stop:
        return stop.exit_code
    except click.exceptions.Abort:
        err.print("aborted", markup=False)
        return 130
    except click.ClickException as error:
        error.show(file=sys.stderr)
        return error.exit_code


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    run()

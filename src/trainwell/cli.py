"""The ``trainwell`` command line: train, evaluate, summary, datasets.

Every user mistake (a bad config, a missing file, a corrupted model) ends in one
line on stderr and exit status 2; ``main(argv)`` returns the status so tests can call
it without a subprocess.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import click
import typer
from rich.console import Console
from rich.table import Table

from trainwell.errors import TrainwellError

app = typer.Typer(
    name="trainwell",
    help="Train deep neural networks well: the chapter's techniques from a config file.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

CONFIG_HELP = "A run config file (.toml, .yaml or .json); see examples/."


@app.command()
def train(
    config: Path = typer.Argument(..., help=CONFIG_HELP),
    set_: List[str] = typer.Option([], "--set", help="Override a config key, e.g. --set train.epochs=2 (repeatable)."),
    epochs: Optional[int] = typer.Option(None, help="Override train.epochs."),
    seed: Optional[int] = typer.Option(None, help="Override the seed."),
    output_dir: Optional[Path] = typer.Option(None, "--output-dir", "-o", help="Where to write the outputs (default runs/<name>)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No per-epoch lines."),
) -> None:
    """Train the model a config describes; print the validation (and test) accuracy."""
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
def evaluate(
    model: Path = typer.Argument(..., help="A model file written by trainwell (model.safetensors)."),
    data: Optional[str] = typer.Option(None, help="Dataset name (default: the one the model was trained on)."),
    split: str = typer.Option("test", help="Which split: test, validation or train."),
) -> None:
    """Evaluate a saved model on a dataset split with its training-time preprocessing."""
    from trainwell.evaluation import evaluate_model_file

    results = evaluate_model_file(model, data=data, split=split)
    for key, value in results.items():
        out.print(f"{key}: {value:.4f}")


@app.command()
def summary(
    source: Path = typer.Argument(..., help="A config file or a saved model file."),
) -> None:
    """Print each layer's output shape and parameter count, and the totals."""
    from trainwell.evaluation import model_for_summary
    from trainwell.summary import summary as summarize

    out.print(str(summarize(model_for_summary(source))), markup=False)


@app.command()
def datasets(
    verify: bool = typer.Option(False, "--verify", help="Check each file's SHA-256 checksum."),
) -> None:
    """Where each dataset is found (and whether its files check out with --verify)."""
    from trainwell import data as data_module

    table = Table("dataset", "where", "status")
    failed = False
    for name in data_module.dataset_names():
        try:
            location = data_module.locate(name)
            where = str(location)
            status = "found"
            if verify:
                results = data_module.verify(name)
                bad = [r for r in results if not r[1]]
                status = "verified" if not bad else "BAD: " + "; ".join(f"{r[0]}: {r[2]}" for r in bad)
                failed |= bool(bad)
        except TrainwellError as error:
            where, status = "-", f"not found ({str(error).splitlines()[0]})"
        table.add_row(name, where, status)
    out.print(table)
    if failed:
        raise typer.Exit(1)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit status instead of exiting (for tests and embedding)."""
    command = typer.main.get_command(app)
    try:
        result = command.main(args=argv, prog_name="trainwell", standalone_mode=False)
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

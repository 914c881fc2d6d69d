"""The README's "Your own data" section, run as written: its configs and its commands, on files this test writes.

The ```toml and ```bash blocks are read from README.md (each config's first line names its
file), so the README and this test cannot drift apart.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
from file_helpers import mnist_parts, read_rows, sklearn_table, write_csv, write_png

from trainwell.cli import main

README = Path(__file__).parents[1] / "README.md"


def subsection(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    own = text[text.index("## Your own data\n"):]
    own = own[:own.index("\n## ", 1)]
    start = own.index(f"### {title}\n")
    end = own.find("\n### ", start + 1)
    return own[start:end if end != -1 else None]


def run_blocks(section: str, folder: Path) -> None:
    """Write each ```toml block to the file its first comment names; run each ```bash line with the CLI."""
    for config in re.findall(r"```toml\n(.*?)```", section, re.S):
        name = re.match(r"# (\S+)", config).group(1)
        (folder / name).write_text(config)
    commands = [line.split("#")[0].strip() for block in re.findall(r"```bash\n(.*?)```", section, re.S)
                for line in block.splitlines()]
    assert commands and all(command.startswith("trainwell ") for command in commands if command)
    for command in filter(None, commands):
        assert main(shlex.split(command)[1:]) == 0, command


def test_the_csv_example_trains_and_predicts_as_written(tmp_path, monkeypatch, capsys):
    features, x, labels = sklearn_table("wine")
    rows = [[*map(float, row), label] for row, label in zip(x, labels)]
    write_csv(tmp_path / "wine.csv", [*features, "label"], rows[:-40])
    write_csv(tmp_path / "wine_test.csv", [*features, "label"], rows[-40:])
    write_csv(tmp_path / "new_wine.csv", features, [row[:-1] for row in rows[-40:]])
    monkeypatch.chdir(tmp_path)
    run_blocks(subsection("A CSV file"), tmp_path)
    predicted = read_rows(tmp_path / "predictions.csv")
    assert len(predicted) == 40 and set(predicted[0]) == {"index", "predicted", "p_class_0", "p_class_1", "p_class_2"}
    assert np.mean([row["predicted"] == label for row, label in zip(predicted, labels[-40:])]) > 0.8
    assert "accuracy: " in capsys.readouterr().out


def test_the_image_folder_example_trains_and_predicts_as_written(tmp_path, monkeypatch, needs_real_data):
    (x, y), (x_new, y_new) = mnist_parts(500, 60)
    for i, (image, label) in enumerate(zip(x, y)):
        write_png(tmp_path / "digits" / str(label) / f"{i}.png", image)
    for i, image in enumerate(x_new):
        write_png(tmp_path / "new_digits" / f"{i:02d}.png", image)
    monkeypatch.chdir(tmp_path)
    run_blocks(subsection("An image folder"), tmp_path)
    predicted = read_rows(tmp_path / "digit_predictions.csv")
    assert [row["file"] for row in predicted] == [f"{i:02d}.png" for i in range(60)]
    assert np.mean([row["predicted"] == str(label) for row, label in zip(predicted, y_new)]) > 0.5  # chance: 0.1

"""``trainwell train`` on the user's own files (each format), then ``predict --input`` on held-out files it never saw.

Each test writes its data (scikit-learn's bundled wine and breast cancer tables, PNGs of MNIST
digits, npz/npy/IDX arrays), trains a tiny model from a config through the CLI, predicts on
held-out files and checks the predictions file: its rows, the class names, and an accuracy
well above chance.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from file_helpers import image_folder, mnist_parts, read_rows, sklearn_table, table_files, write_csv, write_png

from trainwell.cli import main
from trainwell.data import write_idx
from trainwell.model.saving import load_model_file

TABLE_MODEL = """
[model]
layers = [{ type = "dense", units = 16, activation = "relu" }, { type = "dense", units = CLASSES, activation = "softmax" }]
[optimizer]
name = "adam"
lr = 0.01
[train]
epochs = EPOCHS
batch_size = 16
"""
IMAGE_MODEL = """
[model]
layers = [{ type = "flatten" }, { type = "dense", units = 32, activation = "relu" },
          { type = "dense", units = 10, activation = "softmax" }]
[optimizer]
name = "adam"
lr = 0.003
[train]
epochs = 3
batch_size = 32
"""


def config(tmp_path, data: str, model: str = TABLE_MODEL, *, classes: int = 3, epochs: int = 20):
    path = tmp_path / "run.toml"
    path.write_text(f"seed = 1\n[data]\n{data}\n" + model.replace("CLASSES", str(classes)).replace("EPOCHS", str(epochs)))
    return path


def train(path, out, capsys) -> dict:
    assert main(["train", str(path), "-q", "-o", str(out)]) == 0, capsys.readouterr().err
    capsys.readouterr()
    return json.loads((out / "metrics.json").read_text())


def predict_csv(model, input_path, csv_path, capsys) -> tuple[list[dict], str]:
    assert main(["predict", str(model), "--input", str(input_path), "--csv", str(csv_path)]) == 0, \
        capsys.readouterr().err
    return read_rows(csv_path), capsys.readouterr().out


def accuracy(rows, labels) -> float:
    return float(np.mean([row["predicted"] == str(label) for row, label in zip(rows, labels)]))


@pytest.mark.parametrize("name, classes", [("wine", 3), ("breast_cancer", 2)])
def test_a_csv_trains_with_no_code_and_predicts_class_names_for_new_rows(tmp_path, capsys, name, classes):
    files = table_files(tmp_path, name)
    run = config(tmp_path, f'format = "csv"\npath = "{files["train"]}"\ntarget = "label"\n'
                           f'test_path = "{files["test"]}"', classes=classes, epochs=10)
    metrics = train(run, tmp_path / "out", capsys)
    assert metrics["test_accuracy"] > 0.8 and metrics["val_accuracy"] > 0.8
    model = tmp_path / "out" / "model.safetensors"
    data = load_model_file(model).info["data"]
    assert data["class_names"] == [f"class_{k}" for k in range(classes)] and data["scaling"] == "standardize"

    rows, printed = predict_csv(model, files["new"], tmp_path / "pred.csv", capsys)
    assert len(rows) == len(files["labels"]) == 40
    assert list(rows[0]) == ["index", "predicted", *(f"p_class_{k}" for k in range(classes))]
    assert accuracy(rows, files["labels"]) > 0.8
    assert "samples: 40" in printed and "predicted: class_0" in printed
    assert all(abs(sum(float(row[f"p_class_{k}"]) for k in range(classes)) - 1) < 1e-4 for row in rows)

    # evaluate on a labelled held-out file gives the test accuracy the run reported
    assert main(["evaluate", str(model), "--input", str(files["test"])]) == 0
    assert f"accuracy: {metrics['test_accuracy']:.4f}" in capsys.readouterr().out


REGRESSION_MODEL = """
[model]
layers = [{ type = "dense", units = 32, activation = "relu" }, { type = "dense", units = 1 }]
[optimizer]
name = "adam"
lr = 0.01
[train]
loss = "mse"
metrics = ["mae", "r2"]
epochs = 30
batch_size = 16
"""


def test_a_regression_csv_trains_with_mse_and_predicts_values_for_new_rows(tmp_path, capsys):
    from sklearn.datasets import load_diabetes

    bunch = load_diabetes()
    order = np.random.default_rng(0).permutation(len(bunch.target))
    x, target = bunch.data[order], bunch.target[order]
    header = [*bunch.feature_names, "progression"]
    rows = [[*map(float, row), float(value)] for row, value in zip(x, target)]
    write_csv(tmp_path / "train.csv", header, rows[:-60])
    write_csv(tmp_path / "test.csv", header, rows[-60:])
    write_csv(tmp_path / "new.csv", list(bunch.feature_names), [row[:-1] for row in rows[-60:]])
    run = config(tmp_path, f'format = "csv"\npath = "{tmp_path / "train.csv"}"\ntarget = "progression"\n'
                           f'test_path = "{tmp_path / "test.csv"}"', model=REGRESSION_MODEL)
    metrics = train(run, tmp_path / "out", capsys)
    # The target's spread is about 77; predicting its mean everywhere gives r2 = 0 and mae near 65.
    assert metrics["test_r2"] > 0.3 and metrics["test_mae"] < 55 and "test_accuracy" not in metrics
    model = tmp_path / "out" / "model.safetensors"
    data = load_model_file(model).info["data"]
    assert data["regression"] is True and data["class_names"] is None

    rows, _ = predict_csv(model, tmp_path / "new.csv", tmp_path / "pred.csv", capsys)
    assert len(rows) == 60 and "prediction" in rows[0] and "predicted" not in rows[0]
    predicted = np.array([float(row["prediction"]) for row in rows])
    errors = np.abs(predicted - target[-60:])
    assert errors.mean() < 55 and np.isclose(errors.mean(), metrics["test_mae"], rtol=1e-3)


def test_a_csv_without_a_test_file_has_no_test_metrics_and_its_summary_reads_the_header(tmp_path, capsys):
    files = table_files(tmp_path)
    run = config(tmp_path, f'format = "csv"\npath = "{files["train"]}"\ntarget = "label"\nvalidation_split = 0.2')
    assert main(["summary", str(run)]) == 0
    printed = capsys.readouterr().out
    assert "(None, 16)" in printed and f"{13 * 16 + 16}" in printed  # 13 features: every column but the label
    metrics = train(run, tmp_path / "out", capsys)
    assert not any(key.startswith("test_") for key in metrics)
    assert load_model_file(tmp_path / "out" / "model.safetensors").info["data"]["validation_size"] == round(0.2 * 138)


def test_an_image_folder_of_pngs_trains_and_predicts_new_images_by_file_name(tmp_path, capsys, needs_real_data):
    (x, y), (x_new, y_new) = mnist_parts(600, 100)
    names = [f"digit_{k}" for k in range(10)]
    image_folder(tmp_path / "digits", x, y, names)
    for i, image in enumerate(x_new):
        write_png(tmp_path / "new" / f"new_{i:03d}.png", image)
    run = config(tmp_path, f'format = "image_folder"\npath = "{tmp_path / "digits"}"', IMAGE_MODEL)
    metrics = train(run, tmp_path / "out", capsys)
    assert metrics["val_accuracy"] > 0.5
    model = tmp_path / "out" / "model.safetensors"
    assert load_model_file(model).model.spec.input_shape == (28, 28)
    rows, _ = predict_csv(model, tmp_path / "new", tmp_path / "pred.csv", capsys)
    assert [row["file"] for row in rows] == [f"new_{i:03d}.png" for i in range(100)]
    assert set(rows[0]) >= {"predicted", "p_digit_0", "p_digit_9"}
    assert accuracy(rows, [names[k] for k in y_new]) > 0.5  # chance: 0.1


def test_an_npz_like_keras_mnist_trains_and_predicts(tmp_path, capsys, needs_real_data):
    (x, y), (x_new, y_new) = mnist_parts(600, 100)
    np.savez(tmp_path / "mnist.npz", x_train=x, y_train=y, x_test=x_new, y_test=y_new)
    np.savez(tmp_path / "new.npz", x=x_new)
    run = config(tmp_path, f'format = "npz"\npath = "{tmp_path / "mnist.npz"}"', IMAGE_MODEL)
    metrics = train(run, tmp_path / "out", capsys)
    assert metrics["test_accuracy"] > 0.5  # the archive's x_test/y_test
    rows, _ = predict_csv(tmp_path / "out" / "model.safetensors", tmp_path / "new.npz", tmp_path / "p.csv", capsys)
    assert len(rows) == 100 and rows[0]["predicted"] in [str(k) for k in range(10)]
    assert accuracy(rows, y_new) > 0.5


def test_npy_files_train_with_a_target_file_and_predict(tmp_path, capsys):
    features, x, labels = sklearn_table("wine")
    np.save(tmp_path / "x.npy", x[:-40])
    np.save(tmp_path / "y.npy", np.array([label.removeprefix("class_") for label in labels[:-40]]).astype(np.int64))
    np.save(tmp_path / "new.npy", x[-40:])
    run = config(tmp_path, f'format = "npy"\npath = "{tmp_path / "x.npy"}"\ntarget_path = "{tmp_path / "y.npy"}"')
    train(run, tmp_path / "out", capsys)
    rows, _ = predict_csv(tmp_path / "out" / "model.safetensors", tmp_path / "new.npy", tmp_path / "p.csv", capsys)
    assert len(rows) == 40 and accuracy(rows, [label.removeprefix("class_") for label in labels[-40:]]) > 0.8


def test_an_idx_folder_trains_and_scores_its_test_files(tmp_path, capsys, needs_real_data):
    (x, y), (x_new, y_new) = mnist_parts(600, 100)
    folder = tmp_path / "idx"
    folder.mkdir()
    for name, array in (("train-images-idx3-ubyte.gz", x), ("train-labels-idx1-ubyte.gz", y.astype(np.uint8)),
                        ("t10k-images-idx3-ubyte.gz", x_new), ("t10k-labels-idx1-ubyte.gz", y_new.astype(np.uint8))):
        write_idx(folder / name, array)
    run = config(tmp_path, f'format = "idx"\npath = "{folder}"', IMAGE_MODEL)
    metrics = train(run, tmp_path / "out", capsys)
    assert metrics["test_accuracy"] > 0.5
    rows, _ = predict_csv(tmp_path / "out" / "model.safetensors", folder / "t10k-images-idx3-ubyte.gz",
                          tmp_path / "p.csv", capsys)
    assert len(rows) == 100 and accuracy(rows, y_new) > 0.5


def test_a_parquet_file_trains_and_predicts(tmp_path, capsys):
    pa = pytest.importorskip("pyarrow")  # an optional extra (trainwell[parquet]); the dev extra installs it
    import pyarrow.parquet as pq

    features, x, labels = sklearn_table("wine")
    columns = {name: x[:, i] for i, name in enumerate(features)}
    pq.write_table(pa.table({**{k: v[:-40] for k, v in columns.items()}, "label": labels[:-40]}), tmp_path / "w.parquet")
    pq.write_table(pa.table({k: v[-40:] for k, v in columns.items()}), tmp_path / "new.parquet")
    run = config(tmp_path, f'format = "parquet"\npath = "{tmp_path / "w.parquet"}"\ntarget = "label"')
    train(run, tmp_path / "out", capsys)
    rows, _ = predict_csv(tmp_path / "out" / "model.safetensors", tmp_path / "new.parquet", tmp_path / "p.csv", capsys)
    assert len(rows) == 40 and accuracy(rows, labels[-40:]) > 0.8


def bad(tmp_path, capsys, data: str, *, classes: int = 3) -> str:
    """The one error line of a run whose data is bad."""
    status = main(["train", str(config(tmp_path, data, classes=classes, epochs=1)), "-q", "-o", str(tmp_path / "o")])
    lines = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def test_bad_tables_are_one_line_naming_the_file_and_the_column(tmp_path, capsys):
    files = table_files(tmp_path)
    csv = f'format = "csv"\npath = "{files["train"]}"\n'
    assert "has no column 'kind' (data.target); its columns: alcohol" in bad(tmp_path, capsys, csv + 'target = "kind"')
    assert "data.target" in bad(tmp_path, capsys, csv)
    text = files["train"].read_text().splitlines()
    text[3] = "high," + text[3].split(",", 1)[1]
    files["train"].write_text("\n".join(text) + "\n")
    assert "column 'alcohol', row 3 (line 4): 'high' is not a number" in bad(tmp_path, capsys, csv + 'target = "label"')
    files["train"].write_text("\n".join([text[0], text[1], "1,2"]) + "\n")
    assert "row 2 (line 3) has 2 fields, but the header has 14 columns" in bad(tmp_path, capsys, csv + 'target = "label"')
    files["train"].write_text("")
    assert f"{files['train']}: the file is empty" in bad(tmp_path, capsys, csv + 'target = "label"')


def test_a_test_label_not_seen_in_training_is_named(tmp_path, capsys):
    files = table_files(tmp_path)
    files["test"].write_text(files["test"].read_text().replace("class_1", "class_7", 1))
    line = bad(tmp_path, capsys, f'format = "csv"\npath = "{files["train"]}"\ntarget = "label"\n'
                                 f'test_path = "{files["test"]}"')
    assert "label 'class_7'" in line and "was not seen in training" in line and "test.csv" in line


def test_bad_image_folders_are_one_line_naming_the_file(tmp_path, capsys):
    folder = tmp_path / "images"
    data = f'format = "image_folder"\npath = "{folder}"'
    folder.mkdir()
    assert "has no class folders" in bad(tmp_path, capsys, data, classes=10)
    write_png(folder / "a" / "1.png", np.zeros((8, 8)))
    (folder / "b").mkdir()
    assert "class folder 'b' holds no images" in bad(tmp_path, capsys, data, classes=10)
    write_png(folder / "b" / "1.png", np.zeros((9, 8)))
    line = bad(tmp_path, capsys, data, classes=10)
    assert "b/1.png: image of 9x8 pixels" in line and "expected 8x8" in line and "data.image_size" in line
    (folder / "b" / "1.png").unlink()
    (folder / "b" / "notes.txt").write_text("not an image")
    assert "notes.txt: is not an image file" in bad(tmp_path, capsys, data, classes=10)


def test_config_mistakes_about_files_are_one_line(tmp_path, capsys):
    files = table_files(tmp_path)
    csv = f'format = "csv"\npath = "{files["train"]}"\ntarget = "label"\n'
    assert "give one" in bad(tmp_path, capsys, csv + "validation_size = 10\nvalidation_split = 0.1")
    assert "data.image_size: is for data.format = 'image_folder'" in bad(tmp_path, capsys, csv + "image_size = [8, 8]")
    assert "not both" in bad(tmp_path, capsys, csv + 'name = "mnist"')
    assert "data.target: is a key for files" in bad(tmp_path, capsys, 'name = "digits"\ntarget = "label"')


def test_a_reliability_diagram_of_new_files_without_labels_is_refused(tmp_path, capsys):
    files = table_files(tmp_path)
    run = config(tmp_path, f'format = "csv"\npath = "{files["train"]}"\ntarget = "label"', epochs=1)
    train(run, tmp_path / "out", capsys)
    status = main(["predict", str(tmp_path / "out" / "model.safetensors"), "--input", str(files["new"]),
                   "--reliability", str(tmp_path / "r.png")])
    assert status == 2 and "--reliability: " in capsys.readouterr().err and not (tmp_path / "r.png").exists()

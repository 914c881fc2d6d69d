"""A torch Dataset or DataLoader given to fit, evaluate and predict: the arrays' results, checked batches,
exact resume, and data larger than the memory a fit may use."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset

import trainwell as tw
from trainwell.callbacks import EarlyStopping, ReduceLROnPlateau
from trainwell.errors import ArrayError, ConfigError
from trainwell.train.resume import state_files

from helpers import Interrupt, KillAt, small_model


def dataset(x, y=None):
    tensors = [torch.as_tensor(x)] + ([] if y is None else [torch.as_tensor(y)])
    return TensorDataset(*tensors)


class Rows(Dataset):
    """A Dataset of NumPy rows, as a reader of files gives them (float64 inputs, int labels)."""

    def __init__(self, x, y, *, bad=None):
        self.x, self.y, self.bad = x.astype(np.float64), y, bad or {}

    def __len__(self):
        return len(self.x)

    def __getitem__(self, index):
        if index in self.bad:
            return self.bad[index]
        return self.x[index], int(self.y[index])


def trainer(seed=1, **options):
    return tw.Trainer(small_model(16, tw.Dropout(0.2)), optimizer={"name": "sgd", "lr": 0.1, "momentum": 0.9},
                      seed=seed, **options)


def without_time(history):
    return [{k: v for k, v in r.items() if k != "time"} for r in history]


def same_weights(a, b):
    return all(torch.equal(v, b.model.state_dict()[k]) for k, v in a.model.state_dict().items())


def test_a_dataset_trains_to_the_arrays_result_bit_for_bit(blobs):
    """A TensorDataset is batched in the order the arrays are (the fit's seeded generator), so the same seed
    gives the same History and weights as fit(x, y); validation on a Dataset equals validation on arrays."""
    x, y = blobs
    arrays = trainer()
    expected = arrays.fit(x, y, epochs=2, batch_size=32, validation_data=(x[:100], y[:100]), verbose=False)
    streamed = trainer()
    history = streamed.fit(dataset(x, y), epochs=2, batch_size=32, validation_data=dataset(x[:100], y[:100]),
                           verbose=False)
    assert without_time(history) == without_time(expected)
    assert same_weights(arrays, streamed)
    assert tw.why_not_fused(streamed) is None  # the fused step is taken for streamed batches too


def test_a_dataloader_is_used_as_given_and_a_dataset_of_other_dtypes_is_cast(blobs):
    x, y = blobs
    model = trainer()
    loader = DataLoader(Rows(x, y), batch_size=50, shuffle=True)
    history = model.fit(loader, epochs=3, verbose=False)
    assert model.steps_per_epoch == 12 and history.last["accuracy"] > 0.9
    assert model.evaluate(loader) == pytest.approx(model.evaluate(x, y), rel=1e-6)
    assert model.evaluate(Rows(x, y), batch_size=7) == pytest.approx(model.evaluate(x, y), rel=1e-6)
    double = tw.Trainer(small_model(8).double(), optimizer="sgd", seed=0)  # float64 inputs for a float64 model
    assert double.fit(Rows(x, y), epochs=1, verbose=False).last["loss"] > 0


def test_predict_on_a_dataset_of_pairs_or_of_inputs_alone(blobs):
    x, y = blobs
    model = trainer()
    model.fit(x, y, epochs=1, verbose=False)
    expected = model.predict(x)
    torch.testing.assert_close(model.predict(dataset(x, y), batch_size=64), expected)
    torch.testing.assert_close(model.predict(dataset(x)), expected)
    torch.testing.assert_close(model.predict(DataLoader(dataset(x), batch_size=33)), expected)
    assert torch.equal(model.predict_classes(dataset(x)), model.predict_classes(x))


def test_worker_processes_give_the_same_fit(blobs):
    x, y = blobs
    one, two = trainer(), trainer()
    one.fit(dataset(x, y), epochs=1, batch_size=64, verbose=False)
    two.fit(dataset(x, y), epochs=1, batch_size=64, verbose=False, num_workers=2)
    assert same_weights(one, two)


def test_what_fit_is_given_wrongly_is_one_clear_error(blobs):
    x, y = blobs
    with pytest.raises(ArrayError, match="training data: y is missing"):
        trainer().fit(x, epochs=1, verbose=False)
    with pytest.raises(ArrayError, match="y was given beside a TensorDataset"):
        trainer().fit(dataset(x, y), y, verbose=False)
    with pytest.raises(ConfigError, match="num_workers: .* the training data is arrays"):
        trainer().fit(x, y, num_workers=2, verbose=False)
    with pytest.raises(ConfigError, match="num_workers: .*DataLoader, which is used as given"):
        trainer().fit(DataLoader(dataset(x, y)), num_workers=2, verbose=False)
    weights = torch.ones(len(y))
    with pytest.raises(ArrayError, match=r"three parts \(x, y, sample_weight\)"):
        trainer().fit(TensorDataset(torch.as_tensor(x), torch.as_tensor(y), weights), verbose=False)
    with pytest.raises(ArrayError, match="items of one part .*expected items \\(x, y\\)"):
        trainer().fit(dataset(x), verbose=False)
    with pytest.raises(ArrayError, match="the model expects \\(4,\\)"):
        trainer().fit(dataset(x[:, :3], y), verbose=False)
    with pytest.raises(ArrayError, match="label 7 is out of range"):
        trainer().fit(dataset(x, y + 5), verbose=False)
    with pytest.raises(ArrayError, match="no samples"):
        trainer().fit(dataset(x[:0], y[:0]), verbose=False)

    class Stream(IterableDataset):
        def __iter__(self):
            return iter([])

    with pytest.raises(ArrayError, match="IterableDataset has no length"):
        trainer().fit(Stream(), verbose=False)
    with pytest.raises(ConfigError, match="validation_data: expected a pair"):
        trainer().fit(dataset(x, y), validation_data=x, verbose=False)


@pytest.mark.parametrize("item, message", [
    ((np.full(4, np.nan), 0), r"training data item 450 \(batch 16\) x: 4 values are NaN"),
    ((np.zeros(4), 9), r"training data item 450 \(batch 16\) y: label 9 is out of range"),
    ((np.zeros(4), 0.5), r"training data item 450 \(batch 16\) y: labels must be class indices"),
    ((np.zeros(5), 0),
     r"training data: the items of batch 16 \(dataset items 450, .*\) cannot be put together .*\[5\]"),
])
def test_a_bad_item_later_in_the_data_is_named(blobs, item, message):
    """The first batch is checked before the fit begins; a bad item in a later batch stops it with one
    ArrayError naming the item and its batch (here item 450, in the 16th batch of an unshuffled fit)."""
    x, y = blobs
    with pytest.raises(ArrayError, match=message):
        trainer().fit(Rows(x, y, bad={450: item}), epochs=1, batch_size=30, shuffle=False, verbose=False)


def test_a_loader_s_bad_batch_is_named_and_skip_nonfinite_skips_it(blobs):
    x, y = blobs
    x = x.copy()
    x[100] = np.nan
    with pytest.raises(ArrayError, match=r"training data batch 4 x: 4 values are NaN .*sample 4\)"):
        trainer().fit(DataLoader(dataset(x, y), batch_size=32), verbose=False)
    skipping = trainer(skip_nonfinite=True)
    assert skipping.fit(dataset(x, y), epochs=1, verbose=False).last["skipped_batches"] == 1




def resumable(kill=-1):
    callbacks = [ReduceLROnPlateau("val_loss", patience=1, factor=0.5), EarlyStopping("val_loss", patience=50),
                 KillAt(kill)]
    return trainer(seed=3, callbacks=callbacks)


class ListRows(torch.utils.data.Dataset):
    """Items whose x is a Python list: torch's collate batches them column by column."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, index):
        return [float(v) for v in self.x[index]], int(self.y[index])


def test_items_whose_x_is_a_python_list_are_refused_with_what_to_return(blobs):
    x, y = blobs
    with pytest.raises(ArrayError, match=r"each item's x is a Python list \(or tuple\), which torch batches column "
                                         r"by column; return a NumPy array or a tensor"):
        trainer().fit(ListRows(x, y), epochs=1, verbose=False)


@pytest.mark.parametrize("kind", ["dataset", "loader", "loader with a generator"])
def test_an_interrupted_streamed_fit_resumes_to_the_same_result(tmp_path, blobs, kind):
    """Killed mid-epoch and between epochs, a streamed fit resumes to the uninterrupted fit's History and weights:
    a Dataset's order comes from the saved order generator; a DataLoader's generators (torch's global one, or its
    own) are saved, and the batches of the epoch before the saved one are read again and dropped."""
    x, y = blobs

    def data():
        if kind == "dataset":
            return dataset(x, y)
        generator = torch.Generator().manual_seed(5) if kind == "loader with a generator" else None
        return DataLoader(Rows(x, y), batch_size=24, shuffle=True, generator=generator)

    def run(model, folder=None):
        return model.fit(data(), epochs=4, batch_size=24, validation_data=dataset(x[:90], y[:90]), verbose=False,
                         resume_dir=folder, save_every_steps=None if folder is None else 7)

    reference = resumable()
    expected = run(reference)
    for kill in (11, 25, 26, 60):  # mid-epoch (7, 21, 56 saved), and one step after an epoch's end (25)
        with pytest.raises(Interrupt):
            run(resumable(kill), tmp_path)
        assert state_files(tmp_path)
    resumed = resumable()
    assert without_time(run(resumed, tmp_path)) == without_time(expected)
    assert same_weights(reference, resumed)


MEMORY_SCRIPT = """
import os, sys
import numpy as np, torch
from torch.utils.data import Dataset
import trainwell as tw

path, rows, features = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

def peak_kib():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))

class FileRows(Dataset):
    '''Rows of float32 read from a file one at a time (pread: the page cache is not this process's memory).'''
    def __init__(self):
        self.fd, self.row = os.open(path, os.O_RDONLY), features * 4
    def __len__(self):
        return rows
    def __getitem__(self, index):
        x = np.frombuffer(os.pread(self.fd, self.row, index * self.row), dtype=np.float32)
        return torch.from_numpy(x.copy()), int(x[0] > 0)

torch.manual_seed(0)
model = tw.build_model([tw.Dense(2, activation="softmax")], input_shape=(features,))
trainer = tw.Trainer(model, optimizer={"name": "sgd", "lr": 0.05}, seed=0)
baseline = peak_kib()
history = trainer.fit(FileRows(), epochs=1, batch_size=512, verbose=False)
print(baseline, peak_kib(), history.last["accuracy"], trainer.step)
"""


@pytest.mark.slow  # writing and reading 380 MB a row at a time: about 20 s
def test_a_dataset_larger_than_the_memory_bound_trains(tmp_path):
    """A fit on a 400 MB file, read a row at a time, in a process whose peak resident memory grows by less than
    a quarter of the data's size over what it held before the fit (torch's own ~300 MB included in that)."""
    rows, features = 200_000, 500
    path = tmp_path / "rows.f32"
    rng = np.random.default_rng(0)
    with open(path, "wb") as handle:
        for _ in range(rows // 10_000):
            handle.write(rng.standard_normal((10_000, features), dtype=np.float32).tobytes())
    data_kib = path.stat().st_size // 1024
    bound_kib = data_kib // 4
    script = tmp_path / "memory.py"
    script.write_text(MEMORY_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(script), str(path), str(rows), str(features)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    baseline, peak, accuracy, steps = done.stdout.split()
    growth = int(peak) - int(baseline)
    print(f"data {data_kib / 1024:.0f} MiB; peak resident memory {int(baseline) / 1024:.0f} MiB before the fit, "
          f"{int(peak) / 1024:.0f} MiB after: {growth / 1024:.0f} MiB more (bound {bound_kib / 1024:.0f} MiB)")
    assert int(steps) == -(-rows // 512)  # every row was read
    assert float(accuracy) > 0.9  # and learned from: the label is the sign of the first feature
    assert growth < bound_kib

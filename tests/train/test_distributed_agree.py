"""Decisions every rank takes together under torchrun: 2 gloo processes against 1.

A non-finite loss on one rank's share of a batch skips the batch on every rank (``skip_nonfinite``)
or stops every rank at the same step with the same error (TerminateOnNaN), as one process with the
same data skips or stops; validation is split between the ranks with the figures of one process;
callbacks that write run on rank 0 alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.skipif(
    not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
    reason="this PyTorch build has no torch.distributed with gloo; the 2-process tests cannot run")

SCRIPT = """
import json, sys
import numpy as np, torch
from torch.utils.data import TensorDataset
import trainwell as tw
from trainwell.train import distributed

out, mode = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(0)
y = rng.integers(0, 2, 120)  # 8 steps of 16 an epoch (the last of 8 samples)
x = (np.eye(2)[y] * 2 + rng.normal(size=(120, 2))).astype(np.float32)
if mode == "skip":
    x[40] = np.nan  # one sample: in its batch of each epoch, one rank's share alone holds it
x_val = (np.eye(2)[y[:37]] + rng.normal(size=(37, 2))).astype(np.float32)  # 19 and 18 samples a rank
validation = (x_val, y[:37]) if mode == "skip" else TensorDataset(torch.from_numpy(x_val), torch.from_numpy(y[:37]))


class Poison(tw.Callback):
    # a nan in the weights of the last rank (the one process's) before step 10: its loss alone is nan
    def on_batch_begin(self, trainer, step):
        group = distributed.current()
        if step == 10 and (group is None or group.rank == group.world_size - 1):
            with torch.no_grad():
                trainer.model[0].weight[0, 0] = float("nan")


class Evaluated(tw.Callback):
    # the validation samples this rank's model evaluates in the fit (hooked on its first layer)
    samples = 0
    def on_fit_begin(self, trainer):
        trainer.model[0].register_forward_hook(self.count)
    def count(self, module, inputs, output):
        if not module.training:
            Evaluated.samples += len(inputs[0])


class Written(tw.Callback):
    # a user's callback that writes: rank 0 alone runs it
    rank_zero_only = True
    epochs = 0
    def on_epoch_end(self, trainer, epoch, logs):
        Written.epochs += 1


with distributed.process_group_from_env() as group:
    rank = 0 if group is None else group.rank
    torch.manual_seed(0)
    model = tw.build_model([tw.Dense(8, activation="relu"), tw.Dense(2, activation="softmax")], input_shape=(2,))
    callbacks = [Evaluated(), Written(), tw.Checkpoint(out + "-checkpoints")]
    if mode == "terminate":
        callbacks += [Poison(), tw.TerminateOnNaN()]
    trainer = tw.Trainer(model, optimizer={"name": "sgd", "lr": 0.1}, seed=3, device="cpu",
                         skip_nonfinite=mode == "skip", callbacks=callbacks, metrics=["accuracy", "auc"])
    report = {}
    try:
        trainer.fit(x, y, epochs=2, batch_size=16, validation_data=validation, verbose=False)
    except tw.TrainingDiverged as error:
        report["error"] = str(error).replace(out, "OUT")
        raise
    finally:
        report.update(history=[{k: v for k, v in r.items() if k != "time"} for r in trainer.history],
                      step=trainer.step, evaluated=Evaluated.samples, written=Written.epochs)
        torch.save(trainer.model.state_dict(), f"{out}.{rank}.pt")
        with open(f"{out}.{rank}.json", "w") as handle:
            json.dump(report, handle)
"""

FIGURES = ("loss", "accuracy", "auc", "val_loss", "val_accuracy", "val_auc")


def run(tmp_path: Path, mode: str, processes: int) -> tuple[subprocess.CompletedProcess, list[dict], list[dict]]:
    """The script in ``processes`` processes (2: under torchrun, gloo); its exit, each rank's report and weights."""
    script = tmp_path / "agree.py"
    script.write_text(SCRIPT)
    out = str(tmp_path / f"{mode}{processes}")
    start = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([*(start if processes > 1 else [sys.executable]), str(script), out, mode], env=env,
                          capture_output=True, text=True, timeout=120)  # a hang fails here
    reports = [json.loads(Path(f"{out}.{rank}.json").read_text()) for rank in range(processes)]
    weights = [torch.load(f"{out}.{rank}.pt") for rank in range(processes)]
    return done, reports, weights


def assert_same_history(two: list[dict], one: list[dict]) -> None:
    assert [r["epoch"] for r in two] == [r["epoch"] for r in one]
    for a, b in zip(one, two):
        for key in FIGURES:
            assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-6), (a["epoch"], key)
        assert b.get("skipped_batches") == a.get("skipped_batches")


@pytest.mark.slow  # two torchrun launches and a process: about 10 s on an idle machine, 30 s on a busy one
def test_a_nan_batch_on_one_rank_is_skipped_on_every_rank_as_one_process_skips_it(tmp_path):
    two, (rank0, rank1), weights = run(tmp_path, "skip", 2)
    assert two.returncode == 0, two.stderr[-3000:]
    assert "mismatch" not in two.stderr
    _, (one,), (one_weights,) = run(tmp_path, "skip", 1)
    assert [r["skipped_batches"] for r in one["history"]] == [1, 2]  # the nan batch, once an epoch
    assert rank0["history"] == rank1["history"]  # every rank logs the same figures
    assert_same_history(rank0["history"], one["history"])
    assert rank0["step"] == rank1["step"] == one["step"] == 16
    for key in one_weights:
        assert torch.equal(weights[0][key], weights[1][key]), key  # the ranks stayed in step
        torch.testing.assert_close(weights[0][key], one_weights[key], rtol=1e-5, atol=1e-6)
    # validation: each rank its slice (19 and 18 of 37 samples, each epoch), the figures of the whole set
    assert (rank0["evaluated"], rank1["evaluated"], one["evaluated"]) == (2 * 19, 2 * 18, 2 * 37)
    # a callback that writes runs on rank 0 alone; the checkpoints are rank 0's
    assert (rank0["written"], rank1["written"], one["written"]) == (2, 0, 2)
    assert sorted(p.name for p in (tmp_path / "skip2-checkpoints").iterdir()) == [
        "checkpoint-epoch001.safetensors", "checkpoint-epoch002.safetensors", "final.safetensors"]


@pytest.mark.slow
def test_a_nan_loss_on_one_rank_stops_every_rank_at_the_same_step_with_the_same_error(tmp_path):
    two, (rank0, rank1), _ = run(tmp_path, "terminate", 2)
    assert two.returncode != 0
    assert "mismatch" not in two.stderr
    one_run, (one,), _ = run(tmp_path, "terminate", 1)
    assert one_run.returncode != 0 and "TrainingDiverged" in one_run.stderr
    expected = ("training diverged: the loss became nan at step 11 (epoch 2, batch 3 of 8); the last good "
                "checkpoint is OUT-checkpoints/checkpoint-epoch001.safetensors; try a lower learning rate or "
                "gradient clipping")
    assert rank0["error"] == rank1["error"] == one["error"] == expected
    assert rank0["step"] == rank1["step"] == one["step"] == 11
    # epoch 1 was whole; its validation on a Dataset split between the ranks gives one process's figures
    assert_same_history(rank0["history"][:1], one["history"][:1])
    # each rank its slice (a Dataset's first batch is also checked against the model: 2 samples more)
    assert (rank0["evaluated"], rank1["evaluated"], one["evaluated"]) == (2 * (19 + 2), 2 * (18 + 2), 2 * (37 + 2))

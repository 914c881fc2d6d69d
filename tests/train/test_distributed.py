"""Data-parallel training: sharding arithmetic, and 2 gloo processes under torchrun matching 1 process."""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from trainwell.train import distributed
from trainwell.cli import main
from trainwell.errors import ConfigError

CONFIG = """
name = "ddp_digits"
seed = 3
[data]
name = "digits"
validation_size = 300
train_size = 1153      # 18 full batches of 64 and a last batch of 1: one rank gets it, the other none
scaling = "unit"
[model]
layers = [
  { type = "flatten" },
  { type = "dense", units = 16, activation = "relu", init = "he_normal" },
  { type = "dense", units = 10, activation = "softmax" },
]
[optimizer]
name = "sgd"
lr = 0.05
momentum = 0.9
[train]
epochs = 3
batch_size = 64
device = "cpu"
"""


def test_shards_are_disjoint_and_cover_every_batch():
    for size in (64, 63, 7, 1):
        batch = torch.randperm(100)[:size]
        parts = [distributed.ProcessRank(rank=r, world_size=4).shard(batch) for r in range(4)]
        real = torch.cat([indices for indices, count, _ in parts if count])
        assert sorted(real.tolist()) == sorted(batch.tolist())
        # DDP averages the ranks' gradients: the weights make that the global batch's mean
        assert sum(weight for _, _, weight in parts) / 4 == pytest.approx(1.0)


def test_world_size_must_divide_the_batch():
    with pytest.raises(ConfigError, match="train.batch_size 32 is not divisible by the world size 3"):
        distributed.ProcessRank(rank=0, world_size=3).local_batch_size(32)


def test_single_process_is_untouched(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert distributed.from_env() is None and distributed.current() is None
    assert distributed.is_main_process()
    with distributed.process_group_from_env() as group:
        assert group is None
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(ConfigError, match="torchrun"):
        distributed.from_env()


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(tmp_path: Path):
    if not (torch.distributed.is_available() and torch.distributed.is_gloo_available()):
        pytest.skip("this PyTorch build has no torch.distributed with gloo; the 2-process test cannot run")
    config = tmp_path / "ddp.toml"
    config.write_text(CONFIG)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    two = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "trainwell.cli", "train", str(config), "-q", "-o", str(tmp_path / "two")],
        env=env, capture_output=True, text=True, timeout=180)
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count("saved:") == 1  # rank 0 alone prints and writes
    assert main(["train", str(config), "-q", "-o", str(tmp_path / "one")]) == 0

    one_weights, two_weights = (load_file(tmp_path / run / "model.safetensors") for run in ("one", "two"))
    assert one_weights.keys() == two_weights.keys()
    for key in one_weights:
        torch.testing.assert_close(two_weights[key], one_weights[key], rtol=1e-4, atol=1e-5)
    one_history, two_history = (json.loads((tmp_path / run / "history.json").read_text())["epochs"]
                                for run in ("one", "two"))
    for a, b in zip(one_history, two_history):
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-5), key
    assert not (tmp_path / "two" / "checkpoints").exists()


@pytest.mark.slow
def test_two_gloo_processes_gather_the_epochs_outputs_for_its_metrics_and_weigh_as_one_process(tmp_path: Path):
    """auc and f1 of a data-parallel epoch are computed on every rank's outputs; class weights weigh alike."""
    if not (torch.distributed.is_available() and torch.distributed.is_gloo_available()):
        pytest.skip("this PyTorch build has no torch.distributed with gloo; the 2-process test cannot run")
    config = tmp_path / "ddp.toml"
    config.write_text(CONFIG.replace("epochs = 3\n", 'epochs = 1\nmetrics = ["accuracy", "auc", "f1"]\n'
                                                     'class_weight = { "0" = 3.0, "7" = 0.5 }\n'))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    two = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "trainwell.cli", "train", str(config), "-q", "-o", str(tmp_path / "two")],
        env=env, capture_output=True, text=True, timeout=180)
    assert two.returncode == 0, two.stderr[-3000:]
    assert main(["train", str(config), "-q", "-o", str(tmp_path / "one")]) == 0
    one, two = (json.loads((tmp_path / run / "history.json").read_text())["epochs"][-1] for run in ("one", "two"))
    for key in ("loss", "accuracy", "auc", "f1", "val_loss", "val_auc", "val_f1"):
        assert two[key] == pytest.approx(one[key], rel=1e-4, abs=1e-5), key


STREAMED_SCRIPT = """
import json, sys
import numpy as np, torch
from safetensors.torch import save_file
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset
import trainwell as tw
from trainwell.train import distributed

out = sys.argv[1]
rng = np.random.default_rng(0)
y = rng.integers(0, 3, 577)  # 9 batches of 64 and a last one of 1: one rank gets it, the other none
x = (np.eye(3)[y] * 2 + rng.normal(size=(577, 3))).astype(np.float32)
data = TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
with distributed.process_group_from_env() as group:
    torch.manual_seed(0)
    model = tw.build_model([tw.Dense(16, activation="relu"), tw.Dense(3, activation="softmax")], input_shape=(3,))
    trainer = tw.Trainer(model, optimizer={"name": "sgd", "lr": 0.05, "momentum": 0.9}, seed=3, device="cpu")
    history = trainer.fit(data, epochs=3, batch_size=64, validation_data=TensorDataset(*data[:100]), verbose=False)
    report = {"history": [{k: v for k, v in r.items() if k != "time"} for r in history]}
    if group is not None:  # a DataLoader must bring its own DistributedSampler
        another = tw.build_model([tw.Dense(3, activation="softmax")], input_shape=(3,))
        try:
            tw.Trainer(another, seed=0).fit(DataLoader(data, batch_size=32), verbose=False)
        except tw.ArrayError as error:
            report["refused"] = str(error)
        sampler = DistributedSampler(data, shuffle=True, seed=0)
        other = tw.Trainer(another, seed=0)
        other.fit(DataLoader(data, batch_size=32, sampler=sampler), epochs=2, verbose=False)
        report["loader"] = {"steps_per_epoch": other.steps_per_epoch, "sampler_epoch": sampler.epoch}
    if distributed.is_main_process():
        save_file(trainer.model.state_dict(), out + ".safetensors")
        with open(out + ".json", "w") as handle:
            json.dump(report, handle)
"""


def _run_on_two_ranks_and_one(tmp_path: Path, text: str, name: str) -> None:
    """The script ``text`` run by 2 gloo processes under torchrun (writing under ``tmp_path/two``) and by one
    process (``tmp_path/one``); both must succeed."""
    script = tmp_path / f"{name}.py"
    script.write_text(text)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    for run, launcher in (("two", ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]), ("one", [])):
        done = subprocess.run([sys.executable, *launcher, str(script), str(tmp_path / run)], env=env,
                              capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.slow
def test_a_streamed_dataset_on_two_gloo_processes_matches_one_process(tmp_path: Path):
    """Each rank loads only its share of each global batch of a Dataset (the arrays' shards), so two processes
    end where one does, as for arrays; a DataLoader brings its own DistributedSampler, whose epoch is set."""
    if not (torch.distributed.is_available() and torch.distributed.is_gloo_available()):
        pytest.skip("this PyTorch build has no torch.distributed with gloo; the 2-process test cannot run")
    _run_on_two_ranks_and_one(tmp_path, STREAMED_SCRIPT, "streamed")
    one_weights, two_weights = (load_file(tmp_path / f"{run}.safetensors") for run in ("one", "two"))
    for key in one_weights:
        torch.testing.assert_close(two_weights[key], one_weights[key], rtol=1e-4, atol=1e-5)
    one_report, two_report = (json.loads((tmp_path / f"{run}.json").read_text()) for run in ("one", "two"))
    for a, b in zip(one_report["history"], two_report["history"]):
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-5), key
    assert "needs a DistributedSampler" in two_report["refused"]
    assert two_report["loader"] == {"steps_per_epoch": 10, "sampler_epoch": 1}  # 289 samples a rank, by 32


SYNC_SCRIPT = """
import json, sys
import numpy as np, torch
from safetensors.torch import save_file
import trainwell as tw
from trainwell.train import distributed

out = sys.argv[1]
rng = np.random.default_rng(0)
y = rng.integers(0, 3, 80)  # 2 batches of 32 and a last one of 16, split 8 and 8
x = (rng.normal(size=(80, 1, 6, 6)) + y[:, None, None, None]).astype(np.float32)
trainers = {}
for sync in (True, False):  # made before the process group is joined, as the README allows
    model = tw.build_model([tw.Conv2D(4, 3), tw.BatchNormalization(), tw.Flatten(), tw.Dense(8, activation="relu"),
                            tw.BatchNormalization(), tw.Dense(3, activation="softmax")], input_shape=(1, 6, 6), seed=0)
    trainers[sync] = tw.Trainer(model, optimizer={"name": "sgd", "lr": 0.05, "momentum": 0.9}, seed=3,
                                sync_batchnorm=sync)
group = distributed.init_from_env(timeout=77)
report = {}
if group is not None:
    report["timeout"] = torch.distributed.distributed_c10d._get_default_group()._get_backend(
        torch.device("cpu")).options._timeout.total_seconds()
for sync, trainer in trainers.items():
    history = trainer.fit(x, y, epochs=2, batch_size=32, validation_data=(x[:40], y[:40]), verbose=False)
    report[str(sync)] = [{k: v for k, v in r.items() if k != "time"} for r in history]
    report["flags"] = [m.synchronized for m in trainer.model.modules() if hasattr(m, "synchronized")]
    if distributed.is_main_process():
        save_file({k: v.contiguous() for k, v in trainer.model.state_dict().items()}, f"{out}-{sync}.safetensors")
if distributed.is_main_process():
    with open(out + ".json", "w") as handle:
        json.dump(report, handle)
distributed.shutdown()
"""


@pytest.mark.slow
def test_sync_batchnorm_on_two_ranks_equals_one_process_with_the_global_batch(tmp_path: Path):
    """With sync_batchnorm every BatchNormalization (after a Conv2D and after a Dense layer) normalizes by the
    global batch, so 2 ranks end where 1 process does, moving statistics included; without it they do not.
    The Trainers are made before init_from_env(timeout=77), whose timeout the group then has."""
    _run_on_two_ranks_and_one(tmp_path, SYNC_SCRIPT, "sync")
    one_report, two_report = (json.loads((tmp_path / f"{run}.json").read_text()) for run in ("one", "two"))
    assert two_report["timeout"] == 77 and two_report["flags"] == [False, False]  # off again after the fit
    synced, one_synced = (load_file(tmp_path / f"{run}-True.safetensors") for run in ("two", "one"))
    for key in one_synced:
        torch.testing.assert_close(synced[key], one_synced[key], rtol=1e-5, atol=1e-6)
    for a, b in zip(one_report["True"], two_report["True"]):
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-6), key
    plain, one_plain = (load_file(tmp_path / f"{run}-False.safetensors") for run in ("two", "one"))
    torch.testing.assert_close(one_plain["dense_1.weight"], one_synced["dense_1.weight"])  # the same in 1 process
    gap = (plain["batch_normalization_2.running_var"] - one_plain["batch_normalization_2.running_var"]).abs().max()
    assert gap > 1e-3  # each rank's own statistics: not the global batch's


TIMEOUT_SCRIPT = """
import sys, time, torch
from trainwell.train import distributed

with distributed.process_group_from_env(timeout=float(sys.argv[2])) as group:
    if group.rank == 1:
        time.sleep(5)  # never joins the collective below
    else:
        started = time.perf_counter()
        try:
            torch.distributed.all_reduce(torch.ones(1))
            outcome = "no timeout"
        except Exception as error:
            outcome = type(error).__name__
        with open(sys.argv[1], "w") as handle:
            handle.write(f"{outcome} {time.perf_counter() - started:.1f}")
    import os
    os._exit(0)
"""


@pytest.mark.slow
def test_the_process_group_timeout_ends_a_collective_that_a_rank_never_joins(tmp_path: Path):
    script = tmp_path / "wait.py"
    script.write_text(TIMEOUT_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                    str(script), str(tmp_path / "outcome"), "1"], env=env, capture_output=True, text=True, timeout=120)
    outcome, waited = (tmp_path / "outcome").read_text().split()
    assert outcome != "no timeout" and 0.8 <= float(waited) < 4.5, (outcome, waited)  # 1 s, not torch's 30 minutes


def test_the_process_group_timeout_is_checked_even_in_one_process(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    for bad in (0, -1, float("inf"), float("nan"), "60", True, 1e12):
        with pytest.raises(ConfigError, match="process_group_timeout: must be a positive number of seconds"):
            distributed.init_from_env(timeout=bad)
        with pytest.raises(ConfigError, match="process_group_timeout"):
            with distributed.process_group_from_env(timeout=bad):
                pass
    assert distributed.init_from_env(timeout=30) is None
    assert distributed.check_timeout(90).total_seconds() == 90 and distributed.check_timeout(None) is None


BN_CONFIG = """
name = "ddp_bn"
seed = 5
[data]
name = "digits"
validation_size = 200
train_size = 320
scaling = "unit"
[model]
layers = [
  { type = "flatten" },
  { type = "batch_normalization" },
  { type = "dense", units = 16, use_bias = false },
  { type = "batch_normalization" },
  { type = "activation", activation = "relu" },
  { type = "dense", units = 10, activation = "softmax" },
]
[optimizer]
name = "sgd"
lr = 0.05
[train]
epochs = 2
batch_size = 32
"""


def readme_two_node_command() -> str:
    """The README's two-machine torchrun command, its continuation lines joined."""
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    found = re.search(r"^((?:\w+=\S+ \\\n)*torchrun --nnodes=2 (?:.*\\\n)*.*)$", text, flags=re.M)
    assert found, "the README no longer shows a two-machine torchrun command"
    return found.group(1).replace("\\\n", " ")


@pytest.mark.slow
def test_the_readmes_multi_machine_command_runs_on_one_machine_as_written(tmp_path: Path):
    """The README's command with one machine of 2 processes and a c10d rendezvous on 127.0.0.1: it trains
    with --sync-batchnorm to the weights of one process (which it would not without the option)."""
    config = tmp_path / "bn.toml"
    config.write_text(BN_CONFIG)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = readme_two_node_command()
    for old, new in (("torchrun ", f"{sys.executable} -m torch.distributed.run "), ("--nnodes=2", "--nnodes=1"),
                     ("--nproc_per_node=8", "--nproc_per_node=2"),
                     ("--rdzv-endpoint=host0:29400", f"--rdzv-endpoint=127.0.0.1:{port}"),
                     ("examples/bn_before.toml", f"{config} -q -o {tmp_path / 'two'}")):
        assert command.count(old) == 1, f"the README's command no longer has {old!r} once"
        command = command.replace(old, new)
    assert "--rdzv-backend=c10d" in command and "--sync-batchnorm" in command
    assert command.startswith("TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 "), "a store of its own for each restart"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"}
    command = command.removeprefix("TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 ")
    two = subprocess.run(shlex.split(command), env=env, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count("saved:") == 1
    assert main(["train", str(config), "-q", "-o", str(tmp_path / "one")]) == 0
    one_weights, two_weights = (load_file(tmp_path / run / "model.safetensors") for run in ("one", "two"))
    for key in one_weights:
        torch.testing.assert_close(two_weights[key], one_weights[key], rtol=1e-4, atol=1e-5)


def test_the_cli_refuses_a_timeout_that_is_not_a_positive_number(tmp_path: Path, capsys):
    config = tmp_path / "bn.toml"
    config.write_text(BN_CONFIG)
    assert main(["train", str(config), "-q", "--process-group-timeout", "0", "-o", str(tmp_path / "x")]) == 2
    assert "--process-group-timeout" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_the_cli_flags_set_the_train_keys(tmp_path: Path):
    config = tmp_path / "bn.toml"
    config.write_text(BN_CONFIG.replace("epochs = 2", "epochs = 1"))
    assert main(["train", str(config), "-q", "--sync-batchnorm", "--process-group-timeout", "60",
                 "-o", str(tmp_path / "run")]) == 0
    saved = json.loads((tmp_path / "run" / "config.json").read_text())["train"]
    assert saved["sync_batchnorm"] is True and saved["process_group_timeout"] == 60


DIFFERENT_FITS_SCRIPT = """
import sys

import torch

import trainwell as tw
from trainwell.train.distributed import init_from_env

rank = init_from_env(timeout=60).rank
x, y = torch.randn(64, 4), torch.randint(0, 3, (64,))
resume = sys.argv[2] if sys.argv[1] == "resume_dir" and rank == 0 else None
if sys.argv[1] == "samples" and rank == 1:
    x, y = x[:48], y[:48]
model = tw.build_model([tw.Dense(3, activation="softmax")], input_shape=(4,), seed=0)
try:
    tw.Trainer(model, seed=0).fit(x, y, epochs=1, batch_size=16, verbose=False, resume_dir=resume)
except tw.ConfigError as error:
    print(f"rank {rank}: {error}")
    sys.exit(2)
"""


@pytest.mark.slow
@pytest.mark.parametrize("differs, said", [
    ("resume_dir", "resume_dir given: True on rank 0, False on rank 1"),
    ("samples", "training samples: 64 on rank 0, 48 on rank 1"),
])
def test_ranks_whose_fits_differ_fail_together_at_once_with_what_differs(tmp_path: Path, differs, said):
    """A resume_dir on rank 0 alone, or fewer samples on rank 1, used to hang in a collective for the whole
    process-group timeout and end in gloo's own error: now every rank fails before the first one."""
    script = tmp_path / "differ.py"
    script.write_text(DIFFERENT_FITS_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(script), differs, str(tmp_path / "state")], env=env, capture_output=True, text=True,
                          timeout=50)
    assert done.returncode != 0
    for rank in (0, 1):
        assert f"rank {rank}: the ranks' fits differ ({said})" in done.stdout, done.stdout + done.stderr[-2000:]


@pytest.mark.slow
def test_a_process_group_timeout_too_short_for_the_ranks_says_which_setting_to_raise(tmp_path: Path):
    """Ranks that time out joining or waiting are not always dead: the error names the timeout to raise."""
    (tmp_path / "run.toml").write_text('seed = 0\n[data]\nname = "digits"\ntrain_size = 64\nvalidation_size = 32\n'
                                       '[model]\nlayers = [{type = "flatten"}, {type = "dense", units = 10, '
                                       'activation = "softmax"}]\n[train]\nepochs = 1\nbatch_size = 16\n'
                                       'device = "cpu"\nprocess_group_timeout = 0.001\n')
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "trainwell.cli", "train", "run.toml", "-o", "out"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "error: data-parallel training stopped: a rank died or could not reach the others" in done.stderr
    assert "raise [train] process_group_timeout (0.001 s)" in done.stderr, done.stderr[-3000:]
    assert not (tmp_path / "out" / "model.safetensors").exists()

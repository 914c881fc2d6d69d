"""torchrun jobs killed and run again: every rank resumes from the same saved state, to the weights of a job
never killed, whether the ranks share the output folder or rank 0 sends them the state."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

pytestmark = [pytest.mark.slow,  # each torchrun job starts two processes: seconds each, a minute in all
              pytest.mark.skipif(not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
                                 reason="this PyTorch build has no torch.distributed with gloo")]

# 600 samples by 64: 10 steps an epoch, split over 2 ranks; dropout draws from the random generators each step,
# so a rank that resumed without the saved generators (or the saved weights) ends elsewhere.
CONFIG = """
name = "ddp_resume"
seed = 3
[data]
name = "digits"
validation_size = 200
train_size = 600
scaling = "unit"
[model]
layers = [{type = "flatten"}, {type = "dense", units = 16, activation = "relu", init = "he_normal"},
          {type = "dropout", rate = 0.1}, {type = "dense", units = 10, activation = "softmax"}]
[optimizer]
name = "sgd"
lr = 0.05
momentum = 0.9
[train]
process_group_timeout = 60  # a rank that never comes fails the job in a minute, not torch's 30
epochs = 3
batch_size = 64
device = "cpu"
resumable = true
"""

# `trainwell train` as the CLI runs it, with a fault the test injects through the environment.
HOOK = '''
import os, signal, sys
from pathlib import Path

import torch.distributed

import trainwell.recipes.train as recipe
from trainwell.callbacks import Callback
from trainwell.cli import main

rank = int(os.environ["RANK"])
trigger = Path(os.environ["KILL_TRIGGER"])  # while it exists, the fault happens (once: it is removed)
pids = trigger.with_name(trigger.name + ".pids")
pids.mkdir(exist_ok=True)
(pids / str(rank)).write_text(str(os.getpid()))


class KillInEpoch3(Callback):
    """At its first step of epoch 3 (the epoch-2 state is saved: rank 0 saves it before it takes that step,
    which every rank's step waits for), rank KILL_RANK is SIGKILLed: with KILL_WHAT=job, so are the
    torchrun agent and every other rank, at once; with KILL_WHAT=rank, that process alone."""

    affects_fit = False

    def on_batch_end(self, trainer, step):
        if trainer.epoch == 3 and rank == int(os.environ.get("KILL_RANK", "0")) and trigger.exists():
            trigger.unlink()
            if os.environ.get("KILL_WHAT", "job") == "job":
                os.kill(os.getppid(), signal.SIGKILL)
                for other in pids.iterdir():
                    if int(other.name) != rank:
                        os.kill(int(other.read_text()), signal.SIGKILL)
            os.kill(os.getpid(), signal.SIGKILL)


configured = recipe.configured_callbacks
recipe.configured_callbacks = lambda *args, **kwargs: [*configured(*args, **kwargs), KillInEpoch3()]
if os.environ.get("RANK_FOLDERS"):  # each rank its own working folder: a relative output folder is not shared
    os.chdir(Path(os.environ["RANK_FOLDERS"]) / f"rank-{rank}")
sys.exit(main(sys.argv[1:]))
'''


def _torchrun(where: Path, *flags: str, fault: bool = True, timeout: int = 240, **env: str):
    """The README's ``torchrun --standalone --nproc_per_node=2 [flags] -m trainwell.cli train run.toml -o
    runs/ddp``, run in ``where``; with ``fault``, the hook above stands in for ``-m trainwell.cli``."""
    entry = [str(where / "hook.py")] if fault else ["-m", "trainwell.cli"]
    command = [sys.executable, "-m", "torch.distributed.run", *_arguments(*flags, entry=entry)]
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "PYTHONHASHSEED": "0",
                   "KILL_TRIGGER": str(where / "kill"), **env}
    return subprocess.run(command, cwd=where, env=environment, capture_output=True, text=True, timeout=timeout)


def _arguments(*flags: str, entry: list[str]) -> list[str]:
    return ["--standalone", "--nproc_per_node=2", *flags, *entry, "train", "run.toml", "-o", "runs/ddp"]


def test_the_readme_shows_the_commands_these_tests_run():
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = text[text.index("**When a data-parallel run is killed.**"):]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    shown = [line.split("#")[0].strip() for line in block.splitlines()]
    run = [" ".join(["torchrun", *_arguments(*flags, entry=["-m", "trainwell.cli"])])
           for flags in ((), (), ("--max-restarts=1",))]  # killed, the same command again; one rank killed
    assert shown == run


def _ready(where: Path) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    (where / "run.toml").write_text(CONFIG)
    (where / "hook.py").write_text(HOOK)
    trigger = where / "kill"
    trigger.touch()
    return trigger


@pytest.fixture(scope="module")
def never_killed(tmp_path_factory) -> Path:
    """The output folder of the same 2-process job, run once without a fault."""
    where = tmp_path_factory.mktemp("never_killed")
    _ready(where)
    run = _torchrun(where, fault=False)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("saved:") == 1
    return where / "runs" / "ddp"


def _assert_same_run(out: Path, expected: Path) -> None:
    """``out`` holds a finished run with the weights (bit for bit) and History of ``expected``'s."""
    weights, reference = load_file(out / "model.safetensors"), load_file(expected / "model.safetensors")
    assert weights.keys() == reference.keys()
    for key in reference:
        assert torch.equal(weights[key], reference[key]), key

    def epochs(folder):
        return [{k: v for k, v in record.items() if k != "time"}
                for record in json.loads((folder / "history.json").read_text())["epochs"]]

    assert epochs(out) == epochs(expected)
    assert not (out / "resume").exists() and not (out / "progress").exists()


def _killed_after_epoch_2(out: Path) -> None:
    """The job died in epoch 3: the epoch-2 state is there, no final files."""
    from trainwell.train.resume import saved_position

    assert saved_position(out / "resume" / "phase-0")["epoch"] == 2
    assert not (out / "model.safetensors").exists()


def test_a_killed_job_run_again_ends_as_a_job_never_killed(tmp_path: Path, never_killed: Path):
    trigger = _ready(tmp_path)
    out = tmp_path / "runs" / "ddp"
    killed = _torchrun(tmp_path)
    assert killed.returncode != 0 and not trigger.exists(), killed.stderr[-3000:]
    _killed_after_epoch_2(out)

    again = _torchrun(tmp_path, fault=False)  # the same command, as the README shows it
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stderr.count("resuming at epoch 3, step 20 from runs/ddp/resume") == 1  # rank 0 alone says it
    assert "does not see" not in again.stderr  # one machine: rank 1 read the state from the shared folder
    assert again.stdout.count("saved:") == 1
    _assert_same_run(out, never_killed)

    # and the finished run is refused by every rank: none starts training while another stops
    refused = _torchrun(tmp_path, fault=False, timeout=120)
    assert refused.returncode != 0
    assert refused.stderr.count("error: runs/ddp: already holds a finished run") == 2  # each rank stops
    _assert_same_run(out, never_killed)


def test_a_rank_killed_under_max_restarts_resumes(tmp_path: Path, never_killed: Path):
    """torchrun restarts both ranks once, and the run ends as one never killed. Before each attempt joined under
    keys of its own (trainwell.train.rendezvous), one restart in two hung five minutes in gloo's connect."""
    trigger = _ready(tmp_path)
    out = tmp_path / "runs" / "ddp"
    run = _torchrun(tmp_path, "--max-restarts=1", KILL_RANK="1", KILL_WHAT="rank")
    assert not trigger.exists(), run.stderr[-3000:]  # rank 1 was killed in epoch 3
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stderr.count("resuming at epoch 3, step 20 from runs/ddp/resume") == 1
    _assert_same_run(out, never_killed)


def test_a_rank_killed_on_one_of_two_machines_resumes_with_a_store_for_each_restart(tmp_path: Path,
                                                                                     never_killed: Path):
    """Two torchrun agents, as on two machines (one process each, a c10d rendezvous), started as the README
    says (``TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1``); rank 1 is killed in epoch 3 and both machines resume."""
    trigger = _ready(tmp_path)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "PYTHONHASHSEED": "0",
                   "KILL_TRIGGER": str(trigger), "KILL_RANK": "1", "KILL_WHAT": "rank",
                   "TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1",
               "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}", "--rdzv-id=two-machines",
               "--max-restarts=1", str(tmp_path / "hook.py"), "train", "run.toml", "-o", "runs/ddp"]
    machines = [subprocess.Popen(command, cwd=tmp_path, env=environment, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        outputs = [machine.communicate(timeout=240) for machine in machines]
    finally:
        for machine in machines:
            machine.kill()
    stderr = "".join(err for _, err in outputs)
    assert [machine.returncode for machine in machines] == [0, 0], stderr[-3000:]
    assert not trigger.exists(), stderr[-3000:]  # rank 1 was killed in epoch 3
    assert stderr.count("resuming at epoch 3, step 20 from runs/ddp/resume") == 1, stderr[-3000:]
    _assert_same_run(tmp_path / "runs" / "ddp", never_killed)


def test_ranks_that_do_not_see_rank_0s_folder_get_the_state_by_broadcast(tmp_path: Path, never_killed: Path):
    """Each rank in its own working folder, with a relative output folder: as on nodes with their own disks,
    rank 1 sees no saved state, so rank 0 sends it."""
    trigger = _ready(tmp_path)
    for rank in (0, 1):
        (tmp_path / f"rank-{rank}").mkdir()
        (tmp_path / f"rank-{rank}" / "run.toml").write_text(CONFIG)
    out = tmp_path / "rank-0" / "runs" / "ddp"
    killed = _torchrun(tmp_path, RANK_FOLDERS=str(tmp_path))
    assert killed.returncode != 0 and not trigger.exists(), killed.stderr[-3000:]
    _killed_after_epoch_2(out)

    again = _torchrun(tmp_path, RANK_FOLDERS=str(tmp_path))
    assert again.returncode == 0, again.stderr[-3000:]
    assert "rank 1 does not see runs/ddp/resume/phase-0 (not a shared folder): rank 0 sends the saved state" \
        in again.stderr
    _assert_same_run(out, never_killed)
    assert [p.name for p in (tmp_path / "rank-1").iterdir()] == ["run.toml"]  # rank 1 wrote nothing

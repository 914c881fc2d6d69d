"""Which device a fit runs on: under torchrun a CUDA device is the local rank's GPU, whatever the order of calls.

This machine's tests have no GPU: torch.cuda's answers (``is_available``, ``device_count``,
``set_device``) and ``nn.Module.to`` are monkeypatched where a test needs CUDA, so what is checked
is the decision (which device, when the model moves), not a kernel on a GPU.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from helpers import small_model
from trainwell.errors import ConfigError
from trainwell.train import Trainer, devices, distributed
from trainwell.train.devices import move_to_rank_device, resolve_device


@pytest.fixture
def gpus(monkeypatch):
    """Four pretend GPUs: torch.cuda says so, ``set_device`` and ``Module.to`` record their device and move nothing."""
    calls = {"set_device": [], "to": []}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: calls["set_device"].append(torch.device(device)))

    def to(module, *args, **kwargs):
        calls["to"].append(torch.device(args[0]))
        return module

    monkeypatch.setattr(nn.Module, "to", to)
    return calls


def torchrun(monkeypatch, *, rank: int, local_rank: int, world_size: int = 8) -> None:
    for key, value in (("WORLD_SIZE", world_size), ("RANK", rank), ("LOCAL_RANK", local_rank)):
        monkeypatch.setenv(key, str(value))


def one_process(monkeypatch) -> None:
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)


def test_a_cuda_device_under_torchrun_is_the_local_ranks_gpu(gpus, monkeypatch):
    torchrun(monkeypatch, rank=5, local_rank=5)
    for setting in (None, "auto", "cuda", torch.device("cuda")):
        assert resolve_device(setting) == torch.device("cuda:1"), setting  # local rank 5 of 4 GPUs
    assert resolve_device("cpu") == torch.device("cpu")
    one_process(monkeypatch)
    assert resolve_device("cuda") == torch.device("cuda") and resolve_device("cuda:2") == torch.device("cuda:2")


def test_an_explicit_cuda_index_under_torchrun_is_the_local_ranks_too_with_one_note_on_rank_0(gpus, monkeypatch):
    monkeypatch.setattr(devices, "_NOTED", set())
    torchrun(monkeypatch, rank=0, local_rank=0, world_size=2)
    with pytest.warns(UserWarning, match="device 'cuda:0' under torchrun: each process trains on the GPU of its "
                                         "LOCAL_RANK.*CUDA_VISIBLE_DEVICES"):
        assert resolve_device("cuda:0") == torch.device("cuda:0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per process (the Trainer, the fit and the run's fingerprint ask)
        assert resolve_device("cuda:0") == torch.device("cuda:0")
    torchrun(monkeypatch, rank=1, local_rank=1, world_size=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the other ranks say nothing
        assert resolve_device("cuda:1") == torch.device("cuda:1")
        assert resolve_device("cuda:0") == torch.device("cuda:1")  # no longer every rank on GPU 0
    with pytest.raises(ConfigError, match="'cuda:7', but this machine has 4 CUDA devices"):
        resolve_device("cuda:7")


def test_a_trainer_made_before_init_from_env_is_on_its_local_ranks_gpu(gpus, monkeypatch):
    """torchrun's LOCAL_RANK is known before the group is joined: the model goes to its GPU at once."""
    torchrun(monkeypatch, rank=3, local_rank=3, world_size=4)
    assert not torch.distributed.is_initialized()
    trainer = Trainer(small_model(), seed=0)
    assert trainer.device == torch.device("cuda:3") and gpus["to"] == [torch.device("cuda:3")]


def test_a_fit_in_a_group_made_by_hand_moves_the_model_to_the_ranks_gpu(gpus, monkeypatch):
    """No torchrun variables when the Trainer is made (device 'cuda': the current GPU); when the fit starts
    the process is rank 2 of a group its script made: the model moves to GPU 2, which becomes current."""
    one_process(monkeypatch)
    trainer = Trainer(small_model(), device="cuda", seed=0)
    assert trainer.device == torch.device("cuda")
    monkeypatch.setattr(distributed, "current", lambda: distributed.ProcessRank(rank=2, world_size=4))
    monkeypatch.setattr(trainer, "_fit", lambda x, y, **options: trainer.device)  # stop where the loop begins
    assert trainer.fit(torch.zeros(4, 4), torch.zeros(4, dtype=torch.long), verbose=False) == torch.device("cuda:2")
    assert gpus["to"][-1] == torch.device("cuda:2") and gpus["set_device"] == [torch.device("cuda:2")]


def test_in_one_process_a_fit_moves_nothing(gpus, monkeypatch):
    one_process(monkeypatch)
    model = small_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    assert move_to_rank_device("cuda:1", torch.device("cuda:1"), model, optimizer) == torch.device("cuda:1")
    assert gpus["to"] == [] and gpus["set_device"] == []


def test_cpu_training_is_untouched_by_the_rank(monkeypatch, blobs):
    torchrun(monkeypatch, rank=1, local_rank=1, world_size=2)  # variables set, but no GPU and no group yet
    x, y = blobs
    trainer = Trainer(small_model(), seed=0)
    assert trainer.device == torch.device("cpu")
    one_process(monkeypatch)
    trainer.fit(x[:64], y[:64], epochs=1, verbose=False)
    assert trainer.device == torch.device("cpu") and next(trainer.model.parameters()).device.type == "cpu"

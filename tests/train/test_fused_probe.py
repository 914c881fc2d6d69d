"""The fused pass's probe against autograd: a kernel that breaks makes the fused step step aside, the probe leaves
the model alone, runs once per structure and is cheap."""

import pytest
import torch

import trainwell as tw
from trainwell.train.step import fused_step, why_not_fused

from fused_helpers import CASES, assert_same_run, fit


class _Kernels:
    """torch.ops.aten with one kernel replaced (called as the packet or by its ``.default`` overload)."""

    def __init__(self, name, replacement):
        self.name, self.replacement = name, _Packet(replacement)

    def __getattr__(self, name):
        return self.replacement if name == self.name else getattr(torch.ops.aten, name)


class _Packet:
    def __init__(self, kernel):
        self.default = kernel

    def __call__(self, *args, **kwargs):
        return self.default(*args, **kwargs)


def _broken(*args, **kwargs):
    raise RuntimeError("threshold_backward() got an unexpected keyword argument")


@pytest.mark.parametrize("replacement, reason", [
    (_broken, "raised RuntimeError"),
    (lambda g, y, threshold: torch.ops.aten.threshold_backward(g, y, threshold) * 1.01, "disagrees with autograd"),
])
def test_a_kernel_that_breaks_makes_the_fused_step_step_aside_with_a_warning(images, monkeypatch, replacement, reason):
    from trainwell.train import fused_probe, fused_stages

    monkeypatch.setattr(fused_probe, "_PROBES", {})
    monkeypatch.setattr(fused_stages, "aten", _Kernels("threshold_backward", replacement))
    layers = [tw.Flatten(), tw.Dense(32, activation="relu"), tw.Dense(4, activation="softmax")]
    optimizer = {"name": "sgd", "lr": 0.05}
    with pytest.warns(RuntimeWarning, match=f"fused step.*{reason}.*autograd") as caught:
        broken = fit(images, layers, optimizer, fused=True, epochs=2)
    assert len(caught) == 1 and "\n" not in str(caught[0].message)
    assert reason in why_not_fused(broken[2])
    standard = fit(images, layers, optimizer, fused=False, epochs=2)
    assert_same_run(broken, standard)


def test_the_probe_leaves_the_model_and_random_streams_alone_and_runs_once(images, monkeypatch):
    from trainwell.train import fused_probe as fused_module

    monkeypatch.setattr(fused_module, "_PROBES", {})
    runs = []
    original = fused_module._probe
    monkeypatch.setattr(fused_module, "_probe", lambda *a, **k: runs.append(1) or original(*a, **k))
    layers, optimizer = CASES["bn_after, SGD with momentum"]
    model = tw.build_model(layers, input_shape=(8, 8))
    trainer = tw.Trainer(model, optimizer=optimizer)
    x, y, _, _ = images
    trainer.fit(x[:64], y[:64], epochs=1, verbose=False)  # optimizer state and BN statistics to keep
    state = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer_state = {k: v.clone() for k, v in trainer.optimizer.state_dict()["state"][0].items()}
    rng = torch.get_rng_state()
    runs.clear()
    fused_module._PROBES.clear()
    assert fused_step(trainer) is not None and runs == [1]
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert all(torch.equal(optimizer_state[k], v) for k, v in trainer.optimizer.state_dict()["state"][0].items())
    assert fused_step(trainer) is not None and why_not_fused(trainer) is None and runs == [1]  # cached


def test_the_probe_of_a_deep_model_is_cheap():
    import time
    from trainwell.train import fused_probe as fused_module

    layers = [tw.Flatten()] + [tw.Dense(100, activation="selu", init="lecun_normal") for _ in range(100)]
    model = tw.build_model(layers + [tw.Dense(10, activation="softmax")], input_shape=(28, 28))
    trainer = tw.Trainer(model, optimizer="sgd")
    fused_module._PROBES.clear()
    started = time.perf_counter()
    assert fused_step(trainer) is not None
    assert time.perf_counter() - started < 1.0

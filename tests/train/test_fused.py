"""The fused step gives the standard step's History and weights, and steps aside where it must."""

import pytest
import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_pre_hook

import trainwell as tw
from trainwell.config import load_config
from trainwell.doctor.record import Diagnostics
from trainwell.train.step import StepParts, fused_step, make_step, why_not_fused
from trainwell.model.regularization import l2, max_norm


@pytest.fixture(scope="module")
def images():
    """Small 8x8 'images' with a learnable rule, and a validation split."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(800, 8, 8, generator=g)
    y = (x[:, :4, :].sum(dim=(1, 2)) > 0).long() + 2 * (x[:, 4:, :4].sum(dim=(1, 2)) > 0).long()
    return x[:640], y[:640], x[640:], y[640:]


def fit(images, layers, optimizer, *, fused, epochs=3, **kwargs):
    x, y, x_val, y_val = images
    tw.seed_everything(0)
    model = tw.build_model(layers, input_shape=(8, 8))
    trainer = tw.Trainer(model, optimizer=optimizer, seed=0, fused=fused, **kwargs)
    history = trainer.fit(x, y, epochs=epochs, batch_size=32, validation_data=(x_val, y_val), verbose=False)
    return history, model, trainer


def assert_same_run(a, b):
    (history_a, model_a, _), (history_b, model_b, _) = a, b
    assert history_a.keys() == history_b.keys()
    for key in ("loss", "val_loss", "accuracy", "val_accuracy"):
        assert history_a[key] == pytest.approx(history_b[key], rel=1e-5, abs=1e-6), key
    state_a, state_b = model_a.state_dict(), model_b.state_dict()
    assert state_a.keys() == state_b.keys()
    for name in state_a:  # weights, biases, BN's running statistics and batch counts
        torch.testing.assert_close(state_a[name], state_b[name], rtol=1e-4, atol=1e-5, msg=name)


CASES = {
    "leaky_relu, SGD": ([tw.Flatten(), tw.Dense(64, activation="leaky_relu", init="he_normal"),
                         tw.Dense(32, activation="leaky_relu", init="he_normal"), tw.Dense(4, activation="softmax")],
                        {"name": "sgd", "lr": 0.05}),
    "bn_after, SGD with momentum": ([tw.Flatten(), tw.BatchNormalization(),
                                     tw.Dense(64, activation="elu", init="he_normal"), tw.BatchNormalization(),
                                     tw.Dense(32, activation="elu", init="he_normal"), tw.BatchNormalization(),
                                     tw.Dense(4, activation="softmax")],
                                    {"name": "sgd", "lr": 0.02, "momentum": 0.9}),
    "selu, Nadam": ([tw.Flatten(), tw.Dense(64, activation="selu", init="lecun_normal"),
                     tw.Dense(32, activation="selu", init="lecun_normal"), tw.Dense(4, activation="softmax")],
                    {"name": "nadam", "lr": 1e-3}),
    "elu, Adam, max-norm": ([tw.Flatten(), tw.Dense(64, activation="elu", init="he_normal", kernel_constraint=max_norm(1.0)),
                             tw.Dense(4, activation="softmax")], {"name": "adam", "lr": 1e-3}),
    "dropout, elu": ([tw.Flatten(), tw.Dropout(0.2), tw.Dense(64, activation="elu", init="he_normal"), tw.Dropout(0.2),
                      tw.Dense(32, activation="elu", init="he_normal"), tw.Dropout(0.2), tw.Dense(4, activation="softmax")],
                     {"name": "nadam", "lr": 1e-3}),
    "alpha dropout, selu": ([tw.Flatten(), tw.AlphaDropout(0.2), tw.Dense(64, activation="selu", init="lecun_normal"),
                             tw.AlphaDropout(0.2), tw.Dense(4, activation="softmax")], {"name": "sgd", "lr": 0.05}),
    "standalone activations after dropout": (
        [tw.Flatten(), tw.Dense(32), tw.Activation("tanh"), tw.Dropout(0.0), tw.Activation("relu"),
         tw.Dense(4, activation="softmax")], {"name": "sgd", "lr": 0.05}),
    "every activation, Nesterov": ([tw.Flatten(), tw.Dense(32, activation="tanh"), tw.Dense(32, activation="sigmoid"),
                                    tw.Dense(32, activation="relu"), tw.Dense(32, activation="selu", init="lecun_normal"),
                                    tw.Dense(32, activation="elu"), tw.Dense(32, use_bias=False), tw.Dense(4)],
                                   {"name": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True}),
}


@pytest.mark.parametrize("case", CASES)
def test_fused_step_gives_the_standard_history(images, case):
    layers, optimizer = CASES[case]
    fused = fit(images, layers, optimizer, fused=True)
    standard = fit(images, layers, optimizer, fused=False)
    assert_same_run(fused, standard)
    assert fused[0]["loss"][-1] < fused[0]["loss"][0]
    folded = optimizer["name"] == "sgd" and not optimizer.get("momentum")
    # with plain SGD, the fused run folds the updates into the products: no gradient is ever stored
    assert all((p.grad is None) == folded for p in fused[1].parameters())
    assert all(p.grad is not None for p in standard[1].parameters())


def test_clipping_keeps_the_gradients_for_the_optimizer(images):
    layers, optimizer = CASES["leaky_relu, SGD"]
    fused = fit(images, layers, optimizer, fused=True, clipnorm=0.05)
    standard = fit(images, layers, optimizer, fused=False, clipnorm=0.05)
    assert_same_run(fused, standard)
    step = fused_step(fused[2])
    assert step is not None and not step.applies_update  # fused, with the update left to the optimizer
    unclipped = fit(images, layers, optimizer, fused=True)
    assert unclipped[0]["loss"] != pytest.approx(fused[0]["loss"], rel=1e-3)  # the clipping did something


def test_schedule_and_plateau_reach_the_fused_step(images):
    layers, optimizer = CASES["leaky_relu, SGD"]
    schedule = {"name": "exponential", "s": 20}
    fused = fit(images, layers, optimizer, fused=True, schedule=schedule)
    standard = fit(images, layers, optimizer, fused=False, schedule=schedule)
    assert_same_run(fused, standard)
    assert fused[0].steps["lr"] == standard[0].steps["lr"] and fused[0].steps["lr"][-1] < 0.05 / 100


def test_diagnostics_steps_take_the_standard_path_and_record_gradients(images):
    layers, optimizer = CASES["leaky_relu, SGD"]
    recorder = Diagnostics(every=7)
    fused = fit(images, layers, optimizer, fused=True, callbacks=[recorder])
    standard = fit(images, layers, optimizer, fused=False, callbacks=[Diagnostics(every=7)])
    assert_same_run(fused, standard)
    sample = recorder.recording.samples[3]
    assert all(sample.layers[name]["grad_rms"] > 0 for name in ("dense_1", "dense_2", "dense_3"))


def test_a_momentum_run_continues_on_the_standard_path(images):
    """The fused step keeps SGD's momentum buffers in the optimizer, where the standard step looks."""
    layers, optimizer = CASES["bn_after, SGD with momentum"]
    x, y, x_val, y_val = images
    runs = []
    for first_fused in (True, False):
        history, model, trainer = fit(images, layers, optimizer, fused=first_fused, epochs=1)
        trainer.fused = False
        trainer.fit(x, y, epochs=1, batch_size=32, validation_data=(x_val, y_val), verbose=False)
        runs.append((history, model, trainer))
    assert_same_run(*runs)


@pytest.mark.parametrize("change, reason", [
    ({"skip_nonfinite": True}, "non-finite"),
    ({"loss": "binary_crossentropy", "layers": [tw.Flatten(), tw.Dense(1, activation="sigmoid")]}, "binary"),
    ({"layers": [tw.Flatten(), tw.Dense(8, activation="exponential"), tw.Dense(4, activation="softmax")]}, "Exponential"),
    ({"layers": [tw.Flatten(), tw.Dense(8, activation="prelu"), tw.Dense(4, activation="softmax")]}, "PReLU"),
])
def test_why_not_fused_names_the_reason(change, reason):
    layers = change.pop("layers", CASES["leaky_relu, SGD"][0])
    model = tw.build_model(layers, input_shape=(8, 8))
    trainer = tw.Trainer(model, **{"optimizer": {"name": "sgd"}, **change})
    assert reason in why_not_fused(trainer)
    assert fused_step(trainer) is None


def test_penalties_frozen_layers_and_the_switch_turn_it_off():
    model = tw.build_model([tw.Flatten(), tw.Dense(8, activation="relu", kernel_regularizer=l2(0.01)),
                            tw.Dense(4, activation="softmax")], input_shape=(8, 8))
    trainer = tw.Trainer(model, optimizer="sgd")
    assert "l1/l2 penalties" in why_not_fused(trainer)
    assert fused_step(trainer) is None
    model[1].kernel_regularizer = None
    assert why_not_fused(trainer) is None and fused_step(trainer) is not None
    parts = StepParts(model=model, forward=trainer.forward_logits, loss=trainer.loss, optimizer=trainer.optimizer,
                      clipping=trainer.clipping, penalties=[object()])
    assert "l1/l2 penalties" in make_step(parts)[1]
    switched_off = tw.Trainer(model, optimizer="sgd", fused=False)
    assert switched_off.fused is False and "fused=False" in why_not_fused(switched_off)
    model[1].weight.requires_grad_(False)
    frozen = tw.Trainer(model, optimizer="sgd")
    assert "frozen" in why_not_fused(frozen)


def test_plain_torch_sequential_qualifies(images):
    x, y, _, _ = images
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 4))
    trainer = tw.Trainer(model, optimizer={"name": "sgd", "lr": 0.1}, seed=0)
    assert fused_step(trainer) is not None
    history = trainer.fit(x, y, epochs=2, batch_size=32, verbose=False)
    assert history["loss"][1] < history["loss"][0]


def test_config_key(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('[data]\nname = "fashion_mnist"\n[model]\nlayers = [{ type = "flatten" }, '
                    '{ type = "dense", units = 10, activation = "softmax" }]\n[train]\nfused = false\n')
    assert load_config(path).train.fused is False


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fused_step_on_cuda_matches_the_standard_step(images):
    layers, optimizer = CASES["bn_after, SGD with momentum"]
    fused = fit(images, layers, optimizer, fused=True, device="cuda")
    standard = fit(images, layers, optimizer, fused=False, device="cuda")
    assert_same_run(fused, standard)


# ----------------------------------------------------------------- hooks: each kind is honoured


def _module_hook(register):
    def attach(model, trainer, calls):
        return register(model.dense_1, calls)
    return attach


HOOKS = {
    "forward hook": (_module_hook(lambda m, calls: m.register_forward_hook(lambda *a: calls.append(1))),
                     "a forward hook on dense_1"),
    "forward pre-hook": (_module_hook(lambda m, calls: m.register_forward_pre_hook(lambda *a: calls.append(1))),
                         "a forward pre-hook on dense_1"),
    "full backward hook": (_module_hook(lambda m, calls: m.register_full_backward_hook(lambda *a: calls.append(1))),
                           "a backward hook on dense_1"),
    "backward pre-hook": (_module_hook(lambda m, calls: m.register_full_backward_pre_hook(
        lambda *a: calls.append(1))), "a backward pre-hook on dense_1"),
    "activation's forward hook": (lambda model, trainer, calls: model.dense_2.activation.register_forward_hook(
        lambda *a: calls.append(1)), "a forward hook on dense_2.activation"),
    "gradient hook": (lambda model, trainer, calls: model.dense_1.weight.register_hook(lambda g: calls.append(1)),
                      "a gradient hook on dense_1.weight"),
    "post-accumulate-grad hook": (lambda model, trainer, calls: model.dense_2.bias.register_post_accumulate_grad_hook(
        lambda p: calls.append(1)), "a post-accumulate-grad hook on dense_2.bias"),
    "global forward hook": (lambda model, trainer, calls: nn.modules.module.register_module_forward_hook(
        lambda *a: calls.append(1)), "a global forward hook"),
    "global forward pre-hook": (lambda model, trainer, calls: nn.modules.module.register_module_forward_pre_hook(
        lambda *a: calls.append(1)), "a global forward pre-hook"),
    "global backward hook": (lambda model, trainer, calls: nn.modules.module.register_module_full_backward_hook(
        lambda *a: calls.append(1)), "a global backward hook"),
    "global backward pre-hook": (lambda model, trainer, calls: nn.modules.module.register_module_full_backward_pre_hook(
        lambda *a: calls.append(1)), "a global backward pre-hook"),
    "optimizer step hook": (lambda model, trainer, calls: trainer.optimizer.register_step_post_hook(
        lambda *a: calls.append(1)), "an optimizer step hook"),
    "global optimizer step hook": (lambda model, trainer, calls: register_optimizer_step_pre_hook(
        lambda *a: calls.append(1)), "an optimizer step hook"),
}


def _hooked_run(images, hook, fused):
    x, y, _, _ = images
    tw.seed_everything(0)
    model = tw.build_model(CASES["leaky_relu, SGD"][0], input_shape=(8, 8))
    trainer = tw.Trainer(model, optimizer={"name": "sgd", "lr": 0.05}, seed=0, fused=fused)
    calls = []
    handle = HOOKS[hook][0](model, trainer, calls)
    try:
        reason = why_not_fused(trainer)
        history = trainer.fit(x[:128], y[:128], epochs=1, batch_size=32, verbose=False)
    finally:
        handle.remove()
    return len(calls), reason, history, why_not_fused(trainer)


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_kind_fires_on_the_default_path_and_is_named(images, hook):
    calls, reason, history, after = _hooked_run(images, hook, fused=True)
    standard_calls, _, standard, _ = _hooked_run(images, hook, fused=False)
    assert calls == standard_calls > 0
    assert HOOKS[hook][1] in reason
    assert after is None  # the hook is removed: nothing stands in the way any more
    assert history["loss"] == pytest.approx(standard["loss"], rel=1e-5)


def test_why_not_fused_takes_the_trainer_alone():
    model = tw.build_model(CASES["leaky_relu, SGD"][0], input_shape=(8, 8))
    trainer = tw.Trainer(model, optimizer="sgd")
    assert why_not_fused(trainer) is None
    assert "binary" in why_not_fused(tw.Trainer(tw.build_model([tw.Flatten(), tw.Dense(1, activation="sigmoid")],
                                                               input_shape=(8, 8)), loss="binary_crossentropy"))


class AsksForAutograd(tw.Callback):
    def __init__(self, steps):
        self.steps, self.asked = set(steps), []

    def needs_autograd(self, trainer, step):
        self.asked.append(step)
        return step in self.steps


@pytest.mark.parametrize("case", ["leaky_relu, SGD", "bn_after, SGD with momentum"])
def test_a_callback_gets_the_autograd_step_exactly_where_it_asks(images, case, monkeypatch):
    from trainwell.train import fused as fused_module

    fused_steps = []
    trainers = []
    original = fused_module.FusedPass.__call__

    def spy(self, x, y):
        if self.params[0] is next(trainers[-1].model.parameters()):  # the trainer's step, not the probe's
            fused_steps.append(trainers[-1].step)
        return original(self, x, y)

    monkeypatch.setattr(fused_module.FusedPass, "__call__", spy)
    layers, optimizer = CASES[case]
    asker = AsksForAutograd({0, 3, 7, 19, 20})
    x, y, x_val, y_val = images
    tw.seed_everything(0)
    model = tw.build_model(layers, input_shape=(8, 8))
    trainers.append(tw.Trainer(model, optimizer=optimizer, seed=0, callbacks=[asker]))
    history = trainers[-1].fit(x, y, epochs=2, batch_size=32, validation_data=(x_val, y_val), verbose=False)
    steps = 2 * 640 // 32
    assert asker.asked == list(range(steps))
    assert fused_steps == [s for s in range(steps) if s not in asker.steps]
    standard = fit(images, layers, optimizer, fused=False, epochs=2)
    assert_same_run((history, model, trainers[-1]), standard)


# ----------------------------------------------------------------- the probe against autograd


class _Kernels:
    """torch.ops.aten with one kernel replaced."""

    def __init__(self, name, replacement):
        self.name, self.replacement = name, replacement

    def __getattr__(self, name):
        return self.replacement if name == self.name else getattr(torch.ops.aten, name)


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

"""The fused step gives the standard step's History and weights, and steps aside where a hook is in the way."""

import pytest
import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_pre_hook

import trainwell as tw
from trainwell.config import load_config
from trainwell.doctor.record import Diagnostics
from trainwell.train.step import fused_step, why_not_fused

from fused_helpers import CASES, assert_same_run, fit, seeded_stack


@pytest.mark.parametrize("case", CASES)
def test_fused_step_gives_the_standard_history(images, case):
    layers, optimizer = CASES[case]
    fused = fit(images, layers, optimizer, fused=True)
    standard = fit(images, layers, optimizer, fused=False)
    assert_same_run(fused, standard)
    assert fused[0]["loss"][-1] < fused[0]["loss"][0]
    folded = optimizer["name"] in ("adam", "nadam") or not optimizer.get("momentum")
    # with plain SGD and the Adam family, the fused run folds the updates: no gradient is ever stored
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


def test_a_dense_layer_on_sequences_steps_aside_to_autograd():
    """nn.Linear maps the last axis of a (batch, steps, features) input; the fused pass's products take matrices."""
    x, y = torch.rand(64, 5, 8, generator=torch.Generator().manual_seed(0)), torch.arange(64) % 3
    runs = []
    for fused in (True, False):
        model = tw.build_model([tw.Dense(4, activation="relu"), tw.Flatten(), tw.Dense(3, activation="softmax")],
                               input_shape=(5, 8))
        trainer = tw.Trainer(model, optimizer={"name": "sgd", "lr": 0.1}, seed=0, fused=fused)
        runs.append((trainer.fit(x, y, epochs=2, batch_size=32, verbose=False), model))
    assert runs[0][0]["loss"] == pytest.approx(runs[1][0]["loss"], rel=1e-6)
    for a, b in zip(runs[0][1].parameters(), runs[1][1].parameters()):
        torch.testing.assert_close(a, b)


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


def test_weights_moved_to_new_storage_between_steps_are_the_ones_trained():
    """The Dense stages keep W.T and the bias column as views; a parameter whose storage is replaced mid-fit
    (``param.data = ...``) must be read anew, not through a view of its old storage."""
    runs = []
    for fused in (True, False):
        model, x, y = seeded_stack(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 3))

        class Replace(tw.Callback):
            def on_batch_begin(self, trainer, step):
                if step == 1:
                    for p in model.parameters():
                        p.data = p.data.clone()

        trainer = tw.Trainer(model, optimizer={"name": "sgd", "lr": 0.1}, seed=0, fused=fused, callbacks=[Replace()])
        runs.append((trainer.fit(x, y, epochs=2, batch_size=16, verbose=False), model))
    assert runs[0][0]["loss"] == pytest.approx(runs[1][0]["loss"], rel=1e-5)
    for a, b in zip(runs[0][1].parameters(), runs[1][1].parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("batch", [1, 5])
def test_each_steps_logits_are_its_own_though_the_layers_write_into_kept_buffers(batch):
    """The Dense stages write their outputs into buffers kept per batch size; the logits handed out are a copy
    (the meter keeps them a few steps): the next step leaves them as they were, even for a batch of one,
    whose (1, classes) view of the top layer's buffer is already contiguous."""
    model, x, y = seeded_stack(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 3))
    trainer = tw.Trainer(model, optimizer={"name": "sgd", "lr": 0.1}, seed=0)
    step = fused_step(trainer)
    first = step(x[:batch], y[:batch]).logits
    kept = first.clone()
    step(x[batch:2 * batch], y[batch:2 * batch])
    assert torch.equal(first, kept)


def test_a_short_last_batch_and_a_batch_of_one_train_as_the_standard_step():
    """Kept buffers per batch size: epochs of full batches, a short last one, and batches of one."""
    for batch_size in (16, 1):
        runs = []
        for fused in (True, False):
            model, x, y = seeded_stack(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3))
            x, y = torch.cat([x, x[:6] * 0.5]), torch.cat([y, y[:6]])  # 70 rows: the last batch of 16 holds 6
            trainer = tw.Trainer(model, optimizer={"name": "sgd", "lr": 0.1}, seed=0, fused=fused)
            runs.append((trainer.fit(x, y, epochs=3, batch_size=batch_size, verbose=False), model))
        assert runs[0][0]["loss"] == pytest.approx(runs[1][0]["loss"], rel=1e-5)
        assert runs[0][0]["accuracy"] == runs[1][0]["accuracy"]
        for a, b in zip(runs[0][1].parameters(), runs[1][1].parameters()):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_an_activation_module_used_twice_is_applied_twice():
    """One ReLU instance at two places of an nn.Sequential (a common way to write a stack): the fused step must
    run both, as the model's forward does (model.children() yields a module used twice only once)."""
    runs = []
    for fused in (True, False):
        relu = nn.ReLU()
        model, x, y = seeded_stack(nn.Linear(8, 6), relu, nn.Linear(6, 5), relu, nn.Linear(5, 3), std=0.5)
        trainer = tw.Trainer(model, optimizer={"name": "sgd", "lr": 0.1}, seed=0, fused=fused)
        if fused:
            assert why_not_fused(trainer) is None
        runs.append((trainer.fit(x, y, epochs=3, batch_size=16, verbose=False), model))
    assert runs[0][0]["loss"] == pytest.approx(runs[1][0]["loss"], rel=1e-5)
    for a, b in zip(runs[0][1].parameters(), runs[1][1].parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_shared_weights_keep_to_autograd_and_train_as_it_does():
    """A Dense layer used twice, or two layers tying one weight: the uses' gradients add up before the update,
    which the fused step's per-layer update does not do, so the fit names why and trains with autograd."""
    def used_twice():
        shared = nn.Linear(6, 6)
        return seeded_stack(nn.Linear(8, 6), nn.ReLU(), shared, nn.ReLU(), shared, nn.ReLU(), nn.Linear(6, 3))

    def tied():
        first, second = nn.Linear(6, 6), nn.Linear(6, 6)
        second.weight = first.weight
        return seeded_stack(nn.Linear(8, 6), nn.Tanh(), first, nn.Tanh(), second, nn.Tanh(), nn.Linear(6, 3))

    for make, reason in ((used_twice, "a layer used twice (Linear at position 2 and 4)"),
                         (tied, "a parameter shared by two layers")):
        runs = []
        for fused in (True, False):
            model, x, y = make()
            trainer = tw.Trainer(model, optimizer={"name": "sgd", "lr": 0.1}, seed=0, fused=fused)
            if fused:
                assert why_not_fused(trainer).startswith(reason)
            runs.append(trainer.fit(x, y, epochs=2, batch_size=16, verbose=False))
        assert runs[0]["loss"] == runs[1]["loss"]


@pytest.mark.parametrize("optimizer", [{"name": "sgd", "lr": 0.1, "momentum": 0.9}, {"name": "adam", "lr": 0.01},
                                       {"name": "sgd", "lr": 0.1}])
def test_a_parameter_not_contiguous_in_memory_trains_as_autograd_trains_it(optimizer):
    """A transposed weight (legal: nn.Parameter(t.t())): autograd gives its gradient the parameter's strides,
    which PyTorch's one-kernel optimizers rely on; the fused step, which makes row-major ones, stands aside."""
    runs = []
    for fused in (True, False):
        model, x, y = seeded_stack(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 3))
        model[0].weight = nn.Parameter(model[0].weight.detach().t().contiguous().t())
        trainer = tw.Trainer(model, optimizer=optimizer, seed=0, fused=fused)
        if fused:
            assert why_not_fused(trainer).startswith("a parameter not contiguous in memory (0.weight")
        runs.append((trainer.fit(x, y, epochs=2, batch_size=16, verbose=False), model))
    assert runs[0][0]["loss"] == runs[1][0]["loss"]
    for a, b in zip(runs[0][1].parameters(), runs[1][1].parameters()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("module", [nn.ReLU(), nn.LeakyReLU(0.3), nn.ELU(0.7), nn.SELU(), nn.Sigmoid(), nn.Tanh()],
                         ids=lambda m: type(m).__name__)
def test_activation_stages_call_their_kernels_directly_and_traceably_alike(module):
    from trainwell.train.fused_stages import ActivationStage

    generator = torch.Generator().manual_seed(0)
    z, g = torch.randn(7, 5, generator=generator), torch.randn(7, 5, generator=generator)
    direct = ActivationStage(module)
    traced = ActivationStage(module)
    traced.traceable()  # what a compiled pass's stages call: the aten overload
    assert direct._backward is not traced._backward
    y, _ = direct.forward(z.clone())
    assert torch.equal(y, traced.forward(z.clone())[0])
    assert torch.equal(direct.backward(g, y, None, True), traced.backward(g, y, None, True))
    # and both are the module's own function and autograd's gradient
    z_grad = z.clone().requires_grad_()
    expected = module(z_grad)
    expected.backward(g)
    assert torch.equal(y, expected.detach())
    torch.testing.assert_close(direct.backward(g, y, None, True), z_grad.grad, rtol=1e-6, atol=1e-6)


def test_a_compiled_pass_makes_its_stages_traceable(images):
    from trainwell.train.compiled import CompiledPass
    from trainwell.train.fused_stages import ActivationStage, LinearStage

    layers, optimizer = CASES["leaky_relu, SGD"]
    trainer = fit(images, layers, optimizer, fused=True, epochs=1)[2]
    fused = fused_step(trainer).fused
    stages = fused.stages
    assert not any(getattr(stage, "traced", False) for stage in stages)
    CompiledPass(fused)
    assert all(stage.traced for stage in stages if isinstance(stage, LinearStage))
    assert all(stage._backward is stage._overload for stage in stages if isinstance(stage, ActivationStage))

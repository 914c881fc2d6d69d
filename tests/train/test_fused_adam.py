"""The Adam family's folded update gives the optimizer's own step(): Histories, weights and its state, PyTorch's."""

import pytest
import torch
from torch import nn

import trainwell as tw
from helpers import Interrupt, KillAt
from trainwell.doctor.record import Diagnostics
from trainwell.optim import make_optimizer
from trainwell.train.fused_adam import folded_adam
from trainwell.train.step import fused_step, why_not_fused

from fused_helpers import assert_same_run, fit

SELU = [tw.Flatten(), tw.Dense(64, activation="selu", init="lecun_normal"),
        tw.Dense(32, activation="selu", init="lecun_normal"), tw.Dense(4, activation="softmax")]
BN = [tw.Flatten(), tw.Dense(32, activation="elu", init="he_normal"), tw.BatchNormalization(),
      tw.Dense(4, activation="softmax")]


def nadam_decoupled(params):
    return torch.optim.NAdam(params, lr=2e-3, weight_decay=0.01, decoupled_weight_decay=True)


OPTIMIZERS = {
    "nadam keras2": {"name": "nadam", "lr": 1e-3},
    "nadam keras3": {"name": "nadam", "lr": 1e-3, "variant": "keras3"},
    "nadam, weight decay": {"name": "nadam", "lr": 2e-3, "weight_decay": 0.01},
    "nadam, decoupled weight decay": nadam_decoupled,
    "adam": {"name": "adam", "lr": 1e-3},
    "adam, weight decay": {"name": "adam", "lr": 1e-3, "weight_decay": 0.01},
    "adamw": {"name": "adamw", "lr": 1e-3},
    "keras adam": {"name": "adam", "lr": 1e-3, "variant": "keras"},
    "keras adamw": {"name": "adamw", "lr": 1e-3, "variant": "keras", "weight_decay": 0.01},
}


def assert_same_state(optimizer_a, optimizer_b):
    """Two optimizers' state_dicts: the same keys, types and groups, values within float32 rounding."""
    a, b = optimizer_a.state_dict(), optimizer_b.state_dict()
    assert a["param_groups"] == b["param_groups"]  # Keras' eps and step count included
    assert a["state"].keys() == b["state"].keys()
    for index in a["state"]:
        assert a["state"][index].keys() == b["state"][index].keys()
        for key, value in a["state"][index].items():
            other = b["state"][index][key]
            assert (value.dtype, value.shape, value.device) == (other.dtype, other.shape, other.device), key
            if key in ("step", "mu_product"):  # counts and products of the same factors: exactly equal
                assert torch.equal(value, other), key
            else:
                torch.testing.assert_close(value, other, rtol=1e-4, atol=1e-6, msg=key)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_each_folded_update_is_the_optimizers_step(name):
    """Tensor by tensor, 60 steps of random gradients: the weights and the state within float32 rounding."""
    generator = torch.Generator().manual_seed(0)
    shapes = [(30, 20), (30,)]
    start = [torch.randn(shape, generator=generator) for shape in shapes]
    own, folded = ([nn.Parameter(p.clone()) for p in start] for _ in range(2))
    own_optimizer, folded_optimizer = (make_optimizer(OPTIMIZERS[name], params) for params in (own, folded))
    update = folded_adam(folded_optimizer, folded)
    assert update is not None
    for _ in range(60):
        grads = [0.1 * torch.randn(shape, generator=generator) for shape in shapes]
        for p, g in zip(own, grads):
            p.grad = g.clone()
        own_optimizer.step()
        with torch.no_grad():
            assert update.begin()
            for p, g in zip(folded, grads):
                update.apply(p, g.clone())
    for a, b in zip(own, folded):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-5, atol=1e-7)
    assert_same_state(own_optimizer, folded_optimizer)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_the_folded_update_gives_the_optimizers_own_history(images, name):
    layers = BN if name.startswith("keras") else SELU
    fused = fit(images, layers, OPTIMIZERS[name], fused=True)
    standard = fit(images, layers, OPTIMIZERS[name], fused=False)
    step = fused_step(fused[2])
    assert step is not None and step.fused.update is not None and step.applies_update
    assert_same_run(fused, standard)
    assert_same_state(fused[2].optimizer, standard[2].optimizer)
    assert fused[0]["loss"][-1] < fused[0]["loss"][0]
    assert all(p.grad is None for p in fused[1].parameters())  # folded: no gradient is stored


def test_a_schedule_and_momentum_cycle_reach_the_folded_update(images):
    for optimizer in ({"name": "nadam", "lr": 2e-3}, {"name": "adamw", "lr": 2e-3}):
        settings = {"schedule": {"name": "one_cycle", "max_lr": 5e-3, "cycle_momentum": True}}
        fused = fit(images, SELU, optimizer, fused=True, **settings)
        standard = fit(images, SELU, optimizer, fused=False, **settings)
        assert_same_run(fused, standard)
        assert fused[0].steps["lr"] == standard[0].steps["lr"] and len(set(fused[0].steps["lr"])) > 10
        assert fused[2].optimizer.param_groups[0]["betas"][0] != 0.9  # 1cycle moved beta_1
        assert_same_state(fused[2].optimizer, standard[2].optimizer)


@pytest.mark.parametrize("clipping", [{"clipnorm": 0.05}, {"global_clipnorm": 0.1}])
def test_clipped_gradients_are_folded_after_clipping(images, clipping):
    optimizer = {"name": "nadam", "lr": 2e-3, "weight_decay": 0.01}
    fused = fit(images, SELU, optimizer, fused=True, **clipping)
    standard = fit(images, SELU, optimizer, fused=False, **clipping)
    assert_same_run(fused, standard)
    assert_same_state(fused[2].optimizer, standard[2].optimizer)
    step = fused_step(fused[2])
    assert step.fused.update is not None and not step.applies_update  # the gradients wait in .grad for the clip
    for a, b in zip(fused[1].parameters(), standard[1].parameters()):  # .grad: the clipped gradient, not decayed
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-3, atol=1e-6)
    unclipped = fit(images, SELU, optimizer, fused=True)
    assert unclipped[0]["loss"] != pytest.approx(fused[0]["loss"], rel=1e-3)  # the clipping did something


def test_diagnostics_steps_in_between_keep_the_state_in_step(images):
    """Steps of the optimizer's own step() (Diagnostics' recorded steps) between folded ones."""
    optimizer = {"name": "nadam", "lr": 1e-3}
    fused = fit(images, SELU, optimizer, fused=True, callbacks=[Diagnostics(every=7)])
    standard = fit(images, SELU, optimizer, fused=False, callbacks=[Diagnostics(every=7)])
    assert_same_run(fused, standard)
    assert_same_state(fused[2].optimizer, standard[2].optimizer)


def test_a_folded_state_dict_continues_in_a_fresh_optimizer(images):
    x, y, x_val, y_val = images
    optimizer = {"name": "nadam", "lr": 1e-3, "variant": "keras3"}
    standard = fit(images, SELU, optimizer, fused=False, epochs=1)
    folded = fit(images, SELU, optimizer, fused=True, epochs=1)
    assert_same_state(folded[2].optimizer, standard[2].optimizer)
    runs = []
    for (_, model, trainer), fused in ((standard, False), (folded, True)):
        tw.seed_everything(1)
        fresh = tw.build_model(SELU, input_shape=(8, 8))
        fresh.load_state_dict(model.state_dict())
        again = tw.Trainer(fresh, optimizer=optimizer, seed=1, fused=not fused)  # the other step continues it
        again.optimizer.load_state_dict(trainer.optimizer.state_dict())
        history = again.fit(x, y, epochs=2, batch_size=32, validation_data=(x_val, y_val), verbose=False)
        runs.append((history, fresh, again))
    assert_same_run(*runs)
    assert_same_state(runs[0][2].optimizer, runs[1][2].optimizer)


def test_an_interrupted_folded_fit_resumes_to_the_standard_result(images, tmp_path):
    x, y, x_val, y_val = images
    optimizer = {"name": "adam", "lr": 2e-3, "variant": "keras"}

    def run(fused, callbacks=(), resume_dir=None):
        tw.seed_everything(0)
        model = tw.build_model(SELU, input_shape=(8, 8))
        trainer = tw.Trainer(model, optimizer=optimizer, seed=0, fused=fused, callbacks=list(callbacks))
        history = trainer.fit(x, y, epochs=3, batch_size=32, validation_data=(x_val, y_val), verbose=False,
                              resume_dir=resume_dir, save_every_steps=5 if resume_dir else None)
        return history, model, trainer

    standard = run(False)
    with pytest.raises(Interrupt):
        run(True, [KillAt(33)], tmp_path)
    resumed = run(True, [KillAt(-1)], tmp_path)
    assert_same_run(resumed, standard)
    assert_same_state(resumed[2].optimizer, standard[2].optimizer)


@pytest.mark.parametrize("make", [
    lambda params: torch.optim.Adam(params, lr=1e-3, amsgrad=True),
    lambda params: torch.optim.NAdam(params, lr=1e-3, maximize=True),
    lambda params: torch.optim.Adam([{"params": params[:2]}, {"params": params[2:], "lr": 1e-4}], lr=1e-3),
], ids=["amsgrad", "maximize", "two groups"])
def test_options_it_does_not_fold_keep_the_optimizers_step(images, make):
    def optimizer(params):
        return make(list(params))
    fused = fit(images, SELU, optimizer, fused=True, epochs=1)
    standard = fit(images, SELU, optimizer, fused=False, epochs=1)
    step = fused_step(fused[2])
    assert step is not None and step.fused.update is None and not step.applies_update
    assert_same_run(fused, standard)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", ["nadam keras2", "adam", "keras adamw"])
def test_the_folded_update_on_cuda_gives_the_optimizers_own_history(images, name):
    fused = fit(images, SELU, OPTIMIZERS[name], fused=True, device="cuda")
    standard = fit(images, SELU, OPTIMIZERS[name], fused=False, device="cuda")
    assert fused_step(fused[2]).fused.update is not None
    assert_same_run(fused, standard)
    assert_same_state(fused[2].optimizer, standard[2].optimizer)


def test_an_optimizer_step_hook_takes_the_step_that_calls_it(images):
    """The folded update calls no optimizer.step(): with a step hook attached, the step is autograd's."""
    x, y, _, _ = images
    calls = []
    tw.seed_everything(0)
    trainer = tw.Trainer(tw.build_model(SELU, input_shape=(8, 8)), optimizer={"name": "nadam", "lr": 1e-3}, seed=0)
    handle = trainer.optimizer.register_step_post_hook(lambda *a: calls.append(1))
    assert "an optimizer step hook" in why_not_fused(trainer)
    trainer.fit(x[:128], y[:128], epochs=1, batch_size=32, verbose=False)
    handle.remove()
    assert len(calls) == 4 and why_not_fused(trainer) is None

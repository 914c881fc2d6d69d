"""A fit's step: why it is not the fused one (why_not_fused, make_step), and the autograd step exactly where a
callback asks for it."""

import pytest

import trainwell as tw
from trainwell.train.step import StepParts, fused_step, make_step, why_not_fused
from trainwell.model.regularization import l2

from fused_helpers import CASES, assert_same_run, fit


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


def test_a_cnn_takes_the_autograd_step_saying_why_without_a_warning(recwarn):
    from helpers import digit_images, small_cnn

    trainer = tw.Trainer(small_cnn(), optimizer="sgd", seed=0)
    assert why_not_fused(trainer).startswith("a convolution (ActivatedConv2d): the fused step covers dense stacks")
    assert fused_step(trainer) is None
    x, y = digit_images(64)
    trainer.fit(x, y, epochs=1, batch_size=16, verbose=False)
    assert not [w for w in recwarn if "trainwell" in str(w.message)]

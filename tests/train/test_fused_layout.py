"""The fused SGD step stores wide-input weights by column while it trains them, and only then."""

import pytest
import torch
from torch import nn

import trainwell as tw
from trainwell.callbacks import Callback
from trainwell.train.fused_layout import column_weights
from trainwell.train.fused_stages import LinearStage

from fused_helpers import assert_same_run
from helpers import Interrupt, KillAt

#: 256 inputs to 100 units: a layer the column layout is for (more than twice the inputs, 25,600 weights)
LAYERS = [tw.Flatten(), tw.Dense(100, activation="leaky_relu", init="he_normal"),
          tw.Dense(32, activation="leaky_relu", init="he_normal"), tw.Dense(4, activation="softmax")]


@pytest.fixture(scope="module")
def wide():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(800, 16, 16, generator=g)
    y = (x[:, :8].sum(dim=(1, 2)) > 0).long() + 2 * (x[:, 8:, :8].sum(dim=(1, 2)) > 0).long()
    return x[:640], y[:640], x[640:], y[640:]


class Layouts(Callback):
    """The first Dense layer's weight strides, seen at each epoch's end."""

    def __init__(self):
        self.strides = []

    def on_epoch_end(self, trainer, epoch, logs):
        self.strides.append(trainer.model[1].weight.stride())


def run(wide, *, fused=True, threads=2, batch_size=32, optimizer=None, callbacks=(), **kwargs):
    x, y, x_val, y_val = wide
    tw.seed_everything(0)
    model = tw.build_model(LAYERS, input_shape=(16, 16))
    trainer = tw.Trainer(model, optimizer=optimizer or {"name": "sgd", "lr": 0.05}, seed=0, fused=fused,
                         threads=threads, callbacks=list(callbacks))
    history = trainer.fit(x, y, epochs=3, batch_size=batch_size, validation_data=(x_val, y_val), verbose=False,
                          **kwargs)
    return history, model, trainer


def test_it_picks_wide_input_layers_at_small_batches_on_several_threads():
    def picked(layer, **settings):
        return bool(column_weights([LinearStage(layer)], **{"batch_size": 32, "threads": 2, **settings}))

    assert picked(nn.Linear(784, 300)) and picked(nn.Linear(784, 100)) and picked(nn.Linear(300, 100))
    assert not picked(nn.Linear(300, 784))  # more outputs than inputs: slower by column
    assert not picked(nn.Linear(256, 64))  # too small to gain
    assert not picked(nn.Linear(784, 300), threads=1) and not picked(nn.Linear(784, 300), batch_size=128)


def test_the_weights_go_by_column_inside_the_fit_and_back_after_it(wide):
    seen = Layouts()
    history, model, _ = run(wide, callbacks=[seen])
    assert seen.strides == [(1, 100)] * 3  # stored as its transpose while it trained
    assert all(p.is_contiguous() for p in model.parameters())
    assert history["loss"][-1] < history["loss"][0]
    assert_same_run(run(wide)[:2] + (None,), run(wide, fused=False)[:2] + (None,))  # autograd's run, to rounding


@pytest.mark.parametrize("settings", [{"threads": 1}, {"batch_size": 128}, {"fused": False},
                                      {"optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9}},
                                      {"optimizer": {"name": "adam", "lr": 1e-3}}],
                         ids=["one thread", "batch of 128", "autograd step", "momentum", "adam"])
def test_other_fits_leave_the_layout_alone(wide, settings):
    seen = Layouts()
    run(wide, callbacks=[seen], **settings)
    assert seen.strides == [(256, 1)] * 3


def test_a_fit_that_fails_leaves_the_weights_contiguous(wide):
    x, y, _, _ = wide
    model = tw.build_model(LAYERS, input_shape=(16, 16))
    trainer = tw.Trainer(model, optimizer={"name": "sgd", "lr": 0.05}, seed=0, threads=2, callbacks=[KillAt(7)])
    with pytest.raises(Interrupt):
        trainer.fit(x, y, epochs=1, batch_size=32, verbose=False)
    assert trainer.step == 7 and all(p.is_contiguous() for p in model.parameters())


def test_an_interrupted_fit_resumes_to_the_same_bits(wide, tmp_path):
    whole = run(wide)
    with pytest.raises(Interrupt):
        run(wide, callbacks=[KillAt(33)], resume_dir=tmp_path, save_every_steps=5)
    resumed = run(wide, callbacks=[KillAt(-1)], resume_dir=tmp_path, save_every_steps=5)
    assert resumed[0]["loss"] == whole[0]["loss"]
    for a, b in zip(resumed[1].parameters(), whole[1].parameters()):
        assert torch.equal(a, b) and a.is_contiguous()


def test_the_callbacks_that_read_or_load_weights_work_on_them_by_column(wide, tmp_path):
    """Diagnostics' autograd steps, a Checkpoint's model files and EarlyStopping's restored best weights."""
    from trainwell.callbacks import Checkpoint, EarlyStopping
    from trainwell.doctor.record import Diagnostics

    def callbacks(folder):
        return [Diagnostics(every=7), Checkpoint(folder), EarlyStopping(patience=1, restore_best_weights=True)]

    fused = run(wide, callbacks=callbacks(tmp_path / "fused"))
    standard = run(wide, fused=False, callbacks=callbacks(tmp_path / "standard"))
    assert_same_run(fused[:2] + (None,), standard[:2] + (None,))
    saved = sorted((tmp_path / "fused").rglob("*.safetensors"))
    assert saved, "no checkpoint written"
    loaded = tw.load_model(saved[-1])
    assert all(p.is_contiguous() for p in loaded.parameters())

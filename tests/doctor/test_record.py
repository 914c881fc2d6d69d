"""The Diagnostics callback: what it records, when, and that it leaves the model untouched."""

import json

import pytest
import helpers
import torch
from torch import nn

import trainwell as tw
from trainwell.callbacks import Callback
from trainwell.doctor.record import Diagnostics, Recording, find_layers


def data(n=64, features=6, classes=3):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, features, generator=g)
    return x, (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()


def fit(model, recorder, *, epochs=1, batch_size=8, lr=0.1, **kwargs):
    x, y = data()
    trainer = tw.Trainer(model, optimizer={"name": "sgd", "lr": lr}, callbacks=[recorder], seed=0, **kwargs)
    trainer.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=False, shuffle=False)
    return trainer


def small_model(activation="relu", **dense):  # 6 inputs, two hidden layers; not reseeded
    return helpers.small_model(tw.Dense(16, activation=activation, **dense), tw.Dense(8, activation=activation, **dense),
                               input_shape=(6,), seed=None)


def test_records_every_n_steps_only():
    recorder = Diagnostics(every=5)
    fit(small_model(), recorder, epochs=2)  # 16 steps
    assert recorder.recording.steps == [0, 5, 10, 15]
    assert [s.epoch for s in recorder.recording.samples] == [1, 1, 2, 2]


def test_hooks_are_attached_only_on_recorded_steps():
    model = small_model()
    seen = []

    class Spy(Callback):
        def on_batch_end(self, trainer, step):  # runs after Diagnostics removed its hooks
            seen.append(sum(len(m._forward_hooks) for m in model.modules()))

    recorder = Diagnostics(every=4)
    x, y = data()
    tw.Trainer(model, optimizer="sgd", callbacks=[recorder, Spy()], seed=0).fit(x, y, batch_size=8, verbose=False)
    assert seen == [0] * 8
    assert not model[0].weight._backward_hooks  # the gradient hooks are gone too


def test_statistics_match_a_hand_computation():
    model = small_model()
    reference = small_model()
    reference.load_state_dict(model.state_dict())
    x, y = data()
    recorder = Diagnostics(every=1)
    fit(model, recorder, batch_size=64, lr=0.1)  # one step on the whole batch
    stats = recorder.recording.samples[0].layers

    hidden = reference[0](x)
    loss = nn.functional.cross_entropy(reference[2].forward_logits(reference[1](hidden)), y)
    loss.backward()
    g = reference[0].weight.grad
    assert stats["dense_1"]["mean"] == pytest.approx(hidden.mean().item(), rel=1e-5)
    assert stats["dense_1"]["std"] == pytest.approx(hidden.std().item(), rel=1e-5)
    assert stats["dense_1"]["dead"] == pytest.approx((hidden == 0).all(dim=0).float().mean().item())
    assert stats["dense_1"]["grad_norm"] == pytest.approx(g.norm().item(), rel=1e-5)
    assert stats["dense_1"]["grad_rms"] == pytest.approx(g.norm().item() / g.numel() ** 0.5, rel=1e-5)
    # plain SGD: the update is lr * gradient
    expected = 0.1 * g.norm().item() / reference[0].weight.detach().norm().item()
    assert stats["dense_1"]["update_ratio"] == pytest.approx(expected, rel=1e-4)
    assert recorder.recording.samples[0].loss == pytest.approx(loss.item(), rel=1e-5)
    assert recorder.recording.samples[0].input_mean == pytest.approx(x.mean().item(), rel=1e-5)


def test_gradients_are_recorded_before_clipping():
    recorder = Diagnostics(every=1)
    fit(small_model(), recorder, global_clipnorm=1e-4)
    norms = [s.layers["dense_1"]["grad_norm"] for s in recorder.recording.samples]
    assert min(norms) > 1e-3


def test_dead_relus_are_counted():
    recorder = Diagnostics(every=2)
    fit(small_model(bias_init={"name": "constant", "value": -20.0}), recorder)
    assert recorder.recording.profile("dead")[:2] == [1.0, 1.0]


def test_saturated_sigmoids_are_counted():
    recorder = Diagnostics(every=2)
    fit(small_model("sigmoid", init={"name": "random_normal", "stddev": 10.0}), recorder)
    saturated = recorder.recording.profile("saturated")
    assert saturated[0] > 0.5 and saturated[2] is None  # softmax is not a saturating activation here
    assert recorder.recording.profile("dead")[0] is None


def test_plain_pytorch_modules_work_by_hooks():
    model = nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.Tanh(), nn.Dropout(0.1), nn.Linear(16, 8),
                          nn.ReLU(), nn.Linear(8, 3))
    assert [(name, kind) for name, _, _, kind in find_layers(model)] == [("0", "tanh"), ("4", "relu"), ("6", "linear")]
    recorder = Diagnostics(every=3)
    fit(model, recorder)
    recording = recorder.recording
    assert [layer.name for layer in recording.layers] == ["0", "4", "6"]
    first = recording.samples[0].layers
    assert -1 <= first["0"]["mean"] <= 1 and first["0"]["saturated"] is not None
    assert first["4"]["dead"] is not None and first["6"]["grad_norm"] > 0


def test_trainwell_dense_is_recorded_after_its_activation():
    recorder = Diagnostics(every=1)
    fit(small_model(), recorder)
    assert [(l.name, l.activation) for l in recorder.recording.layers] == [
        ("dense_1", "relu"), ("dense_2", "relu"), ("dense_3", "softmax")]
    assert recorder.recording.samples[0].layers["dense_1"]["mean"] >= 0  # post-ReLU


def test_recording_round_trips_through_json(tmp_path):
    recorder = Diagnostics(every=4)
    fit(small_model(), recorder)
    path = tmp_path / "recording.json"
    recorder.recording.to_json(path)
    again = Recording.from_dict(json.loads(path.read_text()))
    assert again == recorder.recording


def test_bad_every_is_a_config_error():
    with pytest.raises(tw.ConfigError, match="diagnostics.every"):
        Diagnostics(every=0)


def test_recorded_steps_ask_for_the_autograd_step_and_only_they():
    """Diagnostics says through the Callback API which steps need autograd, rather than being found by its hooks."""
    recorder = Diagnostics(every=3)
    asked = []

    class Spy(Callback):
        def on_batch_begin(self, trainer, step):  # after Diagnostics' own on_batch_begin
            asked.append(recorder.needs_autograd(trainer, step))

    x, y = data()
    trainer = tw.Trainer(small_model(), optimizer={"name": "sgd", "lr": 0.1}, callbacks=[recorder, Spy()], seed=0)
    trainer.fit(x, y, epochs=1, batch_size=8, verbose=False, shuffle=False)
    assert asked == [step % 3 == 0 for step in range(8)]


def test_records_a_cnns_convolutions_per_channel():
    from helpers import digit_images, small_cnn

    model = small_cnn(seed=0)
    recorder = Diagnostics(every=2)
    x, y = digit_images(128)
    tw.Trainer(model, optimizer={"name": "sgd", "lr": 0.1}, callbacks=[recorder], seed=0).fit(
        x, y, batch_size=32, verbose=False, shuffle=False)
    layers = recorder.recording.layers
    assert [(layer.name, layer.activation, layer.weights) for layer in layers] == [
        ("conv2d_1", "relu", 8 * 9), ("conv2d_2", "relu", 8 * 8 * 9), ("dense_1", "softmax", 8 * 4 * 4 * 10)]
    assert recorder.recording.steps == [0, 2]
    first = recorder.recording.samples[0].layers["conv2d_1"]
    assert all(first[stat] is not None for stat in ("mean", "std", "dead", "grad_norm", "backward_rms",
                                                     "update_ratio"))
    # "dead" is per channel: a channel whose ReLU output is zero at every position of every image
    reference = small_cnn(seed=0)
    activation = torch.relu(reference.batch_normalization_1(reference.conv2d_1(x[:32])))
    dead = (activation.transpose(0, 1).reshape(8, -1) == 0).all(dim=1).float().mean().item()
    assert first["dead"] == pytest.approx(dead)
    assert first["mean"] == pytest.approx(activation.mean().item(), rel=1e-4)

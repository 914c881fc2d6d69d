"""Mixed precision: bf16 trains on the CPU with float32 weights, close to float32; fp16 needs CUDA (a GradScaler)."""

import numpy as np
import pytest
import torch

import trainwell as tw
from helpers import Interrupt, KillAtEpoch

from trainwell.errors import ConfigError
from trainwell.train.precision import Precision


def digits():
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return (x[:600] / 16).astype(np.float32), y[:600]


def model(seed=0):
    torch.manual_seed(seed)
    return tw.build_model([tw.Dense(32, activation="elu"), tw.BatchNormalization(), tw.Dense(10, activation="softmax")],
                          input_shape=(64,))


def fit(precision, *, epochs=3, callbacks=(), device=None, **options):
    x, y = digits()
    trainer = tw.Trainer(model(), optimizer={"name": "adam", "lr": 0.01}, seed=0, precision=precision,
                         callbacks=callbacks, device=device)
    history = trainer.fit(x, y, epochs=epochs, validation_data=(x[:200], y[:200]), verbose=False, **options)
    return trainer, history


def test_a_bf16_fit_trains_with_float32_weights_close_to_float32():
    full, full_history = fit("32")
    half, half_history = fit("bf16")
    losses = half_history["loss"]
    assert losses[-1] < losses[0] * 0.5 and half_history.last["val_accuracy"] > 0.85
    assert {p.dtype for p in half.model.parameters()} == {torch.float32}
    assert {b.dtype for b in half.model.buffers() if b.is_floating_point()} == {torch.float32}
    assert losses != full_history["loss"]  # bfloat16 products round differently...
    assert np.allclose(losses, full_history["loss"], rtol=0.05)  # ...but train the same way
    assert abs(half_history.last["val_accuracy"] - full_history.last["val_accuracy"]) < 0.05


def test_the_fused_step_steps_aside_for_mixed_precision_and_says_why():
    x, _ = digits()
    assert tw.why_not_fused(tw.Trainer(model(), optimizer="sgd")) is None
    trainer = tw.Trainer(model(), optimizer="sgd", precision="bf16")
    assert tw.why_not_fused(trainer) == "precision bf16: the fused step runs in float32"


def test_evaluation_and_prediction_stay_float32():
    trainer, _ = fit("bf16", epochs=1)
    x, y = digits()
    plain = tw.Trainer(trainer.model, precision="32")
    assert trainer.evaluate(x, y) == plain.evaluate(x, y)
    assert torch.equal(trainer.predict(x), plain.predict(x)) and trainer.predict(x).dtype == torch.float32




def test_a_bf16_fit_resumes_to_the_uninterrupted_weights(tmp_path):
    whole, _ = fit("bf16", callbacks=[KillAtEpoch(0)], resume_dir=tmp_path / "whole")
    with pytest.raises(Interrupt):
        fit("bf16", callbacks=[KillAtEpoch(3)], resume_dir=tmp_path / "killed")
    resumed, history = fit("bf16", callbacks=[KillAtEpoch(0)], resume_dir=tmp_path / "killed")
    assert len(history) == 3
    state, expected = resumed.model.state_dict(), whole.model.state_dict()
    assert all(torch.equal(state[k], expected[k]) for k in expected)


@pytest.mark.parametrize("precision, message", [
    ("fp16", "'fp16' trains on CUDA only (with a GradScaler), and this fit runs on cpu; use precision 'bf16' on the CPU"),
    ("16", "allowed: '32', 'bf16', 'fp16'"),
    (32, "allowed: '32', 'bf16', 'fp16'"),
])
def test_a_precision_the_device_cannot_train_in_is_one_clear_error(precision, message):
    with pytest.raises(ConfigError) as error:
        tw.Trainer(model(), precision=precision, device="cpu")
    assert message in str(error.value)


def test_precision_from_a_config(tmp_path):
    from helpers import digits_config
    from trainwell.config import validate_config
    from trainwell.recipes.train import train_config

    config = digits_config().to_dict()
    config["train"]["precision"] = "bf16"
    result = train_config(validate_config(config), verbose=False, save=False)
    assert result.metrics["val_accuracy"] > 0.8
    config["train"]["precision"] = "fp8"
    with pytest.raises(ConfigError, match="'train.precision' = 'fp8': must be '32', 'bf16' or 'fp16'"):
        validate_config(config)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="fp16 with a GradScaler trains on CUDA only, and this "
                                                          "machine has no CUDA device")
def test_an_fp16_fit_on_cuda_scales_the_loss_and_trains():
    trainer, history = fit("fp16", device="cuda", epochs=3)
    assert isinstance(trainer.mixed_precision, Precision) and trainer.mixed_precision.scaler is not None
    assert trainer.mixed_precision.scaler.get_scale() > 0
    assert history["loss"][-1] < history["loss"][0] * 0.5 and history.last["val_accuracy"] > 0.85
    assert {p.dtype for p in trainer.model.parameters()} == {torch.float32}
    clipped, clipped_history = fit("fp16", device="cuda", epochs=1)
    assert np.isfinite(clipped_history.last["loss"])
    with_clipping = tw.Trainer(model(), optimizer={"name": "sgd", "lr": 0.05}, precision="fp16", device="cuda",
                               clipnorm=1.0, seed=0)
    x, y = digits()
    assert np.isfinite(with_clipping.fit(x, y, epochs=1, verbose=False).last["loss"])

"""trainwell's BatchNormalization keeps its moving statistics as Keras does, on either step path.

Keras (tf.keras 2 for dense inputs, and Keras 3) updates
``moving = momentum * moving + (1 - momentum) * batch_statistic`` with the *biased* batch
variance; PyTorch's BatchNorm1d uses the unbiased one. The reference below is a numpy
transcription of Keras' update.
"""

import numpy as np
import pytest
import torch
from torch import nn

import trainwell as tw
from trainwell.train.step import fused_step

FEATURES = 6


def keras_moving_statistics(batches, *, momentum=0.99):
    """Keras' BatchNormalization update, batch by batch, in float64."""
    moving_mean, moving_variance = np.zeros(FEATURES), np.ones(FEATURES)
    for x in batches:
        moving_mean = moving_mean * momentum + x.mean(axis=0) * (1 - momentum)
        moving_variance = moving_variance * momentum + x.var(axis=0) * (1 - momentum)  # ddof=0: biased
    return moving_mean, moving_variance


def keras_inference(x, moving_mean, moving_variance, gamma, beta, *, epsilon=1e-3):
    return (x - moving_mean) / np.sqrt(moving_variance + epsilon) * gamma + beta


@pytest.fixture(scope="module")
def batches():
    """20 batches of 32 with means and scales that differ per feature (as the chapter's 32-image batches)."""
    rng = np.random.default_rng(0)
    scale = np.array([0.1, 0.5, 1.0, 2.0, 5.0, 0.02])
    shift = np.array([0.0, 1.0, -3.0, 0.5, 10.0, 0.1])
    return [(rng.standard_normal((32, FEATURES)) * scale + shift).astype(np.float32) for _ in range(20)]


def trained_model(batches, path):
    """A BatchNormalization (first, so its inputs are the data) under a softmax layer, trained on ``batches``."""
    tw.seed_everything(0)
    model = tw.build_model([tw.BatchNormalization(), tw.Dense(3, activation="softmax")], input_shape=(FEATURES,))
    trainer = tw.Trainer(model, optimizer={"name": "sgd", "lr": 0.1}, seed=0)
    step = fused_step(trainer, trainer.forward_logits)
    assert step is not None
    model.train()
    for x in batches:
        x = torch.from_numpy(x)
        y = (x[:, 0] > 0).long()
        if path == "fused":
            step(x, y)
        else:
            trainer.optimizer.zero_grad()
            torch.nn.functional.cross_entropy(trainer.forward_logits(x), y).backward()
            trainer.optimizer.step()
    return model


@pytest.mark.parametrize("path", ["autograd", "fused"])
def test_moving_statistics_and_inference_are_keras(batches, path):
    model = trained_model(batches, path)
    bn = model[0]
    moving_mean, moving_variance = keras_moving_statistics(batches)
    np.testing.assert_allclose(bn.running_mean.numpy(), moving_mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bn.running_var.numpy(), moving_variance, rtol=1e-5)
    assert bn.num_batches_tracked.item() == len(batches)

    model.eval()
    x = batches[0]
    with torch.no_grad():
        out = bn(torch.from_numpy(x)).numpy()
    expected = keras_inference(x, moving_mean, moving_variance, bn.weight.detach().numpy(), bn.bias.detach().numpy())
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_training_output_and_gradient_stay_batch_normalizations(batches):
    """Only the moving statistics changed: the training-mode output and gradients are F.batch_norm's."""
    bn = tw.BatchNormalization().build((FEATURES,))[0]
    with torch.no_grad():
        bn.weight.copy_(torch.linspace(0.5, 2.0, FEATURES))
        bn.bias.copy_(torch.linspace(-1.0, 1.0, FEATURES))
    x = torch.from_numpy(batches[1]).requires_grad_()
    reference_x = x.detach().clone().requires_grad_()
    out = bn(x)
    reference = torch.nn.functional.batch_norm(reference_x, None, None, bn.weight, bn.bias, True, 0.0, 1e-3)
    torch.testing.assert_close(out, reference)
    weights = torch.linspace(-1, 1, out.numel()).reshape(out.shape)
    gx, gw, gb = torch.autograd.grad((out * weights).sum(), (x, bn.weight, bn.bias))
    rx, rw, rb = torch.autograd.grad((reference * weights).sum(), (reference_x, bn.weight, bn.bias))
    torch.testing.assert_close((gx, gw, gb), (rx, rw, rb))


def test_rank_3_inputs_are_normalized_per_feature_of_the_last_axis(batches):
    bn = tw.BatchNormalization().build((4, FEATURES))[0]
    stacked = [np.stack([x[:8], x[8:16], x[16:24], x[24:]], axis=1) for x in batches[:5]]  # (8, 4, FEATURES)
    bn.train()
    for x in stacked:
        bn(torch.from_numpy(x))
    moving_mean, moving_variance = keras_moving_statistics([x.reshape(-1, FEATURES) for x in stacked])
    np.testing.assert_allclose(bn.running_var.numpy(), moving_variance, rtol=1e-5)
    np.testing.assert_allclose(bn.running_mean.numpy(), moving_mean, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("path", ["autograd", "fused"])
def test_a_plain_torch_batchnorm1d_keeps_pytorchs_unbiased_update(batches, path):
    tw.seed_everything(0)
    model = nn.Sequential(nn.BatchNorm1d(FEATURES, momentum=0.01, eps=1e-3), nn.Linear(FEATURES, 3))
    trainer = tw.Trainer(model, optimizer={"name": "sgd", "lr": 0.1}, seed=0)
    step = fused_step(trainer, trainer.forward_logits)
    model.train()
    for x in batches:
        x = torch.from_numpy(x)
        if path == "fused":
            step(x, (x[:, 0] > 0).long())
        else:
            model(x)
    unbiased = np.ones(FEATURES)
    for x in batches:
        unbiased = unbiased * 0.99 + x.var(axis=0, ddof=1) * 0.01
    np.testing.assert_allclose(model[0].running_var.numpy(), unbiased, rtol=1e-5)


def test_cumulative_average_when_momentum_is_none(batches):
    """PyTorch's momentum=None (a plain average over all batches) keeps its meaning, with the biased variance."""
    from trainwell.model.modules import BatchNorm

    bn = BatchNorm(FEATURES, momentum=None)
    bn.train()
    for x in batches[:4]:
        bn(torch.from_numpy(x))
    np.testing.assert_allclose(bn.running_var.numpy(), np.mean([x.var(axis=0) for x in batches[:4]], axis=0),
                               rtol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_the_kept_scaled_eps_subtracts_the_same_number_as_a_python_float(dtype):
    from trainwell.model.modules import BatchNorm

    layer = BatchNorm(FEATURES, momentum=None).to(dtype)  # momentum None: the factor changes every batch
    generator = torch.Generator().manual_seed(0)
    reference_var = layer.running_var.clone()
    for _ in range(5):
        factor = layer.count_batch()
        mean = torch.randn(FEATURES, generator=generator).to(dtype)
        invstd = (torch.rand(FEATURES, generator=generator) + 0.5).to(dtype)
        layer.update_moving_statistics(mean, invstd, factor)
        reference_var.lerp_(invstd.pow(-2), factor).sub_(factor * layer.eps)  # the update with a Python float
        assert torch.equal(layer.running_var, reference_var)

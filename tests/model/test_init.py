"""Tests for trainwell.model.init: Keras' initializers, checked against their closed forms."""

import math

import pytest
import torch
from torch import nn

from trainwell.model import init
from trainwell.errors import ConfigError

# A non-square weight so that fan_in (2000), fan_out (500) and fan_avg (1250) differ
# by more than the tolerance: a wrong mode would fail.
OUT, IN = 500, 2000
FAN = {"fan_in": IN, "fan_out": OUT, "fan_avg": (IN + OUT) / 2}
REL_TOL = 0.02  # the std of 10^6 draws is known to ~0.1%; modes differ by >= 26%


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _weight():
    return torch.empty(OUT, IN)


def _truncated_std(cut: float) -> float:
    """Std of a standard normal truncated to [-cut, cut], from its closed form."""
    pdf = math.exp(-cut * cut / 2) / math.sqrt(2 * math.pi)
    mass = math.erf(cut / math.sqrt(2))
    return math.sqrt(1 - 2 * cut * pdf / mass)


def test_keras_correction_constant_is_std_of_normal_truncated_at_two():
    assert init.TRUNCATED_NORMAL_STD_CORRECTION == pytest.approx(_truncated_std(2.0), abs=1e-15)


@pytest.mark.parametrize("shape", [(300, 784), (64, 3, 5, 5), (16, 8, 3), (7, 2, 3, 3, 3)])
def test_fans_match_pytorch(shape):
    expected = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
    assert init.fans(torch.empty(shape)) == expected


def test_fans_of_linear_weight_are_in_then_out():
    layer = nn.Linear(784, 300)
    assert init.fans(layer.weight) == (784, 300)


@pytest.mark.parametrize("mode", init.MODES)
@pytest.mark.parametrize("scale", [1.0, 2.0])
def test_variance_scaling_truncated_normal(mode, scale):
    w = init.variance_scaling(_weight(), scale=scale, mode=mode, distribution="truncated_normal")
    std = math.sqrt(scale / FAN[mode])
    bound = 2 * std / init.TRUNCATED_NORMAL_STD_CORRECTION
    # The corrected draws really have variance scale / n (without the correction
    # the std would be 12% too small).
    assert w.std().item() == pytest.approx(std, rel=REL_TOL)
    assert abs(w.mean().item()) < 0.01 * std
    # Cut at exactly 2 stddev of the underlying normal: nothing beyond, plenty close.
    assert w.abs().max().item() <= bound * (1 + 1e-6)
    assert w.abs().max().item() > 0.99 * bound


@pytest.mark.parametrize("mode", init.MODES)
def test_variance_scaling_untruncated_normal(mode):
    w = init.variance_scaling(_weight(), scale=2.0, mode=mode, distribution="untruncated_normal")
    std = math.sqrt(2.0 / FAN[mode])
    assert w.std().item() == pytest.approx(std, rel=REL_TOL)
    # 10^6 untruncated draws go well past 2 stddev.
    assert w.abs().max().item() > 4 * std


@pytest.mark.parametrize("mode", init.MODES)
@pytest.mark.parametrize("scale", [1.0, 3.0])
def test_variance_scaling_uniform(mode, scale):
    w = init.variance_scaling(_weight(), scale=scale, mode=mode, distribution="uniform")
    limit = math.sqrt(3 * scale / FAN[mode])
    assert w.min().item() >= -limit
    assert w.max().item() <= limit
    assert w.min().item() < -0.999 * limit
    assert w.max().item() > 0.999 * limit
    assert w.std().item() == pytest.approx(limit / math.sqrt(3), rel=REL_TOL)


@pytest.mark.parametrize(
    "name, scale, mode, truncated",
    [
        ("glorot_normal", 1.0, "fan_avg", True),
        ("glorot_uniform", 1.0, "fan_avg", False),
        ("he_normal", 2.0, "fan_in", True),
        ("he_uniform", 2.0, "fan_in", False),
        ("lecun_normal", 1.0, "fan_in", True),
        ("lecun_uniform", 1.0, "fan_in", False),
    ],
)
def test_named_variance_scaling_initializers(name, scale, mode, truncated):
    w = getattr(init, name)(_weight())
    std = math.sqrt(scale / FAN[mode])
    assert w.std().item() == pytest.approx(std, rel=REL_TOL)
    if truncated:  # Keras' *_normal are truncated at 2 (corrected) stddev
        assert w.abs().max().item() <= 2 * std / init.TRUNCATED_NORMAL_STD_CORRECTION * (1 + 1e-6)
    else:
        assert w.abs().max().item() <= math.sqrt(3) * std


def test_he_normal_on_a_linear_layer():
    layer = nn.Linear(1000, 1000)
    init.get_initializer("he_normal")(layer.weight)
    assert layer.weight.std().item() == pytest.approx(math.sqrt(2 / 1000), rel=REL_TOL)
    assert layer.weight.requires_grad and layer.weight.grad_fn is None


def test_random_normal_keras_defaults():
    w = init.random_normal(torch.empty(1000, 1000))
    assert w.std().item() == pytest.approx(0.05, rel=REL_TOL)
    assert abs(w.mean().item()) < 0.001


def test_random_normal_arguments():
    w = init.random_normal(torch.empty(1000, 1000), mean=3.0, stddev=0.5)
    assert w.mean().item() == pytest.approx(3.0, abs=0.01)
    assert w.std().item() == pytest.approx(0.5, rel=REL_TOL)


def test_random_uniform_keras_defaults():
    w = init.random_uniform(torch.empty(1000, 1000))
    assert -0.05 <= w.min().item() < -0.0499
    assert 0.0499 < w.max().item() <= 0.05


def test_random_uniform_arguments():
    w = init.random_uniform(torch.empty(1000, 1000), minval=1.0, maxval=3.0)
    assert 1.0 <= w.min().item() < 1.001 and 2.999 < w.max().item() <= 3.0
    assert w.mean().item() == pytest.approx(2.0, abs=0.01)


def test_truncated_normal_keras_defaults_cut_at_two_stddev_without_correction():
    w = init.truncated_normal(torch.empty(1000, 1000))
    assert w.abs().max().item() <= 0.1 * (1 + 1e-6)
    assert w.abs().max().item() > 0.099
    # Keras' TruncatedNormal: stddev is that of the normal before cutting.
    assert w.std().item() == pytest.approx(0.05 * _truncated_std(2.0), rel=REL_TOL)


def test_truncated_normal_cuts_around_the_mean():
    w = init.truncated_normal(torch.empty(1000, 1000), mean=1.0, stddev=0.5)
    assert w.min().item() >= 0.0 and w.max().item() <= 2.0
    assert w.mean().item() == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize("shape", [(100, 300), (300, 100), (200, 200)])
def test_orthogonal(shape):
    w = init.orthogonal(torch.empty(shape))
    small = min(shape)
    gram = w @ w.T if shape[0] <= shape[1] else w.T @ w
    assert torch.allclose(gram, torch.eye(small), atol=1e-5)


def test_orthogonal_gain_and_conv_weights():
    w = init.orthogonal(torch.empty(100, 200), gain=2.0)
    assert torch.allclose(w @ w.T, 4 * torch.eye(100), atol=1e-4)
    k = init.orthogonal(torch.empty(16, 4, 3, 3)).reshape(16, -1)
    assert torch.allclose(k @ k.T, torch.eye(16), atol=1e-5)


def test_orthogonal_differs_from_identity():
    w = init.orthogonal(torch.empty(50, 50))
    assert not torch.allclose(w, torch.eye(50), atol=0.1)


def test_identity():
    assert torch.equal(init.identity(torch.empty(4, 4)), torch.eye(4))
    assert torch.equal(init.identity(torch.empty(3, 3), gain=2.5), 2.5 * torch.eye(3))
    assert torch.equal(init.identity(torch.empty(2, 3)), torch.eye(2, 3))


def test_identity_needs_a_matrix():
    with pytest.raises(ConfigError, match="2-D"):
        init.identity(torch.empty(2, 2, 2))


def test_constants():
    assert torch.equal(init.zeros(torch.randn(3, 4)), torch.zeros(3, 4))
    assert torch.equal(init.ones(torch.randn(3, 4)), torch.ones(3, 4))
    assert torch.equal(init.constant(torch.randn(5), value=0.1), torch.full((5,), 0.1))
    assert torch.equal(init.constant(torch.randn(5)), torch.zeros(5))  # Keras' default 0


def test_initializers_fill_in_place_and_return_the_tensor():
    for name in init.initializer_names():
        t = torch.empty(6, 6)
        assert init.get_initializer(name)(t) is t, name


def test_initializer_names():
    assert init.initializer_names() == sorted([
        "constant", "glorot_normal", "glorot_uniform", "he_normal", "he_uniform",
        "identity", "lecun_normal", "lecun_uniform", "ones", "orthogonal",
        "random_normal", "random_uniform", "truncated_normal", "variance_scaling", "zeros",
    ])


def test_get_initializer_from_dict():
    spec = {"name": "variance_scaling", "scale": 2.0, "mode": "fan_avg", "distribution": "uniform"}
    w = init.get_initializer(spec)(_weight())
    limit = math.sqrt(3 * 2.0 / FAN["fan_avg"])
    assert w.abs().max().item() <= limit
    assert w.std().item() == pytest.approx(limit / math.sqrt(3), rel=REL_TOL)
    assert spec == {"name": "variance_scaling", "scale": 2.0, "mode": "fan_avg",
                    "distribution": "uniform"}  # not consumed


def test_get_initializer_returns_callables_as_is():
    def fill(t):
        return t.fill_(7.0)

    assert init.get_initializer(fill) is fill
    assert init.get_initializer(torch.nn.init.zeros_) is torch.nn.init.zeros_


def test_get_initializer_works_on_parameters_outside_no_grad():
    p = nn.Parameter(torch.empty(3, 3))
    out = init.get_initializer("identity")(p)
    assert out is p and p.requires_grad and p.grad_fn is None
    assert torch.equal(p.detach(), torch.eye(3))


def test_get_initializer_is_reproducible_under_a_seed():
    a = init.get_initializer("he_normal")(torch.empty(10, 10))
    torch.manual_seed(0)
    b = init.get_initializer("he_normal")(torch.empty(10, 10))
    assert torch.equal(a, b)


# ----------------------------------------------------------------------- errors


def test_unknown_name_lists_allowed():
    with pytest.raises(ConfigError) as err:
        init.get_initializer("he_norml")
    msg = str(err.value)
    assert "unknown initializer 'he_norml'" in msg
    assert "allowed: constant, glorot_normal, glorot_uniform, he_normal" in msg
    assert isinstance(err.value, ValueError)


def test_bad_mode_lists_allowed_at_lookup_time():
    with pytest.raises(ConfigError, match="mode 'fan_mean'; allowed: fan_in, fan_out, fan_avg"):
        init.get_initializer({"name": "variance_scaling", "mode": "fan_mean"})


def test_bad_distribution_lists_allowed_at_lookup_time():
    with pytest.raises(
        ConfigError,
        match="distribution 'normal'; allowed: truncated_normal, untruncated_normal, uniform",
    ):
        init.get_initializer({"name": "variance_scaling", "distribution": "normal"})


def test_bad_arguments_fail_direct_calls_too():
    with pytest.raises(ConfigError, match="mode"):
        init.variance_scaling(torch.empty(2, 2), mode="avg")
    with pytest.raises(ConfigError, match="scale must be > 0"):
        init.variance_scaling(torch.empty(2, 2), scale=0.0)


def test_unknown_argument_is_an_error():
    with pytest.raises(ConfigError, match="unknown argument 'seed' for initializer 'orthogonal'; allowed: gain"):
        init.get_initializer({"name": "orthogonal", "seed": 3})


def test_argument_for_initializer_without_arguments():
    with pytest.raises(ConfigError, match="'he_normal'; allowed: none"):
        init.get_initializer({"name": "he_normal", "scale": 3.0})


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"name": "variance_scaling", "scale": -1.0}, "scale must be > 0"),
        ({"name": "variance_scaling", "scale": "2"}, "scale must be a finite number"),
        ({"name": "constant", "value": None}, "value must be a finite number"),
        ({"name": "random_normal", "stddev": -0.1}, "stddev must be >= 0"),
        ({"name": "truncated_normal", "stddev": 0.0}, "stddev must be > 0"),
        ({"name": "random_uniform", "minval": 1.0, "maxval": 0.0}, "minval must be <= maxval"),
        ({"name": "orthogonal", "gain": True}, "gain must be a finite number"),
        ({"name": "identity", "gain": float("nan")}, "gain must be a finite number"),
        ({"scale": 2.0}, "needs a 'name' key; allowed names: constant"),
        ({"name": 3}, "'name' must be a string"),
    ],
)
def test_bad_specs(spec, message):
    with pytest.raises(ConfigError, match=message):
        init.get_initializer(spec)


def test_spec_of_wrong_type():
    with pytest.raises(ConfigError, match="a name, a dict with 'name' or a callable, got int"):
        init.get_initializer(42)


def test_conv_kernels_use_keras_fans():
    # Keras' fans of a (kh, kw, in, filters) kernel: fan_in = kh * kw * in, fan_out = kh * kw * filters; PyTorch's
    # (filters, in, kh, kw) weight gets the same through the receptive field.
    from trainwell.model.conv_specs import Conv2D
    from trainwell.model.layers import build_model

    weight = build_model([Conv2D(64, 3)], input_shape=(32, 10, 10)).conv2d_1.weight.detach()  # glorot_uniform
    assert init.fans(weight) == (3 * 3 * 32, 3 * 3 * 64)
    limit = math.sqrt(6 / (3 * 3 * 32 + 3 * 3 * 64))
    assert weight.abs().max().item() <= limit and weight.abs().max().item() > 0.99 * limit
    assert weight.std().item() == pytest.approx(limit / math.sqrt(3), rel=0.03)
    he = build_model([Conv2D(64, [3, 5], init="he_normal")], input_shape=(32, 10, 10)).conv2d_1.weight.detach()
    assert he.std().item() == pytest.approx(math.sqrt(2 / (3 * 5 * 32)), rel=0.03)

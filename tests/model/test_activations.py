"""Tests for trainwell.model.activations: formulas, Keras defaults, modules, names, SELU."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell.model import activations as A
from trainwell.errors import ConfigError
from trainwell.model.init import glorot_normal, he_normal, lecun_normal

X = torch.linspace(-6.0, 6.0, 241, dtype=torch.float64)

# Constants as printed in Klambauer et al. (2017), 30+ digits.
PAPER_ALPHA = 1.6732632423543772848170429916717
PAPER_SCALE = 1.0507009873554804934193349852946


def _sigmoid(x):
    return 1 / (1 + torch.exp(-x))


def _elu(x, alpha):
    return torch.where(x > 0, x, alpha * (torch.exp(x) - 1))


def _phi(x):  # standard normal CDF
    return 0.5 * (1 + torch.erf(x / math.sqrt(2)))


FORMULAS = [
    ("sigmoid", {}, _sigmoid),
    ("tanh", {}, lambda x: (torch.exp(x) - torch.exp(-x)) / (torch.exp(x) + torch.exp(-x))),
    ("relu", {}, lambda x: torch.where(x > 0, x, 0 * x)),
    ("leaky_relu", {}, lambda x: torch.where(x > 0, x, 0.3 * x)),
    ("leaky_relu", {"alpha": 0.2}, lambda x: torch.where(x > 0, x, 0.2 * x)),
    ("prelu", {}, lambda x: torch.where(x > 0, x, 0.25 * x)),
    ("prelu", {"alpha": 0.0}, lambda x: torch.where(x > 0, x, 0 * x)),
    ("rrelu", {}, lambda x: torch.where(x > 0, x, (1 / 8 + 1 / 3) / 2 * x)),
    ("rrelu", {"lower": 0.1, "upper": 0.3}, lambda x: torch.where(x > 0, x, 0.2 * x)),
    ("elu", {}, lambda x: _elu(x, 1.0)),
    ("elu", {"alpha": 0.5}, lambda x: _elu(x, 0.5)),
    ("selu", {}, lambda x: PAPER_SCALE * _elu(x, PAPER_ALPHA)),
    ("selu", {"alpha": 2.0, "scale": 1.5}, lambda x: 1.5 * _elu(x, 2.0)),
    ("softplus", {}, lambda x: torch.log(1 + torch.exp(x))),
    ("softsign", {}, lambda x: x / (1 + x.abs())),
    ("hard_sigmoid", {}, lambda x: torch.clamp(x + 3, 0, 6) / 6),  # Keras 3: relu6(x+3)/6
    ("hard_sigmoid", {"slope": 0.2}, lambda x: torch.clamp(0.2 * x + 0.5, 0, 1)),  # Keras 2
    ("exponential", {}, torch.exp),
    ("linear", {}, lambda x: x),
    ("softmax", {}, lambda x: torch.exp(x) / torch.exp(x).sum()),
    ("gelu", {}, lambda x: x * _phi(x)),
    ("gelu", {"approximate": True},
     lambda x: 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))),
    ("swish", {}, lambda x: x * _sigmoid(x)),
    ("mish", {}, lambda x: x * torch.tanh(torch.log(1 + torch.exp(x)))),
]
FORMULA_IDS = [f"{n}{kw or ''}" for n, kw, _ in FORMULAS]


def _eval(module):
    return module.eval()  # rrelu: mean slope, like the functional form


@pytest.mark.parametrize("name, kwargs, formula", FORMULAS, ids=FORMULA_IDS)
def test_function_matches_formula(name, kwargs, formula):
    got = A.activation_function(name, **kwargs)(X)
    assert torch.allclose(got, formula(X), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name, kwargs, formula", FORMULAS, ids=FORMULA_IDS)
def test_module_matches_formula_and_function(name, kwargs, formula):
    module = _eval(A.get_activation(name, **kwargs)).double()
    with torch.no_grad():
        got = module(X)
    assert torch.allclose(got, formula(X), rtol=1e-9, atol=1e-12)
    assert torch.allclose(got, A.activation_function(name, **kwargs)(X), rtol=1e-12, atol=0)


def test_every_name_has_a_formula_test():
    assert {name for name, _, _ in FORMULAS} == set(A.activation_names())


def test_keras_defaults():
    assert A.activation_function("leaky_relu")(torch.tensor(-1.0)).item() == pytest.approx(-0.3)
    assert A.get_activation("leaky_relu").negative_slope == 0.3  # not PyTorch's 0.01
    assert A.get_activation("elu").alpha == 1.0


@pytest.mark.parametrize("alpha", [1.0, 0.5, 2.0])
def test_elu_plateau_is_minus_alpha(alpha):
    f = A.activation_function("elu", alpha=alpha)
    assert f(torch.tensor(-50.0, dtype=torch.float64)).item() == pytest.approx(-alpha, abs=1e-12)


def test_selu_negative_plateau():
    f = A.activation_function("selu")
    plateau = f(torch.tensor(-50.0, dtype=torch.float64)).item()
    assert plateau == pytest.approx(-1.7581, abs=1e-4)
    assert plateau == pytest.approx(-A.SELU_SCALE * A.SELU_ALPHA, abs=1e-12)


def test_softmax_is_over_the_last_axis():
    x = torch.randn(4, 3, 5, generator=torch.Generator().manual_seed(0))
    y = A.get_activation("softmax")(x)
    assert torch.allclose(y.sum(-1), torch.ones(4, 3))
    y0 = A.get_activation("softmax", axis=0)(x)
    assert torch.allclose(y0.sum(0), torch.ones(3, 5))


# ----------------------------------------------------------------------- SELU constants


def test_selu_constants_match_the_paper():
    alpha, scale = A.selu_constants()
    assert (alpha, scale) == (A.SELU_ALPHA, A.SELU_SCALE)
    assert alpha == pytest.approx(PAPER_ALPHA, abs=1e-12)
    assert scale == pytest.approx(PAPER_SCALE, abs=1e-12)


def test_selu_constants_match_torch():
    one = torch.tensor(1.0, dtype=torch.float64)
    scale = F.selu(one).item()
    alpha = -F.selu(torch.tensor(-100.0, dtype=torch.float64)).item() / scale
    assert A.SELU_SCALE == pytest.approx(scale, abs=1e-12)
    assert A.SELU_ALPHA == pytest.approx(alpha, abs=1e-12)


def test_selu_constants_give_the_fixed_point_mean_0_variance_1():
    # E[selu(z)] = 0 and E[selu(z)^2] = 1 for z ~ N(0, 1), by numerical integration.
    z = torch.linspace(-12, 12, 2_000_001, dtype=torch.float64)
    density = torch.exp(-z * z / 2) / math.sqrt(2 * math.pi)
    y = A.SELU_SCALE * _elu(z, A.SELU_ALPHA)
    mean = torch.trapezoid(y * density, z).item()
    second = torch.trapezoid(y * y * density, z).item()
    assert mean == pytest.approx(0.0, abs=1e-9)
    assert second == pytest.approx(1.0, abs=1e-9)
    # and other constants do not
    y = _elu(z, 1.0)
    assert abs(torch.trapezoid(y * density, z).item()) > 0.1


def test_default_selu_is_torchs_and_custom_selu_is_scaled_elu():
    assert type(A.get_activation("selu")) is nn.SELU
    assert A.activation_function("selu") is F.selu
    custom = A.get_activation("selu", alpha=1.5, scale=1.1)
    assert isinstance(custom, A.ScaledELU)
    assert (custom.alpha, custom.scale) == (1.5, 1.1)
    assert A.activation_name(custom) == "selu"


def test_hard_sigmoid_default_is_torchs():
    assert type(A.get_activation("hard_sigmoid")) is nn.Hardsigmoid
    keras2 = A.get_activation("hard_sigmoid", slope=0.2)
    assert isinstance(keras2, A.HardSigmoid)
    assert A.activation_name(keras2) == "hard_sigmoid"


# ----------------------------------------------------------------------- PReLU / RReLU


def test_prelu_shared_by_default():
    m = A.get_activation("prelu")
    assert isinstance(m, nn.PReLU) and m.weight.shape == (1,)
    assert torch.all(m.weight == 0.25)


def test_prelu_per_unit_from_units_or_num_parameters():
    assert A.get_activation("prelu", units=300).weight.shape == (300,)
    assert A.get_activation({"name": "prelu", "num_parameters": 300}).weight.shape == (300,)
    # an explicit num_parameters wins over the layer width
    assert A.get_activation("prelu", units=300, num_parameters=1).weight.shape == (1,)
    keras = A.get_activation({"name": "prelu", "alpha": 0.0}, units=10)
    assert keras.weight.shape == (10,) and torch.all(keras.weight == 0)


def test_prelu_slopes_are_learnable():
    m = A.get_activation("prelu", units=4)
    params = list(m.parameters())
    assert len(params) == 1 and params[0].requires_grad
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    x = torch.tensor([[-1.0, -2.0, 3.0, -4.0]])
    m(x).sum().backward()
    assert torch.equal(m.weight.grad, torch.tensor([-1.0, -2.0, 0.0, -4.0]))
    opt.step()
    assert torch.allclose(m.weight.detach(), torch.tensor([0.35, 0.45, 0.25, 0.65]))


def test_rrelu_module_draws_random_slopes_while_training():
    m = A.get_activation("rrelu", lower=0.1, upper=0.3).train()
    torch.manual_seed(0)
    slopes = m(-torch.ones(10_000))
    assert slopes.min().item() >= -0.3 and slopes.max().item() <= -0.1
    assert slopes.std().item() > 0.03


def test_units_is_context_for_other_activations():
    assert type(A.get_activation("relu", units=300)) is nn.ReLU


# ----------------------------------------------------------------------- get_activation


def test_none_is_identity_and_modules_are_returned_as_is():
    assert type(A.get_activation(None)) is nn.Identity
    m = nn.Tanh()
    assert A.get_activation(m) is m


def test_dict_spec_and_overrides():
    spec = {"name": "leaky_relu", "alpha": 0.2}
    assert A.get_activation(spec).negative_slope == 0.2
    assert A.get_activation(spec, alpha=0.1).negative_slope == 0.1
    assert spec == {"name": "leaky_relu", "alpha": 0.2}


@pytest.mark.parametrize(
    "name, cls",
    [("sigmoid", nn.Sigmoid), ("tanh", nn.Tanh), ("relu", nn.ReLU), ("leaky_relu", nn.LeakyReLU),
     ("prelu", nn.PReLU), ("rrelu", nn.RReLU), ("elu", nn.ELU), ("selu", nn.SELU),
     ("softplus", nn.Softplus), ("softsign", nn.Softsign), ("hard_sigmoid", nn.Hardsigmoid),
     ("linear", nn.Identity), ("softmax", nn.Softmax), ("gelu", nn.GELU), ("swish", nn.SiLU),
     ("mish", nn.Mish), ("exponential", A.Exponential)],
)
def test_returns_pytorchs_own_modules(name, cls):
    assert type(A.get_activation(name)) is cls


def test_each_call_builds_a_new_module():
    assert A.get_activation("prelu") is not A.get_activation("prelu")


# ----------------------------------------------------------------------- recognition


@pytest.mark.parametrize("name", A.activation_names())
def test_activation_name_round_trip(name):
    assert A.activation_name(A.get_activation(name)) == name


@pytest.mark.parametrize(
    "module, name",
    [(nn.LeakyReLU(0.01), "leaky_relu"), (nn.Softmax(dim=1), "softmax"), (nn.ELU(0.3), "elu"),
     (nn.PReLU(7), "prelu"), (nn.Sigmoid(), "sigmoid"), (nn.Hardsigmoid(), "hard_sigmoid"),
     (nn.Identity(), "linear"), (A.ScaledELU(), "selu")],
)
def test_activation_name_of_modules_built_elsewhere(module, name):
    assert A.activation_name(module) == name


def test_activation_name_of_subclasses_and_non_activations():
    class MyReLU(nn.ReLU):
        pass

    assert A.activation_name(MyReLU()) == "relu"
    assert A.activation_name(nn.Linear(2, 2)) is None
    assert A.activation_name(nn.LogSoftmax(dim=-1)) is None
    assert A.activation_name(nn.Sequential(nn.Softmax(dim=-1))) is None
    assert A.activation_name(None) is None
    assert A.activation_name("relu") is None


def test_groups():
    assert A.RELU_FAMILY == {"relu", "leaky_relu", "prelu", "rrelu", "elu", "selu"}
    assert A.SATURATING == {"sigmoid", "tanh", "hard_sigmoid", "softsign"}
    assert A.RELU_FAMILY <= set(A.activation_names())
    assert A.SATURATING <= set(A.activation_names())
    assert not A.RELU_FAMILY & A.SATURATING


# ----------------------------------------------------------------------- self-normalization


@pytest.fixture
def one_thread():
    """Small matmuls gain nothing from threads and crawl when the CPUs are shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _layer_stats(activation, initializer, *, layers=100, width=100, seed=42):
    """Per-layer mean and std of a deep dense net's activations on standardized inputs."""
    torch.manual_seed(seed)
    f = A.activation_function(activation)
    x = torch.randn(500, width)
    x = (x - x.mean(0)) / x.std(0)
    means, stds = [], []
    for _ in range(layers):
        w = initializer(torch.empty(width, width))
        x = f(x @ w.T)
        means.append(x.mean().item())
        stds.append(x.std().item())
    return means, stds


def _self_normalizing(means, stds):
    return all(abs(m) <= 0.1 for m in means) and all(0.75 <= s <= 1.25 for s in stds)


def test_selu_with_lecun_normal_self_normalizes_over_100_layers(one_thread):
    means, stds = _layer_stats("selu", lecun_normal)
    assert all(abs(m) <= 0.1 for m in means), max(means, key=abs)
    assert all(0.75 <= s <= 1.25 for s in stds), (min(stds), max(stds))


@pytest.mark.parametrize(
    "activation, initializer",
    [("relu", he_normal),        # mean drifts away from 0, scale wanders
     ("tanh", lecun_normal),     # std collapses layer after layer
     ("sigmoid", glorot_normal),  # mean 0.5, std collapses
     ("elu", lecun_normal)],     # ELU without SELU's constants shrinks
)
def test_other_activations_do_not_self_normalize(activation, initializer, one_thread):
    assert not _self_normalizing(*_layer_stats(activation, initializer))


# ----------------------------------------------------------------------- errors


def test_unknown_name_lists_allowed():
    with pytest.raises(ConfigError) as err:
        A.get_activation("leaky_rellu")
    msg = str(err.value)
    assert "unknown activation 'leaky_rellu'" in msg
    assert "allowed: elu, exponential, gelu, hard_sigmoid, leaky_relu, linear" in msg
    assert isinstance(err.value, ValueError)
    with pytest.raises(ConfigError, match="unknown activation 'Relu'"):
        A.activation_function("Relu")


def test_unknown_argument_names_the_allowed_ones():
    with pytest.raises(ConfigError,
                       match="unknown argument 'negative_slope' for activation 'leaky_relu'; allowed: alpha"):
        A.get_activation("leaky_relu", negative_slope=0.2)
    with pytest.raises(ConfigError, match="'relu'; allowed: none"):
        A.get_activation({"name": "relu", "alpha": 0.1})
    with pytest.raises(ConfigError, match="allowed: alpha, scale"):
        A.activation_function("selu", lambda_=1.0)


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"name": "leaky_relu", "alpha": "0.2"}, "alpha must be a number >= 0"),
        ({"name": "elu", "alpha": -1.0}, "alpha must be a number >= 0"),
        ({"name": "selu", "scale": 0}, "scale must be a number > 0"),
        ({"name": "prelu", "num_parameters": 0}, "num_parameters must be an integer >= 1"),
        ({"name": "prelu", "num_parameters": 2.5}, "num_parameters must be an integer >= 1"),
        ({"name": "gelu", "approximate": "tanh"}, "approximate must be true or false"),
        ({"name": "softmax", "axis": 1.0}, "axis must be an integer"),
        ({"name": "hard_sigmoid", "slope": -0.2}, "slope must be a number > 0"),
        ({"name": "rrelu", "lower": 0.5, "upper": 0.1}, "lower must be <= upper"),
        ({"alpha": 0.2}, "needs a 'name' key; allowed names: elu"),
        ({"name": None}, "activation name must be a string"),
    ],
)
def test_bad_specs(spec, message):
    with pytest.raises(ConfigError, match=message):
        A.get_activation(spec)


def test_bad_spec_types_and_misplaced_arguments():
    with pytest.raises(ConfigError, match="a name, a dict with 'name', an nn.Module or None, got int"):
        A.get_activation(42)
    with pytest.raises(ConfigError, match="need an activation name, got ReLU"):
        A.get_activation(nn.ReLU(), alpha=0.1)
    with pytest.raises(ConfigError, match="need an activation name, got None"):
        A.get_activation(None, alpha=0.1)
    with pytest.raises(ConfigError, match="units must be an integer >= 1"):
        A.get_activation("prelu", units=0)

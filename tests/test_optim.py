import re

import numpy as np
import pytest
import torch

from trainwell.errors import ConfigError
from trainwell.optim import clip_gradients, optimizer, optimizer_names


def params():
    return [torch.nn.Parameter(torch.ones(3))]


@pytest.mark.parametrize("name, cls", [("sgd", torch.optim.SGD), ("adagrad", torch.optim.Adagrad),
                                       ("rmsprop", torch.optim.RMSprop), ("adam", torch.optim.Adam),
                                       ("adamax", torch.optim.Adamax), ("nadam", torch.optim.NAdam),
                                       ("adamw", torch.optim.AdamW)])
def test_each_optimizer_is_pytorchs_own(name, cls):
    assert isinstance(optimizer(name)(params()), cls)


def test_keras_defaults_and_names():
    rms = optimizer("rmsprop")(params()).defaults
    assert rms["alpha"] == 0.9 and rms["eps"] == 1e-7 and rms["lr"] == 1e-3
    ada = optimizer("adagrad")(params()).defaults
    assert ada["initial_accumulator_value"] == 0.1 and ada["eps"] == 1e-7
    adam = optimizer("adam", beta_1=0.8, beta_2=0.99)(params()).defaults
    assert adam["betas"] == (0.8, 0.99) and adam["eps"] == 1e-7
    assert optimizer("nadam")(params()).defaults["momentum_decay"] == 0.004
    assert optimizer("sgd", learning_rate=0.5)(params()).defaults["lr"] == 0.5
    assert optimizer("adamw")(params()).defaults["weight_decay"] == 0.004
    assert set(optimizer_names()) == {"sgd", "adagrad", "rmsprop", "adam", "adamax", "nadam", "adamw"}


def test_nadam_follows_keras_momentum_schedule():
    # One step from zero state: with Keras' schedule mu_1 = 0.9 * (1 - 0.5 * 0.96 ** 0.004),
    # mu_2 = 0.9 * (1 - 0.5 * 0.96 ** 0.008); the update is
    # lr * (mu_2 * m_hat_next + (1 - mu_1) * g_hat) / (sqrt(v_hat) + eps).
    p = torch.nn.Parameter(torch.tensor([1.0]))
    opt = optimizer("nadam", lr=0.1)([p])
    p.grad = torch.tensor([0.5])
    opt.step()
    mu1 = 0.9 * (1 - 0.5 * 0.96 ** 0.004)
    mu2 = 0.9 * (1 - 0.5 * 0.96 ** 0.008)
    m = 0.1 * 0.5
    v = 0.001 * 0.25
    step = 0.1 * ((1 - mu1) * 0.5 / (1 - mu1) + mu2 * m / (1 - mu1 * mu2)) / ((v / 0.001) ** 0.5 + 1e-7)
    assert p.item() == pytest.approx(1.0 - step, rel=1e-6)


@pytest.mark.parametrize("name, options, message", [
    ("sgdd", {}, "unknown optimizer 'sgdd'"),
    ("sgd", {"momentun": 0.9}, "optimizer.momentun: not an option of sgd"),
    ("sgd", {"lr": -1}, "non-negative"),
    ("sgd", {"lr": 0}, "must be positive"),
    ("adam", {"beta_1": 1.0}, "beta_1"),
    ("sgd", {"nesterov": True}, "needs momentum"),
    ("sgd", {"nesterov": "yes"}, "true or false"),
])
def test_bad_options_are_errors(name, options, message):
    with pytest.raises(ConfigError, match=message):
        optimizer(name, **options)


def test_clipping_by_value_per_parameter_norm_and_global_norm():
    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    a.grad, b.grad = torch.tensor([3.0, -4.0]), torch.tensor([0.0, 0.5])
    clip_gradients([a, b], clipvalue=1.0)
    assert a.grad.tolist() == [1.0, -1.0]
    a.grad, b.grad = torch.tensor([3.0, 4.0]), torch.tensor([0.0, 0.5])
    clip_gradients([a, b], clipnorm=1.0)
    assert a.grad.norm().item() == pytest.approx(1.0, rel=1e-5) and b.grad.tolist() == [0.0, 0.5]
    a.grad, b.grad = torch.tensor([3.0, 4.0]), torch.tensor([0.0, 0.0])
    clip_gradients([a, b], global_clipnorm=2.5)
    assert a.grad.tolist() == pytest.approx([1.5, 2.0], rel=1e-5)


@pytest.mark.parametrize("name, implementation", [("sgd", "fused"), ("adam", "fused"), ("adamw", "fused"),
                                                  ("adagrad", "fused"), ("nadam", "foreach")])
def test_optimizers_take_pytorchs_fast_implementation_with_the_same_updates(name, implementation):
    from trainwell.optim import OPTIMIZERS, make_optimizer, resolve_optimizer_options

    def steps(force_default):
        torch.manual_seed(0)
        model = torch.nn.Linear(20, 5)
        options = {"momentum": 0.9} if name == "sgd" else {}
        if force_default:  # PyTorch's per-parameter loop, with the same options
            opt = OPTIMIZERS[name].cls(model.parameters(), **resolve_optimizer_options(name, options), foreach=False)
        else:
            opt = make_optimizer({"name": name, **options}, model.parameters())
            assert opt.param_groups[0][implementation] is True
        for i in range(5):
            loss = model(torch.randn(8, 20, generator=torch.Generator().manual_seed(i))).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        return model.weight.detach()

    torch.testing.assert_close(steps(False), steps(True), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- Keras' formulas, transcribed
# Each reference below is a numpy transcription of one Keras optimizer's update (Keras 3's
# keras/src/optimizers/*.py; the legacy tf.keras 2 optimizer_v2 and its ApplyRMSProp kernel),
# run for 50 steps on the same gradients as the torch optimizer, in float64.

STEPS = 50
START = np.array([1.0, -2.0, 0.5, 3.0, -0.1, 0.02])
CURVATURE = np.array([1.0, 0.3, 5.0, 0.01, 2.0, 0.001])


def gradient(w, t):
    """A quadratic bowl plus a fixed noise per step: gradients from 1e-4 to about 10."""
    noise = np.random.default_rng(t).standard_normal(len(w)) * 0.01
    return CURVATURE * (w - 0.25) + noise


@pytest.fixture
def float64():
    """float64 throughout, PyTorch's optimizer scalars (NAdam's mu_product, the step) included."""
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(default)


def run_torch(name, **options):
    p = torch.nn.Parameter(torch.tensor(START, dtype=torch.float64))
    opt = optimizer(name, **options)([p])
    for t in range(STEPS):
        p.grad = torch.from_numpy(gradient(p.detach().numpy(), t))
        opt.step()
    return p.detach().numpy()


def keras_nadam(*, lr, beta_1=0.9, beta_2=0.999, epsilon=1e-7, exponent_scale):
    """Keras 3 (exponent_scale=1: mu_t = beta_1 (1 - 0.5 0.96^t)) or legacy tf.keras 2 (0.004)."""
    w, m, v, u_product = START.copy(), 0.0, 0.0, 1.0
    schedule = lambda t: beta_1 * (1.0 - 0.5 * 0.96 ** (exponent_scale * t))  # noqa: E731
    for step in range(STEPS):
        g, t = gradient(w, step), step + 1
        u_t, u_next = schedule(t), schedule(t + 1)
        u_product *= u_t
        m = m + (g - m) * (1 - beta_1)
        v = v + (g * g - v) * (1 - beta_2)
        m_hat = u_next * m / (1 - u_product * u_next) + (1 - u_t) * g / (1 - u_product)
        w = w - lr * m_hat / (np.sqrt(v / (1 - beta_2 ** t)) + epsilon)
    return w


def keras_rmsprop(*, lr, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False, epsilon_inside):
    """Keras 3 (epsilon inside the root) or tf.keras 2 without momentum (outside)."""
    w, v, mg, mom = START.copy(), 0.0, 0.0, 0.0
    for step in range(STEPS):
        g = gradient(w, step)
        v = rho * v + (1 - rho) * g * g
        mean_square = v
        if centered:
            mg = rho * mg + (1 - rho) * g
            mean_square = v - mg * mg
        increment = lr * g / (np.sqrt(mean_square + epsilon) if epsilon_inside else np.sqrt(mean_square) + epsilon)
        if momentum > 0:
            mom = momentum * mom + increment
            w = w - mom
        else:
            w = w - increment
    return w


def keras_adam(*, lr, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False, weight_decay=0.0):
    """Keras' Adam (tf.keras 2 and Keras 3 alike): epsilon added to sqrt(v) before the bias correction.

    ``weight_decay`` is AdamW's decoupled decay, ``w -= lr * wd * w`` before the update."""
    w, m, v, v_max = START.copy(), 0.0, 0.0, 0.0
    for step in range(STEPS):
        g, t = gradient(w, step), step + 1
        w = w - lr * weight_decay * w
        alpha = lr * np.sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t)
        m = m + (g - m) * (1 - beta_1)
        v = v + (g * g - v) * (1 - beta_2)
        v_max = np.maximum(v_max, v)
        w = w - m * alpha / (np.sqrt(v_max if amsgrad else v) + epsilon)
    return w


def relative_change(a, b):
    """How differently ``a`` moved the weights than ``b``: |a - b| over the distance ``b`` travelled."""
    return float(np.linalg.norm(a - b) / np.linalg.norm(START - b))


@pytest.mark.parametrize("variant, exponent_scale", [(None, 0.004), ("keras2", 0.004), ("keras3", 1.0)])
def test_nadam_follows_tf_keras_2_by_default_and_keras_3_as_a_variant(float64, variant, exponent_scale):
    options = {"lr": 0.01} | ({} if variant is None else {"variant": variant})
    np.testing.assert_allclose(run_torch("nadam", **options), keras_nadam(lr=0.01, exponent_scale=exponent_scale),
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("variant, momentum, centered, inside", [
    (None, 0.0, False, False), (None, 0.0, True, False),     # tf.keras 2: sqrt(v) + eps, PyTorch's RMSprop
    (None, 0.9, False, True), (None, 0.9, True, True),       # tf.keras 2 with momentum: its kernel's sqrt(v + eps)
    ("keras3", 0.0, False, True), ("keras3", 0.9, False, True), ("keras3", 0.0, True, True),
])
def test_rmsprop_follows_tf_keras_2_by_default_and_keras_3_as_a_variant(float64, variant, momentum, centered, inside):
    options = {"lr": 0.01, "momentum": momentum, "centered": centered} | ({} if variant is None else {"variant": variant})
    expected = keras_rmsprop(lr=0.01, momentum=momentum, centered=centered, epsilon_inside=inside)
    np.testing.assert_allclose(run_torch("rmsprop", **options), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name, options", [("adam", {}), ("adam", {"amsgrad": True}), ("adam", {"beta_2": 0.99}),
                                           ("adamw", {}), ("adamw", {"weight_decay": 0.1})])
def test_adam_with_kerass_epsilon_placement(float64, name, options):
    decay = options.get("weight_decay", 0.004) if name == "adamw" else 0.0
    keras_options = {k: v for k, v in options.items() if k != "weight_decay"}
    expected = keras_adam(lr=0.01, weight_decay=decay, **keras_options)
    np.testing.assert_allclose(run_torch(name, lr=0.01, variant="keras", **options), expected, rtol=1e-10, atol=1e-12)


def test_the_defaults_differ_from_the_other_formulas_by_what_the_readme_says(float64):
    """The magnitudes in the README's table of differences, on this problem (50 steps)."""
    nadam_3 = relative_change(run_torch("nadam", lr=0.01), keras_nadam(lr=0.01, exponent_scale=1.0))
    assert 0.01 < nadam_3 < 0.1
    adam = relative_change(run_torch("adam", lr=0.01), keras_adam(lr=0.01))
    assert 1e-6 < adam < 1e-2
    rmsprop_3 = relative_change(run_torch("rmsprop", lr=0.01), keras_rmsprop(lr=0.01, epsilon_inside=True))
    assert 1e-6 < rmsprop_3 < 1e-1


def test_variant_resumes_from_a_state_dict(float64):
    """Keras' epsilon placement counts steps in the parameter group, so a checkpoint carries it."""
    p = torch.nn.Parameter(torch.tensor(START, dtype=torch.float64))
    first = optimizer("adam", lr=0.01, variant="keras")([p])
    for t in range(STEPS // 2):
        p.grad = torch.from_numpy(gradient(p.detach().numpy(), t))
        first.step()
    second = optimizer("adam", lr=0.01, variant="keras")([p])
    second.load_state_dict(first.state_dict())
    for t in range(STEPS // 2, STEPS):
        p.grad = torch.from_numpy(gradient(p.detach().numpy(), t))
        second.step()
    np.testing.assert_allclose(p.detach().numpy(), keras_adam(lr=0.01), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name, options, message", [
    ("nadam", {"variant": "keras4"}, "optimizer.variant: 'keras4' is not a variant of nadam; allowed: keras2"),
    ("adam", {"variant": "keras3"}, "optimizer.variant: 'keras3' is not a variant of adam; allowed: pytorch"),
    ("rmsprop", {"variant": 3}, "optimizer.variant: 3 is not a variant of rmsprop"),
    ("sgd", {"variant": "keras3"}, "optimizer.variant: not an option of sgd"),
    ("nadam", {"variant": "keras3", "momentum_decay": 0.004}, "optimizer.momentum_decay: the keras3 variant"),
])
def test_bad_variants_are_errors(name, options, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        optimizer(name, **options)


def test_variant_in_a_config_file(tmp_path):
    from trainwell.config import load_config

    path = tmp_path / "run.toml"
    head = ('[data]\nname = "fashion_mnist"\n[model]\nlayers = [{ type = "flatten" }, '
            '{ type = "dense", units = 10, activation = "softmax" }]\n[optimizer]\nname = "nadam"\n')
    path.write_text(head + 'variant = "keras3"\n')
    assert load_config(path).optimizer["variant"] == "keras3"
    path.write_text(head + 'variant = "keras_3"\n')
    with pytest.raises(ConfigError, match="optimizer.variant: 'keras_3' is not a variant of nadam"):
        load_config(path)


@pytest.mark.parametrize("options", [{"lr": float("inf")}, {"lr": float("nan")}, {"momentum": float("nan")}])
def test_optimizer_settings_must_be_finite(options):
    from trainwell.errors import ConfigError
    from trainwell.optim import optimizer

    key = next(iter(options))
    with pytest.raises(ConfigError, match=f"optimizer.{key}: must be a finite non-negative number"):
        optimizer("sgd", **options)(torch.nn.Linear(2, 2).parameters())

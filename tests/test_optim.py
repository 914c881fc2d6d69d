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

"""Schedules against their closed forms, the Trainer applying them, plateau reduction, and the config/CLI edges."""

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from trainwell import schedules as sch
from trainwell.callbacks import Callback, Monitor, ReduceLROnPlateau
from trainwell.cli import main
from trainwell.config import load_config
from trainwell.errors import ConfigError
from trainwell.train.history import History
from trainwell.train.trainer import Trainer

EXAMPLES = Path(__file__).parents[1] / "examples"
SCHEDULING_EXAMPLES = ["power_schedule", "exponential_epoch", "exponential_step", "piecewise", "plateau",
                       "exponential_decay", "one_cycle"]
BOOK_STEPS = 55_000 // 32 + 1  # 1,719 steps per epoch at batch 32


# ------------------------------------------------------------ closed forms
@pytest.mark.parametrize("t", [0, 1, 17, 5_000, 10_000, 123_456])
@pytest.mark.parametrize("c", [1.0, 0.5, 2.0])
def test_power_is_lr0_over_one_plus_t_over_s_to_the_c(t, c):
    assert sch.power(lr0=0.01, s=10_000, c=c)(t) == pytest.approx(0.01 / (1 + t / 10_000) ** c, rel=1e-12)


def test_power_with_c_1_is_keras_decay():
    decay = 1e-4
    schedule = sch.power(lr0=0.01, s=1 / decay)
    for t in (0, 1, 999, 10_000):
        assert schedule(t) == pytest.approx(0.01 / (1 + decay * t), rel=1e-12)


@pytest.mark.parametrize("t", [0, 1, 1_000, 34_375, 68_750, 100_000])
def test_exponential_in_steps(t):
    s = 20 * 55_000 // 32
    assert sch.exponential(lr0=0.01, s=s)(t) == pytest.approx(0.01 * 0.1 ** (t / s), rel=1e-12)


def test_exponential_per_step_matches_pytorch_exponential_lr():
    """Multiplying by 0.1 ** (1 / s) each step (the chapter's callback, torch's ExponentialLR) is the same curve."""
    s = 50
    param = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=0.01)
    reference = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.1 ** (1 / s))
    schedule = sch.exponential(lr0=0.01, s=s)
    for t in range(200):
        assert schedule(t) == pytest.approx(optimizer.param_groups[0]["lr"], rel=1e-9)
        optimizer.step()
        reference.step()


def test_exponential_in_epochs_changes_once_per_epoch():
    schedule = sch.per_epoch(sch.exponential(lr0=0.01, s=20), steps_per_epoch=BOOK_STEPS)
    for epoch in (0, 1, 5, 20, 24):
        expected = 0.01 * 0.1 ** (epoch / 20)
        assert schedule(epoch * BOOK_STEPS) == pytest.approx(expected, rel=1e-12)
        assert schedule((epoch + 1) * BOOK_STEPS - 1) == pytest.approx(expected, rel=1e-12)


def test_piecewise_constant_in_steps_and_epochs():
    steps = sch.piecewise_constant(boundaries=[100, 300], values=[0.01, 0.005, 0.001])
    assert [steps(t) for t in (0, 99, 100, 299, 300, 10**6)] == [0.01, 0.01, 0.005, 0.005, 0.001, 0.001]
    epochs = sch.per_epoch(sch.piecewise_constant(boundaries=[5, 15], values=[0.01, 0.005, 0.001]),
                           steps_per_epoch=BOOK_STEPS)
    assert epochs(5 * BOOK_STEPS - 1) == 0.01 and epochs(5 * BOOK_STEPS) == 0.005
    assert epochs(15 * BOOK_STEPS - 1) == 0.005 and epochs(15 * BOOK_STEPS) == 0.001


class BookOneCycle:
    """The chapter's OneCycleScheduler callback, transcribed (rate at each on_batch_begin)."""

    def __init__(self, iterations, max_rate, start_rate=None, last_iterations=None, last_rate=None):
        self.iterations = iterations
        self.max_rate = max_rate
        self.start_rate = start_rate or max_rate / 10
        self.last_iterations = last_iterations or iterations // 10 + 1
        self.half_iteration = (iterations - self.last_iterations) // 2
        self.last_rate = last_rate or self.start_rate / 1000
        self.iteration = 0

    def _interpolate(self, iter1, iter2, rate1, rate2):
        return (rate2 - rate1) * (self.iteration - iter1) / (iter2 - iter1) + rate1

    def next_rate(self):
        if self.iteration < self.half_iteration:
            rate = self._interpolate(0, self.half_iteration, self.start_rate, self.max_rate)
        elif self.iteration < 2 * self.half_iteration:
            rate = self._interpolate(self.half_iteration, 2 * self.half_iteration, self.max_rate, self.start_rate)
        else:
            rate = self._interpolate(2 * self.half_iteration, self.iterations, self.start_rate, self.last_rate)
        self.iteration += 1
        return rate


def test_one_cycle_is_the_chapters_at_every_step():
    total = math.ceil(55_000 / 128) * 25  # 10,750
    schedule, book = sch.one_cycle(total_steps=total, max_lr=0.05), BookOneCycle(total, max_rate=0.05)
    for t in range(total):
        assert schedule(t) == pytest.approx(book.next_rate(), rel=1e-12, abs=1e-15)
    half = (total - (total // 10 + 1)) // 2  # 4,837
    assert schedule(0) == pytest.approx(0.005) and schedule(half) == pytest.approx(0.05)
    assert schedule(2 * half) == pytest.approx(0.005) and schedule(total) == pytest.approx(0.005 / 1000)
    assert schedule(total + 500) == pytest.approx(0.005 / 1000)  # flat after the run


def test_one_cycle_momentum_goes_the_other_way():
    total, half = 1_000, (1_000 - 101) // 2
    momentum = sch.one_cycle_momentum(total_steps=total)
    assert momentum(0) == 0.95 and momentum(half) == pytest.approx(0.85) and momentum(2 * half) == pytest.approx(0.95)
    assert momentum(half // 2) == pytest.approx(0.95 - 0.1 * (half // 2) / half)
    assert all(momentum(t) == 0.95 for t in range(2 * half, total + 10))
    rates = sch.one_cycle(total_steps=total, max_lr=1.0)
    assert all((rates(t + 1) - rates(t)) * (momentum(t + 1) - momentum(t)) <= 0 for t in range(2 * half))


@pytest.mark.parametrize("t", [0, 3, 10, 11, 50, 99, 110, 200])
def test_cosine_with_linear_warmup(t):
    lr0, warmup, total, floor = 0.1, 10, 110, 0.001
    expected = (lr0 * t / warmup if t < warmup else
                floor + (lr0 - floor) * 0.5 * (1 + math.cos(math.pi * min(1, (t - warmup) / (total - warmup)))))
    schedule = sch.cosine(lr0=lr0, total_steps=total, warmup_steps=warmup, min_lr=floor)
    assert schedule(t) == pytest.approx(expected, rel=1e-12)


def test_cosine_matches_pytorch_cosine_annealing():
    param = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=0.1)
    reference = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=40, eta_min=0.01)
    schedule = sch.cosine(lr0=0.1, total_steps=40, min_lr=0.01)
    for t in range(40):
        assert schedule(t) == pytest.approx(optimizer.param_groups[0]["lr"], rel=1e-9)
        optimizer.step()
        reference.step()


def test_join_and_values():
    schedule = sch.join([sch.constant(lr=1.0), sch.exponential(lr0=0.5, s=1)], [3])
    assert sch.values(schedule, 5) == [1.0, 1.0, 1.0, 0.5, pytest.approx(0.05)]


# -------------------------------------------------------------- bad inputs
@pytest.mark.parametrize("build, message", [
    (lambda: sch.power(lr0=-0.01, s=10), "lr0: must be positive, got -0.01"),
    (lambda: sch.exponential(lr0=0.01, s=0), "s: must be positive, got 0"),
    (lambda: sch.piecewise_constant(boundaries=[5, 5], values=[1, 2, 3]), "boundaries: must be strictly increasing"),
    (lambda: sch.piecewise_constant(boundaries=[5], values=[1, 2, 3]), "values: needs one more entry"),
    (lambda: sch.piecewise_constant(boundaries=[5], values=[1, -2]), "values: must be positive, got -2"),
    (lambda: sch.one_cycle(total_steps=100, max_lr=0.01, start_lr=0.1), "max_lr: must be above start_lr"),
    (lambda: sch.one_cycle(total_steps=100, max_lr=0.1, last_steps=99), "last_steps: 99 leaves no room"),
    (lambda: sch.one_cycle_momentum(total_steps=100, min_momentum=0.99), "min_momentum: must not exceed"),
    (lambda: sch.cosine(lr0=0.1, total_steps=10, warmup_steps=10), "warmup_steps: must be below total_steps"),
])
def test_bad_arguments_name_the_argument(build, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        build()


def test_run_length_checks_happen_at_fit_time(blobs):
    x, y = blobs
    trainer = Trainer(nn.Linear(4, 3), schedule={"name": "one_cycle", "last_steps": 500}, seed=0)
    with pytest.raises(ConfigError, match="schedule.last_steps: 500 leaves no room for the cycle in 38 total steps"):
        trainer.fit(x, y, epochs=2, batch_size=32, verbose=False)


# ------------------------------------------------------ the Trainer applies
def test_trainer_uses_the_schedules_rate_at_every_step(blobs):
    """Same weights as a hand-written loop setting the rate before each step; the rates are recorded."""
    x, y = blobs
    x, y = x[:100], y[:100]
    schedule = sch.exponential(lr0=0.5, s=4)
    torch.manual_seed(0)
    model, reference = nn.Linear(4, 3), nn.Linear(4, 3)
    reference.load_state_dict(model.state_dict())
    trainer = Trainer(model, optimizer={"name": "sgd", "lr": 0.5}, schedule=schedule, seed=0)
    history = trainer.fit(x, y, epochs=2, batch_size=25, shuffle=False, verbose=False)
    optimizer = torch.optim.SGD(reference.parameters(), lr=99.0)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for t in range(8):
        optimizer.param_groups[0]["lr"] = schedule(t)
        start = (t % 4) * 25
        loss = nn.functional.cross_entropy(reference(xt[start:start + 25]), yt[start:start + 25])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for key, value in reference.state_dict().items():
        assert torch.allclose(value, model.state_dict()[key], atol=1e-6)
    assert history.steps["lr"] == pytest.approx([schedule(t) for t in range(8)], rel=1e-12)
    assert history["lr"] == pytest.approx([schedule(3), schedule(7)])  # an epoch's lr is its last step's


def test_schedule_tables_are_built_for_the_run(blobs, tmp_path):
    x, y = blobs
    trainer = Trainer(nn.Linear(4, 3), optimizer={"name": "sgd", "lr": 0.1},
                      schedule={"name": "exponential", "s": 2, "per": "epoch"}, seed=0)
    history = trainer.fit(x, y, epochs=3, batch_size=100, verbose=False)  # 6 steps per epoch
    expected = [0.1 * 0.1 ** (epoch / 2) for epoch in range(3) for _ in range(6)]
    assert history.steps["lr"] == pytest.approx(expected)
    assert history["lr"] == pytest.approx([0.1, 0.1 * 0.1 ** 0.5, 0.01])
    history.to_json(tmp_path / "h.json")
    assert History.from_json(tmp_path / "h.json") == history
    assert History.from_json(tmp_path / "h.json").steps["lr"] == history.steps["lr"]


@pytest.mark.parametrize("optimizer, read", [
    ({"name": "sgd", "lr": 0.1}, lambda group: group["momentum"]),
    ({"name": "adam"}, lambda group: group["betas"][0]),
])
def test_one_cycle_cycles_momentum(blobs, optimizer, read):
    x, y = blobs
    seen = []

    class Record(Callback):
        def on_batch_begin(self, trainer, step):
            seen.append(read(trainer.optimizer.param_groups[0]))

    trainer = Trainer(nn.Linear(4, 3), optimizer=optimizer, callbacks=[Record()], seed=0,
                      schedule={"name": "one_cycle", "max_lr": 0.1, "cycle_momentum": True})
    history = trainer.fit(x, y, epochs=5, batch_size=32, verbose=False)  # 19 x 5 = 95 steps
    expected = sch.values(sch.one_cycle_momentum(total_steps=95), 95)
    assert seen == pytest.approx(expected) and history.steps["momentum"] == pytest.approx(expected)
    assert history.steps["lr"] == pytest.approx(sch.values(sch.one_cycle(total_steps=95, max_lr=0.1), 95))
    assert min(seen) == pytest.approx(0.85, abs=0.01) and seen[0] == 0.95 and "momentum" in history.last


def test_momentum_schedule_needs_an_optimizer_with_momentum():
    with pytest.raises(ConfigError, match="momentum_schedule: Adagrad has no momentum"):
        Trainer(nn.Linear(4, 3), optimizer="adagrad", momentum_schedule=sch.constant(lr=0.9))


# ------------------------------------------------------------ plateau
def fake_trainer(lr=0.1):
    return SimpleNamespace(optimizer=SimpleNamespace(param_groups=[{"lr": lr}]), lr_scale=1.0)


def feed(callback, trainer, losses, base=0.1):
    """Run epoch ends with these val_loss values; return the rate after each."""
    rates = []
    for epoch, loss in enumerate(losses, 1):
        callback.on_epoch_end(trainer, epoch, {"val_loss": loss})
        trainer.optimizer.param_groups[0]["lr"] = base * trainer.lr_scale  # what the trainer's next step sets
        rates.append(round(trainer.optimizer.param_groups[0]["lr"], 12))
    return rates


def test_plateau_waits_patience_epochs_then_reduces():
    callback, trainer = ReduceLROnPlateau(factor=0.5, patience=2), fake_trainer()
    callback.on_fit_begin(trainer)
    assert feed(callback, trainer, [1.0, 0.9, 0.95, 0.95, 0.95, 0.95, 0.8]) == [0.1, 0.1, 0.1, 0.05, 0.05, 0.025, 0.025]


def test_plateau_min_delta_cooldown_and_min_lr():
    # min_delta: 0.9995 is no improvement on 1.0 when min_delta is 1e-3
    callback, trainer = ReduceLROnPlateau(factor=0.5, patience=1, min_delta=1e-3), fake_trainer()
    assert feed(callback, trainer, [1.0, 0.9995]) == [0.1, 0.05]
    # cooldown, counted as Keras does: the counter drops at each epoch end, so cooldown = 2 skips one epoch
    callback, trainer = ReduceLROnPlateau(factor=0.5, patience=1, cooldown=2), fake_trainer()
    assert feed(callback, trainer, [1.0] * 6) == [0.1, 0.05, 0.05, 0.025, 0.025, 0.0125]
    callback, trainer = ReduceLROnPlateau(factor=0.5, patience=1, cooldown=0), fake_trainer()
    assert feed(callback, trainer, [1.0] * 4) == [0.1, 0.05, 0.025, 0.0125]
    # min_lr: never below it
    callback, trainer = ReduceLROnPlateau(factor=0.1, patience=0, min_lr=0.002), fake_trainer()
    assert feed(callback, trainer, [1.0, 1.0, 1.0, 1.0]) == [0.1, 0.01, 0.002, 0.002]


def test_plateau_through_the_trainer_scales_the_schedule(blobs):
    """Monitoring "lr" in max mode never improves after the first epoch: a reduction every epoch."""
    x, y = blobs
    trainer = Trainer(nn.Linear(4, 3), optimizer={"name": "sgd", "lr": 0.1}, seed=0,
                      schedule={"name": "plateau", "monitor": "lr", "mode": "max", "patience": 1, "factor": 0.5})
    history = trainer.fit(x, y, epochs=4, batch_size=300, verbose=False)
    assert history["lr"] == pytest.approx([0.1, 0.1, 0.05, 0.025])
    assert history.steps["lr"] == pytest.approx([0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.025, 0.025])
    assert trainer.lr_scale == pytest.approx(0.125)


def test_monitor():
    watch = Monitor("val_accuracy", mode="max", min_delta=0.01)
    assert [watch.update(v) for v in (0.5, 0.505, 0.52, float("nan"))] == [True, False, True, False]
    with pytest.raises(ConfigError, match="monitor: 'val_loss' is not logged; available: loss, lr"):
        Monitor().value({"loss": 1.0, "lr": 0.1})
    with pytest.raises(ConfigError, match="min_delta: must be a non-negative number"):
        Monitor(min_delta=-1)


# --------------------------------------------------- examples and the CLI
@pytest.mark.parametrize("name, step, expected", [
    ("power_schedule", 10_000, 0.005),
    ("exponential_epoch", 20 * BOOK_STEPS, 0.001),
    ("exponential_epoch", 20 * BOOK_STEPS - 1, 0.01 * 0.1 ** (19 / 20)),
    ("exponential_step", 34_375, 0.001),
    ("piecewise", 5 * BOOK_STEPS, 0.005),
    ("piecewise", 15 * BOOK_STEPS, 0.001),
    ("plateau", 12_345, 0.02),
    ("exponential_decay", 68_750, 0.0001),
])
def test_example_schedules_are_the_books(name, step, expected):
    config = load_config(EXAMPLES / f"{name}.toml")
    setup = sch.build_schedule(config.schedule, lr0=config.optimizer["lr"], steps_per_epoch=BOOK_STEPS,
                               total_steps=25 * BOOK_STEPS)
    assert setup.lr(step) == pytest.approx(expected, rel=1e-9)
    assert (setup.plateau is not None) == (name == "plateau")


def test_one_cycle_example_is_the_books():
    config = load_config(EXAMPLES / "one_cycle.toml")
    steps = math.ceil(55_000 / 128)
    setup = sch.build_schedule(config.schedule, lr0=config.optimizer["lr"], steps_per_epoch=steps,
                               total_steps=25 * steps)
    book = BookOneCycle(25 * steps, max_rate=0.05)
    assert sch.values(setup.lr, 25 * steps) == pytest.approx([book.next_rate() for _ in range(25 * steps)])
    assert setup.momentum is None and config.train.batch_size == 128


@pytest.mark.parametrize("name", SCHEDULING_EXAMPLES)
def test_scheduling_examples_train_quickly(name, tmp_path, capsys):
    """Each example config runs end to end (on the bundled digits, 2 epochs: the settings, not the figures)."""
    assert main(["train", str(EXAMPLES / f"{name}.toml"), "--epochs", "2", "-q", "-o", str(tmp_path),
                 "--set", "data.name=digits", "--set", "data.validation_size=300"]) == 0
    history = History.from_json(tmp_path / "history.json")
    assert len(history) == 2 and len(history.steps["lr"]) == 2 * math.ceil(1200 / load_config(
        EXAMPLES / f"{name}.toml").train.batch_size)


def test_plot_schedule_cli(tmp_path, capsys):
    out = tmp_path / "schedule.png"
    assert main(["plot-schedule", str(EXAMPLES / "one_cycle.toml"), "--steps-per-epoch", "430", "-o", str(out),
                 "--set", "schedule.cycle_momentum=true"]) == 0
    printed = capsys.readouterr().out
    assert "lr: 0.005 at the first step, 0.05 at most" in printed and "10750 steps" in printed
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["plot-schedule", str(EXAMPLES / "piecewise.toml"), "--steps-per-epoch", "10", "-o", str(out),
                 "--set", "schedule.name=piecewise"]) == 2
    assert "schedule.name: unknown schedule 'piecewise'" in capsys.readouterr().err


# ------------------------------------------------ piecewise boundaries: the book's function against Keras' class
def keras_piecewise_constant_decay(step, boundaries, values):
    """Keras' PiecewiseConstantDecay, transcribed (tf.keras 2 and Keras 3 alike): ``values[0]``
    while ``step <= boundaries[0]``, ``values[i]`` for ``boundaries[i-1] < step <= boundaries[i]``."""
    if step <= boundaries[0]:
        return values[0]
    for low, high, value in zip(boundaries[:-1], boundaries[1:], values[1:-1]):
        if low < step <= high:
            return value
    return values[-1]


def book_piecewise_constant(epoch, boundaries, values):
    """The chapter's ``piecewise_constant(boundaries, values)`` function, transcribed:
    ``values[np.argmax(np.array([0] + boundaries) > epoch) - 1]``."""
    edges = [0, *boundaries]
    first_above = next((i for i, edge in enumerate(edges) if edge > epoch), 0)
    return values[first_above - 1]


BOUNDARIES, VALUES = [5, 15, 16], [0.01, 0.005, 0.002, 0.001]


def test_piecewise_default_is_the_books_function_and_inclusive_is_kerass_class():
    default = sch.piecewise_constant(boundaries=BOUNDARIES, values=VALUES)
    inclusive = sch.piecewise_constant(boundaries=BOUNDARIES, values=VALUES, inclusive=True)
    for t in range(25):
        assert default(t) == book_piecewise_constant(t, BOUNDARIES, VALUES), t
        assert inclusive(t) == keras_piecewise_constant_decay(t, BOUNDARIES, VALUES), t
    assert (default(5), inclusive(5)) == (0.005, 0.01)  # the boundary step itself


def test_piecewise_inclusive_from_a_config_table():
    table = {"name": "piecewise_constant", "per": "epoch", "boundaries": [5, 15], "values": [0.01, 0.005, 0.001],
             "inclusive": True}
    setup = sch.build_schedule(table, lr0=0.01, steps_per_epoch=10, total_steps=300)
    assert [setup.lr(t) for t in (49, 50, 59, 60, 159, 160)] == [0.01, 0.01, 0.01, 0.005, 0.005, 0.001]
    with pytest.raises(ConfigError, match="schedule.inclusive: must be true or false, got 'yes'"):
        sch.check_schedule({**table, "inclusive": "yes"}, lr0=0.01)

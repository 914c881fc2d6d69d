"""The compiled step (``compile=True``) gives the eager fused step's History, and trains eagerly where it cannot compile."""

import shutil
import warnings

import pytest
import torch
from torch import nn
from fused_helpers import seeded_stack
from helpers import small_model, tiny_digits

import trainwell as tw
from trainwell.cli import main
from trainwell.config import load_config
from trainwell.errors import ConfigError
from trainwell.model.layers import BatchNormalization, Dense, Dropout
from trainwell.train import compiled
from trainwell.train.history import History


def _fit(compile, *, layers=None, epochs=3, **options):
    """A tiny fit: 200 samples in batches of 32 (a short last batch), an exponential schedule (a new rate each step)."""
    model = small_model(*(layers or [Dense(16, activation="selu"), BatchNormalization(), Dropout(0.2),
                                     Dense(16, activation="elu")]), input_shape=(8,))
    generator = torch.Generator().manual_seed(1)
    x, y = torch.randn(200, 8, generator=generator), torch.randint(0, 3, (200,), generator=generator)
    trainer = tw.Trainer(model, optimizer={"name": "sgd", "lr": 0.05}, schedule={"name": "exponential", "s": 10},
                         seed=0, compile=compile, **options)
    trainer.data = x, y
    return trainer.fit(x, y, epochs=epochs, batch_size=32, verbose=False), model, trainer


def _without(history, key="time"):
    return [{k: v for k, v in record.items() if k != key} for record in history]


@pytest.mark.slow  # a real compile: about 40 s of CPU with an empty inductor cache, 15 s with a warm one
@pytest.mark.skipif(shutil.which("g++") is None and shutil.which("c++") is None,
                    reason="torch.compile's CPU backend needs a C++ compiler")
def test_compiled_fit_gives_the_eager_history():
    from torch._dynamo.utils import counters

    eager, eager_model, _ = _fit(False)
    graphs = counters["stats"]["unique_graphs"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a failed compile would warn and train eagerly
        fast, fast_model, trainer = _fit(True)
    # one graph for the whole fit: the rate changing each step, the short last batch, batch norm's moving
    # statistics and the dropout masks recompile nothing
    assert counters["stats"]["unique_graphs"] - graphs == 1
    for a, b in zip(_without(eager), _without(fast)):
        assert a == pytest.approx(b, rel=1e-5, abs=1e-6)
    for (name, a), b in zip(eager_model.state_dict().items(), fast_model.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6, msg=name)  # moving statistics and counters too
    trainer.fit(*trainer.data, epochs=1, batch_size=32, verbose=False)  # a fit more: its compiled pass is kept
    assert counters["stats"]["unique_graphs"] - graphs == 1 and len(trainer.history) == 4


def test_a_failed_compile_warns_once_and_trains_eagerly(monkeypatch):
    def broken(function):
        def run(*args):
            raise RuntimeError("no working C++ compiler\nmore detail")
        return run

    monkeypatch.setattr(compiled, "_compile", broken)
    eager, *_ = _fit(False, epochs=2)
    with pytest.warns(RuntimeWarning, match=r"compiling the fused step failed \(RuntimeError: no working C\+\+ "
                                            r"compiler\); training with the eager fused step") as caught:
        fallen_back, _, trainer = _fit(True, epochs=2)
        trainer.fit(*trainer.data, epochs=1, batch_size=32, verbose=False)  # the next fit does not try again
    assert len([w for w in caught if "compiling" in str(w.message)]) == 1
    assert _without(fallen_back)[:2] == _without(eager)


def test_without_the_fused_step_compile_warns_and_trains_with_autograd():
    plain, *_ = _fit(False, fused=False, epochs=1)
    with pytest.warns(RuntimeWarning, match=r"compile applies to the fused step only, which this fit cannot take "
                                            r"\(the trainer was made with fused=False\)"):
        history, *_ = _fit(True, fused=False, epochs=1)
    assert _without(history) == _without(plain)


def test_compile_must_be_a_bool():
    with pytest.raises(ConfigError, match=r"compile: expected true or false, got 'yes'"):
        tw.Trainer(small_model(), compile="yes")


def test_config_key_and_cli_flag_reach_the_compiled_step(tmp_path, monkeypatch):
    compiled_for = []

    def recording(function):  # stands in for torch.compile: records the call, runs the pass as it is
        compiled_for.append(function.__name__)
        return function

    monkeypatch.setattr(compiled, "_compile", recording)
    path = tmp_path / "tiny.toml"
    path.write_text(tiny_digits(epochs=1).replace('name = "adam"', 'name = "sgd"'))
    assert load_config(path).train.compile is False
    assert main(["train", str(path), "-o", str(tmp_path / "flag"), "-q", "--compile"]) == 0
    assert compiled_for == ["_pass_with_rate"]
    path.write_text(tiny_digits(epochs=1, train="compile = true").replace('name = "adam"', 'name = "sgd"'))
    assert load_config(path).train.compile is True
    assert main(["train", str(path), "-o", str(tmp_path / "key"), "-q"]) == 0
    assert compiled_for == ["_pass_with_rate"] * 2
    flag, key = (History.from_json(tmp_path / run / "history.json") for run in ("flag", "key"))
    assert _without(flag) == _without(key)


def test_the_readmes_compile_key_is_a_valid_train_section(tmp_path):
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("**The compiled step.**"):readme.index("## Why each dependency")]
    snippet = re.findall(r"```toml\n(.*?)```", section, flags=re.S)[0]
    path = tmp_path / "run.toml"
    path.write_text('[model]\nlayers = [{ type = "flatten" }, { type = "dense", units = 10, activation = "softmax" }]\n'
                    + snippet)
    assert load_config(path).train.compile is True


def test_a_folded_adam_update_is_not_compiled_and_says_so():
    """The Adam family's folded update reads its scalars as Python numbers (a new graph each step): a fit with
    compile=True warns once and trains with the eager fused step, as compile=False does."""
    runs = []
    for compile in (True, False):
        model, x, y = seeded_stack(nn.Linear(6, 8), nn.ELU(), nn.Linear(8, 3))
        trainer = tw.Trainer(model, optimizer={"name": "nadam", "lr": 1e-2}, seed=0, compile=compile)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            history = trainer.fit(x, y, epochs=2, batch_size=16, verbose=False)
        runs.append((history, model, [str(w.message) for w in caught if "compile" in str(w.message)]))
    assert runs[0][2] == ["trainwell: compile does not cover this fit's fused step (NAdam's update is folded into "
                          "the fused step with scalars that change every step); training with the eager fused step"]
    assert runs[1][2] == []
    assert runs[0][0]["loss"] == runs[1][0]["loss"]
    for a, b in zip(runs[0][1].parameters(), runs[1][1].parameters()):
        assert torch.equal(a, b)

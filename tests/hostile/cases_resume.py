"""Resuming what the user meant: a killed ``trainwell train`` run, then the same command with a harmless
change (``-q``, the output folder spelled another way, ``--threads`` at its default, another ``name``),
a changed setting, ``--restart``, a corrected config after a divergence, skipped batches across a kill.

Each case has one right ending. Where the command should train, the outcome is ``handled`` only if its
History and weights equal, bit for bit, those of an uninterrupted run of the same command in a fresh
folder; a refusal there counts as a ``wrong result`` (the command did not do what it meant). Where it
should refuse (the fit changed), the outcome is ``clear error`` only if the one line names the setting
that differs and says how to start over (``--restart``), and the saved state is still there; a refusal
that does not say what differs fails the project's standard and also counts as a ``wrong result``.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from outcomes import CLEAR, HANDLED, TRACEBACK, WRONG, Case, is_clear_message, run_cli

AREA = "resume"

CONFIG = """
name = "tiny"
seed = 3
[data]
name = "digits"
validation_size = 200
[model]
layers = [{type = "flatten"}, {type = "dense", units = 16, activation = "relu", init = "he_normal"},
          {type = "dense", units = 10, activation = "softmax"}]
[optimizer]
name = "adam"
lr = 0.01
[train]
epochs = 2
batch_size = 64
"""

# Two phases: the second one's rate diverges (1e30) or is the corrected one (0.01).
PHASES = CONFIG.replace("epochs = 2\n", "") + """
[callbacks]
terminate_on_nan = true
[[phases]]
epochs = 2
[[phases]]
epochs = 2
optimizer = {name = "sgd", lr = LR}
"""


@contextlib.contextmanager
def interrupted_after_first_save():
    """Training raises KeyboardInterrupt (a Ctrl-C) right after the first state is saved: one epoch done."""
    from trainwell.train.trainer import Trainer

    save = Trainer._save

    def save_then_interrupt(self, *args, **kwargs):
        save(self, *args, **kwargs)
        raise KeyboardInterrupt

    Trainer._save = save_then_interrupt
    try:
        yield
    finally:
        Trainer._save = save


def _same_run(a: Path, b: Path) -> bool:
    """Whether two output folders hold the same History (but its times) and bit-identical weights."""
    from trainwell.train.history import History
    from trainwell.model.saving import load_model

    ha, hb = History.from_json(a / "history.json"), History.from_json(b / "history.json")
    strip = lambda h: [{k: v for k, v in r.items() if k != "time"} for r in h.records]  # noqa: E731
    if strip(ha) != strip(hb) or ha.steps != hb.steps:
        return False
    wa, wb = load_model(a / "model.safetensors").state_dict(), load_model(b / "model.safetensors").state_dict()
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def _expect_training(result, clean: Path, out: Path) -> str:
    if result.escaped is not None or "Traceback" in result.stderr:
        return TRACEBACK
    if result.rc != 0:
        return WRONG  # refused (or failed) where the command should have trained
    return HANDLED if _same_run(clean, out) else WRONG


def _config(folder: Path, text: str = CONFIG) -> Path:
    path = folder / "run.toml"
    path.write_text(text)
    return path


def resumes(first: list[str], second: list[str], *, relative_first: bool = False) -> Callable[[Path], str]:
    """Kill ``train CONFIG -o OUT *first`` after one epoch, run ``train CONFIG -o OUT *second``: it must
    resume to the uninterrupted result. ``relative_first``: the first command names OUT relative to its folder."""

    def run(folder: Path) -> str:
        config, out, clean = _config(folder), folder / "out", folder / "clean"
        if run_cli(["train", config, "-o", clean, *second]).rc != 0:
            return WRONG
        with interrupted_after_first_save():
            if relative_first:
                with contextlib.chdir(folder):
                    killed = run_cli(["train", config, "-o", "out", *first])
            else:
                killed = run_cli(["train", config, "-o", out, *first])
        if killed.rc != 130 or not any((out / "resume").glob("phase-*/state-*")):
            return TRACEBACK if killed.escaped is not None else WRONG
        result = run_cli(["train", config, "-o", out.resolve(), *second])
        if result.rc == 0 and "resuming at epoch 2" not in result.stderr:
            return WRONG  # trained again from the start: the killed run's epoch was thrown away
        return _expect_training(result, clean, out)

    return run


def refuses(second: list[str], names: tuple[str, ...], *, patch: Callable[[], contextlib.AbstractContextManager]
            = contextlib.nullcontext) -> Callable[[Path], str]:
    """Kill ``train CONFIG -o OUT -q`` after one epoch; ``train CONFIG -o OUT -q *second`` changes the fit and
    must be refused in one line naming ``names`` and ``--restart``, the saved state kept."""

    def run(folder: Path) -> str:
        config, out = _config(folder), folder / "out"
        with interrupted_after_first_save():
            run_cli(["train", config, "-o", out, "-q"])
        before = {p: p.read_bytes() for p in sorted((out / "resume").rglob("*")) if p.is_file()}
        with patch():
            result = run_cli(["train", config, "-o", out, "-q", *second])
        if result.escaped is not None or "Traceback" in result.stderr:
            return TRACEBACK
        if result.rc == 0 or not is_clear_message(result.stderr):
            return WRONG if result.rc == 0 else TRACEBACK
        after = {p: p.read_bytes() for p in sorted((out / "resume").rglob("*")) if p.is_file()}
        said = all(name in result.stderr for name in (*names, "--restart"))
        return CLEAR if said and after == before else WRONG

    return run


def restarts(second: list[str]) -> Callable[[Path], str]:
    """Kill a run after one epoch; ``... --restart *second`` trains from epoch 1, as a fresh run of it would."""

    def run(folder: Path) -> str:
        config, out, clean = _config(folder), folder / "out", folder / "clean"
        if run_cli(["train", config, "-o", clean, "-q", *second]).rc != 0:
            return WRONG
        with interrupted_after_first_save():
            run_cli(["train", config, "-o", out, "-q"])
        result = run_cli(["train", config, "-o", out, "-q", "--restart", *second])
        if result.rc == 0 and "resuming" in result.stderr:
            return WRONG
        return _expect_training(result, clean, out)

    return run


def corrected_after_divergence(folder: Path) -> str:
    """Phase 2 diverges (a ridiculous rate) after phase 1 saved its states; the corrected config, run in the
    same folder, must train (from the start: the diverged fit's state is of no use) to a fresh run's result."""
    diverging, corrected = _config(folder, PHASES.replace("LR", "1e30")), folder / "fixed.toml"
    corrected.write_text(PHASES.replace("LR", "0.01"))
    out, clean = folder / "out", folder / "clean"
    if run_cli(["train", corrected, "-o", clean, "-q"]).rc != 0:
        return WRONG
    failed = run_cli(["train", diverging, "-o", out, "-q"])
    if failed.rc != 2 or "diverged" not in failed.stderr:
        return TRACEBACK if failed.escaped is not None else WRONG
    return _expect_training(run_cli(["train", corrected, "-o", out, "-q"]), clean, out)


class _KillAt:
    """A callback raising at the first batch end from a global step on (skipped batches have none), as a kill
    would stop the process there; ``_KillAt(-1)`` never raises."""

    def __new__(cls, step):
        from trainwell.callbacks import Callback

        class KillAt(Callback):
            def on_batch_end(self, trainer, at):
                if step >= 0 and at >= step:
                    raise KeyboardInterrupt

        return KillAt()


def skipped_batches_across_a_kill(folder: Path) -> str:
    """Trainer(skip_nonfinite=True) on data with nan rows, killed mid-epoch 2: the resumed History, whose
    ``skipped_batches`` counts the batches skipped so far, equals the uninterrupted one."""
    import trainwell as tw

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 240)
    x = (np.eye(3)[y] * 2 + rng.normal(size=(240, 3))).astype(np.float32)
    x[rng.choice(240, 20, replace=False), 0] = np.nan

    def fit(resume_dir, callbacks=()):
        torch.manual_seed(0)
        model = tw.build_model([tw.Dense(8, activation="relu"), tw.Dense(3, activation="softmax")], input_shape=(3,))
        trainer = tw.Trainer(model, optimizer={"name": "sgd", "lr": 0.05}, callbacks=list(callbacks), seed=1,
                             skip_nonfinite=True)
        return trainer.fit(x, y, epochs=3, batch_size=8, verbose=False, resume_dir=resume_dir,
                           save_every_steps=10 if resume_dir else None)

    try:
        expected = fit(None)
        try:
            fit(folder / "state", [_KillAt(45)])
        except KeyboardInterrupt:
            pass
        resumed = fit(folder / "state", [_KillAt(-1)])  # the same callbacks, disarmed
    except Exception:  # noqa: BLE001
        return TRACEBACK
    if not resumed.records[-1].get("skipped_batches"):
        return WRONG  # no batch was skipped: the case tests nothing
    strip = lambda h: [{k: v for k, v in r.items() if k != "time"} for r in h.records]  # noqa: E731
    return HANDLED if strip(resumed) == strip(expected) and resumed.steps == expected.steps else WRONG


@contextlib.contextmanager
def another_trainwell_version():
    import trainwell

    version = trainwell.__version__
    trainwell.__version__ = version + ".post1"
    try:
        yield
    finally:
        trainwell.__version__ = version


def cases(full: bool = False) -> list[Case]:
    """The tests' sample: one case per item of the issue; ``full`` adds the other harmless changes and refusals.

    Each case is a few digits fits of a second or less."""
    threads = str(torch.get_num_threads())
    sample = [
        Case(AREA, "-q added on resume", resumes([], ["-q"])),
        Case(AREA, "-q removed on resume", resumes(["-q"], [])),
        Case(AREA, "-o relative, then absolute", resumes(["-q"], ["-q"], relative_first=True)),
        Case(AREA, "a changed lr is refused, naming it", refuses(["--set", "optimizer.lr=0.002"], ("optimizer.lr",))),
        Case(AREA, "a changed lr with --restart", restarts(["--set", "optimizer.lr=0.002"])),
        Case(AREA, "a corrected config after a divergence", corrected_after_divergence),
        Case(AREA, "skipped_batches across a kill", skipped_batches_across_a_kill),
    ]
    more = [
        Case(AREA, "--threads at its default on resume", resumes(["-q"], ["-q", "--threads", threads])),
        Case(AREA, "another name with the same -o", resumes(["-q"], ["-q", "--set", "name=renamed"])),
        Case(AREA, "--overwrite on resume (nothing finished)", resumes(["-q"], ["-q", "--overwrite"])),
        Case(AREA, "a changed epoch count is refused, naming it", refuses(["--epochs", "4"], ("train.epochs",))),
        Case(AREA, "another trainwell version is refused, naming it", refuses([], ("trainwell",),
                                                                               patch=another_trainwell_version)),
        Case(AREA, "the same config with --restart", restarts([])),
    ]
    return sample + more if full else sample

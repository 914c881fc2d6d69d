"""What a procedure gets: Context.fit saves the fit's state at each epoch end, and a killed fit resumes from it."""

from __future__ import annotations

import pytest

from trainwell.store import RunStore, store_path


def test_a_procedures_fit_resumes_where_a_killed_run_stopped(tmp_path):
    """Context.fit saves the state at each epoch end; the next attempt continues from it."""
    import torch

    import trainwell as tw
    from trainwell.catalog import get, get_budget
    from trainwell.catalog.context import Context

    class Killed(Exception):
        pass

    class KillAtEpoch(tw.Callback):
        def __init__(self, armed):
            self.armed, self.epochs = armed, []

        def on_epoch_begin(self, trainer, epoch):
            self.epochs.append(epoch)
            if self.armed and epoch == 3:
                raise Killed

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(256, 6, generator=g), torch.randint(0, 3, (256,), generator=g)

    def attempt(kill=False):
        tw.seed_everything(7)
        model = tw.build_model([tw.Dense(16, activation="relu"), tw.Dense(3, activation="softmax")], input_shape=(6,))
        trainer = tw.Trainer(model, optimizer={"name": "adam"}, seed=7, callbacks=[KillAtEpoch(kill)])
        return trainer, model

    with RunStore(store_path(tmp_path)) as store:
        context = Context(entry=get("ex10_3"), seed=42, budget=get_budget("smoke"), store=store,
                          run_id=store.start_run("ex10_3", 42, "smoke", config={}, versions={}, device="cpu"),
                          out=tmp_path)
        trainer, _ = attempt(kill=True)
        with pytest.raises(Killed):
            context.fit(trainer, x, y, phase="pairs", epochs=5, batch_size=32, verbose=False)
        assert (context.state_dir / "resume" / "pairs").is_dir()
        trainer, resumed = attempt()
        history = context.fit(trainer, x, y, phase="pairs", epochs=5, batch_size=32, verbose=False)
        assert trainer.callbacks[0].epochs == [3, 4, 5]  # epochs 1 and 2 came from the saved state
        assert not (context.state_dir / "resume" / "pairs").exists()
    trainer, uninterrupted = attempt()
    reference = trainer.fit(x, y, epochs=5, batch_size=32, verbose=False)
    assert history["loss"] == reference["loss"] and len(history) == 5
    for a, b in zip(resumed.state_dict().values(), uninterrupted.state_dict().values()):
        assert torch.equal(a, b)


def _tiny_fit(context, phase: str, epochs: int):
    import torch

    import trainwell as tw

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(128, 6, generator=g), torch.randint(0, 3, (128,), generator=g)
    model = tw.build_model([tw.Dense(8, activation="relu"), tw.Dense(3, activation="softmax")], input_shape=(6,))
    trainer = tw.Trainer(model, optimizer={"name": "sgd"}, seed=0, callbacks=[context.recorder(phase)])
    return trainer.fit(x, y, epochs=epochs, batch_size=32, verbose=False)


def test_the_recorder_writes_each_epoch_once_and_counts_the_fits_time_as_training(tmp_path, monkeypatch):
    from trainwell.catalog import get, get_budget
    from trainwell.catalog.context import Context

    with RunStore(store_path(tmp_path)) as store:
        context = Context(entry=get("ex10_3"), seed=42, budget=get_budget("smoke"), store=store,
                          run_id=store.start_run("ex10_3", 42, "smoke"), out=tmp_path)
        written = []
        log_epoch = store.log_epoch
        monkeypatch.setattr(store, "log_epoch", lambda *args: (written.append(args[1:3]), log_epoch(*args)))
        first = _tiny_fit(context, "first", 4)
        second = _tiny_fit(context, "second", 2)  # another fit, another History: its epochs 1 and 2 are written too
        assert written == [("first", 1), ("first", 2), ("first", 3), ("first", 4), ("second", 1), ("second", 2)]
        assert [r["loss"] for r in store.epochs(context.run_id)["first"]] == first["loss"]
        assert context.train_s == pytest.approx(sum(first["time"]) + sum(second["time"]))
        with context.training():  # a search's fits, which the store does not record
            sum(range(10_000))
        assert context.train_s > sum(first["time"]) + sum(second["time"])

"""Exercise 9's procedures: what ex9_3 times and judges."""

from __future__ import annotations

from types import SimpleNamespace

from trainwell.catalog.sections import exercise9
from trainwell.catalog.vocabulary import BUDGETS


def test_ex9_3_judges_the_fastest_of_each_way_so_one_slowed_fit_does_not_turn_the_speed_up_over(monkeypatch):
    """A load that lands on one cached fit (3.0 s where the cache takes 0.5) would make the cache look
    slower than no cache (1.0 s) if that fit were the one timed; the fastest of each way is compared."""
    seconds = {False: iter([9.0, 1.0, 1.2, 1.1]), True: iter([9.0, 3.0, 0.5, 0.6])}  # the first: the recorded fit
    calls = []

    def train(context, model, data, *, phase, cache, epochs, early_stopping, timed, recorded):
        calls.append((cache, recorded, timed, early_stopping))
        return SimpleNamespace(cache=cache), next(seconds[cache])

    monkeypatch.setattr(exercise9, "_setup", lambda context: ("data", "source"))
    monkeypatch.setattr(exercise9, "_reuse", lambda source, n: "model")
    monkeypatch.setattr(exercise9, "_train", train)
    monkeypatch.setattr(exercise9, "_scores", lambda trainer, data: {
        "val_accuracy": 0.9, "test_accuracy": 0.8 if trainer.cache else 0.7})
    results = {}
    context = SimpleNamespace(budget=BUDGETS["full"], result=results.update)
    exercise9.ex9_3(context)

    assert results["speedup"] == 1.0 / 0.5
    assert (results["time_uncached_s"], results["time_cached_s"]) == (1.0, 0.5)
    assert results["uncached_test_accuracy"] == 0.7 and results["test_accuracy"] == 0.8
    # the two ways take turns; only the first of each writes into the store; none stops early
    assert [(cache, recorded) for cache, recorded, _, _ in calls] == \
        [(False, True), (True, True)] + [(False, False), (True, False)] * exercise9.TIMINGS
    assert all(timed and not early_stopping for _, _, timed, early_stopping in calls)

"""The plan of a reproduce: the seeds each entry runs, and the datasets an entry needs."""

from __future__ import annotations

from trainwell import catalog as experiments
from trainwell.catalog import BUDGETS


def test_relu_100_is_judged_by_spread_and_runs_ten_seeds_in_the_full_budget():
    from trainwell.catalog import get
    from trainwell.catalog.plan import plan

    relu = get("relu_100")
    (target,) = relu.targets
    assert target.spread_seeds >= 10 and relu.full_seeds == target.spread_seeds
    tasks = plan(["relu_100", "selu_100"], seeds=3, budget=BUDGETS["full"])
    assert sorted(t.seed for t in tasks if t.entry.id == "relu_100") == list(range(42, 42 + relu.full_seeds))
    assert sorted(t.seed for t in tasks if t.entry.id == "selu_100") == [42, 43, 44]
    assert {t.seed for t in plan(["relu_100"], seeds=2, budget=BUDGETS["quick"])} == {42, 43}  # CI stays cheap


def test_entries_say_which_datasets_they_need():
    from trainwell.catalog.plan import datasets_needed

    assert datasets_needed(experiments.get("leaky_relu")) == {"fashion_mnist"}
    assert datasets_needed(experiments.get("transfer_b_on_a")) == {"fashion_mnist"}  # through its needs
    assert datasets_needed(experiments.get("ex10_1")) == {"mnist"}
    assert datasets_needed(experiments.get("ex8_3")) == {"mnist"}
    assert datasets_needed(experiments.get("selu_constants")) == set()

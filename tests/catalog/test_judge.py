"""Judging a figure: the default tolerances, the mean over seeds, budgets that are not comparable,
the band applied, and a chaotic figure judged by the spread of its seeds."""

from __future__ import annotations

import pytest

from trainwell.catalog import BUDGETS, Target, judge

RELU_100_SEEDS = [0.61, 0.66, 0.72, 0.58, 0.69, 0.74, 0.63, 0.65, 0.70, 0.60]


@pytest.mark.parametrize("epochs, value, status", [
    (10, 0.8430 + 0.0149, "pass"), (10, 0.8430 - 0.016, "fail"),   # 10+ epochs: within 0.015
    (5, 0.8430 - 0.024, "pass"), (5, 0.8430 + 0.026, "fail"),      # shorter: within 0.025
])
def test_default_tolerances(epochs, value, status):
    assert judge(Target("val_accuracy", 0.8430), [value], epochs=epochs, budget=BUDGETS["full"]).status == status


def test_tolerances_are_configurable_and_the_mean_over_seeds_is_judged():
    outcome = judge(Target("val_accuracy", 0.80), [0.77, 0.79], epochs=10, budget=BUDGETS["full"],
                    tolerance_long=0.03)
    assert outcome.status == "pass" and outcome.tolerance == 0.03
    assert abs(outcome.mean - 0.78) < 1e-12 and outcome.std > 0 and abs(outcome.difference + 0.02) < 1e-12


def test_quick_budget_is_not_comparable_except_for_budget_free_figures():
    assert judge(Target("val_accuracy", 0.84), [0.5], epochs=10, budget=BUDGETS["quick"]).status == "not comparable"
    constant = Target("alpha", 1.6733, tolerance=5e-5, budget_free=True)
    assert judge(constant, [1.67326], epochs=0, budget=BUDGETS["quick"]).status == "pass"
    assert judge(Target("x", low=1, budget_free=True), [0.0], epochs=0, budget=BUDGETS["smoke"]).status == "fail"
    assert judge(Target("x", 0.5), [], epochs=10, budget=BUDGETS["full"]).status == "missing"
    assert judge(Target("x", 0.5), [float("nan")], epochs=10, budget=BUDGETS["full"]).status == "fail"


def test_the_judged_band_is_what_judge_applies():
    target = Target("x", 0.5, low=0.49)
    outcome = judge(target, [0.495], epochs=10, budget=BUDGETS["full"])
    assert outcome.band == (0.49, 0.515) and outcome.status == "pass"
    assert judge(target, [0.485], epochs=10, budget=BUDGETS["full"]).status == "fail"  # within ±0.015, below low
    assert judge(Target("x", high=1.1), [1.0263], epochs=0, budget=BUDGETS["full"]).band == (None, 1.1)


def test_a_chaotic_figure_is_judged_by_the_spread_of_its_seeds():
    target = Target("val_accuracy", 0.7032, spread_seeds=10)
    outcome = judge(target, RELU_100_SEEDS, epochs=5, budget=BUDGETS["full"])
    assert outcome.status == "pass" and outcome.band == (0.58, 0.74)  # the mean 0.658 is 0.045 below the book
    assert judge(target, [v - 0.05 for v in RELU_100_SEEDS], epochs=5, budget=BUDGETS["full"]).status == "fail"
    few = judge(target, RELU_100_SEEDS[:3], epochs=5, budget=BUDGETS["full"])
    assert few.status == "not comparable" and few.reason == "3 of 10 seeds"
    assert judge(target, RELU_100_SEEDS, epochs=5, budget=BUDGETS["quick"]).status == "not comparable"

"""The doctor's measured rules: turn a diagnostics recording (and the model's spec) into findings.

Each rule reads the per-layer statistics a :class:`~trainwell.doctor.record.Diagnostics`
callback recorded and, when something the chapter warns about is happening, returns a
:class:`~trainwell.doctor.findings.Finding` that names the layers, the numbers behind it and
what the chapter suggests. Statistics are summarized by their median over the recorded
steps, so one noisy step (the first ones, before the optimizer has settled) does not raise
an alarm.

The SELU self-normalization conditions are checked twice: statically, on the spec and
the data scaling (:mod:`trainwell.doctor.selfnorm`), and as measured here: hidden layers
whose mean and std drift away from 0 and 1. :func:`diagnose` runs both.

>>> diagnose(Recording(every=1, layers=[])).healthy
True
"""

from __future__ import annotations

import math
import statistics
from typing import Any, Mapping, Sequence

from trainwell.doctor.findings import Diagnosis, Finding, layer_span
from trainwell.doctor.record import Recording
from trainwell.doctor.selfnorm import check_self_normalization
from trainwell.doctor.thresholds import GRADIENT_MEASURES, MIN_HIDDEN_FOR_DEPTH_RULES, THRESHOLDS

__all__ = ["diagnose", "gradient_flow", "measured_findings"]


# ----------------------------------------------------------------- summaries of a recording


def _typical(recording: Recording, stat: str, *, last_half: bool = False) -> list[float | None]:
    """The median over the recorded steps of one statistic, per layer (None where never measured)."""
    samples = recording.samples[len(recording.samples) // 2:] if last_half else recording.samples
    result = []
    for layer in recording.layers:
        values = [s.layers.get(layer.name, {}).get(stat) for s in samples]
        values = [v for v in values if v is not None and math.isfinite(v)]
        result.append(statistics.median(values) if values else None)
    return result


def _geometric_mean(values: Sequence[float | None]) -> float | None:
    positive = [v for v in values if v is not None and v > 0]
    return math.exp(sum(math.log(v) for v in positive) / len(positive)) if positive else None


def _hidden(recording: Recording) -> list[str]:
    """The layers below the output layer (the last recorded one)."""
    return [layer.name for layer in recording.layers[:-1]]


def _worst(names: Sequence[str], values: Sequence[float], *, count: int = 3, fmt: str = "{:.0%}") -> str:
    ranked = sorted(zip(names, values), key=lambda pair: -pair[1])[:count]
    return ", ".join(f"{name} {fmt.format(value)}" for name, value in ranked)


# ----------------------------------------------------------------- measured rules


def _non_finite(recording: Recording) -> list[Finding]:
    bad = [s.step for s in recording.samples
           if (s.loss is not None and not math.isfinite(s.loss))
           or any(v.get("grad_norm") is not None and not math.isfinite(v["grad_norm"]) for v in s.layers.values())]
    if not bad:
        return []
    return [Finding("exploding_gradients", "exploding gradients: the loss or gradients are not finite",
                    f"nan or infinite values from step {bad[0]} on ({len(bad)} of {len(recording.samples)} "
                    "recorded steps)", "lower the learning rate, clip gradients ([train] clipnorm = 1.0), "
                    "add batch normalization", numbers={"first_step": bad[0]}, severity="error")]



def gradient_flow(recording: Recording) -> dict[str, Any] | None:
    """How the gradients change with depth: bottom against top quarter of the hidden layers.

    For each measure of :data:`GRADIENT_MEASURES` it gives the geometric means of the
    per-layer medians over the recorded steps and their ratio (bottom / top: under 1
    means the gradients shrink on their way down). None for nets too shallow to tell.
    """
    hidden = _hidden(recording)
    if len(hidden) < MIN_HIDDEN_FOR_DEPTH_RULES:
        return None
    k = max(1, len(hidden) // 4)
    flow: dict[str, Any] = {"k": k, "bottom": hidden[:k], "top": hidden[-k:]}
    for stat in GRADIENT_MEASURES:
        values = _typical(recording, stat)[:len(hidden)]
        bottom, top = _geometric_mean(values[:k]), _geometric_mean(values[-k:])
        if bottom is not None and top is not None:
            flow[stat] = {"bottom": bottom, "top": top, "ratio": bottom / top}
    return flow


def _gradients(recording: Recording) -> list[Finding]:
    flow = gradient_flow(recording)
    if flow is None:
        return []
    limit = THRESHOLDS["gradient_ratio"]
    ratios = {stat: flow[stat]["ratio"] for stat in GRADIENT_MEASURES if stat in flow}
    shrinking = [stat for stat, ratio in ratios.items() if ratio < 1 / limit]
    if shrinking:
        return [Finding("vanishing_gradients", "vanishing gradients",
                        _gradient_detail(recording, flow, shrinking, "smaller") + ", so the lower layers barely learn",
                        "He initialization (init = \"he_normal\") with a ReLU-family activation, or LeCun with "
                        "SELU; a non-saturating activation (leaky_relu, elu, selu) instead of sigmoid/tanh; "
                        "batch normalization", layers=tuple(flow["bottom"]), numbers=_gradient_numbers(flow, shrinking))]
    growing = [stat for stat, ratio in ratios.items() if ratio > limit]
    if growing:
        return [Finding("exploding_gradients", "exploding gradients", _gradient_detail(recording, flow, growing, "larger"),
                        "lower the learning rate, clip gradients ([train] clipnorm = 1.0), batch normalization, "
                        "an initialization matched to the activation", layers=tuple(flow["bottom"]),
                        numbers=_gradient_numbers(flow, growing))]
    return []


def _gradient_detail(recording: Recording, flow: Mapping[str, Any], stats: Sequence[str], direction: str) -> str:
    k = flow["k"]
    parts = []
    for stat in stats:
        bottom, top, ratio = flow[stat]["bottom"], flow[stat]["top"], flow[stat]["ratio"]
        factor = ratio if direction == "larger" else 1 / ratio
        parts.append(f"{GRADIENT_MEASURES[stat][1]} is {factor:.3g}x {direction} ({bottom:.2e} vs {top:.2e})")
    return (f"in the bottom {k} hidden layers ({layer_span(flow['bottom'])}) against the top {k} "
            f"({layer_span(flow['top'])}), " + "; ".join(parts)
            + f" (median over {len(recording.samples)} recorded steps)")


def _gradient_numbers(flow: Mapping[str, Any], stats: Sequence[str]) -> dict[str, float]:
    numbers = {}
    for stat in stats:
        numbers.update({f"bottom_{stat}": flow[stat]["bottom"], f"top_{stat}": flow[stat]["top"],
                        f"bottom_to_top_{stat}": flow[stat]["ratio"]})
    return numbers


def _signal(recording: Recording) -> list[Finding]:
    hidden = _hidden(recording)
    kinds = {layer.activation for layer in recording.layers[:len(hidden)]}
    if len(hidden) < MIN_HIDDEN_FOR_DEPTH_RULES or kinds == {"selu"}:  # SELU stacks: see the self-normalization rule
        return []
    stds = _typical(recording, "std")[:len(hidden)]
    if stds[0] is None or stds[0] <= 0 or all(v is None for v in stds[1:]):
        return []
    measured = [(name, v) for name, v in zip(hidden, stds) if v is not None]
    (low_name, low), (high_name, high) = min(measured, key=lambda p: p[1]), max(measured, key=lambda p: p[1])
    limit, first = THRESHOLDS["signal_ratio"], stds[0]
    advice = ("an initialization matched to the activation (He for the ReLU family, LeCun for SELU, Glorot for "
              "sigmoid/tanh), batch normalization, or a self-normalizing SELU stack")
    if first / low > limit:
        return [Finding("fading_signal", "fading signal: activations shrink with depth (the forward half of the "
                        "unstable-gradients problem)", f"the outputs' std falls from {first:.3g} at {hidden[0]} to "
                        f"{low:.3g} at {low_name}, {first / low:.3g}x smaller (median over the recorded steps); "
                        "for the signal to flow, each layer should keep the variance of its inputs going forward "
                        "and of its gradients going backward" + _backward_note(recording),
                        advice, layers=(hidden[0], low_name), numbers={"first_std": first, "lowest_std": low})]
    if high / first > limit:
        return [Finding("growing_signal", "growing signal: activations grow with depth (the forward side of "
                        "exploding gradients)", f"the outputs' std grows from {first:.3g} at {hidden[0]} to "
                        f"{high:.3g} at {high_name}, {high / first:.3g}x larger (median over the recorded steps)",
                        advice, layers=(hidden[0], high_name), numbers={"first_std": first, "highest_std": high})]
    return []


def _backward_note(recording: Recording) -> str:
    """For a fading signal: whether the backward half held, so users know which half broke."""
    flow = gradient_flow(recording) or {}
    ratios = [flow[stat]["ratio"] for stat in GRADIENT_MEASURES if stat in flow]
    limit = THRESHOLDS["gradient_ratio"]
    if ratios and all(1 / limit <= r <= limit for r in ratios):
        spread = max(max(r, 1 / r) for r in ratios)
        return (f"; going backward, the gradients stay within {spread:.2g}x from top to bottom, so here the "
                "forward signal is what is lost, with the units that die on the way")
    return ""


def _fraction_rule(recording: Recording, stat: str, code: str, title: str, what: str, advice: str) -> list[Finding]:
    limit = THRESHOLDS[stat]
    values = _typical(recording, stat, last_half=True)
    measured = [(layer.name, v) for layer, v in zip(recording.layers, values) if v is not None]
    flagged = [(name, v) for name, v in measured if v >= limit]
    if not flagged:
        return []
    names, fractions = [n for n, _ in flagged], [v for _, v in flagged]
    return [Finding(code, title, f"{len(flagged)} of {len(measured)} layers have {limit:.0%} or more {what}; "
                    f"worst: {_worst(names, fractions)} (median over the later recorded steps)", advice,
                    layers=tuple(names), numbers={"layers": len(flagged), "worst": max(fractions)})]


def _updates(recording: Recording) -> list[Finding]:
    values = _typical(recording, "update_ratio")
    flagged = [(layer.name, v) for layer, v in zip(recording.layers, values) if v is not None
               and v > THRESHOLDS["update_ratio"]]
    if not flagged:
        return []
    names = [n for n, _ in flagged]
    return [Finding("large_updates", "update steps as large as the weights",
                    f"one step changes the weights by more than {THRESHOLDS['update_ratio']:.0%} of their norm in "
                    f"{len(flagged)} layers; worst: {_worst(names, [v for _, v in flagged], fmt='{:.2g}')} "
                    "(about 1e-3 is typical)", "lower the learning rate (trainwell lr-find suggests one), "
                    "or clip gradients", layers=tuple(names), numbers={"worst": max(v for _, v in flagged)})]


def _selu_drift(recording: Recording) -> list[Finding]:
    hidden = _hidden(recording)
    selu = [i for i, layer in enumerate(recording.layers[:len(hidden)]) if layer.activation == "selu"]
    if not selu:
        return []
    means, stds = _typical(recording, "mean"), _typical(recording, "std")
    drifted = [i for i in selu if means[i] is not None and stds[i] is not None
               and (abs(means[i]) > THRESHOLDS["selu_mean"] or not
                    THRESHOLDS["selu_std_low"] <= stds[i] <= THRESHOLDS["selu_std_high"])]
    if not drifted:
        return []
    worst = max(drifted, key=lambda i: abs(math.log(max(stds[i], 1e-12))) + abs(means[i]))
    names = tuple(recording.layers[i].name for i in drifted)
    return [Finding("self_normalization.drift", "broken self-normalization: SELU outputs drift from mean 0, std 1",
                    f"{len(drifted)} of {len(selu)} SELU layers are outside |mean| <= {THRESHOLDS['selu_mean']} and "
                    f"{THRESHOLDS['selu_std_low']} <= std <= {THRESHOLDS['selu_std_high']}; worst: "
                    f"{recording.layers[worst].name} mean {means[worst]:.3g}, std {stds[worst]:.3g}",
                    "check the self-normalization conditions: standardized inputs, LeCun normal init, "
                    "AlphaDropout rather than Dropout, no batch norm, l1/l2 or max-norm",
                    layers=names, numbers={"worst_mean": means[worst], "worst_std": stds[worst]})]


def measured_findings(recording: Recording) -> list[Finding]:
    """Every measured rule's findings, most serious first."""
    return [
        *_non_finite(recording), *_gradients(recording), *_signal(recording),
        *_fraction_rule(recording, "dead", "dead_relus", "dying ReLUs", "dead units (zero for the whole batch)",
                        "leaky_relu or elu instead of relu, a lower learning rate, He initialization"),
        *_fraction_rule(recording, "saturated", "saturation", "saturated activations",
                        "outputs within 1% of the activation's asymptotes",
                        "Glorot initialization (init = \"glorot_uniform\"), standardized inputs, a non-saturating "
                        "activation (relu, leaky_relu, elu), or batch normalization before the activation"),
        *_updates(recording), *_selu_drift(recording),
    ]


def diagnose(recording: Recording, *, model: Any = None, scaling: str | None = None,
             optimizer: Mapping[str, Any] | None = None, context: Mapping[str, Any] | None = None) -> Diagnosis:
    """All findings: the measured rules on ``recording``, then the static SELU checks on ``model``.

    ``model`` is a trainwell ``Model`` or ``ModelSpec`` (plain modules get only the
    measured rules); ``scaling`` is the data's (``"standardize"``, ``"unit"``...) when
    known, else the recorded input statistics decide; ``optimizer`` its config table.
    """
    findings = measured_findings(recording)
    if model is not None:
        findings += check_self_normalization(model, scaling=scaling, optimizer=optimizer, recording=recording)
    return Diagnosis(findings=findings, context={"samples": len(recording.samples), "every": recording.every,
                                                 "gradient_flow": gradient_flow(recording), **(context or {})})

"""The doctor: turn a diagnostics recording (and the model's spec) into findings with advice.

Each rule reads the per-layer statistics a :class:`~trainwell.doctor.record.Diagnostics`
callback recorded and, when something the chapter warns about is happening, returns a
:class:`Finding` that names the layers, the numbers behind it and what the chapter
suggests. Statistics are summarized by their median over the recorded steps, so one
noisy step (the first ones, before the optimizer has settled) does not raise an alarm.

The SELU self-normalization conditions are checked twice: statically, on the spec and
the data scaling (standardized inputs, LeCun normal init, a plain stack of SELU Dense
layers, AlphaDropout rather than Dropout, no l1/l2, no max-norm, no batch norm), and as
measured: hidden layers whose mean and std drift away from 0 and 1.

>>> diagnose(Recording(every=1, layers=[])).healthy
True
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

from trainwell.callbacks import Callback
from trainwell.doctor.record import Recording

__all__ = ["Finding", "Diagnosis", "diagnose", "gradient_flow", "measured_findings", "THRESHOLDS"]

#: When a rule fires. Gradients: bottom-vs-top ratio of the typical gradient RMS; signal:
#: smallest (largest) std of a hidden layer against the first one's; fractions of units.
THRESHOLDS = {"gradient_ratio": 100.0, "signal_ratio": 5.0, "dead": 0.3, "saturated": 0.3, "update_ratio": 0.1,
              "selu_mean": 0.5, "selu_std_low": 0.5, "selu_std_high": 2.0, "input_mean": 0.25, "input_std": 0.25}
MIN_HIDDEN_FOR_DEPTH_RULES = 3


@dataclass(frozen=True)
class Finding:
    """One problem: what it is, where (layers), the numbers that show it, and what to try."""

    code: str
    title: str
    detail: str
    advice: str
    layers: tuple[str, ...] = ()
    numbers: Mapping[str, float] = field(default_factory=dict)
    severity: str = "warning"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "layers": list(self.layers), "numbers": dict(self.numbers)}


@dataclass
class Diagnosis:
    """The findings of one doctor's visit; empty means no problems found."""

    findings: list[Finding]
    context: dict[str, Any] = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        return not self.findings

    def codes(self) -> list[str]:
        return [finding.code for finding in self.findings]

    def to_dict(self) -> dict[str, Any]:
        return {"healthy": self.healthy, "context": dict(self.context),
                "findings": [finding.to_dict() for finding in self.findings]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Diagnosis":
        findings = [Finding(**{**f, "layers": tuple(f["layers"])}) for f in data["findings"]]
        return cls(findings=findings, context=dict(data.get("context", {})))

    def measured(self) -> str | None:
        """The gradient ratios behind the depth rules, shown whether or not a rule fired."""
        return _flow_summary(self.context.get("gradient_flow"))

    def to_text(self) -> str:
        """Plain text, one block per finding (what ``trainwell doctor`` prints)."""
        measured = [f"measured: {self.measured()}"] if self.measured() else []
        if self.healthy:
            return "\n".join(["no problems found", *measured])
        blocks = []
        for f in self.findings:
            where = f" [{_span(f.layers)}]" if f.layers else ""
            blocks.append(f"{f.severity.upper()}: {f.title}{where}\n  {f.detail}\n  try: {f.advice}")
        return "\n".join(blocks + measured)

    def to_markdown(self) -> str:
        """A Markdown section for reports: a table of findings with their numbers and advice."""
        measured = ["", f"Measured: {self.measured()}."] if self.measured() else []
        if self.healthy:
            return "\n".join(["No problems found.", *measured])
        rows = ["| | finding | layers | numbers | advice |", "|---|---|---|---|---|"]
        for f in self.findings:
            rows.append(f"| {f.severity} | **{f.title}**: {f.detail} | {_span(f.layers)} | "
                        + ", ".join(f"{k} = {_number(v)}" for k, v in f.numbers.items()) + f" | {f.advice} |")
        return "\n".join(rows + measured)


def _span(layers: Sequence[str]) -> str:
    return ", ".join(layers) if len(layers) <= 4 else f"{layers[0]}, {layers[1]} ... {layers[-1]} ({len(layers)} layers)"


def _number(value: float) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


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


#: The two gradient measures: their short names (the measured line) and long ones (findings).
_GRADIENT_MEASURES = {
    "grad_rms": ("weights' gradient RMS", "the weights' gradient RMS"),
    "backward_rms": ("backward signal", "the backward signal (the RMS of the loss's gradient at the layers' outputs)"),
}


def gradient_flow(recording: Recording) -> dict[str, Any] | None:
    """How the gradients change with depth: bottom against top quarter of the hidden layers.

    For each measure of :data:`_GRADIENT_MEASURES` it gives the geometric means of the
    per-layer medians over the recorded steps and their ratio (bottom / top: under 1
    means the gradients shrink on their way down). None for nets too shallow to tell.
    """
    hidden = _hidden(recording)
    if len(hidden) < MIN_HIDDEN_FOR_DEPTH_RULES:
        return None
    k = max(1, len(hidden) // 4)
    flow: dict[str, Any] = {"k": k, "bottom": hidden[:k], "top": hidden[-k:]}
    for stat in _GRADIENT_MEASURES:
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
    ratios = {stat: flow[stat]["ratio"] for stat in _GRADIENT_MEASURES if stat in flow}
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
        parts.append(f"{_GRADIENT_MEASURES[stat][1]} is {factor:.3g}x {direction} ({bottom:.2e} vs {top:.2e})")
    return (f"in the bottom {k} hidden layers ({_span(flow['bottom'])}) against the top {k} ({_span(flow['top'])}), "
            + "; ".join(parts) + f" (median over {len(recording.samples)} recorded steps)")


def _gradient_numbers(flow: Mapping[str, Any], stats: Sequence[str]) -> dict[str, float]:
    numbers = {}
    for stat in stats:
        numbers.update({f"bottom_{stat}": flow[stat]["bottom"], f"top_{stat}": flow[stat]["top"],
                        f"bottom_to_top_{stat}": flow[stat]["ratio"]})
    return numbers


def _flow_summary(flow: Mapping[str, Any] | None) -> str | None:
    """One line for the doctor's output: the gradient ratios, whether or not a rule fired."""
    if not flow or not any(stat in flow for stat in _GRADIENT_MEASURES):
        return None
    parts = [f"{short} {flow[stat]['ratio']:.3g}x" for stat, (short, _) in _GRADIENT_MEASURES.items() if stat in flow]
    return (f"gradient flow, bottom {flow['k']} hidden layers / top {flow['k']}: " + ", ".join(parts)
            + f" (a rule fires beyond {1 / THRESHOLDS['gradient_ratio']:.2g}x or {THRESHOLDS['gradient_ratio']:.3g}x)")


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
    ratios = [flow[stat]["ratio"] for stat in _GRADIENT_MEASURES if stat in flow]
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
    from trainwell.doctor.selfnorm import check_self_normalization  # the static half; it builds on Finding

    findings = measured_findings(recording)
    if model is not None:
        findings += check_self_normalization(model, scaling=scaling, optimizer=optimizer, recording=recording)
    return Diagnosis(findings=findings, context={"samples": len(recording.samples), "every": recording.every,
                                                 "gradient_flow": gradient_flow(recording), **(context or {})})


# ----------------------------------------------------------------- a brief training run


@dataclass
class Checkup:
    """What ``run_doctor`` returns: the diagnosis, the recording behind it, and the training history."""

    diagnosis: Diagnosis
    recording: Recording
    history: Any

    def to_dict(self) -> dict[str, Any]:
        return {"diagnosis": self.diagnosis.to_dict(), "recording": self.recording.to_dict()}


def run_doctor(config: Any, *, steps: int | None = None, every: int | None = None, verbose: bool = False) -> Checkup:
    """Train a config's model for ``steps`` steps (its data, optimizer, schedule, clipping) and diagnose it.

    ``steps`` defaults to ``[diagnostics] steps`` (200), ``every`` to ``steps // 20`` (about
    20 recorded steps), or to ``[diagnostics] every`` when the config sets a smaller one
    (a training run's ``every = 100`` would leave the short checkup two samples).
    """
    from trainwell.config import DiagnosticsConfig, load_config
    from trainwell.doctor.record import Diagnostics
    from trainwell.errors import ConfigError
    from trainwell.recipes.train import build_from_config, prepare_data
    from trainwell.train.trainer import Trainer, seed_everything

    if not hasattr(config, "model_dump"):
        config = load_config(config)
    section = config.diagnostics or DiagnosticsConfig()
    steps = section.steps if steps is None else steps
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ConfigError(f"diagnostics.steps: must be an integer >= 1, got {steps!r}")
    if every is None:
        every = max(1, steps // 20)
        if "every" in section.model_fields_set:
            every = min(every, section.every)
    seed_everything(config.seed)
    prepared = prepare_data(config)
    seed_everything(config.seed)
    model = build_from_config(config, prepared.input_shape)
    train = config.train
    n = min(len(prepared.x_train), steps * train.batch_size)
    epochs = -(-steps * train.batch_size // n)  # a small dataset is gone through more than once
    recorder = Diagnostics(every)
    trainer = Trainer(model, loss=train.loss, optimizer=dict(config.optimizer), metrics=train.metrics,
                      clipvalue=train.clipvalue, clipnorm=train.clipnorm, global_clipnorm=train.global_clipnorm,
                      schedule=config.schedule, callbacks=[recorder, StopAfter(steps)], device=train.device,
                      seed=config.seed, threads=train.threads, fused=train.fused)
    history = trainer.fit(prepared.x_train[:n], prepared.y_train[:n], epochs=epochs, batch_size=train.batch_size,
                          verbose=verbose)
    context = {"name": config.name, "steps": trainer.step, "batch_size": train.batch_size,
               "optimizer": dict(config.optimizer), "scaling": config.data.scaling}
    diagnosis = diagnose(recorder.recording, model=model, scaling=config.data.scaling,
                         optimizer=dict(config.optimizer), context=context)
    return Checkup(diagnosis=diagnosis, recording=recorder.recording, history=history)


class StopAfter(Callback):
    """Ends a fit after ``steps`` steps (the doctor trains briefly, whatever the epoch length)."""

    def __init__(self, steps: int):
        self.steps = steps

    def on_batch_end(self, trainer: Any, step: int) -> None:
        if step >= self.steps:
            trainer.stop_training = True

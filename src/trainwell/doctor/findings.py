"""The doctor's findings: one problem (:class:`Finding`) and one visit's report (:class:`Diagnosis`).

A finding names what is wrong, the layers, the numbers behind it and what the chapter
suggests; the rules that produce findings are in :mod:`trainwell.doctor.rules` (measured)
and :mod:`trainwell.doctor.selfnorm` (the SELU conditions, on the spec). A diagnosis is
printed as plain text (``trainwell doctor``), as a Markdown table (reports), or saved as JSON.

>>> finding = Finding("dead_relus", "dying ReLUs", "1 of 2 layers", "leaky_relu", layers=("dense_1",))
>>> print(Diagnosis([finding]).to_text())
WARNING: dying ReLUs [dense_1]
  1 of 2 layers
  try: leaky_relu
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

from trainwell.doctor.thresholds import GRADIENT_MEASURES, THRESHOLDS

__all__ = ["Finding", "Diagnosis", "layer_span", "flow_summary"]


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
        return flow_summary(self.context.get("gradient_flow"))

    def to_text(self) -> str:
        """Plain text, one block per finding (what ``trainwell doctor`` prints)."""
        measured = [f"measured: {self.measured()}"] if self.measured() else []
        if self.healthy:
            return "\n".join(["no problems found", *measured])
        blocks = []
        for f in self.findings:
            where = f" [{layer_span(f.layers)}]" if f.layers else ""
            blocks.append(f"{f.severity.upper()}: {f.title}{where}\n  {f.detail}\n  try: {f.advice}")
        return "\n".join(blocks + measured)

    def to_markdown(self) -> str:
        """A Markdown section for reports: a table of findings with their numbers and advice."""
        measured = ["", f"Measured: {self.measured()}."] if self.measured() else []
        if self.healthy:
            return "\n".join(["No problems found.", *measured])
        rows = ["| | finding | layers | numbers | advice |", "|---|---|---|---|---|"]
        for f in self.findings:
            rows.append(f"| {f.severity} | **{f.title}**: {f.detail} | {layer_span(f.layers)} | "
                        + ", ".join(f"{k} = {_number(v)}" for k, v in f.numbers.items()) + f" | {f.advice} |")
        return "\n".join(rows + measured)


def layer_span(layers: Sequence[str]) -> str:
    """Layer names for a message: all of them, or the first two and the last of a long run."""
    return ", ".join(layers) if len(layers) <= 4 else f"{layers[0]}, {layers[1]} ... {layers[-1]} ({len(layers)} layers)"


def _number(value: float) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def flow_summary(flow: Mapping[str, Any] | None) -> str | None:
    """One line for the doctor's output: the gradient ratios, whether or not a rule fired."""
    if not flow or not any(stat in flow for stat in GRADIENT_MEASURES):
        return None
    parts = [f"{short} {flow[stat]['ratio']:.3g}x" for stat, (short, _) in GRADIENT_MEASURES.items() if stat in flow]
    return (f"gradient flow, bottom {flow['k']} hidden layers / top {flow['k']}: " + ", ".join(parts)
            + f" (a rule fires beyond {1 / THRESHOLDS['gradient_ratio']:.2g}x or {THRESHOLDS['gradient_ratio']:.3g}x)")

"""The doctor: record per-layer statistics during a fit and turn them into findings with the chapter's advice.

- record: the Diagnostics callback and its Recording (per-layer statistics every N steps, by hooks)
- findings: Finding (one problem, its layers, numbers and advice) and Diagnosis (one visit's report)
- thresholds: when the rules fire, and the two gradient measures they compare
- rules: the measured rules (gradients, signal, dead and saturated units, updates, SELU drift); diagnose
- selfnorm: the SELU self-normalization conditions, checked on the model's spec
- plots: figures of the per-layer statistics against depth and time

``trainwell doctor`` (a brief fit of a config's model, then its diagnosis) is a recipe:
:mod:`trainwell.recipes.doctor`. The doctor may use trainwell.callbacks, trainwell.model, trainwell.checks,
trainwell.figures, trainwell.fileio and trainwell.errors; it fits nothing itself.
"""

from trainwell.doctor.findings import Diagnosis, Finding
from trainwell.doctor.record import Diagnostics, Recording
from trainwell.doctor.rules import diagnose

__all__ = ["Diagnosis", "Diagnostics", "Finding", "Recording", "diagnose"]

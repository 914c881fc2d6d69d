"""When the doctor's rules fire, and the two gradient measures they compare.

Kept apart from the rules so that the findings' report (which prints the gradient-ratio
limit beside the measured ratios) and the static SELU checks read the same numbers.
"""

from __future__ import annotations

#: When a rule fires. Gradients: bottom-vs-top ratio of the typical gradient RMS; signal:
#: smallest (largest) std of a hidden layer against the first one's; fractions of units.
THRESHOLDS = {"gradient_ratio": 100.0, "signal_ratio": 5.0, "dead": 0.3, "saturated": 0.3, "update_ratio": 0.1,
              "selu_mean": 0.5, "selu_std_low": 0.5, "selu_std_high": 2.0, "input_mean": 0.25, "input_std": 0.25}
#: The depth rules (gradients, signal) need at least this many hidden layers.
MIN_HIDDEN_FOR_DEPTH_RULES = 3

#: The two gradient measures: their short names (the measured line) and long ones (findings).
GRADIENT_MEASURES = {
    "grad_rms": ("weights' gradient RMS", "the weights' gradient RMS"),
    "backward_rms": ("backward signal", "the backward signal (the RMS of the loss's gradient at the layers' outputs)"),
}

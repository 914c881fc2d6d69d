"""Training: the Trainer's loop and what it calls, each step, epoch and fit.

- trainer: ``Trainer`` (fit / evaluate / predict -> History), the loop itself; seeds
- devices: which device a fit runs on (``resolve_device``; under torchrun the local rank's GPU, also when a fit starts)
- setup: what one fit is made of (``Fit``), built once before its first step; the Trainer's setting checks
- step: the ``Step`` protocol, ``AutogradStep``, ``FusedStep``, ``make_step`` and ``why_not_fused``
- fused: the fused pass (a hand-written forward and backward of a plain dense stack, no autograd) and the hooks it cannot honour
- fused_stages: the fused pass's stages (each layer's forward and the ``aten`` kernel of its backward), in the layout
  the products are fastest in
- fused_layout: the weights the fused SGD step updates faster stored by column, for as long as a fit runs
- fused_model: which models the fused pass covers: a model as its stages, or why not
- fused_adam: the Adam family's update (Adam, AdamW, NAdam, KerasAdam, KerasAdamW) folded into the fused step
- fused_probe: the fused pass checked against autograd on a tiny copy, once per structure
- compiled: the fused pass run through ``torch.compile`` (opt-in), eager again where compiling fails
- meter: the epoch's sums (loss, penalty, correct, samples) and the outputs its metrics need: add, state_dict, all_reduce
- rates: each step's learning rate and momentum from the schedules
- batches: the epoch's order and its batches, this rank's share under torchrun
- weights: sample weights and class weights, one weight per training sample
- streamed: a fit's batches from a torch Dataset or DataLoader, read a batch at a time, and their resume state
- frozen: the outputs of frozen lowest layers, computed once per fit
- inputs: the arrays a Trainer is given, checked, and the model's logits of them in batches
- validation: a fit's validation under torchrun, each rank its slice, the figures of the whole set
- history: ``History``, the per-epoch records and per-step values of a fit
- resume: a fit's whole state saved atomically and restored (``FitSaves``), the same on every rank under torchrun
- distributed: data-parallel training under torchrun
- threads: how many CPU threads a fit uses
- precision: mixed precision (bf16, fp16) of the training step: its autocast and GradScaler

It may use trainwell.callbacks, trainwell.optim, trainwell.schedules, trainwell.metrics, trainwell.model,
trainwell.data, trainwell.checks, trainwell.fileio, trainwell.tensorfile and trainwell.errors (the units
below it).
"""

from trainwell.train.history import History
from trainwell.train.meter import Meter
from trainwell.train.step import AutogradStep, FusedStep, Step, make_step, why_not_fused
from trainwell.train.trainer import Trainer, seed_everything

__all__ = ["AutogradStep", "FusedStep", "History", "Meter", "Step", "Trainer", "make_step", "seed_everything",
           "why_not_fused"]

"""The chapter's conditions for a SELU network to self-normalize, checked on its spec.

Klambauer et al. (2017) prove that a stack of dense SELU layers keeps its outputs near
mean 0 and std 1 only when: the inputs are standardized; every hidden layer uses LeCun
normal initialization; the network is a plain sequential stack of dense layers (no
skip connections, no other activations in between); dropout, if any, is AlphaDropout;
and nothing else rescales the weights or activations (no l1/l2, no max-norm, no batch
norm). Each broken condition is one finding naming the layers that break it.

>>> from trainwell.model.layers import Dense, Dropout, ModelSpec
>>> spec = ModelSpec((4,), (Dense(8, activation="selu", init="lecun_normal"), Dropout(0.2), Dense(2)))
>>> [f.code for f in check_self_normalization(spec, scaling="standardize")]
['self_normalization.dropout']
"""

from __future__ import annotations

from typing import Any, Mapping

from trainwell.doctor.findings import Finding
from trainwell.doctor.record import Recording
from trainwell.doctor.thresholds import THRESHOLDS
from trainwell.model.layers import Activation, BatchNormalization, Dense, Dropout, Flatten, ModelSpec, _layer_names

__all__ = ["check_self_normalization", "uses_selu"]

_LECUN_NORMAL = {"scale": 1.0, "mode": "fan_in", "distribution": "truncated_normal"}


def _activation(spec: Any) -> str | None:
    value = getattr(spec, "activation", None)
    return value.get("name") if isinstance(value, Mapping) else value


def uses_selu(spec: ModelSpec) -> bool:
    """Whether any layer of the spec has a SELU activation (the checks apply only then)."""
    return any(_activation(layer) == "selu" for layer in spec.layers)


def _is_lecun_normal(init: Any) -> bool:
    if init == "lecun_normal" or (isinstance(init, Mapping) and init.get("name") == "lecun_normal"):
        return True
    if isinstance(init, Mapping) and init.get("name") == "variance_scaling":
        return all(init.get(key, value) == value for key, value in _LECUN_NORMAL.items())
    return False


def _finding(condition: str, title: str, detail: str, advice: str, layers=(), numbers=None) -> Finding:
    return Finding(f"self_normalization.{condition}", f"broken self-normalization: {title}", detail, advice,
                   layers=tuple(layers), numbers=dict(numbers or {}))


def check_self_normalization(model: Any, *, scaling: str | None = None, optimizer: Mapping[str, Any] | None = None,
                             recording: Recording | None = None) -> list[Finding]:
    """The broken conditions of a SELU model (a trainwell ``Model`` or ``ModelSpec``); [] when all hold.

    ``scaling`` is the data's scaling when known; otherwise the inputs recorded in
    ``recording`` decide whether they are standardized. ``optimizer`` is the optimizer's
    config table (its ``weight_decay`` is an l2 penalty).
    """
    spec = model if isinstance(model, ModelSpec) else getattr(model, "spec", None)
    if not isinstance(spec, ModelSpec) or not uses_selu(spec):
        return []
    names = _layer_names(spec.layers)
    layers = list(zip(names, spec.layers))
    dense = [(name, layer) for name, layer in layers if isinstance(layer, Dense)]
    hidden = dense[:-1]
    findings = []
    findings += _inputs(scaling, recording)
    not_lecun = [name for name, layer in hidden if not _is_lecun_normal(layer.init)]
    if not_lecun:
        used = sorted({str(layer.init) for name, layer in hidden if name in not_lecun})
        findings.append(_finding("init", "not LeCun normal initialization",
                                 f"{len(not_lecun)} hidden Dense layers use {', '.join(used)}; SELU keeps mean 0 and "
                                 "std 1 only with weights of variance 1/fan_in", "init = \"lecun_normal\" on every "
                                 "hidden layer", not_lecun))
    other = [f"{name} ({_activation(layer) or 'linear'})" for name, layer in hidden if _activation(layer) != "selu"]
    other += [f"{name} ({type(layer).type})" for name, layer in layers
              if not isinstance(layer, (Dense, Dropout, Flatten, BatchNormalization))
              and not (isinstance(layer, Activation) and _activation(layer) == "selu")]
    if other:
        findings.append(_finding("architecture", "not a plain stack of SELU Dense layers",
                                 f"hidden layers that are not SELU Dense: {', '.join(other)}",
                                 "activation = \"selu\" on every hidden Dense layer, nothing else in between",
                                 [item.split(" ")[0] for item in other]))
    dropout = [name for name, layer in layers if type(layer) is Dropout]
    if dropout:
        findings.append(_finding("dropout", "Dropout instead of AlphaDropout",
                                 f"{len(dropout)} Dropout layers rescale the kept units by 1/(1 - rate), which "
                                 "changes SELU's mean and variance", "type = \"alpha_dropout\" (AlphaDropout keeps "
                                 "them)", dropout))
    batch_norm = [name for name, layer in layers if isinstance(layer, BatchNormalization)]
    if batch_norm:
        findings.append(_finding("batch_norm", "batch normalization in a SELU network",
                                 f"{len(batch_norm)} BatchNormalization layers; a self-normalizing network does not "
                                 "need them and they break its fixed point", "remove the batch_normalization "
                                 "layers (or use ELU/ReLU with batch norm instead of SELU)", batch_norm))
    penalized = [name for name, layer in dense if layer.kernel_regularizer]
    decay = float((optimizer or {}).get("weight_decay") or 0.0)
    if penalized or decay > 0:
        detail = (f"{len(penalized)} layers have a kernel_regularizer" if penalized else "") + \
                 ("; " if penalized and decay else "") + (f"the optimizer's weight_decay is {decay:g}" if decay else "")
        findings.append(_finding("regularization", "l1/l2 regularization", detail + "; penalties pull the weights "
                                 "away from variance 1/fan_in", "drop kernel_regularizer and weight_decay; "
                                 "regularize with alpha_dropout or early stopping", penalized,
                                 {"weight_decay": decay} if decay else None))
    constrained = [name for name, layer in dense if layer.kernel_constraint]
    if constrained:
        findings.append(_finding("max_norm", "max-norm constraint",
                                 f"{len(constrained)} layers have a kernel_constraint, which rescales their weights "
                                 "after every step", "drop kernel_constraint in a SELU network", constrained))
    return findings


def _inputs(scaling: str | None, recording: Recording | None) -> list[Finding]:
    measured = [(s.input_mean, s.input_std) for s in (recording.samples if recording else ())
                if s.input_mean is not None and s.input_std is not None]
    mean = sorted(m for m, _ in measured)[len(measured) // 2] if measured else None
    std = sorted(s for _, s in measured)[len(measured) // 2] if measured else None
    numbers = {"input_mean": mean, "input_std": std} if measured else {}
    seen = f" (measured: mean {mean:.3g}, std {std:.3g})" if measured else ""
    if scaling is not None:
        if scaling == "standardize":
            return []
        return [_finding("inputs", "inputs are not standardized",
                         f"data.scaling is {scaling!r}{seen}; SELU needs inputs of mean 0 and std 1",
                         "[data] scaling = \"standardize\"", numbers=numbers)]
    if mean is None or (abs(mean) <= THRESHOLDS["input_mean"] and abs(std - 1) <= THRESHOLDS["input_std"]):
        return []
    return [_finding("inputs", "inputs are not standardized", f"the inputs have mean {mean:.3g} and std {std:.3g}; "
                     "SELU needs mean 0 and std 1", "standardize the inputs (trainwell.data.standardize, or [data] "
                     "scaling = \"standardize\")", numbers=numbers)]

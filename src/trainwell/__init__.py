"""trainwell: train deep neural networks well.

The techniques of the chapter "Training Deep Neural Networks" as one line of Python
or one key of a config file, on PyTorch; models stay plain ``torch.nn.Module``s.

This module exports what users reach for, and nothing internal; the packages below it
(``trainwell.data``, ``trainwell.model``, ``trainwell.train``, ``trainwell.callbacks``,
``trainwell.config``, ``trainwell.catalog``, ...) say in their docstrings what lives there.
``TrainwellClassifier`` is imported when first asked for (it loads scikit-learn's estimator
machinery, which a training script need not pay for).
"""

from trainwell.versions import __version__

from trainwell.model.activations import get_activation
from trainwell import schedules
from trainwell.callbacks import Callback, HistoryLogger, Monitor, ProgressDisplay, ReduceLROnPlateau
from trainwell.lr_finder import LRFinderResult, find_lr
from trainwell.config import RunConfig, load_config
from trainwell.errors import ConfigError, DataError, ModelFileError, TrainwellError
from trainwell.recipes.train import train_config
from trainwell.train.history import History
from trainwell.model.init import get_initializer
from trainwell.model.layers import (Activation, AlphaDropout, BatchNormalization, Dense, Dropout, Flatten, Model,
                              ModelSpec, build_model)
from trainwell.model.conv_specs import (AveragePool2D, Conv2D, GlobalAveragePool2D, MaxPool2D, Reshape,
                                        SpatialDropout2D)
from trainwell.model.losses import get_loss
from trainwell.optim import clip_gradients, optimizer
from trainwell.model.saving import load_model, load_weights, save_model, save_weights
from trainwell.model.transfer import freeze, reuse_layers, select_layers, unfreeze
from trainwell.model.summary import summary
from trainwell.train.trainer import Trainer, seed_everything
from trainwell.train.step import why_not_fused
from trainwell.errors import ArrayError
# regularization, long-run callbacks and MC dropout
from trainwell.callbacks import Checkpoint, EarlyStopping, TerminateOnNaN
from trainwell.errors import TrainingDiverged
from trainwell.model.regularization import l1, l1_l2, l2, max_norm
from trainwell.uncertainty import mc_predict
from trainwell import uncertainty
# training diagnostics: the doctor
from trainwell.doctor.record import Diagnostics
from trainwell.doctor.findings import Diagnosis, Finding
from trainwell.doctor.rules import diagnose
from trainwell.recipes.doctor import run_doctor
# metrics by name on a whole epoch (scikit-learn computes them)
from trainwell import metrics
# seeing training: per-epoch curves, the CSV and TensorBoard loggers
from trainwell.callbacks import CSVLogger, TensorBoard
from trainwell.plots import TrainingCurves, plot_history

__all__ = [
    "AveragePool2D", "Conv2D", "GlobalAveragePool2D", "MaxPool2D", "Reshape", "SpatialDropout2D",
    "Activation", "AlphaDropout", "BatchNormalization", "Callback", "ConfigError", "DataError", "Dense", "Dropout",
    "Flatten", "History", "HistoryLogger", "Model", "ModelFileError", "ModelSpec", "ProgressDisplay", "RunConfig",
    "Trainer", "TrainwellError", "build_model", "why_not_fused", "clip_gradients", "get_activation", "get_initializer", "get_loss",
    "load_config", "load_model", "load_weights", "optimizer", "save_model", "save_weights", "seed_everything",
    "summary", "train_config",
    # learning-rate schedules and the LR finder
    "schedules", "Monitor", "ReduceLROnPlateau", "find_lr", "LRFinderResult",
    # regularization, long-run callbacks and MC dropout
    "l1", "l2", "l1_l2", "max_norm", "mc_predict", "uncertainty", "EarlyStopping", "Checkpoint", "TerminateOnNaN",
    "TrainingDiverged",
    # training diagnostics: the doctor
    "Diagnostics", "Diagnosis", "Finding", "diagnose", "run_doctor",
    # the arrays a fit, evaluate or predict is given
    "ArrayError",
    # transfer learning; the scikit-learn classifier
    "freeze", "unfreeze", "reuse_layers", "select_layers", "TrainwellClassifier",
    # metrics by name on a whole epoch
    "metrics",
    # seeing training: per-epoch curves, the CSV and TensorBoard loggers
    "CSVLogger", "TensorBoard", "TrainingCurves", "plot_history",
]


def __getattr__(name: str):
    if name == "TrainwellClassifier":
        from trainwell.estimator import TrainwellClassifier

        return TrainwellClassifier
    raise AttributeError(f"module 'trainwell' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), "TrainwellClassifier"})

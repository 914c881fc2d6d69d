"""trainwell: train deep neural networks well.

The techniques of the chapter "Training Deep Neural Networks" as one line of Python
or one key of a config file, on PyTorch; models stay plain ``torch.nn.Module``s.
"""

__version__ = "0.1.0"

from trainwell.activations import get_activation
from trainwell.callbacks import Callback, HistoryLogger, ProgressDisplay
from trainwell.config import RunConfig, load_config
from trainwell.errors import ConfigError, DataError, ModelFileError, TrainwellError
from trainwell.experiment import train_config
from trainwell.history import History
from trainwell.init import get_initializer
from trainwell.layers import (Activation, AlphaDropout, BatchNormalization, Dense, Dropout, Flatten, Model,
                              ModelSpec, build_model)
from trainwell.losses import get_loss
from trainwell.optim import clip_gradients, optimizer
from trainwell.saving import load_model, load_weights, save_model, save_weights
from trainwell.summary import summary
from trainwell.trainer import Trainer, seed_everything

__all__ = [
    "Activation", "AlphaDropout", "BatchNormalization", "Callback", "ConfigError", "DataError", "Dense", "Dropout",
    "Flatten", "History", "HistoryLogger", "Model", "ModelFileError", "ModelSpec", "ProgressDisplay", "RunConfig",
    "Trainer", "TrainwellError", "build_model", "clip_gradients", "get_activation", "get_initializer", "get_loss",
    "load_config", "load_model", "load_weights", "optimizer", "save_model", "save_weights", "seed_everything",
    "summary", "train_config",
]

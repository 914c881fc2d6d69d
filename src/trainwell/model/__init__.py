"""Models: what a network is made of, how it is built from specs, and how it is saved.

The modules, one concept each:

* :mod:`~trainwell.model.init` -- weight initializers by Keras name;
* :mod:`~trainwell.model.activations` -- activations by name, as functions and modules, and recognised again;
* :mod:`~trainwell.model.modules` -- the few nn.Modules trainwell adds (Dense with its activation, BN on the last axis);
* :mod:`~trainwell.model.synced_batchnorm` -- BN statistics over every rank's batch (``sync_batchnorm``);
* :mod:`~trainwell.model.regularization` -- l1/l2 penalties and the max-norm constraint;
* :mod:`~trainwell.model.specs` -- layer specs (Dense, BatchNormalization, Dropout, ...) from Python or a config table;
* :mod:`~trainwell.model.conv_specs` -- the image layers' specs (Conv2D, MaxPool2D, ...), channels first;
* :mod:`~trainwell.model.conv_modules` -- their nn.Modules (Keras' "same" padding for any stride, BN on channels);
* :mod:`~trainwell.model.layers` -- the builder: specs (presets and repeats expanded) -> a plain nn.Sequential;
* :mod:`~trainwell.model.losses` -- losses on logits; the logits view of a softmax or sigmoid model;
* :mod:`~trainwell.model.summary` -- per-layer output shapes and parameter counts;
* :mod:`~trainwell.model.saving` -- safetensors model files, checked when read;
* :mod:`~trainwell.model.transfer` -- freezing, unfreezing and reusing the layers of a trained model.

The model package may use the data package (the arrays a model is given) and the foundation
(``trainwell.errors``, ``trainwell.checks``, ``trainwell.fileio``, ``trainwell.tensorfile``); it never
imports training.
"""

from trainwell.model.specs import Activation, AlphaDropout, BatchNormalization, Dense, Dropout, Flatten, LayerSpec
from trainwell.model.conv_specs import (AveragePool2D, AveragePooling2D, Conv2D, Convolution2D, GlobalAveragePool2D,
                                        GlobalAveragePooling2D, MaxPool2D, MaxPooling2D, Reshape, SpatialDropout2D)
from trainwell.model.layers import Model, ModelSpec, build_model
from trainwell.model.saving import load_model, load_weights, save_model, save_weights
from trainwell.model.transfer import freeze, reuse_layers, select_layers, unfreeze

__all__ = ["Activation", "AlphaDropout", "AveragePool2D", "AveragePooling2D", "BatchNormalization", "Conv2D",
           "Convolution2D", "Dense", "Dropout", "Flatten", "GlobalAveragePool2D", "GlobalAveragePooling2D", "LayerSpec",
           "MaxPool2D", "MaxPooling2D", "Model", "Reshape", "SpatialDropout2D",
           "ModelSpec", "build_model", "freeze", "load_model", "load_weights", "reuse_layers", "save_model",
           "save_weights", "select_layers", "unfreeze"]

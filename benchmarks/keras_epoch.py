"""Time epochs of one of the chapter's models with Keras on TensorFlow, as the book writes it.

Run by benchmarks/suite.py in its own process (TensorFlow and PyTorch thread pools
must not share one), it prints one JSON line: {"times": [seconds per epoch, the
first being the warm-up one], ...}. ``--tuned`` compiles with ``steps_per_execution=64``
and XLA (``jit_compile=True``), the fastest Keras settings found for these models.

    python benchmarks/keras_epoch.py leaky_relu --epochs 3 --threads 1 [--tuned]
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def build(name: str, keras):
    layers = keras.layers
    stack = [keras.Input(shape=(28, 28)), layers.Flatten()]
    if name == "leaky_relu":
        stack += [layers.Dense(300, kernel_initializer="he_normal"), layers.LeakyReLU(negative_slope=0.2),
                  layers.Dense(100, kernel_initializer="he_normal"), layers.LeakyReLU(negative_slope=0.2)]
    elif name == "bn_after":
        stack += [layers.BatchNormalization(), layers.Dense(300, activation="relu", kernel_initializer="he_normal"),
                  layers.BatchNormalization(), layers.Dense(100, activation="relu", kernel_initializer="he_normal"),
                  layers.BatchNormalization()]
    elif name in ("selu", "selu_100"):
        stack += [layers.Dense(300, activation="selu", kernel_initializer="lecun_normal")]
        stack += [layers.Dense(100, activation="selu", kernel_initializer="lecun_normal")
                  for _ in range(1 if name == "selu" else 99)]
    else:
        raise SystemExit(f"unknown model {name!r}")
    model = keras.Sequential(stack + [layers.Dense(10, activation="softmax")])
    optimizer = keras.optimizers.Nadam(learning_rate=1e-3) if name == "selu" else keras.optimizers.SGD(learning_rate=1e-3)
    return model, optimizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs after one warm-up")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--tuned", action="store_true", help="steps_per_execution=64 and XLA")
    args = parser.parse_args()
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    import keras

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.random((55000, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, 55000)
    model, optimizer = build(args.model, keras)
    extra = {"steps_per_execution": 64, "jit_compile": True} if args.tuned else {}
    model.compile(loss="sparse_categorical_crossentropy", optimizer=optimizer, metrics=["accuracy"], **extra)
    times: list[float] = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.started)

    model.fit(x, y, epochs=1 + args.epochs, batch_size=args.batch_size, verbose=0, callbacks=[Timer()])
    print(json.dumps({"times": times, "keras": keras.__version__, "tensorflow": tf.__version__}))


if __name__ == "__main__":
    main()

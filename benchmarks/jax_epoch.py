"""Time epochs of one of the chapter's models in JAX: a jitted train step under ``jax.lax.scan``.

Run by benchmarks/suite.py in its own process (XLA's thread pool must not share the CPUs
with PyTorch's), it prints one JSON line: {"times": [seconds per epoch, the first being
the warm-up one, compile included], "cpu_times": [the process's CPU seconds in each], ...}.

This is the fastest way found to write the suite's models in JAX: the data is on the device
once, each epoch is ONE compiled call that draws a permutation and runs the step under
``lax.scan`` over the epoch's full batches (then one step on the short last batch, so an
epoch has the same 1,719 steps as the PyTorch and Keras sides). The models are the suite's
(same widths, He / LeCun normal kernels, zero biases, batch 32, 55,000 random images);
bn_after's BatchNormalization uses the batch's statistics and keeps Keras' moving averages
(momentum 0.99, epsilon 1e-3). The selu model trains with ``optax.nadam`` (Dozat's Nesterov
Adam with a constant beta_1, eps 1e-7: the arithmetic of tf.keras 2's Nadam without its
momentum schedule, which costs a few scalar ops a step), the others with ``optax.sgd``.

Threads: ``--threads 1`` turns XLA's multi-threaded Eigen off
(``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1``), and any
count below the CPUs also pins the process to that many CPUs (XLA's flags alone do not
bound its thread pools). What it used is reported: ``cpu_times`` (CPU seconds per wall second
stays at or below the thread count) and ``busy_threads``, the threads that did at least a
tenth of the timed epochs' CPU work (read from /proc on Linux).

    python benchmarks/jax_epoch.py leaky_relu --epochs 3 --threads 1

With ``--serve`` (how the suite runs it) the epochs come one at a time: after the warm-up epoch
it prints ``{"ready": true, "first": seconds}``, then runs one epoch for each line ``epoch`` read
from its standard input, printing ``{"time": seconds}``, and prints the report above at
``end``. So the suite gives JAX's epochs their turn between the PyTorch sides' (never at the
same time): a machine that slows down for a minute slows every side alike, as it does the
PyTorch sides, which alternate within one process.

Without jax or optax it exits with status 3 and a message saying what is missing.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time

MODELS = ("leaky_relu", "bn_after", "selu", "selu_100")
MISSING = 3  # the exit status when jax or optax cannot be imported
SAMPLES, CLASSES = 55000, 10


def limit_threads(threads: int) -> dict:
    """Hold XLA to ``threads`` CPU threads; must run before jax is imported. Returns what it set."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS, Windows: the flags only
        cpus = list(range(os.cpu_count() or 1))
    if threads < len(cpus):
        os.sched_setaffinity(0, cpus[:threads])
    if threads == 1:
        flags = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + flags).strip()
    return {"xla_flags": os.environ.get("XLA_FLAGS", ""), "cpus": min(threads, len(cpus))}


def thread_cpu_seconds() -> dict[str, float]:
    """CPU seconds of each of this process's threads so far (Linux; empty elsewhere)."""
    ticks, seconds = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100, {}
    try:
        for task in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{task}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            seconds[task] = (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
    except OSError:
        return {}
    return seconds


def busy_threads(before: dict[str, float], after: dict[str, float]) -> int:
    """How many threads did at least a tenth of the CPU work between two snapshots."""
    used = {task: after[task] - before.get(task, 0.0) for task in after}
    total = sum(used.values())
    return sum(1 for value in used.values() if total > 0 and value >= 0.1 * total)


def widths(name: str) -> list[int]:
    if name == "selu_100":
        return [784, 300] + [100] * 99 + [CLASSES]
    return [784, 300, 100, CLASSES]


def build(name: str, jax, jnp):
    """(params, batch-norm state, forward(params, state, x) -> (logits, new state)) for a suite model."""
    sizes = widths(name)
    keys = jax.random.split(jax.random.PRNGKey(0), len(sizes) - 1)
    gain = 1.0 if name.startswith("selu") else 2.0  # LeCun normal for SELU, He normal otherwise
    params = {"dense": [(jax.random.normal(k, (a, b), jnp.float32) * (gain / a) ** 0.5, jnp.zeros(b, jnp.float32))
                        for k, a, b in zip(keys, sizes, sizes[1:])]}
    state = {}
    if name == "bn_after":  # BatchNormalization before the first Dense layer and after each hidden one
        params["bn"] = [(jnp.ones(n, jnp.float32), jnp.zeros(n, jnp.float32)) for n in sizes[:-1]]
        state = {"bn": [(jnp.zeros(n, jnp.float32), jnp.ones(n, jnp.float32)) for n in sizes[:-1]]}
    activation = {"leaky_relu": lambda z: jax.nn.leaky_relu(z, 0.3), "bn_after": jax.nn.relu}.get(name, jax.nn.selu)

    def batch_norm(h, scale_shift, moving):
        mean, var = h.mean(0), h.var(0)
        y = (h - mean) * jax.lax.rsqrt(var + 1e-3) * scale_shift[0] + scale_shift[1]
        momentum = 0.99  # Keras: moving = momentum * moving + (1 - momentum) * batch statistic (biased variance)
        moved = tuple(momentum * m + (1 - momentum) * jax.lax.stop_gradient(s) for m, s in zip(moving, (mean, var)))
        return y, moved

    def forward(params, state, x):
        h, moved = x, []
        layers = params["dense"]
        for i, (w, b) in enumerate(layers):
            if name == "bn_after":
                h, m = batch_norm(h, params["bn"][i], state["bn"][i])
                moved.append(m)
            h = h @ w + b
            if i < len(layers) - 1:
                h = activation(h)
        return h, ({"bn": moved} if moved else state)

    return params, state, forward


def epoch_function(name: str, batch_size: int, jax, jnp, optax):
    """(initial carry, jitted epoch(carry, x, y) -> (carry, mean loss), which optimizer)."""
    params, state, forward = build(name, jax, jnp)
    if name == "selu":
        optimizer, which = optax.nadam(1e-3, eps=1e-7), "optax.nadam(1e-3, eps=1e-7): Nesterov Adam, constant beta_1"
    else:
        optimizer, which = optax.sgd(1e-3), "optax.sgd(1e-3)"

    def loss_fn(params, state, xb, yb):
        logits, new_state = forward(params, state, xb)
        return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean(), new_state

    def step(carry, batch):
        params, opt_state, state = carry
        xb, yb = batch
        (loss, state), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, state, xb, yb)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state, state), loss

    full = SAMPLES // batch_size

    @functools.partial(jax.jit, donate_argnums=0)  # the carry's buffers are updated in place
    def epoch(carry, key, x, y):
        order = jax.random.permutation(key, SAMPLES)
        batches = order[:full * batch_size].reshape(full, batch_size)
        carry, losses = jax.lax.scan(lambda c, idx: step(c, (x[idx], y[idx])), carry, batches)
        if full * batch_size < SAMPLES:  # the short last batch, as the other sides run it
            rest = order[full * batch_size:]
            carry, last = step(carry, (x[rest], y[rest]))
            losses = jnp.append(losses, last)
        return carry, losses.mean()

    return (params, optimizer.init(params), state), epoch, which


def serve(one_epoch, first: float, requests, replies) -> int:
    """``--serve``'s loop: say ready (with the warm-up epoch's ``first`` seconds), then one epoch per
    ``epoch`` line of ``requests``, each one's seconds on ``replies``, until ``end`` or the input ends;
    the number of epochs run. Any other line is an error: the caller and this script disagree."""
    print(json.dumps({"ready": True, "first": first}), file=replies, flush=True)
    served = 0
    for line in requests:
        request = line.strip()
        if request == "end":
            break
        if request != "epoch":
            raise SystemExit(f"jax_epoch.py --serve: unknown request {request!r}; expected 'epoch' or 'end'")
        print(json.dumps({"time": one_epoch()}), file=replies, flush=True)
        served += 1
    return served


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=MODELS)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs after one warm-up (compile) epoch")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--serve", action="store_true",
                        help="after the warm-up epoch, one epoch per line 'epoch' on stdin until 'end' (--epochs is ignored)")
    args = parser.parse_args()
    if args.epochs < 1 or args.threads < 1 or args.batch_size < 1:
        parser.error("--epochs, --threads and --batch-size must be positive integers")
    limits = limit_threads(args.threads)
    try:
        import jax
        import jax.numpy as jnp
        import optax
    except ImportError as error:
        print(f"jax and optax are needed to time the JAX side; {sys.executable} cannot import them ({error}). "
              "Install them with `pip install .[bench]`, or point --jax-python at an interpreter that has them.",
              file=sys.stderr)
        raise SystemExit(MISSING)
    import numpy as np

    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.random((SAMPLES, 784), dtype=np.float32))  # on the device once, flattened like the Flatten layer
    y = jnp.asarray(rng.integers(0, CLASSES, SAMPLES).astype(np.int32))
    carry, epoch, which = epoch_function(args.model, args.batch_size, jax, jnp, optax)
    state = {"carry": carry, "key": jax.random.PRNGKey(0)}
    times, cpu_times, losses = [], [], []

    def one_epoch() -> float:
        state["key"], draw = jax.random.split(state["key"])
        started, cpu = time.perf_counter(), time.process_time()
        state["carry"], loss = epoch(state["carry"], draw, x, y)
        loss.block_until_ready()
        times.append(time.perf_counter() - started)
        cpu_times.append(time.process_time() - cpu)
        losses.append(float(loss))
        return times[-1]

    one_epoch()  # the warm-up: the compile
    threads_before = thread_cpu_seconds()
    if args.serve:
        serve(one_epoch, times[0], sys.stdin, sys.stdout)
    else:
        for _ in range(args.epochs):
            one_epoch()
    busy = busy_threads(threads_before, thread_cpu_seconds())
    import jaxlib

    print(json.dumps({"times": times, "cpu_times": cpu_times, "losses": losses, "optimizer": which,
                      "threads": args.threads, **limits, "busy_threads": busy, "jax": jax.__version__, "jaxlib": jaxlib.__version__,
                      "optax": optax.__version__}))


if __name__ == "__main__":
    main()

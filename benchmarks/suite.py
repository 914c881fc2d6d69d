"""The benchmark suite: trainwell's epoch time on the chapter's models, against the anchors.

For each model (leaky_relu, bn_after, selu, selu_100; 55,000 images of 28x28, batch
32) it times epochs of trainwell's ``Trainer.fit`` and of a minimal hand-written
PyTorch loop on the same preloaded tensors, alternating A B / B A in one process so
machine noise hits both alike, after one warm-up epoch each (reported too: it holds
any compile time). Keras on TensorFlow, as the book writes ``fit`` and tuned
(``steps_per_execution=64`` + XLA), runs in a subprocess right after, when it is
installed (``pip install .[bench]``, or ``--keras-python`` naming another
environment's interpreter); otherwise it is skipped with a message. So is JAX
(benchmarks/jax_epoch.py: a jitted step under ``jax.lax.scan`` over each epoch, data on
the device) when jax and optax are importable (``--jax-python``, or the
``TRAINWELL_JAX_PYTHON`` environment variable, names another interpreter); its process
compiles before the PyTorch sides start, and its epochs then take their turn between theirs
(:class:`JaxEpochs`), so a machine that slows down for a while slows both alike. Every side uses
the thread count trainwell picks for the model (see trainwell.train.threads) unless ``--threads``.

The GEMM floor is timed in the same process, alternating with the PyTorch sides: only the
matrix products of a step (per Dense layer the forward ``x @ W.T``, the weight gradient
``g.T @ x`` and, for all but the first layer, the input gradient ``g @ W``) at the same
shapes and thread count; ``step / floor`` is trainwell's step time over it.

Prints min and median epoch time, time per step, the ratios, peak memory, and (full
mode) the wall time of ``trainwell reproduce --budget quick``; writes JSON and a
Markdown table.

    python benchmarks/suite.py --quick                  # ~2-3 minutes, no Keras, no reproduce
    python benchmarks/suite.py                          # the full table: benchmarks/RESULTS.md, results.json
    python benchmarks/suite.py --models leaky_relu,selu_100 --device cuda --epochs 3
    python benchmarks/suite.py --chapter                # only the whole chapter, full budget (9 minutes on 2 idle cores, 16.5 on busy ones)
    python benchmarks/suite.py --models selu_100 --compile   # Trainer(compile=True) too, first epoch with the compile

``--chapter`` times ``trainwell reproduce --budget full --seeds 1 --jobs 2`` alone (it takes every
core, so nothing else is timed beside it) and adds a dated section to benchmarks/RESULTS.md: the
wall time, the figures passing, each entry's training and whole time, and the share of the wall
time that is not training (see benchmarks/chapter.py).

The whole comparison (trainwell, hand-written PyTorch, Keras fit and tuned, JAX scan, the
GEMM floor) in one run, with Keras and JAX installed in another environment
(``pip install tensorflow keras jax optax`` there, or ``pip install .[bench]`` here):

    python benchmarks/suite.py --keras-python /path/to/env/bin/python --jax-python /path/to/env/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from trainwell import BatchNormalization, Dense, Flatten, Trainer, build_model
from trainwell.train.step import why_not_fused
from trainwell.train.threads import auto_threads

HERE = Path(__file__).resolve().parent
MODELS = ("leaky_relu", "bn_after", "selu", "selu_100")


def trainwell_model(name: str) -> nn.Module:
    if name == "leaky_relu":
        layers = [Dense(300, activation="leaky_relu", init="he_normal"), Dense(100, activation="leaky_relu", init="he_normal")]
    elif name == "bn_after":
        layers = [BatchNormalization(), Dense(300, activation="relu", init="he_normal"), BatchNormalization(),
                  Dense(100, activation="relu", init="he_normal"), BatchNormalization()]
    else:
        layers = [Dense(300, activation="selu", init="lecun_normal")]
        layers += [Dense(100, activation="selu", init="lecun_normal") for _ in range(1 if name == "selu" else 99)]
    return build_model([Flatten(), *layers, Dense(10, activation="softmax")], input_shape=(28, 28))


def hand_written_model(name: str) -> nn.Module:
    """The same network as plain torch.nn, ending in logits (the minimal way to write it)."""
    if name == "leaky_relu":
        layers = [nn.Linear(784, 300), nn.LeakyReLU(0.3), nn.Linear(300, 100), nn.LeakyReLU(0.3)]
    elif name == "bn_after":
        layers = [nn.BatchNorm1d(784), nn.Linear(784, 300), nn.ReLU(), nn.BatchNorm1d(300), nn.Linear(300, 100),
                  nn.ReLU(), nn.BatchNorm1d(100)]
    else:
        widths = [784, 300] + [100] * (1 if name == "selu" else 99)
        layers = [module for a, b in zip(widths, widths[1:]) for module in (nn.Linear(a, b), nn.SELU())]
    return nn.Sequential(nn.Flatten(), *layers, nn.Linear(100, 10))


def optimizer_spec(name: str) -> dict:
    return {"name": "nadam", "lr": 1e-3} if name == "selu" else {"name": "sgd", "lr": 1e-3}


def hand_written_epoch(model, optimizer, x, y, batch_size, generator) -> float:
    """The minimal PyTorch loop: shuffle, slice, forward, loss, backward, step."""
    started = time.perf_counter()
    order = torch.randperm(len(x), generator=generator).to(x.device)
    for start in range(0, len(x), batch_size):
        batch = order[start:start + batch_size]
        loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    if x.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - started


def data(real: bool, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    if real:
        from trainwell import data as datasets

        dataset = datasets.load("fashion_mnist")
        x = torch.from_numpy(dataset.x_train[5000:].astype("float32") / 255.0)
        y = torch.from_numpy(dataset.y_train[5000:].astype("int64"))
    else:  # the time per epoch does not depend on the pixel values
        generator = torch.Generator().manual_seed(0)
        x, y = torch.rand(55000, 28, 28, generator=generator), torch.randint(0, 10, (55000,), generator=generator)
    return x.to(device), y.to(device)


def peak_rss_mib() -> float:
    """The process's peak resident memory so far (a high-water mark: it never goes down)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def summarize(times: list[float], steps: int) -> dict:
    return {"first": times[0], "times": times[1:], "min": min(times[1:]), "median": statistics.median(times[1:]),
            "step_us": min(times[1:]) / steps * 1e6}


class GemmFloor:
    """The matrix products of a model's training steps and nothing else: what a step cannot go under.

    Per Dense layer (``nn.Linear``) of ``model``: the forward ``x @ W.T``, the weight
    gradient ``g.T @ x`` and, for all but the first layer, the input gradient ``g @ W``, into
    outputs allocated once, at an epoch's batch sizes (the full batches, then the short last one).
    """

    def __init__(self, model: nn.Module, samples: int, batch_size: int, device: str):
        shapes = [tuple(m.weight.shape) for m in model.modules() if isinstance(m, nn.Linear)]
        full, rest = divmod(samples, batch_size)
        self.batches = [(self.buffers(shapes, batch_size, device), full)]
        if rest:
            self.batches.append((self.buffers(shapes, rest, device), 1))
        self.cuda = device.startswith("cuda")

    @staticmethod
    def buffers(shapes: list[tuple[int, int]], batch: int, device: str) -> list[tuple[torch.Tensor, ...]]:
        """Per layer: W, x, g and the three products' outputs."""
        return [tuple(torch.randn(*shape, device=device) for shape in
                      ((out, inp), (batch, inp), (batch, out), (batch, out), (out, inp), (batch, inp)))
                for out, inp in shapes]

    def epoch(self) -> float:
        started = time.perf_counter()
        for layers, count in self.batches:
            for _ in range(count):
                for i, (w, x, g, forward, weight_grad, input_grad) in enumerate(layers):
                    torch.mm(x, w.t(), out=forward)
                    torch.mm(g.t(), x, out=weight_grad)
                    if i:
                        torch.mm(g, w, out=input_grad)
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - started


def time_torch(name: str, x, y, *, epochs: int, batch_size: int, device: str, compile: bool = False,
               jax: JaxEpochs | None = None) -> dict:
    """trainwell and the hand-written loop on one model, epochs alternating.

    Where trainwell's fused step applies (trainwell.train.fused), its standard autograd step
    (``fused=False``) is timed as a third side: it shows what the abstractions cost, the
    fused side what trainwell gives by default. With ``compile``, ``Trainer(compile=True)`` is
    a fourth side: its first epoch holds the compile (cold or warm, as inductor's on-disk cache
    stands: an empty ``TORCHINDUCTOR_CACHE_DIR`` gives the cold one), and the break-even is the
    number of epochs after which its run's wall time is the eager fused run's. The GEMM floor
    (:class:`GemmFloor`) takes its turn with them, and so does ``jax``'s epoch (its process
    summarizes its own times: :meth:`JaxEpochs.close`).
    """
    torch.manual_seed(0)
    trainers = {"trainwell": Trainer(trainwell_model(name), optimizer=optimizer_spec(name), device=device, seed=0)}
    fused = why_not_fused(trainers["trainwell"]) is None
    if fused:
        trainers["standard step"] = Trainer(trainwell_model(name), optimizer=optimizer_spec(name), device=device,
                                            seed=0, fused=False)
    if fused and compile:
        trainers["trainwell compiled"] = Trainer(trainwell_model(name), optimizer=optimizer_spec(name),
                                                 device=device, seed=0, compile=True)
    reference = hand_written_model(name).to(device)
    reference_opt = (torch.optim.NAdam(reference.parameters(), lr=1e-3) if name == "selu"
                     else torch.optim.SGD(reference.parameters(), lr=1e-3))
    generator = torch.Generator().manual_seed(0)
    cuda = device.startswith("cuda")
    peaks = {}
    floor = GemmFloor(reference, len(x), batch_size, device)

    def run(side: str) -> float:
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        if side in trainers:
            seconds = trainers[side].fit(x, y, epochs=1, batch_size=batch_size, verbose=False).last["time"]
        elif side == "GEMM floor":
            seconds = floor.epoch()
        elif side == "jax scan":
            return jax.epoch()  # no peak memory: another process's
        else:
            seconds = hand_written_epoch(reference, reference_opt, x, y, batch_size, generator)
        peaks[side] = torch.cuda.max_memory_allocated() / 2**20 if cuda else peak_rss_mib()
        return seconds

    sides = [*trainers, "hand-written", "GEMM floor"] + (["jax scan"] if jax is not None and jax.ready else [])
    times: dict[str, list[float]] = {side: [] for side in sides}
    for i in range(1 + epochs):
        for side in sides[i % len(sides):] + sides[:i % len(sides)]:  # each side goes first in turn
            times[side].append(run(side))
    steps = (len(x) + batch_size - 1) // batch_size
    times.pop("jax scan", None)
    result = {side: {**summarize(values, steps), "peak_mib": peaks[side]} for side, values in times.items()}
    result["fused"] = fused
    result["gemm_floor_us"] = result["GEMM floor"]["step_us"]
    result["step_over_floor"] = result["trainwell"]["min"] / result["GEMM floor"]["min"]
    for side, suffix in (("trainwell", ""), ("standard step", "_standard")):
        if side in times:
            pairs = [a / b for a, b in zip(times[side][1:], times["hand-written"][1:])]
            result[f"ratio_min{suffix}"] = result[side]["min"] / result["hand-written"]["min"]
            result[f"ratio_median_of_pairs{suffix}"] = statistics.median(pairs)
    if "trainwell compiled" in times:
        compiled, eager = result["trainwell compiled"], result["trainwell"]
        result["ratio_min_compiled"] = compiled["min"] / eager["min"]  # steady epochs, compiled / eager fused
        saved = eager["min"] - compiled["min"]  # per epoch; the compile is the first epochs' difference
        result["break_even_epochs"] = (compiled["first"] - eager["first"]) / saved + 1 if saved > 0 else None
    return result


def keras_python(requested: str | None) -> str | None:
    """An interpreter that imports keras with TensorFlow, or None (with the reason printed)."""
    python = requested or os.environ.get("TRAINWELL_KERAS_PYTHON") or sys.executable
    probe = subprocess.run([python, "-c", "import tensorflow, keras"], capture_output=True, text=True,
                           env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    if probe.returncode != 0:
        print(f"Keras/TensorFlow not importable by {python}: skipped (install with `pip install .[bench]`, "
              "or point --keras-python at an environment that has them)")
        return None
    return python


def time_keras(python: str, name: str, *, epochs: int, threads: int, tuned: bool) -> dict | None:
    command = [python, str(HERE / "keras_epoch.py"), name, "--epochs", str(epochs), "--threads", str(threads)]
    done = subprocess.run(command + (["--tuned"] if tuned else []), capture_output=True, text=True,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        print(f"  keras{' tuned' if tuned else ''} failed: {done.stderr.strip().splitlines()[-1:]}")
        return None
    report = json.loads(lines[-1])
    return {**summarize(report["times"], 1719), "version": f"keras {report['keras']}, tf {report['tensorflow']}"}


def jax_python(requested: str | None) -> str | None:
    """An interpreter that imports jax and optax, or None (with the reason printed)."""
    python = requested or os.environ.get("TRAINWELL_JAX_PYTHON") or sys.executable
    probe = subprocess.run([python, "-c", "import jax, optax"], capture_output=True, text=True)
    if probe.returncode != 0:
        print(f"JAX (jax + optax) not importable by {python}: skipped (install with `pip install .[bench]`, "
              "or point --jax-python at an environment that has them)")
        return None
    return python


class JaxEpochs:
    """benchmarks/jax_epoch.py ``--serve`` in its own process, one epoch per :meth:`epoch` call.

    time_torch gives its epochs their turn between the PyTorch sides' (XLA's thread pool must not
    share the CPUs with PyTorch's, so the two never run at once): a machine that slows down for a
    while slows every side alike, where a JAX run after the PyTorch ones met another machine.
    Started before the PyTorch sides, it has compiled and run its warm-up epoch when it is ready.
    """

    def __init__(self, python: str, name: str, *, threads: int, batch_size: int = 32):
        self.batch_size = batch_size
        self.errors = tempfile.TemporaryFile(mode="w+")  # XLA's warnings: a pipe nobody reads could fill up
        command = [python, str(HERE / "jax_epoch.py"), name, "--threads", str(threads), "--batch-size",
                   str(batch_size), "--serve"]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.errors,
                                        text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        self.ready = self._reply() is not None

    def _reply(self) -> dict | None:
        """The next JSON line it prints; None where it ended first."""
        for line in self.process.stdout:
            if line.startswith("{"):
                return json.loads(line)
        return None

    def _ask(self, request: str) -> dict | None:
        try:
            self.process.stdin.write(request + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            return None
        return self._reply()

    def epoch(self) -> float:
        reply = self._ask("epoch")
        if reply is None:
            raise RuntimeError(f"the JAX side ended: {self.failure()}")
        return reply["time"]

    def failure(self) -> str:
        self.process.wait()
        self.errors.seek(0)
        return f"exit status {self.process.returncode}: {self.errors.read().strip().splitlines()[-1:]}"

    def close(self) -> dict | None:
        """Its epochs (the first: the warm-up, compile included), summarized; None where it failed."""
        report = self._ask("end") if self.ready else None
        self.process.wait()
        failed = None if report is not None else self.failure()
        self.errors.close()
        if failed is not None:
            print(f"  jax scan failed ({failed})")
            return None
        cpu_per_wall = sum(report["cpu_times"][1:]) / sum(report["times"][1:])
        return {**summarize(report["times"], -(-55000 // self.batch_size)),
                "version": f"jax {report['jax']}, optax {report['optax']}", "optimizer": report["optimizer"],
                "cpu_per_wall": cpu_per_wall, "busy_threads": report["busy_threads"], "interleaved": True}


def time_reproduce() -> dict:
    """Wall time of ``trainwell reproduce --budget quick`` into a fresh folder."""
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "trainwell.cli", "reproduce", "--budget", "quick", "--out", out],
                              capture_output=True, text=True)
        seconds = time.perf_counter() - started
    if done.returncode != 0:
        print(f"  reproduce failed ({done.returncode}): {done.stderr.strip().splitlines()[-1:]}")
    return {"seconds": seconds, "returncode": done.returncode, "jobs": os.cpu_count()}


def processor() -> str:
    """The CPU's model name and the widest vector instructions PyTorch's kernels use on it (AVX2, AVX512).

    Printed with every run because the ratios depend on the processor, not only on its load: on the
    AMD EPYC (AVX2) of a later section of RESULTS.md, the 784-300 layer's product at batch 32 took 2.5
    times as long as on the machine of the sections before it.
    """
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            name = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), name)
    except OSError:
        pass
    return f"{name}, {torch.backends.cpu.get_cpu_capability()}"


def markdown(results: dict) -> str:
    env = results["environment"]
    on = f" ({env['processor']})" if env.get("processor") else ""
    lines = [f"# Benchmark results ({results['mode']})", "",
             f"{env['device']}{on}; torch {env['torch']}; {env['cpus']} CPUs; batch {results['batch_size']}, "
             f"55,000 images; {results['epochs']} timed epochs per side after one warm-up, alternating in one run. "
             "Seconds per epoch, min / median; ratio = trainwell / other (min-to-min).", "",
             "| model | threads | trainwell | hand-written PyTorch | ratio | trainwell, standard step | ratio "
             "| Keras fit | ratio | Keras tuned | ratio | JAX scan | ratio | trainwell first epoch | trainwell step "
             "| GEMM floor | step / floor | peak memory |",
             "|" + "---|" * 18]
    for name, row in results["models"].items():
        tw, hand, standard = row["trainwell"], row["hand-written"], row.get("standard step")
        cells = [name, str(row["threads"]), f"{tw['min']:.2f} / {tw['median']:.2f}" + (" (fused)" if row["fused"] else ""),
                 f"{hand['min']:.2f} / {hand['median']:.2f}", f"{row['ratio_min']:.2f}"]
        cells += ([f"{standard['min']:.2f} / {standard['median']:.2f}", f"{row['ratio_min_standard']:.2f}"]
                  if standard else ["(same)", "-"])
        for key in ("keras", "keras_tuned", "jax"):
            other = row.get(key)
            cells += [f"{other['min']:.2f} / {other['median']:.2f}", f"{tw['min'] / other['min']:.2f}"] if other else ["-", "-"]
        cells += [f"{tw['first']:.2f}", f"{tw['step_us']:.0f} us"]
        cells += ([f"{row['gemm_floor_us']:.0f} us", f"{row['step_over_floor']:.2f}"] if "gemm_floor_us" in row
                  else ["-", "-"])
        cells += [f"{tw['peak_mib']:.0f} MiB"]
        lines.append("| " + " | ".join(cells) + " |")
    for name, row in results["models"].items():
        if "trainwell compiled" in row:
            c, even = row["trainwell compiled"], row["break_even_epochs"]
            lines += ["", f"{name}, `Trainer(compile=True)`: {c['min']:.2f} / {c['median']:.2f} s per epoch "
                      f"({row['ratio_min_compiled']:.2f} of the eager fused step's), first epoch {c['first']:.2f} s "
                      "with the compile; break-even with the eager run (wall time) "
                      + (f"after {even:.1f} epochs." if even else "never (no faster per epoch).")]
    if results.get("reproduce"):
        r = results["reproduce"]
        lines += ["", f"`trainwell reproduce --budget quick` (jobs = {r['jobs']}): {r['seconds']:.0f} s wall"
                  + ("" if r["returncode"] == 0 else f" (exit status {r['returncode']})") + "."]
    memory = "peak GPU memory allocated per side" if env["device"] != "cpu" else "the process's peak RSS so far"
    lines += ["", "(fused): trainwell's default took its fused step (trainwell.train.fused); the standard step is "
              "`Trainer(fused=False)`, the autograd loop, timed in the same run. Ratios against hand-written "
              "PyTorch use that side's time.",
              "", f"Peak memory is {memory}. Keras runs in its own process right after the PyTorch sides; "
              "JAX in its own process too (benchmarks/jax_epoch.py: a jitted step under `jax.lax.scan` over each "
              "epoch, its first epoch, compile included, not counted), its epochs taking turns with the PyTorch sides"
              + "".join(f"; {name}: {row['jax']['optimizer']}" for name, row in results["models"].items()
                        if row.get("jax") and "nadam" in row["jax"]["optimizer"]) + ".",
              "", "GEMM floor: only the matrix products of a step (per Dense layer x @ W.T, g.T @ x and, but for the "
              "first layer, g @ W) at the same shapes and threads, timed alternating with the PyTorch sides; "
              "step / floor = trainwell's epoch / the floor's epoch (min-to-min)."]
    return "\n".join(lines) + "\n"


def chapter(budget: str, path: Path) -> None:
    """``--chapter``: time the whole chapter, print its section and add it to ``path``."""
    from chapter import add_section, chapter_markdown, run_chapter

    print(f"timing `trainwell reproduce --budget {budget} --seeds 1 --jobs 2` (a fresh folder) ...", flush=True)
    result = run_chapter(budget=budget)
    section = chapter_markdown(result)
    print(section)
    if result["returncode"] != 0:
        print("reproduce ended with exit status", result["returncode"], *result["last_lines"], sep="\n  ")
    add_section(path, section)
    print(f"added to {path}")


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line, checked (a bad value exits with status 2 and a message naming it)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer epochs, no Keras, no reproduce (a few minutes)")
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated subset of {','.join(MODELS)}")
    parser.add_argument("--epochs", type=int, help="timed epochs per side (default 5, selu_100 3; quick: 3 and 1)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, help="torch threads for every model (default: trainwell's choice)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--real", action="store_true", help="Fashion-MNIST instead of random pixels")
    parser.add_argument("--keras", action=argparse.BooleanOptionalAction, default=None,
                        help="time Keras too (default: on unless --quick)")
    parser.add_argument("--keras-tuned", action=argparse.BooleanOptionalAction, default=True,
                        help="also Keras with steps_per_execution=64 and XLA (default: on with --keras)")
    parser.add_argument("--keras-python", help="interpreter that has keras + tensorflow (default: this one)")
    parser.add_argument("--jax", action=argparse.BooleanOptionalAction, default=True,
                        help="time JAX's lax.scan epoch too where jax and optax are importable (default: on)")
    parser.add_argument("--jax-python", help="interpreter that has jax + optax (default: $TRAINWELL_JAX_PYTHON, "
                                             "else this one)")
    parser.add_argument("--reproduce", action=argparse.BooleanOptionalAction, default=None,
                        help="time `trainwell reproduce --budget quick` (default: on unless --quick)")
    parser.add_argument("--compile", action="store_true",
                        help="time Trainer(compile=True) too: first epoch (compile included), steady epochs, break-even")
    parser.add_argument("--out", help="output prefix (default benchmarks/results; quick: benchmarks/results-quick)")
    parser.add_argument("--chapter", action="store_true",
                        help="time only `trainwell reproduce --seeds 1 --jobs 2` (full budget: 9-17 minutes of 2 cores) "
                             "and add its section to benchmarks/RESULTS.md (with --out: OUT.md)")
    parser.add_argument("--chapter-budget", default="full", choices=("full", "quick", "smoke"),
                        help="the budget --chapter runs (default full; quick takes about a minute)")
    args = parser.parse_args(argv)
    args.names = [n for n in args.models.split(",") if n]
    for name in args.names:
        if name not in MODELS:
            parser.error(f"unknown model {name!r}; allowed: {', '.join(MODELS)}")
    if not args.names:
        parser.error(f"--models names none; allowed: {', '.join(MODELS)}")
    for option in ("epochs", "batch_size", "threads"):
        value = getattr(args, option)
        if value is not None and value < 1:
            parser.error(f"--{option.replace('_', '-')} {value}: must be a positive integer")
    return args


def summary(results: dict) -> str:
    """One line per model: trainwell against tuned Keras, JAX scan and the GEMM floor (min-to-min)."""
    lines = ["summary (trainwell / other, min-to-min; - where not timed):"]
    for name, row in results["models"].items():
        cells = [f"{label} {row[key]:.2f}" if row.get(key) is not None else f"{label} -"
                 for label, key in (("/ hand-written", "ratio_min"), ("/ Keras tuned", "ratio_keras_tuned"),
                                    ("/ JAX scan", "ratio_jax"), ("step / GEMM floor", "step_over_floor"))]
        lines.append(f"  {name:10s} " + ", ".join(cells))
    return "\n".join(lines)


def main() -> None:
    args = arguments()
    if args.chapter:
        return chapter(args.chapter_budget, Path(args.out).with_suffix(".md") if args.out else HERE / "RESULTS.md")
    names = args.names
    use_keras = (not args.quick) if args.keras is None else args.keras
    python = keras_python(args.keras_python) if use_keras and args.device == "cpu" else None
    jax = jax_python(args.jax_python) if args.jax and args.device == "cpu" else None
    x, y = data(args.real, args.device)
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    results = {"mode": "quick" if args.quick else "full", "batch_size": args.batch_size, "models": {},
               "epochs": args.epochs or ("3 (selu_100: 1)" if args.quick else "5 (selu_100: 3)"),
               "environment": {"device": device_name, "torch": torch.__version__, "cpus": os.cpu_count(),
                               "python": platform.python_version(), "machine": platform.processor() or platform.machine(),
                               "processor": processor()}}
    default_threads = torch.get_num_threads()
    print(f"trainwell benchmark suite on {device_name} ({results['environment']['processor']}), "
          f"torch {torch.__version__}, {os.cpu_count()} CPUs")
    for name in names:
        epochs = args.epochs or ((1 if name == "selu_100" else 3) if args.quick else (3 if name == "selu_100" else 5))
        threads = args.threads or auto_threads(trainwell_model(name), torch.device(args.device)) or default_threads
        torch.set_num_threads(threads)
        jax_side = JaxEpochs(jax, name, threads=threads, batch_size=args.batch_size) if jax is not None else None
        row = {"threads": threads, "epochs": epochs, **time_torch(name, x, y, epochs=epochs,
                                                                   batch_size=args.batch_size, device=args.device,
                                                                   compile=args.compile, jax=jax_side)}
        if jax_side is not None:
            row["jax"] = jax_side.close()
        tw, hand = row["trainwell"], row["hand-written"]
        print(f"{name} ({threads} thread(s), {epochs} epochs each)")
        print(f"  trainwell     min {tw['min']:.3f} s  median {tw['median']:.3f} s  first {tw['first']:.3f} s  "
              f"{tw['step_us']:.0f} us/step  peak {tw['peak_mib']:.0f} MiB")
        print(f"  hand-written  min {hand['min']:.3f} s  median {hand['median']:.3f} s  first {hand['first']:.3f} s")
        print(f"  trainwell{' (fused)' if row['fused'] else ''} / hand-written: min-to-min {row['ratio_min']:.3f}, "
              f"median of pairs {row['ratio_median_of_pairs']:.3f}")
        if "trainwell compiled" in row:
            c, even = row["trainwell compiled"], row["break_even_epochs"]
            print(f"  compiled      min {c['min']:.3f} s  median {c['median']:.3f} s  first {c['first']:.3f} s (compile "
                  f"included) -> / eager fused: {row['ratio_min_compiled']:.3f}; break-even with the eager run "
                  + (f"after {even:.1f} epochs" if even else "never (no faster per epoch)"))
        if "standard step" in row:
            standard = row["standard step"]
            print(f"  standard step min {standard['min']:.3f} s  median {standard['median']:.3f} s  "
                  f"-> / hand-written: min-to-min {row['ratio_min_standard']:.3f}, "
                  f"median of pairs {row['ratio_median_of_pairs_standard']:.3f}")
        if python is not None:
            for key, tuned in (("keras", False), ("keras_tuned", True)):
                if tuned and not args.keras_tuned:
                    continue
                row[key] = time_keras(python, name, epochs=min(epochs, 3), threads=threads, tuned=tuned)
                if row[key]:
                    k = row[key]
                    print(f"  {key:13s} min {k['min']:.3f} s  median {k['median']:.3f} s  first {k['first']:.3f} s"
                          f"  -> trainwell / {key}: {tw['min'] / k['min']:.3f}")
                    row[f"ratio_{key}"] = tw["min"] / k["min"]
        if jax is not None:
            j = row["jax"]
            if j:
                row["ratio_jax"] = tw["min"] / j["min"]
                print(f"  jax scan      min {j['min']:.3f} s  median {j['median']:.3f} s  first {j['first']:.3f} s "
                      f"(compile)  {j['busy_threads']} busy thread(s), {j['cpu_per_wall']:.2f} CPU s per s, "
                      "epochs taking turns with the PyTorch sides"
                      f"  -> trainwell / jax scan: {row['ratio_jax']:.3f}"
                      + (f"  [{j['optimizer']}]" if "nadam" in j["optimizer"] else ""))
        print(f"  GEMM floor    {row['gemm_floor_us']:.0f} us/step  -> trainwell step / floor: "
              f"{row['step_over_floor']:.2f}")
        results["models"][name] = row
    torch.set_num_threads(default_threads)
    print(summary(results))
    do_reproduce = (not args.quick) if args.reproduce is None else args.reproduce
    if do_reproduce:
        results["reproduce"] = time_reproduce()
        print(f"trainwell reproduce --budget quick: {results['reproduce']['seconds']:.0f} s wall")
    prefix = Path(args.out) if args.out else HERE / ("results-quick" if args.quick else "results")
    prefix.with_suffix(".json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    table = markdown(results)
    (prefix.parent / "RESULTS.md" if not args.out and not args.quick else prefix.with_suffix(".md")).write_text(
        table, encoding="utf-8")
    print(f"wrote {prefix.with_suffix('.json')} and the Markdown table beside it")


if __name__ == "__main__":
    main()

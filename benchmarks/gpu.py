"""trainwell on a CUDA device in one short run: the CUDA tests, the fused step there, and a CUDA graph of it.

When CUDA is available it

1. runs the repository's CUDA tests (``pytest -k cuda tests/train``: the tests that skip
   without a device, and the device-choice tests beside them);
2. checks that trainwell's fused step is taken on CUDA with the model and the data on the
   device (``why_not_fused`` is None for each of the suite's models), and that a fused fit
   and a ``fused=False`` fit give the same History within float32 rounding (a small model);
3. captures the fused pass's step in CUDA graphs (:class:`GraphedEpoch`: static index
   buffers, warm-up on a side stream, one graph for the full batches and one for the short
   last batch, so a graphed epoch runs the same steps on the same batches as an eager one:
   nothing is padded or dropped) and checks that a graphed epoch gives an eager epoch's
   weights. Only plain SGD's update goes inside the graph: the Adam family's folded update
   (Nadam's, Adam's) computes its scalars on the host each step, so there the graph computes
   the gradients and that update (or the optimizer's own ``step()``) runs after each replay,
   outside the graph;
4. times epochs of trainwell (``Trainer.fit``: the eager fused step), trainwell graphed
   and a hand-written PyTorch loop, alternating, data on the device, on the suite's models
   (benchmarks/suite.py's widths, inits, optimizers, batch 32, 55,000 images), and prints
   the ratios.

It writes ``gpu-results.json`` into ``--out`` (default: this folder) and exits non-zero
when a check failed. Without a CUDA device it says so and exits with status 3.

    python benchmarks/gpu.py                      # about 2-3 minutes on one recent GPU
    python benchmarks/gpu.py --models leaky_relu --epochs 1 --no-tests --out /tmp/gpu
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if importlib.util.find_spec("trainwell") is None:  # a checkout without an install: its own source
    sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(HERE))

from suite import MODELS, data, hand_written_epoch, hand_written_model, optimizer_spec, trainwell_model  # noqa: E402
from trainwell import Trainer, seed_everything  # noqa: E402
from trainwell.fileio import write_json  # noqa: E402
from trainwell.train.step import fused_step, why_not_fused  # noqa: E402

NO_CUDA = 3  # the exit status without a CUDA device
CUDA_TESTS = ("-k", "cuda", "tests/train")  # the tests that skip without CUDA, named so (and the device-choice ones)
CHECK_FAILED = 1


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated subset of {','.join(MODELS)}")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per side after a warm-up (selu_100: 1)")
    parser.add_argument("--tests", action=argparse.BooleanOptionalAction, default=True,
                        help="run the repository's CUDA tests first (default: on)")
    parser.add_argument("--out", default=str(HERE), help="folder for gpu-results.json (default: benchmarks/)")
    args = parser.parse_args(argv)
    args.names = [name for name in args.models.split(",") if name]
    unknown = [name for name in args.names if name not in MODELS]
    if unknown or not args.names:
        parser.error(f"--models {args.models!r}: allowed are {', '.join(MODELS)}")
    if args.epochs < 1:
        parser.error(f"--epochs {args.epochs}: must be a positive integer")
    return args


def cuda_tests() -> dict:
    """``pytest -k cuda tests/train`` in a subprocess; its exit status and closing line."""
    env = {**os.environ, "TRAINWELL_OFFLINE": "1", "PYTHONPATH": os.pathsep.join(
        [str(ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])])}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *CUDA_TESTS],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    lines = done.stdout.strip().splitlines()
    return {"returncode": done.returncode, "summary": lines[-1] if lines else done.stderr.strip()[-500:],
            "output": done.stdout[-4000:]}


def fresh_trainers(name: str, device: torch.device, **kwargs) -> tuple[Trainer, Trainer]:
    """Two Trainers of model ``name`` on ``device`` from the same initial weights (the second's kwargs differ)."""
    seed_everything(0)
    model = trainwell_model(name)
    twin = copy.deepcopy(model)
    return (Trainer(model, optimizer=optimizer_spec(name), device=device, seed=0),
            Trainer(twin, optimizer=optimizer_spec(name), device=device, seed=0, **kwargs))


def fused_check(names: list[str], x: torch.Tensor, y: torch.Tensor, samples: int = 2048) -> dict:
    """Per model, on the data's device: why_not_fused (None: fused) and whether fused and fused=False Histories agree."""
    report = {}
    for name in names:
        fused, standard = fresh_trainers(name, x.device, fused=False)
        why = why_not_fused(fused)
        histories = [t.fit(x[:samples], y[:samples], epochs=2, batch_size=32, verbose=False) for t in (fused, standard)]
        worst = max(abs(a - b) / max(abs(b), 1e-6) for key in ("loss", "accuracy")
                    for a, b in zip(histories[0][key], histories[1][key]))
        report[name] = {"why_not_fused": why, "on_device": next(fused.model.parameters()).is_cuda and x.is_cuda,
                        "history_relative_difference": worst, "same_history": worst <= 1e-5}
    return report


class GraphedEpoch:
    """A Trainer's fused step in CUDA graphs over preloaded CUDA tensors ``x``, ``y``.

    One graph per batch size of an epoch (the full batches, the short last one): each takes
    the batch's indices from a static buffer, gathers the batch on the device, runs the
    fused pass (forward, loss, backward and, with plain SGD, the update) and adds the loss
    and the correct count to device sums, as the fit's meter does. Where the pass leaves
    the gradients in ``.grad``, the step's own update (the optimizer's ``step()``) runs
    eagerly after each replay. Capturing runs three warm-up steps on a side stream (as
    PyTorch's CUDA-graph notes ask); the weights and the optimizer's state are put back
    afterwards, so the first replay starts where the Trainer was.

    ``capture=False`` runs the same steps, buffers and restore without graphs (any device):
    what a CPU can check of this class.
    """

    def __init__(self, trainer: Trainer, x: torch.Tensor, y: torch.Tensor, batch_size: int, *, capture: bool = True):
        self.capture = capture
        self.step = fused_step(trainer)
        if self.step is None:
            raise RuntimeError(f"no fused step to capture: {why_not_fused(trainer)}")
        if self.step.fused.update is not None:
            # The Adam family's folded update computes its scalars (bias corrections, Nadam's momentum
            # schedule) on the host each step; in a graph they would stay the capture's. So the graph
            # computes the gradients into .grad and the same update runs eagerly after each replay.
            self.step.fused.fold_updates = False
        self.x, self.y, self.batch_size = x, y, batch_size
        self.loss_sum = torch.zeros((), device=x.device)
        self.correct = torch.zeros((), dtype=torch.long, device=x.device)
        model_state = {k: v.clone() for k, v in trainer.model.state_dict().items()}
        optimizer_state = copy.deepcopy(trainer.optimizer.state_dict())
        trainer.model.train()
        sizes = {batch_size} | ({len(x) % batch_size} - {0})
        self.graphs = {size: self._capture(size) for size in sorted(sizes)}
        trainer.model.load_state_dict(model_state)  # in place: the graphs keep reading the same tensors
        trainer.optimizer.load_state_dict(optimizer_state)

    def _pass(self, index: torch.Tensor) -> None:
        xb, yb = torch.index_select(self.x, 0, index), torch.index_select(self.y, 0, index)
        logits, loss = self.step.fused(xb, yb)
        self.loss_sum.add_(loss * len(index))
        self.correct.add_((logits.argmax(1) == yb).sum())

    def _update(self, grads: list[torch.Tensor | None] | None = None) -> None:
        """The optimizer's step where the pass leaves the gradients in ``.grad`` (those ``grads`` wrote into)."""
        if self.step.applies_update:
            return
        if grads is not None:  # a gradient stored whole (batch normalization's) is a tensor of its graph's own
            for param, grad in zip(self.step.fused.params, grads):
                param.grad = grad
        self.step.autograd.update(self.step.fused.apply_from_grads)

    def _capture(self, size: int) -> tuple[torch.Tensor, Any, list[torch.Tensor | None]]:
        index = torch.arange(size, device=self.x.device)
        if not self.capture:
            for _ in range(3):
                self._pass(index)
                self._update()
            return index, EagerReplay(lambda: self._pass(index)), None  # eager: .grad is the pass's own
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                self._pass(index)
                self._update()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=side):  # captured on the stream that warmed up (its cuBLAS handle)
            self._pass(index)
        return index, graph, [p.grad for p in self.step.fused.params]

    def run(self, order: torch.Tensor) -> None:
        """One epoch over the batches of ``order`` (a permutation of the samples, on the device)."""
        self.loss_sum.zero_()
        self.correct.zero_()
        for start in range(0, len(order), self.batch_size):
            batch = order[start:start + self.batch_size]
            index, graph, grads = self.graphs[len(batch)]
            index.copy_(batch)
            graph.replay()
            self._update(grads)

    def epoch(self, generator: torch.Generator) -> float:
        started = time.perf_counter()
        self.run(torch.randperm(len(self.x), generator=generator).to(self.x.device))
        if self.x.is_cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - started


class EagerReplay:
    """A stand-in for a CUDA graph (``GraphedEpoch(capture=False)``): replaying runs the step again."""

    def __init__(self, step: Callable[[], None]):
        self.replay = step


def graph_matches_eager(name: str, x: torch.Tensor, y: torch.Tensor, batch_size: int = 32, *,
                        capture: bool = True) -> dict:
    """One epoch (same batches) of the eager fused step and of the graphs; the largest weight difference."""
    eager, graphed = fresh_trainers(name, x.device)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(1)).to(x.device)
    step = fused_step(eager)
    eager.model.train()
    for start in range(0, len(x), batch_size):
        batch = order[start:start + batch_size]
        step(x[batch], y[batch])
    GraphedEpoch(graphed, x, y, batch_size, capture=capture).run(order)
    if x.is_cuda:
        torch.cuda.synchronize()
    a, b = eager.model.state_dict(), graphed.model.state_dict()
    worst = max(float((a[k].double() - b[k].double()).abs().max()) for k in a)
    close = all(torch.allclose(a[k].double(), b[k].double(), rtol=1e-4, atol=1e-5) for k in a)
    return {"max_weight_difference": worst, "same_weights": close, "steps": -(-len(x) // batch_size)}


def summarize(times: list[float], steps: int) -> dict:
    return {"first": times[0], "times": times[1:], "min": min(times[1:]), "median": statistics.median(times[1:]),
            "step_us": min(times[1:]) / steps * 1e6}


def time_model(name: str, x: torch.Tensor, y: torch.Tensor, *, epochs: int, batch_size: int = 32,
               capture: bool = True) -> dict:
    """Epochs of trainwell (eager fused), trainwell graphed and hand-written PyTorch, alternating."""
    eager, graphed_trainer = fresh_trainers(name, x.device)
    graphed = GraphedEpoch(graphed_trainer, x, y, batch_size, capture=capture)
    torch.manual_seed(0)
    reference = hand_written_model(name).to(x.device)
    reference_opt = (torch.optim.NAdam(reference.parameters(), lr=1e-3) if name == "selu"
                     else torch.optim.SGD(reference.parameters(), lr=1e-3))
    generator = torch.Generator().manual_seed(0)
    sides = {"trainwell": lambda: eager.fit(x, y, epochs=1, batch_size=batch_size, verbose=False).last["time"],
             "trainwell graphed": lambda: graphed.epoch(generator),
             "hand-written": lambda: hand_written_epoch(reference, reference_opt, x, y, batch_size, generator)}
    names = list(sides)
    times: dict[str, list[float]] = {side: [] for side in names}
    for i in range(1 + epochs):
        for side in names[i % len(names):] + names[:i % len(names)]:  # each side goes first in turn
            times[side].append(sides[side]())
    steps = -(-len(x) // batch_size)
    result = {side: summarize(values, steps) for side, values in times.items()}
    hand = result["hand-written"]["min"]
    result["ratio_trainwell"] = result["trainwell"]["min"] / hand
    result["ratio_graphed"] = result["trainwell graphed"]["min"] / hand
    result["graphed_over_eager"] = result["trainwell graphed"]["min"] / result["trainwell"]["min"]
    return result


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    if not torch.cuda.is_available():
        print("no CUDA device: torch.cuda.is_available() is False on this machine (torch "
              f"{torch.__version__}); benchmarks/gpu.py needs one and did nothing", file=sys.stderr)
        return NO_CUDA
    started = time.perf_counter()
    results: dict = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "cuda": torch.version.cuda}
    print(f"trainwell on {results['device']}, torch {torch.__version__}, CUDA {torch.version.cuda}")
    failed = []
    if args.tests:
        results["cuda_tests"] = tests = cuda_tests()
        print(f"CUDA tests (pytest -k cuda tests/train): {tests['summary']}")
        if tests["returncode"] != 0:
            print(tests["output"])
            failed.append("the CUDA tests")
    x, y = data(False, "cuda")  # 55,000 random 28x28 images, on the device once
    results["fused_on_cuda"] = fused = fused_check(args.names, x, y)
    results["models"] = {}
    for name in args.names:
        check = fused[name]
        print(f"{name}: fused step on CUDA: {'yes' if check['why_not_fused'] is None else check['why_not_fused']}; "
              f"fused vs fused=False History: {'same' if check['same_history'] else 'DIFFERENT'} "
              f"(largest relative difference {check['history_relative_difference']:.1e})")
        if check["why_not_fused"] is not None or not check["same_history"]:
            failed.append(f"{name}'s fused step")
            continue
        row = {"graph_check": graph_matches_eager(name, x[:4008], y[:4008])}
        print(f"  graphed epoch vs eager (125 full batches + one of 8): "
              f"{'same weights' if row['graph_check']['same_weights'] else 'DIFFERENT weights'} "
              f"(largest difference {row['graph_check']['max_weight_difference']:.1e})")
        if not row["graph_check"]["same_weights"]:
            failed.append(f"{name}'s graphed step")
        row.update(time_model(name, x, y, epochs=1 if name == "selu_100" else args.epochs))
        for side in ("trainwell", "trainwell graphed", "hand-written"):
            r = row[side]
            print(f"  {side:17s} min {r['min']:.3f} s  median {r['median']:.3f} s  first {r['first']:.3f} s  "
                  f"{r['step_us']:.0f} us/step")
        print(f"  / hand-written: trainwell {row['ratio_trainwell']:.3f}, graphed {row['ratio_graphed']:.3f}; "
              f"graphed / eager {row['graphed_over_eager']:.3f}")
        results["models"][name] = row
    results["failed"], results["seconds"] = failed, time.perf_counter() - started
    out = Path(args.out) / "gpu-results.json"
    write_json(out, results)
    print(f"wrote {out} ({results['seconds']:.0f} s)" + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return CHECK_FAILED if failed else 0


if __name__ == "__main__":
    sys.exit(main())

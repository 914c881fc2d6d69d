"""Time the fused step with the Adam family's update folded against the same step calling optimizer.step().

For each model (the suite's selu and leaky_relu 300-100 networks, batch 32) and each
optimizer (Nadam, Adam, AdamW at lr 1e-3, built as trainwell builds them: foreach NAdam,
fused Adam and AdamW), two fused steps on one batch: one folds the update
(:mod:`trainwell.train.fused_adam`), the other runs the same optimizer through a subclass
the fold does not take, so its gradients go to ``.grad`` and its own ``step()`` runs.
Rounds alternate between the two in one process; the figure is the minimum per step over
the rounds (with one thread, of the thread's CPU time, which machine noise touches least).

    python benchmarks/folded_adam.py [--threads 2] [--rounds 40]
"""

from __future__ import annotations

import argparse
import time

import torch

from trainwell import Trainer
from trainwell.optim import build_fast, resolve_optimizer
from trainwell.train.step import fused_step

from suite import trainwell_model  # noqa: E402  (the suite's models)


def optimizer_factory(name: str, *, folded: bool):
    """trainwell's optimizer ``name`` (lr 1e-3) in its fastest build; unfolded: a subclass the fold leaves alone."""
    cls, options = resolve_optimizer(name, {"lr": 1e-3})
    if not folded:
        cls = type(f"Unfolded{cls.__name__}", (cls,), {})
    return lambda params: build_fast(cls, params, options)


def step_time(steps: dict, x: torch.Tensor, y: torch.Tensor, *, rounds: int, clock) -> dict[str, float]:
    best = {name: float("inf") for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            start = clock()
            for _ in range(10):
                step(x, y)
            best[name] = min(best[name], (clock() - start) / 10)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    clock = time.thread_time if args.threads == 1 else time.perf_counter
    x, y = torch.randn(32, 28, 28), torch.randint(0, 10, (32,))
    for model in ("selu", "leaky_relu"):
        for name in ("nadam", "adam", "adamw"):
            steps = {}
            for folded in (True, False):
                torch.manual_seed(0)
                trainer = Trainer(trainwell_model(model), optimizer=optimizer_factory(name, folded=folded), seed=0)
                steps[folded] = fused_step(trainer)
                assert (steps[folded].fused.update is not None) == folded
            best = step_time(steps, x, y, rounds=args.rounds, clock=clock)
            print(f"{model:10s} {name:6s} {args.threads} thread(s): folded {best[True] * 1e6:6.0f} us, "
                  f"optimizer.step() {best[False] * 1e6:6.0f} us, folded / step() {best[True] / best[False]:.2f}",
                  flush=True)


if __name__ == "__main__":
    main()

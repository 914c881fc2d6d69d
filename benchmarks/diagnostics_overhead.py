"""Time epochs of the chapter's leaky_relu model with and without the Diagnostics callback.

Two trainers on the same preloaded tensors (55,000 images of 28x28, batch 32, SGD
1e-3), one with ``Diagnostics()`` at its default settings (every 100 steps), epochs
alternating in one process so machine noise hits both alike; prints each side's min and
median epoch time and the overhead (with / without - 1).

    python benchmarks/diagnostics_overhead.py [--epochs 5] [--every 100] [--threads N] [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import statistics

import torch

from trainwell import Trainer
from trainwell.doctor.record import Diagnostics

from suite import data, trainwell_model  # noqa: E402  (the suite's models and data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs per side, after one warm-up each")
    parser.add_argument("--every", type=int, default=100, help="Diagnostics(every=...) (default: the default)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--real", action="store_true", help="use Fashion-MNIST instead of random pixels")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    x, y = data(args.real, args.device)
    torch.manual_seed(0)
    recorder = Diagnostics(every=args.every)
    trainers = {"without": Trainer(trainwell_model("leaky_relu"), optimizer={"name": "sgd", "lr": 1e-3}, device=args.device, seed=0),
                "with": Trainer(trainwell_model("leaky_relu"), optimizer={"name": "sgd", "lr": 1e-3}, device=args.device, seed=0,
                                callbacks=[recorder])}

    def epoch(name: str) -> float:
        history = trainers[name].fit(x, y, epochs=1, batch_size=args.batch_size, verbose=False)
        if x.is_cuda:
            torch.cuda.synchronize()
        return history.last["time"]

    times: dict[str, list[float]] = {"without": [], "with": []}
    epoch("without"), epoch("with")
    for i in range(args.epochs):
        for name in (("without", "with") if i % 2 == 0 else ("with", "without")):
            times[name].append(epoch(name))
    ratios = [a / b for a, b in zip(times["with"], times["without"])]
    where = torch.cuda.get_device_name() if x.is_cuda else f"CPU, {torch.get_num_threads()} thread(s)"
    print(f"leaky_relu epoch, batch {args.batch_size}, {where}, Diagnostics(every={args.every}), "
          f"{args.epochs} epochs each, {len(recorder.recording.samples)} steps recorded")
    for name, values in times.items():
        print(f"  {name:8s} diagnostics: min {min(values):.3f} s  median {statistics.median(values):.3f} s")
    print(f"  overhead: min-to-min {min(times['with']) / min(times['without']) - 1:+.1%}, "
          f"median of pairs {statistics.median(ratios) - 1:+.1%}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"times": times, "pair_ratios": ratios, "device": where, "every": args.every}, handle, indent=1)


if __name__ == "__main__":
    main()

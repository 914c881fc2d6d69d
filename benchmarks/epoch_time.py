"""Time one training epoch of the chapter's leaky_relu model: trainwell vs a hand-written loop.

Both run on the same preloaded tensors (55,000 images of 28x28, batch 32, SGD 1e-3),
alternating epochs in one process so machine noise hits both alike; the script prints
each side's min and median epoch time and the ratio trainwell / hand-written.

    python benchmarks/epoch_time.py [--epochs 5] [--threads N] [--real]

``--real`` uses Fashion-MNIST (found as trainwell finds it) instead of random pixels;
the time per epoch does not depend on the pixel values.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from torch import nn

from trainwell import Dense, Flatten, Trainer, build_model


def book_model() -> nn.Module:
    return build_model([Flatten(), Dense(300, activation="leaky_relu", init="he_normal"),
                        Dense(100, activation="leaky_relu", init="he_normal"), Dense(10, activation="softmax")],
                       input_shape=(28, 28))


def hand_written_model() -> nn.Module:
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 300), nn.LeakyReLU(0.3), nn.Linear(300, 100),
                          nn.LeakyReLU(0.3), nn.Linear(100, 10))
    for layer in model:
        if isinstance(layer, nn.Linear):
            nn.init.kaiming_normal_(layer.weight)
            nn.init.zeros_(layer.bias)
    return model


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


def data(real: bool) -> tuple[torch.Tensor, torch.Tensor]:
    if real:
        from trainwell import data as datasets

        dataset = datasets.load("fashion_mnist")
        x = torch.from_numpy(dataset.x_train[5000:].astype("float32") / 255.0)
        return x, torch.from_numpy(dataset.y_train[5000:].astype("int64"))
    generator = torch.Generator().manual_seed(0)
    return torch.rand(55000, 28, 28, generator=generator), torch.randint(0, 10, (55000,), generator=generator)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs per side, after one warm-up each")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: PyTorch's choice)")
    parser.add_argument("--real", action="store_true", help="use Fashion-MNIST instead of random pixels")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    x, y = data(args.real)
    x, y = x.to(args.device), y.to(args.device)
    torch.manual_seed(0)
    trainer = Trainer(book_model(), optimizer={"name": "sgd", "lr": 1e-3}, device=args.device, seed=0)
    reference = hand_written_model().to(args.device)
    reference_opt = torch.optim.SGD(reference.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)

    def trainwell_epoch() -> float:
        return trainer.fit(x, y, epochs=1, batch_size=args.batch_size, verbose=False).last["time"]

    times: dict[str, list[float]] = {"trainwell": [], "hand-written": []}
    trainwell_epoch()
    hand_written_epoch(reference, reference_opt, x, y, args.batch_size, generator)
    for _ in range(args.epochs):
        times["trainwell"].append(trainwell_epoch())
        times["hand-written"].append(hand_written_epoch(reference, reference_opt, x, y, args.batch_size, generator))
    ratios = [a / b for a, b in zip(times["trainwell"], times["hand-written"])]
    where = torch.cuda.get_device_name() if x.is_cuda else f"CPU, {torch.get_num_threads()} thread(s)"
    print(f"leaky_relu epoch, batch {args.batch_size}, {where}, {args.epochs} epochs each")
    for name, values in times.items():
        print(f"  {name:13s} min {min(values):.3f} s  median {statistics.median(values):.3f} s")
    print(f"  ratio trainwell / hand-written: min-to-min {min(times['trainwell']) / min(times['hand-written']):.3f}, "
          f"median of pairs {statistics.median(ratios):.3f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"times": times, "pair_ratios": ratios, "device": where}, handle, indent=1)


if __name__ == "__main__":
    main()

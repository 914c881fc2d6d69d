"""Where a training step's time goes: products, elementwise kernels, views, and the Python between them.

For one of the suite's models (benchmarks/suite.py), it runs trainwell's step (the fused one
where it applies) on batches of 32 under ``torch.profiler`` and sorts each op's own CPU time
into four groups: the matrix products (``addmm``, ``mm``, ``addmm_``, ``addmv_``), the
elementwise and reduction kernels (activations, their backward, batch normalization, the
loss, the optimizer's update), views and allocations (``t``, ``unsqueeze``, ``empty``...),
and what is left of the step's wall time: PyTorch's dispatch and trainwell's own Python.
The profiler adds its own cost to every op, so the step is also timed without it; the
shares are of the profiled time.

    python benchmarks/step_profile.py selu_100            # the 100-layer SELU stack, one thread
    python benchmarks/step_profile.py leaky_relu --threads 2 --top 15
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from suite import MODELS, optimizer_spec, trainwell_model  # noqa: E402

from trainwell import Trainer  # noqa: E402
from trainwell.train.step import fused_step  # noqa: E402
from trainwell.train.threads import auto_threads  # noqa: E402

PRODUCTS = {"aten::addmm", "aten::mm", "aten::addmm_", "aten::addmv_", "aten::addmv", "aten::bmm", "aten::matmul"}
VIEWS = {"aten::t", "aten::transpose", "aten::unsqueeze", "aten::view", "aten::reshape", "aten::as_strided",
         "aten::slice", "aten::select", "aten::expand", "aten::empty", "aten::empty_strided", "aten::empty_like",
         "aten::resolve_conj", "aten::resolve_neg", "aten::alias", "aten::detach", "aten::lift_fresh"}
#: ops that only call others (their own time is the call's overhead, counted with the views)
WRAPPERS = {"aten::to", "aten::_to_copy", "aten::contiguous", "aten::item", "aten::_local_scalar_dense"}


def group(name: str) -> str:
    if name in PRODUCTS:
        return "matrix products"
    if name in VIEWS or name in WRAPPERS:
        return "views, allocations, conversions"
    return "elementwise and reductions"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=MODELS)
    parser.add_argument("--steps", type=int, default=200, help="profiled steps (default 200)")
    parser.add_argument("--threads", type=int, help="torch threads (default: trainwell's choice for the model)")
    parser.add_argument("--top", type=int, default=10, help="how many ops to list by their own time")
    args = parser.parse_args()
    model = trainwell_model(args.model)
    threads = args.threads or auto_threads(model, torch.device("cpu")) or torch.get_num_threads()
    torch.set_num_threads(threads)
    trainer = Trainer(model, optimizer=optimizer_spec(args.model), seed=0)
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(args.steps * 32, 28, 28, generator=generator)
    y = torch.randint(0, 10, (args.steps * 32,), generator=generator)
    trainer.fit(x[:640], y[:640], epochs=1, batch_size=32, verbose=False)  # warm-up, and the fused probe
    step = fused_step(trainer)
    if step is None:
        raise SystemExit(f"{args.model}: the fused step does not apply")
    batches = [(x[i:i + 32], y[i:i + 32]) for i in range(0, len(x), 32)]

    def run() -> float:
        started = time.perf_counter()
        for xb, yb in batches:
            step(xb, yb)
        return (time.perf_counter() - started) / len(batches) * 1e6

    plain = min(run() for _ in range(3))
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        profiled = run()
    totals: dict[str, float] = {}
    events = [e for e in prof.key_averages() if e.key.startswith("aten::")]
    for event in events:
        totals[group(event.key)] = totals.get(group(event.key), 0.0) + event.self_cpu_time_total / len(batches)
    rest = profiled - sum(totals.values())
    print(f"{args.model}, {threads} thread(s): a step takes {plain:.0f} us ({profiled:.0f} us under the profiler)")
    for name, us in sorted(totals.items(), key=lambda item: -item[1]) + [("dispatch and Python (the rest)", rest)]:
        print(f"  {name:34s} {us:8.0f} us  {us / profiled:6.1%}")
    calls = sum(e.count for e in events) / len(batches)
    print(f"  {calls:.0f} aten calls a step; the ops with the most time of their own:")
    for event in sorted(events, key=lambda e: -e.self_cpu_time_total)[:args.top]:
        print(f"    {event.key:28s} {event.self_cpu_time_total / len(batches):8.1f} us  "
              f"{event.count / len(batches):6.1f} calls")


if __name__ == "__main__":
    main()

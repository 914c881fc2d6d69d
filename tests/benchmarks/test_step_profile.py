"""benchmarks/step_profile.py splits a step's time into its groups and lists the ops that took it."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_step_profile_prints_each_group_and_the_products_first_among_ops():
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "step_profile.py"), "leaky_relu", "--steps", "4",
                           "--threads", "1", "--top", "3"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for group in ("matrix products", "elementwise and reductions", "views, allocations, conversions",
                  "dispatch and Python (the rest)"):
        assert group in out
    assert "aten calls a step" in out and "a step takes" in out
    listed = [line.split()[0] for line in out.splitlines() if line.startswith("    aten::")]
    assert len(listed) == 3 and any(name in ("aten::addmm", "aten::addmm_", "aten::mm") for name in listed)


def test_step_profile_refuses_a_model_it_does_not_know():
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "step_profile.py"), "resnet"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "invalid choice" in done.stderr

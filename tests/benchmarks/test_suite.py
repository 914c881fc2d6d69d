"""benchmarks/suite.py's parts that are not timing: its command line, the GEMM floor's products, the JAX side's
probe and report, and the table it writes."""

import sys

import pytest
import torch

import suite


def side(minimum, median=None, first=1.0, step_us=None, **extra):
    median = minimum if median is None else median
    return {"first": first, "times": [minimum, median], "min": minimum, "median": median,
            "step_us": step_us or minimum / 1719 * 1e6, "peak_mib": 500.0, **extra}


def fake_results():
    timed = {"threads": 2, "epochs": 3, "fused": True, "trainwell": side(0.647), "hand-written": side(1.114),
             "standard step": side(1.0), "ratio_min": 0.58, "ratio_min_standard": 0.9,
             "keras_tuned": side(1.232), "ratio_keras_tuned": 0.525,
             "jax": side(0.831, 0.85, optimizer="optax.sgd(1e-3)"), "ratio_jax": 0.78,
             "gemm_floor_us": 138.0, "step_over_floor": 2.73}
    bare = {"threads": 1, "epochs": 1, "fused": False, "trainwell": side(2.0), "hand-written": side(2.5),
            "ratio_min": 0.8, "jax": side(1.5, optimizer="optax.nadam(1e-3, eps=1e-7): Nesterov Adam")}
    return {"mode": "quick", "batch_size": 32, "epochs": 3, "models": {"leaky_relu": timed, "selu": bare},
            "environment": {"device": "cpu", "torch": "2.13", "cpus": 2, "python": "3.11", "machine": "x86_64"}}


def table_rows(text):
    rows = [line for line in text.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]


def test_the_table_has_the_jax_scan_keras_tuned_and_gemm_floor_columns():
    text = suite.markdown(fake_results())
    header, rule, timed, bare = table_rows(text)
    assert len(header) == len(rule) == len(timed) == len(bare) == 18
    jax, floor = header.index("JAX scan"), header.index("GEMM floor")
    assert header[jax + 1] == "ratio" and header[floor + 1] == "step / floor"
    assert timed[jax] == "0.83 / 0.85" and timed[jax + 1] == f"{0.647 / 0.831:.2f}"
    assert timed[header.index("Keras tuned") + 1] == f"{0.647 / 1.232:.2f}"
    assert timed[floor] == "138 us" and timed[floor + 1] == "2.73"
    assert bare[header.index("Keras tuned")] == "-" and bare[floor] == "-" and bare[jax] == "1.50 / 1.50"
    assert "selu: optax.nadam" in text  # the Nadam variant JAX ran is named


def test_the_summary_gives_each_ratio_or_a_dash():
    lines = suite.summary(fake_results()).splitlines()
    assert "/ Keras tuned 0.53" in lines[1] and "/ JAX scan 0.78" in lines[1] and "step / GEMM floor 2.73" in lines[1]
    assert "/ Keras tuned -" in lines[2] and "step / GEMM floor -" in lines[2]


@pytest.mark.parametrize("argv, message", [
    (["--models", "leaky_relu,resnet"], "unknown model 'resnet'; allowed: leaky_relu, bn_after, selu, selu_100"),
    (["--models", ","], "--models names none"),
    (["--epochs", "0"], "--epochs 0: must be a positive integer"),
    (["--threads", "-1"], "--threads -1: must be a positive integer"),
])
def test_bad_arguments_stop_with_one_message(argv, message, capsys):
    with pytest.raises(SystemExit) as stopped:
        suite.arguments(argv)
    assert stopped.value.code == 2 and message in capsys.readouterr().err


def test_the_jax_side_is_on_by_default_and_names_its_interpreter():
    args = suite.arguments(["--quick", "--jax-python", "/some/python"])
    assert args.jax is True and args.jax_python == "/some/python" and args.names == list(suite.MODELS)
    assert suite.arguments(["--no-jax"]).jax is False


def test_the_gemm_floor_runs_each_product_of_an_epoch_at_its_batch_sizes(monkeypatch):
    floor = suite.GemmFloor(suite.hand_written_model("leaky_relu"), samples=100, batch_size=32, device="cpu")
    assert [(count, [tuple(buffer[1].shape) for buffer in layers]) for layers, count in floor.batches] == [
        (3, [(32, 784), (32, 300), (32, 100)]), (1, [(4, 784), (4, 300), (4, 100)])]
    shapes = []
    real_mm = torch.mm
    monkeypatch.setattr(torch, "mm", lambda a, b, out: shapes.append((tuple(a.shape), tuple(b.shape))) or
                        real_mm(a, b, out=out))
    assert floor.epoch() > 0
    first_step = shapes[:8]
    assert first_step == [((32, 784), (784, 300)), ((300, 32), (32, 784)),  # forward, weight gradient
                          ((32, 300), (300, 100)), ((100, 32), (32, 300)), ((32, 100), (100, 300)),  # + input gradient
                          ((32, 100), (100, 10)), ((10, 32), (32, 100)), ((32, 10), (10, 100))]
    assert len(shapes) == 4 * 8


def fake_jax(tmp_path):
    """A folder whose ``jax`` package fails to import, as where jax is not installed."""
    (tmp_path / "jax").mkdir()
    (tmp_path / "jax" / "__init__.py").write_text("raise ImportError('No module named jax (a test stand-in)')\n")
    return str(tmp_path)


def test_without_jax_the_jax_side_is_skipped_with_a_message(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PYTHONPATH", fake_jax(tmp_path))
    monkeypatch.setenv("TRAINWELL_JAX_PYTHON", sys.executable)
    assert suite.jax_python(None) is None
    out = capsys.readouterr().out
    assert f"JAX (jax + optax) not importable by {sys.executable}: skipped" in out and "--jax-python" in out


SERVED = """#!{python}
import json, sys
print("XLA says something", file=sys.stderr)
print(json.dumps({{"ready": True, "first": 5.0}}), flush=True)
times = [5.0]
for line in sys.stdin:
    if line.strip() == "end":
        break
    times.append(1.0 if len(times) == 1 else 0.8)
    print(json.dumps({{"time": times[-1]}}), flush=True)
print(json.dumps({{"times": times, "cpu_times": times, "busy_threads": 1, "optimizer": "optax.sgd(1e-3)",
                  "jax": "0.10.2", "optax": "0.2.8"}}))
"""


def served_python(tmp_path, text=SERVED):
    """A stand-in for jax_epoch.py --serve's interpreter, speaking its protocol (the script path is ignored)."""
    python = tmp_path / "python"
    python.write_text(text.format(python=sys.executable))
    python.chmod(0o755)
    return str(python)


def test_the_jax_side_runs_an_epoch_per_turn_and_is_summarized_with_its_thread_use(tmp_path):
    side = suite.JaxEpochs(served_python(tmp_path), "leaky_relu", threads=1)
    assert side.ready and side.epoch() == 1.0 and side.epoch() == 0.8
    report = side.close()
    assert report["first"] == 5.0 and report["min"] == 0.8 and report["median"] == pytest.approx(0.9)
    assert report["cpu_per_wall"] == pytest.approx(1.0) and report["busy_threads"] == 1 and report["interleaved"]
    assert report["version"] == "jax 0.10.2, optax 0.2.8" and report["step_us"] == pytest.approx(0.8 / 1719 * 1e6)


def test_a_jax_side_that_ends_early_is_reported_and_left_out(tmp_path, capsys):
    side = suite.JaxEpochs(served_python(tmp_path, "#!{python}\nimport sys\nsys.exit('no device here')\n"),
                           "leaky_relu", threads=1)
    assert not side.ready and side.close() is None
    assert "jax scan failed (exit status 1: ['no device here'])" in capsys.readouterr().out


def test_time_torch_gives_the_jax_side_its_turn_in_every_round(tmp_path):
    side = suite.JaxEpochs(served_python(tmp_path), "leaky_relu", threads=1)
    asked = []
    epoch = side.epoch
    side.epoch = lambda: asked.append(1) or epoch()
    x, y = torch.rand(64, 28, 28), torch.randint(0, 10, (64,))
    result = suite.time_torch("leaky_relu", x, y, epochs=2, batch_size=32, device="cpu", jax=side)
    assert len(asked) == 3 and "jax scan" not in result  # the warm-up round and two timed ones; summarized by close()
    assert side.close()["times"] == [1.0, 0.8, 0.8]


def test_the_readmes_and_docstrings_suite_commands_parse_as_written():
    """Each `python benchmarks/suite.py ...` line of the README and of suite.py's docstring is a valid command line
    (running them takes minutes: their options are what can drift)."""
    import re
    import shlex
    from pathlib import Path

    readme = (Path(suite.__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    lines = re.findall(r"^\s*python benchmarks/suite\.py(.*)$", readme + suite.__doc__, flags=re.M)
    assert len(lines) >= 6 and any("--jax-python" in line and "--keras-python" in line for line in lines)
    for line in lines:
        argv = shlex.split(line.split("  #")[0])
        assert suite.arguments(argv).names, line


def test_the_table_names_the_processor_it_ran_on():
    results = fake_results()
    assert "AMD" not in suite.markdown(results)  # a results file from before the processor was recorded
    results["environment"]["processor"] = "AMD EPYC, AVX2"
    assert suite.markdown(results).splitlines()[2].startswith("cpu (AMD EPYC, AVX2); torch 2.13; 2 CPUs")
    assert suite.processor().endswith(str(suite.torch.backends.cpu.get_cpu_capability()))

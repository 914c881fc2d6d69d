"""benchmarks/gpu.py: on CUDA its checks and timings run here; everywhere its command line, its no-CUDA exit and
the logic of its graphed epoch (run eagerly, without capture) are checked, so the script is not dead code."""

import json
import subprocess
import sys

import pytest
import torch

import gpu


@pytest.fixture
def images():
    generator = torch.Generator().manual_seed(0)
    return torch.rand(520, 28, 28, generator=generator), torch.randint(0, 10, (520,), generator=generator)


def test_without_cuda_it_says_so_and_exits_with_status_3(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu.main(["--out", str(tmp_path)]) == gpu.NO_CUDA == 3
    assert "no CUDA device: torch.cuda.is_available() is False" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_its_command_line():
    args = gpu.arguments([])
    assert args.names == list(gpu.MODELS) and args.epochs == 2 and args.tests and args.out == str(gpu.HERE)
    args = gpu.arguments(["--models", "selu", "--epochs", "1", "--no-tests", "--out", "/tmp/x"])
    assert (args.names, args.epochs, args.tests, args.out) == (["selu"], 1, False, "/tmp/x")


@pytest.mark.parametrize("argv, message", [(["--models", "vgg"], "--models 'vgg': allowed are leaky_relu, bn_after"),
                                           (["--epochs", "0"], "--epochs 0: must be a positive integer")])
def test_a_bad_argument_stops_with_one_message(argv, message, capsys):
    with pytest.raises(SystemExit) as stopped:
        gpu.arguments(argv)
    assert stopped.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("name", ["leaky_relu", "bn_after", "selu"])  # folded SGD, BatchNorm's buffers, Nadam's state
def test_the_graphed_epoch_without_capture_trains_as_the_eager_step(name, images):
    """Its warm-up steps are undone (weights, batch-norm statistics, optimizer state), its static index buffers
    take every batch, the short last one included: one epoch gives the eager fused step's weights exactly."""
    x, y = images
    check = gpu.graph_matches_eager(name, x, y, capture=False)
    assert check == {"max_weight_difference": 0.0, "same_weights": True, "steps": 17}


def test_the_fused_check_and_the_timing_run_on_the_data_device(images):
    x, y = images
    check = gpu.fused_check(["bn_after"], x, y, samples=256)["bn_after"]
    assert check["why_not_fused"] is None and check["same_history"] and not check["on_device"]  # the CPU here
    timed = gpu.time_model("leaky_relu", x, y, epochs=1, capture=False)
    assert set(timed) >= {"trainwell", "trainwell graphed", "hand-written", "ratio_graphed", "graphed_over_eager"}
    assert timed["ratio_graphed"] == pytest.approx(timed["trainwell graphed"]["min"] / timed["hand-written"]["min"])


def test_on_cuda_the_step_is_fused_and_its_cuda_graph_trains_as_the_eager_step(tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device: the CUDA graph capture and the on-device checks need one "
                    "(run benchmarks/gpu.py there)")
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(4008, 28, 28, generator=generator).cuda()
    y = torch.randint(0, 10, (4008,), generator=generator).cuda()
    checks = gpu.fused_check(["leaky_relu", "selu"], x, y)
    assert all(c["why_not_fused"] is None and c["on_device"] and c["same_history"] for c in checks.values()), checks
    for name in ("leaky_relu", "bn_after", "selu"):
        graph = gpu.graph_matches_eager(name, x, y)
        assert graph["same_weights"], (name, graph)
    timed = gpu.time_model("leaky_relu", x, y, epochs=1)
    assert timed["trainwell graphed"]["min"] > 0
    assert gpu.main(["--models", "leaky_relu", "--epochs", "1", "--no-tests", "--out", str(tmp_path)]) == 0
    assert json.loads((tmp_path / "gpu-results.json").read_text())["models"]["leaky_relu"]["graph_check"]["same_weights"]


@pytest.mark.slow
def test_its_test_selection_holds_the_tests_that_skip_without_cuda():
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                           *gpu.CUDA_TESTS], cwd=gpu.ROOT, capture_output=True, text=True)
    collected = set(done.stdout.split())
    for test in ("tests/train/test_fused.py::test_fused_step_on_cuda_matches_the_standard_step",
                 "tests/train/test_precision.py::test_an_fp16_fit_on_cuda_scales_the_loss_and_trains",
                 "tests/train/test_trainer.py::test_cuda_training_keeps_data_on_device",
                 "tests/train/test_trainer.py::test_cuda_history_matches_cpu"):
        assert test in collected, done.stdout[-2000:]

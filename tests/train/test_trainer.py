import numpy as np
import pytest
import torch
from helpers import small_model
from torch import nn

from trainwell.callbacks import Callback, HistoryLogger, ProgressDisplay
from trainwell.errors import ArrayError, ConfigError
from trainwell.train.history import History
from trainwell.model.layers import Dense, build_model
from trainwell.train.devices import resolve_device
from trainwell.train.trainer import Trainer


def test_fit_learns_and_records_history(blobs):
    x, y = blobs
    trainer = Trainer(small_model(), optimizer={"name": "sgd", "lr": 0.1}, seed=0)
    history = trainer.fit(x[:500], y[:500], epochs=5, batch_size=32, validation_data=(x[500:], y[500:]), verbose=False)
    assert len(history) == 5
    assert history["loss"][-1] < history["loss"][0]
    assert history.last["val_accuracy"] > 0.9
    assert set(history.last) == {"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "time"}
    assert history["lr"] == [0.1] * 5
    assert trainer.evaluate(x[500:], y[500:])["accuracy"] == pytest.approx(history.last["val_accuracy"])


def test_same_seed_same_history_on_cpu(blobs):
    x, y = blobs

    def run():
        trainer = Trainer(small_model(), optimizer={"name": "adam"}, seed=7, device="cpu")
        history = trainer.fit(x, y, epochs=3, batch_size=16, validation_data=(x[:100], y[:100]), verbose=False)
        return [{k: v for k, v in r.items() if k != "time"} for r in history], trainer.model.state_dict()

    (first, weights_a), (second, weights_b) = run(), run()
    assert first == second
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)
    other = Trainer(small_model(), optimizer={"name": "adam"}, seed=8, device="cpu")
    third = other.fit(x, y, epochs=3, batch_size=16, verbose=False)
    assert third["loss"] != [r["loss"] for r in first]


def test_loss_matches_a_hand_written_pass(blobs):
    """The recorded epoch loss is the size-weighted mean of the batch losses, as Keras reports it."""
    x, y = blobs
    model = small_model()
    model[1].p = 0.0
    reference = small_model()
    reference[1].p = 0.0
    reference.load_state_dict(model.state_dict())
    trainer = Trainer(model, optimizer={"name": "sgd", "lr": 0.05}, seed=3)
    history = trainer.fit(x[:100], y[:100], epochs=1, batch_size=30, shuffle=False, verbose=False)
    opt = torch.optim.SGD(reference.parameters(), lr=0.05)
    total = 0.0
    xt, yt = torch.from_numpy(x[:100]), torch.from_numpy(y[:100])
    for start in range(0, 100, 30):
        logits = reference[:2](xt[start:start + 30])
        logits = reference[2].forward_logits(logits)
        loss = nn.functional.cross_entropy(logits, yt[start:start + 30])
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += loss.item() * len(yt[start:start + 30])
    assert history.last["loss"] == pytest.approx(total / 100, rel=1e-5)
    for key, value in reference.state_dict().items():
        assert torch.allclose(value, model.state_dict()[key], atol=1e-6)


def test_plain_torch_module_and_torch_optimizer(blobs):
    x, y = blobs
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    trainer = Trainer(model, optimizer=opt, seed=0)
    trainer.fit(x, y, epochs=3, verbose=False)
    probs = trainer.predict(x[:10])
    assert probs.shape == (10, 3) and torch.allclose(probs.sum(1), torch.ones(10))
    assert torch.equal(trainer.predict_classes(x[:10]), probs.argmax(1))


def test_binary_classification(blobs):
    x, y = blobs
    target = (y == 0).astype(np.int64)
    model = build_model([Dense(8, activation="elu"), Dense(1, activation="sigmoid")], input_shape=(4,))
    trainer = Trainer(model, loss="binary_crossentropy", optimizer={"name": "adam", "lr": 0.01}, seed=0)
    history = trainer.fit(x, target, epochs=5, verbose=False)
    assert history.last["accuracy"] > 0.9
    assert trainer.predict(x[:5]).shape == (5, 1)


class Recorder(Callback):
    def __init__(self):
        self.events = []

    def on_fit_begin(self, trainer):
        self.events.append("fit_begin")

    def on_epoch_begin(self, trainer, epoch):
        self.events.append(f"epoch_begin {epoch}")

    def on_batch_end(self, trainer, step):
        self.events.append("batch")

    def on_epoch_end(self, trainer, epoch, logs):
        self.events.append(f"epoch_end {epoch}")
        if epoch == 2:
            trainer.stop_training = True

    def on_fit_end(self, trainer):
        self.events.append("fit_end")


def test_callbacks_see_events_in_order_and_can_stop(blobs):
    x, y = blobs
    recorder = Recorder()
    history = Trainer(small_model(), callbacks=[recorder], seed=0).fit(x[:64], y[:64], epochs=5, batch_size=32,
                                                                       verbose=False)
    assert len(history) == 2
    assert recorder.events == ["fit_begin", "epoch_begin 1", "batch", "batch", "epoch_end 1",
                               "epoch_begin 2", "batch", "batch", "epoch_end 2", "fit_end"]


def test_progress_lines_and_history_logger(blobs, tmp_path, capsys):
    x, y = blobs
    path = tmp_path / "log.csv"
    Trainer(small_model(), callbacks=[HistoryLogger(path)], seed=0).fit(x, y, epochs=2, validation_data=(x, y))
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith("Epoch 1/2 - ") and "val_accuracy:" in lines[1]
    assert path.read_text().splitlines()[0].startswith("epoch,loss,accuracy,val_loss")
    json_path = tmp_path / "log.json"
    trainer = Trainer(small_model(), callbacks=[HistoryLogger(json_path)], seed=0)
    trainer.fit(x, y, epochs=1, verbose=False)
    assert History.from_json(json_path) == trainer.history
    with pytest.raises(ConfigError, match=".json or .csv"):
        HistoryLogger(tmp_path / "log.txt")


def test_live_progress_bar_runs(blobs):
    x, y = blobs
    from rich.console import Console
    import io
    console = Console(file=io.StringIO(), force_terminal=True)
    Trainer(small_model(), callbacks=[ProgressDisplay(console=console, live=True)], seed=0).fit(x, y, epochs=1)
    assert "Epoch 1/1" in console.file.getvalue()


@pytest.mark.parametrize("kwargs, message", [
    ({"epochs": 0}, "epochs"), ({"epochs": 1.5}, "epochs"), ({"batch_size": 0}, "batch_size"),
])
def test_bad_fit_arguments(blobs, kwargs, message):
    x, y = blobs
    with pytest.raises(ConfigError, match=message):
        Trainer(small_model()).fit(x, y, verbose=False, **kwargs)


def test_bad_trainer_arguments_and_data(blobs):
    x, y = blobs
    with pytest.raises(ConfigError, match="unknown metric 'roc'; allowed: accuracy, top_k_accuracy, precision"):
        Trainer(small_model(), metrics=["roc"])
    with pytest.raises(ConfigError, match="clipnorm"):
        Trainer(small_model(), clipnorm=-1)
    with pytest.raises(ConfigError, match="600 inputs but 10 targets"):
        Trainer(small_model()).fit(x, y[:10], verbose=False)
    with pytest.raises(ConfigError, match="device"):
        resolve_device("tpu")


def test_clipping_runs_in_the_loop(blobs):
    x, y = blobs
    trainer = Trainer(small_model(), optimizer={"name": "sgd", "lr": 1.0}, clipvalue=1e-3, seed=0)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.fit(x[:32], y[:32], epochs=1, batch_size=32, verbose=False)
    change = (trainer.model.dense_1.weight - before["dense_1.weight"]).abs().max().item()
    assert change <= 1e-3 + 1e-7


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_training_keeps_data_on_device(blobs):
    x, y = blobs
    trainer = Trainer(small_model(), device="cuda", seed=0)
    history = trainer.fit(x, y, epochs=2, validation_data=(x, y), verbose=False)
    assert next(trainer.model.parameters()).is_cuda
    assert history.last["val_accuracy"] > 0.5


def test_cuda_history_matches_cpu(blobs):
    """The device path (data preloaded on the GPU, accuracy tallied there) gives the CPU's History."""
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    x, y = blobs
    torch.manual_seed(0)  # no dropout: CPU and CUDA draw different dropout masks from the same seed
    model = build_model([Dense(16, activation="relu"), Dense(3, activation="softmax")], input_shape=(4,))
    state = {k: v.clone() for k, v in model.state_dict().items()}

    def fresh():
        model.load_state_dict(state)
        return model

    histories = [Trainer(fresh(), optimizer={"name": "sgd", "lr": 0.1}, device=device, seed=0)
                 .fit(x, y, epochs=2, batch_size=32, validation_data=(x, y), verbose=False) for device in ("cpu", "cuda")]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert histories[1][key] == pytest.approx(histories[0][key], rel=1e-4, abs=1e-4)


def test_fast_paths_give_the_same_history(blobs):
    """Same seed, same History with and without the fast paths (thread choice, accuracy buffer)."""
    x, y = blobs
    histories = []
    for threads, metric_path in ((1, "buffer"), (2, "buffer"), (1, "generic")):
        trainer = Trainer(small_model(), optimizer={"name": "sgd", "lr": 0.1}, seed=0, threads=threads)
        if metric_path == "generic":  # the per-step accuracy sum the loop uses when the buffer does not apply
            trainer.skip_nonfinite = True
        history = trainer.fit(x, y, epochs=3, batch_size=32, validation_data=(x, y), verbose=False)
        histories.append(history)
    for other in histories[1:]:
        for key in ("loss", "accuracy", "val_loss", "val_accuracy", "lr"):
            assert other[key] == pytest.approx(histories[0][key], rel=1e-5, abs=1e-6)
        assert other.steps["lr"] == histories[0].steps["lr"]


def test_threads_setting_is_used_and_restored(blobs):
    x, y = blobs
    seen = []

    class Spy(Callback):
        def on_epoch_begin(self, trainer, epoch):
            seen.append(torch.get_num_threads())

    before = torch.get_num_threads()
    Trainer(small_model(), seed=0, threads=3, callbacks=[Spy()]).fit(x[:64], y[:64], epochs=1, verbose=False)
    assert seen == [3] and torch.get_num_threads() == before
    with pytest.raises(ConfigError, match="threads"):
        Trainer(small_model(), threads=0)


# --------------------------------------------------------------- arrays at the edge


def test_float64_inputs_train_evaluate_and_predict_as_float32_does(blobs):
    """``x / 255.0`` gives float64: it is cast to the model's dtype, so each entry point takes it."""
    x, y = blobs
    x64 = x.astype(np.float64)
    runs = []
    for inputs, fused in ((x, True), (x64, True), (x64, False)):
        trainer = Trainer(small_model(), optimizer={"name": "sgd", "lr": 0.1}, seed=0, fused=fused)
        history = trainer.fit(inputs, y, epochs=2, validation_data=(inputs[:100], y[:100]), verbose=False)
        runs.append((history, trainer))
    (reference, _), *others = runs
    for history, trainer in others:
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert history[key] == pytest.approx(reference[key], rel=1e-5, abs=1e-6), key
        assert trainer.evaluate(x64, y)["accuracy"] == pytest.approx(trainer.evaluate(x, y)["accuracy"])
        assert torch.allclose(trainer.predict(x64[:10]), trainer.predict(x[:10]))
        assert torch.equal(trainer.predict_classes(torch.from_numpy(x64[:10])), trainer.predict_classes(x[:10]))


def test_a_float64_model_takes_float32_and_integer_inputs(blobs):
    x, y = blobs
    trainer = Trainer(small_model().double(), optimizer={"name": "sgd", "lr": 0.1}, seed=0)
    trainer.fit(x, y, epochs=1, verbose=False)
    assert trainer.predict(x[:4]).dtype == torch.float64
    assert trainer.predict(np.zeros((2, 4), dtype=np.int64)).shape == (2, 3)


def test_a_float64_models_weighted_loss_is_float64_whole(blobs):
    """Integer sample weights in one batch train as repeated rows to float64's precision, not float32's."""
    x, y = blobs[0][:40].astype(np.float64), blobs[1][:40]
    weights = np.random.default_rng(0).integers(0, 4, size=len(y))

    def run(xs, ys, **fit):
        trainer = Trainer(small_model(8).double(), optimizer={"name": "sgd", "lr": 0.1}, seed=0)
        trainer.fit(xs, ys, epochs=3, batch_size=512, verbose=False, **fit)
        return torch.cat([p.detach().flatten() for p in trainer.model.parameters()])

    weighted = run(x, y, sample_weight=weights * len(y) / weights.sum())  # mean 1: the repeated rows' scale
    repeated = run(x.repeat(weights, axis=0), y.repeat(weights))
    assert weighted.dtype == torch.float64
    torch.testing.assert_close(weighted, repeated, rtol=1e-12, atol=1e-13)


def plain_model():
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))


def with_nan(x, index=7):
    x = x.copy()
    x[index, 1] = np.nan
    return x


@pytest.mark.parametrize("make_model, arrays, message", [
    (small_model, lambda x, y: (x[:, :3], y), r"training data x: samples of shape \(3,\) .*expects \(4,\)"),
    (plain_model, lambda x, y: (np.hstack([x, x[:, :1]]), y), r"training data x: samples of shape \(5,\) do not fit"),
    (small_model, lambda x, y: (x, np.where(y == 2, 3, y)), r"training data y: label 3 .*3 output units.*0\.\.2"),
    (plain_model, lambda x, y: (x, y - 1), r"training data y: label -1 .*0\.\.2"),
    (small_model, lambda x, y: (x, np.array(["cat", "dog", "bird"])[y]), r"training data y: .*strings \('bird'"),
    (small_model, lambda x, y: (x, np.array(["a", 1, 2.0] * 200, dtype=object)), r"training data y: .*strings"),
    (small_model, lambda x, y: (np.array([["a"] * 4] * len(y)), y), r"training data x: .*strings"),
    (small_model, lambda x, y: (with_nan(x), y), r"training data x: 1 value is NaN or infinite \(sample 7\)"),
    (small_model, lambda x, y: (x, y + 0.5), r"training data y: .*class indices.*got \d\.5"),
    (small_model, lambda x, y: (x, np.eye(3)[y]), r"training data y: labels of shape \(600, 3\).*argmax"),
    (small_model, lambda x, y: (x[0, 0], y), r"training data x: .*one sample per row"),
])
def test_bad_training_arrays_get_one_clear_error(blobs, make_model, arrays, message):
    x, y = blobs
    bad_x, bad_y = arrays(x, y)
    with pytest.raises(ArrayError, match=message):
        Trainer(make_model(), seed=0).fit(bad_x, bad_y, epochs=1, verbose=False)


def test_bad_validation_and_evaluation_arrays_name_the_array(blobs):
    x, y = blobs
    trainer = Trainer(small_model(), seed=0)
    x_inf = x.copy()
    x_inf[3, 0] = np.inf
    with pytest.raises(ArrayError, match="validation data x: 1 value is NaN or infinite"):
        trainer.fit(x, y, validation_data=(x_inf, y), verbose=False)
    with pytest.raises(ArrayError, match="validation data y: label 7"):
        trainer.fit(x, y, validation_data=(x, np.full_like(y, 7)), verbose=False)
    with pytest.raises(ArrayError, match=r"evaluation data x: samples of shape \(2,\)"):
        trainer.evaluate(x[:, :2], y)
    with pytest.raises(ArrayError, match="evaluation data y: label 3"):
        trainer.evaluate(x, y + 1)
    with pytest.raises(ArrayError, match="prediction inputs x: 1 value is NaN"):
        trainer.predict(with_nan(x))
    with pytest.raises(ArrayError, match=r"prediction inputs x: samples of shape \(5,\)"):
        Trainer(plain_model()).predict_classes(np.zeros((3, 5), dtype=np.float32))
    assert issubclass(ArrayError, ConfigError)  # the CLI's edge prints it as one line


def test_binary_labels_must_be_between_0_and_1(blobs):
    x, y = blobs
    model = build_model([Dense(8, activation="elu"), Dense(1, activation="sigmoid")], input_shape=(4,))
    trainer = Trainer(model, loss="binary_crossentropy", seed=0)
    with pytest.raises(ArrayError, match=r"training data y: label 2(\.0)? .*0 or 1"):
        trainer.fit(x, y, epochs=1, verbose=False)
    with pytest.raises(ArrayError, match="training data y: 1 value is NaN"):
        trainer.fit(x, np.where(np.arange(len(y)) == 5, np.nan, y == 0), epochs=1, verbose=False)
    trainer.fit(x, (y == 0).astype(np.float64), epochs=1, verbose=False)  # 0/1 as floats: fine


def test_labels_of_shape_n_by_1_are_taken(blobs):
    x, y = blobs
    column = Trainer(small_model(), seed=0).fit(x, y.reshape(-1, 1), epochs=2, verbose=False)
    flat = Trainer(small_model(), seed=0).fit(x, y, epochs=2, verbose=False)
    assert column["loss"] == flat["loss"] and column["accuracy"] == flat["accuracy"]


@pytest.mark.parametrize("method", ["predict", "predict_classes", "evaluate"])
def test_inference_refuses_a_batch_size_that_is_not_a_positive_integer(method):
    from trainwell.model.layers import Dense, build_model

    trainer = Trainer(build_model([Dense(3, activation="softmax")], input_shape=(4,), seed=0))
    x, y = torch.zeros(6, 4), torch.zeros(6, dtype=torch.long)
    arguments = (x, y) if method == "evaluate" else (x,)
    with pytest.raises(ConfigError, match="batch_size: must be a positive integer, got 0"):
        getattr(trainer, method)(*arguments, batch_size=0)


def test_threads_seeds_and_devices_are_bounded(blobs):
    from trainwell.train.threads import OVERSUBSCRIPTION, available_cpus

    limit = OVERSUBSCRIPTION * available_cpus()
    with pytest.raises(ConfigError, match=f"threads = {limit + 1}: at most {limit} on this machine"):
        Trainer(small_model(), threads=limit + 1)
    for seed in (-1, 2**64):
        with pytest.raises(ConfigError, match="seed: must be an integer from 0 to 2\\*\\*63 - 1"):
            Trainer(small_model(), seed=seed)
    with pytest.raises(ConfigError, match="device: 'meta' is not a device trainwell trains on"):
        Trainer(small_model(), device="meta")


# ------------------------------------------------------------------ losses, weights and metrics in a fit
def diabetes():
    from sklearn.datasets import load_diabetes
    from sklearn.preprocessing import StandardScaler

    x, y = load_diabetes(return_X_y=True)
    return StandardScaler().fit_transform(x).astype(np.float32), ((y - y.mean()) / y.std()).astype(np.float32)


def test_a_regression_model_ends_in_a_linear_unit_and_predicts_values():
    from trainwell.train.step import why_not_fused

    x, y = diabetes()
    torch.manual_seed(0)
    trainer = Trainer(build_model([Dense(16, activation="relu"), Dense(1)], input_shape=(10,)), loss="mse",
                      optimizer={"name": "adam", "lr": 0.01}, seed=0)
    assert trainer.loss.regression and trainer.metrics == ()  # accuracy is not a regression metric
    history = trainer.fit(x[:350], y[:350], epochs=5, validation_data=(x[350:], y[350:]), verbose=False)
    assert set(history.last) == {"epoch", "loss", "val_loss", "lr", "time"}
    assert history["loss"][-1] < history["loss"][0] and history.last["val_loss"] < 0.8
    values = trainer.predict(x[350:])
    assert values.shape == (len(x) - 350, 1)  # the values themselves, not a softmax of them
    assert float(((values[:, 0].numpy() - y[350:]) ** 2).mean()) == pytest.approx(history.last["val_loss"], rel=1e-5)
    assert why_not_fused(trainer) == "the loss is mse"
    with pytest.raises(ConfigError, match="predict_classes: a regression loss's model predicts values"):
        trainer.predict_classes(x[:3])
    with pytest.raises(ConfigError, match="the model ends in softmax but mse is a regression loss"):
        Trainer(small_model(), loss="mse")
    with pytest.raises(ArrayError, match=r"training data y: targets of shape \(350, 1\), but the model gives outputs "
                                         r"of shape \(n, 2\)"):
        Trainer(build_model([Dense(2)], input_shape=(10,)), loss="mse").fit(x[:350], y[:350], verbose=False)


def test_class_weight_is_the_equivalent_sample_weight(blobs):
    x, y = blobs
    table = {0: 1.0, "1": 5.0, 2: 0.5}  # TOML writes keys as strings

    def run(**weights):
        sample_weight = weights.pop("sample_weight", None)
        trainer = Trainer(small_model(), optimizer={"name": "sgd", "lr": 0.1}, seed=0, **weights)
        history = trainer.fit(x, y, epochs=2, batch_size=32, verbose=False, sample_weight=sample_weight)
        return [{k: v for k, v in r.items() if k != "time"} for r in history], trainer.model.state_dict()

    by_class, weights_a = run(class_weight=table)
    by_sample, weights_b = run(sample_weight=np.array([1.0, 5.0, 0.5])[y])
    unweighted, _ = run()
    assert by_class == by_sample and all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)
    assert by_class != unweighted
    both, _ = run(class_weight={1: 5.0, 2: 0.5}, sample_weight=np.full(len(y), 2.0))  # class 0 unnamed: weight 1
    doubled, _ = run(sample_weight=2 * np.array([1.0, 5.0, 0.5])[y])
    assert both == doubled


def test_a_weighted_epoch_loss_is_the_hand_computed_weighted_mean(blobs):
    x, y = blobs
    weights = np.random.default_rng(1).uniform(0, 3, len(y)).astype(np.float32)
    trainer = Trainer(small_model(8), optimizer={"name": "sgd", "lr": 0.1}, seed=0)
    with torch.no_grad():
        logits = trainer.forward_logits(torch.as_tensor(x))
    per_sample = torch.nn.functional.cross_entropy(logits, torch.as_tensor(y), reduction="none")
    expected = float((torch.as_tensor(weights) * per_sample).mean())
    history = trainer.fit(x, y, epochs=1, batch_size=len(y), verbose=False, sample_weight=weights)  # one step
    assert history.last["loss"] == pytest.approx(expected, rel=1e-5)
    assert history.last["loss"] != pytest.approx(float(per_sample.mean()), rel=1e-3)


def test_weighted_and_smoothed_fits_leave_the_fused_step_saying_why(blobs):
    from trainwell.train.step import why_not_fused

    x, y = blobs
    assert why_not_fused(Trainer(small_model(8))) is None
    assert why_not_fused(Trainer(small_model(8), label_smoothing=0.1)) == \
        "the loss is sparse_categorical_crossentropy (label_smoothing=0.1)"
    assert why_not_fused(Trainer(small_model(8), class_weight={0: 2.0})).startswith("sample or class weights")
    weights = np.random.default_rng(0).uniform(0.5, 2, len(y))

    def run(fused):
        trainer = Trainer(small_model(8), optimizer={"name": "sgd", "lr": 0.1}, seed=0, fused=fused)
        history = trainer.fit(x, y, epochs=1, batch_size=50, verbose=False, sample_weight=weights)
        return history.last["loss"], trainer.model.state_dict()

    (fused_loss, fused_state), (plain_loss, plain_state) = run(True), run(False)
    assert fused_loss == plain_loss and all(torch.equal(fused_state[k], plain_state[k]) for k in fused_state)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"sample_weight": np.ones(10)}, ArrayError, r"sample_weight: shape \(10,\), but there are 600 samples"),
    ({"sample_weight": -np.ones(600)}, ArrayError, r"sample_weight: weights must be finite numbers >= 0; got -1 \(sample 0\)"),
    ({"sample_weight": np.r_[np.ones(5), np.nan, np.ones(594)]}, ArrayError, r"got nan \(sample 5\)"),
    ({"sample_weight": ["a"] * 600}, ArrayError, "sample_weight"),
])
def test_bad_sample_weights_get_one_clear_error(blobs, kwargs, error, message):
    x, y = blobs
    with pytest.raises(error, match=message):
        Trainer(small_model()).fit(x, y, verbose=False, **kwargs)


def test_bad_class_weights_get_one_clear_error(blobs):
    x, y = blobs
    with pytest.raises(ConfigError, match="class_weight: the weight of class 1 must be a finite number >= 0"):
        Trainer(small_model(), class_weight={1: -2.0})
    with pytest.raises(ConfigError, match="class_weight: the loss mse is a regression loss"):
        Trainer(build_model([Dense(1)], input_shape=(4,)), loss="mse", class_weight={0: 1.0})
    with pytest.raises(ConfigError, match=r"class_weight: class 3 is out of range: the model has 3 classes \(0..2\)"):
        Trainer(small_model(), class_weight={3: 1.0}).fit(x, y, verbose=False)
    with pytest.raises(ConfigError, match="class_weight: 'cat' is not a class; class names are known only when"):
        Trainer(small_model(), class_weight={"cat": 2.0}).fit(x, y, verbose=False)
    named = Trainer(small_model(), class_weight={"cat": 2.0}, seed=0)
    named.class_names = ["dog", "cat", "bird"]  # as data that records its class names sets them
    by_index = Trainer(small_model(), class_weight={1: 2.0}, seed=0)
    assert named.fit(x, y, verbose=False).last["loss"] == by_index.fit(x, y, verbose=False).last["loss"]


def test_metrics_of_the_epoch_and_of_validation_are_in_history_by_keras_names(blobs):
    x, y = blobs
    trainer = Trainer(small_model(), seed=0, metrics=["accuracy", "auc", "f1", "top_2_accuracy"])
    history = trainer.fit(x[:500], y[:500], epochs=2, validation_data=(x[500:], y[500:]), verbose=False)
    assert list(history.last) == ["epoch", "loss", "accuracy", "auc", "f1", "top_2_accuracy", "val_loss",
                                  "val_accuracy", "val_auc", "val_f1", "val_top_2_accuracy", "lr", "time"]
    assert trainer.evaluate(x[500:], y[500:]) == pytest.approx(
        {k[4:]: v for k, v in history.last.items() if k.startswith("val_")})

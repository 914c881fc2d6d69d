import numpy as np
import pytest
import torch

import trainwell as tw
from trainwell.errors import ConfigError
from trainwell.model.modules import TwoTower
from trainwell.model.saving import save_model
from trainwell.train.trainer import Trainer
from trainwell.model.transfer import apply_frozen_modes, freeze, is_frozen, reuse_layers, select_layers, unfreeze


def model_a():
    torch.manual_seed(0)
    return tw.build_model([tw.Flatten(), tw.Dense(8, activation="selu"), tw.BatchNormalization(),
                           tw.Dense(6, activation="selu"), tw.Dense(3, activation="softmax")], input_shape=(2, 2))


def test_reuse_copies_weights_so_the_source_never_changes(tmp_path):
    source = model_a()
    path = save_model(source, tmp_path / "a.safetensors")
    before = path.read_bytes()
    model_b = reuse_layers(path, 4, head=[tw.Dense(1, activation="sigmoid")])
    assert [n for n, _ in model_b.named_children()] == ["flatten", "dense_1", "batch_normalization_1", "dense_2",
                                                        "dense_3"]
    assert torch.equal(model_b.dense_1.weight, source.dense_1.weight)
    x = np.random.default_rng(0).normal(size=(64, 2, 2)).astype(np.float32)
    y = (x.reshape(64, -1).sum(1) > 0).astype(np.int64)
    Trainer(model_b, loss="binary_crossentropy", optimizer={"name": "sgd", "lr": 0.5}, seed=0).fit(
        x, y, epochs=2, verbose=False)
    assert not torch.equal(model_b.dense_1.weight, source.dense_1.weight)
    assert path.read_bytes() == before
    # and the new model saves and loads like any other
    save_model(model_b, tmp_path / "b.safetensors")
    assert tw.load_model(tmp_path / "b.safetensors").spec == model_b.spec


def test_sharing_is_explicit():
    source = model_a()
    shared = reuse_layers(source, 2, head=[tw.Dense(2)], share=True)
    assert shared.dense_1 is source.dense_1
    copied = reuse_layers(source, 2, head=[tw.Dense(2)])
    assert copied.dense_1 is not source.dense_1


def test_freeze_stops_gradients_and_bn_statistics():
    model = model_a()
    assert freeze(model, ["dense_1", "batch_normalization_1"]) == ["dense_1", "batch_normalization_1"]
    assert is_frozen(model.dense_1) and not is_frozen(model.dense_2)
    frozen_weight = model.dense_1.weight.clone()
    frozen_mean = model.batch_normalization_1.running_mean.clone()
    x = np.random.default_rng(1).normal(size=(64, 2, 2)).astype(np.float32) * 3 + 2
    y = np.random.default_rng(1).integers(0, 3, 64)
    Trainer(model, optimizer={"name": "sgd", "lr": 0.5}, seed=0).fit(x, y, epochs=2, verbose=False)
    assert torch.equal(model.dense_1.weight, frozen_weight)
    assert torch.equal(model.batch_normalization_1.running_mean, frozen_mean)
    model.train()
    apply_frozen_modes(model)
    assert not model.batch_normalization_1.training and model.dense_2.training


def test_selectors_index_name_wildcard_slice():
    model = model_a()
    names = lambda sel: [n for n, _ in select_layers(model, sel)]  # noqa: E731
    assert names(-1) == ["dense_3"]
    assert names("dense_*") == ["dense_1", "dense_2", "dense_3"]
    assert names("1:3") == ["dense_1", "batch_normalization_1"]
    assert names(slice(3, None)) == ["dense_2", "dense_3"]
    with pytest.raises(ConfigError, match="no layer named 'dense_9'; the model's layers are: flatten, dense_1"):
        freeze(model, "dense_9")
    with pytest.raises(ConfigError, match="out of range: the model has 5 layers"):
        freeze(model, 7)
    with pytest.raises(ConfigError, match="slice"):
        select_layers(model, "a:b")


def test_unfreeze_with_a_lower_learning_rate_moves_parameters_to_a_new_group():
    model = model_a()
    freeze(model, "0:3")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    unfreeze(model, "0:3", optimizer=optimizer, lr_scale=0.1)
    groups = optimizer.param_groups
    assert len(groups) == 2 and groups[1]["lr"] == pytest.approx(0.01)
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in model[1:3].parameters()}
    assert all(p.requires_grad for p in model.parameters())
    with pytest.raises(ConfigError, match="lr_scale"):
        unfreeze(model, 1, optimizer=optimizer, lr_scale=0)
    with pytest.raises(ConfigError, match="lr_scale: must be a positive number, got nan"):
        unfreeze(model, 1, optimizer=optimizer, lr_scale=float("nan"))


def test_reusing_too_many_layers_is_an_error():
    with pytest.raises(ConfigError, match="cannot reuse 6 layers; the model has 5"):
        reuse_layers(model_a(), 6)
    with pytest.raises(ConfigError, match="built by trainwell"):
        reuse_layers(torch.nn.Sequential(torch.nn.Linear(2, 2)), 1)


def test_two_tower_trains_on_pairs_and_its_tower_is_reusable():
    from trainwell.data.pairs import make_pairs

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    x = (np.eye(3)[y][:, :, None] * 3 + rng.normal(size=(300, 3, 2)) * 0.3).astype(np.float32)
    pairs, same = make_pairs(x, y, 2000, seed=0)
    tower = lambda: tw.build_model([tw.Flatten(), tw.Dense(8, activation="elu", init="he_normal")],  # noqa: E731
                                   input_shape=(3, 2))
    head = tw.build_model([tw.Dense(8, activation="elu"), tw.Dense(1, activation="sigmoid")], input_shape=(16,))
    model = TwoTower(tower(), tower(), head)
    trainer = Trainer(model, loss="binary_crossentropy", optimizer={"name": "adam", "lr": 0.01}, seed=0)
    history = trainer.fit(pairs, same, epochs=5, verbose=False)
    assert history.last["accuracy"] > 0.9
    probabilities = trainer.predict(pairs[:8])
    assert torch.allclose(probabilities, model(torch.from_numpy(pairs[:8])).detach(), atol=1e-6)
    classifier = reuse_layers(model.tower_a, 2, head=[tw.Dense(3, activation="softmax")], freeze_reused=True)
    assert is_frozen(classifier.dense_1)


def test_frozen_feature_caching_gives_the_same_result():
    from trainwell.model.transfer import frozen_prefix_length

    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 2, 2)).astype(np.float32)
    y = rng.integers(0, 3, 256)
    results = []
    for cache in (True, False):
        model = model_a()
        freeze(model, "0:4")
        assert frozen_prefix_length(model) == 4
        trainer = Trainer(model, optimizer={"name": "sgd", "lr": 0.1}, seed=0)
        history = trainer.fit(x, y, epochs=3, batch_size=32, validation_data=(x[:64], y[:64]), verbose=False,
                              cache_frozen=cache)
        results.append(([{k: v for k, v in r.items() if k != "time"} for r in history], model.state_dict()))
    (cached, weights_cached), (plain, weights_plain) = results
    for a, b in zip(cached, plain):
        for key in a:
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-7), key
    for key in weights_plain:
        assert torch.allclose(weights_cached[key].float(), weights_plain[key].float(), atol=1e-6), key


def test_the_frozen_prefix_of_a_stack_that_uses_one_module_twice_keeps_every_use():
    """One ReLU instance at two places: the cached frozen layers and the trained rest are split where the
    model's forward has them, the second ReLU in the rest (model.children() would yield it once)."""
    from torch import nn

    from trainwell.model.transfer import frozen_prefix_length, split_frozen_prefix

    torch.manual_seed(0)
    relu = nn.ReLU()
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 5), relu, nn.Linear(5, 5), relu, nn.Linear(5, 3))
    for p in list(model[1].parameters()) + list(model[3].parameters()):
        p.requires_grad_(False)
    assert frozen_prefix_length(model) == 4
    prefix, rest = split_frozen_prefix(model)
    assert list(rest) == [relu, model[5]]
    x = torch.randn(8, 2, 2) * 3
    torch.testing.assert_close(rest(prefix(x)), model(x))


def test_dropout_or_unfrozen_bn_stops_the_cacheable_prefix():
    from trainwell.model.transfer import frozen_prefix_length

    model = tw.build_model([tw.Dense(4), tw.Dropout(0.5), tw.Dense(4), tw.Dense(2)], input_shape=(3,))
    freeze(model, "0:3")
    assert frozen_prefix_length(model) == 1
    bn = model_a()
    for p in bn[:3].parameters():
        p.requires_grad_(False)  # frozen by hand, BN not marked frozen: still in training mode
    assert frozen_prefix_length(bn) == 2


def _digits_run(tmp_path, name, extra):
    from trainwell.config import validate_config
    from trainwell.recipes.train import train_config

    base = {"name": name, "seed": 0, "output_dir": str(tmp_path / name),
            "data": {"name": "digits", "validation_size": 200}, "optimizer": {"name": "sgd", "lr": 0.05}}
    return train_config(validate_config({**base, **extra}), verbose=False)


def test_reuse_and_phases_from_a_config(tmp_path):
    from trainwell.config import validate_config

    a = _digits_run(tmp_path, "a", {
        "data": {"name": "digits", "validation_size": 200, "classes": [0, 1, 2, 3, 4]},
        "model": {"layers": [{"type": "flatten"}, {"type": "dense", "units": 32, "activation": "elu"},
                             {"type": "dense", "units": 16, "activation": "elu"},
                             {"type": "dense", "units": 5, "activation": "softmax"}]},
        "train": {"epochs": 2}})
    source = tmp_path / "a" / "model.safetensors"
    before = source.read_bytes()
    frozen_weight = a.model.dense_1.weight.detach().clone()
    phases = [{"epochs": 2, "freeze": ["0:-1"]}, {"epochs": 1, "unfreeze": ["0:-1"], "optimizer": {"lr": 1e-3}}]
    b = _digits_run(tmp_path, "b", {
        "data": {"name": "digits", "validation_size": 200, "classes": [5, 6, 7, 8, 9], "per_class": 10},
        "model": {"reuse": {"model": str(source), "layers": -1},
                  "layers": [{"type": "dense", "units": 5, "activation": "softmax"}]},
        "phases": phases})
    assert len(b.history) == 3 and b.history["lr"][-1] == pytest.approx(1e-3)
    assert source.read_bytes() == before
    assert not torch.equal(b.model.dense_1.weight, frozen_weight)  # phase 2 trained the reused layers
    with pytest.raises(ConfigError, match="nothing to train: every parameter of the model is frozen"):
        _digits_run(tmp_path, "c", {  # the new head matches "dense_*" too
            "data": {"name": "digits", "validation_size": 200, "classes": [5, 6, 7, 8, 9]},
            "model": {"reuse": {"model": str(source), "layers": 3},
                      "layers": [{"type": "dense", "units": 5, "activation": "softmax"}]},
            "phases": [{"epochs": 1, "freeze": ["dense_*"]}]})

    with pytest.raises(ConfigError, match=r"phases\[0\].freeze: no layer named 'dense_9'"):
        _digits_run(tmp_path, "d", {"data": {"name": "digits", "validation_size": 200, "classes": [5, 6, 7, 8, 9]},
                                    "model": {"reuse": {"model": str(source), "layers": -1},
                                              "layers": [{"type": "dense", "units": 5, "activation": "softmax"}]},
                                    "phases": [{"epochs": 1, "freeze": ["dense_9"]}]})
    with pytest.raises(ConfigError, match=r"model.reuse.layers = 9: reuse: cannot reuse 9 layers; the model has 4"):
        _digits_run(tmp_path, "e", {"model": {"reuse": {"model": str(source), "layers": 9},
                                              "layers": [{"type": "dense", "units": 10}]}})
    with pytest.raises(ConfigError, match="model.reuse.model: no model file"):
        _digits_run(tmp_path, "f", {"model": {"reuse": {"model": str(tmp_path / "nope.safetensors"), "layers": 1},
                                              "layers": [{"type": "dense", "units": 10}]}})
    with pytest.raises(ConfigError, match=r"train.epochs = 3: this config trains in \[\[phases\]\], each with its own"):
        validate_config({"model": {"layers": [{"type": "dense", "units": 2}]}, "train": {"epochs": 3},
                         "phases": [{"epochs": 1}]})
    with pytest.raises(ConfigError, match=r"phases\[0\].optimizer.lr"):
        validate_config({"model": {"layers": [{"type": "dense", "units": 2}]},
                         "phases": [{"epochs": 1, "optimizer": {"lr": -1}}]})


def test_the_transfer_example_configs_validate():
    from pathlib import Path

    from trainwell.config import load_config

    examples = Path(__file__).parents[2] / "examples"
    config = load_config(examples / "transfer_b_on_a.toml")
    assert [p.epochs for p in config.phases] == [4, 16] and config.model.reuse.layers == -1


def test_an_empty_slice_is_refused_instead_of_freezing_nothing():
    from trainwell.model.layers import Dense, build_model
    from trainwell.model.transfer import freeze

    model = build_model([Dense(4), Dense(4), Dense(2)], input_shape=(3,))
    with pytest.raises(ConfigError, match=r"layers '5:2' select no layer: the model has 3 layers"):
        freeze(model, "5:2")
    assert all(p.requires_grad for p in model.parameters())


# ------------------------------------------------------------ on a convolutional net

def test_a_cnns_convolutions_are_reused_frozen_and_cached_once():
    from helpers import digit_images, small_cnn
    from trainwell.model.transfer import frozen_prefix_length

    x, y = digit_images(400)
    source = small_cnn(seed=0)
    Trainer(source, optimizer={"name": "adam", "lr": 0.01}, seed=0).fit(x, y, epochs=1, verbose=False)
    before = {k: v.clone() for k, v in source.state_dict().items()}
    assert [name for name, _ in select_layers(source, "conv2d_*")] == ["conv2d_1", "conv2d_2"]
    binary = (y >= 5).long()
    results = []
    for cache in (True, False):
        model = reuse_layers(source, 5, head=[tw.Flatten(), tw.Dense(2, activation="softmax")], freeze_reused=True)
        assert [name for name, _ in model.named_children()] == ["conv2d_1", "batch_normalization_1", "activation_1",
                                                                 "conv2d_2", "max_pool2d_1", "flatten_1", "dense_1"]
        assert is_frozen(model.conv2d_1) and not is_frozen(model.dense_1)
        assert frozen_prefix_length(model) == 4  # up to the last frozen conv: its outputs are computed once
        trainer = Trainer(model, optimizer={"name": "sgd", "lr": 0.1}, seed=0)
        history = trainer.fit(x, binary, epochs=2, batch_size=32, validation_data=(x[:64], binary[:64]),
                              verbose=False, cache_frozen=cache)
        for key in ("running_mean", "running_var"):  # frozen BN stays in inference mode: its statistics stay
            assert torch.equal(getattr(model.batch_normalization_1, key), before[f"batch_normalization_1.{key}"])
        results.append(([{k: v for k, v in r.items() if k != "time"} for r in history], model.state_dict()))
    (cached, weights_cached), (plain, weights_plain) = results
    for a, b in zip(cached, plain):
        assert a == pytest.approx(b, rel=1e-5, abs=1e-6)
    for key in weights_plain:
        assert torch.allclose(weights_cached[key].float(), weights_plain[key].float(), atol=1e-6), key
    assert torch.equal(weights_plain["conv2d_1.weight"], before["conv2d_1.weight"])  # frozen: unchanged
    assert all(torch.equal(before[k], v) for k, v in source.state_dict().items())  # reused as copies
    unfreeze(model, "conv2d_2")
    assert not is_frozen(model.conv2d_2) and is_frozen(model.conv2d_1)
    assert frozen_prefix_length(model) == 2  # conv2d_1 and its frozen batch normalization


def test_layer_indices_count_a_module_used_twice_at_each_place_as_model_index_does():
    """Before, the selectors counted named_children(), which yields a module used twice once: index 3 of
    (Linear, ReLU, Linear, ReLU, Linear) picked the last Linear, not model[3]."""
    from torch import nn

    from trainwell.model.transfer import select_layers

    relu = nn.ReLU()
    model = nn.Sequential(nn.Linear(4, 8), relu, nn.Linear(8, 3), relu, nn.Linear(3, 2))
    for index in range(-5, 5):
        (name, module), = select_layers(model, index)
        assert module is model[index] and name == str(index % 5)
    assert [name for name, _ in select_layers(model, "1:4")] == ["1", "2", "3"]

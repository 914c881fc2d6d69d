"""sync_batchnorm's statistics: the all-reduced batch norm computes what the layer computes on one batch,
and a fit turns it on only for trainwell's BatchNormalization layers, for its length."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from helpers import small_model
from trainwell.errors import ConfigError
from trainwell.model.conv_modules import ChannelBatchNorm
from trainwell.model.layers import BatchNormalization, Dense, build_model
from trainwell.model.modules import BatchNorm
from trainwell.model.synced_batchnorm import batch_norm_over_ranks
from trainwell.train import Trainer


@pytest.fixture
def one_rank_group():
    """A gloo group of this process alone: its all-reduces are the identity, so the synced computation must
    equal the layer's own on the same batch (forward, backward and moving statistics)."""
    torch.distributed.init_process_group("gloo", store=torch.distributed.HashStore(), rank=0, world_size=1)
    yield
    torch.distributed.destroy_process_group()


@pytest.mark.parametrize("layer, shape", [(BatchNorm(5), (12, 5)), (ChannelBatchNorm(3), (6, 3, 4, 4))])
def test_the_all_reduced_statistics_are_the_batchs_own(one_rank_group, layer, shape):
    torch.manual_seed(0)
    with torch.no_grad():
        layer.weight.uniform_(0.5, 2.0)
        layer.bias.uniform_(-1.0, 1.0)
    synced, own = layer.train(), copy.deepcopy(layer).train()
    x = (torch.randn(shape) * 3 + 1).requires_grad_()
    x_own = x.detach().clone().requires_grad_()
    upstream = torch.randn(shape)
    for _ in range(2):  # twice: the moving statistics' second update too
        (batch_norm_over_ranks(synced, x) * upstream).sum().backward()
        (own(x_own) * upstream).sum().backward()
    torch.testing.assert_close(x.grad, x_own.grad, rtol=1e-5, atol=1e-6)
    for (name, ours), theirs in zip(synced.named_parameters(), own.parameters()):
        torch.testing.assert_close(ours.grad, theirs.grad, rtol=1e-5, atol=1e-6, msg=name)
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(getattr(synced, name), getattr(own, name), rtol=1e-5, atol=1e-6, msg=name)


def bn_model(seed=0):
    return build_model([Dense(8, activation="relu"), BatchNormalization(), Dense(3, activation="softmax")],
                       input_shape=(4,), seed=seed)


def test_in_one_process_sync_batchnorm_changes_nothing_and_is_off_after_the_fit(blobs):
    x, y = blobs
    trained = []
    for sync in (False, True):
        trainer = Trainer(bn_model(), optimizer={"name": "sgd", "lr": 0.1}, seed=0, sync_batchnorm=sync)
        trainer.fit(x, y, epochs=2, batch_size=32, verbose=False)
        trained.append(trainer.model)
        assert not trainer.model.batch_normalization_1.synchronized
    for (name, a), b in zip(trained[0].state_dict().items(), trained[1].state_dict().values()):
        assert torch.equal(a, b), name


def test_sync_batchnorm_refuses_torchs_own_batchnorm_and_a_non_boolean():
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 3))
    with pytest.raises(ConfigError, match="sync_batchnorm: syncs trainwell's BatchNormalization layers, but 1 is "
                                          "torch's BatchNorm1d; .*convert_sync_batchnorm"):
        Trainer(model, sync_batchnorm=True)
    Trainer(model)  # without the option torch's BatchNorm1d trains as it always has
    Trainer(nn.Sequential(nn.Linear(4, 8), nn.SyncBatchNorm(8), nn.Linear(8, 3)), sync_batchnorm=True)  # syncs itself
    with pytest.raises(ConfigError, match="sync_batchnorm: must be true or false, got 'yes'"):
        Trainer(small_model(), sync_batchnorm="yes")

"""A fit's arguments checked before any step: here, a batch of one sample under batch normalization."""

import pytest
import torch
from torch import nn

import trainwell as tw
from trainwell.errors import ConfigError
from trainwell.model.modules import BatchNorm
from trainwell.model.transfer import freeze


def stack(norm=nn.BatchNorm1d):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), norm(16), nn.ReLU(), nn.Linear(16, 3))


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("norm", [nn.BatchNorm1d, BatchNorm])
def test_a_last_batch_of_one_under_batch_norm_is_refused_before_any_step(fused, norm):
    """PyTorch's batch norm raised mid-epoch on it (after the other batches had trained), and the fused step
    normalized it with a zero variance (nn.BatchNorm1d's moving variance became nan): now neither trains."""
    x, y = torch.randn(70, 8), torch.arange(70) % 3
    model = stack(norm)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = tw.Trainer(model, optimizer={"name": "sgd", "lr": 0.1}, seed=0, fused=fused)
    with pytest.raises(ConfigError, match=r"batch_size 23: the last batch of the 70 training samples holds one "
                                          r"sample, which the model's batch normalization layer '1' cannot normalize"
                                          r".* e\.g\. 24"):
        trainer.fit(x, y, epochs=1, batch_size=23, verbose=False)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with pytest.raises(ConfigError, match="batch_size 1: .* use a batch_size of 2 or more"):
        trainer.fit(x, y, epochs=1, batch_size=1, verbose=False)
    with pytest.raises(ConfigError, match="training data: one sample"):
        trainer.fit(x[:1], y[:1], epochs=1, batch_size=32, verbose=False)
    history = trainer.fit(x, y, epochs=1, batch_size=24, verbose=False)  # the suggested size trains
    assert torch.isfinite(model[1].running_var).all() and history["loss"][0] == history["loss"][0]


def test_a_batch_of_one_is_fine_without_a_training_batch_norm():
    x, y = torch.randn(70, 8), torch.arange(70) % 3
    torch.manual_seed(0)
    plain = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    tw.Trainer(plain, optimizer={"name": "sgd", "lr": 0.1}, seed=0).fit(x, y, epochs=1, batch_size=23, verbose=False)
    model = stack()
    freeze(model, [0, 1])  # a frozen batch norm normalizes with its moving statistics (inference mode)
    trainer = tw.Trainer(model, optimizer={"name": "sgd", "lr": 0.1}, seed=0)
    trainer.fit(x, y, epochs=1, batch_size=23, verbose=False)
    assert torch.equal(model[1].running_var, torch.ones(16))

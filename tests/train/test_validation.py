"""A fit's validation under torchrun: each rank its slice of the data, together the whole set.

In one process no collective runs, so a rank's validation here gives its slice's own figures:
the ranks' slices must add up to the whole set, whatever the form of the validation data.
"""

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from helpers import small_model
from trainwell.train.distributed import ProcessRank
from trainwell.train.trainer import Trainer
from trainwell.train.validation import sharded_validation


def test_the_ranks_slices_of_arrays_and_of_a_dataset_add_up_to_the_whole_validation_set(blobs):
    x, y = blobs
    x, y = x[:37], y[:37]  # 19 and 18 samples a rank
    trainer = Trainer(small_model(), metrics=["accuracy", "auc"], seed=0)
    whole = trainer.evaluate(x, y)
    for data in ((torch.as_tensor(x), torch.as_tensor(y)), TensorDataset(torch.as_tensor(x), torch.as_tensor(y))):
        figures = [sharded_validation(trainer, data, ProcessRank(rank=rank, world_size=2), 8,
                                      forward=trainer.forward_logits)() for rank in (0, 1)]
        assert (19 * figures[0]["loss"] + 18 * figures[1]["loss"]) / 37 == pytest.approx(whole["loss"], rel=1e-6)
        assert (19 * figures[0]["accuracy"] + 18 * figures[1]["accuracy"]) / 37 == pytest.approx(whole["accuracy"])
        assert figures[0]["auc"] != pytest.approx(figures[1]["auc"])  # each rank's own outputs here (no gather)


def test_a_rank_left_without_validation_samples_has_no_outputs_and_a_plain_dataloader_is_evaluated_whole(blobs):
    x, y = (torch.as_tensor(a[:3]) for a in blobs)
    trainer = Trainer(small_model(), seed=0)
    last = sharded_validation(trainer, (x, y), ProcessRank(rank=3, world_size=4), 8, forward=trainer.forward_logits)
    assert last.outputs() is None
    loader = DataLoader(TensorDataset(x, y), batch_size=2)
    assert sharded_validation(trainer, loader, ProcessRank(rank=1, world_size=2), 8,
                              forward=trainer.forward_logits) is None

"""What a callback agrees on with the other ranks: in one process, no collective and the value as given."""

import torch

from trainwell.callbacks import from_rank_zero, sum_over_ranks
from trainwell.callbacks.ranks import in_process_group


def test_in_one_process_a_loss_and_a_value_are_their_own():
    assert not in_process_group()
    loss = torch.tensor(float("nan"))
    assert sum_over_ranks(loss) is loss
    value = ["checkpoint-epoch001.safetensors"]
    assert from_rank_zero(value) is value

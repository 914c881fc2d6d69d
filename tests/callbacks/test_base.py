"""The Callback base class."""

from trainwell.callbacks import Callback


def test_a_callback_asks_for_no_autograd_step_by_default():
    assert Callback().needs_autograd(None, 0) is False


def test_callbacks_that_write_or_print_run_on_rank_zero_only_and_those_that_steer_on_every_rank():
    from trainwell.callbacks import (CSVLogger, Checkpoint, EarlyStopping, HistoryLogger, ProgressDisplay,
                                     ReduceLROnPlateau, TensorBoard, TerminateOnNaN)
    from trainwell.plots import TrainingCurves

    writers = (Checkpoint, HistoryLogger, CSVLogger, TensorBoard, TrainingCurves, ProgressDisplay)
    assert [c.__name__ for c in writers if not c.rank_zero_only] == []
    steering = (Callback, EarlyStopping, ReduceLROnPlateau, TerminateOnNaN)
    assert [c.__name__ for c in steering if c.rank_zero_only] == []


class Records(Callback):
    rank_zero_only = True

    def __init__(self):
        self.epochs = []

    def on_epoch_end(self, trainer, epoch, logs):
        self.epochs.append(epoch)


def test_a_rank_zero_only_callback_runs_in_one_process_and_is_left_out_on_the_other_ranks(blobs):
    from helpers import small_model
    from trainwell.callbacks import EarlyStopping
    from trainwell.train.distributed import ProcessRank
    from trainwell.train.setup import on_this_rank
    from trainwell.train.trainer import Trainer

    x, y = blobs
    records = Records()
    Trainer(small_model(), callbacks=[records], seed=0).fit(x, y, epochs=2, verbose=False)
    assert records.epochs == [1, 2]
    stopping, other = EarlyStopping("loss", patience=2), Records()
    callbacks = [records, stopping, other]
    assert on_this_rank(callbacks, None) == callbacks
    assert on_this_rank(callbacks, ProcessRank(rank=0, world_size=2)) == callbacks
    assert on_this_rank(callbacks, ProcessRank(rank=1, world_size=2)) == [stopping]

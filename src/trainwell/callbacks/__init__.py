"""Callbacks: code that runs at clear points of training, with the trainer's state at hand.

What lives here, one module per callback:

* ``base``: the :class:`Callback` hooks, the :class:`Monitor` of a logged figure, the loop's helpers;
* ``ranks``: what a callback agrees on with the other ranks under torchrun (:func:`sum_over_ranks`,
  :func:`from_rank_zero`); callbacks that write or print are ``rank_zero_only``;
* ``progress``: :class:`ProgressDisplay`, one line per epoch and a live bar;
* ``loggers``: :class:`HistoryLogger` and :class:`CSVLogger` (Keras'), the History written to a file after
  every epoch, on rank 0 only under torchrun (:func:`on_rank_zero`);
* ``tensorboard``: :class:`TensorBoard` (Keras'), the figures as TensorBoard event files;
* ``plateau``: :class:`ReduceLROnPlateau`, a lower learning rate once the figure stops improving;
* ``early_stopping``: :class:`EarlyStopping`, stop once it has not improved for a while;
* ``checkpoint``: :class:`Checkpoint`, model files written while the fit runs;
* ``terminate_on_nan``: :class:`TerminateOnNaN`, stop at the first loss that is not finite.

Callbacks may use the foundation (``trainwell.errors``, ``trainwell.checks``, ``trainwell.fileio``: a log is
written atomically), ``trainwell.metrics`` (which way a monitored figure is better) and ``trainwell.model``
(a checkpoint is a model file); they receive the Trainer but never import it (only to name its type).
"""

from trainwell.callbacks.base import Callback, Monitor, format_logs, overrides
from trainwell.callbacks.checkpoint import Checkpoint, checkpoint_name
from trainwell.callbacks.early_stopping import EarlyStopping
from trainwell.callbacks.loggers import CSVLogger, HistoryLogger, on_rank_zero
from trainwell.callbacks.plateau import ReduceLROnPlateau
from trainwell.callbacks.progress import ProgressDisplay
from trainwell.callbacks.ranks import from_rank_zero, sum_over_ranks
from trainwell.callbacks.tensorboard import TensorBoard
from trainwell.callbacks.terminate_on_nan import TerminateOnNaN

__all__ = ["Callback", "Monitor", "overrides", "format_logs", "ProgressDisplay", "HistoryLogger", "ReduceLROnPlateau",
           "EarlyStopping", "Checkpoint", "checkpoint_name", "TerminateOnNaN", "CSVLogger", "TensorBoard",
           "on_rank_zero", "from_rank_zero", "sum_over_ranks"]

"""The Callback base class."""

from trainwell.callbacks import Callback


def test_a_callback_asks_for_no_autograd_step_by_default():
    assert Callback().needs_autograd(None, 0) is False

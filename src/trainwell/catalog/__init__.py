"""The chapter catalog: every experiment of "Training Deep Neural Networks", registered by id.

One module per section of the chapter (``activations``, ``batchnorm``, ``transfer``,
``schedules``, ``regularization``) and per exercise (``exercise8``, ``exercise9``,
``exercise10``). An entry is a config where a config can say it, a short procedure
where the experiment is a procedure; each knows the book's figure and how to compare.

>>> from trainwell import catalog as experiments
>>> "selu_100" in experiments.ids() and experiments.get("selu_100").targets[0].book
0.8358
"""

from trainwell.catalog.registry import (BUDGETS, CLAIMS, Budget, Claim, Entry, Target, entries, get, get_budget,
                                            ids, judge, with_dependencies)
from trainwell.catalog.runner import reproduce, run_in_process, run_one

__all__ = ["BUDGETS", "CLAIMS", "Budget", "Claim", "Entry", "Target", "entries", "get", "get_budget", "ids", "judge",
           "reproduce", "run_in_process", "run_one", "with_dependencies"]

"""The chapter catalog: every experiment of "Training Deep Neural Networks", registered by id.

An entry is a config where a config can say it (read from the example file of the same name),
a short procedure where the experiment is a procedure; each knows the book's figure and how to
compare. What lives here:

- ``vocabulary``: Entry, Target, Claim, Budget (the words the sections describe experiments in)
- ``context``: what an entry's procedure gets (Context, StoreRecorder, run_config, budget_config)
- ``sections/``: one module per section of the chapter and per exercise; each lists its entries
- ``registry``: the entries by id (ids, get, entries, with_dependencies) and the chapter's CLAIMS
- ``judge``: a figure judged against the book's (Outcome, judge)
- ``plan``: which (entry, seed) runs a reproduce makes, and the datasets they need
- ``one_run``: one (entry, seed) run, recorded in the run store
- ``workers``: the worker processes of ``reproduce --jobs``
- ``folder_lock``: one reproduce at a time in a folder
- ``runner``: ``reproduce`` and ``run_in_process``
- ``results``, ``formatting``, ``chapter_figures``, ``html_page``, ``markdown``, ``report``: the report
  (the store's runs judged; how a figure is written; the figures; the HTML page; the Markdown summary;
  writing both)

It may use the run store (``store``), the recipes (``recipes``: one run from a config),
the config schema (``config``), the ``estimator``, the LR finder (``lr_finder``), the training loop
(``train``), ``callbacks``, ``uncertainty``, the ``model``, ``data``, ``figures``, ``checks``, ``fileio``, ``versions``
and ``errors``.

>>> from trainwell import catalog as experiments
>>> "selu_100" in experiments.ids() and experiments.get("selu_100").targets[0].book
0.8358
"""

from trainwell.catalog.judge import judge
from trainwell.catalog.registry import CLAIMS, entries, get, ids, with_dependencies
from trainwell.catalog.one_run import run_one
from trainwell.catalog.runner import reproduce, run_in_process
from trainwell.catalog.vocabulary import BUDGETS, Budget, Claim, Entry, Target, get_budget

__all__ = ["BUDGETS", "CLAIMS", "Budget", "Claim", "Entry", "Target", "entries", "get", "get_budget", "ids", "judge",
           "reproduce", "run_in_process", "run_one", "with_dependencies"]

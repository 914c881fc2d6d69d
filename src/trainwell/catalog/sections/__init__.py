"""The catalog's entries, one module per section of the chapter and per exercise.

- ``common``: an example file's config (``example``), builders for the configs no file holds
- ``activations``: nonsaturating activations, SELU's self-normalization and constants
- ``batchnorm``: batch normalization after and before the activation, its parameter counts
- ``transfer``: reusing pretrained layers (model A, model B, B on A)
- ``schedules``: learning-rate schedules, the LR finder and 1cycle
- ``regularization``: l2, dropout, alpha dropout, MC dropout, max-norm
- ``exercise8``, ``exercise9``, ``exercise10``: the chapter's exercises 8 to 10

Each module lists what it adds in ``ENTRIES`` and ``CLAIMS``, which
:mod:`trainwell.catalog.registry` collects. A section may use the catalog's vocabulary
(``catalog.vocabulary``) and what a procedure gets (``catalog.context``), never the registry
or the runner; and below the catalog the recipes (``recipes.train``), the config schema, the
estimator, the LR finder, the training loop (``train``), callbacks, the model and data.
"""

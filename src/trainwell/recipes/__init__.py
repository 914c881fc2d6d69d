"""What each ``trainwell`` command runs, as Python functions, from a config or a saved model.

- build: config -> data, model and Trainer (``data_and_model``, ``trainer_from_config``), for every recipe that trains
- file_data: a run on the user's own files (``[data] format``): splits, labels, scaling; new files for ``predict --input``
- train: ``train_config``, a configured run from start to finish (``trainwell train``; each ``tune`` trial)
- run_folder: a run's output folder: leftovers, a finished run refused, the resume state, the files written
- fingerprint: what identifies a fit, so that a killed run is resumed only by the same one
- evaluate: evaluating, predicting with (MC dropout) and summarizing models (``evaluate``, ``predict``, ``summary``)
- plot_schedule: the learning rate at every step of a configured run, as a figure (``trainwell plot-schedule``)
- lr_find: the learning-rate sweep on a config's model (``trainwell lr-find``)
- doctor: a brief fit of a config's model and its diagnosis (``trainwell doctor``)
- tune: the ``[search]`` section and Optuna studies whose trials are runs (``trainwell tune``)
- study_storage: Optuna, and the database of a study, opened with one clear error per failure
- study_workers: workers sharing a study: each one's index (its sampler seed), trial heartbeats, when it is done

Recipes may use trainwell.config, trainwell.store, and what lies below them: trainwell.doctor,
trainwell.lr_finder, trainwell.plots, trainwell.train, trainwell.callbacks, trainwell.optim,
trainwell.schedules, trainwell.uncertainty, trainwell.metrics, trainwell.model, trainwell.data, trainwell.figures,
trainwell.checks, trainwell.fileio, trainwell.errors and trainwell.versions.
"""

"""Every section of a config file, as pydantic models: keys, types, defaults and bounds.

Unknown keys are errors (a typo must not silently fall back to a default), and values are
not coerced (``epochs = "10"`` is refused). :func:`validation_error_text` turns pydantic's
errors into messages that name the key; the checks that need more than one section are in
:mod:`trainwell.config.validate`, and ``[search]``'s own models in :mod:`trainwell.config.search`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Mapping, Optional, Sequence, Union, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from trainwell.config.keys import key_text
from trainwell.model.layers import expand_presets, expand_repeats
from trainwell.model.losses import LOSSES

class ConfigSection(BaseModel):
    """A section of a config file: unknown keys are errors and values are not coerced (a base for every section)."""

    model_config = ConfigDict(extra="forbid", strict=True)


DATA_FORMATS = ("csv", "parquet", "npz", "npy", "image_folder", "idx")  # as trainwell.data.files.FORMATS


class DataConfig(ConfigSection):
    """``[data]``: a registered dataset by ``name``, or the user's own files by ``format`` and ``path``.

    For files (see trainwell.data.files): ``target``/``features`` name a table's columns,
    ``target_path`` an .npy of targets, ``test_path`` (and ``test_target_path``) a held-out set
    for the test metrics, ``image_size``/``color_mode`` what an image folder's images become.
    """

    name: Optional[str] = "fashion_mnist"  # None once a files config's defaults are filled in
    format: Optional[Literal[DATA_FORMATS]] = None  # type: ignore[valid-type]
    path: Optional[str] = None
    # None: the dataset's own default (the registry's: 5000 for Fashion-MNIST and MNIST, as the book)
    validation_size: Optional[int] = Field(None, ge=0)
    validation_split: Optional[float] = Field(None, gt=0, lt=1)  # a fraction of the training data, as Keras
    # "unit" unless set for registered datasets and images; "standardize" for tables and arrays
    scaling: Literal["unit", "standardize", "none"] = "unit"
    classes: Optional[list[int]] = None
    per_class: Optional[int] = Field(None, gt=0)
    train_size: Optional[int] = Field(None, gt=0)
    offline: Optional[bool] = None
    target: Optional[str] = None
    features: Optional[list[str]] = Field(None, min_length=1)
    target_path: Optional[str] = None
    test_path: Optional[str] = None
    test_target_path: Optional[str] = None
    image_size: Optional[list[Annotated[int, Field(gt=0)]]] = Field(None, min_length=2, max_length=2)
    color_mode: Optional[Literal["grayscale", "rgb"]] = None


class ReuseConfig(ConfigSection):
    """``[model.reuse]``: start from the lowest layers of a saved model (transfer learning).

    ``layers`` counts from the bottom; a negative number counts from the top, so -1
    reuses every layer but the output layer. ``model.layers`` then lists the new head.
    """

    model: str
    layers: int
    share: bool = False


class ModelConfig(ConfigSection):
    input_shape: Optional[list[int]] = Field(None, min_length=1)  # [] is not "the default": leave it out
    reuse: Optional[ReuseConfig] = None
    layers: list[dict[str, Any]] = Field(min_length=1)
    # Named layer factories: [model.presets.regularized_dense] type = "dense", activation = "elu", ...
    # used as { type = "regularized_dense", units = 300 } (the layer's own keys win).
    presets: Optional[dict[str, dict[str, Any]]] = None

    def layer_tables(self) -> list[dict[str, Any]]:
        """The layers with every preset expanded into its built-in type and keys, and every
        ``repeat = n`` table into n copies."""
        return expand_repeats(expand_presets(self.layers, self.presets))


class TrainConfig(ConfigSection):
    epochs: int = Field(10, gt=0)
    batch_size: int = Field(32, gt=0)
    loss: Literal[tuple(LOSSES)] = "sparse_categorical_crossentropy"  # type: ignore[valid-type]
    # Names of trainwell.metrics (checked against the loss by trainwell.config.validate); a regression
    # loss's default is none.
    metrics: list[str] = ["accuracy"]
    label_smoothing: Optional[float] = Field(None, ge=0, lt=1)  # the cross-entropies' (Keras' meaning)
    huber_delta: Optional[float] = Field(None, gt=0)  # huber's delta (Keras' default 1.0)
    # class -> weight: class indices as strings ("0" = 1.0, "1" = 5.0; TOML keys are strings) or class names
    class_weight: Optional[dict[Union[str, int], float]] = None
    clipvalue: Optional[float] = Field(None, gt=0)
    clipnorm: Optional[float] = Field(None, gt=0)
    global_clipnorm: Optional[float] = Field(None, gt=0)
    device: str = "auto"
    threads: Optional[int] = Field(None, gt=0)  # CPU threads while fitting; default: by the model's shape
    eval_batch_size: int = Field(1024, gt=0)
    cache_frozen: bool = True  # compute frozen lowest layers' outputs once (same results, faster)
    # The hand-written forward/backward step for plain dense stacks (trainwell.train.fused), used
    # where it applies; false runs the standard autograd step everywhere.
    fused: bool = True
    # Run the fused step through torch.compile (inductor; trainwell.train.compiled): opt-in, it pays
    # on runs long enough to repay the compile (seconds to minutes, cached on disk for the next run).
    compile: bool = False
    # Save the whole training state in <output_dir>/resume/ at every epoch end (and every
    # save_every_steps steps), so running the same command again continues a killed run.
    resumable: bool = True
    skip_nonfinite_batches: bool = False  # skip batches whose loss is nan/inf instead of training on them
    save_every_steps: Optional[int] = Field(None, gt=0)
    # A run whose final loss is nan or infinite fails (nothing saved) unless this is true.
    allow_nonfinite_loss: bool = False
    # Replace the files of a finished run in output_dir (by default that is refused).
    overwrite: bool = False
    # Drop an interrupted run's saved state in output_dir/resume and train from epoch 1
    # (by default the same fit resumes, and another fit's state is refused).
    restart: bool = False
    # Mixed precision: the forward pass under torch.autocast in bfloat16 (CPU and CUDA) or float16
    # (CUDA, with a GradScaler); the weights, the loss and evaluation stay float32.
    precision: Literal["32", "bf16", "fp16"] = "32"
    # Under torchrun: BatchNormalization's statistics over every rank's batch (trainwell.model.synced_batchnorm).
    sync_batchnorm: bool = False
    # Under torchrun: seconds a collective waits for the other ranks before it fails (default: torch's, 30 min).
    process_group_timeout: Optional[float] = Field(None, gt=0, le=1e9, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _regression_metrics(cls, data: Any) -> Any:
        """A regression loss with no ``metrics`` key has none (accuracy, the default, is a classification metric)."""
        loss = data.get("loss") if isinstance(data, dict) else None
        if isinstance(loss, str) and loss in LOSSES and LOSSES[loss].regression and "metrics" not in data:
            return {**data, "metrics": []}
        return data


class PhaseConfig(ConfigSection):
    """One ``[[phases]]`` entry: train ``epochs`` epochs after freezing/unfreezing layers.

    Layers are selected by index (2, -1), name ('dense_1', 'dense_*') or slice ('0:-1').
    ``optimizer`` options override the run's ``[optimizer]`` and build a fresh optimizer
    for the phase, as recompiling a Keras model does; ``unfreeze_lr_scale`` instead keeps
    the optimizer and gives the unfrozen layers that fraction of its learning rate.
    """

    epochs: int = Field(gt=0)
    freeze: list[Union[int, str]] = []
    unfreeze: list[Union[int, str]] = []
    unfreeze_lr_scale: Optional[float] = Field(None, gt=0)
    optimizer: Optional[dict[str, Any]] = None


class LRFindConfig(ConfigSection):
    """``trainwell lr-find``: an exponential sweep from min_lr to max_lr (the chapter's defaults)."""

    min_lr: float = Field(1e-5, gt=0)
    max_lr: float = Field(10.0, gt=0)
    steps: Optional[int] = Field(None, gt=1)  # default: one epoch at batch_size, at least 100 steps
    batch_size: int = Field(128, gt=0)
    stop_factor: float = Field(4.0, gt=1)
    smoothing: float = Field(0.98, ge=0, lt=1)


class EarlyStoppingConfig(ConfigSection):
    """``[callbacks.early_stopping]``: trainwell.callbacks.EarlyStopping (Keras' defaults)."""

    monitor: str = "val_loss"
    mode: Literal["min", "max"] = "min"  # "max" for accuracy, auc, f1... (trainwell.metrics.direction)
    patience: int = Field(0, ge=0)
    min_delta: float = Field(0.0, ge=0)
    restore_best_weights: bool = False


class CheckpointConfig(ConfigSection):
    """``[callbacks.checkpoint]``: trainwell.callbacks.Checkpoint, writing into <output_dir>/checkpoints/."""

    every: int = Field(1, ge=0)
    keep: Optional[int] = Field(None, ge=1)
    save_best: bool = False
    monitor: str = "val_loss"
    mode: Literal["min", "max"] = "min"  # "max" for accuracy, auc, f1... (trainwell.metrics.direction)
    min_delta: float = Field(0.0, ge=0)


class TensorBoardConfig(ConfigSection):
    """``[callbacks.tensorboard]``: trainwell.callbacks.TensorBoard (Keras' names); log_dir defaults to
    <output_dir>/tensorboard."""

    log_dir: Optional[str] = None
    histogram_freq: int = Field(0, ge=0)  # epochs between histograms of the weights; 0: none
    update_freq: Union[str, int] = "epoch"  # or N: the training loss every N steps too

    @field_validator("update_freq")
    @classmethod
    def _epoch_or_steps(cls, value: Union[str, int]) -> Union[str, int]:
        if value != "epoch" and not (isinstance(value, int) and value >= 1):
            raise ValueError("must be 'epoch' or a number of steps >= 1")
        return value


class CSVLoggerConfig(ConfigSection):
    """``[callbacks.csv_logger]``: trainwell.callbacks.CSVLogger (Keras' names); filename defaults to
    <output_dir>/training.log."""

    filename: Optional[str] = None
    separator: str = Field(",", min_length=1, max_length=1)
    append: bool = False


class CallbacksConfig(ConfigSection):
    early_stopping: Optional[EarlyStoppingConfig] = None
    checkpoint: Optional[CheckpointConfig] = None
    terminate_on_nan: bool = False
    tensorboard: Optional[TensorBoardConfig] = None
    csv_logger: Optional[CSVLoggerConfig] = None


class DiagnosticsConfig(ConfigSection):
    """``[diagnostics]``: record per-layer statistics every ``every`` steps during ``trainwell train``
    (findings go to <output_dir>/diagnostics.json); ``steps`` is how long ``trainwell doctor`` trains."""

    every: int = Field(100, gt=0)
    steps: int = Field(200, gt=0)


class RunConfig(ConfigSection):
    """A whole training run, as read from a config file."""

    name: Optional[str] = None
    seed: int = Field(42, ge=0, le=2**63 - 1)  # as trainwell.checks.check_seed
    output_dir: Optional[str] = None
    data: DataConfig = DataConfig()
    model: ModelConfig
    optimizer: dict[str, Any] = Field(default_factory=lambda: {"name": "sgd"})
    schedule: Optional[dict[str, Any]] = None  # checked by trainwell.schedules
    lr_find: Optional[LRFindConfig] = None  # None: LRFindConfig's defaults
    train: TrainConfig = TrainConfig()
    callbacks: Optional[CallbacksConfig] = None
    diagnostics: Optional[DiagnosticsConfig] = None
    phases: Optional[list[PhaseConfig]] = Field(None, min_length=1)
    search: Optional[dict[str, Any]] = None  # trainwell tune's [search]: checked by trainwell.config.search

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


def validation_error_text(error: Mapping[str, Any], model: type[BaseModel]) -> str:
    """One of pydantic's errors for ``model`` as a message naming the key (unknown keys list the allowed ones)."""
    key = key_text(error["loc"])
    if error["type"] == "extra_forbidden":
        section = _section_fields(model, error["loc"][:-1])
        allowed = f"; allowed keys here: {', '.join(section)}" if section else ""
        return f"unknown key '{key}'{allowed}"
    if error["type"] == "missing":
        return f"'{key}' is missing"
    message = error["msg"].removeprefix("Value error, ")  # a field validator's own message
    if error["type"] == "literal_error":
        message = message.replace("Input should be", "must be")
    else:
        message = message.replace("Input should be", "must be").replace("Input", "value")
    return f"'{key}' = {error.get('input')!r}: {message}"


def _section_fields(model: type[BaseModel], loc: Sequence[Any]) -> list[str]:
    current: Any = model
    for part in loc:
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return []
        current = field.annotation
        # Optional[Section]: look inside the union for the section's own fields.
        current = next((arg for arg in get_args(current) if hasattr(arg, "model_fields")), current)
    return list(getattr(current, "model_fields", {}))

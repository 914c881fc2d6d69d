"""Malformed config files and ``--set`` values, each run through the CLI.

Two kinds of case:

- the key matrix: every checked key of every section with values of the wrong type, out of
  range, beyond a 64-bit integer, with 5,000 digits, nan and infinities, written into an
  otherwise good TOML config and run with ``trainwell train`` (or given with ``--set``);
- parser hazards: a YAML alias bomb, recursive anchors, tags (``!!binary``, ``!!set``,
  dates), YAML 1.1 octal, duplicate keys, deep nesting, byte-order marks, top-level
  lists and nulls, in TOML, YAML and JSON, and the numeric options of the commands.

Every case must end in one clear error line (or, for a harmless input such as a
byte-order mark, in the right result). Inputs that could hang, abort the interpreter
(libgomp with 100,000 threads) or allocate without bound run in a child process with a
time and memory limit.
"""

from __future__ import annotations

import os
import random
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from outcomes import CLEAR, HANDLED, TRACEBACK, Case, CliResult, cli_outcome, run_cli

AREA = "config"
os.environ.setdefault("TRAINWELL_OFFLINE", "1")

IN_PROCESS_LIMIT_S = 30  # a case that runs longer than this in-process counts as a hang (traceback)
CHILD_LIMIT_S = 60
CHILD_MEMORY = 6 * 2**30  # address space of a child process: a runaway allocation fails instead of swapping

# The good config every matrix case starts from: digits, one short epoch on a few images.
BASE: dict[str, dict[str, str]] = {
    "": {"name": '"hostile"', "seed": "3"},
    "data": {"name": '"digits"', "validation_size": "100", "train_size": "200"},
    "model": {},
    "optimizer": {"name": '"sgd"', "lr": "0.01", "momentum": "0.9"},
    "train": {"epochs": "1", "batch_size": "64", "resumable": "false"},
}
LAYERS = [
    {"type": '"flatten"'},
    {"type": '"dense"', "units": "16", "activation": '"relu"'},
    {"type": '"dropout"', "rate": "0.1"},
    {"type": '"batch_normalization"', "momentum": "0.99", "epsilon": "0.001"},
    {"type": '"dense"', "units": "10", "activation": '"softmax"'},
]
LAYER_OF = {"units": 1, "repeat": 1, "rate": 2, "momentum": 3, "epsilon": 3}


def _toml(overrides: dict[str, str]) -> str:
    """The base config as TOML text, with ``overrides`` (key -> TOML literal) put in."""
    sections = {name: dict(keys) for name, keys in BASE.items()}
    layers = [dict(layer) for layer in LAYERS]
    for key, literal in overrides.items():
        if key.startswith("layers."):
            field = key.split(".", 1)[1]
            layers[LAYER_OF[field]][field] = literal
            continue
        section, _, name = key.rpartition(".")
        sections.setdefault(section, {})[name] = literal
    lines = [f"{k} = {v}" for k, v in sections.pop("").items()]
    for section, keys in sections.items():
        lines.append(f"[{section}]")
        if section == "model":
            tables = ", ".join("{" + ", ".join(f"{k} = {v}" for k, v in layer.items()) + "}" for layer in layers)
            lines.append(f"layers = [{tables}]")
        lines += [f"{k} = {v}" for k, v in keys.items()]
    return "\n".join(lines) + "\n"


GOOD_TOML = _toml({})

# Bad values: (label, TOML literal, YAML literal for --set).
BIG = {"2**63": str(2**63), "2**64": str(2**64), "1e30 (integer)": "1" + "0" * 30}
INT_BAD = [("negative", "-1", "-1"), ("zero", "0", "0"), ("fraction", "1.5", "1.5"), ("string", '"10"', "'10'"),
           ("boolean", "true", "true"), ("list", "[1]", "[1]"), ("table", "{a = 1}", "{a: 1}"),
           *((label, text, text) for label, text in BIG.items()), ("5000 digits", "9" * 5000, "9" * 5000)]
FLOAT_BAD = [("nan", "nan", ".nan"), ("inf", "inf", ".inf"), ("-inf", "-inf", "-.inf"), ("negative", "-1.0", "-1.0"),
             ("zero", "0.0", "0.0"), ("string", '"0.1"', "'0.1'"), ("boolean", "true", "true"),
             ("list", "[0.1]", "[0.1]"), ("1e400", "1e400", "1e400")]
STR_BAD = [("integer", "1", "1"), ("boolean", "true", "true"), ("list", '["a"]', "[a]"), ("table", "{a = 1}", "{a: 1}"),
           ("empty", '""', "''"), ("unknown", '"no_such_thing"', "no_such_thing")]
BOOL_BAD = [("integer", "1", "1"), ("string", '"yes"', "'yes'"), ("list", "[true]", "[true]")]

# key -> (kind, values the key allows among the bad ones: "zero" / "negative")
INT_KEYS = {
    "seed": {"zero"}, "data.validation_size": {"zero"}, "data.per_class": set(), "data.train_size": set(),
    "train.epochs": set(), "train.batch_size": set(), "train.eval_batch_size": set(),
    "train.save_every_steps": set(), "train.threads": set(), "lr_find.steps": set(), "lr_find.batch_size": set(),
    "callbacks.early_stopping.patience": {"zero"}, "callbacks.checkpoint.every": {"zero"},
    "callbacks.checkpoint.keep": set(), "diagnostics.every": set(), "diagnostics.steps": set(),
    "layers.units": set(), "layers.repeat": set(),
}
FLOAT_KEYS = {
    "optimizer.lr": set(), "optimizer.momentum": {"zero"}, "train.clipvalue": set(), "train.clipnorm": set(),
    "train.global_clipnorm": set(), "lr_find.min_lr": set(), "lr_find.max_lr": set(),
    "lr_find.smoothing": {"zero"}, "lr_find.stop_factor": set(), "callbacks.early_stopping.min_delta": {"zero"},
    "layers.rate": {"zero"}, "layers.momentum": {"zero"}, "layers.epsilon": set(),
}
STR_KEYS = {"data.name": set(), "data.scaling": set(), "train.device": set(), "train.loss": set(),
            "optimizer.name": set()}
BOOL_KEYS = {"train.fused": set(), "train.resumable": set(), "data.offline": set(),
             "callbacks.terminate_on_nan": set()}
# Keys whose bad values may abort the interpreter or allocate without bound: run in a child process.
RISKY_KEYS = {"train.threads", "layers.units", "layers.repeat"}
DEVICE_BAD = [("meta", '"meta"'), ("cuda:-1", '"cuda:-1"'), ("cuda:99", '"cuda:99"'), ("mps", '"mps"'),
              ("tpu", '"tpu"'), ("cuda:2**64", f'"cuda:{2**64}"'), ("cpu:7", '"cpu:7"')]
SHAPE_BAD = [("empty", "[]"), ("zero", "[0, 8]"), ("negative", "[-8, 8]"), ("string", '"8x8"'), ("floats", "[8.0, 8.0]"),
             ("nested", "[[8, 8]]"), ("2**63", f"[{2**63}]"), ("1e9 x 1e9", "[1000000000, 1000000000]"),
             ("1e12", "[1000000000000]")]
HUGE_SIZES = [("layers.units", "1000000000"), ("layers.units", "100000000"), ("layers.repeat", "1000000000"),
              ("layers.repeat", "100000"), ("train.threads", "100000"), ("train.threads", "4096")]


# -- running a case -------------------------------------------------------------------------------

class _Hang(Exception):
    pass


def run_cli_limited(argv: list[str], *, seconds: float = IN_PROCESS_LIMIT_S) -> CliResult:
    """``run_cli`` with a time limit (SIGALRM): a case that hangs comes back as a traceback, not a stuck scan."""
    def alarm(signum, frame):
        raise _Hang(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return run_cli(argv)
    except _Hang as error:
        return CliResult(None, "", str(error), escaped=error)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_cli_child(argv: list[str], *, cwd: Path, seconds: float = CHILD_LIMIT_S) -> CliResult:
    """``trainwell ARGV`` in a child process with a time limit and a bounded address space."""
    def limit_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (CHILD_MEMORY, CHILD_MEMORY))

    try:
        done = subprocess.run([sys.executable, "-m", "trainwell.cli", *map(str, argv)], cwd=cwd, capture_output=True,
                              text=True, timeout=seconds, preexec_fn=limit_memory)
    except subprocess.TimeoutExpired as error:
        return CliResult(None, "", f"timed out after {seconds} s", escaped=error)
    if done.returncode < 0:  # killed by a signal (libgomp's abort, the memory limit): not a clear error
        return CliResult(done.returncode, done.stdout, done.stderr + f"\nkilled by signal {-done.returncode}",
                         escaped=RuntimeError(f"signal {-done.returncode}"))
    return CliResult(done.returncode, done.stdout, done.stderr)


def _run(argv: list[str], folder: Path, *, child: bool, correct: Callable[[], bool] | None = None) -> str:
    started = time.perf_counter()
    result = run_cli_child(argv, cwd=folder) if child else run_cli_limited(argv)
    outcome = cli_outcome(result, correct=correct)
    if os.environ.get("HOSTILE_VERBOSE"):  # what each case printed, to read the messages
        took = time.perf_counter() - started
        print(f"--- {outcome} {took:.1f}s {' '.join(a[:60] for a in argv[:1] + argv[2:])[:200]}: rc={result.rc} "
              f"{(result.stderr or result.stdout).strip()[-400:]}", file=sys.stderr)
    return outcome


def config_case(name: str, text: str | bytes, *, suffix: str = ".toml", command: str = "train",
                extra: tuple[str, ...] = (), child: bool = False, harmless: bool = False) -> Case:
    """A case that writes ``text`` as a config file and runs ``trainwell COMMAND`` on it.

    ``harmless``: the input is fine (a byte-order mark); the command must succeed.
    """
    def run(folder: Path) -> str:
        path = folder / f"config{suffix}"
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
        out = folder / "out"
        argv = [command, str(path), *(["-o", str(out), "-q"] if command == "train" else []), *extra]
        return _run(argv, folder, child=child, correct=(lambda: True) if harmless else None)

    run.child = child  # type: ignore[attr-defined]
    return Case(AREA, name, run)


def set_case(name: str, key: str, yaml_literal: str, *, child: bool = False) -> Case:
    """A good config with ``--set KEY=VALUE`` (values are read as YAML scalars)."""
    def run(folder: Path) -> str:
        path = folder / "config.toml"
        path.write_text(GOOD_TOML)
        if key.startswith("layers."):
            field = key.split(".", 1)[1]
            target = f"model.layers[{LAYER_OF[field]}].{field}"
        else:
            target = key
        argv = ["train", str(path), "-o", str(folder / "out"), "-q", "--set", f"{target}={yaml_literal}"]
        return _run(argv, folder, child=child)

    run.child = child  # type: ignore[attr-defined]
    return Case(AREA, name, run)


def option_case(name: str, command: str, options: list[str], *, child: bool = False, needs_model: bool = False) -> Case:
    """A command-line option with a bad number (``--mc``, ``--seed``, ``--epochs``, ``--threads``)."""
    def run(folder: Path) -> str:
        if needs_model:
            target = str(_model_file())
        else:
            target = str(folder / "config.toml")
            Path(target).write_text(GOOD_TOML)
        extra = ["-o", str(folder / "out"), "-q"] if command == "train" else []
        if command == "plot-schedule":
            extra = ["-o", str(folder / "schedule.png")]
        return _run([command, target, *extra, *options], folder, child=child)

    run.child = child  # type: ignore[attr-defined]
    return Case(AREA, name, run)


_MODEL: list[Path] = []


def _model_file() -> Path:
    """A small trained model with dropout (for predict --mc), trained once per process."""
    if not _MODEL:
        import tempfile

        folder = Path(tempfile.mkdtemp(prefix="hostile-config-model-"))
        (folder / "config.toml").write_text(GOOD_TOML)
        result = run_cli(["train", str(folder / "config.toml"), "-o", str(folder / "run"), "-q"])
        assert result.rc == 0, result.stderr
        _MODEL.append(folder / "run" / "model.safetensors")
    return _MODEL[0]


# -- the cases ------------------------------------------------------------------------------------

def matrix_cases() -> list[Case]:
    """Every checked key of every section x the values it must refuse, in a TOML file and with --set."""
    cases = []
    groups = [(INT_KEYS, INT_BAD), (FLOAT_KEYS, FLOAT_BAD), (STR_KEYS, STR_BAD), (BOOL_KEYS, BOOL_BAD)]
    for keys, values in groups:
        for key, allowed in keys.items():
            for label, toml_literal, yaml_literal in values:
                if label in allowed or (key == "data.name" and label == "unknown" and False):
                    continue
                child = key in RISKY_KEYS
                cases.append(config_case(f"toml {key} = {label}", _toml({key: toml_literal}), child=child))
                cases.append(set_case(f"--set {key}={label}", key, yaml_literal, child=child))
    for label, literal in DEVICE_BAD:
        cases.append(config_case(f"toml train.device = {label}", _toml({"train.device": literal})))
    for label, literal in SHAPE_BAD:
        cases.append(config_case(f"toml model.input_shape = {label}", _toml({"model.input_shape": literal}),
                                 command="summary", child=True))
    for key, literal in HUGE_SIZES:
        cases.append(config_case(f"toml {key} = {literal}", _toml({key: literal}), child=True))
        cases.append(config_case(f"summary {key} = {literal}", _toml({key: literal}), command="summary", child=True))
    return cases


def _yaml_config(extra: str = "", *, seed: str = "3") -> str:
    return (f"name: hostile\nseed: {seed}\ndata: {{name: digits, validation_size: 100, train_size: 200}}\n"
            "model:\n  layers:\n    - {type: flatten}\n    - {type: dense, units: 10, activation: softmax}\n"
            "train: {epochs: 1, batch_size: 64, resumable: false}\n" + extra)


def _json_config(**replace: str) -> str:
    fields = {"name": '"hostile"', "seed": "3", "data": '{"name": "digits", "validation_size": 100, "train_size": 200}',
              "model": '{"layers": [{"type": "flatten"}, {"type": "dense", "units": 10, "activation": "softmax"}]}',
              "train": '{"epochs": 1, "batch_size": 64, "resumable": false}', **replace}
    return "{" + ", ".join(f'"{k}": {v}' for k, v in fields.items()) + "}"


def _laughs(levels: int = 12, width: int = 10) -> str:
    lines = ['a0: &a0 "lol"']
    for level in range(1, levels):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def parser_cases() -> list[Case]:
    """The parsers' own hazards, in TOML, YAML and JSON."""
    deep = 100_000
    cases = [
        # YAML aliases: the billion laughs (10**11 strings once expanded) and a self-referencing anchor.
        config_case("yaml billion laughs", _yaml_config(_laughs()), suffix=".yaml", child=True),
        config_case("yaml billion laughs (summary)", _yaml_config(_laughs()), suffix=".yaml", command="summary",
                    child=True),
        config_case("yaml recursive anchor", _yaml_config("search: &loop {a: *loop}\n"), suffix=".yaml", child=True),
        config_case("yaml recursive list anchor", _yaml_config("phases: &l [*l]\n"), suffix=".yaml", child=True),
        # an ordinary alias and merge key: read as written out, the run trains
        config_case("yaml alias in layers", _yaml_config().replace(
            "- {type: flatten}", "- {type: flatten}\n    - &d {type: dense, units: 8, activation: elu}\n    - *d\n"
            "    - {<<: *d, units: 6}"), suffix=".yaml", harmless=True),
        config_case("yaml merge key", _yaml_config("optimizer: &o {name: sgd}\nschedule: {<<: *o}\n"), suffix=".yaml"),
        # Tags a config has no use for.
        config_case("yaml !!binary name", _yaml_config().replace("name: hostile", "name: !!binary aGk="),
                    suffix=".yaml"),
        config_case("yaml !!binary data.name", _yaml_config().replace("{name: digits", "{name: !!binary ZGlnaXRz"),
                    suffix=".yaml"),
        config_case("yaml !!set metrics", _yaml_config("").replace("resumable: false}",
                                                                    "resumable: false, metrics: !!set {accuracy}}"),
                    suffix=".yaml"),
        config_case("yaml !!set classes", _yaml_config().replace("train_size: 200}", "train_size: 200, "
                                                                  "classes: !!set {1, 2}}"), suffix=".yaml"),
        config_case("yaml !!omap optimizer", _yaml_config("optimizer: !!omap [name: sgd, lr: 0.1]\n"), suffix=".yaml"),
        config_case("yaml !!pairs search", _yaml_config("search: !!pairs [a: 1, a: 2]\n"), suffix=".yaml"),
        config_case("yaml !!python/object", _yaml_config("search: !!python/object:os.system {}\n"), suffix=".yaml"),
        config_case("yaml date seed", _yaml_config(seed="2024-01-01"), suffix=".yaml"),
        config_case("yaml date name", _yaml_config().replace("name: hostile", "name: 2024-01-01"), suffix=".yaml"),
        config_case("yaml timestamp output_dir", _yaml_config("output_dir: 2001-12-14t21:59:43.10-05:00\n"),
                    suffix=".yaml"),
        config_case("yaml !!timestamp in optimizer", _yaml_config("optimizer: {name: sgd, lr: !!timestamp 2024-01-01}\n"),
                    suffix=".yaml"),
        # YAML 1.1 numbers that are not what they look like.
        config_case("yaml octal 010 epochs", _yaml_config().replace("epochs: 1", "epochs: 010"), suffix=".yaml"),
        config_case("yaml octal seed 0777", _yaml_config(seed="0777"), suffix=".yaml"),
        config_case("yaml octal units", _yaml_config().replace("units: 10", "units: 012"), suffix=".yaml"),
        config_case("yaml sexagesimal epochs 1:30", _yaml_config().replace("epochs: 1", "epochs: 1:30"), suffix=".yaml"),
        config_case("yaml 5000-digit seed", _yaml_config(seed="9" * 5000), suffix=".yaml"),
        config_case("yaml 2**64 seed", _yaml_config(seed=str(2**64)), suffix=".yaml"),
        config_case("yaml .nan lr", _yaml_config("optimizer: {name: sgd, lr: .nan}\n"), suffix=".yaml"),
        config_case("yaml .inf lr", _yaml_config("optimizer: {name: nadam, lr: .inf}\n"), suffix=".yaml"),
        # Duplicate keys.
        config_case("yaml duplicate top-level key", _yaml_config("seed: 4\n"), suffix=".yaml"),
        config_case("yaml duplicate key in a section", _yaml_config().replace("epochs: 1,", "epochs: 1, epochs: 2,"),
                    suffix=".yaml"),
        config_case("yaml duplicate key in a layer", _yaml_config().replace("units: 10,", "units: 10, units: 11,"),
                    suffix=".yaml"),
        config_case("json duplicate top-level key", _json_config().replace('"seed": 3', '"seed": 3, "seed": 4'),
                    suffix=".json"),
        config_case("json duplicate key in a section", _json_config().replace('"epochs": 1', '"epochs": 1, "epochs": 2'),
                    suffix=".json"),
        config_case("toml duplicate key", GOOD_TOML.replace("seed = 3", "seed = 3\nseed = 4")),
        # Keys that are not strings.
        config_case("yaml integer key", _yaml_config("1: one\n"), suffix=".yaml"),
        config_case("yaml null key", _yaml_config("~: nothing\n"), suffix=".yaml"),
        config_case("yaml list key", _yaml_config("? [a, b]\n: c\n"), suffix=".yaml"),
        config_case("yaml integer key in optimizer", _yaml_config("optimizer: {name: sgd, 1: 2}\n"), suffix=".yaml"),
        # Top levels that are not tables.
        config_case("yaml top-level list", "- 1\n- 2\n", suffix=".yaml"),
        config_case("yaml top-level null", "~\n", suffix=".yaml"),
        config_case("yaml top-level scalar", "42\n", suffix=".yaml"),
        config_case("yaml empty", "", suffix=".yaml"),
        config_case("json top-level list", "[1, 2]", suffix=".json"),
        config_case("json top-level null", "null", suffix=".json"),
        config_case("json top-level string", '"model"', suffix=".json"),
        config_case("toml empty", ""),
        # Deep nesting.
        config_case("yaml deep list nesting", _yaml_config("search: " + "[" * deep + "]" * deep + "\n"),
                    suffix=".yaml", child=True),
        config_case("yaml deep table nesting", _yaml_config("search: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n"),
                    suffix=".yaml", child=True),
        config_case("json deep nesting", _json_config(search="[" * deep + "]" * deep), suffix=".json", child=True),
        config_case("json deep table nesting", _json_config(search='{"a": ' * 5000 + "1" + "}" * 5000), suffix=".json"),
        config_case("toml deep array nesting", GOOD_TOML + "[search]\nspace = " + "[" * deep + "]" * deep + "\n",
                    child=True),
        config_case("toml deep inline tables", GOOD_TOML + "[search]\nspace = " + "{a = " * 5000 + "1" + "}" * 5000
                    + "\n", child=True),
        config_case("toml deep dotted keys", GOOD_TOML + "[search]\n" + ".".join(["a"] * 5000) + " = 1\n"),
        # TOML dates and times.
        config_case("toml date seed", GOOD_TOML.replace("seed = 3", "seed = 1979-05-27")),
        config_case("toml datetime name", GOOD_TOML.replace('name = "hostile"', "name = 1979-05-27T07:32:00Z")),
        config_case("toml time lr", GOOD_TOML.replace("lr = 0.01", "lr = 07:32:00")),
        config_case("toml date in a layer", GOOD_TOML.replace('rate = 0.1', "rate = 1979-05-27")),
        config_case("toml date in search", GOOD_TOML + "[search]\nmetric = 1979-05-27\n"),
        # Numbers.
        config_case("toml 5000-digit seed", GOOD_TOML.replace("seed = 3", "seed = " + "9" * 5000)),
        config_case("json 5000-digit seed", _json_config(seed="9" * 5000), suffix=".json"),
        config_case("json NaN lr", _json_config(optimizer='{"name": "sgd", "lr": NaN}'), suffix=".json"),
        config_case("json Infinity lr", _json_config(optimizer='{"name": "nadam", "lr": Infinity}'), suffix=".json"),
        config_case("json NaN in search", _json_config(search='{"metric": NaN}'), suffix=".json"),
        config_case("toml nan lr (sgd)", GOOD_TOML.replace("lr = 0.01", "lr = nan")),
        config_case("toml inf lr (nadam)", GOOD_TOML.replace('name = "sgd"', 'name = "nadam"')
                    .replace("lr = 0.01", "lr = inf").replace("momentum = 0.9\n", "")),
        config_case("toml seed 2**64", GOOD_TOML.replace("seed = 3", f"seed = {2**64}")),
        config_case("toml seed -2**63", GOOD_TOML.replace("seed = 3", f"seed = {-2**63}")),
        config_case("toml seed -1", GOOD_TOML.replace("seed = 3", "seed = -1")),
        # Encodings.
        config_case("toml with a byte-order mark", b"\xef\xbb\xbf" + GOOD_TOML.encode(), command="summary",
                    harmless=True),
        config_case("yaml with a byte-order mark", b"\xef\xbb\xbf" + _yaml_config().encode(), suffix=".yaml",
                    command="summary", harmless=True),
        config_case("json with a byte-order mark", b"\xef\xbb\xbf" + _json_config().encode(), suffix=".json",
                    command="summary", harmless=True),
        config_case("toml in latin-1", GOOD_TOML.replace('"hostile"', '"h\xf6stile"').encode("latin-1")),
        config_case("toml with a NUL byte", GOOD_TOML.replace('"hostile"', '"ho\x00stile"')),
        config_case("toml in UTF-16", GOOD_TOML.encode("utf-16")),
        # --set values are YAML scalars: the same hazards.
        set_case("--set seed=010 (octal)", "seed", "010"),
        set_case("--set train.epochs=0x10", "train.epochs", "1:30"),
        set_case("--set seed=2024-01-01 (date)", "seed", "2024-01-01"),
        set_case("--set data.name=!!binary", "data.name", "!!binary ZGlnaXRz"),
        set_case("--set train.metrics=!!set", "train.metrics", "!!set {accuracy}"),
        set_case("--set search=alias", "search", "&a [*a]"),
        set_case("--set train.epochs={1: 2}", "train.epochs", "{1: 2}"),
        set_case("--set duplicate keys", "optimizer", "{name: sgd, name: adam}"),
        set_case("--set deep nesting", "search", "[" * 5000 + "]" * 5000),
        set_case("--set 5000-digit seed", "seed", "9" * 5000),
        set_case("--set optimizer.lr=.nan", "optimizer.lr", ".nan"),
        set_case("--set optimizer.lr=nan (text)", "optimizer.lr", "nan"),
        set_case("--set search.metric=.inf", "search.metric", ".inf"),
        # Numeric options of the commands.
        option_case("train --seed 2**64", "train", ["--seed", str(2**64)]),
        option_case("train --seed -1", "train", ["--seed", "-1"]),
        option_case("train --seed 5000 digits", "train", ["--seed", "9" * 5000]),
        option_case("train --epochs 0", "train", ["--epochs", "0"]),
        option_case("train --epochs 1e30", "train", ["--epochs", "1" + "0" * 30]),
        option_case("train --threads 100000", "train", ["--threads", "100000"], child=True),
        option_case("train --threads 2**63", "train", ["--threads", str(2**63)], child=True),
        option_case("predict --mc -1", "predict", ["--mc", "-1"], needs_model=True),
        option_case("predict --mc 1e9", "predict", ["--mc", "1000000000"], needs_model=True, child=True),
        option_case("predict --mc 2**63", "predict", ["--mc", str(2**63)], needs_model=True, child=True),
        option_case("predict --mc 10 --seed 2**64", "predict", ["--mc", "10", "--seed", str(2**64)], needs_model=True),
        option_case("predict --mc 10 --seed -2**64", "predict", ["--mc", "10", "--seed", str(-2**64)],
                    needs_model=True),
        option_case("plot-schedule --epochs 1e9", "plot-schedule", ["--epochs", "1000000000"], child=True),
        option_case("plot-schedule --steps-per-epoch 2**63", "plot-schedule", ["--steps-per-epoch", str(2**63)],
                    child=True),
        option_case("lr-find --steps 2**63", "lr-find", ["--steps", str(2**63)]),
        option_case("lr-find --min-lr nan", "lr-find", ["--min-lr", "nan"]),
        option_case("lr-find --max-lr inf", "lr-find", ["--max-lr", "inf"]),
        option_case("lr-find --batch-size 0", "lr-find", ["--batch-size", "0"]),
        option_case("doctor --steps 2**63", "doctor", ["--steps", str(2**63)]),
    ]
    return cases


# The child-process cases the tests run (each costs a Python start and a torch import, ~2 s);
# the scan runs them all.
SAMPLE_CHILD = {"yaml billion laughs", "toml train.threads = 100000", "toml layers.repeat = 1000000000",
                "summary layers.units = 1000000000", "predict --mc 1e9"}


def cases(full: bool) -> list[Case]:
    """Every case with ``full``; else every in-process parser hazard, the few child-process cases of
    SAMPLE_CHILD, and a seeded sample of the key matrix (one value per key and format)."""
    matrix = matrix_cases()
    parsers = parser_cases()
    if full:
        return parsers + matrix
    rng = random.Random(15)
    by_key: dict[str, list[Case]] = {}
    for case in matrix:
        if case.name not in SAMPLE_CHILD:
            by_key.setdefault(case.name.split(" = ")[0].split("=")[0], []).append(case)
    sample = [rng.choice(group) for group in by_key.values()]
    chosen = [case for case in parsers + matrix if case.name in SAMPLE_CHILD]
    return chosen + [case for case in parsers if not _is_child(case)] + [c for c in sample if not _is_child(c)]


def _is_child(case: Case) -> bool:
    return bool(getattr(case.run, "child", False))

"""Digests of what trainwell computes, to show that a change of layout changed no result.

For every example config (trained briefly through the ``trainwell`` command, as a user
runs it) and every catalog entry (``trainwell reproduce --budget smoke``), it records the
History, the final metrics and a SHA-256 of the final weights, leaving out what measures
time. Run it before and after a restructuring; ``--compare`` says which digests moved.

    python tools/behaviour_digest.py --out before.json
    python tools/behaviour_digest.py --out after.json --compare before.json

It uses the command line, the run folders and the store's SQLite file only, never
trainwell's modules, so it reads the same whatever the package layout is. Digests are of
float bytes: compare runs made on one machine with one torch build.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
TIMING = ("time", "duration", "started", "finished", "elapsed", "seconds", "_s", "speedup")
SMOKE = ["--set", "data.train_size=256", "--set", "data.validation_size=256", "--set", "train.batch_size=32",
         "--set", "train.threads=1"]
FIRST = ("transfer_model_a",)  # examples whose outputs later examples read
FIRST_FILES = ("transfer_model_a.toml",)


def _untimed(value: Any) -> Any:
    """``value`` without the keys that hold clock readings (they differ between any two runs)."""
    if isinstance(value, dict):
        return {k: _untimed(v) for k, v in sorted(value.items())
                if not any(k == t or k.endswith(t) for t in TIMING)}
    if isinstance(value, (list, tuple)):
        return [_untimed(v) for v in value]
    return value


WORK = ""  # the temporary folder runs write into: a path differs between runs, so it is left out


def _digest(value: Any) -> str:
    text = json.dumps(_untimed(value), sort_keys=True, default=str)
    if WORK:
        text = text.replace(WORK, "<work>")
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _weights_digest(path: Path) -> str:
    from safetensors.numpy import load_file

    tensors = load_file(str(path))
    h = hashlib.sha256()
    for name in sorted(tensors):
        h.update(name.encode())
        h.update(tensors[name].tobytes())
    return h.hexdigest()[:16]


def _raw_config(path: Path) -> dict[str, Any]:
    if path.suffix == ".toml":
        import tomllib

        return tomllib.loads(path.read_text())
    import yaml

    return yaml.safe_load(path.read_text())


def _trainwell(*args: str, cwd: Path) -> None:
    command = [sys.executable, "-m", "trainwell.cli", *args]
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


def example_digests(work: Path, pattern: str = "*.*ml") -> dict[str, dict[str, str]]:
    """Each example trained as the CLI trains it, shortened: 256 images, one epoch (per phase)."""
    (work / "examples").mkdir()
    paths = sorted({*EXAMPLES.glob(pattern), *(EXAMPLES / n for n in FIRST_FILES if pattern != "*.*ml")}, key=lambda p: (p.stem not in FIRST, p.name))
    found: dict[str, dict[str, str]] = {}
    for path in paths:
        config = _raw_config(path)
        local = work / "examples" / path.name
        local.write_text(path.read_text())
        out = work / "runs" / path.stem
        started = time.perf_counter()
        if "search" in config:
            _trainwell("tune", str(local), "--trials", "3", "--set", "train.epochs=2", "--set", "search.sampler_seed=0", "--set", "train.threads=1", "-o", str(out), "-q", cwd=work)
            record = {"best_trial": _digest(json.loads((out / "best_trial.json").read_text())),
                      "best_config": _digest(json.loads((out / "best_config.json").read_text()))}
        elif "lr_find" in config:
            _trainwell("lr-find", str(local), *SMOKE, "--steps", "100", "-o", str(out / "lr_find.png"), cwd=work)
            record = {"sweep": _digest(json.loads((out / "lr_find.json").read_text()))}
        else:
            epochs = ([f"--set=phases[{i}].epochs=1" for i in range(len(config["phases"]))] if config.get("phases")
                      else ["--epochs", "1"])
            _trainwell("train", str(local), *SMOKE, *epochs, "-o", str(out), "-q", cwd=work)
            history, metrics = json.loads((out / "history.json").read_text()), json.loads((out / "metrics.json").read_text())
            record = {"history": _digest(history), "metrics": _digest(metrics),
                      "weights": _weights_digest(out / "model.safetensors"),
                      "values": _untimed({"history": history, "metrics": metrics})}
        found[path.name] = record
        print(f"  {path.name:28s} {time.perf_counter() - started:5.1f} s  { {k: v for k, v in record.items() if k != 'values'} }", flush=True)
    return found


def catalog_digests(work: Path, jobs: int) -> dict[str, dict[str, str]]:
    """Every catalog entry at the smoke budget, seed 42: its epochs, results, series and saved weights."""
    out = work / "reproduce"
    started = time.perf_counter()
    _trainwell("reproduce", "--budget", "smoke", "--out", str(out), "--jobs", str(jobs), cwd=work)
    print(f"  reproduce --budget smoke: {time.perf_counter() - started:.1f} s", flush=True)
    db = sqlite3.connect(out / "runs.sqlite")
    db.row_factory = sqlite3.Row
    found: dict[str, dict[str, str]] = {}
    for run in db.execute("SELECT id, experiment, seed, status FROM runs ORDER BY experiment, seed"):
        epochs = [(r["phase"], r["epoch"], json.loads(r["metrics"]))
                  for r in db.execute("SELECT * FROM epochs WHERE run_id = ? ORDER BY rowid", (run["id"],))]
        results = {r["key"]: r["value"] for r in db.execute("SELECT * FROM results WHERE run_id = ?", (run["id"],))}
        series = {r["name"]: json.loads(r["data"]) for r in db.execute("SELECT * FROM series WHERE run_id = ?",
                                                                          (run["id"],))}
        record = {"status": run["status"], "epochs": _digest(epochs), "results": _digest(results),
                  "series": _digest(series), "values": _untimed({"epochs": epochs, "results": results})}
        weights = sorted((out / "runs" / run["experiment"]).glob(f"seed{run['seed']}-smoke/**/*.safetensors"))
        if weights:
            record["weights"] = _digest({str(p.relative_to(out)): _weights_digest(p) for p in weights})
        found[f"{run['experiment']}@{run['seed']}"] = record
    db.close()
    return found


def new_entries(now: dict[str, Any], before: dict[str, Any]) -> list[str]:
    """The entries that the earlier digests do not have (a new example or catalog entry): reported, not a change."""
    return [f"{group}/{name}" for group in ("examples", "catalog") for name in sorted(set(now[group]) - set(before[group]))]


def _numbers(value: Any, path: str = "") -> dict[str, float]:
    """The numbers in a record's values, by where they sit (``history.loss[2]``...)."""
    if isinstance(value, bool) or value is None:
        return {}
    if isinstance(value, (int, float)):
        return {path: float(value)}
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _numbers(item, f"{path}.{key}").items()}
    if isinstance(value, (list, tuple)):
        return {k: v for i, item in enumerate(value) for k, v in _numbers(item, f"{path}[{i}]").items()}
    return {}


def largest_difference(a: Any, b: Any) -> tuple[float, str] | None:
    """The largest relative difference between two records' numbers and where it is; None when their
    numbers do not pair up (a key or value only one of them has)."""
    x, y = _numbers(a), _numbers(b)
    if x.keys() != y.keys():
        return None
    worst = (0.0, "")
    for key in x:
        if x[key] != y[key]:
            scale = max(abs(x[key]), abs(y[key]), 1e-12)
            worst = max(worst, (abs(x[key] - y[key]) / scale, key))
    return worst


def compare(now: dict[str, Any], before: dict[str, Any]) -> list[str]:
    """What moved in the entries both digests have, or what went missing; new entries are not compared.

    The digests are compared exactly; where both files also hold the numbers behind them, a line
    says by how much they moved (the largest relative difference), so that a change of float
    rounding can be told from a change of result."""
    moved = []
    for group in ("examples", "catalog"):
        for name in sorted(set(before[group])):
            a, b = before[group].get(name) or {}, now[group].get(name) or {}
            keys = sorted(k for k in (set(a) | set(b)) - {"values"} if a.get(k) != b.get(k))
            if keys or not b:
                line = f"{group}/{name}: {', '.join(keys) or 'missing'}"
                if "values" in a and "values" in b:
                    worst = largest_difference(a["values"], b["values"])
                    line += ("; the numbers do not pair up" if worst is None else
                             f"; largest relative difference {worst[0]:.2g} ({worst[1] or 'none'})")
                moved.append(line)
    return moved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write the digests to")
    parser.add_argument("--compare", type=Path, help="an earlier digests file: list what moved, exit 1 if any")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--only", choices=("examples", "catalog"))
    parser.add_argument("--examples", default="*.*ml", help="which example files (a glob; default all)")
    args = parser.parse_args(argv)
    digests: dict[str, Any] = {"examples": {}, "catalog": {}}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp).resolve()
        global WORK
        WORK = str(work)
        if args.only != "catalog":
            print("examples:", flush=True)
            digests["examples"] = example_digests(work, args.examples)
        if args.only != "examples":
            print("catalog:", flush=True)
            digests["catalog"] = catalog_digests(work, args.jobs)
    args.out.write_text(json.dumps(digests, indent=1, sort_keys=True) + "\n")
    print(f"{len(digests['examples'])} examples, {len(digests['catalog'])} catalog runs -> {args.out}")
    if args.compare:
        before = json.loads(args.compare.read_text())
        if args.only:
            before = {**before, "catalog" if args.only == "examples" else "examples": digests[
                "catalog" if args.only == "examples" else "examples"]}
        moved = compare(digests, before)
        added = new_entries(digests, before)
        if added:
            print(f"new (not in {args.compare}): {', '.join(added)}")
        print("\n".join(moved) if moved else f"identical to {args.compare}")
        return 1 if moved else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

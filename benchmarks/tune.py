"""Does ``ganforge tune`` find better settings than the preset's, and what does pruning save?

For a preset (``gan-grid25``: PacGAN's 2-D networks on 25 Gaussians, metric high_quality;
``dcgan-mnist``: the TensorFlow tutorial's DCGAN, metric FID with the mnist extractor) with a
budget of ``--steps`` generator updates per run and an evaluation every ``--eval-every`` steps
(``--n`` samples), it runs:

1. the preset's defaults once at that budget (the baseline);
2. a study of ``--trials`` trials without pruning;
3. the same study with each pruner in ``--pruners`` (median, hyperband). With the random
   sampler (the default here) every study proposes the same parameters for the same trial
   number, so the difference between the rows is the pruner's alone;
4. the best study's best.yaml re-trained (same seed: the same score).

and prints one table: best score (and the preset's companion scores of that run), trials
completed / pruned, steps trained in total, the trials' summed seconds and wall time.

    python benchmarks/tune.py --preset gan-grid25 --trials 16 --steps 3000 --eval-every 500
    python benchmarks/tune.py --preset dcgan-mnist --trials 10 --steps 300 --eval-every 50
    python benchmarks/tune.py --small                                 # 6 x 300 steps, grid25
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch
import yaml

from ganforge import api
from ganforge import tune as T
from ganforge.monitor.log import read_log

PRESETS = {
    "gan-grid25": {
        "metric": "high_quality", "also": ["modes", "reverse_kl"], "producer": "modes",
        "space": {
            "optim.g.lr": {"loguniform": [1.0e-4, 3.0e-3]},
            "optim.d.lr": {"loguniform": [1.0e-4, 3.0e-3]},
            "objective.loss": {"choice": ["non_saturating", "hinge", "least_squares"]},
            "objective.r1": {"uniform": [0.0, 1.0]},
            "objective.packing": {"choice": [1, 2]},
            "train.batch_size": {"choice": [64, 100, 256]},
        },
        "fixed": []},
    "dcgan-mnist": {
        "metric": "fid", "also": ["kid"], "producer": "fid",
        "space": {
            "optim.g.lr": {"loguniform": [5.0e-5, 2.0e-3]},
            "optim.d.lr": {"loguniform": [5.0e-5, 2.0e-3]},
            "objective.loss": {"choice": ["non_saturating", "hinge", "least_squares"]},
            "objective.label_smoothing": {"choice": ["none", "one_sided"]},
            "train.batch_size": {"choice": [32, 64]},
        },
        "fixed": ["monitor.eval_extractor=mnist", "monitor.eval_metrics=[fid,kid]"]},
}


QUIET = ["monitor.progress=false", "monitor.report=false", "monitor.tensorboard=false"]


def budget(preset: dict, steps: int, every: int, n: int, threads: int) -> list[str]:
    """The overrides every run of the benchmark shares: its step budget and evaluations."""
    return [f"train.steps={steps}", "train.epochs=null", f"monitor.eval_every={every}",
            f"monitor.eval_n={n}", f"monitor.eval_metrics=[{preset['producer']}]",
            f"monitor.log_every={every}", f"monitor.sample_every={steps}",
            f"train.checkpoint_every={steps}", f"train.threads={threads}", *preset["fixed"]]


def steps_trained(study_dir: Path) -> int:
    total = 0
    for log in (study_dir / "trials").glob("*/metrics.jsonl"):
        steps = [r["step"] for r in read_log(log) if r.get("kind") == "train"]
        total += max(steps, default=0)
    return total


def final_eval(run_dir: Path) -> dict[str, float]:
    evals = [r for r in read_log(Path(run_dir) / "metrics.jsonl") if r.get("kind") == "eval"]
    return evals[-1]


def row_from_run(run_dir: Path, preset: dict, seconds: float, steps: int) -> dict[str, object]:
    last = final_eval(run_dir)
    return {"best": float(last[preset["metric"]]), "also": {k: last.get(k) for k in preset["also"]},
            "complete": 1, "pruned": 0, "failed": 0, "steps": steps, "trial_s": seconds,
            "seconds": seconds}


def run_study(name: str, base: list[str], study_dir: Path, args: argparse.Namespace,
              pruner: str) -> dict[str, object]:
    preset = PRESETS[name]
    t0 = time.perf_counter()
    out = io.StringIO()
    res = T.tune(name, preset["space"], trials=args.trials, metric=preset["metric"],
                 overrides=base, study_dir=study_dir, pruner=pruner, sampler=args.sampler,
                 out=out)
    seconds = time.perf_counter() - t0
    print(out.getvalue(), flush=True)
    import optuna

    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(study_dir / "study.journal")))
    trials = optuna.load_study(study_name=study_dir.resolve().name,
                               storage=storage).get_trials(deepcopy=False)
    trial_s = sum(t.duration.total_seconds() for t in trials if t.duration is not None)
    also = {}
    if res.best_number is not None:
        best = next(t for t in trials if t.number == res.best_number)
        last = final_eval(Path(best.user_attrs["run_dir"]))
        also = {k: last.get(k) for k in preset["also"]}
    return {"best": res.best_value, "also": also, "complete": res.counts["complete"],
            "pruned": res.counts["pruned"], "failed": res.counts["fail"],
            "steps": steps_trained(study_dir), "trial_s": trial_s, "seconds": seconds,
            "best_yaml": res.best_yaml, "params": res.best_params}


def confirm(args: argparse.Namespace) -> None:
    """The preset's defaults and a study's best.yaml, each trained on every seed of
    ``--seeds`` at the study's budget (best.yaml holds it), scored by the same evaluation."""
    preset = PRESETS[args.preset]
    torch.set_num_threads(args.threads)
    load0 = os.getloadavg()
    best_cfg = yaml.safe_load(Path(args.confirm).read_text())
    steps, every = best_cfg["train"]["steps"], best_cfg["monitor"]["eval_every"]
    base = budget(preset, steps, every, best_cfg["monitor"]["eval_n"], args.threads)
    root = Path(args.out or tempfile.mkdtemp(prefix="bench-tune-confirm-"))
    rows: dict[str, list[dict]] = {"preset defaults": [], "best.yaml": []}
    for seed in args.seeds:
        for name, config, extra in (("preset defaults", args.preset, base),
                                    ("best.yaml", args.confirm, [])):
            run = root / f"{name.split()[0].replace('.', '-')}-seed{seed}"
            api.train(config, overrides=[*extra, *QUIET, f"seed={seed}"], run_dir=run)
            rows[name].append(final_eval(run))
    load = os.getloadavg()
    print(f"{args.preset}: {steps} steps, eval every {every}; seeds {args.seeds}; load average "
          f"{load0[0]:.2f} at start, {load[0]:.2f} at end; runs in {root}\n")
    keys = [preset["metric"], *preset["also"]]
    print("| config | " + " | ".join(f"{k} seed {s}" for k in keys[:1] for s in args.seeds)
          + f" | mean {keys[0]} | " + " | ".join(f"mean {k}" for k in keys[1:]) + " |")
    print("|---|" + "---|" * (len(args.seeds) + len(keys)))
    for name, evs in rows.items():
        per_seed = " | ".join(f"{e[keys[0]]:.4g}" for e in evs)
        means = " | ".join(f"{sum(e[k] for e in evs) / len(evs):.4g}" for k in keys)
        print(f"| {name} | {per_seed} | {means} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="gan-grid25")
    ap.add_argument("--trials", type=int, default=16)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--n", type=int, default=1000, help="samples per evaluation")
    ap.add_argument("--pruners", default="median,hyperband",
                    help="comma-separated pruned studies to run beside the unpruned one")
    ap.add_argument("--sampler", choices=("random", "tpe"), default="random")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--small", action="store_true", help="6 trials x 300 steps (a smoke run)")
    ap.add_argument("--out", default=None, help="keep the studies here (default: a temp dir)")
    ap.add_argument("--json", default=None, help="also write the rows here")
    ap.add_argument("--confirm", default=None, metavar="BEST_YAML",
                    help="instead of a study: re-train the preset's defaults and this best.yaml "
                         "on each of --seeds at the same budget (is the win more than one seed?)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()
    if args.confirm:
        confirm(args)
        return
    if args.small:
        args.trials, args.steps, args.eval_every, args.n = 6, 300, 60, 500
    preset = PRESETS[args.preset]
    torch.set_num_threads(args.threads)
    load0 = os.getloadavg()
    base = budget(preset, args.steps, args.eval_every, args.n, args.threads)
    root = Path(args.out or tempfile.mkdtemp(prefix="bench-tune-"))
    rows = []
    t0 = time.perf_counter()
    api.train(args.preset, overrides=[*base, *QUIET], run_dir=root / "defaults")
    rows.append(("preset defaults", row_from_run(root / "defaults", preset,
                                                 time.perf_counter() - t0, args.steps)))
    rows.append(("tune, no pruning", run_study(args.preset, base, root / "nopruning", args,
                                               "none")))
    for pruner in [p for p in args.pruners.split(",") if p]:
        rows.append((f"tune, {pruner} pruner", run_study(args.preset, base, root / pruner, args,
                                                         pruner)))
    studies = [r for name, r in rows if name.startswith("tune") and r["best"] is not None]
    sign = 1.0 if preset["metric"] in ("fid", "kid", "reverse_kl") else -1.0
    best = min(studies, key=lambda r: sign * r["best"]) if studies else None
    if best is not None:
        t0 = time.perf_counter()
        api.train(str(best["best_yaml"]), overrides=QUIET, run_dir=root / "best-again")
        rows.append(("best.yaml re-trained", row_from_run(root / "best-again", preset,
                                                          time.perf_counter() - t0, args.steps)))
    load = os.getloadavg()
    print(f"{args.preset}, {args.trials} trials x {args.steps} steps, eval every "
          f"{args.eval_every} ({args.n} samples), metric {preset['metric']}, sampler "
          f"{args.sampler}; {platform.machine()} {os.cpu_count()} cores, {args.threads} "
          f"thread(s), torch {torch.__version__}; load average {load0[0]:.2f} at start, "
          f"{load[0]:.2f} at end; studies in {root}\n")
    also = preset["also"]
    print(f"| setting | best {preset['metric']} | {' | '.join(also)} | trials complete | pruned "
          f"| failed | steps trained | trials' s | wall s |")
    print("|---|---|" + "---|" * len(also) + "---|---|---|---|---|---|")
    for name, r in rows:
        b = "-" if r["best"] is None else f"{r['best']:.4f}"
        extra = " | ".join("-" if r["also"].get(k) is None else f"{r['also'][k]:.4g}"
                           for k in also)
        print(f"| {name} | {b} | {extra} | {r['complete']} | {r['pruned']} | {r['failed']} | "
              f"{r['steps']} | {r['trial_s']:.1f} | {r['seconds']:.1f} |")
    if best is not None:
        print("\nbest parameters: " + json.dumps(best["params"]))
        print("best.yaml:\n" + yaml.safe_dump(
            {k: v for k, v in yaml.safe_load(Path(best["best_yaml"]).read_text()).items()
             if k in ("objective", "optim", "train")}, sort_keys=False))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(
            {"preset": args.preset, "trials": args.trials, "steps": args.steps,
             "eval_every": args.eval_every, "n": args.n, "sampler": args.sampler,
             "load_start": load0[0], "load_end": load[0],
             "rows": [{"setting": n, **{k: (str(v) if isinstance(v, Path) else v)
                                        for k, v in r.items()}} for n, r in rows]},
            indent=1))


if __name__ == "__main__":
    main()

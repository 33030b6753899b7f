"""Time to quality (issue 20 section 2): training seconds until a run first reaches a quality
threshold, for ganforge's recipes and the baselines, scored alike.

Tasks, thresholds and systems:

- ``mnist``: FID (``mnist`` extractor) <= 5 and 10 of 10 classes (``ganforge.metrics``: the
  scores of ``ganforge evaluate --metrics fid,modes --extractor mnist``). Systems:
  ``dcgan-mnist`` (ganforge's demo recipe, the preset as it is); ``tutorial`` (the TensorFlow
  DCGAN tutorial's loop written plainly in PyTorch with its own hyperparameters: its networks,
  batch 256, Adam 1e-4 with betas (0.9, 0.999), BCE with logits, D and G updated together from
  one forward pass as its ``train_step`` does); ``keras`` (the same tutorial in Keras 3 on the
  torch backend under ``fit``, when keras is installed).
- ``grid25``: all 25 modes covered and >= 90 % high-quality samples (PacGAN's protocol,
  ``ganforge.metrics.mode_coverage``: high quality within 3 std of the nearest mode).
  Systems: ``gan-grid25`` (ganforge's recipe) and ``pacgan4`` (PacGAN4's own protocol, preset
  ``pacgan-grid25-paper``).

Protocol. Every system trains in its own subprocess (same threads, CPU), step by step, under a
clock that runs only while it trains: it starts at the first training call (``Trainer.fit``,
the loop's first step, ``keras.Model.fit``; building the networks and loading the data are
outside it) and is paused for every evaluation. An evaluation is due when the training seconds
pass the next multiple of ``--eval-every-s`` (or every ``--eval-every-steps`` steps), and
once more when the budget (``--budget-s`` training seconds) is spent or the run's own
schedule ends. Each evaluation draws ``--n`` samples from fixed latents (seed 0) with G in
eval mode -- for ganforge through the in-memory run as ``ganforge sample`` draws them (EMA
weights when the recipe keeps them) -- and scores them with one scorer per task; MNIST
samples are compared with up to ``--n`` real train digits (the bundled train split holds 4,000;
subsample seed 0; features computed once and cached). A system stops at the first evaluation that meets the threshold; its time to
quality is the training seconds at that evaluation, so it is resolved to the evaluation
interval. Because a threshold may be out of every system's reach, the report also gives the
time to the same quality: each other system's best evaluation in its budget, when it first
scored that, and when ganforge's run first scored at least as well (the ratio of the two).
ganforge runs without outputs the hand-written loops do not write either (sample
grids, checkpoints, TensorBoard, report); its metric log and health monitor stay on.

Run it alone on the machine (it is timed), through the machine-wide queue:

    heavy --threads 2 python benchmarks/time_to_quality.py --task all \\
        --json benchmarks/results/time_to_quality.json

A smoke test: ``--budget-s 40 --eval-every-s 20 --n 500``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from throughput import keras_gan, keras_images, mnist_images, reference_loop

# the TensorFlow DCGAN tutorial's hyperparameters
TUTORIAL_BATCH, TUTORIAL_LR, TUTORIAL_BETAS = 256, 1e-4, (0.9, 0.999)
SYSTEMS = {  # per task: system -> description; the first is ganforge's, the one compared
    "mnist": {"dcgan-mnist": "ganforge dcgan-mnist",
              "tutorial": "TF tutorial loop in PyTorch",
              "keras": "TF tutorial in Keras 3 (torch)"},
    "grid25": {"gan-grid25": "ganforge gan-grid25",
               "pacgan4": "PacGAN4 (pacgan-grid25-paper)"},
}
THRESHOLD = {"mnist": "FID(mnist) <= 5 and 10/10 classes",
             "grid25": "25/25 modes and >= 90 % high quality"}
DEFAULT_EVERY_S = {"mnist": 60.0, "grid25": 30.0}
DEFAULT_N = {"mnist": 5000, "grid25": 2500}
BIG = 10**9  # "never": sample grids and checkpoints of the ganforge runs
EVAL_SEED = 0  # latents of every evaluation and the real subsample


# --------------------------------------------------------------------------- scoring
class MnistScorer:
    """FID in the ``mnist`` extractor's features and classes covered, as ``ganforge
    evaluate --metrics fid,modes --extractor mnist -n N`` scores them."""

    def __init__(self, n: int) -> None:
        from ganforge.metrics.features import get_extractor
        from ganforge.metrics.reference import real_features

        self.ext = get_extractor("mnist")
        self.real, _ = real_features("mnist", "train", self.ext, n=n, seed=EVAL_SEED)

    def score(self, fake: torch.Tensor) -> dict[str, Any]:
        from ganforge.metrics.evaluate import score_samples

        if not torch.isfinite(fake).all():
            return {"fid": math.inf, "modes": 0, "modes_total": 10}
        scores, _ = score_samples(fake, self.real, ["fid", "modes"], self.ext, data_kind="image")
        return scores

    @staticmethod
    def passed(s: dict[str, Any]) -> bool:
        return s["fid"] <= 5.0 and s["modes"] >= 10

    @staticmethod
    def text(s: dict[str, Any]) -> str:
        return f"FID {s['fid']:.2f}, {s['modes']}/{s['modes_total']} classes"

    @staticmethod
    def best(points: list[dict[str, Any]]) -> dict[str, Any]:
        """The best point of a run: most classes, then lowest FID."""
        return min(points, key=lambda s: (-s["modes"], s["fid"]))

    @staticmethod
    def as_good(s: dict[str, Any], q: dict[str, Any]) -> bool:
        return s["modes"] >= q["modes"] and s["fid"] <= q["fid"]


class Grid25Scorer:
    """PacGAN's mode coverage on the 5x5 grid (``ganforge.metrics.mode_coverage``)."""

    def __init__(self, n: int) -> None:
        from ganforge.data.registry import MIXTURE_STD, mixture_means

        self.means, self.std = mixture_means("grid25"), MIXTURE_STD["grid25"]

    def score(self, fake: torch.Tensor) -> dict[str, Any]:
        from ganforge.metrics import mode_coverage

        if not torch.isfinite(fake).all():
            return {"modes": 0, "total_modes": 25, "high_quality": 0.0, "reverse_kl": math.inf}
        cov = mode_coverage(fake, self.means, self.std)
        return {"modes": cov.modes, "total_modes": cov.total_modes,
                "high_quality": cov.high_quality, "reverse_kl": cov.reverse_kl}

    @staticmethod
    def passed(s: dict[str, Any]) -> bool:
        return s["modes"] >= 25 and s["high_quality"] >= 0.90

    @staticmethod
    def text(s: dict[str, Any]) -> str:
        return (f"{s['modes']}/{s['total_modes']} modes, {100 * s['high_quality']:.1f} % HQ, "
                f"reverse KL {s['reverse_kl']:.3f}")

    @staticmethod
    def best(points: list[dict[str, Any]]) -> dict[str, Any]:
        """The best point of a run: most modes, then highest high-quality share."""
        return max(points, key=lambda s: (s["modes"], s["high_quality"]))

    @staticmethod
    def as_good(s: dict[str, Any], q: dict[str, Any]) -> bool:
        return s["modes"] >= q["modes"] and s["high_quality"] >= q["high_quality"]


SCORERS = {"mnist": MnistScorer, "grid25": Grid25Scorer}


# ----------------------------------------------------------------------------- clock
class Tracker:
    """The training clock and the evaluation schedule of one system. ``start()`` right before
    training; ``after_step(step, sample)`` after every step: it stops the clock, evaluates
    when due (``sample()`` -> the samples to score), restarts the clock and says whether to
    stop (threshold met or budget spent)."""

    def __init__(self, system: str, scorer: Any, n: int, every_s: float | None,
                 every_steps: int | None, budget_s: float) -> None:
        self.system, self.scorer, self.n = system, scorer, n
        self.every_s, self.every_steps, self.budget_s = every_s, every_steps, budget_s
        self.train_s, self.step, self.next_s = 0.0, 0, every_s or math.inf
        self.points: list[dict[str, Any]] = []
        self.reached: dict[str, Any] | None = None
        self.t = 0.0

    def start(self) -> None:
        self.t = time.perf_counter()

    def after_step(self, step: int, sample: Callable[[], torch.Tensor]) -> bool:
        self.train_s += time.perf_counter() - self.t
        self.step = step
        over = self.train_s >= self.budget_s
        due = (step % self.every_steps == 0 if self.every_steps else self.train_s >= self.next_s)
        stop = over
        if due or over:
            stop = self.evaluate(sample) or over
        self.t = time.perf_counter()
        return stop

    def finish(self, sample: Callable[[], torch.Tensor]) -> None:
        """The run's own schedule ended: score its last step unless that was just scored (the
        clock stopped at the last step's hook)."""
        if not self.points or self.points[-1]["step"] != self.step:
            self.evaluate(sample, end=True)

    def evaluate(self, sample: Callable[[], torch.Tensor], end: bool = False) -> bool:
        t0 = time.perf_counter()
        with torch.random.fork_rng(devices=[]), torch.no_grad():  # training RNG untouched
            fake = sample()
            scores = self.scorer.score(fake)
        ok = bool(self.scorer.passed(scores))
        point = {"train_s": round(self.train_s, 3), "step": self.step, "passed": ok,
                 "eval_s": round(time.perf_counter() - t0, 3), **scores}
        if end:
            point["run_ended"] = True
        self.points.append(point)
        if ok and self.reached is None:
            self.reached = point
        if self.every_s:
            self.next_s = (math.floor(self.train_s / self.every_s) + 1) * self.every_s
        sys.stderr.write(f"  [{self.system}] {self.train_s:7.1f} s, step {self.step}: "
                         f"{self.scorer.text(scores)}{'  REACHED' if ok else ''} "
                         f"(eval {point['eval_s']:.1f} s)\n")
        sys.stderr.flush()
        return ok

    def result(self) -> dict[str, Any]:
        return {"system": self.system, "reached": self.reached is not None,
                "seconds_to_threshold": self.reached["train_s"] if self.reached else None,
                "steps_to_threshold": self.reached["step"] if self.reached else None,
                "train_s": round(self.train_s, 3), "steps": self.step, "points": self.points}


# --------------------------------------------------------------------------- systems
class Stop(Exception):
    """Raised from the trainer's step hook to end a ganforge run."""


def run_ganforge(preset: str, tracker: Tracker, seed: int, threads: int) -> dict[str, Any]:
    """The preset as it is, on CPU, without sample grids, checkpoints, TensorBoard, report."""
    from ganforge.api import load_config
    from ganforge.training.trainer import Trainer

    overrides = [f"seed={seed}", "device=cpu", f"train.threads={threads}",
                 "monitor.progress=false", f"monitor.sample_every={BIG}",
                 f"train.checkpoint_every={BIG}", "monitor.tensorboard=false",
                 "monitor.report=false"]
    cfg = load_config(preset, overrides)

    def sample(tr: Trainer) -> torch.Tensor:
        nets = [tr.G, tr.sampling_generator]
        modes = [m.training for m in nets]
        try:  # the run in memory, sampled as `ganforge sample RUN` samples a loaded run
            return tr.task.trained_run(tr).sample(tracker.n, seed=EVAL_SEED)
        finally:
            for m, was in zip(nets, modes, strict=True):
                m.train(was)

    def hook(tr: Trainer) -> None:
        if tracker.after_step(tr.step, lambda: sample(tr)):
            raise Stop

    with tempfile.TemporaryDirectory() as tmp:
        tr = Trainer(cfg, Path(tmp) / "run")
        tracker.start()
        try:
            tr.fit(on_step=hook)
            tracker.finish(lambda: sample(tr))
        except Stop:
            pass
    return {"overrides": overrides, "total_steps": tr.total_steps,
            "batch_size": cfg.train.batch_size}


def g_samples(g: torch.nn.Module, n: int) -> torch.Tensor:
    """n samples of a hand-written G (eval mode, latents N(0, 1) seeded)."""
    z = torch.randn(n, 100, generator=torch.Generator().manual_seed(EVAL_SEED))
    was = g.training
    g.eval()
    try:
        return torch.cat([g(z[i:i + 500]) for i in range(0, n, 500)])
    finally:
        g.train(was)


def run_tutorial(tracker: Tracker, seed: int) -> dict[str, Any]:
    g, loop = reference_loop("dcgan-mnist", mnist_images(28), TUTORIAL_BATCH, TUTORIAL_LR,
                             TUTORIAL_BETAS, simultaneous=True, seed=seed)
    tracker.start()
    step = 0
    while True:
        next(loop)
        step += 1
        if tracker.after_step(step, lambda: g_samples(g, tracker.n)):
            break
    return {"batch_size": TUTORIAL_BATCH, "lr": TUTORIAL_LR, "betas": TUTORIAL_BETAS}


def run_keras_tutorial(tracker: Tracker, seed: int) -> dict[str, Any]:
    gan = keras_gan("dcgan-mnist", TUTORIAL_LR, TUTORIAL_BETAS[0], simultaneous=True, seed=seed)
    import keras

    x = keras_images(mnist_images(28))
    z = np.random.default_rng(EVAL_SEED).standard_normal((tracker.n, 100)).astype(np.float32)

    def sample() -> torch.Tensor:
        out = [keras.ops.convert_to_numpy(gan.g(z[i:i + 500], training=False))
               for i in range(0, len(z), 500)]
        return torch.from_numpy(np.concatenate(out).transpose(0, 3, 1, 2).copy())

    class Hook(keras.callbacks.Callback):
        step = 0

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            Hook.step += 1
            if tracker.after_step(Hook.step, sample):
                self.model.stop_training = True

    tracker.start()
    gan.fit(x, batch_size=TUTORIAL_BATCH, epochs=BIG, shuffle=True, verbose=0, callbacks=[Hook()])
    return {"batch_size": TUTORIAL_BATCH, "lr": TUTORIAL_LR, "beta_1": TUTORIAL_BETAS[0],
            "keras": keras.__version__}


def worker(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    n = args.n or DEFAULT_N[args.task]
    every_s = None if args.eval_every_steps else (args.eval_every_s or DEFAULT_EVERY_S[args.task])
    tracker = Tracker(args.worker, SCORERS[args.task](n), n, every_s, args.eval_every_steps,
                      args.budget_s)
    if args.worker in ("dcgan-mnist", "gan-grid25"):
        info = run_ganforge(args.worker, tracker, args.seed, args.threads)
    elif args.worker == "pacgan4":
        info = run_ganforge("pacgan-grid25-paper", tracker, args.seed, args.threads)
    elif args.worker == "tutorial":
        info = run_tutorial(tracker, args.seed)
    else:
        info = run_keras_tutorial(tracker, args.seed)
    print(json.dumps({**tracker.result(), "setup": info}, default=float))


# ---------------------------------------------------------------------------- driver
def run_system(task: str, system: str, args: argparse.Namespace) -> dict[str, Any]:
    if system == "keras" and importlib.util.find_spec("keras") is None:
        return {"system": system, "error": "not installed"}
    cmd = [sys.executable, __file__, "--worker", system, "--task", task, "--budget-s",
           str(args.budget_s), "--seed", str(args.seed), "--threads", str(args.threads)]
    for flag, value in (("--eval-every-s", args.eval_every_s), ("--n", args.n),
                        ("--eval-every-steps", args.eval_every_steps)):
        if value:
            cmd += [flag, str(value)]
    env = dict(os.environ, KERAS_BACKEND="torch")
    t0 = time.perf_counter()
    r = subprocess.run(cmd, check=False, stdout=subprocess.PIPE, text=True, env=env)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        return {"system": system, "error": f"failed (exit {r.returncode}); see stderr above",
                "wall_s": wall}
    return {**json.loads(r.stdout.strip().splitlines()[-1]), "wall_s": round(wall, 1)}


def final_text(task: str, r: dict[str, Any]) -> str:
    if not r.get("points"):
        return ""
    return SCORERS[task].text(r["points"][-1])


def report(task: str, results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    every = (f"every {args.eval_every_steps} steps" if args.eval_every_steps
             else f"every {args.eval_every_s or DEFAULT_EVERY_S[task]:g} s of training")
    lines = [(f"\n{task}: threshold {THRESHOLD[task]}; {args.n or DEFAULT_N[task]} samples "
              f"scored {every}; budget {args.budget_s:g} s per system; seed {args.seed}; "
              f"{args.threads} threads"),
             "| system | seconds to threshold | steps | training s / steps run | final scores |",
             "|---|---|---|---|---|"]
    for r in results:
        name = SYSTEMS[task][r["system"]]
        if "error" in r:
            lines.append(f"| {name} | {r['error']} | | | |")
            continue
        ended = bool(r["points"]) and r["points"][-1].get("run_ended", False)
        secs = (f"{r['seconds_to_threshold']:.1f}" if r["reached"] else
                f"not reached (run ended at step {r['steps']})" if ended else
                "not reached in budget")
        steps = r["steps_to_threshold"] if r["reached"] else ""
        lines.append(f"| {name} | {secs} | {steps} | {r['train_s']:.1f} / {r['steps']} | "
                     f"{final_text(task, r)} |")
    ours = results[0]
    if ours["system"] != next(iter(SYSTEMS[task])) or "error" in ours:
        return "\n".join(lines)  # no ganforge row to compare with
    for r in results[1:]:
        if "error" in r:
            continue
        name = SYSTEMS[task][r["system"]]
        # seconds to threshold of the other system / ganforge's; an unreached threshold
        # bounds it by the training seconds that system ran
        t_r = r["seconds_to_threshold"] if r["reached"] else r["train_s"]
        t_o = ours["seconds_to_threshold"] if ours["reached"] else ours["train_s"]
        ratio = t_r / t_o
        if ours["reached"] and r["reached"]:
            lines.append(f"ratio {name} / ganforge: {ratio:.2f}x")
            goal = "met" if ratio >= 3 else "not met"
        elif ours["reached"]:
            lines.append(f"ratio {name} / ganforge: > {ratio:.2f}x ({name} not reached in "
                         f"{r['train_s']:.0f} s)")
            goal = "met" if ratio >= 3 else "not determined (raise --budget-s)"
        elif r["reached"]:
            lines.append(f"ratio {name} / ganforge: < {ratio:.2f}x (ganforge not reached in "
                         f"{ours['train_s']:.0f} s)")
            goal = "not met" if ratio < 3 else "not determined (raise --budget-s)"
        else:
            lines.append(f"ratio {name} / ganforge: undetermined (neither reached)")
            ours_ended = bool(ours["points"]) and ours["points"][-1].get("run_ended", False)
            goal = (f"not determined: the recipe's schedule ends at step {ours['steps']} "
                    "short of the threshold (see the same-quality line)" if ours_ended
                    else "not determined (raise --budget-s)")
        if r["system"] == "tutorial":
            lines.append(f"goal ganforge >= 3x faster than the tutorial loop: {goal}")
        lines.append(same_quality(task, ours, r))
    return "\n".join(lines)


def same_quality(task: str, ours: dict[str, Any], other: dict[str, Any]) -> str:
    """Time to the same quality when a threshold is out of reach: the other system's best
    evaluated quality within its budget, the training seconds it took to get there, and the
    training seconds until ganforge's run first scored at least as well."""
    scorer, name = SCORERS[task], SYSTEMS[task][other["system"]]
    if not other["points"] or not ours["points"]:
        return f"same quality as {name}: no evaluations"
    q = scorer.best(other["points"])
    t_r = next(p["train_s"] for p in other["points"] if scorer.as_good(p, q))
    hit = next((p for p in ours["points"] if scorer.as_good(p, q)), None)
    head = f"same quality as {name}'s best ({scorer.text(q)}, first at {t_r:.0f} s):"
    if hit is None:
        return f"{head} ganforge not there in {ours['train_s']:.0f} s"
    return (f"{head} ganforge at {hit['train_s']:.0f} s ({scorer.text(hit)}), "
            f"{t_r / max(hit['train_s'], 1e-9):.2f}x faster (both times resolved to the "
            "evaluation interval)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--task", choices=["mnist", "grid25", "all"], default="all")
    ap.add_argument("--systems", default="",
                    help="comma list (default all): " + ", ".join(
                        f"{t}: {','.join(s)}" for t, s in SYSTEMS.items()))
    ap.add_argument("--eval-every-s", type=float, default=None,
                    help="evaluate every this many training seconds (default 60 mnist, 30 grid25)")
    ap.add_argument("--eval-every-steps", type=int, default=None,
                    help="evaluate every this many steps instead")
    ap.add_argument("--budget-s", type=float, default=600.0,
                    help="training seconds per system (default 600)")
    ap.add_argument("--n", type=int, default=None,
                    help="samples scored (default 5000 mnist, 2500 grid25)")
    ap.add_argument("--seed", type=int, default=0, help="training seed of every system")
    ap.add_argument("--threads", type=int,
                    default=int(os.environ.get("OMP_NUM_THREADS", "0") or 0) or os.cpu_count(),
                    help="torch threads of every system (default OMP_NUM_THREADS, else cores)")
    ap.add_argument("--json", help="write every evaluation point here")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return
    tasks = ["mnist", "grid25"] if args.task == "all" else [args.task]
    chosen = [s for s in args.systems.split(",") if s]
    unknown = [s for s in chosen if not any(s in SYSTEMS[t] for t in tasks)]
    if unknown:
        ap.error(f"unknown system(s) {', '.join(unknown)} for --task {args.task}")
    load0 = os.getloadavg()
    print(f"load average at start: {' '.join(f'{v:.2f}' for v in load0)}", flush=True)
    t0 = time.perf_counter()
    out: dict[str, Any] = {"args": {k: v for k, v in vars(args).items() if k != "worker"},
                           "load_average_start": load0, "tasks": {}}
    texts = []
    for task in tasks:
        systems = [s for s in SYSTEMS[task] if not chosen or s in chosen]
        if not systems:
            continue
        if task == "mnist":  # real features once, into the disk cache the workers read
            MnistScorer(args.n or DEFAULT_N[task])
        results = []
        for system in systems:
            print(f"{task}: {SYSTEMS[task][system]} ...", flush=True)
            results.append(run_system(task, system, args))
        out["tasks"][task] = {"threshold": THRESHOLD[task], "results": results}
        texts.append(report(task, results, args))
        print(texts[-1], flush=True)
    out["load_average_end"] = os.getloadavg()
    out["wall_s"] = time.perf_counter() - t0
    print(f"\nwall {out['wall_s'] / 60:.1f} min; load average at end "
          f"{' '.join(f'{v:.2f}' for v in out['load_average_end'])}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=1, default=float))


if __name__ == "__main__":
    main()

"""What watching a run costs: training time with and without the MonitorCallback, side by side.

For each config and ``log_every``, trains the same run twice per repeat (watched, then bare;
the order alternates between repeats) and reports the median wall time of each, their ratio,
the time measured inside the callback, and the time to write report.html at the end.

    PYTHONPATH=src python benchmarks/monitor_overhead.py [--steps 300] [--repeats 3]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from pathlib import Path

import torch

from ganforge.api import load_config
from ganforge.monitor.report import write_report
from ganforge.training.trainer import Trainer

MLP_MNIST = {
    "name": "mlp-mnist",
    "data": {"source": "mnist"},
    "latent": {"dim": 32},
    "generator": {"layers": [{"dense": {"units": 128}}, {"leaky_relu": {"slope": 0.2}},
                             {"dense": {"units": 784}}, "tanh",
                             {"reshape": {"shape": [1, 28, 28]}}]},
    "discriminator": {"layers": ["flatten", {"dense": {"units": 128}},
                                 {"leaky_relu": {"slope": 0.2}}, {"dense": {"units": 1}}]},
    "train": {"steps": 300, "batch_size": 64, "checkpoint_every": 100000},
    "monitor": {"sample_every": 100000, "grid_size": 64, "progress": False, "report": False},
    "device": "cpu",
}


def configs(steps: int) -> dict[str, dict]:
    mlp = copy.deepcopy(MLP_MNIST)
    mlp["train"]["steps"] = steps
    from ganforge.config import raw_config

    ring = raw_config("gan-ring8")
    ring["train"].update(steps=steps, checkpoint_every=100000)
    ring["monitor"].update(sample_every=100000, progress=False, report=False)
    ring["device"] = "cpu"
    return {"mlp-mnist (batch 64)": mlp, "gan-ring8 (batch 256, grid 1000)": ring}


def one_run(raw: dict, log_every: int, watched: bool, root: Path) -> tuple[float, float]:
    raw = copy.deepcopy(raw)
    raw["monitor"]["log_every"] = log_every
    trainer = Trainer(load_config(raw), Path(tempfile.mkdtemp(dir=root)))
    if not watched:
        trainer.callbacks.remove(trainer.monitor)
    t0 = time.perf_counter()
    trainer.fit()
    wall = time.perf_counter() - t0
    return wall, trainer.monitor.overhead_s if watched else 0.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name, raw in configs(args.steps).items():
            for log_every in (10, 50):
                watched, bare, inside = [], [], []
                for rep in range(args.repeats):
                    order = (True, False) if rep % 2 == 0 else (False, True)
                    for w in order:
                        wall, over = one_run(raw, log_every, w, root)
                        (watched if w else bare).append(wall)
                        if w:
                            inside.append(over)
                rows.append((name, log_every, statistics.median(bare),
                             statistics.median(watched), statistics.median(inside)))
        # Report writing time on the last watched run directory of each kind.
        report_times = []
        for run_dir in sorted(root.iterdir()):
            if (run_dir / "metrics.jsonl").is_file():
                t0 = time.perf_counter()
                write_report(run_dir)
                report_times.append(time.perf_counter() - t0)
    head = ("| config | log_every | bare s | watched s | ratio | in callback s | "
            "callback % |\n|---|---|---|---|---|---|---|")
    print(f"{args.steps} steps, median of {args.repeats}, torch threads 1")
    print(head)
    for name, le, b, w, o in rows:
        print(f"| {name} | {le} | {b:.2f} | {w:.2f} | {w / b:.3f} | {o:.2f} | "
              f"{100 * o / w:.1f} |")
    print(f"\nreport.html: median {statistics.median(report_times):.2f} s over "
          f"{len(report_times)} run directories (min {min(report_times):.2f}, "
          f"max {max(report_times):.2f})")


if __name__ == "__main__":
    main()

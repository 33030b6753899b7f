"""What crash safety costs: checkpoint write/verify/load times and the per-step divergence check.

Prints a table and (with --results) appends it to benchmarks/RESULTS.md.

    PYTHONPATH=src python benchmarks/checkpoint_overhead.py [--repeats 5] [--results]

Rows, for the dcgan-mnist networks (on digits resized to 28x28) and gan-ring8:
- plain write: the two safetensors files + state.json, no hashing, no fsync, no rename;
- safe write: ``save_checkpoint`` (temp dir, manifest with sha256, fsync, atomic rename, prune);
- verify: re-hash every file against the manifest (what ``--resume`` does per candidate);
- load: ``load_checkpoint`` (verify + parse + aligned copies).
And the training-step cost of the divergence guard: steps/s with the guard's per-step
``track`` vs with it disabled, measured alternately in one process.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

from ganforge import checkpoint as ckpt
from ganforge.api import load_config
from ganforge.training.trainer import Trainer

CASES = {
    "dcgan-mnist": ("dcgan-mnist", ["data.source=digits", "data.image_size=[1,28,28]",
                                    "train.epochs=null", "train.steps=10",
                                    "monitor.progress=false", "device=cpu"]),
    "gan-ring8": ("gan-ring8", ["train.steps=10", "monitor.progress=false", "device=cpu"]),
}


def plain_write(trainer: Trainer, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    weights = {f"{n}.{k}": v.detach().contiguous().cpu()
               for n, m in trainer.modules().items() for k, v in m.state_dict().items()}
    save_file(weights, str(out / "model.safetensors"))
    tensors: dict[str, torch.Tensor] = {}
    skel = ckpt.flatten_state(trainer.state(), "s", tensors)
    save_file(tensors, str(out / "state.safetensors"))
    (out / "state.json").write_text(json.dumps({"step": 0, "state": skel}))


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _bench_case(label: str, preset: str, over: list[str], repeats: int, d: Path
                ) -> list[tuple[str, str, float, float]]:
    t = Trainer(load_config(preset, over), d / "run")
    t.task.train_step(t.batcher.next)  # optimizer states exist
    size = sum(f.stat().st_size for f in t.save().iterdir()) / 1e6
    counter = [0]

    def safe() -> None:
        counter[0] += 1
        t.step = counter[0]
        t.save()

    plain = timed(lambda: plain_write(t, d / "plain"), repeats)
    s = timed(safe, repeats)
    last = ckpt.list_checkpoints(t.run_dir)[-1]
    v = timed(lambda: ckpt.verify_checkpoint(last), repeats)
    ld = timed(lambda: ckpt.load_checkpoint(last), repeats)
    return [(label, "plain write", plain, size), (label, "safe write", s, size),
            (label, "verify (sha256)", v, size), (label, "load (verify+parse)", ld, size)]


def bench_checkpoints(repeats: int) -> list[tuple[str, str, float, float]]:
    rows = []
    for label, (preset, over) in CASES.items():
        with tempfile.TemporaryDirectory() as d:
            rows += _bench_case(label, preset, over, repeats, Path(d))
    return rows


def bench_guard(steps: int, rounds: int) -> tuple[float, float]:
    cfg = load_config("gan-ring8", ["train.steps=100000", "monitor.progress=false",
                                    "device=cpu"])
    with tempfile.TemporaryDirectory() as d:
        t = Trainer(cfg, Path(d) / "run")
        on, off = [], []
        for r in range(2 * rounds):
            use = r % 2 == 0
            t0 = time.perf_counter()
            for _ in range(steps):
                stats = t.task.train_step(t.batcher.next)
                if use:  # what fit does per step: fold the losses in, read the flag (CPU)
                    t.guard.track(stats)
                    t.guard.check(False)
            if use:
                t.guard.problem()  # the full check of a log/checkpoint step
            (on if use else off).append(steps / (time.perf_counter() - t0))
    return statistics.median(on), statistics.median(off)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--results", action="store_true", help="append to benchmarks/RESULTS.md")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = bench_checkpoints(args.repeats)
    on, off = bench_guard(args.steps, args.rounds)
    lines = ["| network | operation | median time (ms) | checkpoint size (MB) |",
             "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {t * 1000:.1f} | {s:.2f} |" for a, b, t, s in rows]
    lines += ["", "| gan-ring8 training (batch 256) | steps/s |", "|---|---|",
              f"| with divergence tracking | {on:.0f} |", f"| without | {off:.0f} |",
              f"| ratio | {on / off:.3f} |"]
    table = "\n".join(lines)
    print(table)
    if args.results:
        out = Path(__file__).with_name("RESULTS.md")
        load = Path("/proc/loadavg").read_text().split()[0]
        head = (f"\n## Reliability: checkpoint and guard overhead ({time.strftime('%Y-%m-%d')})\n\n"
                f"`python benchmarks/checkpoint_overhead.py --repeats {args.repeats}`, "
                f"{args.threads} torch thread(s), {platform.processor() or platform.machine()}, "
                f"2-core CPU shared with other jobs while measuring (load average "
                f"{load}); Python "
                f"{sys.version.split()[0]}, torch {torch.__version__}.\n\n")
        with out.open("a") as f:
            f.write(head + table + "\n")


if __name__ == "__main__":
    main()

"""Training steps/s of small and larger networks at 1 and 2 intra-op threads.

Tiny MLPs (gan-ring8, the grid25 GANs) do so little work per step that splitting each matmul
over two threads costs more in synchronisation than it saves; conv nets (dcgan-mnist) gain
from the second core. Each row trains the preset's networks with the ganforge trainer (its
optimizer, batching, logging; no sample grids or checkpoints inside the timed steps), once per
thread count, and reports steps/s, the per-step work that ``train.threads: auto`` decides on
(``ganforge.training.threads.step_macs``) and the thread count auto picks. It needs an
otherwise idle machine; the load average is printed with the table.

    python benchmarks/threads.py --json benchmarks/results/threads.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

# (label, preset, overrides): the presets at their default batch, plus larger batches of the
# ring8 MLP to find where a second thread starts to pay
SETTINGS = [
    ("gan-ring8", "gan-ring8", []),
    ("gan-ring8 batch 1024", "gan-ring8", ["train.batch_size=1024"]),
    ("gan-ring8 batch 4096", "gan-ring8", ["train.batch_size=4096"]),
    ("gan-grid25", "gan-grid25", []),
    ("pacgan-grid25-paper", "pacgan-grid25-paper", []),
    ("dcgan-mnist", "dcgan-mnist", []),
    # recurrent networks: their LSTM / GRU layers are counted since 2026-12-02 (before, auto
    # saw only their dense layers and picked one thread)
    ("crnngan", "crnngan", []),
    ("rgan-sines", "rgan-sines", []),
    # TimeGAN's joint phase (phases 1 and 2 skipped): five small GRU nets, ~20 passes a step
    ("timegan-sines joint", "timegan-sines",
     ["task_options.autoencoder_steps=0", "task_options.supervised_steps=0"]),
]


def steps_per_s(preset: str, overrides: list[str], threads: int, seconds: float,
                warmup: int = 20) -> tuple[float, int]:
    """Steps/s of ``preset`` with ``threads`` intra-op threads over about ``seconds``."""
    from ganforge.config import load_config
    from ganforge.training.threads import step_macs
    from ganforge.training.trainer import Trainer

    big = 10**9
    cfg = load_config(preset, [*overrides, "train.epochs=null", f"train.steps={big}",
                               f"train.threads={threads}", "monitor.progress=false",
                               f"monitor.sample_every={big}", f"train.checkpoint_every={big}",
                               "monitor.log_every=50", "device=cpu"])
    done = {"n": 0, "t0": 0.0, "t1": 0.0}

    def on_step(tr: Trainer) -> None:
        if tr.step == warmup:
            done["t0"] = time.perf_counter()
        elif tr.step > warmup and time.perf_counter() - done["t0"] >= seconds:
            done["t1"], done["n"] = time.perf_counter(), tr.step - warmup
            tr.total_steps = tr.step  # stop after this step

    with tempfile.TemporaryDirectory() as tmp:
        tr = Trainer(cfg, Path(tmp) / "run")
        macs = step_macs(tr)
        tr.fit(on_step=on_step)
    return done["n"] / (done["t1"] - done["t0"]), macs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=8.0, help="timed seconds per row")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--json", help="write the rows here")
    ap.add_argument("--only", help="comma-separated settings to run (default: all)")
    args = ap.parse_args()
    from ganforge.training.threads import auto_threads

    load = os.getloadavg()
    counts = [int(t) for t in args.threads.split(",")]
    rows = []
    only = set(args.only.split(",")) if args.only else None
    for label, preset, ov in SETTINGS:
        if only is not None and label not in only:
            continue
        row = {"setting": label, "preset": preset, "overrides": ov}
        for t in counts:
            sps, macs = steps_per_s(preset, ov, t, args.seconds)
            row[f"steps_per_s_{t}"] = sps
            row["step_macs"] = macs
        row["auto"] = auto_threads(row["step_macs"], max(counts))
        rows.append(row)
        print(json.dumps(row), flush=True)
    head = "| setting | MACs per step | " + " | ".join(f"steps/s {t} thr" for t in counts)
    print()
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"load average at start {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, at end "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(head + f" | {counts[-1]}/{counts[0]} | auto picks |")
    print("|---|---|" + "---|" * (len(counts) + 2))
    for r in rows:
        ratio = r[f"steps_per_s_{counts[-1]}"] / r[f"steps_per_s_{counts[0]}"]
        print(f"| {r['setting']} | {r['step_macs'] / 1e6:.0f} M | "
              + " | ".join(f"{r[f'steps_per_s_{t}']:.1f}" for t in counts)
              + f" | {ratio:.2f} | {r['auto']} |")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"load_average_start": load, "rows": rows},
                                              indent=1))


if __name__ == "__main__":
    main()

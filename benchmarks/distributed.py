"""Images/s of data-parallel training with 1 and N processes (torchrun + DDP).

    python benchmarks/distributed.py --nprocs 1,2 --steps 300 --configs gan-ring8,dcgan-mnist

Each setting is one ``ganforge train --nproc N`` run at the same *global* batch; images/s is
read from the metric log (``images_per_s`` of all ranks together; the first log window, which
includes warm-up, is dropped). On the CPU each process gets ``threads / N`` intra-op threads
(OMP_NUM_THREADS), so 1 process x 2 threads is compared with 2 processes x 1 thread on the same
cores. Prints a markdown table; ``--out FILE`` appends it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[1] / "src")


PER_PROCESS: int | None = None


def threads_per(threads: int, nproc: int) -> int:
    return PER_PROCESS or max(1, threads // nproc)


def run(config: str, nproc: int, steps: int, threads: int, extra: list[str]) -> dict:
    from ganforge.monitor.log import read_log

    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""),
                   OMP_NUM_THREADS=str(threads_per(threads, nproc)), TQDM_DISABLE="1")
        cmd = [sys.executable, "-m", "ganforge", "train", config, "--nproc", str(nproc),
               "--run-dir", str(run_dir), "--no-progress", "--set", "train.epochs=null",
               "--set", f"train.steps={steps}",
               "--set", f"monitor.log_every={max(1, steps // 6)}",
               "--set", f"train.checkpoint_every={steps}", "--set", f"monitor.sample_every={steps}",
               "--set", "device=cpu"]
        for e in extra:
            cmd += ["--set", e]
        t0 = time.perf_counter()
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - t0
        if r.returncode != 0:
            raise SystemExit(f"{config} nproc={nproc} failed:\n{r.stderr[-2000:]}")
        lines = [x for x in read_log(run_dir / "metrics.jsonl") if x["kind"] == "train"]
        rates = [x["images_per_s"] for x in lines[1:]] or [lines[-1]["images_per_s"]]
        return {"images_per_s": statistics.median(rates), "wall_s": wall,
                "d_loss": lines[-1]["d_loss"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nprocs", default="1,2")
    ap.add_argument("--configs", default="gan-ring8,dcgan-mnist")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--threads", type=int, default=2, help="CPU threads shared by the processes")
    ap.add_argument("--per-process-threads", type=int, default=None,
                    help="give every process this many threads instead of sharing --threads")
    ap.add_argument("--set", dest="extra", action="append", default=[])
    ap.add_argument("--out", help="append the table to this markdown file")
    args = ap.parse_args()
    global PER_PROCESS
    PER_PROCESS = args.per_process_threads
    rows = []
    for config in args.configs.split(","):
        base = None
        for n in (int(x) for x in args.nprocs.split(",")):
            res = run(config, n, args.steps, args.threads, args.extra)
            base = base or res["images_per_s"]
            rows.append(f"| {config} | {n} | {threads_per(args.threads, n)} | "
                        f"{res['images_per_s']:.0f} | {res['images_per_s'] / base:.2f} | "
                        f"{res['wall_s']:.1f} |")
            print(rows[-1], flush=True)
    table = ("| config | processes | threads/process | images/s | vs 1 process | wall s |\n"
             "|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n")
    print(table)
    if args.out:
        with open(args.out, "a") as f:
            f.write(table)


if __name__ == "__main__":
    main()

"""Melodies of the music presets on several seeds, scored against the real-vs-real row.

Trains a music preset (default ``crnngan`` on ``music:bach``) at its default budget (``--set``
overrides apply to every seed), then scores each run as ``ganforge musicscore RUN`` does:
1,000 generated windows quantized as they are written to MIDI against the training windows,
and the held-out test pieces' windows against the training windows as the real-vs-real row
(pitch-class KL and distance, note-length distance, scale consistency, repetitions, tone
span, polyphony, phrases of 8 notes copied from the training windows, and TimeGAN's
discriminative score on the quantized notes, min-max scaled). Prints a table with
the issue's targets, writes JSON and a piano-roll picture (real windows above, seed 0's
generated ones below). ``--rescore DIR`` trains nothing and scores the runs an earlier
``--keep DIR`` kept (after a score was added), ``--temperature`` sampling them as
``ganforge sample --temperature`` does.

Run it alone on the machine (it is timed), through the machine-wide queue:

    heavy --threads 2 python benchmarks/music.py crnngan --seeds 0-2 \\
        --json benchmarks/results/music/crnngan.json \\
        --picture benchmarks/results/music/crnngan.png
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from common import last_train_record, parse_seeds

# Targets of issue #24 (every seed): pitch-class KL, discriminative score, minutes of training
TARGET_KL, TARGET_DISC, TARGET_MINUTES = 0.05, 0.25, 20.0
# Per-set statistics that should be near the real melodies' (within 10 % of the test row)
STATS = ("scale_consistency", "repetitions", "tone_span")
# Rates of a few per thousand note pairs (polyphony: 0.0006-0.0034 in the real melodies) are
# within 10 % of the test row, or within two binomial standard deviations of it over the
# generated note pairs when that is wider: 10 % of 0.002 is below the count noise of 1,000
# windows of 32 notes (one sd 0.00025)
RATES = ("polyphony",)


def train_and_score(preset: str, seed: int, overrides: list[str], run_dir: Path, n: int,
                    disc_iterations: int, train: bool = True,
                    temperature: str | None = None) -> dict[str, Any]:
    """Trains ``preset`` into ``run_dir`` (``train=False``: scores the run already there) and
    scores it, its samples drawn at ``temperature`` when given (else the spec's)."""
    import ganforge
    from ganforge.commands.core import parse_temperature
    from ganforge.commands.music import music_score_rows

    t0 = time.perf_counter()
    if train:
        ganforge.train(preset, overrides=[f"seed={seed}", "monitor.progress=false", *overrides],
                       run_dir=run_dir)
    total = time.perf_counter() - t0
    train_s = last_train_record(run_dir)["time"]
    run = ganforge.load(run_dir)
    if temperature is not None:
        run.set_sample_temperature(parse_temperature(temperature))
    rows = music_score_rows(str(run_dir), n=n, seed=0, disc_iterations=disc_iterations,
                            run=run)
    seq_len = int(run.config.data.options.get("seq_len", 32))
    return {"preset": preset, "seed": seed, "overrides": overrides, "train_s": train_s,
            "total_s": total, "rescored": not train, "temperature": temperature,
            "pairs": n * (seq_len - 1), "generated": rows["generated vs train"],
            "real_vs_real": rows.get("test vs train")}


def meets(r: dict[str, Any]) -> dict[str, bool]:
    g, real = r["generated"], r["real_vs_real"] or {}
    out = {"kl": g["pitch_class_kl"] <= TARGET_KL,
           "disc": g.get("discriminative", 1.0) <= TARGET_DISC,
           "time": r["train_s"] <= TARGET_MINUTES * 60}
    for s in STATS:
        if s in real:
            out[s] = abs(g[s] - real[s]) <= 0.1 * abs(real[s])
    for s in RATES:
        if s in real and s in g:
            noise = 2 * math.sqrt(real[s] * (1 - real[s]) / r["pairs"])
            out[s] = abs(g[s] - real[s]) <= max(0.1 * real[s], noise)
    return out


def picture(run_dir: Path, path: Path, k: int = 4) -> None:
    """Piano rolls: k real test windows, then k generated windows of the run."""
    import ganforge
    from ganforge.data import load_dataset
    from ganforge.data.music import decode_notes
    from ganforge.data.sequences import load_data_info
    from ganforge.monitor.music import write_piano_roll

    run = ganforge.load(run_dir)
    info = load_data_info(run_dir) or {}
    test = load_dataset(run.config.data.source, split="test", **dict(run.config.data.options))
    real = decode_notes(test.x[:k].double().numpy(), info)
    fake = decode_notes(run.sample(k, seed=0, scaled=True).double().numpy(), info)
    write_piano_roll([*real, *fake], path, [f"real {i + 1}" for i in range(k)]
                     + [f"generated {i + 1}" for i in range(k)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("preset", nargs="?", default="crnngan")
    ap.add_argument("--seeds", default="0-2", help="e.g. 0-2 or 0,2")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("-n", type=int, default=1000, help="generated windows scored per seed")
    ap.add_argument("--disc-iterations", type=int, default=2000)
    ap.add_argument("--json", help="write every run's scores here")
    ap.add_argument("--picture", help="piano rolls of real and generated windows (.png)")
    ap.add_argument("--keep", help="keep the runs here (DIR/seedS) instead of deleting them")
    ap.add_argument("--rescore", metavar="DIR",
                    help="train nothing: score the runs kept in DIR/seedS again (after a score "
                         "was added); train s is read from their metrics")
    ap.add_argument("--temperature", metavar="T[,T...]",
                    help="sample at this temperature (as ganforge sample --temperature)")
    args = ap.parse_args()
    if args.rescore and args.keep:
        ap.error("--rescore scores kept runs: give --rescore DIR or --keep DIR, not both")

    load = os.getloadavg()
    print(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
    t0 = time.perf_counter()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in parse_seeds(args.seeds):
            run_dir = Path(args.rescore or args.keep or tmp) / f"seed{seed}"
            r = train_and_score(args.preset, seed, args.overrides, run_dir, args.n,
                                args.disc_iterations, train=not args.rescore,
                                temperature=args.temperature)
            r["meets"] = meets(r)
            runs.append(r)
            g = r["generated"]
            print(f"{args.preset} seed {seed}: pitch-class KL {g['pitch_class_kl']:.4f}, "
                  f"discriminative {g.get('discriminative', float('nan')):.3f}, scale "
                  f"{g['scale_consistency']:.3f}, repetitions {g['repetitions']:.2f}, span "
                  f"{g['tone_span']:.2f}, train {r['train_s']:.0f} s  "
                  f"{'OK' if all(r['meets'].values()) else 'MISS ' + ','.join(k for k, v in r['meets'].items() if not v)}",
                  flush=True)
            if args.picture and len(runs) == 1:
                picture(run_dir, Path(args.picture))
    cols = ["pitch_class_kl", "pitch_class_distance", "note_length_distance",
            "scale_consistency", "repetitions", "tone_span", "polyphony", "copied_phrases",
            "discriminative"]
    print("\n| row | " + " | ".join(cols) + " | train s |")
    print("|---" * (len(cols) + 2) + "|")
    for r in runs:
        g = r["generated"]
        print(f"| seed {r['seed']} | " + " | ".join(f"{g.get(c, float('nan')):.4f}" for c in cols)
              + f" | {r['train_s']:.0f} |")
    for c in cols:
        vals = [r["generated"].get(c, float("nan")) for r in runs]
        print(f"mean {c}: {statistics.fmean(vals):.4f}")
    real = runs[0]["real_vs_real"]
    if real:
        print("| real vs real (test vs train) | "
              + " | ".join(f"{real.get(c, float('nan')):.4f}" for c in cols) + " | |")
    wall = time.perf_counter() - t0
    end = os.getloadavg()
    print(f"\nwall {wall / 60:.1f} min; load average at end {end[0]:.2f} {end[1]:.2f} "
          f"{end[2]:.2f}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(
            {"preset": args.preset, "overrides": args.overrides, "load_average_start": load,
             "rescored": args.rescore,
             "wall_s": wall, "runs": runs}, indent=1))
    if args.picture:
        print(f"picture: {args.picture}")


if __name__ == "__main__":
    main()

"""Score kept music runs at their checkpoints and at sampling temperatures below 1.

For runs kept by ``benchmarks/music.py --keep DIR`` (DIR/seedS), scores the generated row of
``ganforge musicscore`` (1,000 windows from the sampling generator, the discriminative score's
classifier at 2,000 iterations) at checkpoints and sampling temperatures: by default
checkpoints 500, 1,000 and 1,500, and the last one with every span at 0.8 and 0.7;
``--points 1500:1 1500:0.8,1,1`` picks others (STEP:T, T one number for every span or one
per span, as ``ganforge sample --temperature``). Writes every row to a JSON file as it goes.
Run it alone, through the machine-wide queue:

    heavy --threads 2 python benchmarks/music_checkpoints.py DIR \\
        benchmarks/results/music/crnngan-mle-checkpoints.json --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

POINTS = ("500:1", "1000:1", "1500:1", "1500:0.8", "1500:0.7")


def main() -> None:
    import ganforge
    from ganforge.commands.core import parse_temperature
    from ganforge.data import load_dataset
    from ganforge.data.music import decode_notes, note_features
    from ganforge.data.sequences import load_data_info
    from ganforge.metrics.music import music_scores
    from ganforge.metrics.sequences import discriminative_score

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("root", type=Path, help="the --keep folder of benchmarks/music.py")
    ap.add_argument("out", type=Path, help="JSON file for the rows")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--points", nargs="+", default=POINTS, metavar="STEP:T",
                    help="checkpoint step and sampling temperature(s), e.g. 1500:0.8,1,1")
    args = ap.parse_args()
    points = [(int(p.split(":")[0]), parse_temperature(p.split(":")[1])) for p in args.points]
    rows = []
    train = train_f = None
    for seed in (int(s) for s in args.seeds.split(",")):
        rd = args.root / f"seed{seed}"
        info = load_data_info(rd)
        for step, temp in points:
            t0 = time.time()
            run = ganforge.load(rd, checkpoint=rd / "checkpoints" / f"step_{step:08d}")
            if train is None:
                opts = dict(run.config.data.options)
                train = decode_notes(load_dataset(run.config.data.source, split="train", **opts)
                                     .x.double().numpy(), info)
                train_f = note_features(train, info)
            run.set_sample_temperature(temp)
            fake = decode_notes(run.sample(1000, seed=0, scaled=True).double().numpy(), info)
            r = music_scores(fake, train)
            r["discriminative"] = discriminative_score(train_f, note_features(fake, info),
                                                       iterations=2000, seed=0)
            r.update(seed=seed, step=step, sample_temperature=temp)
            rows.append(r)
            print(json.dumps({k: round(v, 4) if isinstance(v, float) else v
                              for k, v in r.items()}), f"{time.time() - t0:.0f} s", flush=True)
            args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()

"""Music verb: ``ganforge musicscore RUN_DIR`` (C-RNN-GAN's melody scores, docs/music.md)."""

from __future__ import annotations

import argparse
from typing import Any

from ganforge.errors import GanforgeError

DISC_ITERATIONS = 2000  # TimeGAN's post-hoc classifier budget


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("musicscore", help="melody scores of a music run (pitch classes, scale "
                                          "consistency, repetitions, tone span, note lengths) "
                                          "against its training melodies, with the held-out "
                                          "test melodies as the real-vs-real row")
    p.add_argument("run_dir")
    p.add_argument("-n", type=int, default=1000, help="generated melodies (default 1000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--disc-iterations", type=int, default=DISC_ITERATIONS,
                   help="training iterations of the discriminative score's classifier (real "
                        f"vs generated windows, TimeGAN's protocol; default {DISC_ITERATIONS}, "
                        "0 = skip the score)")
    p.add_argument("--temperature", default=None, metavar="T[,T...]",
                   help="score samples drawn at this sampling temperature (one for all spans "
                        "or one per span, e.g. 0.8,1,1: pitch sharpened; generators ending in "
                        "span_softmax); default: the spec's sample_temperature")
    p.add_argument("--no-log", action="store_true",
                   help="do not append the scores to the run's metrics.jsonl (by default they "
                        "go there as an 'eval' line, and into report.html)")
    p.set_defaults(func=cmd_musicscore)


def music_score_rows(run_dir: str, n: int = 1000, seed: int = 0,
                     disc_iterations: int = DISC_ITERATIONS,
                     counts: dict[str, int] | None = None, run: Any = None
                     ) -> dict[str, dict[str, Any]]:
    """{"generated vs train": scores, "test vs train": scores} of a music run: its samples
    quantized as they are written to MIDI, the real windows in musical units (no test row
    when the run holds no pieces out, ``test_fraction: 0``). With ``disc_iterations`` > 0
    each row also gets ``discriminative``: |accuracy - 0.5| of a GRU classifier telling the
    row's windows from the training windows on held-out halves (TimeGAN's score, on the
    quantized notes' 3 features min-max scaled: the same representation for every encoding,
    and what is written to MIDI). ``counts``, when given, receives the number of windows of
    each set scored (``generated``, ``train``, ``test``); ``run``: the run already loaded."""
    from ganforge import api
    from ganforge.data import load_dataset
    from ganforge.data.music import decode_notes, note_features
    from ganforge.data.sequences import load_data_info
    from ganforge.metrics.music import music_scores
    from ganforge.metrics.sequences import discriminative_score

    if n < 1:
        raise GanforgeError(f"-n must be >= 1, got {n}.")
    if disc_iterations < 0:
        raise GanforgeError(f"--disc-iterations must be >= 0, got {disc_iterations}.")
    run = api.load(run_dir) if run is None else run
    info = load_data_info(run_dir) or {}
    if "music" not in info:
        raise GanforgeError(f"'{run_dir}' is not a music run (its data is "
                            f"'{run.config.data.source}'); musicscore scores runs trained on "
                            f"music:bach or music:FOLDER.")
    opts = dict(run.config.data.options)
    real = {}
    held_out = float(opts.get("test_fraction", 0.1)) > 0  # else "test" is every piece
    for split in ("train", "test") if held_out else ("train",):
        data = load_dataset(run.config.data.source, split=split, **opts)
        real[split] = decode_notes(data.x.double().numpy(), info)
    fake = decode_notes(run.sample(n, seed=seed, scaled=True).double().numpy(), info)
    if counts is not None:
        counts.update(generated=len(fake), **{k: len(v) for k, v in real.items()})
    rows = {"generated vs train": music_scores(fake, real["train"])}
    if held_out:
        rows["test vs train"] = music_scores(real["test"], real["train"])
    if disc_iterations:
        train = note_features(real["train"], info)
        rows["generated vs train"]["discriminative"] = discriminative_score(
            train, note_features(fake, info), iterations=disc_iterations, seed=seed)
        if held_out:
            rows["test vs train"]["discriminative"] = discriminative_score(
                train, note_features(real["test"], info), iterations=disc_iterations,
                seed=seed)
    return rows


def music_eval_record(rows: dict[str, dict[str, Any]], run: Any, seed: int,
                      disc_iterations: int, counts: dict[str, int]) -> dict[str, Any]:
    """The ``eval`` line of :func:`music_score_rows`: the generated row's scores at the top
    level, the held-out row as ``real_vs_real`` and the protocol (what was compared, how)."""
    from ganforge.architecture.layers import SpanSoftmax
    from ganforge.metrics.music import SCORE_COLUMNS
    from ganforge.version import __version__

    protocol: dict[str, Any] = {
        "metrics": "music", "seed": seed,
        "scores": [*SCORE_COLUMNS, *(["velocity_distance"]
                                     if "velocity_distance" in rows["generated vs train"]
                                     else [])],
        "n_generated": counts["generated"], "checkpoint_step": int(run.step),
        "notes": "quantized as written to MIDI; pitch classes 12 bins, KL(real || generated)",
        "real": {"dataset": run.config.data.source, "split": "train", "n": counts["train"]},
        "ganforge": __version__}
    temps = [m.sample_temperature for m in run.generator.modules()
             if isinstance(m, SpanSoftmax)]
    if temps:  # what the generated row was drawn at (1 = G's own probabilities)
        protocol["sample_temperature"] = temps[0]
    if "test" in counts:
        protocol["real_vs_real"] = {"split": "test", "n": counts["test"],
                                    "against": "train (held-out pieces vs training pieces)"}
    if disc_iterations:
        protocol["discriminative"] = {"name": "timegan-discriminative", "classifier": "GRU",
                                      "iterations": disc_iterations,
                                      "features": "the note features min-max scaled",
                                      "score": "|accuracy - 0.5| on a held-out half"}
    return {"kind": "eval", "step": int(run.step), **rows["generated vs train"],
            "real_vs_real": dict(rows.get("test vs train", {})), "protocol": protocol}


def cmd_musicscore(args: argparse.Namespace) -> int:
    from ganforge import api
    from ganforge.commands.core import parse_temperature
    from ganforge.evaluate import log_eval
    from ganforge.metrics.music import format_rows

    counts: dict[str, int] = {}
    run = api.load(args.run_dir)
    if args.temperature is not None:
        run.set_sample_temperature(parse_temperature(args.temperature))
    rows = music_score_rows(args.run_dir, args.n, args.seed, args.disc_iterations, counts, run)
    print(format_rows(rows))
    if not args.no_log:
        record = music_eval_record(rows, run, args.seed, args.disc_iterations, counts)
        log_eval(args.run_dir, run.config, record)
        print(f"appended to {args.run_dir}/metrics.jsonl (ganforge report {args.run_dir}: "
              f"the table in report.html)")
    return 0

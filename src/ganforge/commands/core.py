"""Core verbs: train, inspect, sample, config, presets, preset."""

from __future__ import annotations

import argparse
from pathlib import Path

from ganforge.commands.use import add_rejection_arg, add_truncation_args
from ganforge.errors import CheckpointError, GanforgeError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a GAN from a preset or YAML config")
    p.add_argument("config", nargs="?", help="preset name or YAML file (optional with --resume)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.epochs=5 (repeatable)")
    p.add_argument("--run-dir", help="where to write the run (default runs/NAME-TIMESTAMP)")
    p.add_argument("--resume", metavar="RUN_DIR",
                   help="continue a run from its newest checkpoint that verifies; 'auto' with "
                        "--run-dir continues that run if it has checkpoints, else starts it")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=cmd_train)
    p.add_argument("--nproc", type=int, default=None, metavar="N",
                   help="train with N processes on this machine (launches torchrun; see "
                        "docs/distributed.md for several machines)")
    p.set_defaults(train_parser=p)

    p = sub.add_parser("inspect", help="print the layer-by-layer summary of a config's networks")
    p.add_argument("config", help="preset name or YAML file")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("sample", help="draw samples from a trained run")
    p.add_argument("run_dir")
    p.add_argument("-n", type=int, default=64, help="number of samples (default 64)")
    p.add_argument("--out", required=True, help="output file: .png grid, .npy or .csv; or a "
                   "folder ending in / (images: one PNG per sample); music runs: .mid, "
                   ".musicxml or .wav (the melodies one after another; .wav needs fluidsynth) "
                   "or .png (a piano roll, at most 16 melodies)")
    p.add_argument("--force", action="store_true", help="replace an existing output")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or auto")
    p.add_argument("--seed", type=int, default=0)
    add_truncation_args(p)
    add_rejection_arg(p)
    p.add_argument("--temperature", default=None, metavar="T[,T...]",
                   help="generators ending in span_softmax (music with encoding: onehot): "
                        "draw each one-hot span from softmax(logits / T); one T for all "
                        "spans or one per span, e.g. 0.8,1,1 (pitch sharpened, durations "
                        "as learned); default: the spec's sample_temperature")
    p.add_argument("--where", metavar="COLUMN=VALUE", action="append",
                   help="tables: only rows with this category, e.g. --where \"target=malignant\"; "
                        "repeat for several columns (rows with all of them)")
    p.add_argument("--label", type=int, default=None, metavar="K",
                   help="conditional runs: samples of class K only")
    p.add_argument("--grid-by-class", action="store_true",
                   help="conditional runs: -n samples per class, one class per row")
    p.add_argument("--text", default=None, metavar="TEXT",
                   help="text-to-image runs: -n images of this text, e.g. --text \"a thick "
                        "slanted seven\"")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("config", help="print a config's keys; --all: every key with its value "
                       "and default")
    p.add_argument("config", help="preset name or YAML file")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--all", action="store_true", help="every key, including the defaults")
    p.set_defaults(func=cmd_config)

    p = sub.add_parser("presets", help="list the shipped presets")
    p.set_defaults(func=cmd_presets)

    p = sub.add_parser("preset", help="print a preset's YAML (to edit and re-run)")
    p.add_argument("name")
    p.set_defaults(func=cmd_preset)


def cmd_train(args: argparse.Namespace) -> int:
    from ganforge import api

    if getattr(args, "nproc", None) is not None:
        from ganforge.commands.launch import launch_train

        return launch_train(args, cmd_train)
    overrides = list(args.overrides)
    if args.no_progress:
        overrides.append("monitor.progress=false")
    if args.config is None and args.resume is None:
        raise GanforgeError("give a preset name or YAML config to train, or --resume RUN_DIR.")
    if args.resume not in (None, "auto") and not Path(args.resume).is_dir():
        raise CheckpointError(f"--resume: run directory '{args.resume}' does not exist. Give the "
                              f"directory of an earlier run, or --resume auto --run-dir DIR.")
    run = api.train(args.config, overrides=overrides, run_dir=args.run_dir, resume=args.resume)
    from ganforge.training.distributed import is_writer

    if not is_writer():  # other ranks of a torchrun launch: rank 0 reports
        return 0
    samples = sorted((run.run_dir / "samples").glob("*.png"))
    ckpts = sorted((run.run_dir / "checkpoints").glob("step_*"))
    print(f"run directory: {run.run_dir}")
    if samples:
        print(f"final sample grid: {samples[-1]}")
    if ckpts:
        print(f"checkpoint: {ckpts[-1]}")
    print(f"metric log: {run.run_dir / 'metrics.jsonl'}")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from ganforge.api import load_config
    from ganforge.architecture import build_network, summary
    from ganforge.config import known_data_shape

    cfg = load_config(args.config, args.overrides)
    shape, spans = known_data_shape(cfg), None
    if shape is None:
        from ganforge.data import load_training_data

        data = load_training_data(cfg)
        shape, spans = data.shape, data.info.get("spans")
    from ganforge.config import resolve_data_widths

    cfg = resolve_data_widths(cfg, tuple(shape), spans)  # steps / features / spans: the data's
    if cfg.task == "stackgan":  # four networks around a text embedding
        from ganforge.tasks.stackgan import print_summary

        return print_summary(cfg, tuple(shape))
    g = build_network(cfg.generator.model_dump(), cfg.latent.full_shape, "generator")
    from ganforge.tasks.base import d_input_shape

    d = build_network(cfg.discriminator.model_dump(), d_input_shape(cfg, shape),
                      "discriminator")
    if cfg.conditioning is not None:  # the spec bodies inside the conditional wrappers
        from ganforge.architecture.conditioning import build_conditional_networks

        cg, cd = build_conditional_networks(cfg, tuple(shape))
        g, d = cg.body, cd.body
        print(f"conditioning: G {cg.method}, D {cd.method}, {cd.num_classes} classes")
    print(f"{cfg.name}: {cfg.description}".rstrip(": "))
    print(f"latent {list(cfg.latent.full_shape)} ({cfg.latent.distribution}) -> data {list(shape)}")
    print()
    print(summary(g))
    print()
    print(summary(d))
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from ganforge import api

    if args.n < 1:
        raise GanforgeError(f"-n must be >= 1, got {args.n}.")
    out = Path(args.out)
    as_folder = args.out.endswith(("/", "\\")) or out.is_dir()
    taken = (any(out.glob("*.png")) if out.is_dir() else False) if as_folder else out.exists()
    if taken and not getattr(args, "force", False):
        raise GanforgeError(f"'{out}' already {'holds PNG files' if as_folder else 'exists'}; "
                            f"pass --force to replace it, or choose another --out.")
    run = api.load(args.run_dir, device=getattr(args, "device", "cpu"))
    extra = {"where": args.where} if args.where is not None else {}
    if extra and run.data_kind != "table":
        raise GanforgeError("--where applies to table runs (task ctgan) only.")
    if args.truncation is not None:
        if run.data_kind == "table":
            raise GanforgeError("--truncation applies to latent-sampled runs, not tables.")
        extra.update(truncation=args.truncation, truncation_method=args.truncation_method)
    if args.rejection is not None:  # a clear message where it does not apply
        extra.update(run.rejection_kwargs(args.rejection))
    if getattr(args, "temperature", None) is not None:
        run.set_sample_temperature(parse_temperature(args.temperature))
    args.as_folder = as_folder  # --label, --grid-by-class and --text write folders too
    if getattr(args, "text", None) is not None:
        from ganforge.commands.text import sample_text

        return sample_text(run, args, extra)
    if args.label is not None or args.grid_by_class:
        from ganforge.commands.conditional import sample_conditional

        return sample_conditional(run, args, extra)
    samples = run.sample(args.n, seed=args.seed, **extra)
    if (record := run.last_rejection) is not None:
        print(f"rejection by the discriminator ({record['method']}) kept "
              f"{100 * record['acceptance']:.0f} % of {record['candidates']} candidates")
    if as_folder:
        return save_sample_files(samples, out, run.data_kind)
    out = run.save_samples(samples, out)
    print(f"wrote {args.n} samples to {out}")
    return 0


def parse_temperature(text: str) -> float | list[float]:
    """``--temperature 0.8`` -> 0.8; ``0.8,1,1`` -> [0.8, 1.0, 1.0] (one per span)."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise GanforgeError(f"--temperature takes a number or comma-separated numbers, one "
                            f"per span (e.g. 0.8 or 0.8,1,1), got '{text}'.") from None
    return values if "," in text else values[0]


def save_sample_files(samples: object, folder: Path, kind: str,
                      names: list[str] | None = None) -> int:
    """One PNG per image sample (sample_00000.png, ... or ``names[i]``.png), at the data's own
    size: grayscale images as mode L, colour as RGB."""
    import numpy as np
    from PIL import Image

    if kind != "image":
        raise GanforgeError(f"--out FOLDER/ writes one PNG per image sample; this run's samples "
                            f"are {kind}s. Use a .npy or .csv file name instead.")
    arr = ((samples.clamp(-1, 1).numpy() + 1.0) * 127.5).round().astype(np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    for i, x in enumerate(arr):
        img = x[0] if x.shape[0] == 1 else x.transpose(1, 2, 0)
        name = names[i] if names is not None else f"sample_{i:05d}"
        Image.fromarray(img).save(folder / f"{name}.png")
    print(f"wrote {len(arr)} PNG files to {folder}/")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    """The resolved config: keys that differ from the schema's default (all keys with --all),
    as ``key = value  (default: ...)  # description``."""
    import json

    from ganforge import api
    from ganforge.config import config_rows

    cfg = api.load_config(args.config, args.overrides)
    for key, value, default, desc in config_rows(cfg):
        changed = value != default
        if not (changed or args.all):
            continue
        text = json.dumps(value) if not isinstance(value, list) or len(str(value)) < 60 else \
            f"[{len(value)} entries]"
        dflt = f"  (default: {json.dumps(default)})" if changed or args.all else ""
        if default == "(required)":
            dflt = "  (required)"
        note = f"  # {desc}" if desc and args.all else ""
        print(f"{key} = {text}{dflt}{note}")
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    import yaml

    from ganforge.config import list_presets, preset_text

    for name in list_presets():
        desc = (yaml.safe_load(preset_text(name)) or {}).get("description", "")
        print(f"{name:20s} {desc}")
    return 0


def cmd_preset(args: argparse.Namespace) -> int:
    from ganforge.config import preset_text

    print(preset_text(args.name), end="")
    return 0

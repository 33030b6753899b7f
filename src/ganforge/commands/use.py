"""Verbs for using a trained generator: export, interpolate, card."""

from __future__ import annotations

import argparse
from pathlib import Path

from ganforge.errors import GanforgeError


def add_truncation_args(p: argparse.ArgumentParser) -> None:
    """``--truncation PSI`` and ``--truncation-method`` (shared by sample-like verbs)."""
    p.add_argument("--truncation", type=float, default=None, metavar="PSI",
                   help="truncation trick: 0 = the mean sample only, 1 (scale) = none")
    p.add_argument("--truncation-method", choices=("scale", "resample"), default="scale",
                   help="scale latents toward the mean (default) or resample components "
                        "outside [-PSI, PSI]")


def add_rejection_arg(p: argparse.ArgumentParser) -> None:
    """``--rejection none|drs|filter`` (default: the run's ``sampling.rejection``)."""
    p.add_argument("--rejection", choices=("none", "drs", "filter"), default=None,
                   help="drs: discriminator rejection sampling; filter: drop the samples D "
                        "scores lowest (standard-loss unconditional runs); default: the "
                        "run's sampling.rejection")


def _add_weights_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", metavar="DIR", help="a checkpoint directory (default: latest)")
    p.add_argument("--weights", choices=("auto", "ema", "raw"), default="auto",
                   help="generator weights: EMA when the checkpoint has them (auto), EMA only, "
                        "or the trained ones (raw)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a run's generator (ONNX, TorchScript, safetensors) "
                                      "with a JSON that describes its inputs and output")
    p.add_argument("run_dir")
    p.add_argument("--format", dest="fmt", required=True,
                   choices=("onnx", "torchscript", "safetensors"))
    p.add_argument("--out", required=True, help="output file (.onnx, .pt, .safetensors); the "
                                                "description goes to OUT.json")
    _add_weights_args(p)
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default: exporter's)")
    p.add_argument("--force", action="store_true", help="replace existing files")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("interpolate", help="latent walks between random pairs of latents; "
                                           "for conditional runs also a fixed-z label sweep")
    p.add_argument("run_dir")
    p.add_argument("--steps", type=int, default=None,
                   help="samples per walk, endpoints included (default 10)")
    p.add_argument("--pairs", type=int, default=8,
                   help="number of walks (rows); with --labels, the number of fixed latents")
    p.add_argument("--out", required=True, help="a .png picture (one walk per row) or .npy "
                                                "array (pairs, steps, *sample_shape)")
    p.add_argument("--method", choices=("auto", "slerp", "lerp"), default="auto",
                   help="auto: slerp for normal latents, lerp for uniform ones")
    p.add_argument("--label", type=int, default=None, metavar="K",
                   help="conditional runs: walk inside class K (default: walk i keeps class "
                        "i mod num_classes)")
    p.add_argument("--labels", nargs="?", const="all", default=None, metavar="CLASSES",
                   help="conditional runs: instead of walks, a fixed-z sweep across labels: row "
                        "i = one latent, column j = one class (all classes, or the "
                        "comma-separated CLASSES); .npy shape (pairs, classes, *sample_shape)")
    p.add_argument("--seed", type=int, default=0)
    add_truncation_args(p)
    _add_weights_args(p)
    p.set_defaults(func=cmd_interpolate)

    p = sub.add_parser("card", help="write MODEL_CARD.md for a run")
    p.add_argument("run_dir")
    p.add_argument("--out", help="where to write it (default RUN_DIR/MODEL_CARD.md)")
    p.set_defaults(func=cmd_card)


def cmd_export(args: argparse.Namespace) -> int:
    from ganforge.apps.export import export_generator

    res = export_generator(args.run_dir, args.fmt, args.out, checkpoint=args.checkpoint,
                           weights=args.weights, force=args.force, opset=args.opset)
    meta = res.meta
    lat = meta["inputs"][0]
    outp = meta["outputs"][0]
    print(f"wrote {res.path} ({args.fmt}, {meta['run']['weights']} weights of step "
          f"{meta['run']['step']})")
    print(f"description: {res.meta_path}")
    print(f"input z {lat['shape']} ~ {lat['distribution']['type']}; output x {outp['shape']}"
          + (f" in {outp['range']}" if outp["range"] else ""))
    ver = meta["verification"]
    if ver.get("checked"):
        print(f"checked against PyTorch on {ver['latents']} latents: max |diff| "
              f"{ver['max_abs_diff']:.2e}")
    else:
        print(f"not checked: {ver.get('reason')}")
    return 0


def cmd_interpolate(args: argparse.Namespace) -> int:
    import numpy as np

    from ganforge.apps.export import load_for_use
    from ganforge.latent import interpolation_method, is_conditional, latent_walk

    out = Path(args.out)
    if out.suffix.lower() not in (".png", ".npy"):
        raise GanforgeError(f"cannot write '{out}': use a .png or .npy file name.")
    sweep = args.labels is not None
    classes = _parse_classes(args.labels) if sweep else None
    if sweep and (args.steps is not None or args.method != "auto" or args.label is not None):
        raise GanforgeError("--labels draws one column per class from fixed latents; it does "
                            "not take --steps, --method or --label.")
    steps = 10 if args.steps is None else args.steps
    if steps < 2:
        raise GanforgeError(f"--steps must be >= 2 (both endpoints), got {steps}.")
    if args.pairs < 1:
        raise GanforgeError(f"--pairs must be >= 1, got {args.pairs}.")
    if args.truncation is not None:
        from ganforge.latent import check_truncation

        check_truncation(args.truncation, args.truncation_method)
    usable = load_for_use(args.run_dir, checkpoint=args.checkpoint, weights=args.weights)
    run = usable.run
    if sweep:
        from ganforge.latent import label_sweep

        _, y, x = label_sweep(run, args.pairs, args.seed, classes, args.truncation,
                              args.truncation_method)
    else:  # labels are checked before anything is generated
        _, x = latent_walk(run, args.pairs, steps, args.seed, args.method, args.truncation,
                           args.truncation_method, labels=args.label)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".npy":
        np.save(out, x.numpy())
    else:
        save_walk_picture(x, out, run.data_kind)
    if sweep:
        shown = ", ".join(str(c) for c in y.tolist())
        print(f"wrote {args.pairs} fixed latents x {y.numel()} classes ({shown}; one latent per "
              f"row, one class per column, {usable.weights} weights) to {out}")
        return 0
    how = interpolation_method(run.config.latent.distribution, args.method)
    within = ""
    if args.label is not None:
        within = f", class {args.label}"
    elif is_conditional(run):
        within = f", walk i in class i mod {run.num_classes}"
    print(f"wrote {args.pairs} walks of {steps} steps ({how}{within}, {usable.weights} "
          f"weights) to {out}")
    return 0


def _parse_classes(text: str) -> list[int] | None:
    """``--labels`` value: ``all`` -> None (every class), else comma-separated integers."""
    if text.strip().lower() == "all":
        return None
    try:
        return [int(c) for c in text.split(",") if c.strip()]
    except ValueError:
        raise GanforgeError(f"--labels takes comma-separated class numbers (or nothing, for "
                            f"every class), got '{text}'.") from None


def save_walk_picture(x: object, out: Path, kind: str) -> Path:
    """(pairs, steps, *shape) samples -> one row per walk (images) or polylines (2-D points)."""
    import torch

    from ganforge.monitor.images import image_grid, save_samples_picture, scatter_2d

    assert isinstance(x, torch.Tensor)
    pairs, steps = x.shape[:2]
    flat = x.reshape(pairs * steps, *x.shape[2:])
    if kind == "image":
        image_grid(flat, nrow=steps, scale=2 if flat.shape[-1] <= 32 else 1).save(out)
        return out
    if flat.ndim == 2 and flat.shape[1] == 2:
        from PIL import ImageDraw

        pts = flat.float()
        lim = float(pts.abs().max()) * 1.15 + 1e-6
        size = 320
        img = scatter_2d(pts, size=size, bounds=(-lim, lim))
        draw = ImageDraw.Draw(img)

        def px(p: torch.Tensor) -> tuple[float, float]:
            return (float(p[0] + lim) / (2 * lim) * (size - 1),
                    float(lim - p[1]) / (2 * lim) * (size - 1))

        for walk in x.float():
            draw.line([px(p) for p in walk], fill=(220, 60, 60), width=1)
            for p, color in ((walk[0], (0, 120, 0)), (walk[-1], (0, 0, 200))):
                cx, cy = px(p)
                draw.ellipse((cx - 3, cy - 3, cx + 3, cy + 3), outline=color)
        img.save(out)
        return out
    return save_samples_picture(flat, out, kind)


def cmd_card(args: argparse.Namespace) -> int:
    from ganforge.apps.card import write_card

    path = write_card(args.run_dir, args.out)
    print(f"wrote {path}")
    return 0

"""The ``translate`` verb: run a cyclegan/pix2pix generator over image files.

``ganforge translate RUN --input FILE_OR_DIR --direction a2b|b2a --out DIR`` writes one output
per input image, with the same file name (and relative path under a directory) in DIR. Inputs
are converted to the generator's channels and resized (bicubic) to its input size first. Every
input is read before anything is written, and existing files are not overwritten without
``--overwrite``, so a bad input leaves DIR as it was.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from ganforge.errors import DataError, GanforgeError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("translate", help="translate images with a cyclegan or pix2pix run")
    p.add_argument("run_dir", metavar="RUN", help="a trained cyclegan or pix2pix run directory")
    p.add_argument("--input", required=True, metavar="FILE_OR_DIR",
                   help="an image file, or a directory of images (searched recursively)")
    p.add_argument("--direction", choices=("a2b", "b2a"), default="a2b",
                   help="a2b (default) or b2a (cyclegan only)")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"))
    p.set_defaults(func=cmd_translate)


def collect_inputs(src: Path) -> list[tuple[Path, Path]]:
    """(file, name relative to the input root) for every image to translate."""
    from ganforge.data.registry import IMAGE_SUFFIXES

    if src.is_file():
        if src.suffix.lower() not in IMAGE_SUFFIXES:
            raise DataError(f"'{src}' is not an image file ({', '.join(sorted(IMAGE_SUFFIXES))}).")
        return [(src, Path(src.name))]
    if src.is_dir():
        files = sorted(p for p in src.rglob("*")
                       if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataError(f"'{src}' holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}).")
        return [(p, p.relative_to(src)) for p in files]
    raise DataError(f"--input '{src}' does not exist; give an image file or a directory.")


def translate_files(run_dir: str | Path, inputs: str | Path, out_dir: str | Path,
                    direction: str = "a2b", overwrite: bool = False,
                    device: str = "cpu") -> list[Path]:
    """Translate every image under ``inputs`` into ``out_dir`` (same names); returns the paths."""
    from PIL import Image

    from ganforge.data.translation import fit_images, read_image
    from ganforge.monitor.images import to_uint8
    from ganforge.tasks.translation import load_translator, translate_tensor

    src, out = Path(inputs).expanduser(), Path(out_dir).expanduser()
    items = collect_inputs(src)
    root = src if src.is_dir() else src.parent
    if out.resolve() == root.resolve():
        raise GanforgeError(f"--out '{out}' is the input directory: outputs have the inputs' "
                            f"names and would replace them. Pick another --out.")
    targets = [out / rel for _, rel in items]
    if not overwrite:
        taken = [t for t in targets if t.exists()]
        if taken:
            raise GanforgeError(f"'{taken[0]}' already exists ({len(taken)} of the outputs do). "
                                f"Pick an empty --out, or pass --overwrite.")
    net, in_shape, _ = load_translator(run_dir, direction, device)
    c = in_shape[0]
    x = torch.cat([fit_images(read_image(f, c)[None], in_shape) for f, _ in items])
    y = translate_tensor(net, x)
    pixels = to_uint8(y)
    for t, arr in zip(targets, pixels, strict=True):
        t.parent.mkdir(parents=True, exist_ok=True)
        img = Image.fromarray(np.ascontiguousarray(arr[..., 0] if arr.shape[-1] == 1 else arr))
        try:
            img.save(t)
        except (OSError, ValueError) as exc:
            raise GanforgeError(f"cannot write '{t}': {exc}") from None
    return targets


def cmd_translate(args: argparse.Namespace) -> int:
    written = translate_files(args.run_dir, args.input, args.out, args.direction,
                              args.overwrite, args.device)
    print(f"wrote {len(written)} image{'s' if len(written) != 1 else ''} to {args.out} "
          f"({args.direction})")
    return 0

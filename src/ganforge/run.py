"""A run directory read back: its config, its networks from a checkpoint, sampling.

``Run`` is what ``ganforge.load`` and ``ganforge.train`` return; a task whose runs sample
differently (labels, tables, texts) subclasses it as its ``run_class``. The loader of every
task is ``Task.load_run`` (tasks/base.py); this module holds what it reads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from ganforge.config import RunConfig, apply_overrides, known_data_shape, validate_config
from ganforge.data import load_training_data
from ganforge.data.music import (
    AUDIO_SUFFIXES,
    MIDI_SUFFIXES,
    SCORE_SUFFIXES,
    melody_notes,
    timeline,
    write_melodies,
)
from ganforge.data.sequences import (
    load_data_info,
    minmax_apply,
    minmax_invert,
    split_mask,
    write_sequence_csv,
)
from ganforge.errors import CheckpointError, DataError, GanforgeError
from ganforge.latent import truncate
from ganforge.metrics.features import PROGRESS_BATCHES
from ganforge.monitor.images import save_samples_picture
from ganforge.monitor.music import write_piano_roll, write_wav
from ganforge.objectives.compat import check_rejection_config
from ganforge.progress import Progress
from ganforge.rejection import DEFAULT_QUANTILE, check_rejection, drs_sample, filter_sample
from ganforge.seeding import sample_latent

# Runs trained with the user's own nn.Module(s) (ganforge.GAN(generator=...)) name their
# classes here; loading them needs fresh instances (GAN.load(path, generator=MyNet())).
NETWORKS_FILE = "user_networks.json"


def user_networks(run_dir: str | Path) -> dict[str, str]:
    """{"generator": "pkg.MyNet", ...} for a run trained with the user's own modules, else {}."""
    path = Path(run_dir) / NETWORKS_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


class Run:
    """A trained (or training) run directory with its networks loaded from a checkpoint."""

    def __init__(self, run_dir: str | Path, config: RunConfig, generator: torch.nn.Module,
                 discriminator: torch.nn.Module, step: int, data_shape: tuple[int, ...],
                 data_kind: str) -> None:
        self.run_dir = Path(run_dir)
        self.config = config
        self.generator = generator
        self.discriminator = discriminator
        self.step = step
        self.data_shape = data_shape
        self.data_kind = data_kind
        # what discriminator rejection sampling did in the last sample() call (None: not used)
        self.last_rejection: dict[str, Any] | None = None

    @property
    def device(self) -> torch.device:
        return next(self.generator.parameters()).device

    def set_sample_temperature(self, temperature: float | list[float]) -> list[int]:
        """Sets the ``sample_temperature`` of every ``span_softmax`` in G for the samples
        drawn from now on: one number for all spans, or a list with one per span (a music
        run: pitch, duration, delta). Below 1, G's likelier categories come more often.
        Returns the spans. A G without ``span_softmax`` (no categories to draw) is an error."""
        from ganforge.architecture.layers import SpanSoftmax, sample_temperature_value

        layers = [m for m in self.generator.modules() if isinstance(m, SpanSoftmax)]
        if not layers:
            raise GanforgeError("a sampling temperature applies to generators with a "
                                "span_softmax layer (one-hot categories, e.g. music with "
                                "encoding: onehot); this run's generator has none.")
        values = [sample_temperature_value(temperature, len(m.spans)) for m in layers]
        for m, value in zip(layers, values, strict=True):
            if value is None and isinstance(temperature, list) and len(temperature) != len(m.spans):
                raise GanforgeError(f"{len(temperature)} sampling temperatures for "
                                    f"{len(m.spans)} spans {m.spans}: give one number, or one "
                                    f"per span.")
            if value is None:
                raise GanforgeError(f"sampling temperatures must be numbers > 0 (1 = G's own "
                                    f"probabilities), got {temperature!r}.")
        for m, value in zip(layers, values, strict=True):
            m.sample_temperature = value
        return layers[0].spans

    def latent(self, n: int, seed: int = 0) -> torch.Tensor:
        return sample_latent(n, self.config.latent.full_shape, self.config.latent.distribution,
                             torch.Generator().manual_seed(seed), self.device)

    @torch.no_grad()
    def generate(self, z: torch.Tensor, batch_size: int = 512,
                 progress: bool = True) -> torch.Tensor:
        """G(z) in eval mode, in batches; returns a CPU tensor (a progress display for many
        batches unless ``progress`` is False)."""
        self.generator.eval()
        bar = Progress(progress and z.shape[0] >= PROGRESS_BATCHES * batch_size, z.shape[0], 0,
                       "sampling", unit="sample")
        outs = []
        try:
            for i in range(0, z.shape[0], batch_size):
                outs.append(self.generator(z[i:i + batch_size].to(self.device)).float().cpu())
                bar.update(outs[-1].shape[0])
        finally:
            bar.close()
        return torch.cat(outs) if outs else torch.empty(0, *self.data_shape)

    def units_scaling(self) -> dict[str, Any] | None:
        """The min-max scaling the run's sequences were trained in (``data.json``), which
        :meth:`sample` undoes; None when samples are already in the data's units (images,
        vectors, sines, ``npy:`` arrays) and for music runs, whose samples stay scaled for the
        note writers that quantize them (data/music.py)."""
        if not hasattr(self, "_units_scaling"):
            info = load_data_info(self.run_dir) if self.data_kind == "sequence" else None
            info = info or {}
            self._units_scaling = (info.get("scaling") if "music" not in info else None)
        return self._units_scaling

    def variable_length(self) -> dict[str, Any] | None:
        """``data.json``'s ``variable_length`` of a run trained on sequences of many lengths
        (``csv-sequence:`` with ``options.id``): its id column, padded length ``steps`` and
        length histogram; None for fixed-length data. Such a run's networks emit one channel
        more than the data's features: the mask channel (data/sequences.py)."""
        if not hasattr(self, "_variable_length"):
            info = load_data_info(self.run_dir) if self.data_kind == "sequence" else None
            varlen = (info or {}).get("variable_length")
            self._variable_length = varlen if isinstance(varlen, dict) else None
        return self._variable_length

    def to_data_units(self, samples: torch.Tensor) -> torch.Tensor:
        """Samples of the networks' (scaled) space in the training data's original units, as
        float64 (a no-op where :meth:`units_scaling` is None)."""
        scaling = self.units_scaling()
        if scaling is None:
            return samples
        return torch.from_numpy(minmax_invert(samples.double().numpy(), scaling))

    def sample(self, n: int, seed: int = 0, truncation: float | None = None,
               truncation_method: str = "scale", scaled: bool = False,
               rejection: str | None = None) -> torch.Tensor:
        """n samples of the data's shape (images in [-1, 1]). ``truncation`` (psi) pulls the
        latents toward the mean (``scale``) or redraws them inside [-psi, psi] (``resample``);
        see ``ganforge.latent.truncate``. ``rejection``: ``drs`` keeps generated samples by
        discriminator rejection sampling, ``filter`` drops the share D scores lowest
        (``ganforge.rejection``; quantile and burn-in from the config's ``sampling``
        section), ``none`` keeps every one; default: the config's ``sampling.rejection``. Sequences of a scaled series (statsmodels, CSV) come
        back in the series' original units (float64); ``scaled=True`` keeps the [0, 1] values
        the networks were trained on (what the sequence scores compare with the training
        data). Variable-length runs (:meth:`variable_length`) return (n, T, F) without the
        mask channel: each sequence's steps after its length (the first step whose mask value
        is below 0.5, at least 1) are NaN."""
        if n < 1:
            raise GanforgeError(f"the number of samples must be >= 1, got {n}.")
        self.last_rejection = None
        method = self.rejection_method(rejection)
        # randomness inside G (the Gumbel noise of span_softmax) follows the seed too, without
        # touching the caller's global generator
        with torch.random.fork_rng(devices=range(torch.cuda.device_count())):
            torch.manual_seed(seed)
            if method != "none":
                x = self._rejection(method, n, seed, truncation, truncation_method)
            else:
                x = self.generate(self._latents(n, seed, truncation, truncation_method))
        if self.variable_length() is not None:
            x = torch.from_numpy(split_mask(x)[0])
        return x if scaled else self.to_data_units(x)

    def rejection_kwargs(self, rejection: str | None = None) -> dict[str, str]:
        """``{"rejection": method}`` for a sample call that must say it (a method other than
        none, or none against a config that rejects); ``{}`` otherwise, so that runs whose
        ``sample`` takes no such keyword (tables, texts) are called as before."""
        method = self.rejection_method(rejection)
        if method != "none" or self.config.sampling.rejection != "none":
            return {"rejection": method}
        return {}

    def rejection_method(self, rejection: str | None = None) -> str:
        """The rejection method a sample call uses (the argument, else the config's)."""
        method = self.config.sampling.rejection if rejection is None else rejection
        check_rejection(method)
        if method != "none":
            check_rejection_config(self.config, method)
            if self.variable_length() is not None:
                raise GanforgeError("rejection by the discriminator does not handle "
                                    "variable-length sequences; use --rejection none.")
        return method

    def _latents(self, n: int, seed: int, truncation: float | None,
                 truncation_method: str) -> torch.Tensor:
        z = self.latent(n, seed)
        if truncation is not None:
            z = truncate(z, truncation, self.config.latent.distribution, truncation_method,
                         seed=seed + 1_000_003)
        return z

    @torch.no_grad()
    def _scored(self, z: torch.Tensor, label: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Candidates G(z) and D's logit of each (``label``: the class a conditional run draws
        them for; unused here)."""
        x = self.generate(z, progress=False)
        D = self.discriminator
        logits = torch.cat([D(x[i:i + 1024].to(self.device)).float().reshape(-1).cpu()
                            for i in range(0, len(x), 1024)])
        return x, logits

    @torch.no_grad()
    def _rejection(self, method: str, n: int, seed: int, truncation: float | None,
                   truncation_method: str, label: int | None = None) -> torch.Tensor:
        s = self.config.sampling
        D = self.discriminator
        was_training = D.training  # a run may share D with a trainer (in-process evaluation)
        D.eval()

        def draw(count: int, batch_seed: int) -> tuple[torch.Tensor, torch.Tensor]:
            return self._scored(self._latents(count, batch_seed, truncation, truncation_method),
                                label)

        quantile = DEFAULT_QUANTILE[method] if s.quantile is None else s.quantile
        sampler = drs_sample if method == "drs" else filter_sample
        try:
            x, record = sampler(draw, n, quantile=quantile, burn_in=s.burn_in, seed=seed)
        finally:
            D.train(was_training)
        self.last_rejection = record
        return x

    def save_samples(self, samples: torch.Tensor, out: str | Path) -> Path:
        """Write samples (as :meth:`sample` returns them) as a PNG grid, ``.npy`` or ``.csv``
        (vectors; sequences in long format with their column names; variable-length sequences
        with their real steps only, ``.npy`` with their NaN padding), by the extension; music
        runs also as ``.mid`` / ``.midi`` (MIDI), ``.musicxml`` or ``.wav`` (audio through
        FluidSynth; one melody after another, data/music.py) and ``.png`` as a piano roll
        (monitor/music.py)."""
        out = Path(out)
        suffix = out.suffix.lower()
        music_out = (*MIDI_SUFFIXES, *SCORE_SUFFIXES, *AUDIO_SUFFIXES)
        if suffix not in (".png", ".npy", ".csv", *music_out):
            raise GanforgeError(f"cannot write '{out}': use a .png, .npy or .csv file name "
                                f"(music runs: .mid, .musicxml or .wav).")
        # music runs are sequence runs whose data.json holds the scaling and the grid
        needs_info = suffix in music_out or (suffix == ".png" and self.data_kind == "sequence")
        info = (load_data_info(self.run_dir) if needs_info else None) or {
            "source": self.config.data.source, "kind": self.data_kind}
        if suffix in AUDIO_SUFFIXES:
            notes = timeline(melody_notes(samples.numpy(), out, info))
            return write_wav(notes, out)  # checks for FluidSynth before writing anything
        if suffix in music_out:
            out.parent.mkdir(parents=True, exist_ok=True)
            return write_melodies(samples.numpy(), out, info)
        if suffix == ".png" and isinstance(info.get("music"), dict):
            return write_piano_roll(list(melody_notes(samples.numpy(), out, info)), out,
                                    [f"melody {i + 1}" for i in range(len(samples))])
        out.parent.mkdir(parents=True, exist_ok=True)
        scaling = self.units_scaling()
        if suffix == ".png":  # the picture of a series: every feature in its [0, 1] range
            if scaling is not None:
                samples = torch.from_numpy(minmax_apply(samples.double().numpy(), scaling))
            if self.variable_length() is not None:  # padding drawn as 0
                samples = torch.nan_to_num(samples, nan=0.0)
            return save_samples_picture(samples, out, self.data_kind)
        arr = samples.numpy()
        # sequences: long format, original units (variable-length ones: real steps only)
        if suffix == ".csv" and arr.ndim == 3:
            return write_sequence_csv(arr, out, self.run_dir, scaled=scaling is None)
        if suffix == ".npy":
            np.save(out, arr)
        else:
            if arr.ndim != 2:
                raise GanforgeError(f"CSV holds vectors (one row per sample); these samples have "
                                    f"shape {tuple(arr.shape[1:])}. Use .npy or .png instead.")
            header = ",".join(f"x{i}" for i in range(arr.shape[1]))
            np.savetxt(out, arr, delimiter=",", header=header, comments="", fmt="%.6g")
        return out


def read_run_config(run_dir: str | Path, overrides: list[str] | None = None) -> RunConfig:
    run_dir = Path(run_dir)
    path = run_dir / "config.yaml"
    if not run_dir.is_dir():
        raise CheckpointError(f"run directory '{run_dir}' does not exist.")
    if not path.is_file():
        raise CheckpointError(f"'{run_dir}' is not a ganforge run: it has no config.yaml.")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise CheckpointError(f"'{path}' is not valid YAML: {exc}") from None
    return validate_config(apply_overrides(raw, overrides))


def run_data_shape(run_dir: str | Path, cfg: RunConfig) -> tuple[tuple[int, ...], str]:
    """The shape and kind of a run's data: from the config (bundled data, image_size), from
    what the run stored (sequences), or by loading the data (user files)."""
    data_shape = known_data_shape(cfg)
    kind = "image" if data_shape is not None and len(data_shape) == 3 else "vector"
    stored = load_data_info(run_dir)
    if data_shape is None and stored is not None:  # sequences: shape kept with the run
        data_shape, kind = tuple(stored["shape"]), str(stored["kind"])
    if data_shape is None:
        try:
            data = load_training_data(cfg)
        except DataError as exc:
            raise CheckpointError(f"cannot infer the data shape of '{run_dir}': {exc}") from None
        data_shape, kind = data.shape, data.kind
    return tuple(data_shape), kind

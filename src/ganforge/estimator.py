"""The estimator API: a GAN as an object that is fitted to data and sampled.

    import ganforge
    gan = ganforge.GAN("gan-ring8", train={"steps": 500}, seed=1).fit(points)   # (N, F) array
    x = gan.sample(1000)
    gan.save("runs/ring")            # or GAN(..., run_dir=...); everything lives in the run dir
    gan = ganforge.GAN.load("runs/ring")

    tg = ganforge.TableGAN(epochs=300).fit(df, discrete_columns=["sex", "smoker"])
    rows = tg.sample(500, conditions={"sex": "Female"})

``fit`` takes a pandas DataFrame (task ctgan), a numpy array or torch tensor ((N, F) vectors;
(N, H, W) or (N, C, H, W) images, uint8 or float) or a path (``.csv``, ``.npy``, a folder of
images). Arrays are copied into the run directory (``data.npy``, in the model's range), so the
run is self-contained. Options are config keys: ``train={"steps": 500}``, ``seed=1`` or
``**{"optim.g.lr": 1e-4}``. ``generator=`` / ``discriminator=`` take your own ``nn.Module``
(checked by a dry forward pass against the data's shape and one logit per sample).
"""

from __future__ import annotations

import json
import shutil
import sys
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

from ganforge import api
from ganforge import config as _config
from ganforge.data.tabular import register_frame
from ganforge.errors import CheckpointError, ConfigError, DataError, GanforgeError
from ganforge.evaluate import evaluate_run
from ganforge.fileio import atomic_write_text
from ganforge.run import NETWORKS_FILE, Run, run_data_shape, user_networks
from ganforge.tasks import task_class
from ganforge.tasks.base import load_weights, spec_networks
from ganforge.training.trainer import Trainer

DATA_FILE = "data.npy"


def option_overrides(options: dict[str, Any], prefix: str = "") -> list[str]:
    """``{"train": {"steps": 5}, "optim.g.lr": 1e-4}`` -> ``["train.steps=5", "optim.g.lr=..."]``
    (values written as JSON, which the YAML parser of overrides reads back exactly). Sections
    are flattened down to keys that are not sections themselves."""
    out: list[str] = []
    for key, value in options.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and path.split(".")[0] in _SECTIONS:
            out.extend(option_overrides(value, path + "."))
        else:
            out.append(f"{path}={json.dumps(value)}")
    return out


_SECTIONS = set(_config.RunConfig.model_fields)

# A small MLP pair for any vector or image shape (used when no preset is given).
def default_config(kind: str, shape: tuple[int, ...]) -> dict[str, Any]:
    size = int(np.prod(shape))
    if kind == "image":
        g_tail = [{"dense": {"units": size}}, "tanh", {"reshape": {"shape": list(shape)}}]
        d_head = ["flatten"]
    else:
        g_tail = [{"dense": {"units": size}}]
        d_head = []
    return {
        "name": f"gan-{kind}",
        "description": f"MLP GAN on user {kind}s (ganforge.GAN default)",
        "latent": {"dim": 64 if kind == "image" else 16},
        "generator": {"layers": [{"dense": {"units": 256}}, "batch_norm", "relu",
                                 {"dense": {"units": 256}}, "batch_norm", "relu", *g_tail]},
        "discriminator": {"layers": [*d_head, {"dense": {"units": 256}},
                                     {"leaky_relu": {"slope": 0.2}}, {"dense": {"units": 256}},
                                     {"leaky_relu": {"slope": 0.2}}, {"dense": {"units": 1}}]},
        "optim": {"g": {"lr": 3e-4}, "d": {"lr": 3e-4}},
        "train": {"steps": 2000, "batch_size": 128},
        "monitor": {"log_every": 100, "sample_every": 1000, "grid_size": 64},
    }


def note(text: str) -> None:
    sys.stderr.write(f"ganforge: note: {text}\n")


def as_model_array(data: Any, image: bool | None = None) -> tuple[np.ndarray, str]:
    """A numpy array or tensor as float32 samples in the model's range, and their kind.

    (N, F) is vectors; (N, H, W) is one-channel images, (N, C, H, W) images. Images in uint8,
    in [0, 255] or in [0, 1] are scaled to [-1, 1] (the tanh output of an image generator),
    with a note; other ranges outside [-1, 1] are an error naming the fix."""
    arr = data.detach().cpu().numpy() if isinstance(data, torch.Tensor) else np.asarray(data)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number)
                                   or arr.dtype == np.bool_):
        raise DataError(f"the data holds {arr.dtype} values; give real numbers (a float array "
                        f"or uint8 images). For a table with text columns pass a DataFrame.")
    if arr.ndim < 2 or arr.shape[0] < 2 or 0 in arr.shape:
        raise DataError(f"the data has shape {arr.shape}; give (N, features), (N, H, W) or "
                        f"(N, C, H, W) with N >= 2 samples.")
    if arr.ndim > 4:
        raise DataError(f"the data has shape {arr.shape} ({arr.ndim} dimensions); give (N, F) "
                        f"vectors, (N, H, W) or (N, C, H, W) images.")
    is_uint8 = arr.dtype == np.uint8
    x = arr.astype(np.float32)
    if not np.isfinite(x).all():
        bad = np.flatnonzero(~np.isfinite(x.reshape(len(x), -1)).all(axis=1))
        raise DataError(f"the data has NaN or infinite values in {len(bad)} sample(s) (first "
                        f"rows: {', '.join(map(str, bad[:5]))}); drop or fill them first.")
    kind = "vector" if x.ndim == 2 else "image"
    if image is not None:
        kind = "image" if image else kind
    if kind == "image":
        if x.ndim == 3:
            x = x[:, None]
            note(f"images of shape {arr.shape[1:]} are read as one channel "
                 f"(1, {arr.shape[1]}, {arr.shape[2]}).")
        lo, hi = float(x.min()), float(x.max())
        if is_uint8 or (lo >= 0 and hi > 1.0 and hi <= 255):
            x = x / 127.5 - 1.0
            note(f"image values in [{lo:g}, {hi:g}] are treated as 0..255 and scaled to "
                 f"[-1, 1], the range of the generator's tanh output.")
        elif lo >= 0 and hi <= 1.0:
            x = x * 2.0 - 1.0
            note(f"image values in [{lo:g}, {hi:g}] are treated as 0..1 and scaled to "
                 f"[-1, 1], the range of the generator's tanh output.")
        elif lo < -1.0 - 1e-6 or hi > 1.0 + 1e-6:
            raise DataError(f"image values span [{lo:g}, {hi:g}], outside the generator's "
                            f"tanh range [-1, 1]; scale them to [-1, 1] (or give uint8 / 0..255 "
                            f"/ 0..1 images, which are scaled automatically).")
    return np.ascontiguousarray(x), kind


def frame_overrides(discrete_columns: Any, target: str | None) -> list[str]:
    out = ['data.split="all"', f"data.target={json.dumps(target)}"]
    if discrete_columns is not None:
        out.append(f"data.discrete={json.dumps([str(c) for c in discrete_columns])}")
    return out


class GAN:
    """A GAN from a preset name, YAML path, dict or RunConfig (or None: an MLP pair fitted to
    the data's shape), with config options as keywords; fitted by :meth:`fit`."""

    def __init__(self, config: Any = None, *, run_dir: str | Path | None = None,
                 generator: nn.Module | None = None, discriminator: nn.Module | None = None,
                 **options: Any) -> None:
        for name, net in (("generator", generator), ("discriminator", discriminator)):
            if net is not None and not isinstance(net, nn.Module):
                raise ConfigError(f"{name}= must be a torch nn.Module, got "
                                  f"{type(net).__name__}.")
        self.config_source = config
        self.overrides = option_overrides(options)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.networks = {"generator": generator, "discriminator": discriminator}
        self.run: Run | None = None
        if config is not None:  # fail early on a bad preset or option, before any data
            self._config([])

    # ------------------------------------------------------------------ config
    def _config(self, extra: list[str], default: dict[str, Any] | None = None,
                check: bool = True) -> _config.RunConfig:
        source = self.config_source
        if isinstance(source, _config.RunConfig):
            source = source.to_dict()
        if source is None:
            source = default if default is not None else default_config("vector", (2,))
        raw = _config.raw_config(source)
        cfg = _config.validate_config(_config.apply_overrides(raw, extra + self.overrides))
        if check and not any(self.networks.values()):
            api.check_config(cfg)
        return cfg

    @property
    def config(self) -> _config.RunConfig:
        if self.run is not None:
            return self.run.config
        return self._config([])

    # --------------------------------------------------------------------- fit
    def fit(self, data: Any, *, discrete_columns: Any = None, target: str | None = None,
            image: bool | None = None, image_size: Any = None) -> GAN:
        """Train on ``data`` (DataFrame, ndarray, tensor or path) and keep the trained run."""
        if self.run is not None:
            raise GanforgeError("this GAN is already fitted; make a new GAN(...) to train "
                                "again, or continue this one with ganforge.train(resume=...).")
        extra, default, array = self._data_overrides(data, discrete_columns, target, image,
                                                     image_size)
        run_dir = self.run_dir or api.default_run_dir(self._config(extra, default, check=False))
        if array is not None:  # stored in the run: the run is self-contained
            extra.append(f"data.source={json.dumps(f'npy:{run_dir.resolve() / DATA_FILE}')}")
        cfg = self._config(extra, default)  # every config error before anything is written
        created = False
        if array is not None:
            if run_dir.exists() and any(run_dir.iterdir()):
                raise ConfigError(f"run directory '{run_dir}' is not empty; give another "
                                  f"run_dir or remove it.")
            created = not run_dir.exists()
            run_dir.mkdir(parents=True, exist_ok=True)
            np.save(run_dir / DATA_FILE, array)
        networks = {k: v for k, v in self.networks.items() if v is not None}
        try:
            trainer = Trainer(cfg, run_dir, networks=networks or None)
        except BaseException:
            if array is not None:  # nothing trained: leave no half-made run behind
                (run_dir / DATA_FILE).unlink(missing_ok=True)
                if created and not any(run_dir.iterdir()):
                    run_dir.rmdir()
            raise
        if networks:
            (run_dir / NETWORKS_FILE).write_text(json.dumps(
                {k: type(v).__module__ + "." + type(v).__qualname__ for k, v in networks.items()},
                indent=1))
        trainer.fit()
        self.run = trainer.task.trained_run(trainer)
        self.run_dir = run_dir
        return self

    def _data_overrides(self, data: Any, discrete_columns: Any, target: str | None,
                        image: bool | None, image_size: Any
                        ) -> tuple[list[str], dict[str, Any] | None, np.ndarray | None]:
        """(config overrides naming the data, default config, array to store in the run)."""
        try:
            import pandas as pd
        except ImportError:  # pragma: no cover - pandas is a dependency
            pd = None
        if pd is not None and isinstance(data, pd.DataFrame):
            name = f"estimator-{uuid.uuid4().hex[:12]}"
            source = register_frame(name, data)
            default = _config.raw_config("ctgan")
            return ([f"data.source={json.dumps(source)}", *frame_overrides(discrete_columns,
                                                                            target)],
                    default, None)
        if isinstance(data, (str, Path)):
            p = Path(data).expanduser()
            if not p.exists():
                raise DataError(f"data path '{data}' does not exist.")
            if p.is_dir():
                if image_size is None:
                    raise DataError(f"'{data}' is a folder of images: give image_size=[C, H, W] "
                                    f"(e.g. [3, 64, 64]) to resize them to.")
                c, h, w = (int(v) for v in image_size)
                default = default_config("image", (c, h, w))
                return ([f"data.source={json.dumps(f'folder:{p}')}",
                         f"data.image_size={json.dumps([c, h, w])}", 'data.split="all"'],
                        default, None)
            if p.suffix.lower() == ".csv":
                default = _config.raw_config("ctgan")
                return ([f"data.source={json.dumps(f'csv:{p}')}",
                         *frame_overrides(discrete_columns, target)], default, None)
            if p.suffix.lower() == ".npy":
                try:
                    data = np.load(p, allow_pickle=False)
                except (ValueError, OSError, EOFError) as exc:
                    raise DataError(f"cannot read '{p}' as a .npy array ({exc}); save it with "
                                    f"numpy.save (no pickled objects).") from None
            else:
                raise DataError(f"cannot train on '{data}': give a .csv table, a .npy array "
                                f"or a folder of images.")
        if isinstance(data, (np.ndarray, torch.Tensor, list)):
            arr, kind = as_model_array(data, image)
            shape = tuple(arr.shape[1:])
            extra = ['data.split="all"', "data.options.scale=false"]  # already scaled
            if kind == "image":
                extra.append(f"data.image_size={json.dumps(list(shape))}")
            return extra, default_config(kind, shape), arr
        raise DataError(f"cannot train on a {type(data).__name__}: give a pandas DataFrame, a "
                        f"numpy array, a torch tensor or a path (.csv, .npy, image folder).")

    # ------------------------------------------------------------------ use
    def _fitted(self) -> Run:
        if self.run is None:
            raise GanforgeError("this GAN is not fitted yet: call .fit(data) or "
                                "ganforge.GAN.load(run_dir) first.")
        return self.run

    def sample(self, n: int, *, seed: int = 0, conditions: dict[str, Any] | None = None,
               **kw: Any) -> Any:
        """``n`` samples: a DataFrame for tables (``conditions={"col": value, ...}``: rows with
        those values; CTGAN's conditional sampling, several columns by rejection), else a
        tensor in the data's range (images in [-1, 1])."""
        run = self._fitted()
        conditions = dict(conditions or {})
        if conditions:
            if run.data_kind != "table":
                raise GanforgeError("conditions= applies to tables (a GAN fitted on a "
                                    "DataFrame or CSV).")
            return run.sample(n, seed=seed, where=[f"{c}={v}" for c, v in conditions.items()],
                              **kw)
        return run.sample(n, seed=seed, **kw)

    def evaluate(self, metrics: Any = None, **kw: Any) -> dict[str, Any]:
        """Score the trained run against its data (ganforge.evaluate.evaluate_run)."""
        run = self._fitted()
        return evaluate_run(run.run_dir, metrics, run=run, **kw)

    def save(self, path: str | Path) -> Path:
        """Copy the run directory (config, checkpoints, data description, stored data) to
        ``path``; ``GAN.load(path)`` reads it back. Refuses a non-empty target."""
        run = self._fitted()
        dst = Path(path)
        if dst.resolve() == run.run_dir.resolve():
            return dst
        if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
            raise GanforgeError(f"'{dst}' already exists and is not empty; give a new path.")
        if dst.exists():
            dst.rmdir()
        shutil.copytree(run.run_dir, dst)
        if (dst / DATA_FILE).is_file():  # the copy reads its own stored data from now on
            path = dst / "config.yaml"
            raw = yaml.safe_load(path.read_text())
            if raw.get("data", {}).get("source") == f"npy:{run.run_dir.resolve() / DATA_FILE}":
                raw["data"]["source"] = f"npy:{dst.resolve() / DATA_FILE}"
                atomic_write_text(path, yaml.safe_dump(raw, sort_keys=False))
        return dst

    @classmethod
    def load(cls, path: str | Path, *, device: str = "cpu",
             generator: nn.Module | None = None, discriminator: nn.Module | None = None
             ) -> GAN:
        """A fitted GAN from a run directory. A run trained with your own modules needs them
        again (same classes, fresh instances); their weights come from the checkpoint."""
        path = Path(path)
        cfg = api.read_run_config(path)
        users = user_networks(path)
        given = {"generator": generator, "discriminator": discriminator}
        missing = [k for k in users if given[k] is None]
        if missing:
            raise CheckpointError(f"'{path}' was trained with your own {' and '.join(missing)} "
                                  f"({', '.join(users[k] for k in missing)}); pass a fresh "
                                  f"instance: GAN.load(path, {missing[0]}=MyNet(...)).")
        gan = cls.__new__(cls)
        gan.config_source, gan.overrides, gan.run_dir = None, [], path
        gan.networks = given
        gan.run = load_with_networks(path, cfg, given, device) if users else api.load(path, device)
        return gan

    def __repr__(self) -> str:
        state = f"fitted, {self.run.run_dir}" if self.run is not None else "not fitted"
        return f"GAN({self.config.name!r}, {state})"


class TableGAN(GAN):
    """CTGAN's interface on the ctgan task: ``TableGAN(epochs=300).fit(df,
    discrete_columns=[...])``, ``.sample(n, conditions={"col": value})``."""

    def __init__(self, epochs: float | None = None, *, batch_size: int | None = None,
                 config: Any = "ctgan", **options: Any) -> None:
        train = dict(options.pop("train", {}) or {})
        if epochs is not None:
            train.update(epochs=epochs, steps=None)
        if batch_size is not None:
            train["batch_size"] = batch_size
        if train:
            options["train"] = train
        super().__init__(config, **options)


def load_with_networks(path: Path, cfg: Any, given: dict[str, nn.Module | None],
                       device: str) -> Run:
    """A run trained with the user's own module(s): those instances (plus the spec-built
    other one) with the checkpoint's weights, as the task's run class."""
    data_shape, kind = run_data_shape(path, cfg)
    mods = spec_networks(cfg, data_shape) if None in given.values() else {}
    mods.update({k: v for k, v in given.items() if v is not None})
    ema = cfg.objective.ema is not None
    step = load_weights(path, {("generator_ema" if ema and k == "generator" else k): v
                               for k, v in mods.items()}, device)
    return task_class(cfg.task).run_class(path, cfg, mods["generator"], mods["discriminator"],
                                          step, tuple(data_shape), kind)


__all__ = ["GAN", "TableGAN", "as_model_array", "option_overrides"]

"""Checkpoints: safetensors for every tensor, JSON for scalars; written atomically.

A checkpoint is a directory ``checkpoints/step_00001000/`` with
- ``model.safetensors``: ``generator.*`` and ``discriminator.*`` (and any extra modules) weights;
- ``state.safetensors``: optimizer tensors, RNG states, data-order permutation;
- ``state.json``: step, optimizer hyper-parameters, and the key layout of the tensors.
It is written to a temporary directory, each file fsynced, then renamed into place, so a crash
leaves either the old set of checkpoints or the new one, never half of one. Nothing is ever
unpickled.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ganforge.errors import CheckpointError

CKPT_DIR = "checkpoints"


def flatten_state(tree: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """Move every tensor of a nested dict/list into ``tensors``; return the JSON skeleton."""
    if isinstance(tree, torch.Tensor):
        tensors[prefix] = tree.detach().contiguous().cpu()
        return {"__tensor__": prefix}
    if isinstance(tree, dict):
        return {"__dict__": [[_key(k), flatten_state(v, f"{prefix}.{k}", tensors)]
                             for k, v in tree.items()]}
    if isinstance(tree, (list, tuple)):
        return {"__list__": [flatten_state(v, f"{prefix}.{i}", tensors) for i, v in enumerate(tree)],
                "tuple": isinstance(tree, tuple)}
    if tree is None or isinstance(tree, (bool, int, float, str)):
        return tree
    raise TypeError(f"cannot store {type(tree).__name__} in a checkpoint")


def _key(k: Any) -> Any:
    if isinstance(k, (int, str)):
        return k
    raise TypeError(f"cannot store dict key of type {type(k).__name__}")


def unflatten_state(skel: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(skel, dict):
        if "__tensor__" in skel:
            return tensors[skel["__tensor__"]]
        if "__dict__" in skel:
            return {k: unflatten_state(v, tensors) for k, v in skel["__dict__"]}
        if "__list__" in skel:
            items = [unflatten_state(v, tensors) for v in skel["__list__"]]
            return tuple(items) if skel.get("tuple") else items
    return skel


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def save_checkpoint(run_dir: Path, step: int, models: dict[str, torch.nn.Module],
                    state: dict[str, Any]) -> Path:
    """Write ``checkpoints/step_{step:08d}`` atomically and return its path."""
    root = Path(run_dir) / CKPT_DIR
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step:08d}"
    tmp = root / f".tmp_step_{step:08d}_{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        weights = {f"{name}.{k}": v.detach().contiguous().cpu()
                   for name, m in models.items() for k, v in m.state_dict().items()}
        save_file(weights, str(tmp / "model.safetensors"))
        tensors: dict[str, torch.Tensor] = {}
        skeleton = flatten_state(state, "s", tensors)
        save_file(tensors, str(tmp / "state.safetensors"))
        (tmp / "state.json").write_text(json.dumps({"step": step, "state": skeleton}))
        for f in tmp.iterdir():
            _fsync_file(f)
        _fsync_dir(tmp)
        if final.exists():
            old = root / f".old_step_{step:08d}_{os.getpid()}"
            final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(final)
        _fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def list_checkpoints(run_dir: Path) -> list[Path]:
    root = Path(run_dir) / CKPT_DIR
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("step_"))


def latest_checkpoint(run_dir: Path) -> Path:
    ckpts = [p for p in list_checkpoints(run_dir) if (p / "state.json").is_file()]
    if not ckpts:
        raise CheckpointError(f"no checkpoint found in '{run_dir}/{CKPT_DIR}'. Train the run "
                              f"first (ganforge train ... --run-dir {run_dir}).")
    return ckpts[-1]


def load_checkpoint(path: Path) -> tuple[int, dict[str, torch.Tensor], dict[str, Any]]:
    """Return (step, weights, state). Raises CheckpointError on a missing or corrupt file."""
    path = Path(path)
    try:
        meta = json.loads((path / "state.json").read_text())
        weights = load_file(str(path / "model.safetensors"))
        tensors = load_file(str(path / "state.safetensors"))
        state = unflatten_state(meta["state"], tensors)
        return int(meta["step"]), weights, state
    except FileNotFoundError as exc:
        raise CheckpointError(f"checkpoint '{path}' is incomplete: {exc.filename} is missing.") from None
    except (SafetensorError, json.JSONDecodeError, KeyError, ValueError, OSError) as exc:
        raise CheckpointError(f"checkpoint '{path}' is corrupt or not a ganforge checkpoint "
                              f"({type(exc).__name__}: {exc}).") from None


def load_module_weights(module: torch.nn.Module, weights: dict[str, torch.Tensor], name: str,
                        source: Path) -> None:
    prefix = f"{name}."
    sub = {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}
    try:
        module.load_state_dict(sub, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0:3]
        raise CheckpointError(f"the {name} weights in '{source}' do not match the architecture "
                              f"in the config (another spec?): {' '.join(first)}") from None

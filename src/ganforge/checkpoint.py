"""Checkpoints: safetensors for every tensor, JSON for scalars; written atomically.

A checkpoint is a directory ``checkpoints/step_00001000/`` with
- ``model.safetensors``: ``generator.*`` and ``discriminator.*`` (and any extra modules) weights;
- ``state.safetensors``: optimizer tensors, RNG states, data-order permutation;
- ``state.json``: step, optimizer hyper-parameters, and the key layout of the tensors;
- ``manifest.json`` (written last): the size and sha256 of each of the files above.
It is written to a temporary directory, each file fsynced, then renamed into place, so a crash
leaves either the old set of checkpoints or the new one, never half of one. A checkpoint
*verifies* when its manifest exists and every file matches its size and sha256; resuming picks
the newest checkpoint that verifies and skips (with a warning) any that does not. After each
save only the newest ``keep`` checkpoints are kept. Nothing is ever
unpickled.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ganforge.errors import CheckpointError

CKPT_DIR = "checkpoints"
MANIFEST = "manifest.json"
FORMAT = "ganforge-checkpoint"
FORMAT_VERSION = 1

log = logging.getLogger("ganforge.checkpoint")


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


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _write_manifest(tmp: Path, step: int) -> None:
    files = {}
    for f in sorted(tmp.iterdir()):
        files[f.name] = {"bytes": f.stat().st_size, "sha256": sha256_file(f)}
    manifest = {"format": FORMAT, "version": FORMAT_VERSION, "step": step, "files": files}
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))


def clean_stale_temporaries(run_dir: Path) -> list[Path]:
    """Remove ``.tmp_step_*`` / ``.old_step_*`` directories left by a killed process."""
    root = Path(run_dir) / CKPT_DIR
    if not root.is_dir():
        return []
    stale = [p for p in root.iterdir()
             if p.is_dir() and (p.name.startswith(".tmp_step_") or p.name.startswith(".old_step_"))]
    for p in stale:
        shutil.rmtree(p, ignore_errors=True)
    return stale


def save_checkpoint(run_dir: Path, step: int, models: dict[str, torch.nn.Module],
                    state: dict[str, Any], keep: int | None = None) -> Path:
    """Write ``checkpoints/step_{step:08d}`` atomically and return its path.

    With ``keep``, older checkpoints beyond the newest ``keep`` are removed
    after the new one is safely in place. A full disk (or any OS error) while writing leaves the
    previous checkpoints untouched and raises CheckpointError.
    """
    root = Path(run_dir) / CKPT_DIR
    final = root / f"step_{step:08d}"
    tmp = root / f".tmp_step_{step:08d}_{os.getpid()}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        weights = {f"{name}.{k}": v.detach().contiguous().cpu()
                   for name, m in models.items() for k, v in m.state_dict().items()}
        save_file(weights, str(tmp / "model.safetensors"))
        tensors: dict[str, torch.Tensor] = {}
        skeleton = flatten_state(state, "s", tensors)
        save_file(tensors, str(tmp / "state.safetensors"))
        (tmp / "state.json").write_text(json.dumps({"step": step, "state": skeleton}))
        _write_manifest(tmp, step)
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
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise CheckpointError(_write_failure(exc, run_dir, step)) from None
    except SafetensorError as exc:  # safetensors reports I/O errors (ENOSPC...) as its own type
        shutil.rmtree(tmp, ignore_errors=True)
        text = str(exc)
        no_space = "os error 28" in text or "No space left" in text
        os_exc = OSError(errno.ENOSPC if no_space else errno.EIO, text)
        raise CheckpointError(_write_failure(os_exc, run_dir, step)) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if keep is not None:
        prune_checkpoints(run_dir, keep)
    return final


def _write_failure(exc: OSError, run_dir: Path, step: int) -> str:
    previous = [p.name for p in list_checkpoints(run_dir)]
    kept = (f"The previous checkpoint {previous[-1]} is intact" if previous
            else "No earlier checkpoint exists")
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        what = "the disk is full"
        fix = "Free some space (or set train.keep_checkpoints lower)"
    else:
        what = f"{exc.strerror or exc}" + (f" ({exc.filename})" if exc.filename else "")
        fix = "Fix the problem"
    return (f"could not write the checkpoint for step {step} in '{Path(run_dir) / CKPT_DIR}': "
            f"{what}. {kept}; nothing half-written was left behind. {fix}, then continue "
            f"with: ganforge train --resume {run_dir}")


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Checkpoint directories ``step_*`` in step order (verified or not)."""
    root = Path(run_dir) / CKPT_DIR
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("step_"))


def verify_checkpoint(path: Path, hashes: bool = True) -> None:
    """Raise CheckpointError unless ``path`` holds a complete checkpoint whose files match the
    sizes and (with ``hashes``) the sha256 sums of its manifest."""
    path = Path(path)
    if not path.is_dir():
        what = "a file" if path.is_file() else "missing"
        raise CheckpointError(f"checkpoint '{path}' is {what}; a checkpoint is a directory "
                              f"checkpoints/step_NNNNNNNN holding {MANIFEST}.")
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint '{path}' has no {MANIFEST} (its write did not "
                              f"finish, or it is not a ganforge checkpoint).") from None
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
        raise CheckpointError(f"checkpoint '{path}': {MANIFEST} is unreadable ({exc}).") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT \
            or not isinstance(manifest.get("files"), dict):
        raise CheckpointError(f"checkpoint '{path}': {MANIFEST} is not a ganforge manifest.")
    for name in ("model.safetensors", "state.safetensors", "state.json"):
        if name not in manifest["files"]:
            raise CheckpointError(f"checkpoint '{path}': the manifest does not list {name}.")
    for name, entry in manifest["files"].items():
        f = path / str(name)
        if not isinstance(entry, dict) or Path(str(name)).name != name:
            raise CheckpointError(f"checkpoint '{path}': bad manifest entry for {name!r}.")
        if not f.is_file():
            raise CheckpointError(f"checkpoint '{path}' is incomplete: {name} is missing.")
        size = f.stat().st_size
        if size != entry.get("bytes"):
            raise CheckpointError(f"checkpoint '{path}': {name} has {size} bytes, the manifest "
                                  f"says {entry.get('bytes')} (truncated or overwritten).")
        if hashes and sha256_file(f) != entry.get("sha256"):
            raise CheckpointError(f"checkpoint '{path}': {name} does not match its sha256 in "
                                  f"the manifest (the file is corrupt).")


def is_valid_checkpoint(path: Path, hashes: bool = True) -> bool:
    try:
        verify_checkpoint(path, hashes)
    except CheckpointError:
        return False
    return True


def latest_checkpoint(run_dir: Path) -> Path:
    """The newest checkpoint that verifies; corrupt or incomplete newer ones are skipped with a
    warning. Raises CheckpointError when none verifies."""
    ckpts = list_checkpoints(run_dir)
    problems = []
    for p in reversed(ckpts):
        try:
            verify_checkpoint(p)
        except CheckpointError as exc:
            log.warning("skipping checkpoint %s: %s", p.name, exc)
            problems.append(str(exc))
            continue
        return p
    if not ckpts:
        raise CheckpointError(f"no checkpoint found in '{run_dir}/{CKPT_DIR}'. Train the run "
                              f"first (ganforge train ... --run-dir {run_dir}).")
    raise CheckpointError(f"none of the {len(ckpts)} checkpoints in '{run_dir}/{CKPT_DIR}' "
                          f"verifies: {problems[0]} Start a new run, or restore a backup of "
                          f"the checkpoints folder.")


# --------------------------------------------------------------------------- retention
def prune_checkpoints(run_dir: Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` checkpoints that verify.

    Unverifiable checkpoints older than the newest kept one are removed too; newer unverifiable
    ones are left for a human to look at (they are skipped on resume).
    """
    if keep < 1:
        raise ValueError("keep must be >= 1")
    ckpts = list_checkpoints(run_dir)
    kept: list[Path] = []
    removed: list[Path] = []
    for p in reversed(ckpts):
        if len(kept) < keep:
            if is_valid_checkpoint(p, hashes=False):
                kept.append(p)
            continue
        shutil.rmtree(p, ignore_errors=True)
        removed.append(p)
    return removed


def _owned(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Fresh, aligned copies. Tensors read from a file can start at any byte offset; CPU kernels
    take a different (vectorised vs scalar) path on unaligned memory and may round differently,
    which would break bit-exact resume of optimizer states."""
    return {k: v.clone(memory_format=torch.contiguous_format) for k, v in tensors.items()}


def load_checkpoint(path: Path, verify: bool = True
                    ) -> tuple[int, dict[str, torch.Tensor], dict[str, Any]]:
    """Return (step, weights, state). Raises CheckpointError on a missing or corrupt file.

    With ``verify`` the manifest's sha256 sums are checked first; without it (a checkpoint
    written before manifests existed) the files are still parsed only as JSON and safetensors.
    """
    path = Path(path)
    if verify:
        verify_checkpoint(path)
    elif not path.is_dir():
        raise CheckpointError(f"checkpoint '{path}' is not a directory; a checkpoint is a "
                              f"directory checkpoints/step_NNNNNNNN.")
    try:
        meta = json.loads((path / "state.json").read_text())
        weights = _owned(load_file(str(path / "model.safetensors")))
        tensors = _owned(load_file(str(path / "state.safetensors")))
        state = unflatten_state(meta["state"], tensors)
        return int(meta["step"]), weights, state
    except FileNotFoundError as exc:
        raise CheckpointError(f"checkpoint '{path}' is incomplete: {exc.filename} is missing.") from None
    except (SafetensorError, json.JSONDecodeError, UnicodeDecodeError, KeyError, ValueError,
            TypeError, OSError) as exc:
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

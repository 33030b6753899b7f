"""Atomic file writes: write a temporary file next to the target, then rename it into place.

A reader never sees a half-written file at the final path: the data goes to a hidden temporary
file in the target's directory (same file system, so the rename is atomic), named with the
writing process's id so concurrent processes do not collide. On an error the temporary file is
removed and the target, if it existed, is left as it was.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text", "temp_path_for"]


def temp_path_for(path: str | Path, suffix: str = "") -> Path:
    """The temporary path a write of ``path`` by this process uses: ``.NAME.PID.tmpSUFFIX`` in
    the same directory. ``suffix`` keeps writers that add an extension happy (``np.save`` adds
    ``.npy`` and ``np.savez`` ``.npz`` to a name without it)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.tmp{suffix}")


@contextmanager
def atomic_path(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; write it inside the block. On success it is
    renamed to ``path``; on an exception it is removed and the exception propagates."""
    path = Path(path)
    tmp = temp_path_for(path, suffix)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str, encoding: str | None = None) -> Path:
    """Write ``text`` to ``path`` atomically (``Path.write_text`` semantics); return the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding=encoding)
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; return the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path

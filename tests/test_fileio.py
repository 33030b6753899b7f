"""ganforge.fileio: atomic writes (temporary file next to the target, then a rename)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from ganforge.fileio import atomic_path, atomic_write_bytes, atomic_write_text, temp_path_for


def test_content_lands(tmp_path: Path) -> None:
    text = tmp_path / "a.txt"
    assert atomic_write_text(text, "héllo\n", encoding="utf-8") == text
    assert text.read_text(encoding="utf-8") == "héllo\n"
    atomic_write_text(str(text), "again")  # str paths, and overwriting
    assert text.read_text() == "again"
    data = tmp_path / "b.bin"
    assert atomic_write_bytes(data, b"\x00\x01\xff") == data
    assert data.read_bytes() == b"\x00\x01\xff"
    arr = tmp_path / "c.npy"
    with atomic_path(arr, suffix=".npy") as tmp:
        np.save(tmp, np.arange(3))  # np.save keeps a name that ends in .npy
    np.testing.assert_array_equal(np.load(arr), np.arange(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.bin", "c.npy"]


def test_failed_write_leaves_original_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "t.yaml"
    target.write_text("original")
    with pytest.raises(RuntimeError, match="boom"), atomic_path(target) as tmp:
        tmp.write_text("half written")
        assert target.read_text() != "half written"  # never at the final path
        raise RuntimeError("boom")
    assert target.read_text() == "original"
    assert [p.name for p in tmp_path.iterdir()] == ["t.yaml"]


def test_failed_write_of_new_file_leaves_nothing(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: Path, data: bytes) -> int:
        with open(self, "wb") as f:
            f.write(data[:1])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", broken)
    with pytest.raises(OSError, match="No space left"):
        atomic_write_bytes(tmp_path / "new.wav", b"RIFF....")
    assert list(tmp_path.iterdir()) == []


def test_failed_rename_removes_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "t.txt"
    target.write_text("original")

    def no_replace(src: object, dst: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", no_replace)
    with pytest.raises(PermissionError):
        atomic_write_text(target, "new")
    assert target.read_text() == "original"
    assert [p.name for p in tmp_path.iterdir()] == ["t.txt"]


def test_temp_name_is_hidden_per_process_and_in_the_same_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "sub" / "best.yaml"
    names = set()
    for pid in (101, 102, 1101, 10, 11):
        monkeypatch.setattr(os, "getpid", lambda pid=pid: pid)
        tmp = temp_path_for(target)
        assert tmp.parent == target.parent
        assert tmp.name.startswith(".") and str(pid) in tmp.name
        assert tmp != target
        names.add(tmp.name)
    assert len(names) == 5  # no two processes share a temporary file
    monkeypatch.setattr(os, "getpid", lambda: 7)
    assert temp_path_for(target, ".npz").name.endswith(".npz")
    assert temp_path_for(target, ".npz") != temp_path_for(target)

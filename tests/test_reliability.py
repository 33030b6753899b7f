"""Reliability: crash-safe checkpoints, exact resume after SIGKILL/SIGTERM, divergence rollback,
full disk, and hostile input (configs, data files, checkpoints, CLI flags)."""

from __future__ import annotations

import copy
import errno
import hashlib
import json
import logging
import math
import os
import pickle
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file

import ganforge
from ganforge import checkpoint as ckpt
from ganforge import cli
from ganforge.api import load_config
from ganforge.config import raw_config, validate_config
from ganforge.data import load_dataset
from ganforge.data.registry import DATASETS
from ganforge.errors import CheckpointError, DataError, GanforgeError
from ganforge.monitor.log import read_log
from ganforge.training.trainer import Trainer, TrainingDiverged

SRC = Path(__file__).resolve().parents[1] / "src"

# A tiny gan-ring8 run: 2,000 points, batch 64 (31 batches per epoch, so runs cross epochs).
RING = ["data.options.n=2000", "train.batch_size=64", "monitor.log_every=10",
        "monitor.sample_every=100000", "monitor.grid_size=16", "monitor.progress=false",
        "device=cpu", "train.deterministic=true"]


def ring(*extra: str) -> list[str]:
    return [*RING, *extra]


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def weights(step_dir: Path) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in load_file(str(step_dir / "model.safetensors")).items()}


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k, v in a.items():
        assert torch.equal(v, b[k]), f"{k} differs"


def steps_of(run_dir: Path) -> list[int]:
    return [int(p.name.split("_")[1]) for p in ckpt.list_checkpoints(run_dir)]


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = f"{SRC}{os.pathsep}{env.get('PYTHONPATH', '')}"
    env["OMP_NUM_THREADS"] = "1"
    env["MKL_NUM_THREADS"] = "1"
    return env


def cli_cmd(*args: str) -> list[str]:
    code = ("import sys, torch; torch.set_num_threads(1); from ganforge.cli import main; "
            "sys.exit(main())")
    return [sys.executable, "-c", code, *args]


def sets(overrides: list[str]) -> list[str]:
    return [a for o in overrides for a in ("--set", o)]


# ------------------------------------------------------------------------------ checkpoints
def test_manifest_hashes_and_keep_last_k(tmp_path):
    run = tmp_path / "run"
    ganforge.train("gan-ring8", overrides=ring("train.steps=60", "train.checkpoint_every=10",
                                               "train.keep_checkpoints=3"), run_dir=run)
    assert steps_of(run) == [40, 50, 60]
    for p in ckpt.list_checkpoints(run):
        manifest = json.loads((p / "manifest.json").read_text())
        assert manifest["step"] == int(p.name.split("_")[1])
        assert set(manifest["files"]) == {"model.safetensors", "state.safetensors", "state.json"}
        for name, entry in manifest["files"].items():
            data = (p / name).read_bytes()
            assert entry["bytes"] == len(data)
            assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        ckpt.verify_checkpoint(p)
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]


def test_corrupt_newest_checkpoints_are_skipped_and_resume_is_exact(tmp_path, caplog):
    run = tmp_path / "run"
    over = ring("train.steps=60", "train.checkpoint_every=10", "train.keep_checkpoints=5")
    ganforge.train("gan-ring8", overrides=over, run_dir=run)
    reference = weights(run / "checkpoints" / "step_00000060")
    # step 60: one flipped byte; step 50: truncated state file.
    f60 = run / "checkpoints" / "step_00000060" / "model.safetensors"
    data = bytearray(f60.read_bytes())
    data[len(data) // 2] ^= 0xFF
    f60.write_bytes(bytes(data))
    f50 = run / "checkpoints" / "step_00000050" / "state.safetensors"
    f50.write_bytes(f50.read_bytes()[:100])
    with caplog.at_level(logging.WARNING, logger="ganforge.checkpoint"):
        assert ckpt.latest_checkpoint(run).name == "step_00000040"
    skipped = [r.getMessage() for r in caplog.records if "skipping checkpoint" in r.getMessage()]
    assert len(skipped) == 2
    assert "sha256" in skipped[0] and "step_00000060" in skipped[0]
    assert "bytes" in skipped[1] and "step_00000050" in skipped[1]
    with pytest.raises(CheckpointError, match="sha256"):
        ckpt.load_checkpoint(f60.parent)
    # resume: restarts at 40, recomputes 41..60 and lands on the same weights
    shutil.rmtree(f60.parent)
    shutil.rmtree(f50.parent)
    r = ganforge.train(resume=run)
    assert r.step == 60
    assert_same_weights(weights(run / "checkpoints" / "step_00000060"), reference)
    steps = [rec["step"] for rec in read_log(run / "metrics.jsonl") if rec["kind"] == "train"]
    assert steps == list(range(10, 61, 10))  # no duplicated lines after the resume


def test_bad_checkpoints_give_clear_errors_and_are_never_unpickled(tmp_path):
    run = tmp_path / "run"
    ganforge.train("gan-ring8", overrides=ring("train.steps=10", "train.checkpoint_every=10"),
                   run_dir=run)
    good = run / "checkpoints" / "step_00000010"

    def forge(name: str, payload: bytes) -> Path:
        """A copy of the checkpoint whose model file is replaced and whose manifest is
        rewritten to match, so only the file parser stands between us and the payload."""
        bad = tmp_path / name
        shutil.copytree(good, bad)
        (bad / "model.safetensors").write_bytes(payload)
        manifest = json.loads((bad / "manifest.json").read_text())
        manifest["files"]["model.safetensors"] = {
            "bytes": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}
        (bad / "manifest.json").write_text(json.dumps(manifest))
        return bad

    sentinel = tmp_path / "UNPICKLED"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (sentinel,))

    for payload in (pickle.dumps({"generator.layers.0.weight": Evil()}),
                    b"\x00" * 64, b"not a safetensors file at all",
                    (good / "model.safetensors").read_bytes()[:500]):
        bad = forge("bad", payload)
        with pytest.raises(CheckpointError, match="corrupt or not a ganforge checkpoint"):
            ganforge.load(run, checkpoint=bad)
        shutil.rmtree(bad)
    assert not sentinel.exists()
    # a plain file instead of a checkpoint directory
    with pytest.raises(CheckpointError, match="a file"):
        ganforge.load(run, checkpoint=good / "model.safetensors")
    # truncated (manifest mismatch)
    trunc = tmp_path / "trunc"
    shutil.copytree(good, trunc)
    (trunc / "model.safetensors").write_bytes((good / "model.safetensors").read_bytes()[:-7])
    with pytest.raises(CheckpointError, match="truncated"):
        ganforge.load(run, checkpoint=trunc)
    # no manifest
    (trunc / "manifest.json").unlink()
    with pytest.raises(CheckpointError, match="manifest"):
        ganforge.load(run, checkpoint=trunc)
    # a checkpoint of another architecture
    other = tmp_path / "other"
    ganforge.train("gan-ring8", overrides=ring("train.steps=10", "train.checkpoint_every=10",
                                               "latent.dim=3"),
                   run_dir=other)
    with pytest.raises(CheckpointError, match="do not match the architecture"):
        ganforge.load(run, checkpoint=other / "checkpoints" / "step_00000010")


# ------------------------------------------------------------------------ kill and resume
KILL_RUN = ring("train.steps=200", "train.checkpoint_every=10", "train.keep_checkpoints=2",
                "seed=3")


def _start(run: Path, *resume: str) -> subprocess.Popen:
    return subprocess.Popen(cli_cmd("train", "gan-ring8", *sets(KILL_RUN), "--run-dir", str(run),
                                    *resume),
                            env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for_checkpoint(proc: subprocess.Popen, run: Path, after: int = 0,
                         timeout: float = 120, poll: float = 0.02) -> None:
    t0 = time.time()
    while not steps_of(run) or steps_of(run)[-1] <= after:
        assert proc.poll() is None, proc.communicate()[1].decode()
        assert time.time() - t0 < timeout
        time.sleep(poll)


@pytest.mark.slow
def test_sigterm_then_sigkill_at_random_moment_then_resume_gives_same_weights(tmp_path):
    """1) SIGTERM: the step finishes, a checkpoint is written, exit status 143.
    2) ``--resume auto`` continues; SIGKILL at a random moment (seeded), possibly mid-write.
    3) ``--resume auto`` again finishes the run: its weights equal an uninterrupted run's."""
    run = tmp_path / "run"
    proc = _start(run)
    _wait_for_checkpoint(proc, run)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    err = err.decode()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "SIGTERM received" in err and "Traceback" not in err
    last = ckpt.list_checkpoints(run)[-1]
    ckpt.verify_checkpoint(last)
    stopped = int(last.name.split("_")[1])
    assert f"stopped after step {stopped}" in err and 10 <= stopped < 200
    assert [r["step"] for r in read_log(run / "metrics.jsonl")][-1] <= stopped

    # The kill is tied to a training event, not to a sleep (a fast machine would finish the
    # run first): SIGKILL the moment the checkpoint of a seeded step after the resume appears,
    # while the run goes on stepping and writing (possibly mid-write of the next files).
    target = stopped + 10 * random.Random(1234).randint(1, 4)
    proc = _start(run, "--resume", "auto")
    _wait_for_checkpoint(proc, run, after=target - 1, poll=0.002)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    killed_at = steps_of(run)[-1]
    assert proc.returncode == -signal.SIGKILL
    assert target <= killed_at < 200, "the run finished before the kill"

    res = subprocess.run(cli_cmd("train", "--resume", "auto", "--run-dir", str(run),
                                 "gan-ring8", *sets(KILL_RUN)),
                         env=cli_env(), capture_output=True, timeout=300, check=False)
    assert res.returncode == 0, res.stderr.decode()
    ref = tmp_path / "ref"
    ganforge.train("gan-ring8", overrides=KILL_RUN, run_dir=ref)  # in one go, in this process
    assert_same_weights(weights(run / "checkpoints" / "step_00000200"),
                        weights(ref / "checkpoints" / "step_00000200"))
    steps = [r["step"] for r in read_log(run / "metrics.jsonl") if r["kind"] == "train"]
    assert steps == list(range(10, 201, 10))


def test_resume_auto_starts_fresh_then_continues(tmp_path):
    run = tmp_path / "run"
    over = ring("train.steps=30", "train.checkpoint_every=10")
    # nothing there yet: starts the run
    ganforge.train("gan-ring8", overrides=over, run_dir=run, resume="auto")
    ref = weights(run / "checkpoints" / "step_00000030")
    shutil.rmtree(run / "checkpoints" / "step_00000030")
    shutil.rmtree(run / "checkpoints" / "step_00000020")
    (run / "checkpoints" / ".tmp_step_00000020_999").mkdir()  # a killed write
    r = ganforge.train("gan-ring8", overrides=over, run_dir=run, resume="auto")
    assert r.step == 30
    assert_same_weights(weights(run / "checkpoints" / "step_00000030"), ref)
    assert not (run / "checkpoints" / ".tmp_step_00000020_999").exists()


# -------------------------------------------------------------------------------- divergence
NAN_RUN = ring("train.steps=40", "train.checkpoint_every=10", "optim.g.name=sgd",
               "optim.d.name=sgd")


def test_rollback_on_nan_lowers_lr_and_matches_a_run_started_with_that_lr(tmp_path):
    run = tmp_path / "run"
    r = ganforge.train("gan-ring8", run_dir=run, overrides=[
        *NAN_RUN, "optim.g.lr=100", "optim.d.lr=100", "train.on_nan=rollback",
        "train.nan_lr_factor=0.001", "train.max_rollbacks=2"])
    assert r.step == 40
    alarms = [x for x in read_log(run / "metrics.jsonl") if x["kind"] == "alarm"]
    assert len(alarms) == 1
    assert alarms[0]["alarm"] == "nan_rollback" and alarms[0]["step"] == 0
    # on the CPU the loss is checked every step: caught where it happened, not at the log step
    assert 1 <= alarms[0]["diverged_at"] < 10
    assert alarms[0]["lr_factor"] == pytest.approx(0.001)
    assert "not finite" in alarms[0]["message"]
    final = weights(run / "checkpoints" / "step_00000040")
    assert all(torch.isfinite(v).all() for v in final.values())
    state = json.loads((run / "checkpoints" / "step_00000040" / "state.json").read_text())
    assert "rollbacks" in json.dumps(state)
    # reference computed another way: a fresh run with lr = 100 * 0.001 from the start
    ref = tmp_path / "ref"
    ganforge.train("gan-ring8", run_dir=ref, overrides=[
        *NAN_RUN, f"optim.g.lr={100 * 0.001!r}", f"optim.d.lr={100 * 0.001!r}",
        "train.on_nan=rollback"])
    assert_same_weights(final, weights(ref / "checkpoints" / "step_00000040"))


def test_rollbacks_are_bounded_and_stop_mode_stops(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(TrainingDiverged, match="after 2 rollback"):
        ganforge.train("gan-ring8", run_dir=run, overrides=[
            *NAN_RUN, "optim.g.lr=1e6", "optim.d.lr=1e6", "train.on_nan=rollback",
            "train.nan_lr_factor=0.5", "train.max_rollbacks=2"])
    alarms = [x for x in read_log(run / "metrics.jsonl")
              if x["kind"] == "alarm" and x["alarm"] == "nan_rollback"]
    assert [a["lr_factor"] for a in alarms] == [0.5, 0.25]
    stop = tmp_path / "stop"
    with pytest.raises(TrainingDiverged, match="No checkpoint had been written yet") as info:
        ganforge.train("gan-ring8", run_dir=stop, overrides=[
            *NAN_RUN, "optim.g.lr=1e6", "optim.d.lr=1e6"])
    at = int(str(info.value).split("diverged at step ")[1].split(":")[0])
    assert 1 <= at < 10 and "train.on_nan=rollback" in str(info.value)
    assert steps_of(stop) == []  # the non-finite state was never checkpointed


# ---------------------------------------------------------------------------------- disk full
def test_disk_full_while_checkpointing_keeps_previous(tmp_path, monkeypatch):
    run = tmp_path / "run"
    real = ckpt.save_file
    calls = {"n": 0}

    def filling_writer(tensors, filename, metadata=None):
        calls["n"] += 1
        if calls["n"] == 5:  # the model file of the 3rd checkpoint: half written, then ENOSPC
            Path(filename).write_bytes(b"\x00" * 1000)
            raise OSError(errno.ENOSPC, "No space left on device", filename)
        return real(tensors, filename, metadata)

    monkeypatch.setattr(ckpt, "save_file", filling_writer)
    with pytest.raises(CheckpointError, match="disk is full") as info:
        ganforge.train("gan-ring8", run_dir=run,
                       overrides=ring("train.steps=40", "train.checkpoint_every=10"))
    assert "step_00000020 is intact" in str(info.value)
    assert steps_of(run) == [10, 20]
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]
    ckpt.verify_checkpoint(run / "checkpoints" / "step_00000020")
    monkeypatch.setattr(ckpt, "save_file", real)
    ref = tmp_path / "ref"
    ganforge.train("gan-ring8", run_dir=ref,
                   overrides=ring("train.steps=40", "train.checkpoint_every=10"))
    ganforge.train(resume=run)
    assert_same_weights(weights(run / "checkpoints" / "step_00000040"),
                        weights(ref / "checkpoints" / "step_00000040"))


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir()
    if shutil.which("mount") is None:
        return False
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                         capture_output=True, check=False)
    return res.returncode == 0


def test_disk_full_on_a_real_small_tmpfs(tmp_path):
    mnt = tmp_path / "mnt"
    if not _mount_tmpfs(mnt, "16m"):
        pytest.skip("cannot mount a tmpfs here (needs root); the patched-writer test covers it")
    try:
        run = mnt / "run"

        class Ballast:
            def on_step(self, trainer, stats):
                if trainer.step == 15:  # fill the disk, leaving 48 KiB for the log
                    free = os.statvfs(mnt).f_bavail * os.statvfs(mnt).f_frsize
                    (mnt / "ballast").write_bytes(b"\x01" * max(free - 48 * 1024, 0))

            def on_log(self, trainer, record):
                pass

            def on_end(self, trainer):
                pass

        res = cli_like_train(run, Ballast())
        assert isinstance(res, CheckpointError) and "disk is full" in str(res)
        assert steps_of(run) == [10]
        ckpt.verify_checkpoint(run / "checkpoints" / "step_00000010")
        assert not [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True, check=False)


def cli_like_train(run: Path, callback) -> Exception | None:
    try:
        ganforge.train("gan-ring8", run_dir=run, callbacks=[callback], overrides=ring(
            "train.steps=40", "train.checkpoint_every=10", "data.options.n=500"))
    except GanforgeError as exc:
        return exc
    return None


# ------------------------------------------------------------------------- config fuzzing
def _bases() -> list[dict]:
    a = raw_config("gan-ring8")
    a["data"]["options"] = {"n": 256}
    a["train"].update(batch_size=32, steps=3)
    a["monitor"]["grid_size"] = 8
    b = raw_config("dcgan-mnist")
    b["data"] = {"source": "digits", "image_size": [1, 28, 28]}
    b["train"]["batch_size"] = 4
    b["monitor"]["grid_size"] = 4
    b["generator"]["layers"][0] = {"dense": {"units": 8 * 7 * 7, "bias": False}}
    b["generator"]["layers"][3] = {"reshape": {"shape": [8, 7, 7]}}
    b["generator"]["layers"][4]["conv_transpose2d"]["filters"] = 8
    b["generator"]["layers"][7]["conv_transpose2d"]["filters"] = 8
    b["discriminator"]["layers"][0]["conv2d"]["filters"] = 8
    b["discriminator"]["layers"][3]["conv2d"]["filters"] = 8
    return [a, b]


BASES = _bases()
ODD = [None, -1, 0, 1, 2, 3, 7, 0.5, -2.5, 1e30, float("nan"), float("inf"), True, "", "abc",
       "grid25", "folder:/nonexistent", "npy:/nonexistent.npy", "relu", [], [0], [1, 28, 28],
       [3, 2, 2], {}, {"units": 2}, {"dense": {"units": -1}}, {"conv2d": {"filters": 0}},
       2**70, "1e-3", [0.5, 2.0]]


def _paths(node, prefix=()):
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


@st.composite
def mutated_configs(draw):
    raw = copy.deepcopy(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(raw)))
        parent = raw
        for k in path[:-1]:
            parent = parent[k]
        op = draw(st.sampled_from(["set", "set", "delete", "extra"]))
        if op == "set":
            parent[path[-1]] = copy.deepcopy(draw(st.sampled_from(ODD)))
        elif op == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.sampled_from(["lr", "epoch", "zzz", "layers", "type"]))] = \
                copy.deepcopy(draw(st.sampled_from(ODD)))
    return raw


def _small_mnist(split: str = "train"):
    return load_dataset("digits", split=split, image_size=(1, 28, 28))


def _fuzz_one(raw, run: Path) -> str:
    """Either rejects ``raw`` with a GanforgeError before training ('invalid') or builds it and
    takes a finite-or-guarded training step ('trained'); no raw exception either way."""
    try:
        cfg = validate_config(raw)
    except GanforgeError as exc:
        assert str(exc).strip() and "Traceback" not in str(exc)
        return "invalid"
    try:
        # a deleted data.source falls back to mnist (20 s to parse on a busy 2-core machine):
        # stand in real digits of the same shape
        with mock.patch.dict(DATASETS, {"mnist": _small_mnist}):
            t = Trainer(cfg, run)
    except GanforgeError as exc:
        assert str(exc).strip()
        assert steps_of(run) == [] and not (run / "metrics.jsonl").exists()
        return "invalid"
    t.task.train_step(t.batcher.next)
    return "trained"


def test_fuzzed_configs_fail_only_with_ganforge_errors(tmp_path_factory):
    """Every mutated config is either rejected with a GanforgeError (before training starts) or
    builds and takes a finite-or-guarded training step. The counts of both outcomes are checked
    in the same test (no state shared with other tests), guarding against a strategy that only
    ever produces one kind of config."""
    seen = {"invalid": 0, "trained": 0}

    @settings(max_examples=150, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(raw=mutated_configs())
    def fuzz(raw):
        seen[_fuzz_one(raw, tmp_path_factory.mktemp("fuzz"))] += 1

    fuzz()
    assert seen["invalid"] >= 50 and seen["trained"] >= 5, seen


@pytest.mark.parametrize("override, expect", [
    ("optim.g.betas=[0.5, 1.5]", "betas[1] must be in [0, 1)"),
    ("optim.d.lr=.inf", "lr must be a finite number"),
    ("train.epochs=.inf", "epochs must be a finite number"),
    ("seed=-1", "seed"),
    ("train.on_nan=retry", "train.on_nan"),
    ("train.keep_checkpoints=0", "train.keep_checkpoints"),
    ("generator.zzz=1", "unknown key"),
])
def test_specific_bad_configs(override, expect):
    over = [override, "train.steps=null"] if override.startswith("train.epochs") else [override]
    with pytest.raises(GanforgeError) as info:
        load_config("gan-ring8", over)
    assert expect in str(info.value)


# ------------------------------------------------------------------------------- data files
def _png(path: Path, size, mode="RGB", color=0) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path)


def test_image_folder_hostile_inputs(tmp_path, caplog):
    from PIL import Image

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    with pytest.raises(DataError, match="holds no images"):
        load_dataset(f"folder:{empty}", image_size=[1, 8, 8])
    # mixed sizes and modes: RGB 8x8, grayscale 16x16, RGBA with alpha 0 (-> white), palette
    mixed = tmp_path / "mixed"
    _png(mixed / "a.png", (8, 8), "RGB", (255, 0, 0))
    _png(mixed / "b.png", (16, 16), "L", 100)
    _png(mixed / "c.png", (8, 8), "RGBA", (0, 0, 0, 0))
    _png(mixed / "sub" / "d.png", (4, 6), "P", 3)
    with caplog.at_level(logging.INFO, logger="ganforge.data"):
        d = load_dataset(f"folder:{mixed}", image_size=[3, 8, 8])
    assert d.x.shape == (4, 3, 8, 8)
    assert d.info["resized"] == 2 and d.info["converted"] == {"L": 1, "P": 1, "RGBA": 1}
    assert any("resized 2 of 4" in r.getMessage() for r in caplog.records)
    red = torch.tensor([1.0, -1.0, -1.0]).view(3, 1, 1).expand(3, 8, 8)
    assert torch.equal(d.x[0], red)
    assert torch.allclose(d.x[1], torch.full((3, 8, 8), 100 / 127.5 - 1), atol=1e-6)
    assert torch.allclose(d.x[2], torch.ones(3, 8, 8), atol=1e-6)  # transparent -> white
    expected_p = np.asarray(Image.open(mixed / "sub" / "d.png").convert("RGB")
                            .resize((8, 8), Image.BICUBIC), dtype=np.float32)
    assert torch.allclose(d.x[3], torch.from_numpy(expected_p).permute(2, 0, 1) / 127.5 - 1)
    # corrupt PNGs: one truncated, one garbage with a .png name
    good = (mixed / "a.png").read_bytes()
    (mixed / "trunc.png").write_bytes(good[: len(good) // 2])
    (mixed / "junk.png").write_bytes(b"this is not a png")
    with pytest.raises(DataError, match="cannot read 2 of 6 images") as info:
        load_dataset(f"folder:{mixed}", image_size=[3, 8, 8])
    assert "trunc.png" in str(info.value) and "junk.png" in str(info.value)
    assert "skip_corrupt" in str(info.value)
    with caplog.at_level(logging.WARNING, logger="ganforge.data"):
        d = load_dataset(f"folder:{mixed}", image_size=[3, 8, 8], skip_corrupt=True)
    assert d.x.shape[0] == 4 and len(d.info["skipped"]) == 2
    assert any("skipping 2 unreadable" in r.getMessage() for r in caplog.records)
    for bad_size in ([8, 8], [3, 0, 8], [4, 8, 8], "abc", [3, 8.5, 8]):
        with pytest.raises(DataError, match="image_size"):
            load_dataset(f"folder:{mixed}", image_size=bad_size, skip_corrupt=True)


def test_npy_hostile_inputs(tmp_path):
    def npy(name, arr):
        p = tmp_path / name
        np.save(p, arr, allow_pickle=True)
        return f"npy:{p}"

    nan = np.ones((10, 3), np.float32)
    nan[4, 1] = np.nan
    cases = [
        (npy("nan.npy", nan), "NaN or infinite"),
        (npy("obj.npy", np.array([{"a": 1}, None], dtype=object)), "cannot read"),
        (npy("vec.npy", np.ones(5)), "expected \\(N, features...\\)"),
        (npy("empty.npy", np.ones((0, 3))), "N > 0"),
        (npy("zero.npy", np.ones((4, 0))), "N > 0"),
        (npy("complex.npy", np.ones((4, 2), np.complex64)), "real numbers"),
        (npy("bool.npy", np.ones((4, 2), bool)), "real numbers"),
        (npy("str.npy", np.array([["a", "b"]])), "real numbers"),
    ]
    np.savez(tmp_path / "arch.npz", x=np.ones((3, 2)))
    (tmp_path / "arch.npy").write_bytes((tmp_path / "arch.npz").read_bytes())
    (tmp_path / "blank.npy").write_bytes(b"")
    cases += [(f"npy:{tmp_path / 'arch.npy'}", ".npz archive"),
              (f"npy:{tmp_path / 'blank.npy'}", "cannot read")]
    for source, msg in cases:
        with pytest.raises(DataError, match=msg):
            load_dataset(source)
    wrong = npy("img.npy", np.zeros((4, 1, 8, 8), np.uint8))
    with pytest.raises(DataError, match="data.image_size is \\[1, 28, 28\\]"):
        load_dataset(wrong, image_size=[1, 28, 28])
    ok = load_dataset(wrong, image_size=[1, 8, 8])
    assert ok.x.shape == (4, 1, 8, 8) and float(ok.x.min()) == -1.0
    with pytest.raises(DataError, match="positive integer"):
        load_dataset("ring8", n=-5)


def test_training_on_a_broken_folder_starts_nothing(tmp_path):
    folder = tmp_path / "imgs"
    (folder).mkdir()
    (folder / "x.png").write_bytes(b"garbage")
    run = tmp_path / "run"
    code = cli.main(["train", "dcgan-mnist", "--set", f"data.source=folder:{folder}",
                     "--set", "data.image_size=[1,28,28]", "--run-dir", str(run)])
    assert code == 3  # a data error
    assert not run.exists() or not any(run.iterdir())


# ---------------------------------------------------------------------------------- CLI flags
@pytest.mark.parametrize("argv, expect, status", [
    (["train", "gan-ring8", "--no-such-flag"], "unrecognized arguments", 2),
    (["sample", "x", "--out", "a.png", "-n", "abc"], "invalid int value", 2),
    (["sample", "/nonexistent/run", "--out", "a.png"], "does not exist", 4),  # no run there
    (["train", "--resume", "/nonexistent/run"], "does not exist", 4),
    (["train", "gan-ring8", "--resume", "auto"], "--resume auto needs --run-dir", 2),
    (["train", "gan-ring8", "--set", "train.stepz=3"], "Did you mean 'steps'", 2),
    (["train", "gan-ring8", "--set", "nonsense"], "must look like section.key=value", 2),
    (["train", "no-such-preset"], "unknown preset", 2),
    (["sample", "RUN", "--out", "samples.txt"], "use a .png, .npy or .csv", 2),
])
def test_cli_flag_errors_are_one_clear_line(argv, expect, status, capsys, tmp_path):
    if "RUN" in argv:
        run = tmp_path / "run"
        ganforge.train("gan-ring8", run_dir=run, overrides=ring("train.steps=1"))
        argv = [str(run) if a == "RUN" else a for a in argv]
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # argparse
        code = exc.code
    err = capsys.readouterr().err
    assert code == status
    assert expect in err and "Traceback" not in err


def test_cli_run_dir_that_is_a_file(tmp_path, capsys):
    f = tmp_path / "afile"
    f.write_text("x")
    assert cli.main(["train", "gan-ring8", "--run-dir", str(f), "--no-progress"]) == 2
    assert "is a file" in capsys.readouterr().err
    assert f.read_text() == "x"


def test_log_has_no_nan_lines_after_rollback(tmp_path):
    """The train line of the diverged window is dropped with the rollback; JSON stays valid."""
    run = tmp_path / "run"
    ganforge.train("gan-ring8", run_dir=run, overrides=[
        *NAN_RUN, "optim.g.lr=100", "optim.d.lr=100", "train.on_nan=rollback",
        "train.nan_lr_factor=0.001"])
    recs = read_log(run / "metrics.jsonl")
    train = [r for r in recs if r["kind"] == "train"]
    assert [r["step"] for r in train] == [10, 20, 30, 40]
    assert all(isinstance(r["d_loss"], float) and math.isfinite(r["d_loss"]) for r in train)


CONV_RUN = ["data.source=digits", "data.image_size=[1,28,28]", "train.batch_size=16",
            "train.epochs=null",
            "train.steps=60", "train.checkpoint_every=5", "train.keep_checkpoints=2",
            "monitor.log_every=5", "monitor.sample_every=100000", "monitor.grid_size=4",
            "monitor.progress=false", "device=cpu", "train.deterministic=true"]


def _conv_overrides() -> list[str]:
    """dcgan-mnist's layer stack (batch norm, dropout) at 1/8 of the width, on real digits."""
    over = list(CONV_RUN)
    g = raw_config("dcgan-mnist")["generator"]["layers"]
    g[0] = {"dense": {"units": 32 * 7 * 7, "bias": False}}
    g[3] = {"reshape": {"shape": [32, 7, 7]}}
    g[4]["conv_transpose2d"]["filters"] = 16
    g[7]["conv_transpose2d"]["filters"] = 8
    d = raw_config("dcgan-mnist")["discriminator"]["layers"]
    d[0]["conv2d"]["filters"] = 8
    d[3]["conv2d"]["filters"] = 16
    return [*over, f"generator.layers={json.dumps(g)}", f"discriminator.layers={json.dumps(d)}"]


@pytest.mark.slow
def test_sigkill_resume_exact_for_a_conv_gan_with_batchnorm_and_dropout(tmp_path):
    """Dropout draws from the global RNG and batch norm carries running stats: both must be
    restored for the resumed conv run to equal the uninterrupted one."""
    over = _conv_overrides()
    run = tmp_path / "run"
    cmd = cli_cmd("train", "dcgan-mnist", *sets(over), "--run-dir", str(run), "--resume", "auto")
    rng = random.Random(99)
    # two kills at random moments, then a clean finish. The moments are set in steps (a
    # checkpoint at or past a random target, then a few ms): a delay in seconds let a fast
    # host finish all 60 steps before the second kill.
    for target in (rng.randint(10, 25), rng.randint(30, 45)):
        proc = subprocess.Popen(cmd, env=cli_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        _wait_for_checkpoint(proc, run, after=target - 1, timeout=300, poll=0.002)
        time.sleep(rng.uniform(0.0, 0.05))
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        assert proc.returncode == -signal.SIGKILL
    assert steps_of(run)[-1] < 60
    res = subprocess.run(cmd, env=cli_env(), capture_output=True, timeout=600, check=False)
    assert res.returncode == 0, res.stderr.decode()
    ref = tmp_path / "ref"
    ganforge.train("dcgan-mnist", overrides=over, run_dir=ref)
    final = weights(run / "checkpoints" / "step_00000060")
    assert any("running_mean" in k for k in final)
    assert_same_weights(final, weights(ref / "checkpoints" / "step_00000060"))


class _SignalAt:
    def __init__(self, step: int, times: int) -> None:
        self.step, self.times = step, times

    def on_step(self, trainer, stats):
        if trainer.step == self.step:
            for _ in range(self.times):
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.01)  # let the handler run before the next signal

    def on_log(self, trainer, record):
        pass

    def on_end(self, trainer):
        pass


def test_sigint_in_process_checkpoints_and_second_sigint_interrupts_at_once(tmp_path):
    from ganforge.training.guard import TrainingInterrupted

    before = signal.getsignal(signal.SIGINT)
    run = tmp_path / "run"
    with pytest.raises(TrainingInterrupted, match="SIGINT received: stopped after step 7") as e:
        ganforge.train("gan-ring8", run_dir=run, callbacks=[_SignalAt(7, 1)],
                       overrides=ring("train.steps=50", "train.checkpoint_every=5"))
    assert e.value.exit_code == 130
    assert steps_of(run)[-1] == 7
    ckpt.verify_checkpoint(run / "checkpoints" / "step_00000007")
    assert signal.getsignal(signal.SIGINT) is before  # handlers restored
    run2 = tmp_path / "run2"
    with pytest.raises(KeyboardInterrupt):
        ganforge.train("gan-ring8", run_dir=run2, callbacks=[_SignalAt(7, 2)],
                       overrides=ring("train.steps=50", "train.checkpoint_every=5"))
    assert steps_of(run2) == [5]  # no checkpoint for the interrupted step
    assert signal.getsignal(signal.SIGINT) is before


def test_cli_os_errors_are_one_line(tmp_path, capsys):
    run = tmp_path / "run"
    ganforge.train("gan-ring8", run_dir=run, overrides=ring("train.steps=1"))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code = cli.main(["sample", str(run), "-n", "4", "--out", str(blocker / "sub" / "s.npy")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "Check the path" in err and str(blocker) in err


class _RunningSum:
    """A stateful callback (like EMA weights or alarm state): the sum of every d_loss."""

    def __init__(self) -> None:
        self.total = torch.zeros(())
        self.count = 0

    def on_step(self, trainer, stats):
        self.total = self.total + stats["d_loss"].double()
        self.count += 1

    def on_log(self, trainer, record):
        pass

    def on_end(self, trainer):
        pass

    def state_dict(self):
        return {"total": self.total, "count": self.count}

    def load_state_dict(self, state):
        self.total, self.count = state["total"].clone(), int(state["count"])


def test_callback_state_is_checkpointed_and_restored(tmp_path):
    over = ring("train.steps=30", "train.checkpoint_every=10", "train.keep_checkpoints=5")
    ref_cb = _RunningSum()
    ganforge.train("gan-ring8", run_dir=tmp_path / "ref", overrides=over, callbacks=[ref_cb])
    run = tmp_path / "run"
    ganforge.train("gan-ring8", run_dir=run, overrides=over, callbacks=[_RunningSum()])
    shutil.rmtree(run / "checkpoints" / "step_00000030")
    shutil.rmtree(run / "checkpoints" / "step_00000020")
    resumed = _RunningSum()
    ganforge.train("gan-ring8", resume=run, overrides=over, callbacks=[resumed])
    assert resumed.count == 30 and ref_cb.count == 30
    assert torch.equal(resumed.total, ref_cb.total)

"""Data-parallel training with torch.distributed on the CPU (gloo, 2 processes).

Each test starts real processes (torchrun, or two plain processes with torchrun's variables)
and compares what they write with an in-process single-process run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from ganforge import checkpoint as ckpt
from ganforge.api import load_config
from ganforge.config import PRESET_DIR
from ganforge.monitor.log import read_log
from ganforge.training.distributed import ShardedBatcher, shard_slice
from ganforge.training.trainer import Trainer

SRC = str(Path(__file__).resolve().parents[1] / "src")
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone",
            "--nproc-per-node=2"]

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(),
                                reason="torch.distributed is not available")


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    env["TQDM_DISABLE"] = "1"
    env.update(extra)
    return env


def _weights(run_dir: Path, step: int) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "checkpoints" / f"step_{step:08d}" / "model.safetensors"))


def _max_diff(a: dict[str, torch.Tensor], trainer: Trainer) -> float:
    worst = 0.0
    for name, m in trainer.modules().items():
        for k, v in m.state_dict().items():
            if v.is_floating_point():
                worst = max(worst, (a[f"{name}.{k}"] - v.cpu()).abs().max().item())
    return worst


def _no_bn_config(tmp_path: Path) -> Path:
    raw = yaml.safe_load((PRESET_DIR / "gan-ring8.yaml").read_text())
    raw["generator"]["layers"] = [x for x in raw["generator"]["layers"] if x != "batch_norm"]
    path = tmp_path / "ring8-nobn.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


# A worker that trains the config with the gradient penalty's interpolation weights drawn from
# one fixed global tensor (rank r takes its slice), so the two runs see the same numbers.
WORKER = """
import sys, torch
import ganforge.tasks.unconditional as u
from ganforge.config import PRESET_DIR
from ganforge.api import load_config
from ganforge.training.trainer import Trainer
torch.set_num_threads(1)
EPS = torch.rand(64, generator=torch.Generator().manual_seed(7))
rank = int(__import__("os").environ["RANK"])
orig = u.gradient_penalty
def gp(d, real, fake, weight, center):
    n = real.shape[0]
    return orig(d, real, fake, weight, center, eps=EPS[rank * n:(rank + 1) * n])
u.gradient_penalty = gp
cfg = load_config(sys.argv[1], ["train.steps=2", "train.batch_size=64", "monitor.progress=false",
                                "objective.gradient_penalty=1", "objective.r1=0.5",
                                "objective.ema=0.5"])
Trainer(cfg, sys.argv[2]).fit()
"""


def test_sharded_batcher_splits_the_single_process_batches() -> None:
    from ganforge.data import IndexBatcher, TensorData

    data = TensorData("t", torch.arange(103, dtype=torch.float32)[:, None])
    single = IndexBatcher(data, 12, seed=5)
    shards = [ShardedBatcher(IndexBatcher(data, 12, seed=5), r, 3) for r in range(3)]
    seen: list[int] = []
    for _ in range(8):  # one epoch (8 batches of 12) then the first batch of the next
        full = single.next()[0].flatten().tolist()
        parts = [s.next()[0].flatten().tolist() for s in shards]
        assert [len(p) for p in parts] == [4, 4, 4]
        assert [i for p in parts for i in p] == full  # rank slices, in order, are the single batch
        seen += full
    assert len(set(seen)) == 96  # disjoint, and cover the epoch (minus the dropped 7)
    assert shards[1].state_dict()["position"] == single.state_dict()["position"] == 8
    assert shard_slice(12, 2, 3) == slice(8, 12)
    with pytest.raises(Exception, match="must split evenly over 5 processes"):
        ShardedBatcher(IndexBatcher(data, 12, seed=5), 0, 5)


def test_two_processes_batch_b_equal_one_process_batch_2b(tmp_path, monkeypatch,
                                                         one_thread) -> None:
    """GP and R1 (double backward through DDP) and EMA included; no batch norm."""
    cfg_path = _no_bn_config(tmp_path)
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    run2 = tmp_path / "two"
    r = subprocess.run([*TORCHRUN, str(script), str(cfg_path), str(run2)], env=_env(),
                       capture_output=True, text=True, timeout=240, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ring8-nobn.yaml", "two", "worker.py"]

    import ganforge.tasks.unconditional as u

    eps = torch.rand(64, generator=torch.Generator().manual_seed(7))
    orig = u.gradient_penalty
    monkeypatch.setattr(u, "gradient_penalty",
                        lambda d, real, fake, w, c: orig(d, real, fake, w, c, eps=eps))
    cfg = load_config(cfg_path, ["train.steps=2", "train.batch_size=64", "monitor.progress=false",
                                 "objective.gradient_penalty=1", "objective.r1=0.5",
                                 "objective.ema=0.5"])
    one = Trainer(cfg, tmp_path / "one")
    w0 = {k: v.clone() for k, v in one.G.state_dict().items()}
    one.fit()
    two = _weights(run2, 2)
    moved = max((two[f"generator.{k}"] - v).abs().max().item() for k, v in w0.items())
    assert moved > 1e-4  # the step changed the weights...
    assert _max_diff(two, one) < 1e-6  # ...exactly as one process with the double batch
    logged = [x for x in read_log(run2 / "metrics.jsonl") if x["kind"] == "train"]
    single = [x for x in read_log(tmp_path / "one" / "metrics.jsonl") if x["kind"] == "train"]
    assert [x["step"] for x in logged] == [2] and logged[0]["processes"] == 2
    for key in ("d_loss", "g_loss", "d_penalty"):  # losses averaged over the ranks
        assert logged[0][key] == pytest.approx(single[0][key], rel=1e-5, abs=1e-7)


@pytest.mark.slow
def test_ring8_two_processes_one_run_dir_resumes_on_one(tmp_path, one_thread) -> None:
    """`ganforge train --nproc 2` (sync BN, so BN statistics cover the global batch), then
    resume on one process: the run equals an uninterrupted single-process run."""
    sets = ["--set", "optim.g={name: sgd, lr: 0.05}", "--set", "optim.d={name: sgd, lr: 0.05}",
            "--set", "train.sync_bn=true", "--set", "train.checkpoint_every=10",
            "--set", "monitor.eval_every=20", "--set", "monitor.eval_metrics=[modes]",
            "--set", "monitor.eval_n=500", "--set", "monitor.grid_size=200"]
    run = tmp_path / "ring"
    r = subprocess.run([sys.executable, "-m", "ganforge", "train", "gan-ring8", "--nproc", "2",
                        "--run-dir", str(run), "--no-progress", "--set", "train.steps=20",
                        *sets], env=_env(), capture_output=True, text=True, timeout=240,
                       cwd=tmp_path, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    assert [p.name for p in tmp_path.iterdir()] == ["ring"]  # exactly one run directory
    assert r.stdout.count("run directory:") == 1  # rank 0 reports
    log = read_log(run / "metrics.jsonl")
    steps = [x["step"] for x in log if x["kind"] == "train"]
    assert steps == [20] and [x["step"] for x in log if x["kind"] == "eval"] == [20]
    r = subprocess.run([sys.executable, "-m", "ganforge", "train", "--resume", str(run),
                        "--no-progress", "--set", "train.steps=40"], env=_env(),
                       capture_output=True, text=True, timeout=240, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    assert [p.name for p in ckpt.list_checkpoints(run)][-1] == "step_00000040"

    overrides = [s for s in sets if s != "--set"] + ["train.steps=40", "monitor.progress=false"]
    one = Trainer(load_config("gan-ring8", overrides), tmp_path / "single")
    one.fit()
    # float rounding only: 2e-6 on an AVX2 CPU, 3e-5 on an AVX-512 one (lr 1e-3, 40 steps)
    assert _max_diff(_weights(run, 40), one) < 1e-4
    evals = {x["step"]: x for x in read_log(run / "metrics.jsonl") if x["kind"] == "eval"}
    ref = {x["step"]: x for x in read_log(tmp_path / "single" / "metrics.jsonl")
           if x["kind"] == "eval"}
    for step in (20, 40):  # scores of samples gathered from both ranks, then of one process
        assert evals[step]["modes"] == ref[step]["modes"]
        assert evals[step]["high_quality"] == pytest.approx(ref[step]["high_quality"], abs=0.01)


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def _rank_of(pid: int) -> int | None:
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    for item in env:
        if item.startswith(b"RANK="):
            return int(item[5:])
    return None


def _wait_for_checkpoint(run: Path, proc: subprocess.Popen, limit: float = 120) -> None:
    t0 = time.monotonic()
    while not ckpt.list_checkpoints(run):
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() - t0 < limit, "no checkpoint appeared"
        time.sleep(0.2)
    time.sleep(0.5)


LONG = ["gan-ring8", "--no-progress", "--set", "train.steps=1000000",
        "--set", "train.checkpoint_every=25", "--set", "monitor.log_every=25"]


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs /proc")
def test_killed_rank_ends_the_run_with_valid_checkpoint(tmp_path) -> None:
    run = tmp_path / "run"
    proc = subprocess.Popen([*TORCHRUN, "-m", "ganforge", "train", *LONG, "--run-dir", str(run),
                             "--set", "train.dist_dead_after=5"], env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_checkpoint(run, proc)
        victims = [p for p in _children(proc.pid) if _rank_of(p) == 1]
        assert len(victims) == 1
        os.kill(victims[0], signal.SIGKILL)
        # rank 0 must notice and exit by itself: a hang ends in TimeoutExpired (no wall-clock
        # bound on how fast, which depends on the machine's load)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0
    assert "[rank 0] lost contact with the other processes" in err and "--resume" in err
    ckpt.verify_checkpoint(ckpt.latest_checkpoint(run))  # the newest checkpoint is complete


@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="needs SIGSTOP")
def test_hung_rank_stops_the_run_through_the_watchdog(tmp_path) -> None:
    """Two processes without torchrun's agent: rank 1 freezes (SIGSTOP), so nothing closes its
    connections; rank 0's watchdog stops the run after train.dist_dead_after seconds."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    run = tmp_path / "run"
    procs = []
    for rank in (0, 1):
        env = _env(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2",
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "ganforge", "train", *LONG, "--run-dir", str(run),
             "--set", "train.dist_dead_after=3"], env=env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True))
    try:
        _wait_for_checkpoint(run, procs[0])
        os.kill(procs[1].pid, signal.SIGSTOP)
        # the watchdog, not a timer of this test, ends the run (TimeoutExpired if it hangs)
        _, err = procs[0].communicate(timeout=120)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.communicate()
    assert procs[0].returncode == 1  # the run failed (3 is a data error)
    assert "rank 1 has not answered for 3 s" in err and "--resume" in err
    assert "Traceback" not in err
    ckpt.verify_checkpoint(ckpt.latest_checkpoint(run))


def test_nproc_flag_checks_before_launching(tmp_path) -> None:
    from ganforge.cli import main

    assert main(["train", "gan-ring8", "--nproc", "3", "--run-dir", str(tmp_path / "x")]) == 2
    assert main(["train", "gan-ring8", "--nproc", "0"]) == 2
    assert not (tmp_path / "x").exists()


def test_sigterm_stops_every_rank_at_the_same_step_with_a_checkpoint(tmp_path) -> None:
    """torchrun forwards SIGTERM to the ranks; they agree on the step to stop at, rank 0
    writes that step's checkpoint, and the run resumes from it."""
    import re

    run = tmp_path / "run"
    proc = subprocess.Popen([*TORCHRUN, "-m", "ganforge", "train", *LONG, "--run-dir", str(run)],
                            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_checkpoint(run, proc)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    steps = re.findall(r"SIGTERM received: stopped after step (\d+)", err)
    assert len(steps) == 2 and steps[0] == steps[1], err[-3000:]
    last = ckpt.latest_checkpoint(run)
    assert last.name == f"step_{int(steps[0]):08d}"
    ckpt.verify_checkpoint(last)


def test_a_signal_after_the_steps_all_reduce_stops_at_the_next_step() -> None:
    """A rank stops on the signal flag of the step's all-reduce, which every rank saw; a signal
    that reaches it after that all-reduce must wait for the next one (else this rank stops a
    step before its peers, which then wait for it in vain)."""
    import types

    import torch.distributed as dist

    from ganforge.training.distributed import DistributedGuard

    store = dist.HashStore()
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        trainer = types.SimpleNamespace(cfg=types.SimpleNamespace(train=None),
                                        device=torch.device("cpu"), modules=dict)
        guard = DistributedGuard(trainer, types.SimpleNamespace(control=None))
        assert guard.check(due=False) is None and guard.stop_signal() is None
        guard.signal = int(signal.SIGTERM)  # arrives after this step's all-reduce
        assert guard.stop_signal() is None
        guard.check(due=False)  # the next step's all-reduce carries it
        assert guard.stop_signal() == int(signal.SIGTERM)
    finally:
        dist.destroy_process_group()

"""Data-parallel training with torch.distributed (torchrun + DistributedDataParallel).

``torchrun --nproc-per-node N -m ganforge train CONFIG`` (or ``ganforge train --nproc N``)
runs one training run with N processes. The Trainer calls two hooks of this module:

- ``start(trainer)`` first thing in ``__init__``: joins the process group that torchrun's
  environment describes (``WORLD_SIZE`` > 1; gloo on the CPU, NCCL on CUDA with one GPU per
  process), agrees on rank 0's run directory and starts the liveness watchdog. Without those
  variables it returns a single-process context whose hooks do nothing.
- ``ctx.attach(trainer)`` once G, D, optimizers, task and callbacks exist (before a resume
  restores a checkpoint): converts batch norms to synchronized ones (``train.sync_bn``), wraps
  the task's G and D in ``DistributedDataParallel``, shards the data and the latents, makes
  every rank but 0 write nothing, makes stop decisions (signal, divergence) collective, and
  computes evaluation metrics on samples gathered from all ranks.

**One run, whatever N.** ``train.batch_size`` is the *global* batch: each of N ranks trains
on ``batch_size / N`` samples, the slice ``rank`` of the batch a single process would draw
(same permutation per epoch, same latents). With DDP's gradient average, one step with N
processes equals one step with one process (up to float summation order) as long as nothing in
the step depends on the split: batch norm statistics (unless ``train.sync_bn``) and draws from
torch's global generator (gradient-penalty interpolation weights, dropout, DiffAugment,
instance noise), which each rank draws independently. Checkpoints hold exactly what a
single-process run holds (unwrapped weights, the global data order and latent generator), so
a run resumes with any number of processes.

**Failures.** A rank that dies or hangs makes the run stop in bounded time with a message: a
heartbeat thread on each rank bumps a counter in the rendezvous store every second and watches
the next rank's counter; a counter that stops for ``train.dist_dead_after`` seconds, or a rank
that leaves before the end of training, sets an abort key that every rank's watchdog obeys
within a second (exit status 1). Collectives themselves time out after ``train.dist_timeout``
seconds. Only rank 0 writes checkpoints, and those are atomic, so the newest one stays valid.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from ganforge.errors import EXIT_FAILED, ConfigError, GanforgeError
from ganforge.monitor.log import MetricLog
from ganforge.seeding import fork_rng
from ganforge.training.guard import RunGuard

EXIT_PEER_LOST = EXIT_FAILED  # the run failed (status 3 is a data error)
ENV_VARS = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def launched() -> bool:
    """True when this process was started by torchrun (or with its variables) for N > 1."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and all(v in os.environ for v in ENV_VARS)


def is_writer() -> bool:
    """Whether this process writes files (logs, grids, checkpoints, reports): rank 0, or the
    only process. Code that writes into a run directory should check it."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def unwrap(module: nn.Module) -> nn.Module:
    """The network inside a DistributedDataParallel wrapper (or the module itself)."""
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module


# ------------------------------------------------------------------------------ batcher
def shard_slice(batch: int, rank: int, world: int) -> slice:
    """The part of a global batch of ``batch`` samples that ``rank`` of ``world`` trains on."""
    per = batch // world
    return slice(rank * per, (rank + 1) * per)


class ShardedBatcher:
    """The batcher of one rank: each global batch of ``IndexBatcher`` (same seeded permutation
    per epoch on every rank) split into ``world`` contiguous, disjoint slices. The union over
    ranks of one step's slices is the batch a single process draws; over an epoch the ranks
    cover the data (minus the dropped incomplete last batch). Its state is the global
    batcher's, so checkpoints do not depend on the number of processes."""

    def __init__(self, inner: Any, rank: int, world: int) -> None:
        if inner.batch_size % world:
            raise ConfigError(
                f"train.batch_size {inner.batch_size} is the global batch and must split evenly "
                f"over {world} processes. Use a multiple of {world} (e.g. "
                f"{max(world, inner.batch_size // world * world)}) or another process count.")
        self.inner = inner
        self.rank, self.world = rank, world
        self.part = shard_slice(inner.batch_size, rank, world)

    def __getattr__(self, name: str) -> Any:  # batch_size, epoch, position, ...
        return getattr(self.inner, name)

    def indices(self) -> torch.Tensor:
        """Advance by one global batch; return this rank's sample indices."""
        b = self.inner
        if b.position >= b.batches_per_epoch:
            b.epoch += 1
            b.position = 0
            b._perm = torch.randperm(len(b.data), generator=b.generator)
        idx = b._perm[b.position * b.batch_size:(b.position + 1) * b.batch_size][self.part]
        b.position += 1
        return idx

    def next(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        idx = self.indices()
        x = self.inner.data.x.index_select(0, idx.to(self.inner.data.x.device))
        y = self.inner.data.y
        return x, (y.index_select(0, idx.to(y.device)) if y is not None else None)

    def state_dict(self) -> dict[str, Any]:
        return self.inner.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.inner.load_state_dict(state)


# ------------------------------------------------------------------------- sync batch norm
class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks, differentiable (any order: the backward is the same sum)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        out = x.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return _AllReduceSum.apply(grad)


class _SyncBatchNormCPU(nn.modules.batchnorm._BatchNorm):
    """Batch norm whose training statistics cover the global batch of all ranks, through
    differentiable all-reduces (torch's SyncBatchNorm runs on GPUs only). Same parameters,
    buffers and state_dict keys as ``nn.BatchNorm*d``."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        training = self.training or self.running_mean is None
        if not (training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        dims = [0] + list(range(2, x.dim()))
        shape = [1, -1] + [1] * (x.dim() - 2)
        count = torch.tensor([x.numel() / x.shape[1]], dtype=x.dtype, device=x.device)
        dist.all_reduce(count)
        mean = _AllReduceSum.apply(x.sum(dims)) / count
        centered = x - mean.view(shape)
        var = _AllReduceSum.apply((centered * centered).sum(dims)) / count
        out = centered * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        if self.training and self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = (1.0 / float(self.num_batches_tracked) if self.momentum is None
                          else self.momentum)
                n = float(count)
                unbiased = var.detach() * (n / max(n - 1.0, 1.0))
                self.running_mean.lerp_(mean.detach(), factor)
                self.running_var.lerp_(unbiased, factor)
        return out


def convert_sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Replace every ``BatchNorm{1,2,3}d`` below ``module`` (in place; the same Parameter and
    buffer objects, so optimizers and state_dict keys do not change) by a synchronized one:
    torch's SyncBatchNorm on CUDA, ``_SyncBatchNormCPU`` on the CPU."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for name, child in list(module.named_children()):
        if isinstance(child, nn.modules.batchnorm._BatchNorm) and \
                not isinstance(child, (_SyncBatchNormCPU, nn.SyncBatchNorm)):
            new = _SyncBatchNormCPU(child.num_features, child.eps, child.momentum, child.affine,
                                    child.track_running_stats)
            if child.affine:
                new.weight, new.bias = child.weight, child.bias
            new.running_mean, new.running_var = child.running_mean, child.running_var
            new.num_batches_tracked = child.num_batches_tracked
            new.train(child.training)
            module.add_module(name, new)
        else:
            convert_sync_batchnorm(child, device)
    return module


# ------------------------------------------------------------------------------- context
class SingleProcess:
    """The context of an ordinary run: every hook is a no-op."""

    rank = 0
    world_size = 1
    is_writer = True

    def attach(self, trainer: Any) -> None:
        return None


class _QuietLog(MetricLog):
    """The metric log of ranks other than 0: reads the shared file, writes nothing."""

    def write(self, record: dict[str, Any]) -> None:
        return None

    def truncate_after(self, step: int) -> None:
        return None


class DistributedGuard(RunGuard):
    """RunGuard whose stop decisions are collective: every step, one all-reduce of (diverged?,
    signal) so all ranks roll back, stop or checkpoint at the same step."""

    def __init__(self, trainer: Any, ctx: Distributed) -> None:
        super().__init__(trainer)
        self.ctx = ctx
        self.agreed_signal: int | None = None

    def check(self, due: bool) -> str | None:
        problem = super().check(due)
        flags = torch.tensor([problem is not None, int(self.signal or 0)], dtype=torch.int64)
        dist.all_reduce(flags, op=dist.ReduceOp.MAX, group=self.ctx.control)
        # Stop on what every rank saw in this all-reduce, never on a signal that reached this
        # rank after it: that one is agreed on at the next step.
        self.agreed_signal = int(flags[1]) or None
        if int(flags[1]) and self.signal is None:
            self.signal = int(flags[1])
        if int(flags[0]) and problem is None:
            problem = "another process saw non-finite values"
        return problem

    def recover(self, reason: str) -> None:
        try:
            super().recover(reason)
        except GanforgeError:
            self.ctx.finished()  # every rank raises here together: not a lost peer
            raise

    def stop_signal(self) -> int | None:
        return self.agreed_signal

    def stop_for_signal(self, saved_this_step: bool) -> None:
        try:
            super().stop_for_signal(saved_this_step)
        except GanforgeError:
            self.ctx.finished()
            raise


class _DistributedCallback:
    """Logs global numbers (losses averaged over ranks, images/s of all ranks) and marks the
    end of training for the watchdog."""

    def __init__(self, ctx: Distributed) -> None:
        self.ctx = ctx
        self.keys: list[str] = []

    def on_step(self, trainer: Any, stats: dict[str, Any]) -> None:
        if not self.keys:
            self.keys = sorted(k for k, v in stats.items() if isinstance(v, torch.Tensor))

    def on_log(self, trainer: Any, record: dict[str, Any]) -> None:
        keys = [k for k in self.keys if k in record]
        values = torch.tensor([float(record[k]) for k in keys] + [record["images_per_s"]],
                              dtype=torch.float64)
        dist.all_reduce(values, group=self.ctx.control)
        for k, v in zip(keys, values[:-1].tolist(), strict=True):
            record[k] = v / self.ctx.world_size
        record["images_per_s"] = float(values[-1])
        record["processes"] = self.ctx.world_size

    def on_end(self, trainer: Any) -> None:
        self.ctx.finished()


class Distributed:
    """One rank of a multi-process run (see the module docstring)."""

    def __init__(self, timeout: float, dead_after: float, device_name: str) -> None:
        self.world_size = int(os.environ["WORLD_SIZE"])
        self.rank = int(os.environ["RANK"])
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        cuda = device_name == "cuda" or (device_name == "auto" and torch.cuda.is_available())
        if cuda:
            if not torch.cuda.is_available():
                raise ConfigError("device: cuda was asked for but no CUDA GPU is available; "
                                  "use device: auto or cpu.")
            torch.cuda.set_device(self.local_rank)
        self.backend = "nccl" if cuda else "gloo"
        self.timeout = float(timeout)
        self.dead_after = float(dead_after)
        if not dist.is_initialized():
            dist.init_process_group(self.backend, timeout=datetime.timedelta(seconds=timeout))
        self.control = (dist.new_group(backend="gloo", timeout=datetime.timedelta(seconds=timeout))
                        if self.backend == "nccl" else None)
        self.is_writer = self.rank == 0
        self.run_dir: Path | None = None
        self._done = False
        self._stop = threading.Event()
        self._store: Any = None
        self._watchdog = threading.Thread(target=self._watch, name="ganforge-watchdog",
                                          daemon=True)
        self._connect_store()
        self._watchdog.start()
        atexit.register(self._at_exit)
        _install_excepthook(self)

    # ---------------------------------------------------------------------- agreement
    def agree_path(self, path: Path) -> Path:
        """Rank 0's path on every rank (a default run directory holds a timestamp)."""
        data = torch.tensor(list(str(path).encode()), dtype=torch.uint8)
        size = torch.tensor([data.numel()], dtype=torch.int64)
        dist.broadcast(size, 0, group=self.control)
        if self.rank != 0:
            data = torch.empty(int(size), dtype=torch.uint8)
        dist.broadcast(data, 0, group=self.control)
        return Path(bytes(data.tolist()).decode())

    # ------------------------------------------------------------------------- attach
    def attach(self, trainer: Any) -> None:
        task = trainer.task
        names = task.distributed_modules
        if not names:
            raise ConfigError(f"task '{trainer.cfg.task}' does not support training with several "
                              f"processes yet; run it with one process.")
        if trainer.cfg.objective.likelihood:
            raise ConfigError("objective.likelihood runs G's layers outside its forward pass, "
                              "which DistributedDataParallel does not synchronize; train it "
                              "with one process, or set objective.likelihood=0.")
        if trainer.cfg.train.sync_bn:  # every network, the EMA generator's own statistics too
            for m in trainer.modules().values():
                convert_sync_batchnorm(m, trainer.device)
        ids = [self.local_rank] if trainer.device.type == "cuda" else None
        for name in names:
            setattr(task, name, nn.parallel.DistributedDataParallel(
                getattr(task, name), device_ids=ids))
        trainer.batcher = ShardedBatcher(trainer.batcher, self.rank, self.world_size)
        trainer.guard = DistributedGuard(trainer, self)
        if not self.is_writer:
            trainer.log = _QuietLog(trainer.log.path)
            trainer.cfg.monitor.progress = False
        for cb in trainer.callbacks:
            if type(cb).__name__ == "EvalCallback":
                self._share_evaluation(cb)
        trainer.callbacks.append(_DistributedCallback(self))
        if self.rank:  # decorrelate dropout / penalty / augmentation draws between ranks
            torch.manual_seed(trainer.cfg.seed + 1_000_003 * self.rank)

    def latent_for(self, latent: Callable[[int], torch.Tensor]) -> Callable[[int], torch.Tensor]:
        """``latent(n)`` for this rank's slice: draws the global ``n * world`` latents (the
        same on every rank) and keeps slice ``rank``, so the latent generator's state does not
        depend on the number of processes."""

        def sharded(n: int) -> torch.Tensor:
            return latent(n * self.world_size)[self.rank * n:(self.rank + 1) * n]

        return sharded

    def _share_evaluation(self, cb: Any) -> None:
        """Every rank generates its share of the fixed evaluation latents; rank 0 gathers them
        and scores; the others only generate."""
        original_evaluate = cb.evaluate

        @torch.no_grad()
        def generate(trainer: Any) -> torch.Tensor:
            G = trainer.sampling_generator
            was = G.training
            G.eval()
            parts = torch.tensor_split(cb.z, self.world_size)
            mine = parts[self.rank]
            try:
                out = torch.cat([G(mine[i:i + 500]).float() for i in range(0, len(mine), 500)])
            finally:
                G.train(was)
            size = parts[0].shape[0]
            padded = torch.zeros((size, *out.shape[1:]), dtype=out.dtype, device=out.device)
            padded[:out.shape[0]] = out
            group = self.control if out.device.type == "cpu" else None
            bucket = ([torch.empty_like(padded) for _ in range(self.world_size)]
                      if self.rank == 0 else None)
            dist.gather(padded, bucket, dst=0, group=group)
            if self.rank != 0:
                return out.new_empty((0, *out.shape[1:])).cpu()
            return torch.cat([b[:p.shape[0]] for b, p in zip(bucket, parts, strict=True)]).cpu()

        def evaluate(trainer: Any) -> dict[str, Any]:
            if self.rank == 0:
                return original_evaluate(trainer)
            with fork_rng():
                generate(trainer)
            return {}

        cb.generate = generate
        cb.evaluate = evaluate
        if self.rank != 0:
            cb._restored = True  # rank 0 alone looks after RUN/best

    # ----------------------------------------------------------------------- watchdog
    def _connect_store(self) -> None:
        host, port = os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])
        run = os.environ.get("TORCHELASTIC_RUN_ID", "none")
        restart = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
        store = dist.TCPStore(host, port, is_master=False,
                              timeout=datetime.timedelta(seconds=max(self.dead_after, 5.0)))
        self._store = dist.PrefixStore(f"ganforge/{run}/{restart}/", store)

    def _watch(self) -> None:
        nxt = (self.rank + 1) % self.world_size
        last_seen, last_change = -1, time.monotonic()
        store_ok = time.monotonic()
        while not self._stop.wait(1.0):
            now = time.monotonic()
            try:
                self._store.add(f"hb/{self.rank}", 1)
                if self._store.check(["abort"]):
                    self._die(self._store.get("abort").decode())
                seen = self._store.add(f"hb/{nxt}", 0)
                store_ok = now
            except Exception:  # noqa: BLE001 - store unreachable: its host is gone
                if now - store_ok > self.dead_after and not self._stop.is_set():
                    self._die(f"rank {self.rank} lost the rendezvous store at "
                              f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')} "
                              f"(the launcher or rank 0 died)")
                continue
            if seen != last_seen:
                last_seen, last_change = seen, now
            elif now - last_change > self.dead_after:
                try:
                    if self._store.check([f"done/{nxt}"]):
                        continue
                    msg = (f"rank {nxt} has not answered for {self.dead_after:g} s (it died or "
                           f"hangs; train.dist_dead_after={self.dead_after:g})")
                    self._store.set("abort", msg)
                except Exception:  # noqa: BLE001
                    msg = f"rank {nxt} stopped answering"
                self._die(msg)

    def _die(self, reason: str) -> None:
        if self._stop.is_set():
            return
        where = self.run_dir or Path("RUN_DIR")
        sys.stderr.write(
            f"ganforge: error: [rank {self.rank}] stopping the run: {reason}. The newest "
            f"checkpoint in {where / 'checkpoints'} is complete (checkpoints are atomic): "
            f"continue with 'ganforge train --resume {where}', with any number of "
            f"processes.\n")
        sys.stderr.flush()
        os._exit(EXIT_PEER_LOST)

    def finished(self) -> None:
        """This rank ended in a way all ranks agreed on (end of training, a collective stop):
        its silence from now on is not a failure."""
        if self._done:
            return
        self._done = True
        self._stop.set()
        with contextlib.suppress(Exception):
            self._store.set(f"done/{self.rank}", "1")

    def _at_exit(self) -> None:
        if not self._done:
            self._stop.set()
            with contextlib.suppress(Exception):
                if not self._store.check(["abort"]):
                    self._store.set("abort", f"rank {self.rank} stopped before the end of "
                                             f"training (see its messages)")
        if dist.is_initialized():
            with contextlib.suppress(Exception):
                dist.destroy_process_group()


def _install_excepthook(ctx: Distributed) -> None:
    """A collective that fails because a peer is gone ends this rank with a message, not a
    traceback."""
    previous = sys.excepthook

    def hook(kind: type[BaseException], exc: BaseException, tb: Any) -> None:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else kind.__name__
        lost = isinstance(exc, getattr(dist, "DistError", ())) or (
            isinstance(exc, RuntimeError) and any(w in str(exc) for w in
                                                  ("gloo", "Gloo", "NCCL", "Connection closed")))
        if not lost:
            previous(kind, exc, tb)
            return
        ctx._stop.set()
        where = ctx.run_dir or Path("RUN_DIR")
        sys.stderr.write(
            f"ganforge: error: [rank {ctx.rank}] lost contact with the other processes (one "
            f"died, hangs, or the network failed): {text}. The newest checkpoint in "
            f"{where / 'checkpoints'} is complete: continue with 'ganforge train --resume "
            f"{where}', with any number of processes.\n")

    sys.excepthook = hook


def start(trainer: Any) -> SingleProcess | Distributed:
    """The distributed context of a Trainer being built (see the module docstring)."""
    if not launched():
        return SingleProcess()
    t = trainer.cfg.train
    ctx = Distributed(t.dist_timeout, t.dist_dead_after, trainer.cfg.device)
    trainer.run_dir = ctx.agree_path(Path(trainer.run_dir))
    ctx.run_dir = trainer.run_dir
    trainer.latent = ctx.latent_for(trainer.latent)
    return ctx

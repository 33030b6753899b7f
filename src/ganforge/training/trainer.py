"""The training loop: build everything from a RunConfig, alternate D/G steps, log, sample,
checkpoint, resume."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

import torch
import yaml
from torch import nn

from ganforge import checkpoint as ckpt
from ganforge.config import RunConfig, resolve_data_widths
from ganforge.data import DataLoaderBatcher, IndexBatcher, load_training_data
from ganforge.data.sequences import data_sha256, load_data_info, save_data_info
from ganforge.errors import CheckpointError, ConfigError, DataError, SpecError
from ganforge.metrics.during_training import EvalCallback
from ganforge.monitor.callback import MonitorCallback
from ganforge.monitor.images import save_samples_picture
from ganforge.monitor.log import MetricLog
from ganforge.monitor.music import SAMPLE_MELODIES, save_music_samples
from ganforge.objectives.tricks import pack
from ganforge.optim import LrSchedules, build_optimizer
from ganforge.progress import Progress
from ganforge.seeding import fork_rng, resolve_device, rng_state, sample_latent, set_rng_state
from ganforge.tasks import check_config, task_class
from ganforge.tasks.base import spec_networks
from ganforge.training import distributed
from ganforge.training.guard import (
    RunGuard,
    TrainingDiverged,
    TrainingInterrupted,
    callback_states,
    dry_run,
    load_callback_states,
)
from ganforge.training.threads import apply_threads

__all__ = ["Trainer", "TrainingDiverged", "TrainingInterrupted"]


class Callback(Protocol):
    """Hooks around the loop. ``on_step`` runs after every step (gradients of the last D and G
    updates are still in ``p.grad``); ``on_log`` gets each metric-log record before it is
    written (it may add keys); ``on_end`` runs once after the last step. A callback that also
    has ``state_dict()`` / ``load_state_dict(state)`` (tensors, numbers, strings, lists, dicts)
    has its state saved in every checkpoint and restored on resume and rollback."""

    def on_step(self, trainer: Trainer, stats: dict[str, Any]) -> None: ...
    def on_log(self, trainer: Trainer, record: dict[str, Any]) -> None: ...
    def on_end(self, trainer: Trainer) -> None: ...


def run_is_used(run_dir: Path) -> bool:
    return (run_dir / "metrics.jsonl").exists() or bool(ckpt.list_checkpoints(run_dir))


def cpu_has_fast_bf16() -> bool:
    """Whether oneDNN has bf16 kernels for this CPU (AVX-512, fastest with AVX-512 BF16 or AMX).
    On an AVX2-only CPU bf16 convolutions measured 5-50x slower than fp32 (docs/performance.md)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch without the probe: assume it is native
        return True


def check_resume_data(run_dir: Path, data: Any) -> None:
    """Resume trains on the data the run started with: its sha256 must match ``data.json``."""
    stored = load_data_info(run_dir)
    if not stored or not stored.get("sha256"):
        return  # a run from before data.json: nothing to compare with
    if data_sha256(data) != stored["sha256"]:
        raise DataError(f"the data of '{data.name}' differs from what run '{run_dir}' was "
                        f"trained on (sha256 {stored['sha256'][:12]}..., from "
                        f"'{stored.get('source')}', {stored.get('n')} samples of shape "
                        f"{tuple(stored.get('shape') or ())}; given {len(data)} samples of "
                        f"shape {data.shape}). Resume with the original data, or start a new "
                        f"run on this data.")


def check_user_networks(G: nn.Module, D: nn.Module, latent_shape: tuple[int, ...],
                        data_shape: tuple[int, ...], packing: int, device: torch.device) -> None:
    """A dry forward pass (eval mode, two samples) of the user's own networks: G must map the
    latent to the data's shape and D the data to one logit per sample."""
    g_was, d_was = G.training, D.training
    G.eval()
    D.eval()
    try:
        with torch.no_grad():
            try:
                out = G(torch.zeros((2 * packing, *latent_shape), device=device))
            except (RuntimeError, ValueError, TypeError, IndexError) as exc:
                raise SpecError(f"the generator fails on a latent batch of shape "
                                f"{(2 * packing, *latent_shape)}: {str(exc).splitlines()[0]}. "
                                f"Its input is (batch, {', '.join(map(str, latent_shape))}); "
                                f"set latent.dim to what it expects.") from None
            if tuple(out.shape[1:]) != tuple(data_shape):
                raise SpecError(f"the generator outputs samples of shape {tuple(out.shape[1:])}, "
                                f"but the data's samples have shape {tuple(data_shape)}. Make "
                                f"its last layer produce exactly (batch, "
                                f"{', '.join(map(str, data_shape))}).")
            x = pack(out, packing)  # D sees `packing` samples concatenated
            try:
                logits = D(x)
            except (RuntimeError, ValueError, TypeError, IndexError) as exc:
                raise SpecError(f"the discriminator fails on a batch of shape "
                                f"{tuple(x.shape)}: {str(exc).splitlines()[0]}.") from None
            if tuple(logits.shape) not in ((2, 1), (2,)):
                raise SpecError(f"the discriminator outputs shape {tuple(logits.shape[1:])} per "
                                f"sample; it must output one logit per sample (batch, 1). End "
                                f"it with nn.Linear(..., 1).")
    finally:
        G.train(g_was)
        D.train(d_was)


class Trainer:
    def __init__(self, cfg: RunConfig, run_dir: str | Path, resume: bool = False,
                 callbacks: Iterable[Callback] = (), data: Any = None,
                 networks: dict[str, nn.Module] | None = None) -> None:
        """``data``: an already loaded TensorData (else ``cfg.data`` is loaded). ``networks``:
        the user's own ``generator`` and/or ``discriminator`` modules replacing the specs
        (tasks that build their spec networks; checked by a dry forward pass)."""
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.callbacks = list(callbacks)
        self.dist = distributed.start(self)  # torchrun: join the process group
        if self.dist.is_writer:  # rank 0 watches and reports for a multi-process run
            self.monitor = MonitorCallback(cfg)  # health signals, alarms, TensorBoard, report
            self.callbacks.append(self.monitor)
        if not resume and run_is_used(self.run_dir):
            raise ConfigError(f"run directory '{self.run_dir}' already holds a run. Continue it "
                              f"with --resume {self.run_dir}, or pick another --run-dir.")
        # the checkpoint to resume from, found (and verified) before anything is written: a run
        # none of whose checkpoints verifies keeps its config.yaml and data.json as they were
        resume_from = ckpt.latest_checkpoint(self.run_dir) if resume else None
        self.device = resolve_device(cfg.device)
        torch.manual_seed(cfg.seed)  # weight init and dropout

        self.data = data if data is not None else load_training_data(cfg)
        # steps / features in the config follow the data (the run's config.yaml holds numbers)
        cfg = self.cfg = resolve_data_widths(cfg, self.data.shape, self.data.info.get("spans"))
        if resume:
            check_resume_data(self.run_dir, self.data)
        task_cls = task_class(cfg.task)
        networks = {k: v for k, v in (networks or {}).items() if v is not None}
        # the user's own networks replace specs, so the spec shapes are not checked
        check_config(cfg, None if networks else self.data.shape)
        self.data.x = self.data.x.to(self.device)
        if self.data.y is not None:
            self.data.y = self.data.y.to(self.device)
        latent_shape = cfg.latent.full_shape
        built = task_cls.build_networks(self)  # a task may build its own G and D
        if built is not None:
            if networks:
                raise ConfigError(f"task '{cfg.task}' builds its own networks; a generator or "
                                  f"discriminator module cannot replace them. Use the config's "
                                  f"specs, or task: unconditional.")
            self.G, self.D = (m.to(self.device) for m in built)
        else:
            nets = {} if len(networks) == 2 else spec_networks(cfg, self.data.shape)
            nets.update(networks)
            self.G = nets["generator"].to(self.device)
            self.D = nets["discriminator"].to(self.device)
            if networks:
                check_user_networks(self.G, self.D, latent_shape, self.data.shape,
                                    cfg.objective.packing, self.device)
            else:
                dry_run(self.G, self.D, latent_shape, self.device)
        apply_threads(self, verbose=self.dist.is_writer)  # train.threads (before compile)
        self._apply_speed_switches()
        self.opt_g = build_optimizer(self.G.parameters(), cfg.optim.g)
        self.opt_d = build_optimizer(self.D.parameters(), cfg.optim.d)
        batcher_cls = DataLoaderBatcher if cfg.train.batching == "dataloader" else IndexBatcher
        self.batcher = batcher_cls(self.data, cfg.train.batch_size, seed=cfg.seed + 1)
        self.latent_gen = torch.Generator().manual_seed(cfg.seed + 2)
        self.fixed_z = sample_latent(cfg.monitor.grid_size, latent_shape, cfg.latent.distribution,
                                     torch.Generator().manual_seed(cfg.seed + 3), self.device)
        # fp16: one loss scale per network ({"d": ..., "g": ...}), read by G/D tasks
        self.scalers: dict[str, Any] | None = None
        if cfg.train.precision == "fp16":
            self.scalers = {k: torch.amp.GradScaler(self.device.type) for k in ("d", "g")}
        self.step = 0
        # under packing m, one D step draws m batches
        self.total_steps = cfg.train.total_steps(
            max(1, self.batcher.batches_per_epoch // cfg.objective.packing))
        self.task = task_cls(self)
        self.schedules = LrSchedules(self.task.optimizers(), {"generator": cfg.optim.g,
                                                              "discriminator": cfg.optim.d})
        if self.schedules and task_cls.own_lr_schedule:
            raise ConfigError(f"task '{cfg.task}' sets its own learning rates (translation."
                              f"decay_start); remove optim.g.schedule / optim.d.schedule.")
        mods = self.task.modules()  # a task may replace the networks built above (TimeGAN)
        self.G, self.D = mods["generator"], mods["discriminator"]
        self.callbacks.extend(self.task.callbacks(self))
        if cfg.monitor.eval_every:
            self.callbacks.append(EvalCallback(self))
        self.guard = RunGuard(self)
        if self.run_dir.exists() and not self.run_dir.is_dir():
            raise ConfigError(f"run directory '{self.run_dir}' is a file; give --run-dir a "
                              f"directory path.")
        self.log = MetricLog(self.run_dir / "metrics.jsonl")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.dist.is_writer:
            (self.run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(),
                                                                     sort_keys=False))
            save_data_info(self.run_dir, self.data)  # shape, source, sha256 (+ sequence scaling)
        self.dist.attach(self)  # DDP, data shards, rank-0-only writes (no-op on one process)
        if resume_from is not None:
            ckpt.clean_stale_temporaries(self.run_dir)
            self.restore(resume_from)
            if self.dist.is_writer:
                sys.stderr.write(f"ganforge: resuming '{self.run_dir}' from step {self.step} "
                                 f"of {self.total_steps}.\n")

    # -------------------------------------------------------------------------- pieces
    def _apply_speed_switches(self) -> None:
        """channels_last and torch.compile (in place, so state_dict keys do not change)."""
        t = self.cfg.train
        if t.precision == "bf16" and self.device.type == "cpu" and not cpu_has_fast_bf16():
            sys.stderr.write(
                "ganforge: note: train.precision=bf16 on a CPU without oneDNN bf16 kernels (they "
                "need AVX-512; this one has "
                f"{torch.backends.cpu.get_cpu_capability()}): convolutions and matmuls fall back "
                "to slow paths, many times slower than fp32. Use train.precision=fp32 here; bf16 "
                "pays off on CPUs with AVX-512 BF16 or AMX and on GPUs (docs/performance.md).\n")
        if t.channels_last and self.data.kind == "image":
            fmt = torch.channels_last
            self.G.to(memory_format=fmt)
            self.D.to(memory_format=fmt)
            self.data.x = self.data.x.contiguous(memory_format=fmt)
        if t.compile:
            self.G.compile()
            self.D.compile()

    def autocast(self) -> Any:
        """The precision context of a training step (bf16/fp16 autocast or a no-op)."""
        precision = self.cfg.train.precision
        dtype = torch.float16 if precision == "fp16" else torch.bfloat16
        return torch.autocast(self.device.type, dtype=dtype, enabled=precision != "fp32")

    @property
    def lr_scale(self) -> float:
        """Factor on the configured learning rates (lowered by each NaN rollback)."""
        return self.guard.lr_factor

    def latent(self, n: int) -> torch.Tensor:
        return sample_latent(n, self.cfg.latent.full_shape, self.cfg.latent.distribution,
                             self.latent_gen, self.device)

    def modules(self) -> dict[str, nn.Module]:
        return {k: distributed.unwrap(m) for k, m in self.task.modules().items()}

    def state(self) -> dict[str, Any]:
        return {
            "optimizers": {k: o.state_dict() for k, o in self.task.optimizers().items()},
            "batcher": self.batcher.state_dict(),
            "latent_gen": self.latent_gen.get_state(),
            "rng": rng_state(),
            "guard": self.guard.state_dict(),
            "callbacks": callback_states(self.callbacks),
            **({"task": task_state} if (task_state := self.task.state_dict()) else {}),
            **({"scalers": {k: v.state_dict() for k, v in self.scalers.items()}}
               if self.scalers else {}),
        }

    def save(self) -> Path:
        if not self.dist.is_writer:  # rank 0 writes the checkpoints of a multi-process run
            return self.run_dir / ckpt.CKPT_DIR / f"step_{self.step:08d}"
        return ckpt.save_checkpoint(self.run_dir, self.step, self.modules(), self.state(),
                                    keep=self.cfg.train.keep_checkpoints)

    def restore(self, path: Path) -> None:
        step, weights, state = ckpt.load_checkpoint(path)
        for name, m in self.modules().items():
            ckpt.load_module_weights(m, weights, name, path)
        try:
            for k, o in self.task.optimizers().items():
                o.load_state_dict(state["optimizers"][k])
            self.batcher.load_state_dict(state["batcher"])
            self.latent_gen.set_state(state["latent_gen"])
            set_rng_state(state["rng"])
            self.guard.load_state_dict(state.get("guard"))
            load_callback_states(self.callbacks, state.get("callbacks") or {})
            task_state = self.task.state_dict()
            if task_state:  # task-owned state (pools, data order)
                self.task.load_state_dict(state["task"])
            if self.scalers:  # fp16 loss scales
                for k, v in self.scalers.items():
                    v.load_state_dict(state["scalers"][k])
        except (KeyError, ValueError, RuntimeError, TypeError, AttributeError) as exc:
            raise CheckpointError(f"checkpoint '{path}' does not match this run's config "
                                  f"({type(exc).__name__}: {exc}).") from None
        self.step = step
        self.log.truncate_after(step)

    @property
    def sampling_generator(self) -> nn.Module:
        """G, or its EMA copy when the objective keeps one."""
        return distributed.unwrap(self.task.sampling_generator)

    @torch.no_grad()
    def sample_fixed(self) -> torch.Tensor:
        """G's samples of the fixed latents (grids, the diversity signal). Forked RNG: a
        stochastic layer (Gumbel noise) must not move training's stream, or how often a run
        logs would change its weights."""
        G = self.sampling_generator
        was = G.training
        G.eval()
        try:
            with fork_rng(), torch.no_grad():
                return G(self.fixed_z)
        finally:
            G.train(was)

    def save_grid(self) -> Path:
        if not self.dist.is_writer:
            return self.run_dir / "samples"
        if (path := self.task.save_samples(self)) is not None:  # tables: CSV; translations
            return path
        path = self.run_dir / "samples" / f"step_{self.step:08d}.png"
        if isinstance(self.data.info.get("music"), dict):  # a piano roll + the notes (report)
            return save_music_samples(self.sample_fixed().cpu().numpy(),
                                      self.data.x[:SAMPLE_MELODIES].cpu().numpy(), path,
                                      self.data.info)
        ref = None
        if self.data.kind == "vector" and self.data.shape == (2,):
            ref = torch.tensor(self.data.info["means"]) if "means" in self.data.info else None
        return save_samples_picture(self.sample_fixed(), path, self.data.kind, ref)

    # ---------------------------------------------------------------------------- loop
    def fit(self, on_step: Callable[[Trainer], None] | None = None) -> Path:
        cfg = self.cfg.monitor
        bar = Progress(cfg.progress, self.total_steps, self.step, self.cfg.name)
        sums: dict[str, torch.Tensor] = {}
        counts: dict[str, int] = {}
        images = 0
        t_window = time.perf_counter()
        start = time.perf_counter()
        self.G.train()
        self.D.train()
        self.guard.install()
        try:
            if self.cfg.train.on_nan == "rollback" and not ckpt.list_checkpoints(self.run_dir):
                self.save()  # a good state to roll back to
            while self.step < self.total_steps:
                if self.schedules:  # lr of this step: a function of the step (exact resume)
                    self.schedules.apply(self.step, self.total_steps, self.lr_scale)
                with self.autocast():
                    stats = self.task.train_step(self.batcher.next)
                self.step += 1
                self.guard.track(stats)
                images += int(stats.pop("images"))
                for k, v in stats.items():  # a mean per key over the steps that logged it
                    sums[k] = sums[k] + v if k in sums else v.clone()
                    counts[k] = counts.get(k, 0) + 1
                for cb in self.callbacks:
                    cb.on_step(self, stats)
                bar.update(1)
                last = self.step == self.total_steps
                if self.step % cfg.log_every == 0 or last:
                    now = time.perf_counter()
                    record = {"kind": "train", "step": self.step, "epoch": self.batcher.epoch,
                              "time": round(now - start, 3)}
                    record.update({k: float(v) / counts[k] for k, v in sums.items()})
                    record["images_per_s"] = images / max(now - t_window, 1e-9)
                    for cb in self.callbacks:
                        cb.on_log(self, record)
                    self.log.write(record)
                    bar.set_postfix({k: f"{record[k]:.3g}" for k in
                                     ("d_loss", "g_loss", "d_real", "d_fake", "images_per_s")
                                     if k in record}, refresh=False)
                    sums, counts, images, t_window = {}, {}, 0, time.perf_counter()
                due_ckpt = self.step % self.cfg.train.checkpoint_every == 0 or last
                if problem := self.guard.check(due_ckpt or self.step % cfg.log_every == 0):
                    self.guard.recover(problem)  # raises, or rolls back to a good checkpoint
                    sums, counts, images, t_window = {}, {}, 0, time.perf_counter()
                    bar.reset_to(self.step)
                    continue
                if self.step % cfg.sample_every == 0 or last:
                    self.save_grid()
                if due_ckpt:
                    self.save()
                if on_step is not None:
                    on_step(self)
                if self.guard.stop_signal() is not None:
                    self.guard.stop_for_signal(saved_this_step=due_ckpt)
        finally:
            self.guard.uninstall()
            bar.close()
        for cb in self.callbacks:
            cb.on_end(self)
        return self.run_dir

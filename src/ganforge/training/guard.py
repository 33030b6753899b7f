"""Run guard: what keeps a training run alive and its state safe.

The Trainer owns one ``RunGuard``; ``Trainer.fit`` calls it at a few points:

- **Divergence** (``train.on_nan``): every step's losses are folded into one device-side flag.
  On the CPU the flag is read every step (free there); on a GPU only at log steps, to avoid a
  device sync per step. At each log step and before each checkpoint the parameters, buffers
  and last gradients are also checked for NaN/inf, so a checkpoint never holds non-finite
  weights. On divergence, ``stop`` raises ``TrainingDiverged``; ``rollback``
  restores the newest checkpoint that verifies, multiplies every learning rate by
  ``train.nan_lr_factor`` (cumulatively), writes a ``kind: alarm`` line to the metric log and
  continues, at most ``train.max_rollbacks`` times.
- **Signals**: SIGINT/SIGTERM during ``fit`` only set a flag; the current step finishes, a
  checkpoint is written, and ``TrainingInterrupted`` ends the run (exit status 130 / 143 from
  the CLI). A second signal interrupts at once.
- **Determinism** (``train.deterministic``): ``torch.use_deterministic_algorithms`` while
  fitting, so a run killed at any moment and resumed ends with the same weights.

Its own state (rollback count, learning-rate factor) is saved in checkpoints.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

import torch

from ganforge import checkpoint as ckpt
from ganforge.errors import GanforgeError, RunFailed, SpecError
from ganforge.monitor.report import write_report


class TrainingDiverged(RunFailed):
    """A loss, gradient or weight became NaN or infinite (exit status 1: the run failed)."""


class TrainingInterrupted(GanforgeError):
    """SIGINT/SIGTERM stopped the run after a checkpoint; ``exit_code`` is 128 + signal."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + int(signum)


def _all_finite(tensors: list[torch.Tensor]) -> bool:
    floats = [t for t in tensors if t.is_floating_point() or t.is_complex()]
    if not floats:
        return True
    return bool(torch.stack([torch.isfinite(t).all() for t in floats]).all())


def _callback_key(i: int, cb: Any) -> str:
    return f"{i}.{type(cb).__name__}"


def callback_states(callbacks: list[Any]) -> dict[str, Any]:
    """The ``state_dict()`` of every callback that has one (EMA weights, alarm state, ...),
    keyed by position and class name, so checkpoints hold them too."""
    return {_callback_key(i, cb): cb.state_dict() for i, cb in enumerate(callbacks)
            if callable(getattr(cb, "state_dict", None))}


def load_callback_states(callbacks: list[Any], states: dict[str, Any]) -> None:
    for i, cb in enumerate(callbacks):
        key = _callback_key(i, cb)
        if key in states and callable(getattr(cb, "load_state_dict", None)):
            cb.load_state_dict(states[key])


@torch.no_grad()
def dry_run(generator: torch.nn.Module, discriminator: torch.nn.Module,
            latent_shape: tuple[int, ...], device: torch.device) -> None:
    """Run G and D once on two all-zero inputs of their declared input shapes (``in_shape`` of
    a spec-built network) in eval mode (no RNG draw, no state change), so a spec that passes
    shape inference but fails in PyTorch is a SpecError before training. Networks without
    ``in_shape`` (built by a task in another way) are skipped."""
    g_was, d_was = generator.training, discriminator.training
    generator.eval()
    discriminator.eval()
    try:
        g_in = getattr(generator, "in_shape", latent_shape)
        d_in = getattr(discriminator, "in_shape", None)
        generator(torch.zeros((2, *g_in), device=device))
        if d_in is not None:
            discriminator(torch.zeros((2, *d_in), device=device))
    except (RuntimeError, ValueError, TypeError, IndexError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SpecError(f"the networks pass shape inference but fail in a test forward pass: "
                        f"{first}. Check the layer arguments of the generator and "
                        f"discriminator specs.") from None
    finally:
        generator.train(g_was)
        discriminator.train(d_was)


class RunGuard:
    def __init__(self, trainer: Any) -> None:
        self.trainer = trainer
        self.cfg = trainer.cfg.train
        self.rollbacks = 0
        self.lr_factor = 1.0
        self._bad: torch.Tensor | None = None
        self._bad_keys: set[str] = set()
        self.signal: int | None = None
        self._old_handlers: dict[int, Any] = {}
        self._old_deterministic: bool | None = None

    # ------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        return {"rollbacks": self.rollbacks, "lr_factor": self.lr_factor}

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        state = state or {}
        self.rollbacks = int(state.get("rollbacks", 0))
        self.lr_factor = float(state.get("lr_factor", 1.0))

    # --------------------------------------------------------------------- divergence
    def track(self, stats: dict[str, Any]) -> None:
        """Fold this step's losses into the non-finite flag (stays on the device)."""
        for k in ("d_loss", "g_loss"):
            v = stats.get(k)
            if isinstance(v, torch.Tensor):
                bad = ~torch.isfinite(v).all()
                self._bad = bad if self._bad is None else self._bad | bad
                self._bad_keys.add(k)

    def check(self, due: bool) -> str | None:
        """At a log/checkpoint step (``due``): the full check. Between them, on the CPU (where
        reading the flag costs no device sync) the loss flag alone, so divergence is caught at
        the step it happens."""
        if due:
            return self.problem()
        if self.trainer.device.type == "cpu" and self._bad is not None and bool(self._bad):
            return self.problem()
        return None

    def problem(self, weights: bool = True) -> str | None:
        """Sync once: a description of what is non-finite since the last check, or None."""
        reasons = []
        if self._bad is not None and bool(self._bad):
            reasons.append("a loss (" + ", ".join(sorted(self._bad_keys)) + ") is not finite")
        self._bad, self._bad_keys = None, set()
        for name, m in (self.trainer.modules().items() if weights else ()):
            params = list(m.parameters())
            if not _all_finite([p.detach() for p in params] + [b for b in m.buffers()]):
                reasons.append(f"the {name} weights are not finite")
            elif not _all_finite([p.grad for p in params if p.grad is not None]):
                reasons.append(f"the {name} gradients are not finite")
        return "; ".join(reasons) or None

    def _stop(self, message: str) -> None:
        """Record the divergence as an alarm (unless the monitor already did), refresh the
        report, and end the run."""
        t = self.trainer
        monitor = getattr(t, "monitor", None)
        if not any(a.alarm == "divergence" for a in getattr(monitor, "alarms", [])):
            t.log.write({"kind": "alarm", "step": t.step, "alarm": "divergence",
                         "message": message})
        if monitor is not None and monitor.cfg.report:
            write_report(t.run_dir)
        raise TrainingDiverged(message)

    def recover(self, reason: str) -> None:
        """Stop (raise TrainingDiverged) or roll back to the newest good checkpoint."""
        t = self.trainer
        at = t.step
        advice = ("Lower the learning rates, or add a gradient penalty or spectral norm; or set "
                  "train.on_nan=rollback to restore the last good checkpoint automatically.")
        last = (f"The last good checkpoint is in {t.run_dir / ckpt.CKPT_DIR}."
                if ckpt.list_checkpoints(t.run_dir) else "No checkpoint had been written yet.")
        if self.cfg.on_nan == "stop":
            self._stop(f"training diverged at step {at}: {reason}. {advice} {last}")
        if self.rollbacks >= self.cfg.max_rollbacks:
            self._stop(
                f"training diverged at step {at}: {reason}, after {self.rollbacks} rollback(s) "
                f"(train.max_rollbacks={self.cfg.max_rollbacks}) with learning rates at "
                f"{self.lr_factor:g}x the configured ones. Lower optim.*.lr, or add a gradient "
                f"penalty or spectral norm. {last}")
        path = ckpt.latest_checkpoint(t.run_dir)
        rollbacks, factor = self.rollbacks, self.lr_factor
        t.restore(path)  # loads this guard's state as saved in the checkpoint
        new_factor = factor * self.cfg.nan_lr_factor
        scale = new_factor / self.lr_factor
        for opt in t.task.optimizers().values():
            for group in opt.param_groups:
                group["lr"] = group["lr"] * scale
        self.rollbacks, self.lr_factor = rollbacks + 1, new_factor
        self._bad, self._bad_keys = None, set()
        for m in t.modules().values():
            for p in m.parameters():
                p.grad = None
        t.log.write({
            "kind": "alarm", "step": t.step, "alarm": "nan_rollback",
            "message": (f"training diverged at step {at} ({reason}); rolled back to step "
                        f"{t.step} ({path.name}) and scaled the learning rates to "
                        f"{new_factor:g}x the configured ones (rollback {self.rollbacks} of "
                        f"at most {self.cfg.max_rollbacks})."),
            "diverged_at": at, "rollback": self.rollbacks, "lr_factor": new_factor,
        })

    # -------------------------------------------------------------------------- signals
    def install(self) -> None:
        """Catch SIGINT/SIGTERM for the duration of ``fit`` (main thread only)."""
        self.signal = None
        if self.cfg.deterministic:
            self._old_deterministic = torch.are_deterministic_algorithms_enabled()
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.benchmark = False
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old_handlers[sig] = signal.signal(sig, self._on_signal)
            except (ValueError, OSError):  # pragma: no cover - unusual embedding
                pass

    def uninstall(self) -> None:
        for sig, old in self._old_handlers.items():
            signal.signal(sig, old)
        self._old_handlers = {}
        if self._old_deterministic is not None:
            torch.use_deterministic_algorithms(self._old_deterministic)
            self._old_deterministic = None

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.signal is not None:  # second signal: stop now
            raise KeyboardInterrupt
        self.signal = signum

    def stop_signal(self) -> int | None:
        """The signal to stop for after this step (None: go on)."""
        return self.signal

    def stop_for_signal(self, saved_this_step: bool) -> None:
        """Write a checkpoint (unless one was just written) and raise TrainingInterrupted."""
        t = self.trainer
        signum = int(self.signal or signal.SIGINT)
        if not saved_this_step:
            reason = self.problem()
            if reason is not None:  # never checkpoint non-finite weights
                raise TrainingDiverged(f"stopped by signal at step {t.step}, but the run had "
                                       f"diverged ({reason}); no checkpoint was written. The "
                                       f"last good one is in {t.run_dir / ckpt.CKPT_DIR}.")
            t.save()
        name = signal.Signals(signum).name
        raise TrainingInterrupted(
            f"{name} received: stopped after step {t.step} with a checkpoint in "
            f"{t.run_dir / ckpt.CKPT_DIR}. Continue with: ganforge train --resume {t.run_dir}",
            signum)


"""The CUDA path, checked on a machine with a GPU (CI has none): train, resume, sample, bf16.

Each check prints one line ``name: value`` and the script exits non-zero if one fails:

- **resume**: ``dcgan-mnist`` (small budget, ``train.deterministic: true``) trained 40 steps
  straight on the GPU, and the same run stopped by SIGINT after step 20 then resumed: the
  generator weights must match exactly.
- **cpu vs cuda**: the same 40 steps on the CPU; the largest weight difference to the GPU run
  is printed (float reductions differ between devices, so it is reported, not asserted).
- **sample**: a CUDA-trained run loads and samples on the CPU (the checkpoint is device-free).
- **latent walk / labels**: a run loaded onto the GPU walks its latent space; a conditional run
  samples (with its per-class filter) from labels given as a GPU tensor.
- **bf16**: 40 steps under ``train.precision: bf16`` autocast on the GPU: finite losses.
- **speed**: steps/s of ``dcgan-mnist`` (batch 32, its own networks) on the GPU, from the
  trainer's clock, over 1,000 steps after 100 warm-up steps, fp32 and bf16.

    python benchmarks/cuda_check.py            # needs torch with CUDA and a GPU
    python benchmarks/cuda_check.py cpu        # the same checks on the CPU (a dry run)
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import torch

import ganforge
from ganforge.training.guard import TrainingInterrupted


class InterruptAt:
    """Sends this process SIGINT after step ``step``: the trainer checkpoints and stops."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step(self, trainer: object, stats: dict) -> None:
        if trainer.step == self.step:  # type: ignore[attr-defined]
            os.kill(os.getpid(), signal.SIGINT)

    def on_log(self, trainer: object, record: dict) -> None:
        pass

    def on_end(self, trainer: object) -> None:
        pass


def weights(run: ganforge.Run) -> dict[str, torch.Tensor]:
    return {k: v.detach().float().cpu() for k, v in run.generator.state_dict().items()}


def max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def overrides(steps: int, device: str, *extra: str) -> list[str]:
    return [f"train.steps={steps}", "train.checkpoint_every=20", f"device={device}",
            "monitor.sample_every=100000", "monitor.progress=false", *extra]


def main() -> int:
    dev = sys.argv[1] if len(sys.argv) > 1 else "cuda"
    if dev == "cuda" and not torch.cuda.is_available():
        print("cuda_check: no CUDA GPU here (torch.cuda.is_available() is False)")
        return 2
    print(f"torch {torch.__version__}, "
          f"{torch.cuda.get_device_name() if dev == 'cuda' else 'cpu dry run'}")
    failed, start = [], time.time()
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        det = "train.deterministic=true"
        full = ganforge.train("dcgan-mnist", overrides=overrides(40, dev, det),
                              run_dir=t / "full")
        try:  # the same run stopped by SIGINT after step 20 (its lr schedule spans 40 steps)
            ganforge.train("dcgan-mnist", overrides=overrides(40, dev, det), run_dir=t / "half",
                           callbacks=[InterruptAt(20)])
        except TrainingInterrupted:
            pass
        resumed = ganforge.train("dcgan-mnist", overrides=overrides(40, dev, det),
                                 resume=t / "half")
        d = max_diff(weights(full), weights(resumed))
        print(f"resume ({dev}, deterministic): max |w_full - w_resumed| = {d:.3g}")
        if d != 0.0:
            failed.append("resume")
        cpu = ganforge.train("dcgan-mnist", overrides=overrides(40, "cpu", det), run_dir=t / "cpu")
        print(f"cpu vs {dev} after 40 steps: max |w_cpu - w_cuda| = "
              f"{max_diff(weights(cpu), weights(full)):.3g}")
        loaded = ganforge.load(t / "full")
        x = loaded.sample(16, seed=0)
        ok = x.device.type == "cpu" and x.shape == (16, 1, 28, 28) and bool(torch.isfinite(x).all())
        print(f"sample on cpu from a {dev} run: shape {tuple(x.shape)}, device {x.device}, "
              f"finite {bool(torch.isfinite(x).all())}")
        if not ok:
            failed.append("sample")
        # a run kept on the GPU: latent walks and (conditional) labels given as GPU tensors
        from ganforge.latent import latent_walk

        on_dev = ganforge.load(t / "full", device=dev)
        _, xs = latent_walk(on_dev, pairs=2, steps=5)
        ok = tuple(xs.shape) == (2, 5, 1, 28, 28) and bool(torch.isfinite(xs).all())
        print(f"latent walk of a run loaded on {dev}: samples {tuple(xs.shape)}, ok {ok}")
        if not ok:
            failed.append("latent walk")
        cond = ganforge.train("projection-mnist", overrides=overrides(20, dev), run_dir=t / "cond")
        y = torch.tensor([3, 7, 3, 7], device=dev)
        xc = cond.sample(4, seed=0, labels=y)  # the preset's per-class D filter
        ok = tuple(xc.shape) == (4, 1, 28, 28) and bool(torch.isfinite(xc).all())
        print(f"conditional sample with labels on {dev}: {tuple(xc.shape)}, ok {ok}")
        if not ok:
            failed.append("conditional labels")
        bf = ganforge.train("dcgan-mnist", overrides=overrides(40, dev, "train.precision=bf16"),
                            run_dir=t / "bf16")
        recs = [json.loads(s) for s in (t / "bf16" / "metrics.jsonl").read_text().splitlines()]
        losses = [r["d_loss"] for r in recs if "d_loss" in r]
        finite = bool(losses) and all(math.isfinite(v) for v in losses)
        print(f"bf16 on {dev}: {len(losses)} logged D losses, all finite: {finite}; "
              f"step {bf.step}")
        if not finite:
            failed.append("bf16")
        speed_steps = 1100 if dev == "cuda" else 300
        for prec in ("fp32", "bf16"):
            ganforge.train("dcgan-mnist", overrides=[
                f"train.steps={speed_steps}", "train.checkpoint_every=100000", f"device={dev}",
                f"train.precision={prec}", "monitor.sample_every=100000",
                "monitor.progress=false", "monitor.log_every=100"], run_dir=t / f"speed-{prec}")
            recs = [json.loads(s) for s in
                    (t / f"speed-{prec}" / "metrics.jsonl").read_text().splitlines()]
            clock = {r["step"]: r["time"] for r in recs if r.get("kind") == "train"}
            rate = (speed_steps - 100) / (clock[speed_steps] - clock[100])
            print(f"speed dcgan-mnist batch 32 {prec} on {dev}: {rate:.1f} steps/s "
                  f"({32 * rate:.0f} images/s)")
    print(f"failed: {failed or 'none'} ({time.time() - start:.0f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

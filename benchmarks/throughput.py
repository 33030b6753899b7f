"""Training-step throughput: ganforge's trainer vs a hand-written PyTorch loop vs Keras 3.

Side by side in one run, same networks (the TensorFlow DCGAN tutorial's, `dcgan-mnist`, and the
classic 64x64 DCGAN, `dcgan-64`), same batch size, same data, same number of timed steps after
warm-up, same thread count. Each measurement runs in its own subprocess so the memory peak (RSS)
belongs to that setting alone. Prints images/s, the ratio to the reference loop, achieved GFLOP/s
(FLOPs counted from the layer shapes) and that as a fraction of the machine's measured matmul
peak; appends a Markdown table to benchmarks/RESULTS.md with --write.

    python benchmarks/throughput.py                 # full run
    python benchmarks/throughput.py --quick         # fewer steps, one batch size
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

HERE = Path(__file__).resolve().parent

# Every setting names its memory format: the dcgan-mnist preset turns channels_last on, the
# dcgan-64 preset does not, and the rows must mean the same on both.
_NCHW = ["train.channels_last=false"]
GANFORGE_SETTINGS = {
    "ganforge fp32": _NCHW,
    "ganforge fp32 dataloader": _NCHW + ["train.batching=dataloader"],
    "ganforge fp32 fused adam": _NCHW + ["optim.g.impl=fused", "optim.d.impl=fused"],
    "ganforge fp32 loop adam": _NCHW + ["optim.g.impl=loop", "optim.d.impl=loop"],
    "ganforge fp32 channels_last": ["train.channels_last=true"],
    "ganforge bf16": _NCHW + ["train.precision=bf16"],
    "ganforge bf16 channels_last": ["train.precision=bf16", "train.channels_last=true"],
    "ganforge bf16 compile": _NCHW + ["train.precision=bf16", "train.compile=true"],
    "ganforge fp32 compile": _NCHW + ["train.compile=true"],
    "ganforge fp32 channels_last compile": ["train.channels_last=true", "train.compile=true"],
}


# --------------------------------------------------------------------------- data
def mnist_images(size: int) -> np.ndarray:
    """Real MNIST train digits as uint8 (N, C, size, size): 1 channel at 28, RGB at 64."""
    from ganforge.data.registry import mnist_arrays

    x, _ = mnist_arrays("train")
    if size == 28:
        return x[:, None]
    t = torch.from_numpy(x).float()[:, None]
    t = torch.nn.functional.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)
    return t.clamp(0, 255).round().to(torch.uint8).repeat(1, 3, 1, 1).numpy()


def arch_overrides(arch: str, data_path: Path, batch: int, steps: int) -> list[str]:
    common = [f"train.batch_size={batch}", "train.epochs=null", f"train.steps={steps}",
              "monitor.progress=false", f"monitor.sample_every={10**9}",
              f"train.checkpoint_every={10**9}", "monitor.log_every=10", "device=cpu"]
    if arch == "dcgan-64":
        return common + [f"data.source=npy:{data_path}", "data.image_size=[3,64,64]"]
    return common


# -------------------------------------------------------------------------- FLOPs
def forward_macs(net: nn.Module, in_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of one forward pass of a spec network, from its layer shapes."""
    from ganforge.architecture.builder import SpecNet

    assert isinstance(net, SpecNet)
    macs = 0
    for plan in net.plans:
        a, i, o = plan.args, plan.in_shape, plan.out_shape
        if plan.type == "dense":
            macs += int(np.prod(o)) * i[-1]
        elif plan.type == "conv2d":
            k = a["kernel"] if isinstance(a["kernel"], (list, tuple)) else (a["kernel"],) * 2
            macs += o[0] * o[1] * o[2] * i[0] * k[0] * k[1]
        elif plan.type == "conv_transpose2d":
            k = a["kernel"] if isinstance(a["kernel"], (list, tuple)) else (a["kernel"],) * 2
            macs += i[0] * i[1] * i[2] * o[0] * k[0] * k[1]
    return macs


def step_flops(arch: str, batch: int) -> float:
    """FLOPs of one GAN iteration (D step on real+fake, G step through D), 2 FLOPs per MAC.

    Backward costs 2x forward (input and weight gradients); in the G step D is frozen, so D's
    backward there computes input gradients only (1x)."""
    from ganforge.api import load_config
    from ganforge.architecture import build_network

    cfg = load_config(arch if arch == "dcgan-mnist" else "dcgan-64")
    shape = (1, 28, 28) if arch == "dcgan-mnist" else (3, 64, 64)
    g = build_network(cfg.generator.model_dump(), cfg.latent.full_shape, "g")
    d = build_network(cfg.discriminator.model_dump(), shape, "d")
    gm, dm = forward_macs(g, cfg.latent.full_shape), forward_macs(d, shape)
    per_sample = 3 * gm + (3 + 3) * dm + (1 + 1) * dm
    return 2.0 * per_sample * batch


def matmul_peak(dtype: torch.dtype, max_n: int = 2048, budget_s: float = 2.0) -> float:
    """GFLOP/s of a square matmul: n doubles from 256 while one call takes under 50 ms (up to
    max_n), then calls repeat for about budget_s. Bounded in time on CPUs where the dtype
    is slow (bf16 without AVX-512 runs at well under 1 GFLOP/s)."""
    n = 256
    while True:
        a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
        t = time.perf_counter()
        a @ b
        one = time.perf_counter() - t
        if one > 0.05 or n >= max_n:
            break
        n *= 2
    a @ b
    reps, t = 0, time.perf_counter()
    while reps < 3 or time.perf_counter() - t < budget_s:
        a @ b
        reps += 1
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e9


# ---------------------------------------------------------------- reference loops
def tutorial_networks(arch: str) -> tuple[nn.Module, nn.Module]:
    """The same networks written by hand, the way the tutorials write them."""
    if arch == "dcgan-mnist":
        g = nn.Sequential(
            nn.Linear(100, 7 * 7 * 256, bias=False), nn.BatchNorm1d(7 * 7 * 256), nn.LeakyReLU(0.3),
            nn.Unflatten(1, (256, 7, 7)),
            nn.ConvTranspose2d(256, 128, 5, 1, 2, bias=False), nn.BatchNorm2d(128), nn.LeakyReLU(0.3),
            nn.ConvTranspose2d(128, 64, 5, 2, 2, 1, bias=False), nn.BatchNorm2d(64), nn.LeakyReLU(0.3),
            nn.ConvTranspose2d(64, 1, 5, 2, 2, 1, bias=False), nn.Tanh())
        d = nn.Sequential(
            nn.ZeroPad2d((1, 2, 1, 2)), nn.Conv2d(1, 64, 5, 2), nn.LeakyReLU(0.3), nn.Dropout(0.3),
            nn.ZeroPad2d((1, 2, 1, 2)), nn.Conv2d(64, 128, 5, 2), nn.LeakyReLU(0.3), nn.Dropout(0.3),
            nn.Flatten(), nn.Linear(128 * 7 * 7, 1))
        return g, d
    g = nn.Sequential(
        nn.Unflatten(1, (100, 1, 1)),
        nn.ConvTranspose2d(100, 512, 4, 1, 0, bias=False), nn.BatchNorm2d(512), nn.ReLU(),
        nn.ConvTranspose2d(512, 256, 4, 2, 1, bias=False), nn.BatchNorm2d(256), nn.ReLU(),
        nn.ConvTranspose2d(256, 128, 4, 2, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU(),
        nn.ConvTranspose2d(128, 64, 4, 2, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
        nn.ConvTranspose2d(64, 3, 4, 2, 1, bias=False), nn.Tanh())
    d = nn.Sequential(
        nn.Conv2d(3, 64, 4, 2, 1, bias=False), nn.LeakyReLU(0.2),
        nn.Conv2d(64, 128, 4, 2, 1, bias=False), nn.BatchNorm2d(128), nn.LeakyReLU(0.2),
        nn.Conv2d(128, 256, 4, 2, 1, bias=False), nn.BatchNorm2d(256), nn.LeakyReLU(0.2),
        nn.Conv2d(256, 512, 4, 2, 1, bias=False), nn.BatchNorm2d(512), nn.LeakyReLU(0.2),
        nn.Conv2d(512, 1, 4, 1, 0, bias=False), nn.Flatten())
    return g, d


def reference_loop(arch: str, images: np.ndarray, batch: int, lr: float = 2e-4,
                   betas: tuple[float, float] = (0.5, 0.999), simultaneous: bool = False,
                   seed: int = 0) -> tuple[nn.Module, Iterator[None]]:
    """A plain PyTorch loop: DataLoader over a TensorDataset (shuffled, last partial batch
    dropped), BCE-with-logits, Adam. Returns G and an endless iterator, one training step per
    ``next()``.

    Sequential (default, PyTorch's DCGAN example): a D step on real and ``fake.detach()``, then
    a G step through the updated D. ``simultaneous`` (the TensorFlow DCGAN tutorial's
    ``train_step``): one forward pass of G and D on real and fake, both losses from it, both
    gradients taken before either optimizer steps."""
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(seed)
    g, d = tutorial_networks(arch)
    x = torch.from_numpy(images).float() / 127.5 - 1
    opt_g = torch.optim.Adam(g.parameters(), lr, betas=betas)
    opt_d = torch.optim.Adam(d.parameters(), lr, betas=betas)
    bce = nn.BCEWithLogitsLoss()
    g_params, d_params = list(g.parameters()), list(d.parameters())

    def steps() -> Iterator[None]:
        loader = DataLoader(TensorDataset(x), batch_size=batch, shuffle=True, drop_last=True)
        while True:
            for (real,) in loader:
                z = torch.randn(batch, 100)
                fake = g(z)
                if simultaneous:
                    out_r, out_f = d(real), d(fake)
                    loss_g = bce(out_f, torch.ones_like(out_f))
                    loss_d = bce(out_r, torch.ones_like(out_r)) + bce(out_f, torch.zeros_like(out_f))
                    opt_g.zero_grad()
                    opt_d.zero_grad()
                    loss_g.backward(retain_graph=True, inputs=g_params)
                    loss_d.backward(inputs=d_params)
                    opt_g.step()
                    opt_d.step()
                else:
                    opt_d.zero_grad()
                    out_r, out_f = d(real), d(fake.detach())
                    loss_d = bce(out_r, torch.ones_like(out_r)) + bce(out_f, torch.zeros_like(out_f))
                    loss_d.backward()
                    opt_d.step()
                    opt_g.zero_grad()
                    out = d(fake)
                    loss_g = bce(out, torch.ones_like(out))
                    loss_g.backward()
                    opt_g.step()
                yield

    return g, steps()


def run_reference(arch: str, images: np.ndarray, batch: int, warmup: int, steps: int) -> float:
    """Images/s of ``reference_loop`` (sequential, DCGAN's Adam 2e-4, beta1 0.5)."""
    _, loop = reference_loop(arch, images, batch)
    for _ in range(warmup):
        next(loop)
    t0 = time.perf_counter()
    for _ in range(steps):
        next(loop)
    return steps * batch / (time.perf_counter() - t0)


def keras_gan(arch: str, lr: float = 2e-4, beta_1: float = 0.5, simultaneous: bool = False,
              seed: int = 0) -> Any:
    """The same networks in Keras 3 on the torch backend: a compiled ``keras.Model`` with a
    custom ``train_step`` (``.g`` is the generator); train it with ``fit`` on NHWC images in
    [-1, 1]. Updates as ``reference_loop``: sequential (the Keras DCGAN example) or
    ``simultaneous`` (the TensorFlow tutorial); Keras' Adam (epsilon 1e-7)."""
    os.environ["KERAS_BACKEND"] = "torch"
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    if arch == "dcgan-mnist":
        g = keras.Sequential([
            keras.Input((100,)), layers.Dense(7 * 7 * 256, use_bias=False),
            layers.BatchNormalization(), layers.LeakyReLU(0.3), layers.Reshape((7, 7, 256)),
            layers.Conv2DTranspose(128, 5, 1, padding="same", use_bias=False),
            layers.BatchNormalization(), layers.LeakyReLU(0.3),
            layers.Conv2DTranspose(64, 5, 2, padding="same", use_bias=False),
            layers.BatchNormalization(), layers.LeakyReLU(0.3),
            layers.Conv2DTranspose(1, 5, 2, padding="same", use_bias=False, activation="tanh")])
        d = keras.Sequential([
            keras.Input((28, 28, 1)), layers.Conv2D(64, 5, 2, padding="same"), layers.LeakyReLU(0.3),
            layers.Dropout(0.3), layers.Conv2D(128, 5, 2, padding="same"), layers.LeakyReLU(0.3),
            layers.Dropout(0.3), layers.Flatten(), layers.Dense(1)])
    else:
        g = keras.Sequential([keras.Input((100,)), layers.Reshape((1, 1, 100))] + [
            lyr for f, s, p in ((512, 1, "valid"), (256, 2, "same"), (128, 2, "same"), (64, 2, "same"))
            for lyr in (layers.Conv2DTranspose(f, 4, s, padding=p, use_bias=False),
                        layers.BatchNormalization(), layers.ReLU())] + [
            layers.Conv2DTranspose(3, 4, 2, padding="same", use_bias=False, activation="tanh")])
        d = keras.Sequential([keras.Input((64, 64, 3)), layers.Conv2D(64, 4, 2, padding="same",
                                                                     use_bias=False),
                              layers.LeakyReLU(0.2)] + [
            lyr for f in (128, 256, 512)
            for lyr in (layers.Conv2D(f, 4, 2, padding="same", use_bias=False),
                        layers.BatchNormalization(), layers.LeakyReLU(0.2))] + [
            layers.Conv2D(1, 4, 1, padding="valid", use_bias=False), layers.Flatten()])

    class GAN(keras.Model):
        def __init__(self, g, d):
            super().__init__()
            self.g, self.d = g, d
            self.bce = keras.losses.BinaryCrossentropy(from_logits=True)

        def compile(self, g_opt, d_opt):
            super().compile()
            self.g_opt, self.d_opt = g_opt, d_opt

        def train_step(self, real):
            n = keras.ops.shape(real)[0]
            z = keras.random.normal((n, 100))
            fake = self.g(z, training=True)
            if simultaneous:
                return self.simultaneous_step(real, fake)
            self.zero_grad()
            out_r = self.d(real, training=True)
            out_f = self.d(fake.detach(), training=True)
            loss_d = (self.bce(keras.ops.ones_like(out_r), out_r)
                      + self.bce(keras.ops.zeros_like(out_f), out_f))
            loss_d.backward()
            grads = [v.value.grad for v in self.d.trainable_weights]
            with torch.no_grad():
                self.d_opt.apply(grads, self.d.trainable_weights)
            self.zero_grad()
            out = self.d(fake, training=True)
            loss_g = self.bce(keras.ops.ones_like(out), out)
            loss_g.backward()
            grads = [v.value.grad for v in self.g.trainable_weights]
            with torch.no_grad():
                self.g_opt.apply(grads, self.g.trainable_weights)
            return {"d": loss_d, "g": loss_g}

        def simultaneous_step(self, real, fake):
            out_r = self.d(real, training=True)
            out_f = self.d(fake, training=True)
            loss_g = self.bce(keras.ops.ones_like(out_f), out_f)
            loss_d = (self.bce(keras.ops.ones_like(out_r), out_r)
                      + self.bce(keras.ops.zeros_like(out_f), out_f))
            self.zero_grad()
            g_vars, d_vars = self.g.trainable_weights, self.d.trainable_weights
            loss_g.backward(retain_graph=True, inputs=[v.value for v in g_vars])
            loss_d.backward(inputs=[v.value for v in d_vars])
            g_grads = [v.value.grad for v in g_vars]
            d_grads = [v.value.grad for v in d_vars]
            with torch.no_grad():
                self.g_opt.apply(g_grads, g_vars)
                self.d_opt.apply(d_grads, d_vars)
            return {"d": loss_d, "g": loss_g}

    gan = GAN(g, d)
    gan.built = True  # g and d are built from their Input layers; Keras 3.15 would otherwise
    # trace GAN.call, which a GAN with a custom train_step does not define
    gan.compile(keras.optimizers.Adam(lr, beta_1=beta_1), keras.optimizers.Adam(lr, beta_1=beta_1))
    return gan


def keras_images(images: np.ndarray) -> np.ndarray:
    """uint8 (N, C, H, W) -> float32 (N, H, W, C) in [-1, 1], as Keras takes them."""
    return (images.astype(np.float32) / 127.5 - 1).transpose(0, 2, 3, 1)


def run_keras(arch: str, images: np.ndarray, batch: int, warmup: int, steps: int) -> float:
    """Images/s of ``keras_gan`` (sequential, Adam 2e-4, beta1 0.5) under ``fit``."""
    gan = keras_gan(arch)  # sets KERAS_BACKEND=torch before keras is first imported
    import keras

    x = keras_images(images)
    n_batches = len(x) // batch

    class Timer(keras.callbacks.Callback):
        t0 = None

        def on_train_batch_begin(self, b, logs=None):
            if b == warmup:
                Timer.t0 = time.perf_counter()

    total = warmup + steps
    epochs = -(-total // n_batches)
    reps = np.concatenate([x] * epochs)[: total * batch]
    gan.fit(reps, batch_size=batch, epochs=1, verbose=0, shuffle=False, callbacks=[Timer()])
    return steps * batch / (time.perf_counter() - Timer.t0)


def run_ganforge(arch: str, overrides: list[str], warmup: int) -> float:
    from ganforge.api import load_config
    from ganforge.training.trainer import Trainer

    cfg = load_config(arch, overrides)

    class Clock:  # times training steps only: the final sample grid and checkpoint are not
        t0 = t1 = None  # steps (and would make a compiled G recompile for eval mode)

        def on_step(self, tr, stats):
            if tr.step == warmup:
                Clock.t0 = time.perf_counter()
            elif tr.step == tr.total_steps:
                stats["d_loss"].item()  # wait for the last step's work (async devices)
                Clock.t1 = time.perf_counter()

        def on_log(self, tr, record):
            pass

        def on_end(self, tr):
            pass

    with tempfile.TemporaryDirectory() as tmp:
        tr = Trainer(cfg, Path(tmp) / "run", callbacks=[Clock()])
        tr.fit()
        return (tr.total_steps - warmup) * cfg.train.batch_size / (Clock.t1 - Clock.t0)


# ---------------------------------------------------------------------- driver
def worker(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    images = np.load(args.data) if args.data else mnist_images(28)
    if args.setting == "reference":
        ips = run_reference(args.arch, images, args.batch, args.warmup, args.steps)
    elif args.setting == "keras":
        ips = run_keras(args.arch, images, args.batch, args.warmup, args.steps)
    else:
        ov = arch_overrides(args.arch, Path(args.data) if args.data else Path(), args.batch,
                            args.warmup + args.steps) + GANFORGE_SETTINGS[args.setting]
        ips = run_ganforge(args.arch, ov, args.warmup)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"images_per_s": ips, "rss_mb": rss}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--write", action="store_true", help="append the table to RESULTS.md")
    ap.add_argument("--settings", default="", help="comma list of settings to run (default all)")
    ap.add_argument("--archs", default="dcgan-mnist,dcgan-64")
    ap.add_argument("--rounds", type=int, default=1,
                    help="repeat every setting this many times, interleaved, and report the "
                         "median (use 3+ on a machine shared with other jobs)")
    ap.add_argument("--force-bf16", action="store_true",
                    help="run the bf16 settings even on a CPU without oneDNN bf16 kernels (there "
                         "they run 50-100x slower than fp32 and take a long time)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--setting")
    ap.add_argument("--arch")
    ap.add_argument("--batch", type=int)
    ap.add_argument("--steps", type=int)
    ap.add_argument("--warmup", type=int)
    ap.add_argument("--data")
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return
    torch.set_num_threads(args.threads)
    peak32, peak16 = matmul_peak(torch.float32), matmul_peak(torch.bfloat16)
    print(f"matmul peak ({args.threads} threads): fp32 {peak32:.0f} GFLOP/s, "
          f"bf16 {peak16:.1f} GFLOP/s")
    have_keras = importlib.util.find_spec("keras") is not None  # imported by the worker only
    settings = ["reference"] + (["keras"] if have_keras else []) + list(GANFORGE_SETTINGS)
    if args.settings:
        settings = [s for s in settings if s in args.settings.split(",")]
    from ganforge.training.trainer import cpu_has_fast_bf16

    skipped = {}
    fast_bf16 = cpu_has_fast_bf16()
    if not fast_bf16 and not args.force_bf16:
        why = (f"skipped: no oneDNN bf16 kernels on this CPU "
               f"({torch.backends.cpu.get_cpu_capability()}); --force-bf16 runs it")
        skipped = {s: why for s in settings if "bf16" in s}
        print(f"bf16 settings {why}")
    plan = []
    for arch in args.archs.split(","):
        batches = [256, 64] if arch == "dcgan-mnist" else [64]
        if args.quick:
            batches = batches[:1]
        steps = (20 if arch == "dcgan-mnist" else 5) if args.quick else (60 if arch == "dcgan-mnist" else 12)
        plan += [(arch, b, steps) for b in batches]
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        data64 = Path(tmp) / "mnist64.npy"
        if any(a == "dcgan-64" for a, _, _ in plan):
            np.save(data64, mnist_images(64))
        for arch, batch, steps in plan:
            flops = step_flops(arch, batch)
            results: dict[str, list[dict]] = {s: [] for s in settings}
            errors: dict[str, str] = dict(skipped)
            for _ in range(args.rounds):  # interleaved: load changes hit every setting alike
                for s in settings:
                    if s in errors:
                        continue
                    cmd = [sys.executable, __file__, "--worker", "--setting", s, "--arch", arch,
                           "--batch", str(batch), "--steps", str(steps), "--warmup", "3",
                           "--threads", str(args.threads)]
                    if arch == "dcgan-64":
                        cmd += ["--data", str(data64)]
                    env = dict(os.environ, KERAS_BACKEND="torch")
                    r = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env)
                    if r.returncode != 0:
                        errors[s] = (r.stderr.strip().splitlines() or ["?"])[-1][:80]
                        continue
                    results[s].append(json.loads(r.stdout.strip().splitlines()[-1]))
            rows = []
            for s in settings:
                if s in errors:
                    rows.append((s, None, None, errors[s]))
                    continue
                ips = float(np.median([r["images_per_s"] for r in results[s]]))
                rows.append((s, ips, max(r["rss_mb"] for r in results[s]), ""))
            ref = next(ips for s, ips, _, _ in rows if s == "reference")
            header = (f"\n{arch}, batch {batch}, {steps} timed steps after 3 warm-up, "
                      f"{args.threads} threads, median of {args.rounds} interleaved round(s); "
                      f"step = {flops / batch / 1e6:.1f} MFLOP per image")
            table = [("| setting | images/s | vs reference | GFLOP/s | % fp32 peak | % bf16 peak "
                     "| peak RSS MB |"), "|---|---|---|---|---|---|---|"]
            for s, ips, rss, err in rows:
                if ips is None:
                    table.append(f"| {s} | {err if s in skipped else 'failed: ' + err} "
                                 f"| | | | | |")
                    continue
                gf = ips * flops / batch / 1e9
                of16 = f"{100 * gf / peak16:.0f}%" if fast_bf16 else "n/a"  # emulated: no peak
                table.append(f"| {s} | {ips:.0f} | {ips / ref:.2f}x | {gf:.0f} | "
                             f"{100 * gf / peak32:.0f}% | {of16} | {rss:.0f} |")
            print(header)
            print("\n".join(table), flush=True)
            lines += [header, "", *table]
    if args.write:
        with open(HERE / "RESULTS.md", "a") as f:
            f.write(f"\n## Throughput ({time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, "
                    f"{os.cpu_count()} cores, {torch.backends.cpu.get_cpu_capability()})\n\n"
                    f"matmul peak: fp32 {peak32:.0f} GFLOP/s, bf16 "
                    f"{peak16:.1f} GFLOP/s\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

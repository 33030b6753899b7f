"""Train the ``mnist`` feature extractor's CNN and write its safetensors weights.

Data: the bundled MNIST train split (4,000 digits, ``mnist_arrays("train")``); held-out
accuracy is measured on the ``test`` split (1,000 digits), which training never sees.
Light augmentation: random affine warps (rotation +-12 deg, scale 0.9-1.1, shift +-2 px).

    python scripts/train_mnist_classifier.py            # writes the packaged weights
    python scripts/train_mnist_classifier.py --epochs 5 --out /tmp/w.safetensors
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from ganforge.data.registry import mnist_arrays
from ganforge.metrics.mnist_net import MnistNet

DEFAULT_OUT = (Path(__file__).resolve().parents[1] / "src" / "ganforge" / "metrics" / "weights"
               / "mnist_cnn.safetensors")


def to_tensor(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = mnist_arrays(split)
    return torch.from_numpy(x).float().unsqueeze(1) / 127.5 - 1.0, torch.from_numpy(y)


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random affine warp of a batch in [-1, 1] (background -1 outside the frame)."""
    n = x.shape[0]
    ang = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(12)
    scale = 0.9 + 0.2 * torch.rand(n, generator=gen)
    shift = (torch.rand(n, 2, generator=gen) * 2 - 1) * (2.0 / 14.0)  # +-2 px in [-1,1] coords
    cos, sin = torch.cos(ang) / scale, torch.sin(ang) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1),
                         torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x + 1, grid, align_corners=False, padding_mode="zeros") - 1


@torch.no_grad()
def accuracy(net: MnistNet, x: torch.Tensor, y: torch.Tensor) -> float:
    net.eval()
    pred = torch.cat([net(x[i:i + 500]).argmax(1) for i in range(0, len(x), 500)])
    return float((pred == y).float().mean())


def fit(x_tr: torch.Tensor, y_tr: torch.Tensor, x_te: torch.Tensor, y_te: torch.Tensor, *,
        epochs: int = 20, batch_size: int = 64, lr: float = 3e-3, seed: int = 0,
        verbose: bool = True) -> MnistNet:
    """A fresh ``MnistNet`` trained on (x_tr, y_tr) with this script's recipe (AdamW, one-cycle
    lr, the affine augmentation), its held-out accuracy on (x_te, y_te) printed per epoch.
    Also used by ``benchmarks/translation.py`` to train the same judge on another domain."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    net = MnistNet()
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=5e-4)
    steps_per_epoch = len(x_tr) // batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, epochs=epochs,
                                                steps_per_epoch=steps_per_epoch)
    t0 = time.perf_counter()
    for epoch in range(epochs):
        net.train()
        perm = torch.randperm(len(x_tr), generator=gen)
        total = 0.0
        for i in range(steps_per_epoch):
            idx = perm[i * batch_size:(i + 1) * batch_size]
            xb = augment(x_tr[idx], gen)
            loss = F.cross_entropy(net(xb), y_tr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach())
        if verbose:
            acc = accuracy(net, x_te, y_te)
            print(f"epoch {epoch + 1:3d}  loss {total / steps_per_epoch:.4f}  held-out acc "
                  f"{acc:.4f}  ({time.perf_counter() - t0:.0f} s)", flush=True)
    net.eval()
    return net


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    x_tr, y_tr = to_tensor("train")
    x_te, y_te = to_tensor("test")
    t0 = time.perf_counter()
    net = fit(x_tr, y_tr, x_te, y_te, epochs=args.epochs, batch_size=args.batch_size,
              lr=args.lr, seed=args.seed)
    train_acc = accuracy(net, x_tr, y_tr)
    test_acc = accuracy(net, x_te, y_te)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in net.state_dict().items()
             if not k.endswith("num_batches_tracked")}
    save_file(state, str(args.out), metadata={
        "train_accuracy": f"{train_acc:.4f}", "test_accuracy": f"{test_acc:.4f}",
        "epochs": str(args.epochs), "seed": str(args.seed),
        "data": "ganforge mnist train split (4000 digits); accuracy on the test split (1000)"})
    print(f"train accuracy {train_acc:.4f}, held-out (test split) accuracy {test_acc:.4f}")
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KB) in "
          f"{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()

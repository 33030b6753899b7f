"""``train.threads``: how many intra-op threads torch uses for a run.

``auto`` (the default) decides on the forward work of one training iteration (multiply-
accumulates of G and D at the configured batch): below ``ONE_THREAD_BELOW_MACS`` a second
thread gains nothing measurable, so the run takes one core and leaves the other free; above
it the run uses every available core. Measured with ``benchmarks/threads.py`` on an idle 2-core
AVX2 CPU (2026-12-02, steps/s on 1 / 2 threads, benchmarks/RESULTS.md "Threads"):

- gan-ring8 MLP at batch 16 (5 M MACs): 240, 220 / 169, 278; batch 64 (21 M): 154, 137 / 139,
  169 -- no consistent difference;
- gan-ring8 at batch 256 (86 M): 95, 70, 64 / 104, 96, 91 (1.1-1.4x on 2); batch 1024 (343 M)
  1.6x; grid25 MLPs (170-320 M) 1.3-1.4x; dcgan-mnist (5.3 G) 1.55x.

So even the tiny MLPs of the 2-D presets run faster on two idle cores; one thread pays only
when the cores are shared (then every job should take one: see ``heavy --threads``), which
``OMP_NUM_THREADS`` expresses and ``auto`` respects.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import torch
from torch import nn

# forward multiply-accumulates per iteration below which a second thread does not pay (above)
ONE_THREAD_BELOW_MACS = 25_000_000


def available_threads() -> int:
    """The threads a run may use: ``OMP_NUM_THREADS`` when set (e.g. by a job queue), else
    the cores this process may run on."""
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def recurrent_macs(rnn: nn.RNNBase, x: torch.Tensor) -> int:
    """Multiply-accumulates of an LSTM / GRU / RNN on the input ``x`` of one sample: at every
    time step, each layer and direction multiplies [input, hidden] by its gates' weights."""
    gates = {"LSTM": 4, "GRU": 3}.get(rnn.mode, 1)
    steps = x.shape[1] if rnn.batch_first and x.dim() == 3 else x.shape[0]
    dirs = 2 if rnn.bidirectional else 1
    total, width = 0, rnn.input_size
    for _ in range(rnn.num_layers):
        total += dirs * gates * rnn.hidden_size * (width + rnn.hidden_size)
        width = dirs * rnn.hidden_size
    return steps * total


def forward_macs(net: nn.Module, in_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of one forward pass of ``net`` on one input of ``in_shape``,
    counted over its dense, convolution and recurrent layers with hooks (one eval-mode pass on zeros:
    no running statistics or random state change)."""
    macs = [0]

    def hook(m: nn.Module, inp: Any, out: torch.Tensor) -> None:
        if isinstance(m, nn.Linear):  # (maxout is a Linear whose output is then reduced)
            macs[0] += inp[0].numel() * m.out_features
        elif isinstance(m, nn.ConvTranspose2d | nn.ConvTranspose1d):
            x = inp[0]
            k = int(torch.tensor(m.kernel_size).prod())
            macs[0] += x[0].numel() * m.out_channels // m.groups * k
        elif isinstance(m, nn.Conv1d | nn.Conv2d):
            k = int(torch.tensor(m.kernel_size).prod())
            macs[0] += out[0].numel() * m.in_channels // m.groups * k
        elif isinstance(m, nn.RNNBase):
            macs[0] += recurrent_macs(m, inp[0])

    handles = [m.register_forward_hook(hook) for m in net.modules()
               if isinstance(m, nn.Linear | nn.Conv1d | nn.Conv2d | nn.ConvTranspose1d
                             | nn.ConvTranspose2d | nn.RNNBase)]
    was = net.training
    try:
        net.eval()
        with torch.no_grad():
            net(torch.zeros((1, *in_shape), device=next(net.parameters()).device))
    finally:
        net.train(was)
        for h in handles:
            h.remove()
    return macs[0]


def step_macs(trainer: Any) -> int:
    """Forward MACs of one iteration: G on batch x packing latents, D on the real and fake
    batches and once more on the fakes for the G step. Networks that do not take a plain
    tensor of their ``in_shape`` count one MAC per parameter and sample."""
    cfg = trainer.cfg
    batch = cfg.train.batch_size
    packing = cfg.objective.packing
    try:
        g = forward_macs(trainer.G, tuple(trainer.G.in_shape))
        d = forward_macs(trainer.D, tuple(trainer.D.in_shape))
    except (AttributeError, TypeError, RuntimeError, ValueError, StopIteration):
        g = sum(p.numel() for p in trainer.G.parameters())
        d = sum(p.numel() for p in trainer.D.parameters())
    return batch * packing * g + 3 * batch * d * cfg.train.d_steps


def auto_threads(macs: int, available: int) -> int:
    """The ``auto`` rule: 1 thread below ``ONE_THREAD_BELOW_MACS`` per step, else all."""
    return 1 if macs < ONE_THREAD_BELOW_MACS else max(1, available)


def apply_threads(trainer: Any, verbose: bool = True) -> int:
    """Set torch's intra-op threads from ``train.threads`` (``auto`` or a count) and print the
    choice in one line. Returns the count."""
    setting = trainer.cfg.train.threads
    if setting == "auto":
        macs = step_macs(trainer)
        n = auto_threads(macs, available_threads())
        why = (f"auto: {macs / 1e6:.0f} M MACs per step "
               f"{'<' if macs < ONE_THREAD_BELOW_MACS else '>='} "
               f"{ONE_THREAD_BELOW_MACS / 1e6:.0f} M")
    else:
        n, why = int(setting), "train.threads"
    torch.set_num_threads(n)
    if verbose:
        sys.stderr.write(f"ganforge: {n} thread{'s' if n > 1 else ''} ({why})\n")
    return n

"""Does a music run's G copy what came before? Teacher-forced pitch probabilities on held-out
windows, at the positions where copying would predict the note.

For runs kept by ``benchmarks/music.py --keep DIR`` (DIR/seedS) or any run directory of an
autoregressive music G (``feedback`` ending in ``span_softmax``), reads the first ``-n``
held-out test windows with teacher forcing (``objective.likelihood``'s pass: step t sees the
real notes before t) and takes G's probabilities of the pitch. A position t is *copyable*
when the 3 pitches before it already stood, in that order, earlier in the window; the *copy
prediction* is the pitch that followed their most recent earlier occurrence. Reports:

- ``p_real``: mean probability of the real pitch over all positions (from the 4th on);
- ``copyable``: the share of positions that are copyable, and ``copy_right``: at those, how
  often the real pitch is the copy prediction (a property of the data, not of G);
- ``p_copy``: G's mean probability of the copy prediction at copyable positions;
- ``p_real_when_copy``: G's mean probability of the real pitch where it is the copy
  prediction. A G that uses what came before gives these more than ``p_real``; one that does
  not gives about the same.

Run it alone, through the machine-wide queue:

    heavy --threads 2 python benchmarks/music_copy.py RUN_DIR [RUN_DIR ...] \\
        --json benchmarks/results/music/copy.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

CONTEXT = 3  # pitches that must match an earlier passage


def copy_scores(pitch, logp) -> dict[str, float]:
    """``pitch`` (N, T) real pitch indices, ``logp`` (N, T, P) G's log-probabilities of the
    pitch at each step under teacher forcing: the scores of the module docstring."""
    import numpy as np

    p_all, p_copy, p_when = [], [], []
    copyable = right = 0
    for n in range(pitch.shape[0]):
        seq = [int(v) for v in pitch[n]]
        for t in range(CONTEXT, len(seq)):
            p_all.append(logp[n, t, seq[t]])
            context = seq[t - CONTEXT:t]
            pred = None
            for j in range(CONTEXT, t):  # the most recent earlier occurrence wins
                if seq[j - CONTEXT:j] == context:
                    pred = seq[j]
            if pred is None:
                continue
            copyable += 1
            p_copy.append(logp[n, t, pred])
            if pred == seq[t]:
                right += 1
                p_when.append(logp[n, t, seq[t]])
    return {"positions": len(p_all), "copyable": copyable / len(p_all),
            "copy_right": right / max(copyable, 1),
            "p_real": float(np.exp(p_all).mean()),
            "p_copy": float(np.exp(p_copy).mean()) if p_copy else float("nan"),
            "p_real_when_copy": float(np.exp(p_when).mean()) if p_when else float("nan"),
            "pitch_nll": float(-np.mean(p_all))}


def score_run(run_dir: Path, n: int) -> dict[str, object]:
    import torch

    import ganforge
    from ganforge.architecture.layers_seq import Feedback, teacher_forced_nll
    from ganforge.data import load_dataset

    run = ganforge.load(run_dir)
    test = load_dataset(run.config.data.source, split="test",
                        **dict(run.config.data.options)).x.float()[:n]
    feedback = [m for m in run.generator.modules() if isinstance(m, Feedback)]
    if not feedback:
        raise SystemExit(f"{run_dir}: G has no feedback layer (not an autoregressive music G)")
    body = feedback[0].body
    pitch_width = body.layers[-1].spans[0]
    logits = []
    hook = body.layers[-2].register_forward_hook(lambda m, i, o: logits.append(o))
    with torch.no_grad():
        teacher_forced_nll(run.generator, run.latent(len(test), seed=0), test)
    hook.remove()
    logp = torch.log_softmax(logits[-1][..., :pitch_width].float(), -1).numpy()
    pitch = test[..., :pitch_width].argmax(-1).numpy()
    return {"run": str(run_dir), "step": run.step, "source": run.config.data.source,
            **copy_scores(pitch, logp)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("-n", type=int, default=3000, help="held-out windows read")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    rows = []
    print("| run | step | copyable | copy right | p(real) | p(copy) | p(real) where copy | "
          "pitch NLL |")
    print("|---|---|---|---|---|---|---|---|")
    for rd in args.runs:
        r = score_run(rd, args.n)
        rows.append(r)
        print(f"| {rd} | {r['step']} | {r['copyable']:.3f} | {r['copy_right']:.3f} | "
              f"{r['p_real']:.3f} | {r['p_copy']:.3f} | {r['p_real_when_copy']:.3f} | "
              f"{r['pitch_nll']:.3f} |", flush=True)
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()

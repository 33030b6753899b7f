"""One-off script (2026-12-06, twenty-seventh session): gss steps/s per 250-step window over
STEPS steps of ctgan-classifier, optionally with denormals flushed (torch.set_flush_denormal).
Input ``frame``: tabular_speed.py's (the DataFrame, data.split=all); ``csv``: tabular.py's (the
table written to CSV, its train split, its overrides).

Run from the repository root:
    python benchmarks/results/tabular/speed-gss-windows.py STEPS flush|noflush frame|csv \
        [KEY=VALUE...]
(the tree before a change via PYTHONPATH). Its output is speed-gss-windows.log.
"""
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, "benchmarks")
import tabular_speed as ts

import ganforge
from ganforge.data.tabular import register_frame

steps, flush, source = int(sys.argv[1]), sys.argv[2] == "flush", sys.argv[3]
extra = sys.argv[4:]
torch.set_num_threads(2)
if flush:
    print("flush_denormal:", torch.set_flush_denormal(True))
with tempfile.TemporaryDirectory() as tmp:
    if source == "frame":
        df, discrete, target = ts.load("gss")
        register_frame("gss", df)
        over = ["data.source=frame:gss", f"data.discrete=[{','.join(discrete)}]",
                f"data.target={target}", "data.split=all", "monitor.sample_every=1000000",
                "monitor.log_every=100", "train.checkpoint_every=1000000"]
    else:
        from tabular import table_source
        over = [f"data.source={table_source('gss', Path(tmp))}", "data.target=target"]
    over += [f"train.steps={steps}", "train.batch_size=500", "tabular.pac=10", "seed=0",
             "monitor.progress=false", "device=cpu", "monitor.report=false",
             "monitor.tensorboard=false", *extra]
    clock = ts.StepClock()
    ganforge.train("ctgan-classifier", overrides=over, run_dir=Path(tmp) / "run")
last = max(clock.times.values(), key=lambda t: t[-1])
t = np.array(last)
w = 250
rates = [round(w / (t[i + w] - t[i]), 2) for i in range(0, len(t) - w, w)]
print(json.dumps({"flush": flush, "source": source, "extra": extra,
                  "rates_per_250": rates}))

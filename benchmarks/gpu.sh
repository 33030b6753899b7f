#!/usr/bin/env bash
# GPU numbers for benchmarks/RESULTS.md, in one command on a lent GPU machine (the device tool:
# the repository's tree is there, python3 holds a CUDA PyTorch, nothing can be downloaded).
# Missing pure-Python dependencies travel as wheels in .whl/ (pydantic, pydantic_core,
# annotated_types, typing_inspection, typing_extensions, mlxtend); results land in $OUT.
#   1. benchmarks/cuda_check.py: train / exact resume / sample / bf16 / steps per second on CUDA
#   2. benchmarks/conditional.py: projection-mnist and cgan-mnist, seeds 0-2, issue 21's
#      protocol; all six runs share the one GPU at once (scoring runs on 2 CPU threads each), so
#      their train_s is not a speed number. Runs still going after DEADLINE seconds are stopped
#      and what they printed is kept.
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD/src:${PYTHONPATH:-}
nvidia-smi -L
python3 benchmarks/cuda_check.py 2>&1 | tee "$OUT/cuda_check.log"
export OMP_NUM_THREADS=2
for p in projection-mnist cgan-mnist; do
    for s in 0 1 2; do
        python3 benchmarks/conditional.py "$p" --seeds "$s" --json "/tmp/$p-$s.json" \
            > "/tmp/$p-$s.log" 2>&1 &
    done
done
while [ -n "$(jobs -pr)" ] && [ "$SECONDS" -lt "${DEADLINE:-540}" ]; do sleep 5; done
kill $(jobs -pr) 2>/dev/null
python3 - "$OUT" <<'EOF'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
rows = {}
for f in sorted(pathlib.Path("/tmp").glob("*-mnist-[0-9].json")):
    preset = f.name.rsplit("-", 1)[0]
    rows.setdefault(preset, []).extend(json.loads(f.read_text())["results"])
(out / "conditional.json").write_text(json.dumps(rows))
EOF
for f in /tmp/*-mnist-[0-9].log; do echo "== $f"; tail -25 "$f"; done > "$OUT/conditional.log"
grep -h "seed [0-9]: worst" /tmp/*-mnist-[0-9].log

#!/usr/bin/env bash
# GPU numbers for benchmarks/RESULTS.md, in one command on a lent GPU machine (the device tool:
# the repository's tree is there, python3 holds a CUDA PyTorch, nothing can be downloaded).
# Missing pure-Python dependencies travel as wheels in .whl/ (pydantic, pydantic_core,
# annotated_types, typing_inspection, typing_extensions, mlxtend); results land in $OUT.
#
#   benchmarks/gpu.sh [JOB ...]        (default: check conditional:projection-mnist
#                                                 conditional:cgan-mnist)
#   check                 benchmarks/cuda_check.py: train / exact resume / sample / latent walks
#                         / GPU labels / bf16 / steps per second on CUDA (run first, alone)
#   conditional:PRESET    benchmarks/conditional.py PRESET, seeds 0-2 (issue 21's protocol), one
#                         process per seed, scored on 2 CPU threads each
#   timegan               benchmarks/sequences.py: timegan on sines at TimeGAN's reference
#                         budget (10,000 autoencoder + 10,000 supervised + 10,000 joint steps),
#                         seeds 0-4, one process per seed; the runs come back as
#                         $OUT/timegan-runs.tar.gz for rescoring on the CPU with `ganforge
#                         seqscore`. Five sharing the H200 did the first 20,000 steps in ~125 s
#                         but not the 10,000 joint steps in the next ~300 s: give it DEADLINE=570
#                         and a call of its own (RESULTS.md, "The CUDA path")
# All jobs after `check` share the one GPU at once, so their train_s is not a speed number. Jobs
# still going after DEADLINE seconds are stopped and what they printed is kept.
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
[ $# -gt 0 ] || set -- check conditional:projection-mnist conditional:cgan-mnist
nvidia-smi -L
for job in "$@"; do
    case $job in
        check) python3 benchmarks/cuda_check.py 2>&1 | tee "$OUT/cuda_check.log" ;;
        conditional:*)
            p=${job#conditional:}
            for s in 0 1 2; do
                OMP_NUM_THREADS=2 python3 benchmarks/conditional.py "$p" --seeds "$s" \
                    --json "$OUT/$p-$s.json" > "$OUT/$p-$s.log" 2>&1 &
            done ;;
        timegan)
            mkdir -p /tmp/timegan
            for s in 0 1 2 3 4; do
                OMP_NUM_THREADS=1 python3 benchmarks/sequences.py --datasets sines \
                    --models timegan --train-seeds "$s" --ae 10000 --sup 10000 --joint 10000 \
                    --repeats 2 --disc-iterations 2000 --pred-iterations 500 --device cuda \
                    --keep /tmp/timegan > "$OUT/timegan-$s.log" 2>&1 &
            done ;;
        *) echo "unknown job '$job': use check, conditional:PRESET or timegan" >&2; exit 2 ;;
    esac
done
while [ -n "$(jobs -pr)" ] && [ "$SECONDS" -lt "${DEADLINE:-540}" ]; do sleep 5; done
kill $(jobs -pr) 2>/dev/null
# the device tool returns a limited number of files: the run folders travel as one archive
[ -d /tmp/timegan ] && tar -czf "$OUT/timegan-runs.tar.gz" -C /tmp timegan
grep -h "seed [0-9]: worst" "$OUT"/*-mnist-[0-9].log 2>/dev/null
grep -h "^| sines | timegan" "$OUT"/timegan-*.log 2>/dev/null
exit 0

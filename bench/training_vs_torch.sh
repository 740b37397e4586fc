#!/usr/bin/env bash
# recsys.train()'s training step against the same step in torch: examples per second and the
# loss curve, same model, batches, initial weights, loss, clipping and Adam, one thread each.
#
#   bash bench/training_vs_torch.sh            (after cmake --build build --target training_step_bench)
#
# build/training_step_bench generates the data (the generator of recsys.generate_santander),
# builds train_model()'s mini-batches, writes them and the initial weights, and trains;
# bench/torch_training_reference.py trains torch on the same files. The two alternate for
# RECSYS_TRAIN_ROUNDS rounds (the machine's load moves; the median of each is compared), then
# the gradients of the first batch are checked against torch autograd (float64) and the loss
# curves are compared step by step.
#
# Knobs: RECSYS_TRAIN_CUSTOMERS (default 20000), RECSYS_TRAIN_STEPS (default 100),
# RECSYS_TRAIN_ROUNDS (default 3), RECSYS_BENCH_QUICK=1 (4000 customers, 20 steps, 1 round),
# RECSYS_TRAIN_RESULTS (a file to append bench/run_all.sh's name-value lines to),
# RECSYS_BUILD_DIR (default build).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

if [ "${RECSYS_BENCH_QUICK:-0}" = 1 ]; then
    customers=${RECSYS_TRAIN_CUSTOMERS:-4000}
    steps=${RECSYS_TRAIN_STEPS:-20}
    rounds=${RECSYS_TRAIN_ROUNDS:-1}
else
    customers=${RECSYS_TRAIN_CUSTOMERS:-20000}
    steps=${RECSYS_TRAIN_STEPS:-100}
    rounds=${RECSYS_TRAIN_ROUNDS:-3}
fi
bench_bin=${RECSYS_BUILD_DIR:-build}/training_step_bench
PY=/usr/bin/python3
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
[ -x "$bench_bin" ] || { echo "training_vs_torch.sh: $bench_bin is missing (cmake --build build --target training_step_bench)" >&2; exit 1; }

work=$(mktemp -d /tmp/recsys_training.XXXXXX)
trap 'rm -rf "$work"' EXIT

echo "training step, recsys vs torch: $customers customers, $steps steps of batch 256, $rounds alternating rounds"
recsys_runs=() torch_runs=()
for ((r = 1; r <= rounds; r++)); do
    "$bench_bin" --out "$work" --customers "$customers" --steps "$steps" >"$work/recsys_$r.json"
    $PY bench/torch_training_reference.py train --dir "$work" --json "$work/torch_$r.json" >/dev/null
    recsys_runs+=("$work/recsys_$r.json")
    torch_runs+=("$work/torch_$r.json")
done
echo "model and data: $(cat "$work/meta.json")"
echo "gradients of the first batch at the initial weights, recsys vs torch autograd (float64):"
$PY bench/torch_training_reference.py gradients --dir "$work"
$PY bench/torch_training_reference.py compare --recsys "${recsys_runs[@]}" --torch "${torch_runs[@]}" \
    ${RECSYS_TRAIN_RESULTS:+--results "$RECSYS_TRAIN_RESULTS"}

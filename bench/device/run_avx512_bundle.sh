#!/usr/bin/env bash
# Runs the static benchmark bundle (bench/device/build_static.sh) on another x86-64 machine,
# typically one whose CPU has AVX-512 BF16 / VNNI (and maybe AMX) to check and time the
# reduced-precision kernels that the build machine cannot run:
#   1. the CPU (lscpu, the AVX-512 / AMX / VNNI flags) and the bundle's binaries (static?)
#   2. the unit tests of the kernels (reduced precision, small-batch gemv, LSTM forward): each
#      kernel this CPU can run against the portable reference; then the whole unit suite
#   3. reduced_precision_bench: fp32 vs bf16 vs int8, batch 1 and 1024, auto kernel vs avx2
#   4. reduced_precision_torch.py (if python3 has torch and numpy): torch fp32 (the oracle,
#      within 1e-5 of recsys fp32) and quantize_dynamic on the same weights and inputs
#   5. lstm_scoring_bench: BM_LstmForward at batch 1, 256 and 1024, sgemm, one-row products
#   6. summary.txt: the figures of 2-5 in a few lines (also printed)
# Every run is one thread (OPENBLAS_NUM_THREADS=1) pinned to one core (taskset). Each step
# that fails is reported ("step failed") and the next one runs; the script itself exits 0.
#
#   OUT=DIR bash run_avx512_bundle.sh [BIN_DIR]
#
# BIN_DIR (default: this script's folder) holds the three binaries, or binaries.tar.xz with
# them (unpacked into a temporary folder, removed at the end). Output: $OUT (default ./out),
# text and JSON files. Knobs: MIN_TIME (Google Benchmark seconds per run, 0.2), REPS
# (repetitions, 3), TORCH_SECS (seconds per torch rate, 1.5), BENCH_CPU (the core to pin to),
# UNIT_TIMEOUT (seconds for the whole unit suite, 90), PYTHON (the python3 with torch and numpy,
# default python3). About one minute on a 2-core AVX2 machine.
set -u

here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$here}
OUT=${OUT:-./out}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
MIN_TIME=${MIN_TIME:-0.2}
REPS=${REPS:-3}
TORCH_SECS=${TORCH_SECS:-1.5}
UNIT_TIMEOUT=${UNIT_TIMEOUT:-90}
PYTHON=${PYTHON:-python3}
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
failed=()

step_failed() {
    echo "step failed: $1 (exit $2)" | tee -a "$OUT/failed_steps.txt"
    failed+=("$1")
}

scratch=$(mktemp -d "${TMPDIR:-/tmp}/recsys-bundle.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
if [[ ! -x $bin/recsys_unit_tests && -f $bin/binaries.tar.xz ]]; then
    mkdir -p "$scratch/bin"
    if ! tar -xJf "$bin/binaries.tar.xz" -C "$scratch/bin" 2>/dev/null; then
        # No xz on this machine: Python's tarfile reads it too.
        python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' \
            "$bin/binaries.tar.xz" "$scratch/bin" || step_failed "unpack binaries.tar.xz" $?
    fi
    bin=$scratch/bin
fi

# One core from those this process may use (the third, away from core 0's interrupts, if any).
cpu=${BENCH_CPU:-$(python3 -c 'import os; a = sorted(os.sched_getaffinity(0)); print(a[min(2, len(a) - 1)])' 2>/dev/null || echo 0)}
pin=()
if command -v taskset >/dev/null && taskset -c "$cpu" true 2>/dev/null; then pin=(taskset -c "$cpu"); fi

# 1. The machine and the binaries.
{
    echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "bundle commit: $(cat "$here/COMMIT" 2>/dev/null || echo unknown)"
    echo "uname: $(uname -a)"
    echo "pinned to: ${pin[*]:-(no taskset)}, OPENBLAS_NUM_THREADS=$OPENBLAS_NUM_THREADS"
    echo "nproc: $(nproc)"
    lscpu 2>/dev/null | grep -E '^(Architecture|Model name|Vendor ID|CPU family|Model|Stepping|CPU\(s\)|Thread|Core|Socket|NUMA node\(s\)|L1d|L2|L3|Hypervisor|Virtualization type)' || true
    flags=$(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx2|fma|avx512.*|amx.*|avx_vnni.*|avx_vnni|avxvnni.*|avx_bf16|avx_ne_convert)$' | sort | tr '\n' ' ')
    echo "vector flags: $flags"
    for b in recsys_unit_tests reduced_precision_bench lstm_scoring_bench; do
        echo "ldd $b: $(ldd "$bin/$b" 2>&1 | head -1)"
    done
    "$PYTHON" -c 'import sys, numpy, torch; print("python", sys.version.split()[0], "numpy", numpy.__version__, "torch", torch.__version__, "quantized engines", torch.backends.quantized.supported_engines)' 2>&1 | tail -1
} >"$OUT/system.txt" 2>&1
cat "$OUT/system.txt"
lscpu >"$OUT/lscpu.txt" 2>&1

# 2. Unit tests: the kernels first (the point of this run), then everything.
echo "== unit tests of the kernels"
kernel_filter='*Reduced*:*Precision*:*Gemv*:*Kernel*:LstmForward*:*StateContinuation*:*Incremental*:GemmPolled*:Poll.*'
timeout 120 "${pin[@]}" "$bin/recsys_unit_tests" --gtest_filter="$kernel_filter" \
    --gtest_output="json:$OUT/unit_tests_kernels.json" >"$OUT/unit_tests_kernels.txt" 2>&1 ||
    step_failed "unit tests of the kernels" $?
tail -3 "$OUT/unit_tests_kernels.txt"
echo "== all unit tests (at most ${UNIT_TIMEOUT}s)"
timeout "$UNIT_TIMEOUT" "$bin/recsys_unit_tests" --gtest_output="json:$OUT/unit_tests_all.json" \
    >"$OUT/unit_tests_all.txt" 2>&1 || step_failed "all unit tests" $?
tail -3 "$OUT/unit_tests_all.txt"

# 3. Reduced precision against fp32, with the dump for torch.
echo "== reduced_precision_bench"
mkdir -p "$scratch/precision"
RECSYS_PRECISION_DUMP=$scratch/precision timeout 150 "${pin[@]}" "$bin/reduced_precision_bench" \
    --benchmark_min_time="$MIN_TIME" --benchmark_repetitions="$REPS" \
    --benchmark_out="$OUT/reduced_precision_bench.json" --benchmark_out_format=json \
    >"$OUT/reduced_precision_bench.txt" 2>&1 || step_failed "reduced_precision_bench" $?

# 4. torch on the same weights.
echo "== reduced_precision_torch.py"
if [[ -f $scratch/precision/manifest.json ]]; then
    cp "$scratch/precision/manifest.json" "$OUT/precision_manifest.json"
    timeout 120 "${pin[@]}" "$PYTHON" "$here/reduced_precision_torch.py" --dir "$scratch/precision" \
        --seconds "$TORCH_SECS" --json "$OUT/reduced_precision_torch.json" \
        >"$OUT/reduced_precision_torch.txt" 2>&1 ||
        { step_failed "reduced_precision_torch.py" $?; tail -3 "$OUT/reduced_precision_torch.txt"; }
else
    step_failed "reduced_precision_torch.py (no dump from reduced_precision_bench)" 1
fi

# 5. The float32 forward pass at batch 1, 256, 1024, and the products behind it.
echo "== lstm_scoring_bench"
timeout 150 "${pin[@]}" "$bin/lstm_scoring_bench" \
    --benchmark_filter='^BM_LstmForward/(1|256|1024)/|^BM_Sgemm|^BM_OneRowProduct' \
    --benchmark_min_time="$MIN_TIME" --benchmark_repetitions="$REPS" \
    --benchmark_out="$OUT/lstm_scoring_bench.json" --benchmark_out_format=json \
    >"$OUT/lstm_scoring_bench.txt" 2>&1 || step_failed "lstm_scoring_bench" $?

# 6. The summary.
python3 - "$OUT" >"$OUT/summary.txt" 2>&1 <<'EOF' || step_failed "summary" $?
import json, os, sys

out = sys.argv[1]


def load(name):
    try:
        with open(os.path.join(out, name)) as f:
            return json.load(f)
    except Exception as e:  # noqa: BLE001
        print(f"{name}: not read ({type(e).__name__}: {e})")
        return None


print("== summary (medians of the repetitions; rates are wall clock, one thread)")
for name in ("unit_tests_kernels.json", "unit_tests_all.json"):
    t = load(name)
    if t:
        props = sorted({f"{k}={v}" for s in t.get("testsuites", []) for c in s.get("testsuite", [])
                        for k, v in c.items() if k.endswith("_kernels_compared")})
        failures = [f"{s['name']}.{c['name']}" for s in t.get("testsuites", []) for c in s.get("testsuite", [])
                    if c.get("failures")]
        print(f"{name}: {t.get('tests')} tests, {t.get('failures')} failed, {t.get('disabled', 0)} disabled"
              + (f"; failed: {', '.join(failures)}" if failures else ""))
        for p in props:
            print(f"  {p}")


def medians(data):
    rows = {}
    for b in data.get("benchmarks", []):
        if b.get("aggregate_name") == "median" or (b.get("run_type") == "iteration" and b.get("repetitions", 1) <= 1):
            rows[b["run_name"]] = b
        if b.get("error_occurred"):
            rows[b["run_name"]] = b
    return rows


rp = load("reduced_precision_bench.json")
if rp:
    ctx = rp.get("context", {})
    print(f"reduced_precision_bench: openblas core {ctx.get('openblas_core')}, bf16 kernel {ctx.get('bf16_kernel')}, "
          f"int8 kernel {ctx.get('int8_kernel')}")
    rows = medians(rp)
    for batch in ("1", "1024"):
        fp32 = rows.get(f"BM_Score/fp32/{batch}/real_time", {}).get("customers_per_s")
        for name, b in rows.items():
            if not name.endswith(f"/{batch}/real_time"):
                continue
            if b.get("error_occurred"):
                print(f"  {name}: skipped: {b.get('error_message')}")
                continue
            r = b["customers_per_s"]
            ratio = f"{r / fp32:.2f}x fp32" if fp32 else ""
            print(f"  {name:34s} {r:12.1f} cust/s  {ratio:12s} max|diff| {b['max_abs_diff']:.3g}  {b.get('label', '')}")

tq = load("reduced_precision_torch.json")
if tq:
    print("torch:", ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in tq.items()))

ls = load("lstm_scoring_bench.json")
if ls:
    ctx = ls.get("context", {})
    print(f"lstm_scoring_bench: openblas core {ctx.get('openblas_core')}, small-batch kernel "
          f"{ctx.get('small_batch_kernel')}, CPU {ctx.get('mhz_per_cpu')} MHz")
    for name, b in medians(ls).items():
        us = b["real_time"] * {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}[b.get("time_unit", "ns")]
        extra = f"{b['customers_per_s']:12.1f} cust/s" if "customers_per_s" in b else ""
        print(f"  {name:44s} {us:12.1f} us  {b.get('gflops', 0):7.2f} GFLOP/s {extra} {b.get('label', '')}")
EOF
cat "$OUT/summary.txt"
if ((${#failed[@]})); then
    echo "failed steps: ${failed[*]}"
else
    echo "all steps ran"
fi
exit 0

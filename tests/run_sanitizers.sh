#!/usr/bin/env bash
# The GoogleTest unit tests of the core under AddressSanitizer (with LeakSanitizer) and
# UndefinedBehaviorSanitizer: configures a separate CMake build (RECSYS_SANITIZE=ON, into
# build-asan/: the core library and the unit tests only), builds it, runs recsys_unit_tests
# with any sanitizer report fatal, and ends with one line "N passed, M failed" (N: the tests
# GoogleTest passed, counted only when the program exits 0). No suppressions: a report from
# project code is a bug to fix. About 2 minutes from scratch on 2 cores, seconds of build after.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
started=$(date +%s)
build=${RECSYS_ASAN_BUILD_DIR:-build-asan}
jobs=$(nproc)
log=$(mktemp)
trap 'rm -f "$log"' EXIT

finish() {  # PASSED FAILED
    echo "wall time: $(($(date +%s) - started)) s"
    echo "$1 passed, $2 failed"
    [ "$2" -eq 0 ]
    exit
}

if ! cmake -S . -B "$build" -DRECSYS_SANITIZE=ON -DCMAKE_BUILD_TYPE=Release >"$log" 2>&1; then
    tail -n 30 "$log"
    echo "sanitizer build: cmake configure failed"
    finish 0 1
fi
if ! cmake --build "$build" -j"$jobs" >"$log" 2>&1; then
    grep -E "error|Error" "$log" | head -n 40
    echo "sanitizer build: compilation failed"
    finish 0 1
fi

# One BLAS thread, as in the database and the other suites. detect_leaks=1 is LeakSanitizer
# at exit; halt_on_error makes a UBSan report fatal (the build also has
# -fno-sanitize-recover=all), print_stacktrace shows where.
export OPENBLAS_NUM_THREADS=1
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
"$build"/recsys_unit_tests --gtest_brief=1 >"$log" 2>&1
rc=$?
tail -n 40 "$log"
if grep -qE "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:" "$log"; then
    echo "sanitizer report (first lines):"
    grep -m 5 -E "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:" "$log"
fi
n_pass=$(grep -oP '\[  PASSED  \] \K[0-9]+' "$log" | tail -n 1)
n_fail=$(grep -oP '\[  FAILED  \] \K[0-9]+(?= test)' "$log" | tail -n 1)
n_pass=${n_pass:-0}
n_fail=${n_fail:-0}
if [ $rc -ne 0 ]; then
    echo "recsys_unit_tests exited with status $rc under the sanitizers"
    # A sanitizer abort can come after GoogleTest's summary (leaks at exit): count nothing as passed.
    n_pass=0
    [ "$n_fail" -eq 0 ] && n_fail=1
fi
finish "$n_pass" "$n_fail"

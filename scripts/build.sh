#!/usr/bin/env bash
# Builds the core (unit tests, tools, benchmarks) with CMake and the extension with PGXS,
# and installs the extension into the PostgreSQL 15 installation.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
jobs=$(nproc)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs" >/dev/null
make -f Makefile.pgxs -j"$jobs" >/dev/null
make -f Makefile.pgxs install >/dev/null

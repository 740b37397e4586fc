#!/usr/bin/env bash
# Builds a self-contained benchmark bundle: fully static x86-64 binaries of the unit tests,
# bench/reduced_precision_bench and bench/lstm_scoring_bench, with the driver
# (run_avx512_bundle.sh) and the torch comparison script, to copy as plain files to a machine
# that has none of this project's libraries (no OpenBLAS, GoogleTest or Google Benchmark), e.g.
# a CPU with AVX-512 BF16 / VNNI whose kernels this machine cannot run.
#
#   bench/device/build_static.sh [BUNDLE_DIR]      (default: build-static/bundle)
#
# Debian ships Google Benchmark only as a shared library, so its source package (the same
# 1.7.1 as libbenchmark-dev's headers) is built statically first: from RECSYS_BENCHMARK_SOURCE
# (an unpacked source tree) if set, else fetched with `apt-get source` (Debian's archive, no
# change to the system's apt configuration). OpenBLAS is Debian's static openblas-pthread
# archive (DYNAMIC_ARCH: Haswell, SkylakeX, Cooperlake kernels and more, picked at run time);
# GoogleTest is Debian's libgtest.a. Uses only this script's build folder (BUILD_DIR, default
# build-static/), never the default build/.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD_DIR:-$repo/build-static}
bundle=${1:-$build/bundle}
jobs=${JOBS:-2}
mkdir -p "$build"
build=$(cd "$build" && pwd)

# 1. Google Benchmark, static, installed into $build/benchmark-prefix.
prefix=$build/benchmark-prefix
if [[ ! -f $prefix/lib/libbenchmark.a ]]; then
    src=${RECSYS_BENCHMARK_SOURCE:-}
    if [[ -z $src ]]; then
        fetch=$build/benchmark-fetch
        rm -rf "$fetch" && mkdir -p "$fetch/lists/partial"
        echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main" \
            >"$fetch/sources.list"
        apt_opts=(-o "Dir::Etc::SourceList=$fetch/sources.list" -o Dir::Etc::SourceParts=/dev/null
                  -o "Dir::State::Lists=$fetch/lists")
        apt-get "${apt_opts[@]}" update -qq
        (cd "$fetch" && apt-get "${apt_opts[@]}" source --download-only benchmark=1.7.1-1)
        # dpkg-source applies Debian's patches (version without git tags, among others).
        (cd "$fetch" && dpkg-source --no-check -x benchmark_1.7.1-1.dsc benchmark-src >/dev/null)
        src=$fetch/benchmark-src
    fi
    # GIT_VERSION: Debian's patch stops the version being read from git tags; its build passes it.
    cmake -S "$src" -B "$build/benchmark-build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
        -DBENCHMARK_ENABLE_TESTING=OFF -DBENCHMARK_ENABLE_GTEST_TESTS=OFF -DBENCHMARK_ENABLE_WERROR=OFF \
        -DBENCHMARK_INSTALL_DOCS=OFF -DGIT_VERSION=1.7.1 -DCMAKE_INSTALL_PREFIX="$prefix" -DCMAKE_INSTALL_LIBDIR=lib >/dev/null
    cmake --build "$build/benchmark-build" -j"$jobs" >/dev/null
    cmake --install "$build/benchmark-build" >/dev/null
fi

# 2. The project's targets, linked with -static (CMakeLists.txt: RECSYS_STATIC_BENCH).
targets=(recsys_unit_tests reduced_precision_bench lstm_scoring_bench)
cmake -S "$repo" -B "$build/recsys" -DCMAKE_BUILD_TYPE=Release -DRECSYS_STATIC_BENCH=ON \
    -Dbenchmark_DIR="$prefix/lib/cmake/benchmark" >/dev/null
cmake --build "$build/recsys" -j"$jobs" --target "${targets[@]}"

# 3. The bundle: the stripped binaries (every one must be static) in one xz tarball (they share
# OpenBLAS's 20 MB of kernels for every CPU, which xz's window folds into one copy: about 4 MB
# in all instead of 80), the driver, the torch script. The plain binaries stay in $build/bin.
mkdir -p "$build/bin"
for t in "${targets[@]}"; do
    if ldd "$build/recsys/$t" >/dev/null 2>&1; then
        echo "build_static.sh: $t is not a static executable" >&2
        exit 1
    fi
    strip -o "$build/bin/$t" "$build/recsys/$t"
done
rm -rf "$bundle" && mkdir -p "$bundle"
tar -C "$build/bin" -cf - "${targets[@]}" | xz -9 -T"$jobs" >"$bundle/binaries.tar.xz"
cp "$repo/bench/device/run_avx512_bundle.sh" "$repo/bench/reduced_precision_torch.py" "$bundle/"
chmod +x "$bundle"/*.sh "$bundle"/*.py
(cd "$repo" && git describe --always --dirty 2>/dev/null || echo unknown) >"$bundle/COMMIT"
echo "bundle in $bundle ($(du -sh "$bundle" | cut -f1)); run it with: OUT=DIR bash $bundle/run_avx512_bundle.sh"
ls -l "$bundle"

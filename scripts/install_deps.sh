#!/usr/bin/env bash
# Installs everything recsys needs from Debian 12's packages (run as root). Skips apt
# entirely when every package is already installed, so repeated runs are fast.
set -euo pipefail
packages=(
    g++ cmake make pkg-config
    clang-14 libclang-rt-14-dev
    postgresql-15 postgresql-server-dev-15 postgresql-contrib postgresql-15-cron postgresql-15-plproxy
    postgresql-15-auto-failover pgbouncer
    libeigen3-dev libopenblas-dev libgtest-dev libbenchmark-dev
    python3-torch python3-numpy python3-psycopg2 python3-onnx
    # bench/device/build_static.sh: Google Benchmark's source package, static libgfortran, xz
    dpkg-dev libgfortran-12-dev xz-utils
)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "recsys: missing Debian packages: ${missing[*]} (run as root to install them)" >&2
    exit 1
fi
echo "recsys: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The tests run pgbouncer privately (scripts/pgbouncer.sh); where an init system started the
# package's own service on port 6432, stop it and keep it off.
if [[ " ${missing[*]} " == *" pgbouncer "* ]] && [ -d /run/systemd/system ]; then
    systemctl disable --now pgbouncer >/dev/null 2>&1 || true
fi

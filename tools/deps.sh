#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs what ringcast needs on Debian 12, skipping what is already there.
#   tools/deps.sh build   compiler, CMake, Ninja and the libraries
#   tools/deps.sh test    the above, plus cmocka, clang (fuzz targets), Python websockets,
#                         Chromium, Node.js and npm, and the Node test clients and
#                         playwright-core (npm ci)
set -euo pipefail
what=${1:-build}
cd "$(dirname "$0")/.."

pkgs=(gcc make cmake ninja-build pkg-config liburing-dev libmbedtls-dev libxxhash-dev
      libjansson-dev systemtap-sdt-dev ca-certificates)
if [ "$what" = test ]; then
    # chromium: the browser test of the operations page (driven by playwright-core from npm).
    pkgs+=(libcmocka-dev clang libclang-rt-14-dev python3 python3-websockets openssl curl
           procps iproute2 chromium)
    command -v node >/dev/null 2>&1 || pkgs+=(nodejs)
    command -v npm >/dev/null 2>&1 || pkgs+=(npm)
fi

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "deps: installing ${missing[*]}"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ "$what" = test ] && [ -f tests/integration/package-lock.json ]; then
    nm=tests/integration/node_modules
    if [ ! -d $nm/ws ] || [ ! -d $nm/socket.io ] || [ ! -d $nm/playwright-core ]; then
        echo "deps: npm ci in tests/integration"
        (cd tests/integration && npm ci --no-audit --no-fund --loglevel=error)
    fi
fi

#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs what is missing, builds ringcast (release with debug info) and starts the broker
# on port 8080. Extra arguments go to the broker: tools/run.sh --shards 4 --log-level debug
set -euo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh build
cmake -S . -B build -G Ninja >/dev/null
cmake --build build
exec ./build/ringcast --listen 0.0.0.0:8080 "$@"

#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs what is missing, builds and runs the whole test suite three times over:
#   release (everything, the 50,000-connection stress test and the 2-minute soak included),
#   asan    (ASan+UBSan, -Werror: unit, integration, fuzz replay),
#   tsan    (ThreadSanitizer: the cross-shard stress test, and the rooms, drain, TLS and
#            slow-consumer integration tests against the multi-shard broker).
# Exits non-zero if any run fails. TESTS_PRESETS="release" limits the runs.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh test
jobs=$(nproc)
status=0
for preset in ${TESTS_PRESETS:-release asan tsan}; do
    echo "== $preset: configure and build"
    cmake --preset "$preset" >/dev/null
    cmake --build --preset "$preset" -j "$jobs"
    echo "== $preset: test"
    ctest --preset "$preset" -j "$jobs" || status=1
done
exit $status

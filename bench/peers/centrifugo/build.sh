#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Builds the Centrifugo peer of the benchmark suite (bench/README.md): Centrifugo v6.9.1 from
# its Go module, into bench/peers/centrifugo/bin/centrifugo. An optional setup step, run by
# hand before `bench/run.sh --only centrifugo` or bench/proto.sh; nothing else in the project
# (CI included) needs it.
#
#   bench/peers/centrifugo/build.sh [--force]
#
# It needs Go 1.21 or newer and the Go module proxy: the module asks for go 1.26, and a go
# command from 1.21 on fetches that toolchain through the proxy on its own (GOTOOLCHAIN=auto;
# set GOTOOLCHAIN=go1.26.x or newer to choose one). The module's own go.sum pins every
# dependency, checked against the checksum database. The binary is static (CGO_ENABLED=0), as
# Centrifugo's releases are, and reports its version like them.
set -euo pipefail
cd "$(dirname "$0")"

MODULE=github.com/centrifugal/centrifugo/v6
VERSION=v6.9.1

die() { printf 'build.sh: %s\n' "$*" >&2; exit 1; }

if [ "${1:-}" != --force ] && [ -x bin/centrifugo ] &&
    bin/centrifugo version 2>/dev/null | grep -q "${VERSION#v}"; then
    echo "bin/centrifugo is Centrifugo ${VERSION#v} already (--force rebuilds it)"
    exit 0
fi
command -v go >/dev/null 2>&1 ||
    die "go is missing: Go 1.21 or newer is needed (Debian 12's golang-go is 1.19, too old)"
minor=$(go env GOVERSION | sed -n 's/^go1\.\([0-9][0-9]*\).*/\1/p')
if [ -z "$minor" ] || [ "$minor" -lt 21 ]; then
    die "$(go env GOVERSION) is too old to fetch the go 1.26 toolchain: Go 1.21 or newer is needed"
fi

mkdir -p bin
# go install PKG@VERSION builds in module mode from the module's own go.mod and go.sum, outside
# any other module: the pin is the version here.
GOBIN=$PWD/bin CGO_ENABLED=0 GOFLAGS=-trimpath go install \
    -ldflags "-s -w -X $MODULE/internal/build.Version=${VERSION#v}" "$MODULE@$VERSION"
bin/centrifugo version

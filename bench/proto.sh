#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The protocol-mode rows of bench/RESULTS.md in one command: bench/run.sh's servers, pinning
# and measurement, with ringcast driven both ways (raw room mode and protocol mode, the
# Centrifugo client protocol on /connection/websocket), Bun (raw) and Centrifugo v6.9.1
# (protocol), then a table of the rows (bench/proto_rows.py).
#
#   bench/proto.sh [--quick] [--only SERVERS] BUILD_DIR OUT_DIR
#
#   BUILD_DIR     where ringcast and ringcast-bench are built (release: build/release)
#   OUT_DIR       raw results, as bench/run.sh writes them, and proto-rows.md
#   --quick       the same shapes, small and short (bench/run.sh --quick)
#   --only LIST   servers (default ringcast,ringcast-proto,bun,centrifugo)
#
# What it runs, each against a fresh server on CPU 0 with the load on CPU 1:
#   HOLD-15k      15,000 idle connections in rooms of 50 (protocol: one subscription each):
#                 RSS per connection, CPU per handshake
#   CHAT-10k      10,000 clients in rooms of 50 at 2,000 and 10,000 publishes/s: deliveries/s,
#                 loss, p50/p99, server CPU per delivery (protocol against raw)
#   MILLION/10    Centrifugo's million-connection test at a tenth: 100,000 connections, each
#                 in a group channel of 10 and a personal one (200,000 subscriptions), 5,000
#                 publishes/s into the groups = 50,000 deliveries/s (protocol servers only)
#
# Centrifugo is built beforehand by bench/peers/centrifugo/build.sh (Go and the Go module
# proxy); without it, pass --only ringcast,ringcast-proto,bun. The open-file limit is raised
# for every server alike (Centrifugo holds one descriptor per connection; ringcast and the
# tool hold theirs as io_uring direct descriptors). Every run is bounded in time and sends
# traffic to 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

quick=()
servers=ringcast,ringcast-proto,bun,centrifugo
usage() { sed -n '3,29p' "$0" | sed 's/^# \{0,1\}//'; }
args=()
while [ $# -gt 0 ]; do
    case $1 in
    --quick) quick=(--quick) ;;
    --only) servers=$2; shift ;;
    -h | --help) usage; exit 0 ;;
    -*) echo "proto.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    *) args+=("$1") ;;
    esac
    shift
done
[ ${#args[@]} -eq 2 ] || { usage >&2; exit 2; }
build_dir=${args[0]} out=${args[1]}

die() { printf 'proto.sh: %s\n' "$*" >&2; exit 1; }
case ,$servers, in *,centrifugo,*)
    [ -x bench/peers/centrifugo/bin/centrifugo ] ||
        die "bench/peers/centrifugo/bin/centrifugo is missing: run bench/peers/centrifugo/build.sh first, or leave centrifugo out with --only" ;;
esac
# 100,000 connections: raise the soft limit as far as the hard one allows, and the hard one
# too where the user may (root).
want=262144
if [ "$(ulimit -Hn)" != unlimited ] && [ "$(ulimit -Hn)" -lt $want ]; then
    ulimit -Hn $want 2>/dev/null || true
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
case $(ulimit -n) in
unlimited) ;;
*) [ "$(ulimit -n)" -ge 110000 ] ||
    printf 'proto.sh: open-file limit %s: Centrifugo cannot hold 100,000 connections\n' \
        "$(ulimit -n)" >&2 ;;
esac

mkdir -p "$out"
bench/run.sh "${quick[@]}" --no-install --no-render --build-dir "$build_dir" --out "$out" \
    --only "$servers" --scenarios hold,chat,million --chat-rates 2000,10000
/usr/bin/python3 bench/proto_rows.py "$out" --markdown "$out/proto-rows.md"
printf 'proto.sh: rows in %s\n' "${out#"$ROOT"/}/proto-rows.md" >&2

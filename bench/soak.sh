#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bench/soak.sh: a long run of churn against one broker, checked for leaks at the end.
#
# Starts ringcast with --shards 4 on 127.0.0.1 (a ws:// and a wss:// listener, certificates
# from tools/gen-certs.sh in a temporary directory), drives it for --duration seconds (30
# minutes by default) with bench/soak.py: ringcast-bench chat runs that connect, chat and
# disconnect (10% of them over TLS), short-lived Python clients, readers that stall in a busy
# room, clients that vanish without a FIN. Every --sample seconds it writes the broker's RSS,
# descriptors, sockets, connections, rooms and send-queue bytes to soak.csv, and draws them
# into soak.png with gnuplot. It exits 0 only when, after the load, every gauge is back to its
# value before it and the RSS within 5% of its value after the warm-up (bench/README.md,
# "Soak"). The 2-minute version runs in ctest as soak.soak_2min.
#
#   bench/soak.sh [--duration S] [--sample S] [--shards N] [--out DIR] [--build-dir DIR]
#                 [--ringcast BIN] [--bench BIN] [--no-install] [--no-plot]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

duration=1800
sample=10
shards=4
out=""
build_dir=build
ringcast=""
bench=""
install=1
plot=1

log() { printf 'soak.sh: %s\n' "$*" >&2; }
die() { printf 'soak.sh: %s\n' "$*" >&2; exit 2; }

usage() {
    sed -n '3,17p' "$0" | sed 's/^# \{0,1\}//'
}

while [ $# -gt 0 ]; do
    case $1 in
    --duration) duration=${2:?}; shift 2 ;;
    --sample) sample=${2:?}; shift 2 ;;
    --shards) shards=${2:?}; shift 2 ;;
    --out) out=${2:?}; shift 2 ;;
    --build-dir) build_dir=${2:?}; shift 2 ;;
    --ringcast) ringcast=${2:?}; shift 2 ;;
    --bench) bench=${2:?}; shift 2 ;;
    --no-install) install=0; shift ;;
    --no-plot) plot=0; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown option '$1' (--help lists them)" ;;
    esac
done
case $duration in '' | *[!0-9]*) die "--duration takes whole seconds" ;; esac
[ "$duration" -ge 30 ] || die "--duration must be at least 30 s"

# ---------------------------------------------------------------------------------------------
# What it needs
# ---------------------------------------------------------------------------------------------
if [ $install = 1 ]; then
    missing=()
    for p in gnuplot-nox python3 python3-websockets openssl; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
            missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]}"
        sudo=""
        [ "$(id -u)" -eq 0 ] || sudo=sudo
        DEBIAN_FRONTEND=noninteractive $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >/dev/null
    fi
fi
if [ -z "$ringcast" ] || [ -z "$bench" ]; then
    if [ ! -x "$build_dir/ringcast" ] || [ ! -x "$build_dir/ringcast-bench" ]; then
        log "building ringcast and ringcast-bench in $build_dir"
        cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
        cmake --build "$build_dir" --target ringcast ringcast-bench
    fi
    ringcast=${ringcast:-$build_dir/ringcast}
    bench=${bench:-$build_dir/ringcast-bench}
fi
[ -x "$ringcast" ] || die "$ringcast is not an executable"
[ -x "$bench" ] || die "$bench is not an executable"
ringcast=$(cd "$(dirname "$ringcast")" && pwd)/$(basename "$ringcast")
bench=$(cd "$(dirname "$bench")" && pwd)/$(basename "$bench")
[ -n "$out" ] || out=bench/out/soak-$(date -u +%Y%m%d-%H%M%S)
mkdir -p "$out"
out=$(cd "$out" && pwd)

certs=$(mktemp -d)
broker_pid=""
cleanup() {
    if [ -n "$broker_pid" ] && kill -0 "$broker_pid" 2>/dev/null; then
        kill -TERM "$broker_pid" 2>/dev/null || true
        wait "$broker_pid" 2>/dev/null || true
    fi
    rm -rf "$certs"
}
trap cleanup EXIT
sh tools/gen-certs.sh "$certs" >/dev/null

# ---------------------------------------------------------------------------------------------
# The broker
# ---------------------------------------------------------------------------------------------
# A small send queue so that stalled readers are cut within seconds; pings every 5 s so that
# a client that vanished after its upgrade is found (its kernel answers the ping with a reset);
# a 2 s handshake timeout for those that vanished before it. Rooms keep their publications for
# --history-ttl after the last one: 10 s, so that the 30 s the soak allows the gauges to come
# back also shows the history sweep freeing every room.
"$ringcast" --listen 127.0.0.1:0 --tls-listen 127.0.0.1:0 \
    --tls-cert "$certs/ec.crt" --tls-key "$certs/ec.key" --shards "$shards" \
    --send-queue 256k --handshake-timeout 2 --ping-interval 5 --idle-timeout 30 \
    --history-ttl 10 \
    >"$out/broker.log" 2>&1 </dev/null &
broker_pid=$!
port="" tls_port=""
for _ in $(seq 100); do
    port=$(sed -n 's|.*listening on ws://127.0.0.1:\([0-9]*\).*|\1|p' "$out/broker.log")
    tls_port=$(sed -n 's|.*listening on wss://127.0.0.1:\([0-9]*\).*|\1|p' "$out/broker.log")
    [ -n "$port" ] && [ -n "$tls_port" ] && break
    kill -0 "$broker_pid" 2>/dev/null || break
    sleep 0.1
done
[ -n "$port" ] && [ -n "$tls_port" ] || { cat "$out/broker.log" >&2; die "the broker did not start"; }
log "broker pid $broker_pid on ws://127.0.0.1:$port and wss://127.0.0.1:$tls_port, $shards shards"
log "$duration s of load; samples every $sample s into $out/soak.csv"

# ---------------------------------------------------------------------------------------------
# The load, the samples and the verdict
# ---------------------------------------------------------------------------------------------
status=0
/usr/bin/python3 bench/soak.py --port "$port" --tls-port "$tls_port" --pid "$broker_pid" \
    --ca "$certs/ec.crt" --bench "$bench" --duration "$duration" --sample "$sample" \
    --out "$out" || status=1

if ! kill -0 "$broker_pid" 2>/dev/null; then
    log "the broker died during the soak:"
    tail -20 "$out/broker.log" >&2
    status=1
    broker_pid=""
else
    kill -TERM "$broker_pid"
    rc=0
    wait "$broker_pid" || rc=$?
    broker_pid=""
    if [ $rc -ne 0 ]; then
        log "the broker exited with status $rc after SIGTERM"
        status=1
    fi
fi

if [ $plot = 1 ]; then
    if command -v gnuplot >/dev/null 2>&1; then
        gnuplot -e "csv='$out/soak.csv'; png='$out/soak.png'" bench/soak.gp &&
            log "plot: $out/soak.png"
    else
        log "gnuplot is missing (Debian package gnuplot-nox): no plot"
    fi
fi
log "$([ $status = 0 ] && echo passed || echo FAILED); results in $out"
exit $status

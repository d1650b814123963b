#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The cost of one open operations page (GET /ops, which reads /stats once a second): the
# broker's CPU during a fixed chat load, without and with the page open in headless Chromium,
# alternating, --runs of each. Broker on CPU 0 (one shard); load tool and browser on CPU 1.
#
#   bench/ops_cost.sh [--runs N] [--build-dir DIR] [--connections N] [--rate R]
#                     [--duration S] [--room-size M]
#
# Two CPU figures per run, both of the broker process (all its threads): utime + stime from
# /proc/PID/stat just before ringcast-bench starts and just after it ends (connecting
# included), and ringcast-bench's own server.cpu_s_run (the publishing phase only, --pid).
# Needs /usr/bin/chromium and playwright-core (tools/deps.sh test installs both).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib.sh
. bench/lib.sh

runs=3 build_dir=build/release conns=2000 rate=2000 duration=20 room=50
while [ $# -gt 0 ]; do
    case $1 in
    --runs) runs=$2; shift ;;
    --build-dir) build_dir=$2; shift ;;
    --connections) conns=$2; shift ;;
    --rate) rate=$2; shift ;;
    --duration) duration=$2; shift ;;
    --room-size) room=$2; shift ;;
    -h | --help) sed -n '3,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) bench_die "unknown option '$1' (see --help)" ;;
    esac
    shift
done
[ -x "$build_dir/ringcast" ] && [ -x "$build_dir/ringcast-bench" ] ||
    bench_die "build first: cmake --preset release && cmake --build --preset release"
[ -x "${RINGCAST_CHROMIUM:-/usr/bin/chromium}" ] || bench_die "no Chromium (apt-get install chromium)"
export NODE_PATH=$PWD/tests/integration/node_modules
[ -d "$NODE_PATH/playwright-core" ] || bench_die "no playwright-core (npm ci in tests/integration)"

out=$(mktemp -d)
srv_pid="" page_pid=""
cleanup() {
    [ -n "$page_pid" ] && kill -TERM "$page_pid" 2>/dev/null && wait "$page_pid" 2>/dev/null
    [ -n "$srv_pid" ] && kill -TERM "$srv_pid" 2>/dev/null && wait "$srv_pid" 2>/dev/null
    rm -rf "$out"
}
trap cleanup EXIT

hz=$(getconf CLK_TCK)
# utime + stime in ticks: fields 14 and 15 of /proc/PID/stat, counted after the ")" that ends
# the command name.
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }

one_run() {
    local mode=$1 i=$2 port t0 t1 j
    taskset -c "$SERVER_CPU" "$build_dir/ringcast" --listen 127.0.0.1:0 --shards 1 \
        >"$out/srv.log" 2>&1 </dev/null &
    srv_pid=$!
    for j in $(seq 100); do
        port=$(sed -n 's|.*listening on ws://127\.0\.0\.1:\([0-9][0-9]*\).*|\1|p' "$out/srv.log")
        [ -n "$port" ] && break
        sleep 0.1
    done
    [ -n "$port" ] || bench_die "the broker did not start: $(cat "$out/srv.log")"
    if [ "$mode" = page ]; then
        taskset -c "$LOAD_CPU" node bench/ops_page.js "http://127.0.0.1:$port/ops" \
            $((duration + 120)) >"$out/page.log" 2>&1 &
        page_pid=$!
        for j in $(seq 300); do
            grep -q '^open' "$out/page.log" && break
            kill -0 "$page_pid" 2>/dev/null || bench_die "the page did not open: $(cat "$out/page.log")"
            sleep 0.1
        done
        grep -q '^open' "$out/page.log" || bench_die "the page did not open in 30 s"
    fi
    t0=$(cpu_ticks "$srv_pid")
    taskset -c "$LOAD_CPU" "$build_dir/ringcast-bench" chat --url "ws://127.0.0.1:$port/room/" \
        --connections "$conns" --room-size "$room" --rate "$rate" --duration "$duration" \
        --pid "$srv_pid" --json --quiet >"$out/bench.json" 2>"$out/bench.err" || true
    t1=$(cpu_ticks "$srv_pid")
    local polls=""
    if [ -n "$page_pid" ]; then
        kill -TERM "$page_pid" 2>/dev/null || true
        wait "$page_pid" 2>/dev/null || true
        page_pid=""
        polls=$(sed -n 's/^stats requests: //p' "$out/page.log")
    fi
    kill -TERM "$srv_pid"
    wait "$srv_pid" || true
    srv_pid=""
    python3 - "$mode" "$i" "$t0" "$t1" "$hz" "${polls:-0}" "$out/bench.json" <<'PY'
import json, sys
mode, i, t0, t1, hz, polls, path = sys.argv[1:]
line = [l for l in open(path) if l.startswith("{")][-1]
j = json.loads(line)
m, srv = j.get("messages", {}), j.get("server", {})
lat = m.get("latency_us", {})
print("%-7s run %s: broker CPU %.2f s (/proc, whole run), %.2f s (publishing phase); "
      "deliveries/s %s, lost %s, p50 %s ms, p99 %s ms, /stats requests %s"
      % (mode, i, (int(t1) - int(t0)) / int(hz), srv.get("cpu_s_run", float("nan")),
         m.get("deliveries_per_s"), m.get("lost"),
         lat.get("p50", 0) and round(lat["p50"] / 1000, 2),
         lat.get("p99", 0) and round(lat["p99"] / 1000, 2), polls))
PY
}

echo "broker:  taskset -c $SERVER_CPU $build_dir/ringcast --listen 127.0.0.1:0 --shards 1"
echo "load:    taskset -c $LOAD_CPU $build_dir/ringcast-bench chat --url ws://127.0.0.1:PORT/room/" \
     "--connections $conns --room-size $room --rate $rate --duration $duration --pid PID --json"
echo "page:    taskset -c $LOAD_CPU node bench/ops_page.js http://127.0.0.1:PORT/ops (headless Chromium)"
echo "machine: $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1), $(nproc --all) CPUs, kernel $(uname -r)"
for i in $(seq "$runs"); do
    one_run none "$i"
    one_run page "$i"
done

# What one /stats answer costs, which is what the page adds each second: NR requests on one
# keep-alive connection to an idle broker, its CPU before and after; /healthz the same way for
# the part any HTTP round trip costs (wake-up, receive, send).
nr=${STATS_REQUESTS:-20000}
for path in /healthz /stats; do
    taskset -c "$SERVER_CPU" "$build_dir/ringcast" --listen 127.0.0.1:0 --shards 1 \
        >"$out/srv.log" 2>&1 </dev/null &
    srv_pid=$!
    port=""
    for j in $(seq 100); do
        port=$(sed -n 's|.*listening on ws://127\.0\.0\.1:\([0-9][0-9]*\).*|\1|p' "$out/srv.log")
        [ -n "$port" ] && break
        sleep 0.1
    done
    [ -n "$port" ] || bench_die "the broker did not start: $(cat "$out/srv.log")"
    t0=$(cpu_ticks "$srv_pid")
    size=$(taskset -c "$LOAD_CPU" python3 - "$port" "$nr" "$path" <<'PY'
import http.client, sys
port, n, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
c = http.client.HTTPConnection("127.0.0.1", port)
size = 0
for _ in range(n):
    c.request("GET", path)
    r = c.getresponse()
    size += len(r.read())
    assert r.status == 200
print(size // n)
PY
)
    t1=$(cpu_ticks "$srv_pid")
    kill -TERM "$srv_pid"
    wait "$srv_pid" || true
    srv_pid=""
    awk -v t0="$t0" -v t1="$t1" -v hz="$hz" -v n="$nr" -v p="$path" -v sz="$size" \
        'BEGIN { printf "%-8s broker CPU %.1f us per request (%.2f s for %d requests of %d-byte answers, one keep-alive connection)\n", p, (t1 - t0) / hz * 1e6 / n, (t1 - t0) / hz, n, sz }'
done

#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The benchmark suite in one command (bench/README.md): installs the peers, builds ringcast,
# then for each server starts it pinned to CPU 0, drives every standard scenario with
# ringcast-bench pinned to CPU 1, and writes bench/RESULTS.md and bench/results.png.
#
#   bench/run.sh [--quick] [--only SERVERS] [--scenarios LIST] [options]
#
#   --quick             small counts and short runs: a smoke run of the whole suite
#   --only SERVERS      comma-separated: ringcast,bun,node-ws,socketio,py-websockets,
#                       ringcast-proto,centrifugo (default ringcast,bun,node-ws,socketio)
#   --scenarios LIST    comma-separated: hold,chat,fanout,maxconn,wss (default all five), and
#                       million (protocol servers only; not in the default)
#   --tls-servers LIST  servers of the wss scenarios: ringcast,ringcast-nooffload,bun
#                       (default all three)
#   --chat-rates LIST   publishes/s of the CHAT runs (default 2000,10000,30000)
#   --build-dir DIR     where ringcast is built (default build)
#   --out DIR           raw results (default bench/out/suite-DATE; bench/out/latest points to it)
#   --no-install        install nothing, build nothing: use what is there
#   --no-syscalls       do not count the servers' send syscalls with perf stat (frames per
#                       send of the peers is then n/a)
#   --quiet-wait S      before each run, wait up to S s for the machine to be idle
#                       (default 30; 5 with --quick)
#   --no-render         leave RESULTS.md and results.png alone (raw results only)
#   -h, --help
#
# Every run is bounded in time (timeout) and sends traffic to 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

servers=ringcast,bun,node-ws,socketio
scenarios=hold,chat,fanout,maxconn,wss
tls_servers=ringcast,ringcast-nooffload,bun
chat_rates=2000,10000,30000
quick=0
build_dir=build
out=""
install=1
syscalls=1
quiet_wait=""
render=1
argv_text="bench/run.sh${*:+ $*}"

usage() { sed -n '3,27p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case $1 in
    --quick) quick=1 ;;
    --only) servers=$2; shift ;;
    --scenarios) scenarios=$2; shift ;;
    --tls-servers) tls_servers=$2; shift ;;
    --chat-rates) chat_rates=$2; shift ;;
    --build-dir) build_dir=$2; shift ;;
    --out) out=$2; shift ;;
    --no-install) install=0 ;;
    --no-syscalls) syscalls=0 ;;
    --quiet-wait) quiet_wait=$2; shift ;;
    --no-render) render=0 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "run.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done

# ---------------------------------------------------------------------------------------------
# Scenario sizes. Full: the standard scenarios of bench/README.md. Quick: the same shapes,
# smaller and shorter, for a smoke run.
# ---------------------------------------------------------------------------------------------
if [ $quick = 1 ]; then
    HOLD_CONNS=3000 HOLD_S=3
    CHAT_CONNS=2000 CHAT_S=3 CHAT_WARMUP=1
    FANOUT_CONNS=1000 FANOUT_S=3
    MAX_TARGET=25000 MAX_RATE=5000 MAX_S=20
    WSS_HOLD_CONNS=2000 WSS_FULL_CONNS=200 WSS_CHAT_CONNS=2000 WSS_CHAT_RATE=2000
    MILLION_CONNS=10000 MILLION_RATE=500 MILLION_S=3 MILLION_WARMUP=1
else
    HOLD_CONNS=15000 HOLD_S=10
    CHAT_CONNS=10000 CHAT_S=10 CHAT_WARMUP=2
    FANOUT_CONNS=5000 FANOUT_S=10
    MAX_TARGET=100000 MAX_RATE=5000 MAX_S=60
    WSS_HOLD_CONNS=10000 WSS_FULL_CONNS=1000 WSS_CHAT_CONNS=10000 WSS_CHAT_RATE=10000
    # Centrifugo's million-connection test scaled down: two subscriptions per connection (a
    # group of 10 and a personal channel), publishes into the groups, 10 deliveries each.
    MILLION_CONNS=100000 MILLION_RATE=5000 MILLION_S=20 MILLION_WARMUP=2
fi
MILLION_GROUP=10
# Full TLS handshakes in flight at once: the tool's own handshake costs it more CPU than the
# servers', so more in flight would only make every one of them wait longer.
WSS_FULL_WINDOW=64
ROOM_SIZE=50
[ -n "$quiet_wait" ] || quiet_wait=$([ $quick = 1 ] && echo 5 || echo 30)
FANOUT_INFLIGHT=16
PAYLOAD=100

SERVER_CPU=0
LOAD_CPU=1
SYSCALL_EVENTS=syscalls:sys_enter_sendto,syscalls:sys_enter_sendmsg,syscalls:sys_enter_write,syscalls:sys_enter_writev,syscalls:sys_enter_io_uring_enter

log() { printf 'run.sh: %s\n' "$*" >&2; }
die() { printf 'run.sh: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------------------------------------
# Install and build
# ---------------------------------------------------------------------------------------------
apt_missing() {
    local p missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    DEBIAN_FRONTEND=noninteractive $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
}

bun_bin() {
    local b
    for b in bench/peers/node_modules/bun/bin/bun.exe \
             bench/peers/node_modules/@oven/bun-linux-x64/bin/bun \
             bench/peers/node_modules/@oven/bun-linux-x64-baseline/bin/bun; do
        if [ -x "$b" ] && "$b" --version >/dev/null 2>&1; then
            echo "$ROOT/$b"
            return 0
        fi
    done
    return 1
}

if [ $install = 1 ]; then
    tools/deps.sh build
    extra=(gnuplot-nox linux-perf curl util-linux procps)
    command -v node >/dev/null 2>&1 || extra+=(nodejs)
    command -v npm >/dev/null 2>&1 || extra+=(npm)
    case ,$servers, in *,py-websockets,*) extra+=(python3 python3-websockets) ;; esac
    apt_missing "${extra[@]}"
    # Centrifugo is built by hand (bench/peers/centrifugo/build.sh: Go and its module proxy).
    if [ ! -d bench/peers/node_modules/ws ] || [ ! -d bench/peers/node_modules/socket.io ] ||
        ! bun_bin >/dev/null; then
        log "npm ci in bench/peers"
        (cd bench/peers && npm ci --no-audit --no-fund --loglevel=error)
    fi
    cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$build_dir" --target ringcast ringcast-bench
fi

case $build_dir in /*) build_abs=$build_dir ;; *) build_abs=$ROOT/$build_dir ;; esac
RINGCAST=$build_abs/ringcast
BENCH=$build_abs/ringcast-bench
[ -x "$RINGCAST" ] || die "$build_dir/ringcast is missing (run without --no-install)"
[ -x "$BENCH" ] || die "$build_dir/ringcast-bench is missing: the load tool did not build"
"$BENCH" --help >/dev/null 2>&1 || die "$build_dir/ringcast-bench --help failed"
command -v taskset >/dev/null || die "taskset is missing (util-linux)"
[ "$(nproc --all)" -ge 2 ] || die "needs two CPUs: one for the server, one for the load"
if [ $syscalls = 1 ] && ! command -v perf >/dev/null; then
    log "perf is missing: frames per send of the peers will be n/a"
    syscalls=0
fi

# ---------------------------------------------------------------------------------------------
# Output folder, machine and versions
# ---------------------------------------------------------------------------------------------
stamp=$(date -u +%Y%m%dT%H%M%SZ)
[ -n "$out" ] || out=bench/out/suite-$stamp
mkdir -p "$out"
out=$(cd "$out" && pwd)
case $out in "$ROOT"/bench/out/*) ln -sfn "$(basename "$out")" bench/out/latest ;; esac
log "raw results in ${out#"$ROOT"/}"

BUN=$(bun_bin || true)
PY=/usr/bin/python3
CENTRIFUGO=$ROOT/bench/peers/centrifugo/bin/centrifugo
[ -x "$CENTRIFUGO" ] || CENTRIFUGO=""
CF_PORT=0
{
    echo "command=$argv_text"
    echo "mode=$([ $quick = 1 ] && echo quick || echo full)"
    echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "cpu_model=$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1)"
    echo "cpus=$(nproc --all)"
    echo "kernel=$(uname -r)"
    echo "memory=$(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
    echo "os=$(. /etc/os-release && echo "$PRETTY_NAME")"
    echo "nofile=$(ulimit -n)"
    echo "ringcast=$("$RINGCAST" --version 2>&1 | head -1)"
    echo "ringcast_commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')"
    echo "bench=$("$BENCH" --version 2>&1 | head -1)"
    echo "bun=${BUN:+$("$BUN" --version 2>/dev/null)}"
    echo "node=$(node --version 2>/dev/null || true)"
    echo "ws=$(node -p 'require("./bench/peers/node_modules/ws/package.json").version' 2>/dev/null || true)"
    # Where bench/peers/socketio-server.js finds it: bench/peers first, then tests/integration.
    echo "socketio=$(node -p 'require(require.resolve("socket.io/package.json", {paths: ["./bench/peers", "./tests/integration"]})).version' 2>/dev/null || true)"
    echo "py_websockets=$("$PY" -c 'import websockets; print(websockets.__version__)' 2>/dev/null || true)"
    echo "python=$("$PY" --version 2>&1 | cut -d' ' -f2)"
    echo "centrifugo=${CENTRIFUGO:+$("$CENTRIFUGO" version 2>/dev/null)}"
    echo "perf=$(perf --version 2>/dev/null || true)"
    echo "syscalls=$syscalls"
    echo "server_cpu=$SERVER_CPU"
    echo "load_cpu=$LOAD_CPU"
    echo "servers=$servers"
    echo "tls_servers=$tls_servers"
    echo "wss_full_window=$WSS_FULL_WINDOW"
    echo "wss_hold_window=1024"
    echo "mbedtls=$(dpkg-query -W -f='${Version}' libmbedtls-dev 2>/dev/null || true)"
    echo "scenarios=$scenarios"
    echo "chat_rates=$chat_rates"
} >"$out/meta.env"

# The wss scenarios' certificate, the same for every server: ECDSA P-256 for localhost.
CERTS=$out/certs
case ,$scenarios, in *,wss,*) tools/gen-certs.sh "$CERTS" ;; esac

# ---------------------------------------------------------------------------------------------
# Servers
# ---------------------------------------------------------------------------------------------
SRV_PID="" PERF_PID=""

cleanup() {
    [ -n "$PERF_PID" ] && kill -INT "$PERF_PID" 2>/dev/null || true
    [ -n "$SRV_PID" ] && kill -KILL "$SRV_PID" 2>/dev/null || true
}
trap cleanup EXIT
trap 'log interrupted; exit 130' INT TERM
trap 'log "failed: line $LINENO: $BASH_COMMAND"' ERR
set -E

# server_cmd SERVER SCENARIO: the command line, without the pinning.
server_cmd() {
    case $2 in wss-*)
        local tls="--tls-listen 127.0.0.1:0 --tls-cert $CERTS/ec.crt --tls-key $CERTS/ec.key"
        case $1 in
        ringcast) echo "$RINGCAST --listen 127.0.0.1:0 $tls --shards 1" ;;
        ringcast-nooffload) echo "$RINGCAST --listen 127.0.0.1:0 $tls --shards 1 --tls-offload off" ;;
        bun)
            [ -n "$BUN" ] || return 1
            echo "env TLS_CERT=$CERTS/ec.crt TLS_KEY=$CERTS/ec.key $BUN $ROOT/bench/peers/bun-server.js 0" ;;
        *) return 1 ;;
        esac
        return 0 ;;
    esac
    case $1 in
    ringcast)
        if [ "$2" = maxconn ]; then
            echo "$RINGCAST --listen 127.0.0.1:0 --shards 1 --max-conns $MAX_TARGET"
        else
            echo "$RINGCAST --listen 127.0.0.1:0 --shards 1"
        fi ;;
    bun) [ -n "$BUN" ] || return 1; echo "$BUN $ROOT/bench/peers/bun-server.js 0" ;;
    node-ws) echo "node $ROOT/bench/peers/ws-server.js 0" ;;
    socketio) echo "node $ROOT/bench/peers/socketio-server.js 0" ;;
    py-websockets) echo "$PY $ROOT/bench/peers/py-websockets-server.py 0" ;;
    # ringcast again, driven in protocol mode (ringcast-bench --protocol centrifugo). For
    # MILLION/10, --max-conns as in MAX-CONN: one shard when the open-file limit allows that
    # many direct descriptors per ring (bench/proto.sh raises it), more otherwise.
    ringcast-proto)
        if [ "$2" = million ]; then
            echo "$RINGCAST --listen 127.0.0.1:0 --shards 1 --max-conns $((MILLION_CONNS + 1000))"
        else
            echo "$RINGCAST --listen 127.0.0.1:0 --shards 1"
        fi ;;
    centrifugo)
        [ -n "$CENTRIFUGO" ] || return 1
        echo "env CENTRIFUGO_HTTP_SERVER_PORT=$CF_PORT $CENTRIFUGO --config $ROOT/bench/peers/centrifugo/config.json" ;;
    *) return 1 ;;
    esac
}

# The servers that speak Centrifugo's client protocol on /connection/websocket.
is_proto() { case $1 in ringcast-proto | centrifugo) return 0 ;; esac; return 1; }

# A free port on 127.0.0.1, for a server that cannot pick its own and say which (Centrifugo).
free_port() {
    "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_server SERVER SCENARIO LOG: sets SRV_PID and SRV_PORT.
start_server() {
    local cmd
    [ "$1" = centrifugo ] && CF_PORT=$(free_port)
    cmd=$(server_cmd "$1" "$2") || die "unknown or missing server '$1'"
    # shellcheck disable=SC2086  # the command is split on purpose; no path has a space
    taskset -c $SERVER_CPU $cmd >"$3" 2>&1 </dev/null &
    SRV_PID=$!
    local i scheme=ws
    if [ "$1" = centrifugo ]; then
        # Centrifugo logs errors only (its config), so its health endpoint says it is up.
        for i in $(seq 100); do
            if curl -sf --max-time 1 "http://127.0.0.1:$CF_PORT/health" >/dev/null 2>&1; then
                SRV_PORT=$CF_PORT
                return 0
            fi
            kill -0 "$SRV_PID" 2>/dev/null || break
            sleep 0.1
        done
        cat "$3" >&2
        die "$1 did not start"
    fi
    case $2 in wss-*) scheme=wss ;; esac
    for i in $(seq 100); do
        SRV_PORT=$(sed -n "s|.*listening on $scheme://127\.0\.0\.1:\([0-9][0-9]*\).*|\1|p" "$3" | head -1)
        [ -n "$SRV_PORT" ] && return 0
        kill -0 "$SRV_PID" 2>/dev/null || break
        sleep 0.1
    done
    cat "$3" >&2
    die "$1 did not start"
}

stop_server() {
    [ -n "$SRV_PID" ] || return 0
    kill -TERM "$SRV_PID" 2>/dev/null || true
    local i
    for i in $(seq 150); do
        case $(ps -o stat= -p "$SRV_PID" 2>/dev/null || true) in '' | Z*) break ;; esac
        sleep 0.1
    done
    kill -KILL "$SRV_PID" 2>/dev/null || true
    wait "$SRV_PID" 2>/dev/null || true
    SRV_PID=""
}

# Busy and total jiffies of the whole machine, and a process's CPU jiffies.
machine_jiffies() { awk '/^cpu / {print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat; }
proc_jiffies() { { sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null || true; } | awk '{t = $12 + $13} END {print t + 0}'; }
# CPU jiffies of this script's waited-for children: around the load tool's run, that is the
# tool (all its worker processes) and nothing else.
children_jiffies() { sed 's/^.*) //' /proc/$$/stat | awk '{print $14+$15}'; }
# CPU jiffies of all kernel threads (PF_KTHREAD): ksoftirqd and the kworkers do part of the
# network work of a loopback benchmark, so they are not "other load".
kthread_jiffies() {
    { cat /proc/[0-9]*/stat 2>/dev/null || true; } |
        awk '{ sub(/^.*\) /, ""); if (int($7 / 2097152) % 2 == 1) t += $12 + $13 } END { print t + 0 }'
}

# Waits (at most --quiet-wait s) until other work on the machine uses under 20% of one core,
# and writes what it saw: a run while others use the CPUs is not a fair run.
wait_quiet() {
    local waited=0 busy
    while :; do
        local a b
        a=($(machine_jiffies)); sleep 1; b=($(machine_jiffies))
        busy=$(( (b[0] - a[0]) * 100 / ( (b[1] - a[1]) > 0 ? (b[1] - a[1]) : 1) * $(nproc --all) ))
        # busy is in percent of one core
        [ "$busy" -lt 20 ] && break
        waited=$((waited + 1))
        [ "$waited" -ge "$quiet_wait" ] && break
    done
    echo "$busy"
}

# run_one SERVER ID SCENARIO-ARGS...: one server process, one scenario.
run_one() {
    local server=$1 id=$2 scen=$3
    shift 3
    local base=$out/$server.$id
    local pre_busy
    pre_busy=$(wait_quiet)
    start_server "$server" "$scen" "$base.server.log"
    local url_path scheme=ws bench_scen=$scen
    case $scen in
    hold | maxconn | chat) url_path=/room/ ;;
    fanout) url_path=/room/fanout ;;
    wss-*)
        url_path=/room/ scheme=wss bench_scen=${scen#wss-}
        [ "$bench_scen" = full ] && bench_scen=hold ;;
    esac
    local proto=()
    if is_proto "$server"; then
        # Centrifugo's client protocol (tools/bench/proto_centrifugo.c): the rooms are channels
        # of the same names (hold-K, chat-K, fanout).
        url_path=/connection/websocket
        proto=(--protocol centrifugo)
    elif [ "$server" = socketio ]; then
        # Socket.IO's own path, the room in the query (tools/bench/proto_socketio.c); the
        # rooms are the same as the others' (hold-K, chat-K, fanout).
        url_path=/socket.io/
        proto=(--protocol socketio)
    fi
    [ "$scen" = maxconn ] && bench_scen=ramp
    [ "$scen" = million ] && bench_scen=chat
    local args=("$bench_scen" --url "$scheme://127.0.0.1:$SRV_PORT$url_path" "${proto[@]}" "$@" --pid "$SRV_PID" --json --quiet)
    {
        echo "server: taskset -c $SERVER_CPU $(server_cmd "$server" "$scen" | sed "s|$ROOT/||g")"
        echo "load: taskset -c $LOAD_CPU $build_dir/ringcast-bench ${args[*]}" |
            sed -e "s|127\.0\.0\.1:$SRV_PORT|127.0.0.1:PORT|" -e "s|--pid $SRV_PID|--pid SERVER_PID|"
    } >"$base.cmd"
    if [ "${server%-proto}" = ringcast ] && [ $scheme = ws ]; then
        curl -s --max-time 5 "http://127.0.0.1:$SRV_PORT/stats" >"$base.stats0" || true
    fi
    PERF_PID=""
    if [ $syscalls = 1 ]; then
        taskset -c $LOAD_CPU perf stat -x, -o "$base.perf" -e "$SYSCALL_EVENTS" -p "$SRV_PID" \
            >/dev/null 2>&1 &
        PERF_PID=$!
        sleep 0.3
    fi
    local m0 p0 k0 c0 t0 m1 p1 k1 c1 t1
    m0=($(machine_jiffies)); p0=$(proc_jiffies "$SRV_PID"); k0=$(kthread_jiffies); c0=$(children_jiffies); t0=$(date +%s.%N)
    log "$server $id: ringcast-bench ${args[*]}"
    local limit_s=${BENCH_LIMIT_S:-300}
    local rc=0
    timeout -s INT -k 10 "$limit_s" taskset -c $LOAD_CPU "$BENCH" "${args[@]}" \
        >"$base.json" 2>"$base.stderr" || rc=$?
    m1=($(machine_jiffies)); p1=$(proc_jiffies "$SRV_PID"); k1=$(kthread_jiffies); c1=$(children_jiffies); t1=$(date +%s.%N)
    if [ -n "$PERF_PID" ]; then
        kill -INT "$PERF_PID" 2>/dev/null || true
        wait "$PERF_PID" 2>/dev/null || true
        PERF_PID=""
    fi
    if [ "${server%-proto}" = ringcast ] && [ $scheme = ws ]; then
        curl -s --max-time 5 "http://127.0.0.1:$SRV_PORT/stats" >"$base.stats1" || true
    fi
    {
        echo "rc=$rc"
        echo "pre_busy_pct=$pre_busy"
        echo "wall_s=$(awk "BEGIN {print $t1 - $t0}")"
        echo "machine_busy_jiffies=$((m1[0] - m0[0]))"
        echo "server_jiffies=$((p1 - p0))"
        echo "kthread_jiffies=$((k1 - k0))"
        echo "tool_jiffies=$((c1 - c0))"
        echo "clk_tck=$(getconf CLK_TCK)"
    } >"$base.run"
    stop_server
    [ $rc -eq 0 ] || log "$server $id: ringcast-bench exited $rc (see ${base#"$ROOT"/}.stderr)"
    grep -E '^\s+(connections|messages|latency|limit|server) ' "$base.stderr" | sed 's/^/    /' >&2 || true
    sleep 1 # let the kernel finish tearing the sockets down
}

# ---------------------------------------------------------------------------------------------
# The suite
# ---------------------------------------------------------------------------------------------
has() { case ,$1, in *,$2,*) return 0 ;; esac; return 1; }

IFS=, read -r -a server_list <<<"$servers"
IFS=, read -r -a tls_list <<<"$tls_servers"
IFS=, read -r -a rate_list <<<"$chat_rates"
for server in "${server_list[@]}"; do
    if [ "$server" = centrifugo ] && [ -z "$CENTRIFUGO" ]; then
        die "bench/peers/centrifugo/bin/centrifugo is missing: run bench/peers/centrifugo/build.sh (Go and the Go module proxy)"
    fi
    server_cmd "$server" hold >/dev/null || die "unknown or missing server '$server'"
done
if has "$scenarios" wss; then
    for server in "${tls_list[@]}"; do
        server_cmd "$server" wss-hold >/dev/null || die "unknown or missing wss server '$server'"
    done
fi

for server in "${server_list[@]}"; do
    log "== $server"
    if has "$scenarios" hold; then
        BENCH_LIMIT_S=$((HOLD_S + 90)) run_one "$server" hold hold \
            --connections $HOLD_CONNS --room-size $ROOM_SIZE --duration $HOLD_S
    fi
    if has "$scenarios" chat; then
        for rate in "${rate_list[@]}"; do
            BENCH_LIMIT_S=$((CHAT_S + CHAT_WARMUP + 90)) run_one "$server" "chat-$rate" chat \
                --connections $CHAT_CONNS --room-size $ROOM_SIZE --rate "$rate" \
                --duration $CHAT_S --warmup $CHAT_WARMUP --payload $PAYLOAD
        done
    fi
    if has "$scenarios" fanout; then
        BENCH_LIMIT_S=$((FANOUT_S + 90)) run_one "$server" fanout fanout \
            --connections $FANOUT_CONNS --inflight $FANOUT_INFLIGHT --duration $FANOUT_S \
            --payload $PAYLOAD
    fi
    if has "$scenarios" maxconn; then
        BENCH_LIMIT_S=$((MAX_S + 90)) run_one "$server" maxconn maxconn \
            --connections $MAX_TARGET --room-size $ROOM_SIZE --rate $MAX_RATE --duration $MAX_S
    fi
    # A raw connection joins one room: the two-subscription scenario is for protocol servers.
    if has "$scenarios" million && is_proto "$server"; then
        BENCH_LIMIT_S=$((MILLION_S + MILLION_WARMUP + 180)) run_one "$server" million million \
            --connections $MILLION_CONNS --room-size $MILLION_GROUP --personal \
            --rate $MILLION_RATE --duration $MILLION_S --warmup $MILLION_WARMUP --payload $PAYLOAD
    fi
done

# TLS: idle wss connections made with resumed handshakes, full handshakes, CHAT over wss.
if has "$scenarios" wss; then
    for server in "${tls_list[@]}"; do
        log "== $server (wss)"
        BENCH_LIMIT_S=$((HOLD_S + 120)) run_one "$server" wss-hold wss-hold \
            --connections $WSS_HOLD_CONNS --room-size $ROOM_SIZE --duration $HOLD_S --tls-resume
        BENCH_LIMIT_S=180 run_one "$server" wss-full wss-full \
            --connections $WSS_FULL_CONNS --room-size $ROOM_SIZE --duration 1 \
            --connect-window $WSS_FULL_WINDOW
        BENCH_LIMIT_S=$((CHAT_S + CHAT_WARMUP + 120)) run_one "$server" wss-chat wss-chat \
            --connections $WSS_CHAT_CONNS --room-size $ROOM_SIZE --rate $WSS_CHAT_RATE \
            --duration $CHAT_S --warmup $CHAT_WARMUP --payload $PAYLOAD --tls-resume
    done
fi

if [ $render = 1 ]; then
    /usr/bin/python3 bench/render.py "$out" --markdown bench/RESULTS.md --png bench/results.png
    log "wrote bench/RESULTS.md and bench/results.png"
fi

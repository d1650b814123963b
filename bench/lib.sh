# SPDX-License-Identifier: MIT
# Shared by tools/profile.sh and tools/perf-stat.sh (sourced, not run): the standard scenarios
# as ringcast-bench arguments, the build, and starting the broker pinned under perf.
#
# Scenarios (bench/README.md): hold = HOLD-15k, chat = CHAT-10k at 2,000 publishes/s,
# chat-10k / chat-30k = the same at 10,000 / 30,000 publishes/s, fanout = FANOUT-5k,
# echo = 100 clients round-tripping on /echo. --connections, --rate, --duration and
# --room-size change the sizes; arguments after -- go to ringcast-bench as they are.

SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}

bench_die() { printf '%s: %s\n' "${0##*/}" "$*" >&2; exit 1; }

# scenario_setup NAME: sets BENCH_SCEN, URL_PATH and BENCH_ARGS (an array) from NAME and the
# overrides OPT_CONNS, OPT_RATE, OPT_DURATION, OPT_ROOM (empty = the standard size).
scenario_setup() {
    local conns rate="" duration=10 room=50
    case $1 in
    hold) BENCH_SCEN=hold URL_PATH=/room/ conns=15000 ;;
    chat) BENCH_SCEN=chat URL_PATH=/room/ conns=10000 rate=2000 ;;
    chat-10k) BENCH_SCEN=chat URL_PATH=/room/ conns=10000 rate=10000 ;;
    chat-30k) BENCH_SCEN=chat URL_PATH=/room/ conns=10000 rate=30000 ;;
    fanout) BENCH_SCEN=fanout URL_PATH=/room/fanout conns=5000 ;;
    echo) BENCH_SCEN=echo URL_PATH=/echo conns=100 ;;
    *) bench_die "unknown scenario '$1' (hold, chat, chat-10k, chat-30k, fanout, echo)" ;;
    esac
    conns=${OPT_CONNS:-$conns}
    rate=${OPT_RATE:-$rate}
    duration=${OPT_DURATION:-$duration}
    room=${OPT_ROOM:-$room}
    BENCH_ARGS=(--connections "$conns" --duration "$duration")
    [ -n "$rate" ] && BENCH_ARGS+=(--rate "$rate")
    case $BENCH_SCEN in hold | chat) BENCH_ARGS+=(--room-size "$room") ;; esac
    return 0
}

# build_if_needed DIR: configures and builds ringcast and ringcast-bench (release with debug
# info and frame pointers, the project's default) when either is missing, or always with
# REBUILD=1.
build_if_needed() {
    local dir=$1
    if [ "${REBUILD:-0}" = 1 ] || [ ! -x "$dir/ringcast" ] || [ ! -x "$dir/ringcast-bench" ]; then
        cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
        cmake --build "$dir" --target ringcast ringcast-bench
    fi
    [ -x "$dir/ringcast" ] || bench_die "$dir/ringcast did not build"
    [ -x "$dir/ringcast-bench" ] || bench_die "$dir/ringcast-bench did not build"
}

# need_perf: perf from Debian's linux-perf, installed when missing.
need_perf() {
    command -v perf >/dev/null 2>&1 && return 0
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    DEBIAN_FRONTEND=noninteractive $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        linux-perf >/dev/null
    command -v perf >/dev/null 2>&1 || bench_die "perf is missing (Debian package linux-perf)"
}

# start_under_perf LOG PERF-ARGS... -- BROKER-ARGS...: runs perf (pinned to the load CPU) with
# the broker (pinned to the server CPU) as its child, so that every thread the broker ever has
# is counted, io_uring's io-wq workers included (perf -p PID sees only the threads that exist
# when it attaches). Sets PERF_PID, SRV_PID and SRV_PORT.
start_under_perf() {
    local log=$1
    shift
    local perf_args=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do
        perf_args+=("$1")
        shift
    done
    shift
    taskset -c "$LOAD_CPU" perf "${perf_args[@]}" -- taskset -c "$SERVER_CPU" "$@" \
        >"$log" 2>&1 </dev/null &
    PERF_PID=$!
    SRV_PID="" SRV_PORT=""
    local i
    for i in $(seq 150); do
        [ -z "$SRV_PID" ] && SRV_PID=$(pgrep -P "$PERF_PID" 2>/dev/null | head -1 || true)
        SRV_PORT=$(sed -n 's|.*listening on ws://127\.0\.0\.1:\([0-9][0-9]*\).*|\1|p' "$log" | head -1)
        [ -n "$SRV_PID" ] && [ -n "$SRV_PORT" ] && return 0
        kill -0 "$PERF_PID" 2>/dev/null || break
        sleep 0.1
    done
    cat "$log" >&2
    bench_die "the broker did not start under perf"
}

# stop_under_perf: SIGTERM to the broker (it drains and exits), then perf writes and exits.
stop_under_perf() {
    if [ -n "${SRV_PID:-}" ]; then
        kill -TERM "$SRV_PID" 2>/dev/null || true
    fi
    local i
    for i in $(seq 200); do
        kill -0 "$PERF_PID" 2>/dev/null || break
        # perf's child exits first; perf itself needs a moment to write
        sleep 0.1
    done
    if kill -0 "$PERF_PID" 2>/dev/null; then
        [ -n "${SRV_PID:-}" ] && kill -KILL "$SRV_PID" 2>/dev/null
        sleep 1
        kill -INT "$PERF_PID" 2>/dev/null || true
    fi
    wait "$PERF_PID" 2>/dev/null || true
    SRV_PID="" PERF_PID=""
}

# stats_field JSON NAME: one number from ringcast's /stats, the top-level one: the per_shard
# objects after it repeat some names, and the top-level figures come first.
stats_field() {
    { grep -o "\"$2\":[0-9.]*" <<<"$1" || true; } | head -n 1 | cut -d: -f2
}

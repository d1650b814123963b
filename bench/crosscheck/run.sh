#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Cross-check ringcast-bench's chat figures against two independent clients on the same broker,
# the same load and the same pinning: epoll-client.c (C, epoll, built here into the result
# directory) and chat-client.js (Node.js + ws). See README.md in this directory.
#
#   bench/crosscheck/run.sh                       # the three standard points, 15 repetitions
#   bench/crosscheck/run.sh --points 1000:10:500 --reps 5 --duration 10
#   bench/crosscheck/run.sh --clients bench,epoll # leave chat-client.js out
#
# For every point N:M:R (clients, room size, publishes/s) and every repetition it runs each
# client once, each against a fresh broker (`taskset -c 0 ringcast --listen 127.0.0.1:0
# --shards 1`), the client on CPU 1 with the same N, M, R, duration and warmup; the order of
# the clients rotates between repetitions. During each run sample.js samples the broker's CPU
# time and the client's context switches. After the repetitions of a point it runs the
# diagnostics (one epoll-client run with --ranks --kernel-stamps --wake-stamps, one
# chat-client.js run with --ranks, and lag-probe.c at the point's rate). Then it prints the
# comparison (compare.js) and exits non-zero when, for epoll-client against ringcast-bench, the
# medians of deliveries/s or p50 differ by more than the tolerance (10%), or a run failed or
# lost deliveries (chat-client.js is compared too, but not judged: README.md says why).
# Everything goes to 127.0.0.1; every run is bounded in time (the tools' own bounds; with the
# two C clients a point takes about 6 minutes on a quiet machine, with chat-client.js and the
# diagnostics about 11, more when it waits for quiet or runs again).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

points="1000:2:2000,1000:10:500,2000:50:200"
reps=15
duration=5
warmup=1
workers=2
epoll_workers=1
clients=bench,epoll,node
build_dir=build
nice_level=10
quiet_wait=60
quiet_idle=80
max_other=25
retries=2
tolerance=10
poll_us=30
out=""
node_args=""
epoll_args=""
diagnose=1

usage() {
    cat <<EOF
usage: bench/crosscheck/run.sh [options]
  --points LIST      N:M:R,... clients:room size:publishes/s ($points)
  --reps K           repetitions per point and client ($reps)
  --duration S       measured publishing time per run ($duration)
  --warmup S         warmup per run ($warmup)
  --clients LIST     which clients run, of bench (ringcast-bench), epoll (epoll-client) and
                     node (chat-client.js) ($clients); the rule is judged for epoll against
                     bench (for node against bench when epoll is left out)
  --workers W        chat-client.js worker processes ($workers)
  --epoll-workers W  epoll-client worker processes ($epoll_workers)
  --build-dir DIR    where ringcast and ringcast-bench are, relative to the repository root
                     or absolute ($build_dir)
  --nice N           nice level of broker and clients ($nice_level)
  --quiet-wait S     before each run, wait up to S s until both CPUs are at least
                     --quiet-idle % idle over 1 s ($quiet_wait)
  --quiet-idle PCT   ($quiet_idle)
  --max-other PCT    a run during which other processes used more than PCT % of a core is
                     run again, up to --retries times ($max_other)
  --retries K        ($retries)
  --tolerance PCT    allowed difference of the medians of deliveries/s and p50 ($tolerance)
  --poll-us US       ringcast-bench and epoll-client poll this long after a loop turn that
                     had something to do before they sleep again ($poll_us; 0: sleep at once)
  --out DIR          where the raw JSON and logs go (a new temporary directory)
  --node-args ARGS   more options for chat-client.js
  --epoll-args ARGS  more options for epoll-client
  --no-diagnose      skip the diagnostics after the repetitions of each point: one
                     epoll-client run with --ranks --kernel-stamps --wake-stamps, one
                     chat-client.js run with --ranks, and lag-probe (needs liburing)
EOF
}

while [ $# -gt 0 ]; do
    case $1 in
    --points) points=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    --epoll-workers) epoll_workers=$2; shift 2 ;;
    --clients) clients=$2; shift 2 ;;
    --build-dir) build_dir=$2; shift 2 ;;
    --nice) nice_level=$2; shift 2 ;;
    --quiet-wait) quiet_wait=$2; shift 2 ;;
    --quiet-idle) quiet_idle=$2; shift 2 ;;
    --max-other) max_other=$2; shift 2 ;;
    --retries) retries=$2; shift 2 ;;
    --tolerance) tolerance=$2; shift 2 ;;
    --poll-us) poll_us=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --node-args) node_args=$2; shift 2 ;;
    --epoll-args) epoll_args=$2; shift 2 ;;
    --no-diagnose) diagnose=0; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
done

IFS=, read -r -a clist <<<"$clients"
tools=()   # the short names the result files use: c (ringcast-bench), epoll, node
for t in "${clist[@]}"; do
    case $t in
    bench | c) tools+=(c) ;;
    epoll) tools+=(epoll) ;;
    node) tools+=(node) ;;
    *) echo "run.sh: --clients takes bench, epoll and node, not $t" >&2; exit 2 ;;
    esac
done
has() { [[ " ${tools[*]} " == *" $1 "* ]]; }
has c || { echo "run.sh: --clients must include bench: it is what the others check" >&2; exit 2; }
[ "${#tools[@]}" -ge 2 ] || { echo "run.sh: --clients needs bench and at least one other" >&2; exit 2; }
if has epoll; then judge=epoll; else judge=node; fi

case $build_dir in /*) ;; *) build_dir=$root/$build_dir ;; esac
broker=$build_dir/ringcast
bench=$build_dir/ringcast-bench
for f in "$broker" "$bench"; do
    [ -x "$f" ] || { echo "run.sh: $f is missing: build it first (cmake --build)" >&2; exit 1; }
done
# node also prints the progress lines and runs compare.js
command -v node >/dev/null || { echo "run.sh: node is missing" >&2; exit 1; }
command -v cc >/dev/null || ! has epoll || { echo "run.sh: cc is missing" >&2; exit 1; }
command -v taskset >/dev/null || { echo "run.sh: taskset is missing (util-linux)" >&2; exit 1; }
[ "$(nproc)" -ge 2 ] || { echo "run.sh: needs at least 2 CPUs" >&2; exit 1; }
[ -n "$out" ] || out=$(mktemp -d "${TMPDIR:-/tmp}/ringcast-crosscheck.XXXXXX")
mkdir -p "$out"
hz=$(getconf CLK_TCK)

SRV_PID=""
cleanup() {
    if [ -n "$SRV_PID" ]; then
        kill -TERM "$SRV_PID" 2>/dev/null || true
        wait "$SRV_PID" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# cpu_ticks: "busy idle" ticks of CPU 0 and CPU 1 together (/proc/stat; iowait counts as idle)
cpu_ticks() {
    awk '$1 == "cpu0" || $1 == "cpu1" {
        busy += $2 + $3 + $4 + $7 + $8 + $9; idle += $5 + $6 }
        END { print busy, idle }' /proc/stat
}

# proc_ticks PID: utime + stime of a process
proc_ticks() {
    awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0
}

# wait_quiet: until CPUs 0 and 1 are at least quiet_idle % idle over one second, or quiet_wait
# seconds have passed. Prints the idle % it saw last.
wait_quiet() {
    local start=$SECONDS b0 i0 b1 i1 pct=0
    while :; do
        read -r b0 i0 < <(cpu_ticks)
        sleep 1
        read -r b1 i1 < <(cpu_ticks)
        pct=$(( 100 * (i1 - i0) / (2 * hz) ))
        [ "$pct" -ge "$quiet_idle" ] && break
        [ $((SECONDS - start)) -ge "$quiet_wait" ] && break
    done
    echo "$pct"
}

start_broker() {
    local log=$1
    taskset -c 0 nice -n "$nice_level" "$broker" --listen 127.0.0.1:0 --shards 1 \
        >"$log" 2>&1 </dev/null &
    SRV_PID=$!
    SRV_PORT=""
    for _ in $(seq 100); do
        SRV_PORT=$(sed -n 's|.*listening on ws://127\.0\.0\.1:\([0-9][0-9]*\).*|\1|p' "$log" | head -1)
        [ -n "$SRV_PORT" ] && return 0
        kill -0 "$SRV_PID" 2>/dev/null || break
        sleep 0.1
    done
    cat "$log" >&2
    echo "run.sh: the broker did not start" >&2
    exit 1
}

stop_broker() {
    kill -TERM "$SRV_PID" 2>/dev/null || true
    for _ in $(seq 100); do
        kill -0 "$SRV_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$SRV_PID" 2>/dev/null || true
    wait "$SRV_PID" 2>/dev/null || true
    SRV_PID=""
}

# one_run TOOL N M R TAG [EXTRA ARGS]: a fresh broker, one run of TOOL (c, epoll or node), its
# JSON in $out/TAG.json and a line of context (other load, the tool's CPU) in $out/TAG.ctx.
one_run() {
    local tool=$1 n=$2 m=$3 r=$4 tag=$5 extra=${6:-} attempt idle cmd
    for attempt in $(seq 0 "$retries"); do
        idle=$(wait_quiet)
        start_broker "$out/$tag.broker.log"
        if [ "$tool" = c ]; then
            cmd=(taskset -c 1 nice -n "$nice_level" "$bench" chat
                --url "ws://127.0.0.1:$SRV_PORT/room/" --connections "$n" --room-size "$m"
                --rate "$r" --duration "$duration" --warmup "$warmup" --poll-us "$poll_us"
                --json --quiet)
        elif [ "$tool" = epoll ]; then
            cmd=(taskset -c 1 nice -n "$nice_level" "$epoll_client"
                --url "ws://127.0.0.1:$SRV_PORT/room/" --connections "$n" --room-size "$m"
                --rate "$r" --duration "$duration" --warmup "$warmup" --workers "$epoll_workers"
                --poll-us "$poll_us" --json --quiet)
            # shellcheck disable=SC2206 # word splitting wanted
            [ -n "$epoll_args$extra" ] && cmd+=($epoll_args $extra)
        else
            cmd=(taskset -c 1 nice -n "$nice_level" node "$here/chat-client.js"
                --url "ws://127.0.0.1:$SRV_PORT/room/" --connections "$n" --room-size "$m"
                --rate "$r" --duration "$duration" --warmup "$warmup" --workers "$workers"
                --json --quiet)
            # shellcheck disable=SC2206 # word splitting wanted
            [ -n "$node_args$extra" ] && cmd+=($node_args $extra)
        fi
        local b0 i0 b1 i1 s0 s1 rc=0 tool_ticks spid t_start
        rm -f "$out/$tag.pid"
        # the sampler (broker CPU, client wake-ups) runs outside the tool's subshell, so that its
        # own CPU is not counted as the tool's
        node "$here/sample.js" "$SRV_PID" "$out/$tag.pid" >"$out/$tag.samples" 2>/dev/null &
        spid=$!
        read -r b0 i0 < <(cpu_ticks)
        s0=$(proc_ticks "$SRV_PID")
        t_start=$(date +%s.%N)
        # the subshell's `times` gives the CPU of the tool and every process it waited for
        tool_ticks=$( (
            "${cmd[@]}" >"$out/$tag.json" 2>"$out/$tag.err" &
            echo $! >"$out/$tag.pid"
            wait $! || echo $? >"$out/$tag.rc"
            times # not in a pipeline: a forked `times` would not see the tool
        ) | awk -v hz="$hz" 'END {
            split($0, f, " "); t = 0
            for (i = 1; i <= 2; i++) { s = f[i]; sub(/s$/, "", s); split(s, p, "m"); t += p[1] * 60 + p[2] }
            printf "%d", t * hz + 0.5 }')
        s1=$(proc_ticks "$SRV_PID")
        read -r b1 i1 < <(cpu_ticks)
        wait "$spid" 2>/dev/null || true
        rm -f "$out/$tag.pid"
        stop_broker
        [ -f "$out/$tag.rc" ] && rc=$(cat "$out/$tag.rc") && rm -f "$out/$tag.rc"
        local wall=$(( (b1 - b0) + (i1 - i0) ))   # ticks of 2 CPUs
        local other=$(( (b1 - b0) - (s1 - s0) - tool_ticks ))
        [ "$other" -lt 0 ] && other=0
        # other load as % of one core over the run
        local other_pct=$(( wall > 0 ? 200 * other / wall : 0 ))
        printf '{"tool":"%s","n":%s,"m":%s,"r":%s,"rc":%s,"attempt":%s,"t_start":%s,"idle_before_pct":%s,"other_core_pct":%s,"broker_cpu_s":%s,"tool_cpu_s":%s,"wall_s":%s}\n' \
            "$tool" "$n" "$m" "$r" "$rc" "$attempt" "$t_start" "$idle" "$other_pct" \
            "$(awk -v t=$((s1 - s0)) -v hz="$hz" 'BEGIN{printf "%.2f", t/hz}')" \
            "$(awk -v t="$tool_ticks" -v hz="$hz" 'BEGIN{printf "%.2f", t/hz}')" \
            "$(awk -v t="$wall" -v hz="$hz" 'BEGIN{printf "%.2f", t/hz/2}')" >"$out/$tag.ctx"
        # shellcheck disable=SC2016 # the single quotes hold JavaScript
        printf '  %-22s rc %s, other load %3s%% of a core, %s\n' "$tag" "$rc" "$other_pct" \
            "$(node -e '
                const j = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
                const m = j.messages || {}, l = m.latency_us || {};
                console.log(j.error ? "error: " + j.error :
                  `${Math.round(m.deliveries_per_s)}/s, lost ${m.lost}, p50 ${l.p50} us, p99 ${l.p99} us`);
              ' "$out/$tag.json" 2>/dev/null || echo "no JSON (see $tag.err)")"
        [ "$other_pct" -le "$max_other" ] && return 0
        [ "$attempt" -lt "$retries" ] && echo "  $tag: the machine was busy, running it again"
    done
    return 0
}

epoll_client=""
if has epoll; then
    # The way lag-probe is built: into the result directory, never into the source tree.
    if cc -O2 -Wall -Wextra -Werror -o "$out/epoll-client" "$here/epoll-client.c" -lmbedcrypto \
        2>"$out/epoll-client.build.log"; then
        epoll_client=$out/epoll-client
    else
        cat "$out/epoll-client.build.log" >&2
        echo "run.sh: epoll-client did not build (cc, libmbedtls-dev)" >&2
        exit 1
    fi
fi
probe=""
if [ "$diagnose" = 1 ]; then
    if cc -O2 -o "$out/lag-probe" "$here/lag-probe.c" -luring 2>"$out/lag-probe.build.log"; then
        probe=$out/lag-probe
    else
        echo "lag-probe did not build (cc, liburing-dev): see $out/lag-probe.build.log"
    fi
fi

echo "ringcast crosscheck: points $points, $reps reps, clients $clients, ${duration}s (+${warmup}s warmup), nice $nice_level, poll ${poll_us} us"
echo "broker $broker, tool $bench, node $(node --version), results in $out"
IFS=, read -r -a plist <<<"$points"
for p in "${plist[@]}"; do
    IFS=: read -r n m r <<<"$p"
    for k in $(seq 1 "$reps"); do
        # rotate the order, so that no client always runs first or last
        order=()
        for j in $(seq 0 $((${#tools[@]} - 1))); do
            order+=("${tools[$(( (j + k - 1) % ${#tools[@]} ))]}")
        done
        for t in "${order[@]}"; do
            one_run "$t" "$n" "$m" "$r" "n$n-m$m-r$r-$t-$k"
        done
    done
    if [ "$diagnose" = 1 ]; then
        has epoll && one_run epoll "$n" "$m" "$r" "n$n-m$m-r$r-epoll-ranks-1" "--ranks --kernel-stamps --wake-stamps"
        has node && one_run node "$n" "$m" "$r" "n$n-m$m-r$r-node-ranks-1" --ranks
        if [ -n "$probe" ]; then
            wait_quiet >/dev/null
            cnt=$(awk -v r="$r" 'BEGIN { c = int(r * 5); if (c < 1000) c = 1000; print c }')
            taskset -c 1 nice -n "$nice_level" "$probe" "$r" "$cnt" >"$out/n$n-m$m-r$r-probe.json"
            echo "  lag-probe at $r/s: $(cat "$out/n$n-m$m-r$r-probe.json")"
        fi
    fi
done

node "$here/compare.js" --tolerance "$tolerance" --judge "$judge" "$out"

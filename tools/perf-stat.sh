#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Counts the broker's io_uring and syscall tracepoints during one standard bench scenario and
# prints each count per delivered message (deliveries from ringcast's /stats).
#
#   tools/perf-stat.sh SCENARIO [options] [-- ringcast-bench args]
#
#   SCENARIO            hold, chat (CHAT-10k at 2,000/s), chat-10k, chat-30k, fanout, echo
#   --connections N     --rate R     --duration S     --room-size M      override the sizes
#   --build-dir DIR     where ringcast is built (default build; built when missing)
#   --rebuild           build even when the binaries are there
#   --events LIST       perf events instead of the default list below
#   --shards N          broker shards (default 1, like the suite)
#
# The broker runs on CPU 0 (--shards 1), ringcast-bench and perf on CPU 1. This machine has no
# hardware counters (PLATFORM.md section 5): the events are tracepoints and software counters.
# Writes bench/out/perf-stat-SCENARIO.txt and prints it.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=../bench/lib.sh
. bench/lib.sh

EVENTS=task-clock,context-switches,cpu-migrations,page-faults
EVENTS+=,syscalls:sys_enter_io_uring_enter,io_uring:io_uring_submit_req
EVENTS+=,io_uring:io_uring_complete,io_uring:io_uring_poll_arm,io_uring:io_uring_queue_async_work
EVENTS+=,io_uring:io_uring_task_add,io_uring:io_uring_local_work_run
EVENTS+=,io_uring:io_uring_cqring_wait,io_uring:io_uring_req_failed
EVENTS+=,io_uring:io_uring_cqe_overflow,io_uring:io_uring_short_write
EVENTS+=,syscalls:sys_enter_sendto,syscalls:sys_enter_sendmsg,syscalls:sys_enter_write
EVENTS+=,syscalls:sys_enter_writev,syscalls:sys_enter_recvfrom,syscalls:sys_enter_read
EVENTS+=,syscalls:sys_enter_futex

scenario="" build_dir=build shards=1 extra=()
OPT_CONNS="" OPT_RATE="" OPT_DURATION="" OPT_ROOM=""
while [ $# -gt 0 ]; do
    case $1 in
    --connections) OPT_CONNS=$2; shift ;;
    --rate) OPT_RATE=$2; shift ;;
    --duration) OPT_DURATION=$2; shift ;;
    --room-size) OPT_ROOM=$2; shift ;;
    --build-dir) build_dir=$2; shift ;;
    --rebuild) REBUILD=1 ;;
    --events) EVENTS=$2; shift ;;
    --shards) shards=$2; shift ;;
    -h | --help) sed -n '3,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --) shift; extra=("$@"); break ;;
    -*) bench_die "unknown option '$1' (see --help)" ;;
    *) [ -z "$scenario" ] || bench_die "one scenario at a time"; scenario=$1 ;;
    esac
    shift
done
[ -n "$scenario" ] || bench_die "usage: tools/perf-stat.sh SCENARIO [options] (see --help)"
scenario_setup "$scenario"
build_if_needed "$build_dir"
need_perf

mkdir -p bench/out
outfile=bench/out/perf-stat-$scenario.txt
counts=bench/out/perf-stat-$scenario.csv
log=bench/out/perf-stat-$scenario.log
trap 'stop_under_perf' EXIT

start_under_perf "$log" stat -x, -o "$counts" -e "$EVENTS" -- \
    "$build_dir/ringcast" --listen 127.0.0.1:0 --shards "$shards"
before=$(curl -s --max-time 5 "http://127.0.0.1:$SRV_PORT/stats")
bench_cmd=("$build_dir/ringcast-bench" "$BENCH_SCEN" --url "ws://127.0.0.1:$SRV_PORT$URL_PATH"
           "${BENCH_ARGS[@]}" "${extra[@]}" --pid "$SRV_PID" --quiet)
rc=0
timeout -s INT -k 10 $(( ${OPT_DURATION:-10} + 120 )) taskset -c "$LOAD_CPU" "${bench_cmd[@]}" \
    >"bench/out/perf-stat-$scenario.bench.txt" 2>&1 || rc=$?
after=$(curl -s --max-time 5 "http://127.0.0.1:$SRV_PORT/stats")
stop_under_perf
trap - EXIT
[ $rc -eq 0 ] || echo "perf-stat.sh: ringcast-bench exited $rc" >&2

d0=$(stats_field "$before" messages_delivered) d1=$(stats_field "$after" messages_delivered)
s0=$(stats_field "$before" sends) s1=$(stats_field "$after" sends)
r0=$(stats_field "$before" messages_received) r1=$(stats_field "$after" messages_received)
a1=$(stats_field "$after" accepted)
deliveries=$(( ${d1:-0} - ${d0:-0} ))
sends=$(( ${s1:-0} - ${s0:-0} ))
received=$(( ${r1:-0} - ${r0:-0} ))

{
    echo "tools/perf-stat.sh $scenario: the broker under perf stat, whole process life"
    echo "broker:  taskset -c $SERVER_CPU $build_dir/ringcast --listen 127.0.0.1:0 --shards $shards"
    echo "load:    taskset -c $LOAD_CPU ${bench_cmd[*]}" |
        sed -e "s|127\.0\.0\.1:$SRV_PORT|127.0.0.1:PORT|" -e 's|--pid [0-9]*|--pid SERVER_PID|'
    echo "perf:    perf stat -e $EVENTS"
    echo "machine: $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1), $(nproc --all) CPUs, kernel $(uname -r)"
    echo
    echo "from /stats: $deliveries messages delivered, $received received, $sends sends" \
         "($(awk -v d="$deliveries" -v s="$sends" 'BEGIN { if (s > 0) printf "%.2f", d / s; else printf "n/a" }') frames per send)," \
         "${a1:-?} connections accepted"
    grep -E '^\s+(connections|messages|latency|server|client) ' "bench/out/perf-stat-$scenario.bench.txt" || true
    echo
    awk -F, -v d="$deliveries" '
        /^#/ || NF < 3 { next }
        {
            ev = $3; c = $1
            if (c ~ /^[0-9.]+$/) {
                per = d > 0 ? sprintf("%12.4f", c / d) : "         n/a"
                if (ev == "task-clock") { unit = " ms"; perdesc = sprintf("%12.3f us", c * 1000 / (d > 0 ? d : 1)) }
                else { unit = ""; perdesc = per }
                printf "%-42s %16s%s %s\n", ev, c, unit, perdesc
            } else {
                printf "%-42s %16s\n", ev, c
            }
        }
        BEGIN { printf "%-42s %16s %12s\n", "event", "count", "per delivery" }
    ' "$counts"
    echo
    echo "(counts cover the broker's whole life: start, the connects, the scenario, the drain;" \
         "task-clock per delivery is in microseconds of CPU)"
} | tee "$outfile"

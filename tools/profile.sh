#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Profiles the broker under one standard bench scenario: perf record with call graphs, then a
# perf report summary and an SVG flame graph.
#
#   tools/profile.sh SCENARIO [options] [-- ringcast-bench args]
#
#   SCENARIO            hold, chat (CHAT-10k at 2,000/s), chat-10k, chat-30k, fanout, echo
#   --connections N     --rate R     --duration S     --room-size M      override the sizes
#   --call-graph MODE   dwarf (default: complete stacks, bigger data) or fp (frame pointers:
#                       cheap, but can miss the caller of a leaf function)
#   --freq HZ           samples per second (default 999)
#   --build-dir DIR     where ringcast is built (default build; built when missing)
#   --rebuild           build even when the binaries are there
#   --shards N          broker shards (default 1, like the suite)
#
# The broker runs on CPU 0 (--shards 1), ringcast-bench and perf on CPU 1. This machine has no
# hardware counters (PLATFORM.md section 5), so the samples come from the cpu-clock software
# event. Writes, under bench/out/:
#   profile-SCENARIO.txt     the run, where the CPU went by binary, the top functions (self
#                            time), and the call graphs of the biggest
#   profile-SCENARIO.svg     the flame graph (tools/flamegraph.py); .folded: its stacks
#   profile-SCENARIO.data    perf.data, for `perf report -i` by hand
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=../bench/lib.sh
. bench/lib.sh

scenario="" build_dir=build shards=1 mode=dwarf freq=999 extra=()
OPT_CONNS="" OPT_RATE="" OPT_DURATION="" OPT_ROOM=""
while [ $# -gt 0 ]; do
    case $1 in
    --connections) OPT_CONNS=$2; shift ;;
    --rate) OPT_RATE=$2; shift ;;
    --duration) OPT_DURATION=$2; shift ;;
    --room-size) OPT_ROOM=$2; shift ;;
    --call-graph) mode=$2; shift ;;
    --freq) freq=$2; shift ;;
    --build-dir) build_dir=$2; shift ;;
    --rebuild) REBUILD=1 ;;
    --shards) shards=$2; shift ;;
    -h | --help) sed -n '3,27p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --) shift; extra=("$@"); break ;;
    -*) bench_die "unknown option '$1' (see --help)" ;;
    *) [ -z "$scenario" ] || bench_die "one scenario at a time"; scenario=$1 ;;
    esac
    shift
done
[ -n "$scenario" ] || bench_die "usage: tools/profile.sh SCENARIO [options] (see --help)"
case $mode in dwarf | fp) ;; *) bench_die "--call-graph is dwarf or fp" ;; esac
scenario_setup "$scenario"
build_if_needed "$build_dir"
need_perf

mkdir -p bench/out
base=bench/out/profile-$scenario
rm -f "$base.data" "$base.data.old"
trap 'stop_under_perf' EXIT

start_under_perf "$base.log" record -e cpu-clock -F "$freq" -g --call-graph "$mode" \
    -o "$base.data" -- "$build_dir/ringcast" --listen 127.0.0.1:0 --shards "$shards"
before=$(curl -s --max-time 5 "http://127.0.0.1:$SRV_PORT/stats")
bench_cmd=("$build_dir/ringcast-bench" "$BENCH_SCEN" --url "ws://127.0.0.1:$SRV_PORT$URL_PATH"
           "${BENCH_ARGS[@]}" "${extra[@]}" --pid "$SRV_PID" --quiet)
echo "profile.sh: ringcast-bench ${bench_cmd[*]:1}" >&2
rc=0
timeout -s INT -k 10 $(( ${OPT_DURATION:-10} + 120 )) taskset -c "$LOAD_CPU" "${bench_cmd[@]}" \
    >"$base.bench.txt" 2>&1 || rc=$?
after=$(curl -s --max-time 5 "http://127.0.0.1:$SRV_PORT/stats")
stop_under_perf
trap - EXIT
[ $rc -eq 0 ] || echo "profile.sh: ringcast-bench exited $rc" >&2
[ -s "$base.data" ] || bench_die "perf wrote no data (see $base.log)"

deliveries=$(( $(stats_field "$after" messages_delivered) - $(stats_field "$before" messages_delivered) ))
sends=$(( $(stats_field "$after" sends) - $(stats_field "$before" sends) ))

echo "profile.sh: perf report and flame graph (dwarf stacks take a while)" >&2
report=(perf report -i "$base.data" --stdio --no-children)
{
    echo "tools/profile.sh $scenario: the broker's CPU, sampled with cpu-clock at $freq Hz," \
         "call graphs by $mode"
    echo "broker:  taskset -c $SERVER_CPU $build_dir/ringcast --listen 127.0.0.1:0 --shards $shards"
    echo "load:    taskset -c $LOAD_CPU ${bench_cmd[*]}" |
        sed -e "s|127\.0\.0\.1:$SRV_PORT|127.0.0.1:PORT|" -e 's|--pid [0-9]*|--pid SERVER_PID|'
    echo "perf:    perf record -e cpu-clock -F $freq -g --call-graph $mode (broker as perf's child)"
    echo "machine: $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1), $(nproc --all) CPUs, kernel $(uname -r)"
    echo "from /stats: $deliveries messages delivered in $sends sends" \
         "($(awk -v d="$deliveries" -v s="$sends" 'BEGIN { if (s > 0) printf "%.2f", d / s; else printf "n/a" }') frames per send)"
    grep -E '^\s+(connections|messages|latency|server|client) ' "$base.bench.txt" || true
    echo
    echo "== where the CPU went, by binary (self time)"
    "${report[@]}" --sort dso -g none --percent-limit 0.5 2>/dev/null | grep -v '^#' | sed '/^$/d'
    echo
    echo "== top functions (self time, at least 0.3%)"
    "${report[@]}" --sort dso,sym -g none --percent-limit 0.3 2>/dev/null | grep -v '^#' | sed '/^$/d' | head -60
    echo
    echo "== call graphs of the functions with at least 3% (callers, folded)"
    "${report[@]}" --sort sym -g folded,0.5,caller,function,percent --percent-limit 3 2>/dev/null |
        grep -v '^#' | sed '/^$/d' | cut -c1-400 | head -120
} >"$base.txt"

perf script -i "$base.data" 2>/dev/null |
    /usr/bin/python3 tools/flamegraph.py --folded "$base.folded" \
        --title "ringcast under $scenario ($deliveries deliveries, cpu-clock $freq Hz, $mode stacks)" \
        >"$base.svg"

echo "profile.sh: wrote $base.txt, $base.svg ($base.data for perf report -i)" >&2
sed -n '1,40p' "$base.txt"

#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs the libFuzzer targets of tests/fuzz/ and folds what they find back into the corpus.
#
#   tools/fuzz.sh [TARGET|all] [SECONDS]       e.g. tools/fuzz.sh tls_record 600
#
# Builds the fuzz preset (clang, ASan+UBSan), then for each target in turn (all of them, one
# after another, unless TARGET names one): fuzzes for SECONDS (default 60) with one process, the
# target's -max_len and its .dict, in a scratch copy of tests/fuzz/corpus/TARGET; merges the
# inputs that add edges into a fresh copy of the checked-in corpus (-merge=1, edges only) and
# puts that in its place; prints executions, coverage and findings.
#
# Exits non-zero when a target crashed, leaked, timed out or ran out of memory. The input that
# did it stays in build/fuzz/findings/TARGET/, and the corpus of that target is left alone.
# Environment: FUZZ_BUILD_JOBS (default 2), FUZZ_MERGE=0 to leave the corpus alone,
# FUZZ_ARGS for extra libFuzzer flags.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${2:-60}
want=${1:-all}
jobs=${FUZZ_BUILD_JOBS:-2}
build=build/fuzz
src=tests/fuzz

all=()
for f in "$src"/fuzz_*.c; do
    t=${f##*/fuzz_}
    all+=("${t%.c}")
done
if [[ $want == all ]]; then
    targets=("${all[@]}")
elif [[ -f $src/fuzz_$want.c ]]; then
    targets=("$want")
else
    echo "fuzz.sh: no target '$want' (have: ${all[*]})" >&2
    exit 2
fi
if ! [[ $seconds =~ ^[0-9]+$ ]] || ((seconds == 0)); then
    echo "fuzz.sh: SECONDS must be a positive number, not '$seconds'" >&2
    exit 2
fi

# Longest input per target: room for what the parser accepts and a little past its limits.
max_len() {
    case $1 in
    ws_handshake) echo 9216 ;;    # HTTP_HEAD_MAX (8192) and then some, for -E2BIG
    tls_record) echo 4096 ;;      # structured: a few records and edits; raw: a few records
    config_file) echo 4096 ;;     # a config file of a hundred lines or so
    config_argv) echo 1024 ;;     # a command line and environment
    *) echo 4096 ;;
    esac
}

cmake --preset fuzz >/dev/null
cmake --build --preset fuzz -j "$jobs" --target "${targets[@]/#/fuzz_}"

# The checked-in corpus, in files and bytes.
corpus_size() {
    local n bytes
    n=$(find "$1" -type f | wc -l)
    bytes=$(find "$1" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}')
    echo "$n files, $bytes bytes"
}

# halt_on_error: without it UBSan reports and goes on, and libFuzzer never sees a finding.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_stacktrace=1}

status=0
summary=()
for t in "${targets[@]}"; do
    bin=$build/fuzz/fuzz_$t
    corpus=$src/corpus/$t
    work=$build/run/$t
    findings=$build/findings/$t
    log=$work/fuzz.log
    dict=()
    [[ -f $src/$t.dict ]] && dict=(-dict="$src/$t.dict")
    rm -rf "$work"
    mkdir -p "$work/corpus" "$findings" "$corpus"
    cp -- "$corpus"/* "$work/corpus/" 2>/dev/null || true
    before=$(corpus_size "$corpus")
    nr_findings_before=$(find "$findings" -type f | wc -l)

    echo "== $t: ${seconds}s, -max_len=$(max_len "$t") ${dict[*]}"
    rc=0
    # -close_fd_mask=1: the target's stdout (--help text and the like) is noise; libFuzzer
    # itself writes to stderr. One process: -jobs/-workers would take every core.
    # shellcheck disable=SC2086
    nice "$bin" -max_total_time="$seconds" -max_len="$(max_len "$t")" "${dict[@]}" \
        -print_final_stats=1 -close_fd_mask=1 -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$findings/" ${FUZZ_ARGS:-} "$work/corpus" >"$log" 2>&1 || rc=$?

    done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 || true)
    [[ -n $done_line ]] || done_line=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
    execs=$(awk '/stat::number_of_executed_units:/ {print $2}' "$log" | tail -n 1)
    rate=$(awk '/stat::average_exec_per_sec:/ {print $2}' "$log" | tail -n 1)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$done_line")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$done_line")
    nr_findings=$(($(find "$findings" -type f | wc -l) - nr_findings_before))

    if ((rc != 0)); then
        status=1
        echo "!! $t: libFuzzer exited $rc; the end of $log:"
        tail -n 40 "$log"
        echo "!! inputs kept in $findings/:"
        ls -l "$findings"
        echo "!! replay one with: $bin FILE (or $build/tests/replay_$t FILE under gdb)"
        after="$before (not merged)"
    elif [[ ${FUZZ_MERGE:-1} == 1 ]]; then
        # Fresh directory seeded with the checked-in corpus, so that the named seeds stay;
        # -merge=1 adds only the new inputs that reach edges those lack (-use_counters=0:
        # edges, not hit counts, or the corpus would grow with every loop bound).
        merged=$work/merged
        rm -rf "$merged"
        mkdir -p "$merged"
        cp -- "$corpus"/* "$merged/" 2>/dev/null || true
        "$bin" -merge=1 -use_counters=0 -max_len="$(max_len "$t")" -close_fd_mask=1 \
            "$merged" "$work/corpus" >"$work/merge.log" 2>&1
        # Name what the fuzzer found the way the README says: fuzz-<hash>.
        for f in "$merged"/*; do
            b=${f##*/}
            if [[ $b =~ ^[0-9a-f]{40}$ ]]; then
                mv -- "$f" "$merged/fuzz-${b:0:12}"
            fi
        done
        rm -rf "$corpus"
        mv -- "$merged" "$corpus"
        after=$(corpus_size "$corpus")
    else
        after="$before (FUZZ_MERGE=0)"
    fi
    line="$t: ${seconds}s, ${execs:-?} executions (${rate:-?}/s), cov ${cov:-?} edges, ft ${ft:-?}"
    line+=", corpus $before -> $after, findings $nr_findings"
    echo "== $line"
    summary+=("$line")
done

echo
echo "== summary"
printf '%s\n' "${summary[@]}"
exit $status

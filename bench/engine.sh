#!/bin/sh
# Engine speed (`make bench`): melt bench on a synthetic TinyLlama-1.1B
# shape in Q4_0, Q8_0 and Q4_K_M, with the roofline fraction of decode;
# when LLAMA_BENCH names a llama-bench binary (bench/llamacpp.sh builds
# one), llama-bench runs on the very same files in the same run,
# interleaved test by test (melt pp128, llama.cpp pp128, melt pp512, ...),
# and the melt/llama.cpp ratios are printed. Then model load: melt bench's
# load_ms against llama-completion's "load time" (the same span: model load
# to the end of a warm-up decode), page cache warm, runs alternated.
# Usage: bench/engine.sh [BUILD_DIR]
#   env LLAMA_BENCH=path     llama-bench to compare with (default: none)
#   env LLAMA_COMPLETION=path  llama-completion for the load times (default:
#                            the one beside LLAMA_BENCH, if any)
#   env BENCH_QUICK=1        -r 1, no pp512, 3 load runs (about a third of the time)
#   env BENCH_TESTS="pp128 tg128"  speed tests (default pp128 pp512 tg128; "": none)
#   env BENCH_LOAD_RUNS=N    load runs per tool and type (default 5; 0: none)
#   env BENCH_LOAD_COLD=1    also cold loads: the model file dropped from the
#                            page cache before each (dd iflag=nocache)
#   env BENCH_THREADS=N      threads (default 2), BENCH_REPS=N (default 3)
#   env BENCH_TYPES="q4_0 q8_0 q4_k_m"   weight types
#   env BENCH_MODELS=DIR     model cache (default build/bench-models, git-ignored)
#   env BENCH_OUT=DIR        keep every raw JSON line there (default: a temp dir)
# The models are made once (melt model synth --type f16, then melt model
# quantize) and reused. Only ratios measured in one run mean anything: the
# machines are shared and their speed drifts.
set -eu
BUILD=${1:-build}
cd "$(dirname "$0")/.."
MELT=$BUILD/melt
[ -x "$MELT" ] || { echo "build first: make BUILD=$BUILD" >&2; exit 2; }
THREADS=${BENCH_THREADS:-2}
REPS=${BENCH_REPS:-3}
TYPES=${BENCH_TYPES:-q4_0 q8_0 q4_k_m}
MODELS=${BENCH_MODELS:-build/bench-models}
TESTS="pp128 pp512 tg128"
LOAD_RUNS=${BENCH_LOAD_RUNS:-5}
if [ "${BENCH_QUICK:-0}" = 1 ]; then
    REPS=1
    TESTS="pp128 tg128"
    LOAD_RUNS=${BENCH_LOAD_RUNS:-3}
fi
TESTS=${BENCH_TESTS-$TESTS}
LB=${LLAMA_BENCH:-}
if [ -n "$LB" ] && [ ! -x "$LB" ]; then
    echo "bench: LLAMA_BENCH=$LB is not an executable" >&2
    exit 2
fi
LC=${LLAMA_COMPLETION:-}
if [ -z "$LC" ] && [ -n "$LB" ] && [ -x "$(dirname "$LB")/llama-completion" ]; then
    LC=$(dirname "$LB")/llama-completion
fi
if [ -n "$LC" ] && [ ! -x "$LC" ]; then
    echo "bench: LLAMA_COMPLETION=$LC is not an executable" >&2
    exit 2
fi
COLD=${BENCH_LOAD_COLD:-0}
if [ -n "${BENCH_OUT:-}" ]; then
    OUT=$BENCH_OUT
    mkdir -p "$OUT"
else
    OUT=$(mktemp -d "${TMPDIR:-/tmp}/melt-engine-bench.XXXXXX")
    trap 'rm -rf "$OUT"' EXIT INT TERM
fi

# ---- models (made once; a partial file never keeps the final name)
mkdir -p "$MODELS"
F16=$MODELS/tinyllama-1.1b-f16.gguf
if [ ! -f "$F16" ]; then
    echo "bench: synthesizing $F16" >&2
    "$MELT" model synth --preset tinyllama-1.1b --type f16 -q -o "$F16.part"
    mv "$F16.part" "$F16"
fi
for ty in $TYPES; do
    f=$MODELS/tinyllama-1.1b-$ty.gguf
    if [ ! -f "$f" ]; then
        echo "bench: quantizing $f" >&2
        "$MELT" model quantize -q "$F16" "$f.part" "$ty"
        mv "$f.part" "$f"
    fi
done

# field NAME FILE: a number field of a one-line llama-bench/melt JSON object
field() { sed -n "s/.*\"$1\": \\([-0-9.e+]*\\).*/\\1/p" "$2" | head -n 1; }

# test_flags TEST: -p/-n for one test
test_flags() {
    case $1 in
    pp*) echo "-p ${1#pp} -n 0" ;;
    tg*) echo "-p 0 -n ${1#tg}" ;;
    esac
}

"$MELT" version 2>/dev/null | head -n 2 | paste -sd' ' | tr -s ' '
[ -n "$LB" ] && echo "llama.cpp: $("$LB" --version 2>&1 | grep -m1 version || echo "$LB")"
echo "threads $THREADS, repetitions $REPS, tests: ${TESTS:-none}"
echo

: >"$OUT/table"
for ty in $TYPES; do
    f=$MODELS/tinyllama-1.1b-$ty.gguf
    for t in $TESTS; do
        flags=$(test_flags "$t")
        roof=""
        case $t in tg*) roof="--roofline" ;; esac
        # shellcheck disable=SC2086
        "$MELT" bench -m "$f" $flags -t "$THREADS" -r "$REPS" -o jsonl $roof \
            >"$OUT/melt-$ty-$t.jsonl" 2>"$OUT/melt-$ty-$t.err" ||
            { cat "$OUT/melt-$ty-$t.err" >&2; exit 1; }
        m_ts=$(field avg_ts "$OUT/melt-$ty-$t.jsonl")
        m_sd=$(field stddev_ts "$OUT/melt-$ty-$t.jsonl")
        bw=$(field bw_read_gbs "$OUT/melt-$ty-$t.jsonl")
        bpt=$(field bytes_per_token "$OUT/melt-$ty-$t.jsonl")
        rl=$(field roofline_ts "$OUT/melt-$ty-$t.jsonl")
        l_ts="" l_sd=""
        if [ -n "$LB" ]; then
            # shellcheck disable=SC2086
            "$LB" -m "$f" $flags -t "$THREADS" -r "$REPS" -o jsonl \
                >"$OUT/llama-$ty-$t.jsonl" 2>"$OUT/llama-$ty-$t.err" ||
                { tail -n 20 "$OUT/llama-$ty-$t.err" >&2; exit 1; }
            l_ts=$(field avg_ts "$OUT/llama-$ty-$t.jsonl")
            l_sd=$(field stddev_ts "$OUT/llama-$ty-$t.jsonl")
        fi
        echo "$ty $t ${m_ts:--} ${m_sd:--} ${l_ts:--} ${l_sd:--} ${bw:--} ${bpt:--} ${rl:--}" >>"$OUT/table"
        echo "bench: $ty $t: melt ${m_ts} t/s${l_ts:+, llama.cpp $l_ts t/s}" >&2
    done
done

# ---- the table: t/s mean ± stddev, ratios, roofline fractions
[ -s "$OUT/table" ] && awk -v have_lb="${LB:+1}" -v tests="$TESTS" '
function num(x) { return x != "-" && x != "" }
{
    ty = $1; t = $2
    m = num($3) ? sprintf("%.2f +- %.2f", $3, $4) : "-"
    l = num($5) ? sprintf("%.2f +- %.2f", $5, $6) : "-"
    ratio = (num($3) && num($5) && $5 > 0) ? sprintf("%.3f", $3 / $5) : "-"
    rf_m = (num($9) && $9 > 0) ? sprintf("%.3f", $3 / $9) : "-"
    rf_l = (num($9) && $9 > 0 && num($5)) ? sprintf("%.3f", $5 / $9) : "-"
    bw = num($7) ? sprintf("%.1f", $7) : "-"
    bpt = num($8) ? sprintf("%.0f", $8 / 1048576) : "-"
    rows[NR] = sprintf("| %-7s | %-6s | %18s | %18s | %10s | %8s | %9s | %11s | %13s |", ty, t, m, l, ratio, bw, bpt, rf_m, rf_l)
    if (num($5) && $5 > 0) { key = t; lsum[key] += log($3 / $5); lcnt[key]++ }
}
END {
    printf "| %-7s | %-6s | %18s | %18s | %10s | %8s | %9s | %11s | %13s |\n", "type", "test", "melt t/s", "llama.cpp t/s", "melt/llama", "bw GB/s", "MiB/token", "melt roofl.", "llama roofl."
    print "| ------- | ------ | -----------------: | -----------------: | ---------: | -------: | --------: | ----------: | ------------: |"
    for (i = 1; i <= NR; i++) print rows[i]
    if (have_lb) {
        print ""
        print "melt/llama.cpp, geometric mean over the types:"
        nt = split(tests, order, " ")
        for (i = 1; i <= nt; i++)
            if (order[i] in lcnt)
                printf "  %-6s %.3f\n", order[i], exp(lsum[order[i]] / lcnt[order[i]])
    }
}' "$OUT/table"
if [ -s "$OUT/table" ]; then
    echo
    echo "roofline: tg t/s / (read bandwidth / bytes read per token: weights but the token"
    echo "embeddings, plus the KV cache); bandwidth and bytes from melt bench --roofline"
fi

# ---- model load: process start to ready to decode
# melt: melt bench -p 0 -n 1 --no-warmup prints load_ms, from the start of
# melt_model_load (tokenizer and context included) to the end of a decode of
# BOS, EOS; llama.cpp: llama-completion's "load time", from the start of its
# model load to the end of its warm-up decode of BOS, EOS (context included).
# Both mmap the file. wall: the whole process (start, load, a 1-token
# generation, exit). Runs alternate between the tools, and which goes first.
now_ms() { echo $(($(date +%s%N) / 1000000)); }
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# uncache F: drop F (only) from the page cache; pages another process has
# mapped stay: then a line on stderr says how much of F was still cached
uncache() {
    dd if="$1" iflag=nocache count=0 status=none
    if command -v fincore >/dev/null; then
        left=$(fincore -b -n -o RES "$1" 2>/dev/null | tr -d ' ')
        [ "${left:-0}" -gt 0 ] && echo "bench: $1: $left bytes still cached (mapped elsewhere?)" >&2
    fi
    return 0
}

# melt_load F OUT: one melt load; appends "load_ms wall_ms" to OUT
melt_load() {
    t0=$(now_ms)
    "$MELT" bench -m "$1" -p 0 -n 1 -r 1 --no-warmup -t "$THREADS" -o jsonl \
        >"$OUT/load.jsonl" 2>"$OUT/load.err" || { cat "$OUT/load.err" >&2; exit 1; }
    t1=$(now_ms)
    echo "$(field load_ms "$OUT/load.jsonl") $((t1 - t0))" >>"$2"
}
# llama_load F OUT: the same for llama-completion
llama_load() {
    t0=$(now_ms)
    "$LC" -m "$1" -n 1 -p x --temp 0 -t "$THREADS" -no-cnv </dev/null >/dev/null \
        2>"$OUT/load.err" || { tail -n 20 "$OUT/load.err" >&2; exit 1; }
    t1=$(now_ms)
    ms=$(sed -n 's/.*common_perf_print: *load time = *\([0-9.]*\) ms.*/\1/p' "$OUT/load.err" | head -n 1)
    echo "${ms:--} $((t1 - t0))" >>"$2"
}
# load_rows MODE: a table row per type, MODE warm or cold
load_rows() {
    for ty in $TYPES; do
        f=$MODELS/tinyllama-1.1b-$ty.gguf
        m=$OUT/load-melt-$ty-$1 l=$OUT/load-llama-$ty-$1
        : >"$m"
        : >"$l"
        [ "$1" = warm ] && cat "$f" >/dev/null
        i=0
        while [ $i -lt "$LOAD_RUNS" ]; do
            order="melt llama"
            [ $((i % 2)) = 1 ] && order="llama melt"
            for tool in $order; do
                [ "$tool" = llama ] && [ -z "$LC" ] && continue
                [ "$1" = cold ] && uncache "$f"
                if [ "$tool" = melt ]; then melt_load "$f" "$m"; else llama_load "$f" "$l"; fi
            done
            i=$((i + 1))
        done
        ml=$(cut -d' ' -f1 "$m" | median) mw=$(cut -d' ' -f2 "$m" | median)
        ll=$(cut -d' ' -f1 "$l" | median) lw=$(cut -d' ' -f2 "$l" | median)
        echo "$ty $1 $ml $ll $mw $lw"
        echo "bench: load $ty $1: melt $ml ms${LC:+, llama.cpp $ll ms} (medians)" >&2
    done
}
if [ "$LOAD_RUNS" -gt 0 ]; then
    : >"$OUT/load"
    load_rows warm >>"$OUT/load"
    [ "$COLD" = 1 ] && load_rows cold >>"$OUT/load"
    echo
    echo "model load, median of $LOAD_RUNS runs each (ms; load: to ready to decode, wall: whole process):"
    awk '
    function num(x) { return x != "-" && x != "" }
    function ms(x) { return num(x) ? sprintf("%.1f", x) : "-" }
    function ratio(a, b) { return (num(a) && num(b) && b > 0) ? sprintf("%.3f", a / b) : "-" }
    BEGIN {
        printf "| %-7s | %-5s | %9s | %10s | %10s | %9s | %10s | %10s |\n", "type", "cache", "melt load", "llama load", "melt/llama", "melt wall", "llama wall", "melt/llama"
        print "| ------- | ----- | --------: | ---------: | ---------: | --------: | ---------: | ---------: |"
    }
    {
        printf "| %-7s | %-5s | %9s | %10s | %10s | %9s | %10s | %10s |\n", $1, $2, ms($3), ms($4), ratio($3, $4), ms($5), ms($6), ratio($5, $6)
    }' "$OUT/load"
    [ -z "$LC" ] && echo "(no llama-completion: set LLAMA_COMPLETION or LLAMA_BENCH for llama.cpp's load times)"
fi
[ -n "${BENCH_OUT:-}" ] && echo "raw JSON lines: $OUT"
exit 0

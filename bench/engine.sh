#!/bin/sh
# Engine speed (`make bench`): melt bench on a synthetic TinyLlama-1.1B
# shape in Q4_0, Q8_0 and Q4_K_M, with the roofline fraction of decode;
# when LLAMA_BENCH names a llama-bench binary (bench/llamacpp.sh builds
# one), llama-bench runs on the very same files in the same run,
# interleaved test by test (melt pp128, llama.cpp pp128, melt pp512, ...),
# and the melt/llama.cpp ratios are printed.
# Usage: bench/engine.sh [BUILD_DIR]
#   env LLAMA_BENCH=path     llama-bench to compare with (default: none)
#   env BENCH_QUICK=1        -r 1 and no pp512 (about a third of the time)
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
if [ "${BENCH_QUICK:-0}" = 1 ]; then
    REPS=1
    TESTS="pp128 tg128"
fi
LB=${LLAMA_BENCH:-}
if [ -n "$LB" ] && [ ! -x "$LB" ]; then
    echo "bench: LLAMA_BENCH=$LB is not an executable" >&2
    exit 2
fi
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
echo "threads $THREADS, repetitions $REPS, tests: $TESTS"
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
awk -v have_lb="${LB:+1}" -v tests="$TESTS" '
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
echo
echo "roofline: tg t/s / (read bandwidth / bytes read per token: weights but the token"
echo "embeddings, plus the KV cache); bandwidth and bytes from melt bench --roofline"
[ -n "${BENCH_OUT:-}" ] && echo "raw JSON lines: $OUT"
exit 0

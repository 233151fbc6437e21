#!/bin/sh
# Decode speed through melt-agent (a JSON line per token on stdout) against
# `melt generate` on the same model, prompt, sampling and thread count.
# Runs alternate (generate then agent, agent then generate, ...) so drift
# and order hit both alike;
# prints each pair, both medians, agent/generate of the medians, the median
# of the per-pair ratios and the ratio of the best runs (on a busy machine
# the best run is the least disturbed). Target: agent/generate >= 0.99.
# With /usr/bin/time present it also compares the CPU time (user + sys) of
# the whole runs: the same tokens cost the same compute, so on a shared,
# noisy machine the CPU-time ratio shows the agent's extra cost best.
# Usage: bench/agent_overhead.sh [BUILD_DIR] [RUNS] [N_GEN] [THREADS]
#   env MODEL=path.gguf to use another model (default: synthesized tiny q8_0)
BENCH_NAME=agent-bench
. "$(dirname "$0")/common.sh"

run_gen() {
    $TIME ${TIME:+"$TMP/gen.cpu"} "$MELT" generate -m "$MODEL" -p "$PROMPT" -n "$NGEN" --ignore-eos \
        -t "$THREADS" -c "$CTX" >"$TMP/gen.out" 2>"$TMP/gen.err"
    g=$(sed -n 's/^generated: .*(\([0-9.]*\) tokens\/s).*/\1/p' "$TMP/gen.err")
}
run_agent() {
    $TIME ${TIME:+"$TMP/agent.cpu"} "$AGENT" -m "$MODEL" --prompt "$PROMPT" -n "$NGEN" --ignore-eos \
        -t "$THREADS" -c "$CTX" >"$TMP/agent.out"
    a=$(sed -n 's/.*"key":"decode_tps","value":\([0-9.e+]*\).*/\1/p' "$TMP/agent.out")
    gn=$(sed -n 's/.*"key":"gen_ns","value":\([0-9.e+]*\).*/\1/p' "$TMP/agent.out")
    en=$(sed -n 's/.*"key":"emit_ns","value":\([0-9.e+]*\).*/\1/p' "$TMP/agent.out")
    awk -v e="$en" -v g="$gn" 'BEGIN { if (g > 0) print e / g }' >>"$TMP/emit.share"
}

: >"$TMP/emit.share"
: >"$TMP/gen.tps"
: >"$TMP/agent.tps"
: >"$TMP/ratio"
: >"$TMP/cpu.ratio"
TIME=
[ -x /usr/bin/time ] && TIME="/usr/bin/time -f %U+%S -o"
cpu_of() { [ -s "$1" ] && tail -1 "$1" | awk -F+ '{ print $1 + $2 }'; }
i=0
while [ "$i" -lt "$RUNS" ]; do
    i=$((i + 1))
    if [ $((i % 2)) -eq 1 ]; then run_gen; run_agent; else run_agent; run_gen; fi
    n=$(grep -c '"ev":"token"' "$TMP/agent.out")
    [ -n "$g" ] && [ -n "$a" ] && [ "$n" -eq "$NGEN" ] || { echo "run $i failed" >&2; cat "$TMP/gen.err" >&2; exit 1; }
    echo "$g" >>"$TMP/gen.tps"
    echo "$a" >>"$TMP/agent.tps"
    awk -v a="$a" -v g="$g" 'BEGIN { print a / g }' >>"$TMP/ratio"
    cpu=""
    if [ -n "$TIME" ]; then
        gc=$(cpu_of "$TMP/gen.cpu"); ac=$(cpu_of "$TMP/agent.cpu")
        awk -v a="$ac" -v g="$gc" 'BEGIN { if (g > 0) print a / g }' >>"$TMP/cpu.ratio"
        cpu=$(printf ' (cpu %ss / %ss)' "$gc" "$ac")
    fi
    printf 'run %d: generate %.1f tok/s, agent %.1f tok/s%s\n' "$i" "$g" "$a" "$cpu"
done
G=$(median <"$TMP/gen.tps")
A=$(median <"$TMP/agent.tps")
printf 'model %s, %d tokens, %d thread(s), %d runs\n' "$(basename "$MODEL")" "$NGEN" "$THREADS" "$RUNS"
printf 'median decode: melt generate %.1f tok/s, melt-agent %.1f tok/s, agent/generate %.4f\n' \
    "$G" "$A" "$(awk -v a="$A" -v g="$G" 'BEGIN { print a / g }')"
GB=$(sort -g "$TMP/gen.tps" | tail -1)
AB=$(sort -g "$TMP/agent.tps" | tail -1)
printf 'median of per-pair ratios %.4f; best runs: generate %.1f, agent %.1f, ratio %.4f\n' \
    "$(median <"$TMP/ratio")" "$GB" "$AB" "$(awk -v a="$AB" -v g="$GB" 'BEGIN { print a / g }')"
if [ -s "$TMP/cpu.ratio" ]; then
    printf 'median CPU time ratio agent/generate (whole run, same tokens) %.4f\n' "$(median <"$TMP/cpu.ratio")"
fi
printf 'median share of decode time the agent spent writing lines (emit_ns / gen_ns) %.4f\n' \
    "$(median <"$TMP/emit.share")"

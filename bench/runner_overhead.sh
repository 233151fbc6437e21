#!/bin/sh
# Decode speed through the runner (`melt run`: host -> melt-agent -> events
# into the store -> metrics) against `melt generate`'s own figure, on the
# same synthesized model, thread count, prompt length and number of
# generated tokens (issue 5, item 10: within 1%).
# Runs alternate (generate, then a one-trial `melt run`; then the other way
# round) so drift hits both alike. The runner's figure of each run is the
# stored decode_tps of its single measured trial (docs/metrics.md: the same
# (n_gen - 1) / decode time as generate). Prints each pair, both medians and
# runner/generate of the medians. Target: >= 0.99.
# Usage: bench/runner_overhead.sh [BUILD_DIR] [RUNS] [N_GEN] [THREADS]
#   env MODEL=path.gguf to use another model (default: synthesized tiny q8_0)
BENCH_NAME=runner-bench
. "$(dirname "$0")/common.sh"

run_gen() {
    "$MELT" generate -m "$MODEL" -p "$PROMPT" -n "$NGEN" --ignore-eos -t "$THREADS" -c "$CTX" \
        --json >"$TMP/gen.out" 2>"$TMP/gen.err"
    g=$(sed -n 's/.*"summary":true.*"decode_tps":\([0-9.e+]*\).*/\1/p' "$TMP/gen.out")
    np=$(sed -n 's/.*"summary":true,"n_prompt":\([0-9]*\).*/\1/p' "$TMP/gen.out")
}
run_runner() {
    # the same prompt length as generate's prompt, exactly NGEN tokens
    cat >"$TMP/exp.yaml" <<EOT
name: runner-overhead
repetitions: 1
warmup: 0
cooldown: {max_temp_c: 150, min_wait_s: 0, max_wait_s: 0}
engines:
  - threads: $THREADS
    context: $CTX
models:
  - path: $MODEL
workloads:
  - synthetic: {prompt_tokens: $np, gen_tokens: $NGEN}
sampling: {temperature: 0.8, top_k: 40, top_p: 0.95, min_p: 0.05, seed: 0}
EOT
    rm -f "$TMP/r.db"
    "$MELT" run "$TMP/exp.yaml" --db "$TMP/r.db" --agent "$AGENT" --idle-ms 0 -q >"$TMP/run.out" 2>"$TMP/run.err" ||
        { cat "$TMP/run.err" >&2; exit 1; }
    "$MELT" results export last --db "$TMP/r.db" --format jsonl >"$TMP/run.jsonl"
    a=$(sed -n 's/.*"metric":"decode_tps".*"mean":\([0-9.e+]*\).*/\1/p' "$TMP/run.jsonl")
}

: >"$TMP/gen.tps"
: >"$TMP/run.tps"
run_gen   # np for the experiment (and a warm page cache)
i=0
while [ "$i" -lt "$RUNS" ]; do
    i=$((i + 1))
    if [ $((i % 2)) -eq 1 ]; then run_gen; run_runner; else run_runner; run_gen; fi
    [ -n "$g" ] && [ -n "$a" ] || { echo "run $i failed" >&2; exit 1; }
    echo "$g" >>"$TMP/gen.tps"
    echo "$a" >>"$TMP/run.tps"
    printf 'run %d: generate %8.2f tok/s   runner %8.2f tok/s\n' "$i" "$g" "$a"
done
G=$(median <"$TMP/gen.tps")
A=$(median <"$TMP/run.tps")
echo "model $MODEL, $THREADS thread(s), prompt $np tokens, $NGEN generated, $RUNS runs"
printf 'decode tok/s, median: generate %.2f, runner %.2f\n' "$G" "$A"
awk -v a="$A" -v g="$G" 'BEGIN { printf "runner/generate: %.4f (target >= 0.99)\n", a / g }'

# The openai backend end to end against `melt serve` (a real client and a
# real server on loopback): the streamed text equals melt generate's greedy
# text, every token has a timestamp, usage/timings arrive as figures, and
# the agent runs the same backend; then against a server that is gone.
. "$ROOT/tests/integration/lib.sh"
S="$FIX/stories260K/stories260K.gguf"
CLIENT="$ROOT/$BUILD/tests/backend_client"
AGENT="$ROOT/$BUILD/melt-agent"

"$MELT" serve -m "$S" --port 0 -t 1 2>"$T/serve.err" &
SERVE_PID=$!
trap 'kill $SERVE_PID 2>/dev/null' EXIT
port=
for _ in $(seq 100); do
    port=$(sed -n 's/.*listening on http:\/\/[^:]*:\([0-9][0-9]*\).*/\1/p' "$T/serve.err")
    [ -n "$port" ] && grep -q 'ready$' "$T/serve.err" && break
    sleep 0.1
done
expect_eq "openai_serve_started" "${port:+yes}" "yes"
URL="http://127.0.0.1:$port/v1"

# completion: the same greedy text as melt generate
check "openai_serve_completion" "$CLIENT" openai "$URL" "Once upon a time" 16
cp "$T/out" "$T/client.txt"; cp "$T/err" "$T/client.err"
run "$MELT" generate -m "$S" -p "Once upon a time" --temp 0 -n 16 -t 1
expect_eq "openai_serve_text_equals_generate" "$(cat "$T/client.txt")" "$(cat "$T/out")"
expect_eq "openai_serve_16_token_times" "$(grep -c '^token ' "$T/client.err")" 16
order=$(awk '/^token / { if (n++ && $3 < p) bad = 1; p = $3 } END { print bad ? "backwards" : "increasing" }' "$T/client.err")
expect_eq "openai_serve_token_times_increase" "$order" "increasing"
expect "openai_serve_end_limit" "$T/client.err" '^end limit 16 5$'
expect "openai_serve_usage_figure" "$T/client.err" '^figure completion_tokens 16 count$'
expect "openai_serve_timings_figure" "$T/client.err" '^figure predicted_per_second [0-9.e+]+ tok/s$'

# chat completion through the model's (chatml) template
check "openai_serve_chat" "$CLIENT" openai "$URL" "Tell me a story" 8 --chat
expect_eq "openai_serve_chat_8_tokens" "$(grep -c '^token ' "$T/err")" 8

# the agent runs the openai backend: one token line per token, in time order
check "openai_serve_agent" "$AGENT" --backend openai --url "$URL" --prompt "Once upon a time" -n 16 --temp 0
expect_eq "openai_serve_agent_token_lines" "$(grep -c '"ev":"token"' "$T/out")" 16
order=$(sed -n 's/.*"ev":"token","t_ns":\([0-9]*\),.*/\1/p' "$T/out" |
        awk '{ if (NR > 1 && $1 < p) bad = 1; p = $1 } END { print bad ? "backwards" : "increasing" }')
expect_eq "openai_serve_agent_token_times_increase" "$order" "increasing"
expect "openai_serve_agent_end" "$T/out" '"ev":"end".*"n_gen":16,"reason":"limit"'
expect "openai_serve_agent_engine_figures" "$T/out" '"engine":"openai","key":"prompt_tokens","value":5'

# an experiment with the openai engine: per-token times stored in the store
cat >"$T/edge.yaml" <<YAML
name: edge
repetitions: 2
devices: [{transport: local}]
engines:
  - {backend: openai, name: edge, url: "$URL", model: stories260K}
models: [{path: $S}]
workloads:
  - name: p
    prompts: $T/prompts.txt
    max_gen_tokens: 8
sampling: {temperature: 0, seed: 1}
YAML
printf 'Once upon a time\n' >"$T/prompts.txt"
check "openai_serve_experiment_runs" "$MELT" run "$T/edge.yaml" --db "$T/edge.db"
if command -v sqlite3 >/dev/null 2>&1; then
    n_tok=$(sqlite3 "$T/edge.db" "SELECT count(*) FROM events e JOIN trials t ON e.trial = t.id
                                  WHERE e.kind = 'token' AND t.warmup = 0 AND t.status = 'ok'")
    expect_eq "openai_serve_experiment_token_times_stored" "$n_tok" 16
    n_back=$(sqlite3 "$T/edge.db" "SELECT count(*) FROM events a JOIN events b
                                   ON a.trial = b.trial AND b.kind = 'token' AND a.kind = 'token'
                                   AND b.i = a.i + 1 WHERE b.t_ns < a.t_ns")
    expect_eq "openai_serve_experiment_token_times_ordered" "$n_back" 0
    n_fig=$(sqlite3 "$T/edge.db" "SELECT count(*) FROM events e JOIN trials t ON e.trial = t.id
                                  WHERE t.warmup = 0 AND e.kind = 'engine' AND e.key = 'completion_tokens'
                                  AND e.value = 8")
    expect_eq "openai_serve_experiment_usage_stored" "$n_fig" 2
fi

# a synthetic workload over text: each repetition's prompt shares no prefix
# with the one before, so the server's prompt cache holds at most the BOS
check "openai_serve_synthetic_reps" "$AGENT" --backend openai --url "$URL" --synthetic 24,4 --reps 3 \
    --warmup 1 --temp 0
expect_eq "openai_serve_synthetic_three_requests" "$(grep -c '"key":"prompt_n"' "$T/out")" 3
expect_eq "openai_serve_synthetic_no_cache_reuse" \
    "$(grep '"key":"cache_n"' "$T/out" | grep -vc '"value":[01],')" 0

# the server gone: a clear error naming host:port, no hang
kill $SERVE_PID; wait $SERVE_PID 2>/dev/null
check_exit "openai_serve_gone_fails" 1 "$CLIENT" openai "$URL" "Once upon a time" 4
expect "openai_serve_gone_names_host_port" "$T/err" "127\.0\.0\.1:$port"
finish

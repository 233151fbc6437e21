# Frameworks under test end to end: one experiment with the builtin engine,
# llama.cpp's server (a fake llama-server replaying the real server's
# recorded responses through tests/tools/replay_server), llama.cpp's CLI (a
# fake llama-completion printing the real program's recorded output) and
# an OpenAI endpoint (melt serve): per-token events, the engines' own
# figures in the store, `melt results show` rows and the HTML report per
# backend; a stream cut midway marks the trial lost; the agent's requests
# (token ids, cache_prompt) and command lines. With LLAMA_SERVER /
# LLAMA_COMPLETION naming real binaries the agent also drives them.
. "$ROOT/tests/integration/lib.sh"
MODEL="$FIX/stories260K/stories260K.gguf"
AGENT="$ROOT/$BUILD/melt-agent"
FAKE="$DATA/fake-llamacpp"
export MELT_AGENT="$AGENT"
export REPLAY_SERVER="$ROOT/$BUILD/tests/replay_server"
have_sqlite=0
command -v sqlite3 >/dev/null 2>&1 && have_sqlite=1
q() { sqlite3 "$1" "$2"; }
num() { sed -n "s/.*\"$1\":\(-\{0,1\}[0-9][0-9.e+-]*\).*/\1/p"; }

# tokens in the recorded /completion stream (the fake server replays them all)
REC_TOKENS=$(grep -c '"tokens":\[[0-9]' "$FIX/llamacpp/completion-stream.http")

# ---- the agent on each backend -----------------------------------------------
check "agent_llamacpp_server" env FAKE_LLAMACPP_LOG="$T/srv.log" FAKE_LLAMACPP_ARGS="$T/srv.args" \
    FAKE_LLAMACPP_LOADING=2 "$AGENT" -m "$MODEL" --backend llamacpp --binary "$FAKE/llama-server" \
    --synthetic 8,6 -t 2 --server-arg --no-warmup
cp "$T/out" "$T/server.jsonl"
expect_eq "server_token_lines_with_ids" "$(grep -c '"ev":"token".*"id":[0-9]' "$T/server.jsonl")" "$REC_TOKENS"
expect "server_request_8_prompt_tokens" "$T/server.jsonl" '"ev":"request".*"n_prompt":8'
expect "server_end_limit" "$T/server.jsonl" "\"ev\":\"end\".*\"n_gen\":$REC_TOKENS,\"reason\":\"limit\""
expect "server_timings_as_figures" "$T/server.jsonl" '"engine":"llamacpp","key":"predicted_per_second","value":[0-9]'
expect "server_load_ms_figure" "$T/server.jsonl" '"engine":"llamacpp","key":"load_ms"'
expect "server_bye_ok" "$T/server.jsonl" '"ev":"bye".*"status":"ok"'
expect "server_prompt_sent_as_ids" "$T/srv.log" '"prompt":\[1,[0-9,]*\],"stream":true,"n_predict":6,"ignore_eos":true'
expect "server_no_prompt_cache" "$T/srv.log" '"cache_prompt":false'
expect_eq "server_command_line" "$(tr '\n' ' ' <"$T/srv.args" | sed 's/--port [0-9]*/--port P/')" \
    "-m $MODEL --host 127.0.0.1 --port P -t 2 -c 14 -np 1 --no-warmup "
expect_eq "server_stopped" "$(pgrep -f "replay_server.*$FIX/llamacpp" | wc -l)" 0

check "agent_llamacpp_cli" env FAKE_LLAMACPP_ARGS="$T/cli.args" "$AGENT" -m "$MODEL" --backend llamacpp \
    --backend-mode cli --binary "$FAKE/llama-completion" --prompt "Once upon a time" -n 6 -t 2
cp "$T/out" "$T/cli.jsonl"
expect_eq "cli_six_token_lines_without_ids" "$(grep -c '"ev":"token","t_ns":[0-9]*,"req":0,"i":[0-9]*}' "$T/cli.jsonl")" 6
expect "cli_prompt_counted_by_the_vocab" "$T/cli.jsonl" '"ev":"request".*"n_prompt":5'
expect "cli_timing_summary_parsed" "$T/cli.jsonl" '"engine":"llamacpp","key":"prompt_per_second","value":13513.51,"unit":"tok/s"'
expect "cli_eval_runs" "$T/cli.jsonl" '"engine":"llamacpp","key":"predicted_n","value":31,"unit":"count"'
expect "cli_flags" "$T/cli.args" '^-no-cnv$'
expect_eq "cli_prompt_and_n" "$(sed -n '/^-p$/{n;p}' "$T/cli.args")/$(sed -n '/^-n$/{n;p}' "$T/cli.args")" "Once upon a time/6"

# a conversation over llama-server's chat endpoint: text only (no ids)
cat >"$T/conv.plan" <<'PLAN'
melt-plan 1
kind conversations
prompt_tokens 0
gen_tokens 0
max_gen_tokens 8
max_context_tokens 0
ignore_eos 0
conversations 1
conversation 2
turn "Hello there"
turn "Tell me more"
end
PLAN
check "agent_server_chat" env FAKE_LLAMACPP_LOG="$T/chat.log" "$AGENT" -m "$MODEL" --backend llamacpp \
    --binary "$FAKE/llama-server" --plan "$T/conv.plan"
expect_eq "chat_two_requests" "$(grep -c '"ev":"request"' "$T/out")" 2
expect "chat_tokens_have_no_id" "$T/out" '"ev":"token","t_ns":[0-9]*,"req":1,"i":0}'
expect "chat_second_turn_sends_history" "$T/chat.log" '"messages":\[\{"role":"user","content":"Hello there"\},\{"role":"assistant","content":".+"\},\{"role":"user","content":"Tell me more"\}\]'

# a conversation on the CLI: the history rendered with the named template as text
check "agent_cli_chat_rendered" env FAKE_LLAMACPP_ARGS="$T/clichat.args" "$AGENT" -m "$MODEL" \
    --backend llamacpp --backend-mode cli --binary "$FAKE/llama-completion" --plan "$T/conv.plan" \
    --chat-template chatml
expect_eq "cli_chat_two_requests" "$(grep -c '"ev":"end".*"reason":"limit"' "$T/out")" 2
expect "cli_chat_prompt_has_the_history" "$T/clichat.args" '^<\|im_start\|>user$'
expect_eq "cli_chat_second_prompt_has_turn_1" "$(grep -c '^Hello there<|im_end|>$' "$T/clichat.args")" 2
check_exit "agent_cli_chat_without_template_exits_1" 1 "$AGENT" -m "$MODEL" --backend llamacpp \
    --backend-mode cli --binary "$FAKE/llama-completion" --plan "$T/conv.plan"
expect "cli_chat_without_template_says_why" "$T/out" '"ev":"error","t_ns":[0-9]*,"req":0,"msg":"request 0: backend llamacpp mode cli takes no chat messages: name a template with --chat-template'

# a stream cut midway: what came is kept, end "lost", bye error, exit 1
check_exit "agent_cut_stream_exits_1" 1 env FAKE_LLAMACPP_CUT=1 "$AGENT" -m "$MODEL" --backend llamacpp \
    --binary "$FAKE/llama-server" --synthetic 8,6
expect "cut_end_reason_lost" "$T/out" '"ev":"end".*"reason":"lost"'
expect "cut_error_says_so" "$T/out" '"ev":"error".*stream was cut'
n_cut=$(grep -c '"ev":"token"' "$T/out")
expect_eq "cut_keeps_tokens_before_the_cut" "$([ "$n_cut" -gt 0 ] && [ "$n_cut" -lt "$REC_TOKENS" ] && echo yes)" yes
check_exit "agent_cli_crash_exits_1" 1 env FAKE_LLAMACPP_CRASH_AFTER=2 "$AGENT" -m "$MODEL" \
    --backend llamacpp --backend-mode cli --binary "$FAKE/llama-completion" --synthetic 8,6
expect "cli_crash_lost" "$T/out" '"ev":"end".*"n_gen":2,"reason":"lost"'

# errors: one line, exit 1 / 2
check_exit "server_missing_binary_exits_1" 1 "$AGENT" -m "$MODEL" --backend llamacpp \
    --binary "$T/no-llama-server" --synthetic 4,2
expect "server_missing_binary_named" "$T/out" '"ev":"error".*no-llama-server'
check_exit "unknown_backend_usage_error" 2 "$AGENT" -m "$MODEL" --backend vllm --synthetic 4,2
expect "unknown_backend_lists_names" "$T/err" "unknown backend 'vllm' \(one of builtin, llamacpp, mlc, openai\)"

# ---- an experiment: builtin vs llama.cpp server vs llama.cpp cli vs melt serve
"$MELT" serve -m "$MODEL" --port 0 -t 1 >"$T/serve.log" 2>&1 &
serve_pid=$!
n=0
while [ $n -lt 200 ] && ! grep -q 'ready$' "$T/serve.log"; do sleep 0.05; n=$((n + 1)); done
SERVE_URL=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$T/serve.log" | head -1)
cat >"$T/fw.yaml" <<EOF
name: fw
repetitions: 2
warmup: 0
cooldown: {max_temp_c: 150, min_wait_s: 0, max_wait_s: 0}
engines:
  - {backend: builtin, threads: 1, context: 64}
  - {backend: llamacpp, binary: $FAKE/llama-server, threads: 1, context: 64}
  - {backend: llamacpp, mode: cli, binary: $FAKE/llama-completion, threads: 1, context: 64}
  - {backend: openai, name: edge, url: '$SERVE_URL/v1', api_key_env: FW_KEY, context: 64}
models:
  - path: $MODEL
workloads:
  - synthetic: {prompt_tokens: 8, gen_tokens: 6}
sampling: {temperature: 0}
EOF
DB="$T/fw.db"
check "run_four_frameworks" env FW_KEY=not-stored "$MELT" run "$T/fw.yaml" --db "$DB" --idle-ms 0
kill "$serve_pid" 2>/dev/null
wait "$serve_pid" 2>/dev/null
expect_eq "run_eight_trials_ok" "$(grep -c '^\[cell .*: ok' "$T/err")" 8
check "results_show_fw" "$MELT" results show last --db "$DB"
cp "$T/out" "$T/show.txt"
for id in builtin-t1-c64 llamacpp-server-t1-c64 llamacpp-cli-t1-c64 edge-tall-c64; do
    expect "results_row_$id" "$T/show.txt" "local/$id/stories260K/synthetic-pp8-tg6"
    expect "report_lists_$id" "$T/report.html" "$id"
done
if [ $have_sqlite = 1 ]; then
    per_cell() { q "$DB" "select count(*) from events e join trials t on e.trial=t.id join cells c on t.cell=c.id where c.cell_id like '%/$1/%' and $2"; }
    expect_eq "store_builtin_tokens" "$(per_cell builtin-t1-c64 "e.kind='token'")" 12
    expect_eq "store_server_tokens" "$(per_cell llamacpp-server-t1-c64 "e.kind='token'")" $((2 * REC_TOKENS))
    expect_eq "store_cli_tokens" "$(per_cell llamacpp-cli-t1-c64 "e.kind='token'")" 12
    expect_eq "store_openai_tokens" "$(per_cell edge-tall-c64 "e.kind='token'")" 12
    expect_eq "store_server_timings" \
        "$(per_cell llamacpp-server-t1-c64 "e.kind='engine' and e.name='llamacpp' and e.key='predicted_per_second'")" 2
    expect_eq "store_cli_timings" \
        "$(per_cell llamacpp-cli-t1-c64 "e.kind='engine' and e.name='llamacpp' and e.key='prompt_ms' and e.value=0.37")" 2
    expect_eq "store_openai_usage" \
        "$(per_cell edge-tall-c64 "e.kind='engine' and e.name='openai' and e.key='completion_tokens' and e.value=6")" 2
    expect_eq "store_engine_json_backend_and_mode" \
        "$(q "$DB" "select count(*) from cells where engine like '%\"backend\":\"llamacpp\",\"mode\":\"cli\"%'")" 1
    expect_eq "store_key_name_only" "$(q "$DB" "select count(*) from cells where engine like '%not-stored%'")" 0
    expect_eq "store_openai_runs_on_endpoint" \
        "$(q "$DB" "select count(*) from cells where engine like '%\"runs_on\":\"endpoint\"%'")" 1
fi

# a server whose stream is cut: the trial is lost, the run untrustworthy (exit 3)
cat >"$T/cut.yaml" <<EOF
name: cut
repetitions: 1
warmup: 0
cooldown: {max_temp_c: 150, min_wait_s: 0, max_wait_s: 0}
engines:
  - {backend: llamacpp, binary: $FAKE/llama-server, threads: 1, context: 64}
models:
  - path: $MODEL
workloads:
  - synthetic: {prompt_tokens: 8, gen_tokens: 6}
EOF
check_exit "run_cut_stream_exit_3" 3 env FAKE_LLAMACPP_CUT=1 "$MELT" run "$T/cut.yaml" --db "$T/cut.db" --idle-ms 0
expect "run_cut_progress_says_lost" "$T/err" '^\[cell 1/1 rep 1/1\] .*: lost'
if [ $have_sqlite = 1 ]; then
    expect_eq "run_cut_trial_lost" "$(q "$T/cut.db" "select count(*) from trials where status='lost'")" 1
    expect_eq "run_cut_tokens_kept" "$(q "$T/cut.db" "select count(*) > 0 from events where kind='token'")" 1
fi

# ---- live: real llama.cpp binaries when named -----------------------------------
if [ -n "${LLAMA_SERVER:-}" ] && [ -x "${LLAMA_SERVER:-}" ]; then
    check "live_llama_server" "$AGENT" -m "$MODEL" --backend llamacpp --binary "$LLAMA_SERVER" \
        --synthetic 16,8 -t 1 --temp 0
    expect_eq "live_server_8_tokens_with_ids" "$(grep -c '"ev":"token".*"id":[0-9]' "$T/out")" 8
    expect "live_server_timings" "$T/out" '"key":"predicted_n","value":8'
    expect "live_server_prompt" "$T/out" '"key":"prompt_n","value":16'
    check "live_llama_server_chat" "$AGENT" -m "$MODEL" --backend llamacpp --binary "$LLAMA_SERVER" \
        --plan "$T/conv.plan" --chat-template chatml -t 1
    expect_eq "live_server_chat_two_requests" "$(grep -c '"ev":"end".*"reason":"\(limit\|eog\)"' "$T/out")" 2
else
    echo "skip live_llama_server (set LLAMA_SERVER to a llama-server binary)"
fi
if [ -n "${LLAMA_COMPLETION:-}" ] && [ -x "${LLAMA_COMPLETION:-}" ]; then
    check "live_llama_completion" "$AGENT" -m "$MODEL" --backend llamacpp --backend-mode cli \
        --binary "$LLAMA_COMPLETION" --prompt "Once upon a time" -n 16 --ignore-eos -t 1 --temp 0
    n_live=$(grep -c '"ev":"token"' "$T/out")
    expect_eq "live_cli_tokens_arrived" "$([ "$n_live" -ge 12 ] && [ "$n_live" -le 18 ] && echo yes)" yes
    expect "live_cli_timings" "$T/out" '"key":"predicted_per_second","value":[0-9]'
    expect "live_cli_prompt_n" "$T/out" '"key":"prompt_n","value":5'
else
    echo "skip live_llama_completion (set LLAMA_COMPLETION to a llama-completion binary)"
fi

finish

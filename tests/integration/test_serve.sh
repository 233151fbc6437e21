# melt serve: a real server on a free loopback port, driven with curl:
# /health, /v1/models, greedy completions equal to `melt generate`,
# streams that reassemble to the same text, chat, token-id prompts, stop
# strings, every class of error with its status, a queue that refuses
# with 503, the 1000-connection load test (tests/tools/serve_load.c), and
# a clean exit on SIGTERM.
. "$ROOT/tests/integration/lib.sh"
S="$FIX/stories260K/stories260K.gguf"
JG="$ROOT/$BUILD/tests/json_get"
LOAD="$ROOT/$BUILD/tests/serve_load"
command -v curl >/dev/null 2>&1 || "$ROOT/scripts/deps.sh" build >"$T/deps.log" 2>&1

SRV_PIDS=""
trap 'for p in $SRV_PIDS; do kill -9 "$p" 2>/dev/null; done' EXIT INT TERM

# start_server NAME ARGS...: melt serve of $MODEL (default stories260K) on
# port 0; sets PID and URL once /health answers 200 (stderr in $T/NAME.err)
start_server() {
    _name=$1; shift
    "$MELT" serve -m "${MODEL:-$S}" --port 0 "$@" 2>"$T/$_name.err" &
    PID=$!
    SRV_PIDS="$SRV_PIDS $PID"
    URL=""
    for _i in $(seq 100); do
        _port=$(sed -n 's/^melt serve: listening on http:\/\/127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$T/$_name.err")
        if [ -n "$_port" ] && [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$_port/health")" = 200 ]; then
            URL="http://127.0.0.1:$_port"; return 0
        fi
        sleep 0.1
    done
    return 1
}

# post PATH BODY: POST JSON; body in $T/body, status in $code
post() { code=$(curl -s -o "$T/body" -w '%{http_code}' -H 'Content-Type: application/json' --data-binary "$2" "$URL$1"); }
get() { code=$(curl -s -o "$T/body" -w '%{http_code}' "$URL$1"); }
jget() { "$JG" "$T/body" "$1"; }

# expect_error NAME STATUS TYPE: the last response is STATUS with an error object
expect_error() {
    expect_eq "$1_status" "$code" "$2"
    expect_eq "$1_error_code" "$(jget error.code)" "$2"
    expect_eq "$1_error_type" "$(jget error.type)" "$3"
    if [ -n "$(jget error.message)" ]; then _report "$1_error_message" 1 ""
    else _report "$1_error_message" 0 "no error.message in $(cat "$T/body")"; fi
}

if start_server main --parallel 2 -t 1 -c 256 --max-body-bytes 4096; then
    _report "serve_starts_and_is_healthy" 1 ""
else
    _report "serve_starts_and_is_healthy" 0 "$(cat "$T/main.err")"; finish; exit 0
fi
expect "serve_listening_line" "$T/main.err" '^melt serve: listening on http://127\.0\.0\.1:[0-9]+ \(model stories260K, 2 slots\)$'
get /health
expect_eq "health_200" "$code" 200
expect_eq "health_body" "$(cat "$T/body")" '{"status":"ok"}'
get /v1/models
expect_eq "models_200" "$code" 200
expect_eq "models_object" "$(jget object)" list
expect_eq "models_id" "$(jget data.0.id)" stories260K

# greedy completion = melt generate's text for the same prompt and count
want=$("$MELT" generate -m "$S" -p "Once upon a time" -n 32 --temp 0 -t 1 2>/dev/null)
post /v1/completions '{"model":"x","prompt":"Once upon a time","max_tokens":32,"temperature":0,"unknown_field":{"a":[1]}}'
expect_eq "completion_200" "$code" 200
expect_eq "completion_text_equals_generate" "$(jget choices.0.text)" "$want"
expect_eq "completion_object" "$(jget object)" text_completion
expect_eq "completion_model" "$(jget model)" stories260K
expect_eq "completion_finish_length" "$(jget choices.0.finish_reason)" length
expect_eq "completion_usage_prompt" "$(jget usage.prompt_tokens)" 5
expect_eq "completion_usage_completion" "$(jget usage.completion_tokens)" 32
expect_eq "completion_usage_total" "$(jget usage.total_tokens)" 37
expect_eq "completion_timings_predicted_n" "$(jget timings.predicted_n)" 32
expect "completion_timings_per_second" "$T/body" '"predicted_per_second":[0-9.e+]+'
expect "completion_id" "$T/body" '"id":"cmpl-[A-Za-z0-9]{24}"'

# the same prompt as token ids (greedy.jsonl's ids for it) gives the same text
ids=$(head -1 "$FIX/stories260K/greedy.jsonl" | sed 's/.*"prompt_tokens":\[\([0-9,]*\)\].*/\1/')
post /completions "{\"prompt\":[$ids],\"max_tokens\":32,\"temperature\":0}"
expect_eq "completion_token_ids_same_text" "$(jget choices.0.text)" "$want"

# streamed: the deltas reassemble to the same text; finish, usage, [DONE]
curl -sN -o "$T/stream" -H 'Content-Type: application/json' "$URL/v1/completions" \
    --data-binary '{"prompt":"Once upon a time","max_tokens":32,"temperature":0,"stream":true,"stream_options":{"include_usage":true}}'
expect_eq "stream_text_equals_generate" "$("$JG" --sse "$T/stream" choices.0.text)" "$want"
expect_eq "stream_finish_reason" "$("$JG" --sse "$T/stream" choices.0.finish_reason)" length
expect_eq "stream_usage_chunk" "$("$JG" --sse "$T/stream" usage.completion_tokens)" 32
expect_eq "stream_ends_with_done" "$(grep -v '^$' "$T/stream" | tail -1)" "data: [DONE]"
expect_eq "stream_one_event_per_token_plus_3" "$(grep -c '^data: ' "$T/stream")" 35
# without include_usage: no usage chunk
curl -sN -o "$T/stream2" "$URL/v1/completions" -d '{"prompt":"Once upon a time","max_tokens":4,"stream":true}'
expect_not "stream_no_usage_unless_asked" "$T/stream2" '"usage"'

# stop strings end the text before them, finish_reason stop
post /v1/completions '{"prompt":"Once upon a time","max_tokens":32,"temperature":0,"stop":[" Lily","zzz"]}'
expect_eq "stop_string_cuts" "$(jget choices.0.text)" ", there was a little girl named"
expect_eq "stop_string_finish_stop" "$(jget choices.0.finish_reason)" stop
curl -sN -o "$T/stream3" "$URL/v1/completions" -d '{"prompt":"Once upon a time","max_tokens":32,"temperature":0,"stop":" Lily","stream":true}'
expect_eq "stop_string_cuts_stream" "$("$JG" --sse "$T/stream3" choices.0.text)" ", there was a little girl named"

# chat: non-streamed and streamed give the same greedy answer
CHAT='"messages":[{"role":"system","content":"You tell stories."},{"role":"user","content":"Tell me a story."}],"max_tokens":12,"temperature":0'
post /v1/chat/completions "{$CHAT}"
expect_eq "chat_200" "$code" 200
expect_eq "chat_object" "$(jget object)" chat.completion
expect_eq "chat_role" "$(jget choices.0.message.role)" assistant
expect_eq "chat_usage_completion" "$(jget usage.completion_tokens)" 12
chat_text=$(jget choices.0.message.content)
[ -n "$chat_text" ] && _report "chat_has_content" 1 "" || _report "chat_has_content" 0 "empty content: $(cat "$T/body")"
curl -sN -o "$T/chat-stream" "$URL/v1/chat/completions" -d "{$CHAT,\"stream\":true}"
expect_eq "chat_stream_same_text" "$("$JG" --sse "$T/chat-stream" choices.0.delta.content)" "$chat_text"
expect_eq "chat_stream_role_first" "$("$JG" --sse "$T/chat-stream" choices.0.delta.role)" assistant
expect "chat_stream_chunk_object" "$T/chat-stream" '"object":"chat.completion.chunk"'

# same seed, same sampled text
post /v1/completions '{"prompt":"Once","max_tokens":24,"temperature":1,"seed":7}'
a=$(jget choices.0.text)
post /v1/completions '{"prompt":"Once","max_tokens":24,"temperature":1,"seed":7}'
expect_eq "seeded_sampling_repeats" "$(jget choices.0.text)" "$a"

# errors, each with its status and a JSON error object
post /v1/completions '{"prompt": "a", '
expect_error "error_malformed_json" 400 invalid_request_error
get /v1/nope
expect_error "error_unknown_endpoint" 404 not_found_error
get /v1/completions
expect_error "error_wrong_method_get" 405 invalid_request_error
post /health '{}'
expect_error "error_wrong_method_post" 405 invalid_request_error
post /v1/completions '{"prompt":"a","max_tokens":"x"}'
expect_error "error_max_tokens_string" 400 invalid_request_error
post /v1/completions '{"prompt":"a","temperature":"hot"}'
expect_error "error_temperature_string" 400 invalid_request_error
post /v1/chat/completions '{"messages":"hello"}'
expect_error "error_messages_not_list" 400 invalid_request_error
post /v1/completions '{"prompt":"a","max_tokens":-5}'
expect_error "error_max_tokens_negative" 400 invalid_request_error
post /v1/completions '{"prompt":"a","temperature":-1}'
expect_error "error_temperature_negative" 400 invalid_request_error
post /v1/completions '{"prompt":[1,99999]}'
expect_error "error_token_outside_vocab" 400 invalid_request_error
long=$(printf 'Once upon a time there was a big dog. %.0s' $(seq 40))
post /v1/completions "{\"prompt\":\"$long\",\"max_tokens\":1}"
expect_error "error_prompt_longer_than_context" 400 invalid_request_error
expect "error_prompt_longer_than_context_msg" "$T/body" 'more than the context of 256'
head -c 5000 /dev/zero | tr '\0' 'a' >"$T/big"
printf '{"prompt":"%s"}' "$(cat "$T/big")" >"$T/big.json"
code=$(curl -s -o "$T/body" -w '%{http_code}' --data-binary @"$T/big.json" "$URL/v1/completions")
expect_error "error_body_too_large" 413 invalid_request_error
code=$(curl -s -o "$T/body" -w '%{http_code}' -H 'Transfer-Encoding: chunked' --data-binary @"$T/big.json" "$URL/v1/completions")
expect_error "error_body_too_large_chunked" 413 invalid_request_error
# the server is fine after all that
post /v1/completions '{"prompt":"Once upon a time","max_tokens":32,"temperature":0}'
expect_eq "still_serving_after_errors" "$(jget choices.0.text)" "$want"

# SIGTERM: exits 0, promptly, saying so
kill -TERM "$PID"
t0=$(date +%s)
wait "$PID"; rc=$?
expect_eq "sigterm_exit_0" "$rc" 0
expect_eq "sigterm_prompt" "$(( $(date +%s) - t0 < 5 ))" 1
expect "sigterm_stopped_line" "$T/main.err" '^melt serve: stopped$'

# a full queue answers 503: one slot, no waiting room, many requests at once
if start_server busy --parallel 1 --queue 0 -t 1 -c 512 --alias tiny-story; then
    get /v1/models
    expect_eq "alias_names_the_model" "$(jget data.0.id)" tiny-story
    expect "alias_in_listening_line" "$T/busy.err" '\(model tiny-story, 1 slots\)$'
    run "$LOAD" 127.0.0.1 "${URL##*:}" 100 15 200
    expect "busy_load_clean" "$T/out" 'bad 0, unfinished 0$'
    n503=$(sed -n 's/.* 503 \([0-9]*\),.*/\1/p' "$T/out")
    check_exit "serve_port_in_use" 1 "$MELT" serve -m "$S" --port "${URL##*:}"
    expect "serve_port_in_use_msg" "$T/err" '^melt: serve: cannot listen on 127\.0\.0\.1:[0-9]+: Address already in use$'
    [ "${n503:-0}" -gt 0 ] && _report "busy_answers_503" 1 "" || _report "busy_answers_503" 0 "$(cat "$T/out")"
    kill -INT "$PID"; wait "$PID"
    expect_eq "sigint_exit_0" "$?" 0
else
    _report "busy_server_starts" 0 "$(cat "$T/busy.err")"
fi

# 1000 concurrent connections against 2 slots: each answered or refused cleanly
if start_server load --parallel 2 -t 1; then
    run "$LOAD" 127.0.0.1 "${URL##*:}" 1000 15 2
    cat "$T/out"
    expect_eq "load_1000_exit_0" "$rc" 0
    expect "load_1000_clean" "$T/out" '^serve_load: 1000 connections in [0-9.]+ s: 200 [1-9][0-9]*, 503 [0-9]+, refused [0-9]+, closed early [0-9]+, bad 0, unfinished 0$'
    get /health
    expect_eq "load_still_healthy" "$code" 200
    post /v1/completions '{"prompt":"Once upon a time","max_tokens":32,"temperature":0}'
    expect_eq "load_still_correct" "$(jget choices.0.text)" "$want"
    kill -TERM "$PID"; wait "$PID"
    expect_eq "load_sigterm_exit_0" "$?" 0
else
    _report "load_server_starts" 0 "$(cat "$T/load.err")"
fi

# generations in flight: a random 10M model at ~300 tokens/s on one thread
# makes requests of 2000 tokens last seconds
"$MELT" model synth --preset tiny --type q8_0 --vocab "$S" -o "$T/tiny.gguf" -q -t 1
LONG='"prompt":"Once","max_tokens":2000,"ignore_eos":true'
# a client that hangs up stops its generation: the next request is not
# kept waiting for the 2000 tokens
if MODEL="$T/tiny.gguf" start_server gone --parallel 1 -t 1 -c 4096; then
    curl -s -o /dev/null --max-time 0.3 "$URL/v1/completions" -d "{$LONG}"
    t0=$(date +%s%N)
    post /v1/completions '{"prompt":"Once","max_tokens":2}'
    ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    expect_eq "hangup_next_request_200" "$code" 200
    [ "$ms" -lt 2500 ] && _report "hangup_cancels_generation" 1 "" ||
        _report "hangup_cancels_generation" 0 "the next request took $ms ms"
    # the slot's cache: the same prompt again decodes only its last token,
    # and the text stays melt generate's
    want_tiny=$("$MELT" generate -m "$T/tiny.gguf" -p "Once upon a time" -n 8 --temp 0 -t 1 2>/dev/null)
    post /v1/completions '{"prompt":"Once upon a time","max_tokens":8,"temperature":0}'
    expect_eq "cache_first_text" "$(jget choices.0.text)" "$want_tiny"
    post /v1/completions '{"prompt":"Once upon a time","max_tokens":8,"temperature":0}'
    expect_eq "cache_hit_text" "$(jget choices.0.text)" "$want_tiny"
    expect_eq "cache_hit_cache_n" "$(jget timings.cache_n)" 4
    expect_eq "cache_hit_prompt_n" "$(jget timings.prompt_n)" 1
    expect_eq "cache_hit_usage_counts_all" "$(jget usage.prompt_tokens)" 5
    post /v1/completions '{"prompt":"Once upon a time","max_tokens":8,"temperature":0,"cache_prompt":false}'
    expect_eq "cache_off_cache_n" "$(jget timings.cache_n)" 0
    expect_eq "cache_off_text" "$(jget choices.0.text)" "$want_tiny"
    kill -TERM "$PID"; wait "$PID"
fi
# SIGTERM with two generations running and one queued: the stream ends with
# an error event, the others get 503, exit 0 at once
if MODEL="$T/tiny.gguf" start_server inflight --parallel 2 --queue 4 -t 1 -c 4096; then
    curl -sN -o "$T/if-stream" "$URL/v1/completions" -d "{$LONG,\"stream\":true}" &
    c1=$!
    curl -s -o "$T/if-body1" -w '%{http_code}' "$URL/v1/completions" -d "{$LONG}" >"$T/if-code1" &
    c2=$!
    sleep 0.3
    curl -s -o "$T/if-body2" -w '%{http_code}' "$URL/v1/completions" -d "{$LONG}" >"$T/if-code2" &
    c3=$!
    for _i in $(seq 30); do [ -s "$T/if-stream" ] && break; sleep 0.1; done
    sleep 0.2
    t0=$(date +%s%N)
    kill -TERM "$PID"; wait "$PID"; rc=$?
    ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    wait $c1 $c2 $c3
    expect_eq "inflight_sigterm_exit_0" "$rc" 0
    [ "$ms" -lt 2000 ] && _report "inflight_sigterm_prompt" 1 "" || _report "inflight_sigterm_prompt" 0 "took $ms ms"
    expect "inflight_stream_had_tokens" "$T/if-stream" '"text":'
    expect "inflight_stream_ends_with_error" "$T/if-stream" '^data: \{"error":\{.*"code":503'
    expect_not "inflight_stream_no_done" "$T/if-stream" '\[DONE\]'
    expect_eq "inflight_running_gets_503" "$(cat "$T/if-code1")" 503
    expect_eq "inflight_queued_gets_503" "$(cat "$T/if-code2")" 503
    expect "inflight_503_is_json" "$T/if-body2" '"type":"unavailable_error"'
else
    _report "inflight_server_starts" 0 "$(cat "$T/inflight.err")"
fi

# while the model loads: 503 with an error object. A FIFO as the model
# holds the load in open() until something writes to it; an empty write
# then makes the load fail (exit 1, the listening line already printed).
mkfifo "$T/slow.gguf"
"$MELT" serve -m "$T/slow.gguf" --port 0 2>"$T/slow.err" &
SLOW=$!
SRV_PIDS="$SRV_PIDS $SLOW"
for _i in $(seq 50); do grep -q listening "$T/slow.err" && break; sleep 0.1; done
URL="http://127.0.0.1:$(sed -n 's/^melt serve: listening on http:\/\/127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$T/slow.err")"
get /health
expect_error "loading_health" 503 unavailable_error
post /v1/completions '{"prompt":"a"}'
expect_error "loading_completion" 503 unavailable_error
: >"$T/slow.gguf"
wait "$SLOW"
expect_eq "loading_failure_exit_1" "$?" 1
expect "loading_failure_msg" "$T/slow.err" '^melt: .*slow\.gguf'

# SIGTERM while the model file is still being read ends the server at once
mkfifo "$T/stuck.gguf"
"$MELT" serve -m "$T/stuck.gguf" --port 0 2>"$T/stuck.err" &
STUCK=$!
SRV_PIDS="$SRV_PIDS $STUCK"
for _i in $(seq 50); do grep -q listening "$T/stuck.err" && break; sleep 0.1; done
kill -TERM "$STUCK"
for _i in $(seq 30); do kill -0 "$STUCK" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$STUCK" 2>/dev/null; then
    _report "loading_sigterm_stops" 0 "still running 3 s after SIGTERM"
    kill -KILL "$STUCK"
else _report "loading_sigterm_stops" 1 ""; fi

# the on-device agent stays free of the HTTP server
if [ -x "$ROOT/$BUILD/melt-agent" ]; then
    if nm "$ROOT/$BUILD/melt-agent" 2>/dev/null | grep -qE ' (MHD_|melt_serve_)'; then
        _report "agent_links_no_http_server" 0 "$(nm "$ROOT/$BUILD/melt-agent" | grep -E ' (MHD_|melt_serve_)' | head -3)"
    else _report "agent_links_no_http_server" 1 ""; fi
fi

# command-line errors
check_exit "serve_missing_model" 2 "$MELT" serve
check_exit "serve_bad_port" 2 "$MELT" serve -m "$S" --port 70000
check_exit "serve_bad_template" 2 "$MELT" serve -m "$S" --chat-template nope
check_exit "serve_missing_file" 1 "$MELT" serve -m "$T/nope.gguf" --port 0
expect "serve_missing_file_msg" "$T/err" '^melt: .*nope\.gguf'
expect_eq "serve_missing_file_one_line" "$(cat "$T/err")" "melt: $T/nope.gguf: cannot open: No such file or directory"
check "serve_help" "$MELT" serve --help
expect "serve_help_usage" "$T/out" '^usage: melt serve'
finish

# The mlc backend through the agent, with a stand-in mlc_llm
# (tests/data/fake-mlc/mlc_llm: the replay server answering with MLC-shaped
# recordings): the server is started with the model and arguments, its
# usage.extra metrics arrive as engine figures, it is gone after the run,
# and a server that fails to start is reported with its own words.
. "$ROOT/tests/integration/lib.sh"
AGENT="$ROOT/$BUILD/melt-agent"
FAKE="$DATA/fake-mlc/mlc_llm"
export MELT_REPLAY_SERVER="$ROOT/$BUILD/tests/replay_server"
export FAKE_MLC_ARGS="$T/args"

check "mlc_agent_runs" "$AGENT" --backend mlc --binary "$FAKE" -m HF://mlc-ai/Llama-3.2-1B-q4f16_1-MLC \
    --server-arg --mode --server-arg local --prompt "Once upon a time" -n 4 --temp 0
expect "mlc_server_argv" "$T/args" '^HF://mlc-ai/Llama-3.2-1B-q4f16_1-MLC$'
expect "mlc_server_extra_args" "$T/args" '^local$'
expect "mlc_load_ms_figure" "$T/out" '"engine":"mlc","key":"load_ms","value":[0-9.]+,"unit":"ms"'
expect_eq "mlc_token_lines" "$(grep -c '"ev":"token"' "$T/out")" 4
expect "mlc_end_limit" "$T/out" '"ev":"end".*"n_gen":4,"reason":"limit"'
expect "mlc_extra_decode_tps" "$T/out" '"key":"decode_tokens_per_s","value":88.5,"unit":"tok/s"'
expect "mlc_extra_ttft_s" "$T/out" '"key":"ttft_s","value":0.011,"unit":"s"'
port=$(sed -n '/^--port$/{n;p;}' "$T/args")
if command -v curl >/dev/null 2>&1; then
    check_exit "mlc_server_stopped_after_the_run" 7 curl -s -o /dev/null "http://127.0.0.1:$port/v1/models"
fi

FAKE_MLC_FAIL="TVMError: cannot find the model library" \
    check_exit "mlc_failed_start_exits_1" 1 "$AGENT" --backend mlc --binary "$FAKE" -m m --prompt x -n 2
expect "mlc_failed_start_quotes_the_server" "$T/out" 'mlc: .*exited with status 1.*TVMError: cannot find the model library'
# SIGTERM while the server is still loading ends the agent at once (with
# its signals blocked during the start it waited out the start timeout)
# and takes the server with it.
FAKE_MLC_LOADING=1000000 "$AGENT" --backend mlc --binary "$FAKE" -m m --prompt x -n 2 \
    >"$T/term.out" 2>"$T/term.err" &
apid=$!
sleep 1.5
kill -TERM "$apid"
waited=0
while kill -0 "$apid" 2>/dev/null && [ "$waited" -lt 80 ]; do sleep 0.1; waited=$((waited + 1)); done
if kill -0 "$apid" 2>/dev/null; then
    expect_eq "mlc_sigterm_while_loading_ends_the_agent" "still running 8 s later" "exited"
    kill -KILL "$apid" 2>/dev/null
else
    expect_eq "mlc_sigterm_while_loading_ends_the_agent" "exited" "exited"
fi
wait "$apid" 2>/dev/null
term_port=$(sed -n '/^--port$/{n;p;}' "$T/args")
if command -v curl >/dev/null 2>&1; then
    check_exit "mlc_server_stopped_after_sigterm" 7 curl -s -o /dev/null "http://127.0.0.1:$term_port/v1/models"
fi
finish

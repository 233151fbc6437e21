# Clock sync: `melt-agent --echo` answers echo lines with its clock; a local
# run stores an estimate before and after the cell (offset 0 within its
# uncertainty: the agent reads the host's own CLOCK_MONOTONIC; uncertainty
# well under 1 ms) and gives each trial its clock; the cool-down events
# stay on the device clock.
. "$ROOT/tests/integration/lib.sh"
MODEL="$FIX/stories260K/stories260K.gguf"
AGENT="$ROOT/$BUILD/melt-agent"
export MELT_AGENT="$AGENT"

printf 'echo 7\necho abc\nbogus\necho\n' | "$AGENT" --echo >"$T/echo.out" 2>"$T/echo.err"
rc=$?
expect_eq "echo_mode_exits_0_at_eof" "$rc" 0
expect_eq "echo_mode_answers_every_line" "$(wc -l <"$T/echo.out")" 4
expect "echo_mode_echoes_token_and_clock" "$T/echo.out" '^echo 7 [0-9]+$'
expect "echo_mode_any_token" "$T/echo.out" '^echo abc [0-9]+$'
expect "echo_mode_unknown_request" "$T/echo.out" '^err unknown request'
check_exit "echo_mode_takes_no_arguments" 2 "$AGENT" --echo extra

experiment_yaml "$T/c.yaml" clk 2 1 "$MODEL" 8 4
DB="$T/c.db"
check "local_run_exits_0" "$MELT" run "$T/c.yaml" --db "$DB" --idle-ms 0
if command -v sqlite3 >/dev/null 2>&1; then
    q() { sqlite3 "$DB" "$1"; }
    expect_eq "before_and_after_estimates_stored" \
        "$(q "select group_concat(at, ',') from (select at from clock_syncs order by id)")" \
        "before,after"
    expect_eq "local_offset_zero_within_uncertainty" \
        "$(q "select count(*) from clock_syncs where abs(offset_ns) <= uncertainty_ns")" 2
    expect_eq "local_uncertainty_under_1ms" \
        "$(q "select count(*) from clock_syncs where uncertainty_ns < 1000000 and rounds = 32")" 2
    expect_eq "every_trial_has_its_clock" \
        "$(q "select count(*) from trials where clock_offset_ns is not null and clock_rtt_ns < 2000000")" 2
    # the cool-down (host times) was moved onto the device clock: it ends
    # before the agent's hello in the first trial
    expect_eq "cooldown_before_hello_on_device_clock" \
        "$(q "select (select t_ns from events where kind='phase' and name='cooldown' and key='end' and trial=1) <= (select t_ns from events where kind='hello' and trial=1)")" 1
    # the events export gives host-aligned times beside the device's
    check "results_events_exits_0" "$MELT" results events --db "$DB" -o "$T/events.jsonl"
    expect_eq "results_events_one_line_per_event" "$(wc -l <"$T/events.jsonl" | tr -d ' ')" \
        "$(q "select count(*) from events")"
    expect_eq "results_events_host_ns_is_t_ns_plus_offset" \
        "$(sed -n 's/.*"trial":\([0-9]*\),.*"host_ns":\([0-9-]*\),"host_uncertainty_ns":[0-9]*,"ev":"[a-z_]*","t_ns":\([0-9-]*\).*/\1 \2 \3/p' "$T/events.jsonl" |
           while read -r tr h d; do
               o=$(q "select clock_offset_ns from trials where id=$tr")
               [ "$h" -eq $((d + o)) ] || echo "trial $tr: $h != $d + $o"
           done | head -3)" ""
    expect_eq "results_events_every_line_aligned" "$(grep -c '"host_ns":' "$T/events.jsonl")" \
        "$(wc -l <"$T/events.jsonl" | tr -d ' ')"
    expect "results_events_token_line" "$T/events.jsonl" '^\{"cell":"local/[^"]*","trial":[0-9]+,"rep":0,"warmup":false,"host_ns":[0-9]+,"host_uncertainty_ns":[0-9]+,"ev":"token","t_ns":[0-9]+,"req":0,"i":0,'
    check_exit "results_events_bad_run" 1 "$MELT" results events 99 --db "$DB"
    q "select at, offset_ns, uncertainty_ns, rtt_ns from clock_syncs" >"$T/clk.txt"
    echo "local clock syncs (at|offset_ns|uncertainty_ns|rtt_ns):"; cat "$T/clk.txt"
fi
finish

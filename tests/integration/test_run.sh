# melt run: a tiny experiment end to end (stories260K, synthetic pp16/tg8,
# threads [1, 2], 2 repetitions + 1 warm-up, procfs probe), results, resume,
# Ctrl-C and resume, a missing model, an agent that dies mid-trial.
. "$ROOT/tests/integration/lib.sh"
MODEL="$FIX/stories260K/stories260K.gguf"
AGENT="$ROOT/$BUILD/melt-agent"
export MELT_AGENT="$AGENT"

# exp FILE NAME [MODEL] [IDLE]: write a tiny experiment
exp() {
    cat >"$1" <<EOF
name: $2
repetitions: 2
warmup: 1
cooldown: {max_temp_c: 150, min_wait_s: 0, max_wait_s: 0}
engines:
  - threads: [1, 2]
    context: 64
models:
  - path: ${3:-$MODEL}
workloads:
  - synthetic: {prompt_tokens: 16, gen_tokens: 8}
probes:
  - {name: procfs, rate_hz: 10}
EOF
}

have_sqlite=0
command -v sqlite3 >/dev/null 2>&1 && have_sqlite=1
q() { sqlite3 "$1" "$2"; }

# ---- a run to exit 0 ------------------------------------------------------
exp "$T/tiny.yaml" tiny
DB="$T/tiny.db"
check "run_tiny_exits_0" "$MELT" run "$T/tiny.yaml" --db "$DB" --idle-ms 20
expect "run_prints_summary_table" "$T/out" 'decode_tps'
expect "run_prints_database_path" "$T/out" "^database: $DB"
expect "run_prints_report_path" "$T/out" "report"
expect "run_plain_progress_line_per_trial" "$T/err" '^\[cell 2/2 rep 2/2\] local/builtin-t2-c64/stories260K/synthetic-pp16-tg8: ok, [0-9.]+ tok/s decode$'
expect_eq "run_progress_lines" "$(grep -c '^\[cell' "$T/err")" 6
check "results_ls" "$MELT" results ls --db "$DB"
expect "results_ls_lists_run" "$T/out" 'tiny +ok .* 2 +4/4'
check "results_show" "$MELT" results show last --db "$DB"
expect "results_show_cell_t1" "$T/out" 'local/builtin-t1-c64/stories260K/synthetic-pp16-tg8'
expect "results_show_cell_t2" "$T/out" 'local/builtin-t2-c64/stories260K/synthetic-pp16-tg8'
expect "results_show_decode_n2" "$T/out" 'decode_tps .* 2  tok/s'
check "results_export_jsonl" "$MELT" results export last --db "$DB" --format jsonl
expect_eq "export_decode_tps_n2_both_cells" \
    "$(grep -c '"metric":"decode_tps","unit":"tok/s","n":2,' "$T/out")" 2
if [ $have_sqlite = 1 ]; then
    expect_eq "trials_stored_with_warmup" \
        "$(q "$DB" "select count(*) from trials where status='ok'") $(q "$DB" "select count(*) from trials where warmup=1")" "6 2"
    expect_eq "token_events_stored" "$(q "$DB" "select count(*) from events where kind='token'")" 48
    expect_eq "procfs_samples_stored" \
        "$(q "$DB" "select count(*) > 0 from events where kind='sample' and name='procfs'")" 1
    expect_eq "cooldown_recorded_once_per_cell" \
        "$(q "$DB" "select count(*) from events where kind='phase' and name='cooldown' and key='end'")" 2
    expect_eq "cell_metadata_stored" \
        "$(q "$DB" "select count(*) from cells where length(model_sha256)=64 and kernel is not null and engine like '%\"threads\":2%'")" 1
    # the run keeps the file as written plus its resolved form as comments
    q "$DB" "select experiment from runs where id=1" >"$T/exp.txt"
    expect "experiment_text_kept" "$T/exp.txt" '^repetitions: 2'
    expect "experiment_resolved_kept" "$T/exp.txt" '^# +2  local/builtin-t2-c64/stories260K/synthetic-pp16-tg8  transport=local threads=2'
fi

# ---- resume of a finished run runs nothing ---------------------------------
check "resume_finished_exits_0" "$MELT" run "$T/tiny.yaml" --db "$DB" --resume
expect "resume_finished_says_nothing_to_run" "$T/err" 'resuming run 1: 0 trials to run'
expect_eq "resume_finished_no_new_progress" "$(grep -c '^\[cell' "$T/err")" 0
if [ $have_sqlite = 1 ]; then
    expect_eq "resume_finished_no_new_trials" "$(q "$DB" "select count(*) from trials")" 6
fi
check_exit "resume_other_experiment_refused" 1 "$MELT" run "$T/tiny.yaml" --db "$DB" --resume 99
expect_lines "resume_unknown_run_one_line" "$T/err" 1

# ---- Ctrl-C, then resume ---------------------------------------------------
exp "$T/int.yaml" intr
DB2="$T/int.db"
"$MELT" run "$T/int.yaml" --db "$DB2" --idle-ms 1500 >"$T/int.out" 2>"$T/int.err" &
pid=$!
n=0
while [ $n -lt 200 ] && ! grep -q '^\[cell 1/2 rep 1/2\]' "$T/int.err"; do
    sleep 0.05; n=$((n + 1))
done
kill -INT $pid
wait $pid
rc=$?
expect_eq "interrupt_exits_130" "$rc" 130
expect "interrupt_prints_resume_command" "$T/int.out" "resume with: melt run .*--resume 1"
check "interrupt_run_status" "$MELT" results ls --db "$DB2"
expect "interrupt_run_marked_interrupted" "$T/out" 'intr +interrupted'
if [ $have_sqlite = 1 ]; then
    expect_eq "interrupt_trial_marked" "$(q "$DB2" "select count(*) from trials where status='interrupted'")" 1
    expect_eq "interrupt_keeps_events" \
        "$(q "$DB2" "select count(*) > 0 from events e join trials t on e.trial=t.id where t.status='interrupted' and e.kind='bye' and e.key='interrupted'")" 1
fi
check "interrupt_resume_exits_0" "$MELT" run "$T/int.yaml" --db "$DB2" --resume --idle-ms 0
expect "interrupt_resume_runs_missing" "$T/err" 'resuming run 1: 5 trials to run'
check "interrupt_resume_results" "$MELT" results ls --db "$DB2"
expect "interrupt_resume_complete" "$T/out" 'intr +ok .* 4/[45] '
if [ $have_sqlite = 1 ]; then
    expect_eq "interrupt_resume_ok_measured" \
        "$(q "$DB2" "select count(distinct c.cell_id || '#' || t.repetition) from trials t join cells c on t.cell=c.id where t.status='ok' and t.warmup=0")" 4
fi

# ---- a missing model: exit 1, one line -------------------------------------
exp "$T/missing.yaml" missing "$T/no-such-model.gguf"
check_exit "missing_model_exits_1" 1 "$MELT" run "$T/missing.yaml" --db "$T/m.db"
expect_lines "missing_model_one_line" "$T/err" 1
expect "missing_model_names_file" "$T/err" 'no-such-model.gguf'

# ---- a missing agent: exit 1, one line -------------------------------------
check_exit "missing_agent_exits_1" 1 "$MELT" run "$T/tiny.yaml" --db "$T/a.db" --agent "$T/nope"
expect_lines "missing_agent_one_line" "$T/err" 1
expect "missing_agent_says_how" "$T/err" "agent '.*nope' not found"

# ---- an agent that dies mid-trial: lost, exit 3, events kept ---------------
cat >"$T/dying-agent" <<'EOF'
#!/bin/sh
echo '{"ev":"hello","t_ns":1,"agent":"fake"}'
echo '{"ev":"request","t_ns":10,"req":0,"n_prompt":16}'
echo '{"ev":"first_token","t_ns":20,"req":0}'
echo '{"ev":"token","t_ns":20,"req":0,"i":0,"id":5}'
echo '{"ev":"token","t_ns":30,"req":0,"i":1,"id":6}'
echo '{"ev":"token","t_ns":40,"req":0,"i":2,"id":7}'
echo 'dying now' >&2
kill -9 $$
EOF
chmod +x "$T/dying-agent"
DB3="$T/lost.db"
check_exit "lost_trial_exit_3" 3 "$MELT" run "$T/tiny.yaml" --db "$DB3" --agent "$T/dying-agent"
expect "lost_trial_progress_says_lost" "$T/err" '^\[cell 1/2 rep 1/2\] .*: lost'
expect "lost_trial_untrustworthy_line" "$T/err" 'untrustworthy'
if [ $have_sqlite = 1 ]; then
    expect_eq "lost_trials_marked" "$(q "$DB3" "select count(*) from trials where status='lost'")" 6
    expect_eq "lost_trial_keeps_tokens" "$(q "$DB3" "select count(*) from events where kind='token'")" 18
    expect_eq "lost_trial_error_event_has_stderr" \
        "$(q "$DB3" "select count(*) from events where kind='error' and msg like 'lost:%signal 9%dying now%'")" 6
fi

# ---- an agent that reports an error: error, exit 3, stderr kept ------------
cat >"$T/failing-agent" <<'EOF'
#!/bin/sh
echo '{"ev":"hello","t_ns":1,"agent":"fake"}'
echo '{"ev":"error","t_ns":2,"msg":"cannot load the model"}'
echo 'details on stderr' >&2
echo '{"ev":"bye","t_ns":3,"status":"error"}'
exit 1
EOF
chmod +x "$T/failing-agent"
DB5="$T/err.db"
check_exit "error_trial_exit_3" 3 "$MELT" run "$T/tiny.yaml" --db "$DB5" --agent "$T/failing-agent"
expect "error_trial_progress_names_error" "$T/err" '^\[cell 1/2 rep 1/2\] .*: error \(cannot load the model\)'
if [ $have_sqlite = 1 ]; then
    expect_eq "error_trials_marked" "$(q "$DB5" "select count(*) from trials where status='error'")" 6
    expect_eq "error_trial_stderr_event" \
        "$(q "$DB5" "select count(*) from events where kind='error' and msg = 'agent exit 1; stderr: details on stderr'")" 6
fi

# ---- cool-down on a fake device tree (zones at 52 C): waits, then goes on --
sed -e 's/^cooldown:.*/cooldown: {max_temp_c: 40, min_wait_s: 0, max_wait_s: 0.4}/' \
    -e '/^probes:/,$d' -e 's/threads: \[1, 2\]/threads: 1/' "$T/tiny.yaml" >"$T/hot.yaml"
DB4="$T/hot.db"
check "cooldown_run_exits_0" "$MELT" run "$T/hot.yaml" --db "$DB4" --idle-ms 0 \
    --probe-root "$DATA/devices/x86-laptop"
expect "cooldown_timeout_reported" "$T/err" 'cool-down: still 52.0 C after 0\.[4-9] s; going on'
if [ $have_sqlite = 1 ]; then
    expect_eq "cooldown_timeout_recorded" \
        "$(q "$DB4" "select count(*) from events where kind='sample' and name='runner' and key='cooldown_timed_out' and value=1")" 1
    expect_eq "cooldown_wait_recorded" \
        "$(q "$DB4" "select count(*) from events where kind='sample' and key='cooldown_waited_ms' and value >= 390")" 1
fi

# ---- --dry-run still works -------------------------------------------------
check "dry_run_lists_cells" "$MELT" run "$T/tiny.yaml" --dry-run
expect_lines "dry_run_cell_lines" "$T/out" 5

finish

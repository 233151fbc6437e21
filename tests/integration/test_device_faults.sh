# A device lost mid-run does not stop the others: an experiment with the
# fake adb's phone (which disappears mid-trial) and this machine. The
# phone's trials are lost with what arrived kept, this machine's cells run
# and succeed, the run exits 3; once the phone is back, --resume reruns
# only the phone's trials. (One device killed mid-trial, ssh and adb:
# test_ssh.sh (d), test_adb.sh (e).)
. "$ROOT/tests/integration/lib.sh"
MODEL="$FIX/stories260K/stories260K.gguf"
export MELT_AGENT="$ROOT/$BUILD/melt-agent"
use_fake_adb
cat >"$T/two.yaml" <<EOF
name: two
repetitions: 2
warmup: 0
cooldown: {max_temp_c: 150, min_wait_s: 0, max_wait_s: 0}
devices:
  - name: phone
    transport: adb
  - name: here
    transport: local
engines: [{threads: 1, context: 64}]
models: [{path: $MODEL}]
workloads: [{synthetic: {prompt_tokens: 8, gen_tokens: 4}}]
EOF
DB="$T/two.db"
FAKE_ADB_VANISH_AFTER=3 check_exit "lost_phone_run_exits_3" 3 "$MELT" run "$T/two.yaml" --db "$DB" --idle-ms 0
expect "lost_phone_progress_says_lost" "$T/err" '^\[cell 1/2 rep 1/2\] phone/.*: lost'
expect "other_device_went_on" "$T/err" '^\[cell 2/2 rep 2/2\] here/.*: ok'
if command -v sqlite3 >/dev/null 2>&1; then
    q() { sqlite3 "$DB" "$1"; }
    expect_eq "phone_trials_lost_local_ok" \
        "$(q "select group_concat(s, ',') from (select substr(c.cell_id, 1, 5) || ':' || t.status as s from trials t join cells c on c.id = t.cell order by t.id)")" \
        "phone:lost,phone:lost,here/:ok,here/:ok"
    expect_eq "lost_trial_keeps_what_arrived" \
        "$(q "select count(*) from events where trial = 1 and (kind = 'hello' or (kind = 'phase' and name = 'load'))")" 3
fi
rm -f "$FAKE_ADB_ROOT/.gone"   # plugged back in
check "resume_exits_0" "$MELT" run "$T/two.yaml" --db "$DB" --resume --idle-ms 0
expect "resume_runs_only_the_phone" "$T/err" 'resuming run 1: 2 trials to run'
expect_not "resume_skips_the_done_cell" "$T/err" '\] here/'
if command -v sqlite3 >/dev/null 2>&1; then
    expect_eq "after_resume_every_repetition_ok" \
        "$(sqlite3 "$DB" "select count(distinct c.cell_id || t.repetition) from trials t join cells c on c.id = t.cell where t.status = 'ok'")" 4
fi
finish

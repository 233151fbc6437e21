# The adb transport against a fake adb (tests/data/fake-adb/adb, first in
# PATH) whose one device lives in $T/phone (its /data/local/tmp is
# $T/phone/data/local/tmp). (a) `melt run` with `transport: adb` deploys the
# agent and the model and stores the results; hostile file and folder names
# arrive literally and nothing in them runs; (b) unchanged files are not
# pushed again; (c) no device / two devices without a serial / an agent of
# another ABI: one clear line, exit 1; (d) Ctrl-C reaches the agent on the
# device; (e) the device disappears mid-trial: lost, what arrived kept,
# exit 3, --resume reruns it; (f) the real adb, when installed: start-server
# works and with no device melt says so clearly.
. "$ROOT/tests/integration/lib.sh"
MODEL="$FIX/stories260K/stories260K.gguf"
export MELT_AGENT="$ROOT/$BUILD/melt-agent"
REAL_ADB=$(command -v adb 2>/dev/null || true)
use_fake_adb
check "fake_adb_lists_one_device" adb devices -l
expect "fake_adb_device_line" "$T/out" '^FAKE0001 +device .*model:Fake_Phone'

have_sqlite=0
command -v sqlite3 >/dev/null 2>&1 && have_sqlite=1

# a hostile work folder (under /data/local/tmp) and model file name
# shellcheck disable=SC2016
BAD='melt x; touch pwned $(touch pwned2) `touch pwned3` '"'q'"' "d"'
DEVDIR="$FAKE_ADB_ROOT/data/local/tmp/$BAD"
MODELS="$T/models"
mkdir -p "$MODELS"
HMODEL="$MODELS/it's \$(touch pwned4); a.gguf"
cp "$MODEL" "$HMODEL"
yq() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/''/g")"; }   # YAML single quotes

exp() { # FILE NAME [device lines...]
    f=$1 n=$2; shift 2
    experiment_yaml "$f" "$n" 1 1 "$(yq "$HMODEL")" 16 8 "name: phone" "transport: adb" "$@"
}

# ---- (a) a run on the fake phone ------------------------------------------------
exp "$T/adb.yaml" adbrun "workdir: $(yq "/data/local/tmp/$BAD")"
DB="$T/adb.db"
check "run_over_adb_exits_0" "$MELT" run "$T/adb.yaml" --db "$DB"
expect "run_over_adb_prints_summary" "$T/out" 'decode_tps'
check "agent_pushed_to_phone" test -x "$DEVDIR/melt-agent"
check "model_pushed_under_its_hostile_name" cmp "$MODEL" "$DEVDIR/it's \$(touch pwned4); a.gguf"
expect_eq "nothing_named_pwned_anywhere" \
    "$(find "$T" "$ROOT" -maxdepth 6 -name 'pwned*' 2>/dev/null | head -3)" ""
if [ $have_sqlite = 1 ]; then
    q() { sqlite3 "$DB" "$1"; }
    expect_eq "adb_trial_ok" "$(q "select status from trials")" "ok"
    expect_eq "adb_token_events_stored" "$(q "select count(*) from events where kind='token'")" 8
    expect_eq "adb_device_recorded" \
        "$(q "select count(*) from cells where device like '%\"transport\":\"adb\"%'")" 1
    # clock sync through `adb shell melt-agent --echo` (stdin forwarded)
    expect_eq "adb_clock_synced_before_and_after" \
        "$(q "select group_concat(at, ',') from (select at from clock_syncs order by id)")" \
        "before,after"
    expect_eq "adb_trial_has_its_clock" \
        "$(q "select count(*) from trials where clock_offset_ns is not null")" 1
fi

# ---- (b) unchanged files are not pushed again -----------------------------------
ino=$(stat -c %i "$DEVDIR/melt-agent" "$DEVDIR/it's \$(touch pwned4); a.gguf")
export FAKE_ADB_LOG="$T/adb.log"
check "second_run_over_adb_exits_0" "$MELT" run "$T/adb.yaml" --db "$DB"
expect_eq "unchanged_model_and_agent_not_pushed_again" \
    "$(stat -c %i "$DEVDIR/melt-agent" "$DEVDIR/it's \$(touch pwned4); a.gguf")" "$ino"
expect_eq "nothing_pushed_again" "$(grep -c '^-s FAKE0001 push ' "$T/adb.log")" 0
expect_eq "every_call_names_the_serial" "$(grep -vc '^-s FAKE0001 \|^devices -l' "$T/adb.log")" 0
expect_eq "no_pid_files_left_on_phone" "$(ls -A "$DEVDIR" | grep -c '^\.melt-pid')" 0
unset FAKE_ADB_LOG

# ---- (c) clear one-line errors ---------------------------------------------------
# the error is stderr's last line, and the only one about the device
one_line() {
    expect_eq "$1" "$(grep -c "phone" "$T/err") $(tail -n 1 "$T/err" | grep -c "^melt: device 'phone': ")" "1 1"
}
exp "$T/plain.yaml" plain
: >"$T/none.txt"
FAKE_ADB_DEVICES="$T/none.txt" check_exit "no_device_exits_1" 1 "$MELT" run "$T/plain.yaml" --db "$T/c.db"
expect "no_device_message" "$T/err" "device 'phone': no Android device found \(adb devices -l lists none\)"
one_line "no_device_one_line"
printf 'FAKE0001\tdevice\nemulator-5554          device product:sdk model:Pixel_7 transport_id:2\n' >"$T/two.txt"
FAKE_ADB_DEVICES="$T/two.txt" check_exit "two_devices_no_serial_exits_1" 1 "$MELT" run "$T/plain.yaml" --db "$T/c.db"
expect "two_devices_message_lists_them" "$T/err" "adb lists 2 devices: FAKE0001 \(device\), emulator-5554 \(device, Pixel_7\); give the device a 'serial:'"
one_line "two_devices_one_line"
exp "$T/serial.yaml" serial "serial: FAKE0001"
FAKE_ADB_DEVICES="$T/two.txt" check "two_devices_with_serial_exits_0" "$MELT" run "$T/serial.yaml" --db "$T/c.db"
printf 'FAKE0001       unauthorized usb:1-1 transport_id:3\n' >"$T/unauth.txt"
FAKE_ADB_DEVICES="$T/unauth.txt" check_exit "unauthorized_exits_1" 1 "$MELT" run "$T/plain.yaml" --db "$T/c.db"
expect "unauthorized_message" "$T/err" "is unauthorized: accept the 'Allow USB debugging' prompt"
FAKE_ADB_ABI=arm64-v8a check_exit "other_abi_exits_1" 1 "$MELT" run "$T/plain.yaml" --db "$T/c.db"
expect "other_abi_message" "$T/err" "is arm64-v8a but '.*melt-agent' is built for x86_64|is x86_64 but '.*melt-agent' is built for arm64-v8a"

# ---- (d) Ctrl-C reaches the agent on the phone -----------------------------------
PLAIN="$FAKE_ADB_ROOT/data/local/tmp/melt"
wait_agent() { wait_cell_agent "$PLAIN"; }   # the cell's agent, not --describe/--echo
IDB="$T/int.db"
"$MELT" run "$T/plain.yaml" --db "$IDB" --idle-ms 4000 >"$T/int.out" 2>"$T/int.err" &
MPID=$!
wait_agent
kill -INT "$MPID"
wait "$MPID"
expect_eq "ctrl_c_over_adb_exits_130" "$?" 130
if [ $have_sqlite = 1 ]; then
    expect_eq "ctrl_c_over_adb_agent_says_interrupted" \
        "$(sqlite3 "$IDB" "select t.status, e.key from events e join trials t on e.trial=t.id where e.kind='bye'")" \
        "interrupted|interrupted"
fi

# ---- (e) the phone disappears mid-trial ------------------------------------------
LDB="$T/lost.db"
FAKE_ADB_VANISH_AFTER=3 check_exit "vanished_device_exits_3" 3 "$MELT" run "$T/plain.yaml" --db "$LDB" --idle-ms 300
expect "vanished_device_says_lost" "$T/err" 'lost'
check "fake_device_is_gone_afterwards" test -e "$FAKE_ADB_ROOT/.gone"
if [ $have_sqlite = 1 ]; then
    LQ() { sqlite3 "$LDB" "$1"; }
    expect_eq "vanished_device_trial_lost" "$(LQ "select status from trials")" "lost"
    expect_eq "vanished_device_keeps_events_that_arrived" \
        "$(LQ "select count(*) >= 2 from events where kind <> 'error'")" 1
    expect_eq "vanished_device_error_event_says_lost" \
        "$(LQ "select count(*) from events where kind='error' and msg like 'lost%'")" 1
fi
rm -f "$FAKE_ADB_ROOT/.gone"   # plugged back in
check "resume_after_vanished_exits_0" "$MELT" run "$T/plain.yaml" --db "$LDB" --resume --idle-ms 0
expect "resume_after_vanished_runs_one_trial" "$T/err" 'resuming run 1: 1 trials to run'

# ---- (f) the real adb (Debian's adb package), when installed ----------------------
if [ -n "$REAL_ADB" ]; then
    export HOME="$T/home"; mkdir -p "$HOME"
    check "real_adb_start_server" timeout 60 "$REAL_ADB" start-server
    if [ -z "$(timeout 30 "$REAL_ADB" devices | sed '1d;/^$/d')" ]; then
        MELT_ADB="$REAL_ADB" check_exit "real_adb_no_device_exits_1" 1 "$MELT" run "$T/plain.yaml" --db "$T/real.db"
        expect "real_adb_no_device_message" "$T/err" "no Android device found"
        one_line "real_adb_no_device_one_line"
    else
        echo "skip: a real device is attached; not checking the no-device message"
    fi
    timeout 30 "$REAL_ADB" kill-server >/dev/null 2>&1
else
    echo "skip: no real adb installed"
fi
finish

# The Android rituals around a cell, against the fake adb (its `input`,
# `svc`, `settings` and `dumpsys` log each action to $T/phone/rituals.log):
# `android: {screen_off, battery_unplug}` done before the cell and undone
# after, in reverse order; undone too when the cell fails or is
# interrupted; governor, thermal status and battery level recorded with the
# cell before and after; `android:` refused on other transports.
. "$ROOT/tests/integration/lib.sh"
MODEL="$FIX/stories260K/stories260K.gguf"
export MELT_AGENT="$ROOT/$BUILD/melt-agent"
use_fake_adb
cp -r "$DATA/devices/pixel/sys" "$FAKE_ADB_ROOT/sys"   # governors, thermal zones
LOG="$FAKE_ADB_ROOT/rituals.log"
STATE="$FAKE_ADB_ROOT/state"
have_sqlite=0
command -v sqlite3 >/dev/null 2>&1 && have_sqlite=1

exp() { # FILE [android lines]
    f=$1; shift
    experiment_yaml "$f" rituals 1 1 "$MODEL" 8 4 "name: phone" "transport: adb" "$@"
}

# ---- done and undone, in order -------------------------------------------------
exp "$T/r.yaml" "android: {screen_off: true, battery_unplug: true}"
DB="$T/r.db"
: >"$LOG"
check "run_with_rituals_exits_0" "$MELT" run "$T/r.yaml" --db "$DB" --idle-ms 0
expect_eq "rituals_done_then_undone_in_order" "$(tr '\n' '|' <"$LOG")" \
"settings get global stay_on_while_plugged_in|svc power stayon false|input keyevent KEYCODE_SLEEP|dumpsys battery unplug|dumpsys battery reset|settings put global stay_on_while_plugged_in 7|input keyevent KEYCODE_WAKEUP|"
expect_eq "screen_back_on" "$(cat "$STATE/screen")" "on"
expect_eq "stay_awake_restored" "$(cat "$STATE/stay_on")" "7"
check "battery_reset" test ! -e "$STATE/unplugged"
if [ $have_sqlite = 1 ]; then
    dev=$(sqlite3 "$DB" "select device from cells")
    printf '%s\n' "$dev" >"$T/dev.json"
    js() { sqlite3 "$DB" "select json_extract(device, '\$.$1') from cells"; }
    expect_eq "state_before_battery_level" "$(js state.battery_level)" 87
    expect_eq "state_before_thermal_status" "$(js state.thermal_status)" 1
    expect_eq "state_before_unplugged" "$(js state.usb_powered)" 0
    expect_eq "state_before_battery_temp" "$(js state.battery_temp_c)" 29.1
    expect "state_before_governors" "$T/dev.json" '"governor":\{"policy0":"schedutil","policy4":"schedutil","policy7":"schedutil"\}'
    expect_eq "state_before_hottest_zone" "$(js state.temps_c.BIG)" 48.3
    expect_eq "state_after_replugged" "$(js state_after.usb_powered)" 1
    expect_eq "state_after_battery_level" "$(js state_after.battery_level)" 87
    expect "device_info_from_agent_describe" "$T/dev.json" '"info":\{"agent":'
    expect_eq "governor_column_for_the_cell" "$(sqlite3 "$DB" "select governor from cells")" \
        "$(cat /sys/devices/system/cpu/cpufreq/policy0/scaling_governor 2>/dev/null || true)"
fi

# ---- no rituals asked: only the state is read ------------------------------------
exp "$T/plain.yaml"
: >"$LOG"
check "run_without_rituals_exits_0" "$MELT" run "$T/plain.yaml" --db "$T/p.db" --idle-ms 0
expect_eq "no_ritual_without_android_key" "$(wc -l <"$LOG")" 0
if [ $have_sqlite = 1 ]; then
    expect_eq "state_still_recorded" \
        "$(sqlite3 "$T/p.db" "select json_extract(device, '\$.state.battery_level') from cells")" 87
fi

# ---- a ritual that fails: what was done is undone, one clear line -----------------
: >"$LOG"
FAKE_ADB_FAIL=unplug check_exit "failing_ritual_exits_1" 1 "$MELT" run "$T/r.yaml" --db "$T/f.db" --idle-ms 0
expect "failing_ritual_message" "$T/err" "^melt: device 'phone' \(adb FAKE0001\): dumpsys battery unplug failed \(exit 1\)"
expect_eq "failing_ritual_undone" "$(tr '\n' '|' <"$LOG")" \
"settings get global stay_on_while_plugged_in|svc power stayon false|input keyevent KEYCODE_SLEEP|dumpsys battery unplug|dumpsys battery reset|settings put global stay_on_while_plugged_in 7|input keyevent KEYCODE_WAKEUP|"
expect_eq "failing_ritual_screen_on" "$(cat "$STATE/screen")" "on"

# ---- Ctrl-C mid-trial: undone as well --------------------------------------------
: >"$LOG"
DEVDIR="$FAKE_ADB_ROOT/data/local/tmp/melt"
"$MELT" run "$T/r.yaml" --db "$T/i.db" --idle-ms 4000 >"$T/int.out" 2>"$T/int.err" &
MPID=$!
wait_cell_agent "$DEVDIR"
kill -INT "$MPID"
wait "$MPID"
expect_eq "ctrl_c_exits_130" "$?" 130
expect_eq "ctrl_c_rituals_undone" "$(tail -n 3 "$LOG" | tr '\n' '|')" \
"dumpsys battery reset|settings put global stay_on_while_plugged_in 7|input keyevent KEYCODE_WAKEUP|"
check "ctrl_c_battery_reset" test ! -e "$STATE/unplugged"

# ---- android: on another transport is refused ---------------------------------------
cat >"$T/bad.yaml" <<EOF
name: bad
devices:
  - name: box
    transport: ssh
    host: example.invalid
    android: {screen_off: true}
engines: [{threads: 1}]
models: [{path: $MODEL}]
workloads: [{synthetic: {prompt_tokens: 8, gen_tokens: 4}}]
EOF
check_exit "android_on_ssh_refused" 1 "$MELT" run "$T/bad.yaml" --dry-run
expect "android_on_ssh_message" "$T/err" "devices\[0\]\.android: only for transport 'adb', not 'ssh'"
exp "$T/badv.yaml" "android: {screen_off: maybe}"
check_exit "android_bad_value_refused" 1 "$MELT" run "$T/badv.yaml" --dry-run
expect "android_bad_value_message" "$T/err" "screen_off"
finish

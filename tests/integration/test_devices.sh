# melt devices: this machine and the fake adb's phone, described by the
# agent (`melt-agent --describe`); --json; no adb device / no adb / an
# unreachable ssh host named in an experiment; Jetson details from a fake
# root tree and fake nvpmodel/jetson_clocks, also stored with a run's cell.
. "$ROOT/tests/integration/lib.sh"
MODEL="$FIX/stories260K/stories260K.gguf"
AGENT="$ROOT/$BUILD/melt-agent"
export MELT_AGENT="$AGENT"
unset MELT_ADB FAKE_ADB_DEVICES FAKE_ADB_VANISH_AFTER FAKE_ADB_SERIAL FAKE_ADB_ABI FAKE_ADB_FAIL 2>/dev/null
export FAKE_ADB_ROOT="$T/phone"
mkdir -p "$FAKE_ADB_ROOT"
FAKEPATH="$ROOT/tests/data/fake-adb:$PATH"

# ---- this machine and the fake phone ---------------------------------------------
PATH="$FAKEPATH" check "devices_exits_0" "$MELT" devices
cp "$T/out" "$T/list.txt"
expect "lists_this_machine" "$T/list.txt" '^local \(local\): reachable$'
expect "this_machine_cores" "$T/list.txt" "^  cores     $(nproc)\$"
expect "this_machine_os_kernel" "$T/list.txt" "^  os        .*, kernel $(uname -r), $(uname -m)\$"
expect "this_machine_memory" "$T/list.txt" '^  memory    [0-9.]+ GiB \([0-9.]+ GiB available\)$'
expect "lists_the_phone" "$T/list.txt" '^FAKE0001 \(adb FAKE0001\): reachable$'
expect "phone_android_details" "$T/list.txt" '^  android   .*battery 87%, thermal status 1$'
PATH="$FAKEPATH" check "devices_json_exits_0" "$MELT" devices --json
cp "$T/out" "$T/list.json"
if command -v python3 >/dev/null 2>&1; then
    check "json_is_valid" python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert [x["name"] for x in d]==["local","FAKE0001"], d; assert d[0]["reachable"] and d[0]["info"]["cores"]>0; assert d[1]["info"]["android"]["battery_level"]==87' "$T/list.json"
fi

# ---- no adb device, no adb ---------------------------------------------------------
: >"$T/none.txt"
FAKE_ADB_DEVICES="$T/none.txt" PATH="$FAKEPATH" check "no_adb_device_exits_0" "$MELT" devices
expect "no_adb_device_said" "$T/out" '^adb \(adb\): not reachable: no adb device attached \(adb devices -l lists none\)$'
MELT_ADB="$T/no-such-adb" check "no_adb_exits_0" "$MELT" devices
expect "no_adb_said" "$T/out" "^adb \(adb\): not reachable: adb transport: cannot run '$T/no-such-adb'"

# ---- devices an experiment names --------------------------------------------------
cat >"$T/e.yaml" <<EOF
name: lab
devices:
  - name: phone
    transport: adb
  - name: board
    transport: ssh
    host: 127.0.0.1
    port: 1
engines: [{threads: 1}]
models: [{path: $MODEL}]
workloads: [{synthetic: {prompt_tokens: 8, gen_tokens: 4}}]
EOF
PATH="$FAKEPATH" check_exit "unreachable_named_device_exits_1" 1 "$MELT" devices "$T/e.yaml"
expect "named_phone_is_the_attached_one" "$T/out" '^FAKE0001 \(adb FAKE0001\): reachable$'
expect "named_ssh_host_unreachable" "$T/out" "^board \(ssh 127.0.0.1:1\): not reachable: device 'board' \(ssh 127.0.0.1\): connecting"
expect "unreachable_one_line_on_stderr" "$T/err" "^melt: device 'board' \(ssh 127.0.0.1\): connecting"
FAKE_ADB_DEVICES="$T/none.txt" PATH="$FAKEPATH" check_exit "named_adb_without_device_exits_1" 1 "$MELT" devices "$T/e.yaml"
expect "named_adb_without_device_message" "$T/err" "^melt: device 'phone': no Android device found"
check_exit "bad_option_usage" 2 "$MELT" devices --bogus
check_exit "experiment_is_a_directory" 1 "$MELT" devices "$T"
expect_eq "experiment_directory_says_why" "$(cat "$T/err")" "melt: $T: read error: Is a directory"
check_exit "missing_agent_exits_1" 1 "$MELT" devices --agent "$T/no-such-agent"
expect_eq "missing_agent_one_line" "$(cat "$T/err")" \
    "melt: agent '$T/no-such-agent' not found or not executable (build it with 'make', or give --agent PATH or MELT_AGENT)"

# ---- the real adb (Debian's package; installed with scripts/deps.sh adb) -----------
REAL_ADB=$(command -v adb 2>/dev/null || true)
if [ -z "$REAL_ADB" ]; then
    "$ROOT/scripts/deps.sh" adb >"$T/deps.log" 2>&1
    REAL_ADB=$(command -v adb 2>/dev/null || true)
fi
if [ -n "$REAL_ADB" ]; then
    (
        export HOME="$T/home"; mkdir -p "$HOME"
        check "real_adb_start_server" timeout 60 "$REAL_ADB" start-server
        if [ -z "$(timeout 30 "$REAL_ADB" devices | sed '1d;/^$/d')" ]; then
            MELT_ADB="$REAL_ADB" check "real_adb_no_device_devices_exits_0" "$MELT" devices
            expect "real_adb_no_device_said" "$T/out" '^adb \(adb\): not reachable: no adb device attached'
            MELT_ADB="$REAL_ADB" check_exit "real_adb_named_device_exits_1" 1 "$MELT" devices "$T/e.yaml"
            expect "real_adb_named_device_message" "$T/err" "^melt: device 'phone': no Android device found \(adb devices -l lists none\)"
        else
            echo "skip: a real device is attached; not checking the no-device messages"
        fi
        timeout 30 "$REAL_ADB" kill-server >/dev/null 2>&1
        finish
    ) >"$T/real.out"
    cat "$T/real.out" | grep -v '^RESULT'
    set -- $(sed -n 's/^RESULT //p' "$T/real.out")
    _pass=$((_pass + ${1:-0})); _fail=$((_fail + ${2:-1}))
else
    _report "real_adb_installed" 0 "adb missing and 'scripts/deps.sh adb' failed: $(tail -3 "$T/deps.log")"
fi

# ---- Jetson details --------------------------------------------------------------------
JROOT="$DATA/devices/jetson-orin"
JPATH="$ROOT/tests/data/fake-jetson:$PATH"
PATH="$JPATH" check "describe_jetson_exits_0" "$AGENT" --describe --root "$JROOT"
cp "$T/out" "$T/jetson.json"
expect "jetson_l4t" "$T/jetson.json" '"jetson":\{"l4t":"35.4.1","nvpmodel":"MAXN","nvpmodel_id":0,"jetson_clocks":"off"\}'
expect "jetson_model" "$T/jetson.json" '"model":"NVIDIA Jetson AGX Orin Developer Kit"'
expect "jetson_cores" "$T/jetson.json" '"cores":12,'
expect "jetson_governors" "$T/jetson.json" '"governor":\{"policy0":"schedutil","policy4":"schedutil"\}'
expect_not "switched_off_sensors_left_out" "$T/jetson.json" '-256'
FAKE_NVPMODEL="15W 1" FAKE_JETSON_CLOCKS=on PATH="$JPATH" check "describe_jetson_pinned" "$AGENT" --describe --root "$JROOT"
expect "jetson_mode_and_clocks_on" "$T/out" '"nvpmodel":"15W","nvpmodel_id":1,"jetson_clocks":"on"'
# a tool that never answers is given up after its time limit (3 s)
t0=$(date +%s)
FAKE_NVPMODEL_HANG=1 PATH="$JPATH" check "describe_wedged_tool_exits_0" "$AGENT" --describe --root "$JROOT"
expect_eq "describe_wedged_tool_given_up" "$(( $(date +%s) - t0 < 10 ))" 1
expect "describe_wedged_tool_rest_kept" "$T/out" '"jetson":\{"l4t":"35.4.1","jetson_clocks":"off"\}'
# two thermal zones of one type: both kept, under different keys
for z in 0 1; do
    mkdir -p "$T/pc/sys/class/thermal/thermal_zone$z"
    echo acpitz >"$T/pc/sys/class/thermal/thermal_zone$z/type"
    echo "${z}5000" >"$T/pc/sys/class/thermal/thermal_zone$z/temp"
done
check "describe_same_type_zones" "$AGENT" --describe --root "$T/pc"
expect "describe_same_type_zones_both_kept" "$T/out" '"temps_c":\{"acpitz":5,"acpitz\.thermal_zone1":15\}'
check "describe_no_jetson_here" "$AGENT" --describe --root "$DATA/devices/x86-laptop"
expect_not "no_jetson_key_elsewhere" "$T/out" '"jetson"'
check_exit "describe_bad_flag" 2 "$AGENT" --describe --bogus

# names that are not UTF-8 (another charset; a sequence cut short) still give JSON
UROOT="$T/utf8-root"
for z in 0 1 2; do mkdir -p "$UROOT/sys/class/thermal/thermal_zone$z"; echo "4${z}000" >"$UROOT/sys/class/thermal/thermal_zone$z/temp"; done
printf 'caf\351\n' >"$UROOT/sys/class/thermal/thermal_zone0/type"
printf 'caf\303\251\n' >"$UROOT/sys/class/thermal/thermal_zone1/type"
printf 'x\342\202\n' >"$UROOT/sys/class/thermal/thermal_zone2/type"
check "describe_odd_bytes_exits_0" "$AGENT" --describe --root "$UROOT"
cp "$T/out" "$T/odd.json"
expect "describe_latin1_replaced" "$T/odd.json" '"caf\\ufffd":40[,}]'
expect "describe_utf8_kept" "$T/odd.json" "\"caf$(printf '\303\251')\":41[,}]"
expect "describe_cut_sequence_replaced" "$T/odd.json" '"x\\ufffd\\ufffd":42[,}]'
check "describe_odd_bytes_is_json" "$ROOT/$BUILD/tests/json_get" "$T/odd.json" \
    "temps_c.x$(printf '\357\277\275\357\277\275')"
expect_eq "describe_odd_bytes_value" "$(cat "$T/out")" 42

# the runner stores the description with the cell (a local "Jetson": the fake tree)
cat >"$T/j.yaml" <<EOF
name: jet
repetitions: 1
warmup: 0
cooldown: {max_temp_c: 150, min_wait_s: 0, max_wait_s: 0}
engines: [{threads: 1, context: 64}]
models: [{path: $MODEL}]
workloads: [{synthetic: {prompt_tokens: 8, gen_tokens: 4}}]
EOF
PATH="$JPATH" check "run_on_fake_jetson_exits_0" "$MELT" run "$T/j.yaml" --db "$T/j.db" --idle-ms 0 --probe-root "$JROOT"
if command -v sqlite3 >/dev/null 2>&1; then
    expect_eq "run_stores_jetson_metadata" \
        "$(sqlite3 "$T/j.db" "select json_extract(device, '\$.info.jetson.l4t') || ' ' || json_extract(device, '\$.info.jetson.nvpmodel') || ' ' || json_extract(device, '\$.info.jetson.jetson_clocks') from cells")" \
        "35.4.1 MAXN off"
fi
finish

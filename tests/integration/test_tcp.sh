# The tcp transport on loopback: `melt-agent --listen PORT` as the device
# (work folder $T/device), an experiment with `transport: tcp` run against
# it; a second run pushes nothing; garbage on the port leaves the agent up;
# the agent killed mid-trial: the trial is lost, exit 3.
. "$ROOT/tests/integration/lib.sh"
MODEL="$FIX/stories260K/stories260K.gguf"
AGENT_BIN="$ROOT/$BUILD/melt-agent"
export MELT_AGENT="$AGENT_BIN"
DEV="$T/device"
mkdir -p "$DEV"

# pids whose parent is $1 (from /proc)
children() {
    for s in /proc/[0-9]*/stat; do
        st=$(sed 's/^.*) //' "$s" 2>/dev/null) || continue
        # shellcheck disable=SC2086
        set -- "$1" $st
        [ "$3" = "$1" ] && { d=${s%/stat}; echo "${d#/proc/}"; }
    done
}
AGENT=
stop_agent() {
    [ -n "$AGENT" ] || return 0
    for c in $(children "$AGENT"); do kill -9 "$c" 2>/dev/null; done
    kill -9 "$AGENT" 2>/dev/null
    wait "$AGENT" 2>/dev/null
    AGENT=
}
trap 'stop_agent' EXIT INT TERM

start_agent() { # a free port: try a few; the agent exits at once when taken
    PORT=
    for try in 1 2 3 4 5 6 7 8; do
        p=$(( 20000 + ($$ * 131 + try * 7919) % 40000 ))
        "$AGENT_BIN" --listen "$p" --dir "$DEV" >"$T/agent.log" 2>&1 &
        AGENT=$!
        i=0
        while [ $i -lt 50 ]; do
            grep -q 'listening on' "$T/agent.log" && break
            kill -0 "$AGENT" 2>/dev/null || break
            sleep 0.1
            i=$((i + 1))
        done
        if grep -q 'listening on' "$T/agent.log" && kill -0 "$AGENT" 2>/dev/null; then
            PORT=$p; return 0
        fi
        stop_agent
    done
    return 1
}
start_agent
check "agent_listens_on_loopback" test -n "$PORT"
[ -n "$PORT" ] || { cat "$T/agent.log"; finish; exit 1; }
check_exit "listen_bad_port_is_usage_error" 2 "$AGENT_BIN" --listen nope

exp() { # FILE NAME
    experiment_yaml "$1" "$2" 1 1 "$MODEL" 16 8 "name: board" "transport: tcp" "host: 127.0.0.1" "port: $PORT"
}
exp "$T/tcp.yaml" tcprun
DB="$T/tcp.db"
check "run_over_tcp_exits_0" "$MELT" run "$T/tcp.yaml" --db "$DB" --idle-ms 0
expect "run_over_tcp_prints_summary" "$T/out" 'decode_tps'
check "model_pushed_to_agent" cmp "$MODEL" "$DEV/stories260K.gguf"
# the listening agent runs every cell itself: no agent binary is pushed
check "agent_binary_not_pushed" test ! -e "$DEV/melt-agent"
# melt devices describes it through the listening agent (--describe)
MELT_ADB=/nonexistent check "devices_with_tcp_board_exits_0" "$MELT" devices "$T/tcp.yaml"
expect "devices_tcp_board_reachable" "$T/out" "^board \(tcp 127.0.0.1:$PORT\): reachable\$"
sed -n '/^board /,/^[^ ]/{/^  /p}' "$T/out" >"$T/board.txt"
expect "devices_tcp_board_described" "$T/board.txt" "^  cores     $(nproc)\$"
if command -v sqlite3 >/dev/null 2>&1; then
    # clock sync by `echo` to the listening agent: same host clock, so the
    # offset is 0 within the uncertainty
    expect_eq "tcp_clock_synced_before_and_after" \
        "$(sqlite3 "$DB" "select group_concat(at, ',') from (select at from clock_syncs order by id)")" \
        "before,after"
    # the device's description (melt-agent --describe over tcp) fills the
    # cell's metadata columns, as the host's own do for local cells
    expect_eq "tcp_cell_kernel_from_describe" \
        "$(sqlite3 "$DB" "select count(*) from cells where kernel like '%$(uname -r) $(uname -m)' and length(cpu_features) > 0 and json_extract(device, '\$.info.cores') = $(nproc)")" 1
    expect_eq "tcp_clock_offset_zero_within_uncertainty" \
        "$(sqlite3 "$DB" "select count(*) from clock_syncs where abs(offset_ns) <= uncertainty_ns and uncertainty_ns < 1000000")" 2
fi
check "export_over_tcp" "$MELT" results export --db "$DB" --format jsonl
expect "export_has_decode_tps_n1" "$T/out" '"metric":"decode_tps","unit":"tok/s","n":1,'
ino_model=$(stat -c %i "$DEV/stories260K.gguf")
check "second_run_over_tcp_exits_0" "$MELT" run "$T/tcp.yaml" --db "$DB" --idle-ms 0
expect_eq "unchanged_model_not_pushed_again" "$(stat -c %i "$DEV/stories260K.gguf")" "$ino_model"

# garbage on the port: the agent answers errors and stays up
# (tests run under sh: bash's /dev/tcp sends it)
if command -v bash >/dev/null 2>&1; then
    # shellcheck disable=SC2016
    GARBAGE='exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        { printf "hello\nrun -1\npush ../x 10 zz\necho t\n"; head -c 3000 /dev/urandom; } >&3
        exec 3>&-
        exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        printf "run 2\n99999999\n" >&3
        exec 3>&-
        exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        head -c 5000 /dev/zero >&3
        exec 3>&-
        exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        printf "echo x\n" >&3
        read -r line <&3
        printf "%s\n" "$line"'
    check "garbage_sent" bash -c "$GARBAGE" garbage "$PORT"
    expect "agent_still_answers_after_garbage" "$T/out" '^echo x [0-9]+'
    check "agent_survives_garbage" kill -0 "$AGENT"
    check "run_after_garbage_exits_0" "$MELT" run "$T/tcp.yaml" --db "$T/g.db" --idle-ms 0
fi

# nothing listening: one clear line, exit 1
sed "s/port: $PORT/port: 1/" "$T/tcp.yaml" >"$T/down.yaml"
check_exit "unreachable_tcp_device_exits_1" 1 "$MELT" run "$T/down.yaml" --db "$T/down.db"
expect "unreachable_tcp_message" "$T/err" "device 'board' \(tcp 127.0.0.1:1\): cannot connect"

wait_cell() { # bounded wait until the agent runs a cell (a forked child)
    i=0
    while [ $i -lt 100 ] && [ -z "$(children "$AGENT")" ]; do sleep 0.1; i=$((i + 1)); done
    sleep 0.5
}

# Ctrl-C: forwarded as an "interrupt" request; the agent ends with bye interrupted
IDB="$T/int.db"
"$MELT" run "$T/tcp.yaml" --db "$IDB" --idle-ms 4000 >"$T/int.out" 2>"$T/int.err" &
MPID=$!
wait_cell
kill -INT "$MPID"
wait "$MPID"
expect_eq "ctrl_c_over_tcp_exits_130" "$?" 130
if command -v sqlite3 >/dev/null 2>&1; then
    expect_eq "ctrl_c_over_tcp_agent_says_interrupted" \
        "$(sqlite3 "$IDB" "select t.status, e.key from events e join trials t on e.trial=t.id where e.kind='bye'")" \
        "interrupted|interrupted"
fi
check "agent_up_after_ctrl_c" kill -0 "$AGENT"

# melt killed mid-trial: the relay and the connection go, the agent stops
# the cell and serves the next host
"$MELT" run "$T/tcp.yaml" --db "$T/k.db" --idle-ms 4000 >/dev/null 2>&1 &
MPID=$!
wait_cell
kill -9 "$MPID"
wait "$MPID" 2>/dev/null
i=0
while [ $i -lt 50 ] && [ -n "$(children "$AGENT")" ]; do sleep 0.1; i=$((i + 1)); done
expect_eq "cell_stopped_when_host_dies" "$(children "$AGENT")" ""
check "run_after_host_died_exits_0" "$MELT" run "$T/tcp.yaml" --db "$T/k2.db" --idle-ms 0

# the agent killed mid-trial: lost, exit 3
LDB="$T/lost.db"
"$MELT" run "$T/tcp.yaml" --db "$LDB" --idle-ms 4000 >"$T/lost.out" 2>"$T/lost.err" &
MPID=$!
wait_cell
stop_agent
wait "$MPID"
rc=$?
expect_eq "killed_agent_exits_3" "$rc" 3
expect "killed_agent_says_lost" "$T/lost.err" 'lost: .*signal 1'
if command -v sqlite3 >/dev/null 2>&1; then
    expect_eq "killed_agent_trial_lost" "$(sqlite3 "$LDB" "select status from trials")" "lost"
fi
finish

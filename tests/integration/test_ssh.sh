# The ssh transport against a real sshd: a throw-away server on 127.0.0.1
# (its own host key, config and authorized key in $T, root only, loopback
# only) treated as a remote Linux device whose work folder is $T/device.
# (a) hostile argv values arrive literally through ssh and local, nothing in
# them runs; (b) pushes skip unchanged files and refuse what does not fit;
# (c) `melt run` of an experiment with `transport: ssh` deploys the agent and
# the model and stores the results; (d) the ssh session killed mid-trial:
# the trial is lost, what arrived is kept, exit 3.
. "$ROOT/tests/integration/lib.sh"
MODEL="$FIX/stories260K/stories260K.gguf"
export MELT_AGENT="$ROOT/$BUILD/melt-agent"

# ---- the throw-away sshd ----------------------------------------------------
if [ "$(id -u)" -ne 0 ]; then
    echo "skip: the throw-away sshd needs root (CI runs as root)"
    finish
    exit 0
fi
if ! [ -x /usr/sbin/sshd ] || ! command -v ssh >/dev/null 2>&1; then
    "$ROOT/scripts/deps.sh" ssh >"$T/deps.log" 2>&1
fi
check "ssh_client_and_server_installed" test -x /usr/sbin/sshd
[ -x /usr/sbin/sshd ] || { cat "$T/deps.log"; finish; exit 1; }

mkdir -p /run/sshd "$T/device"   # sshd's privilege separation folder
ssh-keygen -q -t ed25519 -N '' -f "$T/host_key" </dev/null
ssh-keygen -q -t ed25519 -N '' -f "$T/client_key" </dev/null
cp "$T/client_key.pub" "$T/authorized_keys"
cat >"$T/ssh_config" <<EOF
Host *
  IdentityFile $T/client_key
  IdentitiesOnly yes
  UserKnownHostsFile $T/known_hosts
  StrictHostKeyChecking accept-new
  LogLevel ERROR
EOF
export MELT_SSH_CONFIG="$T/ssh_config"

SSHD=
stop_sshd() {
    [ -n "$SSHD" ] || return 0
    kill_children "$SSHD"
    kill "$SSHD" 2>/dev/null
    wait "$SSHD" 2>/dev/null
    SSHD=
}
trap 'stop_sshd' EXIT INT TERM

# pids whose parent is $1 (from /proc: no procps needed)
children() {
    for s in /proc/[0-9]*/stat; do
        st=$(sed 's/^.*) //' "$s" 2>/dev/null) || continue
        # shellcheck disable=SC2086
        set -- "$1" $st
        [ "$3" = "$1" ] && { d=${s%/stat}; echo "${d#/proc/}"; }
    done
}
kill_children() { for c in $(children "$1"); do kill -9 "$c" 2>/dev/null; done; }

# A free port: try a few, sshd exits at once when the port is taken.
PORT=
for try in 1 2 3 4 5 6 7 8; do
    p=$(( 20000 + ($$ * 131 + try * 7919) % 40000 ))
    cat >"$T/sshd_config" <<EOF
Port $p
ListenAddress 127.0.0.1
HostKey $T/host_key
PidFile $T/sshd.pid
AuthorizedKeysFile $T/authorized_keys
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
AllowUsers root
X11Forwarding no
EOF
    /usr/sbin/sshd -D -e -f "$T/sshd_config" >"$T/sshd.log" 2>&1 &
    SSHD=$!
    i=0
    while [ $i -lt 50 ]; do
        grep -q 'Server listening' "$T/sshd.log" && break
        kill -0 "$SSHD" 2>/dev/null || break
        sleep 0.1
        i=$((i + 1))
    done
    if grep -q 'Server listening' "$T/sshd.log"; then PORT=$p; break; fi
    stop_sshd
done
check "sshd_listens_on_loopback" test -n "$PORT"
[ -n "$PORT" ] || { cat "$T/sshd.log"; finish; exit 1; }
check "ssh_logs_in_with_the_throwaway_key" \
    ssh -F "$T/ssh_config" -o BatchMode=yes -o ConnectTimeout=5 -p "$PORT" root@127.0.0.1 true

# ---- (a), (b): the transport itself ------------------------------------------
# test_transport's ssh cases run only with these set (run.sh's unit pass
# skips them).
export MELT_TEST_SSH_HOST=127.0.0.1 MELT_TEST_SSH_PORT="$PORT" MELT_TEST_SSH_USER=root \
    MELT_TEST_SSH_WORKDIR="$T/device"
check "transport_cases_pass_against_sshd" "$ROOT/$BUILD/tests/test_transport"
cat "$T/out" "$T/err" >"$T/transport.out"   # cmocka's summary is on stderr
expect "transport_ssh_cases_ran_not_skipped" "$T/transport.out" '^\[  PASSED  \] 5 test'
grep -E 'FAIL|ERROR|SKIPPED' "$T/transport.out" | head -10
expect_eq "nothing_named_pwned_anywhere" \
    "$(find "$T" "$ROOT" -maxdepth 2 -name 'pwned*' 2>/dev/null | head -3)" ""

# ---- (c): an experiment on the ssh device -------------------------------------
DEV="$T/device/run"   # a work folder melt creates itself (mkdir -p)
exp() { # FILE NAME
    experiment_yaml "$1" "$2" 1 1 "$MODEL" 16 8 "name: box" "transport: ssh" "host: 127.0.0.1" \
        "port: $PORT" "user: root" "workdir: $DEV"
}
exp "$T/ssh.yaml" sshrun
DB="$T/ssh.db"
check "run_over_ssh_exits_0" "$MELT" run "$T/ssh.yaml" --db "$DB"
expect "run_over_ssh_prints_summary" "$T/out" 'decode_tps'
check "agent_deployed_to_device" test -x "$DEV/melt-agent"
check "model_deployed_to_device" cmp "$MODEL" "$DEV/stories260K.gguf"
have_sqlite=0
command -v sqlite3 >/dev/null 2>&1 && have_sqlite=1
q() { sqlite3 "$DB" "$1"; }
if [ $have_sqlite = 1 ]; then
    expect_eq "ssh_trial_ok" "$(q "select status from trials")" "ok"
    expect_eq "ssh_token_events_stored" "$(q "select count(*) from events where kind='token'")" 8
    expect_eq "ssh_device_recorded" \
        "$(q "select count(*) from cells where device like '%\"transport\":\"ssh\"%'")" 1
    # clock sync through `ssh ... melt-agent --echo`: the "device" is this
    # machine, so the offset is 0 within the uncertainty
    expect_eq "ssh_clock_offset_zero_within_uncertainty" \
        "$(q "select count(*) from clock_syncs where abs(offset_ns) <= uncertainty_ns")" 2
fi
# deployed again unchanged: nothing is copied (a copy renames a new file in)
ino_model=$(stat -c %i "$DEV/stories260K.gguf")
ino_agent=$(stat -c %i "$DEV/melt-agent")
check "second_run_over_ssh_exits_0" "$MELT" run "$T/ssh.yaml" --db "$DB"
expect_eq "unchanged_model_and_agent_not_pushed_again" \
    "$(stat -c %i "$DEV/stories260K.gguf") $(stat -c %i "$DEV/melt-agent")" \
    "$ino_model $ino_agent"
expect_eq "no_pid_files_left_on_device" "$(ls -A "$DEV" | grep -c '^\.melt-pid')" 0

# a device that does not answer: one clear line, exit 1
sed "s/port: $PORT/port: 1/" "$T/ssh.yaml" >"$T/down.yaml"
check_exit "unreachable_device_exits_1" 1 "$MELT" run "$T/down.yaml" --db "$T/down.db"
expect "unreachable_device_message_names_it" "$T/err" "device 'box' \(ssh 127.0.0.1\): connecting .*failed \(ssh exit 255\)"

# ---- Ctrl-C: reaches the remote agent, which ends with bye "interrupted" ----
wait_agent() { wait_cell_agent "$DEV"; }   # the cell's agent, not --describe/--echo
exp "$T/int.yaml" intr
IDB="$T/int.db"
"$MELT" run "$T/int.yaml" --db "$IDB" --idle-ms 4000 >"$T/int.out" 2>"$T/int.err" &
MPID=$!
wait_agent
kill -INT "$MPID"
wait "$MPID"
expect_eq "ctrl_c_over_ssh_exits_130" "$?" 130
if [ $have_sqlite = 1 ]; then
    expect_eq "ctrl_c_over_ssh_agent_says_interrupted" \
        "$(sqlite3 "$IDB" "select t.status, e.key from events e join trials t on e.trial=t.id where e.kind='bye'")" \
        "interrupted|interrupted"
fi

# ---- (d): the ssh session killed mid-trial ------------------------------------
exp "$T/lost.yaml" lost
LDB="$T/lost.db"
"$MELT" run "$T/lost.yaml" --db "$LDB" --idle-ms 4000 >"$T/lost.out" 2>"$T/lost.err" &
MPID=$!
wait_agent
kill_children "$SSHD"     # every connection to the device drops
wait "$MPID"
rc=$?
expect_eq "killed_session_exits_3" "$rc" 3
expect "killed_session_says_lost" "$T/lost.err" 'lost'
if [ $have_sqlite = 1 ]; then
    LQ() { sqlite3 "$LDB" "$1"; }
    expect_eq "killed_session_trial_lost" "$(LQ "select status from trials")" "lost"
    expect_eq "killed_session_keeps_events_that_arrived" \
        "$(LQ "select count(*) > 1 from events where kind in ('hello','phase')")" 1
    expect "killed_session_error_event_says_hangup" "$T/lost.err" 'signal 1'
fi

# the device is back (sshd still listens): --resume reruns only the lost trial
check "resume_after_lost_exits_0" "$MELT" run "$T/lost.yaml" --db "$LDB" --resume --idle-ms 0
expect "resume_after_lost_runs_one_trial" "$T/err" 'resuming run 1: 1 trials to run'
if [ $have_sqlite = 1 ]; then
    expect_eq "resume_after_lost_trials" \
        "$(sqlite3 "$LDB" "select group_concat(status, ',') from (select status from trials order by id)")" \
        "lost,ok"
fi

# the agent cut off from its host ends by itself (SIGPIPE on its next write)
agent_running() { ls -l /proc/[0-9]*/exe 2>/dev/null | grep -qF -- "-> $DEV/melt-agent"; }
i=0
while [ $i -lt 100 ] && agent_running; do sleep 0.1; i=$((i + 1)); done
check "cut_off_agent_exits_by_itself" test "$i" -lt 100

stop_sshd
finish

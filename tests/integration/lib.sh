# Shared helpers for integration tests (sourced). Each test script calls
# check/check_fails/... and ends with `finish`, which prints
# "RESULT passed failed" for tests/run.sh.
# Environment from run.sh: MELT (binary), ROOT (repo), T (scratch folder).
set -u
: "${MELT:?run through tests/run.sh}"
: "${T:?}"
FIX="$ROOT/tests/fixtures"
DATA="$ROOT/tests/data"
_pass=0
_fail=0

_report() { # name ok detail
    if [ "$2" = 1 ]; then
        _pass=$((_pass + 1)); echo "ok   $1"
    else
        _fail=$((_fail + 1)); echo "FAIL $1"; printf '%s\n' "$3" | sed 's/^/     /'
    fi
}

# run CMD...: runs and keeps exit code in $rc, stdout in $T/out, stderr in $T/err
run() { "$@" >"$T/out" 2>"$T/err"; rc=$?; }

# check NAME CMD... : passes when CMD exits 0
check() {
    _n=$1; shift
    run "$@"
    if [ $rc -eq 0 ]; then _report "$_n" 1 ""; else
        _report "$_n" 0 "expected exit 0, got $rc from: $*
stderr: $(head -c 600 "$T/err")"; fi
}

# check_exit NAME CODE CMD... : passes when CMD exits with CODE
check_exit() {
    _n=$1; _want=$2; shift 2
    run "$@"
    if [ $rc -eq "$_want" ]; then _report "$_n" 1 ""; else
        _report "$_n" 0 "expected exit $_want, got $rc from: $*
stderr: $(head -c 600 "$T/err")"; fi
}

# expect NAME FILE REGEX : passes when FILE has a line matching REGEX (grep -E)
expect() {
    if grep -qE -- "$3" "$2"; then _report "$1" 1 ""; else
        _report "$1" 0 "expected /$3/ in $2, got:
$(head -c 800 "$2")"; fi
}

# expect_not NAME FILE REGEX
expect_not() {
    if grep -qE -- "$3" "$2"; then _report "$1" 0 "did not expect /$3/ in $2:
$(grep -E -- "$3" "$2" | head -5)"; else _report "$1" 1 ""; fi
}

# expect_eq NAME GOT WANT
expect_eq() {
    if [ "$2" = "$3" ]; then _report "$1" 1 ""; else
        _report "$1" 0 "expected '$3', got '$2'"; fi
}

# expect_lines NAME FILE N : file has exactly N lines
expect_lines() {
    _c=$(wc -l <"$2")
    expect_eq "$1" "$_c" "$3"
}

# wait_cell_agent DIR: bounded wait (10 s) until a pid file of a remote
# transport in DIR (.melt-pid.*) names a running agent that runs a cell
# (--plan on its command line; not the runner's --describe or --echo
# calls), then 0.5 s more. Returns 1 when none came.
wait_cell_agent() {
    _i=0
    while [ $_i -lt 100 ]; do
        for _f in "$1"/.melt-pid.*; do
            [ -f "$_f" ] || continue
            _p=$(cat "$_f" 2>/dev/null)
            if [ -n "$_p" ] && tr '\0' ' ' <"/proc/$_p/cmdline" 2>/dev/null | grep -q -- '--plan'; then
                sleep 0.5; return 0
            fi
        done
        sleep 0.1; _i=$((_i + 1))
    done
    return 1
}

# experiment_yaml FILE NAME REPS THREADS MODEL PROMPT_TOKENS GEN_TOKENS [DEVICE_LINE...]:
# write a small experiment to FILE: no warm-up, no cool-down wait, context
# 64, one synthetic workload. THREADS and MODEL are written as given (YAML:
# "[1, 2]" is a list; quote a MODEL path that needs it). The DEVICE_LINEs
# are the lines of one device ("name: X" first, then its settings); none:
# this machine only.
experiment_yaml() {
    _f=$1 _name=$2 _reps=$3 _threads=$4 _model=$5 _pp=$6 _tg=$7
    shift 7
    {
        echo "name: $_name"
        echo "repetitions: $_reps"
        echo "warmup: 0"
        echo "cooldown: {max_temp_c: 150, min_wait_s: 0, max_wait_s: 0}"
        if [ $# -gt 0 ]; then
            echo "devices:"
            echo "  - $1"
            shift
            for _l in "$@"; do echo "    $_l"; done
        fi
        echo "engines:"
        echo "  - threads: $_threads"
        echo "    context: 64"
        echo "models:"
        echo "  - path: $_model"
        echo "workloads:"
        echo "  - synthetic: {prompt_tokens: $_pp, gen_tokens: $_tg}"
    } >"$_f"
}

# use_fake_adb: the fake adb (tests/data/fake-adb/adb) first in PATH, its
# one device living in $T/phone (FAKE_ADB_ROOT), none of its knobs set.
use_fake_adb() {
    export PATH="$ROOT/tests/data/fake-adb:$PATH"
    unset MELT_ADB FAKE_ADB_DEVICES FAKE_ADB_VANISH_AFTER FAKE_ADB_SERIAL FAKE_ADB_ABI FAKE_ADB_FAIL 2>/dev/null
    export FAKE_ADB_ROOT="$T/phone"
    mkdir -p "$FAKE_ADB_ROOT"
}

# need_cross_tools WHAT: aarch64-linux-gnu-gcc and qemu-aarch64-static,
# installed with scripts/deps.sh cross when missing. Reports
# cross_tools_present; when they cannot be had, reports WHAT as failed
# too (never skipped) and returns 1.
need_cross_tools() {
    _deps_rc=0
    if ! command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || ! command -v qemu-aarch64-static >/dev/null 2>&1; then
        "$ROOT/scripts/deps.sh" cross >"$T/deps.out" 2>&1 || _deps_rc=$?
    fi
    _missing=""
    for _x in aarch64-linux-gnu-gcc qemu-aarch64-static; do
        command -v "$_x" >/dev/null 2>&1 || _missing="$_missing $_x"
    done
    if [ -n "$_missing" ]; then
        _report "cross_tools_present" 0 "missing:$_missing; 'scripts/deps.sh cross' (exit $_deps_rc) did not provide them:
$(tail -5 "$T/deps.out" 2>/dev/null)"
        _report "$1" 0 "not run: no cross compiler or qemu-aarch64-static"
        return 1
    fi
    _report "cross_tools_present" 1 ""
}

finish() { echo "RESULT $_pass $_fail"; }

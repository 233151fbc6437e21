#!/bin/sh
# Run every test: cmocka unit binaries, corpus replays of the fuzz targets,
# and integration scripts that drive the real melt binary.
# Usage: tests/run.sh BUILD_DIR [FILTER]   Last line: "N passed, N failed".
set -u
BUILD=${1:-build}
FILTER=${2:-}
cd "$(dirname "$0")/.." || exit 2
ROOT=$(pwd)
MELT="$ROOT/$BUILD/melt"
export MELT ROOT BUILD
TMPROOT=$(mktemp -d "${TMPDIR:-/tmp}/melt-test.XXXXXX")
export MELT_TEST_TMP="$TMPROOT"
trap 'rm -rf "$TMPROOT"' EXIT INT TERM
# A test that hangs fails after this many seconds instead of hanging the
# suite (timeout signals the test's whole process group, servers included).
TEST_TIMEOUT=${MELT_TEST_TIMEOUT:-600}
passed=0
failed=0
failures=""

note_fail() { failed=$((failed + $2)); failures="$failures
  $1"; }

for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    name=$(basename "$t")
    case "$name" in *"$FILTER"*) ;; *) continue ;; esac
    out="$TMPROOT/$name.out"
    timeout -k 10 "$TEST_TIMEOUT" "$t" >"$out" 2>&1
    rc=$?
    p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$out" | tail -1)
    f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$out" | tail -1)
    p=${p:-0}; f=${f:-0}
    passed=$((passed + p))
    if [ "$f" -gt 0 ] || [ $rc -ne 0 ]; then
        [ "$f" -gt 0 ] || f=1      # crashed before its summary
        sed -n '/\[  FAILED  \]\|\[  ERROR   \]\|Failure\|error:\|ERROR\|runtime error/p' "$out" | head -20
        note_fail "$name (exit $rc)" "$f"
    fi
    echo "unit   $name: $p passed, $f failed"
done

for r in "$BUILD"/tests/replay_fuzz_*; do
    [ -x "$r" ] || continue
    name=${r##*/replay_fuzz_}
    case "replay_$name" in *"$FILTER"*) ;; *) continue ;; esac
    if "$r" "tests/fuzz/$name" >"$TMPROOT/replay-$name.out" 2>&1; then
        passed=$((passed + 1)); echo "fuzz   corpus $name: replayed clean"
    else
        tail -5 "$TMPROOT/replay-$name.out"
        note_fail "fuzz corpus $name" 1; echo "fuzz   corpus $name: FAILED"
    fi
done

for s in tests/integration/test_*.sh; do
    [ -f "$s" ] || continue
    name=$(basename "$s" .sh)
    case "$name" in *"$FILTER"*) ;; *) continue ;; esac
    out="$TMPROOT/$name.out"
    T="$TMPROOT/$name"; mkdir -p "$T"
    T="$T" timeout -k 10 "$TEST_TIMEOUT" sh "$s" >"$out" 2>&1
    rc=$?
    res=$(sed -n 's/^RESULT \([0-9]*\) \([0-9]*\)$/\1 \2/p' "$out" | tail -1)
    if [ -z "$res" ]; then
        tail -20 "$out"
        [ $rc -eq 124 ] || [ $rc -eq 137 ] && echo "$name: timed out after ${TEST_TIMEOUT} s"
        note_fail "$name (died, exit $rc)" 1
        echo "integ  $name: died (exit $rc)"; continue
    fi
    p=${res% *}; f=${res#* }
    passed=$((passed + p))
    if [ "$f" -gt 0 ] || [ $rc -ne 0 ]; then
        grep -A8 '^FAIL' "$out" | head -60
        [ "$f" -gt 0 ] || f=1
        note_fail "$name" "$f"
    fi
    echo "integ  $name: $p passed, $f failed"
done

if [ "$failed" -gt 0 ]; then
    echo "failing:$failures"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

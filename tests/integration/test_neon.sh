# The NEON kernel families (src/engine/kernels/neon.c) under
# qemu-aarch64-static: tests/cross/test_kernels_cross.c cross-built static
# (make kernels-cross-aarch64) and run on an emulated CPU with the dot
# product extension (-cpu max: neon and neon-dotprod) and on one without
# (-cpu cortex-a57: neon only, neon-dotprod reported unavailable). Every
# "ok"/"FAIL" line of the program counts as a check here. The same program
# built for this machine (make kernels-cross-native) runs too: the x86
# families against ref and scalar, and no neon family; and the fixtures'
# logits of the AUTO family must be the same bytes on both machines.
# Missing cross tools are installed with scripts/deps.sh cross; when that
# fails every check below fails with the reason (never skipped).
. "$ROOT/tests/integration/lib.sh"
QEMU=qemu-aarch64-static
XTEST="$ROOT/$BUILD/aarch64/tests/test_kernels_cross"
NTEST="$ROOT/$BUILD/cross/test_kernels_cross"

# ---- tools -----------------------------------------------------------------
need_cross_tools neon_kernel_checks || { finish; exit 0; }

# ---- build (same BUILD and sanitizers as the suite, so the native program
# links with its libmelt.a; MAKEFLAGS of an outer make are not passed on)
check "make_kernels_cross" env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL \
    make -C "$ROOT" --no-print-directory BUILD="$BUILD" SANITIZE="${MELT_SANITIZE:-}" WERROR=1 \
    kernels-cross-aarch64 kernels-cross-native
expect_not "kernels_cross_build_warning_free" "$T/err" '\.[ch]:[0-9]+(:[0-9]+)?: warning:'
if [ ! -x "$XTEST" ]; then
    _report "aarch64_kernel_test_built" 0 "no $XTEST after make kernels-cross-aarch64:
$(tail -c 800 "$T/err")"
    finish
    exit 0
fi

# prog LABEL OUTFILE CMD...: runs the program; each of its ok/FAIL lines
# becomes a check "LABEL: ..." (a FAIL with the program's detail line), and
# its summary must say 0 failed, agree with those lines and the exit code.
prog() {
    _label=$1; _file=$2; shift 2
    "$@" >"$_file" 2>&1
    _rc=$?
    _ok=0; _bad=0
    while IFS= read -r line; do
        case "$line" in
        "ok   "*) _report "$_label: ${line#ok   }" 1 ""; _ok=$((_ok + 1)) ;;
        "FAIL "*) _report "$_label: ${line#FAIL }" 0 "$(grep -F -x -A1 -- "$line" "$_file" | sed -n 2p)"
                  _bad=$((_bad + 1)) ;;
        esac
    done <"$_file"
    expect_eq "$_label: summary line, exit code" "$(tail -1 "$_file") (exit $_rc)" \
        "$_ok passed, $_bad failed (exit $([ $_bad -eq 0 ] && echo 0 || echo 1))"
    expect_eq "$_label: no failed check" "$_bad" 0
}

# ---- with dotprod: both families ------------------------------------------
prog "qemu max" "$T/max.out" "$QEMU" -cpu max "$XTEST" --dotprod yes --fixtures "$FIX" \
    --dump-logits "$T/max.logits"
expect "max_reports_dotprod" "$T/max.out" '^# cpu features: .*DOTPROD'
expect "max_runs_neon_dotprod" "$T/max.out" '^ok   neon-dotprod q4_K vec_dot equals scalar on raw blocks'
expect "max_runs_neon" "$T/max.out" '^ok   neon q4_K vec_dot equals scalar on raw blocks'
expect "max_auto_is_neon_dotprod" "$T/max.out" '^ok   AUTO picks the fastest available family \(neon-dotprod\)'

# ---- without dotprod: the plain family runs, dotprod is unavailable -------
prog "qemu cortex-a57" "$T/a57.out" "$QEMU" -cpu cortex-a57 "$XTEST" --dotprod no --fixtures "$FIX" \
    --dump-logits "$T/a57.logits"
expect_not "a57_has_no_dotprod" "$T/a57.out" '^# cpu features: .*DOTPROD'
expect "a57_dotprod_family_unavailable" "$T/a57.out" '^# family neon-dotprod: not available on this CPU'
expect "a57_load_with_neon_dotprod_fails_clearly" "$T/a57.out" \
    '^ok   loading with the unavailable family neon-dotprod fails with a clear message'
expect "a57_runs_neon" "$T/a57.out" '^ok   neon q5_K matmul equals the scalar family'
expect "a57_auto_is_neon" "$T/a57.out" '^ok   AUTO picks the fastest available family \(neon\)'

# ---- natively: the same program on this machine -----------------------------
if [ -x "$NTEST" ]; then
    prog "native" "$T/native.out" "$NTEST" --fixtures "$FIX" --dump-logits "$T/native.logits"
    case "$(uname -m)" in
    x86_64) expect "native_has_no_neon_family" "$T/native.out" '^# family neon: not available on this CPU' ;;
    esac
    # the same logits, bit for bit, from this machine's AUTO family and from
    # neon-dotprod and neon under the emulator
    sz=$(wc -c <"$T/native.logits" 2>/dev/null || echo 0)
    check "native_logits_nonempty" test "$sz" -gt 100000
    check "aarch64_neon_dotprod_logits_equal_native" cmp "$T/max.logits" "$T/native.logits"
    check "aarch64_neon_logits_equal_native" cmp "$T/a57.logits" "$T/native.logits"
else
    _report "native_kernel_test_built" 0 "no $NTEST after make kernels-cross-native"
fi
finish

# The static x86-64 agent (make agent-x86_64-static): builds warning-free
# with no dlopen warning (-DMELT_PROBE_NO_DLOPEN), is a static x86-64 ELF, and
# gives the greedy tokens of tests/fixtures/stories260K/greedy.jsonl.
# Needs an x86-64 host (elsewhere it reports one passed check saying so).
. "$ROOT/tests/integration/lib.sh"
MODEL="$FIX/stories260K/stories260K.gguf"
XAGENT="$ROOT/$BUILD/x86_64/melt-agent"

if [ "$(uname -m)" != x86_64 ]; then
    _report "not_an_x86_64_host_nothing_to_check" 1 ""
    finish
    exit 0
fi
check "make_agent_x86_64_static" env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL \
    make -C "$ROOT" --no-print-directory BUILD="$BUILD" WERROR=1 agent-x86_64-static
expect_not "static_build_warning_free" "$T/err" '\.[ch]:[0-9]+(:[0-9]+)?: warning:|ld: .*warning:'
if [ ! -x "$XAGENT" ]; then
    _report "x86_64_agent_built" 0 "no $XAGENT:
$(tail -c 800 "$T/err")"
    finish
    exit 0
fi
# e_machine 62 = EM_X86_64; no PT_INTERP (static).
hdr=$(od -An -tu1 -N20 "$XAGENT" | tr -s ' \n' ' ' | sed 's/^ //; s/ $//')
expect_eq "elf_64bit_x86_64" "$(echo "$hdr" | cut -d' ' -f1-6,19-20)" "127 69 76 70 2 1 62 0"
if command -v readelf >/dev/null 2>&1; then
    run readelf -lW "$XAGENT"
    expect_not "no_program_interpreter" "$T/out" 'INTERP'
fi
p1=$(sed -n '1s/^{"prompt":"\(.*\)","prompt_tokens".*/\1/p' "$FIX/stories260K/greedy.jsonl")
want=$(sed -n '1s/.*"generated_tokens":\[\([0-9,]*\)\].*/\1/p' "$FIX/stories260K/greedy.jsonl")
check "static_agent_runs_prompt" "$XAGENT" -m "$MODEL" --prompt "$p1" -n 64 --ignore-eos --temp 0 -t 1
expect_eq "greedy_tokens_match_fixture" \
    "$(sed -n 's/.*"ev":"token".*"id":\([0-9]*\).*/\1/p' "$T/out" | paste -sd, -)" "$want"
finish

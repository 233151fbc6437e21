# The agent cross-built for aarch64 (make agent-aarch64: static, libc only)
# and run under qemu-aarch64-static: its ELF header, greedy tokens of
# stories260K against tests/fixtures/stories260K/greedy.jsonl with the
# kernels AUTO picks there (neon-dotprod on qemu's default CPU model; neon
# on a cortex-a57 without the dot product extension; scalar when forced by
# MELT_KERNELS: the same tokens), and a full small experiment through
# `melt run --agent scripts/qemu-aarch64-agent` (local transport).
# Missing cross tools are installed with scripts/deps.sh cross; when that
# fails every check below fails with the reason (never skipped).
. "$ROOT/tests/integration/lib.sh"
MODEL="$FIX/stories260K/stories260K.gguf"
XAGENT="$ROOT/$BUILD/aarch64/melt-agent"
QEMU=qemu-aarch64-static

# ---- tools -----------------------------------------------------------------
need_cross_tools aarch64_agent_checks || { finish; exit 0; }

# ---- build -----------------------------------------------------------------
# Same BUILD as the suite (its gen/ header), objects in $BUILD/aarch64/obj.
# MAKEFLAGS of an outer `make test` (jobserver, its variables) are not passed on.
check "make_agent_aarch64" env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL \
    make -C "$ROOT" --no-print-directory BUILD="$BUILD" WERROR=1 agent-aarch64
if [ ! -x "$XAGENT" ]; then
    _report "aarch64_agent_built" 0 "no $XAGENT after make agent-aarch64:
$(tail -c 800 "$T/err")"
    finish
    exit 0
fi
expect_not "cross_build_warning_free" "$T/err" '\.[ch]:[0-9]+(:[0-9]+)?: warning:|ld: .*warning:'

# ELF header: 64-bit (EI_CLASS 2), little-endian, e_machine 183 (EM_AARCH64),
# and no PT_INTERP program header (static). od reads it without `file`.
hdr=$(od -An -tu1 -N20 "$XAGENT" | tr -s ' \n' ' ' | sed 's/^ //; s/ $//')
expect_eq "elf_magic_64bit_le" "$(echo "$hdr" | cut -d' ' -f1-6)" "127 69 76 70 2 1"
expect_eq "elf_machine_aarch64" "$(echo "$hdr" | cut -d' ' -f19-20)" "183 0"
if command -v file >/dev/null 2>&1; then
    run file -L "$XAGENT"
    expect "file_says_aarch64_static" "$T/out" 'ARM aarch64.*statically linked'
fi
if command -v aarch64-linux-gnu-readelf >/dev/null 2>&1; then
    run aarch64-linux-gnu-readelf -lW "$XAGENT"
    expect_not "no_program_interpreter" "$T/out" 'INTERP'
    run aarch64-linux-gnu-readelf -dW "$XAGENT"
    expect_not "no_shared_libraries_needed" "$T/out" 'NEEDED'
fi

# ---- the agent under qemu: greedy tokens of the fixture ----------------------
# Two prompts of greedy.jsonl as a prompts plan (64 tokens each, end of
# generation ignored, temperature 0); token ids per request are compared with
# the fixture's generated_tokens.
plan_quote() { printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g'; }
p1=$(sed -n '1s/^{"prompt":"\(.*\)","prompt_tokens".*/\1/p' "$FIX/stories260K/greedy.jsonl")
p2=$(sed -n '2s/^{"prompt":"\(.*\)","prompt_tokens".*/\1/p' "$FIX/stories260K/greedy.jsonl")
gen() { sed -n "${1}s/.*\"generated_tokens\":\[\([0-9,]*\)\].*/\1/p" "$FIX/stories260K/greedy.jsonl"; }
{
    echo "melt-plan 1"; echo "kind prompts"; echo "prompt_tokens 0"; echo "gen_tokens 0"
    echo "max_gen_tokens 64"; echo "max_context_tokens 0"; echo "ignore_eos 1"
    echo "conversations 2"
    echo "conversation 1"; echo "turn \"$(plan_quote "$p1")\""
    echo "conversation 1"; echo "turn \"$(plan_quote "$p2")\""
    echo "end"
} >"$T/greedy.plan"
check "qemu_agent_runs_plan" "$QEMU" "$XAGENT" -m "$MODEL" --plan "$T/greedy.plan" \
    --temp 0 -t 2
cp "$T/out" "$T/greedy.jsonl"
expect "hello_says_aarch64" "$T/greedy.jsonl" '"ev":"hello".*"arch":"aarch64"'
expect "bye_ok" "$T/greedy.jsonl" '"ev":"bye".*"status":"ok"'
toks() { sed -n "s/.*\"ev\":\"token\".*\"req\":$1,.*\"id\":\([0-9]*\).*/\1/p" "${2:-$T/greedy.jsonl}" | paste -sd, -; }
expect_eq "greedy_tokens_prompt1_match_fixture" "$(toks 0)" "$(gen 1)"
expect_eq "greedy_tokens_prompt2_match_fixture" "$(toks 1)" "$(gen 2)"
# AUTO above ran neon-dotprod (select.c: the CPU reports NEON and DOTPROD);
# the plain neon family (AUTO on a cortex-a57) and the scalar one give the
# same tokens.
expect "hello_features_neon_dotprod" "$T/greedy.jsonl" '"ev":"hello".*"features":"NEON DOTPROD'
check "qemu_a57_agent_runs_plan" "$QEMU" -cpu cortex-a57 "$XAGENT" -m "$MODEL" \
    --plan "$T/greedy.plan" --temp 0 -t 2
cp "$T/out" "$T/greedy-a57.jsonl"
expect_not "a57_hello_features_no_dotprod" "$T/greedy-a57.jsonl" '"ev":"hello".*"features":"[^"]*DOTPROD'
expect_eq "a57_neon_greedy_tokens_prompt1_match_fixture" "$(toks 0 "$T/greedy-a57.jsonl")" "$(gen 1)"
expect_eq "a57_neon_greedy_tokens_prompt2_match_fixture" "$(toks 1 "$T/greedy-a57.jsonl")" "$(gen 2)"
MELT_KERNELS=scalar check "qemu_scalar_agent_runs_plan" "$QEMU" "$XAGENT" -m "$MODEL" \
    --plan "$T/greedy.plan" --temp 0 -t 2
cp "$T/out" "$T/greedy-scalar.jsonl"
expect_eq "scalar_greedy_tokens_prompt1_match_fixture" "$(toks 0 "$T/greedy-scalar.jsonl")" "$(gen 1)"
expect_eq "scalar_greedy_tokens_prompt2_match_fixture" "$(toks 1 "$T/greedy-scalar.jsonl")" "$(gen 2)"
# forcing neon-dotprod on a CPU without it: a clear error, no tokens
MELT_KERNELS=neon-dotprod check_exit "a57_forced_neon_dotprod_fails" 1 "$QEMU" -cpu cortex-a57 \
    "$XAGENT" -m "$MODEL" --plan "$T/greedy.plan" --temp 0 -t 2
expect "a57_forced_neon_dotprod_error_names_it" "$T/out" \
    '"ev":"error".*kernels .neon-dotprod. are not supported by this CPU \(features: NEON\)'

# ---- a full experiment through the emulator wrapper -------------------------
experiment_yaml "$T/arm.yaml" aarch64-qemu 1 "[2]" "$MODEL" 16 8
DB="$T/arm.db"
MELT_AARCH64_AGENT="$XAGENT" check "melt_run_qemu_agent_exits_0" \
    "$MELT" run "$T/arm.yaml" --db "$DB" --idle-ms 0 -q --agent "$ROOT/scripts/qemu-aarch64-agent"
check "results_show_qemu_run" "$MELT" results show last --db "$DB"
expect "results_have_decode_tps" "$T/out" 'decode_tps'
check "results_export_qemu_run" "$MELT" results export last --db "$DB" --format jsonl
expect "export_decode_tps_n1" "$T/out" '"metric":"decode_tps","unit":"tok/s","n":1,'
if command -v sqlite3 >/dev/null 2>&1; then
    expect_eq "trial_ok_and_8_tokens_stored" \
        "$(sqlite3 "$DB" "select count(*) from trials where status='ok'") $(sqlite3 "$DB" "select count(*) from events where kind='token'")" "1 8"
    expect_eq "device_arch_aarch64_stored" \
        "$(sqlite3 "$DB" "select count(*) from events where kind='hello' and msg like '%\"arch\":\"aarch64\"%'")" 1
fi
finish

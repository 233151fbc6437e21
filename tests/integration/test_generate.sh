# melt generate: greedy tokens against llama.cpp's (greedy.jsonl), seeds,
# JSON stream, stop conditions, timing summary, profile, errors.
. "$ROOT/tests/integration/lib.sh"
S="$FIX/stories260K/stories260K.gguf"
G="$FIX/stories260K/greedy.jsonl"

# ids of the per-token JSON lines of $T/out, comma-separated
json_ids() { sed -n 's/^{"id":\([0-9]*\),.*/\1/p' "$T/out" | paste -sd, -; }

# greedy: every prompt of greedy.jsonl gives llama.cpp's 64 ids
i=0
while IFS= read -r line; do
    i=$((i + 1))
    prompt=$(printf '%s\n' "$line" | sed 's/^{"prompt":"\(.*\)","prompt_tokens".*/\1/; s/\\"/"/g')
    want=$(printf '%s\n' "$line" | sed 's/.*"generated_tokens":\[\([0-9,]*\)\].*/\1/')
    n_prompt=$(printf '%s\n' "$line" | sed 's/.*"prompt_tokens":\[\([0-9,]*\)\].*/\1/' | tr ',' '\n' | wc -l)
    run "$MELT" generate -m "$S" -p "$prompt" --json --temp 0 -n 64 --ignore-eos -t 2
    expect_eq "generate_greedy_matches_llamacpp_prompt$i" "$(json_ids)" "$want"
    expect "generate_greedy_prompt_tokens_prompt$i" "$T/out" "\"n_prompt\":$n_prompt,\"n_gen\":64,"
done <"$G"

# the F32 cache gives the same greedy tokens
line=$(head -1 "$G")
want=$(printf '%s\n' "$line" | sed 's/.*"generated_tokens":\[\([0-9,]*\)\].*/\1/')
run "$MELT" generate -m "$S" -p "Once upon a time" --json --temp 0 -n 64 --ignore-eos --kv-type f32 -t 1
expect_eq "generate_greedy_kv_f32" "$(json_ids)" "$want"

# JSON stream: one object per token, then the summary; timestamps never go back
expect_lines "generate_json_one_line_per_token" "$T/out" 65
expect "generate_json_summary" "$T/out" '^\{"summary":true,"n_prompt":5,"n_gen":64,"stop":"limit",.*"decode_tps":[0-9.]+'
ts=$(sed -n 's/.*"t_ns":\([0-9]*\)}$/\1/p' "$T/out" | awk 'NR > 1 && $1 < p { bad = 1 } { p = $1 } END { print bad ? "backwards" : "monotonic" }')
expect_eq "generate_json_t_ns_monotonic" "$ts" "monotonic"
expect "generate_json_text_field" "$T/out" '^\{"id":383,"text":" there","t_ns":[0-9]+\}$'

# plain text: the same tokens as text, timing on stderr
check "generate_plain" "$MELT" generate -m "$S" -p "Once upon a time" --temp 0 -n 16 --ignore-eos
expect "generate_plain_text" "$T/out" '^, there was a little girl named Lily\. She loved to play'
expect "generate_stderr_load" "$T/err" '^load: +[0-9.]+ ms$'
expect "generate_stderr_prompt_speed" "$T/err" '^prompt: +5 tokens in [0-9.]+ ms \([0-9.]+ tokens/s\)$'
expect "generate_stderr_gen_speed" "$T/err" '^generated: 16 tokens in [0-9.]+ ms \([0-9.]+ tokens/s\)'

# seeds: the same seed gives the same text, another seed (very likely) other text
run "$MELT" generate -m "$S" -p "Once upon a time" --temp 1 --seed 7 -n 48 --ignore-eos
cp "$T/out" "$T/seed7a"
run "$MELT" generate -m "$S" -p "Once upon a time" --temp 1 --seed 7 -n 48 --ignore-eos -t 1
cp "$T/out" "$T/seed7b"
run "$MELT" generate -m "$S" -p "Once upon a time" --temp 1 --seed 8 -n 48 --ignore-eos
expect_eq "generate_same_seed_same_text" "$(cat "$T/seed7a")" "$(cat "$T/seed7b")"
if cmp -s "$T/seed7a" "$T/out"; then _report "generate_other_seed_other_text" 0 "seeds 7 and 8 gave the same text"
else _report "generate_other_seed_other_text" 1 ""; fi
check "generate_sampling_flags" "$MELT" generate -m "$S" -p "Once" -n 8 --temp 0.7 --top-k 20 \
    --top-p 0.9 --min-p 0.1 --repeat-penalty 1.1 --repeat-last-n 16 --seed 3 --json
expect "generate_sampling_flags_n" "$T/out" '"n_gen":8,'

# stops at the end of the context with a clear message (5 prompt + 7 decoded = 12)
check "generate_context_full_exit0" "$MELT" generate -m "$S" -p "Once upon a time" -c 12 --temp 0 --json
expect "generate_context_full_count" "$T/out" '"n_gen":8,"stop":"context"'
expect "generate_context_full_msg" "$T/err" 'context of 12 tokens is full'

# stops at end of generation: stories260K never emits EOS, so use a random
# model with its vocab (EOS = 2) at a high temperature. Whatever the run
# with --ignore-eos gives, the run without must be its prefix up to the
# first EOS, and stop there.
"$MELT" model synth --preset fixture-tiny --type f32 --seed 1 --vocab "$S" -o "$T/rand.gguf" -q
RS="--temp 2 --top-k 0 --top-p 1 --min-p 0 -n 200 -c 256 --json"
eos_at=""
for seed in 1 2 3 4 5 6; do
    run "$MELT" generate -m "$T/rand.gguf" -p "Once" --seed $seed $RS --ignore-eos
    all=$(json_ids)
    eos_at=$(printf '%s\n' "$all" | tr ',' '\n' | grep -n '^2$' | head -1 | cut -d: -f1)
    [ -n "$eos_at" ] && break
done
if [ -n "$eos_at" ]; then
    run "$MELT" generate -m "$T/rand.gguf" -p "Once" --seed $seed $RS
    want=$(printf '%s\n' "$all" | tr ',' '\n' | head -n $((eos_at - 1)) | paste -sd, -)
    expect_eq "generate_stops_at_eos_prefix" "$(json_ids)" "$want"
    expect "generate_stops_at_eos_reason" "$T/out" "\"n_gen\":$((eos_at - 1)),\"stop\":\"eog\""
else
    _report "generate_stops_at_eos" 0 "no EOS in 6 seeds x 200 tokens of a random model"
fi

# --profile: op kinds and layers on stderr
check "generate_profile" "$MELT" generate -m "$S" -p "Once upon a time" -n 8 --temp 0 --profile
expect "generate_profile_matmul" "$T/err" '^matmul +[0-9]+ +[0-9.]+ +[0-9.]+% +[0-9.]+$'
expect "generate_profile_attention" "$T/err" '^attention +[0-9]+ '
expect "generate_profile_sampling" "$T/err" '^sampling +8 '
expect "generate_profile_layer4" "$T/err" '^4 +[0-9.]+ +[0-9.]+%$'
expect "generate_profile_other" "$T/err" '^other +[0-9.]+ '
check "generate_profile_json" "$MELT" generate -m "$S" -p "Once upon a time" -n 4 --temp 0 --profile --json
expect "generate_profile_json_summary" "$T/out" '^\{"summary":true,.*"profile":\{"total_ms":[0-9.]+,"ops":\{.*"sampling":\{"calls":4,'

# errors: usage (2), runtime (1), one line
check_exit "generate_missing_prompt" 2 "$MELT" generate -m "$S"
check_exit "generate_missing_model" 2 "$MELT" generate -p hi
check_exit "generate_bad_temp" 2 "$MELT" generate -m "$S" -p hi --temp abc
check_exit "generate_bad_n" 2 "$MELT" generate -m "$S" -p hi -n x
check_exit "generate_bad_kv_type" 2 "$MELT" generate -m "$S" -p hi --kv-type q8
check_exit "generate_missing_file" 1 "$MELT" generate -m "$T/nope.gguf" -p hi
expect "generate_missing_file_msg" "$T/err" "nope.gguf"
expect_lines "generate_missing_file_one_line" "$T/err" 1
check_exit "generate_prompt_overflow" 1 "$MELT" generate -m "$S" -p "Once upon a time there was" -c 4
expect "generate_prompt_overflow_msg" "$T/err" '^melt: context overflow: the prompt has 7 tokens, the context holds 4'
LC_ALL=C sed 's/tokenizer\.ggml\./tokenizer.gxml./g' "$S" >"$T/notok.gguf"
check_exit "generate_no_tokenizer" 1 "$MELT" generate -m "$T/notok.gguf" -p hi
expect "generate_no_tokenizer_msg" "$T/err" '^melt: .*notok\.gguf: no tokenizer'
check_exit "generate_unsupported_arch" 1 "$MELT" generate -m "$FIX/vocab/ggml-vocab-phi-3.gguf" -p hi
expect "generate_unsupported_arch_msg" "$T/err" "architecture 'phi3' is not supported"
check "generate_help" "$MELT" generate --help
expect "generate_help_usage" "$T/out" '^usage: melt generate'

finish

# melt eval ppl: llama-perplexity's figure on stories260K/story.txt
# (PPL = 3.6740 +/- 0.23280 over 12 chunks at -c 128), JSON, profile, errors.
. "$ROOT/tests/integration/lib.sh"
S="$FIX/stories260K/stories260K.gguf"
TXT="$FIX/stories260K/story.txt"

# near NAME GOT WANT TOL : |GOT - WANT| <= TOL
near() {
    if awk -v g="$2" -v w="$3" -v t="$4" 'BEGIN { d = g - w; if (d < 0) d = -d; exit !(g != "" && d <= t) }'
    then _report "$1" 1 ""; else _report "$1" 0 "expected $3 +/- $4, got '$2'"; fi
}

check "eval_ppl_stories" "$MELT" eval ppl -m "$S" -f "$TXT" -c 128 -b 128 -t 2
expect "eval_ppl_result_line" "$T/out" '^PPL = [0-9]+\.[0-9]{4} \+/- [0-9]+\.[0-9]{5}$'
ppl=$(sed -n 's/^PPL = \([0-9.]*\) +\/- .*/\1/p' "$T/out")
se=$(sed -n 's/^PPL = [0-9.]* +\/- \([0-9.]*\)$/\1/p' "$T/out")
near "eval_ppl_matches_llamacpp" "$ppl" 3.6740 0.0005
near "eval_ppl_se_within_1pct" "$se" 0.23280 0.002328
chunks=$(grep -cE '^\[[0-9]+/12\] ppl [0-9.]+' "$T/err")
expect_eq "eval_ppl_12_chunks_of_progress" "$chunks" "12"
expect "eval_ppl_summary" "$T/err" '1651 tokens, 12 chunks of 128, 756 scored'

# JSON result, an F32 cache and another batch size give the same figure
check "eval_ppl_json" "$MELT" eval ppl -m "$S" -f "$TXT" -c 128 -b 32 --kv-type f32 --json
expect "eval_ppl_json_fields" "$T/out" '^\{.*"n_ctx":128,"n_tokens":1651,"n_chunks":12,"n_scored":756,.*"ppl":3\.674[0-9]*,"ppl_se":0\.232'
expect_lines "eval_ppl_json_one_line" "$T/out" 1

# --chunks limits the work; --profile prints the tables
check "eval_ppl_chunks_profile" "$MELT" eval ppl -m "$S" -f "$TXT" -c 128 --chunks 2 --profile
expect "eval_ppl_chunks_2" "$T/err" '^\[2/2\] ppl 3\.22[0-9]{2} '
expect "eval_ppl_profile_scoring" "$T/err" '^scoring +2 '
expect "eval_ppl_profile_matmul" "$T/err" '^matmul +[0-9]+ +[0-9.]+ +[0-9.]+% '
expect "eval_ppl_profile_layers" "$T/err" '^layer +total_ms +share$'
check "eval_ppl_profile_json" "$MELT" eval ppl -m "$S" -f "$TXT" -c 128 --chunks 1 --profile --json
expect "eval_ppl_profile_json_ops" "$T/out" '"profile":\{"total_ms":[0-9.]+,"ops":\{.*"matmul":\{"calls":[0-9]+,.*"layers_ms":\[[0-9.]+(,[0-9.]+){4}\],"other_ms":[0-9.]+\}\}$'

# the text from stdin
"$MELT" eval ppl -m "$S" -f - -c 128 --chunks 1 <"$TXT" >"$T/out" 2>"$T/err"
expect "eval_ppl_stdin" "$T/out" '^PPL = 4\.17'

# errors
check_exit "eval_missing_sub" 2 "$MELT" eval
check_exit "eval_unknown_sub" 2 "$MELT" eval nope
check_exit "eval_ppl_missing_file_flag" 2 "$MELT" eval ppl -m "$S"
check_exit "eval_ppl_bad_ctx" 2 "$MELT" eval ppl -m "$S" -f "$TXT" -c 2
check_exit "eval_ppl_missing_text" 1 "$MELT" eval ppl -m "$S" -f "$T/nope.txt"
expect "eval_ppl_missing_text_msg" "$T/err" '^melt: .*nope\.txt: cannot open'
check_exit "eval_ppl_text_too_short" 1 "$MELT" eval ppl -m "$S" -f "$TXT" -c 1024
expect "eval_ppl_text_too_short_msg" "$T/err" 'the text has 1651 tokens; perplexity with a context of 1024 needs at least 2048'
expect_lines "eval_ppl_text_too_short_one_line" "$T/err" 2
LC_ALL=C sed 's/tokenizer\.ggml\./tokenizer.gxml./g' "$S" >"$T/notok.gguf"
check_exit "eval_ppl_no_tokenizer" 1 "$MELT" eval ppl -m "$T/notok.gguf" -f "$TXT"
expect "eval_ppl_no_tokenizer_msg" "$T/err" 'notok\.gguf: no tokenizer'
check "eval_ppl_help" "$MELT" eval ppl --help
expect "eval_ppl_help_usage" "$T/out" '^usage: melt eval ppl'
check "eval_help" "$MELT" help eval
expect "eval_help_lists_ppl" "$T/out" '^  ppl +perplexity'

finish

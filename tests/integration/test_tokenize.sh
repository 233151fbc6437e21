# melt tokenize: the real binary against llama.cpp's token ids.
. "$ROOT/tests/integration/lib.sh"
V="$FIX/vocab"
S="$FIX/stories260K/stories260K.gguf"

# vec NAME VOCAB CASE : tokenize $T/in (no BOS) and compare with line CASE+1
# of VOCAB.gguf.out (llama.cpp's ids, each preceded by a space).
vec() {
    run "$MELT" tokenize -m "$V/$2.gguf" -f "$T/in" --no-bos --ids
    got=$(cat "$T/out")
    [ -n "$got" ] && got=" $got"
    want=$(sed -n "$(($3 + 1))p" "$V/$2.gguf.out")
    if [ $rc -ne 0 ]; then
        _report "$1" 0 "exit $rc: $(head -c 400 "$T/err")"
    else
        expect_eq "$1" "$got" "$want"
    fi
}

for voc in ggml-vocab-llama-spm ggml-vocab-phi-3 ggml-vocab-llama-bpe; do
    printf 'ied 4 \302\275 months' >"$T/in";            vec "tokenize_${voc}_case0" "$voc" 0
    printf '' >"$T/in";                                 vec "tokenize_${voc}_empty" "$voc" 2
    printf '\n\n\n' >"$T/in";                           vec "tokenize_${voc}_newlines" "$voc" 9
    printf ' Hello, world!' >"$T/in";                   vec "tokenize_${voc}_hello" "$voc" 17
    printf '    Hello\n    Hello' >"$T/in";             vec "tokenize_${voc}_indent" "$voc" 28
    printf "Hello, y'all! How are you \360\237\230\201 ?\346\210\221\346\203\263\345\234\250apple\345\267\245\344\275\2341314151\345\244\251\357\275\236" >"$T/in"
    vec "tokenize_${voc}_mixed_scripts" "$voc" 32
    printf '333333333' >"$T/in";                        vec "tokenize_${voc}_digits" "$voc" 42
done

# stories260K: the prompt ids llama.cpp used (BOS first), from greedy.jsonl
check "tokenize_stories_ids" "$MELT" tokenize -m "$S" -p "Once upon a time" --ids
expect_eq "tokenize_stories_ids_match" "$(cat "$T/out")" "1 403 407 261 378"
check "tokenize_stories_pieces" "$MELT" tokenize -m "$S" -p "Once upon a time"
expect_lines "tokenize_pieces_one_line_per_token" "$T/out" 5
expect "tokenize_pieces_bos_quoted" "$T/out" "^ +1 -> '<s>'$"
expect "tokenize_pieces_space_kept" "$T/out" "^ +403 -> ' Once'$"
check "tokenize_no_bos" "$MELT" tokenize -m "$S" -p "Once upon a time" --no-bos --ids
expect_eq "tokenize_no_bos_ids" "$(cat "$T/out")" "403 407 261 378"
printf 'a\nb' >"$T/nl.txt"
check "tokenize_escapes_newline" "$MELT" tokenize -m "$S" -f "$T/nl.txt" --no-bos
expect "tokenize_newline_escaped" "$T/out" "-> '\\\\n'$"
printf 'Once upon a time' | "$MELT" tokenize -m "$S" -f - --ids >"$T/out" 2>"$T/err"
expect_eq "tokenize_reads_stdin" "$(cat "$T/out")" "1 403 407 261 378"

# special tokens: parsed by default, plain text with --no-parse-special
check "tokenize_special" "$MELT" tokenize -m "$V/ggml-vocab-llama-bpe.gguf" --no-bos --ids \
    -p "<|start_header_id|>user<|end_header_id|>"
expect_eq "tokenize_special_ids" "$(cat "$T/out")" "128006 882 128007"
check "tokenize_no_parse_special" "$MELT" tokenize -m "$V/ggml-vocab-llama-bpe.gguf" --no-bos \
    --ids --no-parse-special -p "<|start_header_id|>"
expect_not "tokenize_no_parse_special_ids" "$T/out" "128006"

# errors: usage (2) and runtime (1)
check_exit "tokenize_missing_model" 2 "$MELT" tokenize -p hi
check_exit "tokenize_missing_text" 2 "$MELT" tokenize -m "$S"
check_exit "tokenize_both_texts" 2 "$MELT" tokenize -m "$S" -p hi -f "$T/nl.txt"
check_exit "tokenize_bad_flag" 2 "$MELT" tokenize -m "$S" -p hi --bogus
check_exit "tokenize_missing_file" 1 "$MELT" tokenize -m "$T/nope.gguf" -p hi
expect "tokenize_missing_file_msg" "$T/err" "nope.gguf"
# a GGUF v3 with one kv (general.architecture = llama) and no tokenizer
printf 'GGUF\003\000\000\000\000\000\000\000\000\000\000\000\001\000\000\000\000\000\000\000\024\000\000\000\000\000\000\000general.architecture\010\000\000\000\005\000\000\000\000\000\000\000llama' >"$T/notok.gguf"
check_exit "tokenize_no_tokenizer_metadata" 1 "$MELT" tokenize -m "$T/notok.gguf" -p hi
expect "tokenize_no_tokenizer_msg" "$T/err" "no tokenizer"
check "tokenize_help" "$MELT" tokenize --help
expect "tokenize_help_usage" "$T/out" "^usage: melt tokenize"

finish

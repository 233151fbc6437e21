# melt model info on real and broken files.
. "$ROOT/tests/integration/lib.sh"
S="$FIX/stories260K/stories260K.gguf"

check "info_stories_json" "$MELT" model info --json "$S"
cp "$T/out" "$T/stories.json"
expect "info_json_architecture" "$T/stories.json" '"architecture": "llama"'
expect "info_json_n_vocab" "$T/stories.json" '"n_vocab": 512,'
# llama.cpp: model_n_params 292800, model_size 1171200 for this file.
expect "info_json_n_params_as_llamacpp" "$T/stories.json" '"n_params": 292800,'
expect "info_json_tensor_bytes_as_llamacpp" "$T/stories.json" '"tensor_bytes": 1171200,'
expect "info_json_file_size" "$T/stories.json" "\"file_size_bytes\": $(wc -c <"$S"),"
expect "info_json_layers" "$T/stories.json" '"n_layer": 5,'
expect "info_json_embd" "$T/stories.json" '"n_embd": 64,'
expect "info_json_heads" "$T/stories.json" '"n_head": 8,'
expect "info_json_bos" "$T/stories.json" '"bos_id": 1,'
expect "info_json_eos" "$T/stories.json" '"eos_id": 2,'
expect "info_json_vocab_type" "$T/stories.json" '"vocab_type": "llama"'
expect "info_json_no_template" "$T/stories.json" '"has_chat_template": false'
expect "info_json_f32_histogram" "$T/stories.json" '"f32": \{'
expect "info_json_bpw_32" "$T/stories.json" '"bits_per_weight": 32\.0'

check "info_stories_text" "$MELT" model info "$S"
expect "info_text_architecture" "$T/out" '^architecture +llama$'
expect "info_text_vocab" "$T/out" '^vocab size +512$'
expect "info_text_params" "$T/out" '^parameters +292\.80 K \(292800\)$'

# Type histogram of a llama.cpp mix: 3 q6_K tensors (see tests/fixtures/README.md).
check "info_q4_k_m" "$MELT" model info --json "$FIX/quant/tiny-q4_k_m.gguf"
tr -d ' \n' <"$T/out" >"$T/flat.json"
expect "info_q4_k_m_histogram_q6k" "$T/flat.json" '"q6_K":\{"count":3,'
expect "info_q4_k_m_file_type" "$T/flat.json" '"file_type":15,'

check "info_bpe_vocab" "$MELT" model info --json "$FIX/vocab/ggml-vocab-llama-bpe.gguf"
expect "info_bpe_vocab_type" "$T/out" '"vocab_type": "gpt2"'
expect "info_bpe_vocab_pre" "$T/out" '"vocab_pre": "llama-bpe"'
expect "info_bpe_no_template" "$T/out" '"has_chat_template": false'
check "info_phi3_vocab" "$MELT" model info --json "$FIX/vocab/ggml-vocab-phi-3.gguf"
expect "info_phi3_has_template" "$T/out" '"has_chat_template": true'

# Broken files: exit 1, exactly one line on stderr naming the problem.
head -c 1000 "$S" >"$T/trunc.gguf"
check_exit "info_truncated_exit_1" 1 "$MELT" model info "$T/trunc.gguf"
expect_lines "info_truncated_one_line" "$T/err" 1
expect "info_truncated_names_offset" "$T/err" '^melt: .*trunc\.gguf.*offset'
printf 'NOTAGGUFFILE-----------------------' >"$T/magic.gguf"
check_exit "info_bad_magic_exit_1" 1 "$MELT" model info "$T/magic.gguf"
expect_lines "info_bad_magic_one_line" "$T/err" 1
expect "info_bad_magic_message" "$T/err" 'magic'
: >"$T/empty.gguf"
check_exit "info_empty_exit_1" 1 "$MELT" model info "$T/empty.gguf"
expect_lines "info_empty_one_line" "$T/err" 1
check_exit "info_missing_exit_1" 1 "$MELT" model info "$T/nope.gguf"
expect_lines "info_missing_one_line" "$T/err" 1
expect "info_missing_names_file" "$T/err" 'nope\.gguf'
check_exit "info_directory_exit_1" 1 "$MELT" model info "$T"
expect_lines "info_directory_one_line" "$T/err" 1

# Every byte of the header region flipped: never a crash (exit 0 or 1 only).
crashes=0
i=0
while [ $i -lt 64 ]; do
    cp "$FIX/quant/tiny-q8_0.gguf" "$T/flip.gguf"
    printf '\377' | dd of="$T/flip.gguf" bs=1 seek=$((i * 7)) conv=notrunc 2>/dev/null
    "$MELT" model info "$T/flip.gguf" >/dev/null 2>&1
    rc=$?
    [ $rc -le 1 ] || { crashes=$((crashes + 1)); echo "byte $((i * 7)): exit $rc"; }
    i=$((i + 1))
done
expect_eq "info_corrupt_bytes_never_crash" "$crashes" 0

finish

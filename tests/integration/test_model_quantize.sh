# melt model quantize through the CLI: same tensor bytes as llama-quantize.
. "$ROOT/tests/integration/lib.sh"
Q="$FIX/quant"

# Tensor data of a GGUF = its last tensor_bytes bytes (every tensor here is a
# multiple of the 32-byte alignment, so there is no padding in between).
tensor_bytes() { "$MELT" model info --json "$1" | sed -n 's/.*"tensor_bytes": \([0-9]*\),.*/\1/p'; }
data_of() { tail -c "$(tensor_bytes "$1")" "$1"; }

for t in q8_0 q4_0 q4_k q5_k q6_k q4_k_m q5_k_m; do
    check "quantize_${t}_runs" "$MELT" model quantize -t 2 "$Q/tiny-f32.gguf" "$T/$t.gguf" "$t"
    data_of "$T/$t.gguf" >"$T/$t.ours"
    data_of "$Q/tiny-$t.gguf" >"$T/$t.ref"
    if cmp -s "$T/$t.ours" "$T/$t.ref"; then _report "quantize_${t}_bytes_equal_llama_quantize" 1 ""; else
        _report "quantize_${t}_bytes_equal_llama_quantize" 0 "$(cmp "$T/$t.ours" "$T/$t.ref" 2>&1)"; fi
    "$MELT" model info --json "$T/$t.gguf" | tr -d ' \n' | sed 's/.*"tensor_types"://' >"$T/$t.hist"
    "$MELT" model info --json "$Q/tiny-$t.gguf" | tr -d ' \n' | sed 's/.*"tensor_types"://' >"$T/$t.hist.ref"
    expect_eq "quantize_${t}_type_histogram" "$(cat "$T/$t.hist")" "$(cat "$T/$t.hist.ref")"
done

# Thread count does not change the output.
check "quantize_one_thread" "$MELT" model quantize -t 1 "$Q/tiny-f32.gguf" "$T/q4k1.gguf" q4_k_m
if cmp -s "$T/q4k1.gguf" "$T/q4_k_m.gguf"; then _report "quantize_thread_independent" 1 ""; else
    _report "quantize_thread_independent" 0 "1 vs 2 threads differ"; fi

for t in f16 bf16 f32; do
    check "quantize_${t}_runs" "$MELT" model quantize "$Q/tiny-f32.gguf" "$T/$t.gguf" "$t"
    check "quantize_${t}_info" "$MELT" model info --json "$T/$t.gguf"
    expect "quantize_${t}_weights_in_$t" "$T/out" "\"$t\": \\{"
done
# llama-quantize orders tensors by layer; once in that order, f32 -> f32 is
# the identity, file bytes included.
check "quantize_f32_again" "$MELT" model quantize "$T/f32.gguf" "$T/f32b.gguf" f32
if cmp -s "$T/f32.gguf" "$T/f32b.gguf"; then _report "quantize_f32_idempotent" 1 ""; else
    _report "quantize_f32_idempotent" 0 "f32 -> f32 changed the file"; fi

# Errors: one line, exit 1, nothing left behind.
check_exit "quantize_missing_input_exit_1" 1 "$MELT" model quantize "$T/none.gguf" "$T/o.gguf" q8_0
expect_lines "quantize_missing_input_one_line" "$T/err" 1
check_exit "quantize_bad_output_dir_exit_1" 1 "$MELT" model quantize "$Q/tiny-f32.gguf" "$T/no/such/dir/o.gguf" q8_0
expect_lines "quantize_bad_output_dir_one_line" "$T/err" 1
check_exit "quantize_quantized_input_exit_1" 1 "$MELT" model quantize "$Q/tiny-q4_0.gguf" "$T/re.gguf" q8_0
expect_lines "quantize_quantized_input_one_line" "$T/err" 1
if [ -e "$T/re.gguf" ] || [ -e "$T/re.gguf.tmp" ]; then _report "quantize_failure_leaves_no_file" 0 "found output"; else
    _report "quantize_failure_leaves_no_file" 1 ""; fi
finish

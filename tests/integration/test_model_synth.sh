# melt model synth through the CLI: deterministic, loadable, real vocab.
. "$ROOT/tests/integration/lib.sh"

check "synth_list" "$MELT" model synth --list
for p in tiny small tinyllama-1.1b llama2-7b llama3-8b qwen2-0.5b; do
    expect "synth_list_has_$p" "$T/out" "^$p "
done

check "synth_tiny_a" "$MELT" model synth --preset tiny --type q8_0 --seed 7 -o "$T/a.gguf"
check "synth_tiny_b" "$MELT" model synth --preset tiny --type q8_0 --seed 7 -t 1 -o "$T/b.gguf"
check "synth_tiny_c" "$MELT" model synth --preset tiny --type q8_0 --seed 8 -o "$T/c.gguf"
if cmp -s "$T/a.gguf" "$T/b.gguf"; then _report "synth_same_seed_same_bytes" 1 ""; else
    _report "synth_same_seed_same_bytes" 0 "seed 7 twice gave different files"; fi
if cmp -s "$T/a.gguf" "$T/c.gguf"; then _report "synth_other_seed_other_bytes" 0 "seeds 7 and 8 gave the same file"; else
    _report "synth_other_seed_other_bytes" 1 ""; fi

check "synth_info" "$MELT" model info --json "$T/a.gguf"
expect "synth_info_llama" "$T/out" '"architecture": "llama"'
expect "synth_info_q8_0" "$T/out" '"q8_0": \{'
params=$(sed -n 's/.*"n_params": \([0-9]*\),.*/\1/p' "$T/out")
if [ "${params:-0}" -ge 5000000 ] && [ "${params:-0}" -le 20000000 ]; then
    _report "synth_tiny_is_about_10M" 1 ""; else _report "synth_tiny_is_about_10M" 0 "n_params=$params"; fi

check "synth_with_vocab" "$MELT" model synth --preset tiny --type f16 \
    --vocab "$FIX/stories260K/stories260K.gguf" -o "$T/v.gguf"
check "synth_with_vocab_info" "$MELT" model info --json "$T/v.gguf"
expect "synth_with_vocab_n_vocab" "$T/out" '"n_vocab": 512,'

check_exit "synth_unknown_preset_exit_2" 2 "$MELT" model synth --preset nope --type q8_0 -o "$T/x.gguf"
expect "synth_unknown_preset_message" "$T/err" "unknown preset 'nope'"
check_exit "synth_missing_output_exit_2" 2 "$MELT" model synth --preset tiny --type q8_0
check_exit "synth_bad_vocab_exit_1" 1 "$MELT" model synth --preset tiny --type q8_0 \
    --vocab "$T/none.gguf" -o "$T/x.gguf"
expect_lines "synth_bad_vocab_one_line" "$T/err" 1
finish

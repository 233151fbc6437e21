# The melt binary's command-line contract: version, help, usage errors.
. "$ROOT/tests/integration/lib.sh"

check "version_runs" "$MELT" --version
expect "version_names_melt" "$T/out" '^melt [0-9]+\.[0-9]+\.[0-9]+'
expect "version_has_commit" "$T/out" '^commit: +[0-9a-f]{7,}|^commit: +unknown'
expect "version_has_compiler" "$T/out" '^compiler: +(gcc|clang) '
expect "version_has_features" "$T/out" '^features: '
# The features line must agree with what the kernel reports.
if grep -qw avx2 /proc/cpuinfo; then
    expect "version_detects_avx2" "$T/out" '^features:.* AVX2( |$)'
else
    expect_not "version_no_false_avx2" "$T/out" ' AVX2( |$)'
fi
if grep -qw avx512f /proc/cpuinfo; then
    expect "version_detects_avx512" "$T/out" 'AVX512F'
else
    expect_not "version_no_false_avx512" "$T/out" 'AVX512F'
fi
check "version_subcommand_runs" "$MELT" version

check "help_runs" "$MELT" help
expect "help_lists_model" "$T/out" '^  model '
check "help_flag_runs" "$MELT" --help
check "help_of_command" "$MELT" help model
expect "help_of_command_is_model_usage" "$T/out" 'usage: melt model'
for sub in info synth quantize; do
    check "model_${sub}_help" "$MELT" model "$sub" --help
    expect "model_${sub}_help_usage" "$T/out" "^usage: melt model $sub"
done

# Usage errors: one "melt: ..." line first, then usage, exit 2.
check_exit "no_args_exit_2" 2 "$MELT"
check_exit "unknown_command_exit_2" 2 "$MELT" frobnicate
expect "unknown_command_message" "$T/err" "^melt: unknown command 'frobnicate'$"
expect "unknown_command_prints_usage" "$T/err" '^usage: melt'
check_exit "unknown_flag_exit_2" 2 "$MELT" model info --frob x.gguf
expect "unknown_flag_message" "$T/err" "^melt: model info: unknown option '--frob'$"
check_exit "unknown_short_flag_exit_2" 2 "$MELT" model quantize -Z a b q8_0
expect "unknown_short_flag_message" "$T/err" "unknown option '-Z'"
check_exit "unknown_top_flag_exit_2" 2 "$MELT" --frob
check_exit "unknown_subcommand_exit_2" 2 "$MELT" model frob
expect "unknown_subcommand_message" "$T/err" "unknown subcommand 'frob'"
check_exit "missing_value_exit_2" 2 "$MELT" model synth --preset
expect "missing_value_message" "$T/err" "needs a value"
check_exit "bad_quant_type_exit_2" 2 "$MELT" model quantize a.gguf b.gguf q3_x
expect "bad_quant_type_lists_types" "$T/err" "unknown TYPE 'q3_x'.*q4_k_m"
check_exit "missing_file_arg_exit_2" 2 "$MELT" model info
first=$(head -1 "$T/err")
expect_eq "usage_error_first_line" "$first" "melt: model info: missing FILE"

finish

# melt run FILE --dry-run: cells listed from the examples; bad experiment
# files give exit 1 and one line naming FILE:LINE:COL and the key.
. "$ROOT/tests/integration/lib.sh"
cd "$ROOT" || exit 1
EXP=tests/data/experiments

check "experiment_quickstart_dry_run" "$MELT" run examples/quickstart.yaml --dry-run
grep -v '^#' "$T/out" >"$T/cells"
expect_lines "experiment_quickstart_has_4_cells" "$T/cells" 4
expect "experiment_quickstart_header" "$T/out" '^# experiment quickstart .*: 4 cells, 3 repetitions \+ 1 warm-up each$'
expect "experiment_quickstart_first_cell" "$T/cells" \
    '^   1  local/builtin-t1-c1024/tiny-q8_0/synthetic-pp64-tg32  transport=local threads=1 context=1024 batch=512 kv=f16 model=synth:tiny/q8_0/seed=1 workload=synthetic pp=64 tg=32$'
expect "experiment_quickstart_conversation_cell" "$T/cells" \
    '^   4  local/builtin-t2-c1024/tiny-q8_0/chat  .* workload=conversations file=examples/conversations.json conversations=5 turns=16 max_gen_tokens=32 max_context_tokens=1024$'
expect "experiment_quickstart_probes" "$T/out" '^# probes: procfs@10Hz thermal@10Hz cpufreq@10Hz$'

check "experiment_full_dry_run" "$MELT" run examples/full.yaml --dry-run
grep -v '^#' "$T/out" >"$T/cells"
expect_lines "experiment_full_has_48_cells" "$T/cells" 48
expect "experiment_full_last_cell" "$T/cells" '^  48  this-host/builtin-t4-c2048/tiny-q4_0/prompts-prompts  '

check "experiment_relative_paths" "$MELT" run "$EXP/good-relative.yaml" --dry-run
expect "experiment_relative_paths_resolved" "$T/out" \
    "file=$EXP/../../../examples/prompts.txt format=text prompts=4 max_gen_tokens=128"

# the same listing twice: ids and order are stable
"$MELT" run examples/full.yaml --dry-run >"$T/a" 2>&1
"$MELT" run examples/full.yaml --dry-run >"$T/b" 2>&1
if cmp -s "$T/a" "$T/b"; then _report "experiment_listing_is_stable" 1 ""; else
    _report "experiment_listing_is_stable" 0 "two dry runs differ"; fi

# bad_file NAME FILE MESSAGE: exit 1, exactly one line "melt: MESSAGE" on stderr
bad_file() {
    check_exit "experiment_$1_exit_1" 1 "$MELT" run "$EXP/$2" --dry-run
    expect_lines "experiment_$1_one_line" "$T/err" 1
    expect_eq "experiment_$1_message" "$(cat "$T/err")" "melt: $3"
    expect_lines "experiment_$1_no_stdout" "$T/out" 0
}
bad_file unknown_key bad-unknown-key.yaml \
    "$EXP/bad-unknown-key.yaml:3:1: unknown key 'repetitons' (did you mean 'repetitions'?)"
bad_file wrong_type bad-type.yaml \
    "$EXP/bad-type.yaml:7:14: engines[0].threads: expected a positive integer, got 'two'"
bad_file syntax bad-syntax.yaml \
    "$EXP/bad-syntax.yaml:4:41: did not find expected ',' or ']' (while parsing a flow sequence at 4:32)"
bad_file missing_models bad-missing-models.yaml \
    "$EXP/bad-missing-models.yaml:1:1: missing required key 'models'"
bad_file empty_list bad-empty-list.yaml \
    "$EXP/bad-empty-list.yaml:1:9: models: expected a non-empty list, got an empty one"
bad_file duplicate_key bad-duplicate-key.yaml \
    "$EXP/bad-duplicate-key.yaml:6:1: duplicate key 'seed' (first at 1:1)"
bad_file missing_file bad-missing-file.yaml \
    "$EXP/bad-missing-file.yaml:2:11: models[0].path: cannot open '$EXP/missing-model.gguf': No such file or directory"
bad_file bad_conversations bad-conversations.yaml \
    "$EXP/bad-conversations.yaml:4:5: workloads[0]: $EXP/bad-conversations.json: [1][1]: expected a non-empty string without NUL, got a number"
check_exit "experiment_no_such_file_exit_1" 1 "$MELT" run "$T/none.yaml" --dry-run
expect_eq "experiment_no_such_file_message" "$(cat "$T/err")" "melt: $T/none.yaml: cannot open: No such file or directory"

check_exit "experiment_run_without_file_exit_2" 2 "$MELT" run --dry-run
expect "experiment_run_without_file_message" "$T/err" '^melt: run: missing experiment FILE$'
check_exit "experiment_run_bad_flag_exit_2" 2 "$MELT" run --bogus examples/quickstart.yaml
# (running it for real is tests/integration/test_run.sh; here only a quick
# error that writes nothing outside $T)
check_exit "experiment_run_missing_agent_exit_1" 1 "$MELT" run examples/quickstart.yaml --db "$T/x.db" --agent "$T/no-agent"
expect "experiment_run_missing_agent_message" "$T/err" "^melt: agent '.*no-agent' not found"
check "experiment_run_help" "$MELT" run --help
expect "experiment_run_help_dry_run" "$T/out" '--dry-run'
finish

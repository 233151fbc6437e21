# melt import llama-bench: llama-bench's own JSON and JSONL output
# (tests/fixtures/llamacpp/) become runs whose `melt results show` prints
# the file's avg_ts values; a corrupt file is one line, exit 1, nothing
# stored.
. "$ROOT/tests/integration/lib.sh"
LB="$FIX/llamacpp"
DB="$T/i.db"

check "import json" $MELT import llama-bench "$LB/llama-bench.json" --db "$DB"
expect_eq "prints the run id" "$(cat "$T/out")" 1
expect "says what it stored" "$T/err" 'llama-bench.json: 4 llama-bench entries as run 1$'
check "import jsonl" $MELT import llama-bench "$LB/llama-bench.jsonl" --db "$DB" --name lb-jsonl
expect_eq "second run" "$(cat "$T/out")" 2

check "ls" $MELT results ls --db "$DB"
expect "json run: 4 cells, 12 trials" "$T/out" '^1 +llama-bench +ok .* 4 +12/12 '
expect "jsonl run named" "$T/out" '^2 +lb-jsonl +ok .* 4 +12/12 '

# every avg_ts of the file, as show prints numbers (6 significant digits)
check "show json run" $MELT results show 1 --db "$DB"
cp "$T/out" "$T/show1"
for v in 7280.2 7169.9 14417.4 7772.03; do
    expect "json avg_ts $v" "$T/show1" "^  avg_ts +$v +1 +tok/s$"
done
expect "cells per model x test x threads" "$T/show1" '^cell stories260K.gguf tg32 t2  \(3/3 trials ok\)$'
# each sample a trial: the mean of samples_ts 7208.94 7314.11 7317.55
expect "samples as trials" "$T/show1" '^  sample_ts +7280.2 ± [0-9.]+ +3 +tok/s$'
expect "pp as prefill_tps" "$T/show1" '^  prefill_tps +7280.2 '
expect "tg as decode_tps" "$T/show1" '^  decode_tps +7169.9 '
check "show jsonl run" $MELT results show 2 --db "$DB"
for v in 7880.5 7411.19 14227.4 8444.92; do
    expect "jsonl avg_ts $v" "$T/out" "^  avg_ts +$v +1 +tok/s$"
done
check "export json" $MELT results export 1 --format jsonl --db "$DB"
expect "export has the exact avg_ts" "$T/out" '"metric":"avg_ts".*"mean":7280.199024'

# samples_ts without samples_ns: each sample's time is its own (tokens /
# t/s), not avg_ns repeated: 10 tokens at 1000 and 2000 t/s
printf '{"model_filename":"m.gguf","n_prompt":0,"n_gen":10,"n_threads":1,"avg_ts":1500,"avg_ns":7500000,"samples_ts":[1000,2000]}\n' >"$T/ts.jsonl"
check "import samples_ts only" $MELT import llama-bench "$T/ts.jsonl" --db "$T/ts.db"
check "export samples_ts only" $MELT results export 1 --format jsonl --db "$T/ts.db"
expect "sample_ns per sample" "$T/out" '"metric":"sample_ns".*"min":5000000\.0,"median":7500000\.0,"max":10000000\.0'

# corrupt files: one line naming the file, exit 1, no run added
head -c 3000 "$LB/llama-bench.json" >"$T/cut.json"
check_exit "cut json" 1 $MELT import llama-bench "$T/cut.json" --db "$DB"
expect_lines "one line" "$T/err" 1
expect "names the file and line" "$T/err" '^melt: .*cut.json: line [0-9]+: '
sed '2s/"avg_ts": [0-9.]*/"avg_ts": "fast"/' "$LB/llama-bench.jsonl" >"$T/bad.jsonl"
check_exit "bad value in jsonl" 1 $MELT import llama-bench "$T/bad.jsonl" --db "$DB"
expect "names the entry" "$T/err" '^melt: .*bad.jsonl: entry 2: avg_ts must be a number$'
printf '{"n_prompt": 1}\nnot json\n' >"$T/garbage.jsonl"
check_exit "garbage line" 1 $MELT import llama-bench "$T/garbage.jsonl" --db "$DB"
expect "garbage line number" "$T/err" 'garbage.jsonl: line 2: '
: >"$T/empty.json"
check_exit "empty file" 1 $MELT import llama-bench "$T/empty.json" --db "$DB"
check "ls after failures" $MELT results ls --db "$DB"
expect_lines "nothing stored" "$T/out" 3
check_exit "no file" 2 $MELT import llama-bench --db "$DB"
check_exit "unknown source" 2 $MELT import foo "$T/x"
mkdir -p "$T/adir"
check_exit "a directory" 1 $MELT import llama-bench "$T/adir" --db "$DB"
expect_eq "a directory says why" "$(cat "$T/err")" "melt: $T/adir: read error: Is a directory"
finish

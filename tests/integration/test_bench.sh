# melt bench on stories260K: every output format parses and has
# llama-bench's layout (tests/fixtures/llamacpp/llama-bench.*), -r and -t
# give the samples and rows asked for, -pg and several models work, bad
# flags are usage errors (exit 2).
. "$ROOT/tests/integration/lib.sh"
M="$FIX/stories260K/stories260K.gguf"
LB="$FIX/llamacpp"
B="$MELT bench -m $M -p 16 -n 8 -r 2"

# ---- md: llama-bench's header, one row per test, the build line
check "md runs" $B -t 1
cp "$T/out" "$T/md"
expect_eq "md header is llama-bench's" "$(head -n 2 "$T/md")" "$(head -n 2 "$LB/llama-bench.md")"
expect "md pp row" "$T/md" '^\| llama \?B \(guessed\) all F32 +\| +1\.12 MiB \| +0\.29 M \| CPU +\| +1 \| +pp16 \| +[0-9.]+ ± [0-9.]+ \|$'
expect "md tg row" "$T/md" '\| +tg8 \| +[0-9.]+ ± [0-9.]+ \|$'
expect "md build line" "$T/md" '^build: [0-9a-f]+ \(0\)$'

# ---- csv: the columns llama-bench also has, in its order
check "csv runs" $B -t 1 -o csv
cp "$T/out" "$T/csv"
head -n 1 "$T/csv" | tr ',' '\n' >"$T/ours"
head -n 1 "$LB/llama-bench.csv" | tr ',' '\n' >"$T/theirs"
grep -Fxf "$T/ours" "$T/theirs" >"$T/shared_theirs"
grep -Fxf "$T/theirs" "$T/ours" >"$T/shared_ours"
expect_eq "csv shared columns in llama-bench's order" "$(cat "$T/shared_ours")" "$(cat "$T/shared_theirs")"
expect_eq "csv shares 22 columns" "$(wc -l <"$T/shared_ours")" 22
expect_lines "csv header + 2 rows" "$T/csv" 3
expect "csv values quoted" "$T/csv" '^"[0-9a-f]+","0","[^"]*","","CPU","[^"]*stories260K.gguf","llama \?B \(guessed\) all F32","1171200","292800",'

# ---- -t 1,2 gives 2 rows, -r 2 gives 2 samples each (jsonl)
check "jsonl runs" $MELT bench -m "$M" -p 16 -n 0 -r 2 -t 1,2 -o jsonl
cp "$T/out" "$T/jsonl"
expect_lines "-t 1,2: two rows" "$T/jsonl" 2
expect "thread 1 row" "$T/jsonl" '"n_threads": 1, .*"n_prompt": 16, "n_gen": 0,'
expect "thread 2 row" "$T/jsonl" '"n_threads": 2, '
expect_eq "-r 2: two samples per row" "$(grep -cE '"samples_ns": \[ [0-9]+, [0-9]+ \],"samples_ts": \[ [0-9.e+]+, [0-9.e+]+ \]\}$' "$T/jsonl")" 2

# ---- json: one array; it parses (melt's jansson reader: import) and each
# value comes back
check "json runs" $B -t 1 -o json
cp "$T/out" "$T/json"
expect_eq "json opens an array" "$(head -n 1 "$T/json")" "["
expect_eq "json closes it" "$(tail -n 1 "$T/json")" "]"
check "json parses (import)" $MELT import llama-bench "$T/json" --db "$T/b.db"
check "jsonl parses (import)" $MELT import llama-bench "$T/jsonl" --db "$T/b.db"
check "results show" $MELT results show 1 --db "$T/b.db"
avg=$(sed -n 's/.*"n_prompt": 16, .*"avg_ts": \([0-9]*\.[0-9]\).*/\1/p' "$T/json")
expect "imported avg_ts shown" "$T/out" "avg_ts +$avg"
expect "pp and tg cells" "$T/out" 'cell .*stories260K.gguf tg8 t1'

# ---- sql: sqlite3 runs it
check "sql runs" $B -t 1 -o sql
cp "$T/out" "$T/sql"
expect "sql create" "$T/sql" '^CREATE TABLE IF NOT EXISTS melt_bench \($'
if command -v sqlite3 >/dev/null 2>&1; then
    check "sql loads" sqlite3 "$T/s.db" ".read $T/sql"
    expect_eq "sql rows" "$(sqlite3 "$T/s.db" 'SELECT group_concat(n_prompt || "/" || n_gen) FROM melt_bench')" "16/0,0/8"
fi

# ---- -pg, two models, --roofline, --progress
check "pg + two models + roofline" $MELT bench -m "$M,$M" -p 0 -n 8 -pg 8,4 -r 1 -t 1 \
    --roofline --bw-mib 16 --progress -o jsonl
cp "$T/out" "$T/roof"
expect_lines "two models x (tg8 + pp8+tg4)" "$T/roof" 4
expect "pg row" "$T/roof" '"n_prompt": 8, "n_gen": 4,'
expect "roofline on tg" "$T/roof" '"n_gen": 8, .*"bw_read_gbs": [0-9.]+, "bytes_per_token": [0-9]+, "roofline_ts": [0-9.]+, "roofline_frac": [0-9.]+,'
expect "progress lines" "$T/err" '^melt bench: test 4/4: pp8\+tg4, 1 threads'
check "md with roofline" $MELT bench -m "$M" -p 0 -n 8 -r 1 -t 1 --roofline --bw-mib 16
expect "md roofline columns" "$T/out" '\| +t/s \| +bw GB/s \| roofline t/s \| +frac \|$'

# ---- live: with LLAMA_BENCH set (bench/llamacpp.sh), the real llama-bench
# on the same file describes the model as melt does and its output imports
if [ -n "${LLAMA_BENCH:-}" ] && [ -x "$LLAMA_BENCH" ]; then
    check "llama-bench runs" "$LLAMA_BENCH" -m "$M" -p 16 -n 0 -r 1 -t 1 -o jsonl
    cp "$T/out" "$T/live.jsonl"
    check "melt bench runs" $MELT bench -m "$M" -p 16 -n 0 -r 1 -t 1 -o jsonl
    desc='"model_type": "[^"]*", "model_size": [0-9]*, "model_n_params": [0-9]*'
    expect_eq "same model_type, size, params" "$(grep -o "$desc" "$T/out")" "$(grep -o "$desc" "$T/live.jsonl")"
    check "live llama-bench output imports" $MELT import llama-bench "$T/live.jsonl" --db "$T/live.db"
fi

# ---- usage errors: exit 2 and a message naming the flag
check_exit "no model" 2 $MELT bench -p 16
expect "no model message" "$T/err" '^melt: bench: missing -m FILE'
check_exit "-t 0" 2 $MELT bench -m "$M" -t 0
expect "-t 0 message" "$T/err" "^melt: bench: -t: '0': 0 is outside"
check_exit "backwards range" 2 $MELT bench -m "$M" -t 4-2
check_exit "bad format" 2 $MELT bench -m "$M" -o xml
expect "bad format message" "$T/err" "^melt: bench: -o is md, csv, json, jsonl or sql, got 'xml'"
check_exit "unknown flag" 2 $MELT bench -m "$M" --bogus
expect "unknown flag message" "$T/err" "^melt: bench: unknown option '--bogus'"
check_exit "-r 0" 2 $MELT bench -m "$M" -r 0
check_exit "-pg one number" 2 $MELT bench -m "$M" -pg 5
check_exit "missing value" 2 $MELT bench -m "$M" -p
check_exit "no tests" 2 $MELT bench -m "$M" -p 0 -n 0
check_exit "bad kernels" 2 $MELT bench -m "$M" --kernels fast
# the NEON families are named as MELT_KERNELS names them: they run on
# AArch64; elsewhere the CPU, not the flag, is refused
if [ "$(uname -m)" = aarch64 ]; then
    check "kernels neon" $MELT bench -m "$M" -p 16 -n 0 -r 1 --kernels neon
else
    check_exit "kernels neon off AArch64" 1 $MELT bench -m "$M" -p 16 -n 0 -r 1 --kernels neon
    expect "kernels neon message" "$T/err" "kernels 'neon' are not supported by this CPU"
    check_exit "kernels neon-dotprod off AArch64" 1 $MELT bench -m "$M" -p 16 -n 0 -r 1 --kernels neon-dotprod
fi
# a missing file is a runtime error naming it
check_exit "missing model file" 1 $MELT bench -m "$T/nope.gguf" -p 16 -n 0
expect "missing model message" "$T/err" "nope.gguf"
finish

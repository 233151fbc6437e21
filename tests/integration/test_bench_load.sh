# melt bench's load_ms (docs/bench.md): one figure per model, from the start
# of the load to the end of the warm decode (BOS, EOS), on every row of that
# model, in every format; -p 0 -n 1 (the load runs of make bench) works.
. "$ROOT/tests/integration/lib.sh"
M="$FIX/stories260K/stories260K.gguf"
LOAD='"load_ms": [0-9]+\.[0-9]{6}, '

t0=$(date +%s%N)
check "jsonl, two models, two thread counts" $MELT bench -m "$M,$M" -p 0 -n 1 -r 1 -t 1,2 --no-warmup -o jsonl
t1=$(date +%s%N)
cp "$T/out" "$T/jsonl"
expect_lines "four rows" "$T/jsonl" 4
expect_eq "every row has load_ms after kernels" "$(grep -cE "\"kernels\": \"[a-z0-9-]+\", $LOAD" "$T/jsonl")" 4
sed -n 's/.*"load_ms": \([0-9.]*\),.*/\1/p' "$T/jsonl" >"$T/ms"
expect_eq "load_ms is positive" "$(awk '$1 > 0' "$T/ms" | wc -l)" 4
# measured once per model: both thread counts of a model carry its figure
expect_eq "model 1: one figure" "$(sed -n 1,2p "$T/ms" | sort -u | wc -l)" 1
expect_eq "model 2: one figure" "$(sed -n 3,4p "$T/ms" | sort -u | wc -l)" 1
# two loads, each within the process's lifetime
expect_eq "load_ms within the process" "$(awk -v ms=$(((t1 - t0) / 1000000)) '$1 <= ms' "$T/ms" | wc -l)" 4

check "csv" $MELT bench -m "$M" -p 0 -n 1 -r 1 -t 1 -o csv
expect "csv header: load_ms after kernels" "$T/out" '^build_commit,.*,kernels,load_ms$'
expect "csv value" "$T/out" '"[a-z0-9-]+","[0-9]+\.[0-9]{6}"$'

check "sql" $MELT bench -m "$M" -p 0 -n 1 -r 1 -t 1 -o sql
expect "sql column" "$T/out" '^  load_ms REAL$'

check "json" $MELT bench -m "$M" -p 4 -n 0 -r 1 -t 1 -o json
expect "json field" "$T/out" '^    "load_ms": [0-9]+\.[0-9]{6},$'

# md keeps llama-bench's columns: no load_ms there
check "md" $MELT bench -m "$M" -p 0 -n 1 -r 1 -t 1
expect_not "md has no load column" "$T/out" 'load'
finish

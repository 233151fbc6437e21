# melt results: import event files (the agent's JSON lines), then ls, show
# and export in every format. Figures are known: ttft 100/200/300 ms over
# three repetitions -> mean 200, stddev 100, ci95 = t(0.975,2)*100/sqrt(3).
. "$ROOT/tests/integration/lib.sh"
DB="$T/r.db"

# trial FILE TTFT_MS BYE: one request, 100 prompt tokens, 5 tokens 10 ms
# apart, 1 W idle then 2 W, a temperature; BYE "" leaves the bye line out.
trial() {
    awk -v ttft="$2" -v bye="$3" 'BEGIN {
        ms = 1000000
        print "{\"ev\":\"hello\",\"t_ns\":1,\"agent\":\"0.1.0\"}"
        print "{\"ev\":\"phase\",\"t_ns\":0,\"name\":\"load\",\"edge\":\"begin\"}"
        print "{\"ev\":\"phase\",\"t_ns\":" 50*ms ",\"name\":\"load\",\"edge\":\"end\"}"
        print "{\"ev\":\"phase\",\"t_ns\":" 100*ms ",\"name\":\"idle\",\"edge\":\"begin\"}"
        print "{\"ev\":\"phase\",\"t_ns\":" 1100*ms ",\"name\":\"idle\",\"edge\":\"end\"}"
        for (k = 0; k <= 40; k++)
            printf "{\"ev\":\"sample\",\"t_ns\":%d,\"probe\":\"power_supply\",\"key\":\"battery_power_mw\",\"value\":%d,\"unit\":\"mw\"}\n", k*100*ms, (k*100 <= 1100 ? 1000 : 2000)
        print "{\"ev\":\"sample\",\"t_ns\":0,\"probe\":\"thermal\",\"key\":\"cpu0\",\"value\":40000,\"unit\":\"mC\"}"
        t = 1200
        print "{\"ev\":\"request\",\"t_ns\":" t*ms ",\"req\":0,\"n_prompt\":100}"
        t += ttft
        print "{\"ev\":\"first_token\",\"t_ns\":" t*ms ",\"req\":0}"
        for (i = 0; i < 5; i++)
            print "{\"ev\":\"token\",\"t_ns\":" (t + 10*i)*ms ",\"req\":0,\"i\":" i ",\"id\":" 100+i "}"
        print "{\"ev\":\"end\",\"t_ns\":" (t + 45)*ms ",\"req\":0,\"n_gen\":5,\"reason\":\"limit\"}"
        print "{\"ev\":\"sample\",\"t_ns\":" (t + 50)*ms ",\"probe\":\"thermal\",\"key\":\"cpu0\",\"value\":52000,\"unit\":\"mC\"}"
        if (bye != "") print "{\"ev\":\"bye\",\"t_ns\":" (t + 60)*ms ",\"status\":\"" bye "\"}"
    }' >"$1"
}

trial "$T/a0.jsonl" 100 ok
trial "$T/a1.jsonl" 200 ok
trial "$T/a2.jsonl" 300 ok
trial "$T/b0.jsonl" 150 ok
echo 'this is not an event line' >>"$T/b0.jsonl"
trial "$T/b1.jsonl" 150 ""

check "import_new_run" "$MELT" results import-events --db "$DB" --name demo --cell "local/builtin/tiny,t1" "$T/a0.jsonl" "$T/a1.jsonl" "$T/a2.jsonl"
expect_eq "import_prints_run_id" "$(cat "$T/out")" "1"
check "import_into_run" "$MELT" results import-events --db "$DB" --run demo --cell B "$T/b0.jsonl" "$T/b1.jsonl"
expect "import_reports_bad_line" "$T/err" 'b0.jsonl:[0-9]+: skipped'
expect "import_no_bye_is_lost" "$T/err" 'b1.jsonl: [0-9]+ events as trial [0-9]+ \(repetition 1, lost\)'

check "ls" "$MELT" results ls --db "$DB"
expect "ls_header" "$T/out" '^id +name +status +started +cells +trials ok +host'
expect "ls_row" "$T/out" '^1 +demo +ok +[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z +2 +4/5 '

check "show" "$MELT" results show 1 --db "$DB"
cp "$T/out" "$T/show.txt"
expect "show_run_line" "$T/show.txt" '^run 1  demo  ok  started '
expect "show_cell_a" "$T/show.txt" '^cell local/builtin/tiny,t1  \(3/3 trials ok\)$'
expect "show_cell_b_counts_lost" "$T/show.txt" '^cell B  \(1/2 trials ok\)$'
expect "show_ttft_mean_ci_n" "$T/show.txt" '^  ttft_ms +200 ± 248\.414 +3  ms$'
expect "show_decode_tps" "$T/show.txt" '^  decode_tps +100 ± 0 +3  tok/s$'
expect "show_energy_idle" "$T/show.txt" '^  energy_j\.idle +1 ± 0 +3  J$'
expect "show_temp_max" "$T/show.txt" '^  temp_max_c +52 ± 0 +3  C$'
expect "show_single_value_has_no_ci" "$T/show.txt" '^  ttft_ms +150 +1  ms$'
check "show_last_by_default" "$MELT" results show --db "$DB"
expect "show_last_is_run_1" "$T/out" '^run 1  demo'

check "export_md" "$MELT" results export demo --db "$DB" --format md
cp "$T/out" "$T/x.md"
expect_eq "md_header" "$(head -1 "$T/x.md")" '| cell | metric | unit | n | mean | ± 95% CI | stddev | min | median | max |'
expect_eq "md_separator" "$(sed -n 2p "$T/x.md")" '|---|---|---|---:|---:|---:|---:|---:|---:|---:|'
expect_eq "md_every_row_has_10_columns" "$(awk -F'|' 'NF != 12' "$T/x.md" | wc -l)" "0"
expect "md_ttft_row" "$T/x.md" '^\| local/builtin/tiny,t1 \| ttft_ms \| ms \| 3 \| 200 \| 248\.414 \| 100 \| 100 \| 200 \| 300 \|$'

check "export_csv" "$MELT" results export 1 --db "$DB" --format csv -o "$T/x.csv"
expect_eq "csv_header" "$(head -1 "$T/x.csv")" 'run,cell,metric,unit,n,mean,stddev,ci95,min,median,max'
expect "csv_quotes_commas" "$T/x.csv" '^1,"local/builtin/tiny,t1",ttft_ms,ms,3,200,100,248\.41377[0-9]*,100,200,300$'
expect "csv_empty_ci_for_one" "$T/x.csv" '^1,B,ttft_ms,ms,1,150,,,150,150,150$'
rows=$(($(wc -l <"$T/x.csv") - 1))

check "export_jsonl" "$MELT" results export 1 --db "$DB" --format jsonl
cp "$T/out" "$T/x.jsonl"
expect_lines "jsonl_one_line_per_csv_row" "$T/x.jsonl" "$rows"
expect "jsonl_row" "$T/x.jsonl" '^\{"run":1,"run_name":"demo","cell":"B","metric":"ttft_ms","unit":"ms","n":1,"mean":150(\.0)?,"stddev":null'

check "export_json" "$MELT" results export 1 --db "$DB" --format json
cp "$T/out" "$T/x.json"
expect "json_run_name" "$T/x.json" '"name": "demo"'
expect "json_ttft" "$T/x.json" '"ttft_ms": \{'
if command -v python3 >/dev/null 2>&1; then
    check "json_is_valid" python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["cells"][0]["metrics"]["ttft_ms"]["mean"] == 200; assert d["cells"][1]["trials_ok"] == 1' "$T/x.json"
    check "jsonl_is_valid" python3 -c 'import json,sys; [json.loads(l) for l in open(sys.argv[1])]' "$T/x.jsonl"
fi

check_exit "export_needs_format" 2 "$MELT" results export 1 --db "$DB"
check_exit "export_rejects_format" 2 "$MELT" results export 1 --db "$DB" --format xml
check_exit "show_unknown_run" 1 "$MELT" results show nope --db "$DB"
expect "show_unknown_run_says_so" "$T/err" "no run named 'nope'"
check_exit "import_needs_cell" 2 "$MELT" results import-events --db "$DB" "$T/a0.jsonl"

# default store: ./melt.db
mkdir -p "$T/cwd"
( cd "$T/cwd" && "$MELT" results import-events --cell c "$T/a0.jsonl" >/dev/null 2>&1 )
expect_eq "default_db_is_melt_db" "$(ls "$T/cwd" | grep -c '^melt\.db$')" "1"

# a file that is not a store is refused in one line
echo "hello" >"$T/not.db"
check_exit "not_a_store" 1 "$MELT" results ls --db "$T/not.db"
expect "not_a_store_message" "$T/err" 'not a melt database'
finish

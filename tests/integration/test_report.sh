# melt report: a store built from generated event files (3 cells x 3
# repetitions, with power, temperature, RSS and throttle samples; one cell id
# is hostile HTML, one very long), then the HTML report: self-contained,
# escaped, the expected charts, rows and numbers; then rendered by headless
# Chromium (installed through scripts/deps.sh report when missing).
. "$ROOT/tests/integration/lib.sh"
DB="$T/r.db"
HTML="$T/report.html"

# trial FILE TTFT_MS GAP_MS NTOK NPROMPT POWER_MW TEMP_RISE_C THROTTLE ERRMSG [RAPL]
# One request after a 1 s idle baseline at 1 W: first token TTFT_MS after
# the request, NTOK tokens (NTOK odd) with gaps around GAP_MS (exactly
# GAP_MS on average: pairs +j, -j), POWER_MW while it runs; cpu0_temp rises
# by TEMP_RISE_C from 40 C to the end, gpu_temp stays at 35 C; every 100 ms.
# RAPL=1: power as a RAPL energy counter (uJ) instead of a battery rail.
trial() {
    awk -v ttft="$2" -v gap="$3" -v ntok="$4" -v np="$5" -v pw="$6" -v rise="$7" \
        -v thr="$8" -v errmsg="$9" -v rapl="${10:-0}" 'BEGIN {
        ms = 1000000
        print "{\"ev\":\"hello\",\"t_ns\":0,\"agent\":\"0.1.0\"}"
        print "{\"ev\":\"phase\",\"t_ns\":0,\"name\":\"load\",\"edge\":\"begin\"}"
        print "{\"ev\":\"phase\",\"t_ns\":" 50*ms ",\"name\":\"load\",\"edge\":\"end\"}"
        print "{\"ev\":\"phase\",\"t_ns\":" 100*ms ",\"name\":\"idle\",\"edge\":\"begin\"}"
        print "{\"ev\":\"phase\",\"t_ns\":" 1100*ms ",\"name\":\"idle\",\"edge\":\"end\"}"
        t0 = 1200
        print "{\"ev\":\"request\",\"t_ns\":" t0*ms ",\"req\":0,\"n_prompt\":" np "}"
        t = t0 + ttft
        printf "{\"ev\":\"first_token\",\"t_ns\":%.0f,\"req\":0}\n", t*ms
        for (i = 0; i < ntok; i++) {
            if (i > 0) t += gap + (i % 2 ? 1 : -1) * gap * 0.1 * (int((i + 1) / 2) % 4)
            printf "{\"ev\":\"token\",\"t_ns\":%.0f,\"req\":0,\"i\":%d,\"id\":%d}\n", t*ms, i, 100+i
        }
        tend = t + 1
        printf "{\"ev\":\"end\",\"t_ns\":%.0f,\"req\":0,\"n_gen\":%d,\"reason\":\"limit\"}\n", tend*ms, ntok
        if (errmsg != "")
            printf "{\"ev\":\"error\",\"t_ns\":%.0f,\"msg\":\"%s\"}\n", tend*ms, errmsg
        for (k = 0; k * 100 <= tend + 200; k++) {
            ts = k * 100
            p = (ts < t0 ? 1000 : pw + 300 * ((k % 3) - 1))
            if (rapl)
                printf "{\"ev\":\"sample\",\"t_ns\":%.0f,\"probe\":\"rapl\",\"key\":\"package-0_energy_uj\",\"value\":%.0f,\"unit\":\"uj\"}\n", ts*ms, energy
            else
                printf "{\"ev\":\"sample\",\"t_ns\":%.0f,\"probe\":\"power_supply\",\"key\":\"battery_power_mw\",\"value\":%d,\"unit\":\"mw\"}\n", ts*ms, p
            energy += p * 100
            f = (ts - t0) / (tend - t0)
            c = 40000 + rise * 1000 * (f < 0 ? 0 : f > 1 ? 1 : f)
            printf "{\"ev\":\"sample\",\"t_ns\":%.0f,\"probe\":\"thermal\",\"key\":\"cpu0_temp\",\"value\":%d,\"unit\":\"mC\"}\n", ts*ms, c
            printf "{\"ev\":\"sample\",\"t_ns\":%.0f,\"probe\":\"thermal\",\"key\":\"gpu_temp\",\"value\":35000,\"unit\":\"mC\"}\n", ts*ms
            printf "{\"ev\":\"sample\",\"t_ns\":%.0f,\"probe\":\"cpufreq\",\"key\":\"throttled\",\"value\":%d,\"unit\":\"bool\"}\n", ts*ms, (thr && ts > t0 ? 1 : 0)
        }
        printf "{\"ev\":\"sample\",\"t_ns\":%.0f,\"probe\":\"procfs\",\"key\":\"rss_bytes\",\"value\":104857600,\"unit\":\"bytes\"}\n", t0*ms
        printf "{\"ev\":\"bye\",\"t_ns\":%.0f,\"status\":\"ok\"}\n", (tend + 300)*ms
    }' >"$1"
}

A='local/builtin-t1/tiny-q8_0/synthetic-pp100-tg65'
B='<script>alert(1)</script>'
C='local/builtin-t4-c4096-kv-q8_0/a-model-name-that-goes-on-and-on-and-on-q4_k_m/conversations-chat'
# A: exact figures: ttft 100 ms, prefill 1000 tok/s, decode 100 tok/s.
for r in 0 1 2; do trial "$T/a$r.jsonl" 100 10 65 100 2000 5 0 ""; done
# B: decode varies over the repetitions (CI bars), an error event with HTML.
trial "$T/b0.jsonl" 50 20 41 100 3500 10 0 '<img src=x onerror=alert(2)>'
trial "$T/b1.jsonl" 60 25 41 100 3500 11 0 ""
trial "$T/b2.jsonl" 70 30 41 100 3500 12 0 ""
# C: throttled, hot, energy from a RAPL counter.
for r in 0 1 2; do trial "$T/c$r.jsonl" 400 40 33 400 5000 25 1 "" 1; done

check "import_a" "$MELT" results import-events --db "$DB" --name report-demo --cell "$A" \
    "$T/a0.jsonl" "$T/a1.jsonl" "$T/a2.jsonl"
check "import_b" "$MELT" results import-events --db "$DB" --run last --cell "$B" \
    "$T/b0.jsonl" "$T/b1.jsonl" "$T/b2.jsonl"
check "import_c" "$MELT" results import-events --db "$DB" --run last --cell "$C" \
    "$T/c0.jsonl" "$T/c1.jsonl" "$T/c2.jsonl"

check "report_writes" "$MELT" report --db "$DB" -o "$HTML"
expect_eq "report_prints_path" "$(cat "$T/out")" "$HTML"
check "report_by_name" "$MELT" report report-demo --db "$DB" -o "$T/by-name.html"
expect_eq "report_by_name_same_file" "$(cmp -s "$HTML" "$T/by-name.html" && echo same)" "same"
check "report_to_stdout" "$MELT" report 1 --db "$DB" -o -
expect "report_stdout_is_html" "$T/out" '^<!DOCTYPE html>$'

# self-contained: no script, nothing fetched, no reference outside the page
expect_not "no_script_element" "$HTML" '<script'
expect_not "no_network_urls" "$HTML" 'https?://|//[a-z0-9.-]+\.[a-z]{2,}/'
expect_not "no_external_src_href" "$HTML" '(src|href)="[^#]'
expect_not "no_external_url_refs" "$HTML" 'url\([^#]'
expect_not "no_link_or_import" "$HTML" '<link|@import|<iframe|<object|<embed'

# escaping: the hostile cell id and error message appear only as text
expect "hostile_cell_escaped" "$HTML" '&lt;script&gt;alert\(1\)&lt;/script&gt;'
expect "hostile_error_escaped" "$HTML" '&lt;img src=x onerror=alert\(2\)&gt;'
expect_not "hostile_error_not_raw" "$HTML" '<img'

# structure: six charts, three summary rows, the header
expect_eq "six_svg_charts" "$(grep -o '<svg ' "$HTML" | wc -l)" "6"
for id in chart-decode chart-prefill chart-energy chart-temp chart-power chart-itl; do
    expect "has_$id" "$HTML" "<svg class=\"chart\" id=\"$id\""
done
expect_eq "svg_titles" "$(grep -o '<title id="chart-[a-z]*-t">' "$HTML" | wc -l)" "6"
expect_eq "summary_rows" "$(sed -n '/<table id="summary-table">/,/<\/table>/p' "$HTML" | grep -c '^<tr>')" "3"
expect "title_has_run_name" "$HTML" '<title>melt report: report-demo \(run 1\)</title>'
expect "header_status" "$HTML" 'id="run-status">ok<'
expect "header_cells" "$HTML" '<dd id="n-cells">3</dd>'
expect "experiment_collapsible" "$HTML" '<details id="experiment">'

# known numbers: cell A exactly, B's decode mean over 1000/20, 1000/25, 1000/30
row_a=$(grep -F "title=\"$A\"" "$HTML" | head -1)
printf '%s\n' "$row_a" >"$T/row_a"
expect "a_ttft" "$T/row_a" 'ttft_ms: n=3[^>]*>100\.0 <span class="ci">± 0</span>'
expect "a_prefill" "$T/row_a" '>1000 <span class="ci">± 0</span>'
expect "a_decode" "$T/row_a" 'decode_tps: n=3[^>]*>100\.0 <span class="ci">± 0</span>'
expect "a_rss_mib" "$T/row_a" 'peak_rss_bytes: n=3[^>]*>100\.0 '
expect "a_max_temp" "$T/row_a" 'temp_max_c: n=3[^>]*>45\.00 '
expect "a_not_throttled" "$T/row_a" '>no \(0/3\)<'
expect "a_trials" "$T/row_a" '>3/3<'
expect "a_device_from_id" "$T/row_a" '<td class="cell" title="local">local</td><td class="cell" title="builtin-t1">'
expect "b_decode_mean" "$HTML" 'decode_tps: n=3[^>]*>41\.11 <span class="ci">± 20\.84</span>'
expect "c_throttled" "$HTML" '>yes \(3/3\)<'
expect "c_id_cut_with_tooltip" "$HTML" "title=\"$C\"><span class=\"sw\"[^>]*></span>local/builtin-t4-…conversations-chat</td>"
expect "decode_bar_value" "$HTML" '<text class="val"[^>]*>100\.0 ± 0</text>'
expect "bar_tooltip" "$HTML" '<title>local/builtin-t1/tiny-q8_0/synthetic-pp100-tg65: 100\.0 ± 0 tok/s \(n=3\)</title>'
expect "missing_values_dash" "$HTML" '<td class="na">–</td>'
# power over time: a rail for A, the rate of the RAPL counter for C
expect "power_series_from_rail" "$HTML" '<title>local/builtin-t1/[^<]*\(battery_power_mw, repetition 0\)</title><polyline clip-path="url\(#chart-power-clip\)"'
expect "power_series_from_counter" "$HTML" '<title>local/builtin-t4-[^<]*\(package-0_energy_uj, repetition 0\)</title><polyline clip-path="url\(#chart-power-clip\)"'

# errors: unknown run, bad flag
check_exit "unknown_run" 1 "$MELT" report nope --db "$DB" -o "$T/x.html"
expect "unknown_run_message" "$T/err" "no run named 'nope'"
expect_eq "unknown_run_no_file" "$(ls "$T" | grep -c '^x\.html')" "0"
check_exit "bad_flag" 2 "$MELT" report --bogus --db "$DB"
check_exit "two_runs" 2 "$MELT" report 1 2 --db "$DB"

# an empty run (no trials): still a page, with notes instead of line charts
"$MELT" results import-events --db "$T/e.db" --name empty --cell lonely /dev/null >/dev/null 2>&1
check "report_empty_run" "$MELT" report --db "$T/e.db" -o "$T/empty.html"
expect "empty_run_no_temp_note" "$T/empty.html" 'No temperature samples'
expect_eq "empty_run_two_bar_charts" "$(grep -o '<svg ' "$T/empty.html" | wc -l)" "2"

# Headless Chromium: the page renders, its DOM has the charts and the numbers.
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$CHROMIUM" ]; then
    "$ROOT/scripts/deps.sh" report >"$T/deps.log" 2>&1
    CHROMIUM=$(command -v chromium || true)
fi
if [ -z "$CHROMIUM" ]; then
    _report "chromium_available" 0 "chromium is not installed and scripts/deps.sh report failed:
$(tail -5 "$T/deps.log")"
else
    CHROME_FLAGS="--headless --no-sandbox --disable-gpu --disable-dev-shm-usage \
        --no-first-run --no-default-browser-check --user-data-dir=$T/chrome-profile \
        --window-size=1400,2400 --hide-scrollbars"
    # shellcheck disable=SC2086
    run timeout 30 "$CHROMIUM" $CHROME_FLAGS --dump-dom "file://$HTML"
    cp "$T/out" "$T/dom.html"
    expect_eq "chromium_dump_dom" "$rc" "0"
    expect_eq "dom_six_svgs" "$(grep -o '<svg ' "$T/dom.html" | wc -l)" "6"
    expect_eq "dom_summary_rows" "$(sed -n '/<table id="summary-table">/,/<\/table>/p' "$T/dom.html" | grep -c '<tr>')" "4"
    expect "dom_has_decode_number" "$T/dom.html" '>100\.0 <span class="ci">± 0</span>'
    expect "dom_has_bars" "$T/dom.html" '<rect x="[0-9.]+" y="[0-9.]+" width="[0-9.]+" height="14\.0" fill="#4e79a7">'
    expect "dom_has_polylines" "$T/dom.html" '<polyline clip-path="url\(#chart-temp-clip\)"'
    expect_not "dom_no_script_injected" "$T/dom.html" '<script'
    # shellcheck disable=SC2086
    run timeout 30 "$CHROMIUM" $CHROME_FLAGS --screenshot="$T/report.png" "file://$HTML"
    expect_eq "chromium_screenshot" "$rc" "0"
    size=$(wc -c <"$T/report.png" 2>/dev/null || echo 0)
    if [ "$size" -gt 60000 ]; then _report "screenshot_nontrivial" 1 ""; else
        _report "screenshot_nontrivial" 0 "screenshot is $size bytes (want > 60000)"; fi
    [ -n "${MELT_REPORT_KEEP:-}" ] && cp "$T/report.png" "$HTML" "$MELT_REPORT_KEEP/" 2>/dev/null
fi
finish

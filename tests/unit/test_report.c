/* The HTML report: nice axes, number formats, escaping, the SVG of charts
 * with known data, and a whole report of a small store. */
#include "testutil.h"

#include <math.h>

#include "melt/report.h"
#include "melt/store.h"
#include "report/svg.h"

/* ---- helpers ------------------------------------------------------------ */

/* What f wrote to a memory stream (malloc'd, NUL-terminated). */
typedef struct memout { char *buf; size_t len; FILE *f; } memout;

static void mem_open(memout *m)
{
    m->buf = NULL;
    m->len = 0;
    m->f = open_memstream(&m->buf, &m->len);
    assert_non_null(m->f);
}

static char *mem_close(memout *m)
{
    fclose(m->f);
    return m->buf;
}

static char *escaped(const char *s)
{
    memout m;
    mem_open(&m);
    melt_html_escape(m.f, s);
    return mem_close(&m);
}

static char *cut(const char *s, size_t max_cp)
{
    memout m;
    mem_open(&m);
    svg_escape_cut(m.f, s, max_cp);
    return mem_close(&m);
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

#define assert_contains(hay, needle)                                              \
    do {                                                                          \
        if (!strstr((hay), (needle)))                                             \
            fail_msg("expected \"%s\" in the output:\n%.3000s", (needle), (hay)); \
    } while (0)

#define assert_lacks(hay, needle)                                                   \
    do {                                                                            \
        const char *at_ = strstr((hay), (needle));                                  \
        if (at_)                                                                    \
            fail_msg("did not expect \"%s\", found at: %.200s", (needle), at_);     \
    } while (0)

static void assert_axis(double dmin, double dmax, int max_ticks, double lo, double hi,
                        double step, int n, int decimals)
{
    svg_axis ax;
    svg_axis_nice(dmin, dmax, max_ticks, &ax);
    if (fabs(ax.lo - lo) > 1e-9 * fmax(1, fabs(lo)) ||
        fabs(ax.hi - hi) > 1e-9 * fmax(1, fabs(hi)) ||
        fabs(ax.step - step) > 1e-12 * fmax(1, step) || ax.n_ticks != n ||
        ax.decimals != decimals)
        fail_msg("axis [%g, %g] max %d: expected lo %g hi %g step %g n %d decimals %d, "
                 "got lo %g hi %g step %g n %d decimals %d", dmin, dmax, max_ticks, lo, hi,
                 step, n, decimals, ax.lo, ax.hi, ax.step, ax.n_ticks, ax.decimals);
}

/* ---- axes and numbers --------------------------------------------------- */

static void axis_ticks_are_round_numbers(void **state)
{
    (void)state;
    assert_axis(0, 100, 6, 0, 100, 20, 6, 0);
    assert_axis(0, 97.3, 6, 0, 100, 20, 6, 0);
    assert_axis(0, 2411, 6, 0, 2500, 500, 6, 0);
    assert_axis(40, 65, 6, 40, 65, 5, 6, 0);
    assert_axis(0, 0.3, 6, 0, 0.3, 0.1, 4, 1);
    assert_axis(0.001, 0.0042, 5, 0.001, 0.005, 0.001, 5, 3);
    assert_axis(0, 0.35, 9, 0, 0.35, 0.05, 8, 2);
    assert_axis(-3, 7, 6, -5, 10, 5, 4, 0);
    assert_axis(0, 1, 6, 0, 1, 0.2, 6, 1);
    assert_axis(12000, 87000, 6, 0, 100000, 20000, 6, 0);
}

static void axis_of_an_empty_or_bad_range_is_still_an_axis(void **state)
{
    (void)state;
    assert_axis(0, 0, 6, 0, 1, 0.2, 6, 1);
    assert_axis(NAN, 3, 6, 0, 1, 0.2, 6, 1);
    assert_axis(0, INFINITY, 6, 0, 1, 0.2, 6, 1);
    svg_axis ax;
    svg_axis_nice(52, 52, 6, &ax);           /* widened around the value */
    assert_true(ax.lo < 52 && ax.hi > 52 && ax.n_ticks >= 2 && ax.n_ticks <= 6);
    svg_axis_nice(100, 0, 6, &ax);           /* reversed */
    assert_true(ax.lo == 0 && ax.hi == 100);
    for (double top = 0.7; top < 1e7; top *= 3.7) {   /* never more than asked */
        svg_axis_nice(0, top, 5, &ax);
        assert_true(ax.n_ticks >= 2 && ax.n_ticks <= 5);
        assert_true(ax.hi >= top && ax.lo <= 0);
    }
}

static void tick_labels_and_values_have_no_exponent_or_negative_zero(void **state)
{
    (void)state;
    char b[64];
    svg_tick_label(b, sizeof b, -0.0001, 2);
    assert_string_equal(b, "0.00");
    svg_tick_label(b, sizeof b, 0.6000000000000001, 1);
    assert_string_equal(b, "0.6");
    svg_tick_label(b, sizeof b, 100000, 0);
    assert_string_equal(b, "100000");
    svg_fmt_value(b, sizeof b, 1234.56);
    assert_string_equal(b, "1235");
    svg_fmt_value(b, sizeof b, 123.456);
    assert_string_equal(b, "123.5");
    svg_fmt_value(b, sizeof b, 0.0123);
    assert_string_equal(b, "0.01230");
    svg_fmt_value(b, sizeof b, 0);
    assert_string_equal(b, "0");
    svg_fmt_value(b, sizeof b, NAN);
    assert_string_equal(b, "–");
    svg_fmt_mean_ci(b, sizeof b, 41.1111, 20.8437);
    assert_string_equal(b, "41.11 ± 20.84");
    svg_fmt_mean_ci(b, sizeof b, 100, 0);
    assert_string_equal(b, "100.0 ± 0");
    svg_fmt_mean_ci(b, sizeof b, 5, NAN);
    assert_string_equal(b, "5.000");
    svg_fmt_mean_ci(b, sizeof b, NAN, 1);
    assert_string_equal(b, "–");
}

/* ---- escaping ------------------------------------------------------------ */

static void html_escape_neutralizes_markup_quotes_and_bad_bytes(void **state)
{
    (void)state;
    char *e = escaped("<script>alert('x')&\"</script>");
    assert_string_equal(e, "&lt;script&gt;alert(&#39;x&#39;)&amp;&quot;&lt;/script&gt;");
    free(e);
    e = escaped("a\x01" "b\x7f" "c\td\n");
    assert_string_equal(e, "a\xEF\xBF\xBD" "b\xEF\xBF\xBD" "c\td\n");
    free(e);
    e = escaped("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x94\xA5");        /* é € 🔥 kept */
    assert_string_equal(e, "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x94\xA5");
    free(e);
    /* a bad byte, an overlong form, a surrogate, a cut sequence */
    e = escaped("\xFF|\xC0\xAF|\xED\xA0\x80|\xC3");
    assert_string_equal(e, "\xEF\xBF\xBD|\xEF\xBF\xBD\xEF\xBF\xBD|"
                           "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD|\xEF\xBF\xBD");
    free(e);
    e = escaped(NULL);
    assert_string_equal(e, "");
    free(e);
}

static void long_labels_are_cut_in_the_middle_on_code_points(void **state)
{
    (void)state;
    bool was_cut;
    assert_int_equal(svg_utf8_prefix("h\xC3\xA9llo", 2, &was_cut), 3);
    assert_true(was_cut);
    assert_int_equal(svg_utf8_prefix("abc", 3, &was_cut), 3);
    assert_false(was_cut);
    char *c = cut("abcdefghij", 5);
    assert_string_equal(c, "ab…ij");
    free(c);
    c = cut("abcdefghij", 10);
    assert_string_equal(c, "abcdefghij");
    free(c);
    c = cut("\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9", 4);   /* ééééé */
    assert_string_equal(c, "\xC3\xA9…\xC3\xA9\xC3\xA9");
    free(c);
    c = cut("<<<<<<<<<<", 5);                                 /* escaped after the cut */
    assert_string_equal(c, "&lt;&lt;…&lt;&lt;");
    free(c);
}

/* ---- charts -------------------------------------------------------------- */

static void bar_chart_draws_bars_whiskers_ticks_and_labels(void **state)
{
    (void)state;
    svg_bar bars[] = {
        {"cell-a", NULL, 100, 0, 3, 0},
        {"<b>cell-b</b>", "dev/<b>cell-b</b>", 40, 10, 3, 1},
        {"cell-c", NULL, NAN, NAN, 0, 2},
    };
    svg_bar_chart c = {"t-bars", "Decode", "decode tok/s", "tok/s", bars, 3};
    memout m;
    mem_open(&m);
    svg_bar_chart_write(m.f, &c);
    char *s = mem_close(&m);
    assert_contains(s, "<svg class=\"chart\" id=\"t-bars\" viewBox=\"0 0 860 152\"");
    assert_contains(s, "role=\"img\" aria-labelledby=\"t-bars-t\">");
    assert_contains(s, "<title id=\"t-bars-t\">Decode</title>");
    assert_int_equal(count(s, "<svg"), 1);
    assert_int_equal(count(s, "</svg>"), 1);
    /* two bars (the third has no data), 410 units for 0..100 */
    assert_int_equal(count(s, "<rect"), 2);
    assert_contains(s, "<rect x=\"300.0\" y=\"39.0\" width=\"410.0\" height=\"14.0\" "
                       "fill=\"#4e79a7\"/>");
    assert_contains(s, "<rect x=\"300.0\" y=\"63.0\" width=\"164.0\" height=\"14.0\" "
                       "fill=\"#f28e2b\"/>");
    /* one whisker: 30..50 */
    assert_int_equal(count(s, "class=\"ci\""), 1);
    assert_contains(s, "d=\"M423.0 70.0H505.0");
    /* values, ticks 0, 20, ..., 100, axis label */
    assert_contains(s, ">100.0 ± 0</text>");
    assert_contains(s, ">40.00 ± 10.00</text>");
    assert_contains(s, ">– no data</text>");
    for (int t = 0; t <= 100; t += 20) {
        char tick[32];
        snprintf(tick, sizeof tick, "text-anchor=\"middle\">%d</text>", t);
        assert_contains(s, tick);
    }
    assert_contains(s, ">decode tok/s</text>");
    /* labels: escaped, with the whole value in a tooltip */
    assert_lacks(s, "<b>");
    assert_contains(s, "<title>dev/&lt;b&gt;cell-b&lt;/b&gt;: 40.00 ± 10.00 tok/s (n=3)</title>");
    assert_contains(s, "<title>cell-c: – (no data)</title>");
    free(s);
}

static void bar_chart_of_forty_cells_grows_and_cuts_labels(void **state)
{
    (void)state;
    svg_bar bars[40];
    char labels[40][96];
    for (int k = 0; k < 40; k++) {
        snprintf(labels[k], sizeof labels[k],
                 "device-%02d/builtin-t4-c4096/a-long-model-name-q4_k_m/synthetic-pp512-tg128", k);
        bars[k] = (svg_bar){labels[k], NULL, 10.0 + k, 1.0, 5, (size_t)k};
    }
    svg_bar_chart c = {"t-many", "Many", "tok/s", "tok/s", bars, 40};
    memout m;
    mem_open(&m);
    svg_bar_chart_write(m.f, &c);
    char *s = mem_close(&m);
    assert_contains(s, "viewBox=\"0 0 860 1040\"");          /* 34 + 40 * 24 + 46 */
    assert_int_equal(count(s, "<rect"), 40);
    assert_contains(s, ">device-07/builtin-t4-…/synthetic-pp512-tg128</text>");
    assert_contains(s, "<title>device-07/builtin-t4-c4096/a-long-model-name-q4_k_m/"
                       "synthetic-pp512-tg128: 17.00 ± 1.00 tok/s (n=5)</title>");
    assert_contains(s, "fill=\"#4e79a7\"");                   /* palette repeats */
    free(s);
}

static void line_chart_draws_series_legend_and_step_cdf(void **state)
{
    (void)state;
    double x[] = {0, 1, 2}, y[] = {40, 45, 50};
    double cx[] = {10, 10, 20, 30}, cy[] = {0, 0.25, 0.5, 1};
    svg_series ts[] = {{"cpu <hot>", "dev/cpu <hot>", x, y, 3, 0, "cpu0_temp, repetition 0"},
                        {"other", NULL, x, y, 1, 11, NULL}};
    svg_line_chart c = {.id = "t-line", .title = "Temperature", .x_label = "time (s)",
                        .y_label = "temperature (°C)", .series = ts, .n = 2};
    memout m;
    mem_open(&m);
    svg_line_chart_write(m.f, &c);
    char *s = mem_close(&m);
    assert_contains(s, "<title id=\"t-line-t\">Temperature</title>");
    assert_contains(s, "<clipPath id=\"t-line-clip\">");
    assert_int_equal(count(s, "<polyline"), 2);
    assert_contains(s, "points=\"64.0,274.0 402.0,154.0 740.0,34.0 \"");   /* 0..2 s, 40..50 C */
    assert_contains(s, "<circle");                     /* the one-point series */
    assert_contains(s, "stroke-dasharray=\"6 3\"");    /* series 11: colour 1, dashed */
    assert_contains(s, "<title>dev/cpu &lt;hot&gt; (cpu0_temp, repetition 0)</title>");
    assert_contains(s, "<title>other</title>");
    assert_contains(s, ">cpu &lt;hot&gt;</text>");     /* legend */
    assert_contains(s, ">time (s)</text>");
    assert_contains(s, "rotate(-90");
    assert_contains(s, ">temperature (°C)</text>");
    free(s);

    svg_series cs[] = {{"cdf", NULL, cx, cy, 4, 0, NULL}};
    svg_line_chart cdf = {.id = "t-cdf", .title = "ITL", .x_label = "ms", .y_label = "fraction",
                          .series = cs, .n = 1, .step = true, .y_unit = true};
    mem_open(&m);
    svg_line_chart_write(m.f, &cdf);
    s = mem_close(&m);
    /* x 10..30 -> axis 10..30 step 5? the data starts near 0: axis from 0 */
    assert_contains(s, "text-anchor=\"end\">1.0</text>");     /* y fixed to [0, 1] */
    /* step: every point after the first is preceded by its horizontal move */
    const char *p = strstr(s, "points=\"");
    assert_non_null(p);
    int pairs = 0;
    for (const char *q = p + 8; *q && *q != '"'; q++)
        pairs += *q == ',';
    assert_int_equal(pairs, 7);
    free(s);
}

/* ---- a whole report ------------------------------------------------------ */

static melt_event ev(enum melt_event_kind k, int64_t t_ms)
{
    melt_event e;
    memset(&e, 0, sizeof e);
    e.kind = k;
    e.t_ns = t_ms * 1000000;
    e.req = e.i = e.id = -1;
    return e;
}

static void report_of_a_store_is_escaped_and_self_contained(void **state)
{
    (void)state;
    const char *path = scratch_path("report.db");
    remove(path);
    melt_store *s = NULL;
    melt_error err = {0};
    assert_int_equal(melt_store_open(path, &s, &err), 0);
    melt_run_meta meta = {.name = "r<1>", .host = "h\"x", .experiment = "name: </pre><script>"};
    int64_t run, cell, trial;
    assert_int_equal(melt_store_begin_run(s, &meta, &run, &err), 0);
    melt_cell_meta cm = {.cell_id = "<script>alert(1)</script>",
                         .model_json = "{\"name\":\"<i>m</i>\"}"};
    assert_int_equal(melt_store_add_cell(s, run, &cm, &cell, &err), 0);
    for (int rep = 0; rep < 2; rep++) {
        melt_event e[32];
        size_t n = 0;
        e[n] = ev(MELT_EV_REQUEST, 0); e[n].req = 0; e[n++].id = 10;
        e[n] = ev(MELT_EV_FIRST_TOKEN, 100); e[n++].req = 0;
        for (int i = 0; i < 5; i++) {
            e[n] = ev(MELT_EV_TOKEN, 100 + 10 * i);
            e[n].req = 0; e[n].i = i; e[n++].id = i;
        }
        e[n] = ev(MELT_EV_END, 150); e[n].req = 0; e[n++].id = 5;
        for (int k = 0; k < 3; k++) {
            e[n] = ev(MELT_EV_SAMPLE, 60 * k);
            snprintf(e[n].name, sizeof e[n].name, "thermal");
            snprintf(e[n].key, sizeof e[n].key, "cpu0_temp");
            snprintf(e[n].unit, sizeof e[n].unit, "mC");
            e[n].value = 40000 + 1000 * k;
            e[n++].has_value = true;
        }
        e[n] = ev(MELT_EV_ERROR, 160);
        snprintf(e[n++].msg, sizeof e[0].msg, "<img src=x onerror=alert(2)>");
        assert_int_equal(melt_store_begin_trial(s, cell, rep, false, &trial, &err), 0);
        assert_int_equal(melt_store_add_events(s, trial, e, n, &err), 0);
        assert_int_equal(melt_store_end_trial(s, trial, MELT_TRIAL_OK, &err), 0);
    }
    assert_int_equal(melt_store_end_run(s, run, "ok", &err), 0);

    memout m;
    mem_open(&m);
    assert_int_equal(melt_report_write(s, run, m.f, &err), 0);
    char *html = mem_close(&m);
    assert_lacks(html, "<script");
    assert_lacks(html, "<img");
    assert_lacks(html, "<i>");
    assert_lacks(html, "http");
    assert_contains(html, "&lt;script&gt;alert(1)&lt;/script&gt;");
    assert_contains(html, "&lt;img src=x onerror=alert(2)&gt;");
    assert_contains(html, "<pre>name: &lt;/pre&gt;&lt;script&gt;</pre>");
    assert_contains(html, "<title>melt report: r&lt;1&gt; (run ");
    assert_contains(html, "h&quot;x");
    assert_contains(html, "title=\"&lt;i&gt;m&lt;/i&gt;\"");     /* model name from JSON */
    /* decode, prefill, temperature, ITL; no energy or power data */
    assert_int_equal(count(html, "<svg "), 4);
    assert_contains(html, "No energy figures");
    assert_contains(html, "No power samples");
    assert_contains(html, ">100.0 <span class=\"ci\">± 0</span>");   /* decode tok/s */
    assert_contains(html, "2 error events");
    free(html);

    /* an unknown run */
    mem_open(&m);
    assert_int_equal(melt_report_write(s, run + 100, m.f, &err), MELT_ENOTFOUND);
    free(mem_close(&m));
    melt_store_close(s);
    remove(path);
}

static void chart_labels_leave_out_what_every_cell_shares(void **state)
{
    (void)state;
    const char *path = scratch_path("labels.db");
    remove(path);
    melt_store *s = NULL;
    melt_error err = {0};
    assert_int_equal(melt_store_open(path, &s, &err), 0);
    melt_run_meta meta = {.name = "labels"};
    int64_t run, cell;
    assert_int_equal(melt_store_begin_run(s, &meta, &run, &err), 0);
    const char *ids[] = {"phone/builtin-t1/tiny-q8_0/synthetic-pp64-tg32",
                         "phone/builtin-t2/tiny-q8_0/synthetic-pp64-tg32"};
    for (int k = 0; k < 2; k++) {
        melt_cell_meta cm = {.cell_id = ids[k]};
        assert_int_equal(melt_store_add_cell(s, run, &cm, &cell, &err), 0);
    }
    assert_int_equal(melt_store_end_run(s, run, "ok", &err), 0);
    memout m;
    mem_open(&m);
    assert_int_equal(melt_report_write(s, run, m.f, &err), 0);
    char *html = mem_close(&m);
    assert_contains(html, "every cell shares: <b>phone · tiny-q8_0 · synthetic-pp64-tg32</b>");
    assert_contains(html, "text-anchor=\"end\">builtin-t1</text>");
    assert_contains(html, "text-anchor=\"end\">builtin-t2</text>");
    assert_contains(html, "<title>phone/builtin-t2/tiny-q8_0/synthetic-pp64-tg32: – (no data)"
                          "</title>");
    /* names from the ids: no separate id column */
    assert_lacks(html, "<tr><th>cell</th><th>device</th>");
    assert_contains(html, "<td class=\"cell\" title=\"builtin-t2\">builtin-t2</td>");
    free(html);
    melt_store_close(s);
    remove(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(axis_ticks_are_round_numbers),
        cmocka_unit_test(axis_of_an_empty_or_bad_range_is_still_an_axis),
        cmocka_unit_test(tick_labels_and_values_have_no_exponent_or_negative_zero),
        cmocka_unit_test(html_escape_neutralizes_markup_quotes_and_bad_bytes),
        cmocka_unit_test(long_labels_are_cut_in_the_middle_on_code_points),
        cmocka_unit_test(bar_chart_draws_bars_whiskers_ticks_and_labels),
        cmocka_unit_test(bar_chart_of_forty_cells_grows_and_cuts_labels),
        cmocka_unit_test(line_chart_draws_series_legend_and_step_cdf),
        cmocka_unit_test(report_of_a_store_is_escaped_and_self_contained),
        cmocka_unit_test(chart_labels_leave_out_what_every_cell_shares),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

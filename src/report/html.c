/* The HTML report of a stored run (melt/report.h, docs/report.md): the
 * summaries from melt_results_compute, time series and latency
 * distributions read from the raw events, drawn with svg.c. One file, no
 * script, nothing fetched: inline CSS, inline SVG. */
#include "melt/report.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "melt/metrics.h"
#include "melt/results.h"
#include "melt_version.h"
#include "report/svg.h"

#define SERIES_MAX_POINTS 600   /* per time series, after min/max bucketing */
#define CDF_MAX_POINTS 400
#define ERRORS_MAX 50           /* error messages listed */

/* A growable (x, y) series. */
typedef struct xy {
    double *x, *y;
    size_t n, cap;
} xy;

static int xy_push(xy *s, double x, double y)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        double *nx = realloc(s->x, cap * sizeof *nx);
        if (!nx)
            return -1;
        s->x = nx;
        double *ny = realloc(s->y, cap * sizeof *ny);
        if (!ny)
            return -1;
        s->y = ny;
        s->cap = cap;
    }
    s->x[s->n] = x;
    s->y[s->n] = y;
    s->n++;
    return 0;
}

static void xy_free(xy *s)
{
    free(s->x);
    free(s->y);
    memset(s, 0, sizeof *s);
}

/* Keep at most max points: per bucket its minimum and maximum, in time
 * order, so peaks survive. */
static void xy_downsample(xy *s, size_t max)
{
    if (s->n <= max || max < 4)
        return;
    size_t nb = max / 2, w = 0;
    for (size_t b = 0; b < nb; b++) {
        size_t lo = b * s->n / nb, hi = (b + 1) * s->n / nb, imin = lo, imax = lo;
        for (size_t k = lo; k < hi; k++) {
            if (s->y[k] < s->y[imin]) imin = k;
            if (s->y[k] > s->y[imax]) imax = k;
        }
        size_t a = imin < imax ? imin : imax, c = imin < imax ? imax : imin;
        double ax = s->x[a], ay = s->y[a], cx = s->x[c], cy = s->y[c];
        s->x[w] = ax; s->y[w++] = ay;
        if (c != a) { s->x[w] = cx; s->y[w++] = cy; }
    }
    s->n = w;
}

typedef struct err_item {
    size_t cell;
    int repetition;
    char msg[MELT_EVENT_TEXT_MAX];
} err_item;

typedef struct cell_data {
    const melt_results_cell *rc;
    char *label;                 /* short name on charts (malloc'd) */
    char device[128], engine[128], model[128], workload[128];
    melt_trial_info *trials;
    size_t n_trials;
    double *itl;                 /* ms, pooled over the summarized trials */
    size_t n_itl, cap_itl;
    double itl_p99;
    xy temp, power;              /* of the representative trial */
    char temp_key[96], power_src[128];
    int rep;                     /* its repetition, -1 when none */
} cell_data;

typedef struct report {
    melt_store *s;
    melt_results *r;
    cell_data *cells;
    size_t n_cells;
    err_item errors[ERRORS_MAX];
    size_t n_errors, n_errors_total;
    char *experiment;
    char common[256];            /* id segments every cell shares, "/"-joined */
} report;

/* ---- data -------------------------------------------------------------- */

static int oom(melt_error *err) { return melt_errorf(err, MELT_ENOMEM, "report: out of memory"); }

/* A display name from a stored JSON description: its "name" or "id", a
 * string as is, else "" */
static void desc_name(const char *json, char *out, size_t n)
{
    out[0] = 0;
    if (!json)
        return;
    json_t *j = json_loads(json, JSON_DECODE_ANY, NULL);
    if (!j)
        return;
    const char *v = NULL;
    if (json_is_string(j))
        v = json_string_value(j);
    else if (json_is_object(j)) {
        static const char *const keys[] = {"name", "id", "preset", "backend", "kind"};
        for (size_t k = 0; k < sizeof keys / sizeof keys[0] && !v; k++)
            v = json_string_value(json_object_get(j, keys[k]));
    }
    if (v)
        snprintf(out, n, "%s", v);
    json_decref(j);
}

/* Device, engine, model and workload of a cell: from its descriptions, else
 * from an id of the form DEVICE/ENGINE/MODEL/WORKLOAD. */
static void cell_names(cell_data *d)
{
    const melt_cell_info *ci = &d->rc->info;
    desc_name(ci->device_json, d->device, sizeof d->device);
    desc_name(ci->engine_json, d->engine, sizeof d->engine);
    desc_name(ci->model_json, d->model, sizeof d->model);
    desc_name(ci->workload_json, d->workload, sizeof d->workload);
    const char *id = ci->cell_id;
    const char *sl[3];
    size_t ns = 0;
    for (const char *p = id; *p; p++)
        if (*p == '/') {
            if (ns == 3) { ns = 4; break; }
            sl[ns++] = p;
        }
    if (ns != 3)
        return;
    char *dst[4] = {d->device, d->engine, d->model, d->workload};
    const char *from[4] = {id, sl[0] + 1, sl[1] + 1, sl[2] + 1};
    const char *to[4] = {sl[0], sl[1], sl[2], id + strlen(id)};
    for (int k = 0; k < 4; k++)
        if (!dst[k][0])
            snprintf(dst[k], sizeof d->device, "%.*s", (int)(to[k] - from[k]), from[k]);
}

typedef struct tok { int32_t req, i; int64_t t; } tok;

static int tok_cmp(const void *a, const void *b)
{
    const tok *x = a, *y = b;
    if (x->req != y->req) return x->req < y->req ? -1 : 1;
    if (x->i != y->i) return x->i < y->i ? -1 : 1;
    return (x->t > y->t) - (x->t < y->t);
}

static int dbl_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Inter-token gaps of one trial (tokens ordered by index within a request). */
static int add_itl(cell_data *d, const melt_event *ev, size_t n)
{
    size_t nt = 0;
    for (size_t k = 0; k < n; k++)
        nt += ev[k].kind == MELT_EV_TOKEN;
    if (nt < 2)
        return 0;
    tok *t = malloc(nt * sizeof *t);
    if (!t)
        return -1;
    nt = 0;
    for (size_t k = 0; k < n; k++)
        if (ev[k].kind == MELT_EV_TOKEN)
            t[nt++] = (tok){ev[k].req, ev[k].i, ev[k].t_ns};
    qsort(t, nt, sizeof *t, tok_cmp);
    for (size_t k = 1; k < nt; k++) {
        if (t[k].req != t[k - 1].req)
            continue;
        if (d->n_itl == d->cap_itl) {
            size_t cap = d->cap_itl ? d->cap_itl * 2 : 256;
            double *p = realloc(d->itl, cap * sizeof *p);
            if (!p) {
                free(t);
                return -1;
            }
            d->itl = p;
            d->cap_itl = cap;
        }
        d->itl[d->n_itl++] = (double)(t[k].t - t[k - 1].t) / 1e6;
    }
    free(t);
    return 0;
}

static double temp_c(const melt_event *e)
{
    if (!strcasecmp(e->unit, "mC")) return e->value / 1000.0;
    if (!strcasecmp(e->unit, "C")) return e->value;
    return NAN;
}

static double power_w_factor(const char *u)
{
    if (!strcasecmp(u, "mW")) return 1e-3;
    if (!strcasecmp(u, "W")) return 1.0;
    if (!strcasecmp(u, "uW")) return 1e-6;
    return 0;
}

static double energy_j_factor(const char *u)
{
    if (!strcasecmp(u, "uJ")) return 1e-6;
    if (!strcasecmp(u, "mJ")) return 1e-3;
    if (!strcasecmp(u, "J")) return 1.0;
    return 0;
}

typedef struct samp { int64_t t; double v; } samp;

static int samp_cmp(const void *a, const void *b)
{
    const samp *x = a, *y = b;
    return (x->t > y->t) - (x->t < y->t);
}

/* The samples of key (value × factor of its unit, via f), sorted by time. */
static samp *samples_of(const melt_event *ev, size_t n, const char *key,
                        double (*f)(const char *), size_t *out_n)
{
    size_t c = 0;
    for (size_t k = 0; k < n; k++)
        c += ev[k].kind == MELT_EV_SAMPLE && ev[k].has_value && !strcmp(ev[k].key, key);
    *out_n = 0;
    samp *s = malloc((c ? c : 1) * sizeof *s);
    if (!s)
        return NULL;
    for (size_t k = 0; k < n; k++)
        if (ev[k].kind == MELT_EV_SAMPLE && ev[k].has_value && !strcmp(ev[k].key, key) &&
            f(ev[k].unit) > 0)
            s[(*out_n)++] = (samp){ev[k].t_ns, ev[k].value * f(ev[k].unit)};
    qsort(s, *out_n, sizeof *s, samp_cmp);
    return s;
}

/* Power of a counter at the midpoints of its samples (W); resets skipped. */
static int counter_power(const samp *s, size_t n, xy *out)
{
    for (size_t k = 1; k < n; k++) {
        double dt = (double)(s[k].t - s[k - 1].t) / 1e9, de = s[k].v - s[k - 1].v;
        if (dt <= 0 || de < 0)
            continue;
        if (xy_push(out, (double)(s[k].t / 2 + s[k - 1].t / 2), de / dt) < 0)
            return -1;
    }
    return 0;
}

/* Linear interpolation of s at x (held constant outside). */
static double interp(const xy *s, double x)
{
    if (!s->n) return 0;
    if (x <= s->x[0]) return s->y[0];
    if (x >= s->x[s->n - 1]) return s->y[s->n - 1];
    size_t lo = 0, hi = s->n - 1;
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (s->x[mid] <= x) lo = mid; else hi = mid;
    }
    double w = s->x[hi] - s->x[lo];
    return w > 0 ? s->y[lo] + (x - s->x[lo]) / w * (s->y[hi] - s->y[lo]) : s->y[lo];
}

/* Temperature (hottest sensor) and power (the metrics' power source) over
 * time in the representative trial; x in seconds from its first event. */
static int trial_series(cell_data *d, const melt_event *ev, size_t n, melt_error *err)
{
    if (!n)
        return 0;
    int64_t t0 = ev[0].t_ns;
    for (size_t k = 1; k < n; k++)
        if (ev[k].t_ns < t0) t0 = ev[k].t_ns;

    /* the hottest temperature sensor */
    const char *hot = NULL;
    double hot_max = -INFINITY;
    for (size_t k = 0; k < n; k++) {
        if (ev[k].kind != MELT_EV_SAMPLE || !ev[k].has_value) continue;
        double c = temp_c(&ev[k]);
        if (isfinite(c) && c > hot_max) {
            hot_max = c;
            hot = ev[k].key;
        }
    }
    if (hot) {
        snprintf(d->temp_key, sizeof d->temp_key, "%s", hot);
        for (size_t k = 0; k < n; k++)
            if (ev[k].kind == MELT_EV_SAMPLE && ev[k].has_value &&
                !strcmp(ev[k].key, d->temp_key) && isfinite(temp_c(&ev[k])) &&
                xy_push(&d->temp, (double)(ev[k].t_ns - t0) / 1e9, temp_c(&ev[k])) < 0)
                return oom(err);
    }

    melt_trial_metrics m;
    int mrc = melt_metrics_compute(ev, n, NULL, &m, err);
    if (mrc < 0)
        return mrc;
    snprintf(d->power_src, sizeof d->power_src, "%s", m.power_source);
    bool counter = !strncmp(m.power_source, "counter:", 8);
    bool power = !strncmp(m.power_source, "power:", 6);
    if (!counter && !power)
        return 0;
    char keys[128];
    snprintf(keys, sizeof keys, "%s", strchr(m.power_source, ':') + 1);
    xy sum = {0};
    int rc = 0;
    bool first = true;
    for (char *key = keys, *next; key && *key; key = next) {
        next = strchr(key, '+');
        if (next) *next++ = 0;
        size_t ns;
        samp *s = samples_of(ev, n, key, counter ? energy_j_factor : power_w_factor, &ns);
        if (!s) { rc = -1; break; }
        xy one = {0};
        if (counter)
            rc = counter_power(s, ns, &one);
        else
            for (size_t k = 0; k < ns && rc == 0; k++)
                rc = xy_push(&one, (double)s[k].t, s[k].v);
        free(s);
        if (rc < 0) { xy_free(&one); break; }
        if (first) {
            sum = one;       /* the first key's times carry the sum */
            first = false;
        } else {
            for (size_t k = 0; k < sum.n; k++)
                sum.y[k] += interp(&one, sum.x[k]);
            xy_free(&one);
        }
    }
    if (rc < 0) {
        xy_free(&sum);
        return oom(err);
    }
    for (size_t k = 0; k < sum.n; k++)
        sum.x[k] = (sum.x[k] - (double)t0) / 1e9;
    d->power = sum;
    return 0;
}

static int load_cell(report *rp, size_t ci, melt_error *err)
{
    cell_data *d = &rp->cells[ci];
    d->rep = -1;
    cell_names(d);
    int rc = melt_store_list_trials(rp->s, d->rc->info.rowid, &d->trials, &d->n_trials, err);
    if (rc < 0)
        return rc;
    for (size_t k = 0; k < d->n_trials; k++) {
        const melt_trial_info *t = &d->trials[k];
        /* summarized: the latest attempt of a measured repetition, ok
         * (the rule of melt_results_compute) */
        bool latest = !t->warmup && !(k + 1 < d->n_trials && !d->trials[k + 1].warmup &&
                                      d->trials[k + 1].repetition == t->repetition);
        bool used = latest && t->status == MELT_TRIAL_OK;
        melt_event *ev = NULL;
        size_t n = 0;
        if ((rc = melt_store_get_events(rp->s, t->id, &ev, &n, err)) < 0)
            return rc;
        for (size_t j = 0; j < n; j++) {
            if (ev[j].kind != MELT_EV_ERROR) continue;
            if (rp->n_errors < ERRORS_MAX) {
                err_item *e = &rp->errors[rp->n_errors++];
                e->cell = ci;
                e->repetition = t->repetition;
                snprintf(e->msg, sizeof e->msg, "%s", ev[j].msg);
            }
            rp->n_errors_total++;
        }
        if (used) {
            if (add_itl(d, ev, n) < 0)
                rc = oom(err);
            else if (d->rep < 0) {
                d->rep = t->repetition;
                rc = trial_series(d, ev, n, err);
            }
        }
        free(ev);
        if (rc < 0)
            return rc;
    }
    xy_downsample(&d->temp, SERIES_MAX_POINTS);
    xy_downsample(&d->power, SERIES_MAX_POINTS);
    if (d->n_itl) {
        qsort(d->itl, d->n_itl, sizeof *d->itl, dbl_cmp);
        d->itl_p99 = melt_percentile_sorted(d->itl, d->n_itl, 99);
    }
    return 0;
}

static void report_free(report *rp)
{
    for (size_t k = 0; k < rp->n_cells; k++) {
        cell_data *d = &rp->cells[k];
        free(d->label);
        free(d->trials);
        free(d->itl);
        xy_free(&d->temp);
        xy_free(&d->power);
    }
    free(rp->cells);
    free(rp->experiment);
    melt_results_free(rp->r);
}

/* Short chart labels: when every id has the same number of "/"-separated
 * segments, leave out the segments that all cells share (with 40 cells of
 * one workload, "dev/engine/model" is what tells them apart). */
#define SEG_MAX 16

static size_t split_id(const char *id, const char *seg[SEG_MAX], size_t len[SEG_MAX])
{
    size_t n = 0;
    const char *p = id;
    for (;;) {
        const char *e = strchr(p, '/');
        if (n == SEG_MAX)
            return SEG_MAX + 1;
        seg[n] = p;
        len[n++] = e ? (size_t)(e - p) : strlen(p);
        if (!e)
            return n;
        p = e + 1;
    }
}

static int make_labels(report *rp, melt_error *err)
{
    bool common[SEG_MAX] = {0};
    size_t nseg = 0;
    bool shorten = rp->n_cells >= 2;
    const char *seg0[SEG_MAX];
    size_t len0[SEG_MAX];
    if (shorten) {
        nseg = split_id(rp->cells[0].rc->info.cell_id, seg0, len0);
        shorten = nseg >= 2 && nseg <= SEG_MAX;
        for (size_t j = 0; shorten && j < nseg; j++)
            common[j] = true;
    }
    for (size_t k = 1; shorten && k < rp->n_cells; k++) {
        const char *seg[SEG_MAX];
        size_t len[SEG_MAX];
        if (split_id(rp->cells[k].rc->info.cell_id, seg, len) != nseg) {
            shorten = false;
            break;
        }
        for (size_t j = 0; j < nseg; j++)
            if (len[j] != len0[j] || memcmp(seg[j], seg0[j], len[j]))
                common[j] = false;
    }
    size_t n_common = 0;
    for (size_t j = 0; shorten && j < nseg; j++)
        n_common += common[j];
    if (n_common == 0 || n_common == nseg)
        shorten = false;
    size_t used = 0;
    for (size_t j = 0; shorten && j < nseg; j++)
        if (common[j] && used < sizeof rp->common)
            used += (size_t)snprintf(rp->common + used, sizeof rp->common - used, "%s%.*s",
                                     used ? " · " : "", (int)len0[j], seg0[j]);
    for (size_t k = 0; k < rp->n_cells; k++) {
        const char *id = rp->cells[k].rc->info.cell_id;
        char *l = malloc(strlen(id) + 1);
        if (!l)
            return oom(err);
        rp->cells[k].label = l;
        if (!shorten) {
            memcpy(l, id, strlen(id) + 1);
            continue;
        }
        const char *seg[SEG_MAX];
        size_t len[SEG_MAX], w = 0;
        split_id(id, seg, len);
        for (size_t j = 0; j < nseg; j++) {
            if (common[j])
                continue;
            if (w)
                l[w++] = '/';
            memcpy(l + w, seg[j], len[j]);
            w += len[j];
        }
        l[w] = 0;
    }
    return 0;
}

/* ---- page -------------------------------------------------------------- */

static const char css[] =
    "*{box-sizing:border-box}"
    "body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;"
    "color:#1d1d1f;background:#fff;margin:0 auto;padding:16px 24px 48px;max-width:1600px}"
    "h1{font-size:22px;margin:4px 0 8px}h2{font-size:17px;margin:28px 0 8px;"
    "border-bottom:1px solid #ddd;padding-bottom:4px}"
    "dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:8px 0}"
    "dl.meta dt{color:#666}dl.meta dd{margin:0;overflow-wrap:anywhere}"
    ".st{display:inline-block;padding:0 8px;border-radius:9px;font-size:12px;"
    "background:#e6f4ea;color:#1e6b34}.st.bad{background:#fde8e8;color:#9b1c1c}"
    "details{margin:8px 0}summary{cursor:pointer;color:#244f7a}"
    "pre{background:#f6f8fa;border:1px solid #e1e4e8;padding:8px 12px;overflow:auto;"
    "max-height:480px;font:12px/1.4 ui-monospace,'DejaVu Sans Mono',monospace}"
    ".scroll{overflow-x:auto;max-width:100%}"
    "table{border-collapse:collapse;font-size:13px;white-space:nowrap}"
    "th,td{padding:3px 7px;border-bottom:1px solid #e5e5e5;text-align:left}"
    "th{background:#f3f4f6;font-weight:600;white-space:normal;vertical-align:bottom}"
    "tbody tr:nth-child(even){background:#fafafa}"
    "td.num{text-align:right;font-variant-numeric:tabular-nums}th.num{text-align:right}"
    "td.na{color:#999;text-align:center}.ci{color:#666}.n{color:#888;font-size:11px}"
    "td.cell{max-width:320px;overflow:hidden;text-overflow:ellipsis}"
    ".sw{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:6px}"
    ".charts{display:flex;flex-wrap:wrap;gap:20px 28px;align-items:flex-start}"
    "figure{margin:0;max-width:100%}figcaption{color:#555;font-size:12px;max-width:760px}"
    "svg.chart{max-width:100%;height:auto;display:block}"
    "svg.chart text{font-size:12px;fill:#1d1d1f}"
    "svg.chart .ct{font-size:14px;font-weight:600}"
    "svg.chart .tick{fill:#555;font-size:11px}svg.chart .al{fill:#333}"
    "svg.chart .val{fill:#333;font-variant-numeric:tabular-nums}"
    "svg.chart .na,svg.chart .note{fill:#888;font-style:italic}"
    "svg.chart .grid{stroke:#e6e6e6}svg.chart .axis{stroke:#888;fill:none}"
    "svg.chart .ci{stroke:#222;stroke-width:1.3;fill:none}"
    "svg.chart g.bar:hover rect{opacity:.8}svg.chart g.series:hover polyline{stroke-width:3}"
    "p.note{color:#666;font-style:italic}"
    "footer{margin-top:32px;color:#888;font-size:12px}";

static void esc(FILE *out, const char *s) { melt_html_escape(out, s); }

static const melt_results_metric *metric(const melt_results_cell *c, const char *name)
{
    for (size_t k = 0; k < c->n_metrics; k++)
        if (!strcmp(c->metrics[k].name, name))
            return &c->metrics[k];
    return NULL;
}

static double metric_mean(const melt_results_cell *c, const char *name)
{
    const melt_results_metric *m = metric(c, name);
    return m && m->s.n ? m->s.mean : NAN;
}

/* One summary-table cell: mean ± ci (scaled), details in the tooltip. */
static void td_metric(FILE *out, const melt_results_cell *c, const char *name, double f)
{
    const melt_results_metric *m = metric(c, name);
    if (!m || !m->s.n || !isfinite(m->s.mean)) {
        fputs("<td class=\"na\">–</td>", out);
        return;
    }
    const melt_summary *s = &m->s;
    char a[64], sd[64], mn[64], md[64], mx[64];
    svg_fmt_value(sd, sizeof sd, s->stddev * f);
    svg_fmt_value(mn, sizeof mn, s->min * f);
    svg_fmt_value(md, sizeof md, s->median * f);
    svg_fmt_value(mx, sizeof mx, s->max * f);
    fprintf(out, "<td class=\"num\" title=\"%s: n=%zu, stddev %s, min %s, median %s, max %s\">",
            name, s->n, sd, mn, md, mx);
    svg_fmt_mean_ci(a, sizeof a, s->mean * f, s->ci95 * f);
    char *pm = strstr(a, " ± ");
    if (pm) {
        *pm = 0;
        fprintf(out, "%s <span class=\"ci\">± %s</span>", a, pm + strlen(" ± "));
    } else {
        fputs(a, out);
    }
    if ((int)s->n != c->n_ok)
        fprintf(out, " <span class=\"n\">n=%zu</span>", s->n);
    fputs("</td>", out);
}

static void td_text(FILE *out, const char *s)
{
    if (!s || !*s) {
        fputs("<td class=\"na\">–</td>", out);
        return;
    }
    fputs("<td class=\"cell\" title=\"", out);
    esc(out, s);
    fputs("\">", out);
    svg_escape_cut(out, s, 24);
    fputs("</td>", out);
}

static void write_header(FILE *out, const report *rp)
{
    const melt_run_info *run = &rp->r->run;
    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
          "<title>melt report: ", out);
    esc(out, run->name);
    fprintf(out, " (run %lld)</title>\n<style>%s</style>\n</head>\n<body>\n<header>\n"
            "<h1>melt report: ", (long long)run->id, css);
    esc(out, run->name);
    fputs("</h1>\n<dl class=\"meta\">\n", out);
    fprintf(out, "<dt>run</dt><dd>%lld</dd>\n", (long long)run->id);
    fprintf(out, "<dt>status</dt><dd><span class=\"st%s\" id=\"run-status\">",
            strcmp(run->status, "ok") ? " bad" : "");
    esc(out, run->status);
    fputs("</span></dd>\n<dt>started</dt><dd>", out);
    esc(out, run->started[0] ? run->started : "–");
    fputs("</dd>\n<dt>finished</dt><dd>", out);
    esc(out, run->finished[0] ? run->finished : "–");
    fputs("</dd>\n<dt>host</dt><dd>", out);
    esc(out, run->host[0] ? run->host : "–");
    fputs("</dd>\n<dt>melt</dt><dd>", out);
    esc(out, run->melt_version[0] ? run->melt_version : "–");
    if (run->melt_commit[0]) {
        fputs(" (commit ", out);
        esc(out, run->melt_commit);
        fputs(")", out);
    }
    int64_t tot = 0, ok = 0;
    for (size_t k = 0; k < rp->r->n_cells; k++) {
        tot += rp->r->cells[k].n_trials;
        ok += rp->r->cells[k].n_ok;
    }
    size_t warm = 0, stored = 0;
    for (size_t k = 0; k < rp->n_cells; k++) {
        stored += rp->cells[k].n_trials;
        for (size_t j = 0; j < rp->cells[k].n_trials; j++)
            warm += rp->cells[k].trials[j].warmup;
    }
    size_t retried = stored - warm - (size_t)tot;
    fprintf(out, "</dd>\n<dt>cells</dt><dd id=\"n-cells\">%zu</dd>\n"
            "<dt>trials</dt><dd id=\"n-trials\">%lld ok of %lld measured", rp->r->n_cells,
            (long long)ok, (long long)tot);
    if (warm)
        fprintf(out, "; %zu warm-up", warm);
    if (retried)
        fprintf(out, "; %zu earlier attempt%s replaced by a retry", retried,
                retried == 1 ? "" : "s");
    fputs("</dd>\n", out);
    if (rp->n_errors_total)
        fprintf(out, "<dt>errors</dt><dd><a href=\"#errors\">%zu error event%s</a></dd>\n",
                rp->n_errors_total, rp->n_errors_total == 1 ? "" : "s");
    fputs("</dl>\n<details id=\"experiment\"><summary>Experiment</summary>\n", out);
    if (rp->experiment) {
        fputs("<pre>", out);
        esc(out, rp->experiment);
        fputs("</pre>\n", out);
    } else {
        fputs("<p class=\"note\">No experiment text stored with this run.</p>\n", out);
    }
    fputs("</details>\n</header>\n", out);
}

static void write_table(FILE *out, const report *rp)
{
    /* The id column only when some cell has no device/engine/model/workload
     * names (ids of the form DEVICE/ENGINE/MODEL/WORKLOAD give all four). */
    bool show_id = false;
    for (size_t k = 0; k < rp->n_cells; k++) {
        const cell_data *d = &rp->cells[k];
        if (!d->device[0] && !d->engine[0] && !d->model[0] && !d->workload[0])
            show_id = true;
    }
    fprintf(out, "<h2 id=\"summary\">Summary</h2>\n<p>Mean ± 95%% confidence interval over "
            "the repetitions of each cell (trials that ended ok); hover a value for n, stddev, "
            "min, median and max, a name for the whole cell id. “–”: not measured. "
            "Definitions: docs/metrics.md.</p>\n<div class=\"scroll\"><table "
            "id=\"summary-table\">\n<thead><tr>%s<th>device</th><th>engine</th><th>model</th>"
            "<th>workload</th><th class=\"num\">trials ok</th><th class=\"num\">TTFT ms</th>"
            "<th class=\"num\">prefill tok/s</th><th class=\"num\">decode tok/s</th>"
            "<th class=\"num\">ITL p50 ms</th><th class=\"num\">ITL p99 ms</th>"
            "<th class=\"num\">E2E ms</th><th class=\"num\">peak RSS MiB</th>"
            "<th class=\"num\">J/token</th><th class=\"num\">max temp °C</th>"
            "<th class=\"num\">throttled</th></tr></thead>\n<tbody>\n",
            show_id ? "<th>cell</th>" : "");
    for (size_t k = 0; k < rp->n_cells; k++) {
        const cell_data *d = &rp->cells[k];
        const melt_results_cell *c = d->rc;
        fputs("<tr><td class=\"cell\" title=\"", out);
        esc(out, c->info.cell_id);
        fprintf(out, "\"><span class=\"sw\" style=\"background:%s\"></span>", svg_color(k));
        if (show_id) {
            svg_escape_cut(out, c->info.cell_id, 36);
            fputs("</td>", out);
            td_text(out, d->device);
        } else if (d->device[0]) {
            svg_escape_cut(out, d->device, 24);
            fputs("</td>", out);
        } else {
            fputs("–</td>", out);
        }
        td_text(out, d->engine);
        td_text(out, d->model);
        td_text(out, d->workload);
        fprintf(out, "<td class=\"num\">%d/%d</td>", c->n_ok, c->n_trials);
        td_metric(out, c, "ttft_ms", 1);
        td_metric(out, c, "prefill_tps", 1);
        td_metric(out, c, "decode_tps", 1);
        td_metric(out, c, "itl_ms.p50", 1);
        td_metric(out, c, "itl_ms.p99", 1);
        td_metric(out, c, "e2e_ms", 1);
        td_metric(out, c, "peak_rss_bytes", 1.0 / 1048576.0);
        td_metric(out, c, "j_per_token", 1);
        td_metric(out, c, "temp_max_c", 1);
        const melt_results_metric *th = metric(c, "throttled");
        if (!th || !th->s.n || !isfinite(th->s.mean)) {
            fputs("<td class=\"na\">–</td>", out);
        } else {
            long yes = lround(th->s.mean * (double)th->s.n);
            char ms[64];
            svg_fmt_value(ms, sizeof ms, metric_mean(c, "throttled_ms"));
            if (yes)
                fprintf(out, "<td class=\"num\" title=\"mean throttled time %s ms\">"
                        "yes (%ld/%zu)</td>", ms, yes, th->s.n);
            else
                fprintf(out, "<td class=\"num\">no (0/%zu)</td>", th->s.n);
        }
        fputs("</tr>\n", out);
    }
    if (!rp->n_cells)
        fprintf(out, "<tr><td colspan=\"%d\" class=\"na\">no cells</td></tr>\n",
                show_id ? 16 : 15);
    fputs("</tbody></table></div>\n", out);
}

static void bar_chart(FILE *out, const report *rp, const char *id, const char *title,
                      const char *metric_name, const char *axis, const char *unit,
                      svg_bar *bars)
{
    for (size_t k = 0; k < rp->n_cells; k++) {
        const melt_results_metric *m = metric(rp->cells[k].rc, metric_name);
        bars[k] = (svg_bar){rp->cells[k].label, rp->cells[k].rc->info.cell_id, NAN, NAN, 0, k};
        if (m && m->s.n) {
            bars[k].value = m->s.mean;
            bars[k].ci = m->s.ci95;
            bars[k].n = m->s.n;
        }
    }
    svg_bar_chart c = {id, title, axis, unit, bars, rp->n_cells};
    fputs("<figure>\n", out);
    svg_bar_chart_write(out, &c);
    fputs("</figure>\n", out);
}

static bool any_metric(const report *rp, const char *name)
{
    for (size_t k = 0; k < rp->n_cells; k++)
        if (isfinite(metric_mean(rp->cells[k].rc, name)))
            return true;
    return false;
}

/* Tooltip details of the time series: "KEY, repetition R" per cell. */
static char **series_details(const report *rp, bool temp)
{
    char **det = calloc(rp->n_cells ? rp->n_cells : 1, sizeof *det);
    if (!det)
        return NULL;
    for (size_t k = 0; k < rp->n_cells; k++) {
        const cell_data *d = &rp->cells[k];
        const char *src = temp ? d->temp_key : strchr(d->power_src, ':');
        src = src ? (temp ? src : src + 1) : "";
        size_t len = strlen(src) + 48;
        if (!(det[k] = malloc(len))) {
            for (size_t j = 0; j < k; j++) free(det[j]);
            free(det);
            return NULL;
        }
        snprintf(det[k], len, "%s, repetition %d", src, d->rep);
    }
    return det;
}

static int time_chart(FILE *out, const report *rp, bool temp, melt_error *err)
{
    svg_series *ss = calloc(rp->n_cells ? rp->n_cells : 1, sizeof *ss);
    char **names = series_details(rp, temp);
    if (!ss || !names) {
        free(ss);
        free(names);
        return oom(err);
    }
    size_t n = 0;
    for (size_t k = 0; k < rp->n_cells; k++) {
        const xy *s = temp ? &rp->cells[k].temp : &rp->cells[k].power;
        if (s->n)
            ss[n++] = (svg_series){rp->cells[k].label, rp->cells[k].rc->info.cell_id, s->x,
                                   s->y, s->n, k, names[k]};
    }
    svg_line_chart c = {
        .id = temp ? "chart-temp" : "chart-power",
        .title = temp ? "Temperature over time" : "Power over time",
        .x_label = "time since the trial's first event (s)",
        .y_label = temp ? "temperature (°C)" : "power (W)",
        .series = ss, .n = n, .y_zero = !temp,
    };
    fputs("<figure>\n", out);
    svg_line_chart_write(out, &c);
    fprintf(out, "<figcaption>%s</figcaption>\n</figure>\n",
            temp ? "The hottest sensor of one trial per cell (its first summarized repetition)."
                 : "The power source of the energy figures (a power rail, or the rate of "
                   "energy counters) in one trial per cell.");
    for (size_t k = 0; k < rp->n_cells; k++)
        free(names[k]);
    free(names);
    free(ss);
    return 0;
}

static int itl_chart(FILE *out, const report *rp, melt_error *err)
{
    svg_series *ss = calloc(rp->n_cells ? rp->n_cells : 1, sizeof *ss);
    xy *pts = calloc(rp->n_cells ? rp->n_cells : 1, sizeof *pts);
    if (!ss || !pts) {
        free(ss);
        free(pts);
        return oom(err);
    }
    int rc = 0;
    size_t n = 0;
    double gmax = 0, p99max = 0;
    for (size_t k = 0; k < rp->n_cells && rc == 0; k++) {
        const cell_data *d = &rp->cells[k];
        if (!d->n_itl)
            continue;
        gmax = fmax(gmax, d->itl[d->n_itl - 1]);
        p99max = fmax(p99max, d->itl_p99);
        size_t m = d->n_itl <= CDF_MAX_POINTS ? d->n_itl : CDF_MAX_POINTS;
        rc = xy_push(&pts[k], d->itl[0], 0);
        for (size_t j = 0; j < m && rc == 0; j++) {
            size_t idx = m == d->n_itl ? j : (size_t)llround((double)j * (double)(d->n_itl - 1) /
                                                             (double)(m - 1));
            rc = xy_push(&pts[k], d->itl[idx], (double)(idx + 1) / (double)d->n_itl);
        }
        ss[n++] = (svg_series){d->label, d->rc->info.cell_id, pts[k].x, pts[k].y, pts[k].n, k,
                               NULL};
    }
    if (rc == 0) {
        char note[96] = "";
        double xmax = 0;
        if (p99max > 0 && gmax > 2 * p99max) {
            xmax = p99max * 1.25;
            char v[32];
            svg_fmt_value(v, sizeof v, xmax);
            snprintf(note, sizeof note, "x axis cut at %s ms (1.25 × the largest p99)", v);
        }
        svg_line_chart c = {
            .id = "chart-itl", .title = "Inter-token latency (CDF)",
            .x_label = "inter-token latency (ms)", .y_label = "fraction of gaps",
            .series = ss, .n = n, .step = true, .y_unit = true, .x_max = xmax,
            .note = note[0] ? note : NULL,
        };
        fputs("<figure>\n", out);
        svg_line_chart_write(out, &c);
        fputs("<figcaption>Gaps between consecutive tokens of a request, pooled over the "
              "summarized trials of each cell.</figcaption>\n</figure>\n", out);
    } else {
        rc = oom(err);
    }
    for (size_t k = 0; k < rp->n_cells; k++)
        xy_free(&pts[k]);
    free(pts);
    free(ss);
    return rc;
}

static void write_details(FILE *out, const report *rp)
{
    if (rp->n_errors_total) {
        fprintf(out, "<h2 id=\"errors\">Errors</h2>\n<p>%zu error event%s", rp->n_errors_total,
                rp->n_errors_total == 1 ? "" : "s");
        if (rp->n_errors_total > rp->n_errors)
            fprintf(out, " (the first %zu listed)", rp->n_errors);
        fputs(".</p>\n<div class=\"scroll\"><table id=\"errors-table\"><thead><tr><th>cell</th>"
              "<th class=\"num\">repetition</th><th>message</th></tr></thead><tbody>\n", out);
        for (size_t k = 0; k < rp->n_errors; k++) {
            fputs("<tr>", out);
            td_text(out, rp->cells[rp->errors[k].cell].rc->info.cell_id);
            fprintf(out, "<td class=\"num\">%d</td><td>", rp->errors[k].repetition);
            esc(out, rp->errors[k].msg);
            fputs("</td></tr>\n", out);
        }
        fputs("</tbody></table></div>\n", out);
    }
    fputs("<h2 id=\"trials\">Trials and cells</h2>\n<details><summary>Every stored trial"
          "</summary>\n<div class=\"scroll\"><table><thead><tr><th>cell</th>"
          "<th class=\"num\">repetition</th><th>kind</th><th>status</th>"
          "<th class=\"num\">events</th><th class=\"num\">clock offset ms (host &minus; device)</th>"
          "</tr></thead>"
          "<tbody>\n", out);
    for (size_t k = 0; k < rp->n_cells; k++) {
        const cell_data *d = &rp->cells[k];
        for (size_t j = 0; j < d->n_trials; j++) {
            const melt_trial_info *t = &d->trials[j];
            fputs("<tr>", out);
            td_text(out, d->rc->info.cell_id);
            fprintf(out, "<td class=\"num\">%d</td><td>%s</td><td><span class=\"st%s\">%s"
                    "</span></td><td class=\"num\">%lld</td>", t->repetition,
                    t->warmup ? "warm-up" : "measured", t->status == MELT_TRIAL_OK ? "" : " bad",
                    melt_trial_status_name(t->status), (long long)t->n_events);
            if (t->has_clock)
                fprintf(out, "<td class=\"num\">%.3f ± %.3f</td>", (double)t->clock_offset_ns / 1e6,
                        (double)t->clock_rtt_ns / 2e6);   /* host = device + offset */
            else
                fputs("<td class=\"na\">–</td>", out);
            fputs("</tr>\n", out);
        }
    }
    fputs("</tbody></table></div>\n</details>\n<details><summary>Cell metadata</summary>\n"
          "<div class=\"scroll\"><table><thead><tr><th>cell</th><th>device model</th>"
          "<th>kernel</th><th>governor</th><th>CPU features</th><th>model sha256</th></tr>"
          "</thead><tbody>\n", out);
    for (size_t k = 0; k < rp->n_cells; k++) {
        const melt_cell_info *ci = &rp->cells[k].rc->info;
        fputs("<tr>", out);
        td_text(out, ci->cell_id);
        td_text(out, ci->device_model);
        td_text(out, ci->kernel);
        td_text(out, ci->governor);
        td_text(out, ci->cpu_features);
        td_text(out, ci->model_sha256);
        fputs("</tr>\n", out);
    }
    fputs("</tbody></table></div>\n</details>\n", out);
}

static int write_page(FILE *out, const report *rp, melt_error *err)
{
    write_header(out, rp);
    fputs("<main>\n", out);
    write_table(out, rp);

    svg_bar *bars = calloc(rp->n_cells ? rp->n_cells : 1, sizeof *bars);
    if (!bars)
        return oom(err);
    fputs("<h2 id=\"throughput\">Throughput</h2>\n", out);
    if (rp->common[0]) {
        fputs("<p id=\"common\">Chart labels leave out what every cell shares: <b>", out);
        esc(out, rp->common);
        fputs("</b>. Hover a bar or line for the whole cell id.</p>\n", out);
    }
    fputs("<div class=\"charts\">\n", out);
    bar_chart(out, rp, "chart-decode", "Decode throughput by cell", "decode_tps",
              "decode tok/s (mean ± 95% CI)", "tok/s", bars);
    bar_chart(out, rp, "chart-prefill", "Prefill throughput by cell", "prefill_tps",
              "prefill tok/s (mean ± 95% CI)", "tok/s", bars);
    fputs("</div>\n<h2 id=\"energy\">Energy</h2>\n", out);
    if (any_metric(rp, "j_per_token")) {
        fputs("<div class=\"charts\">\n", out);
        bar_chart(out, rp, "chart-energy", "Energy per generated token by cell", "j_per_token",
                  "J/token, prefill + decode (mean ± 95% CI)", "J/tok", bars);
        fputs("</div>\n", out);
    } else {
        fputs("<p class=\"note\">No energy figures: no power or energy samples in this run."
              "</p>\n", out);
    }
    free(bars);

    bool any_temp = false, any_power = false, any_itl = false;
    for (size_t k = 0; k < rp->n_cells; k++) {
        any_temp |= rp->cells[k].temp.n > 0;
        any_power |= rp->cells[k].power.n > 0;
        any_itl |= rp->cells[k].n_itl > 0;
    }
    int rc = 0;
    fputs("<h2 id=\"over-time\">Temperature and power over time</h2>\n<div class=\"charts\">\n",
          out);
    if (any_temp && (rc = time_chart(out, rp, true, err)) < 0)
        return rc;
    if (any_power && (rc = time_chart(out, rp, false, err)) < 0)
        return rc;
    fputs("</div>\n", out);
    if (!any_temp)
        fputs("<p class=\"note\">No temperature samples in this run.</p>\n", out);
    if (!any_power)
        fputs("<p class=\"note\">No power samples in this run.</p>\n", out);
    fputs("<h2 id=\"latency\">Latency</h2>\n", out);
    if (any_itl) {
        fputs("<div class=\"charts\">\n", out);
        if ((rc = itl_chart(out, rp, err)) < 0)
            return rc;
        fputs("</div>\n", out);
    } else {
        fputs("<p class=\"note\">No inter-token gaps: no request generated two tokens.</p>\n",
              out);
    }
    write_details(out, rp);
    fputs("</main>\n<footer>Written by melt " MELT_VERSION " (commit " MELT_GIT_COMMIT
          "). A self-contained file: no script, nothing loaded from the network.</footer>\n"
          "</body>\n</html>\n", out);
    return 0;
}

int melt_report_write(melt_store *s, int64_t run_id, FILE *out, melt_error *err)
{
    report rp = {.s = s};
    int rc = melt_results_compute(s, run_id, &rp.r, err);
    if (rc < 0)
        return rc;
    if ((rc = melt_store_run_experiment(s, run_id, &rp.experiment, err)) < 0)
        goto done;
    rp.cells = calloc(rp.r->n_cells ? rp.r->n_cells : 1, sizeof *rp.cells);
    if (!rp.cells) {
        rc = oom(err);
        goto done;
    }
    rp.n_cells = rp.r->n_cells;
    for (size_t k = 0; k < rp.n_cells; k++)
        rp.cells[k].rc = &rp.r->cells[k];
    for (size_t k = 0; k < rp.n_cells; k++)
        if ((rc = load_cell(&rp, k, err)) < 0)
            goto done;
    if ((rc = make_labels(&rp, err)) < 0)
        goto done;
    if ((rc = write_page(out, &rp, err)) < 0)
        goto done;
    if (fflush(out) != 0 || ferror(out))
        rc = melt_errorf(err, MELT_EIO, "report: write failed");
done:
    report_free(&rp);
    return rc;
}

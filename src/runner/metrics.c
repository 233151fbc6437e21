/* Metrics of one trial from its event stream; summaries over repetitions.
 * Definitions: docs/metrics.md. Dependency-free (libc + libm). */
#include "melt/metrics.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- small helpers ---------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static bool contains_ci(const char *s, const char *sub)
{
    const size_t n = strlen(sub);
    for (; *s; s++)
        if (strncasecmp(s, sub, n) == 0)
            return true;
    return false;
}

static double ns_to_ms(int64_t ns) { return (double)ns / 1e6; }

double melt_percentile_sorted(const double *sorted, size_t n, double p)
{
    if (n == 0 || !(p >= 0 && p <= 100))
        return NAN;
    const double h = (double)(n - 1) * p / 100.0;
    const size_t lo = (size_t)floor(h);
    if (lo + 1 >= n)
        return sorted[n - 1];
    return sorted[lo] + (h - (double)lo) * (sorted[lo + 1] - sorted[lo]);
}

double melt_t975(size_t df)
{
    static const double t[31] = {
        NAN, 12.706204736174698, 4.302652729749464, 3.182446305284263, 2.776445105197793,
        2.570581835636314, 2.446911851144969, 2.364624251592784, 2.306004135204166,
        2.262157162798205, 2.228138851986274, 2.200985160091640, 2.178812829667228,
        2.160368656462793, 2.144786687917804, 2.131449545559774, 2.119905299221254,
        2.109815577833317, 2.100922040241035, 2.093024054408263, 2.085963447265837,
        2.079613844727680, 2.073873067904015, 2.068657610419041, 2.063898561628021,
        2.059538552753294, 2.055529438642871, 2.051830516480283, 2.048407141795244,
        2.045229642132703, 2.042272456301238,
    };
    if (df < 1)
        return NAN;
    if (df <= 30)
        return t[df];
    /* Cornish-Fisher expansion of the t quantile around the normal one. */
    const double z = 1.959963984540054, v = (double)df;
    const double z3 = z * z * z, z5 = z3 * z * z, z7 = z5 * z * z, z9 = z7 * z * z;
    return z + (z3 + z) / (4 * v) + (5 * z5 + 16 * z3 + 3 * z) / (96 * v * v)
           + (3 * z7 + 19 * z5 + 17 * z3 - 15 * z) / (384 * v * v * v)
           + (79 * z9 + 776 * z7 + 1482 * z5 - 1920 * z3 - 945 * z) / (92160 * v * v * v * v);
}

void melt_summary_compute(const double *x, size_t n, melt_summary *out)
{
    melt_summary s = {0, NAN, NAN, NAN, NAN, NAN, NAN};
    double *v = n ? malloc(n * sizeof *v) : NULL;
    size_t k = 0;
    for (size_t i = 0; v && i < n; i++)
        if (isfinite(x[i]))
            v[k++] = x[i];
    if (k > 0) {
        qsort(v, k, sizeof *v, cmp_double);
        double sum = 0;
        for (size_t i = 0; i < k; i++)
            sum += v[i];
        s.n = k;
        s.mean = sum / (double)k;
        s.min = v[0];
        s.max = v[k - 1];
        s.median = melt_percentile_sorted(v, k, 50);
        if (k >= 2) {
            double ss = 0;
            for (size_t i = 0; i < k; i++)
                ss += (v[i] - s.mean) * (v[i] - s.mean);
            s.stddev = sqrt(ss / (double)(k - 1));
            s.ci95 = melt_t975(k - 1) * s.stddev / sqrt((double)k);
        }
    }
    free(v);
    *out = s;
}

/* ---- intervals -------------------------------------------------------- */

typedef struct { int64_t a, b; } span;
typedef struct { span *v; size_t n, cap; } spans;

static int spans_push(spans *s, int64_t a, int64_t b)
{
    if (b < a)
        return 0;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        span *v = realloc(s->v, cap * sizeof *v);
        if (!v)
            return -1;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = (span){a, b};
    return 0;
}

static double spans_ms(const spans *s)
{
    int64_t t = 0;
    for (size_t i = 0; i < s->n; i++)
        t += s->v[i].b - s->v[i].a;
    return s->n ? ns_to_ms(t) : NAN;
}

enum { PH_LOAD, PH_IDLE, PH_PREFILL, PH_DECODE, PH_COUNT };
static const char *const phase_names[PH_COUNT] = {"load", "idle", "prefill", "decode"};

/* ---- samples, grouped by key ------------------------------------------ */

typedef struct {
    const char *key, *unit;
    int64_t t;
    size_t seq;
    double v;
} samp;

static int cmp_samp(const void *pa, const void *pb)
{
    const samp *a = pa, *b = pb;
    int c = strcmp(a->key, b->key);
    if (c)
        return c;
    if (a->t != b->t)
        return (a->t > b->t) - (a->t < b->t);
    return (a->seq > b->seq) - (a->seq < b->seq);
}

/* Factor from a power unit to W, or 0 when unit is not one. */
static double power_unit_w(const char *u)
{
    if (!strcasecmp(u, "mW")) return 1e-3;
    if (!strcasecmp(u, "W")) return 1.0;
    if (!strcasecmp(u, "uW")) return 1e-6;
    return 0;
}

/* Factor from an energy unit to J, or 0 when unit is not one. */
static double energy_unit_j(const char *u)
{
    if (!strcasecmp(u, "uJ")) return 1e-6;
    if (!strcasecmp(u, "mJ")) return 1e-3;
    if (!strcasecmp(u, "J")) return 1.0;
    return 0;
}

static double bytes_unit(const char *u)
{
    if (!*u || !strcasecmp(u, "B") || !strcasecmp(u, "bytes")) return 1.0;
    if (!strcasecmp(u, "kB") || !strcasecmp(u, "KiB") || !strcasecmp(u, "KB")) return 1024.0;
    if (!strcasecmp(u, "MB") || !strcasecmp(u, "MiB")) return 1048576.0;
    return 0;
}

/* A group: s[lo..hi) share one key, sorted by time. */
typedef struct { size_t lo, hi; } group;

/* Energy (J) over [a, b] of a power series (W): piecewise-linear through
 * the samples, held constant before the first and after the last. */
static double power_integral(const samp *s, size_t n, double f, int64_t a, int64_t b)
{
    if (n == 0 || b <= a)
        return 0;
    double e = 0;
    if (a < s[0].t) {
        const int64_t v = b < s[0].t ? b : s[0].t;
        e += (double)(v - a) * s[0].v * f;
    }
    for (size_t j = 0; j + 1 < n; j++) {
        const int64_t t0 = s[j].t, t1 = s[j + 1].t;
        const int64_t u = a > t0 ? a : t0, w = b < t1 ? b : t1;
        if (w <= u || t1 <= t0)
            continue;
        const double p0 = s[j].v * f, p1 = s[j + 1].v * f;
        const double pu = p0 + (p1 - p0) * (double)(u - t0) / (double)(t1 - t0);
        const double pw = p0 + (p1 - p0) * (double)(w - t0) / (double)(t1 - t0);
        e += (double)(w - u) * (pu + pw) / 2;
    }
    if (b > s[n - 1].t) {
        const int64_t u = a > s[n - 1].t ? a : s[n - 1].t;
        e += (double)(b - u) * s[n - 1].v * f;
    }
    return e / 1e9;
}

/* Cumulative energy (J) at t of a counter series whose unwrapped running
 * total is cum[]: linear between samples, constant outside. */
static double counter_at(const samp *s, const double *cum, size_t n, int64_t t)
{
    if (t <= s[0].t)
        return cum[0];
    if (t >= s[n - 1].t)
        return cum[n - 1];
    size_t lo = 0, hi = n - 1;        /* s[lo].t < t < s[hi].t */
    while (hi - lo > 1) {
        const size_t mid = lo + (hi - lo) / 2;
        if (s[mid].t <= t) lo = mid; else hi = mid;
    }
    if (s[hi].t == s[lo].t)
        return cum[hi];
    return cum[lo] + (cum[hi] - cum[lo]) * (double)(t - s[lo].t) / (double)(s[hi].t - s[lo].t);
}

typedef struct {
    bool counter;
    size_t n_groups;
    const samp *s;
    group g[8];
    double f[8];
    double *cum[8];
} power_src;

static double source_energy(const power_src *p, int64_t a, int64_t b)
{
    double e = 0;
    for (size_t k = 0; k < p->n_groups; k++) {
        const samp *s = p->s + p->g[k].lo;
        const size_t n = p->g[k].hi - p->g[k].lo;
        if (p->counter)
            e += counter_at(s, p->cum[k], n, b) - counter_at(s, p->cum[k], n, a);
        else
            e += power_integral(s, n, p->f[k], a, b);
    }
    return e;
}

static void phase_energy(const power_src *p, const spans *sp, melt_phase_energy *pe)
{
    pe->duration_ms = spans_ms(sp);
    pe->energy_j = pe->avg_power_w = pe->energy_net_j = pe->avg_power_net_w = NAN;
    if (!p->n_groups || !sp->n)
        return;
    double e = 0;
    for (size_t i = 0; i < sp->n; i++)
        e += source_energy(p, sp->v[i].a, sp->v[i].b);
    pe->energy_j = e;
    if (pe->duration_ms > 0)
        pe->avg_power_w = e / (pe->duration_ms / 1e3);
}

/* ---- per request ------------------------------------------------------ */

typedef struct {
    int64_t t_req, t_first, t_end, t_last_tok;
    int64_t n_prompt, n_gen, n_tok;
    bool has_req, has_first, has_end, has_tok;
} request;

typedef struct { int32_t req, i; int64_t t; size_t seq; } tok;

static int cmp_tok(const void *pa, const void *pb)
{
    const tok *a = pa, *b = pb;
    if (a->req != b->req) return (a->req > b->req) - (a->req < b->req);
    if (a->i != b->i) return (a->i > b->i) - (a->i < b->i);
    if (a->t != b->t) return (a->t > b->t) - (a->t < b->t);
    return (a->seq > b->seq) - (a->seq < b->seq);
}

typedef struct { int64_t t; size_t seq; bool begin; } edge;

static int cmp_edge(const void *pa, const void *pb)
{
    const edge *a = pa, *b = pb;
    if (a->t != b->t) return (a->t > b->t) - (a->t < b->t);
    return (a->seq > b->seq) - (a->seq < b->seq);
}

melt_metrics_params melt_metrics_default_params(void)
{
    melt_metrics_params p = {NULL};
    return p;
}

#define MAX_REQ 1000000

static void init_out(melt_trial_metrics *m)
{
    memset(m, 0, sizeof *m);
    m->load_ms = m->ttft_ms = m->prefill_tps = m->decode_tps = NAN;
    m->itl_p50_ms = m->itl_p90_ms = m->itl_p99_ms = m->itl_mean_ms = m->e2e_ms = NAN;
    m->peak_rss_bytes = m->j_per_token = m->j_per_token_net = NAN;
    m->temp_start_c = m->temp_max_c = m->temp_end_c = NAN;
    m->throttled = -1;
    m->throttled_ms = NAN;
    melt_phase_energy none = {NAN, NAN, NAN, NAN, NAN};
    m->idle = m->prefill = m->decode = none;
}

int melt_metrics_compute(const melt_event *ev, size_t n, const melt_metrics_params *params,
                         melt_trial_metrics *m, melt_error *err)
{
    init_out(m);
    if (n > 0 && !ev)
        return melt_errorf(err, MELT_EINVAL, "metrics: events is NULL");
    const char *want_key = params ? params->power_key : NULL;
    int rc = MELT_ENOMEM;

    /* Pass 1: sizes. */
    int32_t max_req = -1;
    size_t n_tok = 0, n_samp = 0, n_edge[PH_COUNT] = {0};
    for (size_t k = 0; k < n; k++) {
        const melt_event *e = &ev[k];
        if ((e->kind == MELT_EV_REQUEST || e->kind == MELT_EV_FIRST_TOKEN ||
             e->kind == MELT_EV_TOKEN || e->kind == MELT_EV_END) &&
            e->req >= 0 && e->req < MAX_REQ && e->req > max_req)
            max_req = e->req;
        if (e->kind == MELT_EV_TOKEN) n_tok++;
        if (e->kind == MELT_EV_SAMPLE && e->has_value && isfinite(e->value)) n_samp++;
        if (e->kind == MELT_EV_PHASE)
            for (int p = 0; p < PH_COUNT; p++)
                if (!strcmp(e->name, phase_names[p])) n_edge[p]++;
    }
    const size_t n_req = (size_t)(max_req + 1);
    request *rq = calloc(n_req ? n_req : 1, sizeof *rq);
    tok *tk = malloc((n_tok ? n_tok : 1) * sizeof *tk);
    samp *sm = malloc((n_samp ? n_samp : 1) * sizeof *sm);
    double *gaps = malloc((n_tok ? n_tok : 1) * sizeof *gaps);
    edge *ed[PH_COUNT] = {0};
    spans ph[PH_COUNT] = {{0}};
    group *groups = NULL;
    power_src ps = {0};
    bool ok = rq && tk && sm && gaps;
    for (int p = 0; p < PH_COUNT; p++) {
        ed[p] = malloc((n_edge[p] ? n_edge[p] : 1) * sizeof *ed[p]);
        ok = ok && ed[p];
        n_edge[p] = 0;
    }
    if (!ok)
        goto out;

    /* Pass 2: collect. */
    n_tok = n_samp = 0;
    for (size_t k = 0; k < n; k++) {
        const melt_event *e = &ev[k];
        request *r = (e->req >= 0 && e->req < MAX_REQ) ? &rq[e->req] : NULL;
        switch (e->kind) {
        case MELT_EV_REQUEST:
            if (r && !r->has_req) {
                r->has_req = true; r->t_req = e->t_ns; r->n_prompt = e->id > 0 ? e->id : 0;
            }
            break;
        case MELT_EV_FIRST_TOKEN:
            if (r && !r->has_first) { r->has_first = true; r->t_first = e->t_ns; }
            break;
        case MELT_EV_TOKEN:
            if (r) {
                if (!r->has_tok || e->t_ns > r->t_last_tok) r->t_last_tok = e->t_ns;
                r->has_tok = true;
                r->n_tok++;
                tk[n_tok++] = (tok){e->req, e->i, e->t_ns, k};
            }
            break;
        case MELT_EV_END:
            if (r && !r->has_end) {
                r->has_end = true; r->t_end = e->t_ns; r->n_gen = e->id >= 0 ? e->id : -1;
            }
            break;
        case MELT_EV_SAMPLE:
            if (e->has_value && isfinite(e->value))
                sm[n_samp++] = (samp){e->key, e->unit, e->t_ns, k, e->value};
            break;
        case MELT_EV_PHASE:
            for (int p = 0; p < PH_COUNT; p++)
                if (!strcmp(e->name, phase_names[p]))
                    ed[p][n_edge[p]++] = (edge){e->t_ns, k, strcmp(e->key, "end") != 0};
            break;
        default:
            break;
        }
    }

    /* Phases: each begin pairs with the next end of the same name. */
    for (int p = 0; p < PH_COUNT; p++) {
        qsort(ed[p], n_edge[p], sizeof *ed[p], cmp_edge);
        bool open = false;
        int64_t a = 0;
        for (size_t j = 0; j < n_edge[p]; j++) {
            if (ed[p][j].begin) {
                if (!open) { open = true; a = ed[p][j].t; }
            } else if (open) {
                open = false;
                if (spans_push(&ph[p], a, ed[p][j].t) < 0) goto out;
            }
        }
    }
    /* Without prefill/decode marks, derive them from the requests. */
    const bool mark_prefill = ph[PH_PREFILL].n > 0, mark_decode = ph[PH_DECODE].n > 0;
    for (size_t q = 0; q < n_req; q++) {
        request *r = &rq[q];
        if (r->n_gen < 0 || (!r->has_end && r->has_tok)) r->n_gen = r->n_tok;
        const int64_t t_dec_end = r->has_tok ? r->t_last_tok : r->t_end;
        if (!mark_prefill && r->has_req && r->has_first &&
            spans_push(&ph[PH_PREFILL], r->t_req, r->t_first) < 0)
            goto out;
        if (!mark_decode && r->has_first && (r->has_tok || r->has_end) &&
            spans_push(&ph[PH_DECODE], r->t_first, t_dec_end) < 0)
            goto out;
    }

    /* Requests. */
    m->load_ms = spans_ms(&ph[PH_LOAD]);
    double ttft_sum = 0, e2e_sum = 0, pf_tok = 0, pf_ns = 0, dc_tok = 0, dc_ns = 0;
    int n_ttft = 0, n_e2e = 0;
    for (size_t q = 0; q < n_req; q++) {
        const request *r = &rq[q];
        if (!r->has_req)
            continue;
        m->n_requests++;
        m->n_prompt += r->n_prompt;
        m->n_gen += r->n_gen > 0 ? r->n_gen : 0;
        if (r->has_first) {
            ttft_sum += ns_to_ms(r->t_first - r->t_req);
            n_ttft++;
            if (r->n_prompt > 0 && r->t_first > r->t_req) {
                pf_tok += (double)r->n_prompt;
                pf_ns += (double)(r->t_first - r->t_req);
            }
            if (r->has_tok && r->n_gen >= 2 && r->t_last_tok > r->t_first) {
                dc_tok += (double)(r->n_gen - 1);
                dc_ns += (double)(r->t_last_tok - r->t_first);
            }
        }
        if (r->has_end) {
            e2e_sum += ns_to_ms(r->t_end - r->t_req);
            n_e2e++;
        }
    }
    if (n_ttft) m->ttft_ms = ttft_sum / n_ttft;
    if (n_e2e) m->e2e_ms = e2e_sum / n_e2e;
    if (pf_ns > 0) m->prefill_tps = pf_tok / (pf_ns / 1e9);
    if (dc_ns > 0) m->decode_tps = dc_tok / (dc_ns / 1e9);

    /* Inter-token gaps, pooled over requests (never across two). */
    qsort(tk, n_tok, sizeof *tk, cmp_tok);
    size_t n_gap = 0;
    for (size_t j = 1; j < n_tok; j++)
        if (tk[j].req == tk[j - 1].req)
            gaps[n_gap++] = ns_to_ms(tk[j].t - tk[j - 1].t);
    if (n_gap) {
        double s = 0;
        for (size_t j = 0; j < n_gap; j++) s += gaps[j];
        qsort(gaps, n_gap, sizeof *gaps, cmp_double);
        m->itl_mean_ms = s / (double)n_gap;
        m->itl_p50_ms = melt_percentile_sorted(gaps, n_gap, 50);
        m->itl_p90_ms = melt_percentile_sorted(gaps, n_gap, 90);
        m->itl_p99_ms = melt_percentile_sorted(gaps, n_gap, 99);
    }

    /* Samples by key. */
    qsort(sm, n_samp, sizeof *sm, cmp_samp);
    size_t n_groups = 0;
    groups = malloc((n_samp ? n_samp : 1) * sizeof *groups);
    if (!groups) goto out;
    for (size_t j = 0; j < n_samp; j++) {
        if (j == 0 || strcmp(sm[j].key, sm[j - 1].key))
            groups[n_groups++] = (group){j, j + 1};
        else
            groups[n_groups - 1].hi = j + 1;
    }
    double tmax_all = NAN, tstart_all = NAN, tend_all = NAN;
    for (size_t g = 0; g < n_groups; g++) {
        const samp *s = sm + groups[g].lo;
        const size_t k = groups[g].hi - groups[g].lo;
        const char *u = s[0].unit;
        if (!strcasecmp(u, "mC") || !strcasecmp(u, "C")) {
            const double f = (u[0] == 'm' || u[0] == 'M') ? 1e-3 : 1.0;
            double mx = -INFINITY;
            for (size_t j = 0; j < k; j++) if (s[j].v * f > mx) mx = s[j].v * f;
            const double st = s[0].v * f, en = s[k - 1].v * f;
            if (m->n_sensors < MELT_METRICS_MAX_SENSORS) {
                melt_sensor_temp *t = &m->sensors[m->n_sensors++];
                snprintf(t->key, sizeof t->key, "%s", s[0].key);
                t->start_c = st; t->max_c = mx; t->end_c = en;
            }
            tmax_all = isnan(tmax_all) || mx > tmax_all ? mx : tmax_all;
            tstart_all = isnan(tstart_all) || st > tstart_all ? st : tstart_all;
            tend_all = isnan(tend_all) || en > tend_all ? en : tend_all;
        } else if ((contains_ci(s[0].key, "rss") || contains_ci(s[0].key, "hwm")) &&
                   bytes_unit(u) > 0) {
            for (size_t j = 0; j < k; j++) {
                const double b = s[j].v * bytes_unit(u);
                if (isnan(m->peak_rss_bytes) || b > m->peak_rss_bytes) m->peak_rss_bytes = b;
            }
        } else if (contains_ci(s[0].key, "throttl")) {
            double t = 0;
            bool any = false;
            for (size_t j = 0; j < k; j++) {
                if (s[j].v > 0) any = true;
                if (j + 1 < k && s[j].v > 0) t += ns_to_ms(s[j + 1].t - s[j].t);
            }
            if (m->throttled < 1) m->throttled = any ? 1 : 0;
            if (isnan(m->throttled_ms) || t > m->throttled_ms) m->throttled_ms = t;
        }
    }
    m->temp_start_c = tstart_all; m->temp_max_c = tmax_all; m->temp_end_c = tend_all;

    /* Power source. */
    ps.s = sm;
    if (want_key) {
        for (size_t g = 0; g < n_groups; g++) {
            const char *u = sm[groups[g].lo].unit;
            if (strcmp(sm[groups[g].lo].key, want_key)) continue;
            if (energy_unit_j(u) > 0) { ps.counter = true; ps.f[0] = energy_unit_j(u); }
            else if (power_unit_w(u) > 0) ps.f[0] = power_unit_w(u);
            else break;
            ps.g[0] = groups[g]; ps.n_groups = 1;
        }
    } else {
        for (size_t g = 0; g < n_groups && ps.n_groups < 8; g++) {
            const samp *s = sm + groups[g].lo;
            if (energy_unit_j(s->unit) > 0 && !contains_ci(s->key, "core")) {
                ps.counter = true;
                ps.f[ps.n_groups] = energy_unit_j(s->unit);
                ps.g[ps.n_groups++] = groups[g];
            }
        }
        if (!ps.n_groups) {
            static const char *const pref[] = {"total", "vdd_in", "battery", "psys", ""};
            for (size_t p = 0; p < sizeof pref / sizeof pref[0] && !ps.n_groups; p++) {
                /* "" matches the first power key in time order. */
                size_t best = n_groups;
                for (size_t g = 0; g < n_groups; g++) {
                    const samp *s = sm + groups[g].lo;
                    if (power_unit_w(s->unit) > 0 && contains_ci(s->key, pref[p]) &&
                        (best == n_groups || s->seq < sm[groups[best].lo].seq))
                        best = g;
                }
                if (best < n_groups) {
                    ps.f[0] = power_unit_w(sm[groups[best].lo].unit);
                    ps.g[0] = groups[best];
                    ps.n_groups = 1;
                }
            }
        }
    }
    if (ps.n_groups) {
        size_t len = 0;
        len += (size_t)snprintf(m->power_source, sizeof m->power_source, "%s:",
                                ps.counter ? "counter" : "power");
        for (size_t k = 0; k < ps.n_groups && len < sizeof m->power_source; k++)
            len += (size_t)snprintf(m->power_source + len, sizeof m->power_source - len,
                                    "%s%s", k ? "+" : "", sm[ps.g[k].lo].key);
    }
    if (ps.counter) {
        for (size_t k = 0; k < ps.n_groups; k++) {
            const samp *s = sm + ps.g[k].lo;
            const size_t cnt = ps.g[k].hi - ps.g[k].lo;
            ps.cum[k] = malloc(cnt * sizeof(double));
            if (!ps.cum[k]) goto out;
            ps.cum[k][0] = 0;
            for (size_t j = 1; j < cnt; j++) {
                const double d = (s[j].v - s[j - 1].v) * ps.f[k];
                ps.cum[k][j] = ps.cum[k][j - 1] + (d >= 0 ? d : 0);  /* reset: adds 0 */
            }
        }
    }
    phase_energy(&ps, &ph[PH_IDLE], &m->idle);
    phase_energy(&ps, &ph[PH_PREFILL], &m->prefill);
    phase_energy(&ps, &ph[PH_DECODE], &m->decode);
    const double base = m->idle.avg_power_w;
    melt_phase_energy *pes[3] = {&m->idle, &m->prefill, &m->decode};
    for (int k = 0; k < 3; k++) {
        if (isfinite(base) && isfinite(pes[k]->energy_j)) {
            pes[k]->energy_net_j = pes[k]->energy_j - base * pes[k]->duration_ms / 1e3;
            pes[k]->avg_power_net_w = pes[k]->avg_power_w - base;
        }
    }
    if (m->n_gen > 0) {
        double e = 0, en = 0;
        e += isfinite(m->prefill.energy_j) ? m->prefill.energy_j : 0;
        e += isfinite(m->decode.energy_j) ? m->decode.energy_j : 0;
        en += isfinite(m->prefill.energy_net_j) ? m->prefill.energy_net_j : 0;
        en += isfinite(m->decode.energy_net_j) ? m->decode.energy_net_j : 0;
        if (isfinite(m->prefill.energy_j) || isfinite(m->decode.energy_j))
            m->j_per_token = e / (double)m->n_gen;
        if (isfinite(m->prefill.energy_net_j) || isfinite(m->decode.energy_net_j))
            m->j_per_token_net = en / (double)m->n_gen;
    }
    rc = 0;
out:
    if (rc < 0)
        melt_errorf(err, rc, "metrics: out of memory for %zu events", n);
    for (size_t k = 0; k < 8; k++) free(ps.cum[k]);
    for (int p = 0; p < PH_COUNT; p++) { free(ed[p]); free(ph[p].v); }
    free(groups); free(rq); free(tk); free(sm); free(gaps);
    return rc;
}

/* ---- flattening ------------------------------------------------------- */

typedef struct { melt_metric *out; size_t cap, n; } lister;

static void put(lister *l, const char *name, const char *suffix, const char *unit, double v)
{
    if (!isfinite(v))
        return;
    if (l->n < l->cap) {
        melt_metric *o = &l->out[l->n];
        snprintf(o->name, sizeof o->name, "%s%s%s", name, suffix ? "." : "", suffix ? suffix : "");
        o->unit = unit;
        o->value = v;
    }
    l->n++;
}

size_t melt_metrics_list(const melt_trial_metrics *m, melt_metric *out, size_t cap)
{
    lister l = {out, out ? cap : 0, 0};
    put(&l, "load_ms", NULL, "ms", m->load_ms);
    put(&l, "ttft_ms", NULL, "ms", m->ttft_ms);
    put(&l, "prefill_tps", NULL, "tok/s", m->prefill_tps);
    put(&l, "decode_tps", NULL, "tok/s", m->decode_tps);
    put(&l, "itl_ms", "p50", "ms", m->itl_p50_ms);
    put(&l, "itl_ms", "p90", "ms", m->itl_p90_ms);
    put(&l, "itl_ms", "p99", "ms", m->itl_p99_ms);
    put(&l, "itl_ms", "mean", "ms", m->itl_mean_ms);
    put(&l, "e2e_ms", NULL, "ms", m->e2e_ms);
    put(&l, "n_prompt", NULL, "tok", m->n_requests ? (double)m->n_prompt : NAN);
    put(&l, "n_gen", NULL, "tok", m->n_requests ? (double)m->n_gen : NAN);
    put(&l, "peak_rss_bytes", NULL, "B", m->peak_rss_bytes);
    const melt_phase_energy *pe[3] = {&m->idle, &m->prefill, &m->decode};
    static const char *const pn[3] = {"idle", "prefill", "decode"};
    for (int k = 0; k < 3; k++) {
        put(&l, "energy_j", pn[k], "J", pe[k]->energy_j);
        put(&l, "avg_power_w", pn[k], "W", pe[k]->avg_power_w);
        if (k > 0) {
            put(&l, "energy_net_j", pn[k], "J", pe[k]->energy_net_j);
            put(&l, "avg_power_net_w", pn[k], "W", pe[k]->avg_power_net_w);
        }
    }
    put(&l, "j_per_token", NULL, "J/tok", m->j_per_token);
    put(&l, "j_per_token_net", NULL, "J/tok", m->j_per_token_net);
    put(&l, "temp_start_c", NULL, "C", m->temp_start_c);
    put(&l, "temp_max_c", NULL, "C", m->temp_max_c);
    put(&l, "temp_end_c", NULL, "C", m->temp_end_c);
    put(&l, "throttled", NULL, "bool", m->throttled >= 0 ? (double)m->throttled : NAN);
    put(&l, "throttled_ms", NULL, "ms", m->throttled_ms);
    for (int k = 0; k < m->n_sensors; k++) {
        put(&l, "temp_start_c", m->sensors[k].key, "C", m->sensors[k].start_c);
        put(&l, "temp_max_c", m->sensors[k].key, "C", m->sensors[k].max_c);
        put(&l, "temp_end_c", m->sensors[k].key, "C", m->sensors[k].end_c);
    }
    return l.n;
}

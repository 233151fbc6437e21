/* Results of a stored run: metrics per trial from the stored events,
 * summaries per cell, and the output formats. Also the JSON-lines importer
 * (`melt results import-events`). */
#include "melt/results.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- computing -------------------------------------------------------- */

typedef struct {
    char name[128];
    char unit[16];
    double *v;
    size_t n, cap;
} series;

typedef struct {
    series *v;
    size_t n, cap;
} series_set;

static int series_add(series_set *set, const melt_metric *m, size_t trial_index)
{
    series *s = NULL;
    for (size_t k = 0; k < set->n; k++)
        if (!strcmp(set->v[k].name, m->name)) {
            s = &set->v[k];
            break;
        }
    if (!s) {
        if (set->n == set->cap) {
            size_t cap = set->cap ? set->cap * 2 : 64;
            series *v = realloc(set->v, cap * sizeof *v);
            if (!v)
                return -1;
            set->v = v;
            set->cap = cap;
        }
        s = &set->v[set->n++];
        memset(s, 0, sizeof *s);
        snprintf(s->name, sizeof s->name, "%s", m->name);
        snprintf(s->unit, sizeof s->unit, "%s", m->unit);
    }
    /* one slot per trial; a figure missing in a trial stays NaN */
    while (s->n <= trial_index) {
        if (s->n == s->cap) {
            size_t cap = s->cap ? s->cap * 2 : 8;
            double *v = realloc(s->v, cap * sizeof *v);
            if (!v)
                return -1;
            s->v = v;
            s->cap = cap;
        }
        s->v[s->n++] = NAN;
    }
    s->v[trial_index] = m->value;
    return 0;
}

static void series_free(series_set *set)
{
    for (size_t k = 0; k < set->n; k++)
        free(set->v[k].v);
    free(set->v);
}

/* The stored figures of an event-less (imported) trial, as metrics. */
static int add_trial_figures(melt_store *s, int64_t run_id, int64_t trial_id, series_set *set,
                             size_t trial_index, melt_error *err)
{
    melt_trial_figure *f = NULL;
    size_t n = 0;
    int rc = melt_store_get_trial_figures(s, run_id, trial_id, &f, &n, err);
    for (size_t k = 0; rc == 0 && k < n; k++) {
        melt_metric m = {.unit = f[k].unit, .value = f[k].value};
        snprintf(m.name, sizeof m.name, "%s", f[k].metric);
        if (series_add(set, &m, trial_index) < 0)
            rc = melt_errorf(err, MELT_ENOMEM, "results: out of memory");
    }
    free(f);
    return rc;
}

static int compute_cell(melt_store *s, int64_t run_id, melt_results_cell *c, melt_error *err)
{
    melt_trial_info *tr = NULL;
    size_t nt = 0;
    int rc = melt_store_list_trials(s, c->info.rowid, &tr, &nt, err);
    if (rc < 0)
        return rc;
    series_set set = {0};
    melt_metric *list = NULL;
    size_t used = 0;
    const size_t cap = 512;
    if (!(list = malloc(cap * sizeof *list))) {
        rc = melt_errorf(err, MELT_ENOMEM, "results: out of memory");
        goto out;
    }
    for (size_t k = 0; k < nt; k++) {
        /* the latest attempt of each measured repetition (sorted rep, id) */
        if (tr[k].warmup || (k + 1 < nt && !tr[k + 1].warmup &&
                             tr[k + 1].repetition == tr[k].repetition))
            continue;
        c->n_trials++;
        if (tr[k].status != MELT_TRIAL_OK)
            continue;
        c->n_ok++;
        if (tr[k].n_events == 0) {
            if ((rc = add_trial_figures(s, run_id, tr[k].id, &set, used, err)) < 0)
                goto out;
            used++;
            continue;
        }
        melt_event *ev = NULL;
        size_t n = 0;
        if ((rc = melt_store_get_events(s, tr[k].id, &ev, &n, err)) < 0)
            goto out;
        melt_trial_metrics m;
        rc = melt_metrics_compute(ev, n, NULL, &m, err);
        free(ev);
        if (rc < 0)
            goto out;
        size_t nm = melt_metrics_list(&m, list, cap);
        if (nm > cap)
            nm = cap;
        for (size_t j = 0; j < nm; j++)
            if (series_add(&set, &list[j], used) < 0) {
                rc = melt_errorf(err, MELT_ENOMEM, "results: out of memory");
                goto out;
            }
        used++;
    }
    c->metrics = calloc(set.n ? set.n : 1, sizeof *c->metrics);
    if (!c->metrics) {
        rc = melt_errorf(err, MELT_ENOMEM, "results: out of memory");
        goto out;
    }
    for (size_t k = 0; k < set.n; k++) {
        melt_results_metric *r = &c->metrics[c->n_metrics++];
        memcpy(r->name, set.v[k].name, sizeof r->name);
        memcpy(r->unit, set.v[k].unit, sizeof r->unit);
        melt_summary_compute(set.v[k].v, set.v[k].n, &r->s);
    }
    rc = 0;
out:
    free(list);
    free(tr);
    series_free(&set);
    return rc;
}

void melt_results_free(melt_results *r)
{
    if (!r)
        return;
    for (size_t k = 0; k < r->n_cells; k++) {
        melt_results_cell *c = &r->cells[k];
        free(c->info.cell_id); free(c->info.device_json); free(c->info.engine_json);
        free(c->info.model_json); free(c->info.workload_json); free(c->info.device_model);
        free(c->info.kernel); free(c->info.governor); free(c->info.cpu_features);
        free(c->info.model_sha256);
        free(c->metrics);
    }
    free(r->cells);
    free(r);
}

int melt_results_compute(melt_store *s, int64_t run_id, melt_results **out, melt_error *err)
{
    *out = NULL;
    melt_results *r = calloc(1, sizeof *r);
    if (!r)
        return melt_errorf(err, MELT_ENOMEM, "results: out of memory");
    char spec[32];
    snprintf(spec, sizeof spec, "%lld", (long long)run_id);
    int rc = melt_store_find_run(s, spec, &r->run, err);
    melt_cell_info *cells = NULL;
    size_t n = 0;
    if (rc == 0)
        rc = melt_store_list_cells(s, run_id, &cells, &n, err);
    if (rc < 0) {
        free(r);
        return rc;
    }
    r->cells = calloc(n ? n : 1, sizeof *r->cells);
    if (!r->cells) {
        melt_store_free_cells(cells, n);
        free(r);
        return melt_errorf(err, MELT_ENOMEM, "results: out of memory");
    }
    for (size_t k = 0; k < n; k++)
        r->cells[k].info = cells[k];       /* takes the strings */
    r->n_cells = n;
    free(cells);
    for (size_t k = 0; k < n; k++)
        if ((rc = compute_cell(s, run_id, &r->cells[k], err)) < 0) {
            melt_results_free(r);
            return rc;
        }
    *out = r;
    return 0;
}

int melt_results_save(melt_store *s, const melt_results *r, melt_error *err)
{
    for (size_t k = 0; k < r->n_cells; k++) {
        const melt_results_cell *c = &r->cells[k];
        melt_summary_row *rows = calloc(c->n_metrics ? c->n_metrics : 1, sizeof *rows);
        if (!rows)
            return melt_errorf(err, MELT_ENOMEM, "results: out of memory");
        for (size_t j = 0; j < c->n_metrics; j++) {
            const melt_summary *m = &c->metrics[j].s;
            rows[j] = (melt_summary_row){r->run.id, c->info.rowid, 0, c->metrics[j].name,
                                         c->metrics[j].unit, (int64_t)m->n, m->mean, m->stddev,
                                         m->ci95, m->min, m->median, m->max};
        }
        int rc = melt_store_put_summaries(s, rows, c->n_metrics, err);
        free(rows);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int melt_results_update(melt_store *s, int64_t run_id, melt_error *err)
{
    melt_results *r = NULL;
    int rc = melt_results_compute(s, run_id, &r, err);
    if (rc == 0)
        rc = melt_results_save(s, r, err);
    melt_results_free(r);
    return rc;
}

int melt_results_save_trial(melt_store *s, int64_t run_id, int64_t trial_id,
                            const melt_trial_metrics *m, melt_error *err)
{
    const size_t n = melt_metrics_list(m, NULL, 0);
    melt_metric *list = calloc(n ? n : 1, sizeof *list);
    melt_summary_row *rows = calloc(n ? n : 1, sizeof *rows);
    int rc = MELT_ENOMEM;
    if (list && rows) {
        melt_metrics_list(m, list, n);
        for (size_t k = 0; k < n; k++)
            rows[k] = (melt_summary_row){run_id, 0, trial_id, list[k].name, list[k].unit, 1,
                                         list[k].value, NAN, NAN, list[k].value,
                                         list[k].value, list[k].value};
        rc = melt_store_put_summaries(s, rows, n, err);
    } else {
        melt_errorf(err, rc, "results: out of memory");
    }
    free(list);
    free(rows);
    return rc;
}

/* ---- output ----------------------------------------------------------- */

bool melt_results_format_parse(const char *s, enum melt_results_format *out)
{
    static const char *const names[] = {"text", "md", "csv", "json", "jsonl"};
    for (int k = 0; k < 5; k++)
        if (!strcmp(s, names[k])) {
            *out = (enum melt_results_format)k;
            return true;
        }
    return false;
}

/* A number for people: 6 significant digits, "-" when absent. */
static const char *num(char *buf, size_t n, double v)
{
    if (!isfinite(v))
        snprintf(buf, n, "-");
    else
        snprintf(buf, n, "%.6g", v);
    return buf;
}

/* A figure for people: as num(), but whole numbers from a million up are
 * written out (19259400 rather than 1.92594e+07). */
static const char *num_human(char *buf, size_t n, double v)
{
    if (isfinite(v) && fabs(v) >= 1e6 && fabs(v) < 1e15)
        snprintf(buf, n, "%.0f", v);
    else
        num(buf, n, v);
    return buf;
}

static void csv_field(FILE *out, const char *s)
{
    if (!strpbrk(s, ",\"\n\r")) {
        fputs(s, out);
        return;
    }
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', out);
        fputc(*s, out);
    }
    fputc('"', out);
}

static void md_field(FILE *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '|') fputs("\\|", out);
        else if (*s == '\n' || *s == '\r') fputc(' ', out);
        else fputc(*s, out);
    }
}

static json_t *jnum(double v) { return isfinite(v) ? json_real(v) : json_null(); }

static json_t *summary_json(const melt_results_metric *m)
{
    json_t *o = json_object();
    json_object_set_new(o, "unit", json_string(m->unit));
    json_object_set_new(o, "n", json_integer((json_int_t)m->s.n));
    json_object_set_new(o, "mean", jnum(m->s.mean));
    json_object_set_new(o, "stddev", jnum(m->s.stddev));
    json_object_set_new(o, "ci95", jnum(m->s.ci95));
    json_object_set_new(o, "min", jnum(m->s.min));
    json_object_set_new(o, "median", jnum(m->s.median));
    json_object_set_new(o, "max", jnum(m->s.max));
    return o;
}

/* A stored JSON description as JSON (a string when it does not parse). */
static json_t *jdesc(const char *text)
{
    if (!text)
        return json_null();
    json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);
    return v ? v : json_string(text);
}

static json_t *jstr(const char *s) { return s ? json_string(s) : json_null(); }

static json_t *run_json(const melt_run_info *r)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(r->id));
    json_object_set_new(o, "name", json_string(r->name));
    json_object_set_new(o, "status", json_string(r->status));
    json_object_set_new(o, "started", json_string(r->started));
    json_object_set_new(o, "finished", r->finished[0] ? json_string(r->finished) : json_null());
    json_object_set_new(o, "melt_version", json_string(r->melt_version));
    json_object_set_new(o, "melt_commit", json_string(r->melt_commit));
    json_object_set_new(o, "host", json_string(r->host));
    return o;
}

static int write_json(FILE *out, const melt_results *r, melt_error *err)
{
    json_t *root = json_object(), *cells = json_array();
    json_object_set_new(root, "run", run_json(&r->run));
    for (size_t k = 0; k < r->n_cells; k++) {
        const melt_results_cell *c = &r->cells[k];
        json_t *o = json_object(), *ms = json_object();
        json_object_set_new(o, "cell", json_string(c->info.cell_id));
        json_object_set_new(o, "device", jdesc(c->info.device_json));
        json_object_set_new(o, "engine", jdesc(c->info.engine_json));
        json_object_set_new(o, "model", jdesc(c->info.model_json));
        json_object_set_new(o, "workload", jdesc(c->info.workload_json));
        json_t *meta = json_object();
        json_object_set_new(meta, "device_model", jstr(c->info.device_model));
        json_object_set_new(meta, "kernel", jstr(c->info.kernel));
        json_object_set_new(meta, "governor", jstr(c->info.governor));
        json_object_set_new(meta, "cpu_features", jstr(c->info.cpu_features));
        json_object_set_new(meta, "model_sha256", jstr(c->info.model_sha256));
        json_object_set_new(o, "metadata", meta);
        json_object_set_new(o, "trials", json_integer(c->n_trials));
        json_object_set_new(o, "trials_ok", json_integer(c->n_ok));
        for (size_t j = 0; j < c->n_metrics; j++)
            json_object_set_new(ms, c->metrics[j].name, summary_json(&c->metrics[j]));
        json_object_set_new(o, "metrics", ms);
        json_array_append_new(cells, o);
    }
    json_object_set_new(root, "cells", cells);
    int rc = json_dumpf(root, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    json_decref(root);
    fputc('\n', out);
    return rc == 0 ? 0 : melt_errorf(err, MELT_EIO, "results: writing JSON failed");
}

static int write_jsonl(FILE *out, const melt_results *r, melt_error *err)
{
    for (size_t k = 0; k < r->n_cells; k++) {
        const melt_results_cell *c = &r->cells[k];
        for (size_t j = 0; j < c->n_metrics; j++) {
            json_t *o = json_object();
            json_object_set_new(o, "run", json_integer(r->run.id));
            json_object_set_new(o, "run_name", json_string(r->run.name));
            json_object_set_new(o, "cell", json_string(c->info.cell_id));
            json_object_set_new(o, "metric", json_string(c->metrics[j].name));
            json_t *sj = summary_json(&c->metrics[j]);
            json_object_update(o, sj);
            json_decref(sj);
            int rc = json_dumpf(o, out, JSON_COMPACT | JSON_PRESERVE_ORDER |
                                JSON_REAL_PRECISION(10));
            json_decref(o);
            if (rc != 0)
                return melt_errorf(err, MELT_EIO, "results: writing JSON failed");
            fputc('\n', out);
        }
    }
    return 0;
}

static void write_text(FILE *out, const melt_results *r)
{
    const melt_run_info *ri = &r->run;
    fprintf(out, "run %lld  %s  %s  started %s%s%s\n", (long long)ri->id, ri->name, ri->status,
            ri->started, ri->finished[0] ? "  finished " : "", ri->finished);
    fprintf(out, "host %s  melt %s (%s)  %lld cells  %lld/%lld trials ok\n",
            ri->host[0] ? ri->host : "?", ri->melt_version, ri->melt_commit,
            (long long)ri->n_cells, (long long)ri->n_trials_ok, (long long)ri->n_trials);
    for (size_t k = 0; k < r->n_cells; k++) {
        const melt_results_cell *c = &r->cells[k];
        fprintf(out, "\ncell %s  (%d/%d trials ok)\n", c->info.cell_id, c->n_ok, c->n_trials);
        if (!c->n_metrics) {
            fputs("  no completed trials\n", out);
            continue;
        }
        fprintf(out, "  %-28s %24s %4s  %s\n", "metric", "mean ± 95% CI", "n", "unit");
        for (size_t j = 0; j < c->n_metrics; j++) {
            const melt_results_metric *m = &c->metrics[j];
            char a[32], b[32], cell[80];
            if (isfinite(m->s.ci95))
                snprintf(cell, sizeof cell, "%s ± %s", num_human(a, sizeof a, m->s.mean),
                         num_human(b, sizeof b, m->s.ci95));
            else
                snprintf(cell, sizeof cell, "%s", num_human(a, sizeof a, m->s.mean));
            /* "±" is 2 bytes for 1 column: pad one more */
            fprintf(out, "  %-28s %*s %4zu  %s\n", m->name, isfinite(m->s.ci95) ? 25 : 24, cell,
                    m->s.n, m->unit);
        }
    }
}

static void write_md(FILE *out, const melt_results *r)
{
    fputs("| cell | metric | unit | n | mean | ± 95% CI | stddev | min | median | max |\n"
          "|---|---|---|---:|---:|---:|---:|---:|---:|---:|\n", out);
    for (size_t k = 0; k < r->n_cells; k++) {
        const melt_results_cell *c = &r->cells[k];
        for (size_t j = 0; j < c->n_metrics; j++) {
            const melt_results_metric *m = &c->metrics[j];
            char b[6][32];
            fputs("| ", out);
            md_field(out, c->info.cell_id);
            fputs(" | ", out);
            md_field(out, m->name);
            fprintf(out, " | %s | %zu | %s | %s | %s | %s | %s | %s |\n", m->unit, m->s.n,
                    num(b[0], 32, m->s.mean), num(b[1], 32, m->s.ci95),
                    num(b[2], 32, m->s.stddev), num(b[3], 32, m->s.min),
                    num(b[4], 32, m->s.median), num(b[5], 32, m->s.max));
        }
    }
}

static void csv_num(FILE *out, double v)
{
    if (isfinite(v))
        fprintf(out, ",%.10g", v);
    else
        fputc(',', out);
}

static void write_csv(FILE *out, const melt_results *r)
{
    fputs("run,cell,metric,unit,n,mean,stddev,ci95,min,median,max\n", out);
    for (size_t k = 0; k < r->n_cells; k++) {
        const melt_results_cell *c = &r->cells[k];
        for (size_t j = 0; j < c->n_metrics; j++) {
            const melt_results_metric *m = &c->metrics[j];
            fprintf(out, "%lld,", (long long)r->run.id);
            csv_field(out, c->info.cell_id);
            fputc(',', out);
            csv_field(out, m->name);
            fputc(',', out);
            csv_field(out, m->unit);
            fprintf(out, ",%zu", m->s.n);
            csv_num(out, m->s.mean);
            csv_num(out, m->s.stddev);
            csv_num(out, m->s.ci95);
            csv_num(out, m->s.min);
            csv_num(out, m->s.median);
            csv_num(out, m->s.max);
            fputc('\n', out);
        }
    }
}

int melt_results_write(FILE *out, const melt_results *r, enum melt_results_format fmt,
                       melt_error *err)
{
    switch (fmt) {
    case MELT_RESULTS_TEXT: write_text(out, r); break;
    case MELT_RESULTS_MD: write_md(out, r); break;
    case MELT_RESULTS_CSV: write_csv(out, r); break;
    case MELT_RESULTS_JSON: return write_json(out, r, err);
    case MELT_RESULTS_JSONL: return write_jsonl(out, r, err);
    default: return melt_errorf(err, MELT_EINVAL, "results: unknown format %d", (int)fmt);
    }
    return ferror(out) ? melt_errorf(err, MELT_EIO, "results: write failed") : 0;
}

/* ---- import ----------------------------------------------------------- */

int melt_store_import_jsonl(melt_store *s, int64_t trial_id, const char *path, FILE *warn,
                            size_t *n_events, size_t *n_bad, char bye_status[16],
                            melt_error *err)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return melt_errorf(err, MELT_EIO, "%s: cannot open", path);
    enum { BATCH = 4096 };
    melt_event *batch = malloc(BATCH * sizeof *batch);
    char *line = NULL;
    size_t cap = 0, nb = 0, lineno = 0;
    ssize_t len;
    int rc = 0;
    *n_events = *n_bad = 0;
    bye_status[0] = '\0';
    if (!batch) {
        fclose(f);
        return melt_errorf(err, MELT_ENOMEM, "import: out of memory");
    }
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        size_t l = (size_t)len;
        while (l && (line[l - 1] == '\n' || line[l - 1] == '\r'))
            l--;
        if (l == 0)
            continue;
        melt_error perr = {0};
        if (melt_event_parse(line, l, &batch[nb], &perr) < 0) {
            (*n_bad)++;
            if (warn)
                fprintf(warn, "melt: %s:%zu: skipped: %s\n", path, lineno, perr.msg);
            continue;
        }
        if (batch[nb].kind == MELT_EV_BYE)
            snprintf(bye_status, 16, "%.15s", batch[nb].key);
        if (++nb == BATCH) {
            if ((rc = melt_store_add_events(s, trial_id, batch, nb, err)) < 0)
                break;
            *n_events += nb;
            nb = 0;
        }
    }
    if (rc == 0 && ferror(f))
        rc = melt_errorf(err, MELT_EIO, "%s: read error", path);
    if (rc == 0 && nb) {
        rc = melt_store_add_events(s, trial_id, batch, nb, err);
        if (rc == 0)
            *n_events += nb;
    }
    free(line);
    free(batch);
    fclose(f);
    return rc;
}

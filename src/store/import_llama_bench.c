/* `melt import llama-bench`: llama-bench's JSON / JSONL output into the
 * store. Parse and check everything first, then write: a bad file stores
 * nothing. */
#include "melt/import.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FILE_BYTES (256u << 20)

/* One checked entry (borrowed references into its JSON object). */
typedef struct lb_entry {
    json_t *obj;
    const char *model;            /* model_filename, else model_type */
    long long n_prompt, n_gen, n_depth, n_threads;
    double avg_ts, stddev_ts, avg_ns, stddev_ns;   /* NaN when absent */
    json_t *samples_ns, *samples_ts;               /* arrays or NULL */
    size_t n_samples;
    char cell_id[640];
} lb_entry;

static int read_file(const char *path, char **text, size_t *len, melt_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return melt_errorf(err, MELT_EIO, "%s: cannot open: %s", path, strerror(errno));
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 65536 + 1 > cap) {
            cap = cap ? cap * 2 : 131072;
            char *p = cap <= (size_t)MAX_FILE_BYTES * 2 ? realloc(buf, cap) : NULL;
            if (!p) {
                free(buf);
                fclose(f);
                return melt_errorf(err, MELT_ENOMEM, "%s: too large", path);
            }
            buf = p;
        }
        size_t got = fread(buf + n, 1, 65536, f);
        n += got;
        if (got == 0)
            break;
        if (n > MAX_FILE_BYTES) {
            free(buf);
            fclose(f);
            return melt_errorf(err, MELT_EFORMAT, "%s: larger than %u MiB", path,
                               MAX_FILE_BYTES >> 20);
        }
    }
    const int bad = ferror(f), bad_errno = errno;   /* e.g. EISDIR */
    fclose(f);
    if (bad) {
        free(buf);
        return melt_errorf(err, MELT_EIO, "%s: read error: %s", path, strerror(bad_errno));
    }
    buf[n] = '\0';
    *text = buf;
    *len = n;
    return 0;
}

/* A number member (integer or real); NaN when absent. false when present
 * but not a number. */
static bool get_num(json_t *o, const char *key, double *out)
{
    json_t *v = json_object_get(o, key);
    *out = NAN;
    if (!v || json_is_null(v))
        return true;
    if (!json_is_number(v))
        return false;
    *out = json_number_value(v);
    return isfinite(*out);
}

static bool get_int(json_t *o, const char *key, long long def, long long *out)
{
    json_t *v = json_object_get(o, key);
    if (!v) {
        *out = def;
        return def >= 0;
    }
    if (!json_is_integer(v))
        return false;
    *out = json_integer_value(v);
    return true;
}

static int check_samples(json_t *a, const char *key, const char *where, melt_error *err)
{
    if (!json_is_array(a))
        return melt_errorf(err, MELT_EFORMAT, "%s: %s is not an array", where, key);
    for (size_t i = 0; i < json_array_size(a); i++) {
        json_t *v = json_array_get(a, i);
        if (!json_is_number(v) || !isfinite(json_number_value(v)) || json_number_value(v) < 0)
            return melt_errorf(err, MELT_EFORMAT, "%s: %s[%zu] is not a number >= 0", where,
                               key, i);
    }
    return 0;
}

/* Check one entry; where is "PATH: line N" or "PATH: entry N". */
static int check_entry(json_t *o, const char *where, lb_entry *e, melt_error *err)
{
    memset(e, 0, sizeof *e);
    e->obj = o;
    if (!json_is_object(o))
        return melt_errorf(err, MELT_EFORMAT, "%s: not a JSON object", where);
    json_t *m = json_object_get(o, "model_filename");
    if (!json_is_string(m))
        m = json_object_get(o, "model_type");
    if (!json_is_string(m) || !*json_string_value(m))
        return melt_errorf(err, MELT_EFORMAT, "%s: no model_filename or model_type", where);
    e->model = json_string_value(m);
    if (!get_int(o, "n_prompt", -1, &e->n_prompt) || !get_int(o, "n_gen", -1, &e->n_gen) ||
        e->n_prompt < 0 || e->n_gen < 0 || e->n_prompt + e->n_gen < 1 ||
        e->n_prompt > 1 << 30 || e->n_gen > 1 << 30)
        return melt_errorf(err, MELT_EFORMAT, "%s: n_prompt and n_gen must be integers >= 0, "
                           "not both 0", where);
    if (!get_int(o, "n_depth", 0, &e->n_depth) || e->n_depth < 0 || e->n_depth > 1 << 30)
        return melt_errorf(err, MELT_EFORMAT, "%s: n_depth must be an integer >= 0", where);
    if (!get_int(o, "n_threads", -1, &e->n_threads) || e->n_threads < 1 ||
        e->n_threads > 1 << 20)
        return melt_errorf(err, MELT_EFORMAT, "%s: n_threads must be an integer >= 1", where);
    if (!get_num(o, "avg_ts", &e->avg_ts) || !isfinite(e->avg_ts))
        return melt_errorf(err, MELT_EFORMAT, "%s: avg_ts must be a number", where);
    if (!get_num(o, "stddev_ts", &e->stddev_ts) || !get_num(o, "avg_ns", &e->avg_ns) ||
        !get_num(o, "stddev_ns", &e->stddev_ns))
        return melt_errorf(err, MELT_EFORMAT, "%s: stddev_ts, avg_ns and stddev_ns must be "
                           "numbers", where);
    e->samples_ns = json_object_get(o, "samples_ns");
    e->samples_ts = json_object_get(o, "samples_ts");
    int rc;
    if (e->samples_ns && (rc = check_samples(e->samples_ns, "samples_ns", where, err)) < 0)
        return rc;
    if (e->samples_ts && (rc = check_samples(e->samples_ts, "samples_ts", where, err)) < 0)
        return rc;
    if (e->samples_ns && e->samples_ts &&
        json_array_size(e->samples_ns) != json_array_size(e->samples_ts))
        return melt_errorf(err, MELT_EFORMAT, "%s: samples_ns and samples_ts differ in length",
                           where);
    e->n_samples = e->samples_ts ? json_array_size(e->samples_ts)
                   : e->samples_ns ? json_array_size(e->samples_ns) : 0;
    /* the cell: model, llama-bench's test name, threads */
    char test[64];
    if (e->n_prompt > 0 && e->n_gen == 0)
        snprintf(test, sizeof test, "pp%lld", e->n_prompt);
    else if (e->n_prompt == 0)
        snprintf(test, sizeof test, "tg%lld", e->n_gen);
    else
        snprintf(test, sizeof test, "pp%lld+tg%lld", e->n_prompt, e->n_gen);
    if (e->n_depth > 0) {
        size_t l = strlen(test);
        snprintf(test + l, sizeof test - l, "@d%lld", e->n_depth);
    }
    snprintf(e->cell_id, sizeof e->cell_id, "%.500s %s t%lld", e->model, test, e->n_threads);
    return 0;
}

/* Parse the file into a JSON array of entries (owned by *root). */
static int parse_entries(const char *path, const char *text, size_t len, json_t **root,
                         melt_error *err)
{
    size_t i = 0;
    while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r' || text[i] == '\n'))
        i++;
    if (i == len)
        return melt_errorf(err, MELT_EFORMAT, "%s: empty file, no llama-bench entries", path);
    json_error_t je;
    if (text[i] == '[') {
        json_t *a = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
        if (!a)
            return melt_errorf(err, MELT_EFORMAT, "%s: line %d: %s", path, je.line, je.text);
        if (!json_is_array(a)) {
            json_decref(a);
            return melt_errorf(err, MELT_EFORMAT, "%s: not a JSON array", path);
        }
        *root = a;
        return 0;
    }
    /* JSON lines: one object per non-blank line */
    json_t *a = json_array();
    int line = 0;
    for (size_t pos = 0; pos < len;) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        const size_t end = nl ? (size_t)(nl - text) : len;
        line++;
        size_t b = pos;
        while (b < end && (text[b] == ' ' || text[b] == '\t' || text[b] == '\r'))
            b++;
        if (b < end) {
            json_t *o = json_loadb(text + b, end - b, JSON_REJECT_DUPLICATES, &je);
            if (!o || !json_is_object(o)) {
                json_decref(o);
                json_decref(a);
                return melt_errorf(err, MELT_EFORMAT, "%s: line %d: %s", path, line,
                                   o ? "not a JSON object" : je.text);
            }
            json_array_append_new(a, o);
        }
        pos = end + 1;
    }
    *root = a;
    return 0;
}

static char *dump(json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return s;
}

/* A string member or "" (for descriptions). */
static const char *sget(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : "";
}

static json_t *copy_member(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return v ? json_incref(v) : json_null();
}

static int store_cell(melt_store *s, int64_t run_id, const lb_entry *e, int64_t *cell,
                      melt_error *err)
{
    json_t *o = e->obj;
    json_t *engine = json_pack("{s:s}", "name", "llama.cpp");
    static const char *const ekeys[] = {"build_commit", "build_number", "backends", "n_threads",
                                        "n_batch", "n_ubatch", "type_k", "type_v",
                                        "flash_attn", "n_gpu_layers"};
    for (size_t k = 0; k < sizeof ekeys / sizeof ekeys[0]; k++)
        if (json_object_get(o, ekeys[k]))
            json_object_set_new(engine, ekeys[k], copy_member(o, ekeys[k]));
    json_t *model = json_pack("{s:s}", "path", e->model);
    json_object_set_new(model, "type", copy_member(o, "model_type"));
    json_object_set_new(model, "size_bytes", copy_member(o, "model_size"));
    json_object_set_new(model, "n_params", copy_member(o, "model_n_params"));
    json_t *workload = json_pack("{s:{s:I,s:I}}", "synthetic", "prompt_tokens",
                                 (json_int_t)e->n_prompt, "gen_tokens", (json_int_t)e->n_gen);
    json_t *device = json_pack("{s:s,s:s}", "cpu", sget(o, "cpu_info"), "gpu", sget(o, "gpu_info"));
    char *ej = dump(engine), *mj = dump(model), *wj = dump(workload), *dj = dump(device);
    melt_cell_meta cm = {.cell_id = e->cell_id, .device_json = dj, .engine_json = ej,
                         .model_json = mj, .workload_json = wj,
                         .device_model = *sget(o, "cpu_info") ? sget(o, "cpu_info") : NULL};
    int rc = (ej && mj && wj && dj) ? melt_store_add_cell(s, run_id, &cm, cell, err)
                                    : melt_errorf(err, MELT_ENOMEM, "import: out of memory");
    free(ej);
    free(mj);
    free(wj);
    free(dj);
    return rc;
}

static melt_summary_row fig(int64_t run, int64_t trial, const char *metric, const char *unit,
                            double v)
{
    return (melt_summary_row){run, 0, trial, metric, unit, 1, v, NAN, NAN, v, v, v};
}

/* One trial per sample (one in all when the entry has none). */
static int store_trials(melt_store *s, int64_t run_id, int64_t cell, int rep0, const lb_entry *e,
                        melt_error *err)
{
    const size_t n = e->n_samples ? e->n_samples : 1;
    const double tokens = (double)(e->n_prompt + e->n_gen);
    for (size_t k = 0; k < n; k++) {
        double ts = e->avg_ts, ns = e->avg_ns;
        if (e->samples_ts)
            ts = json_number_value(json_array_get(e->samples_ts, k));
        if (e->samples_ns)
            ns = json_number_value(json_array_get(e->samples_ns, k));
        if (!e->samples_ts && e->samples_ns && ns > 0)
            ts = tokens * 1e9 / ns;
        if (e->samples_ts && !e->samples_ns && ts > 0)
            ns = tokens * 1e9 / ts;   /* the sample's own time, not avg_ns */
        int64_t trial;
        int rc = melt_store_begin_trial(s, cell, rep0 + (int)k, false, &trial, err);
        if (rc < 0)
            return rc;
        melt_summary_row rows[10];
        size_t nr = 0;
        if (k == 0) {
            /* llama-bench's own summary, once: shown with n = 1 */
            rows[nr++] = fig(run_id, trial, "avg_ts", "tok/s", e->avg_ts);
            rows[nr++] = fig(run_id, trial, "stddev_ts", "tok/s", e->stddev_ts);
            rows[nr++] = fig(run_id, trial, "avg_ns", "ns", e->avg_ns);
            rows[nr++] = fig(run_id, trial, "stddev_ns", "ns", e->stddev_ns);
        }
        rows[nr++] = fig(run_id, trial, "sample_ts", "tok/s", ts);
        rows[nr++] = fig(run_id, trial, "sample_ns", "ns", ns);
        /* melt's own names, so runs of both engines line up in reports */
        if (e->n_gen == 0)
            rows[nr++] = fig(run_id, trial, "prefill_tps", "tok/s", ts);
        else if (e->n_prompt == 0)
            rows[nr++] = fig(run_id, trial, "decode_tps", "tok/s", ts);
        rows[nr++] = fig(run_id, trial, "n_prompt", "tok", (double)e->n_prompt);
        rows[nr++] = fig(run_id, trial, "n_gen", "tok", (double)e->n_gen);
        /* absent figures (NaN) are not stored */
        size_t w = 0;
        for (size_t j = 0; j < nr; j++)
            if (isfinite(rows[j].mean))
                rows[w++] = rows[j];
        if ((rc = melt_store_put_summaries(s, rows, w, err)) < 0 ||
            (rc = melt_store_end_trial(s, trial, MELT_TRIAL_OK, err)) < 0)
            return rc;
    }
    return 0;
}

/* Trials already stored for a cell id earlier in this import. */
typedef struct cell_count {
    const char *cell_id;
    int n;
} cell_count;

int melt_import_llama_bench(melt_store *s, const char *path, const char *run_name,
                            int64_t *run_id, size_t *n_entries, melt_error *err)
{
    char *text = NULL;
    size_t len = 0;
    json_t *root = NULL;
    lb_entry *ents = NULL;
    cell_count *counts = NULL;
    int rc = read_file(path, &text, &len, err);
    if (rc == 0)
        rc = parse_entries(path, text, len, &root, err);
    const size_t n = rc == 0 ? json_array_size(root) : 0;
    if (rc == 0 && n == 0)
        rc = melt_errorf(err, MELT_EFORMAT, "%s: no llama-bench entries", path);
    if (rc == 0 && (!(ents = calloc(n, sizeof *ents)) || !(counts = calloc(n, sizeof *counts))))
        rc = melt_errorf(err, MELT_ENOMEM, "import: out of memory");
    /* every entry is checked before anything is stored */
    for (size_t k = 0; rc == 0 && k < n; k++) {
        char where[600];
        snprintf(where, sizeof where, "%s: entry %zu", path, k + 1);
        rc = check_entry(json_array_get(root, k), where, &ents[k], err);
    }
    int64_t run = 0;
    if (rc == 0) {
        melt_run_meta meta = {.name = run_name ? run_name : "llama-bench"};
        rc = melt_store_begin_run(s, &meta, &run, err);
    }
    size_t n_counts = 0;
    for (size_t k = 0; rc == 0 && k < n; k++) {
        int64_t cell;
        cell_count *cc = NULL;
        for (size_t j = 0; j < n_counts; j++)
            if (!strcmp(counts[j].cell_id, ents[k].cell_id))
                cc = &counts[j];
        if (!cc) {
            cc = &counts[n_counts++];
            cc->cell_id = ents[k].cell_id;
        }
        rc = store_cell(s, run, &ents[k], &cell, err);
        if (rc == 0)
            rc = store_trials(s, run, cell, cc->n, &ents[k], err);
        cc->n += (int)(ents[k].n_samples ? ents[k].n_samples : 1);
    }
    if (run > 0) {
        melt_error e2 = {0};
        int rc2 = melt_store_end_run(s, run, rc == 0 ? "ok" : "error", rc == 0 ? err : &e2);
        if (rc == 0)
            rc = rc2;
    }
    if (rc == 0) {
        if (run_id)
            *run_id = run;
        if (n_entries)
            *n_entries = n;
    }
    free(counts);
    free(ents);
    json_decref(root);
    free(text);
    return rc;
}

/* The backend-neutral store: picks a backend by location, checks
 * arguments, forwards to the backend's ops. */
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"

struct melt_store {
    const melt_store_ops *ops;
    void *impl;
};

static const melt_store_ops *const backends[] = {
    &melt_store_sqlite_ops,       /* last: takes any path */
};

static const char *const status_names[] = {"running", "ok", "lost", "interrupted", "error"};

const char *melt_trial_status_name(enum melt_trial_status s)
{
    return (unsigned)s < sizeof status_names / sizeof status_names[0] ? status_names[s] : "?";
}

bool melt_trial_status_parse(const char *s, enum melt_trial_status *out)
{
    for (size_t k = 0; k < sizeof status_names / sizeof status_names[0]; k++)
        if (s && strcmp(s, status_names[k]) == 0) {
            *out = (enum melt_trial_status)k;
            return true;
        }
    return false;
}

int melt_store_open(const char *location, melt_store **out, melt_error *err)
{
    if (!out)
        return melt_errorf(err, MELT_EINVAL, "store: no output handle");
    *out = NULL;
    if (!location || !*location)
        location = MELT_STORE_DEFAULT_PATH;
    if (strncmp(location, "postgres://", 11) == 0 || strncmp(location, "postgresql://", 13) == 0)
        return melt_errorf(err, MELT_EUNSUPPORTED,
                           "%s: this melt is built without the PostgreSQL store", location);
    for (size_t k = 0; k < sizeof backends / sizeof backends[0]; k++) {
        const melt_store_ops *ops = backends[k];
        if (ops->version != MELT_STORE_OPS_VERSION || !ops->accepts(location))
            continue;
        melt_store *s = calloc(1, sizeof *s);
        if (!s)
            return melt_errorf(err, MELT_ENOMEM, "store: out of memory");
        s->ops = ops;
        int rc = ops->open(location, &s->impl, err);
        if (rc < 0) {
            free(s);
            return rc;
        }
        *out = s;
        return 0;
    }
    return melt_errorf(err, MELT_EUNSUPPORTED, "%s: no store backend takes this location",
                       location);
}

void melt_store_close(melt_store *s)
{
    if (!s)
        return;
    s->ops->close(s->impl);
    free(s);
}

int melt_store_schema_version(const melt_store *s) { return s->ops->schema_version(s->impl); }

int melt_store_schema_latest(void) { return MELT_STORE_SCHEMA_LATEST; }

#define CHECK(cond, ...) \
    do { if (!(cond)) return melt_errorf(err, MELT_EINVAL, __VA_ARGS__); } while (0)

int melt_store_begin_run(melt_store *s, const melt_run_meta *meta, int64_t *run_id,
                         melt_error *err)
{
    CHECK(s && meta && run_id, "store: begin_run: missing argument");
    return s->ops->begin_run(s->impl, meta, run_id, err);
}

int melt_store_end_run(melt_store *s, int64_t run_id, const char *status, melt_error *err)
{
    CHECK(s && status, "store: end_run: missing argument");
    CHECK(!strcmp(status, "ok") || !strcmp(status, "interrupted") || !strcmp(status, "error")
          || !strcmp(status, "running"),
          "store: end_run: status '%s' is not ok, interrupted or error", status);
    return s->ops->end_run(s->impl, run_id, status, err);
}

int melt_store_add_cell(melt_store *s, int64_t run_id, const melt_cell_meta *cell,
                        int64_t *cell_rowid, melt_error *err)
{
    CHECK(s && cell && cell_rowid, "store: add_cell: missing argument");
    CHECK(cell->cell_id && *cell->cell_id, "store: add_cell: a cell needs an id");
    return s->ops->add_cell(s->impl, run_id, cell, cell_rowid, err);
}

int melt_store_begin_trial(melt_store *s, int64_t cell_rowid, int repetition, bool warmup,
                           int64_t *trial_id, melt_error *err)
{
    CHECK(s && trial_id, "store: begin_trial: missing argument");
    CHECK(repetition >= 0, "store: begin_trial: repetition %d < 0", repetition);
    return s->ops->begin_trial(s->impl, cell_rowid, repetition, warmup, trial_id, err);
}

int melt_store_add_events(melt_store *s, int64_t trial_id, const melt_event *ev, size_t n,
                          melt_error *err)
{
    CHECK(s && (ev || n == 0), "store: add_events: missing argument");
    if (n == 0)
        return 0;
    return s->ops->add_events(s->impl, trial_id, ev, n, err);
}

int melt_store_set_trial_clock(melt_store *s, int64_t trial_id, int64_t offset_ns,
                               int64_t rtt_ns, melt_error *err)
{
    CHECK(s, "store: set_trial_clock: missing argument");
    return s->ops->set_trial_clock(s->impl, trial_id, offset_ns, rtt_ns, err);
}

int melt_store_add_clock_sync(melt_store *s, const melt_clock_sync_row *row, melt_error *err)
{
    CHECK(s && row, "store: add_clock_sync: missing argument");
    CHECK(strcmp(row->at, "before") == 0 || strcmp(row->at, "after") == 0,
          "store: add_clock_sync: 'at' must be before or after, not '%.8s'", row->at);
    CHECK(row->uncertainty_ns >= 0 && row->rtt_ns >= 0 && row->rounds > 0,
          "store: add_clock_sync: negative uncertainty or no rounds");
    return s->ops->add_clock_sync(s->impl, row, err);
}

int melt_store_list_clock_syncs(melt_store *s, int64_t cell_rowid, melt_clock_sync_row **rows,
                                size_t *n, melt_error *err)
{
    CHECK(s && rows && n, "store: list_clock_syncs: missing argument");
    *rows = NULL;
    *n = 0;
    return s->ops->list_clock_syncs(s->impl, cell_rowid, rows, n, err);
}

int melt_store_end_trial(melt_store *s, int64_t trial_id, enum melt_trial_status status,
                         melt_error *err)
{
    CHECK(s, "store: end_trial: missing argument");
    CHECK(status > MELT_TRIAL_RUNNING && status <= MELT_TRIAL_ERROR,
          "store: end_trial: bad status %d", (int)status);
    return s->ops->end_trial(s->impl, trial_id, status, err);
}

int melt_store_put_summaries(melt_store *s, const melt_summary_row *rows, size_t n,
                             melt_error *err)
{
    CHECK(s && (rows || n == 0), "store: put_summaries: missing argument");
    for (size_t k = 0; k < n; k++)
        CHECK(rows[k].metric && *rows[k].metric && (rows[k].trial_id > 0 || rows[k].cell_rowid > 0),
              "store: summary row %zu needs a metric and a cell or trial", k);
    return n ? s->ops->put_summaries(s->impl, rows, n, err) : 0;
}

int melt_store_list_runs(melt_store *s, melt_run_info **runs, size_t *n, melt_error *err)
{
    CHECK(s && runs && n, "store: list_runs: missing argument");
    return s->ops->list_runs(s->impl, runs, n, err);
}

int melt_store_find_run(melt_store *s, const char *spec, melt_run_info *run, melt_error *err)
{
    CHECK(s && spec && run, "store: find_run: missing argument");
    return s->ops->find_run(s->impl, spec, run, err);
}

int melt_store_run_experiment(melt_store *s, int64_t run_id, char **text, melt_error *err)
{
    CHECK(s && text, "store: run_experiment: missing argument");
    return s->ops->run_experiment(s->impl, run_id, text, err);
}

int melt_store_list_cells(melt_store *s, int64_t run_id, melt_cell_info **cells, size_t *n,
                          melt_error *err)
{
    CHECK(s && cells && n, "store: list_cells: missing argument");
    return s->ops->list_cells(s->impl, run_id, cells, n, err);
}

void melt_store_free_cells(melt_cell_info *c, size_t n)
{
    for (size_t k = 0; c && k < n; k++) {
        free(c[k].cell_id); free(c[k].device_json); free(c[k].engine_json);
        free(c[k].model_json); free(c[k].workload_json); free(c[k].device_model);
        free(c[k].kernel); free(c[k].governor); free(c[k].cpu_features);
        free(c[k].model_sha256);
    }
    free(c);
}

int melt_store_list_trials(melt_store *s, int64_t cell_rowid, melt_trial_info **trials,
                           size_t *n, melt_error *err)
{
    CHECK(s && trials && n, "store: list_trials: missing argument");
    return s->ops->list_trials(s->impl, cell_rowid, trials, n, err);
}

int melt_store_get_events(melt_store *s, int64_t trial_id, melt_event **ev, size_t *n,
                          melt_error *err)
{
    CHECK(s && ev && n, "store: get_events: missing argument");
    return s->ops->get_events(s->impl, trial_id, ev, n, err);
}

int melt_store_get_trial_figures(melt_store *s, int64_t run_id, int64_t trial_id,
                                 melt_trial_figure **figs, size_t *n, melt_error *err)
{
    CHECK(s && figs && n, "store: get_trial_figures: missing argument");
    *figs = NULL;
    *n = 0;
    return s->ops->get_trial_figures(s->impl, run_id, trial_id, figs, n, err);
}

int melt_store_completed_trials(melt_store *s, int64_t run_id, melt_trial_key **keys,
                                size_t *n, melt_error *err)
{
    CHECK(s && keys && n, "store: completed_trials: missing argument");
    return s->ops->completed_trials(s->impl, run_id, keys, n, err);
}

void melt_store_free_keys(melt_trial_key *keys, size_t n)
{
    for (size_t k = 0; keys && k < n; k++)
        free(keys[k].cell_id);
    free(keys);
}

bool melt_trial_keys_contain(const melt_trial_key *keys, size_t n, const char *cell_id,
                             int repetition)
{
    for (size_t k = 0; k < n; k++)
        if (keys[k].repetition == repetition && strcmp(keys[k].cell_id, cell_id) == 0)
            return true;
    return false;
}

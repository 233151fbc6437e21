/* melt — the results store: runs, cells, trials, every event and sample.
 *
 * Backend-neutral: melt_store_open() picks a backend by the location
 * ("postgres://..." for the fleet backend when built, else a SQLite file;
 * default "./melt.db"). Every backend keeps the same schema (docs/store.md).
 * Single-threaded: one handle per thread. Strings passed in are copied;
 * arrays handed out are owned by the caller and freed with the matching
 * melt_store_free_*().
 */
#ifndef MELT_STORE_H
#define MELT_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "melt/error.h"
#include "melt/event.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MELT_STORE_DEFAULT_PATH "melt.db"

typedef struct melt_store melt_store;

enum melt_trial_status {
    MELT_TRIAL_RUNNING = 0,   /* begun, not ended (a crash leaves it so) */
    MELT_TRIAL_OK,
    MELT_TRIAL_LOST,          /* device or stream lost */
    MELT_TRIAL_INTERRUPTED,   /* Ctrl-C */
    MELT_TRIAL_ERROR,
};
const char *melt_trial_status_name(enum melt_trial_status s);   /* "ok", ... */
bool melt_trial_status_parse(const char *s, enum melt_trial_status *out);

/* Open (creating and migrating as needed) the store at location; NULL
 * means MELT_STORE_DEFAULT_PATH. A database written by a newer melt
 * (unknown schema version) is refused with MELT_EUNSUPPORTED. */
int melt_store_open(const char *location, melt_store **out, melt_error *err);
void melt_store_close(melt_store *s);            /* NULL is fine */
/* Schema version of the open store. */
int melt_store_schema_version(const melt_store *s);
/* The newest schema version this build knows. */
int melt_store_schema_latest(void);

/* ---- writing ---------------------------------------------------------- */

typedef struct melt_run_meta {
    const char *name;             /* experiment name */
    const char *melt_version;     /* NULL: this build's */
    const char *melt_commit;      /* NULL: this build's */
    const char *host;             /* NULL: gethostname() */
    const char *experiment;       /* the resolved experiment text */
} melt_run_meta;

/* A new run (status "running", started now). */
int melt_store_begin_run(melt_store *s, const melt_run_meta *meta, int64_t *run_id,
                         melt_error *err);
/* status: "ok", "interrupted", "error" (finished time set to now). */
int melt_store_end_run(melt_store *s, int64_t run_id, const char *status, melt_error *err);

typedef struct melt_cell_meta {
    const char *cell_id;          /* stable string id from the experiment; required */
    /* descriptions as JSON object text (NULL: none) */
    const char *device_json, *engine_json, *model_json, *workload_json;
    /* reproducibility metadata (NULL: unknown) */
    const char *device_model, *kernel, *governor, *cpu_features, *model_sha256;
} melt_cell_meta;

/* Add a cell to a run, or find it when the run already has that cell_id
 * (resume: metadata given again replaces the stored one where not NULL). */
int melt_store_add_cell(melt_store *s, int64_t run_id, const melt_cell_meta *cell,
                        int64_t *cell_rowid, melt_error *err);

/* A new trial of a cell (status running). Repeating a repetition (a retry
 * on resume) adds another row; queries use the latest. */
int melt_store_begin_trial(melt_store *s, int64_t cell_rowid, int repetition, bool warmup,
                           int64_t *trial_id, melt_error *err);
/* Append events to a trial, in order, in one transaction. Pass batches
 * (hundreds to thousands): each call is one commit. */
int melt_store_add_events(melt_store *s, int64_t trial_id, const melt_event *ev, size_t n,
                          melt_error *err);
/* Device-to-host clock alignment of a trial (host = device + offset;
 * |error| <= rtt_ns / 2: the round trip of the estimate, or the larger of
 * the two estimates' it was interpolated between). */
int melt_store_set_trial_clock(melt_store *s, int64_t trial_id, int64_t offset_ns,
                               int64_t rtt_ns, melt_error *err);

/* One clock sync estimate of a cell's device (include/melt/clock_sync.h),
 * taken before or after the cell's trials. */
typedef struct melt_clock_sync_row {
    int64_t cell_rowid;
    char at[8];                  /* "before" or "after" */
    int64_t host_ns;             /* host CLOCK_MONOTONIC when it was taken */
    int64_t offset_ns;           /* host = device + offset */
    int64_t uncertainty_ns, rtt_ns;
    int rounds;
} melt_clock_sync_row;
int melt_store_add_clock_sync(melt_store *s, const melt_clock_sync_row *row, melt_error *err);
/* A cell's estimates in the order they were added (malloc'd; free()). */
int melt_store_list_clock_syncs(melt_store *s, int64_t cell_rowid, melt_clock_sync_row **rows,
                                size_t *n, melt_error *err);
int melt_store_end_trial(melt_store *s, int64_t trial_id, enum melt_trial_status status,
                         melt_error *err);

/* A summary row: trial_id > 0 for one trial's figure (n = 1, mean = value),
 * else cell_rowid > 0 for a summary over repetitions. Replaces an existing
 * row of the same scope and metric. */
typedef struct melt_summary_row {
    int64_t run_id, cell_rowid, trial_id;
    const char *metric, *unit;
    int64_t n;
    double mean, stddev, ci95, min, median, max;   /* NaN stored as NULL */
} melt_summary_row;
int melt_store_put_summaries(melt_store *s, const melt_summary_row *rows, size_t n,
                             melt_error *err);

/* ---- reading ---------------------------------------------------------- */

typedef struct melt_run_info {
    int64_t id;
    char name[128], status[16], started[32], finished[32];
    char melt_version[32], melt_commit[48], host[128];
    int64_t n_cells, n_trials, n_trials_ok;
} melt_run_info;

/* All runs, oldest first. */
int melt_store_list_runs(melt_store *s, melt_run_info **runs, size_t *n, melt_error *err);
/* The run named by spec: a run id, "last"/"latest", or a name (its latest
 * run). MELT_ENOTFOUND with a clear message when there is none. */
int melt_store_find_run(melt_store *s, const char *spec, melt_run_info *run, melt_error *err);
/* The resolved experiment text of a run (malloc'd; NULL when none stored). */
int melt_store_run_experiment(melt_store *s, int64_t run_id, char **text, melt_error *err);

typedef struct melt_cell_info {
    int64_t rowid;
    char *cell_id;
    char *device_json, *engine_json, *model_json, *workload_json;   /* NULL when absent */
    char *device_model, *kernel, *governor, *cpu_features, *model_sha256;
} melt_cell_info;
/* The run's cells in the order they were added. */
int melt_store_list_cells(melt_store *s, int64_t run_id, melt_cell_info **cells, size_t *n,
                          melt_error *err);
void melt_store_free_cells(melt_cell_info *cells, size_t n);

typedef struct melt_trial_info {
    int64_t id, cell_rowid;
    int repetition;
    bool warmup;
    enum melt_trial_status status;
    int64_t n_events;
    bool has_clock;
    int64_t clock_offset_ns, clock_rtt_ns;
} melt_trial_info;
/* The cell's trials by repetition, then id. */
int melt_store_list_trials(melt_store *s, int64_t cell_rowid, melt_trial_info **trials,
                           size_t *n, melt_error *err);

/* A trial's events in the order they were added (malloc'd). */
int melt_store_get_events(melt_store *s, int64_t trial_id, melt_event **ev, size_t *n,
                          melt_error *err);

/* A trial's own summary rows (trial figures: cell 0, n = 1) of run_id in
 * the order they were stored (malloc'd; free()). Imported results (`melt
 * import llama-bench`) have figures but no events; melt_results_compute
 * uses the figures of trials without events. */
typedef struct melt_trial_figure {
    char metric[128];
    char unit[16];
    double value;                 /* NaN when stored as NULL */
} melt_trial_figure;
int melt_store_get_trial_figures(melt_store *s, int64_t run_id, int64_t trial_id,
                                 melt_trial_figure **figs, size_t *n, melt_error *err);

/* Resume: the (cell id, repetition) pairs of a run whose measured
 * (non-warm-up) trial ended ok. */
typedef struct melt_trial_key {
    char *cell_id;
    int repetition;
} melt_trial_key;
int melt_store_completed_trials(melt_store *s, int64_t run_id, melt_trial_key **keys,
                                size_t *n, melt_error *err);
void melt_store_free_keys(melt_trial_key *keys, size_t n);
/* True when (cell_id, repetition) is in keys[0..n). */
bool melt_trial_keys_contain(const melt_trial_key *keys, size_t n, const char *cell_id,
                             int repetition);

#ifdef __cplusplus
}
#endif
#endif

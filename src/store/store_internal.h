/* The contract between the backend-neutral store (store.c) and a backend
 * (sqlite.c; postgres.c later): one versioned ops table, as sqlite's vfs.
 * store.c checks arguments; a backend may assume them valid. */
#ifndef MELT_STORE_INTERNAL_H
#define MELT_STORE_INTERNAL_H

#include "melt/store.h"

#define MELT_STORE_OPS_VERSION 1
/* Schema version every backend implements (docs/store.md). */
#define MELT_STORE_SCHEMA_LATEST 3

typedef struct melt_store_ops {
    int version;                  /* MELT_STORE_OPS_VERSION */
    const char *name;             /* "sqlite" */
    /* Does this backend take location? (e.g. a "postgres://" prefix) */
    bool (*accepts)(const char *location);
    int (*open)(const char *location, void **impl, melt_error *err);
    void (*close)(void *impl);
    int (*schema_version)(const void *impl);
    int (*begin_run)(void *impl, const melt_run_meta *meta, int64_t *run_id, melt_error *err);
    int (*end_run)(void *impl, int64_t run_id, const char *status, melt_error *err);
    int (*add_cell)(void *impl, int64_t run_id, const melt_cell_meta *cell, int64_t *rowid,
                    melt_error *err);
    int (*begin_trial)(void *impl, int64_t cell_rowid, int repetition, bool warmup,
                       int64_t *trial_id, melt_error *err);
    int (*add_events)(void *impl, int64_t trial_id, const melt_event *ev, size_t n,
                      melt_error *err);
    int (*set_trial_clock)(void *impl, int64_t trial_id, int64_t offset_ns, int64_t rtt_ns,
                           melt_error *err);
    int (*end_trial)(void *impl, int64_t trial_id, enum melt_trial_status status,
                     melt_error *err);
    int (*put_summaries)(void *impl, const melt_summary_row *rows, size_t n, melt_error *err);
    int (*list_runs)(void *impl, melt_run_info **runs, size_t *n, melt_error *err);
    int (*find_run)(void *impl, const char *spec, melt_run_info *run, melt_error *err);
    int (*run_experiment)(void *impl, int64_t run_id, char **text, melt_error *err);
    int (*list_cells)(void *impl, int64_t run_id, melt_cell_info **cells, size_t *n,
                      melt_error *err);
    int (*list_trials)(void *impl, int64_t cell_rowid, melt_trial_info **trials, size_t *n,
                       melt_error *err);
    int (*get_events)(void *impl, int64_t trial_id, melt_event **ev, size_t *n,
                      melt_error *err);
    int (*get_trial_figures)(void *impl, int64_t run_id, int64_t trial_id,
                             melt_trial_figure **figs, size_t *n, melt_error *err);
    int (*completed_trials)(void *impl, int64_t run_id, melt_trial_key **keys, size_t *n,
                            melt_error *err);
    int (*add_clock_sync)(void *impl, const melt_clock_sync_row *row, melt_error *err);
    int (*list_clock_syncs)(void *impl, int64_t cell_rowid, melt_clock_sync_row **rows,
                            size_t *n, melt_error *err);
} melt_store_ops;

extern const melt_store_ops melt_store_sqlite_ops;

#endif

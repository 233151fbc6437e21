/* melt — results of a stored run: per-cell summaries over repetitions,
 * computed from the stored events (docs/metrics.md), and their output as
 * text, md, csv, json or jsonl (docs/results.md). Host-only. */
#ifndef MELT_RESULTS_H
#define MELT_RESULTS_H

#include <stdio.h>

#include "melt/metrics.h"
#include "melt/store.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct melt_results_metric {
    char name[128];
    char unit[16];
    melt_summary s;
} melt_results_metric;

typedef struct melt_results_cell {
    melt_cell_info info;
    int n_trials;               /* measured trials (latest per repetition) */
    int n_ok;                   /* of which ended ok: the ones summarized */
    melt_results_metric *metrics;
    size_t n_metrics;
} melt_results_cell;

typedef struct melt_results {
    melt_run_info run;
    melt_results_cell *cells;
    size_t n_cells;
} melt_results;

/* Summaries of every cell of run_id: per trial the latest measured
 * (non-warm-up) attempt of each repetition that ended ok; metrics in a
 * fixed order. *out is freed with melt_results_free. */
int melt_results_compute(melt_store *s, int64_t run_id, melt_results **out, melt_error *err);
void melt_results_free(melt_results *r);

/* Store the cell summaries in the store's summaries table (replacing). */
int melt_results_save(melt_store *s, const melt_results *r, melt_error *err);
/* Compute run_id's cell summaries and store them, as a run does at its
 * end (for runs whose events came in some other way: imports). */
int melt_results_update(melt_store *s, int64_t run_id, melt_error *err);

/* Store one trial's figures (melt_metrics_list) as trial rows (n = 1). */
int melt_results_save_trial(melt_store *s, int64_t run_id, int64_t trial_id,
                            const melt_trial_metrics *m, melt_error *err);

enum melt_results_format {
    MELT_RESULTS_TEXT = 0,      /* `melt results show` */
    MELT_RESULTS_MD,
    MELT_RESULTS_CSV,
    MELT_RESULTS_JSON,
    MELT_RESULTS_JSONL,
};
bool melt_results_format_parse(const char *s, enum melt_results_format *out);
int melt_results_write(FILE *out, const melt_results *r, enum melt_results_format fmt,
                       melt_error *err);

/* Append the JSON-lines events of path (docs/agent-protocol.md) to a trial;
 * a bad line is reported on warn (when not NULL) with path:line and skipped.
 * *bye_status gets the "bye" status ("" when the stream has none). */
int melt_store_import_jsonl(melt_store *s, int64_t trial_id, const char *path, FILE *warn,
                            size_t *n_events, size_t *n_bad, char bye_status[16],
                            melt_error *err);

#ifdef __cplusplus
}
#endif
#endif

/* melt — runner internals shared by runner.c, progress.c and cooldown.c. */
#ifndef MELT_RUNNER_INTERNAL_H
#define MELT_RUNNER_INTERNAL_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "melt/experiment.h"

/* ---- progress (progress.c) ---- */

typedef struct runner_progress {
    FILE *out;
    bool tty;                /* one updating line, else a plain line per trial */
    bool quiet;
    int64_t start_ns;
    int total;               /* trials to run now */
    int done;
    int64_t last_draw_ns;
    bool line_open;          /* the TTY line holds text */
} runner_progress;

/* Where a trial stands, for the progress line. */
typedef struct runner_trial_pos {
    size_t cell, n_cells;    /* 0-based cell, count */
    const char *cell_id;
    bool warmup;
    int rep, n_reps;         /* 0-based repetition (or warm-up), count */
} runner_trial_pos;

void runner_progress_init(runner_progress *p, FILE *out, bool quiet, int total);
/* TTY only: redraw the line (at most every 100 ms unless force). */
void runner_progress_update(runner_progress *p, const runner_trial_pos *pos, int64_t n_tokens,
                            bool force);
/* A trial ended: a plain line (or a TTY redraw). decode_tps may be NaN. */
void runner_progress_trial_done(runner_progress *p, const runner_trial_pos *pos,
                                const char *status, double decode_tps, const char *detail);
/* A message on its own line (the TTY line is cleared first). */
void runner_progress_note(runner_progress *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Finish the TTY line. */
void runner_progress_end(runner_progress *p);

/* ---- cool-down (cooldown.c) ---- */

typedef struct runner_cooldown_result {
    double waited_s;
    double max_temp_c;       /* hottest zone at the end; NaN when no zone */
    int n_zones;             /* thermal zones read (0: none on this device) */
    bool timed_out;          /* max_wait_s reached while still too hot */
    bool interrupted;
} runner_cooldown_result;

/* Wait on this machine until every thermal zone (below probe_root, NULL
 * "/") is under c->max_temp_c, at least c->min_wait_s and at most
 * c->max_wait_s; returns early when *interrupts becomes non-zero. */
void runner_cooldown_local(const melt_exp_cooldown *c, const char *probe_root,
                           const volatile sig_atomic_t *interrupts,
                           runner_cooldown_result *out);

int64_t runner_now_ns(void);

/* ---- clock sync around a cell (cell_clock.c) ---- */

struct melt_transport_ops;
struct melt_store;
struct melt_clock_estimate;
/* Estimate the device's clock offset (at: "before"/"after") and store it
 * in the cell's clock_syncs. */
int runner_clock_sync(const struct melt_transport_ops *tops, void *tstate, const char *agent,
                      struct melt_store *store, int64_t cell_rowid, const char *at,
                      struct melt_clock_estimate *est, melt_error *err);
/* ---- device description and state (cell_device.c) ---- */

/* Run `agent --describe [--root ROOT]` through the transport: *json gets
 * the device's description (malloc'd JSON object text). */
int runner_describe_device(const struct melt_transport_ops *tops, void *tstate,
                           const char *agent, const char *root, char **json, melt_error *err);
/* obj_text (malloc'd JSON object) with key set to value_json (NULL: no
 * change); returns the new text (obj_text freed) or obj_text unchanged. */
char *runner_json_set(char *obj_text, const char *key, const char *value_json);
/* The cells' reproducibility columns from a description ("" when unknown). */
typedef struct runner_device_meta {
    char device_model[256], kernel[512], governor[256], cpu_features[256];
} runner_device_meta;
void runner_info_meta(const char *info_json, runner_device_meta *m);

/* The largest trial id of the cell so far (0: none). */
int64_t runner_last_trial_id(struct melt_store *store, int64_t cell_rowid);
/* Set the clock of the cell's trials with id > after_trial_id from the
 * estimates (either may be NULL). */
int runner_clock_apply(struct melt_store *store, int64_t cell_rowid, int64_t after_trial_id,
                       const struct melt_clock_estimate *before,
                       const struct melt_clock_estimate *after, melt_error *err);

#endif

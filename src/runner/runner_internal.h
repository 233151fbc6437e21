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

#endif

/* melt — the runner: one experiment in, every cell run on its device with
 * warm-up and repetitions, every event stored (docs/experiment.md,
 * "Running").
 *
 * For each cell: resolve the model (a synth model is generated once into a
 * cache folder), record the cell's metadata, write its plan, cool down,
 * then run the warm-up and measured trials, one agent process per trial
 * (so every trial measures its own load time), storing the events as they
 * arrive and the trial's metrics when it ends. The runner never runs the
 * model in its own process.
 *
 * Host-only. Single-threaded; the caller's SIGINT handler increments the
 * counter *interrupts points to (the first interrupts the current trial
 * cleanly, the second kills the agent).
 */
#ifndef MELT_RUNNER_H
#define MELT_RUNNER_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "melt/error.h"
#include "melt/experiment.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Exit codes of `melt run` (also melt_runner_run's outcome). */
enum {
    MELT_RUN_EXIT_OK = 0,            /* every trial ok */
    MELT_RUN_EXIT_ERROR = 1,         /* could not start or go on (one line says why) */
    MELT_RUN_EXIT_USAGE = 2,
    MELT_RUN_EXIT_UNTRUSTWORTHY = 3, /* finished, but some trials were lost or failed */
    MELT_RUN_EXIT_INTERRUPTED = 130, /* Ctrl-C: stored so far, resumable */
};

/* Idle baseline the agent measures before each measured trial's first
 * request (phase idle), unless told otherwise. */
#define MELT_RUNNER_DEFAULT_IDLE_MS 500

typedef struct melt_runner_params {
    const char *db_path;        /* NULL: MELT_STORE_DEFAULT_PATH */
    bool resume;                /* reopen a run and finish what is missing */
    const char *resume_run;     /* with resume: run id/"last"/name; NULL: the
                                   latest run of the experiment's name */
    const char *agent_path;     /* NULL: $MELT_AGENT, else melt-agent beside
                                   this executable */
    const char *models_dir;     /* synth cache; NULL: .melt-models/ beside the db */
    const char *probe_root;     /* NULL: "/" (tests point it at a fake tree) */
    int idle_ms;                /* idle baseline per measured trial (>= 0) */
    bool quiet;                 /* no progress lines */
    FILE *progress;             /* NULL: stderr */
    FILE *out;                  /* summary table and paths; NULL: stdout */
    const volatile sig_atomic_t *interrupts;  /* SIGINTs so far; may be NULL */
} melt_runner_params;

melt_runner_params melt_runner_default_params(void);

typedef struct melt_runner_result {
    int64_t run_id;
    int n_trials;               /* trials run now (warm-up included) */
    int n_ok, n_lost, n_error, n_interrupted, n_skipped;   /* skipped: done before (resume) */
    bool interrupted;
} melt_runner_result;

/* Run experiment e (its text, for the run's metadata, is read from e->path).
 * Returns one of the MELT_RUN_EXIT_* codes; for MELT_RUN_EXIT_ERROR err
 * says why. res may be NULL. */
int melt_runner_run(const melt_experiment *e, const melt_runner_params *p,
                    melt_runner_result *res, melt_error *err);

/* ---- pieces, public for tests ---- */

/* The agent's argv for one trial of cell c: agent -m MODEL -t/-c/-b/--kv-type
 * from the engine, the experiment's sampling flags, --plan PLAN, --reps 1,
 * --idle-ms IDLE_MS (when > 0), --probe NAME:HZ per probe, --probe-root
 * (when probe_root is not NULL), --chat-template chatml for a synth model
 * on a conversations workload (synth models carry no template).
 * *argv is NULL-terminated, malloc'd; free with melt_runner_argv_free. */
int melt_runner_agent_argv(const melt_experiment *e, const melt_cell *c, const char *agent,
                           const char *model_path, const char *plan_path, int idle_ms,
                           const char *probe_root, char ***argv, melt_error *err);
void melt_runner_argv_free(char **argv);

/* Duration as "45s", "3m07s", "2h05m" (negative or NaN: "?"); returns buf. */
char *melt_runner_format_duration(double seconds, char *buf, size_t n);

/* File name of a synth model in the cache: "PRESET-TYPE-sSEED.gguf". */
int melt_runner_synth_name(const melt_exp_model *m, char *buf, size_t n);

#ifdef __cplusplus
}
#endif
#endif

/* melt — metrics: what one trial's event stream means, and summaries over
 * repetitions.
 *
 * docs/metrics.md is the normative definition of every figure here. This
 * module is dependency-free (libc + libm only) so the agent can link it.
 * A figure that cannot be computed from the events (no power probe, a
 * single token, ...) is NaN; melt_metrics_list() leaves NaN figures out.
 */
#ifndef MELT_METRICS_H
#define MELT_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "melt/error.h"
#include "melt/event.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Energy of one phase (the union of its intervals in the trial). */
typedef struct melt_phase_energy {
    double duration_ms;      /* total time in the phase */
    double energy_j;         /* integral of power over the phase */
    double avg_power_w;      /* energy_j / duration */
    double energy_net_j;     /* energy_j - idle avg_power_w * duration */
    double avg_power_net_w;  /* avg_power_w - idle avg_power_w */
} melt_phase_energy;

#define MELT_METRICS_MAX_SENSORS 32

typedef struct melt_sensor_temp {
    char key[96];            /* sample key, e.g. "cpu0_temp" */
    double start_c, max_c, end_c;
} melt_sensor_temp;

typedef struct melt_trial_metrics {
    int n_requests;          /* requests with a request event */
    int64_t n_prompt;        /* sum of n_prompt over requests */
    int64_t n_gen;           /* sum of n_gen over requests */

    double load_ms;
    double ttft_ms;          /* mean over requests */
    double prefill_tps;      /* sum n_prompt / sum prefill time */
    double decode_tps;       /* sum (n_gen-1) / sum decode time */
    double itl_p50_ms, itl_p90_ms, itl_p99_ms, itl_mean_ms;  /* pooled gaps */
    double e2e_ms;           /* mean over requests */
    double peak_rss_bytes;

    /* Power source used: "" none, else "counter:KEY[+KEY...]" or "power:KEY". */
    char power_source[128];
    melt_phase_energy idle, prefill, decode;
    double j_per_token;      /* (prefill + decode energy) / n_gen */
    double j_per_token_net;  /* the same with the idle baseline subtracted */

    int n_sensors;
    melt_sensor_temp sensors[MELT_METRICS_MAX_SENSORS];
    double temp_start_c, temp_max_c, temp_end_c;   /* max over sensors */

    int throttled;           /* 1 yes, 0 no, -1 unknown (no throttle samples) */
    double throttled_ms;
} melt_trial_metrics;

typedef struct melt_metrics_params {
    /* Power: the key of one power (mW/W/uW) or energy counter (uJ/mJ/J)
     * sample to use; NULL picks one as docs/metrics.md says. */
    const char *power_key;
} melt_metrics_params;

melt_metrics_params melt_metrics_default_params(void);

/* Compute one trial's metrics from its events (any order). Returns 0, or
 * MELT_ENOMEM / MELT_EINVAL (n > 0 with ev NULL). params may be NULL. */
int melt_metrics_compute(const melt_event *ev, size_t n, const melt_metrics_params *params,
                         melt_trial_metrics *out, melt_error *err);

/* One named figure. */
typedef struct melt_metric {
    char name[128];          /* "decode_tps", "energy_j.decode", "temp_max_c.cpu0_temp" */
    const char *unit;        /* static string: "ms", "tok/s", "J", "W", "C", "B", "bool", ... */
    double value;
} melt_metric;

/* The trial's finite figures, in a fixed order (per-sensor temperatures
 * last), into out[0..cap). Returns how many there are (may exceed cap). */
size_t melt_metrics_list(const melt_trial_metrics *m, melt_metric *out, size_t cap);

/* Summary of one figure over repetitions (NaN inputs are skipped). */
typedef struct melt_summary {
    size_t n;
    double mean;
    double stddev;           /* sample standard deviation (n-1); NaN when n < 2 */
    double ci95;             /* half-width: t(0.975, n-1) * stddev / sqrt(n); NaN when n < 2 */
    double min, median, max;
} melt_summary;

void melt_summary_compute(const double *x, size_t n, melt_summary *out);

/* Two-sided 95% Student t quantile t(0.975, df) for df >= 1 (table to 30,
 * then a Cornish-Fisher expansion good to 1e-4); NaN for df < 1. */
double melt_t975(size_t df);

/* p-th percentile (0 <= p <= 100) of sorted[0..n) by linear interpolation
 * between closest ranks (NumPy "linear", Hyndman-Fan type 7). NaN for n 0. */
double melt_percentile_sorted(const double *sorted, size_t n, double p);

#ifdef __cplusplus
}
#endif
#endif

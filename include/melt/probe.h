/* melt — probes: telemetry sources sampled while a trial runs.
 *
 * A probe is one file in src/probes/ that fills a melt_probe_ops (as fio's
 * ioengine_ops or sqlite's vfs: a versioned struct of function pointers is
 * the whole contract) and one line in the NULL-terminated table
 * melt_probe_registry (src/probes/registry.c). The core never names a probe.
 *
 * Every probe reads its files below a root directory: "/" on a device, a fake
 * tree (tests/data/devices/<device>/) in tests. A probe whose files are absent
 * answers open() with MELT_ENOTFOUND and a one-line reason: "not present",
 * which the caller reports once and is not an error.
 *
 * Samples are melt_event values of kind MELT_EV_SAMPLE: name = probe name,
 * key = what was measured, the unit in its name ("cpu0_temp" in mC,
 * "rss_bytes", "policy0_cur_khz", "battery_power_mw", "package-0_energy_uj"),
 * value, unit ("mC", "khz", "bytes", "mw", "uj", "ns", "pct", ...).
 * docs/probes.md lists every probe: files, keys, units, rate, resolution,
 * overhead, conventions.
 */
#ifndef MELT_PROBE_H
#define MELT_PROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "melt/error.h"
#include "melt/event.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped when melt_probe_ops changes incompatibly; a probe states the version
 * it was written against and the registry only accepts the current one. */
#define MELT_PROBE_API_VERSION 1

/* Receives each sample. Called from the thread that calls sample() (the
 * probe set's background thread when one is running). ev is only valid
 * during the call. */
typedef void (*melt_probe_emit_fn)(void *ctx, const melt_event *ev);

typedef struct melt_probe_ops {
    int version;                /* MELT_PROBE_API_VERSION */
    const char *name;           /* "thermal"; also melt_event.name of its samples */
    const char *description;    /* one line: what, units, resolution, overhead */
    double default_hz;          /* sampling rate when the experiment names none */

    /* Find the probe's files below root (NULL or "" = "/") for process pid
     * (<= 0: no target process; only probes that need one care). options is
     * "key=value,key=value" or NULL; an unknown key is MELT_EINVAL.
     * Returns 0 and *state (owned by the probe until close), MELT_ENOTFOUND
     * with the reason in err when the source is absent on this device, or
     * another negative code on a real error. open() may allocate; sample()
     * should not. */
    int (*open)(const char *root, int pid, const char *options, void **state,
                melt_error *err);

    /* Read the source once and emit its samples stamped now_ns (CLOCK_MONOTONIC).
     * Returns the number of samples emitted (>= 0), or a negative code when
     * nothing could be read (e.g. the target process exited). A malformed
     * value skips that key, it never crashes or emits garbage. */
    int (*sample)(void *state, int64_t now_ns, melt_probe_emit_fn emit, void *ctx);

    void (*close)(void *state);   /* NULL state is fine */
} melt_probe_ops;

/* NULL-terminated table of every compiled-in probe, in registry order. */
extern const melt_probe_ops *const melt_probe_registry[];

/* The probe called name, or NULL. */
const melt_probe_ops *melt_probe_find(const char *name);

/* ---- probe set: several probes on one background sampling thread ---- */

typedef struct melt_probe_set melt_probe_set;

typedef struct melt_probe_spec {
    const char *name;       /* registry name */
    double rate_hz;         /* <= 0: the probe's default_hz */
    const char *options;    /* passed to open(); NULL for none */
} melt_probe_spec;

typedef struct melt_probe_set_params {
    const char *root;               /* NULL = "/" */
    int pid;                        /* target process, <= 0 for none */
    const melt_probe_spec *specs;   /* probes to open; NULL = every registry */
    size_t n_specs;                 /*   probe at its default rate */
    melt_probe_emit_fn emit;        /* every sample, from the sampling thread */
    void *emit_ctx;
    /* Called once per probe that is not present (code MELT_ENOTFOUND) while
     * opening, from the opening thread; NULL to ignore. */
    void (*notice)(void *ctx, const char *probe, int code, const char *msg);
    void *notice_ctx;
} melt_probe_set_params;

static inline melt_probe_set_params melt_probe_set_default_params(void)
{
    melt_probe_set_params p = {0};
    return p;
}

typedef struct melt_probe_set_stats {
    uint64_t ticks;         /* probe sample() calls made */
    uint64_t samples;       /* events emitted */
    uint64_t errors;        /* sample() calls that returned < 0 */
    uint64_t missed;        /* scheduled ticks skipped because the thread ran late */
    int64_t wall_ns;        /* since start (until stop, once stopped) */
    int64_t cpu_ns;         /* CPU time used by the sampling thread */
} melt_probe_set_stats;

/* Open the probes in params. A probe that is not present is skipped (and
 * reported through notice); an unknown probe name or any other open error
 * fails the whole call. A set with no present probe is valid (it idles).
 * The set owns nothing of params after return except emit/notice. */
int melt_probe_set_open(melt_probe_set **out, const melt_probe_set_params *params,
                        melt_error *err);

/* Number of probes opened (present), and the i-th one's name and rate. */
size_t melt_probe_set_count(const melt_probe_set *set);
const char *melt_probe_set_name(const melt_probe_set *set, size_t i);
double melt_probe_set_rate_hz(const melt_probe_set *set, size_t i);

/* Start the background thread: each probe is sampled at start + k/rate
 * (CLOCK_MONOTONIC, absolute deadlines, so no drift accumulates; a late tick
 * is skipped and counted in missed, never bunched). */
int melt_probe_set_start(melt_probe_set *set, melt_error *err);

/* Stop and join the thread (no-op if not running). Stats stay readable. */
void melt_probe_set_stop(melt_probe_set *set);

/* Sample every probe once now, on the calling thread (only while stopped). */
int melt_probe_set_sample_all(melt_probe_set *set, int64_t now_ns);

/* Counters so far, including the thread's own CPU time (overhead). */
void melt_probe_set_get_stats(melt_probe_set *set, melt_probe_set_stats *st);

/* Stop if running, close every probe, free the set. NULL is fine. */
void melt_probe_set_close(melt_probe_set *set);

/* CLOCK_MONOTONIC now in ns (the clock of every sample). */
int64_t melt_probe_now_ns(void);

#ifdef __cplusplus
}
#endif
#endif

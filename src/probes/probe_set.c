/* Probe set: open several probes and sample each at its own rate on one
 * background thread, with absolute CLOCK_MONOTONIC deadlines (start + k/rate,
 * so the schedule never drifts), and account the thread's own CPU time. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "melt/probe.h"

#define PROBE_SET_MAX_HZ 1000.0

typedef struct {
    const melt_probe_ops *ops;
    void *state;
    double rate_hz;
    int64_t period_ns;
    int64_t next_ns;
} probe_entry;

struct melt_probe_set {
    probe_entry *e;
    size_t n;
    melt_probe_emit_fn emit;
    void *emit_ctx;

    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int running;            /* under mu */
    int stop;               /* under mu */

    atomic_uint_fast64_t ticks, samples, errors, missed;
    _Atomic int64_t start_ns, end_ns, final_cpu_ns;
};

int64_t melt_probe_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int64_t thread_cpu_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)) return 0;
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void close_entries(melt_probe_set *set)
{
    for (size_t i = 0; i < set->n; i++)
        if (set->e[i].ops->close) set->e[i].ops->close(set->e[i].state);
    set->n = 0;
}

int melt_probe_set_open(melt_probe_set **out, const melt_probe_set_params *params,
                        melt_error *err)
{
    *out = NULL;
    if (!params || !params->emit)
        return melt_errorf(err, MELT_EINVAL, "probe set: params and emit are required");
    size_t n_reg = 0;
    while (melt_probe_registry[n_reg]) n_reg++;
    size_t n = params->specs ? params->n_specs : n_reg;
    melt_probe_set *set = calloc(1, sizeof *set);
    if (set) set->e = calloc(n ? n : 1, sizeof *set->e);
    if (!set || !set->e) {
        if (set) free(set->e);      /* mutex and cond not made yet */
        free(set);
        return melt_errorf(err, MELT_ENOMEM, "probe set: out of memory");
    }
    set->emit = params->emit;
    set->emit_ctx = params->emit_ctx;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&set->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&set->mu, NULL);
    for (size_t i = 0; i < n; i++) {
        const melt_probe_ops *ops;
        double rate = 0;
        const char *opts = NULL;
        if (params->specs) {
            const melt_probe_spec *sp = &params->specs[i];
            ops = melt_probe_find(sp->name);
            if (!ops) {
                char known[256] = "";
                size_t k = 0;
                for (size_t j = 0; j < n_reg && k < sizeof known; j++) {
                    int w = snprintf(known + k, sizeof known - k, "%s%s", j ? ", " : "",
                                     melt_probe_registry[j]->name);
                    if (w > 0) k += (size_t)w;
                }
                melt_probe_set_close(set);
                return melt_errorf(err, MELT_EINVAL, "unknown probe '%s' (known: %s)",
                                   sp->name ? sp->name : "(null)", known);
            }
            rate = sp->rate_hz;
            opts = sp->options;
        } else {
            ops = melt_probe_registry[i];
        }
        if (rate <= 0) rate = ops->default_hz > 0 ? ops->default_hz : 1.0;
        if (!(rate <= PROBE_SET_MAX_HZ)) {
            melt_probe_set_close(set);
            return melt_errorf(err, MELT_EINVAL, "probe %s: rate %g Hz above %g Hz", ops->name,
                               rate, PROBE_SET_MAX_HZ);
        }
        void *state = NULL;
        melt_error e1 = {0};
        int rc = ops->open(params->root, params->pid, opts, &state, &e1);
        if (rc == MELT_ENOTFOUND) {
            if (params->notice) params->notice(params->notice_ctx, ops->name, rc, e1.msg);
            continue;
        }
        if (rc) {
            melt_probe_set_close(set);
            return melt_errorf(err, rc, "%s", e1.msg);
        }
        probe_entry *pe = &set->e[set->n++];
        pe->ops = ops;
        pe->state = state;
        pe->rate_hz = rate;
        pe->period_ns = (int64_t)(1e9 / rate);
        if (pe->period_ns < 1) pe->period_ns = 1;
    }
    *out = set;
    return 0;
}

size_t melt_probe_set_count(const melt_probe_set *set) { return set ? set->n : 0; }

const char *melt_probe_set_name(const melt_probe_set *set, size_t i)
{
    return set && i < set->n ? set->e[i].ops->name : NULL;
}

double melt_probe_set_rate_hz(const melt_probe_set *set, size_t i)
{
    return set && i < set->n ? set->e[i].rate_hz : 0.0;
}

static void run_one(melt_probe_set *set, probe_entry *pe, int64_t now)
{
    int rc = pe->ops->sample(pe->state, now, set->emit, set->emit_ctx);
    atomic_fetch_add(&set->ticks, 1);
    if (rc < 0) atomic_fetch_add(&set->errors, 1);
    else atomic_fetch_add(&set->samples, (uint64_t)rc);
}

static void *sampler_main(void *arg)
{
    melt_probe_set *set = arg;
    int64_t start = atomic_load(&set->start_ns);
    for (size_t i = 0; i < set->n; i++) set->e[i].next_ns = start;
    pthread_mutex_lock(&set->mu);
    while (!set->stop) {
        pthread_mutex_unlock(&set->mu);
        int64_t earliest = INT64_MAX;
        for (size_t i = 0; i < set->n; i++) {
            probe_entry *pe = &set->e[i];
            int64_t now = melt_probe_now_ns();
            if (now >= pe->next_ns) {
                run_one(set, pe, now);
                pe->next_ns += pe->period_ns;
                now = melt_probe_now_ns();
                if (pe->next_ns <= now) {       /* ran late: skip, never bunch */
                    int64_t k = (now - pe->next_ns) / pe->period_ns + 1;
                    atomic_fetch_add(&set->missed, (uint64_t)k);
                    pe->next_ns += k * pe->period_ns;
                }
            }
            if (pe->next_ns < earliest) earliest = pe->next_ns;
        }
        pthread_mutex_lock(&set->mu);
        while (!set->stop) {
            if (earliest == INT64_MAX) {
                pthread_cond_wait(&set->cv, &set->mu);
                continue;
            }
            struct timespec ts = {(time_t)(earliest / 1000000000LL), (long)(earliest % 1000000000LL)};
            int rc = pthread_cond_timedwait(&set->cv, &set->mu, &ts);
            if (rc == ETIMEDOUT || melt_probe_now_ns() >= earliest) break;
        }
    }
    pthread_mutex_unlock(&set->mu);
    atomic_store(&set->final_cpu_ns, thread_cpu_ns());
    return NULL;
}

int melt_probe_set_start(melt_probe_set *set, melt_error *err)
{
    pthread_mutex_lock(&set->mu);
    if (set->running) {
        pthread_mutex_unlock(&set->mu);
        return melt_errorf(err, MELT_EINVAL, "probe set: already running");
    }
    set->stop = 0;
    atomic_store(&set->start_ns, melt_probe_now_ns());
    atomic_store(&set->end_ns, 0);
    atomic_store(&set->final_cpu_ns, 0);
    int rc = pthread_create(&set->thread, NULL, sampler_main, set);
    if (rc == 0) set->running = 1;
    pthread_mutex_unlock(&set->mu);
    if (rc) return melt_errorf(err, MELT_EIO, "probe set: cannot start thread (%s)", strerror(rc));
    return 0;
}

void melt_probe_set_stop(melt_probe_set *set)
{
    if (!set) return;
    pthread_mutex_lock(&set->mu);
    if (!set->running) {
        pthread_mutex_unlock(&set->mu);
        return;
    }
    set->stop = 1;
    pthread_cond_signal(&set->cv);
    pthread_mutex_unlock(&set->mu);
    pthread_join(set->thread, NULL);
    atomic_store(&set->end_ns, melt_probe_now_ns());
    pthread_mutex_lock(&set->mu);
    set->running = 0;
    pthread_mutex_unlock(&set->mu);
}

int melt_probe_set_sample_all(melt_probe_set *set, int64_t now_ns)
{
    pthread_mutex_lock(&set->mu);
    int running = set->running;
    pthread_mutex_unlock(&set->mu);
    if (running) return MELT_EINVAL;
    int total = 0;
    for (size_t i = 0; i < set->n; i++) {
        int rc = set->e[i].ops->sample(set->e[i].state, now_ns, set->emit, set->emit_ctx);
        if (rc > 0) total += rc;
    }
    return total;
}

void melt_probe_set_get_stats(melt_probe_set *set, melt_probe_set_stats *st)
{
    memset(st, 0, sizeof *st);
    st->ticks = atomic_load(&set->ticks);
    st->samples = atomic_load(&set->samples);
    st->errors = atomic_load(&set->errors);
    st->missed = atomic_load(&set->missed);
    int64_t start = atomic_load(&set->start_ns);
    int64_t end = atomic_load(&set->end_ns);
    pthread_mutex_lock(&set->mu);
    int running = set->running;
    int64_t cpu = -1;
    if (running) {
        clockid_t cid;
        struct timespec ts;
        if (pthread_getcpuclockid(set->thread, &cid) == 0 && clock_gettime(cid, &ts) == 0)
            cpu = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
    }
    pthread_mutex_unlock(&set->mu);
    st->cpu_ns = cpu >= 0 ? cpu : atomic_load(&set->final_cpu_ns);
    if (start) st->wall_ns = (end ? end : melt_probe_now_ns()) - start;
}

void melt_probe_set_close(melt_probe_set *set)
{
    if (!set) return;
    melt_probe_set_stop(set);
    close_entries(set);
    pthread_cond_destroy(&set->cv);
    pthread_mutex_destroy(&set->mu);
    free(set->e);
    free(set);
}

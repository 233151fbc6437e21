/* Probe overhead: every probe present on this machine sampled at 10 Hz on the
 * probe set's background thread for N seconds (default 10); prints the
 * thread's CPU time as a fraction of one core (target < 1%) and the cost of
 * one sample() of each probe. Usage: probe_overhead [SECONDS] [ROOT]
 * Exit status 1 when the fraction is 1% or more. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "melt/probe.h"

typedef struct {
    unsigned long long n;
} counter;

static void count_emit(void *ctx, const melt_event *ev)
{
    (void)ev;
    ((counter *)ctx)->n++;
}

static void on_notice(void *ctx, const char *probe, int code, const char *msg)
{
    (void)ctx;
    (void)code;
    printf("  %-13s not present: %s\n", probe, msg);
}

static int64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? strtod(argv[1], NULL) : 10.0;
    const char *root = argc > 2 ? argv[2] : "/";
    if (!(seconds > 0)) seconds = 10.0;

    size_t n_reg = 0;
    while (melt_probe_registry[n_reg]) n_reg++;
    melt_probe_spec specs[32];
    for (size_t i = 0; i < n_reg && i < 32; i++)
        specs[i] = (melt_probe_spec){melt_probe_registry[i]->name, 10.0, NULL};

    counter cnt = {0};
    melt_probe_set_params p = melt_probe_set_default_params();
    p.root = root;
    p.pid = (int)getpid();
    p.specs = specs;
    p.n_specs = n_reg;
    p.emit = count_emit;
    p.emit_ctx = &cnt;
    p.notice = on_notice;
    melt_probe_set *set = NULL;
    melt_error err = {0};
    printf("probe overhead: root %s, 10 Hz, %.1f s\n", root, seconds);
    if (melt_probe_set_open(&set, &p, &err)) {
        fprintf(stderr, "probe_overhead: %s\n", err.msg);
        return 2;
    }

    /* cost of one sample() of each probe, on this thread (probes keep state,
     * so this also warms them up) */
    for (size_t i = 0; i < melt_probe_set_count(set); i++) {
        const melt_probe_ops *ops = melt_probe_find(melt_probe_set_name(set, i));
        void *st = NULL;
        melt_error e2 = {0};
        if (ops->open(root, p.pid, NULL, &st, &e2)) continue;
        counter c1 = {0};
        const int reps = 200;
        int64_t t0 = thread_cpu_ns();
        for (int r = 0; r < reps; r++) ops->sample(st, melt_probe_now_ns(), count_emit, &c1);
        int64_t t1 = thread_cpu_ns();
        printf("  %-13s %7.1f us CPU per sample, %4.1f samples each\n", ops->name,
               (double)(t1 - t0) / reps / 1e3, (double)c1.n / reps);
        ops->close(st);
    }

    if (melt_probe_set_start(set, &err)) {
        fprintf(stderr, "probe_overhead: %s\n", err.msg);
        melt_probe_set_close(set);
        return 2;
    }
    struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    while (nanosleep(&ts, &ts) && errno == EINTR) {}
    melt_probe_set_stop(set);
    melt_probe_set_stats st;
    melt_probe_set_get_stats(set, &st);
    double frac = st.wall_ns > 0 ? (double)st.cpu_ns / (double)st.wall_ns : 0.0;
    printf("  %zu probes, %llu ticks, %llu samples, %llu missed, %.3f ms CPU in %.3f s\n",
           melt_probe_set_count(set), (unsigned long long)st.ticks,
           (unsigned long long)st.samples, (unsigned long long)st.missed, st.cpu_ns / 1e6,
           st.wall_ns / 1e9);
    printf("probe overhead ratio: %.5f of one core (%.3f%%), target < 1%%: %s\n", frac,
           100.0 * frac, frac < 0.01 ? "ok" : "OVER");
    melt_probe_set_close(set);
    return frac < 0.01 ? 0 : 1;
}

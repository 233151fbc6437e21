/* melt — cool-down before a cell on this machine: read every thermal zone
 * (the thermal probe, host-side) until all are below the threshold, waiting
 * at least min_wait_s and at most max_wait_s. The runner records the wait
 * in the cell's first trial (docs/experiment.md, "Running"). */
#include <math.h>
#include <time.h>

#include "melt/probe.h"
#include "runner/runner_internal.h"

typedef struct zones {
    int n;
    double max_mc;
} zones;

static void on_sample(void *ctx, const melt_event *ev)
{
    zones *z = ctx;
    if (!ev->has_value)
        return;
    z->n++;
    if (ev->value > z->max_mc)
        z->max_mc = ev->value;
}

void runner_cooldown_local(const melt_exp_cooldown *c, const char *probe_root,
                           const volatile sig_atomic_t *interrupts,
                           runner_cooldown_result *out)
{
    out->waited_s = 0;
    out->max_temp_c = NAN;
    out->n_zones = 0;
    out->timed_out = false;
    out->interrupted = false;
    const melt_probe_ops *th = melt_probe_find("thermal");
    void *st = NULL;
    melt_error err = {0};
    if (th && th->open(probe_root, 0, NULL, &st, &err) < 0)
        st = NULL;
    const int64_t t0 = runner_now_ns();
    for (;;) {
        const double waited = (double)(runner_now_ns() - t0) / 1e9;
        out->waited_s = waited;
        if (interrupts && *interrupts) {
            out->interrupted = true;
            break;
        }
        bool cool = true;
        if (st) {
            zones z = {0, -INFINITY};
            th->sample(st, runner_now_ns(), on_sample, &z);
            out->n_zones = z.n;
            if (z.n > 0) {
                out->max_temp_c = z.max_mc / 1000.0;
                cool = out->max_temp_c < c->max_temp_c;
            }
        }
        if (cool && waited >= c->min_wait_s)
            break;
        if (waited >= c->max_wait_s) {
            out->timed_out = !cool;
            break;
        }
        struct timespec ts = {0, 200 * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (th && st)
        th->close(st);
}

/* Store ingest: events per second into a fresh SQLite store, the way the
 * runner writes them (one trial, batches of BATCH events per call, each
 * call one transaction). A realistic mix: per token a token event, every
 * tenth a probe sample with key and unit. Target >= 200k events/s.
 * Usage: store_ingest [EVENTS] [BATCH] [DB]   (defaults 2000000 1000 tmp) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "melt/store.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    const long total = argc > 1 ? strtol(argv[1], NULL, 10) : 2000000;
    const long batch = argc > 2 ? strtol(argv[2], NULL, 10) : 1000;
    char path[256];
    if (argc > 3)
        snprintf(path, sizeof path, "%s", argv[3]);
    else
        snprintf(path, sizeof path, "%s/melt-bench-%ld.db",
                 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (long)getpid());
    if (total <= 0 || batch <= 0) {
        fprintf(stderr, "usage: store_ingest [EVENTS] [BATCH] [DB]\n");
        return 2;
    }
    melt_error err = {0};
    melt_store *s;
    if (melt_store_open(path, &s, &err) < 0) {
        fprintf(stderr, "store_ingest: %s\n", err.msg);
        return 1;
    }
    int64_t run, cell, trial;
    melt_run_meta meta = {.name = "bench"};
    melt_cell_meta cm = {.cell_id = "bench"};
    if (melt_store_begin_run(s, &meta, &run, &err) < 0 ||
        melt_store_add_cell(s, run, &cm, &cell, &err) < 0 ||
        melt_store_begin_trial(s, cell, 0, false, &trial, &err) < 0) {
        fprintf(stderr, "store_ingest: %s\n", err.msg);
        return 1;
    }
    melt_event *ev = calloc((size_t)batch, sizeof *ev);
    if (!ev)
        return 1;
    long done = 0, tok = 0;
    const double t0 = now_s();
    while (done < total) {
        const long n = total - done < batch ? total - done : batch;
        for (long k = 0; k < n; k++) {
            melt_event *e = &ev[k];
            const long j = done + k;
            memset(e, 0, offsetof(melt_event, name));
            e->name[0] = e->key[0] = e->unit[0] = e->msg[0] = '\0';
            e->t_ns = j * 1000;
            if (j % 10 == 9) {
                e->kind = MELT_EV_SAMPLE;
                e->req = e->i = e->id = -1;
                memcpy(e->name, "thermal", 8);
                snprintf(e->key, sizeof e->key, "cpu%ld_temp", j % 8);
                memcpy(e->unit, "mC", 3);
                e->value = 40000 + (double)(j % 1000);
                e->has_value = true;
            } else {
                e->kind = MELT_EV_TOKEN;
                e->req = 0;
                e->i = (int32_t)tok;
                e->id = (int32_t)(tok++ % 32000);
            }
        }
        if (melt_store_add_events(s, trial, ev, (size_t)n, &err) < 0) {
            fprintf(stderr, "store_ingest: %s\n", err.msg);
            return 1;
        }
        done += n;
    }
    const double dt = now_s() - t0;
    melt_store_end_trial(s, trial, MELT_TRIAL_OK, &err);
    melt_store_close(s);
    const double rate = (double)total / dt;
    printf("store ingest: %ld events in batches of %ld: %.3f s, %.0f events/s "
           "(target 200000: %.2fx)\n", total, batch, dt, rate, rate / 200000.0);
    free(ev);
    if (argc <= 3) {
        char side[300];
        remove(path);
        snprintf(side, sizeof side, "%s-wal", path);
        remove(side);
        snprintf(side, sizeof side, "%s-shm", path);
        remove(side);
    }
    return rate >= 200000.0 ? 0 : 3;
}

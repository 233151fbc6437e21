/* Thread-pool dispatch overhead: ns per empty melt_pool_run, for 1, 2 and
 * more threads, for the pool in src/engine/threadpool.c ("new") and, for
 * comparison, a copy of the mutex + condition-variable pool it replaced
 * ("old", kept here only). Each figure is the median (and the best) of
 * REPEATS batches of N dispatches, old and new interleaved batch by batch;
 * on a machine shared with other work the best batch is the quiet-machine
 * figure and the median the typical one.
 *
 * Usage: threadpool_dispatch [N [MAX_THREADS [REPEATS]]]   (make bench-pool) */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "engine/threadpool.h"

/* ---- the old pool, verbatim in behaviour (mutex + condvars) ---- */

typedef struct old_pool {
    int n_threads;
    pthread_t *threads;
    int n_started;
    pthread_mutex_t mu;
    pthread_cond_t start, done;
    unsigned long generation;
    int pending;
    int quit;
    melt_task_fn fn;
    void *arg;
} old_pool;

typedef struct old_worker_arg {
    old_pool *pool;
    int ith;
} old_worker_arg;

static void *old_worker_main(void *a)
{
    old_worker_arg *wa = a;
    old_pool *pool = wa->pool;
    const int ith = wa->ith;
    unsigned long seen = 0;
    pthread_mutex_lock(&pool->mu);
    for (;;) {
        while (!pool->quit && pool->generation == seen) pthread_cond_wait(&pool->start, &pool->mu);
        if (pool->quit) break;
        seen = pool->generation;
        melt_task_fn fn = pool->fn;
        void *arg = pool->arg;
        pthread_mutex_unlock(&pool->mu);
        fn(arg, ith, pool->n_threads);
        pthread_mutex_lock(&pool->mu);
        if (--pool->pending == 0) pthread_cond_signal(&pool->done);
    }
    pthread_mutex_unlock(&pool->mu);
    return NULL;
}

static old_pool *old_pool_new(int n_threads, old_worker_arg *args)
{
    old_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n_threads = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->start, NULL);
    pthread_cond_init(&p->done, NULL);
    p->threads = calloc((size_t)n_threads, sizeof *p->threads);
    for (int i = 1; i < n_threads; i++) {
        args[i] = (old_worker_arg){.pool = p, .ith = i};
        if (pthread_create(&p->threads[i - 1], NULL, old_worker_main, &args[i]) != 0) break;
        p->n_started++;
    }
    return p;
}

static void old_pool_free(old_pool *p)
{
    pthread_mutex_lock(&p->mu);
    p->quit = 1;
    pthread_cond_broadcast(&p->start);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_started; i++) pthread_join(p->threads[i], NULL);
    pthread_cond_destroy(&p->done);
    pthread_cond_destroy(&p->start);
    pthread_mutex_destroy(&p->mu);
    free(p->threads);
    free(p);
}

static void old_pool_run(old_pool *p, melt_task_fn fn, void *arg)
{
    if (p->n_threads == 1) {
        fn(arg, 0, 1);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->arg = arg;
    p->pending = p->n_threads - 1;
    p->generation++;
    pthread_cond_broadcast(&p->start);
    pthread_mutex_unlock(&p->mu);
    fn(arg, 0, p->n_threads);
    pthread_mutex_lock(&p->mu);
    while (p->pending > 0) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

/* ---- measuring ---- */

static void empty_task(void *arg, int ith, int nth)
{
    (void)arg;
    (void)ith;
    (void)nth;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 20000;
    int max_threads = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 2;
    int repeats = argc > 3 ? (int)strtol(argv[3], NULL, 10) : 21;
    if (n < 1 || max_threads < 1 || max_threads > 64 || repeats < 1 || repeats > 101) {
        fprintf(stderr, "usage: %s [N [MAX_THREADS [REPEATS]]]\n", argv[0]);
        return 2;
    }
    printf("empty dispatch, ns per melt_pool_run (median and best of %d x %ld; %d cores online; spin %s us)\n",
           repeats, n, melt_pool_cpu_count(),
           getenv("MELT_POOL_SPIN_US") ? getenv("MELT_POOL_SPIN_US") : "default");
    printf("%-8s %12s %12s %8s %12s %12s %8s\n", "threads", "old_ns", "new_ns", "old/new", "old_best_ns",
           "new_best_ns", "old/new");
    for (int t = 1; t <= max_threads; t++) {
        double *old_ns = calloc((size_t)repeats, sizeof *old_ns);
        double *new_ns = calloc((size_t)repeats, sizeof *new_ns);
        old_worker_arg *args = calloc((size_t)t, sizeof *args);
        melt_error err = {0};
        melt_pool *np = NULL;
        old_pool *op = old_pool_new(t, args);
        if (!old_ns || !new_ns || !args || !op || melt_pool_new(t, &np, &err) != 0) {
            fprintf(stderr, "cannot make pools of %d threads: %s\n", t, err.msg);
            return 1;
        }
        for (long i = 0; i < n / 10; i++) {   /* warm up both */
            old_pool_run(op, empty_task, NULL);
            melt_pool_run(np, empty_task, NULL);
        }
        for (int r = 0; r < repeats; r++) {
            int64_t t0 = now_ns();
            for (long i = 0; i < n; i++) old_pool_run(op, empty_task, NULL);
            int64_t t1 = now_ns();
            for (long i = 0; i < n; i++) melt_pool_run(np, empty_task, NULL);
            int64_t t2 = now_ns();
            old_ns[r] = (double)(t1 - t0) / (double)n;
            new_ns[r] = (double)(t2 - t1) / (double)n;
        }
        qsort(old_ns, (size_t)repeats, sizeof *old_ns, cmp_double);
        qsort(new_ns, (size_t)repeats, sizeof *new_ns, cmp_double);
        double o = old_ns[repeats / 2], w = new_ns[repeats / 2], ob = old_ns[0], wb = new_ns[0];
        printf("%-8d %12.1f %12.1f %8.1f %12.1f %12.1f %8.1f\n", t, o, w, w > 0 ? o / w : 0.0, ob, wb,
               wb > 0 ? ob / wb : 0.0);
        fflush(stdout);
        old_pool_free(op);
        melt_pool_free(np);
        free(old_ns);
        free(new_ns);
        free(args);
    }
    return 0;
}

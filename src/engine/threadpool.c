#include "engine/threadpool.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

struct melt_pool {
    int n_threads;
    pthread_t *threads;      /* n_threads - 1 workers */
    int n_started;
    pthread_mutex_t mu;
    pthread_cond_t start;    /* a new generation of work, or quit */
    pthread_cond_t done;     /* pending reached 0 */
    unsigned long generation;
    int pending;             /* workers still running this generation */
    int quit;
    melt_task_fn fn;
    void *arg;
};

typedef struct worker_arg {
    melt_pool *pool;
    int ith;
} worker_arg;

static void *worker_main(void *p)
{
    worker_arg *wa = p;
    melt_pool *pool = wa->pool;
    const int ith = wa->ith;
    free(wa);
    unsigned long seen = 0;
    pthread_mutex_lock(&pool->mu);
    for (;;) {
        while (!pool->quit && pool->generation == seen)
            pthread_cond_wait(&pool->start, &pool->mu);
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

int melt_pool_cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (int)n;
}

int melt_pool_new(int n_threads, melt_pool **out, melt_error *err)
{
    *out = NULL;
    if (n_threads < 1) return melt_errorf(err, MELT_EINVAL, "thread count %d < 1", n_threads);
    melt_pool *p = calloc(1, sizeof *p);
    if (!p) return melt_errorf(err, MELT_ENOMEM, "out of memory for the thread pool");
    p->n_threads = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->start, NULL);
    pthread_cond_init(&p->done, NULL);
    if (n_threads > 1) {
        p->threads = calloc((size_t)n_threads - 1, sizeof *p->threads);
        if (!p->threads) {
            melt_pool_free(p);
            return melt_errorf(err, MELT_ENOMEM, "out of memory for %d threads", n_threads);
        }
    }
    for (int i = 1; i < n_threads; i++) {
        worker_arg *wa = malloc(sizeof *wa);
        if (!wa) {
            melt_pool_free(p);
            return melt_errorf(err, MELT_ENOMEM, "out of memory for %d threads", n_threads);
        }
        wa->pool = p;
        wa->ith = i;
        if (pthread_create(&p->threads[i - 1], NULL, worker_main, wa) != 0) {
            free(wa);
            melt_pool_free(p);
            return melt_errorf(err, MELT_ENOMEM, "cannot start thread %d of %d", i + 1, n_threads);
        }
        p->n_started++;
    }
    *out = p;
    return 0;
}

void melt_pool_free(melt_pool *p)
{
    if (!p) return;
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

int melt_pool_n_threads(const melt_pool *p)
{
    return p->n_threads;
}

void melt_pool_run(melt_pool *p, melt_task_fn fn, void *arg)
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

/* A small persistent thread pool: run one task on n threads and wait.
 *
 * melt_pool_run(p, fn, arg) calls fn(arg, ith, nth) once for every ith in
 * [0, nth) — ith 0 on the calling thread — and returns when all are done.
 * Tasks split their work by ith themselves (see ops.h). One caller at a
 * time. Simple mutex + condition variables; a spinning pool can replace it
 * without changing this interface. */
#ifndef MELT_ENGINE_THREADPOOL_H
#define MELT_ENGINE_THREADPOOL_H

#include "melt/error.h"

typedef struct melt_pool melt_pool;
typedef void (*melt_task_fn)(void *arg, int ith, int nth);

/* n_threads >= 1 (1 = no extra threads). */
int melt_pool_new(int n_threads, melt_pool **out, melt_error *err);
void melt_pool_free(melt_pool *p);
int melt_pool_n_threads(const melt_pool *p);
void melt_pool_run(melt_pool *p, melt_task_fn fn, void *arg);

/* Online CPU cores (at least 1). */
int melt_pool_cpu_count(void);

#endif

/* A small persistent thread pool: run one task on n threads and wait.
 *
 * melt_pool_run(p, fn, arg) calls fn(arg, ith, nth) once for every ith in
 * [0, nth) — ith 0 on the calling thread — and returns when all are done;
 * everything the task wrote is visible to the caller then. Tasks split their
 * work by ith themselves (see ops.h), so that results do not depend on nth.
 *
 * How it waits (threadpool.c): a dispatch bumps an atomic generation
 * counter; workers spin on it with a pause hint, then, after spin_us without
 * work, sleep (futex on Linux, a condition variable elsewhere) until the next
 * dispatch wakes them. The caller spins on an atomic count of workers still
 * running, with the same bound before it sleeps. No lock is taken while the
 * workers are awake. When the pool sees its threads being preempted (more
 * runnable threads than cores: other programs, or more threads than cores)
 * it stops spinning for a while and parks at once, as a condvar pool would.
 * A pool of 1 thread runs fn inline with no synchronization at all.
 *
 * One dispatch at a time: a melt_pool_run made while the pool is running a
 * task (from inside the task — nested — or from another thread) does not
 * wait or deadlock: it runs its task inline on its own thread as
 * fn(arg, 0, 1). Tasks that split by (ith, nth) give the same results. */
#ifndef MELT_ENGINE_THREADPOOL_H
#define MELT_ENGINE_THREADPOOL_H

#include "melt/error.h"

typedef struct melt_pool melt_pool;
typedef void (*melt_task_fn)(void *arg, int ith, int nth);

/* Spin before sleeping, in microseconds, unless MELT_POOL_SPIN_US (0 to
 * 1000000) is set in the environment when the pool is made. */
#define MELT_POOL_SPIN_US_DEFAULT 100

/* n_threads >= 1 (1 = no extra threads). Free with melt_pool_free. */
int melt_pool_new(int n_threads, melt_pool **out, melt_error *err);
/* Stops and joins the workers; NULL is fine. Not while a run is going on. */
void melt_pool_free(melt_pool *p);
int melt_pool_n_threads(const melt_pool *p);
void melt_pool_run(melt_pool *p, melt_task_fn fn, void *arg);

/* How long an idle thread spins before it sleeps (0: sleep at once). Takes
 * effect from the next wait; for tuning and tests. */
void melt_pool_set_spin_us(melt_pool *p, int spin_us);

/* Online CPU cores (at least 1). */
int melt_pool_cpu_count(void);

#endif

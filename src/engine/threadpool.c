/* The thread pool: spin on atomics, then sleep (design in threadpool.h).
 *
 * Shared words, each on its own cache line:
 *   generation  bumped by the caller to start a task (and to quit); the
 *               task (fn, arg) and pending are written before the bump and
 *               published by it (seq_cst store, so release); workers read
 *               them after an acquire load that sees the new value.
 *   pending     workers still running the task; each finishing worker
 *               decrements it (release), the caller waits for 0 (acquire),
 *               so a worker's writes happen before melt_pool_run returns.
 *   n_sleeping  workers parked (or about to park) on generation;
 *   caller_sleeping  1 while the caller is parked (or about to) on pending.
 *
 * Parking is the Dekker pattern with seq_cst on both sides: a waiter
 * announces itself (n_sleeping++), then re-reads the word and sleeps only
 * if it is unchanged (the futex re-checks that atomically in the kernel); a
 * waker changes the word, then reads the announcement and wakes if it is
 * set. Either the waiter sees the change or the waker sees the waiter, so
 * no wake-up is lost. None of this runs while the threads are spinning.
 *
 * Spinning is bounded by spin_us of wall time, with a pause hint each turn
 * and a sched_yield every YIELD_EVERY turns, so that on an oversubscribed
 * machine (more runnable threads than cores) a spinner lets the thread it
 * waits for run. The yields double as a probe: when the clock jumps by
 * PREEMPTED_NS between two looks (a yield or a preemption gave the core to
 * another thread), the machine is oversubscribed, and for a while (2 ms,
 * doubling while it lasts, mark_oversubscribed) every wait of the pool
 * parks at once, as a mutex + condvar pool would: there a spinner only
 * burns the time slice that the thread it waits for needs, and sleepers get
 * the scheduler's wake-up preference. Every thread also counts its
 * involuntary context switches once every PROBE_EVERY tasks
 * (probe_preemption), which sees preemptions in the middle of a task too;
 * and a caller that spins out waiting for workers that were awake when it
 * dispatched (their shares are the size of its own) takes that as a sign. */
#include "engine/threadpool.h"

#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#endif

#define CACHE_LINE 64
#define CHECK_CLOCK_EVERY 64   /* spin turns between clock reads (a power of 2) */
#define YIELD_EVERY 256        /* spin turns between sched_yield calls (a power of 2) */
#define PREEMPTED_NS 50000     /* a gap this long between clock reads: we were descheduled */
#define NO_SPIN_NS 2000000     /* then nobody spins for this long, */
#define NO_SPIN_MAX_SHIFT 6    /* doubled at each new sign, up to 64x, till a quiet look */
#define PROBE_EVERY 64         /* tasks between looks at a thread's involuntary switches */
#define PREEMPTED_SWITCHES 2   /* at least that many since the last look, */
#define PREEMPTED_HZ 100       /* and at least that many a second: oversubscribed */
#define PROBE_MAX_NS 100000000 /* looks further apart than this do not count */

/* A thread's involuntary context switches at its last look. */
typedef struct preempt_probe {
    long last;       /* -1: not looked yet */
    int64_t last_ns; /* when */
    unsigned n;      /* tasks since the thread started */
} preempt_probe;

typedef struct worker_arg {
    struct melt_pool *pool;
    int ith;
} worker_arg;

struct melt_pool {
    /* the task: written by the caller, read by the workers */
    _Alignas(CACHE_LINE) atomic_uint generation;
    melt_task_fn fn;
    void *arg;
    int quit;
    int n_threads;
    /* written by every worker once a task */
    _Alignas(CACHE_LINE) atomic_uint pending;
    /* the caller's own */
    _Alignas(CACHE_LINE) atomic_int busy;  /* 1 while a melt_pool_run is dispatching */
    atomic_int caller_sleeping;
    preempt_probe caller_probe;            /* the dispatching thread's (under busy) */
    /* read at every wait, seldom written */
    _Alignas(CACHE_LINE) atomic_int n_sleeping;  /* workers parked or about to park */
    atomic_int spin_us;
    _Atomic int64_t no_spin_until_ns;      /* CLOCK_MONOTONIC: oversubscribed until then */
    atomic_int no_spin_shift;              /* that lasts NO_SPIN_NS << this */
    /* cold */
    pthread_t *threads;      /* n_threads - 1 workers */
    worker_arg *args;
    int n_started;
#ifndef __linux__
    pthread_mutex_t park_mu; /* parking without futexes */
    pthread_cond_t park_cv;
#endif
};

/* ---- spinning and parking ---- */

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The pool's threads are sharing cores with other threads: park without
 * spinning for a while, longer each time it happens again. The spells are
 * kept short at first because parking has a cost of its own: a woken
 * thread tends to be put on its waker's core, so two threads of the pool
 * can end up sharing one core (and preempting each other) on an otherwise
 * idle machine; spinning again is what lets the scheduler spread them. */
static void mark_oversubscribed(melt_pool *p, int64_t t_ns)
{
    int shift = atomic_load_explicit(&p->no_spin_shift, memory_order_relaxed);
    atomic_store_explicit(&p->no_spin_until_ns, t_ns + ((int64_t)NO_SPIN_NS << shift), memory_order_relaxed);
    if (shift < NO_SPIN_MAX_SHIFT) atomic_store_explicit(&p->no_spin_shift, shift + 1, memory_order_relaxed);
}

/* Once every PROBE_EVERY tasks: has the calling thread been preempted
 * (involuntary context switches, which include sched_yield giving the core
 * away) since the last look? A thread on a core of its own seldom is (a
 * few tens a second here, by daemons and kernel threads); one that shares
 * its core with other busy threads is at every time slice, hundreds a
 * second, often in the middle of a task, where the clock-gap check of the
 * spin loop cannot see it. */
static void probe_preemption(melt_pool *p, preempt_probe *pp)
{
#ifdef RUSAGE_THREAD
    if (++pp->n % PROBE_EVERY != 0) return;
    struct rusage ru;
    if (getrusage(RUSAGE_THREAD, &ru) != 0) return;
    const int64_t t = now_ns();
    const long n = ru.ru_nivcsw - pp->last;
    /* Only a stretch spent spinning counts: while the pool parks, waking a
     * thread preempts its waker when both share a core, and that would keep
     * the pool parked for good; and only a recent one (not the time this
     * thread spent elsewhere between two uses of the pool). */
    if (pp->last >= 0 && t - pp->last_ns <= PROBE_MAX_NS &&
        atomic_load_explicit(&p->no_spin_until_ns, memory_order_relaxed) <= pp->last_ns) {
        if (n >= PREEMPTED_SWITCHES && (int64_t)n * 1000000000 >= PREEMPTED_HZ * (t - pp->last_ns))
            mark_oversubscribed(p, t);
        else
            atomic_store_explicit(&p->no_spin_shift, 0, memory_order_relaxed);   /* quiet while spinning */
    }
    pp->last = ru.ru_nivcsw;
    pp->last_ns = t;
#else
    (void)p;
    (void)pp;
#endif
}

/* Sleep while *word == expected (may return early: callers loop). */
static void park(melt_pool *p, atomic_uint *word, unsigned expected)
{
#ifdef __linux__
    (void)p;
    syscall(SYS_futex, (void *)word, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
#else
    pthread_mutex_lock(&p->park_mu);
    while (atomic_load(word) == expected) pthread_cond_wait(&p->park_cv, &p->park_mu);
    pthread_mutex_unlock(&p->park_mu);
#endif
}

/* Wake every thread parked on word (after changing it). */
static void unpark_all(melt_pool *p, atomic_uint *word)
{
#ifdef __linux__
    (void)p;
    syscall(SYS_futex, (void *)word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
#else
    (void)word;
    pthread_mutex_lock(&p->park_mu);
    pthread_cond_broadcast(&p->park_cv);
    pthread_mutex_unlock(&p->park_mu);
#endif
}

/* Spin for up to spin_us until done(*word), then park. until_zero: wait
 * for *word == 0 (the caller on pending); else for *word != old (a worker
 * on generation). timeout_is_preemption: a spin that runs out is a sign of
 * oversubscription. Returns the value that ended the wait (acquire). */
static unsigned await_word(melt_pool *p, atomic_uint *word, unsigned old, int until_zero,
                           int timeout_is_preemption, atomic_int *sleepers)
{
    unsigned v = atomic_load_explicit(word, memory_order_acquire);
#define DONE(v) (until_zero ? (v) == 0 : (v) != old)
    if (DONE(v)) return v;
    const int64_t spin_ns = (int64_t)atomic_load_explicit(&p->spin_us, memory_order_relaxed) * 1000;
    if (spin_ns > 0) {
        const int64_t t0 = now_ns();
        int64_t t_prev = t0;
        if (t0 >= atomic_load_explicit(&p->no_spin_until_ns, memory_order_relaxed)) {
            for (unsigned i = 1;; i++) {
                cpu_relax();
                v = atomic_load_explicit(word, memory_order_acquire);
                if (DONE(v)) return v;
                if (i % CHECK_CLOCK_EVERY == 0) {
                    const int64_t t = now_ns();
                    if (t - t_prev >= PREEMPTED_NS) {   /* another thread had this core */
                        mark_oversubscribed(p, t);
                        break;
                    }
                    if (t - t0 >= spin_ns) {
                        /* the caller, its share done, waited a whole spin
                         * for workers that were awake: one is not running */
                        if (timeout_is_preemption) mark_oversubscribed(p, t);
                        break;
                    }
                    t_prev = t;
                }
                if (i % YIELD_EVERY == 0) sched_yield();
            }
        }
    }
    for (;;) {
        atomic_fetch_add(sleepers, 1);
        v = atomic_load(word);
        if (!DONE(v)) park(p, word, v);
        atomic_fetch_sub_explicit(sleepers, 1, memory_order_relaxed);
        v = atomic_load_explicit(word, memory_order_acquire);
        if (DONE(v)) return v;
    }
#undef DONE
}

static void *worker_main(void *a)
{
    const worker_arg *wa = a;
    melt_pool *p = wa->pool;
    const int ith = wa->ith;
    unsigned seen = 0;   /* the generation at creation */
    preempt_probe probe = {.last = -1};
    for (;;) {
        seen = await_word(p, &p->generation, seen, 0, 0, &p->n_sleeping);
        if (p->quit) break;
        p->fn(p->arg, ith, p->n_threads);
        if (atomic_fetch_sub(&p->pending, 1) == 1 && atomic_load(&p->caller_sleeping))
            unpark_all(p, &p->pending);
        probe_preemption(p, &probe);
    }
    return NULL;
}

/* ---- the pool ---- */

int melt_pool_cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (int)n;
}

static int spin_us_from_env(void)
{
    const char *s = getenv("MELT_POOL_SPIN_US");
    if (!s || !*s) return MELT_POOL_SPIN_US_DEFAULT;
    char *end;
    long v = strtol(s, &end, 10);
    if (*end || v < 0 || v > 1000000) return MELT_POOL_SPIN_US_DEFAULT;
    return (int)v;
}

int melt_pool_new(int n_threads, melt_pool **out, melt_error *err)
{
    *out = NULL;
    if (n_threads < 1) return melt_errorf(err, MELT_EINVAL, "thread count %d < 1", n_threads);
    const size_t size = (sizeof(melt_pool) + CACHE_LINE - 1) / CACHE_LINE * CACHE_LINE;
    melt_pool *p = aligned_alloc(CACHE_LINE, size);
    if (!p) return melt_errorf(err, MELT_ENOMEM, "out of memory for the thread pool");
    memset(p, 0, size);
    atomic_init(&p->generation, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->n_sleeping, 0);
    atomic_init(&p->caller_sleeping, 0);
    atomic_init(&p->busy, 0);
    atomic_init(&p->spin_us, spin_us_from_env());
    atomic_init(&p->no_spin_until_ns, 0);
    atomic_init(&p->no_spin_shift, 0);
    p->caller_probe.last = -1;
    p->n_threads = n_threads;
#ifndef __linux__
    pthread_mutex_init(&p->park_mu, NULL);
    pthread_cond_init(&p->park_cv, NULL);
#endif
    if (n_threads == 1) {
        *out = p;
        return 0;
    }
    p->threads = calloc((size_t)n_threads - 1, sizeof *p->threads);
    p->args = calloc((size_t)n_threads - 1, sizeof *p->args);
    if (!p->threads || !p->args) {
        melt_pool_free(p);
        return melt_errorf(err, MELT_ENOMEM, "out of memory for %d threads", n_threads);
    }
    for (int i = 1; i < n_threads; i++) {
        p->args[i - 1] = (worker_arg){.pool = p, .ith = i};
        if (pthread_create(&p->threads[i - 1], NULL, worker_main, &p->args[i - 1]) != 0) {
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
    if (p->n_started > 0) {
        p->quit = 1;
        atomic_fetch_add(&p->generation, 1);
        unpark_all(p, &p->generation);
        for (int i = 0; i < p->n_started; i++) pthread_join(p->threads[i], NULL);
    }
#ifndef __linux__
    pthread_cond_destroy(&p->park_cv);
    pthread_mutex_destroy(&p->park_mu);
#endif
    free(p->threads);
    free(p->args);
    free(p);
}

int melt_pool_n_threads(const melt_pool *p)
{
    return p->n_threads;
}

void melt_pool_set_spin_us(melt_pool *p, int spin_us)
{
    if (spin_us < 0) spin_us = 0;
    if (spin_us > 1000000) spin_us = 1000000;
    atomic_store_explicit(&p->spin_us, spin_us, memory_order_relaxed);
}

void melt_pool_run(melt_pool *p, melt_task_fn fn, void *arg)
{
    if (p->n_threads == 1) {
        fn(arg, 0, 1);
        return;
    }
    int idle = 0;
    if (!atomic_compare_exchange_strong_explicit(&p->busy, &idle, 1, memory_order_acquire,
                                                 memory_order_relaxed)) {
        fn(arg, 0, 1);   /* nested, or a second caller: run it here (threadpool.h) */
        return;
    }
    p->fn = fn;
    p->arg = arg;
    atomic_store_explicit(&p->pending, (unsigned)p->n_threads - 1, memory_order_relaxed);
    atomic_fetch_add(&p->generation, 1);   /* publishes fn, arg, pending */
    const int woke = atomic_load(&p->n_sleeping) > 0;
    if (woke) unpark_all(p, &p->generation);

    fn(arg, 0, p->n_threads);

    /* workers just woken may well take longer than a spin to get going */
    await_word(p, &p->pending, 0, 1, !woke, &p->caller_sleeping);
    probe_preemption(p, &p->caller_probe);
    atomic_store_explicit(&p->busy, 0, memory_order_release);
}

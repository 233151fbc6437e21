/* The thread pool (src/engine/threadpool.c): every index of a task runs
 * once per dispatch, on 1 to 8 threads, over thousands of dispatches; what
 * a task writes is visible when melt_pool_run returns; nested and
 * concurrent dispatches run inline; pools come and go cleanly; and workers
 * that went to sleep after their spin wake up for the next task.
 *
 * A lost wake-up would hang, so main() arms an alarm: a deadlock fails the
 * run instead of stalling it. */
#include "testutil.h"

#include <dirent.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <time.h>

#include "engine/threadpool.h"

static melt_pool *pool_new(int n_threads)
{
    melt_error err = {0};
    melt_pool *p = NULL;
    if (melt_pool_new(n_threads, &p, &err) != 0) fail_msg("melt_pool_new(%d): %s", n_threads, err.msg);
    assert_non_null(p);
    assert_int_equal(melt_pool_n_threads(p), n_threads);
    return p;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* ---- a task that counts: items split by (ith, nth) as the kernels do ---- */

typedef struct count_task {
    int n_items;
    int *hits;          /* per item: plain ints, each written by one thread */
    int calls[8];       /* per ith */
    int bad_nth;        /* calls with nth != the pool's thread count */
    int want_nth;       /* 0: any */
} count_task;

static void count_run(void *arg, int ith, int nth)
{
    count_task *t = arg;
    if ((t->want_nth && nth != t->want_nth) || ith < 0 || ith >= nth) {
        t->bad_nth = 1;   /* racy on purpose only when already wrong */
        return;
    }
    t->calls[ith]++;
    const int per = t->n_items / nth, extra = t->n_items % nth;
    const int i0 = ith * per + (ith < extra ? ith : extra);
    const int i1 = i0 + per + (ith < extra ? 1 : 0);
    for (int i = i0; i < i1; i++) t->hits[i]++;
}

static void pool_runs_every_index_exactly_once(void **state)
{
    (void)state;
    static const int sizes[] = {0, 1, 2, 3, 7, 8, 9, 63, 64, 65, 1000, 4099};
    const int n_sizes = (int)(sizeof sizes / sizeof sizes[0]);
    const int rounds = 3000;
    int *hits = calloc(4099, sizeof *hits);
    assert_non_null(hits);
    for (int n = 1; n <= 8; n++) {
        melt_pool *p = pool_new(n);
        count_task t = {.hits = hits, .want_nth = n};
        for (int r = 0; r < rounds; r++) {
            t.n_items = sizes[r % n_sizes];
            memset(t.calls, 0, sizeof t.calls);
            memset(hits, 0, (size_t)t.n_items * sizeof *hits);
            melt_pool_run(p, count_run, &t);
            if (t.bad_nth) fail_msg("%d threads, round %d: a call had the wrong (ith, nth)", n, r);
            for (int i = 0; i < n; i++)
                if (t.calls[i] != 1)
                    fail_msg("%d threads, round %d: ith %d ran %d times, expected once", n, r, i, t.calls[i]);
            for (int i = 0; i < t.n_items; i++)
                if (hits[i] != 1)
                    fail_msg("%d threads, round %d, %d items: item %d done %d times, expected once", n, r,
                             t.n_items, i, hits[i]);
        }
        melt_pool_free(p);
    }
    free(hits);
}

/* ---- memory ordering: plain writes seen by the caller after the run ---- */

typedef struct fill_task {
    uint64_t *buf;
    int n;
    uint64_t stamp;
} fill_task;

static void fill_run(void *arg, int ith, int nth)
{
    const fill_task *t = arg;
    for (int i = ith; i < t->n; i += nth) t->buf[i] = t->stamp * 1000003u + (uint64_t)i;
}

static void pool_task_writes_are_visible_to_the_caller(void **state)
{
    (void)state;
    enum { N = 1 << 14 };
    uint64_t *buf = calloc(N, sizeof *buf);
    assert_non_null(buf);
    for (int n = 2; n <= 4; n++) {
        melt_pool *p = pool_new(n);
        for (uint64_t round = 1; round <= 1500; round++) {
            fill_task t = {.buf = buf, .n = N, .stamp = round};
            melt_pool_run(p, fill_run, &t);
            /* read right away, and in the order the last thread wrote */
            for (int i = N - 1; i >= 0; i--)
                if (buf[i] != round * 1000003u + (uint64_t)i)
                    fail_msg("%d threads, round %d: element %d (written by ith %d) is stale", n, (int)round,
                             i, i % n);
        }
        melt_pool_free(p);
    }
    free(buf);
}

/* ---- nested and concurrent dispatches ---- */

typedef struct nest_task {
    melt_pool *pool;
    int inner_nth[8];   /* nth the inner task saw, per outer ith */
    int inner_calls[8];
} nest_task;

typedef struct inner_arg {
    nest_task *outer;
    int outer_ith;
} inner_arg;

static void inner_run(void *arg, int ith, int nth)
{
    inner_arg *a = arg;
    a->outer->inner_calls[a->outer_ith]++;
    a->outer->inner_nth[a->outer_ith] = nth * 100 + ith;
}

static void outer_run(void *arg, int ith, int nth)
{
    nest_task *t = arg;
    inner_arg a = {.outer = t, .outer_ith = ith};
    melt_pool_run(t->pool, inner_run, &a);
}

static void pool_nested_run_runs_inline_on_the_calling_thread(void **state)
{
    (void)state;
    for (int n = 1; n <= 4; n++) {
        melt_pool *p = pool_new(n);
        for (int r = 0; r < 200; r++) {
            nest_task t = {.pool = p};
            melt_pool_run(p, outer_run, &t);
            for (int i = 0; i < n; i++) {
                if (t.inner_calls[i] != 1)
                    fail_msg("%d threads: nested run from ith %d called its task %d times, expected once", n,
                             i, t.inner_calls[i]);
                if (t.inner_nth[i] != 100)
                    fail_msg("%d threads: nested run from ith %d got (ith %d, nth %d), expected (0, 1)", n, i,
                             t.inner_nth[i] % 100, t.inner_nth[i] / 100);
            }
        }
        melt_pool_free(p);
    }
}

typedef struct caller_arg {
    melt_pool *pool;
    int failures;
} caller_arg;

static void *caller_main(void *a)
{
    caller_arg *c = a;
    int *hits = calloc(257, sizeof *hits);
    if (!hits) {
        c->failures++;
        return NULL;
    }
    for (int r = 0; r < 2000; r++) {
        /* nth is the pool's, or 1 when the other caller holds it (inline) */
        count_task t = {.hits = hits, .n_items = 1 + r % 257, .want_nth = 0};
        memset(hits, 0, sizeof(int) * 257);
        melt_pool_run(c->pool, count_run, &t);
        if (t.bad_nth) c->failures++;
        for (int i = 0; i < t.n_items; i++)
            if (hits[i] != 1) c->failures++;
    }
    free(hits);
    return NULL;
}

/* Two threads dispatching on one pool: each task still runs every index
 * once (one of them inline when they collide); nothing deadlocks. */
static void pool_concurrent_callers_each_get_their_task_done(void **state)
{
    (void)state;
    melt_pool *p = pool_new(3);
    caller_arg a = {.pool = p}, b = a;
    pthread_t tb;
    assert_int_equal(pthread_create(&tb, NULL, caller_main, &b), 0);
    caller_main(&a);
    pthread_join(tb, NULL);
    if (a.failures || b.failures)
        fail_msg("concurrent callers: %d and %d items not done exactly once", a.failures, b.failures);
    melt_pool_free(p);
}

/* ---- lifetime ---- */

static void noop_run(void *arg, int ith, int nth)
{
    (void)arg;
    (void)ith;
    (void)nth;
}

static void pool_survives_create_destroy_loops(void **state)
{
    (void)state;
    uint64_t seed = 42;
    int *hits = calloc(100, sizeof *hits);
    assert_non_null(hits);
    for (int i = 0; i < 300; i++) {
        const int n = 1 + (int)(test_rand_u64(&seed) % 8);
        melt_pool *p = pool_new(n);
        const int runs = (int)(test_rand_u64(&seed) % 4);   /* 0: free a pool that never ran */
        for (int r = 0; r < runs; r++) {
            count_task t = {.hits = hits, .n_items = 100, .want_nth = n};
            memset(hits, 0, 100 * sizeof *hits);
            melt_pool_run(p, count_run, &t);
            for (int k = 0; k < 100; k++)
                if (hits[k] != 1) fail_msg("pool %d (%d threads), run %d: item %d done %d times", i, n, r, k, hits[k]);
        }
        if (i % 3 == 0) melt_pool_set_spin_us(p, 0);   /* free while the workers sleep */
        if (i % 7 == 0) sleep_ms(1);
        melt_pool_free(p);
    }
    free(hits);
    melt_pool_free(NULL);
}

static void pool_rejects_a_thread_count_below_one(void **state)
{
    (void)state;
    melt_error err = {0};
    melt_pool *p = (melt_pool *)&err;
    assert_int_equal(melt_pool_new(0, &p, &err), MELT_EINVAL);
    assert_null(p);
    assert_non_null(strstr(err.msg, "thread count 0"));
}

typedef struct where_task {
    pthread_t caller;
    int on_caller[8];
} where_task;

static void where_run(void *arg, int ith, int nth)
{
    where_task *t = arg;
    t->on_caller[ith] = pthread_equal(pthread_self(), t->caller) ? 1 : 0;
}

static void pool_caller_runs_ith_zero(void **state)
{
    (void)state;
    for (int n = 1; n <= 4; n++) {
        melt_pool *p = pool_new(n);
        where_task t = {.caller = pthread_self()};
        melt_pool_run(p, where_run, &t);
        for (int i = 0; i < n; i++)
            if (t.on_caller[i] != (i == 0))
                fail_msg("%d threads: ith %d ran %s the calling thread", n, i, i == 0 ? "off" : "on");
        melt_pool_free(p);
    }
}

/* ---- sleeping and waking ---- */

/* Threads of this process that are running or runnable, not counting the
 * caller; -1 when /proc is not there. */
static int other_threads_running(void)
{
    DIR *d = opendir("/proc/self/task");
    if (!d) return -1;
    const long self = (long)syscall(SYS_gettid);
    int running = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        long tid = strtol(e->d_name, NULL, 10);
        if (tid == self) continue;
        char path[128], buf[512];
        snprintf(path, sizeof path, "/proc/self/task/%ld/stat", tid);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = 0;
        const char *rp = strrchr(buf, ')');   /* "tid (comm) S ..." */
        if (rp && rp[1] == ' ' && rp[2] == 'R') running++;
    }
    closedir(d);
    return running;
}

static void pool_sleeping_workers_wake_for_the_next_task(void **state)
{
    (void)state;
    int *hits = calloc(1000, sizeof *hits);
    assert_non_null(hits);
    for (int n = 2; n <= 4; n++) {
        melt_pool *p = pool_new(n);
        melt_pool_set_spin_us(p, 200);
        for (int r = 0; r < 5; r++) {
            count_task t = {.hits = hits, .n_items = 1000, .want_nth = n};
            memset(hits, 0, 1000 * sizeof *hits);
            melt_pool_run(p, count_run, &t);
            for (int k = 0; k < 1000; k++)
                if (hits[k] != 1) fail_msg("%d threads, after an idle %d: item %d done %d times", n, r, k, hits[k]);
            /* idle well past the spin: the workers stop running (they
             * sleep, not spin) within a couple of seconds even on a busy
             * machine */
            int running = -1;
            for (int waited = 0; waited < 3000; waited += 5) {
                sleep_ms(5);
                running = other_threads_running();
                if (running <= 0) break;
            }
            if (running > 0) fail_msg("%d threads: %d workers still running 3 s after the last task", n, running);
        }
        melt_pool_free(p);
    }
    free(hits);
}

/* With no spin every wait parks: thousands of dispatches through the
 * futex path, where a lost wake-up would hang (and trip the alarm). */
static void pool_without_spin_loses_no_wake_up(void **state)
{
    (void)state;
    int *hits = calloc(64, sizeof *hits);
    assert_non_null(hits);
    for (int n = 2; n <= 4; n++) {
        melt_pool *p = pool_new(n);
        melt_pool_set_spin_us(p, 0);
        for (int r = 0; r < 3000; r++) {
            count_task t = {.hits = hits, .n_items = 1 + r % 64, .want_nth = n};
            memset(hits, 0, 64 * sizeof *hits);
            melt_pool_run(p, count_run, &t);
            for (int k = 0; k < t.n_items; k++)
                if (hits[k] != 1) fail_msg("%d threads, no spin, round %d: item %d done %d times", n, r, k, hits[k]);
        }
        melt_pool_free(p);
    }
    free(hits);
}

static void pool_empty_tasks_back_to_back(void **state)
{
    (void)state;
    melt_pool *p = pool_new(2);
    for (int r = 0; r < 100000; r++) melt_pool_run(p, noop_run, NULL);
    melt_pool_free(p);
}

int main(void)
{
    alarm(600);   /* a lost wake-up fails the run instead of hanging it */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pool_runs_every_index_exactly_once),
        cmocka_unit_test(pool_task_writes_are_visible_to_the_caller),
        cmocka_unit_test(pool_nested_run_runs_inline_on_the_calling_thread),
        cmocka_unit_test(pool_concurrent_callers_each_get_their_task_done),
        cmocka_unit_test(pool_survives_create_destroy_loops),
        cmocka_unit_test(pool_rejects_a_thread_count_below_one),
        cmocka_unit_test(pool_caller_runs_ith_zero),
        cmocka_unit_test(pool_sleeping_workers_wake_for_the_next_task),
        cmocka_unit_test(pool_without_spin_loses_no_wake_up),
        cmocka_unit_test(pool_empty_tasks_back_to_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

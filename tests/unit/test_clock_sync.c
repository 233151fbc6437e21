/* Clock sync: the minimum round-trip estimator against a simulated link
 * with asymmetric, jittery delays, and the echo channel of the local
 * transport against the real agent. */
#include "testutil.h"

#include <limits.h>
#include <signal.h>

#include "melt/clock_sync.h"
#include "melt/transport.h"

/* A simulated host and device: the host clock is virtual; each echo takes
 * a random time to reach the device and another to come back. */
typedef struct sim {
    int64_t host_ns;           /* the host clock */
    int64_t true_offset_ns;    /* host = device + true_offset */
    double drift;              /* device clock rate error (0: none) */
    int64_t fwd_min_ns, fwd_max_ns, back_min_ns, back_max_ns;
    int64_t work_ns;           /* host time between rounds */
    uint64_t rng;
    int fail_at;               /* echo number that fails (-1: none) */
    int n;
} sim;

static int64_t rand_between(uint64_t *rng, int64_t lo, int64_t hi)
{
    return lo + (int64_t)(test_rand_u64(rng) % (uint64_t)(hi - lo + 1));
}

static int64_t sim_now(void *user)
{
    sim *s = user;
    s->host_ns += s->work_ns;   /* reading the clock is not free */
    return s->host_ns;
}

static int64_t sim_device_at(const sim *s, int64_t host_ns)
{
    return host_ns - s->true_offset_ns + (int64_t)((double)host_ns * s->drift);
}

static int sim_echo(void *user, int64_t *device_ns, melt_error *err)
{
    sim *s = user;
    if (s->n++ == s->fail_at)
        return melt_errorf(err, MELT_EIO, "link down");
    s->host_ns += rand_between(&s->rng, s->fwd_min_ns, s->fwd_max_ns);
    *device_ns = sim_device_at(s, s->host_ns);
    s->host_ns += rand_between(&s->rng, s->back_min_ns, s->back_max_ns);
    return 0;
}

static sim sim_asymmetric(uint64_t seed)
{
    sim s = {.host_ns = 5000000000LL, .true_offset_ns = 0, .fwd_min_ns = 200000,
             .fwd_max_ns = 5000000, .back_min_ns = 0, .back_max_ns = 500000,
             .work_ns = 50, .rng = seed * 0x9E3779B97F4A7C15ULL + 1, .fail_at = -1};
    /* offsets of either sign, far beyond the delays */
    s.true_offset_ns = rand_between(&s.rng, -4000000000000LL, 4000000000000LL);
    return s;
}

/* The check: one-way 0.2-5 ms out, 0-0.5 ms back, random; with
 * the runner's 32 rounds the estimate is within 1 ms of the truth, and always within its
 * own uncertainty (the device read its clock inside the round trip). */
static void estimate_stays_under_1ms_with_asymmetric_jittery_delays(void **state)
{
    (void)state;
    int64_t worst_ns = 0;
    for (uint64_t seed = 1; seed <= 500; seed++) {
        sim s = sim_asymmetric(seed);
        melt_clock_estimate est;
        melt_error err = {0};
        assert_int_equal(melt_clock_estimate_offset(MELT_CLOCK_SYNC_ROUNDS, sim_now, sim_echo, &s,
                                                    &est, &err), 0);
        assert_int_equal(est.rounds, MELT_CLOCK_SYNC_ROUNDS);
        const int64_t e = llabs(est.offset_ns - s.true_offset_ns);
        assert_true(e <= est.uncertainty_ns);
        assert_true(est.rtt_ns >= 200000 && est.uncertainty_ns == (est.rtt_ns + 1) / 2);
        if (e > worst_ns)
            worst_ns = e;
    }
    print_message("worst error over 500 links: %.3f ms\n", (double)worst_ns / 1e6);
    assert_true(worst_ns < 1000000);
}

/* The minimum round trip matters: one round alone on the same link is off
 * by up to half its round trip (2.5 ms here), often well over 1 ms. */
static void a_single_round_is_not_enough(void **state)
{
    (void)state;
    int over = 0;
    for (uint64_t seed = 1; seed <= 200; seed++) {
        sim s = sim_asymmetric(seed);
        melt_clock_estimate est;
        melt_error err = {0};
        assert_int_equal(melt_clock_estimate_offset(1, sim_now, sim_echo, &s, &est, &err), 0);
        assert_true(llabs(est.offset_ns - s.true_offset_ns) <= est.uncertainty_ns);
        over += llabs(est.offset_ns - s.true_offset_ns) >= 1000000;
    }
    assert_true(over > 20);
}

/* Symmetric delays give the exact offset, whatever their size. */
static void symmetric_delays_give_the_exact_offset(void **state)
{
    (void)state;
    sim s = {.host_ns = 1000, .true_offset_ns = -777777777, .fwd_min_ns = 3000000,
             .fwd_max_ns = 3000000, .back_min_ns = 3000000, .back_max_ns = 3000000,
             .rng = 7, .fail_at = -1};
    melt_clock_estimate est;
    melt_error err = {0};
    assert_int_equal(melt_clock_estimate_offset(4, sim_now, sim_echo, &s, &est, &err), 0);
    assert_true(llabs(est.offset_ns - s.true_offset_ns) <= 1);
    assert_int_equal(est.rtt_ns, 6000000);
}

/* Bad arguments and a failing echo are errors, not estimates. */
static void failures_are_reported(void **state)
{
    (void)state;
    sim s = sim_asymmetric(3);
    s.fail_at = 2;
    melt_clock_estimate est;
    melt_error err = {0};
    assert_int_equal(melt_clock_estimate_offset(8, sim_now, sim_echo, &s, &est, &err), MELT_EIO);
    assert_non_null(strstr(err.msg, "link down"));
    assert_int_equal(melt_clock_estimate_offset(0, sim_now, sim_echo, &s, &est, &err),
                     MELT_EINVAL);
}

/* Between a before and an after estimate the offset moves linearly (a
 * drifting device clock); outside them it is clamped. */
static void interpolation_follows_drift(void **state)
{
    (void)state;
    melt_clock_estimate a = {.offset_ns = 1000, .uncertainty_ns = 30, .host_ns = 0};
    melt_clock_estimate b = {.offset_ns = 3000, .uncertainty_ns = 50, .host_ns = 1000000};
    int64_t off, u;
    melt_clock_interpolate(&a, &b, 250000, &off, &u);
    assert_int_equal(off, 1500);
    assert_int_equal(u, 50);
    melt_clock_interpolate(&a, &b, 5000000, &off, &u);
    assert_int_equal(off, 3000);
    melt_clock_interpolate(&a, NULL, 5000000, &off, &u);
    assert_true(off == 1000 && u == 30);
    melt_trial_info t = {.has_clock = true, .clock_offset_ns = -5};
    assert_int_equal(melt_clock_to_host_ns(&t, 100), 95);
    t.has_clock = false;
    assert_int_equal(melt_clock_to_host_ns(&t, 100), 100);
}

/* The local transport's echo channel runs `melt-agent --echo`: the agent
 * reads CLOCK_MONOTONIC as the host does, so the offset is 0 to within
 * the (sub-millisecond) uncertainty. */
static void local_agent_echo_gives_offset_zero(void **state)
{
    (void)state;
    const char *build = getenv("BUILD");
    char agent[PATH_MAX];
    snprintf(agent, sizeof agent, "%s/melt-agent", build && *build ? build : "build");
    if (access(agent, X_OK) != 0)
        fail_msg("no agent at %s (set BUILD)", agent);
    const melt_transport_ops *t = melt_transport_find("local");
    assert_non_null(t);
    assert_non_null(t->echo_open);
    void *st = NULL;
    melt_error err = {0};
    assert_int_equal(t->open(NULL, &st, &err), 0);
    melt_clock_estimate est;
    int rc = melt_clock_sync_transport(t, st, agent, 16, &est, &err);
    if (rc < 0)
        fail_msg("%s", err.msg);
    assert_int_equal(est.rounds, 16);
    assert_true(llabs(est.offset_ns) <= est.uncertainty_ns);
    assert_true(est.uncertainty_ns < 1000000);
    /* an agent without --echo (here: a program that ignores its input)
     * is a clear error, not a hang */
    rc = melt_clock_sync_transport(t, st, "/bin/true", 4, &est, &err);
    assert_true(rc < 0);
    assert_non_null(strstr(err.msg, "clock sync"));
    t->close(st);
}

int main(void)
{
    signal(SIGPIPE, SIG_DFL);   /* the channel must not need SIGPIPE ignored */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(estimate_stays_under_1ms_with_asymmetric_jittery_delays),
        cmocka_unit_test(a_single_round_is_not_enough),
        cmocka_unit_test(symmetric_delays_give_the_exact_offset),
        cmocka_unit_test(failures_are_reported),
        cmocka_unit_test(interpolation_follows_drift),
        cmocka_unit_test(local_agent_echo_gives_offset_zero),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Metrics on hand-built event streams whose answers are known exactly. */
#include "testutil.h"

#include <math.h>

#include "melt/metrics.h"

#define MS 1000000LL     /* ns per ms */
#define S 1000000000LL   /* ns per s */

typedef struct { melt_event v[512]; size_t n; } stream;

static melt_event *add(stream *s, enum melt_event_kind k, int64_t t)
{
    assert_true(s->n < sizeof s->v / sizeof s->v[0]);
    melt_event *e = &s->v[s->n++];
    memset(e, 0, sizeof *e);
    e->kind = k;
    e->t_ns = t;
    e->req = e->i = e->id = -1;
    return e;
}

static void phase(stream *s, int64_t t, const char *name, const char *edge)
{
    melt_event *e = add(s, MELT_EV_PHASE, t);
    snprintf(e->name, sizeof e->name, "%s", name);
    snprintf(e->key, sizeof e->key, "%s", edge);
}

static void request(stream *s, int64_t t, int req, int n_prompt)
{
    melt_event *e = add(s, MELT_EV_REQUEST, t);
    e->req = req;
    e->id = n_prompt;
}

static void first_token(stream *s, int64_t t, int req)
{
    add(s, MELT_EV_FIRST_TOKEN, t)->req = req;
}

static void token(stream *s, int64_t t, int req, int i)
{
    melt_event *e = add(s, MELT_EV_TOKEN, t);
    e->req = req;
    e->i = i;
    e->id = 1000 + i;
}

static void end(stream *s, int64_t t, int req, int n_gen)
{
    melt_event *e = add(s, MELT_EV_END, t);
    e->req = req;
    e->id = n_gen;
    snprintf(e->key, sizeof e->key, "limit");
}

static void sample(stream *s, int64_t t, const char *key, double v, const char *unit)
{
    melt_event *e = add(s, MELT_EV_SAMPLE, t);
    snprintf(e->name, sizeof e->name, "test");
    snprintf(e->key, sizeof e->key, "%s", key);
    snprintf(e->unit, sizeof e->unit, "%s", unit);
    e->value = v;
    e->has_value = true;
}

static void compute(const stream *s, const melt_metrics_params *p, melt_trial_metrics *m)
{
    melt_error err = {0};
    assert_int_equal(melt_metrics_compute(s->v, s->n, p, m, &err), 0);
}

#define assert_near(got, want, tol)                                                   \
    do {                                                                              \
        const double g_ = (got), w_ = (want);                                         \
        if (!(fabs(g_ - w_) <= (tol)))                                                \
            fail_msg("%s: expected %.12g, got %.12g", #got, w_, g_);                  \
    } while (0)

/* load 500 ms; request at 1 s (100 prompt tokens); first token 200 ms later;
 * 6 tokens with gaps 10, 20, 30, 40, 50 ms; end 10 ms after the last. */
static void one_request(stream *s)
{
    phase(s, 0, "load", "begin");
    phase(s, 500 * MS, "load", "end");
    request(s, 1 * S, 0, 100);
    first_token(s, 1200 * MS, 0);
    const int64_t t[6] = {1200, 1210, 1230, 1260, 1300, 1350};
    for (int i = 0; i < 6; i++)
        token(s, t[i] * MS, 0, i);
    end(s, 1360 * MS, 0, 6);
}

static void timings_of_one_request_are_exact(void **state)
{
    (void)state;
    stream s = {0};
    one_request(&s);
    melt_trial_metrics m;
    compute(&s, NULL, &m);
    assert_int_equal(m.n_requests, 1);
    assert_int_equal(m.n_prompt, 100);
    assert_int_equal(m.n_gen, 6);
    assert_near(m.load_ms, 500, 1e-9);
    assert_near(m.ttft_ms, 200, 1e-9);
    assert_near(m.prefill_tps, 100 / 0.2, 1e-9);
    assert_near(m.decode_tps, 5 / 0.150, 1e-9);
    assert_near(m.e2e_ms, 360, 1e-9);
    /* gaps 10 20 30 40 50: p50 = 30, p90 at rank 3.6 = 46, p99 at 3.96 = 49.6 */
    assert_near(m.itl_p50_ms, 30, 1e-9);
    assert_near(m.itl_p90_ms, 46, 1e-9);
    assert_near(m.itl_p99_ms, 49.6, 1e-9);
    assert_near(m.itl_mean_ms, 30, 1e-9);
    /* no probes: energy, temperatures and throttle unknown */
    assert_true(isnan(m.decode.energy_j));
    assert_true(isnan(m.j_per_token));
    assert_true(isnan(m.temp_max_c));
    assert_true(isnan(m.peak_rss_bytes));
    assert_int_equal(m.throttled, -1);
    assert_string_equal(m.power_source, "");
}

static void event_order_does_not_change_the_metrics(void **state)
{
    (void)state;
    stream a = {0}, b = {0};
    one_request(&a);
    /* reversed order */
    for (size_t k = 0; k < a.n; k++)
        b.v[k] = a.v[a.n - 1 - k];
    b.n = a.n;
    melt_trial_metrics ma, mb;
    compute(&a, NULL, &ma);
    compute(&b, NULL, &mb);
    assert_near(mb.ttft_ms, ma.ttft_ms, 0);
    assert_near(mb.decode_tps, ma.decode_tps, 0);
    assert_near(mb.itl_p90_ms, ma.itl_p90_ms, 0);
    assert_near(mb.load_ms, ma.load_ms, 0);
}

static void requests_of_a_conversation_aggregate_as_documented(void **state)
{
    (void)state;
    stream s = {0};
    /* turn 0: ttft 100 ms for 100 tokens; 3 tokens 10 ms apart */
    request(&s, 0, 0, 100);
    first_token(&s, 100 * MS, 0);
    token(&s, 100 * MS, 0, 0);
    token(&s, 110 * MS, 0, 1);
    token(&s, 120 * MS, 0, 2);
    end(&s, 120 * MS, 0, 3);
    /* turn 1: ttft 300 ms for 50 tokens; 2 tokens 30 ms apart */
    request(&s, 1 * S, 1, 50);
    first_token(&s, 1300 * MS, 1);
    token(&s, 1300 * MS, 1, 0);
    token(&s, 1330 * MS, 1, 1);
    end(&s, 1340 * MS, 1, 2);
    melt_trial_metrics m;
    compute(&s, NULL, &m);
    assert_int_equal(m.n_requests, 2);
    assert_int_equal(m.n_prompt, 150);
    assert_int_equal(m.n_gen, 5);
    assert_near(m.ttft_ms, 200, 1e-9);                 /* mean of 100 and 300 */
    assert_near(m.prefill_tps, 150 / 0.4, 1e-9);       /* sum tokens / sum time */
    assert_near(m.decode_tps, 3 / 0.050, 1e-9);        /* (2 + 1) / (20 + 30 ms) */
    assert_near(m.e2e_ms, (120 + 340) / 2.0, 1e-9);
    /* gaps 10, 10, 30: never the 1180 ms between the turns */
    assert_near(m.itl_p50_ms, 10, 1e-9);
    assert_near(m.itl_p99_ms, 10 + 0.98 * 20, 1e-9);
    assert_true(isnan(m.load_ms));
}

/* Power piecewise linear between samples: the trapezoid rule is exact.
 * idle [0,1] s at 1 W -> 1 J; prefill [1,2] s ramps 1 -> 3 W -> 2 J;
 * decode [2.5,4] s: 2 W at 2.5 s falling to 1 W at 3 s, then 1 W -> 1.75 J. */
static void energy_of_a_piecewise_linear_power_trace_is_exact(void **state)
{
    (void)state;
    stream s = {0};
    phase(&s, 0, "idle", "begin");
    phase(&s, 1 * S, "idle", "end");
    phase(&s, 1 * S, "prefill", "begin");
    phase(&s, 2 * S, "prefill", "end");
    phase(&s, 2500 * MS, "decode", "begin");
    phase(&s, 4 * S, "decode", "end");
    request(&s, 1 * S, 0, 40);
    first_token(&s, 2 * S, 0);
    end(&s, 4 * S, 0, 10);
    const double mw[][2] = {{0, 1000}, {0.5, 1000}, {1, 1000}, {1.5, 2000}, {2, 3000},
                            {3, 1000}, {4, 1000}};
    for (size_t k = 0; k < sizeof mw / sizeof mw[0]; k++)
        sample(&s, (int64_t)(mw[k][0] * S), "battery_power_mw", mw[k][1], "mw");
    /* a second power key that must not be picked over "battery" */
    sample(&s, 0, "aux_power_mw", 99999, "mw");
    melt_trial_metrics m;
    compute(&s, NULL, &m);
    assert_string_equal(m.power_source, "power:battery_power_mw");
    assert_near(m.idle.energy_j, 1.0, 1e-12);
    assert_near(m.idle.avg_power_w, 1.0, 1e-12);
    assert_near(m.prefill.energy_j, 2.0, 1e-12);
    assert_near(m.prefill.avg_power_w, 2.0, 1e-12);
    assert_near(m.prefill.energy_net_j, 1.0, 1e-12);
    assert_near(m.prefill.avg_power_net_w, 1.0, 1e-12);
    assert_near(m.decode.duration_ms, 1500, 1e-9);
    assert_near(m.decode.energy_j, 1.75, 1e-12);
    assert_near(m.decode.avg_power_w, 1.75 / 1.5, 1e-12);
    assert_near(m.decode.energy_net_j, 0.25, 1e-12);
    assert_near(m.j_per_token, (2.0 + 1.75) / 10, 1e-12);
    assert_near(m.j_per_token_net, (1.0 + 0.25) / 10, 1e-12);

    /* the caller can name the key */
    melt_metrics_params p = melt_metrics_default_params();
    p.power_key = "aux_power_mw";
    compute(&s, &p, &m);
    assert_string_equal(m.power_source, "power:aux_power_mw");
    assert_near(m.idle.energy_j, 99.999, 1e-9);       /* held constant from its one sample */
}

/* RAPL-like cumulative counters (uJ), preferred over power samples:
 * idle [0,2] s 1 W; prefill [2,3] s 3 W; decode [3,5] s 2 W; a "core"
 * subdomain (inside the package) and a mW key are ignored. */
static void energy_from_counters_subtracts_the_idle_baseline(void **state)
{
    (void)state;
    stream s = {0};
    phase(&s, 0, "idle", "begin");
    phase(&s, 2 * S, "idle", "end");
    request(&s, 2 * S, 0, 30);
    first_token(&s, 3 * S, 0);
    for (int i = 0; i < 5; i++)
        token(&s, 3 * S + i * 500 * MS, 0, i);
    end(&s, 5 * S, 0, 5);
    /* every 0.5 s; prefill and decode derived from request/first token/last token */
    for (int k = 0; k <= 10; k++) {
        const double t = k * 0.5;
        const double uj = t <= 2 ? t * 1e6 : t <= 3 ? 2e6 + (t - 2) * 3e6 : 5e6 + (t - 3) * 2e6;
        sample(&s, (int64_t)(t * S), "package-0_energy_uj", uj, "uj");
        sample(&s, (int64_t)(t * S), "package-0-core_energy_uj", uj / 2, "uj");
        sample(&s, (int64_t)(t * S), "package-0_power_mw", 12345, "mw");
    }
    melt_trial_metrics m;
    compute(&s, NULL, &m);
    assert_string_equal(m.power_source, "counter:package-0_energy_uj");
    assert_near(m.idle.energy_j, 2.0, 1e-9);
    assert_near(m.idle.avg_power_w, 1.0, 1e-9);
    assert_near(m.prefill.energy_j, 3.0, 1e-9);
    assert_near(m.prefill.energy_net_j, 2.0, 1e-9);
    assert_near(m.decode.duration_ms, 2000, 1e-9);
    assert_near(m.decode.energy_j, 4.0, 1e-9);
    assert_near(m.decode.avg_power_w, 2.0, 1e-9);
    assert_near(m.decode.energy_net_j, 2.0, 1e-9);
    assert_near(m.decode.avg_power_net_w, 1.0, 1e-9);
    assert_near(m.j_per_token, 7.0 / 5, 1e-9);
    assert_near(m.j_per_token_net, 4.0 / 5, 1e-9);
}

static void counter_between_samples_is_interpolated_and_resets_add_nothing(void **state)
{
    (void)state;
    stream s = {0};
    phase(&s, 250 * MS, "decode", "begin");
    phase(&s, 2750 * MS, "decode", "end");
    /* 4 W until 1 s, then the counter restarts from 0 and 4 W again */
    sample(&s, 0, "gpu0_energy_uj", 0, "uj");
    sample(&s, 1 * S, "gpu0_energy_uj", 4e6, "uj");
    sample(&s, 2 * S, "gpu0_energy_uj", 0, "uj");          /* reset: 1..2 s lost */
    sample(&s, 3 * S, "gpu0_energy_uj", 4e6, "uj");
    melt_trial_metrics m;
    compute(&s, NULL, &m);
    /* 0.25..1: 3 J; 1..2: 0 (reset); 2..2.75: 3 J */
    assert_near(m.decode.energy_j, 6.0, 1e-9);
    assert_true(isnan(m.decode.energy_net_j));             /* no idle phase */
    assert_true(isnan(m.j_per_token));                     /* no tokens */
}

static void temperatures_per_sensor_and_over_sensors(void **state)
{
    (void)state;
    stream s = {0};
    sample(&s, 2 * S, "cpu0_temp", 50000, "mC");
    sample(&s, 0, "cpu0_temp", 40000, "mC");
    sample(&s, 1 * S, "cpu0_temp", 55000, "mC");
    sample(&s, 0, "gpu_temp", 45000, "mC");
    sample(&s, 1 * S, "gpu_temp", 47000, "mC");
    sample(&s, 2 * S, "gpu_temp", 46500, "mC");
    melt_trial_metrics m;
    compute(&s, NULL, &m);
    assert_int_equal(m.n_sensors, 2);
    assert_string_equal(m.sensors[0].key, "cpu0_temp");
    assert_near(m.sensors[0].start_c, 40, 1e-12);
    assert_near(m.sensors[0].max_c, 55, 1e-12);
    assert_near(m.sensors[0].end_c, 50, 1e-12);
    assert_near(m.sensors[1].end_c, 46.5, 1e-12);
    assert_near(m.temp_start_c, 45, 1e-12);
    assert_near(m.temp_max_c, 55, 1e-12);
    assert_near(m.temp_end_c, 50, 1e-12);
}

static void peak_rss_and_throttle_time(void **state)
{
    (void)state;
    stream s = {0};
    sample(&s, 0, "rss_bytes", 1000, "bytes");
    sample(&s, 1 * S, "rss_bytes", 5000, "bytes");
    sample(&s, 2 * S, "hwm_bytes", 6000, "bytes");
    sample(&s, 2 * S, "vmhwm", 8, "kB");                  /* 8192 B */
    sample(&s, 0, "policy0_throttled", 0, "bool");
    sample(&s, 1 * S, "policy0_throttled", 1, "bool");
    sample(&s, 2 * S, "policy0_throttled", 1, "bool");
    sample(&s, 3 * S, "policy0_throttled", 0, "bool");
    sample(&s, 0, "policy4_throttled", 0, "bool");
    sample(&s, 3 * S, "policy4_throttled", 0, "bool");
    melt_trial_metrics m;
    compute(&s, NULL, &m);
    assert_near(m.peak_rss_bytes, 8192, 0);
    assert_int_equal(m.throttled, 1);
    assert_near(m.throttled_ms, 2000, 1e-9);

    stream cool = {0};
    sample(&cool, 0, "throttled", 0, "bool");
    sample(&cool, 1 * S, "throttled", 0, "bool");
    compute(&cool, NULL, &m);
    assert_int_equal(m.throttled, 0);
    assert_near(m.throttled_ms, 0, 0);
}

static void list_names_every_finite_figure_once(void **state)
{
    (void)state;
    stream s = {0};
    one_request(&s);
    sample(&s, 0, "cpu0_temp", 40000, "mC");
    melt_trial_metrics m;
    compute(&s, NULL, &m);
    melt_metric out[64];
    const size_t n = melt_metrics_list(&m, out, 64);
    assert_true(n <= 64);
    bool decode = false, p90 = false, sensor = false, energy = false;
    for (size_t k = 0; k < n; k++) {
        assert_true(isfinite(out[k].value));
        decode |= !strcmp(out[k].name, "decode_tps") && !strcmp(out[k].unit, "tok/s");
        p90 |= !strcmp(out[k].name, "itl_ms.p90") && out[k].value == m.itl_p90_ms;
        sensor |= !strcmp(out[k].name, "temp_max_c.cpu0_temp");
        energy |= !strncmp(out[k].name, "energy_j", 8);
        for (size_t j = 0; j < k; j++)
            assert_string_not_equal(out[j].name, out[k].name);
    }
    assert_true(decode && p90 && sensor);
    assert_false(energy);
    assert_int_equal(melt_metrics_list(&m, NULL, 0), n);  /* count only */
}

static void summary_of_three_uses_the_t_table(void **state)
{
    (void)state;
    const double x[] = {3, 1, NAN, 2};
    melt_summary s;
    melt_summary_compute(x, 4, &s);
    assert_int_equal(s.n, 3);
    assert_near(s.mean, 2, 1e-15);
    assert_near(s.stddev, 1, 1e-15);
    /* t(0.975, 2) = 0.95 / sqrt(2 * 0.975 * 0.025) = 4.302652729749464 */
    assert_near(s.ci95, 4.302652729749464 / sqrt(3.0), 1e-12);
    assert_near(s.ci95, 2.484137711750331, 1e-12);
    assert_near(s.min, 1, 0);
    assert_near(s.median, 2, 0);
    assert_near(s.max, 3, 0);

    melt_summary one;
    melt_summary_compute(x, 1, &one);
    assert_int_equal(one.n, 1);
    assert_near(one.mean, 3, 0);
    assert_true(isnan(one.stddev) && isnan(one.ci95));
    melt_summary none;
    melt_summary_compute(NULL, 0, &none);
    assert_int_equal(none.n, 0);
    assert_true(isnan(none.mean));
}

static void t_quantiles_match_the_student_distribution(void **state)
{
    (void)state;
    assert_near(melt_t975(1), 12.706204736174698, 1e-12);
    assert_near(melt_t975(10), 2.228138851986274, 1e-12);
    assert_near(melt_t975(30), 2.042272456301238, 1e-12);
    /* beyond the table: the expansion, within 1e-6 */
    assert_near(melt_t975(31), 2.0395134463964077, 1e-6);
    assert_near(melt_t975(40), 2.0210753903062697, 1e-6);
    assert_near(melt_t975(120), 1.979930405082441, 1e-9);
    assert_true(isnan(melt_t975(0)));
}

static void percentile_interpolates_between_ranks(void **state)
{
    (void)state;
    const double v[] = {1, 2, 3, 4};
    assert_near(melt_percentile_sorted(v, 4, 0), 1, 0);
    assert_near(melt_percentile_sorted(v, 4, 25), 1.75, 1e-15);
    assert_near(melt_percentile_sorted(v, 4, 50), 2.5, 1e-15);
    assert_near(melt_percentile_sorted(v, 4, 100), 4, 0);
    assert_near(melt_percentile_sorted(v, 1, 99), 1, 0);
    assert_true(isnan(melt_percentile_sorted(v, 0, 50)));
}

/* Garbage in (random kinds, indices, times, NaN and huge values, missing
 * pairs): no crash, no sanitizer report, finite-or-NaN figures out. */
static void random_streams_never_crash(void **state)
{
    (void)state;
    uint64_t seed = 0x9e3779b97f4a7c15ULL;
    static const char *const names[] = {"load", "idle", "prefill", "decode", "x"};
    static const char *const keys[] = {"battery_power_mw", "package-0_energy_uj", "cpu0_temp",
                                       "rss_bytes", "throttled", "other"};
    static const char *const units[] = {"mw", "uj", "mC", "bytes", "bool", ""};
    for (int round = 0; round < 200; round++) {
        stream s = {0};
        const size_t n = test_rand_u64(&seed) % 300;
        for (size_t k = 0; k < n; k++) {
            melt_event *e = add(&s, (enum melt_event_kind)(test_rand_u64(&seed) % MELT_EV_KIND_COUNT),
                                (int64_t)(test_rand_u64(&seed) % 1000000) - 1000);
            e->req = (int32_t)(test_rand_u64(&seed) % 5) - 1;
            if (test_rand_u64(&seed) % 50 == 0) e->req = INT32_MAX;
            e->i = (int32_t)(test_rand_u64(&seed) % 20) - 1;
            e->id = (int32_t)(test_rand_u64(&seed) % 100) - 1;
            const uint64_t r = test_rand_u64(&seed);
            e->value = r % 7 == 0 ? NAN : r % 11 == 0 ? 1e308 : (double)(r % 100000);
            e->has_value = r % 5 != 0;
            snprintf(e->name, sizeof e->name, "%s", names[r % 5]);
            snprintf(e->key, sizeof e->key, "%s", r % 3 ? keys[(r >> 8) % 6] : (r & 1) ? "begin" : "end");
            snprintf(e->unit, sizeof e->unit, "%s", units[(r >> 8) % 6]);
        }
        melt_trial_metrics m;
        compute(&s, NULL, &m);
        melt_metric out[128];
        const size_t got = melt_metrics_list(&m, out, 128);
        for (size_t k = 0; k < got && k < 128; k++)
            assert_false(isnan(out[k].value));
    }
    melt_trial_metrics m;
    melt_error err = {0};
    assert_int_equal(melt_metrics_compute(NULL, 0, NULL, &m, &err), 0);
    assert_true(isnan(m.ttft_ms));
    assert_int_equal(melt_metrics_compute(NULL, 3, NULL, &m, &err), MELT_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(timings_of_one_request_are_exact),
        cmocka_unit_test(event_order_does_not_change_the_metrics),
        cmocka_unit_test(requests_of_a_conversation_aggregate_as_documented),
        cmocka_unit_test(energy_of_a_piecewise_linear_power_trace_is_exact),
        cmocka_unit_test(energy_from_counters_subtracts_the_idle_baseline),
        cmocka_unit_test(counter_between_samples_is_interpolated_and_resets_add_nothing),
        cmocka_unit_test(temperatures_per_sensor_and_over_sensors),
        cmocka_unit_test(peak_rss_and_throttle_time),
        cmocka_unit_test(list_names_every_finite_figure_once),
        cmocka_unit_test(summary_of_three_uses_the_t_table),
        cmocka_unit_test(t_quantiles_match_the_student_distribution),
        cmocka_unit_test(percentile_interpolates_between_ranks),
        cmocka_unit_test(random_streams_never_crash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Samplers: greedy, temperature, top-k, top-p, min-p, repetition penalty,
 * seeding, reset, the order of the chain, parameter checks.
 *
 * Statistical tests draw from fixed seeds, so each one is deterministic: it
 * passes or fails the same way every run. They compare the measured
 * frequencies with the exact distribution the chain should produce by a
 * chi-square goodness-of-fit test at significance 1e-6 (critical value by
 * the Wilson-Hilferty approximation, z = 4.75), over enough draws that the
 * wrong distributions these tests guard against (another chain order, the
 * other penalty rule, an off-by-one in top-p) give statistics far above the
 * critical value. Tokens the chain must drop are checked to appear zero
 * times.
 */
#include "testutil.h"

#include <math.h>

#include "melt/sampler.h"

/* ---- helpers ---- */

static melt_sampler_params all_off(float temperature, uint64_t seed)
{
    melt_sampler_params p = melt_sampler_default_params();
    p.temperature = temperature;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.repeat_penalty = 1.0f;
    p.seed = seed;
    return p;
}

static melt_sampler *mk(const melt_sampler_params *p, int32_t n_vocab)
{
    melt_sampler *s = NULL;
    melt_error err = {0};
    int rc = melt_sampler_new(p, n_vocab, &s, &err);
    if (rc != 0) fail_msg("melt_sampler_new: %d %s", rc, err.msg);
    assert_non_null(s);
    return s;
}

/* Draw n tokens (not accepted) and count them. */
static void draw_counts(melt_sampler *s, const float *logits, int32_t n_vocab, int n,
                        long *counts)
{
    memset(counts, 0, (size_t)n_vocab * sizeof *counts);
    for (int i = 0; i < n; i++) {
        int32_t t = melt_sampler_sample(s, logits);
        if (t < 0 || t >= n_vocab) fail_msg("draw %d gave token %d outside [0, %d)", i, t, n_vocab);
        counts[t]++;
    }
}

/* softmax(logits / t) in double. */
static void softmax_ref(const float *logits, int n, double t, double *out)
{
    double mx = -INFINITY, z = 0.0;
    for (int i = 0; i < n; i++) mx = fmax(mx, (double)logits[i] / t);
    for (int i = 0; i < n; i++) z += out[i] = exp((double)logits[i] / t - mx);
    for (int i = 0; i < n; i++) out[i] /= z;
}

/* Zero the probabilities of tokens not in keep[] and renormalize. */
static void keep_only(double *prob, int n, const int *keep, int n_keep)
{
    double z = 0.0;
    for (int i = 0; i < n; i++) {
        int kept = 0;
        for (int j = 0; j < n_keep; j++) kept |= keep[j] == i;
        if (!kept) prob[i] = 0.0;
        z += prob[i];
    }
    for (int i = 0; i < n; i++) prob[i] /= z;
}

static double chi2_critical(int df)
{
    const double z = 4.75; /* one-sided normal quantile for 1e-6 */
    const double a = 2.0 / (9.0 * df);
    const double c = 1.0 - a + z * sqrt(a);
    return df * c * c * c;
}

/* Chi-square goodness of fit of counts (n draws) against prob; tokens with
 * probability 0 must not have been drawn. */
static void assert_fits(const char *what, const long *counts, const double *prob, int n_vocab,
                        long n)
{
    double stat = 0.0;
    int cats = 0;
    for (int i = 0; i < n_vocab; i++) {
        if (prob[i] == 0.0) {
            if (counts[i] != 0)
                fail_msg("%s: token %d has probability 0 but was drawn %ld times", what, i, counts[i]);
            continue;
        }
        const double e = prob[i] * (double)n;
        if (e < 5.0) fail_msg("%s: token %d expects %.1f draws, too few for chi-square", what, i, e);
        stat += ((double)counts[i] - e) * ((double)counts[i] - e) / e;
        cats++;
    }
    assert_true(cats >= 2);
    const double crit = chi2_critical(cats - 1);
    if (stat > crit) {
        for (int i = 0; i < n_vocab; i++)
            if (prob[i] > 0.0 || counts[i] > 0)
                print_error("  token %d: expected %.1f got %ld\n", i, prob[i] * (double)n, counts[i]);
        fail_msg("%s: chi-square %.2f > critical %.2f (df %d)", what, stat, crit, cats - 1);
    }
}

/* Logits whose softmax is exactly prob (up to float rounding), shifted by
 * an offset softmax must ignore. */
static void logits_of(const double *prob, int n, double offset, float *out)
{
    for (int i = 0; i < n; i++) out[i] = (float)(log(prob[i]) + offset);
}

/* Draw n tokens from s over logits and check they fit prob. */
static void check_distribution(const char *what, melt_sampler *s, const float *logits, int n_vocab,
                               const double *prob, long n)
{
    long *counts = calloc((size_t)n_vocab, sizeof *counts);
    assert_non_null(counts);
    draw_counts(s, logits, n_vocab, (int)n, counts);
    assert_fits(what, counts, prob, n_vocab, n);
    free(counts);
}

/* Candidate ranking used by the reference computations: higher logit, then
 * lower id. */
static const float *g_rank_logits;
static int cmp_rank_ref(const void *pa, const void *pb)
{
    const int a = *(const int *)pa, b = *(const int *)pb;
    const float la = g_rank_logits[a], lb = g_rank_logits[b];
    if (la != lb) return la > lb ? -1 : 1;
    return (a > b) - (a < b);
}

static int *ranked_ids(const float *logits, int n)
{
    int *ids = malloc((size_t)n * sizeof *ids);
    assert_non_null(ids);
    for (int i = 0; i < n; i++) ids[i] = i;
    g_rank_logits = logits;
    qsort(ids, (size_t)n, sizeof *ids, cmp_rank_ref);
    return ids;
}

/* ---- greedy ---- */

static void greedy_picks_argmax_and_lowest_id_on_ties(void **state)
{
    (void)state;
    const float logits[] = {1.0f, 3.0f, -2.0f, 3.0f, 2.5f};
    for (int i = 0; i < 2; i++) {
        melt_sampler_params p = melt_sampler_default_params();
        p.temperature = i == 0 ? 0.0f : -1.0f;
        p.seed = 99 + (uint64_t)i;
        melt_sampler *s = mk(&p, 5);
        for (int k = 0; k < 20; k++) assert_int_equal(melt_sampler_sample(s, logits), 1);
        melt_sampler_free(s);
    }

    /* A large vocabulary with a unique maximum somewhere in the middle. */
    enum { N = 150000 };
    float *big = malloc(N * sizeof *big);
    assert_non_null(big);
    uint64_t r = 7;
    for (int i = 0; i < N; i++) big[i] = test_rand_f32(&r) * 10.0f;
    big[123457] = 11.0f;
    melt_sampler_params p = melt_sampler_default_params();
    p.temperature = 0.0f;
    melt_sampler *s = mk(&p, N);
    assert_int_equal(melt_sampler_sample(s, big), 123457);
    melt_sampler_free(s);
    free(big);
}

/* ---- temperature ---- */

static void temperature_one_reproduces_softmax_frequencies(void **state)
{
    (void)state;
    const double prob[] = {0.4, 0.25, 0.15, 0.1, 0.05, 0.03, 0.015, 0.005};
    float logits[8];
    logits_of(prob, 8, 3.0, logits);
    melt_sampler_params p = all_off(1.0f, 1);
    melt_sampler *s = mk(&p, 8);
    check_distribution("T=1", s, logits, 8, prob, 100000);
    melt_sampler_free(s);
}

static void temperature_sharpens_below_one_and_flattens_above(void **state)
{
    (void)state;
    const float logits[] = {2.0f, 1.0f, 0.5f, 0.0f, -1.0f};
    const float temps[] = {0.5f, 1.0f, 2.0f};
    long top[3];
    for (int k = 0; k < 3; k++) {
        double prob[5];
        softmax_ref(logits, 5, temps[k], prob);
        melt_sampler_params p = all_off(temps[k], 10 + (uint64_t)k);
        melt_sampler *s = mk(&p, 5);
        long counts[5];
        draw_counts(s, logits, 5, 100000, counts);
        char what[32];
        snprintf(what, sizeof what, "T=%.1f", (double)temps[k]);
        assert_fits(what, counts, prob, 5, 100000);
        top[k] = counts[0];
        melt_sampler_free(s);
    }
    /* Lower temperature concentrates mass on the best token. */
    assert_true(top[0] > top[1]);
    assert_true(top[1] > top[2]);
}

/* ---- top-k ---- */

static void top_k_yields_only_the_k_best_in_softmax_proportions(void **state)
{
    (void)state;
    enum { N = 1000, K = 5 };
    float logits[N];
    uint64_t r = 42;
    for (int i = 0; i < N; i++) logits[i] = test_rand_f32(&r) * 3.0f;
    int *ids = ranked_ids(logits, N);
    double prob[N];
    softmax_ref(logits, N, 1.0, prob);
    keep_only(prob, N, ids, K);

    melt_sampler_params p = all_off(1.0f, 3);
    p.top_k = K;
    melt_sampler *s = mk(&p, N);
    check_distribution("top-k 5", s, logits, N, prob, 40000);
    melt_sampler_free(s);
    free(ids);
}

static void top_k_selects_from_a_150k_vocab(void **state)
{
    (void)state;
    enum { N = 150000, K = 3 };
    float *logits = malloc(N * sizeof *logits);
    assert_non_null(logits);
    uint64_t r = 5;
    for (int i = 0; i < N; i++) logits[i] = test_rand_f32(&r) * 8.0f;
    int *ids = ranked_ids(logits, N);
    melt_sampler_params p = all_off(1.0f, 4);
    p.top_k = K;
    melt_sampler *s = mk(&p, N);
    int seen[K] = {0};
    for (int i = 0; i < 100; i++) {
        int32_t t = melt_sampler_sample(s, logits);
        int j = 0;
        while (j < K && ids[j] != t) j++;
        if (j == K) fail_msg("draw %d: token %d is not among the %d best", i, t, K);
        seen[j] = 1;
    }
    for (int j = 0; j < K; j++) assert_true(seen[j]);
    melt_sampler_free(s);
    free(ids);
    free(logits);
}

/* ---- top-p ---- */

static void top_p_keeps_smallest_prefix_reaching_p(void **state)
{
    (void)state;
    const double base[] = {0.4, 0.3, 0.2, 0.1};
    float logits[4];
    logits_of(base, 4, -1.0, logits);
    const struct { float p; int n_keep; } cases[] = {
        {0.0f, 1},  /* at least one token */
        {0.35f, 1},
        {0.65f, 2},
        {0.75f, 3},
        {0.95f, 4},
    };
    const int order[] = {0, 1, 2, 3};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        double prob[4];
        memcpy(prob, base, sizeof prob);
        keep_only(prob, 4, order, cases[c].n_keep);
        melt_sampler_params p = all_off(1.0f, 20 + c);
        p.top_p = cases[c].p;
        melt_sampler *s = mk(&p, 4);
        char what[32];
        snprintf(what, sizeof what, "top-p %.2f", (double)cases[c].p);
        if (cases[c].n_keep == 1) {
            for (int i = 0; i < 1000; i++) assert_int_equal(melt_sampler_sample(s, logits), 0);
        } else {
            check_distribution(what, s, logits, 4, prob, 50000);
        }
        melt_sampler_free(s);
    }
}

/* Without top-k the sampler sorts only as far as the nucleus reaches; the
 * kept set must still be exactly the full-sort answer. */
static void top_p_without_top_k_matches_full_sort_on_large_vocab(void **state)
{
    (void)state;
    enum { N = 50000, HOT = 3000 };
    float *logits = malloc(N * sizeof *logits);
    assert_non_null(logits);
    uint64_t r = 11;
    for (int i = 0; i < N; i++) logits[i] = test_rand_f32(&r) * 2.0f;
    for (int i = 0; i < HOT; i++) logits[(i * 7919) % N] = 12.0f + test_rand_f32(&r) * 2.0f;

    /* Reference nucleus for p = 0.5. */
    const double top_p = 0.5;
    int *ids = ranked_ids(logits, N);
    double mx = logits[ids[0]], z = 0.0;
    for (int i = 0; i < N; i++) z += exp((double)logits[i] - mx);
    int n_keep = 0;
    double cum = 0.0;
    while (n_keep < N) {
        cum += exp((double)logits[ids[n_keep]] - mx) / z;
        n_keep++;
        if (cum >= top_p) break;
    }
    assert_true(n_keep > 64); /* needs more than the first selection round */
    unsigned char *kept = calloc(N, 1);
    assert_non_null(kept);
    for (int i = 0; i < n_keep; i++) kept[ids[i]] = 1;

    melt_sampler_params p = all_off(1.0f, 6);
    p.top_p = (float)top_p;
    melt_sampler *s = mk(&p, N);
    int worst_rank_seen = 0;
    for (int i = 0; i < 200; i++) {
        int32_t t = melt_sampler_sample(s, logits);
        assert_true(t >= 0 && t < N);
        if (!kept[t]) fail_msg("draw %d: token %d is outside the top-p %.2f nucleus of %d", i, t,
                               top_p, n_keep);
        int rank = 0;
        while (ids[rank] != t) rank++;
        if (rank > worst_rank_seen) worst_rank_seen = rank;
    }
    /* Draws reach deep into the nucleus, not just its head. */
    assert_true(worst_rank_seen > n_keep / 2);
    melt_sampler_free(s);
    free(kept);
    free(ids);
    free(logits);
}

/* ---- min-p ---- */

static void min_p_drops_tokens_below_p_times_the_max(void **state)
{
    (void)state;
    const double base[] = {0.5, 0.2, 0.14, 0.1, 0.06};
    float logits[5];
    logits_of(base, 5, 0.5, logits);
    /* Threshold 0.25 * 0.5 = 0.125: keeps 0.5, 0.2, 0.14. */
    double prob[5];
    memcpy(prob, base, sizeof prob);
    const int keep[] = {0, 1, 2};
    keep_only(prob, 5, keep, 3);
    melt_sampler_params p = all_off(1.0f, 30);
    p.min_p = 0.25f;
    melt_sampler *s = mk(&p, 5);
    check_distribution("min-p 0.25", s, logits, 5, prob, 50000);
    melt_sampler_free(s);

    /* min_p = 1 keeps only the maximum. */
    p.min_p = 1.0f;
    s = mk(&p, 5);
    for (int i = 0; i < 1000; i++) assert_int_equal(melt_sampler_sample(s, logits), 0);
    melt_sampler_free(s);
}

/* ---- repetition penalty ---- */

static int32_t greedy_after(melt_sampler *s, const float *logits) { return melt_sampler_sample(s, logits); }

static void repetition_penalty_divides_positive_and_multiplies_negative_logits(void **state)
{
    (void)state;
    melt_sampler_params p = all_off(0.0f, 0);
    p.repeat_penalty = 1.5f;
    p.repeat_last_n = 8;

    /* Positive: 2.0 / 1.5 = 1.33 falls below 1.5. */
    const float pos[] = {2.0f, 1.5f, 0.0f};
    melt_sampler *s = mk(&p, 3);
    assert_int_equal(greedy_after(s, pos), 0);
    melt_sampler_accept(s, 0);
    assert_int_equal(greedy_after(s, pos), 1);
    melt_sampler_free(s);

    /* Negative: -1.0 * 1.5 = -1.5 falls below -1.2 (dividing would raise it). */
    const float neg[] = {-1.0f, -1.2f, -3.0f};
    s = mk(&p, 3);
    assert_int_equal(greedy_after(s, neg), 0);
    melt_sampler_accept(s, 0);
    assert_int_equal(greedy_after(s, neg), 1);
    melt_sampler_free(s);

    /* Exact amounts, by the distribution: penalty 2 on tokens 0 and 2. */
    const float logits[] = {1.0f, 0.8f, -0.5f, -0.2f};
    const float penalized[] = {0.5f, 0.8f, -1.0f, -0.2f};
    double prob[4];
    softmax_ref(penalized, 4, 1.0, prob);
    melt_sampler_params q = all_off(1.0f, 31);
    q.repeat_penalty = 2.0f;
    q.repeat_last_n = 4;
    s = mk(&q, 4);
    melt_sampler_accept(s, 0);
    melt_sampler_accept(s, 2);
    check_distribution("penalty 2", s, logits, 4, prob, 100000);
    melt_sampler_free(s);
}

static void repetition_penalty_applies_once_per_distinct_token(void **state)
{
    (void)state;
    melt_sampler_params p = all_off(0.0f, 0);
    p.repeat_penalty = 1.5f;
    p.repeat_last_n = 8;
    const float logits[] = {2.0f, 1.3f};
    melt_sampler *s = mk(&p, 2);
    for (int i = 0; i < 3; i++) melt_sampler_accept(s, 0);
    /* 2.0 / 1.5 = 1.33 > 1.3; three divisions would give 0.59. */
    assert_int_equal(greedy_after(s, logits), 0);
    melt_sampler_free(s);
}

static void repetition_penalty_forgets_tokens_after_repeat_last_n(void **state)
{
    (void)state;
    melt_sampler_params p = all_off(0.0f, 0);
    p.repeat_penalty = 1.5f;
    p.repeat_last_n = 3;
    const float logits[] = {2.0f, 1.5f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    melt_sampler *s = mk(&p, 8);
    melt_sampler_accept(s, 0);
    melt_sampler_accept(s, 5);
    melt_sampler_accept(s, 6);
    assert_int_equal(greedy_after(s, logits), 1); /* 0 is still one of the last 3 */
    melt_sampler_accept(s, 7);
    assert_int_equal(greedy_after(s, logits), 0); /* 0 has left the window */
    /* Tokens outside the vocabulary take a place but penalize nothing. */
    melt_sampler_accept(s, -5);
    melt_sampler_accept(s, 1000);
    assert_int_equal(greedy_after(s, logits), 0);
    melt_sampler_free(s);

    /* repeat_last_n = 0 turns the penalty off. */
    p.repeat_last_n = 0;
    s = mk(&p, 8);
    melt_sampler_accept(s, 0);
    assert_int_equal(greedy_after(s, logits), 0);
    melt_sampler_free(s);
}

/* ---- seeding and reset ---- */

static void fill_random_logits(float *l, int n, uint64_t seed)
{
    uint64_t r = seed;
    for (int i = 0; i < n; i++) l[i] = test_rand_f32(&r) * 2.0f;
}

static void same_seed_gives_same_tokens_and_other_seed_differs(void **state)
{
    (void)state;
    enum { N = 100, STEPS = 1000 };
    float logits[N];
    fill_random_logits(logits, N, 77);
    melt_sampler_params p = melt_sampler_default_params(); /* the default chain */
    p.seed = 1234;
    melt_sampler *a = mk(&p, N), *b = mk(&p, N);
    p.seed = 1235;
    melt_sampler *c = mk(&p, N);
    int differ = 0;
    for (int i = 0; i < STEPS; i++) {
        int32_t ta = melt_sampler_sample(a, logits), tb = melt_sampler_sample(b, logits);
        int32_t tc = melt_sampler_sample(c, logits);
        if (ta != tb) fail_msg("step %d: same seed gave %d and %d", i, ta, tb);
        differ += ta != tc;
    }
    /* Near-uniform draws over ~40 tokens: two seeds agree rarely. */
    assert_true(differ > STEPS / 2);
    melt_sampler_free(a);
    melt_sampler_free(b);
    melt_sampler_free(c);
}

/* The stream for a seed is part of the contract (same tokens on every
 * machine): these values pin xoshiro256** seeded by splitmix64, one draw
 * per token, walked over the kept candidates best-first (checked against
 * an independent Python rendition of the same algorithms). */
static void seeded_stream_is_pinned(void **state)
{
    (void)state;
    const float logits[] = {1.0f, 0.9f, 0.8f, 0.7f, 0.6f, 0.5f, 0.4f, 0.3f};
    melt_sampler_params p = all_off(1.0f, 42);
    p.top_k = 8; /* sorted walk */
    melt_sampler *s = mk(&p, 8);
    const int32_t want[16] = {0, 2, 4, 7, 7, 5, 5, 6, 5, 3, 4, 1, 5, 1, 4, 6};
    for (int i = 0; i < 16; i++) {
        int32_t t = melt_sampler_sample(s, logits);
        if (t != want[i]) fail_msg("draw %d: expected %d got %d", i, want[i], t);
    }
    melt_sampler_free(s);
}

static void reset_restarts_stream_and_forgets_history(void **state)
{
    (void)state;
    enum { N = 50, STEPS = 200 };
    float logits[N];
    fill_random_logits(logits, N, 3);
    melt_sampler_params p = melt_sampler_default_params();
    p.seed = 9;
    p.repeat_penalty = 1.3f; /* history changes the distribution */
    p.repeat_last_n = 16;
    melt_sampler *s = mk(&p, N);
    int32_t first[STEPS];
    for (int i = 0; i < STEPS; i++) {
        first[i] = melt_sampler_sample(s, logits);
        melt_sampler_accept(s, first[i]);
    }
    melt_sampler_reset(s);
    for (int i = 0; i < STEPS; i++) {
        int32_t t = melt_sampler_sample(s, logits);
        if (t != first[i]) fail_msg("after reset, step %d: expected %d got %d", i, first[i], t);
        melt_sampler_accept(s, t);
    }
    melt_sampler_free(s);

    /* History alone: a penalized token is back at full strength after reset. */
    melt_sampler_params g = all_off(0.0f, 0);
    g.repeat_penalty = 2.0f;
    const float two[] = {2.0f, 1.5f};
    s = mk(&g, 2);
    melt_sampler_accept(s, 0);
    assert_int_equal(melt_sampler_sample(s, two), 1);
    melt_sampler_reset(s);
    assert_int_equal(melt_sampler_sample(s, two), 0);
    melt_sampler_free(s);
}

/* ---- the order of the chain ---- */

/* top-p sees temperature-1 probabilities: probs 0.5/0.3/0.2 with p = 0.7
 * keep {0, 1}. Had temperature 0.3 come first (0.81/0.15/0.04) only token 0
 * would be kept; had temperature 3 come first with p = 0.75 (0.39/0.33/0.29)
 * all three would be. */
static void chain_applies_top_p_before_temperature(void **state)
{
    (void)state;
    const double base[] = {0.5, 0.3, 0.2};
    float logits[3];
    logits_of(base, 3, 0.0, logits);
    const int keep[] = {0, 1};
    const struct { float t, p; } cases[] = {{0.3f, 0.7f}, {3.0f, 0.75f}};
    for (int c = 0; c < 2; c++) {
        double prob[3];
        softmax_ref(logits, 3, cases[c].t, prob);
        keep_only(prob, 3, keep, 2);
        melt_sampler_params p = all_off(cases[c].t, 40 + (uint64_t)c);
        p.top_p = cases[c].p;
        melt_sampler *s = mk(&p, 3);
        check_distribution("top-p then temperature", s, logits, 3, prob, 100000);
        melt_sampler_free(s);
    }
}

/* top-p renormalizes over what top-k kept: probs 0.5/0.3/0.1/0.1, k = 3,
 * p = 0.85 keeps {0, 1} (0.556 + 0.333 of the three); top-p over the whole
 * vocabulary first would keep {0, 1, 2}. */
static void chain_applies_top_k_before_top_p(void **state)
{
    (void)state;
    const double base[] = {0.5, 0.3, 0.1, 0.1};
    float logits[4];
    logits_of(base, 4, 0.0, logits);
    double prob[4];
    memcpy(prob, base, sizeof prob);
    const int keep[] = {0, 1};
    keep_only(prob, 4, keep, 2);
    melt_sampler_params p = all_off(1.0f, 50);
    p.top_k = 3;
    p.top_p = 0.85f;
    melt_sampler *s = mk(&p, 4);
    check_distribution("top-k then top-p", s, logits, 4, prob, 50000);
    melt_sampler_free(s);
}

/* min-p renormalization does not change its own cut, but top-p after min-p
 * would: probs 0.4/0.3/0.2/0.1, top_p 0.75 keeps {0, 1, 2}, then min_p 0.3
 * (threshold 0.12) keeps them all; min-p first would drop token 3 and top-p
 * over the rest (0.44/0.33/0.22) would keep only {0, 1}. */
static void chain_applies_top_p_before_min_p(void **state)
{
    (void)state;
    const double base[] = {0.4, 0.3, 0.2, 0.1};
    float logits[4];
    logits_of(base, 4, 0.0, logits);
    double prob[4];
    memcpy(prob, base, sizeof prob);
    const int keep[] = {0, 1, 2};
    keep_only(prob, 4, keep, 3);
    melt_sampler_params p = all_off(1.0f, 60);
    p.top_p = 0.75f;
    p.min_p = 0.3f;
    melt_sampler *s = mk(&p, 4);
    check_distribution("top-p then min-p", s, logits, 4, prob, 50000);
    melt_sampler_free(s);
}

/* min-p sees temperature-1 probabilities: 0.5/0.3/0.2 with min_p 0.3
 * (threshold 0.15) keeps all three; temperature 0.3 first (0.81/0.15/0.04,
 * threshold 0.24) would keep only token 0. */
static void chain_applies_min_p_before_temperature(void **state)
{
    (void)state;
    const double base[] = {0.5, 0.3, 0.2};
    float logits[3];
    logits_of(base, 3, 0.0, logits);
    double prob[3];
    softmax_ref(logits, 3, 0.3, prob);
    melt_sampler_params p = all_off(0.3f, 70);
    p.min_p = 0.3f;
    melt_sampler *s = mk(&p, 3);
    check_distribution("min-p then temperature", s, logits, 3, prob, 100000);
    melt_sampler_free(s);
}

/* The penalty comes first: logits 3/2/1/0.5, token 0 penalized by 4 to
 * 0.75, then top-k 2 keeps {1, 2}; top-k first would keep {0, 1}. */
static void chain_applies_penalty_before_top_k(void **state)
{
    (void)state;
    const float logits[] = {3.0f, 2.0f, 1.0f, 0.5f};
    const float penalized[] = {0.75f, 2.0f, 1.0f, 0.5f};
    double prob[4];
    softmax_ref(penalized, 4, 1.0, prob);
    const int keep[] = {1, 2};
    keep_only(prob, 4, keep, 2);
    melt_sampler_params p = all_off(1.0f, 80);
    p.top_k = 2;
    p.repeat_penalty = 4.0f;
    melt_sampler *s = mk(&p, 4);
    melt_sampler_accept(s, 0);
    check_distribution("penalty then top-k", s, logits, 4, prob, 50000);
    melt_sampler_free(s);
}

/* ---- odd inputs and parameters ---- */

static void non_finite_logits_are_handled(void **state)
{
    (void)state;
    const float with_nan[] = {NAN, 1.0f, NAN, 0.5f};
    melt_sampler_params g = all_off(0.0f, 0);
    melt_sampler *s = mk(&g, 4);
    assert_int_equal(melt_sampler_sample(s, with_nan), 1);
    melt_sampler_free(s);

    melt_sampler_params p = melt_sampler_default_params();
    p.min_p = 0.0f;
    s = mk(&p, 4);
    for (int i = 0; i < 2000; i++) {
        int32_t t = melt_sampler_sample(s, with_nan);
        assert_true(t == 1 || t == 3);
    }
    const float with_inf[] = {-INFINITY, -INFINITY, 0.0f, -INFINITY};
    for (int i = 0; i < 200; i++) assert_int_equal(melt_sampler_sample(s, with_inf), 2);
    const float plus_inf[] = {0.0f, INFINITY, 5.0f, 1.0f};
    for (int i = 0; i < 200; i++) assert_int_equal(melt_sampler_sample(s, plus_inf), 1);
    const float all_nan[] = {NAN, NAN, NAN, NAN};
    assert_int_equal(melt_sampler_sample(s, all_nan), 0);
    melt_sampler_free(s);
    s = mk(&g, 4);
    assert_int_equal(melt_sampler_sample(s, all_nan), 0);
    melt_sampler_free(s);

    assert_int_equal(melt_sampler_sample(NULL, with_nan), -1);
}

static void defaults_match_llama_cpp(void **state)
{
    (void)state;
    melt_sampler_params p = melt_sampler_default_params();
    assert_true(p.temperature == 0.8f);
    assert_int_equal(p.top_k, 40);
    assert_true(p.top_p == 0.95f);
    assert_true(p.min_p == 0.05f);
    assert_true(p.repeat_penalty == 1.0f);
    assert_int_equal(p.repeat_last_n, 64);
    assert_true(p.seed == 0);
    /* NULL params mean the defaults. */
    melt_sampler *s = NULL;
    assert_int_equal(melt_sampler_new(NULL, 10, &s, NULL), 0);
    melt_sampler_free(s);
    melt_sampler_free(NULL);
}

static void bad_params_are_rejected_with_a_message(void **state)
{
    (void)state;
    struct bad { const char *field; melt_sampler_params p; int32_t n_vocab; };
    melt_sampler_params d = melt_sampler_default_params();
    struct bad cases[16];
    int n = 0;
#define BAD(fieldname, member, value, nv)                                   \
    do {                                                                    \
        cases[n].field = fieldname;                                         \
        cases[n].p = d;                                                     \
        cases[n].p.member = value;                                          \
        cases[n].n_vocab = nv;                                              \
        n++;                                                                \
    } while (0)
    BAD("n_vocab", seed, 0, 0);
    BAD("n_vocab", seed, 0, -3);
    BAD("top_k", top_k, -2, 10);
    BAD("top_p", top_p, -0.01f, 10);
    BAD("top_p", top_p, 1.01f, 10);
    BAD("top_p", top_p, NAN, 10);
    BAD("min_p", min_p, -0.5f, 10);
    BAD("min_p", min_p, 2.0f, 10);
    BAD("repeat_penalty", repeat_penalty, 0.0f, 10);
    BAD("repeat_penalty", repeat_penalty, -1.0f, 10);
    BAD("repeat_penalty", repeat_penalty, NAN, 10);
    BAD("repeat_penalty", repeat_penalty, INFINITY, 10);
    BAD("repeat_last_n", repeat_last_n, -1, 10);
    BAD("temperature", temperature, NAN, 10);
    BAD("temperature", temperature, INFINITY, 10);
#undef BAD
    for (int i = 0; i < n; i++) {
        static int sentinel;
        melt_sampler *s = (melt_sampler *)&sentinel; /* must be overwritten with NULL */
        melt_error err = {0};
        int rc = melt_sampler_new(&cases[i].p, cases[i].n_vocab, &s, &err);
        if (rc != MELT_EINVAL) fail_msg("case %d (%s): expected MELT_EINVAL, got %d", i, cases[i].field, rc);
        assert_null(s);
        if (!strstr(err.msg, cases[i].field))
            fail_msg("case %d: message \"%s\" does not name %s", i, err.msg, cases[i].field);
    }
    assert_int_equal(melt_sampler_new(&d, 10, NULL, NULL), MELT_EINVAL);

    /* The edges of each range are accepted. */
    const struct { int32_t top_k; float top_p, min_p, temperature; } ok[] = {
        {0, 0.0f, 0.0f, 0.0f}, {-1, 1.0f, 1.0f, -2.0f}, {1000, 0.5f, 0.5f, 100.0f},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        melt_sampler_params p = d;
        p.top_k = ok[i].top_k;
        p.top_p = ok[i].top_p;
        p.min_p = ok[i].min_p;
        p.temperature = ok[i].temperature;
        melt_sampler *s = mk(&p, 10);
        const float l[10] = {0.1f, 0.2f};
        int32_t t = melt_sampler_sample(s, l);
        assert_true(t >= 0 && t < 10);
        melt_sampler_free(s);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(greedy_picks_argmax_and_lowest_id_on_ties),
        cmocka_unit_test(temperature_one_reproduces_softmax_frequencies),
        cmocka_unit_test(temperature_sharpens_below_one_and_flattens_above),
        cmocka_unit_test(top_k_yields_only_the_k_best_in_softmax_proportions),
        cmocka_unit_test(top_k_selects_from_a_150k_vocab),
        cmocka_unit_test(top_p_keeps_smallest_prefix_reaching_p),
        cmocka_unit_test(top_p_without_top_k_matches_full_sort_on_large_vocab),
        cmocka_unit_test(min_p_drops_tokens_below_p_times_the_max),
        cmocka_unit_test(repetition_penalty_divides_positive_and_multiplies_negative_logits),
        cmocka_unit_test(repetition_penalty_applies_once_per_distinct_token),
        cmocka_unit_test(repetition_penalty_forgets_tokens_after_repeat_last_n),
        cmocka_unit_test(same_seed_gives_same_tokens_and_other_seed_differs),
        cmocka_unit_test(seeded_stream_is_pinned),
        cmocka_unit_test(reset_restarts_stream_and_forgets_history),
        cmocka_unit_test(chain_applies_top_p_before_temperature),
        cmocka_unit_test(chain_applies_top_k_before_top_p),
        cmocka_unit_test(chain_applies_top_p_before_min_p),
        cmocka_unit_test(chain_applies_min_p_before_temperature),
        cmocka_unit_test(chain_applies_penalty_before_top_k),
        cmocka_unit_test(non_finite_logits_are_handled),
        cmocka_unit_test(defaults_match_llama_cpp),
        cmocka_unit_test(bad_params_are_rejected_with_a_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Token samplers: repetition penalty -> top-k -> top-p -> min-p ->
 * temperature -> draw (llama.cpp's default order for these samplers).
 *
 * The working set is an array of (logit, id) candidates. Truncation steps
 * shrink it to a prefix; top-k and top-p leave it sorted best-first (higher
 * logit, then lower id), otherwise it stays in id order. Randomness comes
 * from xoshiro256** seeded by splitmix64, one 64-bit draw per sampled token
 * (none in greedy mode), turned into a double in [0,1) and compared with the
 * running sum of the kept candidates' probabilities in the working order.
 * Everything after the penalty is computed in double, so two machines agree
 * on the token unless a draw lands within rounding of a boundary.
 */
#include "melt/sampler.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct cand {
    float logit;
    int32_t id;
} cand;

struct melt_sampler {
    melt_sampler_params p;
    int32_t n_vocab;
    cand *cand;       /* n_vocab working candidates */
    double *w;        /* n_vocab softmax weights */
    int32_t *hist;    /* ring of the last repeat_last_n accepted tokens */
    int32_t *scratch; /* repeat_last_n: sorted copy of hist for de-duplication */
    int32_t hist_len; /* tokens in the ring (<= repeat_last_n) */
    int32_t hist_pos; /* next slot to write */
    uint64_t rng[4];  /* xoshiro256** state */
};

/* ---- random numbers ---- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rotl64(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t xoshiro_next(uint64_t st[4])
{
    const uint64_t out = rotl64(st[1] * 5, 7) * 9;
    const uint64_t t = st[1] << 17;
    st[2] ^= st[0];
    st[3] ^= st[1];
    st[1] ^= st[2];
    st[0] ^= st[3];
    st[2] ^= t;
    st[3] = rotl64(st[3], 45);
    return out;
}

static void rng_seed(uint64_t st[4], uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) st[i] = splitmix64(&x);
}

/* Uniform double in [0,1): the top 53 bits of one draw. */
static double rng_uniform(uint64_t st[4])
{
    return (double)(xoshiro_next(st) >> 11) * (1.0 / 9007199254740992.0);
}

/* ---- parameters ---- */

melt_sampler_params melt_sampler_default_params(void)
{
    melt_sampler_params p = {
        .temperature = 0.8f,
        .top_k = 40,
        .top_p = 0.95f,
        .min_p = 0.05f,
        .repeat_penalty = 1.0f,
        .repeat_last_n = 64,
        .seed = 0,
    };
    return p;
}

static int check_params(const melt_sampler_params *p, int32_t n_vocab, melt_error *err)
{
    if (n_vocab <= 0)
        return melt_errorf(err, MELT_EINVAL, "sampler: n_vocab must be > 0 (got %d)", (int)n_vocab);
    if (isnan(p->temperature) || isinf(p->temperature))
        return melt_errorf(err, MELT_EINVAL, "sampler: temperature must be a finite number (got %g)",
                           (double)p->temperature);
    if (p->top_k < -1)
        return melt_errorf(err, MELT_EINVAL,
                           "sampler: top_k must be >= 1, or 0 or -1 for off (got %d)", (int)p->top_k);
    if (!(p->top_p >= 0.0f && p->top_p <= 1.0f))
        return melt_errorf(err, MELT_EINVAL, "sampler: top_p must be in [0, 1] (got %g)",
                           (double)p->top_p);
    if (!(p->min_p >= 0.0f && p->min_p <= 1.0f))
        return melt_errorf(err, MELT_EINVAL, "sampler: min_p must be in [0, 1] (got %g)",
                           (double)p->min_p);
    if (!(p->repeat_penalty > 0.0f) || isinf(p->repeat_penalty))
        return melt_errorf(err, MELT_EINVAL,
                           "sampler: repeat_penalty must be a finite number > 0 (got %g)",
                           (double)p->repeat_penalty);
    if (p->repeat_last_n < 0)
        return melt_errorf(err, MELT_EINVAL, "sampler: repeat_last_n must be >= 0 (got %d)",
                           (int)p->repeat_last_n);
    if ((size_t)n_vocab > SIZE_MAX / (sizeof(cand) + sizeof(double)) ||
        (size_t)p->repeat_last_n > SIZE_MAX / (2 * sizeof(int32_t)))
        return melt_errorf(err, MELT_EINVAL, "sampler: n_vocab %d or repeat_last_n %d too large",
                           (int)n_vocab, (int)p->repeat_last_n);
    return 0;
}

int melt_sampler_new(const melt_sampler_params *params, int32_t n_vocab,
                     melt_sampler **out, melt_error *err)
{
    if (!out) return melt_errorf(err, MELT_EINVAL, "sampler: NULL output pointer");
    *out = NULL;
    const melt_sampler_params p = params ? *params : melt_sampler_default_params();
    int rc = check_params(&p, n_vocab, err);
    if (rc) return rc;

    melt_sampler *s = calloc(1, sizeof *s);
    if (!s) return melt_errorf(err, MELT_ENOMEM, "sampler: out of memory");
    s->p = p;
    s->n_vocab = n_vocab;
    s->cand = malloc((size_t)n_vocab * sizeof *s->cand);
    s->w = malloc((size_t)n_vocab * sizeof *s->w);
    if (p.repeat_last_n > 0) {
        s->hist = malloc((size_t)p.repeat_last_n * sizeof *s->hist);
        s->scratch = malloc((size_t)p.repeat_last_n * sizeof *s->scratch);
    }
    if (!s->cand || !s->w || (p.repeat_last_n > 0 && (!s->hist || !s->scratch))) {
        melt_sampler_free(s);
        return melt_errorf(err, MELT_ENOMEM, "sampler: out of memory for %d tokens", (int)n_vocab);
    }
    rng_seed(s->rng, p.seed);
    *out = s;
    return 0;
}

void melt_sampler_free(melt_sampler *s)
{
    if (!s) return;
    free(s->cand);
    free(s->w);
    free(s->hist);
    free(s->scratch);
    free(s);
}

void melt_sampler_reset(melt_sampler *s)
{
    if (!s) return;
    s->hist_len = 0;
    s->hist_pos = 0;
    rng_seed(s->rng, s->p.seed);
}

void melt_sampler_accept(melt_sampler *s, int32_t token)
{
    if (!s || s->p.repeat_last_n == 0) return;
    s->hist[s->hist_pos] = token;
    s->hist_pos = (s->hist_pos + 1) % s->p.repeat_last_n;
    if (s->hist_len < s->p.repeat_last_n) s->hist_len++;
}

/* ---- the chain ---- */

/* Strict total order: a ranks before b. Ids are unique, so no two candidates
 * compare equal and every sort or selection gives one answer. */
static int ranks_before(const cand *a, const cand *b)
{
    return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

static int cmp_rank(const void *pa, const void *pb)
{
    const cand *a = pa, *b = pb;
    return ranks_before(a, b) ? -1 : ranks_before(b, a) ? 1 : 0;
}

static int cmp_i32(const void *pa, const void *pb)
{
    const int32_t a = *(const int32_t *)pa, b = *(const int32_t *)pb;
    return (a > b) - (a < b);
}

/* Heap on c[0..m) whose root is the lowest-ranked candidate. */
static void sift_down(cand *c, size_t m, size_t i)
{
    for (;;) {
        size_t worst = i;
        const size_t l = 2 * i + 1, r = l + 1;
        if (l < m && ranks_before(&c[worst], &c[l])) worst = l;
        if (r < m && ranks_before(&c[worst], &c[r])) worst = r;
        if (worst == i) return;
        const cand t = c[i];
        c[i] = c[worst];
        c[worst] = t;
        i = worst;
    }
}

/* Rearrange c[0..n) so that c[0..m) holds the m best candidates, best first
 * (the rest stay behind them, in no order). A heap of the m best so far:
 * O(n log m), most candidates rejected by one comparison with its root; a
 * full sort when m covers most of n. */
static void select_best(cand *c, size_t n, size_t m)
{
    if (m >= n / 2) {
        qsort(c, n, sizeof *c, cmp_rank);
        return;
    }
    for (size_t i = m / 2; i-- > 0;) sift_down(c, m, i);
    for (size_t i = m; i < n; i++) {
        if (ranks_before(&c[i], &c[0])) {
            const cand t = c[0];
            c[0] = c[i];
            c[i] = t;
            sift_down(c, m, 0);
        }
    }
    qsort(c, m, sizeof *c, cmp_rank);
}

static float max_logit(const cand *c, size_t n, int sorted)
{
    if (sorted) return c[0].logit;
    float m = c[0].logit;
    for (size_t i = 1; i < n; i++)
        if (c[i].logit > m) m = c[i].logit;
    return m;
}

/* llama.cpp's rule: a positive logit is divided by the penalty, any other
 * multiplied; once per distinct token in the window, however often it
 * occurs. c is in id order here. */
static void apply_penalty(melt_sampler *s)
{
    if (s->p.repeat_penalty == 1.0f || s->hist_len == 0) return;
    const float pen = s->p.repeat_penalty;
    memcpy(s->scratch, s->hist, (size_t)s->hist_len * sizeof *s->hist);
    qsort(s->scratch, (size_t)s->hist_len, sizeof *s->scratch, cmp_i32);
    for (int32_t i = 0; i < s->hist_len; i++) {
        const int32_t t = s->scratch[i];
        if ((i > 0 && t == s->scratch[i - 1]) || t < 0 || t >= s->n_vocab) continue;
        float *l = &s->cand[t].logit;
        *l = *l <= 0.0f ? *l * pen : *l / pen;
    }
}

/* Without top-k the candidates are unsorted and the vocabulary large, but
 * the nucleus is usually a small part of it. One pass sums the softmax
 * mass in bands of logit below the max; the bands down to where the mass
 * reaches p, plus one band of slack for rounding, hold every token the
 * nucleus can need. Only those are moved to the front and sorted. */
#define TOP_P_BANDS 64
#define TOP_P_BAND_WIDTH 0.5

static size_t band_of(double below_max)
{
    return below_max < TOP_P_BANDS * TOP_P_BAND_WIDTH ? (size_t)(below_max / TOP_P_BAND_WIDTH)
                                                       : TOP_P_BANDS;
}

/* Walk the sorted prefix c[0..m): the length of the shortest prefix whose
 * probability reaches p, or 0 when c[0..m) does not reach it. */
static size_t top_p_walk(const cand *c, size_t m, double mx, double z, double p)
{
    double cum = 0.0;
    for (size_t i = 0; i < m; i++) {
        cum += exp((double)c[i].logit - mx) / z;
        if (cum >= p) return i + 1;
    }
    return 0;
}

/* Keep the smallest best-first prefix whose probability (softmax of the
 * current candidates at temperature 1) reaches p; at least one token.
 * Leaves the kept prefix sorted. */
static size_t top_p_cut(cand *c, size_t n, double p, int *sorted)
{
    const double mx = max_logit(c, n, *sorted);
    if (mx == -INFINITY) return 1;
    double z = 0.0;
    size_t keep;
    if (*sorted) {
        for (size_t i = 0; i < n; i++) z += exp((double)c[i].logit - mx);
        keep = top_p_walk(c, n, mx, z, p);
        return keep ? keep : n;
    }
    double band[TOP_P_BANDS + 1] = {0};
    for (size_t i = 0; i < n; i++) {
        const double d = mx - (double)c[i].logit;
        const double e = exp(-d);
        z += e;
        band[band_of(d)] += e;
    }
    size_t last = 0; /* last band needed */
    double cum = 0.0;
    while (last < TOP_P_BANDS && (cum += band[last]) < p * z) last++;
    *sorted = 1;
    if (last + 1 < TOP_P_BANDS) {
        last++; /* slack */
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            if (band_of(mx - (double)c[i].logit) <= last) {
                const cand t = c[m];
                c[m++] = c[i];
                c[i] = t;
            }
        }
        qsort(c, m, sizeof *c, cmp_rank);
        keep = top_p_walk(c, m, mx, z, p);
        if (keep) return keep;
    }
    qsort(c, n, sizeof *c, cmp_rank); /* the nucleus is most of the vocabulary */
    keep = top_p_walk(c, n, mx, z, p);
    return keep ? keep : n;
}

/* Keep candidates whose probability is at least p times the largest one. */
static size_t min_p_cut(cand *c, size_t n, double p, int sorted)
{
    const double mx = max_logit(c, n, sorted);
    if (mx == -INFINITY) return n;
    const double floor_logit = mx + log(p); /* p * max probability, in logits */
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if ((double)c[i].logit >= floor_logit)
            c[k++] = c[i];
        else if (sorted)
            break;
    }
    return k;
}

int32_t melt_sampler_sample(melt_sampler *s, const float *logits)
{
    if (!s || !logits) return -1;
    const size_t nv = (size_t)s->n_vocab;
    cand *c = s->cand;
    for (size_t i = 0; i < nv; i++) {
        float v = logits[i];
        if (isnan(v)) v = -INFINITY;            /* never chosen over a number */
        else if (v == INFINITY) v = FLT_MAX;    /* keeps softmax finite */
        c[i].logit = v;
        c[i].id = (int32_t)i;
    }
    apply_penalty(s);

    if (!(s->p.temperature > 0.0f)) {           /* greedy: lowest id on ties */
        size_t best = 0;
        float best_logit = c[0].logit;
        for (size_t i = 1; i < nv; i++) {
            if (c[i].logit > best_logit) {
                best = i;
                best_logit = c[i].logit;
            }
        }
        return c[best].id;
    }

    size_t n = nv;
    int sorted = 0;
    if (s->p.top_k > 0 && (size_t)s->p.top_k < n) {
        select_best(c, n, (size_t)s->p.top_k);
        n = (size_t)s->p.top_k;
        sorted = 1;
    }
    if (s->p.top_p < 1.0f) n = top_p_cut(c, n, (double)s->p.top_p, &sorted);
    if (s->p.min_p > 0.0f) n = min_p_cut(c, n, (double)s->p.min_p, sorted);

    /* Temperature, softmax, draw. One draw whatever n is, so the stream
     * does not depend on how many candidates survived. */
    const double u = rng_uniform(s->rng);
    const double mx = max_logit(c, n, sorted);
    if (n == 1 || mx == -INFINITY) return c[0].id;
    const double t = (double)s->p.temperature;
    double z = 0.0;
    for (size_t i = 0; i < n; i++) {
        s->w[i] = exp(((double)c[i].logit - mx) / t);
        z += s->w[i];
    }
    double cum = 0.0;
    size_t last = 0;
    for (size_t i = 0; i < n; i++) {
        if (s->w[i] <= 0.0) continue;
        last = i;
        cum += s->w[i] / z;
        if (u < cum) return c[i].id;
    }
    return c[last].id; /* u beyond a sum that rounded below 1 */
}

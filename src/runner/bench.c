/* `melt bench`: number lists, model description, timed pp/tg tests, read
 * bandwidth for the roofline, and llama-bench's output formats. */
#include "melt/bench.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "melt/cpu.h"
#include "melt/types.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define BENCH_X86 1
#endif

/* ---- number lists ------------------------------------------------------ */

static int push_val(int **vals, size_t *n, int v, melt_error *err)
{
    if (*n >= 100000)
        return melt_errorf(err, MELT_EINVAL, "list has more than 100000 values");
    int *p = realloc(*vals, (*n + 1) * sizeof *p);
    if (!p)
        return melt_errorf(err, MELT_ENOMEM, "out of memory");
    p[(*n)++] = v;
    *vals = p;
    return 0;
}

/* A decimal number at *s (digits only), advancing *s. */
static bool read_num(const char **s, long *out)
{
    if (**s < '0' || **s > '9')
        return false;
    char *end;
    errno = 0;
    const long v = strtol(*s, &end, 10);
    if (errno || v > INT_MAX)
        return false;
    *s = end;
    *out = v;
    return true;
}

int melt_bench_parse_list(const char *s, int min, int max, int **vals, size_t *n,
                          melt_error *err)
{
    const char *p = s;
    if (!*p)
        return melt_errorf(err, MELT_EINVAL, "empty list");
    for (;;) {
        long first, last, step = 1;
        char op = '+';
        if (!read_num(&p, &first))
            return melt_errorf(err, MELT_EINVAL, "'%s': expected a number at '%s'", s, p);
        last = first;
        if (*p == '-') {
            p++;
            if (!read_num(&p, &last))
                return melt_errorf(err, MELT_EINVAL, "'%s': expected a number at '%s'", s, p);
            if (*p == '+' || *p == '*') {
                op = *p++;
                if (!read_num(&p, &step))
                    return melt_errorf(err, MELT_EINVAL, "'%s': expected a step at '%s'", s, p);
            }
        }
        if (last < first)
            return melt_errorf(err, MELT_EINVAL, "'%s': range %ld-%ld runs backwards", s, first,
                               last);
        if ((op == '+' && step < 1) || (op == '*' && (step < 2 || first < 1)))
            return melt_errorf(err, MELT_EINVAL, "'%s': the range does not advance", s);
        for (long v = first; v <= last; v = op == '+' ? v + step : v * step) {
            if (v < min || v > max)
                return melt_errorf(err, MELT_EINVAL, "'%s': %ld is outside %d..%d", s, v, min,
                                   max);
            int rc = push_val(vals, n, (int)v, err);
            if (rc < 0)
                return rc;
        }
        if (*p == '\0')
            return 0;
        if (*p != ',' || p[1] == '\0')
            return melt_errorf(err, MELT_EINVAL, "'%s': unexpected '%s'", s, p);
        p++;
    }
}

/* ---- model description ------------------------------------------------- */

/* llama.cpp's file type names (llama_ftype values as general.file_type). */
static const char *llama_ftype_name(int64_t ft)
{
    switch (ft) {
    case 0: return "all F32";
    case 1: return "F16";
    case 2: return "Q4_0";
    case 3: return "Q4_1";
    case 7: return "Q8_0";
    case 8: return "Q5_0";
    case 9: return "Q5_1";
    case 10: return "Q2_K - Medium";
    case 11: return "Q3_K - Small";
    case 12: return "Q3_K - Medium";
    case 13: return "Q3_K - Large";
    case 14: return "Q4_K - Small";
    case 15: return "Q4_K - Medium";
    case 16: return "Q5_K - Small";
    case 17: return "Q5_K - Medium";
    case 18: return "Q6_K";
    case 32: return "BF16";
    default: return "unknown, may not work";
    }
}

/* The file type llama.cpp guesses from the most common tensor type. */
static int64_t guess_ftype(const melt_gguf *g)
{
    uint64_t count[MELT_TYPE_COUNT] = {0};
    for (uint64_t i = 0; i < melt_gguf_n_tensors(g); i++) {
        const uint32_t t = melt_gguf_tensor_at(g, i)->type;
        if (t < MELT_TYPE_COUNT)
            count[t]++;
    }
    uint32_t best = 0;
    for (uint32_t t = 0; t < MELT_TYPE_COUNT; t++)
        if (count[t] > count[best])
            best = t;
    switch (best) {
    case MELT_TYPE_F32: return 0;
    case MELT_TYPE_F16: return 1;
    case MELT_TYPE_BF16: return 32;
    case MELT_TYPE_Q4_0: return 2;
    case MELT_TYPE_Q4_1: return 3;
    case MELT_TYPE_Q5_0: return 8;
    case MELT_TYPE_Q5_1: return 9;
    case MELT_TYPE_Q8_0: return 7;
    case MELT_TYPE_Q2_K: return 10;
    case MELT_TYPE_Q3_K: return 12;
    case MELT_TYPE_Q4_K: return 15;
    case MELT_TYPE_Q5_K: return 17;
    case MELT_TYPE_Q6_K: return 18;
    default: return -1;
    }
}

/* llama.cpp's size label of a llama-architecture model, by layer count. */
static const char *llama_size_label(const melt_gguf *g, const char *arch)
{
    char key[96];
    uint64_t n_layer = 0, n_vocab = 0, n_head = 0, n_head_kv = 0;
    snprintf(key, sizeof key, "%s.block_count", arch);
    if (strcmp(arch, "llama") != 0 || !melt_gguf_get_u64(g, key, &n_layer))
        return "?B";
    const melt_gguf_tensor *emb = melt_gguf_find_tensor(g, "token_embd.weight");
    if (emb)
        n_vocab = emb->ne[1];
    switch (n_layer) {
    case 16: case 22: return "1B";
    case 26: case 28: return "3B";
    case 30: return "256M";
    case 32: return n_vocab == 49152 ? "3B" : n_vocab < 40000 ? "7B" : "8B";
    case 36: return "8B";
    case 40: return "13B";
    case 48: return "34B";
    case 60: return "30B";
    case 80:
        snprintf(key, sizeof key, "%s.attention.head_count", arch);
        melt_gguf_get_u64(g, key, &n_head);
        snprintf(key, sizeof key, "%s.attention.head_count_kv", arch);
        if (!melt_gguf_get_u64(g, key, &n_head_kv))
            n_head_kv = n_head;
        return n_head == n_head_kv ? "65B" : "70B";
    default: return "?B";
    }
}

void melt_bench_model_type(const melt_gguf *g, char *buf, size_t n)
{
    char arch[64] = "unknown";
    melt_str s;
    if (melt_gguf_get_str(g, "general.architecture", &s) && s.len < sizeof arch) {
        memcpy(arch, s.ptr, s.len);
        arch[s.len] = '\0';
    }
    int64_t ft = -1;
    bool guessed = !melt_gguf_get_i64(g, "general.file_type", &ft);
    if (guessed)
        ft = guess_ftype(g);
    snprintf(buf, n, "%s %s %s%s", arch, llama_size_label(g, arch), guessed ? "(guessed) " : "",
             llama_ftype_name(ft));
}

uint64_t melt_bench_model_size(const melt_gguf *g)
{
    uint64_t sum = 0;
    for (uint64_t i = 0; i < melt_gguf_n_tensors(g); i++)
        sum += melt_gguf_tensor_at(g, i)->n_bytes;
    return sum;
}

uint64_t melt_bench_model_n_params(const melt_gguf *g)
{
    uint64_t sum = 0;
    for (uint64_t i = 0; i < melt_gguf_n_tensors(g); i++)
        sum += melt_gguf_tensor_at(g, i)->n_elems;
    return sum;
}

uint64_t melt_bench_bytes_per_token(const melt_model *m, double n_kv, int kv_elem_bytes)
{
    const melt_gguf *g = melt_model_gguf(m);
    const bool tied = melt_gguf_find_tensor(g, "output.weight") == NULL;
    uint64_t sum = 0;
    for (uint64_t i = 0; i < melt_gguf_n_tensors(g); i++) {
        const melt_gguf_tensor *t = melt_gguf_tensor_at(g, i);
        if (!tied && melt_str_eq(t->name, "token_embd.weight"))
            continue;  /* one row per token: negligible */
        sum += t->n_bytes;
    }
    /* the head size, not n_embd / n_head: files may set it (key_length) */
    const double kv = 2.0 * melt_model_n_layer(m) * melt_model_n_head_kv(m) *
                      melt_model_head_dim(m) * n_kv * kv_elem_bytes;
    return sum + (uint64_t)llround(kv);
}

/* ---- read bandwidth ---------------------------------------------------- */

typedef struct bw_shared {
    unsigned char *buf;
    size_t slice_bytes;        /* per thread, a multiple of 4096 */
    int n_threads, passes;
    atomic_int arrived;        /* sense-reversing barrier (below) */
    atomic_int sense;
    atomic_bool abort_;        /* a thread failed to start: everyone leaves */
    atomic_bool done;          /* thread 0: enough passes (read after a barrier) */
    bool avx2;
    uint64_t best_ns;
    volatile uint64_t sink;
} bw_shared;

typedef struct bw_thread {
    bw_shared *sh;
    int ith;
    uint64_t sink;
} bw_thread;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Four independent accumulators keep several loads in flight. */
static uint64_t read_scalar(const unsigned char *p, size_t n)
{
    const uint64_t *w = (const uint64_t *)p;
    uint64_t a = 0, b = 0, c = 0, d = 0;
    for (size_t i = 0; i + 4 <= n / 8; i += 4) {
        a ^= w[i];
        b ^= w[i + 1];
        c ^= w[i + 2];
        d ^= w[i + 3];
    }
    return a ^ b ^ c ^ d;
}

#ifdef BENCH_X86
__attribute__((target("avx2"))) static uint64_t read_avx2(const unsigned char *p, size_t n)
{
    __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
    for (size_t i = 0; i + 128 <= n; i += 128) {
        a = _mm256_xor_si256(a, _mm256_load_si256((const __m256i *)(p + i)));
        b = _mm256_xor_si256(b, _mm256_load_si256((const __m256i *)(p + i + 32)));
        c = _mm256_xor_si256(c, _mm256_load_si256((const __m256i *)(p + i + 64)));
        d = _mm256_xor_si256(d, _mm256_load_si256((const __m256i *)(p + i + 96)));
    }
    a = _mm256_xor_si256(_mm256_xor_si256(a, b), _mm256_xor_si256(c, d));
    return (uint64_t)_mm256_extract_epi64(a, 0) ^ (uint64_t)_mm256_extract_epi64(a, 3);
}
#endif

/* All n_threads meet here; false when the run was aborted. Spins (with a
 * yield) so that the timed section starts with every thread awake. */
static bool bw_barrier(bw_shared *sh, int *local_sense)
{
    *local_sense = !*local_sense;
    if (atomic_fetch_add(&sh->arrived, 1) == sh->n_threads - 1) {
        atomic_store(&sh->arrived, 0);
        atomic_store(&sh->sense, *local_sense);
    } else {
        while (atomic_load(&sh->sense) != *local_sense) {
            if (atomic_load(&sh->abort_))
                return false;
            sched_yield();
        }
    }
    return !atomic_load(&sh->abort_);
}

#define BW_MIN_NS 400000000u   /* 0.4 s of passes */
#define BW_MAX_PASSES 40

/* Each thread reads its own contiguous slice front to back once per pass
 * (as decode's threads each stream their own rows of every weight), the
 * passes timed from a common start to the last thread's finish; the
 * bandwidth is that of the fastest pass. */
static void *bw_worker(void *arg)
{
    bw_thread *t = arg;
    bw_shared *sh = t->sh;
    unsigned char *mine = sh->buf + (size_t)t->ith * sh->slice_bytes;
    int sense = 0;
    uint64_t total_ns = 0;
    memset(mine, t->ith + 1, sh->slice_bytes);  /* first touch by the reader */
    for (int pass = 0;; pass++) {
        if (!bw_barrier(sh, &sense))
            return NULL;
        if (atomic_load(&sh->done))
            break;
        const uint64_t t0 = t->ith == 0 ? now_ns() : 0;
#ifdef BENCH_X86
        t->sink ^= sh->avx2 ? read_avx2(mine, sh->slice_bytes) : read_scalar(mine, sh->slice_bytes);
#else
        t->sink ^= read_scalar(mine, sh->slice_bytes);
#endif
        if (!bw_barrier(sh, &sense))
            return NULL;
        if (t->ith == 0) {
            const uint64_t dt = now_ns() - t0;
            if (sh->best_ns == 0 || dt < sh->best_ns)
                sh->best_ns = dt;
            total_ns += dt;
            /* at least the passes asked for, and on a busy machine more
             * (up to BW_MAX_PASSES) until BW_MIN_NS have gone by: the best
             * pass is the one least disturbed by other processes */
            if (pass + 1 >= sh->passes && (total_ns >= BW_MIN_NS || pass + 1 >= BW_MAX_PASSES))
                atomic_store(&sh->done, true);
        }
    }
    return NULL;
}

double melt_bench_read_bandwidth(size_t buf_bytes, int n_threads, int passes, melt_error *err)
{
    if (n_threads < 1 || passes < 1) {
        melt_errorf(err, MELT_EINVAL, "bandwidth: need >= 1 thread and pass");
        return 0;
    }
    bw_shared sh = {.n_threads = n_threads, .passes = passes};
    sh.slice_bytes = (buf_bytes / (size_t)n_threads + 4095) & ~(size_t)4095;
    sh.avx2 = melt_cpu_detect()->avx2;
    sh.buf = aligned_alloc(4096, sh.slice_bytes * (size_t)n_threads);
    bw_thread *th = calloc((size_t)n_threads, sizeof *th);
    pthread_t *tid = calloc((size_t)n_threads, sizeof *tid);
    double bw = 0;
    if (!sh.buf || !th || !tid) {
        melt_errorf(err, MELT_ENOMEM, "bandwidth: cannot allocate %zu bytes",
                    sh.slice_bytes * (size_t)n_threads);
        goto out;
    }
    int started = 1;
    for (int i = 0; i < n_threads; i++)
        th[i] = (bw_thread){.sh = &sh, .ith = i};
    for (; started < n_threads; started++)
        if (pthread_create(&tid[started], NULL, bw_worker, &th[started]) != 0)
            break;
    if (started < n_threads) {
            melt_errorf(err, MELT_ENOMEM, "bandwidth: cannot start %d threads", n_threads);
        atomic_store(&sh.abort_, true);
        for (int i = 1; i < started; i++)
            pthread_join(tid[i], NULL);
        goto out;
    }
    bw_worker(&th[0]);
    for (int i = 1; i < n_threads; i++)
        pthread_join(tid[i], NULL);
    for (int i = 0; i < n_threads; i++)
        sh.sink ^= th[i].sink;
    if (sh.best_ns > 0)
        bw = (double)(sh.slice_bytes * (size_t)n_threads) * 1e9 / (double)sh.best_ns;
out:
    free(sh.buf);
    free(th);
    free(tid);
    return bw;
}

/* ---- results ----------------------------------------------------------- */

void melt_bench_result_finish(melt_bench_result *r)
{
    const int n = r->n_samples;
    const double tokens = (double)r->n_prompt + r->n_gen;
    double sum_ns = 0, sum_ts = 0;
    for (int i = 0; i < n; i++) {
        r->samples_ts[i] = r->samples_ns[i] ? tokens * 1e9 / (double)r->samples_ns[i] : 0;
        sum_ns += (double)r->samples_ns[i];
        sum_ts += r->samples_ts[i];
    }
    const double mean_ns = n ? sum_ns / n : 0, mean_ts = n ? sum_ts / n : 0;
    double var_ns = 0, var_ts = 0;
    for (int i = 0; i < n; i++) {
        var_ns += ((double)r->samples_ns[i] - mean_ns) * ((double)r->samples_ns[i] - mean_ns);
        var_ts += (r->samples_ts[i] - mean_ts) * (r->samples_ts[i] - mean_ts);
    }
    /* whole ns, truncated, as llama-bench reports them */
    r->avg_ns = (uint64_t)mean_ns;
    r->stddev_ns = n > 1 ? (uint64_t)sqrt(var_ns / (n - 1)) : 0;
    r->avg_ts = mean_ts;
    r->stddev_ts = n > 1 ? sqrt(var_ts / (n - 1)) : 0;
}

void melt_bench_result_free(melt_bench_result *r)
{
    free(r->samples_ns);
    free(r->samples_ts);
    r->samples_ns = NULL;
    r->samples_ts = NULL;
    r->n_samples = 0;
}

/* ---- running ----------------------------------------------------------- */

static uint64_t rng_next(uint64_t *s)
{
    /* xorshift64*: plenty for picking token ids */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

static int32_t rand_token(uint64_t *s, int n_vocab)
{
    return (int32_t)(rng_next(s) % (uint64_t)n_vocab);
}

/* One pass of test t (prompt, then generation) from an empty cache. */
static int run_once(melt_context *c, const melt_bench_test *t, int n_prompt, int n_gen,
                    int32_t *tokens, float *logits, uint64_t *rng, melt_error *err)
{
    if (n_prompt > 0) {
        tokens[0] = t->bos >= 0 ? t->bos : rand_token(rng, t->n_vocab);
        for (int i = 1; i < n_prompt; i++)
            tokens[i] = rand_token(rng, t->n_vocab);
        int rc = melt_decode(c, tokens, n_prompt, 0, MELT_LOGITS_LAST, logits, err);
        if (rc < 0)
            return rc;
    }
    int32_t tok = t->bos >= 0 ? t->bos : rand_token(rng, t->n_vocab);
    for (int i = 0; i < n_gen; i++) {
        int rc = melt_decode(c, &tok, 1, n_prompt + i, MELT_LOGITS_LAST, logits, err);
        if (rc < 0)
            return rc;
        tok = rand_token(rng, t->n_vocab);
    }
    return 0;
}

int melt_bench_run_test(melt_context *c, const melt_bench_test *t, int reps, bool warmup,
                        uint64_t seed, uint64_t *samples_ns, melt_error *err)
{
    if (t->n_prompt < 0 || t->n_gen < 0 || t->n_prompt + t->n_gen < 1 || t->n_vocab < 1 ||
        reps < 1)
        return melt_errorf(err, MELT_EINVAL, "bench: bad test (pp%d tg%d, %d reps)",
                           t->n_prompt, t->n_gen, reps);
    if (t->n_prompt + t->n_gen > melt_context_n_ctx(c))
        return melt_errorf(err, MELT_EINVAL, "bench: pp%d+tg%d needs %d positions, the "
                           "context has %d", t->n_prompt, t->n_gen, t->n_prompt + t->n_gen,
                           melt_context_n_ctx(c));
    int32_t *tokens = malloc((size_t)(t->n_prompt > 0 ? t->n_prompt : 1) * sizeof *tokens);
    float *logits = malloc((size_t)t->n_vocab * sizeof *logits);
    uint64_t rng = seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull;
    int rc = 0;
    if (!tokens || !logits) {
        rc = melt_errorf(err, MELT_ENOMEM, "bench: out of memory");
        goto out;
    }
    /* llama-bench's warm-up: the whole prompt, one generated token */
    if (warmup && t->n_prompt > 0 &&
        (rc = run_once(c, t, t->n_prompt, 0, tokens, logits, &rng, err)) < 0)
        goto out;
    if (warmup && t->n_gen > 0 && (rc = run_once(c, t, 0, 1, tokens, logits, &rng, err)) < 0)
        goto out;
    for (int r = 0; r < reps; r++) {
        const uint64_t t0 = now_ns();
        if ((rc = run_once(c, t, t->n_prompt, t->n_gen, tokens, logits, &rng, err)) < 0)
            goto out;
        samples_ns[r] = now_ns() - t0;
    }
out:
    free(tokens);
    free(logits);
    return rc;
}

/* ---- output ------------------------------------------------------------ */

bool melt_bench_format_parse(const char *s, enum melt_bench_format *out)
{
    static const char *const names[] = {"md", "csv", "json", "jsonl", "sql"};
    for (int k = 0; k < 5; k++)
        if (!strcmp(s, names[k])) {
            *out = (enum melt_bench_format)k;
            return true;
        }
    return false;
}

void melt_bench_test_name(int n_prompt, int n_gen, char *buf, size_t n)
{
    if (n_prompt > 0 && n_gen == 0)
        snprintf(buf, n, "pp%d", n_prompt);
    else if (n_gen > 0 && n_prompt == 0)
        snprintf(buf, n, "tg%d", n_gen);
    else
        snprintf(buf, n, "pp%d+tg%d", n_prompt, n_gen);
}

/* The columns of every format but md, in order: llama-bench's names and
 * relative order for the ones it has, melt's own at the end. */
enum col_kind { COL_STR, COL_INT, COL_FLOAT };
typedef struct col {
    const char *name;
    enum col_kind kind;
    bool roofline;          /* only with --roofline */
} col;

static const col cols[] = {
    {"build_commit", COL_STR, false}, {"build_number", COL_INT, false},
    {"cpu_info", COL_STR, false}, {"gpu_info", COL_STR, false},
    {"backends", COL_STR, false}, {"model_filename", COL_STR, false},
    {"model_type", COL_STR, false}, {"model_size", COL_INT, false},
    {"model_n_params", COL_INT, false}, {"n_batch", COL_INT, false},
    {"n_ubatch", COL_INT, false}, {"n_threads", COL_INT, false},
    {"type_k", COL_STR, false}, {"type_v", COL_STR, false},
    {"n_prompt", COL_INT, false}, {"n_gen", COL_INT, false},
    {"n_depth", COL_INT, false}, {"test_time", COL_STR, false},
    {"avg_ns", COL_INT, false}, {"stddev_ns", COL_INT, false},
    {"avg_ts", COL_FLOAT, false}, {"stddev_ts", COL_FLOAT, false},
    {"kernels", COL_STR, false}, {"load_ms", COL_FLOAT, false},
    {"bw_read_gbs", COL_FLOAT, true}, {"bytes_per_token", COL_INT, true},
    {"roofline_ts", COL_FLOAT, true}, {"roofline_frac", COL_FLOAT, true},
};
#define N_COLS (sizeof cols / sizeof cols[0])

/* Column k of r as text ("" for an absent number: NaN). Floats as
 * llama-bench writes them (%f). */
static const char *col_value(const melt_bench_result *r, size_t k, char *buf, size_t n)
{
    const char *name = cols[k].name;
    long long iv = 0;
    double fv = 0;
    const char *sv = NULL;
#define S(f) if (!strcmp(name, #f)) sv = r->f;
#define I(f) if (!strcmp(name, #f)) iv = (long long)r->f;
#define F(f) if (!strcmp(name, #f)) fv = r->f;
    S(build_commit) I(build_number) S(cpu_info) S(gpu_info) S(backends) S(model_filename)
    S(model_type) I(model_size) I(model_n_params) I(n_batch) I(n_ubatch) I(n_threads)
    S(type_k) S(type_v) I(n_prompt) I(n_gen) I(n_depth) S(test_time) I(avg_ns) I(stddev_ns)
    F(avg_ts) F(stddev_ts) S(kernels) F(load_ms) F(bw_read_gbs) I(bytes_per_token) F(roofline_ts)
    F(roofline_frac)
#undef S
#undef I
#undef F
    if (cols[k].kind == COL_STR)
        return sv ? sv : "";
    if (cols[k].kind == COL_INT) {
        if (!strcmp(name, "bytes_per_token") && r->bytes_per_token == 0)
            return "";
        snprintf(buf, n, "%lld", iv);
    } else if (isfinite(fv)) {
        snprintf(buf, n, "%f", fv);
    } else {
        return "";
    }
    return buf;
}

static void put_csv_field(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', out);
        fputc(*s, out);
    }
    fputc('"', out);
}

static void put_json_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        const unsigned char c = (unsigned char)*s;
        if (c == '"') fputs("\\\"", out);
        else if (c == '\\') fputs("\\\\", out);
        else if (c < 0x20) fprintf(out, "\\u%04x", c);
        else fputc(c, out);
    }
    fputc('"', out);
}

static void put_json_value(FILE *out, size_t k, const char *v)
{
    if (cols[k].kind == COL_STR)
        put_json_string(out, v);
    else
        fputs(*v ? v : "null", out);
}

/* samples_ns / samples_ts as llama-bench joins them ("[ a, b ]"); t/s with
 * 6 significant digits like a C++ stream. */
static void put_samples(FILE *out, const melt_bench_result *r, bool ts)
{
    fputs("[ ", out);
    for (int i = 0; i < r->n_samples; i++) {
        if (i)
            fputs(", ", out);
        if (ts)
            fprintf(out, "%g", r->samples_ts[i]);
        else
            fprintf(out, "%llu", (unsigned long long)r->samples_ns[i]);
    }
    fputs(" ]", out);
}

static bool col_on(const melt_bench_printer *p, size_t k) { return p->roofline || !cols[k].roofline; }

static void md_header(melt_bench_printer *p)
{
    fprintf(p->out, "| %-30s | %10s | %10s | %-10s | %7s | %15s | %20s |", "model", "size", "params",
            "backend", "threads", "test", "t/s");
    if (p->roofline)
        fprintf(p->out, " %10s | %12s | %8s |", "bw GB/s", "roofline t/s", "frac");
    fprintf(p->out, "\n| %s | %s: | %s: | %s- | %s: | %s: | %s: |", "------------------------------",
            "---------", "---------", "---------", "------", "--------------",
            "-------------------");
    if (p->roofline)
        fprintf(p->out, " %s: | %s: | %s: |", "---------", "-----------", "-------");
    fputc('\n', p->out);
}

static void md_row(melt_bench_printer *p, const melt_bench_result *r)
{
    char size[32], params[32], test[48], ts[64];
    const double mib = (double)r->model_size / 1024.0 / 1024.0;
    if (r->model_size < 1024ull * 1024 * 1024)
        snprintf(size, sizeof size, "%.2f MiB", mib);
    else
        snprintf(size, sizeof size, "%.2f GiB", mib / 1024.0);
    if (r->model_n_params < 1000000000ull)
        snprintf(params, sizeof params, "%.2f M", (double)r->model_n_params / 1e6);
    else
        snprintf(params, sizeof params, "%.2f B", (double)r->model_n_params / 1e9);
    melt_bench_test_name(r->n_prompt, r->n_gen, test, sizeof test);
    snprintf(ts, sizeof ts, "%.2f ± %.2f", r->avg_ts, r->stddev_ts);
    /* the ± is two bytes: one more column keeps the table aligned */
    fprintf(p->out, "| %-30s | %10s | %10s | %-10s | %7d | %15s | %21s |", r->model_type, size,
            params, r->backends, r->n_threads, test, ts);
    if (p->roofline) {
        char bw[32], rl[32] = "-", fr[32] = "-";
        snprintf(bw, sizeof bw, "%.2f", r->bw_read_gbs);
        if (isfinite(r->roofline_ts))
            snprintf(rl, sizeof rl, "%.2f", r->roofline_ts);
        if (isfinite(r->roofline_frac))
            snprintf(fr, sizeof fr, "%.3f", r->roofline_frac);
        fprintf(p->out, " %10s | %12s | %8s |", bw, rl, fr);
    }
    fputc('\n', p->out);
}

void melt_bench_print_begin(melt_bench_printer *p)
{
    p->n_rows = 0;
    switch (p->fmt) {
    case MELT_BENCH_MD:
        md_header(p);
        break;
    case MELT_BENCH_CSV: {
        bool first = true;
        for (size_t k = 0; k < N_COLS; k++)
            if (col_on(p, k)) {
                fprintf(p->out, "%s%s", first ? "" : ",", cols[k].name);
                first = false;
            }
        fputc('\n', p->out);
        break;
    }
    case MELT_BENCH_JSON:
        fputs("[\n", p->out);
        break;
    case MELT_BENCH_JSONL:
        break;
    case MELT_BENCH_SQL: {
        fputs("CREATE TABLE IF NOT EXISTS melt_bench (\n", p->out);
        size_t last = 0;
        for (size_t k = 0; k < N_COLS; k++)
            if (col_on(p, k))
                last = k;
        for (size_t k = 0; k < N_COLS; k++)
            if (col_on(p, k))
                fprintf(p->out, "  %s %s%s\n", cols[k].name,
                        cols[k].kind == COL_STR ? "TEXT"
                        : cols[k].kind == COL_INT ? "INTEGER" : "REAL",
                        k < last ? "," : "");
        fputs(");\n\n", p->out);
        break;
    }
    }
    fflush(p->out);
}

static void sql_row(melt_bench_printer *p, const melt_bench_result *r)
{
    char buf[64];
    bool first = true;
    fputs("INSERT INTO melt_bench (", p->out);
    for (size_t k = 0; k < N_COLS; k++)
        if (col_on(p, k)) {
            fprintf(p->out, "%s%s", first ? "" : ", ", cols[k].name);
            first = false;
        }
    fputs(") VALUES (", p->out);
    first = true;
    for (size_t k = 0; k < N_COLS; k++) {
        if (!col_on(p, k))
            continue;
        const char *v = col_value(r, k, buf, sizeof buf);
        fputs(first ? "" : ", ", p->out);
        first = false;
        if (cols[k].kind != COL_STR && !*v) {
            fputs("NULL", p->out);
            continue;
        }
        fputc('\'', p->out);
        for (; *v; v++) {
            if (*v == '\'')
                fputc('\'', p->out);   /* SQL doubles a quote */
            fputc(*v, p->out);
        }
        fputc('\'', p->out);
    }
    fputs(");\n", p->out);
}

void melt_bench_print_row(melt_bench_printer *p, const melt_bench_result *r)
{
    char buf[64];
    switch (p->fmt) {
    case MELT_BENCH_MD:
        md_row(p, r);
        break;
    case MELT_BENCH_CSV: {
        bool first = true;
        for (size_t k = 0; k < N_COLS; k++)
            if (col_on(p, k)) {
                if (!first)
                    fputc(',', p->out);
                first = false;
                put_csv_field(p->out, col_value(r, k, buf, sizeof buf));
            }
        fputc('\n', p->out);
        break;
    }
    case MELT_BENCH_JSON:
        fputs(p->n_rows ? ",\n  {\n" : "  {\n", p->out);
        for (size_t k = 0; k < N_COLS; k++)
            if (col_on(p, k)) {
                fprintf(p->out, "    \"%s\": ", cols[k].name);
                put_json_value(p->out, k, col_value(r, k, buf, sizeof buf));
                fputs(",\n", p->out);
            }
        fputs("    \"samples_ns\": ", p->out);
        put_samples(p->out, r, false);
        fputs(",\n    \"samples_ts\": ", p->out);
        put_samples(p->out, r, true);
        fputs("\n  }", p->out);
        break;
    case MELT_BENCH_JSONL:
        fputc('{', p->out);
        for (size_t k = 0; k < N_COLS; k++)
            if (col_on(p, k)) {
                fprintf(p->out, "\"%s\": ", cols[k].name);
                put_json_value(p->out, k, col_value(r, k, buf, sizeof buf));
                fputs(", ", p->out);
            }
        fputs("\"samples_ns\": ", p->out);
        put_samples(p->out, r, false);
        fputs(",\"samples_ts\": ", p->out);
        put_samples(p->out, r, true);
        fputs("}\n", p->out);
        break;
    case MELT_BENCH_SQL:
        sql_row(p, r);
        break;
    }
    p->n_rows++;
    fflush(p->out);
}

void melt_bench_print_end(melt_bench_printer *p)
{
    if (p->fmt == MELT_BENCH_MD)
        fprintf(p->out, "\nbuild: %s (%d)\n", p->build_commit, p->build_number);
    else if (p->fmt == MELT_BENCH_JSON)
        fputs(p->n_rows ? "\n]\n" : "]\n", p->out);
    fflush(p->out);
}

/* melt bench: llama-bench's command line over the builtin engine. The flags
 * are parsed here (llama-bench spells one of them "-pg", which getopt cannot
 * take, so the loop is by hand); measuring and printing are in
 * src/runner/bench.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "engine/engine_internal.h"
#include "melt/bench.h"
#include "melt/cpu.h"
#include "melt/engine.h"
#include "melt/tokenizer.h"
#include "melt_version.h"

void usage_bench(FILE *out)
{
    fputs("usage: melt bench -m FILE[,FILE...] [-p LIST] [-n LIST] [-pg PP,TG] [-t LIST]\n"
          "                  [-r N] [-b N] [--delay S] [-o md|csv|json|jsonl|sql]\n"
          "                  [--kernels K] [--kv-type f16|f32] [--roofline] [--bw-mib N]\n"
          "                  [--no-warmup] [--progress]\n"
          "Speed of the builtin engine, the way llama-bench measures llama.cpp: for every\n"
          "model and thread count, a pp test per prompt size (one prompt of exactly N\n"
          "random tokens decoded as one call), a tg test per generation size (N tokens\n"
          "decoded one by one from an empty cache) and a pp+tg test per -pg pair; each\n"
          "after one warm-up run, repeated -r times; t/s = tokens / seconds, mean ±\n"
          "stddev over the repetitions. Same field names and formats as llama-bench\n"
          "(docs/bench.md); melt's own: kernels, and load_ms, once per model: from the\n"
          "start of the load to the end of a first decode (BOS, EOS), as llama.cpp\n"
          "times its load (not in md).\n\n"
          "  -m, --model FILE[,FILE]  GGUF model(s); repeatable\n"
          "  -p, --n-prompt LIST      prompt sizes (default 512; 0: no pp test)\n"
          "  -n, --n-gen LIST         generation sizes (default 128; 0: no tg test)\n"
          "  -pg PP,TG                a prompt of PP tokens then TG generated, timed\n"
          "                           together; repeatable\n"
          "  -t, --threads LIST       thread counts (default: all cores)\n"
          "  -r, --repetitions N      repetitions of each test (default 5)\n"
          "  -b, --batch-size N       most tokens computed at once (default 512)\n"
          "      --delay S            seconds to wait before each test but the first\n"
          "  -o, --output F           md (default), csv, json, jsonl or sql\n"
          "      --kernels K          auto (default), ref, scalar, avx2, avx512, neon,\n"
          "                           neon-dotprod\n"
          "      --kv-type T          KV cache type, f16 (default) or f32\n"
          "      --roofline           measure read bandwidth with the same threads and\n"
          "                           give tg t/s as a fraction of bandwidth / bytes\n"
          "                           read per token\n"
          "      --bw-mib N           bandwidth buffer in MiB (default 1024: far more\n"
          "                           than any last-level cache)\n"
          "      --no-warmup          skip the warm-up runs\n"
          "      --progress           one line per test on stderr\n"
          "  -h, --help               show this help\n"
          "LIST: comma-separated numbers or ranges: 1,2  1-4  1-8+2  16-512*2\n", out);
}

typedef struct bench_opts {
    const char **models;
    size_t n_models;
    int *n_prompt, *n_gen, *threads;
    size_t n_n_prompt, n_n_gen, n_threads;
    melt_bench_test *pg;
    size_t n_pg;
    int reps, n_batch, kv_type, bw_mib;
    double delay_s;
    enum melt_bench_format fmt;
    enum melt_kernels kernels;
    bool roofline, warmup, progress;
} bench_opts;

static void opts_free(bench_opts *o)
{
    free(o->models);
    free(o->n_prompt);
    free(o->n_gen);
    free(o->threads);
    free(o->pg);
}

/* Split a comma list of model paths. Keeps pointers into argv. */
static int add_models(bench_opts *o, char *arg)
{
    for (char *s = arg; s;) {
        char *comma = strchr(s, ',');
        if (comma)
            *comma = '\0';
        if (!*s)
            return cli_usage_error(usage_bench, "bench: -m: empty model path");
        const char **m = realloc(o->models, (o->n_models + 1) * sizeof *m);
        if (!m)
            return cli_usage_error(NULL, "bench: out of memory");
        m[o->n_models++] = s;
        o->models = m;
        s = comma ? comma + 1 : NULL;
    }
    return CLI_OK;
}

static int add_list(const char *flag, const char *arg, int min, int **vals, size_t *n)
{
    melt_error err = {0};
    if (melt_bench_parse_list(arg, min, 1 << 24, vals, n, &err) < 0)
        return cli_usage_error(usage_bench, "bench: %s: %s", flag, err.msg);
    return CLI_OK;
}

static int add_pg(bench_opts *o, const char *arg)
{
    int *v = NULL;
    size_t n = 0;
    melt_error err = {0};
    if (melt_bench_parse_list(arg, 0, 1 << 24, &v, &n, &err) < 0 || n != 2 || v[0] + v[1] < 1) {
        free(v);
        return cli_usage_error(usage_bench, "bench: -pg wants PP,TG (two numbers), got '%s'", arg);
    }
    melt_bench_test *p = realloc(o->pg, (o->n_pg + 1) * sizeof *p);
    if (!p) {
        free(v);
        return cli_usage_error(NULL, "bench: out of memory");
    }
    p[o->n_pg++] = (melt_bench_test){.n_prompt = v[0], .n_gen = v[1]};
    o->pg = p;
    free(v);
    return CLI_OK;
}

static bool parse_kernels(const char *s, enum melt_kernels *k)
{
    static const struct { const char *name; enum melt_kernels k; } t[] = {
        {"auto", MELT_KERNELS_AUTO}, {"ref", MELT_KERNELS_REF}, {"scalar", MELT_KERNELS_SCALAR},
        {"avx2", MELT_KERNELS_AVX2}, {"avx512", MELT_KERNELS_AVX512},
        {"neon", MELT_KERNELS_NEON}, {"neon-dotprod", MELT_KERNELS_NEON_DOTPROD},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (!strcmp(s, t[i].name)) {
            *k = t[i].k;
            return true;
        }
    return false;
}

/* argv[i] is a flag wanting a value: the value, or NULL (usage printed). */
static const char *flag_value(int argc, char **argv, int *i)
{
    if (*i + 1 >= argc) {
        cli_usage_error(usage_bench, "bench: option '%s' needs a value", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

static int parse_args(int argc, char **argv, bench_opts *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int rc = CLI_OK;
#define IS(s, l) (!strcmp(a, s) || !strcmp(a, l))
#define VALUE() do { if (!(v = flag_value(argc, argv, &i))) return CLI_USAGE; } while (0)
        if (IS("-h", "--help")) {
            usage_bench(stdout);
            return -1;
        } else if (IS("-m", "--model")) {
            VALUE();
            rc = add_models(o, argv[i]);
        } else if (IS("-p", "--n-prompt")) {
            VALUE();
            rc = add_list("-p", v, 0, &o->n_prompt, &o->n_n_prompt);
        } else if (IS("-n", "--n-gen")) {
            VALUE();
            rc = add_list("-n", v, 0, &o->n_gen, &o->n_n_gen);
        } else if (!strcmp(a, "-pg")) {
            VALUE();
            rc = add_pg(o, v);
        } else if (IS("-t", "--threads")) {
            VALUE();
            rc = add_list("-t", v, 1, &o->threads, &o->n_threads);
        } else if (IS("-r", "--repetitions")) {
            VALUE();
            if (!cli_parse_int(v, 1, 100000, &o->reps))
                return cli_usage_error(usage_bench, "bench: -r wants an integer >= 1, got '%s'", v);
        } else if (IS("-b", "--batch-size")) {
            VALUE();
            if (!cli_parse_int(v, 1, 1 << 20, &o->n_batch))
                return cli_usage_error(usage_bench, "bench: -b wants an integer >= 1, got '%s'", v);
        } else if (!strcmp(a, "--delay")) {
            VALUE();
            float d;
            if (!cli_parse_float(v, &d) || d < 0 || d > 86400)
                return cli_usage_error(usage_bench, "bench: --delay wants seconds >= 0, got '%s'", v);
            o->delay_s = d;
        } else if (IS("-o", "--output")) {
            VALUE();
            if (!melt_bench_format_parse(v, &o->fmt))
                return cli_usage_error(usage_bench, "bench: -o is md, csv, json, jsonl or sql, "
                                       "got '%s'", v);
        } else if (!strcmp(a, "--kernels")) {
            VALUE();
            if (!parse_kernels(v, &o->kernels))
                return cli_usage_error(usage_bench, "bench: --kernels is auto, ref, scalar, avx2, "
                                       "avx512, neon or neon-dotprod, got '%s'", v);
        } else if (!strcmp(a, "--kv-type")) {
            VALUE();
            if (!strcmp(v, "f16")) o->kv_type = MELT_KV_F16;
            else if (!strcmp(v, "f32")) o->kv_type = MELT_KV_F32;
            else return cli_usage_error(usage_bench, "bench: --kv-type is f16 or f32, got '%s'", v);
        } else if (!strcmp(a, "--bw-mib")) {
            VALUE();
            if (!cli_parse_int(v, 1, 1 << 20, &o->bw_mib))
                return cli_usage_error(usage_bench, "bench: --bw-mib wants an integer >= 1, got '%s'", v);
        } else if (!strcmp(a, "--roofline")) {
            o->roofline = true;
        } else if (!strcmp(a, "--no-warmup")) {
            o->warmup = false;
        } else if (!strcmp(a, "--progress")) {
            o->progress = true;
        } else if (a[0] == '-') {
            return cli_usage_error(usage_bench, "bench: unknown option '%s'", a);
        } else {
            return cli_usage_error(usage_bench, "bench: unexpected argument '%s'", a);
        }
#undef IS
#undef VALUE
        if (rc != CLI_OK)
            return rc;
    }
    if (!o->n_models)
        return cli_usage_error(usage_bench, "bench: missing -m FILE");
    /* llama-bench's defaults apply to the lists not given */
    if (!o->n_n_prompt && add_list("-p", "512", 0, &o->n_prompt, &o->n_n_prompt))
        return CLI_USAGE;
    if (!o->n_n_gen && add_list("-n", "128", 0, &o->n_gen, &o->n_n_gen))
        return CLI_USAGE;
    if (!o->n_threads) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        char buf[32];
        snprintf(buf, sizeof buf, "%ld", n > 0 ? n : 1);
        if (add_list("-t", buf, 1, &o->threads, &o->n_threads))
            return CLI_USAGE;
    }
    return CLI_OK;
}

/* The tests of one (model, threads) instance, in llama-bench's order:
 * every pp, every tg, every pp+tg. */
static size_t list_tests(const bench_opts *o, melt_bench_test *out)
{
    size_t n = 0;
    for (size_t k = 0; k < o->n_n_prompt; k++)
        if (o->n_prompt[k] > 0)
            out[n++] = (melt_bench_test){.n_prompt = o->n_prompt[k]};
    for (size_t k = 0; k < o->n_n_gen; k++)
        if (o->n_gen[k] > 0)
            out[n++] = (melt_bench_test){.n_gen = o->n_gen[k]};
    for (size_t k = 0; k < o->n_pg; k++)
        out[n++] = o->pg[k];
    return n;
}

static void utc_now(char *buf, size_t n)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void sleep_s(double s)
{
    if (s <= 0)
        return;
    struct timespec ts = {(time_t)s, (long)((s - floor(s)) * 1e9)};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* Bandwidth per thread count, measured once each (GB/s; 0 = not yet). */
typedef struct bw_cache {
    int threads[64];
    double gbs[64];
    int n;
} bw_cache;

static double bandwidth_gbs(bw_cache *bc, int n_threads, size_t bytes, bool progress,
                            melt_error *err)
{
    for (int k = 0; k < bc->n; k++)
        if (bc->threads[k] == n_threads)
            return bc->gbs[k];
    if (progress)
        fprintf(stderr, "melt bench: measuring read bandwidth, %d threads, %zu MiB\n", n_threads,
                bytes >> 20);
    const double bw = melt_bench_read_bandwidth(bytes, n_threads, 5, err) / 1e9;
    if (bw > 0 && bc->n < 64) {
        bc->threads[bc->n] = n_threads;
        bc->gbs[bc->n++] = bw;
    }
    return bw;
}

typedef struct bench_model {
    const char *path;
    melt_model *m;
    int32_t bos, eos;     /* -1: none */
    double load_ms;       /* open to the end of the warm decode (load_ready) */
    char model_type[128];
    uint64_t size, n_params;
} bench_model;

static int open_model(const bench_opts *o, const char *path, bench_model *bm, melt_error *err)
{
    melt_model_params mp = melt_model_default_params();
    mp.kernels = o->kernels;
    memset(bm, 0, sizeof *bm);
    bm->path = path;
    bm->bos = bm->eos = -1;
    int rc = melt_model_load(path, &mp, &bm->m, err);
    if (rc < 0)
        return rc;
    const melt_gguf *g = melt_model_gguf(bm->m);
    melt_bench_model_type(g, bm->model_type, sizeof bm->model_type);
    bm->size = melt_bench_model_size(g);
    bm->n_params = melt_bench_model_n_params(g);
    /* BOS first, like llama-bench, when the vocabulary adds one; a model
     * whose tokenizer melt cannot load still benchmarks (random ids) */
    melt_tokenizer *tok = NULL;
    melt_error terr = {0};
    if (melt_tokenizer_load(g, &tok, &terr) == 0) {
        if (melt_tokenizer_adds_bos(tok) && melt_tokenizer_bos(tok) != MELT_TOKEN_NULL)
            bm->bos = melt_tokenizer_bos(tok);
        if (melt_tokenizer_eos(tok) != MELT_TOKEN_NULL)
            bm->eos = melt_tokenizer_eos(tok);
        melt_tokenizer_free(tok);
    }
    return 0;
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The end of loading as llama.cpp times it: its "load time" runs from the
 * start of the model load to the end of the first decode, the warm-up of
 * its tools (BOS then EOS, the cache cleared after), which is when every
 * weight has been touched. The same decode on c, from position 0 (the
 * tests overwrite it). */
static int load_ready(const bench_model *bm, melt_context *c, melt_error *err)
{
    int32_t toks[2];
    int n = 0;
    if (bm->bos >= 0) toks[n++] = bm->bos;
    if (bm->eos >= 0) toks[n++] = bm->eos;
    if (n == 0) toks[n++] = 0;
    float *logits = malloc((size_t)melt_model_n_vocab(bm->m) * sizeof *logits);
    if (!logits)
        return melt_errorf(err, MELT_ENOMEM, "bench: out of memory");
    const int rc = melt_decode(c, toks, n, 0, MELT_LOGITS_LAST, logits, err);
    free(logits);
    return rc;
}

typedef struct bench_run {
    const bench_opts *o;
    melt_bench_printer pr;
    bw_cache bw;
    size_t bw_bytes;
    char cpu_info[128];
    int test_index, n_tests_total;
} bench_run;

/* One test on c: run it, fill a result, print it. */
static int run_one(bench_run *br, const bench_model *bm, melt_context *c,
                   const melt_bench_test *t0, melt_error *err)
{
    const bench_opts *o = br->o;
    melt_bench_test t = *t0;
    t.n_vocab = melt_model_n_vocab(bm->m);
    t.bos = bm->bos;
    melt_bench_result r = {0};
    snprintf(r.build_commit, sizeof r.build_commit, "%s", MELT_GIT_COMMIT);
    snprintf(r.cpu_info, sizeof r.cpu_info, "%s", br->cpu_info);
    snprintf(r.backends, sizeof r.backends, "CPU");
    snprintf(r.model_filename, sizeof r.model_filename, "%s", bm->path);
    snprintf(r.model_type, sizeof r.model_type, "%s", bm->model_type);
    snprintf(r.type_k, sizeof r.type_k, "%s", o->kv_type == MELT_KV_F32 ? "f32" : "f16");
    snprintf(r.type_v, sizeof r.type_v, "%s", r.type_k);
    snprintf(r.kernels, sizeof r.kernels, "%s", bm->m->ops->name);
    r.model_size = bm->size;
    r.model_n_params = bm->n_params;
    r.load_ms = bm->load_ms;
    r.n_batch = r.n_ubatch = o->n_batch;
    r.n_threads = melt_context_n_threads(c);
    r.n_prompt = t.n_prompt;
    r.n_gen = t.n_gen;
    r.roofline_ts = r.roofline_frac = NAN;
    if (br->test_index > 0)
        sleep_s(o->delay_s);
    br->test_index++;
    if (o->progress) {
        char name[48];
        melt_bench_test_name(t.n_prompt, t.n_gen, name, sizeof name);
        fprintf(stderr, "melt bench: test %d/%d: %s, %d threads, %s\n", br->test_index,
                br->n_tests_total, name, r.n_threads, bm->path);
    }
    utc_now(r.test_time, sizeof r.test_time);
    r.samples_ns = calloc((size_t)o->reps, sizeof *r.samples_ns);
    r.samples_ts = calloc((size_t)o->reps, sizeof *r.samples_ts);
    if (!r.samples_ns || !r.samples_ts) {
        melt_bench_result_free(&r);
        return melt_errorf(err, MELT_ENOMEM, "bench: out of memory");
    }
    r.n_samples = o->reps;
    uint64_t seed = (uint64_t)br->test_index;
    int rc = melt_bench_run_test(c, &t, o->reps, o->warmup, seed, r.samples_ns, err);
    if (rc == 0)
        melt_bench_result_finish(&r);
    if (rc == 0 && o->roofline) {
        r.has_roofline = true;
        r.bw_read_gbs = bandwidth_gbs(&br->bw, r.n_threads, br->bw_bytes, o->progress, err);
        if (r.bw_read_gbs <= 0)
            rc = err->code ? err->code : MELT_EIO;
        if (rc == 0 && t.n_gen > 0 && t.n_prompt == 0) {
            /* position i attends to i + 1 cache entries: (n_gen + 1) / 2 on average */
            const int kv_bytes = o->kv_type == MELT_KV_F32 ? 4 : 2;
            r.bytes_per_token = melt_bench_bytes_per_token(bm->m, (t.n_gen + 1) / 2.0, kv_bytes);
            r.roofline_ts = r.bw_read_gbs * 1e9 / (double)r.bytes_per_token;
            r.roofline_frac = r.avg_ts / r.roofline_ts;
        }
    }
    if (rc == 0)
        melt_bench_print_row(&br->pr, &r);
    melt_bench_result_free(&r);
    return rc;
}

static int run_model(bench_run *br, const char *path, const melt_bench_test *tests,
                     size_t n_tests, melt_error *err)
{
    const bench_opts *o = br->o;
    bench_model bm;
    const uint64_t t0_ns = mono_ns();
    int rc = open_model(o, path, &bm, err);
    if (rc < 0)
        return rc;
    int n_ctx = 2;   /* load_ready's BOS, EOS */
    for (size_t k = 0; k < n_tests; k++)
        if (tests[k].n_prompt + tests[k].n_gen > n_ctx)
            n_ctx = tests[k].n_prompt + tests[k].n_gen;
    for (size_t ti = 0; rc == 0 && ti < o->n_threads; ti++) {
        melt_context_params cp = melt_context_default_params();
        cp.n_ctx = n_ctx;
        cp.n_batch = o->n_batch;
        cp.n_threads = o->threads[ti];
        cp.kv_type = (enum melt_kv_type)o->kv_type;
        melt_context *c = NULL;
        rc = melt_context_new(bm.m, &cp, &c, err);
        if (rc == 0 && ti == 0 && (rc = load_ready(&bm, c, err)) == 0)
            bm.load_ms = (double)(mono_ns() - t0_ns) / 1e6;
        for (size_t k = 0; rc == 0 && k < n_tests; k++)
            rc = run_one(br, &bm, c, &tests[k], err);
        melt_context_free(c);
    }
    melt_model_free(bm.m);
    return rc;
}

int cmd_bench(int argc, char **argv)
{
    bench_opts o = {.reps = 5, .n_batch = 512, .warmup = true, .fmt = MELT_BENCH_MD,
                    .kernels = MELT_KERNELS_AUTO, .kv_type = MELT_KV_F16};
    int rc = parse_args(argc, argv, &o);
    if (rc != CLI_OK) {
        opts_free(&o);
        return rc < 0 ? CLI_OK : rc;   /* -1: --help */
    }
    melt_bench_test *tests = calloc(o.n_n_prompt + o.n_n_gen + o.n_pg + 1, sizeof *tests);
    const size_t n_tests = tests ? list_tests(&o, tests) : 0;
    if (n_tests == 0) {
        free(tests);
        opts_free(&o);
        return cli_usage_error(usage_bench, "bench: no tests (every -p and -n is 0)");
    }
    bench_run br = {.o = &o};
    br.n_tests_total = (int)(n_tests * o.n_threads * o.n_models);
    melt_cpu_model_name(br.cpu_info, sizeof br.cpu_info);
    /* the bandwidth buffer: much larger than any last-level cache */
    br.bw_bytes = (size_t)(o.bw_mib ? o.bw_mib : 1024) << 20;
    br.pr = (melt_bench_printer){.out = stdout, .fmt = o.fmt, .roofline = o.roofline};
    snprintf(br.pr.build_commit, sizeof br.pr.build_commit, "%s", MELT_GIT_COMMIT);
    melt_error err = {0};
    melt_bench_print_begin(&br.pr);
    rc = 0;
    for (size_t k = 0; rc == 0 && k < o.n_models; k++)
        rc = run_model(&br, o.models[k], tests, n_tests, &err);
    melt_bench_print_end(&br.pr);
    free(tests);
    opts_free(&o);
    return rc < 0 ? cli_fail(&err) : CLI_OK;
}

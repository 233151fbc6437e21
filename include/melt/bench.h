/* melt — `melt bench`: llama-bench-style speed tests of the builtin engine.
 *
 * A test is a prompt of n_prompt tokens decoded as one call (pp), n_gen
 * tokens decoded one at a time from an empty cache (tg), or both in a row
 * (pp+tg); token ids are random, the first one BOS where the vocabulary
 * adds it, as llama-bench does. Each repetition starts from an empty
 * cache and is timed on CLOCK_MONOTONIC; avg_ts is the mean over the
 * repetitions of (n_prompt + n_gen) / seconds. Field names and output
 * formats follow llama-bench where they overlap (docs/bench.md).
 * Host-only (not linked into the agent).
 */
#ifndef MELT_BENCH_H
#define MELT_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "melt/engine.h"
#include "melt/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Parse a llama-bench number list: comma-separated items, each N, A-B
 * (step 1), A-B+S (step S) or A-B*F (times F), e.g. "1,2", "1-4",
 * "1-8+2", "16-512*2". Values in [min, max]. Appends to *vals (realloc'd,
 * free()); MELT_EINVAL with the reason for a malformed list. */
int melt_bench_parse_list(const char *s, int min, int max, int **vals, size_t *n,
                          melt_error *err);

/* What llama.cpp calls the model's description: "ARCH SIZE FTYPE", e.g.
 * "llama 1B Q4_0", "llama ?B (guessed) all F32" (the file type guessed
 * from the most common tensor type when general.file_type is absent). */
void melt_bench_model_type(const melt_gguf *g, char *buf, size_t n);
/* Sum of tensor data sizes (llama-bench's model_size) and element counts. */
uint64_t melt_bench_model_size(const melt_gguf *g);
uint64_t melt_bench_model_n_params(const melt_gguf *g);

/* Weight bytes one decoded token reads: every tensor but the token
 * embeddings (whose one row is negligible), unless they double as the
 * output matrix (tied), plus reading the KV cache of n_kv positions
 * (kv_elem_bytes per element: 2 for F16, 4 for F32). */
uint64_t melt_bench_bytes_per_token(const melt_model *m, double n_kv, int kv_elem_bytes);

/* Best-of-passes streaming read bandwidth in bytes/s over a buffer of
 * buf_bytes (rounded up to 4 KiB per thread) split over n_threads threads
 * that start together: at least passes passes, more (up to 40) until
 * 0.4 s have gone by; 0 with err set when memory or threads fail. */
double melt_bench_read_bandwidth(size_t buf_bytes, int n_threads, int passes, melt_error *err);

/* ---- one result row ---- */

typedef struct melt_bench_result {
    char build_commit[48];
    int build_number;
    char cpu_info[128];
    char gpu_info[64];
    char backends[16];
    char model_filename[512];
    char model_type[128];
    uint64_t model_size, model_n_params;
    int n_batch, n_ubatch, n_threads;
    char type_k[8], type_v[8];
    int n_prompt, n_gen, n_depth;
    char test_time[32];          /* UTC, 2026-11-25T12:30:28Z */
    uint64_t avg_ns, stddev_ns;
    double avg_ts, stddev_ts;
    uint64_t *samples_ns;        /* n_samples each; owned by the result */
    double *samples_ts;
    int n_samples;
    /* melt's own fields */
    char kernels[32];            /* the kernel family that ran ("avx512") */
    double load_ms;              /* model load to ready to decode (docs/bench.md) */
    bool has_roofline;           /* --roofline: the four below are set */
    double bw_read_gbs;          /* read bandwidth, GB/s (1e9 bytes) */
    uint64_t bytes_per_token;    /* tg tests; 0 for pp */
    double roofline_ts;          /* bandwidth / bytes_per_token; NaN for pp */
    double roofline_frac;        /* avg_ts / roofline_ts; NaN for pp */
} melt_bench_result;

/* Fill avg/stddev of ns and t/s from samples_ns (n_samples of them) for
 * n_prompt + n_gen tokens; stddevs are sample stddevs (0 when n < 2). */
void melt_bench_result_finish(melt_bench_result *r);
void melt_bench_result_free(melt_bench_result *r);   /* the sample arrays */

/* ---- running a test ---- */

typedef struct melt_bench_test {
    int n_prompt, n_gen;
    int n_vocab;          /* token ids are drawn from [0, n_vocab) */
    int32_t bos;          /* first token of a prompt / of generation; -1: random */
} melt_bench_test;

/* Run one test reps times after one warm-up (a whole prompt when
 * n_prompt > 0, one generated token when n_gen > 0) on c, which must hold
 * n_prompt + n_gen positions; seed feeds the random token ids.
 * samples_ns[reps] (caller-owned) receives each repetition's time. */
int melt_bench_run_test(melt_context *c, const melt_bench_test *t, int reps, bool warmup,
                        uint64_t seed, uint64_t *samples_ns, melt_error *err);

/* ---- output ---- */

enum melt_bench_format {
    MELT_BENCH_MD = 0,
    MELT_BENCH_CSV,
    MELT_BENCH_JSON,
    MELT_BENCH_JSONL,
    MELT_BENCH_SQL,
};
bool melt_bench_format_parse(const char *s, enum melt_bench_format *out);

/* Rows are printed as they finish: begin once, a row per result, end
 * once. roofline says whether the roofline columns are present (the same
 * for every row). */
typedef struct melt_bench_printer {
    FILE *out;
    enum melt_bench_format fmt;
    bool roofline;
    int n_rows;
    char build_commit[48];
    int build_number;
} melt_bench_printer;

void melt_bench_print_begin(melt_bench_printer *p);
void melt_bench_print_row(melt_bench_printer *p, const melt_bench_result *r);
void melt_bench_print_end(melt_bench_printer *p);
/* "pp512", "tg128", "pp512+tg128" (llama-bench's test names). */
void melt_bench_test_name(int n_prompt, int n_gen, char *buf, size_t n);

#ifdef __cplusplus
}
#endif
#endif

/* melt — accuracy evaluation over the builtin engine.
 *
 * Perplexity (melt_eval_ppl) follows llama-perplexity exactly, so the same
 * file and context give the same number:
 *   - the whole text is tokenized once, with BOS where the vocab adds it
 *     (tokenizer.ggml.add_bos_token / the vocab kind's default) and
 *     control-token text left as plain text;
 *   - the tokens are split into floor(n_tokens / n_ctx) non-overlapping
 *     chunks of n_ctx (the tail is dropped; at least 2 chunks needed);
 *   - each chunk is decoded from position 0 with its first token replaced
 *     by BOS (when the vocab adds BOS);
 *   - only the second half is scored: the logits at positions
 *     n_ctx/2 .. n_ctx-2 predict tokens n_ctx/2+1 .. n_ctx-1, i.e.
 *     n_ctx - 1 - n_ctx/2 tokens a chunk;
 *   - PPL = exp(mean NLL); its standard error is llama-perplexity's
 *     delta-method estimate (melt_ppl_from_sums).
 * KL-divergence and multiple-choice tasks will live here too.
 */
#ifndef MELT_EVAL_H
#define MELT_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include "melt/engine.h"
#include "melt/error.h"
#include "melt/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct melt_ppl_params {
    int n_ctx;       /* tokens per chunk; default 512 */
    int n_chunks;    /* most chunks to score; <= 0: all (default) */
} melt_ppl_params;

melt_ppl_params melt_ppl_default_params(void);

/* Passed to the progress callback after every chunk. */
typedef struct melt_ppl_progress {
    int chunk;        /* 1-based index of the chunk just scored */
    int n_chunks;     /* chunks in total */
    double ppl;       /* running perplexity over chunks 1..chunk */
    double chunk_ppl; /* perplexity of this chunk alone */
    uint64_t chunk_ns;/* wall time of this chunk (decode + scoring) */
} melt_ppl_progress;

typedef void (*melt_ppl_progress_fn)(const melt_ppl_progress *p, void *user);

typedef struct melt_ppl_result {
    int n_ctx;
    int n_tokens;     /* tokens in the whole text (BOS included) */
    int n_chunks;     /* chunks scored */
    int n_scored;     /* tokens scored: n_chunks * (n_ctx - 1 - n_ctx/2) */
    double nll;       /* mean negative log-likelihood (nats) */
    double ppl;       /* exp(nll) */
    double ppl_se;    /* standard error of ppl (0 when undefined) */
    uint64_t t_ns;    /* wall time of decoding and scoring */
    int n_decoded;    /* tokens run through the model */
} melt_ppl_result;

/* Perplexity of text[0..len) with model m, decoded in context c (which must
 * hold at least p->n_ctx positions; its cache is overwritten). c may carry a
 * profiler. progress may be NULL. Errors: MELT_EINVAL when n_ctx < 4, the
 * context is too small or the text has fewer than 2 * n_ctx tokens;
 * whatever tokenizing and decoding return. */
int melt_eval_ppl(const melt_model *m, melt_context *c, const melt_tokenizer *tok,
                  const char *text, size_t len, const melt_ppl_params *p,
                  melt_ppl_progress_fn progress, void *user,
                  melt_ppl_result *res, melt_error *err);

/* -log softmax(logits)[target] over n_vocab logits, in double. */
double melt_nll_of(const float *logits, int n_vocab, int target);

/* llama-perplexity's final estimate from count scored tokens with
 * nll_sum = sum of NLLs and nll2_sum = sum of squared NLLs:
 *   m = nll_sum/count, v = nll2_sum/count - m^2, ppl = exp(m),
 *   se = sqrt(v / (count - 1)) * ppl when v > 0 and count > 1, else 0. */
void melt_ppl_from_sums(double nll_sum, double nll2_sum, long count, double *ppl, double *se);

#ifdef __cplusplus
}
#endif
#endif

/* Perplexity with llama-perplexity's chunking (include/melt/eval.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/profile.h"
#include "melt/eval.h"

melt_ppl_params melt_ppl_default_params(void)
{
    melt_ppl_params p = {.n_ctx = 512, .n_chunks = 0};
    return p;
}

double melt_nll_of(const float *logits, int n_vocab, int target)
{
    float max = logits[0];
    for (int i = 1; i < n_vocab; i++)
        if (logits[i] > max) max = logits[i];
    double sum = 0.0;
    for (int i = 0; i < n_vocab; i++) sum += exp((double)logits[i] - (double)max);
    return log(sum) - ((double)logits[target] - (double)max);
}

void melt_ppl_from_sums(double nll_sum, double nll2_sum, long count, double *ppl, double *se)
{
    *ppl = 0.0;
    *se = 0.0;
    if (count <= 0) return;
    const double mean = nll_sum / (double)count;
    const double var = nll2_sum / (double)count - mean * mean;
    *ppl = exp(mean);
    if (var > 0.0 && count > 1) *se = sqrt(var / (double)(count - 1)) * *ppl;
}

/* Logits rows computed at once while scoring: about 32 MiB of floats. */
static int score_rows(int n_vocab, int want)
{
    int rows = (int)((8u << 20) / (unsigned)n_vocab);
    if (rows < 1) rows = 1;
    return rows < want ? rows : want;
}

int melt_eval_ppl(const melt_model *m, melt_context *c, const melt_tokenizer *tok,
                  const char *text, size_t len, const melt_ppl_params *params,
                  melt_ppl_progress_fn progress, void *user, melt_ppl_result *res,
                  melt_error *err)
{
    melt_ppl_params defaults = melt_ppl_default_params();
    if (!params) params = &defaults;
    memset(res, 0, sizeof *res);
    const int n_ctx = params->n_ctx;
    if (n_ctx < 4) return melt_errorf(err, MELT_EINVAL, "perplexity context %d is too small (at least 4)", n_ctx);
    if (n_ctx > melt_context_n_ctx(c))
        return melt_errorf(err, MELT_EINVAL, "perplexity context %d exceeds the engine context %d",
                           n_ctx, melt_context_n_ctx(c));

    melt_token *ids = NULL;
    size_t n_ids = 0;
    int rc = melt_tokenize(tok, text, len, MELT_TOKENIZE_ADD_SPECIAL, &ids, &n_ids, err);
    if (rc < 0) return rc;
    if (n_ids < 2 * (size_t)n_ctx) {
        free(ids);
        return melt_errorf(err, MELT_EINVAL,
                           "the text has %zu tokens; perplexity with a context of %d needs at least %d",
                           n_ids, n_ctx, 2 * n_ctx);
    }
    int n_chunks = (int)(n_ids / (size_t)n_ctx);
    if (params->n_chunks > 0 && params->n_chunks < n_chunks) n_chunks = params->n_chunks;

    const int n_vocab = melt_model_n_vocab(m);
    const bool add_bos = melt_tokenizer_adds_bos(tok);
    const melt_token bos = melt_tokenizer_bos(tok);
    const int first = n_ctx / 2;
    const int n_score = n_ctx - 1 - first;  /* logits rows first..n_ctx-2 */
    const int rows = score_rows(n_vocab, n_score);
    int32_t *chunk = malloc((size_t)n_ctx * sizeof *chunk);
    float *logits = malloc((size_t)rows * (size_t)n_vocab * sizeof *logits);
    if (!chunk || !logits) {
        free(ids);
        free(chunk);
        free(logits);
        return melt_errorf(err, MELT_ENOMEM, "out of memory for perplexity buffers");
    }
    melt_profile *P = melt_profile_of(c);

    double nll = 0.0, nll2 = 0.0;
    long count = 0;
    const uint64_t t_start = melt_prof_now_ns();
    for (int i = 0; i < n_chunks && rc == 0; i++) {
        const uint64_t t0 = melt_prof_now_ns();
        memcpy(chunk, ids + (size_t)i * (size_t)n_ctx, (size_t)n_ctx * sizeof *chunk);
        if (add_bos && bos != MELT_TOKEN_NULL) chunk[0] = bos;
        /* the first half only fills the cache */
        rc = melt_decode(c, chunk, first, 0, MELT_LOGITS_NONE, NULL, err);
        res->n_decoded += first;
        double c_nll = 0.0;
        for (int s = first; s < n_ctx - 1 && rc == 0; s += rows) {
            const int k = n_ctx - 1 - s < rows ? n_ctx - 1 - s : rows;
            rc = melt_decode(c, chunk + s, k, s, MELT_LOGITS_ALL, logits, err);
            if (rc < 0) break;
            res->n_decoded += k;
            melt_prof_begin(P, MELT_PROF_SCORING, MELT_PROF_NO_LAYER);
            for (int r = 0; r < k; r++) {
                const double v = melt_nll_of(logits + (size_t)r * (size_t)n_vocab, n_vocab,
                                             chunk[s + r + 1]);
                c_nll += v;
                nll += v;
                nll2 += v * v;
                count++;
            }
            melt_prof_end(P);
        }
        if (rc < 0) break;
        res->n_chunks = i + 1;
        if (progress) {
            melt_ppl_progress pr = {
                .chunk = i + 1,
                .n_chunks = n_chunks,
                .ppl = exp(nll / (double)count),
                .chunk_ppl = exp(c_nll / (double)n_score),
                .chunk_ns = melt_prof_now_ns() - t0,
            };
            progress(&pr, user);
        }
    }
    res->t_ns = melt_prof_now_ns() - t_start;
    free(ids);
    free(chunk);
    free(logits);
    if (rc < 0) return rc;
    res->n_ctx = n_ctx;
    res->n_tokens = (int)n_ids;
    res->n_scored = (int)count;
    res->nll = nll / (double)count;
    melt_ppl_from_sums(nll, nll2, count, &res->ppl, &res->ppl_se);
    return 0;
}

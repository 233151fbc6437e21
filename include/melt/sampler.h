/* melt — token samplers: greedy, temperature, top-k, top-p, min-p and a
 * repetition penalty over the last N tokens; seeded, so the same seed and
 * the same logits give the same tokens on every machine.
 *
 * Chain order (llama.cpp's default order for these samplers):
 *   repetition penalty -> top-k -> top-p -> min-p -> temperature -> draw.
 * temperature <= 0 means greedy (argmax after the penalty, lowest id on
 * ties; no random draw). top-p and min-p see probabilities at temperature 1
 * over what the earlier steps kept. Each non-greedy sample consumes exactly
 * one draw of the seeded stream (xoshiro256** seeded by splitmix64).
 * NaN logits are never chosen. See docs/sampling.md.
 */
#ifndef MELT_SAMPLER_H
#define MELT_SAMPLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "melt/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct melt_sampler_params {
    float temperature;     /* default 0.8; <= 0: greedy; must be finite */
    int32_t top_k;         /* default 40; 0 or -1: off; < -1 rejected */
    float top_p;           /* default 0.95; in [0, 1]; 1: off */
    float min_p;           /* default 0.05; in [0, 1]; 0: off */
    float repeat_penalty;  /* default 1.0 (off); > 1 penalizes recent tokens;
                            * must be > 0 and finite */
    int32_t repeat_last_n; /* default 64; tokens of history the penalty sees;
                            * >= 0, 0: off */
    uint64_t seed;         /* default 0 */
} melt_sampler_params;

melt_sampler_params melt_sampler_default_params(void);

typedef struct melt_sampler melt_sampler;

/* New sampler for a vocabulary of n_vocab tokens (p NULL: defaults). Free
 * with melt_sampler_free. MELT_EINVAL, with a message naming the field, for
 * out-of-range parameters or n_vocab <= 0; *out is then NULL. */
int melt_sampler_new(const melt_sampler_params *p, int32_t n_vocab,
                     melt_sampler **out, melt_error *err);
void melt_sampler_free(melt_sampler *s);

/* Pick the next token from n_vocab logits (not modified). Does not record
 * it: call melt_sampler_accept for that. -1 when s or logits is NULL. */
int32_t melt_sampler_sample(melt_sampler *s, const float *logits);
/* Record a token in the penalty history (prompt tokens and generated ones).
 * A token outside [0, n_vocab) takes a place in the window but penalizes
 * nothing. */
void melt_sampler_accept(melt_sampler *s, int32_t token);
/* Forget the history and restart the random stream from the seed. */
void melt_sampler_reset(melt_sampler *s);

#ifdef __cplusplus
}
#endif
#endif

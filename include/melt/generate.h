/* melt — text generation over the builtin engine: decode a prompt, then
 * sample, report and decode one token at a time until an end-of-generation
 * token, a token limit or the end of the context.
 *
 * One function, melt_generate, shared by `melt generate`, `melt chat` and
 * the on-device agent. It reports every token through a callback, with the
 * text that became printable at that token (complete UTF-8 only: a
 * character split over byte tokens appears at the token that completes
 * it) and a CLOCK_MONOTONIC timestamp.
 *
 * Ownership: the context, tokenizer and sampler stay the caller's; the
 * sampler's history receives the prompt tokens and every generated token.
 */
#ifndef MELT_GENERATE_H
#define MELT_GENERATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "melt/engine.h"
#include "melt/error.h"
#include "melt/sampler.h"
#include "melt/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct melt_generate_params {
    int n_predict;     /* most tokens to generate; default 128; < 0: until an
                          end-of-generation token or the context is full */
    bool ignore_eos;   /* keep going past end-of-generation tokens (they are
                          reported like any other, with empty text) */
} melt_generate_params;

melt_generate_params melt_generate_default_params(void);

/* One generated token, as the callback sees it. */
typedef struct melt_gen_token {
    int index;          /* 0, 1, ... among generated tokens */
    melt_token id;      /* MELT_TOKEN_NULL for the final flush (below) */
    const char *text;   /* bytes that became printable (valid UTF-8; not
                           NUL-terminated; valid during the call only) */
    size_t len;
    uint64_t t_ns;      /* CLOCK_MONOTONIC when the token was picked */
} melt_gen_token;

/* Called once per generated token; a non-zero return stops generation
 * (MELT_STOP_CALLER). When generation ends inside an incomplete UTF-8
 * sequence, one last call with id MELT_TOKEN_NULL carries U+FFFD for it. */
typedef int (*melt_generate_fn)(const melt_gen_token *tok, void *user);

enum melt_stop_reason {
    MELT_STOP_LIMIT = 0,  /* n_predict tokens generated */
    MELT_STOP_EOG = 1,    /* an end-of-generation token (not reported) */
    MELT_STOP_CTX = 2,    /* the context is full */
    MELT_STOP_CALLER = 3, /* the callback asked to stop */
};

/* "limit", "eog", "context", "caller". */
const char *melt_stop_reason_name(enum melt_stop_reason r);

typedef struct melt_generate_stats {
    int n_prompt;        /* prompt tokens decoded */
    int n_gen;           /* tokens generated (reported to the callback) */
    int n_past;          /* positions in the cache afterwards */
    uint64_t t_start_ns; /* CLOCK_MONOTONIC at the call */
    uint64_t prompt_ns;  /* decoding the prompt */
    uint64_t ttft_ns;    /* the call to the first token */
    uint64_t gen_ns;     /* first token to last token */
    uint64_t sample_ns;  /* time in the sampler */
    enum melt_stop_reason stop;
} melt_generate_stats;

/* Prompt tokens per second, and generated tokens per second after the
 * first ((n_gen - 1) / gen_ns; 0 when undefined). */
double melt_generate_prompt_tps(const melt_generate_stats *st);
double melt_generate_decode_tps(const melt_generate_stats *st);

/* Decode prompt[0..n_prompt) at positions pos.. of c (the positions before
 * pos are taken as they are in the cache: a chat passes only the new
 * turn), then generate. cb may be NULL. When ids is non-NULL, *ids receives
 * the generated ids (malloc'd, st->n_gen of them; free()). Errors:
 * MELT_EINVAL when n_prompt < 1 or the prompt does not fit the context
 * (the message says how many positions are left), decode errors,
 * MELT_ENOMEM. st is filled in as far as generation got, also on error. */
int melt_generate(melt_context *c, const melt_tokenizer *tok, melt_sampler *s,
                  const melt_token *prompt, int n_prompt, int pos,
                  const melt_generate_params *p, melt_generate_fn cb, void *user,
                  melt_token **ids, melt_generate_stats *st, melt_error *err);

/* Incremental UTF-8 validation for streamed bytes: complete characters
 * pass, a character split over pushes is held back until it completes,
 * invalid bytes become U+FFFD. */
typedef struct melt_utf8_stream {
    unsigned char pend[4];
    int n_pend, need;
} melt_utf8_stream;

/* Feed in[0..n); writes at most 3 * n + 8 bytes to out and returns how many. */
size_t melt_utf8_push(melt_utf8_stream *u, const char *in, size_t n, char *out);
/* End of stream: U+FFFD for an incomplete character (0 or 3 bytes). */
size_t melt_utf8_flush(melt_utf8_stream *u, char *out);

#ifdef __cplusplus
}
#endif
#endif

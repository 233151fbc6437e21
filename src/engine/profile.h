/* Per-op profiler for the builtin engine: wall time and call counts by op
 * kind and by layer, CLOCK_MONOTONIC.
 *
 * Off costs one NULL check per op: the forward pass reads c->profile, and
 * melt_prof_begin/melt_prof_end return at once when it is NULL. On, each
 * op costs two clock_gettime calls. Ops do not nest: begin records the
 * kind, layer and start; end adds the elapsed time to both tables.
 *
 * Times are wall times of the op as the calling thread sees it (a matmul
 * spread over the thread pool counts once, from dispatch to join).
 *
 *   melt_profile *p; melt_profile_new(melt_model_n_layer(m), &p, &err);
 *   melt_profile_attach(ctx, p);          // ctx's forward pass now records
 *   ... melt_decode(...) ...
 *   melt_profile_print(p, stderr);
 *   melt_profile_attach(ctx, NULL); melt_profile_free(p);
 */
#ifndef MELT_ENGINE_PROFILE_H
#define MELT_ENGINE_PROFILE_H

#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "melt/engine.h"
#include "melt/error.h"

enum melt_prof_op {
    MELT_PROF_EMBED = 0,   /* token embedding look-up */
    MELT_PROF_NORM,        /* RMSNorm */
    MELT_PROF_MATMUL,      /* weight x activations (q, k, v, o, ffn, classifier) */
    MELT_PROF_BIAS,        /* bias additions */
    MELT_PROF_ROPE,        /* rotary embedding of q and k */
    MELT_PROF_KV_STORE,    /* writing k and v into the cache */
    MELT_PROF_ATTENTION,   /* scores, softmax, weighted sum of v */
    MELT_PROF_FFN_ACT,     /* SwiGLU */
    MELT_PROF_RESIDUAL,    /* residual additions */
    MELT_PROF_SAMPLING,    /* picking the next token from logits */
    MELT_PROF_SCORING,     /* log-softmax of logits for perplexity */
    MELT_PROF_OP_COUNT
};

/* Layer index for work outside the transformer blocks (embedding, final
 * norm, classifier, sampling). */
#define MELT_PROF_NO_LAYER (-1)

typedef struct melt_profile {
    uint64_t op_ns[MELT_PROF_OP_COUNT];
    uint64_t op_calls[MELT_PROF_OP_COUNT];
    int n_layer;
    uint64_t *layer_ns;     /* n_layer + 1 entries; the last is "no layer" */
    /* the op in flight */
    int cur_op, cur_layer;
    uint64_t t0_ns;
} melt_profile;

/* New, zeroed profile for a model of n_layer blocks (free with
 * melt_profile_free). */
int melt_profile_new(int n_layer, melt_profile **out, melt_error *err);
void melt_profile_free(melt_profile *p);
void melt_profile_reset(melt_profile *p);
/* Make c's forward pass record into p (NULL: stop recording). p must
 * outlive the attachment. */
void melt_profile_attach(melt_context *c, melt_profile *p);
/* The profile attached to c, or NULL. */
melt_profile *melt_profile_of(melt_context *c);
/* Sum of all recorded op time. */
uint64_t melt_profile_total_ns(const melt_profile *p);
/* Name of an op kind ("matmul", ...). */
const char *melt_prof_op_name(int op);
/* Two tables (by op kind: calls, total ms, share, mean us; by layer: total
 * ms, share), one header line first. */
void melt_profile_print(const melt_profile *p, FILE *out);
/* The same as one JSON object (no newline): {"total_ms":..,"ops":{"matmul":
 * {"calls":..,"ms":..,"share":..},..},"layers_ms":[..],"other_ms":..};
 * op kinds never called are left out. */
void melt_profile_write_json(const melt_profile *p, FILE *out);

static inline uint64_t melt_prof_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline void melt_prof_begin(melt_profile *p, int op, int layer)
{
    if (!p) return;
    p->cur_op = op;
    p->cur_layer = layer;
    p->t0_ns = melt_prof_now_ns();
}

static inline void melt_prof_end(melt_profile *p)
{
    if (!p) return;
    const uint64_t dt = melt_prof_now_ns() - p->t0_ns;
    p->op_ns[p->cur_op] += dt;
    p->op_calls[p->cur_op]++;
    const int l = p->cur_layer >= 0 && p->cur_layer < p->n_layer ? p->cur_layer : p->n_layer;
    p->layer_ns[l] += dt;
}

#endif

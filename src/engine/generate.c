/* Token generation loop (include/melt/generate.h). */
#include <stdlib.h>
#include <string.h>

#include "engine/engine_internal.h"
#include "engine/profile.h"
#include "melt/generate.h"

melt_generate_params melt_generate_default_params(void)
{
    melt_generate_params p = {.n_predict = 128, .ignore_eos = false};
    return p;
}

const char *melt_stop_reason_name(enum melt_stop_reason r)
{
    switch (r) {
    case MELT_STOP_LIMIT: return "limit";
    case MELT_STOP_EOG: return "eog";
    case MELT_STOP_CTX: return "context";
    case MELT_STOP_CALLER: return "caller";
    }
    return "?";
}

double melt_generate_prompt_tps(const melt_generate_stats *st)
{
    return st->prompt_ns ? (double)st->n_prompt * 1e9 / (double)st->prompt_ns : 0.0;
}

double melt_generate_decode_tps(const melt_generate_stats *st)
{
    return st->n_gen > 1 && st->gen_ns ? (double)(st->n_gen - 1) * 1e9 / (double)st->gen_ns : 0.0;
}

/* ---- UTF-8 stream ---- */

static const char repl[3] = {(char)0xEF, (char)0xBF, (char)0xBD};  /* U+FFFD */

size_t melt_utf8_push(melt_utf8_stream *u, const char *in, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        const unsigned char b = (unsigned char)in[i];
        if (u->n_pend > 0) {
            unsigned char lo = 0x80, hi = 0xBF;
            if (u->n_pend == 1) {  /* the second byte also excludes overlongs, surrogates, > U+10FFFF */
                const unsigned char lead = u->pend[0];
                if (lead == 0xE0) lo = 0xA0;
                else if (lead == 0xED) hi = 0x9F;
                else if (lead == 0xF0) lo = 0x90;
                else if (lead == 0xF4) hi = 0x8F;
            }
            if (b >= lo && b <= hi) {
                u->pend[u->n_pend++] = b;
                if (u->n_pend == u->need) {
                    memcpy(out + o, u->pend, (size_t)u->need);
                    o += (size_t)u->need;
                    u->n_pend = 0;
                }
                continue;
            }
            memcpy(out + o, repl, 3);  /* the cut-off sequence; b starts afresh */
            o += 3;
            u->n_pend = 0;
        }
        if (b < 0x80) {
            out[o++] = (char)b;
            continue;
        }
        const int need = b >= 0xC2 && b <= 0xDF ? 2 : b >= 0xE0 && b <= 0xEF ? 3
                         : b >= 0xF0 && b <= 0xF4 ? 4 : 0;
        if (!need) {
            memcpy(out + o, repl, 3);
            o += 3;
            continue;
        }
        u->pend[0] = b;
        u->n_pend = 1;
        u->need = need;
    }
    return o;
}

size_t melt_utf8_flush(melt_utf8_stream *u, char *out)
{
    if (!u->n_pend) return 0;
    u->n_pend = 0;
    memcpy(out, repl, 3);
    return 3;
}

/* ---- generation ---- */

int melt_generate(melt_context *c, const melt_tokenizer *tok, melt_sampler *s,
                  const melt_token *prompt, int n_prompt, int pos,
                  const melt_generate_params *p, melt_generate_fn cb, void *user,
                  melt_token **ids, melt_generate_stats *st, melt_error *err)
{
    melt_generate_params defaults = melt_generate_default_params();
    if (!p) p = &defaults;
    memset(st, 0, sizeof *st);
    if (ids) *ids = NULL;
    st->t_start_ns = melt_prof_now_ns();
    st->n_past = melt_context_n_past(c);
    const int n_ctx = melt_context_n_ctx(c);
    if (n_prompt < 1 || !prompt)
        return melt_errorf(err, MELT_EINVAL, "generation needs a prompt of at least one token");
    if (pos < 0 || pos > melt_context_n_past(c))
        return melt_errorf(err, MELT_EINVAL, "prompt at position %d, but the cache holds %d positions",
                           pos, melt_context_n_past(c));
    if ((int64_t)pos + n_prompt > n_ctx)
        return melt_errorf(err, MELT_EINVAL,
                           "context overflow: a prompt of %d tokens at position %d does not fit the context of %d tokens",
                           n_prompt, pos, n_ctx);

    const int n_vocab = c->model->hp.n_vocab;
    melt_profile *P = c->profile;
    int cap = p->n_predict >= 0 ? p->n_predict : n_ctx - pos - n_prompt + 1;
    if (cap < 1) cap = 1;
    float *logits = malloc((size_t)n_vocab * sizeof *logits);
    melt_token *out = ids ? malloc((size_t)cap * sizeof *out) : NULL;
    size_t text_cap = 256;
    char *text = malloc(text_cap);
    if (!logits || !text || (ids && !out)) {
        free(logits);
        free(out);
        free(text);
        return melt_errorf(err, MELT_ENOMEM, "out of memory for generation buffers");
    }

    int rc = melt_decode(c, prompt, n_prompt, pos, MELT_LOGITS_LAST, logits, err);
    st->prompt_ns = melt_prof_now_ns() - st->t_start_ns;
    if (rc == 0) {
        st->n_prompt = n_prompt;
        for (int i = 0; i < n_prompt; i++) melt_sampler_accept(s, prompt[i]);
    }
    int n_past = melt_context_n_past(c);
    melt_utf8_stream u = {0};
    uint64_t t_first = 0, t_last = 0;
    while (rc == 0) {
        if (p->n_predict >= 0 && st->n_gen >= p->n_predict) {
            st->stop = MELT_STOP_LIMIT;
            break;
        }
        const uint64_t t_s = melt_prof_now_ns();
        melt_prof_begin(P, MELT_PROF_SAMPLING, MELT_PROF_NO_LAYER);
        const melt_token id = melt_sampler_sample(s, logits);
        melt_sampler_accept(s, id);
        melt_prof_end(P);
        const uint64_t t = melt_prof_now_ns();
        st->sample_ns += t - t_s;
        if (!p->ignore_eos && melt_token_is_eog(tok, id)) {
            st->stop = MELT_STOP_EOG;
            break;
        }
        if (st->n_gen == 0) {
            t_first = t;
            st->ttft_ns = t - st->t_start_ns;
        }
        t_last = t;
        /* the text this token makes printable; control tokens show nothing */
        size_t plen = 0;
        const char *piece = melt_token_piece(tok, id, &plen);
        if (!piece || melt_token_type_of(tok, id) == MELT_TOKEN_TYPE_CONTROL) plen = 0;
        if (3 * plen + 8 > text_cap) {
            char *q = realloc(text, 3 * plen + 8);
            if (!q) {
                rc = melt_errorf(err, MELT_ENOMEM, "out of memory for token text");
                break;
            }
            text = q;
            text_cap = 3 * plen + 8;
        }
        const size_t tlen = plen ? melt_utf8_push(&u, piece, plen, text) : 0;
        if (out) out[st->n_gen] = id;
        melt_gen_token gt = {.index = st->n_gen, .id = id, .text = text, .len = tlen, .t_ns = t};
        st->n_gen++;
        if (cb && cb(&gt, user)) {
            st->stop = MELT_STOP_CALLER;
            break;
        }
        if (p->n_predict >= 0 && st->n_gen >= p->n_predict) {
            st->stop = MELT_STOP_LIMIT;
            break;
        }
        if (n_past >= n_ctx || st->n_gen >= cap) {
            st->stop = MELT_STOP_CTX;
            break;
        }
        rc = melt_decode(c, &id, 1, n_past, MELT_LOGITS_LAST, logits, err);
        n_past++;
    }
    if (rc == 0) {
        const size_t fl = melt_utf8_flush(&u, text);
        if (fl && cb) {
            melt_gen_token gt = {.index = st->n_gen, .id = MELT_TOKEN_NULL, .text = text, .len = fl,
                                 .t_ns = melt_prof_now_ns()};
            cb(&gt, user);
        }
    }
    st->gen_ns = t_last - t_first;
    st->n_past = melt_context_n_past(c);
    free(logits);
    free(text);
    if (rc < 0 || !ids) free(out);
    else *ids = out;
    return rc;
}

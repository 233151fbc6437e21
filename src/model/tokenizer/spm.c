/* SentencePiece (BPE-by-score) tokenization as llama.cpp's SPM tokenizer:
 * start from UTF-8 characters, repeatedly merge the adjacent pair whose
 * concatenation is a vocab token with the highest score (ties: leftmost),
 * then emit each final piece as its token, or as byte tokens. */
#include <stdlib.h>
#include <string.h>

#include "model/tokenizer/merge.h"
#include "model/tokenizer/tok_internal.h"
#include "model/tokenizer/unicode.h"

static int try_bigram(const melt_tokenizer *t, const char *s, const tok_sym *syms, tok_heap *h,
                      int64_t left, int64_t right)
{
    if (left < 0 || right < 0)
        return 0;
    size_t size = syms[left].n + syms[right].n;
    melt_token id = tok_find(t, s + syms[left].start, size);
    if (id == MELT_TOKEN_NULL)
        return 0;
    /* highest score first: the heap pops the smallest prio */
    tok_pair p = {-(double)t->score[id], left, right, syms[left].n, syms[right].n};
    return tok_heap_push(h, p);
}

/* Scratch reused across the segments of one call. */
typedef struct work {
    tok_sym *syms;
    tok_heap h;
} work;

/* Merge and emit s[a..b): one stretch that no token crosses the ends of. */
static int segment(const melt_tokenizer *t, const char *s, size_t a, size_t b, work *w,
                   tok_vec *out)
{
    tok_sym *syms = w->syms;
    size_t ns = tok_split_chars(s, a, b, syms);
    if (!ns)
        return 0;
    w->h.n = 0;
    for (size_t i = 1; i < ns; i++)
        if (try_bigram(t, s, syms, &w->h, (int64_t)i - 1, (int64_t)i) < 0)
            return MELT_ENOMEM;
    while (w->h.n) {
        tok_pair bg = tok_heap_pop(&w->h);
        if (!tok_pair_current(syms, &bg))
            continue;
        tok_pair_merge(syms, &bg);
        const tok_sym *l = &syms[bg.left];
        if (try_bigram(t, s, syms, &w->h, l->prev, bg.left) < 0 ||
            try_bigram(t, s, syms, &w->h, bg.left, l->next) < 0)
            return MELT_ENOMEM;
    }
    for (int64_t i = 0; i != -1; i = syms[i].next) {
        const tok_sym *y = &syms[i];
        melt_token id = tok_find(t, s + y->start, y->n);
        if (id != MELT_TOKEN_NULL) {
            tok_vec_push(out, id);
            continue;
        }
        for (size_t k = 0; k < y->n; k++) {
            melt_token bt = t->byte_token[(unsigned char)s[y->start + k]];
            if (bt == MELT_TOKEN_NULL)
                bt = t->unk;
            if (bt != MELT_TOKEN_NULL)
                tok_vec_push(out, bt);
        }
    }
    return out->oom ? MELT_ENOMEM : 0;
}

int spm_tokenize(const melt_tokenizer *t, const char *text, size_t len, bool prefix_space,
                 tok_vec *out)
{
    /* escape: optional leading space, then ' ' -> U+2581 */
    size_t n_sp = 0;
    for (size_t i = 0; i < len; i++)
        n_sp += text[i] == ' ';
    size_t elen = len + 2 * n_sp + (prefix_space ? 3 : 0);
    if (elen == 0)
        return 0;
    char *s = malloc(elen);
    work w = {0};
    int rc = MELT_ENOMEM;
    if (!s)
        goto done;
    {
        size_t o = 0;
        if (prefix_space) {
            memcpy(s, "\xE2\x96\x81", 3);
            o = 3;
        }
        for (size_t i = 0; i < len; i++) {
            if (text[i] == ' ') {
                memcpy(s + o, "\xE2\x96\x81", 3);
                o += 3;
            } else {
                s[o++] = text[i];
            }
        }
    }
    w.syms = malloc(elen * sizeof *w.syms);
    if (!w.syms)
        goto done;
    /* A character no multi-character token contains never merges, so the
     * stretches between such characters are independent: merging them one
     * by one gives the same result as one pass over the whole text, with a
     * much smaller queue. */
    size_t a = 0;
    for (size_t i = 0; i < elen;) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80 && t->spm_lone[c]) {
            if ((rc = segment(t, s, a, i, &w, out)) < 0 ||
                (rc = segment(t, s, i, i + 1, &w, out)) < 0)
                goto done;
            a = i + 1;
        }
        i += uc_len_utf8(c);    /* walk whole characters, as segment() splits */
    }
    rc = segment(t, s, a, elen, &w, out);
done:
    free(w.h.v);
    free(w.syms);
    free(s);
    return rc;
}

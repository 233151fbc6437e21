/* SentencePiece (BPE-by-score) tokenization as llama.cpp's SPM tokenizer:
 * start from UTF-8 characters, repeatedly merge the adjacent pair whose
 * concatenation is a vocab token with the highest score (ties: leftmost),
 * then emit each final piece as its token, or as byte tokens. */
#include <stdlib.h>
#include <string.h>

#include "model/tokenizer/tok_internal.h"
#include "model/tokenizer/unicode.h"

typedef struct sym {
    size_t start, n;   /* bytes in the escaped text */
    int64_t prev, next;
} sym;

typedef struct bigram {
    float score;
    int64_t left, right;
    size_t size;
} bigram;

/* true when a should pop before b */
static inline bool bg_before(const bigram *a, const bigram *b)
{
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

typedef struct heap {
    bigram *v;
    size_t n, cap;
} heap;

static int heap_push(heap *h, bigram b)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        bigram *p = realloc(h->v, cap * sizeof *p);
        if (!p)
            return -1;
        h->v = p;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!bg_before(&b, &h->v[parent]))
            break;
        h->v[i] = h->v[parent];
        i = parent;
    }
    h->v[i] = b;
    return 0;
}

static bigram heap_pop(heap *h)
{
    bigram top = h->v[0];
    bigram last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, best = i;
        const bigram *bv = &last;
        if (l < h->n && bg_before(&h->v[l], bv)) {
            best = l;
            bv = &h->v[l];
        }
        if (r < h->n && bg_before(&h->v[r], bv))
            best = r;
        if (best == i)
            break;
        h->v[i] = h->v[best];
        i = best;
    }
    if (h->n)
        h->v[i] = last;
    return top;
}

static int try_bigram(const melt_tokenizer *t, const char *s, const sym *syms, heap *h,
                      int64_t left, int64_t right)
{
    if (left < 0 || right < 0)
        return 0;
    size_t size = syms[left].n + syms[right].n;
    melt_token id = tok_find(t, s + syms[left].start, size);
    if (id == MELT_TOKEN_NULL)
        return 0;
    bigram b = {t->score[id], left, right, size};
    return heap_push(h, b);
}

/* Scratch reused across the segments of one call. */
typedef struct work {
    sym *syms;
    heap h;
} work;

/* Merge and emit s[a..b): one stretch that no token crosses the ends of. */
static int segment(const melt_tokenizer *t, const char *s, size_t a, size_t b, work *w,
                   tok_vec *out)
{
    sym *syms = w->syms;
    size_t ns = 0;
    for (size_t off = a; off < b;) {
        size_t n = uc_len_utf8((unsigned char)s[off]);
        if (n > b - off)
            n = b - off;
        syms[ns].start = off;
        syms[ns].n = n;
        syms[ns].prev = (int64_t)ns - 1;
        off += n;
        syms[ns].next = off == b ? -1 : (int64_t)ns + 1;
        ns++;
    }
    if (!ns)
        return 0;
    w->h.n = 0;
    for (size_t i = 1; i < ns; i++)
        if (try_bigram(t, s, syms, &w->h, (int64_t)i - 1, (int64_t)i) < 0)
            return MELT_ENOMEM;
    while (w->h.n) {
        bigram bg = heap_pop(&w->h);
        sym *l = &syms[bg.left], *r = &syms[bg.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != bg.size)
            continue;
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0)
            syms[r->next].prev = bg.left;
        if (try_bigram(t, s, syms, &w->h, l->prev, bg.left) < 0 ||
            try_bigram(t, s, syms, &w->h, bg.left, l->next) < 0)
            return MELT_ENOMEM;
    }
    for (int64_t i = 0; i != -1; i = syms[i].next) {
        const sym *y = &syms[i];
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

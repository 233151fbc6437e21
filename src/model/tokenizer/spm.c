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
    sym *syms = NULL;
    heap h = {0};
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
    syms = malloc(elen * sizeof *syms);
    if (!syms)
        goto done;
    size_t ns = 0;
    for (size_t off = 0; off < elen;) {
        size_t n = uc_len_utf8((unsigned char)s[off]);
        if (n > elen - off)
            n = elen - off;
        syms[ns].start = off;
        syms[ns].n = n;
        syms[ns].prev = (int64_t)ns - 1;
        off += n;
        syms[ns].next = off == elen ? -1 : (int64_t)ns + 1;
        ns++;
    }
    for (size_t i = 1; i < ns; i++)
        if (try_bigram(t, s, syms, &h, (int64_t)i - 1, (int64_t)i) < 0)
            goto done;
    while (h.n) {
        bigram b = heap_pop(&h);
        sym *l = &syms[b.left], *r = &syms[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size)
            continue;
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0)
            syms[r->next].prev = b.left;
        if (try_bigram(t, s, syms, &h, l->prev, b.left) < 0 ||
            try_bigram(t, s, syms, &h, b.left, l->next) < 0)
            goto done;
    }
    for (int64_t i = 0; i != -1; i = syms[i].next) {
        const sym *y = &syms[i];
        melt_token id = tok_find(t, s + y->start, y->n);
        if (id != MELT_TOKEN_NULL) {
            tok_vec_push(out, id);
            continue;
        }
        for (size_t k = 0; k < y->n; k++) {
            melt_token b = t->byte_token[(unsigned char)s[y->start + k]];
            if (b == MELT_TOKEN_NULL)
                b = t->unk;
            if (b != MELT_TOKEN_NULL)
                tok_vec_push(out, b);
        }
    }
    rc = out->oom ? MELT_ENOMEM : 0;
done:
    free(h.v);
    free(syms);
    free(s);
    return rc;
}

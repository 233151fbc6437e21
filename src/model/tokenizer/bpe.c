/* Byte-level BPE as llama.cpp's BPE tokenizer: pre-tokenize into words,
 * map each word's UTF-8 bytes through GPT-2's byte-to-unicode table, then
 * repeatedly merge the adjacent pair with the lowest merge rank (ties:
 * leftmost). */
#include <stdlib.h>
#include <string.h>

#include "model/tokenizer/tok_internal.h"
#include "model/tokenizer/unicode.h"

typedef struct sym {
    size_t start, n;   /* bytes in the encoded word */
    int64_t prev, next;
} sym;

typedef struct bigram {
    int64_t rank;
    int64_t left, right;
    size_t ln, rn;     /* sizes when queued: stale if they changed */
} bigram;

static inline bool bg_before(const bigram *a, const bigram *b)
{
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
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

typedef struct work {
    char *buf;          /* encoded word */
    size_t buf_cap;
    sym *syms;
    size_t syms_cap;
    heap h;
} work;

static int add_bigram(const melt_tokenizer *t, work *w, int64_t left, int64_t right)
{
    if (left < 0 || right < 0)
        return 0;
    const sym *l = &w->syms[left], *r = &w->syms[right];
    int64_t rank = tok_merge_rank(t, w->buf + l->start, l->n, w->buf + r->start, r->n);
    if (rank < 0)
        return 0;
    bigram b = {rank, left, right, l->n, r->n};
    return heap_push(&w->h, b);
}

static void emit_symbol(const melt_tokenizer *t, const char *s, size_t n, tok_vec *out)
{
    melt_token id = tok_find(t, s, n);
    if (id != MELT_TOKEN_NULL) {
        tok_vec_push(out, id);
        return;
    }
    /* as llama.cpp: each byte of the encoded text on its own, if a token */
    for (size_t k = 0; k < n; k++) {
        melt_token b = tok_find(t, s + k, 1);
        if (b != MELT_TOKEN_NULL)
            tok_vec_push(out, b);
    }
}

static int merge_word(const melt_tokenizer *t, work *w, size_t wlen, tok_vec *out)
{
    if (t->pt.ignore_merges) {
        melt_token id = tok_find(t, w->buf, wlen);
        if (id != MELT_TOKEN_NULL) {
            tok_vec_push(out, id);
            return 0;
        }
    }
    if (wlen > w->syms_cap) {
        sym *p = realloc(w->syms, wlen * sizeof *p);
        if (!p)
            return MELT_ENOMEM;
        w->syms = p;
        w->syms_cap = wlen;
    }
    size_t ns = 0;
    for (size_t off = 0; off < wlen;) {
        size_t n = uc_len_utf8((unsigned char)w->buf[off]);
        if (n > wlen - off)
            n = wlen - off;
        w->syms[ns].start = off;
        w->syms[ns].n = n;
        w->syms[ns].prev = (int64_t)ns - 1;
        off += n;
        w->syms[ns].next = off == wlen ? -1 : (int64_t)ns + 1;
        ns++;
    }
    w->h.n = 0;
    for (size_t i = 1; i < ns; i++)
        if (add_bigram(t, w, (int64_t)i - 1, (int64_t)i) < 0)
            return MELT_ENOMEM;
    while (w->h.n) {
        bigram b = heap_pop(&w->h);
        sym *l = &w->syms[b.left], *r = &w->syms[b.right];
        if (l->n == 0 || r->n == 0 || l->n != b.ln || r->n != b.rn || l->next != b.right)
            continue;
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0)
            w->syms[r->next].prev = b.left;
        if (add_bigram(t, w, l->prev, b.left) < 0 || add_bigram(t, w, b.left, l->next) < 0)
            return MELT_ENOMEM;
    }
    for (int64_t i = 0; ns && i != -1; i = w->syms[i].next)
        emit_symbol(t, w->buf + w->syms[i].start, w->syms[i].n, out);
    return out->oom ? MELT_ENOMEM : 0;
}

int bpe_tokenize(const melt_tokenizer *t, const char *text, size_t len, tok_vec *out)
{
    if (len == 0)
        return 0;
    int rc = MELT_ENOMEM;
    uint32_t *cp = malloc(len * sizeof *cp);
    uint8_t *cls = malloc(len);
    pt_vec words = {0}, tmp = {0};
    work w = {0};
    if (!cp || !cls)
        goto done;
    size_t n = 0;
    for (size_t off = 0; off < len;) {
        cp[n] = uc_decode(text, len, &off);
        cls[n] = uc_class(cp[n]);
        n++;
    }
    if (pt_split(t->pt.kind, cp, cls, n, &words, &tmp) < 0)
        goto done;
    bool encode = t->pt.kind != PT_WHITESPACE;
    size_t start = 0;
    for (size_t k = 0; k < words.n; k++) {
        size_t end = words.v[k];
        size_t need = (end - start) * 8;
        if (need > w.buf_cap) {
            char *p = realloc(w.buf, need);
            if (!p)
                goto done;
            w.buf = p;
            w.buf_cap = need;
        }
        size_t wl = 0;
        for (size_t i = start; i < end; i++) {
            char u[4];
            size_t ul = uc_encode(cp[i], u);
            for (size_t b = 0; b < ul; b++) {
                unsigned char c = (unsigned char)u[b];
                if (encode) {
                    memcpy(w.buf + wl, t->byte_utf8[c], t->byte_utf8_len[c]);
                    wl += t->byte_utf8_len[c];
                } else {
                    w.buf[wl++] = (char)c;
                }
            }
        }
        if (merge_word(t, &w, wl, out) < 0)
            goto done;
        start = end;
    }
    rc = out->oom ? MELT_ENOMEM : 0;
done:
    free(w.buf);
    free(w.syms);
    free(w.h.v);
    pt_vec_free(&words);
    pt_vec_free(&tmp);
    free(cls);
    free(cp);
    return rc;
}

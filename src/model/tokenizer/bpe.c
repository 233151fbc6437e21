/* Byte-level BPE as llama.cpp's BPE tokenizer: pre-tokenize into words,
 * map each word's UTF-8 bytes through GPT-2's byte-to-unicode table, then
 * repeatedly merge the adjacent pair with the lowest merge rank (ties:
 * leftmost). */
#include <stdlib.h>
#include <string.h>

#include "model/tokenizer/merge.h"
#include "model/tokenizer/tok_internal.h"
#include "model/tokenizer/unicode.h"

typedef struct work {
    char *buf;          /* encoded word */
    size_t buf_cap;
    tok_sym *syms;
    size_t syms_cap;
    tok_heap h;
} work;

static int add_bigram(const melt_tokenizer *t, work *w, int64_t left, int64_t right)
{
    if (left < 0 || right < 0)
        return 0;
    const tok_sym *l = &w->syms[left], *r = &w->syms[right];
    int64_t rank = tok_merge_rank(t, w->buf + l->start, l->n, w->buf + r->start, r->n);
    if (rank < 0)
        return 0;
    tok_pair p = {(double)rank, left, right, l->n, r->n};  /* ranks < 2^53: exact */
    return tok_heap_push(&w->h, p);
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
        tok_sym *p = realloc(w->syms, wlen * sizeof *p);
        if (!p)
            return MELT_ENOMEM;
        w->syms = p;
        w->syms_cap = wlen;
    }
    size_t ns = tok_split_chars(w->buf, 0, wlen, w->syms);
    w->h.n = 0;
    for (size_t i = 1; i < ns; i++)
        if (add_bigram(t, w, (int64_t)i - 1, (int64_t)i) < 0)
            return MELT_ENOMEM;
    while (w->h.n) {
        tok_pair b = tok_heap_pop(&w->h);
        if (!tok_pair_current(w->syms, &b))
            continue;
        tok_pair_merge(w->syms, &b);
        const tok_sym *l = &w->syms[b.left];
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

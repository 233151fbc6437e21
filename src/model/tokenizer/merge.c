#include "model/tokenizer/merge.h"

#include <stdbool.h>
#include <stdlib.h>

#include "model/tokenizer/unicode.h"

static bool pops_before(const tok_pair *a, const tok_pair *b)
{
    return a->prio < b->prio || (a->prio == b->prio && a->left < b->left);
}

int tok_heap_push(tok_heap *h, tok_pair p)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        tok_pair *v = realloc(h->v, cap * sizeof *v);
        if (!v)
            return -1;
        h->v = v;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!pops_before(&p, &h->v[parent]))
            break;
        h->v[i] = h->v[parent];
        i = parent;
    }
    h->v[i] = p;
    return 0;
}

tok_pair tok_heap_pop(tok_heap *h)
{
    tok_pair top = h->v[0];
    tok_pair last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, best = i;
        const tok_pair *bv = &last;
        if (l < h->n && pops_before(&h->v[l], bv)) {
            best = l;
            bv = &h->v[l];
        }
        if (r < h->n && pops_before(&h->v[r], bv))
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

size_t tok_split_chars(const char *s, size_t a, size_t b, tok_sym *syms)
{
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
    return ns;
}

int tok_pair_current(const tok_sym *syms, const tok_pair *p)
{
    const tok_sym *l = &syms[p->left], *r = &syms[p->right];
    return l->n != 0 && r->n != 0 && l->n == p->ln && r->n == p->rn && l->next == p->right;
}

void tok_pair_merge(tok_sym *syms, const tok_pair *p)
{
    tok_sym *l = &syms[p->left], *r = &syms[p->right];
    l->n += r->n;
    r->n = 0;
    l->next = r->next;
    if (r->next >= 0)
        syms[r->next].prev = p->left;
}

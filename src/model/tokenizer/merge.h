/* The merge loop shared by the SentencePiece and BPE tokenizers: a word is
 * a doubly linked list of symbols (byte ranges), adjacent pairs wait in a
 * priority queue, and the best pair is merged until none is left. */
#ifndef MELT_TOKENIZER_MERGE_H
#define MELT_TOKENIZER_MERGE_H

#include <stddef.h>
#include <stdint.h>

typedef struct tok_sym {
    size_t start, n;      /* bytes of the symbol; n == 0 once merged away */
    int64_t prev, next;   /* neighbours, -1 at the ends */
} tok_sym;

/* A candidate merge of syms[left] and syms[right]. Smaller prio pops first
 * (BPE: the merge rank; SPM: minus the token score), ties leftmost. ln/rn
 * are the symbols' sizes when queued: a pair whose symbols changed since is
 * stale and skipped. */
typedef struct tok_pair {
    double prio;
    int64_t left, right;
    size_t ln, rn;
} tok_pair;

typedef struct tok_heap {
    tok_pair *v;
    size_t n, cap;
} tok_heap;

/* 0, or -1 when out of memory. */
int tok_heap_push(tok_heap *h, tok_pair p);
/* The best pair; h->n must be > 0. */
tok_pair tok_heap_pop(tok_heap *h);

/* Split s[a..b) into one symbol per UTF-8 character (a truncated
 * character at the end is one symbol); returns the count. syms must hold
 * b - a entries. */
size_t tok_split_chars(const char *s, size_t a, size_t b, tok_sym *syms);

/* True when p is still current (both symbols alive, unchanged, adjacent). */
int tok_pair_current(const tok_sym *syms, const tok_pair *p);
/* Merge p.right into p.left. */
void tok_pair_merge(tok_sym *syms, const tok_pair *p);

#endif

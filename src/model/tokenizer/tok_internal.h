/* The tokenizer's private state, shared by tokenizer.c, spm.c and bpe.c. */
#ifndef MELT_TOKENIZER_INTERNAL_H
#define MELT_TOKENIZER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "melt/tokenizer.h"
#include "model/tokenizer/pretokenize.h"

/* Token attributes (bit set). */
enum {
    ATTR_NORMAL = 1u << 0,
    ATTR_UNKNOWN = 1u << 1,
    ATTR_CONTROL = 1u << 2,
    ATTR_USER_DEFINED = 1u << 3,
    ATTR_UNUSED = 1u << 4,
    ATTR_BYTE = 1u << 5,
    ATTR_RSTRIP = 1u << 6,
    ATTR_LSTRIP = 1u << 7,
    ATTR_EOG = 1u << 8,
};

/* Open-addressing hash set of strings stored elsewhere; slots hold
 * index + 1 (0 = empty). */
typedef struct str_index {
    uint32_t *slot;
    uint32_t mask;
} str_index;

/* Growable token list. */
typedef struct tok_vec {
    melt_token *v;
    size_t n, cap;
    bool oom;
} tok_vec;

void tok_vec_push(tok_vec *v, melt_token t);

struct melt_tokenizer {
    enum melt_vocab_kind kind;
    char *pre;                 /* tokenizer.ggml.pre, "" when absent */
    pt_info pt;

    uint32_t n_vocab;
    char *text;                /* all token texts, back to back */
    uint64_t *text_off;        /* n_vocab + 1 offsets into text */
    float *score;
    uint16_t *attr;
    uint8_t *type;             /* enum melt_token_type as in the file */
    str_index tok_index;

    uint32_t n_merges;
    char *merge_text;          /* "left right" strings back to back */
    uint64_t *merge_off;       /* n_merges + 1 */
    uint32_t *merge_split;     /* length of the left part */
    str_index merge_index;

    char *piece;               /* decoded pieces (melt_token_piece) */
    uint64_t *piece_off;       /* n_vocab + 1 */

    melt_token *special;       /* CONTROL/USER_DEFINED/UNKNOWN, longest first */
    size_t n_special;

    melt_token bos, eos, eot, eom, unk;
    bool add_bos, add_eos, add_space_prefix, clean_spaces;

    /* Byte fallback: token for each byte (SPM "<0xNN>", BPE the mapped
     * char), MELT_TOKEN_NULL when absent. */
    melt_token byte_token[256];
    /* GPT-2 mapping of each byte, as UTF-8. */
    char byte_utf8[256][2];
    uint8_t byte_utf8_len[256];
    size_t max_token_len;
    /* SPM: ASCII bytes that no token longer than one byte contains. */
    bool spm_lone[128];
};

static inline const char *tok_text(const melt_tokenizer *t, melt_token id, size_t *len)
{
    *len = (size_t)(t->text_off[id + 1] - t->text_off[id]);
    return t->text + t->text_off[id];
}

/* Token id of exactly s[0..len), or MELT_TOKEN_NULL. */
melt_token tok_find(const melt_tokenizer *t, const char *s, size_t len);
/* Merge rank of (a, b), or -1. */
int64_t tok_merge_rank(const melt_tokenizer *t, const char *a, size_t alen,
                       const char *b, size_t blen);

/* Tokenize one raw fragment (no special tokens inside), appending to out.
 * Return 0 or MELT_ENOMEM. */
int spm_tokenize(const melt_tokenizer *t, const char *text, size_t len, bool prefix_space,
                 tok_vec *out);
int bpe_tokenize(const melt_tokenizer *t, const char *text, size_t len, tok_vec *out);

#endif

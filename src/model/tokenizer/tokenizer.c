/* Tokenizer front end: loading tokenizer.ggml.* metadata, the token and
 * merge hash tables, special-token partitioning, and detokenization.
 * The SPM and BPE algorithms are in spm.c and bpe.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "melt/tokenizer.h"
#include "model/tokenizer/tok_internal.h"
#include "model/tokenizer/unicode.h"

/* ---- small helpers ---- */

void tok_vec_push(tok_vec *v, melt_token t)
{
    if (v->oom)
        return;
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        melt_token *p = realloc(v->v, cap * sizeof *p);
        if (!p) {
            v->oom = true;
            return;
        }
        v->v = p;
        v->cap = cap;
    }
    v->v[v->n++] = t;
}

/* FNV-1a, 64-bit, folded: the hash of a merge "a b" can be computed from
 * its parts without building the string. */
#define FNV_INIT 0xcbf29ce484222325ULL
static inline uint64_t fnv(uint64_t h, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static inline uint32_t fold(uint64_t h) { return (uint32_t)(h ^ (h >> 29) ^ (h >> 47)); }

static int index_init(str_index *ix, size_t n)
{
    size_t cap = 16;
    while (cap < n * 2)
        cap *= 2;
    ix->slot = calloc(cap, sizeof *ix->slot);
    ix->mask = (uint32_t)(cap - 1);
    return ix->slot ? 0 : -1;
}

melt_token tok_find(const melt_tokenizer *t, const char *s, size_t len)
{
    uint32_t i = fold(fnv(FNV_INIT, s, len)) & t->tok_index.mask;
    for (;;) {
        uint32_t v = t->tok_index.slot[i];
        if (!v)
            return MELT_TOKEN_NULL;
        size_t tl;
        const char *tt = tok_text(t, (melt_token)(v - 1), &tl);
        if (tl == len && memcmp(tt, s, len) == 0)
            return (melt_token)(v - 1);
        i = (i + 1) & t->tok_index.mask;
    }
}

int64_t tok_merge_rank(const melt_tokenizer *t, const char *a, size_t alen,
                       const char *b, size_t blen)
{
    if (!t->n_merges)
        return -1;
    uint64_t h = fnv(FNV_INIT, a, alen);
    h = fnv(h, " ", 1);
    h = fnv(h, b, blen);
    uint32_t i = fold(h) & t->merge_index.mask;
    for (;;) {
        uint32_t v = t->merge_index.slot[i];
        if (!v)
            return -1;
        uint32_t m = v - 1;
        const char *ms = t->merge_text + t->merge_off[m];
        size_t ml = (size_t)(t->merge_off[m + 1] - t->merge_off[m]);
        if (t->merge_split[m] == alen && ml == alen + 1 + blen &&
            memcmp(ms, a, alen) == 0 && memcmp(ms + alen + 1, b, blen) == 0)
            return m;
        i = (i + 1) & t->merge_index.mask;
    }
}

/* ---- loading ---- */

void melt_tokenizer_free(melt_tokenizer *t)
{
    if (!t)
        return;
    free(t->pre);
    free(t->text);
    free(t->text_off);
    free(t->score);
    free(t->attr);
    free(t->type);
    free(t->tok_index.slot);
    free(t->merge_text);
    free(t->merge_off);
    free(t->merge_split);
    free(t->merge_index.slot);
    free(t->piece);
    free(t->piece_off);
    free(t->special);
    free(t);
}

/* Whether s[0..n) is c. The first byte decides most calls at once: loading
 * runs this for every token against every marker name, and the strlen of
 * the names was half of the tokenizer's load time. */
static bool str_is(const char *s, size_t n, const char *c)
{
    if (n > 0 && s[0] != c[0])
        return false;
    return strlen(c) == n && memcmp(s, c, n) == 0;
}

static bool in_list(const char *s, size_t n, const char *const *list)
{
    for (size_t i = 0; list[i]; i++)
        if (str_is(s, n, list[i]))
            return true;
    return false;
}

/* Texts llama.cpp treats as end-of-turn / fill-in-middle markers: forced
 * to CONTROL. */
static const char *const control_names[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
    "<|end_of_text|>", "<EOT>", "_<EOT>", "[EOT]", "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>",
    "<end_of_utterance>", "<|eom_id|>",
    "<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<PRE>", "\xE2\x96\x81<PRE>",
    "<|code_prefix|>", "<|prefix|>", "<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<SUF>",
    "\xE2\x96\x81<SUF>", "<|code_suffix|>", "<|suffix|>", "<|fim_middle|>", "<fim-middle>",
    "<fim_middle>", "<MID>", "\xE2\x96\x81<MID>", "<|code_middle|>", "<|middle|>",
    "<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]", "<|fim_repo|>",
    "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>", "<|file_sep|>",
    NULL,
};

/* Texts llama.cpp takes for the end-of-turn token when none is given. */
static const char *const eot_names[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
    "<|end_of_text|>", "<EOT>", "_<EOT>", "[EOT]",
    "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>",
    "<end_of_utterance>", NULL,
};

/* Texts that end generation (and are forced to CONTROL). */
static const char *const eog_names[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>",
    "<|calls|>", "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>",
    "_<EOT>", "[EOT]", "[EOS]", "<|end_of_text|>", "<end_of_utterance>", "<eos>",
    "<turn|>", "<|tool_response>",
    "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>", "[e~[",
    NULL,
};

static uint16_t attr_of_type(int32_t type)
{
    switch (type) {
    case MELT_TOKEN_TYPE_NORMAL: return ATTR_NORMAL;
    case MELT_TOKEN_TYPE_UNKNOWN: return ATTR_UNKNOWN;
    case MELT_TOKEN_TYPE_CONTROL: return ATTR_CONTROL;
    case MELT_TOKEN_TYPE_USER_DEFINED: return ATTR_USER_DEFINED;
    case MELT_TOKEN_TYPE_UNUSED: return ATTR_UNUSED;
    case MELT_TOKEN_TYPE_BYTE: return ATTR_BYTE;
    default: return 0;
    }
}

/* Special-token id from metadata: keep dflt when absent or out of range. */
static melt_token special_id(const melt_gguf *g, const char *key, melt_token dflt, uint32_t n)
{
    if (dflt != MELT_TOKEN_NULL && (uint32_t)dflt >= n)
        dflt = MELT_TOKEN_NULL;
    uint64_t v;
    if (melt_gguf_get_u64(g, key, &v) && v < n)
        return (melt_token)v;
    return dflt;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* "<0xNN>" -> NN, else -1 */
static int byte_token_value(const char *s, size_t n)
{
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>')
        return -1;
    int hi = hexval(s[3]), lo = hexval(s[4]);
    return (hi < 0 || lo < 0) ? -1 : hi * 16 + lo;
}

/* Decoded bytes of token id into out (room for 21 bytes per text byte + 64). */
static size_t build_piece(const melt_tokenizer *t, melt_token id, char *out)
{
    size_t n;
    const char *s = tok_text(t, id, &n);
    uint16_t a = t->attr[id];
    if (a & (ATTR_UNKNOWN | ATTR_CONTROL | ATTR_USER_DEFINED)) {
        memcpy(out, s, n);
        return n;
    }
    if (a & ATTR_NORMAL) {
        size_t o = 0;
        if (t->kind == MELT_VOCAB_SPM) {
            for (size_t i = 0; i < n;) {
                if (i + 3 <= n && memcmp(s + i, "\xE2\x96\x81", 3) == 0) {
                    out[o++] = ' ';
                    i += 3;
                } else {
                    out[o++] = s[i++];
                }
            }
            return o;
        }
        if (t->pt.kind == PT_WHITESPACE) {
            memcpy(out, s, n);
            return n;
        }
        for (size_t off = 0; off < n;) {
            size_t at = off;
            uint32_t cp = uc_decode(s, n, &off);
            int b = uc_cp_to_byte(cp);
            if (b >= 0) {
                out[o++] = (char)b;
            } else {
                /* as llama.cpp: a visible marker for an unmappable char */
                o += (size_t)snprintf(out + o, 32, "[UNK_BYTE_0x");
                for (size_t k = at; k < off; k++)
                    o += (size_t)snprintf(out + o, 4, "%02x", (unsigned char)s[k]);
                out[o++] = ']';
            }
        }
        return o;
    }
    if (a & ATTR_BYTE) {
        int b = byte_token_value(s, n);
        if (b >= 0) {
            out[0] = (char)b;
            return 1;
        }
    }
    return 0;
}

static int cmp_special(const void *pa, const void *pb, void *ctx)
{
    const melt_tokenizer *t = ctx;
    melt_token a = *(const melt_token *)pa, b = *(const melt_token *)pb;
    size_t la = (size_t)(t->text_off[a + 1] - t->text_off[a]);
    size_t lb = (size_t)(t->text_off[b + 1] - t->text_off[b]);
    if (la != lb)
        return la > lb ? -1 : 1;
    return a < b ? -1 : (a > b);
}

/* insertion sort is enough for a few hundred specials, and keeps this file
 * free of qsort_r portability questions */
static void sort_specials(melt_tokenizer *t)
{
    for (size_t i = 1; i < t->n_special; i++) {
        melt_token x = t->special[i];
        size_t j = i;
        while (j > 0 && cmp_special(&t->special[j - 1], &x, t) > 0) {
            t->special[j] = t->special[j - 1];
            j--;
        }
        t->special[j] = x;
    }
}

static int load_merges(melt_tokenizer *t, const melt_gguf_value *mv, melt_error *err)
{
    const melt_str *ms = mv->v.arr.data;
    uint64_t n = mv->v.arr.n;
    if (n >= UINT32_MAX)
        return melt_errorf(err, MELT_EFORMAT, "tokenizer.ggml.merges: too many merges (%llu)",
                           (unsigned long long)n);
    size_t total = 0;
    for (uint64_t i = 0; i < n; i++)
        total += ms[i].len;
    t->merge_text = malloc(total ? total : 1);
    t->merge_off = malloc((n + 1) * sizeof *t->merge_off);
    t->merge_split = malloc((n ? n : 1) * sizeof *t->merge_split);
    if (!t->merge_text || !t->merge_off || !t->merge_split || index_init(&t->merge_index, n) < 0)
        return melt_errorf(err, MELT_ENOMEM, "out of memory loading %llu merges",
                           (unsigned long long)n);
    uint64_t off = 0;
    uint32_t kept = 0;
    for (uint64_t i = 0; i < n; i++) {
        const char *s = ms[i].ptr;
        size_t len = ms[i].len;
        const char *sp = len > 1 ? memchr(s + 1, ' ', len - 1) : NULL;
        if (!sp)
            continue;   /* llama.cpp keeps an ("", "") pair that never matches */
        size_t split = (size_t)(sp - s);
        /* rank is the position in the file; duplicates keep the first */
        if (tok_merge_rank(t, s, split, sp + 1, len - split - 1) >= 0)
            continue;
        memcpy(t->merge_text + off, s, len);
        t->merge_off[kept] = off;
        t->merge_split[kept] = (uint32_t)split;
        off += len;
        t->merge_off[kept + 1] = off;
        /* the rank is the file position: store it by keeping positions
         * aligned (skipped entries never match, so compact ids are fine as
         * long as the order is preserved) */
        uint32_t slot = fold(fnv(FNV_INIT, s, len)) & t->merge_index.mask;
        while (t->merge_index.slot[slot])
            slot = (slot + 1) & t->merge_index.mask;
        t->merge_index.slot[slot] = kept + 1;
        kept++;
        t->n_merges = kept;
    }
    t->n_merges = kept;
    return 0;
}

int melt_tokenizer_load(const melt_gguf *g, melt_tokenizer **out, melt_error *err)
{
    *out = NULL;
    melt_str model;
    if (!melt_gguf_get_str(g, "tokenizer.ggml.model", &model))
        return melt_errorf(err, MELT_ENOTFOUND,
                           "no tokenizer in this file (tokenizer.ggml.model missing)");
    enum melt_vocab_kind kind;
    if (melt_str_eq(model, "llama"))
        kind = MELT_VOCAB_SPM;
    else if (melt_str_eq(model, "gpt2"))
        kind = MELT_VOCAB_BPE;
    else
        return melt_errorf(err, MELT_EUNSUPPORTED,
                           "tokenizer model '%.*s' is not supported (melt knows 'llama' and 'gpt2')",
                           (int)(model.len > 64 ? 64 : model.len), model.ptr);

    const melt_gguf_value *tv = melt_gguf_get_arr(g, "tokenizer.ggml.tokens");
    if (!tv)
        return melt_errorf(err, MELT_ENOTFOUND, "no tokenizer vocabulary (tokenizer.ggml.tokens missing)");
    if (tv->v.arr.elem_type != MELT_GGUF_STRING)
        return melt_errorf(err, MELT_EFORMAT, "tokenizer.ggml.tokens is not an array of strings");
    uint64_t n64 = tv->v.arr.n;
    if (n64 == 0 || n64 >= (uint64_t)INT32_MAX)
        return melt_errorf(err, MELT_EFORMAT, "tokenizer.ggml.tokens has %llu entries",
                           (unsigned long long)n64);
    uint32_t n = (uint32_t)n64;

    melt_str pre = {"", 0};
    bool has_pre = melt_gguf_get_str(g, "tokenizer.ggml.pre", &pre);
    pt_info pti = {PT_DEFAULT, false, false, -1, false};
    if (kind == MELT_VOCAB_BPE && !pt_lookup(has_pre ? pre.ptr : NULL, has_pre ? pre.len : 0, &pti))
        return melt_errorf(err, MELT_EUNSUPPORTED,
                           "pre-tokenizer '%.*s' (tokenizer.ggml.pre) is not supported",
                           (int)(pre.len > 64 ? 64 : pre.len), pre.ptr);

    const melt_gguf_value *sv = melt_gguf_get_arr(g, "tokenizer.ggml.scores");
    if (sv && ((sv->v.arr.elem_type != MELT_GGUF_F32 && sv->v.arr.elem_type != MELT_GGUF_I32) ||
               sv->v.arr.n < n))
        return melt_errorf(err, MELT_EFORMAT,
                           "tokenizer.ggml.scores must be f32/i32 with one entry per token");
    const melt_gguf_value *yv = melt_gguf_get_arr(g, "tokenizer.ggml.token_type");
    if (yv && ((yv->v.arr.elem_type != MELT_GGUF_I32 && yv->v.arr.elem_type != MELT_GGUF_U32) ||
               yv->v.arr.n < n))
        return melt_errorf(err, MELT_EFORMAT,
                           "tokenizer.ggml.token_type must be i32 with one entry per token");
    const melt_gguf_value *mv = melt_gguf_get_arr(g, "tokenizer.ggml.merges");
    if (kind == MELT_VOCAB_BPE) {
        if (!mv)
            return melt_errorf(err, MELT_ENOTFOUND, "BPE tokenizer without tokenizer.ggml.merges");
        if (mv->v.arr.elem_type != MELT_GGUF_STRING)
            return melt_errorf(err, MELT_EFORMAT, "tokenizer.ggml.merges is not an array of strings");
    }

    melt_tokenizer *t = calloc(1, sizeof *t);
    if (!t)
        return melt_errorf(err, MELT_ENOMEM, "out of memory");
    t->kind = kind;
    t->pt = pti;
    t->n_vocab = n;
    t->pre = malloc(pre.len + 1);
    t->text_off = malloc(((size_t)n + 1) * sizeof *t->text_off);
    t->score = calloc(n, sizeof *t->score);
    t->attr = calloc(n, sizeof *t->attr);
    t->type = calloc(n, sizeof *t->type);
    if (!t->pre || !t->text_off || !t->score || !t->attr || !t->type ||
        index_init(&t->tok_index, n) < 0)
        goto oom;
    memcpy(t->pre, pre.ptr, pre.len);
    t->pre[pre.len] = '\0';

    /* token texts (an empty one becomes "[EMPTY_i]" as in llama.cpp) */
    const melt_str *ts = tv->v.arr.data;
    size_t total = 0;
    for (uint32_t i = 0; i < n; i++)
        total += ts[i].len ? ts[i].len : 24;
    t->text = malloc(total ? total : 1);
    if (!t->text)
        goto oom;
    uint64_t off = 0;
    for (uint32_t i = 0; i < n; i++) {
        t->text_off[i] = off;
        if (ts[i].len) {
            memcpy(t->text + off, ts[i].ptr, ts[i].len);
            off += ts[i].len;
        } else {
            off += (uint64_t)snprintf(t->text + off, 24, "[EMPTY_%u]", i);
        }
        t->text_off[i + 1] = off;
        size_t len = (size_t)(off - t->text_off[i]);
        if (len > t->max_token_len)
            t->max_token_len = len;
        melt_token dup = tok_find(t, t->text + t->text_off[i], len);
        if (dup != MELT_TOKEN_NULL) {
            melt_errorf(err, MELT_EFORMAT, "duplicate token in vocabulary: ids %d and %u",
                        dup, i);
            melt_tokenizer_free(t);
            return MELT_EFORMAT;
        }
        uint32_t slot = fold(fnv(FNV_INIT, t->text + t->text_off[i], len)) & t->tok_index.mask;
        while (t->tok_index.slot[slot])
            slot = (slot + 1) & t->tok_index.mask;
        t->tok_index.slot[slot] = i + 1;

        if (sv)
            t->score[i] = sv->v.arr.elem_type == MELT_GGUF_F32
                              ? ((const float *)sv->v.arr.data)[i]
                              : (float)((const int32_t *)sv->v.arr.data)[i];
        int32_t ty = yv ? ((const int32_t *)yv->v.arr.data)[i] : MELT_TOKEN_TYPE_NORMAL;
        t->type[i] = (ty >= 0 && ty <= 6) ? (uint8_t)ty : 0;
        t->attr[i] = yv ? attr_of_type(ty) : ATTR_NORMAL;
    }

    if (kind == MELT_VOCAB_BPE && load_merges(t, mv, err) < 0) {
        melt_tokenizer_free(t);
        return err ? err->code : MELT_EFORMAT;
    }

    /* defaults as llama.cpp, then metadata */
    melt_token dbos, deos, dunk;
    if (kind == MELT_VOCAB_SPM) {
        dbos = 1; deos = 2; dunk = 0;
        t->add_space_prefix = true;
        t->clean_spaces = false;
        t->add_bos = true;
    } else {
        dbos = pti.no_bos_token ? MELT_TOKEN_NULL : 11;
        deos = 11;
        dunk = MELT_TOKEN_NULL;
        t->add_space_prefix = false;
        t->clean_spaces = pti.clean_spaces;
        t->add_bos = pti.add_bos == 1;
    }
    bool b;
    if (melt_gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &b))
        t->add_space_prefix = b;
    t->bos = special_id(g, "tokenizer.ggml.bos_token_id", dbos, n);
    t->eos = special_id(g, "tokenizer.ggml.eos_token_id", deos, n);
    t->eot = special_id(g, "tokenizer.ggml.eot_token_id", MELT_TOKEN_NULL, n);
    t->eom = special_id(g, "tokenizer.ggml.eom_token_id", MELT_TOKEN_NULL, n);
    t->unk = special_id(g, "tokenizer.ggml.unknown_token_id", dunk, n);
    if (melt_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b))
        t->add_bos = b;
    if (melt_gguf_get_bool(g, "tokenizer.ggml.add_eos_token", &b))
        t->add_eos = b;
    if (t->add_bos && t->bos == MELT_TOKEN_NULL)
        t->add_bos = false;
    if (t->add_eos && t->eos == MELT_TOKEN_NULL)
        t->add_eos = false;

    /* marker tokens llama.cpp forces to CONTROL, end-of-generation, and
     * the end-of-turn token when the metadata names none (first name in
     * eot_names that the vocab has) */
    bool find_eot = t->eot == MELT_TOKEN_NULL;
    for (uint32_t i = 0; i < n; i++) {
        size_t len;
        const char *s = tok_text(t, (melt_token)i, &len);
        if (len < 3 || len > 40)
            continue;
        if (in_list(s, len, control_names))
            t->attr[i] |= ATTR_CONTROL;
        if (in_list(s, len, eog_names))
            t->attr[i] |= ATTR_CONTROL | ATTR_EOG;
    }
    for (size_t k = 0; find_eot && eot_names[k]; k++) {
        melt_token id = tok_find(t, eot_names[k], strlen(eot_names[k]));
        if (id != MELT_TOKEN_NULL) {
            t->eot = id;
            break;
        }
    }
    if (t->eos != MELT_TOKEN_NULL)
        t->attr[t->eos] |= ATTR_EOG;
    if (t->eot != MELT_TOKEN_NULL)
        t->attr[t->eot] |= ATTR_EOG;
    if (t->eom != MELT_TOKEN_NULL)
        t->attr[t->eom] |= ATTR_EOG;

    /* special tokens, longest first */
    t->special = malloc((size_t)n * sizeof *t->special);
    if (!t->special)
        goto oom;
    for (uint32_t i = 0; i < n; i++)
        if (t->attr[i] & (ATTR_CONTROL | ATTR_USER_DEFINED | ATTR_UNKNOWN))
            t->special[t->n_special++] = (melt_token)i;
    sort_specials(t);

    /* phi-3: special tokens swallow the whitespace after them */
    melt_str name;
    if (melt_gguf_get_str(g, "general.name", &name)) {
        char low[256];
        size_t ln = name.len < sizeof low - 1 ? name.len : sizeof low - 1;
        for (size_t i = 0; i < ln; i++) {
            char c = name.ptr[i];
            low[i] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
        }
        low[ln] = '\0';
        if (strstr(low, "phi-3") || strstr(low, "phi3")) {
            for (size_t k = 0; k < t->n_special; k++)
                t->attr[t->special[k]] |= ATTR_RSTRIP;
            static const char *const keep[] = {"<unk>", "<s>", "<|endoftext|>", NULL};
            melt_token es = tok_find(t, "</s>", 4);
            if (es != MELT_TOKEN_NULL)
                t->attr[es] |= ATTR_RSTRIP;
            for (size_t k = 0; keep[k]; k++) {
                melt_token id = tok_find(t, keep[k], strlen(keep[k]));
                if (id != MELT_TOKEN_NULL)
                    t->attr[id] &= (uint16_t)~ATTR_RSTRIP;
            }
        }
    }

    /* ASCII characters that never merge (see spm.c) */
    for (unsigned c = 0; c < 128; c++)
        t->spm_lone[c] = true;
    for (uint32_t i = 0; i < n; i++) {
        size_t len;
        const char *s = tok_text(t, (melt_token)i, &len);
        if (len < 2)
            continue;
        for (size_t k = 0; k < len; k++)
            if ((unsigned char)s[k] < 128)
                t->spm_lone[(unsigned char)s[k]] = false;
    }

    /* byte fallback tables */
    for (unsigned c = 0; c < 256; c++) {
        uint32_t cp = uc_byte_to_cp((uint8_t)c);
        t->byte_utf8_len[c] = (uint8_t)uc_encode(cp, t->byte_utf8[c]);
        t->byte_token[c] = MELT_TOKEN_NULL;
        if (kind == MELT_VOCAB_SPM) {
            char hex[8];
            snprintf(hex, sizeof hex, "<0x%02X>", c);
            melt_token id = tok_find(t, hex, 6);
            if (id == MELT_TOKEN_NULL) {
                char one = (char)c;
                id = tok_find(t, &one, 1);
            }
            t->byte_token[c] = id;
        } else {
            t->byte_token[c] = tok_find(t, t->byte_utf8[c], t->byte_utf8_len[c]);
        }
    }

    /* decoded pieces: at most 21 bytes per byte of token text (an
     * unmappable BPE char becomes "[UNK_BYTE_0xNN...]") */
    char *tmp = malloc(t->max_token_len * 21 + 64);
    size_t pcap = (size_t)t->text_off[n] + 64;
    t->piece_off = malloc(((size_t)n + 1) * sizeof *t->piece_off);
    t->piece = malloc(pcap);
    if (!tmp || !t->piece_off || !t->piece) {
        free(tmp);
        goto oom;
    }
    uint64_t po = 0;
    for (uint32_t i = 0; i < n; i++) {
        t->piece_off[i] = po;
        size_t pl = build_piece(t, (melt_token)i, tmp);
        if (po + pl > pcap) {
            size_t ncap = pcap * 2 > po + pl ? pcap * 2 : (size_t)po + pl;
            char *p = realloc(t->piece, ncap);
            if (!p) {
                free(tmp);
                goto oom;
            }
            t->piece = p;
            pcap = ncap;
        }
        memcpy(t->piece + po, tmp, pl);
        po += pl;
    }
    t->piece_off[n] = po;
    free(tmp);

    *out = t;
    return 0;
oom:
    melt_tokenizer_free(t);
    return melt_errorf(err, MELT_ENOMEM, "out of memory loading a %u-token vocabulary", n);
}

/* ---- tokenize ---- */

typedef struct frag {
    size_t off, len;
    melt_token tok;     /* MELT_TOKEN_NULL: raw text */
    int64_t next;
} frag;

typedef struct frag_list {
    frag *v;
    size_t n, cap;
} frag_list;

static int64_t frag_add(frag_list *l, size_t off, size_t len, melt_token tok)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        frag *p = realloc(l->v, cap * sizeof *p);
        if (!p)
            return -1;
        l->v = p;
        l->cap = cap;
    }
    l->v[l->n] = (frag){off, len, tok, -1};
    return (int64_t)l->n++;
}

static inline int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* Split raw fragments at every occurrence of each special token, longest
 * tokens first (llama.cpp's tokenizer_st_partition). */
static int partition(const melt_tokenizer *t, const char *text, size_t len, bool parse_special,
                     frag_list *l)
{
    l->n = 0;
    if (len == 0)
        return 0;
    if (frag_add(l, 0, len, MELT_TOKEN_NULL) < 0)
        return -1;
    for (size_t k = 0; k < t->n_special; k++) {
        melt_token sid = t->special[k];
        uint16_t a = t->attr[sid];
        if (!parse_special && (a & (ATTR_CONTROL | ATTR_UNKNOWN)))
            continue;
        size_t sl;
        const char *st = tok_text(t, sid, &sl);
        for (int64_t i = 0; i != -1;) {
            frag f = l->v[i];
            if (f.tok != MELT_TOKEN_NULL || f.len < sl) {
                i = f.next;
                continue;
            }
            const char *p = memmem(text + f.off, f.len, st, sl);
            if (!p) {
                i = f.next;
                continue;
            }
            /* rebuild fragment i as a chain: [left] tok [left] tok ... [rest] */
            int64_t after = f.next, last = -1, first = -1;
            size_t off = f.off, flen = f.len;
            for (;;) {
                size_t m = (size_t)(p - text);
                size_t llen = m - off;
                if (a & ATTR_LSTRIP)
                    while (llen > 0 && is_space(text[off + llen - 1]))
                        llen--;
                int64_t nodes[2] = {-1, -1};
                int nn = 0;
                if (llen > 0)
                    nodes[nn++] = frag_add(l, off, llen, MELT_TOKEN_NULL);
                nodes[nn++] = frag_add(l, m, sl, sid);
                for (int q = 0; q < nn; q++) {
                    if (nodes[q] < 0)
                        return -1;
                    if (last >= 0)
                        l->v[last].next = nodes[q];
                    else
                        first = nodes[q];
                    last = nodes[q];
                }
                size_t roff = m + sl, rlen = off + flen - roff;
                if (a & ATTR_RSTRIP)
                    while (rlen > 0 && is_space(text[roff])) {
                        roff++;
                        rlen--;
                    }
                off = roff;
                flen = rlen;
                if (flen == 0)
                    break;
                p = flen >= sl ? memmem(text + off, flen, st, sl) : NULL;
                if (!p) {
                    int64_t r = frag_add(l, off, flen, MELT_TOKEN_NULL);
                    if (r < 0)
                        return -1;
                    l->v[last].next = r;
                    last = r;
                    break;
                }
            }
            /* node i takes the first piece's place */
            l->v[i] = l->v[first];
            if (last == first)
                last = i;
            l->v[last].next = after;
            l->v[first].len = 0;          /* the copy at `first` is now unused */
            l->v[first].tok = MELT_TOKEN_NULL;
            i = after;
        }
    }
    return 0;
}

int melt_tokenize(const melt_tokenizer *t, const char *text, size_t len, unsigned flags,
                  melt_token **ids, size_t *n_ids, melt_error *err)
{
    *ids = NULL;
    *n_ids = 0;
    bool add_special = flags & MELT_TOKENIZE_ADD_SPECIAL;
    tok_vec out = {0};
    frag_list l = {0};
    int rc = 0;
    if (partition(t, text, len, flags & MELT_TOKENIZE_PARSE_SPECIAL, &l) < 0) {
        rc = MELT_ENOMEM;
        goto done;
    }
    if (add_special && t->add_bos)
        tok_vec_push(&out, t->bos);
    bool prev_special = true;
    for (int64_t i = l.n ? 0 : -1; i != -1; i = l.v[i].next) {
        const frag *f = &l.v[i];
        if (f->tok != MELT_TOKEN_NULL) {
            tok_vec_push(&out, f->tok);
            prev_special = true;
            continue;
        }
        if (t->kind == MELT_VOCAB_SPM) {
            rc = spm_tokenize(t, text + f->off, f->len, t->add_space_prefix && prev_special, &out);
        } else {
            rc = bpe_tokenize(t, text + f->off, f->len, &out);
        }
        if (rc < 0)
            goto done;
        prev_special = false;
    }
    if (add_special && t->add_eos)
        tok_vec_push(&out, t->eos);
    if (out.oom)
        rc = MELT_ENOMEM;
done:
    free(l.v);
    if (rc < 0) {
        free(out.v);
        return melt_errorf(err, rc, "out of memory tokenizing %zu bytes", len);
    }
    *ids = out.v;
    *n_ids = out.n;
    return 0;
}

/* ---- detokenize ---- */

static void clean_spaces(char *s, size_t *len)
{
    size_t n = *len, o;
    if (n == 0)
        return;
    /* " ?", " !", " .", " ," -> drop the space */
    o = 1;
    for (size_t i = 1; i < n; i++) {
        char x = s[i];
        if (s[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ','))
            o--;
        s[o++] = x;
    }
    n = o;
    /* " ' " -> "'" */
    o = 1;
    for (size_t i = 1; i < n; i++) {
        char x = s[i];
        if (x == '\'' && i + 1 < n && s[i - 1] == ' ' && s[i + 1] == ' ') {
            o--;
            s[++i] = '\0';
        }
        s[o++] = x;
    }
    n = o;
    /* " 's", " 'm", " 're", " 've" -> drop the space */
    o = 1;
    for (size_t i = 1; i < n; i++) {
        char x = s[i];
        if (s[i - 1] == ' ' && x == '\'' && i + 1 < n) {
            char x1 = s[i + 1];
            if (x1 == 's' || x1 == 'm')
                o--;
            else if (i + 2 < n && ((x1 == 'r' && s[i + 2] == 'e') || (x1 == 'v' && s[i + 2] == 'e')))
                o--;
        }
        s[o++] = x;
    }
    *len = o;
}

int melt_detokenize(const melt_tokenizer *t, const melt_token *ids, size_t n, unsigned flags,
                    char **text, size_t *len, melt_error *err)
{
    *text = NULL;
    *len = 0;
    bool remove_space = t->add_space_prefix;
    if ((flags & MELT_DETOKENIZE_REMOVE_SPECIAL) && t->add_bos && n > 0 && ids[0] == t->bos) {
        remove_space = false;
        ids++;
        n--;
    }
    if ((flags & MELT_DETOKENIZE_REMOVE_SPECIAL) && t->add_eos && n > 0 && ids[n - 1] == t->eos)
        n--;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || (uint32_t)ids[i] >= t->n_vocab)
            return melt_errorf(err, MELT_EINVAL, "token id %d at position %zu is outside the vocabulary (0..%u)",
                               ids[i], i, t->n_vocab - 1);
        total += (size_t)(t->piece_off[ids[i] + 1] - t->piece_off[ids[i]]);
    }
    char *s = malloc(total + 1);
    if (!s)
        return melt_errorf(err, MELT_ENOMEM, "out of memory detokenizing %zu tokens", n);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        melt_token id = ids[i];
        bool strip = remove_space;
        remove_space = false;
        if (!(flags & MELT_DETOKENIZE_UNPARSE_SPECIAL) && (t->attr[id] & (ATTR_CONTROL | ATTR_UNKNOWN)))
            continue;
        const char *p = t->piece + t->piece_off[id];
        size_t pl = (size_t)(t->piece_off[id + 1] - t->piece_off[id]);
        if (strip && pl > 0 && p[0] == ' ') {
            p++;
            pl--;
        }
        memcpy(s + o, p, pl);
        o += pl;
    }
    if ((flags & MELT_DETOKENIZE_CLEAN_SPACES) && t->clean_spaces)
        clean_spaces(s, &o);
    s[o] = '\0';
    *text = s;
    *len = o;
    return 0;
}

/* ---- accessors ---- */

const char *melt_token_piece(const melt_tokenizer *t, melt_token id, size_t *len)
{
    if (id < 0 || (uint32_t)id >= t->n_vocab) {
        *len = 0;
        return NULL;
    }
    *len = (size_t)(t->piece_off[id + 1] - t->piece_off[id]);
    return t->piece + t->piece_off[id];
}

const char *melt_token_text(const melt_tokenizer *t, melt_token id, size_t *len)
{
    if (id < 0 || (uint32_t)id >= t->n_vocab) {
        *len = 0;
        return NULL;
    }
    return tok_text(t, id, len);
}

int melt_token_type_of(const melt_tokenizer *t, melt_token id)
{
    if (id < 0 || (uint32_t)id >= t->n_vocab)
        return MELT_TOKEN_TYPE_UNDEFINED;
    return t->type[id];
}

melt_token melt_token_lookup(const melt_tokenizer *t, const char *s, size_t len)
{
    return tok_find(t, s, len);
}

enum melt_vocab_kind melt_tokenizer_kind(const melt_tokenizer *t) { return t->kind; }
const char *melt_tokenizer_pre(const melt_tokenizer *t) { return t->pre; }
size_t melt_tokenizer_n_vocab(const melt_tokenizer *t) { return t->n_vocab; }
melt_token melt_tokenizer_bos(const melt_tokenizer *t) { return t->bos; }
melt_token melt_tokenizer_eos(const melt_tokenizer *t) { return t->eos; }
melt_token melt_tokenizer_eot(const melt_tokenizer *t) { return t->eot; }
melt_token melt_tokenizer_unk(const melt_tokenizer *t) { return t->unk; }
bool melt_tokenizer_adds_bos(const melt_tokenizer *t) { return t->add_bos; }

bool melt_token_is_eog(const melt_tokenizer *t, melt_token id)
{
    return id >= 0 && (uint32_t)id < t->n_vocab && (t->attr[id] & ATTR_EOG);
}

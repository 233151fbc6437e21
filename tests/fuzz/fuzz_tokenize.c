/* Fuzz target: tokenizers on arbitrary bytes. The first input byte picks
 * the options (bit 0: add BOS/EOS, bit 1: parse special tokens, bit 2: the
 * llama-3 BPE vocab instead of stories260K's SentencePiece one, bit 3: run
 * the pre-tokenizer family numbered by the second byte on the text and check
 * its words cover the text in order); the rest
 * is the text. Tokenizes, checks every id is in the vocab, detokenizes, and
 * for SentencePiece without special tokens (parsed specials get the space
 * prefix after them) checks the text comes back (when the input holds no
 * U+2581, which SentencePiece reads as a space). As in llama.cpp, a
 * malformed UTF-8 lead byte can swallow an escaped space into a run of
 * byte tokens, which then decodes as U+2581: the check maps U+2581 back to
 * a space first. Vocabularies are loaded once, from tests/fixtures (run
 * from the repository root). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "melt/gguf.h"
#include "melt/tokenizer.h"
#include "model/tokenizer/pretokenize.h"
#include "model/tokenizer/unicode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static melt_tokenizer *load(const char *path)
{
    melt_error err = {0};
    melt_gguf *g = NULL;
    melt_tokenizer *t = NULL;
    if (melt_gguf_open(path, &g, &err) < 0 || melt_tokenizer_load(g, &t, &err) < 0) {
        fprintf(stderr, "fuzz_tokenize: %s: %s\n", path, err.msg);
        abort();
    }
    melt_gguf_close(g);
    return t;
}

/* Every pre-tokenizer family on the text: words must be non-empty,
 * increasing, and end at the last codepoint. */
static void split_all(unsigned kind, const char *text, size_t len)
{
    uint32_t *cp = malloc((len + 1) * sizeof *cp);
    uint8_t *cls = malloc(len + 1);
    if (!cp || !cls)
        abort();
    size_t n = 0;
    for (size_t off = 0; off < len;) {
        cp[n] = uc_decode(text, len, &off);
        cls[n] = uc_class(cp[n]);
        n++;
    }
    pt_vec words = {0}, tmp = {0};
    if (pt_split((enum pt_kind)kind, cp, cls, n, &words, &tmp) < 0)
        abort();
    for (size_t k = 0; k < words.n; k++)
        if (words.v[k] == 0 || (k && words.v[k] <= words.v[k - 1]))
            abort();
    if (n ? (words.n == 0 || words.v[words.n - 1] != n) : words.n != 0)
        abort();
    pt_vec_free(&words);
    pt_vec_free(&tmp);
    free(cls);
    free(cp);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static melt_tokenizer *spm, *bpe;   /* loaded once per process */
    if (size == 0)
        return 0;
    unsigned opt = data[0];
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    if (opt & 8) {
        if (len == 0)
            return 0;
        split_all((unsigned char)text[0] % (PT_WHITESPACE + 1u), text + 1, len - 1);
        return 0;
    }
    melt_tokenizer *t;
    if (opt & 4) {
        if (!bpe)
            bpe = load("tests/fixtures/vocab/ggml-vocab-llama-bpe.gguf");
        t = bpe;
    } else {
        if (!spm)
            spm = load("tests/fixtures/stories260K/stories260K.gguf");
        t = spm;
    }
    unsigned flags = ((opt & 1) ? MELT_TOKENIZE_ADD_SPECIAL : 0) |
                     ((opt & 2) ? MELT_TOKENIZE_PARSE_SPECIAL : 0);
    melt_error err = {0};
    melt_token *ids = NULL;
    size_t n = 0;
    if (melt_tokenize(t, text, len, flags, &ids, &n, &err) < 0)
        abort();
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || (size_t)ids[i] >= melt_tokenizer_n_vocab(t))
            abort();
    char *back = NULL;
    size_t blen = 0;
    if (melt_detokenize(t, ids, n, MELT_DETOKENIZE_UNPARSE_SPECIAL, &back, &blen, &err) < 0)
        abort();
    if (!(opt & 7) && !memmem(text, len, "\xE2\x96\x81", 3)) {
        size_t o = 0;
        for (size_t i = 0; i < blen;) {
            if (i + 3 <= blen && memcmp(back + i, "\xE2\x96\x81", 3) == 0) {
                back[o++] = ' ';
                i += 3;
            } else {
                back[o++] = back[i++];
            }
        }
        const char *b = back;
        if (o == len + 1 && b[0] == ' ')   /* an unstripped prefix space */
            b++, o--;
        if (o != len || memcmp(b, text, len) != 0)
            abort();
    }
    free(back);
    free(ids);
    return 0;
}

/* melt — tokenizers built from GGUF metadata (tokenizer.ggml.*).
 *
 * Two vocab kinds, chosen by `tokenizer.ggml.model`:
 *   "llama"  SentencePiece (SPM): merge by token scores, byte fallback to
 *            <0xNN> tokens, spaces as U+2581, leading-space rule;
 *   "gpt2"   byte-level BPE: merges by rank, GPT-2's byte-to-unicode map,
 *            and a pre-tokenizer chosen by `tokenizer.ggml.pre` (every value
 *            llama.cpp knows; see docs/tokenizer.md).
 * Both agree token for token with llama.cpp (llama_tokenize and
 * llama_detokenize) on the same file.
 *
 * A tokenizer is immutable after loading: one handle may be used from any
 * number of threads at once. It copies what it needs, so the melt_gguf it
 * was loaded from may be closed right after melt_tokenizer_load returns.
 */
#ifndef MELT_TOKENIZER_H
#define MELT_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "melt/error.h"
#include "melt/gguf.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef int32_t melt_token;
#define MELT_TOKEN_NULL ((melt_token)-1)

typedef struct melt_tokenizer melt_tokenizer;

enum melt_vocab_kind {
    MELT_VOCAB_SPM = 1,  /* tokenizer.ggml.model = "llama" */
    MELT_VOCAB_BPE = 2,  /* tokenizer.ggml.model = "gpt2" */
};

/* Token types, numbered as in tokenizer.ggml.token_type. */
enum melt_token_type {
    MELT_TOKEN_TYPE_UNDEFINED = 0,
    MELT_TOKEN_TYPE_NORMAL = 1,
    MELT_TOKEN_TYPE_UNKNOWN = 2,
    MELT_TOKEN_TYPE_CONTROL = 3,
    MELT_TOKEN_TYPE_USER_DEFINED = 4,
    MELT_TOKEN_TYPE_UNUSED = 5,
    MELT_TOKEN_TYPE_BYTE = 6,
};

/* Build a tokenizer from g's tokenizer.ggml.* metadata. On success *out
 * owns a new handle (free with melt_tokenizer_free). Errors:
 * MELT_ENOTFOUND when the file has no tokenizer metadata,
 * MELT_EUNSUPPORTED for an unknown tokenizer model or pre-tokenizer value,
 * MELT_EFORMAT for inconsistent metadata (e.g. scores shorter than tokens,
 * duplicate tokens), MELT_ENOMEM. On error *out is NULL. */
int melt_tokenizer_load(const melt_gguf *g, melt_tokenizer **out, melt_error *err);
void melt_tokenizer_free(melt_tokenizer *tok);

/* Flags for melt_tokenize. */
enum {
    /* Add BOS (and EOS) where the vocab asks for them
     * (tokenizer.ggml.add_bos_token / add_eos_token, else the vocab kind's
     * default: SPM and llama3-style BPE add BOS). */
    MELT_TOKENIZE_ADD_SPECIAL = 1u << 0,
    /* Recognize control tokens (e.g. "<s>", "<|eot_id|>") in the text.
     * User-defined tokens are always recognized, as in llama.cpp. */
    MELT_TOKENIZE_PARSE_SPECIAL = 1u << 1,
};

/* Tokenize text[0..len) (any bytes; NUL is ordinary). On success *ids is a
 * malloc'd array of *n_ids tokens the caller frees with free() (NULL when
 * *n_ids is 0). Returns 0 or a negative MELT_E* code (only MELT_ENOMEM in
 * practice). Linear in len apart from the merge loop of each word. */
int melt_tokenize(const melt_tokenizer *tok, const char *text, size_t len,
                  unsigned flags, melt_token **ids, size_t *n_ids,
                  melt_error *err);

/* Flags for melt_detokenize. */
enum {
    /* Drop a leading BOS and trailing EOS the vocab would have added. */
    MELT_DETOKENIZE_REMOVE_SPECIAL = 1u << 0,
    /* Render control/unknown tokens as their text (otherwise nothing). */
    MELT_DETOKENIZE_UNPARSE_SPECIAL = 1u << 1,
    /* Apply llama.cpp's clean-up (" ," -> ",", " 's" -> "'s" ...) when the
     * vocab asks for it; without it, detokenize(tokenize(s)) == s. */
    MELT_DETOKENIZE_CLEAN_SPACES = 1u << 2,
};

/* Turn ids back into text. On success *text is a malloc'd NUL-terminated
 * string of *len bytes (the caller frees it with free()). An id outside
 * the vocab is MELT_EINVAL. */
int melt_detokenize(const melt_tokenizer *tok, const melt_token *ids, size_t n_ids,
                    unsigned flags, char **text, size_t *len, melt_error *err);

/* The bytes token id stands for in decoded text (byte tokens give their
 * byte, U+2581 and GPT-2 byte chars are undone, control tokens give their
 * text). Points into the tokenizer (valid until it is freed; not
 * NUL-terminated: see *len). NULL for an id outside the vocab. */
const char *melt_token_piece(const melt_tokenizer *tok, melt_token id, size_t *len);
/* The token's text as stored in the vocab (e.g. "▁the", "Ġthe", "<0x0A>"). */
const char *melt_token_text(const melt_tokenizer *tok, melt_token id, size_t *len);
/* enum melt_token_type of id (UNDEFINED for ids outside the vocab). */
int melt_token_type_of(const melt_tokenizer *tok, melt_token id);
/* Id of a token whose text is exactly s[0..len), or MELT_TOKEN_NULL. */
melt_token melt_token_lookup(const melt_tokenizer *tok, const char *s, size_t len);

enum melt_vocab_kind melt_tokenizer_kind(const melt_tokenizer *tok);
/* tokenizer.ggml.pre as given ("" when absent). NUL-terminated, owned. */
const char *melt_tokenizer_pre(const melt_tokenizer *tok);
size_t melt_tokenizer_n_vocab(const melt_tokenizer *tok);
melt_token melt_tokenizer_bos(const melt_tokenizer *tok);   /* or MELT_TOKEN_NULL */
melt_token melt_tokenizer_eos(const melt_tokenizer *tok);
melt_token melt_tokenizer_eot(const melt_tokenizer *tok);
melt_token melt_tokenizer_unk(const melt_tokenizer *tok);
/* Whether MELT_TOKENIZE_ADD_SPECIAL adds a BOS for this vocab. */
bool melt_tokenizer_adds_bos(const melt_tokenizer *tok);
/* True for tokens that end generation (EOS, EOT, "<|im_end|>", ...). */
bool melt_token_is_eog(const melt_tokenizer *tok, melt_token id);

#ifdef __cplusplus
}
#endif
#endif

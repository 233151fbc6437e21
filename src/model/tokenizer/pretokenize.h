/* Pre-tokenizers for byte-level BPE: split text (as codepoints) into words
 * the way llama.cpp's per-`tokenizer.ggml.pre` regexes do, with
 * hand-written matchers. Internal. */
#ifndef MELT_TOKENIZER_PRETOKENIZE_H
#define MELT_TOKENIZER_PRETOKENIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum pt_kind {
    PT_DEFAULT,        /* llama.cpp's fallback regex set */
    PT_LLAMA3,         /* llama3, llama-bpe, dbrx, smaug-bpe, chatglm-bpe, ... */
    PT_GPT2,           /* gpt-2, mpt, olmo, jais, phi-2, ... */
    PT_STARCODER,      /* single digits, then gpt2: starcoder, refact, command-r, smollm, ... */
    PT_FALCON,
    PT_QWEN2,          /* llama3 with single digits: qwen2, stablelm2, hunyuan, grok-2, ... */
    PT_QWEN35,         /* qwen2 with marks joined to letters */
    PT_UFAKZEKA,       /* qwen2 without contractions */
    PT_SEED_CODER,
    PT_BAILINGMOE,
    PT_MINICPM5,
    PT_LAGUNA,
    PT_JAIS2,
    PT_DEEPSEEK_LLM,
    PT_DEEPSEEK_CODER,
    PT_DEEPSEEK3,      /* deepseek-v3, hunyuan-dense, joyai-llm, hy_v4 */
    PT_SPARK2_5,
    PT_PORO,           /* poro-chat, bloom, gpt3-finnish */
    PT_VIKING,
    PT_TEKKEN,
    PT_GPT4O,          /* gpt-4o, llama4, minimax-m2, kanana2, talkie */
    PT_GRANITE_EMB_MULTI,
    PT_TINY_AYA,
    PT_SUPERBPE,
    PT_KIMI_K2,
    PT_AFMOE,
    PT_EXAONE_MOE,
    PT_CHAMELEON,
    PT_WHITESPACE,     /* \S+ (no byte encoding) */
};

/* What a `tokenizer.ggml.pre` value means. */
typedef struct pt_info {
    enum pt_kind kind;
    bool clean_spaces;   /* detokenizer may tidy " ," etc. */
    bool ignore_merges;  /* a whole word that is a token is emitted as is */
    int add_bos;         /* -1: no opinion, else the default for add_bos */
    bool no_bos_token;   /* chatglm: the vocab has no BOS */
} pt_info;

/* Look up a pre value (NULL or "" means "default"). False if unknown. */
bool pt_lookup(const char *pre, size_t len, pt_info *out);

/* Growable list of word ends (codepoint indices, exclusive). */
typedef struct pt_vec {
    size_t *v;
    size_t n, cap;
    bool oom;
} pt_vec;

void pt_vec_free(pt_vec *v);

/* Split cp[0..n) (cls: class bytes of each cp) into words: on return
 * out->v[0..out->n) are increasing word ends, the last one n. Returns 0, or
 * -1 when memory ran out. `tmp` is scratch reused between calls. */
int pt_split(enum pt_kind kind, const uint32_t *cp, const uint8_t *cls, size_t n,
             pt_vec *out, pt_vec *tmp);

#endif

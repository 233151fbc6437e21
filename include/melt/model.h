/* melt — model files: summary (`melt model info`) and synthetic models
 * (`melt model synth`). */
#ifndef MELT_MODEL_H
#define MELT_MODEL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "melt/error.h"
#include "melt/gguf.h"
#include "melt/quant.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- info ---- */

typedef struct melt_model_info {
    char architecture[64];   /* general.architecture, "" if absent */
    char name[256];          /* general.name, "" if absent */
    uint32_t gguf_version;
    uint64_t file_size_bytes;
    uint64_t tensor_bytes;   /* sum of tensor data sizes */
    uint64_t n_params;       /* sum of tensor element counts */
    uint64_t n_tensors;
    double bits_per_weight;  /* 8 * tensor_bytes / n_params */
    /* hyper-parameters from ARCH.* keys; -1 when absent */
    int64_t n_ctx_train, n_embd, n_layer, n_head, n_head_kv, n_ff;
    double rope_freq_base;   /* 0 when absent */
    char vocab_type[32];     /* tokenizer.ggml.model ("llama", "gpt2", ...) */
    char vocab_pre[64];      /* tokenizer.ggml.pre, "" if absent */
    int64_t n_vocab;         /* tokens in tokenizer.ggml.tokens, else rows of token_embd */
    int64_t bos_id, eos_id;  /* -1 when absent */
    bool has_chat_template;
    int64_t file_type;       /* general.file_type, -1 when absent */
    uint64_t type_count[MELT_TYPE_COUNT];  /* tensors per type */
    uint64_t type_bytes[MELT_TYPE_COUNT];  /* bytes per type */
} melt_model_info;

/* Summarize an open GGUF file. */
int melt_model_info_get(const melt_gguf *g, melt_model_info *out, melt_error *err);
/* Human-readable and JSON renderings (JSON: one object, keys documented in
 * docs/model-info.md). */
void melt_model_info_print(const melt_model_info *info, FILE *out);
int melt_model_info_print_json(const melt_model_info *info, FILE *out);

/* ---- synth ---- */

typedef struct melt_synth_preset {
    const char *name;        /* "tiny", "llama2-7b", ... */
    const char *description;
    uint32_t n_embd, n_layer, n_head, n_head_kv, n_ff, n_vocab, n_ctx;
    float rope_freq_base;
    float norm_eps;
    bool tied_output;        /* no output.weight; token_embd reused */
    bool qkv_bias;           /* qwen2-style q/k/v biases */
} melt_synth_preset;

/* Presets, terminated by an entry with name == NULL. */
const melt_synth_preset *melt_synth_presets(void);
const melt_synth_preset *melt_synth_find_preset(const char *name);
/* Parameter count a preset gives (with a vocab of n_vocab tokens). */
uint64_t melt_synth_param_count(const melt_synth_preset *p, uint32_t n_vocab);

typedef struct melt_synth_params {
    const char *preset;      /* required */
    enum melt_ftype ftype;   /* weight type (same rules as quantize) */
    uint64_t seed;           /* same seed => same bytes */
    const char *vocab_path;  /* GGUF to copy tokenizer.* from, or NULL for a byte-level vocab */
    int n_threads;           /* 0 = all cores */
    bool progress;           /* progress on stderr */
} melt_synth_params;

melt_synth_params melt_synth_default_params(void);

/* Write a random-weight llama-architecture model to out_path. */
int melt_model_synth(const melt_synth_params *p, const char *out_path, melt_error *err);
/* The same for a caller-defined shape (p->preset is ignored; preset->name
 * names the model and may be NULL). MELT_EINVAL when the shape is unusable
 * (n_embd not a multiple of n_head, n_head not of n_head_kv, odd head size). */
int melt_model_synth_preset(const melt_synth_preset *preset, const melt_synth_params *p,
                            const char *out_path, melt_error *err);

#ifdef __cplusplus
}
#endif
#endif

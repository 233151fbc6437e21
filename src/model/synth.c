/* melt model synth: deterministic random-weight llama models of real shapes.
 *
 * A model is described by a preset (the table below). Metadata and tensor
 * names, shapes and order follow what llama.cpp's converter writes for the
 * llama architecture, so llama.cpp and melt's own engine load the result.
 *
 * Weights. Element e of tensor T is a pure function of (seed, name of T, e):
 * elements are paired (2k, 2k+1); each pair seeds its own splitmix64 stream
 * from a per-tensor key and the pair index, and the Marsaglia polar method
 * turns that stream into two standard normals. So a tensor's values do not
 * depend on the thread count, the generation order, the other tensors or
 * the output type. The polar method and the logarithm below use only +, -,
 * *, / and sqrt in double precision (all correctly rounded in IEEE 754), so
 * the F32 values -- and with them the file's bytes -- are the same on every
 * machine, not only on the one that made them.
 *
 * Each tensor is generated and converted in the writer's fill callback,
 * split by rows over threads: a thread generates a few rows in F32 and
 * converts them with melt_quantize_rows into the type melt_quant_pick_type
 * chose (the same rules as `melt model quantize`). Only one tensor of the
 * output is in memory at a time.
 */
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "melt/gguf.h"
#include "melt/model.h"
#include "melt/quant.h"
#include "melt/types.h"
#include "model/quant_rules.h"

/* ---- presets ---- */

/* Shapes of the real models are their published configs (config.json of the
 * Hugging Face checkpoints); llama.cpp's rms epsilon and rope base as its
 * converter writes them. */
static const melt_synth_preset presets[] = {
    {"tiny", "melt's own ~10M test model (byte vocab 8192)",
     256, 8, 4, 2, 768, 8192, 2048, 10000.0f, 1e-5f, false, false},
    {"small", "melt's own ~100M model (tied embeddings)",
     768, 12, 12, 4, 2048, 32000, 2048, 10000.0f, 1e-5f, true, false},
    {"fixture-tiny", "shape of tests/fixtures/quant/tiny-f32.gguf",
     256, 2, 4, 2, 512, 512, 256, 10000.0f, 1e-5f, false, false},
    {"tinyllama-1.1b", "TinyLlama-1.1B (GQA 32/4)",
     2048, 22, 32, 4, 5632, 32000, 2048, 10000.0f, 1e-5f, false, false},
    {"llama3.2-1b", "Llama-3.2-1B (tied; rope scaling not modelled)",
     2048, 16, 32, 8, 8192, 128256, 131072, 500000.0f, 1e-5f, true, false},
    {"qwen2-0.5b", "Qwen2-0.5B as llama (q/k/v biases, tied)",
     896, 24, 14, 2, 4864, 151936, 32768, 1000000.0f, 1e-6f, true, true},
    {"phi3-mini", "Phi-3-mini-4k as llama (split qkv / gate-up)",
     3072, 32, 32, 32, 8192, 32064, 4096, 10000.0f, 1e-5f, false, false},
    {"llama2-7b", "Llama-2-7B",
     4096, 32, 32, 32, 11008, 32000, 4096, 10000.0f, 1e-5f, false, false},
    {"mistral-7b", "Mistral-7B-v0.1 (GQA 32/8)",
     4096, 32, 32, 8, 14336, 32000, 32768, 10000.0f, 1e-5f, false, false},
    {"llama3-8b", "Meta-Llama-3-8B (GQA 32/8, vocab 128256)",
     4096, 32, 32, 8, 14336, 128256, 8192, 500000.0f, 1e-5f, false, false},
    {NULL, NULL, 0, 0, 0, 0, 0, 0, 0, 0.0f, 0.0f, false, false},
};

const melt_synth_preset *melt_synth_presets(void)
{
    return presets;
}

const melt_synth_preset *melt_synth_find_preset(const char *name)
{
    if (!name)
        return NULL;
    for (const melt_synth_preset *p = presets; p->name; p++)
        if (strcmp(p->name, name) == 0)
            return p;
    return NULL;
}

/* 0 when the shape is usable, else MELT_EINVAL with the reason in err. */
static int check_shape(const melt_synth_preset *p, melt_error *err)
{
    const char *n = p->name ? p->name : "(unnamed)";
    if (!p->n_embd || !p->n_layer || !p->n_head || !p->n_head_kv || !p->n_ff)
        return melt_errorf(err, MELT_EINVAL, "synth: preset '%s' has a zero dimension", n);
    if (p->n_embd % p->n_head)
        return melt_errorf(err, MELT_EINVAL,
                           "synth: preset '%s': n_embd %u is not a multiple of n_head %u", n,
                           p->n_embd, p->n_head);
    if (p->n_head % p->n_head_kv)
        return melt_errorf(err, MELT_EINVAL,
                           "synth: preset '%s': n_head %u is not a multiple of n_head_kv %u", n,
                           p->n_head, p->n_head_kv);
    if ((p->n_embd / p->n_head) % 2)
        return melt_errorf(err, MELT_EINVAL, "synth: preset '%s': head size %u is odd (rope)", n,
                           p->n_embd / p->n_head);
    if (p->n_layer > 10000)
        return melt_errorf(err, MELT_EINVAL, "synth: preset '%s': %u layers is too many", n,
                           p->n_layer);
    if (!(p->norm_eps > 0.0f) || !(p->rope_freq_base > 0.0f))
        return melt_errorf(err, MELT_EINVAL, "synth: preset '%s': bad norm_eps or rope base", n);
    return 0;
}

uint64_t melt_synth_param_count(const melt_synth_preset *p, uint32_t n_vocab)
{
    if (!p || check_shape(p, NULL) < 0)
        return 0;
    uint64_t d = p->n_embd, ff = p->n_ff;
    uint64_t kv = d / p->n_head * p->n_head_kv;
    uint64_t layer = 2 * d              /* attn_norm, ffn_norm */
                     + d * d + 2 * d * kv + d * d /* q, k, v, output */
                     + 3 * d * ff;      /* gate, up, down */
    if (p->qkv_bias)
        layer += d + 2 * kv;
    uint64_t embd = (uint64_t)n_vocab * d;
    return p->n_layer * layer + embd * (p->tied_output ? 1 : 2) + d /* output_norm */;
}

melt_synth_params melt_synth_default_params(void)
{
    melt_synth_params p;
    memset(&p, 0, sizeof p);
    p.preset = NULL;
    p.ftype = MELT_FTYPE_F16;
    p.seed = 1;
    p.vocab_path = NULL;
    p.n_threads = 0;
    p.progress = false;
    return p;
}

/* ---- deterministic normals ---- */

#define GOLDEN 0x9E3779B97F4A7C15ULL

static inline uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static uint64_t tensor_key(uint64_t seed, const char *name)
{
    uint64_t h = 0xCBF29CE484222325ULL; /* FNV-1a */
    for (const unsigned char *s = (const unsigned char *)name; *s; s++)
        h = (h ^ *s) * 0x100000001B3ULL;
    return mix64(mix64(seed + GOLDEN) ^ h);
}

/* Natural log of s in (0, 1), a normal (not subnormal) double: exponent
 * and mantissa taken from the bits, then the atanh series, with only basic
 * arithmetic, so it rounds the same everywhere. Relative error < 1e-13, far
 * below float resolution. */
static inline double det_log(double s)
{
    uint64_t bits;
    memcpy(&bits, &s, sizeof bits);
    int e = (int)((bits >> 52) & 0x7FF) - 1022;            /* s = m * 2^e */
    bits = (bits & 0x000FFFFFFFFFFFFFULL) | 0x3FE0000000000000ULL; /* m in [0.5, 1) */
    double m;
    memcpy(&m, &bits, sizeof m);
    if (m < 0.70710678118654752440) {
        m *= 2.0;
        e -= 1;
    }
    double t = (m - 1.0) / (m + 1.0); /* |t| <= 0.1716 */
    double t2 = t * t, t4 = t2 * t2, t8 = t4 * t4;
    /* 1 + t2/3 + t4/5 + ... + t14/15 (Estrin: shorter dependency chains);
     * the first term left out, t16/17, is below 1e-13 */
    double a = 1.0 + t2 * (1.0 / 3.0), b = 1.0 / 5.0 + t2 * (1.0 / 7.0);
    double c = 1.0 / 9.0 + t2 * (1.0 / 11.0), d = 1.0 / 13.0 + t2 * (1.0 / 15.0);
    double sum = (a + t4 * b) + t8 * (c + t4 * d);
    return (double)e * 0.69314718055994530942 + 2.0 * t * sum;
}

/* Two independent standard normals for pair index k of a tensor. */
static inline void normal_pair(uint64_t key, uint64_t k, double *z0, double *z1)
{
    uint64_t state = mix64(key ^ (k * GOLDEN + 0x632BE59BD9B4E019ULL));
    for (;;) {
        state += GOLDEN;
        uint64_t r = mix64(state);
        /* two 32-bit uniforms in [-1, 1), exact in double */
        double u = (double)(r >> 32) * (2.0 / 4294967296.0) - 1.0;
        double v = (double)(r & 0xFFFFFFFFu) * (2.0 / 4294967296.0) - 1.0;
        double s = u * u + v * v;
        if (s >= 1.0 || s == 0.0)
            continue;
        double f = sqrt(-2.0 * det_log(s) / s);
        *z0 = u * f;
        *z1 = v * f;
        return;
    }
}

/* out[i] = std * N(0,1) for elements [e0, e0 + n) of the tensor. */
static void gen_normal(uint64_t key, uint64_t e0, uint64_t n, double std, float *out)
{
    uint64_t i = 0, e = e0;
    double z0, z1;
    if (n && (e & 1)) {
        normal_pair(key, e >> 1, &z0, &z1);
        out[i++] = (float)(z1 * std);
        e++;
    }
    for (; i + 1 < n; i += 2, e += 2) {
        normal_pair(key, e >> 1, &z0, &z1);
        out[i] = (float)(z0 * std);
        out[i + 1] = (float)(z1 * std);
    }
    if (i < n) {
        normal_pair(key, e >> 1, &z0, &z1);
        out[i] = (float)(z0 * std);
    }
}

/* ---- tensor plan ---- */

enum synth_kind { KIND_NORMAL, KIND_ONES };

typedef struct synth_tensor {
    char name[64];
    uint32_t n_dims;
    uint64_t ne[2];
    uint32_t type;
    enum synth_kind kind;
    double std;
    uint64_t n_bytes;
} synth_tensor;

typedef struct synth_plan {
    synth_tensor *t;
    size_t n, cap;
} synth_plan;

static int plan_add(synth_plan *pl, const char *name, uint32_t n_dims, uint64_t ne0, uint64_t ne1,
                    enum synth_kind kind, double std, melt_error *err)
{
    if (pl->n == pl->cap) {
        size_t cap = pl->cap ? pl->cap * 2 : 64;
        synth_tensor *nt = realloc(pl->t, cap * sizeof *nt);
        if (!nt)
            return melt_errorf(err, MELT_ENOMEM, "synth: out of memory for the tensor list");
        pl->t = nt;
        pl->cap = cap;
    }
    synth_tensor *t = &pl->t[pl->n++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->n_dims = n_dims;
    t->ne[0] = ne0;
    t->ne[1] = n_dims > 1 ? ne1 : 1;
    t->kind = kind;
    t->std = std;
    return 0;
}

/* Tensors in the order llama.cpp's converter writes a llama model. */
static int plan_build(synth_plan *pl, const melt_synth_preset *p, uint32_t n_vocab, melt_error *err)
{
    uint64_t d = p->n_embd, ff = p->n_ff, kv = d / p->n_head * p->n_head_kv;
    double in_d = 1.0 / sqrt((double)d), in_ff = 1.0 / sqrt((double)ff);
    double resid = 1.0 / sqrt(2.0 * p->n_layer); /* residual-output projections */
    const double bias_std = 0.02;
    char nm[64];
    int rc;

#define ADD(n_dims, ne0, ne1, kind, std)                                          \
    do {                                                                          \
        if ((rc = plan_add(pl, nm, n_dims, ne0, ne1, kind, std, err)) < 0)        \
            return rc;                                                            \
    } while (0)
#define NAME(...) snprintf(nm, sizeof nm, __VA_ARGS__)

    NAME("token_embd.weight");
    ADD(2, d, n_vocab, KIND_NORMAL, in_d);
    for (uint32_t l = 0; l < p->n_layer; l++) {
        NAME("blk.%u.attn_norm.weight", l);
        ADD(1, d, 1, KIND_ONES, 0.0);
        NAME("blk.%u.attn_q.weight", l);
        ADD(2, d, d, KIND_NORMAL, in_d);
        if (p->qkv_bias) {
            NAME("blk.%u.attn_q.bias", l);
            ADD(1, d, 1, KIND_NORMAL, bias_std);
        }
        NAME("blk.%u.attn_k.weight", l);
        ADD(2, d, kv, KIND_NORMAL, in_d);
        if (p->qkv_bias) {
            NAME("blk.%u.attn_k.bias", l);
            ADD(1, kv, 1, KIND_NORMAL, bias_std);
        }
        NAME("blk.%u.attn_v.weight", l);
        ADD(2, d, kv, KIND_NORMAL, in_d);
        if (p->qkv_bias) {
            NAME("blk.%u.attn_v.bias", l);
            ADD(1, kv, 1, KIND_NORMAL, bias_std);
        }
        NAME("blk.%u.attn_output.weight", l);
        ADD(2, d, d, KIND_NORMAL, in_d * resid);
        NAME("blk.%u.ffn_norm.weight", l);
        ADD(1, d, 1, KIND_ONES, 0.0);
        NAME("blk.%u.ffn_gate.weight", l);
        ADD(2, d, ff, KIND_NORMAL, in_d);
        NAME("blk.%u.ffn_up.weight", l);
        ADD(2, d, ff, KIND_NORMAL, in_d);
        NAME("blk.%u.ffn_down.weight", l);
        ADD(2, ff, d, KIND_NORMAL, in_ff * resid);
    }
    NAME("output_norm.weight");
    ADD(1, d, 1, KIND_ONES, 0.0);
    if (!p->tied_output) {
        NAME("output.weight");
        ADD(2, d, n_vocab, KIND_NORMAL, in_d);
    }
#undef ADD
#undef NAME
    return 0;
}

/* ---- vocab ---- */

enum { TOK_NORMAL = 1, TOK_UNKNOWN = 2, TOK_CONTROL = 3, TOK_UNUSED = 5, TOK_BYTE = 6 };

/* <unk> <s> </s>, the 256 byte tokens, then [PAD<i>] fillers up to n_vocab:
 * a SentencePiece vocab that byte-falls-back for every input. */
static int set_byte_vocab(melt_gguf_writer *w, uint32_t n_vocab, melt_error *err)
{
    if (n_vocab < 3 + 256)
        return melt_errorf(err, MELT_EINVAL,
                           "synth: a byte-level vocab needs at least 259 tokens, preset has %u",
                           n_vocab);
    int rc = MELT_ENOMEM;
    size_t text_cap = (size_t)n_vocab * 16;
    char *text = malloc(text_cap);
    melt_str *toks = malloc((size_t)n_vocab * sizeof *toks);
    float *scores = calloc(n_vocab, sizeof *scores);
    int32_t *types = malloc((size_t)n_vocab * sizeof *types);
    if (!text || !toks || !scores || !types) {
        melt_errorf(err, MELT_ENOMEM, "synth: out of memory for a %u-token vocab", n_vocab);
        goto out;
    }
    size_t off = 0;
    for (uint32_t i = 0; i < n_vocab; i++) {
        int len;
        if (i == 0)
            len = snprintf(text + off, text_cap - off, "<unk>");
        else if (i == 1)
            len = snprintf(text + off, text_cap - off, "<s>");
        else if (i == 2)
            len = snprintf(text + off, text_cap - off, "</s>");
        else if (i < 3 + 256)
            len = snprintf(text + off, text_cap - off, "<0x%02X>", i - 3);
        else
            len = snprintf(text + off, text_cap - off, "[PAD%u]", i);
        toks[i].ptr = text + off;
        toks[i].len = (uint64_t)len;
        off += (size_t)len + 1;
        types[i] = i == 0 ? TOK_UNKNOWN : i < 3 ? TOK_CONTROL : i < 259 ? TOK_BYTE : TOK_UNUSED;
    }
    if ((rc = melt_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama", err)) < 0 ||
        (rc = melt_gguf_writer_set_str(w, "tokenizer.ggml.pre", "default", err)) < 0 ||
        (rc = melt_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", n_vocab, toks, err)) < 0 ||
        (rc = melt_gguf_writer_set_arr(w, "tokenizer.ggml.scores", MELT_GGUF_F32, n_vocab,
                                       scores, err)) < 0 ||
        (rc = melt_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", MELT_GGUF_I32, n_vocab,
                                       types, err)) < 0 ||
        (rc = melt_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1, err)) < 0 ||
        (rc = melt_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2, err)) < 0 ||
        (rc = melt_gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 0, err)) < 0 ||
        (rc = melt_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true, err)) < 0 ||
        (rc = melt_gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", false, err)) < 0)
        goto out;
    rc = 0;
out:
    free(text);
    free(toks);
    free(scores);
    free(types);
    return rc;
}

/* Copy every tokenizer.* key of the GGUF at path; *n_vocab = its token count. */
static int copy_vocab(melt_gguf_writer *w, const char *path, uint32_t *n_vocab, melt_error *err)
{
    melt_gguf *g = NULL;
    int rc = melt_gguf_open(path, &g, err);
    if (rc < 0)
        return rc;
    const melt_gguf_value *toks = melt_gguf_get_arr(g, "tokenizer.ggml.tokens");
    if (!toks || toks->v.arr.elem_type != MELT_GGUF_STRING || toks->v.arr.n == 0) {
        rc = melt_errorf(err, MELT_EFORMAT, "synth: %s has no tokenizer.ggml.tokens string array",
                         path);
        goto out;
    }
    if (toks->v.arr.n > UINT32_MAX / 2) {
        rc = melt_errorf(err, MELT_EUNSUPPORTED, "synth: %s: %" PRIu64 " tokens is too many", path,
                         toks->v.arr.n);
        goto out;
    }
    *n_vocab = (uint32_t)toks->v.arr.n;
    static const char prefix[] = "tokenizer.";
    for (uint64_t i = 0; i < melt_gguf_n_kv(g); i++) {
        const melt_gguf_kv *kv = melt_gguf_kv_at(g, i);
        if (kv->key.len < sizeof prefix - 1 || memcmp(kv->key.ptr, prefix, sizeof prefix - 1))
            continue;
        char key[512];
        if (kv->key.len >= sizeof key) {
            rc = melt_errorf(err, MELT_EFORMAT, "synth: %s: key of %" PRIu64 " bytes is too long",
                             path, kv->key.len);
            goto out;
        }
        memcpy(key, kv->key.ptr, kv->key.len);
        key[kv->key.len] = '\0';
        if ((rc = melt_gguf_writer_set(w, key, &kv->value, err)) < 0)
            goto out;
    }
    rc = 0;
out:
    melt_gguf_close(g);
    return rc;
}

/* ---- metadata ---- */

static int set_metadata(melt_gguf_writer *w, const melt_synth_preset *p,
                        const melt_synth_params *sp, uint32_t n_vocab, melt_error *err)
{
    char name[128];
    snprintf(name, sizeof name, "melt synth %s", p->name ? p->name : "custom");
    int rc;
    if ((rc = melt_gguf_writer_set_str(w, "general.architecture", "llama", err)) < 0 ||
        (rc = melt_gguf_writer_set_str(w, "general.name", name, err)) < 0 ||
        (rc = melt_gguf_writer_set_u32(w, "llama.block_count", p->n_layer, err)) < 0 ||
        (rc = melt_gguf_writer_set_u32(w, "llama.context_length", p->n_ctx, err)) < 0 ||
        (rc = melt_gguf_writer_set_u32(w, "llama.embedding_length", p->n_embd, err)) < 0 ||
        (rc = melt_gguf_writer_set_u32(w, "llama.feed_forward_length", p->n_ff, err)) < 0 ||
        (rc = melt_gguf_writer_set_u32(w, "llama.attention.head_count", p->n_head, err)) < 0 ||
        (rc = melt_gguf_writer_set_u32(w, "llama.attention.head_count_kv", p->n_head_kv, err)) < 0 ||
        (rc = melt_gguf_writer_set_f32(w, "llama.rope.freq_base", p->rope_freq_base, err)) < 0 ||
        (rc = melt_gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", p->norm_eps,
                                       err)) < 0 ||
        (rc = melt_gguf_writer_set_u32(w, "general.file_type", melt_ftype_to_llama(sp->ftype),
                                       err)) < 0 ||
        (rc = melt_gguf_writer_set_u32(w, "llama.vocab_size", n_vocab, err)) < 0 ||
        (rc = melt_gguf_writer_set_u32(w, "llama.rope.dimension_count", p->n_embd / p->n_head,
                                       err)) < 0 ||
        (rc = melt_gguf_writer_set_str(w, "melt.synth.preset", p->name ? p->name : "custom",
                                       err)) < 0 ||
        (rc = melt_gguf_writer_set_u64(w, "melt.synth.seed", sp->seed, err)) < 0)
        return rc;
    return 0;
}

/* ---- generation ---- */

typedef struct synth_ctx {
    const synth_tensor *t;
    size_t n_tensors;
    uint64_t seed;
    int n_threads;
    bool progress;
    bool tty;              /* progress: rewrite one line */
    uint64_t total_bytes, done_bytes;
    struct timespec t0;
    double last_print_s;
    int last_decile;
} synth_ctx;

typedef struct synth_job {
    const synth_tensor *t;
    uint64_t key;
    uint8_t *dst;
    uint64_t row_bytes;
    uint64_t r0, r1; /* rows [r0, r1) */
    int rc;
} synth_job;

enum { CHUNK_ELEMS = 64 * 1024 };

static void *synth_worker(void *arg)
{
    synth_job *j = arg;
    const synth_tensor *t = j->t;
    uint64_t n_per_row = t->ne[0];
    uint64_t rows_per_chunk = n_per_row >= CHUNK_ELEMS ? 1 : CHUNK_ELEMS / n_per_row;
    if (rows_per_chunk > j->r1 - j->r0)
        rows_per_chunk = j->r1 - j->r0;
    float *buf = malloc(rows_per_chunk * n_per_row * sizeof *buf);
    if (!buf) {
        j->rc = MELT_ENOMEM;
        return NULL;
    }
    for (uint64_t r = j->r0; r < j->r1; r += rows_per_chunk) {
        uint64_t nr = j->r1 - r < rows_per_chunk ? j->r1 - r : rows_per_chunk;
        uint64_t n = nr * n_per_row;
        if (t->kind == KIND_ONES) {
            for (uint64_t i = 0; i < n; i++)
                buf[i] = 1.0f;
        } else {
            gen_normal(j->key, r * n_per_row, n, t->std, buf);
        }
        uint8_t *out = j->dst + r * j->row_bytes;
        if (t->type == MELT_TYPE_F32) {
            memcpy(out, buf, n * sizeof *buf);
        } else {
            int rc = melt_quantize_rows(t->type, buf, out, (int64_t)nr, (int64_t)n_per_row, 1);
            if (rc < 0) {
                j->rc = rc;
                break;
            }
        }
    }
    free(buf);
    return NULL;
}

static double elapsed_s(const struct timespec *t0)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t0->tv_sec) + (double)(now.tv_nsec - t0->tv_nsec) * 1e-9;
}

/* On a terminal one line rewritten at most 10 times a second; elsewhere
 * (a log file) a line at every 10%. */
static void report_progress(synth_ctx *c, uint64_t index, const char *name)
{
    bool last = index + 1 == c->n_tensors;
    double now = elapsed_s(&c->t0);
    int pct = c->total_bytes ? (int)(100.0 * (double)c->done_bytes / (double)c->total_bytes) : 100;
    if (c->tty) {
        if (!last && now - c->last_print_s < 0.1)
            return;
        fprintf(stderr, "\rsynth: tensor %" PRIu64 "/%zu %3d%%  %5.1fs  %-32s", index + 1,
                c->n_tensors, pct, now, name);
        if (last)
            fputc('\n', stderr);
    } else {
        if (!last && pct / 10 == c->last_decile)
            return;
        c->last_decile = pct / 10;
        fprintf(stderr, "synth: tensor %" PRIu64 "/%zu %3d%%  %5.1fs  %s\n", index + 1,
                c->n_tensors, pct, now, name);
    }
    c->last_print_s = now;
    fflush(stderr);
}

static int synth_fill(void *vctx, uint64_t index, void *dst, uint64_t n_bytes, melt_error *err)
{
    synth_ctx *c = vctx;
    if (index >= c->n_tensors)
        return melt_errorf(err, MELT_EINVAL, "synth: writer asked for tensor %" PRIu64 " of %zu",
                           index, c->n_tensors);
    const synth_tensor *t = &c->t[index];
    if (n_bytes != t->n_bytes)
        return melt_errorf(err, MELT_EINVAL,
                           "synth: %s: writer wants %" PRIu64 " bytes, expected %" PRIu64, t->name,
                           n_bytes, t->n_bytes);
    uint64_t n_rows = t->ne[1];
    uint64_t row_bytes = t->n_bytes / n_rows;
    uint64_t key = tensor_key(c->seed, t->name);

    /* about 256K elements a thread at least: threads cost more on small tensors */
    uint64_t n_elems = n_rows * t->ne[0];
    uint64_t nth = (uint64_t)c->n_threads;
    uint64_t by_size = n_elems / (256 * 1024) + 1;
    if (nth > by_size)
        nth = by_size;
    if (nth > n_rows)
        nth = n_rows;
    if (nth < 1)
        nth = 1;

    synth_job jobs[256];
    pthread_t tids[256];
    bool started[256] = {false};
    int rc = 0;
    for (uint64_t i = 0; i < nth; i++) {
        jobs[i] = (synth_job){t, key, dst, row_bytes, n_rows * i / nth, n_rows * (i + 1) / nth, 0};
    }
    for (uint64_t i = 1; i < nth; i++) {
        if (pthread_create(&tids[i], NULL, synth_worker, &jobs[i]) == 0)
            started[i] = true;
        else
            synth_worker(&jobs[i]); /* no thread: do it here */
    }
    synth_worker(&jobs[0]);
    for (uint64_t i = 1; i < nth; i++)
        if (started[i])
            pthread_join(tids[i], NULL);
    for (uint64_t i = 0; i < nth && rc == 0; i++)
        rc = jobs[i].rc;
    if (rc < 0)
        return melt_errorf(err, rc, "synth: %s: converting to %s failed (%s)", t->name,
                           melt_type_name(t->type), melt_status_str(rc));

    c->done_bytes += t->n_bytes;
    if (c->progress)
        report_progress(c, index, t->name);
    return 0;
}

static int resolve_threads(int n)
{
    if (n <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c > 0 ? (int)c : 1;
    }
    return n > 256 ? 256 : n;
}

int melt_model_synth_preset(const melt_synth_preset *preset, const melt_synth_params *sp,
                            const char *out_path, melt_error *err)
{
    if (!preset || !sp || !out_path || !*out_path)
        return melt_errorf(err, MELT_EINVAL, "synth: preset, params and output path are required");
    if ((unsigned)sp->ftype >= MELT_FTYPE_COUNT)
        return melt_errorf(err, MELT_EINVAL, "synth: unknown weight type %d", (int)sp->ftype);
    int rc = check_shape(preset, err);
    if (rc < 0)
        return rc;

    synth_plan plan = {0};
    melt_gguf_writer *w = melt_gguf_writer_new();
    if (!w)
        return melt_errorf(err, MELT_ENOMEM, "synth: out of memory");

    uint32_t n_vocab = preset->n_vocab;
    if (sp->vocab_path) {
        /* metadata first so the tokenizer keys follow it, as the converter orders them */
        if ((rc = set_metadata(w, preset, sp, n_vocab, err)) < 0 ||
            (rc = copy_vocab(w, sp->vocab_path, &n_vocab, err)) < 0 ||
            (rc = melt_gguf_writer_set_u32(w, "llama.vocab_size", n_vocab, err)) < 0)
            goto out;
    } else {
        if ((rc = set_metadata(w, preset, sp, n_vocab, err)) < 0 ||
            (rc = set_byte_vocab(w, n_vocab, err)) < 0)
            goto out;
    }
    if ((rc = melt_gguf_writer_set_u32(w, "general.quantization_version", 2, err)) < 0)
        goto out;

    if ((rc = plan_build(&plan, preset, n_vocab, err)) < 0)
        goto out;
    melt_quant_model_shape shape = {preset->n_layer, !preset->tied_output, preset->n_head,
                                    preset->n_head_kv};
    uint64_t total = 0;
    for (size_t i = 0; i < plan.n; i++) {
        synth_tensor *t = &plan.t[i];
        t->type = melt_quant_pick_type(sp->ftype, t->name, t->n_dims, t->ne, &shape);
        uint64_t row_bytes;
        if (!melt_type_row_bytes(t->type, t->ne[0], &row_bytes) ||
            (t->type != MELT_TYPE_F32 && !melt_type_supported(t->type))) {
            rc = melt_errorf(err, MELT_EUNSUPPORTED, "synth: %s: cannot write type %s for %" PRIu64
                             " columns", t->name, melt_type_name(t->type), t->ne[0]);
            goto out;
        }
        t->n_bytes = row_bytes * t->ne[1];
        total += t->n_bytes;
        if ((rc = melt_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, NULL, err)) < 0)
            goto out;
    }

    synth_ctx ctx = {plan.t, plan.n, sp->seed, resolve_threads(sp->n_threads), sp->progress,
                     sp->progress && isatty(STDERR_FILENO), total, 0, {0, 0}, 0.0, 0};
    clock_gettime(CLOCK_MONOTONIC, &ctx.t0);
    if (sp->progress)
        fprintf(stderr, "synth: %s, %s, %zu tensors, %.2f GB, %d threads -> %s\n",
                preset->name ? preset->name : "custom", melt_ftype_name(sp->ftype), plan.n,
                (double)total / 1e9, ctx.n_threads, out_path);
    rc = melt_gguf_writer_write(w, out_path, synth_fill, &ctx, err);
    if (rc == 0 && sp->progress)
        fprintf(stderr, "synth: wrote %s in %.1fs\n", out_path, elapsed_s(&ctx.t0));
out:
    free(plan.t);
    melt_gguf_writer_free(w);
    return rc < 0 ? rc : 0;
}

int melt_model_synth(const melt_synth_params *p, const char *out_path, melt_error *err)
{
    if (!p || !p->preset)
        return melt_errorf(err, MELT_EINVAL, "synth: a preset name is required");
    const melt_synth_preset *preset = melt_synth_find_preset(p->preset);
    if (!preset)
        return melt_errorf(err, MELT_ENOTFOUND, "synth: unknown preset '%s'", p->preset);
    return melt_model_synth_preset(preset, p, out_path, err);
}

/* Model loading: hyper-parameters from ARCH.* keys and weight binding.
 * Every problem is reported once, naming the key or tensor at fault. */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine_internal.h"
#include "melt/cpu.h"
#include "melt/quant.h"
#include "melt/types.h"

/* Architectures the llama forward pass runs. */
typedef struct arch_info {
    const char *name;
    enum melt_rope_mode rope_mode;
    bool qkv_bias_required;
} arch_info;

static const arch_info archs[] = {
    {"llama", MELT_ROPE_NORM, false},  /* llama 1/2/3, mistral, TinyLlama */
    {"qwen2", MELT_ROPE_NEOX, true},
};

#define SUPPORTED_ARCHS "llama, qwen2"

typedef struct loader {
    melt_model *m;
    const melt_gguf *g;
    const char *file;    /* for messages: "path: " or "" */
    const char *sep;
    melt_error *err;
} loader;

/* MELT_KERNELS=ref|scalar|avx2|avx512|neon|neon-dotprod in the environment
 * overrides the default AUTO (for benchmarks and comparisons; any other
 * value keeps AUTO). */
melt_model_params melt_model_default_params(void)
{
    melt_model_params p = {.kernels = MELT_KERNELS_AUTO};
    const char *k = getenv("MELT_KERNELS");
    if (k && strcmp(k, "ref") == 0) p.kernels = MELT_KERNELS_REF;
    else if (k && strcmp(k, "scalar") == 0) p.kernels = MELT_KERNELS_SCALAR;
    else if (k && strcmp(k, "avx2") == 0) p.kernels = MELT_KERNELS_AVX2;
    else if (k && strcmp(k, "avx512") == 0) p.kernels = MELT_KERNELS_AVX512;
    else if (k && strcmp(k, "neon") == 0) p.kernels = MELT_KERNELS_NEON;
    else if (k && strcmp(k, "neon-dotprod") == 0) p.kernels = MELT_KERNELS_NEON_DOTPROD;
    return p;
}

/* ---- keys ---- */

static int key_name(loader *L, char *buf, size_t n, const char *suffix)
{
    snprintf(buf, n, "%s.%s", L->m->arch, suffix);
    return 0;
}

/* ARCH.suffix as an int in [min, INT_MAX]; *out = def when absent and not
 * required. */
static int get_int(loader *L, const char *suffix, bool required, int def, int min, int *out)
{
    char key[128];
    key_name(L, key, sizeof key, suffix);
    const melt_gguf_kv *kv = melt_gguf_find_kv(L->g, key);
    if (!kv) {
        if (required)
            return melt_errorf(L->err, MELT_EFORMAT, "%s%smissing key %s", L->file, L->sep, key);
        *out = def;
        return 0;
    }
    if (kv->value.type == MELT_GGUF_ARRAY)
        return melt_errorf(L->err, MELT_EUNSUPPORTED,
                           "%s%skey %s is an array (per-layer values are not supported)",
                           L->file, L->sep, key);
    int64_t v;
    if (!melt_gguf_get_i64(L->g, key, &v) || v < min || v > INT_MAX)
        return melt_errorf(L->err, MELT_EFORMAT, "%s%skey %s is not an integer >= %d",
                           L->file, L->sep, key, min);
    *out = (int)v;
    return 0;
}

static int get_float(loader *L, const char *suffix, bool required, float def, float *out)
{
    char key[128];
    key_name(L, key, sizeof key, suffix);
    if (!melt_gguf_find_kv(L->g, key)) {
        if (required)
            return melt_errorf(L->err, MELT_EFORMAT, "%s%smissing key %s", L->file, L->sep, key);
        *out = def;
        return 0;
    }
    double v;
    if (!melt_gguf_get_f64(L->g, key, &v))
        return melt_errorf(L->err, MELT_EFORMAT, "%s%skey %s is not a number", L->file, L->sep, key);
    *out = (float)v;
    return 0;
}

/* ---- tensors ---- */

static void shape_str(const melt_gguf_tensor *t, char *buf, size_t n)
{
    size_t o = 0;
    o += (size_t)snprintf(buf + o, n - o, "[");
    for (uint32_t i = 0; i < t->n_dims && o < n; i++)
        o += (size_t)snprintf(buf + o, n - o, "%s%" PRIu64, i ? ", " : "", t->ne[i]);
    if (o < n) snprintf(buf + o, n - o, "]");
}

/* "f32 f16 ..." : the types melt can dequantize. */
static void supported_types(char *buf, size_t n)
{
    size_t o = 0;
    buf[0] = '\0';
    for (uint32_t t = 0; t < MELT_TYPE_COUNT && o < n; t++)
        if (melt_type_supported(t))
            o += (size_t)snprintf(buf + o, n - o, "%s%s", o ? " " : "", melt_type_name(t));
}

/* Tensor name, shape [ne0, ne1] (ne1 = 1 for a vector); NULL when absent
 * and not required. */
static int find_tensor(loader *L, const char *name, int64_t ne0, int64_t ne1, bool vector,
                       bool required, const melt_gguf_tensor **out)
{
    *out = NULL;
    const melt_gguf_tensor *t = melt_gguf_find_tensor(L->g, name);
    if (!t) {
        if (required)
            return melt_errorf(L->err, MELT_EFORMAT, "%s%smissing tensor '%s'", L->file, L->sep, name);
        return 0;
    }
    bool ok = (int64_t)t->ne[0] == ne0 && (int64_t)t->ne[1] == ne1 && t->ne[2] == 1 && t->ne[3] == 1;
    if (!ok) {
        char got[128];
        shape_str(t, got, sizeof got);
        if (vector)
            return melt_errorf(L->err, MELT_EFORMAT, "%s%stensor '%s' has shape %s, expected [%" PRId64 "]",
                               L->file, L->sep, name, got, ne0);
        return melt_errorf(L->err, MELT_EFORMAT,
                           "%s%stensor '%s' has shape %s, expected [%" PRId64 ", %" PRId64 "]",
                           L->file, L->sep, name, got, ne0, ne1);
    }
    if (!melt_type_supported(t->type)) {
        char list[256];
        supported_types(list, sizeof list);
        return melt_errorf(L->err, MELT_EUNSUPPORTED,
                           "%s%stensor '%s' has type %s, which the engine cannot run (supported: %s)",
                           L->file, L->sep, name, melt_type_name(t->type), list);
    }
    uint64_t row_bytes;
    if (!melt_type_row_bytes(t->type, t->ne[0], &row_bytes))
        return melt_errorf(L->err, MELT_EFORMAT,
                           "%s%stensor '%s': rows of %" PRIu64 " elements are not whole %s blocks",
                           L->file, L->sep, name, t->ne[0], melt_type_name(t->type));
    if (row_bytes * t->ne[1] > t->n_bytes || !t->data)
        return melt_errorf(L->err, MELT_EFORMAT, "%s%stensor '%s' holds fewer bytes than its shape needs",
                           L->file, L->sep, name);
    *out = t;
    return 0;
}

/* Bind an n_in x n_out matrix. */
static int bind_weight(loader *L, const char *name, int64_t n_in, int64_t n_out, bool required,
                       melt_weight *w)
{
    memset(w, 0, sizeof *w);
    const melt_gguf_tensor *t;
    int rc = find_tensor(L, name, n_in, n_out, false, required, &t);
    if (rc < 0 || !t) return rc;
    snprintf(w->name, sizeof w->name, "%s", name);
    w->type = t->type;
    w->n_in = n_in;
    w->n_out = n_out;
    (void)melt_type_row_bytes(t->type, t->ne[0], &w->row_bytes);
    w->data = t->data;
    if (n_in > L->m->max_row) L->m->max_row = (int)n_in;
    return 0;
}

/* Bind a vector of n elements as an owned F32 copy (*out NULL when absent
 * and not required). */
static int bind_vector(loader *L, const char *name, int64_t n, bool required, float **out)
{
    *out = NULL;
    const melt_gguf_tensor *t;
    int rc = find_tensor(L, name, n, 1, true, required, &t);
    if (rc < 0 || !t) return rc;
    float *v = malloc((size_t)n * sizeof *v);
    if (!v) return melt_errorf(L->err, MELT_ENOMEM, "out of memory for tensor '%s'", name);
    if (t->type == MELT_TYPE_F32) {
        memcpy(v, t->data, (size_t)n * sizeof *v);
    } else if (melt_dequantize_row_ref(t->type, t->data, v, n) < 0) {
        free(v);
        return melt_errorf(L->err, MELT_EUNSUPPORTED, "%s%scannot convert tensor '%s' (%s) to f32",
                           L->file, L->sep, name, melt_type_name(t->type));
    }
    *out = v;
    return 0;
}

/* ---- hyper-parameters ---- */

static int load_hparams(loader *L, const arch_info *ai)
{
    melt_hparams *hp = &L->m->hp;
    int rc;
    if ((rc = get_int(L, "embedding_length", true, 0, 1, &hp->n_embd)) < 0) return rc;
    if ((rc = get_int(L, "block_count", true, 0, 1, &hp->n_layer)) < 0) return rc;
    if ((rc = get_int(L, "attention.head_count", true, 0, 1, &hp->n_head)) < 0) return rc;
    if ((rc = get_int(L, "attention.head_count_kv", false, hp->n_head, 1, &hp->n_head_kv)) < 0)
        return rc;
    if ((rc = get_int(L, "feed_forward_length", true, 0, 1, &hp->n_ff)) < 0) return rc;
    if ((rc = get_int(L, "context_length", true, 0, 1, &hp->n_ctx_train)) < 0) return rc;
    if ((rc = get_float(L, "attention.layer_norm_rms_epsilon", true, 0, &hp->norm_eps)) < 0)
        return rc;

    int n_expert;
    if ((rc = get_int(L, "expert_count", false, 0, 0, &n_expert)) < 0) return rc;
    if (n_expert > 0)
        return melt_errorf(L->err, MELT_EUNSUPPORTED,
                           "%s%smixture-of-experts models (%s.expert_count = %d) are not supported",
                           L->file, L->sep, L->m->arch, n_expert);

    if (hp->n_head % hp->n_head_kv != 0)
        return melt_errorf(L->err, MELT_EFORMAT,
                           "%s%s%s.attention.head_count (%d) is not a multiple of head_count_kv (%d)",
                           L->file, L->sep, L->m->arch, hp->n_head, hp->n_head_kv);
    int def_hd = hp->n_embd % hp->n_head == 0 ? hp->n_embd / hp->n_head : 0;
    int k_len, v_len;
    if ((rc = get_int(L, "attention.key_length", def_hd == 0, def_hd, 1, &k_len)) < 0) return rc;
    if ((rc = get_int(L, "attention.value_length", false, k_len, 1, &v_len)) < 0) return rc;
    if (k_len != v_len)
        return melt_errorf(L->err, MELT_EUNSUPPORTED,
                           "%s%s%s.attention.key_length (%d) differs from value_length (%d)",
                           L->file, L->sep, L->m->arch, k_len, v_len);
    hp->head_dim = k_len;

    melt_rope *r = &hp->rope;
    r->mode = ai->rope_mode;
    if ((rc = get_int(L, "rope.dimension_count", false, hp->head_dim, 2, &r->n_rot)) < 0) return rc;
    if (r->n_rot % 2 != 0 || r->n_rot > hp->head_dim)
        return melt_errorf(L->err, MELT_EFORMAT,
                           "%s%s%s.rope.dimension_count (%d) must be even and at most the head size (%d)",
                           L->file, L->sep, L->m->arch, r->n_rot, hp->head_dim);
    if ((rc = get_float(L, "rope.freq_base", false, 10000.0f, &r->freq_base)) < 0) return rc;
    if (!(r->freq_base > 0))
        return melt_errorf(L->err, MELT_EFORMAT, "%s%s%s.rope.freq_base must be positive",
                           L->file, L->sep, L->m->arch);

    /* Linear scaling divides positions by factor. Older files say
     * rope.scale_linear; newer ones rope.scaling.type + rope.scaling.factor. */
    float factor = 1.0f;
    char key[128];
    melt_str type = {0};
    key_name(L, key, sizeof key, "rope.scaling.type");
    bool has_type = melt_gguf_get_str(L->g, key, &type);
    if (has_type && !melt_str_eq(type, "none") && !melt_str_eq(type, "linear"))
        return melt_errorf(L->err, MELT_EUNSUPPORTED,
                           "%s%s%s = '%.*s' is not supported (none, linear)", L->file, L->sep, key,
                           (int)(type.len > 32 ? 32 : type.len), type.ptr);
    if (!has_type || melt_str_eq(type, "linear")) {
        if ((rc = get_float(L, "rope.scale_linear", false, 1.0f, &factor)) < 0) return rc;
        if ((rc = get_float(L, "rope.scaling.factor", false, factor, &factor)) < 0) return rc;
    }
    if (factor == 0.0f) factor = 1.0f;  /* 0 means "not set" in some converters */
    if (!(factor > 0))
        return melt_errorf(L->err, MELT_EFORMAT, "%s%s%s.rope.scaling.factor must be positive",
                           L->file, L->sep, L->m->arch);
    r->freq_scale = 1.0f / factor;
    return 0;
}

/* ---- weights ---- */

static int load_weights(loader *L, const arch_info *ai)
{
    melt_model *m = L->m;
    melt_hparams *hp = &m->hp;
    const int64_t d = hp->n_embd, q_dim = (int64_t)hp->n_head * hp->head_dim,
                  kv_dim = (int64_t)hp->n_head_kv * hp->head_dim, ff = hp->n_ff;
    int rc;

    const melt_gguf_tensor *te = melt_gguf_find_tensor(L->g, "token_embd.weight");
    if (!te)
        return melt_errorf(L->err, MELT_EFORMAT, "%s%smissing tensor 'token_embd.weight'", L->file, L->sep);
    if (te->ne[1] < 1 || te->ne[1] > INT_MAX)
        return melt_errorf(L->err, MELT_EFORMAT, "%s%stensor 'token_embd.weight' has a bad vocabulary size",
                           L->file, L->sep);
    hp->n_vocab = (int)te->ne[1];
    if ((rc = bind_weight(L, "token_embd.weight", d, hp->n_vocab, true, &m->tok_embd)) < 0) return rc;
    if ((rc = bind_vector(L, "output_norm.weight", d, true, &m->output_norm)) < 0) return rc;
    if ((rc = bind_weight(L, "output.weight", d, hp->n_vocab, false, &m->output)) < 0) return rc;
    if (!m->output.data) m->output = m->tok_embd;  /* tied embeddings */

    if ((rc = bind_vector(L, "rope_freqs.weight", hp->rope.n_rot / 2, false, &m->rope_freqs)) < 0)
        return rc;
    hp->rope.freq_factors = m->rope_freqs;

    m->layers = calloc((size_t)hp->n_layer, sizeof *m->layers);
    if (!m->layers) return melt_errorf(L->err, MELT_ENOMEM, "out of memory for %d layers", hp->n_layer);
    for (int i = 0; i < hp->n_layer; i++) {
        melt_layer *ly = &m->layers[i];
        char n[64];
#define NAME(s) (snprintf(n, sizeof n, "blk.%d.%s", i, s), n)
        if ((rc = bind_vector(L, NAME("attn_norm.weight"), d, true, &ly->attn_norm)) < 0) return rc;
        if ((rc = bind_weight(L, NAME("attn_q.weight"), d, q_dim, true, &ly->wq)) < 0) return rc;
        if ((rc = bind_weight(L, NAME("attn_k.weight"), d, kv_dim, true, &ly->wk)) < 0) return rc;
        if ((rc = bind_weight(L, NAME("attn_v.weight"), d, kv_dim, true, &ly->wv)) < 0) return rc;
        if ((rc = bind_weight(L, NAME("attn_output.weight"), q_dim, d, true, &ly->wo)) < 0) return rc;
        const bool rq = ai->qkv_bias_required;
        if ((rc = bind_vector(L, NAME("attn_q.bias"), q_dim, rq, &ly->bq)) < 0) return rc;
        if ((rc = bind_vector(L, NAME("attn_k.bias"), kv_dim, rq, &ly->bk)) < 0) return rc;
        if ((rc = bind_vector(L, NAME("attn_v.bias"), kv_dim, rq, &ly->bv)) < 0) return rc;
        if ((rc = bind_vector(L, NAME("attn_output.bias"), d, false, &ly->bo)) < 0) return rc;
        if ((rc = bind_vector(L, NAME("ffn_norm.weight"), d, true, &ly->ffn_norm)) < 0) return rc;
        if ((rc = bind_weight(L, NAME("ffn_gate.weight"), d, ff, true, &ly->w_gate)) < 0) return rc;
        if ((rc = bind_weight(L, NAME("ffn_up.weight"), d, ff, true, &ly->w_up)) < 0) return rc;
        if ((rc = bind_weight(L, NAME("ffn_down.weight"), ff, d, true, &ly->w_down)) < 0) return rc;
#undef NAME
    }
    return 0;
}

static void layers_free(melt_model *m)
{
    if (!m->layers) return;
    for (int i = 0; i < m->hp.n_layer; i++) {
        melt_layer *ly = &m->layers[i];
        free(ly->attn_norm);
        free(ly->bq);
        free(ly->bk);
        free(ly->bv);
        free(ly->bo);
        free(ly->ffn_norm);
    }
    free(m->layers);
    m->layers = NULL;
}

int melt_model_load_gguf(melt_gguf *g, const melt_model_params *params, melt_model **out,
                         melt_error *err)
{
    *out = NULL;
    melt_model_params defaults = melt_model_default_params();
    if (!params) params = &defaults;
    melt_model *m = calloc(1, sizeof *m);
    if (!m) {
        melt_gguf_close(g);
        return melt_errorf(err, MELT_ENOMEM, "out of memory for the model");
    }
    m->gguf = g;
    const char *path = melt_gguf_path(g);
    loader L = {.m = m, .g = g, .file = path ? path : "", .sep = path && *path ? ": " : "", .err = err};

    int rc = 0;
    melt_str arch;
    const arch_info *ai = NULL;
    if (!melt_gguf_get_str(g, "general.architecture", &arch)) {
        rc = melt_errorf(err, MELT_EFORMAT, "%s%smissing key general.architecture", L.file, L.sep);
        goto fail;
    }
    for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++)
        if (melt_str_eq(arch, archs[i].name)) ai = &archs[i];
    if (!ai) {
        rc = melt_errorf(err, MELT_EUNSUPPORTED,
                         "%s%sarchitecture '%.*s' is not supported (supported: " SUPPORTED_ARCHS ")",
                         L.file, L.sep, (int)(arch.len > 64 ? 64 : arch.len), arch.ptr);
        goto fail;
    }
    snprintf(m->arch, sizeof m->arch, "%s", ai->name);
    if ((rc = load_hparams(&L, ai)) < 0) goto fail;
    if ((rc = load_weights(&L, ai)) < 0) goto fail;
    for (uint64_t i = 0; i < melt_gguf_n_tensors(g); i++)
        m->n_params += melt_gguf_tensor_at(g, i)->n_elems;
    m->ops = melt_ops_select(params->kernels);
    if (!m->ops) {
        static const char *const names[] = {"auto",   "ref",  "scalar",      "avx2",
                                            "avx512", "neon", "neon-dotprod"};
        const unsigned k = (unsigned)params->kernels;
        char feat[256];
        if (k < sizeof names / sizeof names[0])
            rc = melt_errorf(err, MELT_EINVAL, "kernels '%s' are not supported by this CPU (features: %s)",
                             names[k], melt_cpu_features_str(melt_cpu_detect(), feat, sizeof feat));
        else
            rc = melt_errorf(err, MELT_EINVAL, "unknown kernel family %d", (int)params->kernels);
        goto fail;
    }
    /* every weight is read by the first decode anyway; mapping them in one
     * call costs a fraction of faulting them in (docs/bench.md, load_ms) */
    melt_gguf_prefetch(g);
    *out = m;
    return 0;
fail:
    melt_model_free(m);
    return rc;
}

int melt_model_load(const char *path, const melt_model_params *params, melt_model **out,
                    melt_error *err)
{
    *out = NULL;
    melt_gguf *g;
    int rc = melt_gguf_open(path, &g, err);
    if (rc < 0) return rc;
    return melt_model_load_gguf(g, params, out, err);
}

void melt_model_free(melt_model *m)
{
    if (!m) return;
    layers_free(m);
    free(m->output_norm);
    free(m->rope_freqs);
    melt_gguf_close(m->gguf);
    free(m);
}

const char *melt_model_arch(const melt_model *m) { return m->arch; }
int melt_model_n_vocab(const melt_model *m) { return m->hp.n_vocab; }
int melt_model_n_embd(const melt_model *m) { return m->hp.n_embd; }
int melt_model_n_layer(const melt_model *m) { return m->hp.n_layer; }
int melt_model_n_head(const melt_model *m) { return m->hp.n_head; }
int melt_model_n_head_kv(const melt_model *m) { return m->hp.n_head_kv; }
int melt_model_head_dim(const melt_model *m) { return m->hp.head_dim; }
int melt_model_n_ff(const melt_model *m) { return m->hp.n_ff; }
int melt_model_n_ctx_train(const melt_model *m) { return m->hp.n_ctx_train; }
uint64_t melt_model_n_params(const melt_model *m) { return m->n_params; }
const melt_gguf *melt_model_gguf(const melt_model *m) { return m->gguf; }

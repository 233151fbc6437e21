/* Which tensor gets which type: llama.cpp's rules (llama-quant.cpp:
 * tensor_allows_quantization, llama_tensor_get_type, tensor_type_fallback)
 * for the file types melt offers.
 *
 * llama.cpp counts attn_v and ffn_down tensors as it meets them in its
 * sorted tensor order (by layer), so the counter equals the layer number;
 * here the layer is read from the name ("blk.N."), which gives the same
 * answer without state and lets callers ask about tensors in any order.
 */
#include "model/quant_rules.h"

#include <stdio.h>
#include <string.h>

#include "melt/types.h"

enum category {
    CAT_OTHER,
    CAT_TOKEN_EMBD,
    CAT_OUTPUT,
    CAT_ATTN_QKV,
    CAT_ATTN_KV_B,
    CAT_ATTN_V,
    CAT_ATTN_K,
    CAT_ATTN_Q,
    CAT_ATTN_OUTPUT,
    CAT_FFN_UP,
    CAT_FFN_GATE,
    CAT_FFN_DOWN,
};

static bool has(const char *s, const char *sub) { return strstr(s, sub) != NULL; }

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

static enum category category_of(const char *name)
{
    if (strcmp(name, "output.weight") == 0)
        return CAT_OUTPUT;
    if (strcmp(name, "token_embd.weight") == 0 ||
        strcmp(name, "per_layer_token_embd.weight") == 0)
        return CAT_TOKEN_EMBD;
    if (has(name, "attn_qkv.weight")) return CAT_ATTN_QKV;
    if (has(name, "attn_kv_b.weight")) return CAT_ATTN_KV_B;
    if (has(name, "attn_v.weight")) return CAT_ATTN_V;
    if (has(name, "attn_k.weight")) return CAT_ATTN_K;
    if (has(name, "attn_q.weight")) return CAT_ATTN_Q;
    if (has(name, "attn_output.weight")) return CAT_ATTN_OUTPUT;
    if (has(name, "ffn_up")) return CAT_FFN_UP;
    if (has(name, "ffn_gate")) return CAT_FFN_GATE;
    if (has(name, "ffn_down")) return CAT_FFN_DOWN;
    return CAT_OTHER;
}

/* attn_v-like tensors are the most sensitive to quantization. */
static bool category_is_attn_v(enum category c)
{
    return c == CAT_ATTN_V || c == CAT_ATTN_QKV || c == CAT_ATTN_KV_B;
}

/* Name fragments llama.cpp never quantizes (small or index tensors). */
static const char *const keep_fragments[] = {
    "_norm.weight", "ffn_gate_inp.weight", "ffn_gate_tid2eid.weight",
    "altup", "laurel", "per_layer_model_proj",
    "ssm_conv1d", "shortconv.conv.weight",
    "indexer.k_proj.weight", "indexer.q_proj.weight",
    "time_mix_first.weight", "time_mix_w0.weight", "time_mix_w1.weight",
    "time_mix_w2.weight", "time_mix_v0.weight", "time_mix_v1.weight",
    "time_mix_v2.weight", "time_mix_a0.weight", "time_mix_a1.weight",
    "time_mix_a2.weight", "time_mix_g1.weight", "time_mix_g2.weight",
    "time_mix_decay_w1.weight", "time_mix_decay_w2.weight",
    "time_mix_lerp_fused.weight", "attn_rel_b.weight",
    ".position_embd", "sam.pos_embd", "sam.neck.", "sam.net_", ".rel_pos",
    ".patch_embd", ".patch_merger", "a.rvq.codebook", "mm.a.code_embd",
};

bool melt_quant_tensor_quantizable(const char *name, uint32_t n_dims)
{
    if (!name || n_dims < 2 || !ends_with(name, "weight"))
        return false;
    if (strcmp(name, "position_embd.weight") == 0 ||
        strcmp(name, "token_types.weight") == 0)
        return false;
    for (size_t i = 0; i < sizeof keep_fragments / sizeof keep_fragments[0]; i++)
        if (has(name, keep_fragments[i]))
            return false;
    return true;
}

uint32_t melt_ftype_base_type(enum melt_ftype ftype)
{
    switch (ftype) {
    case MELT_FTYPE_F32: return MELT_TYPE_F32;
    case MELT_FTYPE_F16: return MELT_TYPE_F16;
    case MELT_FTYPE_BF16: return MELT_TYPE_BF16;
    case MELT_FTYPE_Q8_0: return MELT_TYPE_Q8_0;
    case MELT_FTYPE_Q4_0: return MELT_TYPE_Q4_0;
    case MELT_FTYPE_Q4_K:
    case MELT_FTYPE_Q4_K_M: return MELT_TYPE_Q4_K;
    case MELT_FTYPE_Q5_K:
    case MELT_FTYPE_Q5_K_M: return MELT_TYPE_Q5_K;
    case MELT_FTYPE_Q6_K: return MELT_TYPE_Q6_K;
    default: return MELT_TYPE_F32;
    }
}

uint32_t melt_ftype_to_llama(enum melt_ftype ftype)
{
    switch (ftype) {
    case MELT_FTYPE_F32: return 0;    /* LLAMA_FTYPE_ALL_F32 */
    case MELT_FTYPE_F16: return 1;    /* MOSTLY_F16 */
    case MELT_FTYPE_BF16: return 32;  /* MOSTLY_BF16 */
    case MELT_FTYPE_Q8_0: return 7;   /* MOSTLY_Q8_0 */
    case MELT_FTYPE_Q4_0: return 2;   /* MOSTLY_Q4_0 */
    case MELT_FTYPE_Q4_K: return 14;  /* MOSTLY_Q4_K_S (what --pure Q4_K_S records) */
    case MELT_FTYPE_Q4_K_M: return 15;
    case MELT_FTYPE_Q5_K: return 16;  /* MOSTLY_Q5_K_S */
    case MELT_FTYPE_Q5_K_M: return 17;
    case MELT_FTYPE_Q6_K: return 18;
    default: return 0;
    }
}

static int layer_of(const char *name)
{
    int il = 0;
    if (sscanf(name, "blk.%d.", &il) != 1 || il < 0)
        il = 0;
    return il;
}

/* llama.cpp's choice of layers that get more bits: the first and last
 * eighth, and every third layer in between. */
static bool use_more_bits(int i_layer, int n_layers)
{
    return i_layer < n_layers / 8 || i_layer >= 7 * n_layers / 8 ||
           (i_layer - n_layers / 8) % 3 == 2;
}

static bool is_mix(enum melt_ftype f)
{
    return f == MELT_FTYPE_Q4_K_M || f == MELT_FTYPE_Q5_K_M;
}

/* llama_tensor_get_type_impl, restricted to Q4_K_M / Q5_K_M. Conditions
 * on n_expert == 8 and on the Falcon architecture do not apply to the
 * dense llama-family models melt writes. */
static uint32_t mix_type(enum melt_ftype ftype, uint32_t type, const char *name,
                         const uint64_t *ne, const melt_quant_model_shape *shape)
{
    enum category cat = category_of(name);
    int n_layer = shape ? (int)shape->n_layer : 0;
    bool tied = shape ? !shape->has_output : false;

    if (cat == CAT_OUTPUT || (tied && cat == CAT_TOKEN_EMBD)) {
        const melt_type_traits *t = melt_type_traits_of(type);
        if (t && ne[0] % t->block_elems != 0)
            return MELT_TYPE_Q8_0;
        return type != MELT_TYPE_Q8_0 ? MELT_TYPE_Q6_K : type;
    }
    if (category_is_attn_v(cat)) {
        if (use_more_bits(layer_of(name), n_layer))
            type = MELT_TYPE_Q6_K;
        /* llama.cpp's LLM_TYPE_70B: 80 layers with grouped-query attention,
         * where attn_v is 8x smaller than attn_q and cheap to widen. */
        if (shape && shape->n_layer == 80 && shape->n_head_kv != 0 &&
            shape->n_head != shape->n_head_kv &&
            (type == MELT_TYPE_Q3_K || type == MELT_TYPE_Q4_K))
            type = MELT_TYPE_Q5_K;
        return type;
    }
    if (cat == CAT_FFN_DOWN) {
        if (use_more_bits(layer_of(name), n_layer))
            type = MELT_TYPE_Q6_K;
        return type;
    }
    return type;
}

/* tensor_type_fallback: a type whose block does not divide the row. */
static uint32_t shape_fallback(uint32_t type, uint64_t ncols)
{
    const melt_type_traits *t = melt_type_traits_of(type);
    if (!t || ncols % t->block_elems == 0)
        return type;
    uint32_t fb;
    switch (type) {
    case MELT_TYPE_Q2_K:
    case MELT_TYPE_Q3_K: fb = MELT_TYPE_Q4_0; break;
    case MELT_TYPE_Q4_K: fb = MELT_TYPE_Q5_0; break;
    case MELT_TYPE_Q5_K: fb = MELT_TYPE_Q5_1; break;
    case MELT_TYPE_Q6_K: fb = MELT_TYPE_Q8_0; break;
    default:
        /* llama.cpp has no fallback for 32-element types and refuses the
         * file; melt keeps such a tensor in F16, llama.cpp's last resort. */
        return MELT_TYPE_F16;
    }
    const melt_type_traits *f = melt_type_traits_of(fb);
    if (!f || ncols % f->block_elems != 0)
        return MELT_TYPE_F16;
    return fb;
}

uint32_t melt_quant_pick_type(enum melt_ftype ftype, const char *name,
                              uint32_t n_dims, const uint64_t *ne,
                              const melt_quant_model_shape *shape)
{
    if (!ne || (unsigned)ftype >= MELT_FTYPE_COUNT ||
        !melt_quant_tensor_quantizable(name, n_dims))
        return MELT_TYPE_F32;
    uint32_t type = melt_ftype_base_type(ftype);
    const melt_type_traits *t = melt_type_traits_of(type);
    if (!t || !t->quantized)
        return type; /* f32 / f16 / bf16: every matrix, no mix, no fallback */
    if (is_mix(ftype))
        type = mix_type(ftype, type, name, ne, shape);
    return shape_fallback(type, ne[0]);
}

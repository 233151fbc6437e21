/* melt model synth: preset shapes, determinism, weight statistics, and the
 * layout of the file against llama.cpp-made references. */
#include "testutil.h"

#include <inttypes.h>
#include <math.h>

#include "melt/gguf.h"
#include "melt/model.h"
#include "melt/quant.h"

/* ---- helpers ---- */

/* Synthesize into a scratch file named name; returns the path (malloc'd). */
static char *synth_file(const char *preset, enum melt_ftype ftype, uint64_t seed,
                        const char *vocab, int n_threads, const char *name)
{
    melt_synth_params p = melt_synth_default_params();
    p.preset = preset;
    p.ftype = ftype;
    p.seed = seed;
    p.vocab_path = vocab;
    p.n_threads = n_threads;
    char *path = strdup(scratch_path(name));
    assert_non_null(path);
    melt_error err = {0};
    int rc = melt_model_synth(&p, path, &err);
    if (rc != 0)
        fail_msg("synth %s %s: %d %s", preset, melt_ftype_name(ftype), rc, err.msg);
    return path;
}

static melt_gguf *open_gguf(const char *path)
{
    melt_gguf *g = NULL;
    melt_error err = {0};
    if (melt_gguf_open(path, &g, &err) != 0)
        fail_msg("open %s: %s", path, err.msg);
    return g;
}

static void remove_file(char *path)
{
    unlink(path);
    free(path);
}

static bool files_equal(const char *a, const char *b)
{
    size_t na, nb;
    void *pa = slurp(a, &na), *pb = slurp(b, &nb);
    bool eq = na == nb && memcmp(pa, pb, na) == 0;
    free(pa);
    free(pb);
    return eq;
}

static uint64_t file_params(const melt_gguf *g)
{
    uint64_t n = 0;
    for (uint64_t i = 0; i < melt_gguf_n_tensors(g); i++)
        n += melt_gguf_tensor_at(g, i)->n_elems;
    return n;
}

static uint64_t get_u64(const melt_gguf *g, const char *key)
{
    uint64_t v = 0;
    if (!melt_gguf_get_u64(g, key, &v))
        fail_msg("key %s missing or not an unsigned integer", key);
    return v;
}

static const char *tname(const melt_gguf_tensor *t, char *buf, size_t n)
{
    snprintf(buf, n, "%.*s", (int)t->name.len, t->name.ptr);
    return buf;
}

/* ---- presets ---- */

static void synth_param_counts_match_real_models(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        uint64_t params;
    } want[] = {
        {"tinyllama-1.1b", 1100048384ULL}, {"llama2-7b", 6738415616ULL},
        {"llama3-8b", 8030261248ULL},      {"qwen2-0.5b", 494032768ULL},
        {"mistral-7b", 7241732096ULL},     {"phi3-mini", 3821079552ULL},
        {"llama3.2-1b", 1235814400ULL},
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const melt_synth_preset *p = melt_synth_find_preset(want[i].name);
        if (!p) {
            print_error("preset %s missing\n", want[i].name);
            bad++;
            continue;
        }
        uint64_t got = melt_synth_param_count(p, p->n_vocab);
        if (got != want[i].params) {
            print_error("%s: expected %" PRIu64 " params, got %" PRIu64 "\n", want[i].name,
                        want[i].params, got);
            bad++;
        }
    }
    assert_int_equal(bad, 0);
}

static void synth_every_preset_has_a_usable_shape(void **state)
{
    (void)state;
    int n = 0;
    for (const melt_synth_preset *p = melt_synth_presets(); p->name; p++, n++) {
        assert_ptr_equal(melt_synth_find_preset(p->name), p);
        assert_true(p->n_embd > 0 && p->n_head > 0 && p->n_head_kv > 0);
        assert_int_equal(p->n_embd % p->n_head, 0);
        assert_int_equal(p->n_head % p->n_head_kv, 0);
        assert_int_equal((p->n_embd / p->n_head) % 2, 0);
        assert_true(p->n_vocab >= 259); /* room for the byte vocab */
        assert_true(p->n_ctx > 0 && p->norm_eps > 0.0f && p->rope_freq_base > 0.0f);
        assert_true(melt_synth_param_count(p, p->n_vocab) > 0);
        assert_non_null(p->description);
    }
    assert_true(n >= 8);
    assert_null(melt_synth_find_preset("no-such-model"));
    assert_null(melt_synth_find_preset(NULL));
    /* "ours": tiny ~10M, small ~100M */
    uint64_t tiny = melt_synth_param_count(melt_synth_find_preset("tiny"), 8192);
    uint64_t small = melt_synth_param_count(melt_synth_find_preset("small"), 32000);
    assert_true(tiny > 8000000 && tiny < 12000000);
    assert_true(small > 90000000 && small < 110000000);
    /* the vocab size is a parameter: qwen2 with a 1000-token vocab */
    const melt_synth_preset *q = melt_synth_find_preset("qwen2-0.5b");
    assert_int_equal(melt_synth_param_count(q, q->n_vocab) - melt_synth_param_count(q, 1000),
                     (uint64_t)(q->n_vocab - 1000) * q->n_embd); /* tied: one matrix */
}

/* ---- determinism ---- */

static void synth_same_seed_gives_identical_bytes_for_any_thread_count(void **state)
{
    (void)state;
    char *a = synth_file("tiny", MELT_FTYPE_Q8_0, 7, NULL, 1, "det-a.gguf");
    char *b = synth_file("tiny", MELT_FTYPE_Q8_0, 7, NULL, 3, "det-b.gguf");
    assert_true(files_equal(a, b));
    remove_file(a);
    remove_file(b);
}

static void synth_different_seeds_give_different_weights(void **state)
{
    (void)state;
    char *a = synth_file("fixture-tiny", MELT_FTYPE_F16, 7, NULL, 2, "seed-a.gguf");
    char *b = synth_file("fixture-tiny", MELT_FTYPE_F16, 8, NULL, 2, "seed-b.gguf");
    melt_gguf *ga = open_gguf(a), *gb = open_gguf(b);
    assert_int_equal(melt_gguf_n_tensors(ga), melt_gguf_n_tensors(gb));
    char nm[128];
    for (uint64_t i = 0; i < melt_gguf_n_tensors(ga); i++) {
        const melt_gguf_tensor *ta = melt_gguf_tensor_at(ga, i), *tb = melt_gguf_tensor_at(gb, i);
        assert_int_equal(ta->n_bytes, tb->n_bytes);
        bool same = memcmp(ta->data, tb->data, ta->n_bytes) == 0;
        if (ta->n_dims == 2 && same)
            fail_msg("%s is the same for seeds 7 and 8", tname(ta, nm, sizeof nm));
        if (ta->n_dims == 1 && !same) /* norms are ones whatever the seed */
            fail_msg("%s differs between seeds", tname(ta, nm, sizeof nm));
    }
    uint64_t seed = 0;
    assert_true(melt_gguf_get_u64(gb, "melt.synth.seed", &seed));
    assert_int_equal(seed, 8);
    melt_gguf_close(ga);
    melt_gguf_close(gb);
    remove_file(a);
    remove_file(b);
}

/* The generator is pinned: these values must never change, or files made
 * with the same seed by different melt versions would differ. */
static void synth_weights_for_a_seed_never_change(void **state)
{
    (void)state;
    char *a = synth_file("fixture-tiny", MELT_FTYPE_F32, 1, NULL, 1, "pinned.gguf");
    melt_gguf *g = open_gguf(a);
    const melt_gguf_tensor *t = melt_gguf_find_tensor(g, "blk.0.attn_q.weight");
    assert_non_null(t);
    assert_int_equal(t->n_bytes, 256 * 256 * sizeof(float));
    float got[4];
    memcpy(got, t->data, sizeof got);
    static const float want[4] = {-0x1.c7897p-5f, -0x1.34626ap-4f, -0x1.9c977ep-4f,
                                  -0x1.bab30ap-5f};
    for (int i = 0; i < 4; i++)
        if (got[i] != want[i])
            fail_msg("element %d: expected %a, got %a", i, (double)want[i], (double)got[i]);
    uint64_t h = 0xCBF29CE484222325ULL; /* FNV-1a of the whole tensor */
    const unsigned char *b = t->data;
    for (uint64_t i = 0; i < t->n_bytes; i++)
        h = (h ^ b[i]) * 0x100000001B3ULL;
    if (h != 0x612ba5a039cd659bULL)
        fail_msg("blk.0.attn_q.weight hash: expected 0x612ba5a039cd659b, got %#" PRIx64, h);
    melt_gguf_close(g);
    remove_file(a);
}

/* ---- weights ---- */

static void check_weight_stats(const melt_gguf *g, uint32_t n_layer)
{
    char nm[128];
    for (uint64_t i = 0; i < melt_gguf_n_tensors(g); i++) {
        const melt_gguf_tensor *t = melt_gguf_tensor_at(g, i);
        tname(t, nm, sizeof nm);
        assert_int_equal(t->type, MELT_TYPE_F32);
        const float *x = t->data;
        if (strstr(nm, "_norm.")) {
            for (uint64_t k = 0; k < t->n_elems; k++)
                if (x[k] != 1.0f)
                    fail_msg("%s[%" PRIu64 "] = %g, expected 1", nm, k, (double)x[k]);
            continue;
        }
        double want = strstr(nm, ".bias") ? 0.02 : 1.0 / sqrt((double)t->ne[0]);
        if (strstr(nm, "attn_output") || strstr(nm, "ffn_down"))
            want /= sqrt(2.0 * n_layer);
        double s = 0, s2 = 0;
        uint64_t in1 = 0;
        for (uint64_t k = 0; k < t->n_elems; k++) {
            if (!isfinite(x[k]))
                fail_msg("%s[%" PRIu64 "] is not finite", nm, k);
            s += x[k];
            s2 += (double)x[k] * x[k];
            in1 += fabs(x[k]) < want;
        }
        double n = (double)t->n_elems, mean = s / n, sd = sqrt(s2 / n - mean * mean);
        double frac1 = (double)in1 / n;
        /* 3% (the biggest tensors), or 4 standard errors of a sample std */
        double tol = fmax(0.03, 4.0 / sqrt(2.0 * n));
        if (fabs(sd / want - 1.0) > tol || fabs(mean) > 5.0 * want / sqrt(n) + 1e-12 ||
            (n > 10000 && fabs(frac1 - 0.6827) > 0.01))
            fail_msg("%s: std %.5g (want %.5g), mean %.3g, within 1 std %.4f (normal: 0.6827)",
                     nm, sd, want, mean, frac1);
    }
}

static void synth_weights_are_finite_normal_with_intended_std(void **state)
{
    (void)state;
    char *a = synth_file("fixture-tiny", MELT_FTYPE_F32, 3, NULL, 2, "stats.gguf");
    melt_gguf *g = open_gguf(a);
    check_weight_stats(g, 2);
    melt_gguf_close(g);
    remove_file(a);
}

/* ---- layout against llama.cpp's files ---- */

static void synth_fixture_tiny_matches_llamacpp_layout(void **state)
{
    (void)state;
    char *a = synth_file("fixture-tiny", MELT_FTYPE_F32, 1,
                         "tests/fixtures/stories260K/stories260K.gguf", 2, "layout.gguf");
    melt_gguf *ours = open_gguf(a);
    melt_gguf *ref = open_gguf(fixture_path("quant/tiny-f32.gguf"));
    char na[128], nb[128];

    assert_int_equal(melt_gguf_n_tensors(ours), melt_gguf_n_tensors(ref));
    for (uint64_t i = 0; i < melt_gguf_n_tensors(ref); i++) {
        const melt_gguf_tensor *r = melt_gguf_tensor_at(ref, i), *o = melt_gguf_tensor_at(ours, i);
        tname(r, nb, sizeof nb);
        tname(o, na, sizeof na);
        if (strcmp(na, nb) != 0)
            fail_msg("tensor %" PRIu64 ": expected %s, got %s", i, nb, na);
        assert_int_equal(o->n_dims, r->n_dims);
        for (uint32_t d = 0; d < r->n_dims; d++)
            if (o->ne[d] != r->ne[d])
                fail_msg("%s ne[%u]: expected %" PRIu64 ", got %" PRIu64, nb, d, r->ne[d], o->ne[d]);
        if (o->type != r->type)
            fail_msg("%s: expected type %s, got %s", nb, melt_type_name(r->type),
                     melt_type_name(o->type));
        assert_int_equal(o->n_bytes, r->n_bytes);
    }

    for (uint64_t i = 0; i < melt_gguf_n_kv(ref); i++) {
        const melt_gguf_kv *kr = melt_gguf_kv_at(ref, i);
        snprintf(nb, sizeof nb, "%.*s", (int)kr->key.len, kr->key.ptr);
        if (strcmp(nb, "general.name") == 0)
            continue;
        const melt_gguf_kv *ko = melt_gguf_find_kv(ours, nb);
        if (!ko)
            fail_msg("key %s missing", nb);
        if (ko->value.type != kr->value.type)
            fail_msg("key %s: expected type %s, got %s", nb, melt_gguf_vtype_name(kr->value.type),
                     melt_gguf_vtype_name(ko->value.type));
        if (kr->value.type == MELT_GGUF_ARRAY) {
            assert_int_equal(ko->value.v.arr.elem_type, kr->value.v.arr.elem_type);
            assert_int_equal(ko->value.v.arr.n, kr->value.v.arr.n);
        } else if (strncmp(nb, "llama.", 6) == 0 || strcmp(nb, "general.architecture") == 0 ||
                   strcmp(nb, "general.file_type") == 0 || strncmp(nb, "tokenizer.", 10) == 0) {
            size_t sz = melt_gguf_vtype_size(kr->value.type);
            bool eq = kr->value.type == MELT_GGUF_STRING
                          ? ko->value.v.str.len == kr->value.v.str.len &&
                                memcmp(ko->value.v.str.ptr, kr->value.v.str.ptr,
                                       kr->value.v.str.len) == 0
                          : memcmp(&ko->value.v, &kr->value.v, sz) == 0;
            if (!eq)
                fail_msg("key %s: value differs from llama.cpp's file", nb);
        }
    }
    melt_gguf_close(ours);
    melt_gguf_close(ref);
    remove_file(a);
}

static void synth_q4_k_m_types_match_llamacpp_mix(void **state)
{
    (void)state;
    char *a = synth_file("fixture-tiny", MELT_FTYPE_Q4_K_M, 1,
                         "tests/fixtures/stories260K/stories260K.gguf", 2, "q4km.gguf");
    melt_gguf *ours = open_gguf(a);
    melt_gguf *ref = open_gguf(fixture_path("quant/tiny-q4_k_m.gguf"));
    char nm[128];
    assert_int_equal(melt_gguf_n_tensors(ours), melt_gguf_n_tensors(ref));
    for (uint64_t i = 0; i < melt_gguf_n_tensors(ref); i++) {
        const melt_gguf_tensor *r = melt_gguf_tensor_at(ref, i);
        tname(r, nm, sizeof nm);
        const melt_gguf_tensor *o = melt_gguf_find_tensor(ours, nm);
        if (!o)
            fail_msg("tensor %s missing", nm);
        if (o->type != r->type)
            fail_msg("%s: expected %s (llama-quantize Q4_K_M), got %s", nm,
                     melt_type_name(r->type), melt_type_name(o->type));
        assert_int_equal(o->n_bytes, r->n_bytes);
    }
    assert_int_equal(get_u64(ours, "general.file_type"), get_u64(ref, "general.file_type"));
    assert_int_equal(get_u64(ours, "general.quantization_version"),
                     get_u64(ref, "general.quantization_version"));
    melt_gguf_close(ours);
    melt_gguf_close(ref);
    remove_file(a);
}

static void synth_metadata_has_llama_keys_with_converter_types(void **state)
{
    (void)state;
    char *a = synth_file("tiny", MELT_FTYPE_F16, 1, NULL, 2, "meta.gguf");
    melt_gguf *g = open_gguf(a);
    const melt_synth_preset *p = melt_synth_find_preset("tiny");
    static const struct {
        const char *key;
        enum melt_gguf_vtype type;
    } keys[] = {
        {"general.architecture", MELT_GGUF_STRING},
        {"general.name", MELT_GGUF_STRING},
        {"llama.context_length", MELT_GGUF_U32},
        {"llama.embedding_length", MELT_GGUF_U32},
        {"llama.block_count", MELT_GGUF_U32},
        {"llama.feed_forward_length", MELT_GGUF_U32},
        {"llama.attention.head_count", MELT_GGUF_U32},
        {"llama.attention.head_count_kv", MELT_GGUF_U32},
        {"llama.rope.freq_base", MELT_GGUF_F32},
        {"llama.rope.dimension_count", MELT_GGUF_U32},
        {"llama.attention.layer_norm_rms_epsilon", MELT_GGUF_F32},
        {"llama.vocab_size", MELT_GGUF_U32},
        {"general.file_type", MELT_GGUF_U32},
        {"general.quantization_version", MELT_GGUF_U32},
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const melt_gguf_kv *kv = melt_gguf_find_kv(g, keys[i].key);
        if (!kv)
            fail_msg("key %s missing", keys[i].key);
        if (kv->value.type != keys[i].type)
            fail_msg("key %s: expected %s, got %s", keys[i].key,
                     melt_gguf_vtype_name(keys[i].type), melt_gguf_vtype_name(kv->value.type));
    }
    melt_str arch;
    assert_true(melt_gguf_get_str(g, "general.architecture", &arch));
    assert_true(melt_str_eq(arch, "llama"));
    assert_int_equal(get_u64(g, "llama.context_length"), p->n_ctx);
    assert_int_equal(get_u64(g, "llama.embedding_length"), p->n_embd);
    assert_int_equal(get_u64(g, "llama.block_count"), p->n_layer);
    assert_int_equal(get_u64(g, "llama.feed_forward_length"), p->n_ff);
    assert_int_equal(get_u64(g, "llama.attention.head_count"), p->n_head);
    assert_int_equal(get_u64(g, "llama.attention.head_count_kv"), p->n_head_kv);
    assert_int_equal(get_u64(g, "llama.rope.dimension_count"), p->n_embd / p->n_head);
    assert_int_equal(get_u64(g, "llama.vocab_size"), p->n_vocab);
    assert_int_equal(get_u64(g, "general.file_type"), 1); /* LLAMA_FTYPE_MOSTLY_F16 */
    assert_int_equal(get_u64(g, "general.quantization_version"), 2);
    double base = 0, eps = 0;
    assert_true(melt_gguf_get_f64(g, "llama.rope.freq_base", &base));
    assert_true(melt_gguf_get_f64(g, "llama.attention.layer_norm_rms_epsilon", &eps));
    assert_true(base == (double)p->rope_freq_base);
    assert_true(eps == (double)p->norm_eps);
    assert_int_equal(file_params(g), melt_synth_param_count(p, p->n_vocab));
    /* token_embd [n_embd, n_vocab] first, output.weight last */
    const melt_gguf_tensor *e = melt_gguf_tensor_at(g, 0);
    assert_true(melt_str_eq(e->name, "token_embd.weight"));
    assert_int_equal(e->ne[0], p->n_embd);
    assert_int_equal(e->ne[1], p->n_vocab);
    const melt_gguf_tensor *o = melt_gguf_tensor_at(g, melt_gguf_n_tensors(g) - 1);
    assert_true(melt_str_eq(o->name, "output.weight"));
    assert_int_equal(o->type, MELT_TYPE_F16);
    melt_gguf_close(g);
    remove_file(a);
}

/* ---- vocab ---- */

static void synth_byte_vocab_has_expected_tokens(void **state)
{
    (void)state;
    char *a = synth_file("fixture-tiny", MELT_FTYPE_Q8_0, 1, NULL, 2, "bytevocab.gguf");
    melt_gguf *g = open_gguf(a);
    const melt_gguf_value *toks = melt_gguf_get_arr(g, "tokenizer.ggml.tokens");
    const melt_gguf_value *types = melt_gguf_get_arr(g, "tokenizer.ggml.token_type");
    const melt_gguf_value *scores = melt_gguf_get_arr(g, "tokenizer.ggml.scores");
    assert_non_null(toks);
    assert_non_null(types);
    assert_non_null(scores);
    assert_int_equal(toks->v.arr.elem_type, MELT_GGUF_STRING);
    assert_int_equal(types->v.arr.elem_type, MELT_GGUF_I32);
    assert_int_equal(scores->v.arr.elem_type, MELT_GGUF_F32);
    uint64_t n = toks->v.arr.n;
    assert_int_equal(n, 512);
    assert_int_equal(types->v.arr.n, n);
    assert_int_equal(scores->v.arr.n, n);
    assert_int_equal(get_u64(g, "llama.vocab_size"), n);
    assert_int_equal(melt_gguf_find_tensor(g, "token_embd.weight")->ne[1], n);
    assert_int_equal(melt_gguf_find_tensor(g, "output.weight")->ne[1], n);

    const melt_str *s = toks->v.arr.data;
    const int32_t *ty = types->v.arr.data;
    assert_true(melt_str_eq(s[0], "<unk>"));
    assert_true(melt_str_eq(s[1], "<s>"));
    assert_true(melt_str_eq(s[2], "</s>"));
    assert_int_equal(ty[0], 2); /* UNKNOWN */
    assert_int_equal(ty[1], 3); /* CONTROL */
    assert_int_equal(ty[2], 3);
    for (int b = 0; b < 256; b++) {
        char want[16];
        snprintf(want, sizeof want, "<0x%02X>", b);
        if (!melt_str_eq(s[3 + b], want) || ty[3 + b] != 6)
            fail_msg("token %d: expected %s of type BYTE (6), got %.*s type %d", 3 + b, want,
                     (int)s[3 + b].len, s[3 + b].ptr, ty[3 + b]);
    }
    for (uint64_t i = 259; i < n; i++) {
        assert_int_equal(ty[i], 5); /* UNUSED */
        for (uint64_t j = 0; j < i; j++) /* every token text is unique */
            if (s[j].len == s[i].len && memcmp(s[j].ptr, s[i].ptr, s[i].len) == 0)
                fail_msg("tokens %" PRIu64 " and %" PRIu64 " are both %.*s", j, i,
                         (int)s[i].len, s[i].ptr);
    }
    melt_str model;
    assert_true(melt_gguf_get_str(g, "tokenizer.ggml.model", &model));
    assert_true(melt_str_eq(model, "llama"));
    assert_int_equal(get_u64(g, "tokenizer.ggml.bos_token_id"), 1);
    assert_int_equal(get_u64(g, "tokenizer.ggml.eos_token_id"), 2);
    assert_int_equal(get_u64(g, "tokenizer.ggml.unknown_token_id"), 0);
    assert_int_equal(melt_gguf_find_kv(g, "tokenizer.ggml.bos_token_id")->value.type,
                     MELT_GGUF_U32);
    melt_gguf_close(g);
    remove_file(a);
}

static void synth_vocab_file_copies_every_tokenizer_key(void **state)
{
    (void)state;
    const char *vpath = "tests/fixtures/vocab/ggml-vocab-llama-spm.gguf";
    char *a = synth_file("fixture-tiny", MELT_FTYPE_Q8_0, 1, vpath, 2, "spmvocab.gguf");
    melt_gguf *g = open_gguf(a), *v = open_gguf(vpath);
    char key[256];
    int n_tok_keys = 0;
    for (uint64_t i = 0; i < melt_gguf_n_kv(v); i++) {
        const melt_gguf_kv *kv = melt_gguf_kv_at(v, i);
        snprintf(key, sizeof key, "%.*s", (int)kv->key.len, kv->key.ptr);
        const melt_gguf_kv *ko = melt_gguf_find_kv(g, key);
        if (strncmp(key, "tokenizer.", 10) != 0)
            continue; /* model keys of the vocab file are not copied (checked below) */
        n_tok_keys++;
        if (!ko)
            fail_msg("tokenizer key %s not copied", key);
        assert_int_equal(ko->value.type, kv->value.type);
        if (kv->value.type == MELT_GGUF_ARRAY) {
            assert_int_equal(ko->value.v.arr.elem_type, kv->value.v.arr.elem_type);
            assert_int_equal(ko->value.v.arr.n, kv->value.v.arr.n);
            if (kv->value.v.arr.elem_type == MELT_GGUF_STRING) {
                const melt_str *x = kv->value.v.arr.data, *y = ko->value.v.arr.data;
                for (uint64_t k = 0; k < kv->value.v.arr.n; k++)
                    if (x[k].len != y[k].len || memcmp(x[k].ptr, y[k].ptr, x[k].len) != 0)
                        fail_msg("%s[%" PRIu64 "] differs", key, k);
            } else {
                size_t sz = melt_gguf_vtype_size(kv->value.v.arr.elem_type);
                assert_memory_equal(ko->value.v.arr.data, kv->value.v.arr.data,
                                    sz * kv->value.v.arr.n);
            }
        } else if (kv->value.type == MELT_GGUF_STRING) {
            assert_int_equal(ko->value.v.str.len, kv->value.v.str.len);
            assert_memory_equal(ko->value.v.str.ptr, kv->value.v.str.ptr, kv->value.v.str.len);
        } else {
            assert_memory_equal(&ko->value.v, &kv->value.v, melt_gguf_vtype_size(kv->value.type));
        }
    }
    assert_true(n_tok_keys >= 8);
    assert_int_equal(get_u64(g, "llama.vocab_size"), 32000);
    assert_int_equal(get_u64(g, "llama.embedding_length"), 256); /* ours, not the file's 4096 */
    assert_int_equal(melt_gguf_find_tensor(g, "token_embd.weight")->ne[1], 32000);
    assert_int_equal(melt_gguf_find_tensor(g, "output.weight")->ne[1], 32000);
    assert_int_equal(file_params(g),
                     melt_synth_param_count(melt_synth_find_preset("fixture-tiny"), 32000));
    melt_gguf_close(g);
    melt_gguf_close(v);
    remove_file(a);
}

/* ---- custom shapes: tied output and q/k/v biases (qwen2-style) ---- */

static void synth_tied_model_with_biases_has_qwen2_layout(void **state)
{
    (void)state;
    const melt_synth_preset shape = {
        "mini-qwen", "test", 128, 2, 4, 2, 256, 300, 512, 1e6f, 1e-6f, true, true,
    };
    melt_synth_params p = melt_synth_default_params();
    p.ftype = MELT_FTYPE_F32;
    p.seed = 5;
    p.n_threads = 2;
    char *a = strdup(scratch_path("qwen.gguf"));
    melt_error err = {0};
    int rc = melt_model_synth_preset(&shape, &p, a, &err);
    if (rc != 0)
        fail_msg("synth: %s", err.msg);
    melt_gguf *g = open_gguf(a);
    assert_null(melt_gguf_find_tensor(g, "output.weight"));
    assert_int_equal(file_params(g), melt_synth_param_count(&shape, 300));
    static const char *order[] = {"attn_norm.weight", "attn_q.weight",   "attn_q.bias",
                                  "attn_k.weight",    "attn_k.bias",     "attn_v.weight",
                                  "attn_v.bias",      "attn_output.weight", "ffn_norm.weight",
                                  "ffn_gate.weight",  "ffn_up.weight",   "ffn_down.weight"};
    const uint64_t bias_ne[] = {128, 64, 64}; /* q: n_embd; k, v: 2 kv heads x 32 */
    char want[96];
    for (uint32_t l = 0; l < 2; l++)
        for (int k = 0; k < 12; k++) {
            const melt_gguf_tensor *t = melt_gguf_tensor_at(g, 1 + l * 12 + (uint64_t)k);
            snprintf(want, sizeof want, "blk.%u.%s", l, order[k]);
            if (!melt_str_eq(t->name, want))
                fail_msg("tensor %u: expected %s, got %.*s", 1 + l * 12 + k, want,
                         (int)t->name.len, t->name.ptr);
            if (strstr(order[k], ".bias")) {
                assert_int_equal(t->n_dims, 1);
                assert_int_equal(t->ne[0], bias_ne[(k - 2) / 2]);
            }
        }
    assert_true(melt_str_eq(melt_gguf_tensor_at(g, melt_gguf_n_tensors(g) - 1)->name,
                            "output_norm.weight"));
    check_weight_stats(g, 2);
    melt_gguf_close(g);
    remove_file(a);
}

/* ---- errors ---- */

static void synth_rejects_bad_requests_without_leaving_a_file(void **state)
{
    (void)state;
    melt_synth_params p = melt_synth_default_params();
    melt_error err = {0};
    char *out = strdup(scratch_path("bad.gguf"));

    p.preset = "no-such-model";
    assert_int_equal(melt_model_synth(&p, out, &err), MELT_ENOTFOUND);
    assert_non_null(strstr(err.msg, "no-such-model"));

    p.preset = "fixture-tiny";
    p.vocab_path = "tests/fixtures/does-not-exist.gguf";
    assert_true(melt_model_synth(&p, out, &err) < 0);
    assert_int_equal(access(out, F_OK), -1);

    /* a GGUF without tokenizer.ggml.tokens is not a vocab */
    char *novocab = strdup(scratch_path("novocab.gguf"));
    melt_gguf_writer *w = melt_gguf_writer_new();
    assert_non_null(w);
    assert_int_equal(melt_gguf_writer_set_str(w, "general.architecture", "llama", &err), 0);
    assert_int_equal(melt_gguf_writer_write(w, novocab, NULL, NULL, &err), 0);
    melt_gguf_writer_free(w);
    p.vocab_path = novocab;
    assert_int_equal(melt_model_synth(&p, out, &err), MELT_EFORMAT);
    assert_non_null(strstr(err.msg, "tokenizer.ggml.tokens"));
    assert_int_equal(access(out, F_OK), -1);

    /* unusable shapes */
    p.vocab_path = NULL;
    melt_synth_preset bad = *melt_synth_find_preset("fixture-tiny");
    bad.n_head = 3; /* 256 % 3 != 0 */
    assert_int_equal(melt_model_synth_preset(&bad, &p, out, &err), MELT_EINVAL);
    assert_int_equal(melt_synth_param_count(&bad, 512), 0);
    bad = *melt_synth_find_preset("fixture-tiny");
    bad.n_vocab = 100; /* no room for the byte vocab */
    assert_int_equal(melt_model_synth_preset(&bad, &p, out, &err), MELT_EINVAL);
    assert_int_equal(access(out, F_OK), -1);

    p.ftype = (enum melt_ftype)99;
    assert_int_equal(melt_model_synth(&p, out, &err), MELT_EINVAL);
    remove_file(novocab);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(synth_param_counts_match_real_models),
        cmocka_unit_test(synth_every_preset_has_a_usable_shape),
        cmocka_unit_test(synth_same_seed_gives_identical_bytes_for_any_thread_count),
        cmocka_unit_test(synth_different_seeds_give_different_weights),
        cmocka_unit_test(synth_weights_for_a_seed_never_change),
        cmocka_unit_test(synth_weights_are_finite_normal_with_intended_std),
        cmocka_unit_test(synth_fixture_tiny_matches_llamacpp_layout),
        cmocka_unit_test(synth_q4_k_m_types_match_llamacpp_mix),
        cmocka_unit_test(synth_metadata_has_llama_keys_with_converter_types),
        cmocka_unit_test(synth_byte_vocab_has_expected_tokens),
        cmocka_unit_test(synth_vocab_file_copies_every_tokenizer_key),
        cmocka_unit_test(synth_tied_model_with_biases_has_qwen2_layout),
        cmocka_unit_test(synth_rejects_bad_requests_without_leaving_a_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

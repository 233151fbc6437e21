/* `melt model quantize` library code: file-type names, llama.cpp's
 * per-tensor type rules, and whole files compared with llama-quantize's
 * output (tests/fixtures/quant/tiny-*.gguf). */
#include <math.h>

#include "testutil.h"

#include "melt/gguf.h"
#include "melt/quant.h"
#include "melt/types.h"
#include "model/quant_rules.h"

/* ---- file types ---- */

static void ftype_names_parse_case_insensitively(void **state)
{
    (void)state;
    for (int i = 0; i < MELT_FTYPE_COUNT; i++) {
        enum melt_ftype f = MELT_FTYPE_COUNT;
        const char *name = melt_ftype_name((enum melt_ftype)i);
        assert_true(melt_ftype_parse(name, &f));
        assert_int_equal(f, i);
        if (!strstr(melt_ftype_names(), name))
            fail_msg("'%s' missing from melt_ftype_names() = '%s'", name, melt_ftype_names());
        char upper[16];
        size_t k = 0;
        for (; name[k] && k < sizeof upper - 1; k++)
            upper[k] = (char)(name[k] >= 'a' && name[k] <= 'z' ? name[k] - 32 : name[k]);
        upper[k] = '\0';
        assert_true(melt_ftype_parse(upper, &f));
        assert_int_equal(f, i);
    }
    enum melt_ftype f;
    assert_false(melt_ftype_parse("q3_k", &f));
    assert_false(melt_ftype_parse("q4_k_s", &f)); /* llama.cpp's Q4_K_S is a mix; not offered */
    assert_false(melt_ftype_parse("", &f));
    assert_false(melt_ftype_parse(NULL, &f));
    assert_string_equal(melt_ftype_name(MELT_FTYPE_COUNT), "?");
}

static void ftype_maps_to_llama_file_type(void **state)
{
    (void)state;
    static const uint32_t want[MELT_FTYPE_COUNT] = {
        [MELT_FTYPE_F32] = 0,     [MELT_FTYPE_F16] = 1,     [MELT_FTYPE_BF16] = 32,
        [MELT_FTYPE_Q8_0] = 7,    [MELT_FTYPE_Q4_0] = 2,    [MELT_FTYPE_Q4_K] = 14,
        [MELT_FTYPE_Q5_K] = 16,   [MELT_FTYPE_Q6_K] = 18,   [MELT_FTYPE_Q4_K_M] = 15,
        [MELT_FTYPE_Q5_K_M] = 17,
    };
    for (int i = 0; i < MELT_FTYPE_COUNT; i++)
        if (melt_ftype_to_llama((enum melt_ftype)i) != want[i])
            fail_msg("%s: expected llama ftype %u, got %u", melt_ftype_name((enum melt_ftype)i),
                     want[i], melt_ftype_to_llama((enum melt_ftype)i));
}

/* ---- type rules ---- */

static uint32_t pick(enum melt_ftype f, const char *name, uint32_t n_dims, uint64_t ne0,
                     uint64_t ne1, const melt_quant_model_shape *shape)
{
    uint64_t ne[4] = {ne0, ne1, 1, 1};
    return melt_quant_pick_type(f, name, n_dims, ne, shape);
}

#define expect_type(want, got, what)                                                      \
    do {                                                                                  \
        uint32_t w_ = (want), g_ = (got);                                                 \
        if (w_ != g_)                                                                     \
            fail_msg("%s: expected %s, got %s", (what), melt_type_name(w_),               \
                     melt_type_name(g_));                                                 \
    } while (0)

static void single_types_cover_every_matrix_and_keep_norms_f32(void **state)
{
    (void)state;
    const melt_quant_model_shape shape = {32, true, 32, 8};
    static const enum melt_ftype singles[] = {MELT_FTYPE_F32, MELT_FTYPE_F16, MELT_FTYPE_BF16,
                                              MELT_FTYPE_Q8_0, MELT_FTYPE_Q4_0, MELT_FTYPE_Q4_K,
                                              MELT_FTYPE_Q5_K, MELT_FTYPE_Q6_K};
    static const char *const matrices[] = {
        "token_embd.weight", "output.weight", "blk.0.attn_q.weight", "blk.0.attn_k.weight",
        "blk.0.attn_v.weight", "blk.31.attn_v.weight", "blk.0.attn_output.weight",
        "blk.0.ffn_gate.weight", "blk.0.ffn_up.weight", "blk.0.ffn_down.weight",
        "blk.31.ffn_down.weight",
    };
    static const char *const kept[] = {"blk.0.attn_norm.weight", "output_norm.weight",
                                       "blk.0.ffn_norm.weight", "blk.0.ffn_gate_inp.weight",
                                       "position_embd.weight", "blk.0.attn_q.bias"};
    for (size_t f = 0; f < sizeof singles / sizeof singles[0]; f++) {
        uint32_t base = melt_ftype_base_type(singles[f]);
        for (size_t i = 0; i < sizeof matrices / sizeof matrices[0]; i++) {
            char what[128];
            snprintf(what, sizeof what, "%s %s", melt_ftype_name(singles[f]), matrices[i]);
            expect_type(base, pick(singles[f], matrices[i], 2, 4096, 4096, &shape), what);
        }
        for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++)
            expect_type(MELT_TYPE_F32, pick(singles[f], kept[i], 2, 4096, 4096, &shape), kept[i]);
        /* 1-D tensors are never converted */
        expect_type(MELT_TYPE_F32, pick(singles[f], "blk.0.attn_q.weight", 1, 4096, 1, &shape),
                    "1-D weight");
    }
}

static void q4_k_m_gives_q6_k_to_output_and_every_third_layer(void **state)
{
    (void)state;
    /* llama.cpp's use_more_bits for 32 layers: the first and last 4, and
     * layers 6, 9, ..., 27 in between. */
    static const int more[] = {0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31};
    const melt_quant_model_shape shape = {32, true, 32, 8};
    static const enum melt_ftype mixes[] = {MELT_FTYPE_Q4_K_M, MELT_FTYPE_Q5_K_M};
    for (size_t m = 0; m < 2; m++) {
        enum melt_ftype f = mixes[m];
        uint32_t base = melt_ftype_base_type(f);
        expect_type(MELT_TYPE_Q6_K, pick(f, "output.weight", 2, 4096, 32000, &shape), "output");
        expect_type(base, pick(f, "token_embd.weight", 2, 4096, 32000, &shape),
                    "token_embd with a separate output");
        for (int il = 0; il < 32; il++) {
            bool want_more = false;
            for (size_t k = 0; k < sizeof more / sizeof more[0]; k++)
                want_more |= more[k] == il;
            uint32_t want = want_more ? MELT_TYPE_Q6_K : base;
            static const char *const sensitive[] = {"attn_v", "ffn_down"};
            for (int s = 0; s < 2; s++) {
                char name[64], what[96];
                snprintf(name, sizeof name, "blk.%d.%s.weight", il, sensitive[s]);
                snprintf(what, sizeof what, "%s %s", melt_ftype_name(f), name);
                expect_type(want, pick(f, name, 2, s ? 14336 : 4096, 4096, &shape), what);
            }
            static const char *const plain[] = {"attn_q", "attn_k", "attn_output", "ffn_gate",
                                                "ffn_up"};
            for (int s = 0; s < 5; s++) {
                char name[64];
                snprintf(name, sizeof name, "blk.%d.%s.weight", il, plain[s]);
                expect_type(base, pick(f, name, 2, 4096, 4096, &shape), name);
            }
        }
    }
}

static void mix_gives_tied_embedding_the_output_type(void **state)
{
    (void)state;
    const melt_quant_model_shape tied = {24, false, 14, 2};
    expect_type(MELT_TYPE_Q6_K, pick(MELT_FTYPE_Q4_K_M, "token_embd.weight", 2, 1024, 151936, &tied),
                "tied token_embd");
    /* pure types do not apply the mix */
    expect_type(MELT_TYPE_Q4_K, pick(MELT_FTYPE_Q4_K, "token_embd.weight", 2, 1024, 151936, &tied),
                "tied token_embd, pure q4_k");
    /* an output whose rows do not fit 256 goes to q8_0, as in llama.cpp */
    const melt_quant_model_shape qwen = {24, true, 14, 2};
    expect_type(MELT_TYPE_Q8_0, pick(MELT_FTYPE_Q4_K_M, "output.weight", 2, 896, 151936, &qwen),
                "output with 896 columns");
}

static void mix_widens_attn_v_of_70b_models(void **state)
{
    (void)state;
    const melt_quant_model_shape l70 = {80, true, 64, 8};
    /* layer 11: not a use_more_bits layer (80/8 = 10; (11-10)%3 != 2) */
    expect_type(MELT_TYPE_Q5_K, pick(MELT_FTYPE_Q4_K_M, "blk.11.attn_v.weight", 2, 8192, 1024, &l70),
                "70B attn_v");
    expect_type(MELT_TYPE_Q6_K, pick(MELT_FTYPE_Q4_K_M, "blk.12.attn_v.weight", 2, 8192, 1024, &l70),
                "70B attn_v, more bits");
    expect_type(MELT_TYPE_Q4_K, pick(MELT_FTYPE_Q4_K_M, "blk.11.attn_q.weight", 2, 8192, 8192, &l70),
                "70B attn_q");
    const melt_quant_model_shape l65 = {80, true, 64, 64}; /* no GQA: not "70B" */
    expect_type(MELT_TYPE_Q4_K, pick(MELT_FTYPE_Q4_K_M, "blk.11.attn_v.weight", 2, 8192, 8192, &l65),
                "80 layers without GQA");
}

static void rows_not_fitting_the_block_fall_back(void **state)
{
    (void)state;
    const melt_quant_model_shape shape = {24, true, 14, 2};
    expect_type(MELT_TYPE_Q5_0, pick(MELT_FTYPE_Q4_K, "blk.0.attn_q.weight", 2, 896, 896, &shape),
                "q4_k, 896 columns");
    expect_type(MELT_TYPE_Q5_1, pick(MELT_FTYPE_Q5_K, "blk.0.attn_q.weight", 2, 896, 896, &shape),
                "q5_k, 896 columns");
    expect_type(MELT_TYPE_Q8_0, pick(MELT_FTYPE_Q6_K, "blk.0.attn_q.weight", 2, 896, 896, &shape),
                "q6_k, 896 columns");
    expect_type(MELT_TYPE_Q5_0, pick(MELT_FTYPE_Q4_K_M, "blk.1.attn_q.weight", 2, 896, 896, &shape),
                "q4_k_m attn_q, 896 columns");
    /* a more-bits layer: q6_K first, then its fallback */
    expect_type(MELT_TYPE_Q8_0, pick(MELT_FTYPE_Q4_K_M, "blk.0.attn_v.weight", 2, 896, 128, &shape),
                "q4_k_m attn_v layer 0, 896 columns");
    expect_type(MELT_TYPE_Q4_K, pick(MELT_FTYPE_Q4_K, "blk.0.ffn_down.weight", 2, 4864, 896, &shape),
                "q4_k, 4864 = 19 x 256 columns");
    /* no fitting fallback: f16 */
    expect_type(MELT_TYPE_F16, pick(MELT_FTYPE_Q4_K, "blk.0.attn_q.weight", 2, 100, 64, &shape),
                "q4_k, 100 columns");
    expect_type(MELT_TYPE_F16, pick(MELT_FTYPE_Q8_0, "blk.0.attn_q.weight", 2, 100, 64, &shape),
                "q8_0, 100 columns");
    /* float targets take any row length */
    expect_type(MELT_TYPE_F16, pick(MELT_FTYPE_F16, "blk.0.attn_q.weight", 2, 100, 64, &shape),
                "f16, 100 columns");
}

/* ---- whole files ---- */

static const melt_gguf_tensor *find(const melt_gguf *g, const char *name)
{
    const melt_gguf_tensor *t = melt_gguf_find_tensor(g, name);
    if (!t)
        fail_msg("tensor '%s' missing", name);
    return t;
}

/* Every tensor of `ref` is in `got` with the same type, shape and bytes. */
static void expect_same_tensors(const char *got_path, const char *ref_path)
{
    melt_error err = {0};
    melt_gguf *got = NULL, *ref = NULL;
    if (melt_gguf_open(got_path, &got, &err) || melt_gguf_open(ref_path, &ref, &err))
        fail_msg("open: %s", err.msg);
    assert_int_equal(melt_gguf_n_tensors(got), melt_gguf_n_tensors(ref));
    for (uint64_t i = 0; i < melt_gguf_n_tensors(ref); i++) {
        const melt_gguf_tensor *r = melt_gguf_tensor_at(ref, i);
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)r->name.len, r->name.ptr);
        const melt_gguf_tensor *t = find(got, name);
        if (t->type != r->type)
            fail_msg("%s: %s is %s, llama-quantize made %s", ref_path, name,
                     melt_type_name(t->type), melt_type_name(r->type));
        assert_int_equal(t->n_dims, r->n_dims);
        assert_memory_equal(t->ne, r->ne, sizeof t->ne);
        assert_int_equal(t->n_bytes, r->n_bytes);
        if (memcmp(t->data, r->data, (size_t)r->n_bytes) != 0) {
            uint64_t k = 0;
            while (((const uint8_t *)t->data)[k] == ((const uint8_t *)r->data)[k])
                k++;
            fail_msg("%s: %s (%s) first differs at byte %llu of %llu: got 0x%02x, "
                     "llama-quantize 0x%02x", ref_path, name, melt_type_name(r->type),
                     (unsigned long long)k, (unsigned long long)r->n_bytes,
                     ((const uint8_t *)t->data)[k], ((const uint8_t *)r->data)[k]);
        }
    }
    uint64_t ft = 0, ft_ref = 1, qv = 0;
    assert_true(melt_gguf_get_u64(got, "general.file_type", &ft));
    assert_true(melt_gguf_get_u64(ref, "general.file_type", &ft_ref));
    assert_int_equal(ft, ft_ref);
    assert_true(melt_gguf_get_u64(got, "general.quantization_version", &qv));
    assert_int_equal(qv, 2);
    melt_gguf_close(got);
    melt_gguf_close(ref);
}

static void quantize_tiny_and_compare(const char *type_name)
{
    enum melt_ftype f;
    assert_true(melt_ftype_parse(type_name, &f));
    char out[4096], ref[4096], file[64];
    snprintf(file, sizeof file, "tiny-%s.gguf", type_name);
    snprintf(out, sizeof out, "%s", scratch_path(file));
    snprintf(ref, sizeof ref, "%s", fixture_path("quant/tiny-"));
    snprintf(ref + strlen(ref), sizeof ref - strlen(ref), "%s.gguf", type_name);
    melt_quantize_params p = melt_quantize_default_params();
    p.n_threads = 2;
    melt_error err = {0};
    if (melt_model_quantize(fixture_path("quant/tiny-f32.gguf"), out, f, &p, &err) != 0)
        fail_msg("quantize to %s: %s", type_name, err.msg);
    expect_same_tensors(out, ref);
    /* and the whole file: same metadata, same tensor order and layout */
    size_t n_got, n_ref;
    void *a = slurp(out, &n_got), *b = slurp(ref, &n_ref);
    if (n_got != n_ref || memcmp(a, b, n_got) != 0)
        fail_msg("%s: tensors match but the file differs from %s (%zu vs %zu bytes)", out, ref,
                 n_got, n_ref);
    free(a);
    free(b);
    unlink(out);
}

static void q8_0_matches_llama_quantize_bytes(void **s) { (void)s; quantize_tiny_and_compare("q8_0"); }
static void q4_0_matches_llama_quantize_bytes(void **s) { (void)s; quantize_tiny_and_compare("q4_0"); }
static void q4_k_matches_llama_quantize_bytes(void **s) { (void)s; quantize_tiny_and_compare("q4_k"); }
static void q5_k_matches_llama_quantize_bytes(void **s) { (void)s; quantize_tiny_and_compare("q5_k"); }
static void q6_k_matches_llama_quantize_bytes(void **s) { (void)s; quantize_tiny_and_compare("q6_k"); }
static void q4_k_m_matches_llama_quantize_bytes(void **s) { (void)s; quantize_tiny_and_compare("q4_k_m"); }
static void q5_k_m_matches_llama_quantize_bytes(void **s) { (void)s; quantize_tiny_and_compare("q5_k_m"); }

/* The fixture's blocks through the row API directly (no file code): the
 * same bytes from melt_quantize_rows for every type in the fixtures. */
static void row_quantizers_match_fixture_blocks(void **state)
{
    (void)state;
    static const char *const types[] = {"q8_0", "q4_0", "q4_k", "q5_k", "q6_k", "q4_k_m"};
    melt_error err = {0};
    melt_gguf *src = NULL;
    if (melt_gguf_open(fixture_path("quant/tiny-f32.gguf"), &src, &err))
        fail_msg("%s", err.msg);
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        char ref_path[64];
        snprintf(ref_path, sizeof ref_path, "quant/tiny-%s.gguf", types[k]);
        melt_gguf *ref = NULL;
        if (melt_gguf_open(fixture_path(ref_path), &ref, &err))
            fail_msg("%s", err.msg);
        for (uint64_t i = 0; i < melt_gguf_n_tensors(ref); i++) {
            const melt_gguf_tensor *r = melt_gguf_tensor_at(ref, i);
            if (!melt_type_traits_of(r->type)->quantized)
                continue;
            char name[256];
            snprintf(name, sizeof name, "%.*s", (int)r->name.len, r->name.ptr);
            const melt_gguf_tensor *x = find(src, name);
            assert_int_equal(x->type, MELT_TYPE_F32);
            uint8_t *y = malloc((size_t)r->n_bytes);
            assert_non_null(y);
            assert_int_equal(melt_quantize_rows(r->type, x->data, y, (int64_t)(x->n_elems / x->ne[0]),
                                                (int64_t)x->ne[0], 1), 0);
            if (memcmp(y, r->data, (size_t)r->n_bytes) != 0)
                fail_msg("%s %s (%s): row quantizer differs from llama-quantize", types[k], name,
                         melt_type_name(r->type));
            free(y);
        }
        melt_gguf_close(ref);
    }
    melt_gguf_close(src);
}

/* A small llama-like file with F16 (or BF16) weights, built with the writer. */
static void write_small_model(const char *path, uint32_t wtype, bool with_nan)
{
    melt_error err = {0};
    melt_gguf_writer *w = melt_gguf_writer_new();
    assert_non_null(w);
    assert_int_equal(melt_gguf_writer_set_str(w, "general.architecture", "llama", &err), 0);
    assert_int_equal(melt_gguf_writer_set_u32(w, "llama.block_count", 1, &err), 0);
    assert_int_equal(melt_gguf_writer_set_u32(w, "general.file_type", 1, &err), 0);
    static const char *const names[] = {"token_embd.weight", "blk.0.attn_norm.weight",
                                        "blk.0.attn_q.weight", "blk.0.ffn_down.weight"};
    static uint16_t data[4][512 * 8];
    uint64_t seed = 5;
    for (int t = 0; t < 4; t++) {
        uint64_t ne[2] = {512, t == 1 ? 1 : 8};
        for (int i = 0; i < 512 * 8; i++) {
            float v = test_rand_f32(&seed);
            data[t][i] = wtype == MELT_TYPE_BF16 ? melt_fp32_to_bf16(v) : melt_fp32_to_fp16(v);
        }
        if (with_nan && t == 2)
            data[t][1000] = 0x7e00;
        /* norms are F32 in real files; keep this one F16 to see it is left alone */
        assert_int_equal(melt_gguf_writer_add_tensor(w, names[t], wtype, t == 1 ? 1 : 2, ne,
                                                     data[t], &err), 0);
    }
    if (melt_gguf_writer_write(w, path, NULL, NULL, &err))
        fail_msg("write %s: %s", path, err.msg);
    melt_gguf_writer_free(w);
}

static void half_inputs_are_widened_then_quantized(void **state)
{
    (void)state;
    static const uint32_t in_types[] = {MELT_TYPE_F16, MELT_TYPE_BF16};
    for (int k = 0; k < 2; k++) {
        char in[4096], out[4096];
        snprintf(in, sizeof in, "%s", scratch_path("small-in.gguf"));
        snprintf(out, sizeof out, "%s", scratch_path("small-out.gguf"));
        write_small_model(in, in_types[k], false);
        melt_error err = {0};
        if (melt_model_quantize(in, out, MELT_FTYPE_Q4_K_M, NULL, &err))
            fail_msg("quantize: %s", err.msg);
        melt_gguf *gi = NULL, *go = NULL;
        assert_int_equal(melt_gguf_open(in, &gi, &err), 0);
        assert_int_equal(melt_gguf_open(out, &go, &err), 0);
        /* the 1-D tensor keeps its type and bytes */
        const melt_gguf_tensor *ni = find(gi, "blk.0.attn_norm.weight");
        const melt_gguf_tensor *no = find(go, "blk.0.attn_norm.weight");
        assert_int_equal(no->type, in_types[k]);
        assert_memory_equal(no->data, ni->data, (size_t)ni->n_bytes);
        /* no output.weight, so token_embd is the (tied) output: q6_K; one
         * layer is both first and last, so ffn_down gets q6_K too */
        static const struct { const char *name; uint32_t type; } want[] = {
            {"token_embd.weight", MELT_TYPE_Q6_K},
            {"blk.0.attn_q.weight", MELT_TYPE_Q4_K},
            {"blk.0.ffn_down.weight", MELT_TYPE_Q6_K},
        };
        for (int i = 0; i < 3; i++) {
            const melt_gguf_tensor *ti = find(gi, want[i].name), *to = find(go, want[i].name);
            expect_type(want[i].type, to->type, want[i].name);
            float f[512 * 8];
            assert_int_equal(melt_dequantize_row_ref(ti->type, ti->data, f, 512 * 8), 0);
            uint8_t q[512 * 8];
            assert_int_equal(melt_quantize_rows(to->type, f, q, 8, 512, 1), 0);
            assert_memory_equal(q, to->data, (size_t)to->n_bytes);
        }
        uint64_t ft;
        assert_true(melt_gguf_get_u64(go, "general.file_type", &ft));
        assert_int_equal(ft, 15);
        melt_gguf_close(gi);
        melt_gguf_close(go);
        unlink(in);
        unlink(out);
    }
}

static void quantized_input_is_refused_naming_the_tensor(void **state)
{
    (void)state;
    const char *out = scratch_path("requant.gguf");
    melt_error err = {0};
    int rc = melt_model_quantize(fixture_path("quant/tiny-q4_0.gguf"), out, MELT_FTYPE_Q8_0,
                                 NULL, &err);
    assert_int_equal(rc, MELT_EUNSUPPORTED);
    if (!strstr(err.msg, "tiny-q4_0.gguf") || !strstr(err.msg, ".weight") ||
        !strstr(err.msg, "q4_0") || strchr(err.msg, '\n'))
        fail_msg("expected one line naming the file, tensor and type; got '%s'", err.msg);
    assert_int_equal(access(out, F_OK), -1);
    /* the same type is a copy, which is allowed */
    assert_int_equal(melt_model_quantize(fixture_path("quant/tiny-q4_0.gguf"), out,
                                         MELT_FTYPE_Q4_0, NULL, &err), 0);
    expect_same_tensors(out, fixture_path("quant/tiny-q4_0.gguf"));
    unlink(out);
}

static void non_finite_weight_is_refused_naming_the_tensor(void **state)
{
    (void)state;
    char in[4096], out[4096];
    snprintf(in, sizeof in, "%s", scratch_path("nan-in.gguf"));
    snprintf(out, sizeof out, "%s", scratch_path("nan-out.gguf"));
    write_small_model(in, MELT_TYPE_F16, true);
    melt_error err = {0};
    int rc = melt_model_quantize(in, out, MELT_FTYPE_Q8_0, NULL, &err);
    assert_true(rc < 0);
    if (!strstr(err.msg, "blk.0.attn_q.weight") || !strstr(err.msg, "non-finite") ||
        !strstr(err.msg, "1000"))
        fail_msg("expected the tensor, 'non-finite' and element 1000 in '%s'", err.msg);
    assert_int_equal(access(out, F_OK), -1);
    unlink(in);
}

static void missing_input_is_an_error_naming_the_file(void **state)
{
    (void)state;
    melt_error err = {0};
    int rc = melt_model_quantize("no/such/model.gguf", scratch_path("x.gguf"), MELT_FTYPE_Q8_0,
                                 NULL, &err);
    assert_true(rc < 0);
    if (!strstr(err.msg, "no/such/model.gguf"))
        fail_msg("expected the path in '%s'", err.msg);
    rc = melt_model_quantize(fixture_path("quant/tiny-f32.gguf"), scratch_path("x.gguf"),
                             MELT_FTYPE_COUNT, NULL, &err);
    assert_int_equal(rc, MELT_EINVAL);
}

static void thread_count_does_not_change_the_file(void **state)
{
    (void)state;
    char a[4096], b[4096];
    snprintf(a, sizeof a, "%s", scratch_path("t1.gguf"));
    snprintf(b, sizeof b, "%s", scratch_path("t7.gguf"));
    melt_quantize_params p = melt_quantize_default_params();
    melt_error err = {0};
    p.n_threads = 1;
    assert_int_equal(melt_model_quantize(fixture_path("quant/tiny-f32.gguf"), a,
                                         MELT_FTYPE_Q5_K_M, &p, &err), 0);
    p.n_threads = 7;
    assert_int_equal(melt_model_quantize(fixture_path("quant/tiny-f32.gguf"), b,
                                         MELT_FTYPE_Q5_K_M, &p, &err), 0);
    size_t na, nb;
    void *da = slurp(a, &na), *db = slurp(b, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(da, db, na);
    free(da);
    free(db);
    unlink(a);
    unlink(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ftype_names_parse_case_insensitively),
        cmocka_unit_test(ftype_maps_to_llama_file_type),
        cmocka_unit_test(single_types_cover_every_matrix_and_keep_norms_f32),
        cmocka_unit_test(q4_k_m_gives_q6_k_to_output_and_every_third_layer),
        cmocka_unit_test(mix_gives_tied_embedding_the_output_type),
        cmocka_unit_test(mix_widens_attn_v_of_70b_models),
        cmocka_unit_test(rows_not_fitting_the_block_fall_back),
        cmocka_unit_test(q8_0_matches_llama_quantize_bytes),
        cmocka_unit_test(q4_0_matches_llama_quantize_bytes),
        cmocka_unit_test(q4_k_matches_llama_quantize_bytes),
        cmocka_unit_test(q5_k_matches_llama_quantize_bytes),
        cmocka_unit_test(q6_k_matches_llama_quantize_bytes),
        cmocka_unit_test(q4_k_m_matches_llama_quantize_bytes),
        cmocka_unit_test(q5_k_m_matches_llama_quantize_bytes),
        cmocka_unit_test(row_quantizers_match_fixture_blocks),
        cmocka_unit_test(half_inputs_are_widened_then_quantized),
        cmocka_unit_test(quantized_input_is_refused_naming_the_tensor),
        cmocka_unit_test(non_finite_weight_is_refused_naming_the_tensor),
        cmocka_unit_test(missing_input_is_an_error_naming_the_file),
        cmocka_unit_test(thread_count_does_not_change_the_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

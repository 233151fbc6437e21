/* GGUF reader and writer: fixtures, byte-exact round trips, every value
 * type, and one test per rejection of a malformed file. */
#include "testutil.h"

#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <sys/resource.h>

#include "melt/gguf.h"

#define PATH_BYTES 4096 /* as testutil.h's path buffers */

/* ---- a byte builder for hand-made files ---- */

typedef struct bb {
    uint8_t *p;
    size_t len, cap;
} bb;

static void bb_raw(bb *b, const void *src, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    if (n)
        memcpy(b->p + b->len, src, n);
    b->len += n;
}

static void bb_le(bb *b, uint64_t x, size_t n)
{
    uint8_t t[8];
    for (size_t i = 0; i < n; i++)
        t[i] = (uint8_t)(x >> (8 * i));
    bb_raw(b, t, n);
}

static void bb_u8(bb *b, uint8_t x) { bb_le(b, x, 1); }
static void bb_u32(bb *b, uint32_t x) { bb_le(b, x, 4); }
static void bb_u64(bb *b, uint64_t x) { bb_le(b, x, 8); }

static void bb_str(bb *b, const char *s)
{
    bb_u64(b, strlen(s));
    bb_raw(b, s, strlen(s));
}

static void bb_header(bb *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv)
{
    bb_raw(b, "GGUF", 4);
    bb_u32(b, version);
    bb_u64(b, n_tensors);
    bb_u64(b, n_kv);
}

static void bb_pad(bb *b, size_t alignment)
{
    while (b->len % alignment)
        bb_u8(b, 0);
}

/* One tensor info (n_dims dims). */
static void bb_tensor_info(bb *b, const char *name, uint32_t n_dims,
                           const uint64_t *ne, uint32_t type, uint64_t offset)
{
    bb_str(b, name);
    bb_u32(b, n_dims);
    for (uint32_t d = 0; d < n_dims; d++)
        bb_u64(b, ne[d]);
    bb_u32(b, type);
    bb_u64(b, offset);
}

static void bb_free(bb *b) { free(b->p); }

/* ---- assertions ---- */

static void assert_contains(const char *hay, const char *needle)
{
    if (!strstr(hay, needle))
        fail_msg("expected message to contain \"%s\", got \"%s\"", needle, hay);
}

/* Opening b must fail with MELT_EFORMAT and one line naming the problem
 * (problem) and the byte offset (at). */
static void expect_format_error(const bb *b, const char *problem, uint64_t at)
{
    melt_gguf *g = (melt_gguf *)1;
    melt_error err = {0};
    int rc = melt_gguf_open_buffer(b->p, b->len, &g, &err);
    if (rc != MELT_EFORMAT)
        fail_msg("expected MELT_EFORMAT (%d), got %d (%s)", MELT_EFORMAT, rc,
                 err.msg);
    assert_null(g);
    assert_int_equal(err.code, MELT_EFORMAT);
    assert_null(strchr(err.msg, '\n'));
    assert_true(strncmp(err.msg, "<buffer>: ", 10) == 0);
    assert_contains(err.msg, problem);
    char off[64];
    snprintf(off, sizeof off, "%" PRIu64, at);
    assert_contains(err.msg, off);
}

static melt_gguf *open_ok(const void *p, size_t n)
{
    melt_gguf *g = NULL;
    melt_error err = {0};
    int rc = melt_gguf_open_buffer(p, n, &g, &err);
    if (rc)
        fail_msg("expected success, got %d: %s", rc, err.msg);
    return g;
}

static melt_gguf *open_path_ok(const char *path)
{
    melt_gguf *g = NULL;
    melt_error err = {0};
    int rc = melt_gguf_open(path, &g, &err);
    if (rc)
        fail_msg("expected %s to open, got %d: %s", path, rc, err.msg);
    return g;
}

static bool file_exists(const char *path) { return access(path, F_OK) == 0; }

/* ---- real files ---- */

static void gguf_reads_stories260k(void **state)
{
    (void)state;
    melt_gguf *g = open_path_ok(fixture_path("stories260K/stories260K.gguf"));
    assert_int_equal(melt_gguf_version(g), 3);
    assert_int_equal(melt_gguf_alignment(g), 32);
    assert_int_equal(melt_gguf_data_offset(g) % 32, 0);
    assert_string_equal(melt_gguf_path(g),
                        fixture_path("stories260K/stories260K.gguf"));
    melt_str arch;
    assert_true(melt_gguf_get_str(g, "general.architecture", &arch));
    assert_true(melt_str_eq(arch, "llama"));

    const melt_gguf_value *tokens = melt_gguf_get_arr(g, "tokenizer.ggml.tokens");
    assert_non_null(tokens);
    assert_int_equal(tokens->v.arr.elem_type, MELT_GGUF_STRING);
    assert_int_equal(tokens->v.arr.n, 512);
    const melt_str *tok = tokens->v.arr.data;
    assert_true(melt_str_eq(tok[0], "<unk>"));
    assert_true(melt_str_eq(tok[1], "<s>"));
    assert_true(melt_str_eq(tok[2], "</s>"));
    const melt_gguf_value *scores = melt_gguf_get_arr(g, "tokenizer.ggml.scores");
    assert_non_null(scores);
    assert_int_equal(scores->v.arr.elem_type, MELT_GGUF_F32);
    assert_int_equal((uintptr_t)scores->v.arr.data % sizeof(float), 0);

    uint64_t n_embd;
    assert_true(melt_gguf_get_u64(g, "llama.embedding_length", &n_embd));
    assert_int_equal(n_embd, 64);

    assert_int_equal(melt_gguf_n_tensors(g), 48);
    const melt_gguf_tensor *emb = melt_gguf_find_tensor(g, "token_embd.weight");
    assert_non_null(emb);
    assert_int_equal(emb->n_dims, 2);
    assert_int_equal(emb->ne[0], 64);
    assert_int_equal(emb->ne[1], 512);
    assert_int_equal(emb->ne[2], 1);
    assert_int_equal(emb->type, MELT_TYPE_F32);

    uint64_t n_params = 0, n_bytes = 0;
    for (uint64_t i = 0; i < melt_gguf_n_tensors(g); i++) {
        const melt_gguf_tensor *t = melt_gguf_tensor_at(g, i);
        n_params += t->n_elems;
        n_bytes += t->n_bytes;
    }
    assert_int_equal(n_params, 292800);
    assert_int_equal(n_bytes, 1171200);
    melt_gguf_close(g);
}

static void gguf_finds_every_tensor_by_name(void **state)
{
    (void)state;
    melt_gguf *g = open_path_ok(fixture_path("stories260K/stories260K.gguf"));
    for (uint64_t i = 0; i < melt_gguf_n_tensors(g); i++) {
        const melt_gguf_tensor *t = melt_gguf_tensor_at(g, i);
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        assert_ptr_equal(melt_gguf_find_tensor(g, name), t);
    }
    for (uint64_t i = 0; i < melt_gguf_n_kv(g); i++) {
        const melt_gguf_kv *kv = melt_gguf_kv_at(g, i);
        char key[128];
        snprintf(key, sizeof key, "%.*s", (int)kv->key.len, kv->key.ptr);
        assert_ptr_equal(melt_gguf_find_kv(g, key), kv);
    }
    assert_null(melt_gguf_find_tensor(g, "token_embd.weigh"));
    assert_null(melt_gguf_find_tensor(g, "nope"));
    assert_null(melt_gguf_find_kv(g, "general.nope"));
    assert_null(melt_gguf_tensor_at(g, 48));
    assert_null(melt_gguf_kv_at(g, melt_gguf_n_kv(g)));
    melt_gguf_close(g);
}

static void copy_into_writer(melt_gguf_writer *w, const melt_gguf *g)
{
    melt_error err = {0};
    if (melt_gguf_writer_copy_kvs(w, g, &err))
        fail_msg("copy_kvs: %s", err.msg);
    for (uint64_t i = 0; i < melt_gguf_n_tensors(g); i++) {
        const melt_gguf_tensor *t = melt_gguf_tensor_at(g, i);
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        if (melt_gguf_writer_add_tensor(w, name, t->type, t->n_dims, t->ne,
                                        t->data, &err))
            fail_msg("add_tensor %s: %s", name, err.msg);
    }
}

static void assert_files_equal(const char *a, const char *b)
{
    size_t na, nb;
    uint8_t *pa = slurp(a, &na), *pb = slurp(b, &nb);
    if (na != nb)
        fail_msg("%s is %zu bytes, rewritten %zu bytes", a, na, nb);
    for (size_t i = 0; i < na; i++)
        if (pa[i] != pb[i])
            fail_msg("%s differs from its rewrite at byte %zu", a, i);
    free(pa);
    free(pb);
}

/* Files written by llama.cpp come back byte for byte: the writer's layout
 * is llama.cpp's. */
static void gguf_rewrites_llamacpp_files_byte_exact(void **state)
{
    (void)state;
    static const char *const files[] = {
        "stories260K/stories260K.gguf", "quant/tiny-f32.gguf",
        "quant/tiny-q8_0.gguf", "quant/tiny-q4_0.gguf",
        "quant/tiny-q4_k.gguf", "quant/tiny-q5_k.gguf",
        "quant/tiny-q6_k.gguf", "quant/tiny-q4_k_m.gguf",
        "quant/tiny-q5_k_m.gguf",
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char src[PATH_BYTES];
        snprintf(src, sizeof src, "%s", fixture_path(files[i]));
        melt_gguf *g = open_path_ok(src);
        melt_gguf_writer *w = melt_gguf_writer_new();
        assert_non_null(w);
        copy_into_writer(w, g);
        const char *out = scratch_path("rewrite.gguf");
        melt_error err = {0};
        if (melt_gguf_writer_write(w, out, NULL, NULL, &err))
            fail_msg("write %s: %s", out, err.msg);
        assert_files_equal(src, out);
        melt_gguf_writer_free(w);
        melt_gguf_close(g);
        unlink(out);
    }
}

/* ---- every value type through the writer and back ---- */

static void set_every_type(melt_gguf_writer *w)
{
    melt_error err = {0};
    melt_gguf_value v;
    v = (melt_gguf_value){.type = MELT_GGUF_U8, .v.u8 = 250};
    assert_int_equal(melt_gguf_writer_set(w, "t.u8", &v, &err), 0);
    v = (melt_gguf_value){.type = MELT_GGUF_I8, .v.i8 = -120};
    assert_int_equal(melt_gguf_writer_set(w, "t.i8", &v, &err), 0);
    v = (melt_gguf_value){.type = MELT_GGUF_U16, .v.u16 = 65000};
    assert_int_equal(melt_gguf_writer_set(w, "t.u16", &v, &err), 0);
    v = (melt_gguf_value){.type = MELT_GGUF_I16, .v.i16 = -32000};
    assert_int_equal(melt_gguf_writer_set(w, "t.i16", &v, &err), 0);
    assert_int_equal(melt_gguf_writer_set_u32(w, "t.u32", 4000000000u, &err), 0);
    assert_int_equal(melt_gguf_writer_set_i32(w, "t.i32", -2000000000, &err), 0);
    assert_int_equal(melt_gguf_writer_set_f32(w, "t.f32", 1.5f, &err), 0);
    assert_int_equal(melt_gguf_writer_set_bool(w, "t.bool", true, &err), 0);
    assert_int_equal(melt_gguf_writer_set_str(w, "t.str", "héllo", &err), 0);
    assert_int_equal(melt_gguf_writer_set_str(w, "t.empty_str", "", &err), 0);
    assert_int_equal(melt_gguf_writer_set_u64(w, "t.u64", UINT64_MAX - 1, &err), 0);
    v = (melt_gguf_value){.type = MELT_GGUF_I64, .v.i64 = INT64_MIN + 1};
    assert_int_equal(melt_gguf_writer_set(w, "t.i64", &v, &err), 0);
    v = (melt_gguf_value){.type = MELT_GGUF_F64, .v.f64 = -2.25e300};
    assert_int_equal(melt_gguf_writer_set(w, "t.f64", &v, &err), 0);

    static const uint8_t a_u8[] = {0, 1, 255};
    static const int8_t a_i8[] = {-128, 0, 127};
    static const uint16_t a_u16[] = {1, 65535};
    static const int16_t a_i16[] = {-32768, 32767};
    static const uint32_t a_u32[] = {7, 0xffffffffu, 3};
    static const int32_t a_i32[] = {INT32_MIN, -1, INT32_MAX};
    static const float a_f32[] = {0.5f, -1e30f, 3.25f};
    static const uint8_t a_bool[] = {1, 0, 1, 1};
    static const uint64_t a_u64[] = {UINT64_MAX, 0};
    static const int64_t a_i64[] = {INT64_MIN, INT64_MAX};
    static const double a_f64[] = {1e-300, -0.0};
    static const melt_str a_str[] = {{"a", 1}, {"", 0}, {"xyz\0w", 5}};
    assert_int_equal(melt_gguf_writer_set_arr(w, "a.u8", MELT_GGUF_U8, 3, a_u8, &err), 0);
    assert_int_equal(melt_gguf_writer_set_arr(w, "a.i8", MELT_GGUF_I8, 3, a_i8, &err), 0);
    assert_int_equal(melt_gguf_writer_set_arr(w, "a.u16", MELT_GGUF_U16, 2, a_u16, &err), 0);
    assert_int_equal(melt_gguf_writer_set_arr(w, "a.i16", MELT_GGUF_I16, 2, a_i16, &err), 0);
    assert_int_equal(melt_gguf_writer_set_arr(w, "a.u32", MELT_GGUF_U32, 3, a_u32, &err), 0);
    assert_int_equal(melt_gguf_writer_set_arr(w, "a.i32", MELT_GGUF_I32, 3, a_i32, &err), 0);
    assert_int_equal(melt_gguf_writer_set_arr(w, "a.f32", MELT_GGUF_F32, 3, a_f32, &err), 0);
    assert_int_equal(melt_gguf_writer_set_arr(w, "a.bool", MELT_GGUF_BOOL, 4, a_bool, &err), 0);
    assert_int_equal(melt_gguf_writer_set_arr(w, "a.u64", MELT_GGUF_U64, 2, a_u64, &err), 0);
    assert_int_equal(melt_gguf_writer_set_arr(w, "a.i64", MELT_GGUF_I64, 2, a_i64, &err), 0);
    assert_int_equal(melt_gguf_writer_set_arr(w, "a.f64", MELT_GGUF_F64, 2, a_f64, &err), 0);
    assert_int_equal(melt_gguf_writer_set_arr_str(w, "a.str", 3, a_str, &err), 0);
    assert_int_equal(melt_gguf_writer_set_arr(w, "a.empty_u32", MELT_GGUF_U32, 0, NULL, &err), 0);
    assert_int_equal(melt_gguf_writer_set_arr_str(w, "a.empty_str", 0, NULL, &err), 0);
}

static const melt_gguf_value *arr_of(const melt_gguf *g, const char *key,
                                     enum melt_gguf_vtype et, uint64_t n)
{
    const melt_gguf_value *v = melt_gguf_get_arr(g, key);
    if (!v)
        fail_msg("array %s missing", key);
    assert_int_equal(v->v.arr.elem_type, et);
    assert_int_equal(v->v.arr.n, n);
    return v;
}

static void check_every_type(const melt_gguf *g)
{
    const melt_gguf_kv *kv = melt_gguf_find_kv(g, "t.u8");
    assert_int_equal(kv->value.type, MELT_GGUF_U8);
    assert_int_equal(kv->value.v.u8, 250);
    assert_int_equal(melt_gguf_find_kv(g, "t.i8")->value.v.i8, -120);
    assert_int_equal(melt_gguf_find_kv(g, "t.u16")->value.v.u16, 65000);
    assert_int_equal(melt_gguf_find_kv(g, "t.i16")->value.v.i16, -32000);
    assert_int_equal(melt_gguf_find_kv(g, "t.u32")->value.v.u32, 4000000000u);
    assert_int_equal(melt_gguf_find_kv(g, "t.i32")->value.v.i32, -2000000000);
    assert_true(melt_gguf_find_kv(g, "t.f32")->value.v.f32 == 1.5f);
    assert_int_equal(melt_gguf_find_kv(g, "t.u64")->value.v.u64, UINT64_MAX - 1);
    assert_true(melt_gguf_find_kv(g, "t.i64")->value.v.i64 == INT64_MIN + 1);
    assert_true(melt_gguf_find_kv(g, "t.f64")->value.v.f64 == -2.25e300);
    bool b = false;
    assert_true(melt_gguf_get_bool(g, "t.bool", &b));
    assert_true(b);
    melt_str s;
    assert_true(melt_gguf_get_str(g, "t.str", &s));
    assert_true(melt_str_eq(s, "héllo"));
    assert_true(melt_gguf_get_str(g, "t.empty_str", &s));
    assert_int_equal(s.len, 0);

    const uint8_t *u8 = arr_of(g, "a.u8", MELT_GGUF_U8, 3)->v.arr.data;
    assert_int_equal(u8[2], 255);
    const int8_t *i8 = arr_of(g, "a.i8", MELT_GGUF_I8, 3)->v.arr.data;
    assert_int_equal(i8[0], -128);
    const uint16_t *u16 = arr_of(g, "a.u16", MELT_GGUF_U16, 2)->v.arr.data;
    assert_int_equal(u16[1], 65535);
    const int16_t *i16 = arr_of(g, "a.i16", MELT_GGUF_I16, 2)->v.arr.data;
    assert_int_equal(i16[0], -32768);
    const uint32_t *u32 = arr_of(g, "a.u32", MELT_GGUF_U32, 3)->v.arr.data;
    assert_int_equal(u32[1], 0xffffffffu);
    const int32_t *i32 = arr_of(g, "a.i32", MELT_GGUF_I32, 3)->v.arr.data;
    assert_int_equal(i32[0], INT32_MIN);
    const float *f32 = arr_of(g, "a.f32", MELT_GGUF_F32, 3)->v.arr.data;
    assert_true(f32[1] == -1e30f && f32[2] == 3.25f);
    const uint8_t *bl = arr_of(g, "a.bool", MELT_GGUF_BOOL, 4)->v.arr.data;
    assert_memory_equal(bl, ((uint8_t[]){1, 0, 1, 1}), 4);
    const uint64_t *u64 = arr_of(g, "a.u64", MELT_GGUF_U64, 2)->v.arr.data;
    assert_true(u64[0] == UINT64_MAX);
    const int64_t *i64 = arr_of(g, "a.i64", MELT_GGUF_I64, 2)->v.arr.data;
    assert_true(i64[0] == INT64_MIN && i64[1] == INT64_MAX);
    const double *f64 = arr_of(g, "a.f64", MELT_GGUF_F64, 2)->v.arr.data;
    assert_true(f64[0] == 1e-300 && f64[1] == 0.0 && signbit(f64[1]));
    const melt_str *strs = arr_of(g, "a.str", MELT_GGUF_STRING, 3)->v.arr.data;
    assert_true(melt_str_eq(strs[0], "a"));
    assert_int_equal(strs[1].len, 0);
    assert_int_equal(strs[2].len, 5);
    assert_memory_equal(strs[2].ptr, "xyz\0w", 5);
    arr_of(g, "a.empty_u32", MELT_GGUF_U32, 0);
    arr_of(g, "a.empty_str", MELT_GGUF_STRING, 0);
}

static void gguf_round_trips_every_value_type(void **state)
{
    (void)state;
    melt_gguf_writer *w = melt_gguf_writer_new();
    set_every_type(w);
    const char *path = scratch_path("types.gguf");
    char p[PATH_BYTES];
    snprintf(p, sizeof p, "%s", path);
    melt_error err = {0};
    assert_int_equal(melt_gguf_writer_write(w, p, NULL, NULL, &err), 0);
    melt_gguf_writer_free(w);
    melt_gguf *g = open_path_ok(p);
    assert_int_equal(melt_gguf_version(g), 3);
    assert_int_equal(melt_gguf_n_kv(g), 27);
    assert_int_equal(melt_gguf_n_tensors(g), 0);
    check_every_type(g);
    /* copy_kvs keeps order and values: the copy is byte-identical. */
    melt_gguf_writer *w2 = melt_gguf_writer_new();
    assert_int_equal(melt_gguf_writer_copy_kvs(w2, g, &err), 0);
    char p2[PATH_BYTES];
    snprintf(p2, sizeof p2, "%s", scratch_path("types2.gguf"));
    assert_int_equal(melt_gguf_writer_write(w2, p2, NULL, NULL, &err), 0);
    assert_files_equal(p, p2);
    melt_gguf_writer_free(w2);
    melt_gguf_close(g);
    unlink(p);
    unlink(p2);
}

static void gguf_typed_getters_convert_integers(void **state)
{
    (void)state;
    melt_gguf_writer *w = melt_gguf_writer_new();
    melt_error err = {0};
    assert_int_equal(melt_gguf_writer_set_i32(w, "neg", -5, &err), 0);
    assert_int_equal(melt_gguf_writer_set_u64(w, "big", UINT64_MAX, &err), 0);
    assert_int_equal(melt_gguf_writer_set_u32(w, "small", 7, &err), 0);
    assert_int_equal(melt_gguf_writer_set_f32(w, "f", 0.25f, &err), 0);
    assert_int_equal(melt_gguf_writer_set_str(w, "s", "x", &err), 0);
    char p[PATH_BYTES];
    snprintf(p, sizeof p, "%s", scratch_path("getters.gguf"));
    assert_int_equal(melt_gguf_writer_write(w, p, NULL, NULL, &err), 0);
    melt_gguf_writer_free(w);
    melt_gguf *g = open_path_ok(p);
    uint64_t u;
    int64_t i;
    double d;
    bool b;
    melt_str s;
    assert_false(melt_gguf_get_u64(g, "neg", &u));
    assert_true(melt_gguf_get_i64(g, "neg", &i) && i == -5);
    assert_true(melt_gguf_get_u64(g, "big", &u) && u == UINT64_MAX);
    assert_false(melt_gguf_get_i64(g, "big", &i));
    assert_true(melt_gguf_get_i64(g, "small", &i) && i == 7);
    assert_true(melt_gguf_get_f64(g, "small", &d) && d == 7.0);
    assert_true(melt_gguf_get_f64(g, "f", &d) && d == 0.25);
    assert_false(melt_gguf_get_u64(g, "f", &u));
    assert_false(melt_gguf_get_bool(g, "small", &b));
    assert_false(melt_gguf_get_str(g, "small", &s));
    assert_false(melt_gguf_get_u64(g, "absent", &u));
    assert_null(melt_gguf_get_arr(g, "s"));
    melt_gguf_close(g);
    unlink(p);
}

static void gguf_writer_set_replaces_in_place_and_removes(void **state)
{
    (void)state;
    melt_gguf_writer *w = melt_gguf_writer_new();
    melt_error err = {0};
    assert_int_equal(melt_gguf_writer_set_u32(w, "a", 1, &err), 0);
    assert_int_equal(melt_gguf_writer_set_str(w, "b", "two", &err), 0);
    assert_int_equal(melt_gguf_writer_set_u32(w, "c", 3, &err), 0);
    assert_int_equal(melt_gguf_writer_set_str(w, "a", "one", &err), 0);
    assert_true(melt_gguf_writer_remove(w, "b"));
    assert_false(melt_gguf_writer_remove(w, "b"));
    char p[PATH_BYTES];
    snprintf(p, sizeof p, "%s", scratch_path("replace.gguf"));
    assert_int_equal(melt_gguf_writer_write(w, p, NULL, NULL, &err), 0);
    melt_gguf_writer_free(w);
    melt_gguf *g = open_path_ok(p);
    assert_int_equal(melt_gguf_n_kv(g), 2);
    assert_true(melt_str_eq(melt_gguf_kv_at(g, 0)->key, "a"));
    assert_true(melt_str_eq(melt_gguf_kv_at(g, 0)->value.v.str, "one"));
    assert_true(melt_str_eq(melt_gguf_kv_at(g, 1)->key, "c"));
    melt_gguf_close(g);
    unlink(p);
}

static void gguf_writer_rejects_bad_input(void **state)
{
    (void)state;
    melt_gguf_writer *w = melt_gguf_writer_new();
    melt_error err = {0};
    uint64_t ne[2] = {32, 2};
    float data[64] = {0};
    assert_int_equal(melt_gguf_writer_add_tensor(w, "x", MELT_TYPE_F32, 2, ne,
                                                 data, &err), 0);
    assert_int_equal(melt_gguf_writer_add_tensor(w, "x", MELT_TYPE_F32, 2, ne,
                                                 data, &err), MELT_EINVAL);
    assert_contains(err.msg, "duplicate");
    assert_int_equal(melt_gguf_writer_add_tensor(w, "y", 4, 2, ne, data, &err),
                     MELT_EINVAL);
    assert_contains(err.msg, "unknown type");
    assert_int_equal(melt_gguf_writer_add_tensor(w, "y", MELT_TYPE_F32, 5, ne,
                                                 data, &err), MELT_EINVAL);
    uint64_t ne_odd[1] = {33};
    assert_int_equal(melt_gguf_writer_add_tensor(w, "y", MELT_TYPE_Q8_0, 1,
                                                 ne_odd, data, &err), MELT_EINVAL);
    assert_contains(err.msg, "block size");
    assert_int_equal(melt_gguf_writer_add_tensor(
                         w, "a_name_that_is_far_too_long_for_llama_cpp_which_"
                            "stops_at_63_bytes", MELT_TYPE_F32, 2, ne, data,
                         &err), MELT_EINVAL);
    assert_int_equal(melt_gguf_writer_set_u32(w, "general.alignment", 48, &err),
                     MELT_EINVAL);
    assert_int_equal(melt_gguf_writer_set_u64(w, "general.alignment", 64, &err),
                     MELT_EINVAL);
    /* A tensor without data needs a fill callback; nothing is created. */
    assert_int_equal(melt_gguf_writer_add_tensor(w, "z", MELT_TYPE_F32, 2, ne,
                                                 NULL, &err), 0);
    char p[PATH_BYTES];
    snprintf(p, sizeof p, "%s", scratch_path("nofill.gguf"));
    assert_int_equal(melt_gguf_writer_write(w, p, NULL, NULL, &err), MELT_EINVAL);
    assert_contains(err.msg, "fill");
    assert_false(file_exists(p));
    melt_gguf_writer_free(w);
}

static void gguf_vtype_sizes_match_format(void **state)
{
    (void)state;
    static const size_t sizes[MELT_GGUF_VTYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1,
                                                        0, 0, 8, 8, 8};
    for (int t = 0; t < MELT_GGUF_VTYPE_COUNT; t++)
        assert_int_equal(melt_gguf_vtype_size((enum melt_gguf_vtype)t), sizes[t]);
    assert_int_equal(melt_gguf_vtype_size(MELT_GGUF_VTYPE_COUNT), 0);
    assert_string_equal(melt_gguf_vtype_name(MELT_GGUF_STRING), "string");
    assert_string_equal(melt_gguf_vtype_name(MELT_GGUF_F64), "f64");
    assert_string_equal(melt_gguf_vtype_name(MELT_GGUF_VTYPE_COUNT), "?");
}

/* ---- alignment, fill callback, failures ---- */

typedef struct fill_state {
    int calls;
    int fail_at;            /* index to fail on, -1 never */
    uint64_t max_bytes_seen;
} fill_state;

static int fill_pattern(void *ctx, uint64_t index, void *dst, uint64_t n_bytes,
                        melt_error *err)
{
    fill_state *fs = ctx;
    fs->calls++;
    if (n_bytes > fs->max_bytes_seen)
        fs->max_bytes_seen = n_bytes;
    if ((int)index == fs->fail_at)
        return melt_errorf(err, MELT_EIO, "synthetic failure on tensor %d",
                           (int)index);
    uint8_t *p = dst;
    for (uint64_t i = 0; i < n_bytes; i++)
        p[i] = (uint8_t)(index * 31 + i);
    return 0;
}

static void check_pattern(const melt_gguf_tensor *t, uint64_t index)
{
    const uint8_t *p = t->data;
    for (uint64_t i = 0; i < t->n_bytes; i++)
        if (p[i] != (uint8_t)(index * 31 + i))
            fail_msg("tensor %" PRIu64 " byte %" PRIu64 " wrong", index, i);
}

/* Three tensors of awkward sizes: 5 f32 (20 bytes), a q8_0 row (34 bytes),
 * 3×2 f16 (12 bytes). */
static void add_odd_tensors(melt_gguf_writer *w, const void *first)
{
    melt_error err = {0};
    uint64_t ne_a[1] = {5}, ne_b[1] = {32}, ne_c[2] = {3, 2};
    assert_int_equal(melt_gguf_writer_add_tensor(w, "a", MELT_TYPE_F32, 1, ne_a,
                                                 first, &err), 0);
    assert_int_equal(melt_gguf_writer_add_tensor(w, "b", MELT_TYPE_Q8_0, 1, ne_b,
                                                 NULL, &err), 0);
    assert_int_equal(melt_gguf_writer_add_tensor(w, "c", MELT_TYPE_F16, 2, ne_c,
                                                 NULL, &err), 0);
}

static void gguf_honours_alignment_64(void **state)
{
    (void)state;
    melt_gguf_writer *w = melt_gguf_writer_new();
    melt_error err = {0};
    assert_int_equal(melt_gguf_writer_set_str(w, "general.name", "aligned", &err), 0);
    assert_int_equal(melt_gguf_writer_set_u32(w, "general.alignment", 64, &err), 0);
    uint8_t first[20];
    for (int i = 0; i < 20; i++)
        first[i] = (uint8_t)i;
    add_odd_tensors(w, first);
    fill_state fs = {0, -1, 0};
    char p[PATH_BYTES];
    snprintf(p, sizeof p, "%s", scratch_path("align64.gguf"));
    assert_int_equal(melt_gguf_writer_write(w, p, fill_pattern, &fs, &err), 0);
    melt_gguf_writer_free(w);
    assert_int_equal(fs.calls, 2);
    melt_gguf *g = open_path_ok(p);
    assert_int_equal(melt_gguf_alignment(g), 64);
    assert_int_equal(melt_gguf_data_offset(g) % 64, 0);
    assert_int_equal(melt_gguf_tensor_at(g, 0)->offset, 0);
    assert_int_equal(melt_gguf_tensor_at(g, 1)->offset, 64);
    assert_int_equal(melt_gguf_tensor_at(g, 2)->offset, 128);
    /* the last tensor is padded too */
    assert_int_equal(melt_gguf_file_size(g), melt_gguf_data_offset(g) + 192);
    assert_memory_equal(melt_gguf_tensor_at(g, 0)->data, first, 20);
    check_pattern(melt_gguf_tensor_at(g, 1), 1);
    check_pattern(melt_gguf_tensor_at(g, 2), 2);
    /* padding bytes are zero */
    const uint8_t *pad = (const uint8_t *)melt_gguf_tensor_at(g, 0)->data + 20;
    for (int i = 0; i < 44; i++)
        assert_int_equal(pad[i], 0);
    melt_gguf_close(g);
    unlink(p);
}

static void gguf_fill_callback_produces_tensor_data(void **state)
{
    (void)state;
    melt_gguf_writer *w = melt_gguf_writer_new();
    melt_error err = {0};
    uint64_t ne[2] = {256, 64};
    for (int i = 0; i < 4; i++) {
        char name[16];
        snprintf(name, sizeof name, "t%d", i);
        assert_int_equal(melt_gguf_writer_add_tensor(w, name, MELT_TYPE_Q4_K, 2,
                                                     ne, NULL, &err), 0);
    }
    fill_state fs = {0, -1, 0};
    char p[PATH_BYTES];
    snprintf(p, sizeof p, "%s", scratch_path("fill.gguf"));
    assert_int_equal(melt_gguf_writer_write(w, p, fill_pattern, &fs, &err), 0);
    melt_gguf_writer_free(w);
    assert_int_equal(fs.calls, 4);
    assert_int_equal(fs.max_bytes_seen, 144 * 64);
    melt_gguf *g = open_path_ok(p);
    for (uint64_t i = 0; i < 4; i++) {
        assert_int_equal(melt_gguf_tensor_at(g, i)->n_bytes, 144 * 64);
        check_pattern(melt_gguf_tensor_at(g, i), i);
    }
    melt_gguf_close(g);
    unlink(p);
}

static void gguf_failing_fill_leaves_no_file(void **state)
{
    (void)state;
    melt_gguf_writer *w = melt_gguf_writer_new();
    uint8_t first[20] = {0};
    add_odd_tensors(w, first);
    fill_state fs = {0, 2, 0};
    char p[PATH_BYTES], tmp[PATH_BYTES + 8];
    snprintf(p, sizeof p, "%s", scratch_path("failfill.gguf"));
    snprintf(tmp, sizeof tmp, "%s.tmp", p);
    melt_error err = {0};
    int rc = melt_gguf_writer_write(w, p, fill_pattern, &fs, &err);
    assert_int_equal(rc, MELT_EIO);
    assert_contains(err.msg, "synthetic failure on tensor 2");
    assert_contains(err.msg, "'c'");
    assert_false(file_exists(p));
    assert_false(file_exists(tmp));
    melt_gguf_writer_free(w);
}

/* A write that fails (here: file size limit, as a full disk would) gives a
 * clear error and leaves neither the file nor the tmp file. */
static void gguf_write_error_leaves_no_file(void **state)
{
    (void)state;
    melt_gguf_writer *w = melt_gguf_writer_new();
    melt_error err = {0};
    static float big[1 << 16];
    uint64_t ne[1] = {1 << 16};
    assert_int_equal(melt_gguf_writer_add_tensor(w, "big", MELT_TYPE_F32, 1, ne,
                                                 big, &err), 0);
    char p[PATH_BYTES], tmp[PATH_BYTES + 8];
    snprintf(p, sizeof p, "%s", scratch_path("efbig.gguf"));
    snprintf(tmp, sizeof tmp, "%s.tmp", p);
    struct rlimit old, small;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    small = old;
    small.rlim_cur = 4096;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
    int rc = melt_gguf_writer_write(w, p, NULL, NULL, &err);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, old_handler);
    assert_int_equal(rc, MELT_EIO);
    assert_contains(err.msg, "write failed at byte offset");
    assert_false(file_exists(p));
    assert_false(file_exists(tmp));
    /* A directory that does not exist: a clear error as well. */
    assert_int_equal(melt_gguf_writer_write(w, "/nonexistent-dir/x.gguf", NULL,
                                            NULL, &err), MELT_EIO);
    assert_contains(err.msg, "/nonexistent-dir/x.gguf.tmp: cannot create");
    melt_gguf_writer_free(w);
}

/* ---- versions ---- */

/* A tiny valid file: one kv, one f32 tensor of 8 elements (32 bytes, so
 * the file ends exactly at the end of its data). */
static void bb_small_file(bb *b, uint32_t version)
{
    bb_header(b, version, 1, 1);
    bb_str(b, "general.architecture");
    bb_u32(b, MELT_GGUF_STRING);
    bb_str(b, "llama");
    uint64_t ne[1] = {8};
    bb_tensor_info(b, "w", 1, ne, MELT_TYPE_F32, 0);
    bb_pad(b, 32);
    for (int i = 0; i < 8; i++) {
        float f = (float)i;
        uint32_t u;
        memcpy(&u, &f, 4);
        bb_u32(b, u);
    }
}

static void gguf_accepts_v2_file(void **state)
{
    (void)state;
    bb b = {0};
    bb_small_file(&b, 2);
    melt_gguf *g = open_ok(b.p, b.len);
    assert_int_equal(melt_gguf_version(g), 2);
    assert_string_equal(melt_gguf_path(g), "");
    melt_str arch;
    assert_true(melt_gguf_get_str(g, "general.architecture", &arch));
    assert_true(melt_str_eq(arch, "llama"));
    const melt_gguf_tensor *t = melt_gguf_find_tensor(g, "w");
    assert_non_null(t);
    assert_int_equal(t->n_bytes, 32);
    float f7;
    memcpy(&f7, (const uint8_t *)t->data + 28, 4);
    assert_true(f7 == 7.0f);
    melt_gguf_close(g);
    bb_free(&b);
}

static void gguf_rejects_v1_file(void **state)
{
    (void)state;
    bb b = {0};
    bb_raw(&b, "GGUF", 4);
    bb_u32(&b, 1);
    bb_u32(&b, 0); /* v1: u32 counts */
    bb_u32(&b, 0);
    expect_format_error(&b, "unsupported GGUF version 1", 4);
    bb_free(&b);
}

static void gguf_rejects_unknown_version(void **state)
{
    (void)state;
    bb b = {0};
    bb_header(&b, 4, 0, 0);
    expect_format_error(&b, "unsupported GGUF version 4", 4);
    bb_free(&b);
}

static void gguf_rejects_big_endian_file(void **state)
{
    (void)state;
    bb b = {0};
    bb_raw(&b, "GGUF", 4);
    bb_raw(&b, "\0\0\0\3", 4);
    bb_raw(&b, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 16);
    expect_format_error(&b, "big-endian", 4);
    bb_free(&b);
}

static void gguf_rejects_bad_magic(void **state)
{
    (void)state;
    bb b = {0};
    bb_raw(&b, "GGML", 4);
    bb_u32(&b, 3);
    bb_u64(&b, 0);
    bb_u64(&b, 0);
    expect_format_error(&b, "bad magic", 0);
    bb_free(&b);
}

static void gguf_rejects_empty_file(void **state)
{
    (void)state;
    bb b = {0};
    expect_format_error(&b, "runs past end of file", 0);
    melt_gguf *g = (melt_gguf *)1;
    melt_error err = {0};
    assert_int_equal(melt_gguf_open_buffer(NULL, 0, &g, &err), MELT_EFORMAT);
    assert_null(g);
}

/* ---- counts ---- */

static void gguf_rejects_huge_kv_count(void **state)
{
    (void)state;
    bb b = {0};
    bb_header(&b, 3, 0, (uint64_t)1 << 60);
    bb_str(&b, "k");
    expect_format_error(&b, "kv count 1152921504606846976", 16);
    bb_free(&b);
}

static void gguf_rejects_huge_tensor_count(void **state)
{
    (void)state;
    bb b = {0};
    bb_header(&b, 3, (uint64_t)1 << 60, 0);
    bb_str(&b, "t");
    expect_format_error(&b, "tensor count 1152921504606846976", 8);
    bb_free(&b);
}

/* ---- strings and values ---- */

static void gguf_rejects_string_past_eof(void **state)
{
    (void)state;
    bb b = {0};
    bb_header(&b, 3, 0, 1);
    bb_u64(&b, 1000000000000000000ull); /* key length 1e18 at byte 24 */
    bb_raw(&b, "abcdefghijklmnop", 16);
    expect_format_error(&b, "string length 1000000000000000000", 24);
    bb_free(&b);
}

static void gguf_rejects_unknown_value_type(void **state)
{
    (void)state;
    bb b = {0};
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "k");
    size_t at = b.len;
    bb_u32(&b, 13);
    bb_u64(&b, 0);
    expect_format_error(&b, "unknown value type 13", at);
    bb_free(&b);
}

static void gguf_rejects_unknown_array_element_type(void **state)
{
    (void)state;
    bb b = {0};
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "k");
    bb_u32(&b, MELT_GGUF_ARRAY);
    size_t at = b.len;
    bb_u32(&b, 99);
    bb_u64(&b, 0);
    expect_format_error(&b, "unknown array element type 99", at);
    bb_free(&b);
}

static void gguf_rejects_nested_array(void **state)
{
    (void)state;
    bb b = {0};
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "k");
    bb_u32(&b, MELT_GGUF_ARRAY);
    size_t at = b.len;
    bb_u32(&b, MELT_GGUF_ARRAY);
    bb_u64(&b, 1);
    bb_u32(&b, MELT_GGUF_U8);
    bb_u64(&b, 0);
    expect_format_error(&b, "nested array", at);
    bb_free(&b);
}

static void gguf_rejects_array_count_past_eof(void **state)
{
    (void)state;
    bb b = {0};
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "k");
    bb_u32(&b, MELT_GGUF_ARRAY);
    bb_u32(&b, MELT_GGUF_U64);
    size_t at = b.len;
    bb_u64(&b, (uint64_t)1 << 61); /* × 8 bytes overflows 64 bits */
    bb_u64(&b, 0);
    expect_format_error(&b, "array of 2305843009213693952 u64", at);
    bb_free(&b);
}

static void gguf_rejects_string_array_count_past_eof(void **state)
{
    (void)state;
    bb b = {0};
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "k");
    bb_u32(&b, MELT_GGUF_ARRAY);
    bb_u32(&b, MELT_GGUF_STRING);
    size_t at = b.len;
    bb_u64(&b, UINT64_MAX);
    bb_str(&b, "a");
    expect_format_error(&b, "array of 18446744073709551615 strings", at);
    bb_free(&b);
}

static void gguf_rejects_string_in_array_past_eof(void **state)
{
    (void)state;
    bb b = {0};
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "k");
    bb_u32(&b, MELT_GGUF_ARRAY);
    bb_u32(&b, MELT_GGUF_STRING);
    bb_u64(&b, 2);
    bb_str(&b, "ok");
    size_t at = b.len;
    bb_u64(&b, 50);
    bb_raw(&b, "short", 5);
    expect_format_error(&b, "string length 50", at);
    bb_free(&b);
}

static void gguf_rejects_bool_other_than_0_or_1(void **state)
{
    (void)state;
    bb b = {0};
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "k");
    bb_u32(&b, MELT_GGUF_BOOL);
    size_t at = b.len;
    bb_u8(&b, 2);
    expect_format_error(&b, "bool value 2", at);
    bb_free(&b);
}

static void gguf_rejects_duplicate_key(void **state)
{
    (void)state;
    bb b = {0};
    bb_header(&b, 3, 0, 2);
    bb_str(&b, "dup");
    bb_u32(&b, MELT_GGUF_U8);
    bb_u8(&b, 1);
    size_t at = b.len;
    bb_str(&b, "dup");
    bb_u32(&b, MELT_GGUF_U8);
    bb_u8(&b, 2);
    expect_format_error(&b, "duplicate key 'dup'", at);
    bb_free(&b);
}

static void gguf_rejects_alignment_not_u32(void **state)
{
    (void)state;
    bb b = {0};
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "general.alignment");
    size_t at = b.len;
    bb_u32(&b, MELT_GGUF_U64);
    bb_u64(&b, 64);
    expect_format_error(&b, "general.alignment", at);
    expect_format_error(&b, "expected u32", at);
    bb_free(&b);
}

static void gguf_rejects_alignment_not_power_of_two(void **state)
{
    (void)state;
    uint32_t bad[] = {0, 48, 3};
    for (size_t i = 0; i < 3; i++) {
        bb b = {0};
        bb_header(&b, 3, 0, 1);
        bb_str(&b, "general.alignment");
        size_t at = b.len;
        bb_u32(&b, MELT_GGUF_U32);
        bb_u32(&b, bad[i]);
        expect_format_error(&b, "not a nonzero power of two", at);
        bb_free(&b);
    }
}

static void gguf_reads_custom_alignment(void **state)
{
    (void)state;
    bb b = {0};
    bb_header(&b, 3, 1, 1);
    bb_str(&b, "general.alignment");
    bb_u32(&b, MELT_GGUF_U32);
    bb_u32(&b, 128);
    uint64_t ne[1] = {4};
    bb_tensor_info(&b, "w", 1, ne, MELT_TYPE_F32, 0);
    bb_pad(&b, 128);
    size_t data_at = b.len;
    bb_raw(&b, "0123456789abcdef", 16);
    melt_gguf *g = open_ok(b.p, b.len);
    assert_int_equal(melt_gguf_alignment(g), 128);
    assert_int_equal(melt_gguf_data_offset(g), data_at);
    assert_memory_equal(melt_gguf_tensor_at(g, 0)->data, "0123456789abcdef", 16);
    melt_gguf_close(g);
    bb_free(&b);
}

/* ---- tensor infos ---- */

/* A file with one tensor described by the arguments; its data follows. The
 * byte offsets of the n_dims, first dim and type fields go to *at. */
typedef struct tensor_at {
    size_t n_dims, dims, type, offset;
} tensor_at;

static void bb_one_tensor(bb *b, uint32_t n_dims, const uint64_t *ne,
                          uint32_t type, uint64_t offset, size_t data_bytes,
                          tensor_at *at)
{
    bb_header(b, 3, 1, 0);
    bb_str(b, "blk.0.attn_q.weight");
    at->n_dims = b->len;
    bb_u32(b, n_dims);
    at->dims = b->len;
    for (uint32_t d = 0; d < n_dims && d < 5; d++)
        bb_u64(b, ne[d]);
    at->type = b->len;
    bb_u32(b, type);
    at->offset = b->len;
    bb_u64(b, offset);
    bb_pad(b, 32);
    for (size_t i = 0; i < data_bytes; i++)
        bb_u8(b, (uint8_t)i);
}

static void gguf_rejects_bad_n_dims(void **state)
{
    (void)state;
    uint64_t ne[5] = {1, 1, 1, 1, 1};
    uint32_t bad[] = {0, 5, 0xffffffffu};
    for (size_t i = 0; i < 3; i++) {
        bb b = {0};
        tensor_at at;
        bb_one_tensor(&b, bad[i], ne, MELT_TYPE_F32, 0, 64, &at);
        expect_format_error(&b, "outside 1..4", at.n_dims);
        expect_format_error(&b, "blk.0.attn_q.weight", at.n_dims);
        bb_free(&b);
    }
}

static void gguf_rejects_dim_over_int64_max(void **state)
{
    (void)state;
    bb b = {0};
    tensor_at at;
    uint64_t ne[2] = {32, (uint64_t)INT64_MAX + 1};
    bb_one_tensor(&b, 2, ne, MELT_TYPE_F32, 0, 64, &at);
    expect_format_error(&b, "exceeds INT64_MAX", at.dims + 8);
    bb_free(&b);
}

static void gguf_rejects_element_count_overflow(void **state)
{
    (void)state;
    bb b = {0};
    tensor_at at;
    uint64_t ne[3] = {1 << 20, 1ull << 40, 1ull << 10};
    bb_one_tensor(&b, 3, ne, MELT_TYPE_F32, 0, 64, &at);
    expect_format_error(&b, "element count overflows", at.dims + 16);
    bb_free(&b);
}

static void gguf_rejects_byte_size_overflow(void **state)
{
    (void)state;
    bb b = {0};
    tensor_at at;
    /* 2^62 elements fit int64, 2^64 bytes of f32 do not */
    uint64_t ne[2] = {1ull << 31, 1ull << 31};
    bb_one_tensor(&b, 2, ne, MELT_TYPE_F32, 0, 64, &at);
    expect_format_error(&b, "byte size overflows", at.type);
    bb_free(&b);
}

static void gguf_rejects_unknown_tensor_type(void **state)
{
    (void)state;
    uint32_t bad[] = {4, 5, 40, 0xffffffffu};
    for (size_t i = 0; i < 4; i++) {
        bb b = {0};
        tensor_at at;
        uint64_t ne[1] = {32};
        bb_one_tensor(&b, 1, ne, bad[i], 0, 64, &at);
        expect_format_error(&b, "unknown type id", at.type);
        bb_free(&b);
    }
}

static void gguf_rejects_ne0_not_multiple_of_block(void **state)
{
    (void)state;
    bb b = {0};
    tensor_at at;
    uint64_t ne[2] = {100, 2};
    bb_one_tensor(&b, 2, ne, MELT_TYPE_Q4_K, 0, 1024, &at);
    expect_format_error(&b, "not a multiple of the q4_K block size 256",
                        at.type);
    bb_free(&b);
}

static void gguf_rejects_misaligned_tensor_offset(void **state)
{
    (void)state;
    bb b = {0};
    tensor_at at;
    uint64_t ne[1] = {8};
    bb_one_tensor(&b, 1, ne, MELT_TYPE_F32, 4, 64, &at);
    expect_format_error(&b, "not a multiple of the alignment 32", at.offset);
    bb_free(&b);
}

static void gguf_rejects_tensor_past_eof(void **state)
{
    (void)state;
    bb b = {0};
    tensor_at at;
    uint64_t ne[2] = {64, 4}; /* 1024 bytes, only 1000 present */
    bb_one_tensor(&b, 2, ne, MELT_TYPE_F32, 0, 1000, &at);
    size_t data_at = (at.offset + 8 + 31) / 32 * 32;
    char want[128];
    snprintf(want, sizeof want, "tensor 0 ('blk.0.attn_q.weight') data [%zu, "
             "%zu) runs past end of file (size %zu)", data_at, data_at + 1024,
             b.len);
    expect_format_error(&b, want, data_at);
    bb_free(&b);
}

static void gguf_rejects_tensor_offset_overflow(void **state)
{
    (void)state;
    bb b = {0};
    tensor_at at;
    /* 2^62 - 1 f32: 2^64 - 4 bytes; data start + size wraps around */
    uint64_t ne[1] = {(1ull << 62) - 1};
    bb_one_tensor(&b, 1, ne, MELT_TYPE_F32, 0, 64, &at);
    expect_format_error(&b, "overflows", (at.offset + 8 + 31) / 32 * 32);
    bb_free(&b);
}

static void gguf_rejects_tensor_out_of_sequence(void **state)
{
    (void)state;
    bb b = {0};
    uint64_t ne[1] = {16}; /* 64 bytes each */
    bb_header(&b, 3, 2, 0);
    bb_tensor_info(&b, "a", 1, ne, MELT_TYPE_F32, 0);
    bb_str(&b, "b");
    bb_u32(&b, 1);
    bb_u64(&b, 16);
    bb_u32(&b, MELT_TYPE_F32);
    size_t at = b.len;
    bb_u64(&b, 32); /* overlaps a, whose data ends at 64 */
    bb_pad(&b, 32);
    for (int i = 0; i < 128; i++)
        bb_u8(&b, 0);
    expect_format_error(&b, "offset 32", at);
    expect_format_error(&b, "should be 64", at);
    bb_free(&b);
}

static void gguf_rejects_duplicate_tensor_name(void **state)
{
    (void)state;
    bb b = {0};
    uint64_t ne[1] = {8};
    bb_header(&b, 3, 2, 0);
    bb_tensor_info(&b, "w", 1, ne, MELT_TYPE_F32, 0);
    size_t at = b.len;
    bb_tensor_info(&b, "w", 1, ne, MELT_TYPE_F32, 32);
    bb_pad(&b, 32);
    for (int i = 0; i < 64; i++)
        bb_u8(&b, 0);
    expect_format_error(&b, "duplicate tensor name 'w'", at);
    bb_free(&b);
}

static void gguf_escapes_names_in_messages(void **state)
{
    (void)state;
    bb b = {0};
    uint64_t ne[1] = {8};
    bb_header(&b, 3, 1, 0);
    bb_tensor_info(&b, "bad\nname", 1, ne, 4, 0);
    melt_gguf *g;
    melt_error err = {0};
    assert_int_equal(melt_gguf_open_buffer(b.p, b.len, &g, &err), MELT_EFORMAT);
    assert_null(strchr(err.msg, '\n'));
    assert_contains(err.msg, "bad\\x0aname");
    bb_free(&b);
}

/* Every proper prefix of a valid file is an error, never a crash. */
static void gguf_rejects_truncation_at_every_byte(void **state)
{
    (void)state;
    bb b = {0};
    bb_small_file(&b, 3);
    melt_gguf *g = open_ok(b.p, b.len);
    melt_gguf_close(g);
    for (size_t n = 0; n < b.len; n++) {
        /* a fresh allocation of exactly n bytes, so ASan sees any overread */
        uint8_t *copy = malloc(n ? n : 1);
        memcpy(copy, b.p, n);
        melt_error err = {0};
        g = (melt_gguf *)1;
        int rc = melt_gguf_open_buffer(copy, n, &g, &err);
        if (rc != MELT_EFORMAT)
            fail_msg("prefix of %zu bytes: expected MELT_EFORMAT, got %d", n, rc);
        assert_null(g);
        assert_true(strstr(err.msg, "past end of file") != NULL);
        free(copy);
    }
    bb_free(&b);
}

/* Same for a real file's metadata: every prefix up to the data section. */
static void gguf_rejects_truncated_real_file(void **state)
{
    (void)state;
    size_t n_file;
    uint8_t *file = slurp(fixture_path("stories260K/stories260K.gguf"), &n_file);
    for (size_t n = 0; n < 14176; n += 7) {
        melt_gguf *g;
        melt_error err = {0};
        assert_int_equal(melt_gguf_open_buffer(file, n, &g, &err), MELT_EFORMAT);
    }
    melt_gguf *g;
    melt_error err = {0};
    assert_int_equal(melt_gguf_open_buffer(file, n_file - 1, &g, &err),
                     MELT_EFORMAT);
    assert_contains(err.msg, "tensor 47 ('blk.4.ffn_norm.weight') data");
    free(file);
}

static void gguf_file_errors_name_the_path(void **state)
{
    (void)state;
    bb b = {0};
    bb_header(&b, 1, 0, 0);
    char p[PATH_BYTES];
    snprintf(p, sizeof p, "%s", scratch_path("v1.gguf"));
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    fwrite(b.p, 1, b.len, f);
    fclose(f);
    melt_gguf *g;
    melt_error err = {0};
    assert_int_equal(melt_gguf_open(p, &g, &err), MELT_EFORMAT);
    assert_null(g);
    char want[PATH_BYTES + 64];
    snprintf(want, sizeof want, "%s: unsupported GGUF version 1", p);
    assert_contains(err.msg, want);
    unlink(p);
    assert_int_equal(melt_gguf_open(p, &g, &err), MELT_EIO);
    assert_contains(err.msg, "cannot open");
    assert_int_equal(melt_gguf_open("tests", &g, &err), MELT_EIO);
    assert_contains(err.msg, "not a regular file");
    /* an empty file */
    f = fopen(p, "wb");
    fclose(f);
    assert_int_equal(melt_gguf_open(p, &g, &err), MELT_EFORMAT);
    unlink(p);
    bb_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(gguf_reads_stories260k),
        cmocka_unit_test(gguf_finds_every_tensor_by_name),
        cmocka_unit_test(gguf_rewrites_llamacpp_files_byte_exact),
        cmocka_unit_test(gguf_round_trips_every_value_type),
        cmocka_unit_test(gguf_typed_getters_convert_integers),
        cmocka_unit_test(gguf_writer_set_replaces_in_place_and_removes),
        cmocka_unit_test(gguf_writer_rejects_bad_input),
        cmocka_unit_test(gguf_vtype_sizes_match_format),
        cmocka_unit_test(gguf_honours_alignment_64),
        cmocka_unit_test(gguf_fill_callback_produces_tensor_data),
        cmocka_unit_test(gguf_failing_fill_leaves_no_file),
        cmocka_unit_test(gguf_write_error_leaves_no_file),
        cmocka_unit_test(gguf_accepts_v2_file),
        cmocka_unit_test(gguf_rejects_v1_file),
        cmocka_unit_test(gguf_rejects_unknown_version),
        cmocka_unit_test(gguf_rejects_big_endian_file),
        cmocka_unit_test(gguf_rejects_bad_magic),
        cmocka_unit_test(gguf_rejects_empty_file),
        cmocka_unit_test(gguf_rejects_huge_kv_count),
        cmocka_unit_test(gguf_rejects_huge_tensor_count),
        cmocka_unit_test(gguf_rejects_string_past_eof),
        cmocka_unit_test(gguf_rejects_unknown_value_type),
        cmocka_unit_test(gguf_rejects_unknown_array_element_type),
        cmocka_unit_test(gguf_rejects_nested_array),
        cmocka_unit_test(gguf_rejects_array_count_past_eof),
        cmocka_unit_test(gguf_rejects_string_array_count_past_eof),
        cmocka_unit_test(gguf_rejects_string_in_array_past_eof),
        cmocka_unit_test(gguf_rejects_bool_other_than_0_or_1),
        cmocka_unit_test(gguf_rejects_duplicate_key),
        cmocka_unit_test(gguf_rejects_alignment_not_u32),
        cmocka_unit_test(gguf_rejects_alignment_not_power_of_two),
        cmocka_unit_test(gguf_reads_custom_alignment),
        cmocka_unit_test(gguf_rejects_bad_n_dims),
        cmocka_unit_test(gguf_rejects_dim_over_int64_max),
        cmocka_unit_test(gguf_rejects_element_count_overflow),
        cmocka_unit_test(gguf_rejects_byte_size_overflow),
        cmocka_unit_test(gguf_rejects_unknown_tensor_type),
        cmocka_unit_test(gguf_rejects_ne0_not_multiple_of_block),
        cmocka_unit_test(gguf_rejects_misaligned_tensor_offset),
        cmocka_unit_test(gguf_rejects_tensor_past_eof),
        cmocka_unit_test(gguf_rejects_tensor_offset_overflow),
        cmocka_unit_test(gguf_rejects_tensor_out_of_sequence),
        cmocka_unit_test(gguf_rejects_duplicate_tensor_name),
        cmocka_unit_test(gguf_escapes_names_in_messages),
        cmocka_unit_test(gguf_rejects_truncation_at_every_byte),
        cmocka_unit_test(gguf_rejects_truncated_real_file),
        cmocka_unit_test(gguf_file_errors_name_the_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

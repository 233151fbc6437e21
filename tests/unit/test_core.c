/* Core pieces: errors, type geometry, CPU feature strings. */
#include "testutil.h"

#include "melt/cpu.h"
#include "melt/error.h"
#include "melt/fs.h"
#include "melt/sha256.h"
#include "melt/types.h"

static void error_records_code_and_message(void **state)
{
    (void)state;
    melt_error e = {0};
    int rc = melt_errorf(&e, MELT_EFORMAT, "bad %s at %d", "thing", 42);
    assert_int_equal(rc, MELT_EFORMAT);
    assert_int_equal(e.code, MELT_EFORMAT);
    assert_string_equal(e.msg, "bad thing at 42");
    melt_error_clear(&e);
    assert_int_equal(e.code, 0);
    assert_string_equal(e.msg, "");
    /* NULL error sink is allowed and still returns the code. */
    assert_int_equal(melt_errorf(NULL, MELT_EIO, "x"), MELT_EIO);
}

static void error_can_prefix_its_own_message(void **state)
{
    (void)state;
    melt_error e = {0};
    melt_errorf(&e, MELT_EIO, "connection refused");
    melt_errorf(&e, e.code, "device '%s': %s", "phone", e.msg);
    assert_string_equal(e.msg, "device 'phone': connection refused");
    assert_int_equal(e.code, MELT_EIO);
}

static void error_truncates_long_messages(void **state)
{
    (void)state;
    melt_error e;
    char big[2000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    melt_errorf(&e, MELT_EINVAL, "%s", big);
    assert_int_equal(strlen(e.msg), sizeof e.msg - 1);
}

static void types_have_ggml_geometry(void **state)
{
    (void)state;
    static const struct { uint32_t type; uint32_t elems, bytes; const char *name; } want[] = {
        {MELT_TYPE_F32, 1, 4, "f32"},    {MELT_TYPE_F16, 1, 2, "f16"},
        {MELT_TYPE_BF16, 1, 2, "bf16"},  {MELT_TYPE_Q8_0, 32, 34, "q8_0"},
        {MELT_TYPE_Q4_0, 32, 18, "q4_0"}, {MELT_TYPE_Q4_K, 256, 144, "q4_K"},
        {MELT_TYPE_Q5_K, 256, 176, "q5_K"}, {MELT_TYPE_Q6_K, 256, 210, "q6_K"},
        {MELT_TYPE_Q8_K, 256, 292, "q8_K"}, {MELT_TYPE_Q2_K, 256, 84, "q2_K"},
        {MELT_TYPE_Q3_K, 256, 110, "q3_K"}, {MELT_TYPE_IQ4_XS, 256, 136, "iq4_xs"},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const melt_type_traits *t = melt_type_traits_of(want[i].type);
        assert_non_null(t);
        assert_int_equal(t->block_elems, want[i].elems);
        assert_int_equal(t->block_bytes, want[i].bytes);
        assert_string_equal(t->name, want[i].name);
    }
}

static void types_reject_retired_and_unknown_ids(void **state)
{
    (void)state;
    const uint32_t bad[] = {4, 5, 31, 32, 33, 36, 37, 38, 40, 1000, UINT32_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_null(melt_type_traits_of(bad[i]));
        assert_string_equal(melt_type_name(bad[i]), "?");
    }
}

static void row_bytes_checks_blocks_and_overflow(void **state)
{
    (void)state;
    uint64_t b = 0;
    assert_true(melt_type_row_bytes(MELT_TYPE_Q4_K, 4096, &b));
    assert_int_equal(b, 16 * 144);
    assert_true(melt_type_row_bytes(MELT_TYPE_F32, 3, &b));
    assert_int_equal(b, 12);
    assert_false(melt_type_row_bytes(MELT_TYPE_Q4_0, 33, &b));
    assert_false(melt_type_row_bytes(MELT_TYPE_F32, UINT64_MAX / 2, &b));
    assert_false(melt_type_row_bytes(4, 32, &b));
}

static void cpu_features_string_lists_names(void **state)
{
    (void)state;
    melt_cpu_features f = {0};
    char buf[256];
    assert_string_equal(melt_cpu_features_str(&f, buf, sizeof buf), "none");
    f.avx2 = f.fma = true;
    assert_string_equal(melt_cpu_features_str(&f, buf, sizeof buf), "AVX2 FMA");
    f.neon = f.dotprod = true;
    assert_string_equal(melt_cpu_features_str(&f, buf, sizeof buf), "AVX2 FMA NEON DOTPROD");
    /* A tiny buffer is never overrun. */
    char small[6];
    melt_cpu_features_str(&f, small, sizeof small);
    assert_true(strlen(small) < sizeof small);
}

static void cpu_detect_matches_proc_cpuinfo(void **state)
{
    (void)state;
#if defined(__x86_64__)
    const melt_cpu_features *f = melt_cpu_detect();
    /* procfs files report size 0: read the first "flags" line. */
    FILE *fp = fopen("/proc/cpuinfo", "r");
    assert_non_null(fp);
    char *info = NULL;
    size_t cap = 0;
    while (getline(&info, &cap, fp) > 0 && strncmp(info, "flags", 5) != 0)
        ;
    fclose(fp);
    assert_non_null(info);
    info[strcspn(info, "\n")] = ' ';
    assert_int_equal(f->avx2, strstr(info, " avx2 ") != NULL);
    assert_int_equal(f->avx512f, strstr(info, " avx512f ") != NULL);
    assert_int_equal(f->f16c, strstr(info, " f16c ") != NULL);
    free(info);
#else
    skip();
#endif
}

static void read_file_returns_all_bytes_nul_terminated(void **state)
{
    (void)state;
    /* larger than the first 64 KiB buffer, so the growth path runs */
    const char *path = fixture_path("stories260K/stories260K.gguf");
    size_t want_len;
    char *want = slurp(path, &want_len);
    char *buf = NULL;
    size_t len = 0;
    melt_error e = {0};
    assert_int_equal(melt_read_file(path, &buf, &len, &e), 0);
    assert_int_equal(len, want_len);
    assert_memory_equal(buf, want, len);
    assert_int_equal(buf[len], '\0');
    free(buf);
    free(want);
}

static void read_file_names_a_missing_path(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t len = 0;
    melt_error e = {0};
    assert_int_equal(melt_read_file("/nonexistent/x.txt", &buf, &len, &e), MELT_EIO);
    assert_non_null(strstr(e.msg, "/nonexistent/x.txt"));
    assert_null(buf);
}

static void sha256_hex_of(const void *data, size_t n, char hex[65])
{
    melt_sha256 s;
    uint8_t d[32];
    melt_sha256_init(&s);
    melt_sha256_update(&s, data, n);
    melt_sha256_final(&s, d);
    melt_sha256_hex(d, hex);
}

/* FIPS 180-2 example messages and their published digests. */
static void sha256_matches_standard_vectors(void **state)
{
    (void)state;
    char hex[65];
    sha256_hex_of("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    sha256_hex_of("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sha256_hex_of(two, strlen(two), hex);
    assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    /* one million 'a', fed in uneven pieces */
    static char a[1000000];
    memset(a, 'a', sizeof a);
    melt_sha256 s;
    uint8_t d[32];
    melt_sha256_init(&s);
    for (size_t off = 0, step = 1; off < sizeof a; off += step, step = step * 3 % 1000 + 1)
        melt_sha256_update(&s, a + off, off + step > sizeof a ? sizeof a - off : step);
    melt_sha256_final(&s, d);
    melt_sha256_hex(d, hex);
    assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

static void sha256_of_a_file_matches_sha256sum(void **state)
{
    (void)state;
    char hex[65];
    melt_error e = {0};
    /* sha256sum tests/fixtures/stories260K/stories260K.gguf */
    assert_int_equal(melt_sha256_file(fixture_path("stories260K/stories260K.gguf"), hex, &e), 0);
    assert_string_equal(hex, "270cba1bd5109f42d03350f60406024560464db173c0e387d91f0426d3bd256d");
    assert_int_equal(melt_sha256_file("/nonexistent/m.gguf", hex, &e), MELT_EIO);
    assert_non_null(strstr(e.msg, "/nonexistent/m.gguf"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(error_records_code_and_message),
        cmocka_unit_test(error_can_prefix_its_own_message),
        cmocka_unit_test(error_truncates_long_messages),
        cmocka_unit_test(types_have_ggml_geometry),
        cmocka_unit_test(types_reject_retired_and_unknown_ids),
        cmocka_unit_test(row_bytes_checks_blocks_and_overflow),
        cmocka_unit_test(cpu_features_string_lists_names),
        cmocka_unit_test(cpu_detect_matches_proc_cpuinfo),
        cmocka_unit_test(read_file_returns_all_bytes_nul_terminated),
        cmocka_unit_test(read_file_names_a_missing_path),
        cmocka_unit_test(sha256_matches_standard_vectors),
        cmocka_unit_test(sha256_of_a_file_matches_sha256sum),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* The backends' JSON reader (src/core/jscan.c). */
#include "testutil.h"

#include <math.h>
#include <time.h>

#include "melt/jscan.h"

static melt_jdoc *parse_ok(const char *s)
{
    melt_jdoc *d = NULL;
    melt_error err = {0};
    const int rc = melt_jscan_parse(s, strlen(s), &d, &err);
    if (rc != 0) fail_msg("parse of %s failed: %s", s, err.msg);
    return d;
}

static void jscan_reads_paths_into_nested_values(void **state)
{
    (void)state;
    melt_jdoc *d = parse_ok(" {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"He\"}},{\"index\":1}],"
                            "\"usage\":{\"prompt_tokens\":50,\"x\":-1.5e2},\"ok\":true,\"n\":null} ");
    const melt_jnode *r = melt_jdoc_root(d);
    assert_int_equal(melt_jnode_type(r), MELT_JOBJ);
    assert_int_equal(melt_jnode_count(r), 4);
    size_t len = 0;
    assert_string_equal(melt_jnode_str(melt_jnode_path(r, "choices.0.delta.content"), &len), "He");
    assert_int_equal(len, 2);
    assert_true(melt_jnode_num_or(r, "choices.1.index", -7) == 1.0);
    assert_true(melt_jnode_num_or(r, "usage.prompt_tokens", 0) == 50.0);
    assert_true(melt_jnode_num_or(r, "usage.x", 0) == -150.0);
    assert_true(melt_jnode_num_or(r, "usage.missing", 42) == 42.0);
    assert_null(melt_jnode_path(r, "choices.2"));
    assert_null(melt_jnode_path(r, "choices.0.delta.content.more"));
    bool b = false;
    assert_true(melt_jnode_bool(melt_jnode_get(r, "ok"), &b));
    assert_true(b);
    assert_int_equal(melt_jnode_type(melt_jnode_get(r, "n")), MELT_JNULL);
    assert_non_null(melt_jnode_get(r, "n"));
    assert_string_equal(melt_jnode_key(melt_jnode_at(r, 1)), "usage");
    melt_jdoc_free(d);
}

static void jscan_unescapes_strings_and_surrogate_pairs(void **state)
{
    (void)state;
    melt_jdoc *d = parse_ok("[\"a\\\"b\\\\c\\/d\\n\\t\", \"\\u00e9\\u20ac\", \"\\ud83d\\ude00\", \"x\\u0000y\"]");
    const melt_jnode *r = melt_jdoc_root(d);
    assert_string_equal(melt_jnode_str(melt_jnode_at(r, 0), NULL), "a\"b\\c/d\n\t");
    assert_string_equal(melt_jnode_str(melt_jnode_at(r, 1), NULL), "\xc3\xa9\xe2\x82\xac");
    assert_string_equal(melt_jnode_str(melt_jnode_at(r, 2), NULL), "\xf0\x9f\x98\x80");
    size_t len = 0;
    const char *s = melt_jnode_str(melt_jnode_at(r, 3), &len);
    assert_int_equal(len, 3);
    assert_memory_equal(s, "x\0y", 3);
    melt_jdoc_free(d);
}

/* The escape decoder event.c shares: bytes taken, code point, reasons. */
static void jscan_unicode_escape_gives_length_code_point_and_reason(void **state)
{
    (void)state;
    unsigned cp = 0;
    const char *why = NULL;
    assert_int_equal(melt_json_unicode_escape("\\u00e9\"", 7, &cp, &why), 6);
    assert_int_equal(cp, 0xE9);
    assert_int_equal(melt_json_unicode_escape("\\ud83d\\ude00", 12, &cp, &why), 12);
    assert_int_equal(cp, 0x1F600);
    assert_int_equal(melt_json_unicode_escape("\\u00e", 5, &cp, &why), 0);
    assert_non_null(strstr(why, "truncated"));
    assert_int_equal(melt_json_unicode_escape("\\u00g9", 6, &cp, &why), 0);
    assert_string_equal(why, "bad \\u escape");
    assert_int_equal(melt_json_unicode_escape("\\udc00", 6, &cp, &why), 0);
    assert_non_null(strstr(why, "lone low surrogate"));
    assert_int_equal(melt_json_unicode_escape("\\ud83d\\u0041", 12, &cp, &why), 0);
    assert_non_null(strstr(why, "without its low half"));
    assert_int_equal(melt_json_unicode_escape("\\ud83d\"", 7, &cp, &why), 0);
    assert_non_null(strstr(why, "without its low half"));
    char o[4];
    assert_int_equal(melt_utf8_put(o, 0x41), 1);
    assert_int_equal(melt_utf8_put(o, 0x20AC), 3);
    assert_memory_equal(o, "\xE2\x82\xAC", 3);
    assert_int_equal(melt_utf8_put(o, 0x1F600), 4);
    assert_memory_equal(o, "\xF0\x9F\x98\x80", 4);
}

static void jscan_rejects_bad_json_with_offset(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "", "{", "{\"a\":}", "[1,]", "{\"a\" 1}", "\"abc", "tru", "01", "1.", "-", "1e",
        "\"\\ud800\"", "\"\\udc00x\"", "\"\\x\"", "{} {}", "[\"a\nb\"]", "{\"a\":1,}", "nul",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        melt_jdoc *d = NULL;
        melt_error err = {0};
        const int rc = melt_jscan_parse(bad[i], strlen(bad[i]), &d, &err);
        if (rc != MELT_EFORMAT) fail_msg("'%s' parsed (rc %d)", bad[i], rc);
        assert_null(d);
        assert_non_null(strstr(err.msg, "at byte"));
    }
}

static void jscan_bounds_nesting_depth(void **state)
{
    (void)state;
    char deep[400];
    memset(deep, '[', 200);
    memset(deep + 200, ']', 200);
    melt_jdoc *d = NULL;
    melt_error err = {0};
    assert_int_equal(melt_jscan_parse(deep, sizeof deep, &d, &err), MELT_EFORMAT);
    assert_non_null(strstr(err.msg, "deep"));
    /* 64 levels are fine */
    char ok[128];
    memset(ok, '[', 64);
    memset(ok + 64, ']', 64);
    assert_int_equal(melt_jscan_parse(ok, sizeof ok, &d, &err), 0);
    melt_jdoc_free(d);
}

static void jscan_reads_the_recorded_final_chunk(void **state)
{
    (void)state;
    size_t n = 0;
    char *rec = slurp_text(fixture_path("llamacpp/chat-stream.http"), &n);
    char *last = NULL;
    for (char *p = strstr(rec, "data: {"); p; p = strstr(p + 1, "data: {")) last = p;
    assert_non_null(last);
    char *end = strchr(last, '\n');
    melt_jdoc *d = NULL;
    assert_int_equal(melt_jscan_parse(last + 6, (size_t)(end - last - 6), &d, NULL), 0);
    const melt_jnode *r = melt_jdoc_root(d);
    assert_true(melt_jnode_num_or(r, "usage.completion_tokens", 0) == 16);
    assert_true(fabs(melt_jnode_num_or(r, "timings.prompt_ms", 0) - 3.469) < 1e-12);
    assert_int_equal(melt_jnode_count(melt_jnode_get(r, "choices")), 0);
    melt_jdoc_free(d);
    free(rec);
}

/* A server's answer may hold a long array (llama-server's "tokens"); the
 * backends walk it by index, which must not take quadratic time. */
static void jscan_indexes_a_long_array_in_constant_time(void **state)
{
    (void)state;
    const size_t n = 400000;
    char *s = malloc(n * 8 + 16);
    assert_non_null(s);
    size_t len = 0;
    s[len++] = '[';
    for (size_t i = 0; i < n; i++) len += (size_t)sprintf(s + len, "%s%zu", i ? "," : "", i % 1000);
    s[len++] = ']';
    melt_jdoc *d = NULL;
    assert_int_equal(melt_jscan_parse(s, len, &d, NULL), 0);
    const melt_jnode *r = melt_jdoc_root(d);
    assert_int_equal(melt_jnode_count(r), n);
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (size_t i = 0; i < n; i++) {
        double v = -1;
        if (!melt_jnode_num(melt_jnode_at(r, i), &v) || v != (double)(i % 1000))
            fail_msg("element %zu reads %g", i, v);
        if (i % 4096 == 0) {
            clock_gettime(CLOCK_MONOTONIC, &t);
            if (t.tv_sec - t0.tv_sec > 3) fail_msg("indexing is too slow: %zu of %zu elements in 3 s", i, n);
        }
    }
    assert_null(melt_jnode_at(r, n));
    melt_jdoc_free(d);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(jscan_reads_paths_into_nested_values),
        cmocka_unit_test(jscan_unescapes_strings_and_surrogate_pairs),
        cmocka_unit_test(jscan_unicode_escape_gives_length_code_point_and_reason),
        cmocka_unit_test(jscan_rejects_bad_json_with_offset),
        cmocka_unit_test(jscan_bounds_nesting_depth),
        cmocka_unit_test(jscan_reads_the_recorded_final_chunk),
        cmocka_unit_test(jscan_indexes_a_long_array_in_constant_time),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

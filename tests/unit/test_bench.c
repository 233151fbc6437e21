/* melt bench: the -t/-p list parser, the model description, the output
 * formats (against llama-bench's own output in tests/fixtures/llamacpp/),
 * the statistics and a real timed test on stories260K. */
#include "testutil.h"

#include <math.h>

#include "melt/bench.h"
#include "melt/engine.h"
#include "melt/gguf.h"

static void expect_list(const char *s, const int *want, size_t n_want)
{
    int *v = NULL;
    size_t n = 0;
    melt_error err = {0};
    if (melt_bench_parse_list(s, 0, 1 << 20, &v, &n, &err) < 0)
        fail_msg("'%s': %s", s, err.msg);
    assert_int_equal(n, n_want);
    for (size_t k = 0; k < n; k++)
        assert_int_equal(v[k], want[k]);
    free(v);
}

static void expect_bad_list(const char *s, int min, int max)
{
    int *v = NULL;
    size_t n = 0;
    melt_error err = {0};
    assert_int_equal(melt_bench_parse_list(s, min, max, &v, &n, &err), MELT_EINVAL);
    assert_non_null(strstr(err.msg, s));   /* the message quotes the list */
    free(v);
}

static void lists_and_ranges_expand_like_llama_bench(void **state)
{
    (void)state;
    expect_list("4", (int[]){4}, 1);
    expect_list("1,2", (int[]){1, 2}, 2);
    expect_list("1-4", (int[]){1, 2, 3, 4}, 4);
    expect_list("1-8+2", (int[]){1, 3, 5, 7}, 4);
    expect_list("16-128*2", (int[]){16, 32, 64, 128}, 4);
    expect_list("1,4-6,0", (int[]){1, 4, 5, 6, 0}, 5);
    expect_list("3-3", (int[]){3}, 1);
}

static void bad_lists_are_refused(void **state)
{
    (void)state;
    expect_bad_list("", 0, 100);
    expect_bad_list("a", 0, 100);
    expect_bad_list("1,", 0, 100);
    expect_bad_list(",1", 0, 100);
    expect_bad_list("4-2", 0, 100);      /* backwards */
    expect_bad_list("1-4+0", 0, 100);    /* does not advance */
    expect_bad_list("1-4*1", 0, 100);
    expect_bad_list("0-4*2", 0, 100);    /* 0 * 2 stays 0 */
    expect_bad_list("1-4x", 0, 100);
    expect_bad_list("-1", 0, 100);
    expect_bad_list("0", 1, 100);        /* below min (threads) */
    expect_bad_list("1-200", 0, 100);    /* above max */
    expect_bad_list("99999999999", 0, 100);
}

/* Appending: two -t flags give one list. */
static void lists_append(void **state)
{
    (void)state;
    int *v = NULL;
    size_t n = 0;
    melt_error err = {0};
    assert_int_equal(melt_bench_parse_list("1", 1, 8, &v, &n, &err), 0);
    assert_int_equal(melt_bench_parse_list("2-3", 1, 8, &v, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_int_equal(v[2], 3);
    free(v);
}

static void model_type_size_and_params_match_llama_cpp(void **state)
{
    (void)state;
    melt_gguf *g = NULL;
    melt_error err = {0};
    assert_int_equal(melt_gguf_open(fixture_path("stories260K/stories260K.gguf"), &g, &err), 0);
    char buf[128];
    melt_bench_model_type(g, buf, sizeof buf);
    /* llama-bench.json of the fixtures */
    assert_string_equal(buf, "llama ?B (guessed) all F32");
    assert_int_equal(melt_bench_model_size(g), 1171200);
    assert_int_equal(melt_bench_model_n_params(g), 292800);
    melt_gguf_close(g);
    assert_int_equal(melt_gguf_open(fixture_path("quant/tiny-q4_0.gguf"), &g, &err), 0);
    melt_bench_model_type(g, buf, sizeof buf);
    assert_string_equal(buf, "llama ?B Q4_0");   /* 2 layers: no size label */
    melt_gguf_close(g);
    assert_int_equal(melt_gguf_open(fixture_path("quant/tiny-q4_k_m.gguf"), &g, &err), 0);
    melt_bench_model_type(g, buf, sizeof buf);
    assert_string_equal(buf, "llama ?B Q4_K - Medium");
    melt_gguf_close(g);
}

/* The fixture's first entry (llama-bench.json) as a result. */
static melt_bench_result fixture_result(uint64_t *ns, double *ts)
{
    melt_bench_result r = {0};
    snprintf(r.build_commit, sizeof r.build_commit, "80fb11a");
    r.build_number = 1;
    snprintf(r.cpu_info, sizeof r.cpu_info, "AMD EPYC");
    snprintf(r.backends, sizeof r.backends, "CPU");
    snprintf(r.model_filename, sizeof r.model_filename, "stories260K.gguf");
    snprintf(r.model_type, sizeof r.model_type, "llama ?B (guessed) all F32");
    r.model_size = 1171200;
    r.model_n_params = 292800;
    r.n_batch = 2048;
    r.n_ubatch = 512;
    r.n_threads = 1;
    snprintf(r.type_k, sizeof r.type_k, "f16");
    snprintf(r.type_v, sizeof r.type_v, "f16");
    r.n_prompt = 64;
    snprintf(r.test_time, sizeof r.test_time, "2026-11-25T12:30:28Z");
    ns[0] = 8877867;
    ns[1] = 8750207;
    ns[2] = 8746102;
    r.samples_ns = ns;
    r.samples_ts = ts;
    r.n_samples = 3;
    snprintf(r.kernels, sizeof r.kernels, "avx2");
    r.load_ms = 12.5;
    r.roofline_ts = r.roofline_frac = NAN;
    melt_bench_result_finish(&r);
    return r;
}

static void statistics_match_llama_bench(void **state)
{
    (void)state;
    uint64_t ns[3];
    double ts[3];
    melt_bench_result r = fixture_result(ns, ts);
    /* llama-bench.json: avg_ns 8791392, stddev_ns 74917, avg_ts 7280.199024,
     * stddev_ts 61.737018, samples_ts 7208.94 7314.11 7317.55 */
    assert_int_equal(r.avg_ns, 8791392);
    assert_int_equal(r.stddev_ns, 74917);
    assert_true(fabs(r.avg_ts - 7280.199024) < 1e-3);
    assert_true(fabs(r.stddev_ts - 61.737018) < 1e-3);
    assert_true(fabs(r.samples_ts[0] - 7208.94) < 0.01);
    assert_true(fabs(r.samples_ts[2] - 7317.55) < 0.01);
}

/* Print r in fmt into a string (malloc'd). */
static char *render(const melt_bench_result *r, size_t n, enum melt_bench_format fmt, bool roof)
{
    /* heap-held pointers: gcc's dangling-pointer check misreads locals here */
    char **buf = calloc(1, sizeof *buf);
    size_t *len = calloc(1, sizeof *len);
    FILE *f = open_memstream(buf, len);
    melt_bench_printer p = {.out = f, .fmt = fmt, .roofline = roof, .build_number = 1};
    snprintf(p.build_commit, sizeof p.build_commit, "80fb11a");
    melt_bench_print_begin(&p);
    for (size_t k = 0; k < n; k++)
        melt_bench_print_row(&p, &r[k]);
    melt_bench_print_end(&p);
    fclose(f);
    char *text = *buf;
    free(buf);
    free(len);
    return text;
}

static char *first_line(const char *s)
{
    const char *nl = strchr(s, '\n');
    return strndup(s, nl ? (size_t)(nl - s) : strlen(s));
}

/* Columns of llama-bench's CSV header that melt also writes keep their
 * relative order, and none of the ones melt writes is named differently. */
static void csv_header_follows_llama_bench(void **state)
{
    (void)state;
    uint64_t ns[3];
    double ts[3];
    melt_bench_result r = fixture_result(ns, ts);
    char *out = render(&r, 1, MELT_BENCH_CSV, false);
    char *ours = first_line(out);
    size_t n;
    char *ref = slurp(fixture_path("llamacpp/llama-bench.csv"), &n);
    char *theirs = first_line(ref);
    /* walk ours; every column llama-bench has must appear later in theirs */
    char wrapped[4096];
    snprintf(wrapped, sizeof wrapped, ",%s,", theirs);
    const char *pos = wrapped;
    int shared = 0;
    for (char *save = NULL, *c = strtok_r(ours, ",", &save); c; c = strtok_r(NULL, ",", &save)) {
        char pat[80];
        snprintf(pat, sizeof pat, ",%s,", c);
        if (!strstr(wrapped, pat))
            continue;   /* melt's own column */
        const char *at = strstr(pos, pat);
        assert_non_null(at);   /* out of llama-bench's order */
        pos = at + 1;
        shared++;
    }
    assert_int_equal(shared, 22);
    /* the values are quoted like llama-bench's */
    assert_non_null(strstr(out, "\"80fb11a\",\"1\",\"AMD EPYC\",\"\",\"CPU\",\"stories260K.gguf\","
                                "\"llama ?B (guessed) all F32\",\"1171200\",\"292800\""));
    assert_non_null(strstr(out, "\"8791392\",\"74917\",\"7280.199"));
    free(ours);
    free(theirs);
    free(ref);
    free(out);
}

static void md_looks_like_llama_bench(void **state)
{
    (void)state;
    uint64_t ns[3];
    double ts[3];
    melt_bench_result r = fixture_result(ns, ts);
    char *out = render(&r, 1, MELT_BENCH_MD, false);
    size_t n;
    char *ref = slurp(fixture_path("llamacpp/llama-bench.md"), &n);
    /* header and separator lines are byte-identical */
    const char *l2 = strchr(ref, '\n') + 1;
    const char *l3 = strchr(l2, '\n') + 1;
    assert_memory_equal(out, ref, (size_t)(l3 - ref));
    /* the row: same columns and widths; the fixture's own figures differ */
    assert_non_null(strstr(out, "| llama ?B (guessed) all F32     |   1.12 MiB |     0.29 M | CPU"
                                "        |       1 |            pp64 |      7280.20 ± 61.74 |\n"));
    assert_non_null(strstr(out, "\nbuild: 80fb11a (1)\n"));
    free(ref);
    free(out);
    out = render(&r, 1, MELT_BENCH_MD, true);
    assert_non_null(strstr(out, "| roofline t/s |"));
    free(out);
}

static void json_and_jsonl_have_llama_bench_shape(void **state)
{
    (void)state;
    uint64_t ns[3];
    double ts[3];
    melt_bench_result r[2];
    r[0] = fixture_result(ns, ts);
    r[1] = r[0];
    r[1].n_threads = 2;
    char *out = render(r, 2, MELT_BENCH_JSON, false);
    assert_true(strncmp(out, "[\n  {\n    \"build_commit\": \"80fb11a\",\n    \"build_number\": 1,\n",
                        60) == 0);
    assert_non_null(strstr(out, "    \"samples_ns\": [ 8877867, 8750207, 8746102 ],\n"
                                "    \"samples_ts\": [ 7208.94, 7314.11, 7317.55 ]\n  },\n  {\n"));
    assert_non_null(strstr(out, "\"avg_ts\": 7280.199"));
    assert_non_null(strstr(out, "\"n_threads\": 2,"));
    const size_t len = strlen(out);
    assert_string_equal(out + len - 5, "  }\n]\n" + 1);
    free(out);
    out = render(r, 2, MELT_BENCH_JSONL, true);
    /* two lines, each an object with the roofline fields (null for pp) */
    char *nl = strchr(out, '\n');
    assert_non_null(nl);
    assert_non_null(strchr(nl + 1, '\n'));
    assert_int_equal(out[0], '{');
    assert_non_null(strstr(out, "\"kernels\": \"avx2\", \"load_ms\": 12.500000, \"bw_read_gbs\": "));
    assert_non_null(strstr(out, "\"roofline_frac\": null, \"samples_ns\": [ 8877867, 8750207, "
                                "8746102 ],\"samples_ts\": [ 7208.94, 7314.11, 7317.55 ]}\n"));
    free(out);
}

static void sql_creates_and_inserts(void **state)
{
    (void)state;
    uint64_t ns[3];
    double ts[3];
    melt_bench_result r = fixture_result(ns, ts);
    snprintf(r.model_filename, sizeof r.model_filename, "it's.gguf");
    char *out = render(&r, 1, MELT_BENCH_SQL, false);
    assert_true(strncmp(out, "CREATE TABLE IF NOT EXISTS melt_bench (\n  build_commit TEXT,\n"
                             "  build_number INTEGER,\n", 74) == 0);
    assert_non_null(strstr(out, "  avg_ts REAL,\n"));
    assert_non_null(strstr(out, "  kernels TEXT,\n  load_ms REAL\n);\n"));
    assert_non_null(strstr(out, "'avx2', '12.500000');\n"));
    assert_non_null(strstr(out, "INSERT INTO melt_bench (build_commit, build_number, "));
    assert_non_null(strstr(out, "'it''s.gguf'"));   /* quotes doubled */
    /* every column llama-bench's table also has gets its SQL type */
    size_t n;
    char *ref = slurp(fixture_path("llamacpp/llama-bench.sql"), &n);
    char *refz = strndup(ref, n);
    int shared = 0;
    for (char *line = out; *line == ' ' || strncmp(line, "CREATE", 6) == 0;) {
        char *nl = strchr(line, '\n');
        if (line[0] == ' ' && line[1] == ' ') {
            char name[64], type[16], pat[100];
            if (sscanf(line, " %63s %15[A-Z]", name, type) == 2) {
                snprintf(pat, sizeof pat, "\n  %s ", name);
                const char *at = strstr(refz, pat);
                if (at) {
                    snprintf(pat, sizeof pat, "\n  %s %s", name, type);
                    assert_non_null(strstr(refz, pat));
                    shared++;
                }
            }
        }
        line = nl + 1;
    }
    assert_int_equal(shared, 22);
    free(refz);
    free(ref);
    free(out);
}

static void test_names(void **state)
{
    (void)state;
    char b[32];
    melt_bench_test_name(512, 0, b, sizeof b);
    assert_string_equal(b, "pp512");
    melt_bench_test_name(0, 128, b, sizeof b);
    assert_string_equal(b, "tg128");
    melt_bench_test_name(512, 128, b, sizeof b);
    assert_string_equal(b, "pp512+tg128");
}

static void a_real_test_times_every_repetition(void **state)
{
    (void)state;
    melt_model *m = NULL;
    melt_context *c = NULL;
    melt_error err = {0};
    assert_int_equal(melt_model_load(fixture_path("stories260K/stories260K.gguf"), NULL, &m, &err), 0);
    melt_context_params cp = melt_context_default_params();
    cp.n_ctx = 48;
    cp.n_threads = 1;
    assert_int_equal(melt_context_new(m, &cp, &c, &err), 0);
    melt_bench_test t = {.n_prompt = 16, .n_gen = 8, .n_vocab = melt_model_n_vocab(m), .bos = 1};
    uint64_t ns[3] = {0};
    assert_int_equal(melt_bench_run_test(c, &t, 3, true, 7, ns, &err), 0);
    for (int k = 0; k < 3; k++)
        assert_true(ns[k] > 0);
    /* the whole test ran: the cache holds the prompt and the generated tokens */
    assert_int_equal(melt_context_n_past(c), 24);
    /* a test larger than the context is refused, naming the sizes */
    t.n_prompt = 48;
    assert_int_equal(melt_bench_run_test(c, &t, 1, false, 7, ns, &err), MELT_EINVAL);
    assert_non_null(strstr(err.msg, "pp48+tg8"));
    /* bytes per token: every tensor but token_embd (stories260K has an output
     * matrix) plus the F16 KV cache of 10 positions */
    const uint64_t bpt = melt_bench_bytes_per_token(m, 10, 2);
    const melt_gguf *g = melt_model_gguf(m);
    const uint64_t emb = melt_gguf_find_tensor(g, "token_embd.weight")->n_bytes;
    const uint64_t kv = 2ull * 5 * 4 * (64 / 8) * 10 * 2;   /* layers 5, kv heads 4, head 8 */
    assert_int_equal(melt_model_n_layer(m), 5);
    assert_int_equal(melt_model_n_head_kv(m), 4);
    assert_int_equal(bpt, melt_bench_model_size(g) - emb + kv);
    melt_context_free(c);
    melt_model_free(m);
}

/* stories260K rewritten with a head size of 16 (key_length) where
 * n_embd / n_head is 8, as Gemma- and Qwen3-style files declare one: the
 * attention matrices take the new shapes (zeros), the rest is copied. */
static const char *wide_head_model(void)
{
    melt_gguf *g = NULL;
    melt_error err = {0};
    assert_int_equal(melt_gguf_open(fixture_path("stories260K/stories260K.gguf"), &g, &err), 0);
    melt_gguf_writer *w = melt_gguf_writer_new();
    assert_non_null(w);
    assert_int_equal(melt_gguf_writer_copy_kvs(w, g, &err), 0);
    assert_int_equal(melt_gguf_writer_set_u32(w, "llama.attention.key_length", 16, &err), 0);
    assert_int_equal(melt_gguf_writer_set_u32(w, "llama.attention.value_length", 16, &err), 0);
    static float zeros[128 * 64];
    for (uint64_t i = 0; i < melt_gguf_n_tensors(g); i++) {
        const melt_gguf_tensor *t = melt_gguf_tensor_at(g, i);
        char name[96];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        uint64_t ne[2] = {t->ne[0], t->ne[1]};
        const void *data = t->data;
        if (strstr(name, ".attn_q.weight")) {
            ne[0] = 64, ne[1] = 8 * 16, data = zeros;
        } else if (strstr(name, ".attn_k.weight") || strstr(name, ".attn_v.weight")) {
            ne[0] = 64, ne[1] = 4 * 16, data = zeros;
        } else if (strstr(name, ".attn_output.weight")) {
            ne[0] = 8 * 16, ne[1] = 64, data = zeros;
        }
        assert_int_equal(melt_gguf_writer_add_tensor(w, name, t->type, t->n_dims, ne, data, &err),
                         0);
    }
    const char *path = scratch_path("wide-head.gguf");
    assert_int_equal(melt_gguf_writer_write(w, path, NULL, NULL, &err), 0);
    melt_gguf_writer_free(w);
    melt_gguf_close(g);
    return path;
}

/* The KV cache term uses the model's head size, not n_embd / n_head. */
static void bytes_per_token_uses_the_head_size(void **state)
{
    (void)state;
    const char *path = wide_head_model();
    melt_model *m = NULL;
    melt_error err = {0};
    if (melt_model_load(path, NULL, &m, &err) != 0)
        fail_msg("%s", err.msg);
    const melt_gguf *g = melt_model_gguf(m);
    const uint64_t emb = melt_gguf_find_tensor(g, "token_embd.weight")->n_bytes;
    const uint64_t kv = 2ull * 5 * 4 * 16 * 10 * 2;   /* layers 5, kv heads 4, head 16 */
    assert_int_equal(melt_bench_bytes_per_token(m, 10, 2), melt_bench_model_size(g) - emb + kv);
    melt_model_free(m);
    unlink(path);
}

static void bandwidth_is_positive(void **state)
{
    (void)state;
    melt_error err = {0};
    const double bw = melt_bench_read_bandwidth(8u << 20, 2, 2, &err);
    assert_true(bw > 1e8);   /* more than 0.1 GB/s: anything real */
    assert_true(melt_bench_read_bandwidth(1 << 20, 0, 1, &err) == 0);
    assert_int_equal(err.code, MELT_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(lists_and_ranges_expand_like_llama_bench),
        cmocka_unit_test(bad_lists_are_refused),
        cmocka_unit_test(lists_append),
        cmocka_unit_test(model_type_size_and_params_match_llama_cpp),
        cmocka_unit_test(statistics_match_llama_bench),
        cmocka_unit_test(csv_header_follows_llama_bench),
        cmocka_unit_test(md_looks_like_llama_bench),
        cmocka_unit_test(json_and_jsonl_have_llama_bench_shape),
        cmocka_unit_test(sql_creates_and_inserts),
        cmocka_unit_test(test_names),
        cmocka_unit_test(a_real_test_times_every_repetition),
        cmocka_unit_test(bytes_per_token_uses_the_head_size),
        cmocka_unit_test(bandwidth_is_positive),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

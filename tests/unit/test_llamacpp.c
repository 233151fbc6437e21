/* The llamacpp backend's pure parts: the timing summary llama-completion
 * prints on stderr (the recorded fixture, other printers' names, partial
 * and garbage lines), the filter that takes the echoed prompt and the end
 * marker out of its stdout, and the backend table. */
#include <math.h>

#include "testutil.h"

#include <sys/stat.h>

#include "backends/llamacpp.h"
#include "melt/backend.h"

static bool near(double a, double b)
{
    return fabs(a - b) < 1e-9;
}

static void perf_reads_the_recorded_llama_completion_summary(void **state)
{
    (void)state;
    size_t n = 0;
    char *text = slurp(fixture_path("llamacpp/completion.stderr"), &n);
    melt_llamacpp_perf p;
    melt_llamacpp_perf_init(&p);
    /* load, sampling, prompt eval, eval, total; not samplers/unaccounted/graphs */
    assert_int_equal(melt_llamacpp_perf_parse(text, n, &p), 5);
    assert_int_equal(p.n_lines, 5);
    assert_true(near(p.load_ms, 3.51));
    assert_true(near(p.sampling_ms, 0.39));
    assert_true(near(p.prompt_ms, 0.37));
    assert_int_equal(p.prompt_n, 5);
    assert_true(near(p.prompt_per_second, 13513.51));
    assert_true(near(p.predicted_ms, 4.43));
    assert_int_equal(p.predicted_n, 31);
    assert_true(near(p.predicted_per_second, 6994.58));
    assert_true(near(p.total_ms, 5.63));
    assert_int_equal(p.total_n, 36);
    free(text);
}

static void perf_accepts_older_printers_and_crlf(void **state)
{
    (void)state;
    const char *t =
        "llama_perf_context_print:        load time =     120.00 ms\r\n"
        "llama_perf_context_print: prompt eval time =      10.50 ms /    12 tokens (    0.88 ms per token,  1142.86 tokens per second)\r\n"
        "llama_print_timings:        eval time =     200.25 ms /    63 runs   (    3.18 ms per token,   314.60 tokens per second)\n"
        "llama_perf_sampler_print:    sampling time =       2.00 ms /    64 runs   (    0.03 ms per token, 32000.00 tokens per second)";
    melt_llamacpp_perf p;
    melt_llamacpp_perf_init(&p);
    assert_int_equal(melt_llamacpp_perf_parse(t, strlen(t), &p), 4);
    assert_true(near(p.load_ms, 120));
    assert_int_equal(p.prompt_n, 12);
    assert_true(near(p.prompt_per_second, 1142.86));
    assert_int_equal(p.predicted_n, 63);
    assert_true(near(p.predicted_ms, 200.25));
    assert_true(near(p.sampling_ms, 2));
    assert_true(isnan(p.total_ms));   /* not seen */
    assert_int_equal(p.total_n, -1);
}

static void perf_ignores_garbage_and_partial_lines(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "common_perf_print:",
        "common_perf_print: load time",
        "common_perf_print: load time =",
        "common_perf_print: load time = ms",
        "common_perf_print: load time = 3.5",            /* cut before the unit */
        "common_perf_print: load time = 3.5 s",          /* not ms */
        "common_perf_print: load time = -3.5 ms",
        "common_perf_print: load time = 3.5.1 ms",
        "common_perf_print: load time = 1e3 ms",
        "common_perf_print: unaccounted time = 0.44 ms / 7.9 %",
        "common_perf_print:    graphs reused =         30",
        "load time = 3.5 ms",                            /* no printer name */
        "common_perf_print: nonsense time = 3.5 ms",
        "\xff\xfe common_perf_print: \x01 = \x02",
        "common_perf_print: load time = 123456789012345678901234567890123456789012345678901234567890 ms",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        melt_llamacpp_perf p;
        melt_llamacpp_perf_init(&p);
        if (melt_llamacpp_perf_line(bad[i], strlen(bad[i]), &p))
            fail_msg("line %zu read as a timing line: '%s'", i, bad[i]);
        assert_true(isnan(p.load_ms));
        assert_int_equal(p.n_lines, 0);
    }
    /* a line cut after its time keeps the time, not the count */
    melt_llamacpp_perf p;
    melt_llamacpp_perf_init(&p);
    const char *cut = "common_perf_print: prompt eval time =       0.37 ms /     5 tok";
    assert_true(melt_llamacpp_perf_line(cut, strlen(cut), &p));
    assert_true(near(p.prompt_ms, 0.37));
    assert_int_equal(p.prompt_n, -1);
    assert_true(isnan(p.prompt_per_second));
    /* a summary cut mid-way (a killed run): what is there is read */
    size_t n = 0;
    char *text = slurp(fixture_path("llamacpp/completion.stderr"), &n);
    const char *at = strstr(text, "prompt eval time");
    assert_non_null(at);
    melt_llamacpp_perf_init(&p);
    assert_int_equal(melt_llamacpp_perf_parse(text, (size_t)(at - text) + 32, &p), 3);
    assert_true(near(p.load_ms, 3.51));
    assert_true(near(p.prompt_ms, 0.37));
    assert_true(isnan(p.predicted_ms));
    free(text);
}

/* Push s through the filter in pieces of k bytes; the generated text. */
static const char *filter(const char *prompt, const char *s, size_t k, bool *eog)
{
    static char out[4096];
    char buf[512];
    size_t n = 0;
    melt_llamacpp_echo e;
    melt_llamacpp_echo_init(&e, prompt);
    for (size_t off = 0; off < strlen(s); off += k) {
        const size_t len = strlen(s) - off < k ? strlen(s) - off : k;
        const size_t got = melt_llamacpp_echo_push(&e, s + off, len, buf, sizeof buf);
        memcpy(out + n, buf, got);
        n += got;
    }
    n += melt_llamacpp_echo_finish(&e, out + n, sizeof out - n);
    out[n] = '\0';
    *eog = e.eog;
    return out;
}

static void echo_filter_drops_the_prompt_and_end_marker(void **state)
{
    (void)state;
    size_t n = 0;
    char *text = slurp(fixture_path("llamacpp/completion.stdout"), &n);
    char *s = strndup(text, n);
    bool eog;
    for (size_t k = 1; k <= 64; k *= 4) {
        const char *got = filter("Once upon a time", s, k, &eog);
        /* the answer without the echo and the two newlines the program ends with */
        assert_int_equal(strlen(got), strlen(s) - strlen(" Once upon a time") - 2);
        assert_memory_equal(got, s + strlen(" Once upon a time"), strlen(got));
        assert_string_equal(got + strlen(got) - 8, " she saw");
        assert_false(eog);
    }
    /* end of generation: the marker goes, eog is set */
    assert_string_equal(filter("Hi", " Hi there. [end of text]\n", 3, &eog), " there.");
    assert_true(eog);
    /* a marker-like text inside the answer stays */
    assert_string_equal(filter("Hi", " Hi [end of text] and more", 2, &eog), " [end of text] and more");
    assert_false(eog);
    /* newlines inside the answer stay, those at the end go */
    assert_string_equal(filter("Hi", " Hi\n\nthere\n\n\n", 1, &eog), "\n\nthere");
    /* output that is not the echo is all text */
    assert_string_equal(filter("Hello", "Help me", 1, &eog), "Help me");
    assert_string_equal(filter(NULL, " [end", 1, &eog), " [end");
    assert_string_equal(filter("", "abc", 1, &eog), "abc");
    free(s);
    free(text);
}

static void backend_table_finds_builtin_and_llamacpp(void **state)
{
    (void)state;
    const melt_backend_ops *b = melt_backend_find("builtin"), *l = melt_backend_find("llamacpp");
    assert_non_null(b);
    assert_non_null(l);
    assert_string_equal(b->name, "builtin");
    assert_string_equal(l->name, "llamacpp");
    assert_null(melt_backend_find("llama"));
    assert_null(melt_backend_find(NULL));
    assert_string_equal(melt_backend_end_name(MELT_BACKEND_END_LOST), "lost");
    assert_string_equal(melt_backend_end_name(MELT_BACKEND_END_CONTEXT), "context");
    /* an llamacpp server that cannot start is an error naming the model */
    melt_backend_params p = melt_backend_default_params();
    p.model = "/nonexistent/m.gguf";
    melt_backend *be = NULL;
    melt_error err = {0};
    assert_true(l->open(&p, NULL, &be, &err) < 0);
    assert_null(be);
    assert_non_null(strstr(err.msg, "/nonexistent/m.gguf"));
    /* cli mode with a binary that is not there */
    p.model = fixture_path("stories260K/stories260K.gguf");
    p.mode = "cli";
    p.binary = "/nonexistent/llama-completion";
    assert_true(l->open(&p, NULL, &be, &err) < 0);
    assert_non_null(strstr(err.msg, "/nonexistent/llama-completion"));
}

/* A long prompt that the program's echo matches until near its end is
 * text after all: all of it reaches the reply (a fixed 4 KiB buffer
 * used to drop what did not fit). */
static void cli_long_echo_that_diverges_is_kept_whole(void **state)
{
    (void)state;
    const char *fake = scratch_path("fake-cli.sh");
    FILE *f = fopen(fake, "w");
    assert_non_null(f);
    /* echo the prompt with its last byte changed, then one word */
    fputs("#!/bin/sh\nwhile [ $# -gt 0 ]; do [ \"$1\" = -p ] && p=$2; shift; done\n"
          "printf ' %sX answer' \"${p%?}\"\n", f);
    fclose(f);
    assert_int_equal(chmod(fake, 0755), 0);
    enum { N = 9000 };
    char *prompt = malloc(N + 1);
    assert_non_null(prompt);
    memset(prompt, 'a', N);
    prompt[N - 1] = 'b';
    prompt[N] = '\0';
    melt_backend_params p = melt_backend_default_params();
    p.model = fixture_path("stories260K/stories260K.gguf");
    p.mode = "cli";
    p.binary = fake;
    const melt_backend_ops *l = melt_backend_find("llamacpp");
    melt_backend *be = NULL;
    melt_error err = {0};
    if (l->open(&p, NULL, &be, &err) < 0) fail_msg("%s", err.msg);
    melt_backend_request rq = {.prompt = prompt, .n_predict = 4};
    melt_backend_result res;
    if (l->request(be, &rq, NULL, &res, &err) < 0) fail_msg("%s", err.msg);
    assert_non_null(res.reply);
    /* " " + the N-1 matched prompt bytes + "X answer" */
    assert_int_equal(strlen(res.reply), 1 + (N - 1) + 8);
    assert_int_equal(res.reply[0], ' ');
    for (size_t i = 1; i < N; i++)
        if (res.reply[i] != 'a') fail_msg("reply byte %zu is '%c'", i, res.reply[i]);
    assert_string_equal(res.reply + N, "X answer");
    melt_backend_result_free(&res);
    l->close(be);
    free(prompt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(perf_reads_the_recorded_llama_completion_summary),
        cmocka_unit_test(perf_accepts_older_printers_and_crlf),
        cmocka_unit_test(perf_ignores_garbage_and_partial_lines),
        cmocka_unit_test(echo_filter_drops_the_prompt_and_end_marker),
        cmocka_unit_test(backend_table_finds_builtin_and_llamacpp),
        cmocka_unit_test(cli_long_echo_that_diverges_is_kept_whole),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

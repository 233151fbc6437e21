/* The builtin backend through melt_backend_ops on stories260K: exact
 * token prompts reproduce llama.cpp's greedy continuation; chat turns
 * reuse the KV cache (the second turn decodes only what is new), reset()
 * forgets it, the oldest exchanges are dropped past max_context_tokens;
 * figures and errors. */
#include <math.h>

#include "testutil.h"

#include "melt/backend.h"

typedef struct seen {
    int n_tok, n_started, n_prompt, n_figs;
    int32_t ids[256];
    int64_t t_started, t_first;
    char figs[16][32];
    int stop_after;          /* > 0: ask to stop after this many tokens */
} seen;

static int on_token(void *ctx, int64_t t, int index, int32_t id, const char *text, size_t len)
{
    seen *s = ctx;
    (void)text;
    (void)len;
    assert_int_equal(index, s->n_tok);
    if (s->n_tok == 0)
        s->t_first = t;
    if (s->n_tok < 256)
        s->ids[s->n_tok] = id;
    s->n_tok++;
    return s->stop_after > 0 && s->n_tok >= s->stop_after;
}

static void on_figure(void *ctx, const char *key, double v, const char *unit)
{
    seen *s = ctx;
    assert_true(isfinite(v));
    assert_non_null(unit);
    if (s->n_figs < 16)
        snprintf(s->figs[s->n_figs], sizeof s->figs[0], "%s", key);
    s->n_figs++;
}

static void on_started(void *ctx, int64_t t, int n_prompt)
{
    seen *s = ctx;
    s->n_started++;
    s->t_started = t;
    s->n_prompt = n_prompt;
}

static melt_backend_sink sink_of(seen *s)
{
    memset(s, 0, sizeof *s);
    melt_backend_sink k = {.ctx = s, .token = on_token, .figure = on_figure, .started = on_started};
    return k;
}

static melt_backend *open_builtin(const char *tmpl, int n_ctx)
{
    const melt_backend_ops *ops = melt_backend_find("builtin");
    melt_backend_params p = melt_backend_default_params();
    p.model = fixture_path("stories260K/stories260K.gguf");
    p.chat_template = tmpl;
    p.n_threads = 1;
    p.n_ctx = n_ctx;
    p.sampling.temperature = 0;   /* greedy */
    p.sampling.repeat_penalty = 1;
    seen s;
    melt_backend_sink k = sink_of(&s);
    melt_backend *b = NULL;
    melt_error err = {0};
    if (ops->open(&p, &k, &b, &err) < 0)
        fail_msg("open: %s", err.msg);
    /* n_threads and n_ctx at open */
    assert_int_equal(s.n_figs, 2);
    assert_string_equal(s.figs[0], "n_threads");
    assert_string_equal(s.figs[1], "n_ctx");
    return b;
}

static void builtin_tokens_match_llama_cpp_greedy(void **state)
{
    (void)state;
    const melt_backend_ops *ops = melt_backend_find("builtin");
    melt_backend *b = open_builtin(NULL, 256);
    assert_true(ops->caps_of(b) & MELT_BACKEND_TOKENS);
    assert_non_null(ops->tokenizer(b));
    /* "Once upon a time" as llama.cpp tokenizes it, then its greedy answer
     * (tests/fixtures/stories260K/greedy.jsonl, first line) */
    const melt_token prompt[] = {1, 403, 407, 261, 378};
    const int32_t want[] = {432, 383, 286, 261, 376, 298, 315, 421};
    melt_backend_request rq = {.tokens = prompt, .n_tokens = 5, .n_predict = 8, .ignore_eos = true};
    seen s;
    melt_backend_sink k = sink_of(&s);
    melt_backend_result res;
    melt_error err = {0};
    assert_int_equal(ops->request(b, &rq, &k, &res, &err), 0);
    assert_int_equal(s.n_started, 1);
    assert_int_equal(s.n_prompt, 5);
    assert_true(s.t_first >= s.t_started);
    assert_int_equal(s.n_tok, 8);
    assert_memory_equal(s.ids, want, sizeof want);
    assert_int_equal(res.end, MELT_BACKEND_END_LIMIT);
    assert_int_equal(res.n_gen, 8);
    assert_string_equal(s.figs[0], "prompt_ns");
    assert_string_equal(s.figs[5], "decode_tps");
    melt_backend_result_free(&res);
    /* the sink asking to stop ends the request as "caller" */
    k = sink_of(&s);
    s.stop_after = 3;
    assert_int_equal(ops->request(b, &rq, &k, &res, &err), 0);
    assert_int_equal(res.end, MELT_BACKEND_END_CALLER);
    assert_int_equal(s.n_tok, 3);
    melt_backend_result_free(&res);
    /* an empty prompt is refused before anything starts */
    rq.n_tokens = 0;
    k = sink_of(&s);
    assert_int_equal(ops->request(b, &rq, &k, &res, &err), MELT_EINVAL);
    assert_int_equal(s.n_started, 0);
    ops->close(b);
}

static int chat_turn(const melt_backend_ops *ops, melt_backend *b, const melt_chat_msg *msgs, size_t n,
                     int max_ctx, char **reply)
{
    melt_backend_request rq = {.messages = msgs, .n_messages = n, .n_predict = 6,
                               .ignore_eos = true, .max_context_tokens = max_ctx};
    seen s;
    melt_backend_sink k = sink_of(&s);
    melt_backend_result res;
    melt_error err = {0};
    if (ops->request(b, &rq, &k, &res, &err) < 0)
        fail_msg("chat: %s", err.msg);
    assert_int_equal(s.n_tok, 6);
    assert_non_null(res.reply);
    *reply = res.reply;
    return s.n_prompt;
}

static void builtin_chat_reuses_the_cache_until_reset(void **state)
{
    (void)state;
    const melt_backend_ops *ops = melt_backend_find("builtin");
    melt_backend *b = open_builtin("chatml", 512);
    melt_chat_msg m[5] = {{"user", "Hello there, who are you?"}};
    char *r1 = NULL, *r2 = NULL, *r3 = NULL;
    const int n1 = chat_turn(ops, b, m, 1, 0, &r1);
    m[1] = (melt_chat_msg){"assistant", r1};
    m[2] = (melt_chat_msg){"user", "Tell me a story."};
    const int n2 = chat_turn(ops, b, m, 3, 0, &r2);
    /* after reset the same history is decoded whole */
    ops->reset(b);
    const int n2_again = chat_turn(ops, b, m, 3, 0, &r3);
    /* turn 2 decoded only what the cache did not hold: the whole history
     * less turn 1's prompt and the answer's tokens decoded then */
    assert_true(n1 > 10);
    assert_true(n2 > 0);
    assert_true(n2_again - n2 > n1);
    free(r1);
    free(r2);
    free(r3);
    ops->close(b);
}

static void builtin_chat_drops_oldest_exchanges_past_the_limit(void **state)
{
    (void)state;
    const melt_backend_ops *ops = melt_backend_find("builtin");
    melt_backend *b = open_builtin("chatml", 512);
    melt_chat_msg m[5] = {{"user", "Hello there, who are you and where do you live?"}};
    char *r1 = NULL, *r2 = NULL;
    const int n1 = chat_turn(ops, b, m, 1, 0, &r1);
    m[1] = (melt_chat_msg){"assistant", r1};
    m[2] = (melt_chat_msg){"user", "Hi"};
    /* a limit the whole history does not fit in (with the 6-token answer):
     * the first exchange goes, the prompt changed, all of it is decoded */
    const int n2 = chat_turn(ops, b, m, 3, n1 + 6, &r2);
    assert_true(n2 < n1);
    assert_true(n2 > 3);
    free(r1);
    free(r2);
    ops->close(b);
}

static void builtin_open_and_chat_errors_say_why(void **state)
{
    (void)state;
    const melt_backend_ops *ops = melt_backend_find("builtin");
    melt_backend_params p = melt_backend_default_params();
    melt_backend *b = NULL;
    melt_error err = {0};
    p.model = "/nonexistent/x.gguf";
    assert_true(ops->open(&p, NULL, &b, &err) < 0);
    assert_null(b);
    assert_non_null(strstr(err.msg, "/nonexistent/x.gguf"));
    p.model = fixture_path("stories260K/stories260K.gguf");
    p.chat_template = "klingon";
    assert_int_equal(ops->open(&p, NULL, &b, &err), MELT_EINVAL);
    assert_non_null(strstr(err.msg, "unknown chat template 'klingon'"));
    /* no template named and none in the file: chat fails, text works */
    p.chat_template = NULL;
    p.n_ctx = 64;
    assert_int_equal(ops->open(&p, NULL, &b, &err), 0);
    const melt_chat_msg m = {"user", "Hi"};
    melt_backend_request rq = {.messages = &m, .n_messages = 1, .n_predict = 2};
    melt_backend_result res;
    assert_true(ops->request(b, &rq, NULL, &res, &err) < 0);
    assert_non_null(strstr(err.msg, "no chat template"));
    melt_backend_request tq = {.prompt = "Once upon a time", .n_predict = 2, .ignore_eos = true};
    assert_int_equal(ops->request(b, &tq, NULL, &res, &err), 0);
    assert_int_equal(res.n_gen, 2);
    assert_int_equal(res.n_prompt, 5);
    melt_backend_result_free(&res);
    /* a text longer than the context */
    char big[2048];
    for (size_t i = 0; i + 4 < sizeof big; i += 4)
        memcpy(big + i, "cat ", 4);
    big[sizeof big - 1] = '\0';
    tq.prompt = big;
    assert_int_equal(ops->request(b, &tq, NULL, &res, &err), MELT_EINVAL);
    assert_non_null(strstr(err.msg, "context overflow"));
    ops->close(b);
    ops->close(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(builtin_tokens_match_llama_cpp_greedy),
        cmocka_unit_test(builtin_chat_reuses_the_cache_until_reset),
        cmocka_unit_test(builtin_chat_drops_oldest_exchanges_past_the_limit),
        cmocka_unit_test(builtin_open_and_chat_errors_say_why),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* melt serve's request layer: parsing and validation of request bodies,
 * prompt tokens, stop strings, and the response bodies (checked by
 * parsing them back with jansson). No sockets. */
#include "testutil.h"

#include <jansson.h>
#include <math.h>

#include "melt/gguf.h"
#include "melt/serve.h"

static melt_serve_defaults defaults(void)
{
    melt_serve_defaults d = {.sampling = melt_sampler_default_params(), .max_tokens = -1,
                             .n_vocab = 512};
    return d;
}

/* Parse body as kind; returns the status, the message in msg (static). */
static int parse(enum melt_serve_kind kind, const char *body, melt_serve_request *r)
{
    static melt_error err;
    melt_serve_defaults d = defaults();
    memset(&err, 0, sizeof err);
    const int st = melt_serve_parse_request(kind, body, strlen(body), &d, r, &err);
    if (st) print_message("status %d: %s\n", st, err.msg);
    return st;
}

static int parse_err(enum melt_serve_kind kind, const char *body, const char *want_in_msg)
{
    melt_serve_request r;
    melt_error err = {0};
    melt_serve_defaults d = defaults();
    const int st = melt_serve_parse_request(kind, body, strlen(body), &d, &r, &err);
    if (want_in_msg && !strstr(err.msg, want_in_msg))
        fail_msg("body %s: message '%s' lacks '%s'", body, err.msg, want_in_msg);
    /* a refused request leaves nothing to free */
    assert_null(r.prompt);
    assert_null(r.msgs);
    assert_int_equal(r.n_stop, 0);
    return st;
}

static void completion_fields_are_read(void **state)
{
    (void)state;
    melt_serve_request r;
    assert_int_equal(parse(MELT_SERVE_COMPLETION,
                           "{\"model\":\"x\",\"prompt\":\"Once upon\",\"max_tokens\":7,\"temperature\":0,"
                           "\"top_k\":5,\"top_p\":0.5,\"min_p\":0.1,\"seed\":42,\"stop\":[\"\\n\",\"The\"],"
                           "\"stream\":true,\"stream_options\":{\"include_usage\":true},\"ignore_eos\":true,"
                           "\"repeat_penalty\":1.1,\"logit_bias\":{},\"user\":\"u\",\"echo\":false}",
                           &r),
                     0);
    assert_int_equal(r.kind, MELT_SERVE_COMPLETION);
    assert_string_equal(r.prompt, "Once upon");
    assert_int_equal(r.prompt_len, 9);
    assert_int_equal(r.max_tokens, 7);
    assert_true(r.sampling.temperature == 0.0f);
    assert_int_equal(r.sampling.top_k, 5);
    assert_true(r.sampling.top_p == 0.5f);
    assert_true(fabsf(r.sampling.min_p - 0.1f) < 1e-7f);
    assert_true(fabsf(r.sampling.repeat_penalty - 1.1f) < 1e-6f);
    assert_int_equal(r.sampling.seed, 42);
    assert_int_equal(r.n_stop, 2);
    assert_string_equal(r.stop[0], "\n");
    assert_string_equal(r.stop[1], "The");
    assert_true(r.stream && r.include_usage && r.ignore_eos);
    assert_true(r.cache_prompt);  /* the default */
    melt_serve_request_free(&r);
}

static void absent_and_null_fields_take_the_defaults(void **state)
{
    (void)state;
    melt_serve_request r;
    assert_int_equal(parse(MELT_SERVE_COMPLETION,
                           "{\"prompt\":\"hi\",\"max_tokens\":null,\"temperature\":null,\"stop\":null}", &r),
                     0);
    const melt_sampler_params sp = melt_sampler_default_params();
    assert_int_equal(r.max_tokens, -1);
    assert_true(r.sampling.temperature == sp.temperature);
    assert_int_equal(r.sampling.top_k, sp.top_k);
    assert_int_equal(r.n_stop, 0);
    assert_false(r.stream);
    melt_serve_request_free(&r);
    /* seed -1 (llama.cpp's "random") keeps the default seed */
    assert_int_equal(parse(MELT_SERVE_COMPLETION, "{\"prompt\":\"hi\",\"seed\":-1,\"stop\":\"x\"}", &r), 0);
    assert_int_equal(r.sampling.seed, sp.seed);
    assert_int_equal(r.n_stop, 1);
    assert_string_equal(r.stop[0], "x");
    melt_serve_request_free(&r);
}

static void token_id_prompts_are_accepted_and_checked(void **state)
{
    (void)state;
    melt_serve_request r;
    assert_int_equal(parse(MELT_SERVE_COMPLETION, "{\"prompt\":[1,432,511]}", &r), 0);
    assert_null(r.prompt);
    assert_int_equal(r.n_prompt_ids, 3);
    assert_int_equal(r.prompt_ids[1], 432);
    melt_serve_request_free(&r);
    assert_int_equal(parse(MELT_SERVE_COMPLETION, "{\"prompt\":[[1,2]]}", &r), 0);
    assert_int_equal(r.n_prompt_ids, 2);
    melt_serve_request_free(&r);
    assert_int_equal(parse(MELT_SERVE_COMPLETION, "{\"prompt\":[\"one\"]}", &r), 0);
    assert_string_equal(r.prompt, "one");
    melt_serve_request_free(&r);
    assert_int_equal(parse_err(MELT_SERVE_COMPLETION, "{\"prompt\":[1,512]}", "outside the vocabulary"), 400);
    assert_int_equal(parse_err(MELT_SERVE_COMPLETION, "{\"prompt\":[-1]}", "outside the vocabulary"), 400);
    assert_int_equal(parse_err(MELT_SERVE_COMPLETION, "{\"prompt\":[1,\"a\"]}", "'prompt'"), 400);
    assert_int_equal(parse_err(MELT_SERVE_COMPLETION, "{\"prompt\":[\"a\",\"b\"]}", "one prompt"), 400);
    assert_int_equal(parse_err(MELT_SERVE_COMPLETION, "{\"prompt\":[]}", "empty"), 400);
}

static void chat_messages_are_read(void **state)
{
    (void)state;
    melt_serve_request r;
    assert_int_equal(parse(MELT_SERVE_CHAT,
                           "{\"messages\":[{\"role\":\"developer\",\"content\":\"Be brief.\"},"
                           "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Hel\"},"
                           "{\"type\":\"text\",\"text\":\"lo\"}],\"name\":\"bob\"},"
                           "{\"role\":\"assistant\",\"content\":null}],\"max_completion_tokens\":3}",
                           &r),
                     0);
    assert_int_equal(r.n_msgs, 3);
    assert_string_equal(r.msgs[0].role, "system");
    assert_string_equal(r.msgs[0].content, "Be brief.");
    assert_string_equal(r.msgs[1].content, "Hello");
    assert_string_equal(r.msgs[2].content, "");
    assert_int_equal(r.max_tokens, 3);
    melt_serve_request_free(&r);
}

static void wrong_types_are_400_naming_the_field(void **state)
{
    (void)state;
    const struct {
        enum melt_serve_kind kind;
        const char *body, *field;
    } cases[] = {
        {MELT_SERVE_COMPLETION, "{\"prompt\":\"a\",\"max_tokens\":\"x\"}", "'max_tokens'"},
        {MELT_SERVE_COMPLETION, "{\"prompt\":\"a\",\"max_tokens\":2.5}", "'max_tokens'"},
        {MELT_SERVE_COMPLETION, "{\"prompt\":\"a\",\"temperature\":\"hot\"}", "'temperature'"},
        {MELT_SERVE_COMPLETION, "{\"prompt\":\"a\",\"top_k\":1.5}", "'top_k'"},
        {MELT_SERVE_COMPLETION, "{\"prompt\":\"a\",\"top_p\":[]}", "'top_p'"},
        {MELT_SERVE_COMPLETION, "{\"prompt\":\"a\",\"seed\":\"1\"}", "'seed'"},
        {MELT_SERVE_COMPLETION, "{\"prompt\":\"a\",\"stream\":1}", "'stream'"},
        {MELT_SERVE_COMPLETION, "{\"prompt\":\"a\",\"cache_prompt\":\"no\"}", "'cache_prompt'"},
        {MELT_SERVE_COMPLETION, "{\"prompt\":\"a\",\"stop\":5}", "'stop'"},
        {MELT_SERVE_COMPLETION, "{\"prompt\":\"a\",\"stop\":[\"x\",1]}", "'stop'"},
        {MELT_SERVE_COMPLETION, "{\"prompt\":\"a\",\"stream_options\":true}", "'stream_options'"},
        {MELT_SERVE_COMPLETION, "{\"prompt\":\"a\",\"stream_options\":{\"include_usage\":\"y\"}}",
         "'include_usage'"},
        {MELT_SERVE_COMPLETION, "{\"prompt\":\"a\",\"model\":3}", "'model'"},
        {MELT_SERVE_COMPLETION, "{\"prompt\":7}", "'prompt'"},
        {MELT_SERVE_COMPLETION, "{\"prompt\":{}}", "'prompt'"},
        {MELT_SERVE_COMPLETION, "{}", "'prompt' is required"},
        {MELT_SERVE_CHAT, "{\"messages\":\"hi\"}", "'messages'"},
        {MELT_SERVE_CHAT, "{\"messages\":[\"hi\"]}", "'messages[0]'"},
        {MELT_SERVE_CHAT, "{\"messages\":[{\"role\":1,\"content\":\"a\"}]}", "'messages[0].role'"},
        {MELT_SERVE_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":5}]}", "'messages[0].content'"},
        {MELT_SERVE_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]}",
         "only text"},
        {MELT_SERVE_CHAT, "{\"messages\":[]}", "empty"},
        {MELT_SERVE_CHAT, "{\"prompt\":\"a\"}", "'messages' is required"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_int_equal(parse_err(cases[i].kind, cases[i].body, cases[i].field), 400);
}

static void bad_values_are_400(void **state)
{
    (void)state;
    const char *bodies[] = {
        "{\"prompt\":\"a\",\"max_tokens\":-1}",
        "{\"prompt\":\"a\",\"max_tokens\":-5}",
        "{\"prompt\":\"a\",\"temperature\":-0.5}",
        "{\"prompt\":\"a\",\"top_p\":1.5}",
        "{\"prompt\":\"a\",\"min_p\":-0.1}",
        "{\"prompt\":\"a\",\"top_k\":-2}",
        "{\"prompt\":\"a\",\"repeat_penalty\":0}",
        "{\"prompt\":\"a\",\"seed\":-2}",
        "{\"prompt\":\"a\",\"n\":2}",
        "{\"prompt\":\"a\",\"frequency_penalty\":0.5}",
        "{\"prompt\":\"a\",\"presence_penalty\":3}",
        "{\"prompt\":\"a\",\"stop\":[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\",\"10\",\"11\","
        "\"12\",\"13\",\"14\",\"15\",\"16\",\"17\"]}",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++)
        assert_int_equal(parse_err(MELT_SERVE_COMPLETION, bodies[i], "'"), 400);
    /* the values at the edges pass */
    melt_serve_request r;
    assert_int_equal(parse(MELT_SERVE_COMPLETION,
                           "{\"prompt\":\"a\",\"max_tokens\":0,\"top_p\":1,\"min_p\":0,\"top_k\":-1,"
                           "\"frequency_penalty\":0,\"presence_penalty\":0,\"n\":1}", &r), 0);
    assert_int_equal(r.max_tokens, 0);
    melt_serve_request_free(&r);
}

static void malformed_json_is_400(void **state)
{
    (void)state;
    assert_int_equal(parse_err(MELT_SERVE_COMPLETION, "{\"prompt\": ", "malformed JSON"), 400);
    assert_int_equal(parse_err(MELT_SERVE_COMPLETION, "", "malformed JSON"), 400);
    assert_int_equal(parse_err(MELT_SERVE_COMPLETION, "[1,2]", "JSON object"), 400);
    assert_int_equal(parse_err(MELT_SERVE_COMPLETION, "\"x\"", NULL), 400);
    assert_int_equal(parse_err(MELT_SERVE_COMPLETION, "{\"prompt\":\"a\",\"prompt\":\"b\"}", "malformed JSON"), 400);
    assert_int_equal(parse_err(MELT_SERVE_COMPLETION, "{\"prompt\":\"a\\u0000b\"}", "malformed JSON"), 400);
    const char bin[] = "{\"prompt\":\"\xff\xfe\"}";
    melt_serve_request r;
    melt_error err = {0};
    melt_serve_defaults d = defaults();
    assert_int_equal(melt_serve_parse_request(MELT_SERVE_COMPLETION, bin, sizeof bin - 1, &d, &r, &err), 400);
}

/* ---- prompt tokens ---- */

static melt_tokenizer *stories_tokenizer(void)
{
    melt_gguf *g = NULL;
    melt_tokenizer *t = NULL;
    melt_error err = {0};
    if (melt_gguf_open(fixture_path("stories260K/stories260K.gguf"), &g, &err) < 0 ||
        melt_tokenizer_load(g, &t, &err) < 0)
        fail_msg("stories260K tokenizer: %s", err.msg);
    melt_gguf_close(g);
    return t;
}

static void prompts_tokenize_like_generate_and_respect_the_context(void **state)
{
    (void)state;
    melt_tokenizer *tok = stories_tokenizer();
    melt_serve_request r;
    melt_token *ids = NULL;
    size_t n = 0;
    melt_error err = {0};
    assert_int_equal(parse(MELT_SERVE_COMPLETION, "{\"prompt\":\"Once upon a time\"}", &r), 0);
    assert_int_equal(melt_serve_prompt_tokens(&r, tok, MELT_CHAT_CHATML, 512, &ids, &n, &err), 0);
    /* llama.cpp's ids for this prompt (greedy.jsonl): BOS then 4 tokens */
    assert_int_equal(n, 5);
    assert_int_equal(ids[0], 1);
    free(ids);
    /* 5 tokens do not fit a context of 4 */
    assert_int_equal(melt_serve_prompt_tokens(&r, tok, MELT_CHAT_CHATML, 4, &ids, &n, &err), 400);
    assert_non_null(strstr(err.msg, "more than the context of 4"));
    assert_null(ids);
    melt_serve_request_free(&r);

    assert_int_equal(parse(MELT_SERVE_COMPLETION, "{\"prompt\":\"\"}", &r), 0);
    n = 0;
    /* "" still gets a BOS, so it is one token */
    assert_int_equal(melt_serve_prompt_tokens(&r, tok, MELT_CHAT_CHATML, 512, &ids, &n, &err), 0);
    assert_int_equal(n, 1);
    free(ids);
    melt_serve_request_free(&r);

    assert_int_equal(parse(MELT_SERVE_COMPLETION, "{\"prompt\":[5,6,7]}", &r), 0);
    assert_int_equal(melt_serve_prompt_tokens(&r, tok, MELT_CHAT_CHATML, 512, &ids, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_int_equal(ids[2], 7);
    free(ids);
    melt_serve_request_free(&r);

    assert_int_equal(parse(MELT_SERVE_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}", &r), 0);
    assert_int_equal(melt_serve_prompt_tokens(&r, tok, MELT_CHAT_CHATML, 512, &ids, &n, &err), 0);
    assert_true(n > 5);  /* the template's markers around "Hi" */
    free(ids);
    melt_serve_request_free(&r);
    /* a role the template does not know */
    assert_int_equal(parse(MELT_SERVE_CHAT, "{\"messages\":[{\"role\":\"wizard\",\"content\":\"Hi\"}]}", &r), 0);
    assert_int_equal(melt_serve_prompt_tokens(&r, tok, MELT_CHAT_CHATML, 512, &ids, &n, &err), 400);
    melt_serve_request_free(&r);
    melt_tokenizer_free(tok);
}

/* ---- stop strings ---- */

/* Push pieces through a stopper; the concatenated released text. */
static char *run_stopper(char *const *stop, size_t n_stop, const char *const *pieces, size_t n,
                         bool *stopped)
{
    static char buf[512];
    size_t len = 0;
    melt_serve_stopper s;
    melt_serve_stopper_init(&s, stop, n_stop);
    for (size_t i = 0; i < n; i++) {
        const char *out;
        size_t k;
        assert_int_equal(melt_serve_stopper_push(&s, pieces[i], strlen(pieces[i]), &out, &k), 0);
        memcpy(buf + len, out, k);
        len += k;
    }
    const char *out;
    size_t k;
    melt_serve_stopper_flush(&s, &out, &k);
    memcpy(buf + len, out, k);
    len += k;
    buf[len] = '\0';
    *stopped = s.stopped;
    melt_serve_stopper_free(&s);
    return buf;
}

static void stop_strings_cut_the_text_even_across_pieces(void **state)
{
    (void)state;
    char *stop[] = {"END", "\n\n"};
    bool stopped;
    const char *p1[] = {"one ", "two E", "N", "D three"};
    assert_string_equal(run_stopper(stop, 2, p1, 4, &stopped), "one two ");
    assert_true(stopped);
    const char *p2[] = {"a\n", "\nb"};
    assert_string_equal(run_stopper(stop, 2, p2, 2, &stopped), "a");
    assert_true(stopped);
    /* a partial match that does not complete is released */
    const char *p3[] = {"EN", "d", " E"};
    assert_string_equal(run_stopper(stop, 2, p3, 3, &stopped), "ENd E");
    assert_false(stopped);
    /* the earliest of two matches wins */
    const char *p4[] = {"x\n\nyEND"};
    assert_string_equal(run_stopper(stop, 2, p4, 1, &stopped), "x");
    /* no stop strings: everything at once */
    const char *p5[] = {"abc", "def"};
    assert_string_equal(run_stopper(NULL, 0, p5, 2, &stopped), "abcdef");
    assert_false(stopped);
}

static void held_text_is_released_as_soon_as_it_cannot_match(void **state)
{
    (void)state;
    char *stop[] = {"abc"};
    melt_serve_stopper s;
    melt_serve_stopper_init(&s, stop, 1);
    const char *out;
    size_t n;
    assert_int_equal(melt_serve_stopper_push(&s, "xxa", 3, &out, &n), 0);
    assert_int_equal(n, 2);  /* "a" is held */
    assert_memory_equal(out, "xx", 2);
    assert_int_equal(melt_serve_stopper_push(&s, "b", 1, &out, &n), 0);
    assert_int_equal(n, 0);  /* "ab" held */
    assert_int_equal(melt_serve_stopper_push(&s, "x", 1, &out, &n), 0);
    assert_int_equal(n, 3);
    assert_memory_equal(out, "abx", 3);
    melt_serve_stopper_free(&s);
}

/* ---- responses ---- */

static json_t *parse_json(char *s)
{
    assert_non_null(s);
    json_error_t e;
    json_t *o = json_loads(s, 0, &e);
    if (!o) fail_msg("not JSON (%s): %s", e.text, s);
    free(s);
    return o;
}

static melt_serve_result sample_result(enum melt_serve_kind kind)
{
    melt_serve_result r = {.kind = kind, .id = "cmpl-abc", .created = 1700000000, .model = "stories260K",
                           .text = "Hi \"there\"\n", .text_len = 11, .finish = MELT_SERVE_FINISH_LENGTH,
                           .n_prompt = 5, .n_gen = 16, .prompt_ns = 2000000, .predicted_ns = 8000000};
    return r;
}

static void completion_body_has_openai_and_llama_fields(void **state)
{
    (void)state;
    melt_serve_result r = sample_result(MELT_SERVE_COMPLETION);
    json_t *o = parse_json(melt_serve_result_json(&r));
    assert_string_equal(json_string_value(json_object_get(o, "object")), "text_completion");
    assert_string_equal(json_string_value(json_object_get(o, "id")), "cmpl-abc");
    assert_string_equal(json_string_value(json_object_get(o, "model")), "stories260K");
    assert_int_equal(json_integer_value(json_object_get(o, "created")), 1700000000);
    json_t *c = json_array_get(json_object_get(o, "choices"), 0);
    assert_string_equal(json_string_value(json_object_get(c, "text")), "Hi \"there\"\n");
    assert_string_equal(json_string_value(json_object_get(c, "finish_reason")), "length");
    assert_int_equal(json_integer_value(json_object_get(c, "index")), 0);
    json_t *u = json_object_get(o, "usage");
    assert_int_equal(json_integer_value(json_object_get(u, "prompt_tokens")), 5);
    assert_int_equal(json_integer_value(json_object_get(u, "completion_tokens")), 16);
    assert_int_equal(json_integer_value(json_object_get(u, "total_tokens")), 21);
    json_t *t = json_object_get(o, "timings");
    assert_int_equal(json_integer_value(json_object_get(t, "prompt_n")), 5);
    assert_true(fabs(json_number_value(json_object_get(t, "prompt_ms")) - 2.0) < 1e-9);
    assert_true(fabs(json_number_value(json_object_get(t, "prompt_per_second")) - 2500.0) < 1e-6);
    assert_int_equal(json_integer_value(json_object_get(t, "predicted_n")), 16);
    assert_true(fabs(json_number_value(json_object_get(t, "predicted_ms")) - 8.0) < 1e-9);
    assert_true(fabs(json_number_value(json_object_get(t, "predicted_per_token_ms")) - 0.5) < 1e-9);
    assert_true(fabs(json_number_value(json_object_get(t, "predicted_per_second")) - 2000.0) < 1e-6);
    assert_int_equal(json_integer_value(json_object_get(t, "cache_n")), 0);
    json_decref(o);
    /* 3 of the 5 prompt tokens came from the cache: 2 decoded in 2 ms */
    r.n_cached = 3;
    o = parse_json(melt_serve_result_json(&r));
    t = json_object_get(o, "timings");
    assert_int_equal(json_integer_value(json_object_get(t, "cache_n")), 3);
    assert_int_equal(json_integer_value(json_object_get(t, "prompt_n")), 2);
    assert_true(fabs(json_number_value(json_object_get(t, "prompt_per_second")) - 1000.0) < 1e-6);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "usage"), "prompt_tokens")), 5);
    json_decref(o);
}

static void chat_body_has_an_assistant_message(void **state)
{
    (void)state;
    melt_serve_result r = sample_result(MELT_SERVE_CHAT);
    r.finish = MELT_SERVE_FINISH_STOP;
    json_t *o = parse_json(melt_serve_result_json(&r));
    assert_string_equal(json_string_value(json_object_get(o, "object")), "chat.completion");
    json_t *c = json_array_get(json_object_get(o, "choices"), 0);
    json_t *m = json_object_get(c, "message");
    assert_string_equal(json_string_value(json_object_get(m, "role")), "assistant");
    assert_string_equal(json_string_value(json_object_get(m, "content")), "Hi \"there\"\n");
    assert_string_equal(json_string_value(json_object_get(c, "finish_reason")), "stop");
    json_decref(o);
}

static void stream_chunks_have_deltas_finish_and_usage(void **state)
{
    (void)state;
    melt_serve_result r = sample_result(MELT_SERVE_CHAT);
    melt_serve_chunk role = {.role_only = true}, delta = {.text = "ab", .len = 1},
                     fin = {.finish = MELT_SERVE_FINISH_LENGTH}, usage = {.usage_only = true};
    json_t *o = parse_json(melt_serve_chunk_json(&r, &role));
    assert_string_equal(json_string_value(json_object_get(o, "object")), "chat.completion.chunk");
    json_t *c = json_array_get(json_object_get(o, "choices"), 0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(c, "delta"), "role")), "assistant");
    assert_true(json_is_null(json_object_get(c, "finish_reason")));
    json_decref(o);
    o = parse_json(melt_serve_chunk_json(&r, &delta));
    c = json_array_get(json_object_get(o, "choices"), 0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(c, "delta"), "content")), "a");
    assert_null(json_object_get(o, "usage"));
    json_decref(o);
    o = parse_json(melt_serve_chunk_json(&r, &fin));
    c = json_array_get(json_object_get(o, "choices"), 0);
    assert_int_equal(json_object_size(json_object_get(c, "delta")), 0);
    assert_string_equal(json_string_value(json_object_get(c, "finish_reason")), "length");
    assert_non_null(json_object_get(o, "timings"));
    json_decref(o);
    o = parse_json(melt_serve_chunk_json(&r, &usage));
    assert_int_equal(json_array_size(json_object_get(o, "choices")), 0);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "usage"), "total_tokens")), 21);
    json_decref(o);

    r.kind = MELT_SERVE_COMPLETION;
    o = parse_json(melt_serve_chunk_json(&r, &delta));
    assert_string_equal(json_string_value(json_object_get(o, "object")), "text_completion");
    c = json_array_get(json_object_get(o, "choices"), 0);
    assert_string_equal(json_string_value(json_object_get(c, "text")), "a");
    json_decref(o);
}

static void error_bodies_carry_status_type_and_message(void **state)
{
    (void)state;
    const struct {
        int status;
        const char *type;
    } cases[] = {{400, "invalid_request_error"}, {413, "invalid_request_error"},
                 {404, "not_found_error"}, {503, "unavailable_error"}, {500, "server_error"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *o = parse_json(melt_serve_error_json(cases[i].status, "bad \"x\""));
        json_t *e = json_object_get(o, "error");
        assert_string_equal(json_string_value(json_object_get(e, "message")), "bad \"x\"");
        assert_string_equal(json_string_value(json_object_get(e, "type")), cases[i].type);
        assert_int_equal(json_integer_value(json_object_get(e, "code")), cases[i].status);
        json_decref(o);
    }
}

static void models_body_lists_the_model(void **state)
{
    (void)state;
    melt_serve_model_info m = {.name = "stories260K", .created = 5, .n_vocab = 512, .n_ctx = 512,
                               .n_ctx_train = 2048, .n_embd = 64, .n_params = 292800,
                               .size_bytes = 1185376};
    json_t *o = parse_json(melt_serve_models_json(&m));
    assert_string_equal(json_string_value(json_object_get(o, "object")), "list");
    json_t *d = json_array_get(json_object_get(o, "data"), 0);
    assert_string_equal(json_string_value(json_object_get(d, "id")), "stories260K");
    assert_string_equal(json_string_value(json_object_get(d, "object")), "model");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(d, "meta"), "n_params")), 292800);
    json_decref(o);
}

static void ids_differ_and_keep_their_prefix(void **state)
{
    (void)state;
    char a[48], b[48];
    melt_serve_make_id("cmpl-", 1, a, sizeof a);
    melt_serve_make_id("cmpl-", 2, b, sizeof b);
    assert_int_equal(strlen(a), 5 + 24);
    assert_int_equal(strncmp(a, "cmpl-", 5), 0);
    assert_string_not_equal(a, b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(completion_fields_are_read),
        cmocka_unit_test(absent_and_null_fields_take_the_defaults),
        cmocka_unit_test(token_id_prompts_are_accepted_and_checked),
        cmocka_unit_test(chat_messages_are_read),
        cmocka_unit_test(wrong_types_are_400_naming_the_field),
        cmocka_unit_test(bad_values_are_400),
        cmocka_unit_test(malformed_json_is_400),
        cmocka_unit_test(prompts_tokenize_like_generate_and_respect_the_context),
        cmocka_unit_test(stop_strings_cut_the_text_even_across_pieces),
        cmocka_unit_test(held_text_is_released_as_soon_as_it_cannot_match),
        cmocka_unit_test(completion_body_has_openai_and_llama_fields),
        cmocka_unit_test(chat_body_has_an_assistant_message),
        cmocka_unit_test(stream_chunks_have_deltas_finish_and_usage),
        cmocka_unit_test(error_bodies_carry_status_type_and_message),
        cmocka_unit_test(models_body_lists_the_model),
        cmocka_unit_test(ids_differ_and_keep_their_prefix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Evaluation and generation library code: llama-perplexity's standard
 * error, the NLL of a logits row, perplexity on stories260K against
 * llama.cpp's figure, the generation loop (greedy ids, a prompt split over
 * the cache, stop reasons), the UTF-8 stream and the profiler. */
#include "testutil.h"

#include <math.h>

#include "engine/profile.h"
#include "melt/engine.h"
#include "melt/eval.h"
#include "melt/generate.h"
#include "melt/sampler.h"
#include "melt/tokenizer.h"

#define STORIES "stories260K/stories260K.gguf"

/* ---- fixtures ---- */

typedef struct env {
    melt_model *m;
    melt_tokenizer *tok;
} env;

static env env_load(void)
{
    env e = {0};
    melt_error err = {0};
    if (melt_model_load(fixture_path(STORIES), NULL, &e.m, &err) < 0) fail_msg("model: %s", err.msg);
    if (melt_tokenizer_load(melt_model_gguf(e.m), &e.tok, &err) < 0) fail_msg("tokenizer: %s", err.msg);
    return e;
}

static void env_free(env *e)
{
    melt_tokenizer_free(e->tok);
    melt_model_free(e->m);
}

static melt_context *ctx_new(const melt_model *m, int n_ctx)
{
    melt_context_params p = melt_context_default_params();
    p.n_ctx = n_ctx;
    p.n_threads = 2;
    melt_context *c = NULL;
    melt_error err = {0};
    if (melt_context_new(m, &p, &c, &err) < 0) fail_msg("context: %s", err.msg);
    return c;
}

static melt_sampler *greedy(const melt_model *m)
{
    melt_sampler_params p = melt_sampler_default_params();
    p.temperature = 0.0f;
    melt_sampler *s = NULL;
    melt_error err = {0};
    if (melt_sampler_new(&p, melt_model_n_vocab(m), &s, &err) < 0) fail_msg("sampler: %s", err.msg);
    return s;
}

/* ---- perplexity arithmetic ---- */

static void ppl_se_follows_llama_perplexity(void **state)
{
    (void)state;
    /* NLLs 1, 2, 3, 4: mean 2.5, E[x^2] - mean^2 = 7.5 - 6.25 = 1.25 */
    double ppl, se;
    melt_ppl_from_sums(10.0, 30.0, 4, &ppl, &se);
    assert_float_equal(ppl, exp(2.5), 1e-12);
    assert_float_equal(se, sqrt(1.25 / 3.0) * exp(2.5), 1e-12);
    /* llama.cpp's numbers for stories260K, story.txt, -c 128 come out of the
     * same formula: 756 tokens, mean 1.3012944, se 0.23280 */
    melt_ppl_from_sums(0.0, 0.0, 0, &ppl, &se);
    assert_true(ppl == 0.0 && se == 0.0);
}

static void ppl_se_is_zero_when_undefined(void **state)
{
    (void)state;
    double ppl, se;
    melt_ppl_from_sums(2.0, 4.0, 1, &ppl, &se);  /* one token */
    assert_float_equal(ppl, exp(2.0), 1e-12);
    assert_true(se == 0.0);
    melt_ppl_from_sums(6.0, 12.0, 3, &ppl, &se);  /* all equal: no variance */
    assert_float_equal(ppl, exp(2.0), 1e-12);
    assert_true(se == 0.0);
}

static void nll_is_minus_log_softmax(void **state)
{
    (void)state;
    const float uniform[4] = {0.5f, 0.5f, 0.5f, 0.5f};
    assert_float_equal(melt_nll_of(uniform, 4, 2), log(4.0), 1e-9);
    const float l5[4] = {0.0f, 0.0f, 0.0f, (float)log(5.0)};  /* p = 5/8 */
    assert_float_equal(melt_nll_of(l5, 4, 3), log(8.0 / 5.0), 1e-6);
    assert_float_equal(melt_nll_of(l5, 4, 0), log(8.0), 1e-6);
    const float big[2] = {1000.0f, 0.0f};  /* no overflow */
    assert_float_equal(melt_nll_of(big, 2, 0), 0.0, 1e-12);
    assert_float_equal(melt_nll_of(big, 2, 1), 1000.0, 1e-6);
}

/* ---- perplexity on stories260K ---- */

typedef struct progress_log {
    int calls, last_chunk;
    bool ordered;
} progress_log;

static void on_progress(const melt_ppl_progress *p, void *user)
{
    progress_log *l = user;
    l->calls++;
    if (p->chunk != l->last_chunk + 1 || p->n_chunks != 12 || !(p->ppl > 1.0)) l->ordered = false;
    l->last_chunk = p->chunk;
}

static void ppl_matches_llama_perplexity_on_story(void **state)
{
    (void)state;
    env e = env_load();
    melt_context *c = ctx_new(e.m, 128);
    size_t len;
    char *text = slurp(fixture_path("stories260K/story.txt"), &len);
    melt_ppl_params p = melt_ppl_default_params();
    p.n_ctx = 128;
    melt_ppl_result r;
    melt_error err = {0};
    progress_log log = {.ordered = true};
    if (melt_eval_ppl(e.m, c, e.tok, text, len, &p, on_progress, &log, &r, &err) < 0)
        fail_msg("ppl: %s", err.msg);
    /* llama-perplexity -c 128 -b 128: PPL = 3.6740 +/- 0.23280, 12 chunks */
    assert_int_equal(r.n_chunks, 12);
    assert_int_equal(r.n_scored, 12 * 63);
    assert_int_equal(r.n_tokens, 1651);
    if (fabs(r.ppl - 3.6740) > 0.0005) fail_msg("ppl %.6f, llama.cpp 3.6740", r.ppl);
    if (fabs(r.ppl_se - 0.23280) > 0.0023) fail_msg("se %.6f, llama.cpp 0.23280", r.ppl_se);
    assert_int_equal(log.calls, 12);
    assert_true(log.ordered);
    free(text);
    melt_context_free(c);
    env_free(&e);
}

static void ppl_rejects_short_text_and_small_context(void **state)
{
    (void)state;
    env e = env_load();
    melt_context *c = ctx_new(e.m, 64);
    const char *text = "Once upon a time there was a cat.";
    melt_ppl_params p = melt_ppl_default_params();
    melt_ppl_result r;
    melt_error err = {0};
    p.n_ctx = 16;
    assert_int_equal(melt_eval_ppl(e.m, c, e.tok, text, strlen(text), &p, NULL, NULL, &r, &err), MELT_EINVAL);
    assert_non_null(strstr(err.msg, "needs at least 32"));
    p.n_ctx = 128;  /* more than the context holds */
    assert_int_equal(melt_eval_ppl(e.m, c, e.tok, text, strlen(text), &p, NULL, NULL, &r, &err), MELT_EINVAL);
    p.n_ctx = 3;
    assert_int_equal(melt_eval_ppl(e.m, c, e.tok, text, strlen(text), &p, NULL, NULL, &r, &err), MELT_EINVAL);
    melt_context_free(c);
    env_free(&e);
}

/* ---- generation ---- */

/* llama.cpp's greedy ids for "Once upon a time" (greedy.jsonl, first line) */
static const melt_token once_prompt[5] = {1, 403, 407, 261, 378};
static const melt_token once_greedy[16] = {432, 383, 286, 261, 376, 298, 315, 421,
                                           395, 317, 426, 338, 401, 396, 267, 337};

typedef struct gen_log {
    int calls, stop_after;
    melt_token ids[64];
    char text[1024];
    size_t len;
} gen_log;

static int on_gen(const melt_gen_token *t, void *user)
{
    gen_log *g = user;
    if (t->id != MELT_TOKEN_NULL && g->calls < 64) g->ids[g->calls] = t->id;
    if (g->len + t->len < sizeof g->text) {
        memcpy(g->text + g->len, t->text, t->len);
        g->len += t->len;
    }
    g->calls++;
    return g->stop_after && g->calls >= g->stop_after;
}

static void generate_greedy_matches_llamacpp(void **state)
{
    (void)state;
    env e = env_load();
    melt_context *c = ctx_new(e.m, 256);
    melt_sampler *s = greedy(e.m);
    melt_generate_params p = melt_generate_default_params();
    p.n_predict = 16;
    p.ignore_eos = true;
    gen_log g = {0};
    melt_generate_stats st;
    melt_token *ids = NULL;
    melt_error err = {0};
    if (melt_generate(c, e.tok, s, once_prompt, 5, 0, &p, on_gen, &g, &ids, &st, &err) < 0)
        fail_msg("generate: %s", err.msg);
    assert_int_equal(st.n_gen, 16);
    assert_int_equal(st.n_prompt, 5);
    assert_int_equal(st.stop, MELT_STOP_LIMIT);
    assert_int_equal(st.n_past, 5 + 15);  /* the last token is not decoded */
    assert_memory_equal(ids, once_greedy, sizeof once_greedy);
    assert_memory_equal(g.ids, once_greedy, sizeof once_greedy);
    g.text[g.len] = '\0';
    assert_string_equal(g.text, ", there was a little girl named Lily. She loved to play");
    assert_true(melt_generate_prompt_tps(&st) > 0.0 && melt_generate_decode_tps(&st) > 0.0);
    free(ids);
    melt_sampler_free(s);
    melt_context_free(c);
    env_free(&e);
}

/* A prompt whose first part is already in the cache (as in a chat) gives
 * the same tokens as decoding it whole. */
static void generate_continues_from_cached_prefix(void **state)
{
    (void)state;
    env e = env_load();
    melt_context *c = ctx_new(e.m, 256);
    melt_sampler *s = greedy(e.m);
    melt_error err = {0};
    /* something else first, then rewind to 3 cached prompt tokens */
    const melt_token junk[4] = {1, 300, 301, 302};
    assert_int_equal(melt_decode(c, junk, 4, 0, MELT_LOGITS_NONE, NULL, &err), 0);
    assert_int_equal(melt_decode(c, once_prompt, 3, 0, MELT_LOGITS_NONE, NULL, &err), 0);
    melt_generate_params p = melt_generate_default_params();
    p.n_predict = 16;
    p.ignore_eos = true;
    melt_generate_stats st;
    melt_token *ids = NULL;
    if (melt_generate(c, e.tok, s, once_prompt + 3, 2, 3, &p, NULL, NULL, &ids, &st, &err) < 0)
        fail_msg("generate: %s", err.msg);
    assert_int_equal(st.n_prompt, 2);
    assert_memory_equal(ids, once_greedy, sizeof once_greedy);
    free(ids);
    melt_sampler_free(s);
    melt_context_free(c);
    env_free(&e);
}

static void generate_stops_at_context_and_caller(void **state)
{
    (void)state;
    env e = env_load();
    melt_context *c = ctx_new(e.m, 12);
    melt_sampler *s = greedy(e.m);
    melt_generate_params p = melt_generate_default_params();
    p.n_predict = -1;
    melt_generate_stats st;
    melt_error err = {0};
    gen_log g = {0};
    assert_int_equal(melt_generate(c, e.tok, s, once_prompt, 5, 0, &p, on_gen, &g, NULL, &st, &err), 0);
    assert_int_equal(st.stop, MELT_STOP_CTX);
    assert_int_equal(st.n_gen, 8);  /* 7 decoded after the prompt fill 12 positions, plus the last */
    assert_int_equal(st.n_past, 12);
    assert_memory_equal(g.ids, once_greedy, 8 * sizeof *once_greedy);

    gen_log g2 = {.stop_after = 3};
    assert_int_equal(melt_generate(c, e.tok, s, once_prompt, 5, 0, &p, on_gen, &g2, NULL, &st, &err), 0);
    assert_int_equal(st.stop, MELT_STOP_CALLER);
    assert_int_equal(st.n_gen, 3);

    /* a prompt that does not fit is an error that says so */
    const melt_token many[13] = {1};
    assert_int_equal(melt_generate(c, e.tok, s, many, 13, 0, &p, NULL, NULL, NULL, &st, &err), MELT_EINVAL);
    assert_non_null(strstr(err.msg, "context overflow"));
    assert_int_equal(melt_generate(c, e.tok, s, many, 0, 0, &p, NULL, NULL, NULL, &st, &err), MELT_EINVAL);
    melt_sampler_free(s);
    melt_context_free(c);
    env_free(&e);
}

/* ---- UTF-8 stream ---- */

static size_t push_str(melt_utf8_stream *u, const char *s, char *out)
{
    return melt_utf8_push(u, s, strlen(s), out);
}

static void utf8_holds_split_characters(void **state)
{
    (void)state;
    melt_utf8_stream u = {0};
    char out[64];
    assert_int_equal(push_str(&u, "caf\xC3", out), 3);  /* "caf", the lead byte held */
    assert_memory_equal(out, "caf", 3);
    assert_int_equal(push_str(&u, "\xA9!", out), 3);
    assert_memory_equal(out, "\xC3\xA9!", 3);
    /* the euro sign over three pushes */
    assert_int_equal(push_str(&u, "\xE2", out), 0);
    assert_int_equal(push_str(&u, "\x82", out), 0);
    assert_int_equal(push_str(&u, "\xAC", out), 3);
    assert_memory_equal(out, "\xE2\x82\xAC", 3);
    /* a four-byte emoji in one push passes through */
    assert_int_equal(push_str(&u, "\xF0\x9F\x98\x81", out), 4);
    assert_int_equal(melt_utf8_flush(&u, out), 0);
}

static void utf8_replaces_invalid_bytes(void **state)
{
    (void)state;
    melt_utf8_stream u = {0};
    char out[64];
    assert_int_equal(push_str(&u, "\xFF" "a", out), 4);  /* never valid */
    assert_memory_equal(out, "\xEF\xBF\xBD" "a", 4);
    assert_int_equal(push_str(&u, "\xC3" "a", out), 4);  /* cut short by ASCII */
    assert_memory_equal(out, "\xEF\xBF\xBD" "a", 4);
    assert_int_equal(push_str(&u, "\x80", out), 3);  /* stray continuation */
    assert_int_equal(push_str(&u, "\xE0\x80", out), 6);  /* overlong: both replaced */
    assert_int_equal(push_str(&u, "\xED\xA0", out), 6);  /* surrogate */
    assert_int_equal(push_str(&u, "\xF0\x9F", out), 0);  /* held, then cut by the end */
    assert_int_equal(melt_utf8_flush(&u, out), 3);
    assert_memory_equal(out, "\xEF\xBF\xBD", 3);
    assert_int_equal(melt_utf8_flush(&u, out), 0);
}

/* ---- profiler ---- */

static void profile_counts_ops_and_layers(void **state)
{
    (void)state;
    env e = env_load();
    melt_context *c = ctx_new(e.m, 64);
    melt_sampler *s = greedy(e.m);
    melt_profile *prof = NULL;
    melt_error err = {0};
    assert_int_equal(melt_profile_new(melt_model_n_layer(e.m), &prof, &err), 0);
    melt_profile_attach(c, prof);
    assert_ptr_equal(melt_profile_of(c), prof);
    melt_generate_params p = melt_generate_default_params();
    p.n_predict = 4;
    p.ignore_eos = true;
    melt_generate_stats st;
    assert_int_equal(melt_generate(c, e.tok, s, once_prompt, 5, 0, &p, NULL, NULL, NULL, &st, &err), 0);
    /* 4 decodes (prompt + 3 tokens), 5 layers, 7 matmuls a layer + the classifier */
    assert_int_equal(prof->op_calls[MELT_PROF_SAMPLING], 4);
    assert_int_equal(prof->op_calls[MELT_PROF_ATTENTION], 4 * 5);
    assert_int_equal(prof->op_calls[MELT_PROF_EMBED], 4);
    assert_int_equal(prof->op_calls[MELT_PROF_MATMUL], 4 * (5 * 4 + 1));
    uint64_t layers = 0;
    for (int l = 0; l <= prof->n_layer; l++) layers += prof->layer_ns[l];
    assert_true(layers == melt_profile_total_ns(prof));
    assert_true(prof->layer_ns[0] > 0);
    char *buf = NULL;
    size_t blen = 0;
    FILE *f = open_memstream(&buf, &blen);
    melt_profile_print(prof, f);
    fclose(f);
    assert_non_null(strstr(buf, "\nmatmul "));
    assert_non_null(strstr(buf, "\nattention "));
    assert_non_null(strstr(buf, "\nother "));
    free(buf);
    /* detached: nothing more is recorded */
    const uint64_t before = melt_profile_total_ns(prof);
    melt_profile_attach(c, NULL);
    assert_int_equal(melt_generate(c, e.tok, s, once_prompt, 5, 0, &p, NULL, NULL, NULL, &st, &err), 0);
    assert_true(melt_profile_total_ns(prof) == before);
    melt_profile_reset(prof);
    assert_true(melt_profile_total_ns(prof) == 0);
    melt_profile_free(prof);
    melt_sampler_free(s);
    melt_context_free(c);
    env_free(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ppl_se_follows_llama_perplexity),
        cmocka_unit_test(ppl_se_is_zero_when_undefined),
        cmocka_unit_test(nll_is_minus_log_softmax),
        cmocka_unit_test(ppl_matches_llama_perplexity_on_story),
        cmocka_unit_test(ppl_rejects_short_text_and_small_context),
        cmocka_unit_test(generate_greedy_matches_llamacpp),
        cmocka_unit_test(generate_continues_from_cached_prefix),
        cmocka_unit_test(generate_stops_at_context_and_caller),
        cmocka_unit_test(utf8_holds_split_characters),
        cmocka_unit_test(utf8_replaces_invalid_bytes),
        cmocka_unit_test(profile_counts_ops_and_layers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

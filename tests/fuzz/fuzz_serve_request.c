/* Fuzz target: melt serve's request parser (melt_serve_parse_request).
 * The first byte picks the endpoint (even: completions, odd: chat), the
 * rest is the body. A body that parses must give values the sampler
 * accepts and token ids inside the vocabulary; its text prompt then goes
 * through the stop-string matcher (the released text must be a prefix of
 * the prompt holding no stop string) and into a response body that must
 * parse back with the same text. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "melt/sampler.h"
#include "melt/serve.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_stopper(const melt_serve_request *r)
{
    melt_serve_stopper s;
    melt_serve_stopper_init(&s, r->stop, r->n_stop);
    char *got = malloc(r->prompt_len + 1);
    if (!got) return;
    size_t len = 0;
    /* feed the prompt in pieces of 1, 2, 3 ... bytes */
    for (size_t at = 0, step = 1; at < r->prompt_len; at += step, step++) {
        const size_t n = at + step > r->prompt_len ? r->prompt_len - at : step;
        const char *out;
        size_t k;
        if (melt_serve_stopper_push(&s, r->prompt + at, n, &out, &k) < 0) abort();
        memcpy(got + len, out, k);
        len += k;
    }
    const char *out;
    size_t k;
    melt_serve_stopper_flush(&s, &out, &k);
    memcpy(got + len, out, k);
    len += k;
    if (len > r->prompt_len || memcmp(got, r->prompt, len) != 0) abort();
    if (!s.stopped && len != r->prompt_len) abort();
    for (size_t i = 0; i < r->n_stop; i++)
        if (memmem(got, len, r->stop[i], strlen(r->stop[i]))) abort();
    melt_serve_stopper_free(&s);
    free(got);
}

static void check_body(const melt_serve_request *r)
{
    melt_serve_result res = {.kind = r->kind, .id = "cmpl-x", .model = "m", .text = r->prompt,
                             .text_len = r->prompt_len, .finish = MELT_SERVE_FINISH_STOP};
    char *s = melt_serve_result_json(&res);
    if (!s) abort();
    json_t *o = json_loads(s, 0, NULL);
    if (!o) abort();
    json_t *c = json_array_get(json_object_get(o, "choices"), 0);
    json_t *t = r->kind == MELT_SERVE_CHAT ? json_object_get(json_object_get(c, "message"), "content")
                                          : json_object_get(c, "text");
    if (json_string_length(t) != r->prompt_len || memcmp(json_string_value(t), r->prompt, r->prompt_len))
        abort();
    json_decref(o);
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    const enum melt_serve_kind kind = data[0] & 1 ? MELT_SERVE_CHAT : MELT_SERVE_COMPLETION;
    melt_serve_defaults d = {.sampling = melt_sampler_default_params(), .max_tokens = -1, .n_vocab = 512};
    melt_serve_request r;
    melt_error err = {0};
    const int st = melt_serve_parse_request(kind, (const char *)data + 1, size - 1, &d, &r, &err);
    if (st != 0) {
        if (st != 400 && st != 500) abort();
        if (!err.msg[0]) abort();
        return 0;
    }
    melt_sampler *smp = NULL;
    if (melt_sampler_new(&r.sampling, d.n_vocab, &smp, &err) < 0) abort();
    melt_sampler_free(smp);
    if (r.max_tokens < -1 || r.n_stop > MELT_SERVE_MAX_STOP) abort();
    for (size_t i = 0; i < r.n_prompt_ids; i++)
        if (r.prompt_ids[i] < 0 || r.prompt_ids[i] >= d.n_vocab) abort();
    for (size_t i = 0; i < r.n_stop; i++)
        if (!r.stop[i][0]) abort();
    if (kind == MELT_SERVE_CHAT && (!r.n_msgs || !r.msgs)) abort();
    if (r.prompt) {
        check_stopper(&r);
        check_body(&r);
    }
    melt_serve_request_free(&r);
    return 0;
}

/* melt serve: request parsing and validation, prompt tokens, stop strings
 * and response bodies. No sockets here (see melt/serve.h). */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "melt/serve.h"

/* ---- requests ---- */

static int bad(melt_error *err, const char *fmt, const char *field)
{
    melt_errorf(err, MELT_EINVAL, fmt, field);
    return 400;
}

/* A field that is absent or null keeps its default. */
static json_t *field(json_t *o, const char *name)
{
    json_t *v = json_object_get(o, name);
    return json_is_null(v) ? NULL : v;
}

static int get_int(json_t *o, const char *name, long long lo, long long hi, int *out,
                   melt_error *err)
{
    json_t *v = field(o, name);
    if (!v) return 0;
    if (!json_is_integer(v))
        return bad(err, "'%s' must be an integer", name);
    const json_int_t x = json_integer_value(v);
    if (x < lo || x > hi) {
        melt_errorf(err, MELT_EINVAL, "'%s' must be between %lld and %lld, got %lld", name, lo, hi,
                    (long long)x);
        return 400;
    }
    *out = (int)x;
    return 0;
}

static int get_num(json_t *o, const char *name, double lo, double hi, float *out,
                   melt_error *err)
{
    json_t *v = field(o, name);
    if (!v) return 0;
    if (!json_is_number(v))
        return bad(err, "'%s' must be a number", name);
    const double x = json_number_value(v);
    if (!isfinite(x) || x < lo || x > hi) {
        melt_errorf(err, MELT_EINVAL, "'%s' must be between %g and %g, got %g", name, lo, hi, x);
        return 400;
    }
    *out = (float)x;
    return 0;
}

static int get_bool(json_t *o, const char *name, bool *out, melt_error *err)
{
    json_t *v = field(o, name);
    if (!v) return 0;
    if (!json_is_boolean(v))
        return bad(err, "'%s' must be true or false", name);
    *out = json_is_true(v);
    return 0;
}

static char *dup_str(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

static int nomem(melt_error *err)
{
    melt_errorf(err, MELT_ENOMEM, "out of memory");
    return 500;
}

/* prompt: a string, an array of token ids, or an array holding one of
 * those (OpenAI's batch form, with a batch of one). */
static int parse_prompt(json_t *root, const melt_serve_defaults *d, melt_serve_request *r,
                        melt_error *err)
{
    json_t *p = field(root, "prompt");
    if (!p) return bad(err, "'%s' is required", "prompt");
    if (json_is_array(p) && json_array_size(p) == 1 &&
        (json_is_string(json_array_get(p, 0)) || json_is_array(json_array_get(p, 0))))
        p = json_array_get(p, 0);
    if (json_is_string(p)) {
        r->prompt_len = json_string_length(p);
        r->prompt = dup_str(json_string_value(p), r->prompt_len);
        return r->prompt ? 0 : nomem(err);
    }
    if (!json_is_array(p))
        return bad(err, "'%s' must be a string or an array of token ids", "prompt");
    const size_t n = json_array_size(p);
    if (n == 0) return bad(err, "'%s' is empty", "prompt");
    r->prompt_ids = malloc(n * sizeof *r->prompt_ids);
    if (!r->prompt_ids) return nomem(err);
    for (size_t i = 0; i < n; i++) {
        json_t *t = json_array_get(p, i);
        if (!json_is_integer(t))
            return bad(err, "'%s' must be a string or an array of token ids "
                            "(one prompt per request)", "prompt");
        const json_int_t id = json_integer_value(t);
        if (id < 0 || id >= d->n_vocab) {
            melt_errorf(err, MELT_EINVAL, "'prompt' token %zu is %lld, outside the vocabulary "
                        "(0..%d)", i, (long long)id, (int)d->n_vocab - 1);
            return 400;
        }
        r->prompt_ids[i] = (melt_token)id;
    }
    r->n_prompt_ids = n;
    return 0;
}

/* A message's content: a string, or an array of parts of which the
 * {"type":"text","text":...} ones are joined; null for an assistant turn
 * that made a tool call is "". */
static int message_content(json_t *c, size_t i, char **out, melt_error *err)
{
    if (!c) {
        *out = dup_str("", 0);
        return *out ? 0 : nomem(err);
    }
    if (json_is_string(c)) {
        *out = dup_str(json_string_value(c), json_string_length(c));
        return *out ? 0 : nomem(err);
    }
    if (!json_is_array(c)) {
        melt_errorf(err, MELT_EINVAL, "'messages[%zu].content' must be a string or an array of "
                    "text parts", i);
        return 400;
    }
    size_t total = 0, k;
    json_t *part;
    json_array_foreach(c, k, part) {
        json_t *type = json_object_get(part, "type"), *text = json_object_get(part, "text");
        if (!json_is_string(type) || strcmp(json_string_value(type), "text") != 0 ||
            !json_is_string(text)) {
            melt_errorf(err, MELT_EINVAL, "'messages[%zu].content[%zu]' must be "
                        "{\"type\":\"text\",\"text\":...} (only text is supported)", i, k);
            return 400;
        }
        total += json_string_length(text);
    }
    char *s = malloc(total + 1);
    if (!s) return nomem(err);
    size_t at = 0;
    json_array_foreach(c, k, part) {
        json_t *text = json_object_get(part, "text");
        memcpy(s + at, json_string_value(text), json_string_length(text));
        at += json_string_length(text);
    }
    s[at] = '\0';
    *out = s;
    return 0;
}

static int parse_messages(json_t *root, melt_serve_request *r, melt_error *err)
{
    json_t *m = field(root, "messages");
    if (!m) return bad(err, "'%s' is required", "messages");
    if (!json_is_array(m)) return bad(err, "'%s' must be an array of messages", "messages");
    const size_t n = json_array_size(m);
    if (n == 0) return bad(err, "'%s' is empty", "messages");
    r->msgs = calloc(n, sizeof *r->msgs);
    if (!r->msgs) return nomem(err);
    for (size_t i = 0; i < n; i++) {
        json_t *msg = json_array_get(m, i);
        if (!json_is_object(msg)) {
            melt_errorf(err, MELT_EINVAL, "'messages[%zu]' must be an object", i);
            return 400;
        }
        json_t *role = json_object_get(msg, "role");
        if (!json_is_string(role)) {
            melt_errorf(err, MELT_EINVAL, "'messages[%zu].role' must be a string", i);
            return 400;
        }
        char *content = NULL;
        int rc = message_content(field(msg, "content"), i, &content, err);
        if (rc) return rc;
        r->msgs[i].content = content;
        r->n_msgs = i + 1;
        /* "developer" is OpenAI's newer name for the system role */
        const char *rs = json_string_value(role);
        if (strcmp(rs, "developer") == 0) rs = "system";
        r->msgs[i].role = dup_str(rs, strlen(rs));
        if (!r->msgs[i].role) return nomem(err);
    }
    return 0;
}

static int parse_stop(json_t *root, melt_serve_request *r, melt_error *err)
{
    json_t *s = field(root, "stop");
    if (!s) return 0;
    if (json_is_string(s)) {
        if (json_string_length(s) == 0) return 0;
        r->stop[0] = dup_str(json_string_value(s), json_string_length(s));
        if (!r->stop[0]) return nomem(err);
        r->n_stop = 1;
        return 0;
    }
    if (!json_is_array(s)) return bad(err, "'%s' must be a string or an array of strings", "stop");
    if (json_array_size(s) > MELT_SERVE_MAX_STOP) {
        melt_errorf(err, MELT_EINVAL, "'stop' has %zu strings, at most %d are allowed",
                    json_array_size(s), MELT_SERVE_MAX_STOP);
        return 400;
    }
    size_t i;
    json_t *v;
    json_array_foreach(s, i, v) {
        if (!json_is_string(v)) return bad(err, "'%s' must be a string or an array of strings", "stop");
        if (json_string_length(v) == 0) continue;
        r->stop[r->n_stop] = dup_str(json_string_value(v), json_string_length(v));
        if (!r->stop[r->n_stop]) return nomem(err);
        r->n_stop++;
    }
    return 0;
}

static int parse_sampling(json_t *root, melt_sampler_params *sp, melt_error *err)
{
    int rc, top_k = sp->top_k, last_n = sp->repeat_last_n;
    if ((rc = get_num(root, "temperature", 0, 1e6, &sp->temperature, err))) return rc;
    if ((rc = get_int(root, "top_k", -1, 1 << 30, &top_k, err))) return rc;
    if ((rc = get_num(root, "top_p", 0, 1, &sp->top_p, err))) return rc;
    if ((rc = get_num(root, "min_p", 0, 1, &sp->min_p, err))) return rc;
    if ((rc = get_num(root, "repeat_penalty", 1e-6, 1e6, &sp->repeat_penalty, err))) return rc;
    if ((rc = get_int(root, "repeat_last_n", 0, 1 << 30, &last_n, err))) return rc;
    sp->top_k = top_k;
    sp->repeat_last_n = last_n;
    json_t *seed = field(root, "seed");
    if (seed) {
        if (!json_is_integer(seed)) return bad(err, "'%s' must be an integer", "seed");
        /* -1 is llama.cpp's "random": a fixed seed keeps answers repeatable */
        if (json_integer_value(seed) < -1)
            return bad(err, "'%s' must be >= 0 (or -1)", "seed");
        if (json_integer_value(seed) >= 0) sp->seed = (uint64_t)json_integer_value(seed);
    }
    /* OpenAI's additive penalties: the sampler has no such step, so only
     * their "off" value (0) is accepted rather than silently ignored. */
    static const char *const unsupported[] = {"frequency_penalty", "presence_penalty"};
    for (size_t i = 0; i < 2; i++) {
        float x = 0;
        if ((rc = get_num(root, unsupported[i], -2, 2, &x, err))) return rc;
        if (x != 0) {
            melt_errorf(err, MELT_EINVAL, "'%s' is not supported (use repeat_penalty)", unsupported[i]);
            return 400;
        }
    }
    return 0;
}

static int parse_fields(json_t *root, enum melt_serve_kind kind, const melt_serve_defaults *d,
                        melt_serve_request *r, melt_error *err)
{
    int rc;
    json_t *model = field(root, "model");
    if (model && !json_is_string(model)) return bad(err, "'%s' must be a string", "model");
    if ((rc = kind == MELT_SERVE_CHAT ? parse_messages(root, r, err) : parse_prompt(root, d, r, err)))
        return rc;
    if ((rc = get_int(root, "n_predict", -1, 1 << 30, &r->max_tokens, err))) return rc;
    if ((rc = get_int(root, "max_tokens", 0, 1 << 30, &r->max_tokens, err))) return rc;
    if ((rc = get_int(root, "max_completion_tokens", 0, 1 << 30, &r->max_tokens, err))) return rc;
    int n = 1;
    if ((rc = get_int(root, "n", 1, 1, &n, err))) return rc;
    if ((rc = parse_sampling(root, &r->sampling, err))) return rc;
    if ((rc = parse_stop(root, r, err))) return rc;
    if ((rc = get_bool(root, "stream", &r->stream, err))) return rc;
    if ((rc = get_bool(root, "ignore_eos", &r->ignore_eos, err))) return rc;
    if ((rc = get_bool(root, "cache_prompt", &r->cache_prompt, err))) return rc;
    json_t *so = field(root, "stream_options");
    if (so) {
        if (!json_is_object(so)) return bad(err, "'%s' must be an object", "stream_options");
        if ((rc = get_bool(so, "include_usage", &r->include_usage, err))) return rc;
    }
    return 0;
}

int melt_serve_parse_request(enum melt_serve_kind kind, const char *body, size_t len,
                             const melt_serve_defaults *d, melt_serve_request *req,
                             melt_error *err)
{
    memset(req, 0, sizeof *req);
    req->kind = kind;
    req->max_tokens = d->max_tokens;
    req->sampling = d->sampling;
    req->cache_prompt = true;
    json_error_t je;
    /* strings holding \u0000 are refused (jansson's default): roles and
     * contents are C strings further on */
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        melt_errorf(err, MELT_EFORMAT, "malformed JSON at line %d, column %d: %s", je.line,
                    je.column, je.text);
        return 400;
    }
    int rc = json_is_object(root) ? parse_fields(root, kind, d, req, err)
                                  : bad(err, "the request body must be a JSON %s", "object");
    json_decref(root);
    if (rc) melt_serve_request_free(req);
    return rc;
}

void melt_serve_request_free(melt_serve_request *req)
{
    if (!req) return;
    free(req->prompt);
    free(req->prompt_ids);
    for (size_t i = 0; i < req->n_msgs; i++) {
        free((char *)req->msgs[i].role);
        free((char *)req->msgs[i].content);
    }
    free(req->msgs);
    for (size_t i = 0; i < req->n_stop; i++) free(req->stop[i]);
    memset(req, 0, sizeof *req);
}

int melt_serve_prompt_tokens(const melt_serve_request *req, const melt_tokenizer *tok,
                             enum melt_chat_template tmpl, int n_ctx, melt_token **ids,
                             size_t *n_ids, melt_error *err)
{
    *ids = NULL;
    *n_ids = 0;
    const unsigned flags = MELT_TOKENIZE_ADD_SPECIAL | MELT_TOKENIZE_PARSE_SPECIAL;
    int rc = 0;
    if (req->prompt_ids) {
        *ids = malloc(req->n_prompt_ids * sizeof **ids);
        if (!*ids) return nomem(err);
        memcpy(*ids, req->prompt_ids, req->n_prompt_ids * sizeof **ids);
        *n_ids = req->n_prompt_ids;
    } else if (req->kind == MELT_SERVE_CHAT) {
        char *text = NULL;
        if ((rc = melt_chat_render(tmpl, req->msgs, req->n_msgs, true, &text, err)) < 0)
            return rc == MELT_ENOMEM ? 500 : 400;
        rc = melt_tokenize(tok, text, strlen(text), flags, ids, n_ids, err);
        free(text);
    } else {
        rc = melt_tokenize(tok, req->prompt ? req->prompt : "", req->prompt_len, flags, ids, n_ids, err);
    }
    if (rc < 0) return 500;
    if (*n_ids == 0) {
        melt_errorf(err, MELT_EINVAL, "the prompt is empty (no tokens)");
        return 400;
    }
    if (*n_ids > (size_t)n_ctx) {
        melt_errorf(err, MELT_EINVAL, "the prompt has %zu tokens, more than the context of %d",
                    *n_ids, n_ctx);
        free(*ids);
        *ids = NULL;
        *n_ids = 0;
        return 400;
    }
    return 0;
}

/* ---- stop strings ---- */

void melt_serve_stopper_init(melt_serve_stopper *s, char *const *stop, size_t n_stop)
{
    memset(s, 0, sizeof *s);
    s->stop = stop;
    s->n_stop = n_stop;
}

static int grow(char **buf, size_t *cap, size_t need)
{
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    char *q = realloc(*buf, c);
    if (!q) return MELT_ENOMEM;
    *buf = q;
    *cap = c;
    return 0;
}

/* Move held[0..n) to out and keep the rest. */
static void release(melt_serve_stopper *s, size_t n, const char **out, size_t *n_out)
{
    memcpy(s->out, s->held, n);
    memmove(s->held, s->held + n, s->n_held - n);
    s->n_held -= n;
    *out = s->out;
    *n_out = n;
}

int melt_serve_stopper_push(melt_serve_stopper *s, const char *text, size_t len,
                            const char **out, size_t *n_out)
{
    *out = "";
    *n_out = 0;
    if (s->stopped) return 0;
    if (grow(&s->held, &s->cap_held, s->n_held + len) || grow(&s->out, &s->cap_out, s->n_held + len))
        return MELT_ENOMEM;
    memcpy(s->held + s->n_held, text, len);
    s->n_held += len;
    /* the earliest complete stop string ends the text */
    size_t cut = s->n_held;
    for (size_t i = 0; i < s->n_stop; i++) {
        const char *hit = memmem(s->held, s->n_held, s->stop[i], strlen(s->stop[i]));
        if (hit && (size_t)(hit - s->held) < cut) cut = (size_t)(hit - s->held);
    }
    if (cut < s->n_held) {
        s->stopped = true;
        release(s, cut, out, n_out);
        s->n_held = 0;
        return 0;
    }
    /* keep the longest tail that is a prefix of some stop string */
    size_t keep = 0;
    for (size_t i = 0; i < s->n_stop; i++) {
        const size_t ls = strlen(s->stop[i]);
        for (size_t k = ls - 1 < s->n_held ? ls - 1 : s->n_held; k > keep; k--)
            if (memcmp(s->held + s->n_held - k, s->stop[i], k) == 0) {
                keep = k;
                break;
            }
    }
    release(s, s->n_held - keep, out, n_out);
    return 0;
}

void melt_serve_stopper_flush(melt_serve_stopper *s, const char **out, size_t *n_out)
{
    *out = "";
    *n_out = 0;
    if (s->stopped || s->n_held == 0) return;
    release(s, s->n_held, out, n_out);
}

void melt_serve_stopper_free(melt_serve_stopper *s)
{
    free(s->held);
    free(s->out);
    memset(s, 0, sizeof *s);
}

/* ---- responses ---- */

const char *melt_serve_finish_name(enum melt_serve_finish f)
{
    switch (f) {
    case MELT_SERVE_FINISH_STOP: return "stop";
    case MELT_SERVE_FINISH_LENGTH: return "length";
    default: return NULL;
    }
}

void melt_serve_make_id(const char *prefix, uint64_t n, char *buf, size_t size)
{
    static const char digits[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    char tail[25];
    /* splitmix64 steps: distinct n give distinct-looking ids */
    for (int i = 0; i < 24; i++) {
        uint64_t z = (n += 0x9e3779b97f4a7c15u);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
        z ^= z >> 31;
        tail[i] = digits[z % (sizeof digits - 1)];
    }
    tail[24] = '\0';
    snprintf(buf, size, "%s%s", prefix, tail);
}

static char *dump(json_t *o)
{
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15)) : NULL;
    json_decref(o);
    return s;
}

char *melt_serve_error_json(int status, const char *message)
{
    const char *type = status == 404 ? "not_found_error"
                       : status == 503 ? "unavailable_error"
                       : status >= 400 && status < 500 ? "invalid_request_error"
                                                       : "server_error";
    return dump(json_pack("{s:{s:s, s:s, s:i}}", "error", "message", message ? message : "",
                          "type", type, "code", status));
}

static json_t *usage_json(const melt_serve_result *r)
{
    return json_pack("{s:i, s:i, s:i}", "completion_tokens", r->n_gen, "prompt_tokens",
                     r->n_prompt, "total_tokens", r->n_prompt + r->n_gen);
}

/* llama-server's timings object: milliseconds and tokens per second;
 * prompt_n counts the prompt tokens decoded (those not in the cache). */
static json_t *timings_json(const melt_serve_result *r)
{
    const double prompt_ms = (double)r->prompt_ns / 1e6, predicted_ms = (double)r->predicted_ns / 1e6;
    const int prompt_n = r->n_prompt - r->n_cached;
    return json_pack("{s:i, s:i, s:f, s:f, s:f, s:i, s:f, s:f, s:f}", "cache_n", r->n_cached,
                     "prompt_n", prompt_n, "prompt_ms", prompt_ms, "prompt_per_token_ms",
                     prompt_n ? prompt_ms / prompt_n : 0.0, "prompt_per_second",
                     prompt_ms > 0 ? prompt_n * 1e3 / prompt_ms : 0.0, "predicted_n", r->n_gen,
                     "predicted_ms", predicted_ms, "predicted_per_token_ms",
                     r->n_gen ? predicted_ms / r->n_gen : 0.0, "predicted_per_second",
                     predicted_ms > 0 ? r->n_gen * 1e3 / predicted_ms : 0.0);
}

static json_t *finish_json(enum melt_serve_finish f)
{
    const char *name = melt_serve_finish_name(f);
    return name ? json_string(name) : json_null();
}

/* id, object, created, model: the head of every body. */
static json_t *head_json(const melt_serve_result *r, bool chunk)
{
    const char *object = r->kind == MELT_SERVE_CHAT ? (chunk ? "chat.completion.chunk" : "chat.completion")
                                                   : "text_completion";
    return json_pack("{s:s, s:s, s:I, s:s}", "id", r->id ? r->id : "", "object", object, "created",
                     (json_int_t)r->created, "model", r->model ? r->model : "");
}

char *melt_serve_result_json(const melt_serve_result *r)
{
    json_t *o = head_json(r, false), *choice;
    json_t *text = json_stringn(r->text ? r->text : "", r->text ? r->text_len : 0);
    if (r->kind == MELT_SERVE_CHAT)
        choice = json_pack("{s:i, s:{s:s, s:o}, s:o}", "index", 0, "message", "role", "assistant",
                           "content", text, "finish_reason", finish_json(r->finish));
    else
        choice = json_pack("{s:o, s:i, s:n, s:o}", "text", text, "index", 0, "logprobs",
                           "finish_reason", finish_json(r->finish));
    if (!o || !choice ||
        json_object_set_new(o, "choices", json_pack("[o]", choice)) ||
        json_object_set_new(o, "usage", usage_json(r)) ||
        json_object_set_new(o, "timings", timings_json(r))) {
        json_decref(o);
        return NULL;
    }
    return dump(o);
}

char *melt_serve_chunk_json(const melt_serve_result *r, const melt_serve_chunk *c)
{
    json_t *o = head_json(r, true), *choices;
    if (!o) return NULL;
    if (c->usage_only) {
        choices = json_array();
    } else {
        const bool last = c->finish != MELT_SERVE_FINISH_NONE;
        json_t *text = json_stringn(last || !c->text ? "" : c->text, last || !c->text ? 0 : c->len);
        json_t *choice;
        if (r->kind == MELT_SERVE_CHAT) {
            json_t *delta = c->role_only ? json_pack("{s:s, s:s}", "role", "assistant", "content", "")
                            : last       ? json_object()
                                         : json_pack("{s:O}", "content", text);
            choice = json_pack("{s:i, s:o, s:o}", "index", 0, "delta", delta, "finish_reason",
                               finish_json(c->finish));
        } else {
            choice = json_pack("{s:O, s:i, s:n, s:o}", "text", text, "index", 0, "logprobs",
                               "finish_reason", finish_json(c->finish));
        }
        json_decref(text);
        choices = json_pack("[o]", choice);
    }
    if (json_object_set_new(o, "choices", choices)) {
        json_decref(o);
        return NULL;
    }
    if (c->usage_only || c->finish != MELT_SERVE_FINISH_NONE) {
        if ((c->usage_only && json_object_set_new(o, "usage", usage_json(r))) ||
            json_object_set_new(o, "timings", timings_json(r))) {
            json_decref(o);
            return NULL;
        }
    }
    return dump(o);
}

char *melt_serve_models_json(const melt_serve_model_info *m)
{
    return dump(json_pack("{s:s, s:[{s:s, s:s, s:I, s:s, s:{s:i, s:i, s:i, s:i, s:I, s:I}}]}",
                          "object", "list", "data", "id", m->name, "object", "model", "created",
                          (json_int_t)m->created, "owned_by", "melt", "meta", "n_vocab",
                          (int)m->n_vocab, "n_ctx", m->n_ctx, "n_ctx_train", m->n_ctx_train,
                          "n_embd", m->n_embd, "n_params", (json_int_t)m->n_params, "size",
                          (json_int_t)m->size_bytes));
}

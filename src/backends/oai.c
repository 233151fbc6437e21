/* OpenAI-style streamed requests (src/backends/http.h), shared by the
 * openai, mlc and llamacpp (server mode) backends.
 *
 * Bytes flow http.c -> sse.c -> one JSON parse per event (jscan) -> the
 * sink. Each token is stamped with the receive time of the recv() slice
 * that completed its event, which is the earliest moment the client could
 * have shown it. The stream ends as the server says ([DONE], or llama.cpp's
 * object with "stop": true); anything else that ends it — EOF, idle
 * timeout, a reset — is END_LOST with what arrived kept.
 */
#include "backends/http.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "melt/jscan.h"

#define ERROR_BODY_MAX (64 * 1024)

/* ---- a growable text buffer and JSON writing ---- */

typedef struct jbuf {
    char *p;
    size_t len, cap;
    bool oom;
} jbuf;

static void jb_add(jbuf *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void jb_s(jbuf *b, const char *s)
{
    jb_add(b, s, strlen(s));
}

static void jb_f(jbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void jb_f(jbuf *b, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    const int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0) jb_add(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* A JSON string literal; bytes >= 0x80 pass through (UTF-8 as given). */
static void jb_str(jbuf *b, const char *s)
{
    jb_add(b, "\"", 1);
    const char *run = s;
    for (; *s; s++) {
        const unsigned char c = (unsigned char)*s;
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        jb_add(b, run, (size_t)(s - run));
        switch (c) {
        case '"': jb_s(b, "\\\""); break;
        case '\\': jb_s(b, "\\\\"); break;
        case '\n': jb_s(b, "\\n"); break;
        case '\r': jb_s(b, "\\r"); break;
        case '\t': jb_s(b, "\\t"); break;
        default: jb_f(b, "\\u%04x", c); break;
        }
        run = s + 1;
    }
    jb_add(b, run, (size_t)(s - run));
    jb_add(b, "\"", 1);
}

/* A sampling parameter (a float) as JSON: 7 digits give back the float
 * (0.95, not 0.949999988); no inf/nan: those become null. */
static void jb_num(jbuf *b, double v)
{
    if (!isfinite(v)) jb_s(b, "null");
    else jb_f(b, "%.7g", v);
}

/* ---- URLs ---- */

/* base without a trailing "/" and "/v1", then the endpoint path. */
static int endpoint_url(const melt_oai_call *c, const char *suffix, char *out, size_t cap, melt_error *err)
{
    if (!c->base_url || !*c->base_url) return melt_errorf(err, MELT_EINVAL, "no server URL given");
    size_t n = strlen(c->base_url);
    while (n > 0 && c->base_url[n - 1] == '/') n--;
    if (n >= 3 && strncmp(c->base_url + n - 3, "/v1", 3) == 0) n -= 3;
    const char *path = c->path ? c->path : suffix;
    if (n + strlen(path) + 1 > cap) return melt_errorf(err, MELT_EINVAL, "%s: URL too long", c->base_url);
    memcpy(out, c->base_url, n);
    memcpy(out + n, path, strlen(path) + 1);
    return 0;
}

static const char *kind_path(enum melt_oai_kind k)
{
    switch (k) {
    case MELT_OAI_CHAT: return "/v1/chat/completions";
    case MELT_OAI_COMPLETIONS: return "/v1/completions";
    case MELT_OAI_LLAMA_COMPLETION: return "/completion";
    }
    return "/v1/chat/completions";
}

/* ---- request bodies ---- */

static void put_prompt(jbuf *b, const melt_backend_request *rq)
{
    jb_s(b, "\"prompt\":");
    if (rq->tokens) {
        jb_s(b, "[");
        for (int i = 0; i < rq->n_tokens; i++) jb_f(b, "%s%d", i ? "," : "", (int)rq->tokens[i]);
        jb_s(b, "]");
    } else {
        jb_str(b, rq->prompt);
    }
}

static void put_sampling(jbuf *b, const melt_oai_call *c)
{
    const melt_sampler_params *s = c->sampling;
    if (!s) return;
    jb_s(b, ",\"temperature\":");
    jb_num(b, s->temperature > 0 ? s->temperature : 0.0);
    jb_s(b, ",\"top_p\":");
    jb_num(b, s->top_p);
    jb_f(b, ",\"seed\":%llu", (unsigned long long)s->seed);
    if (c->kind == MELT_OAI_LLAMA_COMPLETION || c->llama_extras) {
        jb_f(b, ",\"top_k\":%d", s->top_k < 0 ? 0 : (int)s->top_k);
        jb_s(b, ",\"min_p\":");
        jb_num(b, s->min_p);
        jb_s(b, ",\"repeat_penalty\":");
        jb_num(b, s->repeat_penalty);
        jb_f(b, ",\"repeat_last_n\":%d", (int)s->repeat_last_n);
    }
}

int melt_oai_body(const melt_oai_call *c, char **out, size_t *out_len, melt_error *err)
{
    *out = NULL;
    const melt_backend_request *rq = c->rq;
    if (!rq) return melt_errorf(err, MELT_EINVAL, "no request given");
    if (rq->n_predict <= 0) return melt_errorf(err, MELT_EINVAL, "n_predict must be > 0");
    const bool chat = c->kind == MELT_OAI_CHAT;
    if (chat && (!rq->messages || rq->n_messages == 0))
        return melt_errorf(err, MELT_EINVAL, "a chat request needs messages");
    if (!chat && !rq->tokens && !rq->prompt)
        return melt_errorf(err, MELT_EINVAL, "a completion request needs a prompt or tokens");
    if (!chat && rq->tokens && rq->n_tokens <= 0)
        return melt_errorf(err, MELT_EINVAL, "empty token prompt");

    jbuf b = {0};
    jb_s(&b, "{");
    if (c->model && c->kind != MELT_OAI_LLAMA_COMPLETION) {
        jb_s(&b, "\"model\":");
        jb_str(&b, c->model);
        jb_s(&b, ",");
    }
    if (chat) {
        jb_s(&b, "\"messages\":[");
        for (size_t i = 0; i < rq->n_messages; i++) {
            const melt_chat_msg *m = &rq->messages[i];
            jb_s(&b, i ? ",{\"role\":" : "{\"role\":");
            jb_str(&b, m->role ? m->role : "user");
            jb_s(&b, ",\"content\":");
            jb_str(&b, m->content ? m->content : "");
            jb_s(&b, "}");
        }
        jb_s(&b, "]");
    } else {
        put_prompt(&b, rq);
    }
    jb_s(&b, ",\"stream\":true");
    if (c->kind == MELT_OAI_LLAMA_COMPLETION) {
        jb_f(&b, ",\"n_predict\":%d", rq->n_predict);
    } else {
        jb_s(&b, ",\"stream_options\":{\"include_usage\":true}");
        jb_f(&b, ",\"max_tokens\":%d", rq->n_predict);
    }
    if (rq->ignore_eos) jb_s(&b, ",\"ignore_eos\":true");
    put_sampling(&b, c);
    if (c->extra_json && *c->extra_json) {
        jb_s(&b, ",");
        jb_s(&b, c->extra_json);
    }
    jb_s(&b, "}");
    if (b.oom) {
        free(b.p);
        return melt_errorf(err, MELT_ENOMEM, "out of memory building the request");
    }
    *out = b.p;
    if (out_len) *out_len = b.len;
    return 0;
}

/* ---- error messages ---- */

void melt_oai_error_message(const char *body, size_t len, char *buf, size_t cap)
{
    if (cap == 0) return;
    buf[0] = '\0';
    melt_jdoc *doc = NULL;
    const char *msg = NULL;
    size_t mlen = 0;
    if (body && melt_jscan_parse(body, len, &doc, NULL) == 0) {
        const melt_jnode *r = melt_jdoc_root(doc);
        msg = melt_jnode_str(melt_jnode_path(r, "error.message"), &mlen);
        if (!msg) msg = melt_jnode_str(melt_jnode_get(r, "error"), &mlen);
        if (!msg) msg = melt_jnode_str(melt_jnode_get(r, "message"), &mlen);
        if (!msg) msg = melt_jnode_str(melt_jnode_get(r, "detail"), &mlen);
    }
    if (!msg && body) {
        msg = body;
        mlen = len;
    }
    size_t k = 0;
    for (size_t i = 0; msg && i < mlen && k + 1 < cap; i++) {
        const char ch = msg[i];
        buf[k++] = (ch == '\n' || ch == '\r' || ch == '\t' || ch == '\0') ? ' ' : ch;
    }
    while (k > 0 && buf[k - 1] == ' ') k--;
    buf[k] = '\0';
    if (k == 0) snprintf(buf, cap, "(empty body)");
    melt_jdoc_free(doc);
}

/* ---- the stream ---- */

typedef struct stream {
    const melt_oai_call *call;
    const melt_backend_sink *sink;
    melt_backend_result *res;
    melt_http_response *resp;
    melt_sse sse;
    melt_error *err;
    int64_t t_now;              /* receive time of the slice being parsed */
    jbuf reply;
    jbuf error_body;            /* the body of a non-200 answer */
    jbuf plain_body;            /* a 200 answer that is not an event stream */
    bool is_error, is_plain, checked_head;
    bool done;                  /* the server ended the stream properly */
    bool finish_seen;
    bool caller_stop;
    bool failed;                /* an error event or a bad event */
    int stop_rc;                /* < 0: failure code */
    long long completion_tokens;   /* from usage, -1 unknown */
    bool usage_reported, timings_reported;
} stream;

static void figure(stream *s, const char *key, double v, const char *unit)
{
    if (s->sink && s->sink->figure) s->sink->figure(s->sink->ctx, key, v, unit);
}

static bool ends_with(const char *s, const char *suf)
{
    const size_t n = strlen(s), k = strlen(suf);
    return n >= k && strcmp(s + n - k, suf) == 0;
}

/* Unit of a figure from its name (usage.extra and timings members). */
static const char *unit_of(const char *key)
{
    if (ends_with(key, "_per_second") || ends_with(key, "_per_s") || ends_with(key, "_tps"))
        return "tok/s";
    if (ends_with(key, "_ms")) return "ms";
    if (ends_with(key, "_s")) return "s";
    if (ends_with(key, "_n") || ends_with(key, "_tokens") || ends_with(key, "tokens")) return "count";
    return "";
}

static void report_usage(stream *s, const melt_jnode *usage)
{
    if (melt_jnode_type(usage) != MELT_JOBJ || s->usage_reported) return;
    s->usage_reported = true;
    static const char *const names[] = {"prompt_tokens", "completion_tokens", "total_tokens"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        double v;
        if (melt_jnode_num(melt_jnode_get(usage, names[i]), &v)) figure(s, names[i], v, "count");
    }
    double v;
    if (melt_jnode_num(melt_jnode_path(usage, "prompt_tokens_details.cached_tokens"), &v))
        figure(s, "cached_tokens", v, "count");
    if (melt_jnode_num(melt_jnode_get(usage, "prompt_tokens"), &v) && v >= 0 && v < 1e9)
        s->res->n_prompt = (int)v;
    if (melt_jnode_num(melt_jnode_get(usage, "completion_tokens"), &v) && v >= 0 && v < 1e12)
        s->completion_tokens = (long long)v;
    /* MLC puts its engine metrics in usage.extra. */
    const melt_jnode *extra = melt_jnode_get(usage, "extra");
    for (size_t i = 0; i < melt_jnode_count(extra) && melt_jnode_type(extra) == MELT_JOBJ; i++) {
        const melt_jnode *m = melt_jnode_at(extra, i);
        const char *key = melt_jnode_key(m);
        if (!melt_jnode_num(m, &v)) continue;
        bool dup = false;
        for (size_t j = 0; j < sizeof names / sizeof *names; j++) dup = dup || strcmp(key, names[j]) == 0;
        if (!dup) figure(s, key, v, unit_of(key));
    }
}

static void report_timings(stream *s, const melt_jnode *t)
{
    if (melt_jnode_type(t) != MELT_JOBJ || s->timings_reported) return;
    s->timings_reported = true;
    for (size_t i = 0; i < melt_jnode_count(t); i++) {
        const melt_jnode *m = melt_jnode_at(t, i);
        double v;
        if (melt_jnode_num(m, &v)) figure(s, melt_jnode_key(m), v, unit_of(melt_jnode_key(m)));
    }
    if (s->res->n_prompt < 0) {
        const double pn = melt_jnode_num_or(t, "prompt_n", -1), cn = melt_jnode_num_or(t, "cache_n", 0);
        if (pn >= 0 && pn + cn < 1e9) s->res->n_prompt = (int)(pn + cn);
    }
}

static void set_finish(stream *s, const char *why)
{
    if (!why) return;
    s->finish_seen = true;
    if (strcmp(why, "length") == 0 || strcmp(why, "limit") == 0) s->res->end = MELT_BACKEND_END_LIMIT;
    else s->res->end = MELT_BACKEND_END_EOG;   /* stop, eos, word, tool_calls, ... */
}

/* One token to the sink (and, unless it is reasoning, to the reply).
 * Returns non-zero to stop. */
static int emit_ex(stream *s, int32_t id, const char *text, size_t len, bool to_reply)
{
    if (to_reply) jb_add(&s->reply, text, len);
    const int index = s->res->n_gen++;
    if (s->sink && s->sink->token && s->sink->token(s->sink->ctx, s->t_now, index, id, text, len) != 0) {
        s->caller_stop = true;
        return 1;
    }
    return 0;
}

static int emit(stream *s, int32_t id, const char *text, size_t len)
{
    return emit_ex(s, id, text, len, true);
}

static int fail_event(stream *s, const melt_jnode *root, const char *data, size_t len)
{
    char msg[400];
    const melt_jnode *e = melt_jnode_get(root, "error");
    if (e) {
        const char *m = melt_jnode_str(melt_jnode_get(e, "message"), NULL);
        if (!m) m = melt_jnode_str(e, NULL);
        snprintf(msg, sizeof msg, "%s", m ? m : "(no message)");
    } else {
        melt_oai_error_message(data, len, msg, sizeof msg);
    }
    s->failed = true;
    s->stop_rc = melt_errorf(s->err, MELT_EIO, "%s: error event in the stream after %d tokens: %s",
                             s->call->base_url, s->res->n_gen, msg);
    return 1;
}

static int on_chunk(stream *s, const melt_jnode *root)
{
    const enum melt_oai_kind kind = s->call->kind;
    if (kind == MELT_OAI_LLAMA_COMPLETION) {
        const char *text = NULL;
        size_t len = 0;
        text = melt_jnode_str(melt_jnode_get(root, "content"), &len);
        const melt_jnode *toks = melt_jnode_get(root, "tokens");
        const size_t nt = melt_jnode_type(toks) == MELT_JARR ? melt_jnode_count(toks) : 0;
        double ev;
        if (melt_jnode_num(melt_jnode_get(root, "tokens_evaluated"), &ev) && ev >= 0 && ev < 1e9)
            s->res->n_prompt = (int)ev;
        if (melt_jnode_num(melt_jnode_get(root, "tokens_predicted"), &ev) && ev >= 0 && ev < 1e12)
            s->completion_tokens = (long long)ev;
        /* One sink token per token id; the event's text goes with the first. */
        for (size_t i = 0; i < nt; i++) {
            double id = -1;
            melt_jnode_num(melt_jnode_at(toks, i), &id);
            /* a server's number may be anything: converting one outside
             * int32 to int32 is undefined; such an id is unknown (-1) */
            if (!(id >= 0 && id <= INT32_MAX)) id = -1;
            if (emit(s, (int32_t)id, i == 0 && text ? text : "", i == 0 ? len : 0)) return 1;
        }
        if (nt == 0 && len > 0 && emit(s, -1, text, len)) return 1;
        bool stop = false;
        if (melt_jnode_bool(melt_jnode_get(root, "stop"), &stop) && stop) {
            const char *st = melt_jnode_str(melt_jnode_get(root, "stop_type"), NULL);
            set_finish(s, st ? (strcmp(st, "limit") == 0 ? "limit" : "stop") : "stop");
            report_timings(s, melt_jnode_get(root, "timings"));
            s->done = true;
        }
        return 0;
    }
    const melt_jnode *ch = melt_jnode_path(root, "choices.0");
    if (ch) {
        size_t len = 0;
        const char *text = kind == MELT_OAI_CHAT
                               ? melt_jnode_str(melt_jnode_path(ch, "delta.content"), &len)
                               : melt_jnode_str(melt_jnode_get(ch, "text"), &len);
        if (!text && kind == MELT_OAI_CHAT)   /* a non-streamed answer */
            text = melt_jnode_str(melt_jnode_path(ch, "message.content"), &len);
        /* A reasoning model's thinking (llama.cpp, vLLM: reasoning_content;
         * others: reasoning) is generated tokens too, but not the answer. */
        size_t rlen = 0;
        const char *reasoning = melt_jnode_str(melt_jnode_path(ch, "delta.reasoning_content"), &rlen);
        if (!reasoning) reasoning = melt_jnode_str(melt_jnode_path(ch, "delta.reasoning"), &rlen);
        if (reasoning && rlen > 0 && emit_ex(s, -1, reasoning, rlen, false)) return 1;
        if (text && len > 0 && emit(s, -1, text, len)) return 1;
        set_finish(s, melt_jnode_str(melt_jnode_get(ch, "finish_reason"), NULL));
    }
    report_usage(s, melt_jnode_get(root, "usage"));
    report_timings(s, melt_jnode_get(root, "timings"));
    return 0;
}

static int on_event(void *ctx, const char *event, const char *data, size_t len)
{
    stream *s = ctx;
    if (len == 6 && memcmp(data, "[DONE]", 6) == 0) {
        s->done = true;
        return 0;
    }
    melt_jdoc *doc = NULL;
    melt_error jerr = {0};
    if (melt_jscan_parse(data, len, &doc, &jerr) < 0) {
        s->failed = true;
        s->stop_rc = melt_errorf(s->err, MELT_EFORMAT, "%s: bad event in the stream after %d tokens: %s",
                                 s->call->base_url, s->res->n_gen, jerr.msg);
        return 1;
    }
    const melt_jnode *root = melt_jdoc_root(doc);
    int rc;
    const enum melt_jtype et = melt_jnode_type(melt_jnode_get(root, "error"));
    if (strcmp(event, "error") == 0 || et == MELT_JOBJ || et == MELT_JSTR) rc = fail_event(s, root, data, len);
    else rc = on_chunk(s, root);
    melt_jdoc_free(doc);
    return rc;
}

static int on_body(void *ctx, const char *data, size_t len, int64_t t_ns)
{
    stream *s = ctx;
    if (!s->checked_head) {
        s->checked_head = true;
        s->is_error = s->resp->status != 200;
        /* JSON instead of events: the server ignored "stream" (a missing
         * or odd content type is still read as events) */
        s->is_plain = !s->is_error && strstr(s->resp->content_type, "json") &&
                      !strstr(s->resp->content_type, "event-stream");
    }
    if (s->is_error || s->is_plain) {
        jbuf *b = s->is_error ? &s->error_body : &s->plain_body;
        if (b->len + len > (s->is_error ? ERROR_BODY_MAX : (16u << 20))) return 1;
        jb_add(b, data, len);
        return 0;
    }
    if (s->call->cancel && *s->call->cancel) return 1;
    s->t_now = t_ns;
    melt_error serr = {0};
    const int rc = melt_sse_feed(&s->sse, data, len, &serr);
    if (rc < 0) {
        s->failed = true;
        s->stop_rc = melt_errorf(s->err, rc, "%s: %s", s->call->base_url, serr.msg);
    }
    return rc != 0;
}

static void result_init(melt_backend_result *res)
{
    memset(res, 0, sizeof *res);
    res->n_prompt = -1;
    res->end = MELT_BACKEND_END_LOST;
}

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* How the request ended once the connection is over. */
static void settle_end(stream *s)
{
    melt_backend_result *res = s->res;
    if (s->caller_stop || (s->call->cancel && *s->call->cancel)) {
        res->end = MELT_BACKEND_END_CALLER;
        return;
    }
    /* A server that closes a complete body after the finish reason without
     * [DONE] ended properly too. */
    const bool ended = s->done || (s->resp->complete && s->finish_seen);
    if (!ended || s->failed) {
        res->end = MELT_BACKEND_END_LOST;
        return;
    }
    if (!s->finish_seen) res->end = MELT_BACKEND_END_EOG;
    /* "length" before n_predict tokens: the context filled up. */
    if (res->end == MELT_BACKEND_END_LIMIT) {
        const long long got = s->completion_tokens >= 0 ? s->completion_tokens : res->n_gen;
        if (got < s->call->rq->n_predict) res->end = MELT_BACKEND_END_CONTEXT;
    }
}

int melt_oai_stream(const melt_oai_call *call, const melt_backend_sink *sink, melt_backend_result *res,
                    melt_error *err)
{
    result_init(res);
    char url_s[2048];
    int rc = endpoint_url(call, kind_path(call->kind), url_s, sizeof url_s, err);
    if (rc < 0) return rc;
    melt_http_url url;
    if ((rc = melt_http_parse_url(url_s, &url, err)) < 0) return rc;
    char *body = NULL;
    size_t body_len = 0;
    if ((rc = melt_oai_body(call, &body, &body_len, err)) < 0) return rc;

    char *auth = NULL;
    const char *headers[4];
    size_t nh = 0;
    headers[nh++] = "Content-Type: application/json";
    headers[nh++] = "Accept: text/event-stream";
    if (call->api_key && *call->api_key) {
        const size_t n = strlen(call->api_key) + 32;
        auth = malloc(n);
        if (!auth) {
            free(body);
            return melt_errorf(err, MELT_ENOMEM, "out of memory");
        }
        snprintf(auth, n, "Authorization: Bearer %s", call->api_key);
        headers[nh++] = auth;
    }
    headers[nh] = NULL;

    melt_http_response resp;
    stream s = {.call = call, .sink = sink, .res = res, .resp = &resp, .err = err,
                .completion_tokens = -1};
    melt_sse_init(&s.sse, on_event, &s);
    melt_http_request rq = {
        .method = "POST", .url = &url, .headers = headers, .body = body, .body_len = body_len,
        .connect_timeout_ms = call->connect_timeout_ms, .idle_timeout_ms = call->idle_timeout_ms,
        .cancel = call->cancel,
    };
    melt_error herr = {0};
    res->t_request_ns = mono_ns();
    rc = melt_http_do(&rq, &resp, on_body, &s, &herr);
    if (auth) {
        explicit_bzero(auth, strlen(auth));
        free(auth);
    }
    free(body);

    if (rc < 0 && call->cancel && *call->cancel) {
        rc = 0;   /* stopped before the answer began: the caller's doing */
        res->end = MELT_BACKEND_END_CALLER;
    } else if (rc < 0) {
        melt_errorf(err, rc, "%s: %s", url_s, herr.msg);
    } else if (s.is_error || (!s.checked_head && resp.status != 200)) {
        char msg[400];
        melt_oai_error_message(s.error_body.p, s.error_body.len, msg, sizeof msg);
        rc = melt_errorf(err, MELT_EIO, "%s: HTTP %d: %s", url_s, resp.status, msg);
        res->end = MELT_BACKEND_END_LOST;
    } else if (s.is_plain) {
        /* The server ignored stream: true and sent one JSON answer. */
        s.t_now = mono_ns();
        if (s.plain_body.p) on_event(&s, "", s.plain_body.p, s.plain_body.len);
        s.done = resp.complete && !s.failed;
        rc = s.failed ? s.stop_rc : 0;
        settle_end(&s);
    } else {
        settle_end(&s);
        rc = s.failed ? s.stop_rc : 0;
    }
    res->reply = s.reply.p ? s.reply.p : calloc(1, 1);
    free(s.error_body.p);
    free(s.plain_body.p);
    melt_sse_free(&s.sse);
    if (!res->reply) return melt_errorf(err, MELT_ENOMEM, "out of memory");
    return rc;
}

/* ---- /v1/models ---- */

int melt_oai_first_model(const char *base_url, const char *api_key, int64_t timeout_ms,
                         const volatile int *cancel, char *name, size_t cap, int *status, melt_error *err)
{
    if (status) *status = 0;
    if (cap) name[0] = '\0';
    melt_oai_call c = {.base_url = base_url};
    char url[2048];
    int rc = endpoint_url(&c, "/v1/models", url, sizeof url, err);
    if (rc < 0) return rc;
    char *auth = NULL;
    const char *headers[2] = {NULL, NULL};
    if (api_key && *api_key) {
        const size_t n = strlen(api_key) + 32;
        if (!(auth = malloc(n))) return melt_errorf(err, MELT_ENOMEM, "out of memory");
        snprintf(auth, n, "Authorization: Bearer %s", api_key);
        headers[0] = auth;
    }
    int st = 0;
    char *body = NULL;
    rc = melt_http_fetch(url, headers, NULL, timeout_ms, cancel, &st, &body, err);
    if (auth) {
        explicit_bzero(auth, strlen(auth));
        free(auth);
    }
    if (rc < 0) return rc;
    if (status) *status = st;
    if (st != 200) {
        char msg[300];
        melt_oai_error_message(body, strlen(body), msg, sizeof msg);
        free(body);
        return melt_errorf(err, MELT_EIO, "%s: HTTP %d: %s", url, st, msg);
    }
    melt_jdoc *doc = NULL;
    rc = melt_jscan_parse(body, strlen(body), &doc, err);
    free(body);
    if (rc < 0) return melt_errorf(err, rc, "%s: %s", url, err ? err->msg : "bad JSON");
    const char *id = melt_jnode_str(melt_jnode_path(melt_jdoc_root(doc), "data.0.id"), NULL);
    if (!id) {
        melt_jdoc_free(doc);
        return melt_errorf(err, MELT_ENOTFOUND, "%s: the server lists no model", url);
    }
    snprintf(name, cap, "%s", id);
    melt_jdoc_free(doc);
    return 0;
}

/* The backends' HTTP side, libc only (they run in the static agent): a
 * small HTTP/1.1 client, an incremental Server-Sent-Events parser, the
 * OpenAI-style request/stream handling shared by llamacpp (server mode),
 * mlc and openai, and starting/stopping a local server process.
 *
 *   http.c     melt_http_* (URL parsing, one request per connection,
 *              Content-Length / chunked / close-delimited bodies, idle
 *              timeout, cancel flag, body bytes delivered as they arrive
 *              with their receive time)
 *   sse.c      melt_sse_* (fed arbitrary byte slices; events split on
 *              blank lines, LF, CRLF or CR, comments and keep-alives
 *              skipped, multi-line data joined, llama-server's "error:"
 *              lines read as an event named "error", bounded event size)
 *   oai.c      melt_oai_* (build /v1/completions, /v1/chat/completions and
 *              llama.cpp /completion request bodies; run one streamed
 *              request and turn each chunk into sink tokens/figures;
 *              [DONE], error objects, a cut stream -> END_LOST)
 *   server.c   melt_server_* (spawn a server binary with argv, wait for
 *              GET /health (or /v1/models) to answer 200 while the process
 *              lives, stop it with SIGTERM then SIGKILL)
 */
#ifndef MELT_BACKENDS_HTTP_H
#define MELT_BACKENDS_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "melt/backend.h"
#include "melt/error.h"

/* ---- http.c ---- */

typedef struct melt_http_url {
    char host[256];
    int port;             /* 80 when absent */
    char path[1024];      /* "/" when absent; keeps the query */
} melt_http_url;

/* http://HOST[:PORT][/PATH] (IPv4, IPv6 in brackets, names). https is
 * MELT_EUNSUPPORTED with a message saying to use a TLS tunnel. */
int melt_http_parse_url(const char *url, melt_http_url *out, melt_error *err);

typedef struct melt_http_request {
    const char *method;               /* "GET", "POST" */
    const melt_http_url *url;
    const char *const *headers;       /* extra "Name: value" lines, NULL-terminated; may be NULL */
    const char *body;                 /* may be NULL */
    size_t body_len;
    int64_t connect_timeout_ms;       /* 0: 10 s */
    int64_t idle_timeout_ms;          /* no byte for this long: MELT_ETIMEOUT-like error; 0: 300 s */
    const volatile int *cancel;       /* polled at least every 50 ms; may be NULL */
} melt_http_request;

typedef struct melt_http_response {
    int status;                       /* 200, ... (0 before the status line) */
    char content_type[128];
    bool complete;                    /* the body ended as framed (not cut) */
} melt_http_response;

/* Called with each slice of de-chunked body bytes as it arrives and the
 * CLOCK_MONOTONIC ns of its receipt; non-zero stops reading (the request
 * then returns 0 with complete = false). */
typedef int (*melt_http_body_fn)(void *ctx, const char *data, size_t len, int64_t t_ns);

/* One request on a fresh connection. Returns 0 once a response head was
 * read (whatever its status; body delivered through fn, complete says
 * whether it ended as framed), < 0 when no response came (connect refused,
 * timeout, garbage instead of a status line: err says which, with
 * host:port). */
int melt_http_do(const melt_http_request *rq, melt_http_response *resp, melt_http_body_fn fn, void *ctx,
                 melt_error *err);

/* A whole (small) response in memory: GET when body is NULL, else POST
 * with Content-Type: application/json. *out_body is malloc'd and
 * NUL-terminated (caller frees; may be NULL to discard); bodies over
 * 16 MiB are an error, and so is a body cut short (closed early, stalled
 * past the timeout). Returns 0 with *status set (any status), or < 0
 * as melt_http_do. */
int melt_http_fetch(const char *url, const char *const *headers, const char *body,
                    int64_t timeout_ms, const volatile int *cancel, int *status, char **out_body,
                    melt_error *err);

/* A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0 and
 * closed; another process may still take it). > 0, or < 0 with err. */
int melt_http_free_port(melt_error *err);

/* The response parser behind melt_http_do, usable on a buffer (tests,
 * fuzzing): feed the raw bytes of a response as they come off the wire. */
typedef struct melt_http_parser {
    int state;                /* private */
    char line[8192];          /* the header/chunk-size line being read */
    size_t line_len;
    size_t n_header_bytes;    /* bounded: 64 KiB of head */
    int64_t remaining;        /* bytes left of the body or current chunk; -1 unknown */
    bool chunked, has_length, head_done, done;
    melt_http_response *resp;
    melt_http_body_fn fn;
    void *ctx;
} melt_http_parser;

void melt_http_parser_init(melt_http_parser *ps, melt_http_response *resp, melt_http_body_fn fn,
                           void *ctx);
/* Returns 0 (more wanted), 1 (the response is complete: resp->complete
 * set, trailing bytes ignored), fn's non-zero value (> 1 is passed
 * through as 2), or < 0 with err (MELT_EFORMAT naming what was wrong). */
int melt_http_parser_feed(melt_http_parser *ps, const char *p, size_t n, int64_t t_ns,
                          melt_error *err);
/* The peer closed: completes a close-delimited body (returns 1), else 0
 * (cut; resp->complete stays false). */
int melt_http_parser_eof(melt_http_parser *ps);

/* ---- sse.c ---- */

typedef int (*melt_sse_event_fn)(void *ctx, const char *event, const char *data, size_t len);

typedef struct melt_sse {
    melt_sse_event_fn fn;
    void *ctx;
    char *buf;           /* the line being read */
    size_t len, cap;
    char *data;          /* data: lines of the event being built */
    size_t data_len, data_cap;
    char event[64];      /* event: field ("" = message) */
    bool has_data;
    size_t max_event_bytes;   /* 0: 4 MiB */
    unsigned flags;           /* private (line-end state) */
} melt_sse;

void melt_sse_init(melt_sse *s, melt_sse_event_fn fn, void *ctx);
/* Feed bytes; calls fn for each complete event. Returns 0, fn's non-zero
 * return, or < 0 (event too large / out of memory, err says which). */
int melt_sse_feed(melt_sse *s, const char *p, size_t n, melt_error *err);
/* True when bytes of an unfinished event are buffered (a cut stream). */
bool melt_sse_pending(const melt_sse *s);
void melt_sse_free(melt_sse *s);

/* ---- oai.c ---- */

enum melt_oai_kind {
    MELT_OAI_CHAT = 0,          /* POST {root}/v1/chat/completions, messages */
    MELT_OAI_COMPLETIONS,       /* POST {root}/v1/completions, prompt (text or token ids) */
    MELT_OAI_LLAMA_COMPLETION,  /* POST {root}/completion (llama.cpp native): prompt as
                                   text or token ids, n_predict, ignore_eos; streams
                                   {"content","tokens":[id],"stop":false} then a final
                                   {"stop":true,...,"timings":{...}} */
};

typedef struct melt_oai_call {
    /* Server base URL: "http://H:P", "http://H:P/v1" or ".../prefix/v1";
     * a trailing "/v1" (and "/") is dropped to get the root, and the
     * endpoint path of kind appended. */
    const char *base_url;
    const char *path;           /* non-NULL: use this path instead (e.g. "/v2/chat") */
    enum melt_oai_kind kind;
    const char *model;          /* "model" member; NULL: omitted (server's default) */
    const char *api_key;        /* NULL: no Authorization header; else "Bearer KEY"
                                   (never copied, logged or put in an error) */
    const melt_backend_request *rq;  /* prompt form must suit kind: CHAT messages;
                                        COMPLETIONS/LLAMA_COMPLETION prompt or tokens */
    const melt_sampler_params *sampling;  /* NULL: the server's defaults; else
                                   temperature, top_p, seed; and top_k, min_p,
                                   repeat_penalty, repeat_last_n for
                                   LLAMA_COMPLETION or when llama_extras */
    bool llama_extras;          /* CHAT/COMPLETIONS against a llama.cpp-like server
                                   (llama-server, melt serve): also send top_k,
                                   min_p, repeat_penalty (OpenAI proper rejects
                                   unknown members) */
    const char *extra_json;     /* members appended to the request object,
                                   e.g. "\"cache_prompt\":false"; NULL: none */
    int64_t connect_timeout_ms; /* 0: 10 s */
    int64_t idle_timeout_ms;    /* no byte for this long ends the request as LOST; 0: 300 s */
    const volatile int *cancel; /* non-zero: stop, END_CALLER; may be NULL */
} melt_oai_call;

/* Build the JSON request body (stream: true; stream_options.include_usage
 * for CHAT/COMPLETIONS; max_tokens / n_predict from rq->n_predict;
 * ignore_eos when asked). *out malloc'd, NUL-terminated. */
int melt_oai_body(const melt_oai_call *call, char **out, size_t *out_len, melt_error *err);

/* Run one streamed request (sink->started is left to the caller). Each
 * event carrying generated text (or token ids; a chat delta's
 * reasoning_content counts, but stays out of the reply) becomes one
 * sink->token call, stamped with the receive time
 * of the bytes that completed the event; id is the token id when the
 * server sent exactly one (llama.cpp "tokens"), else -1. usage members
 * (prompt_tokens, completion_tokens, total_tokens: "count"; numeric
 * members of MLC's usage.extra: unit from the name: *_ms "ms", *_s "s",
 * *per_s / *_tps / *per_second "tok/s", else "") and llama.cpp timings
 * (prompt_n/predicted_n/cache_n "count", *_ms "ms", *_per_second "tok/s")
 * go to sink->figure (sink and its callbacks may be NULL).
 *
 * res: t_request_ns (just before connecting), n_gen (tokens reported),
 * n_prompt (usage.prompt_tokens / tokens_evaluated / timings prompt_n +
 * cache_n; -1 unknown), reply (the generated text, malloc'd; also on
 * errors with what arrived), end: finish_reason "length" / stop_type
 * "limit" -> LIMIT (CONTEXT when usage.completion_tokens /
 * tokens_predicted, else n_gen, is below rq->n_predict); "stop", "eos",
 * "word" and others -> EOG; a cut stream (EOF, idle
 * timeout, reset before [DONE] / the final object) -> LOST; the sink's
 * non-zero return or cancel -> CALLER.
 *
 * Returns 0 when the request ran (any end), < 0 when it could not start
 * (connect failed: err names host:port), the server answered an error
 * status (err quotes the server's error.message and the status), or an
 * error event arrived mid-stream (its message; tokens before it stay
 * reported and in reply). */
int melt_oai_stream(const melt_oai_call *call, const melt_backend_sink *sink,
                    melt_backend_result *res, melt_error *err);

/* GET {root}/v1/models and copy data[0].id (the served model) to name
 * (cap bytes). 0, MELT_ENOTFOUND when the list is empty, or < 0 (status
 * not 200: err has it and the server's message; *status set when a
 * response came, else 0). */
int melt_oai_first_model(const char *base_url, const char *api_key, int64_t timeout_ms,
                         const volatile int *cancel, char *name, size_t cap, int *status,
                         melt_error *err);

/* The server's message from an error body: error.message, or a top-level
 * "message", or the body itself (trimmed to fit); into buf. */
void melt_oai_error_message(const char *body, size_t len, char *buf, size_t cap);

/* ---- server.c ---- */

typedef struct melt_server melt_server;

/* Start argv (argv[0] searched in PATH when it has no '/'; never a
 * shell) in its own process group with stdin from /dev/null, stdout +
 * stderr appended to log_path (NULL: a temporary file removed at stop),
 * default signal handlers and mask, and (Linux) SIGTERM when the calling
 * thread ends.
 * Then poll GET health_url every 50-200 ms until it answers 200 (503
 * "Loading model" and refused connections mean wait). Fails (stopping the
 * process) when the process exits first (err: its exit status and the last
 * lines of its log), after timeout_ms (0: 120 s), or on *cancel. */
int melt_server_start(char *const argv[], const char *health_url, const char *log_path,
                      int64_t timeout_ms, const volatile int *cancel, melt_server **out,
                      melt_error *err);
/* True while the process runs (reaps it when it exited). */
bool melt_server_alive(melt_server *s);
/* Its pid (for probes that watch the server's RSS/CPU). */
int melt_server_pid(const melt_server *s);
/* Time from spawn to the first 200 of health_url, in ns. */
int64_t melt_server_start_ns(const melt_server *s);
/* The last lines of its log (up to cap bytes) into buf, for errors. */
void melt_server_log_tail(const melt_server *s, char *buf, size_t cap);
/* SIGTERM to the group, wait up to 5 s, then SIGKILL; reap; free. NULL-safe. */
void melt_server_stop(melt_server *s);

/* ---- openai.c, mlc.c (the registry lists them) ---- */
const melt_backend_ops *melt_backend_openai(void);
const melt_backend_ops *melt_backend_mlc(void);

/* What mlc (a local server, then requests as openai makes them) shares
 * with openai: text and chat, no tokenizer, nothing to reset between
 * requests (each carries its whole conversation). */
unsigned melt_openai_caps(const melt_backend *b);
const melt_tokenizer *melt_openai_tokenizer(const melt_backend *b);
void melt_openai_reset(melt_backend *b);
/* The streamed call for rq: /v1/chat/completions for messages, else
 * /v1/completions; model may be NULL (the server's default); sampling,
 * idle timeout and cancel from p. The caller adds api_key / extra_json. */
melt_oai_call melt_openai_call(const char *base_url, const char *model, const melt_backend_request *rq,
                               const melt_backend_params *p);
/* Stamp sink->started now (prompt length -1: the server's to know), run
 * melt_oai_stream; errors prefixed "NAME: ". */
int melt_openai_stream(const char *name, const melt_oai_call *c, const melt_backend_sink *sink,
                       melt_backend_result *res, melt_error *err);

#endif

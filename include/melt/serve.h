/* melt — `melt serve`: an OpenAI-compatible HTTP server over the builtin
 * engine (docs/serve.md).
 *
 * Two layers:
 *   - the request/response layer (src/serve/api.c): parse and validate a
 *     request body, turn it into prompt tokens, match stop strings, build
 *     every response body (results, stream chunks, errors, /v1/models).
 *     Pure functions over memory, no sockets: unit tests and the fuzz
 *     target call them directly;
 *   - the server (src/serve/httpd.c): libmicrohttpd, one thread per
 *     connection, a bounded queue of requests in front of N slots, each slot
 *     a melt_context (and a sampler per request) over one shared model.
 *
 * Every function that can fail with a client's fault returns an HTTP status
 * (400, 413, ...) and fills err->msg with the message for the error body; 0
 * means success.
 */
#ifndef MELT_SERVE_H
#define MELT_SERVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "melt/chat.h"
#include "melt/error.h"
#include "melt/sampler.h"
#include "melt/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- requests ---- */

enum melt_serve_kind {
    MELT_SERVE_COMPLETION = 1,  /* POST /v1/completions */
    MELT_SERVE_CHAT = 2,        /* POST /v1/chat/completions */
};

/* What a request may leave out, and what its values are checked against. */
typedef struct melt_serve_defaults {
    melt_sampler_params sampling;  /* the server's sampling flags */
    int max_tokens;                /* -1: until end of generation / full context */
    int32_t n_vocab;               /* token ids of a prompt must be below it */
} melt_serve_defaults;

#define MELT_SERVE_MAX_STOP 16     /* stop strings per request */

typedef struct melt_serve_request {
    enum melt_serve_kind kind;
    /* completions: a text prompt (NUL-terminated, may hold NULs: use
     * prompt_len), or token ids (prompt NULL) */
    char *prompt;
    size_t prompt_len;
    melt_token *prompt_ids;
    size_t n_prompt_ids;
    /* chat: the messages (role and content owned by the request) */
    melt_chat_msg *msgs;
    size_t n_msgs;
    int max_tokens;                /* -1: no limit but the context */
    melt_sampler_params sampling;
    char *stop[MELT_SERVE_MAX_STOP];
    size_t n_stop;
    bool stream;
    bool include_usage;            /* stream_options.include_usage */
    bool ignore_eos;
    bool cache_prompt;             /* reuse the slot's cached prefix (default true) */
} melt_serve_request;

/* Parse body[0..len) as a request of kind. Returns 0 with *req filled (free
 * with melt_serve_request_free), or 400 with err->msg naming the field
 * (malformed JSON, a field of the wrong type, a value out of range); *req
 * is then empty. Unknown fields are ignored. */
int melt_serve_parse_request(enum melt_serve_kind kind, const char *body, size_t len,
                             const melt_serve_defaults *d, melt_serve_request *req,
                             melt_error *err);
void melt_serve_request_free(melt_serve_request *req);

/* The prompt tokens of req: a text prompt tokenized with BOS and special
 * tokens (as `melt generate -p`), token ids as given, chat messages
 * rendered with template tmpl and tokenized the same way. *ids is malloc'd
 * (free()). Returns 0; 400 when the prompt is empty, the conversation does
 * not fit the template, or the prompt has more than n_ctx tokens; 500 when
 * out of memory. */
int melt_serve_prompt_tokens(const melt_serve_request *req, const melt_tokenizer *tok,
                             enum melt_chat_template tmpl, int n_ctx, melt_token **ids,
                             size_t *n_ids, melt_error *err);

/* ---- stop strings ---- */

/* Holds back generated text that could be the start of a stop string, so
 * that no byte of a stop string is ever sent (OpenAI's behaviour). */
typedef struct melt_serve_stopper {
    char *const *stop;   /* borrowed */
    size_t n_stop;
    char *held;          /* text not yet released */
    size_t n_held, cap_held;
    char *out;           /* what the last push released */
    size_t cap_out;
    bool stopped;        /* a stop string matched */
} melt_serve_stopper;

void melt_serve_stopper_init(melt_serve_stopper *s, char *const *stop, size_t n_stop);
/* Add text[0..len); *out and *n_out receive the text that is now safe to send
 * (valid until the next call). After a match, *out ends just before the
 * stop string, s->stopped is true and later pushes release nothing.
 * MELT_ENOMEM on allocation failure, else 0. */
int melt_serve_stopper_push(melt_serve_stopper *s, const char *text, size_t len,
                            const char **out, size_t *n_out);
/* End of generation without a match: release what is held. */
void melt_serve_stopper_flush(melt_serve_stopper *s, const char **out, size_t *n_out);
void melt_serve_stopper_free(melt_serve_stopper *s);

/* ---- responses ---- */

enum melt_serve_finish {
    MELT_SERVE_FINISH_NONE = 0,    /* a chunk in the middle of a stream */
    MELT_SERVE_FINISH_STOP = 1,    /* end of generation or a stop string */
    MELT_SERVE_FINISH_LENGTH = 2,  /* max_tokens or the context is full */
};

/* "stop", "length" (NULL for NONE). */
const char *melt_serve_finish_name(enum melt_serve_finish f);

/* What one request produced, for the bodies below. */
typedef struct melt_serve_result {
    enum melt_serve_kind kind;
    const char *id;          /* "cmpl-..." / "chatcmpl-..." */
    int64_t created;         /* Unix seconds */
    const char *model;
    const char *text;        /* the whole answer (non-streamed) */
    size_t text_len;
    enum melt_serve_finish finish;
    int n_prompt, n_gen;     /* n_prompt: all prompt tokens (usage) */
    int n_cached;            /* of them, found in the slot's cache (not decoded) */
    uint64_t prompt_ns;      /* decoding the prompt (its uncached part) */
    uint64_t predicted_ns;   /* end of the prompt to the last token */
} melt_serve_result;

/* A response id: prefix and 24 characters derived from a 64-bit number
 * (write into buf of at least 40 bytes). */
void melt_serve_make_id(const char *prefix, uint64_t n, char *buf, size_t size);

/* Bodies, each a malloc'd NUL-terminated JSON text (NULL when out of
 * memory). */
/* {"error":{"message":..,"type":..,"code":status}}: type
 * invalid_request_error for 4xx but 404 (not_found_error), 503
 * (unavailable_error), else server_error. */
char *melt_serve_error_json(int status, const char *message);
/* The whole non-streamed answer: choices[0] with text or message,
 * usage and timings. */
char *melt_serve_result_json(const melt_serve_result *r);
/* One stream chunk: a delta of text[0..len) with finish NONE; with
 * role_only the first chat chunk ({"role":"assistant","content":""});
 * with finish set the last chunk of choices (empty text, and timings); with
 * usage_only the usage chunk of stream_options.include_usage ("choices":[]). */
typedef struct melt_serve_chunk {
    const char *text;
    size_t len;
    bool role_only;
    bool usage_only;
    enum melt_serve_finish finish;
} melt_serve_chunk;
char *melt_serve_chunk_json(const melt_serve_result *r, const melt_serve_chunk *c);

/* The model, for GET /v1/models. */
typedef struct melt_serve_model_info {
    const char *name;
    int64_t created;
    int32_t n_vocab;
    int n_ctx, n_ctx_train, n_embd;
    uint64_t n_params;
    uint64_t size_bytes;
} melt_serve_model_info;
char *melt_serve_models_json(const melt_serve_model_info *m);

/* ---- the server ---- */

typedef struct melt_serve_server melt_serve_server;

typedef struct melt_serve_params {
    const char *model_path;
    const char *alias;          /* model name in responses; NULL: file name less .gguf */
    const char *host;           /* default "127.0.0.1" */
    int port;                   /* 0: any free port */
    int n_parallel;             /* slots; default 1 */
    int max_queue;              /* requests waiting for a slot; beyond: 503 */
    int max_connections;        /* libmicrohttpd's connection limit */
    size_t max_body_bytes;      /* larger request bodies: 413 */
    int timeout_s;              /* idle connection timeout */
    /* engine */
    int n_ctx, n_batch, n_threads;  /* 0: the library's defaults */
    int kv_type;                    /* enum melt_kv_type */
    const char *chat_template;      /* NULL: detected, else chatml */
    melt_serve_defaults defaults;   /* n_vocab is filled in when loaded */
} melt_serve_params;

melt_serve_params melt_serve_default_params(void);

/* Start listening (the model is not loaded yet: /health answers 503).
 * The params' strings must outlive the server. */
int melt_serve_start(const melt_serve_params *p, melt_serve_server **out, melt_error *err);
/* The address it listens on, and the model name. */
const char *melt_serve_host(const melt_serve_server *s);
int melt_serve_port(const melt_serve_server *s);
const char *melt_serve_model_name(const melt_serve_server *s);
/* Load the model, tokenizer and the slots; then requests are served.
 * *load_ns (may be NULL) receives the time it took. */
int melt_serve_load(melt_serve_server *s, uint64_t *load_ns, melt_error *err);
/* Stop: refuse new requests, cancel queued and running generations
 * (their clients get a 503 or an error event), close every connection,
 * free everything. s may be NULL. */
void melt_serve_stop(melt_serve_server *s);

#ifdef __cplusplus
}
#endif
#endif

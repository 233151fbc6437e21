/* melt — backends: the inference frameworks under test.
 *
 * A backend runs requests on one engine and reports what happened through
 * a sink, so that every framework yields the same event stream
 * (melt/event.h): the agent writes request/end lines around each call and
 * token/first_token lines from the sink's token callback; a backend's own
 * timings (llama.cpp's `timings`, an OpenAI `usage`) arrive as figures.
 *
 * One file per backend under src/backends/ fills a melt_backend_ops and has
 * one line in the table of src/backends/registry.c (as transports and
 * probes). Backends run inside the on-device agent: libc only (sockets,
 * fork/exec), no libcurl or jansson.
 *
 *   builtin   melt's own engine (src/engine), in process
 *   llamacpp  llama-server over HTTP (mode "server", default) or
 *             llama-completion/llama-cli with its timing summary parsed
 *             (mode "cli")
 *   mlc       `mlc_llm serve` (OpenAI API), started and stopped like
 *             llama-server
 *   openai    any OpenAI-compatible endpoint by URL (edge offloading: the
 *             device is the client, the model runs elsewhere)
 *
 * Times are CLOCK_MONOTONIC ns of the machine the backend runs on (the
 * device), taken when a token is known to the caller: picked (builtin),
 * its bytes received (HTTP), its line parsed (cli).
 */
#ifndef MELT_BACKEND_H
#define MELT_BACKEND_H

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

typedef struct melt_backend melt_backend;

/* What a backend can take as a prompt. */
enum melt_backend_caps {
    MELT_BACKEND_TOKENS = 1 << 0,  /* exact token ids (synthetic pp/tg) */
    MELT_BACKEND_TEXT = 1 << 1,    /* a raw text prompt (completion) */
    MELT_BACKEND_CHAT = 1 << 2,    /* a list of chat messages */
};

/* Options from the experiment's engine entry; a backend ignores what does
 * not apply to it (and says so in its docs). Strings are borrowed for the
 * backend's lifetime. */
typedef struct melt_backend_params {
    const char *model;         /* GGUF path (builtin, llamacpp); served model
                                  name (openai, mlc; NULL: the server's first) */
    const char *mode;          /* llamacpp: "server" (default) or "cli" */
    const char *binary;        /* llama-server / llama-completion / mlc_llm;
                                  NULL: the default name looked up on PATH */
    const char *url;           /* openai: base URL, e.g. http://10.0.0.2:8080/v1 */
    const char *api_key_env;   /* openai: name of the environment variable that
                                  holds the API key (the key is never stored) */
    const char *chat_template; /* builtin: template name (NULL: the model's) */
    const char *const *extra_args;  /* appended to the server/cli command line */
    int n_extra_args;
    int n_threads;             /* 0: the backend's default */
    int n_ctx;                 /* 0: the backend's default */
    int n_batch;               /* 0: the backend's default */
    const char *kv_type;       /* "f16" / "f32" / NULL */
    melt_sampler_params sampling;
    int port;                  /* llamacpp/mlc server port; 0: a free one */
    int64_t start_timeout_ms;  /* server start until /health is ok; 0: 120 s */
    int64_t request_timeout_ms;/* no byte for this long ends a request; 0: 300 s */
    /* Non-zero when the caller wants to stop (the agent's signal flag);
     * long waits poll it at least every 50 ms. May be NULL. */
    const volatile int *cancel;
} melt_backend_params;

/* Default params: everything 0/NULL, sampling from
 * melt_sampler_default_params(). */
melt_backend_params melt_backend_default_params(void);

/* One request. Exactly one prompt form is set; the backend must have the
 * matching capability. */
typedef struct melt_backend_request {
    const melt_token *tokens;  /* exact prompt token ids (BOS included when wanted) */
    int n_tokens;
    const char *prompt;        /* text completion prompt */
    const melt_chat_msg *messages;  /* chat, oldest first; the last is the user's */
    size_t n_messages;
    int n_predict;             /* most tokens to generate (> 0) */
    bool ignore_eos;           /* generate exactly n_predict (synthetic tg) */
    /* chat (builtin): drop the oldest exchanges while the rendered prompt
     * plus n_predict exceeds this many tokens; 0: the context size. */
    int max_context_tokens;
} melt_backend_request;

/* Where a backend reports during a request. */
typedef struct melt_backend_sink {
    void *ctx;
    /* Generated token number index (0, 1, ...) became known at t_ns: id is
     * its token id or -1 when the backend only sees text; text/len its
     * text (may be empty). A non-zero return asks the backend to stop
     * (the request then ends with MELT_BACKEND_END_CALLER). */
    int (*token)(void *ctx, int64_t t_ns, int index, int32_t id, const char *text, size_t len);
    /* A figure the engine itself reported for this request, e.g.
     * ("prompt_ms", 12.5, "ms") from llama.cpp's timings or
     * ("prompt_tokens", 5, "count") from an OpenAI usage object. */
    void (*figure)(void *ctx, const char *key, double value, const char *unit);
    /* Optional (may be NULL; a backend may also never call it): the prompt
     * is about to be decoded / the request sent at t_ns, n_prompt tokens
     * long (-1 when the backend does not know). Called at most once per
     * request, before the first token. Without it the caller takes the
     * time it called request() and its own prompt count. */
    void (*started)(void *ctx, int64_t t_ns, int n_prompt);
} melt_backend_sink;

enum melt_backend_end {
    MELT_BACKEND_END_LIMIT = 0,  /* n_predict reached */
    MELT_BACKEND_END_EOG,        /* end of generation / stop sequence */
    MELT_BACKEND_END_CONTEXT,    /* the context is full */
    MELT_BACKEND_END_CALLER,     /* the sink or cancel asked to stop */
    MELT_BACKEND_END_LOST,       /* the connection/process went away midway:
                                    what arrived was reported */
};

/* "limit", "eog", "context", "caller", "lost" (the agent's end reasons). */
const char *melt_backend_end_name(enum melt_backend_end e);

typedef struct melt_backend_result {
    int n_prompt;              /* prompt tokens the engine processed (-1 unknown) */
    int n_gen;                 /* tokens reported to the sink */
    enum melt_backend_end end;
    int64_t t_request_ns;      /* when the request was sent/started */
    char *reply;               /* the generated text (malloc'd; the caller
                                  frees it; chat history needs it) */
} melt_backend_result;

typedef struct melt_backend_ops {
    const char *name;          /* "builtin", "llamacpp", ... */
    unsigned caps;             /* enum melt_backend_caps (for the default mode) */
    /* Load the model / start the server and wait until it serves. Figures
     * about the load (e.g. "load_ms") go to sink->figure when sink is not
     * NULL. */
    int (*open)(const melt_backend_params *p, const melt_backend_sink *sink, melt_backend **out,
                melt_error *err);
    /* Capabilities of this open instance (llamacpp cli differs from server). */
    unsigned (*caps_of)(const melt_backend *b);
    /* The tokenizer, when the backend has one in process (builtin), so the
     * agent can make exact synthetic prompts; NULL otherwise. */
    const melt_tokenizer *(*tokenizer)(const melt_backend *b);
    /* Run one request to its end. A request that started returns 0 with
     * res->end saying how it ended (LOST included: the trial is marked by
     * the caller); < 0 only when nothing could be started or a protocol
     * error made the rest meaningless (err says why; tokens already
     * reported stay reported). */
    int (*request)(melt_backend *b, const melt_backend_request *rq, const melt_backend_sink *sink,
                   melt_backend_result *res, melt_error *err);
    /* Forget conversation state (KV cache reuse) between conversations. */
    void (*reset)(melt_backend *b);
    /* Stop the server / free the model. NULL-safe. */
    void (*close)(melt_backend *b);
} melt_backend_ops;

/* The backend called name, or NULL (src/backends/registry.c). */
const melt_backend_ops *melt_backend_find(const char *name);
/* "builtin, llamacpp, mlc, openai" (for messages). */
const char *melt_backend_names(void);

void melt_backend_result_free(melt_backend_result *res);

#ifdef __cplusplus
}
#endif
#endif

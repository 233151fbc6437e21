/* melt serve: the HTTP side (libmicrohttpd) and the slots.
 *
 * Threads:
 *   - libmicrohttpd's listening thread and one thread per connection
 *     (bounded by max_connections). A connection thread reads the body,
 *     parses and tokenizes the request, queues it and waits: for the whole
 *     answer (non-streamed), or, streamed, in the response's reader
 *     callback for the next bytes of SSE.
 *   - one worker per slot: takes the oldest queued request, runs
 *     melt_generate on its own melt_context with a sampler made for the
 *     request, and appends the answer (text, or SSE chunks) to the job.
 * One mutex (srv->mu) guards the queue and every job's state and output;
 * each job has a condition variable its connection waits on. A job is
 * shared by its connection and the worker/queue and freed by the last of
 * them to let go (refs). */
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "melt/engine.h"
#include "melt/generate.h"
#include "melt/serve.h"

enum job_state { JOB_QUEUED, JOB_RUNNING, JOB_DONE };

typedef struct job {
    melt_serve_server *srv;
    pthread_cond_t cv;
    int refs;
    enum job_state state;
    atomic_bool cancelled;       /* the client went away */
    int fail_status;             /* DONE with an error: its HTTP status */
    char fail_msg[512];
    melt_serve_request req;
    melt_token *ids;
    size_t n_ids;
    char id[48];
    melt_serve_result res;
    /* the answer's text (non-streamed) or SSE bytes (streamed) */
    char *out;
    size_t out_len, out_cap, out_off;
    struct job *next;
} job;

typedef struct slot {
    melt_serve_server *srv;
    melt_context *ctx;
    melt_token *cached;  /* the tokens in ctx's KV cache, in order */
    size_t n_cached;
    pthread_t thread;
    bool running;
} slot;

struct melt_serve_server {
    melt_serve_params p;
    char host[256];
    char model_name[256];
    int port;
    struct MHD_Daemon *mhd;
    pthread_mutex_t mu;
    pthread_cond_t work_cv;
    atomic_bool ready, stopping;
    melt_model *m;
    melt_tokenizer *tok;
    enum melt_chat_template tmpl;
    melt_serve_model_info info;
    int n_ctx;
    slot *slots;
    int n_slots;
    job *q_head, *q_tail;
    int n_queued;
    int n_idle;          /* slots not running a job: each will take one */
    int n_active;        /* requests between their first call and completion */
    pthread_cond_t active_cv;
    atomic_uint_fast64_t next_id;
};

melt_serve_params melt_serve_default_params(void)
{
    melt_serve_params p = {0};
    p.host = "127.0.0.1";
    p.port = 8080;
    p.n_parallel = 1;
    p.max_queue = 64;
    p.max_connections = 512;
    p.max_body_bytes = 8u << 20;
    p.timeout_s = 600;
    p.kv_type = MELT_KV_F16;
    p.defaults.sampling = melt_sampler_default_params();
    p.defaults.max_tokens = -1;
    return p;
}

/* ---- jobs ---- */

static void job_unref_locked(job *j)
{
    if (--j->refs > 0) return;
    pthread_cond_destroy(&j->cv);
    melt_serve_request_free(&j->req);
    free(j->ids);
    free(j->out);
    free(j);
}

static void job_unref(job *j)
{
    melt_serve_server *s = j->srv;
    pthread_mutex_lock(&s->mu);
    job_unref_locked(j);
    pthread_mutex_unlock(&s->mu);
}

/* Finish j with an error (under srv->mu). */
static void job_fail_locked(job *j, int status, const char *msg)
{
    j->state = JOB_DONE;
    j->fail_status = status;
    snprintf(j->fail_msg, sizeof j->fail_msg, "%s", msg);
    pthread_cond_broadcast(&j->cv);
}

static int append(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t c = *cap ? *cap : 256;
        while (c < *len + n + 1) c *= 2;
        char *q = realloc(*buf, c);
        if (!q) return MELT_ENOMEM;
        *buf = q;
        *cap = c;
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = '\0';
    return 0;
}

/* One SSE event "data: JSON\n\n" for the connection (json is freed). */
static int push_event(job *j, char *json)
{
    if (!json) return MELT_ENOMEM;
    melt_serve_server *s = j->srv;
    pthread_mutex_lock(&s->mu);
    int rc = append(&j->out, &j->out_len, &j->out_cap, "data: ", 6);
    if (!rc) rc = append(&j->out, &j->out_len, &j->out_cap, json, strlen(json));
    if (!rc) rc = append(&j->out, &j->out_len, &j->out_cap, "\n\n", 2);
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&s->mu);
    free(json);
    return rc;
}

/* Text the client may see now: a delta chunk, or into the answer. */
static int emit_text(job *j, const char *text, size_t len)
{
    if (len == 0) return 0;
    if (!j->req.stream)
        return append(&j->out, &j->out_len, &j->out_cap, text, len);
    melt_serve_chunk c = {.text = text, .len = len};
    return push_event(j, melt_serve_chunk_json(&j->res, &c));
}

/* ---- generation (worker threads) ---- */

typedef struct gen_state {
    job *j;
    melt_serve_stopper stop;
    int rc;
} gen_state;

static int on_token(const melt_gen_token *t, void *user)
{
    gen_state *g = user;
    if (atomic_load(&g->j->cancelled) || atomic_load(&g->j->srv->stopping)) return 1;
    const char *out;
    size_t n;
    if ((g->rc = melt_serve_stopper_push(&g->stop, t->text, t->len, &out, &n)) < 0 ||
        (g->rc = emit_text(g->j, out, n)) < 0)
        return 1;
    return g->stop.stopped;
}

static enum melt_serve_finish finish_of(const gen_state *g, const melt_generate_stats *st)
{
    if (g->stop.stopped || st->stop == MELT_STOP_EOG) return MELT_SERVE_FINISH_STOP;
    return MELT_SERVE_FINISH_LENGTH;
}

/* The stream's closing events: the finish chunk, the usage chunk when
 * asked for, [DONE]. */
static int close_stream(job *j)
{
    melt_serve_chunk fin = {.finish = j->res.finish};
    int rc = push_event(j, melt_serve_chunk_json(&j->res, &fin));
    if (!rc && j->req.include_usage) {
        melt_serve_chunk u = {.usage_only = true};
        rc = push_event(j, melt_serve_chunk_json(&j->res, &u));
    }
    if (!rc) {
        pthread_mutex_lock(&j->srv->mu);
        rc = append(&j->out, &j->out_len, &j->out_cap, "data: [DONE]\n\n", 14);
        pthread_mutex_unlock(&j->srv->mu);
    }
    return rc;
}

/* After a generation: the cache holds the first n_past tokens of the
 * prompt followed by the generated ones. */
static void remember_cache(slot *sl, const melt_token *ids, size_t n_ids, const melt_token *gen,
                           int n_past)
{
    melt_token *q = realloc(sl->cached, (size_t)(n_past > 0 ? n_past : 1) * sizeof *q);
    if (!q) return;  /* stays empty: the next request decodes everything */
    sl->cached = q;
    for (int i = 0; i < n_past; i++) q[i] = (size_t)i < n_ids ? ids[i] : gen[(size_t)i - n_ids];
    sl->n_cached = (size_t)n_past;
}

/* Run j on the slot. Returns 0, or an HTTP status with msg set. */
static int run_job(slot *sl, job *j, char *msg, size_t msg_size)
{
    melt_serve_server *s = sl->srv;
    melt_error err = {0};
    melt_sampler *smp = NULL;
    melt_token *gen = NULL;
    gen_state g = {.j = j};
    melt_serve_stopper_init(&g.stop, j->req.stop, j->req.n_stop);
    int status = 0;
    if (melt_sampler_new(&j->req.sampling, melt_model_n_vocab(s->m), &smp, &err) < 0) {
        status = 400;
        goto out;
    }
    if (j->req.stream && j->req.kind == MELT_SERVE_CHAT) {
        melt_serve_chunk role = {.role_only = true};
        if (push_event(j, melt_serve_chunk_json(&j->res, &role)) < 0) goto nomem;
    }
    melt_generate_params gp = melt_generate_default_params();
    gp.n_predict = j->req.max_tokens;
    gp.ignore_eos = j->req.ignore_eos;
    melt_generate_stats st;
    memset(&st, 0, sizeof st);
    /* The longest prefix the slot's cache already holds is not decoded
     * again (at least one token is, for the logits); the sampler's penalty
     * history still sees the whole prompt. */
    size_t k = 0;
    while (j->req.cache_prompt && k < sl->n_cached && k < j->n_ids && sl->cached[k] == j->ids[k]) k++;
    if (k == j->n_ids) k--;
    for (size_t i = 0; i < k; i++) melt_sampler_accept(smp, j->ids[i]);
    sl->n_cached = 0;  /* unknown until this generation ends well */
    if (melt_generate(sl->ctx, s->tok, smp, j->ids + k, (int)(j->n_ids - k), (int)k, &gp, on_token, &g,
                      &gen, &st, &err) < 0) {
        status = 500;
        goto out;
    }
    remember_cache(sl, j->ids, j->n_ids, gen, st.n_past);
    if (g.rc < 0) goto nomem;
    if (st.stop == MELT_STOP_CALLER && !g.stop.stopped) {
        status = 503;  /* shutting down, or nobody is listening any more */
        melt_errorf(&err, MELT_EINVAL, "%s", atomic_load(&s->stopping) ? "the server is shutting down"
                                                                       : "the client went away");
        goto out;
    }
    const char *rest;
    size_t n_rest;
    melt_serve_stopper_flush(&g.stop, &rest, &n_rest);
    if (emit_text(j, rest, n_rest) < 0) goto nomem;
    j->res.finish = finish_of(&g, &st);
    j->res.n_prompt = (int)j->n_ids;
    j->res.n_cached = (int)k;
    j->res.n_gen = st.n_gen;
    j->res.prompt_ns = st.prompt_ns;
    /* llama-server's predicted_ms: prompt decoded to last token */
    j->res.predicted_ns = st.n_gen && st.ttft_ns > st.prompt_ns ? st.ttft_ns - st.prompt_ns + st.gen_ns : 0;
    if (j->req.stream && close_stream(j) < 0) goto nomem;
    goto out;
nomem:
    status = 500;
    melt_errorf(&err, MELT_ENOMEM, "out of memory");
out:
    if (status) snprintf(msg, msg_size, "%s", err.msg);
    if (status) sl->n_cached = 0;
    melt_serve_stopper_free(&g.stop);
    melt_sampler_free(smp);
    free(gen);
    return status;
}

static void *worker_main(void *arg)
{
    slot *sl = arg;
    melt_serve_server *s = sl->srv;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!atomic_load(&s->stopping) && !s->q_head) pthread_cond_wait(&s->work_cv, &s->mu);
        if (atomic_load(&s->stopping)) break;
        s->n_idle--;
        job *j = s->q_head;
        s->q_head = j->next;
        if (!s->q_head) s->q_tail = NULL;
        s->n_queued--;
        if (atomic_load(&j->cancelled)) {  /* its client left while it waited */
            job_fail_locked(j, 503, "cancelled");
            job_unref_locked(j);
            s->n_idle++;
            continue;
        }
        j->state = JOB_RUNNING;
        pthread_cond_broadcast(&j->cv);
        pthread_mutex_unlock(&s->mu);

        char msg[512] = "";
        const int status = run_job(sl, j, msg, sizeof msg);

        pthread_mutex_lock(&s->mu);
        if (status && j->req.stream) {
            /* the 200 and part of the stream are out: end with an error event */
            char *e = melt_serve_error_json(status, msg);
            if (e) {
                append(&j->out, &j->out_len, &j->out_cap, "data: ", 6);
                append(&j->out, &j->out_len, &j->out_cap, e, strlen(e));
                append(&j->out, &j->out_len, &j->out_cap, "\n\n", 2);
                free(e);
            }
        }
        if (status) job_fail_locked(j, status, msg);
        j->state = JOB_DONE;
        pthread_cond_broadcast(&j->cv);
        job_unref_locked(j);
        s->n_idle++;
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* Queue j for a slot (the queue takes a reference). 0, or 503 with msg. */
static int submit(melt_serve_server *s, job *j, const char **msg)
{
    int status = 0;
    pthread_mutex_lock(&s->mu);
    if (atomic_load(&s->stopping)) {
        status = 503;
        *msg = "the server is shutting down";
    } else if (s->n_queued >= s->p.max_queue + s->n_idle) {
        /* every idle slot takes one queued job; max_queue more may wait */
        status = 503;
        *msg = "the server is busy: every slot is taken and the queue is full, try again later";
    } else {
        j->refs++;
        j->state = JOB_QUEUED;
        if (s->q_tail) s->q_tail->next = j;
        else s->q_head = j;
        s->q_tail = j;
        s->n_queued++;
        pthread_cond_signal(&s->work_cv);
    }
    pthread_mutex_unlock(&s->mu);
    return status;
}

/* ---- HTTP ---- */

enum route { R_HEALTH, R_MODELS, R_COMPLETIONS, R_CHAT };

static const struct {
    const char *path;
    const char *method;
    enum route route;
} routes[] = {
    {"/health", "GET", R_HEALTH},
    {"/v1/health", "GET", R_HEALTH},
    {"/v1/models", "GET", R_MODELS},
    {"/models", "GET", R_MODELS},
    {"/v1/completions", "POST", R_COMPLETIONS},
    {"/completions", "POST", R_COMPLETIONS},
    {"/v1/chat/completions", "POST", R_CHAT},
    {"/chat/completions", "POST", R_CHAT},
};

/* Per-connection request state (libmicrohttpd's con_cls). */
typedef struct request {
    enum route route;
    char *body;
    size_t len, cap;
    bool too_large;
} request;

static enum MHD_Result send_body(struct MHD_Connection *c, unsigned status, char *json,
                                 const char *allow)
{
    static char oom[] = "{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\",\"code\":500}}";
    struct MHD_Response *r;
    if (json) {
        r = MHD_create_response_from_buffer(strlen(json), json, MHD_RESPMEM_MUST_FREE);
    } else {
        status = 500;
        r = MHD_create_response_from_buffer(strlen(oom), oom, MHD_RESPMEM_PERSISTENT);
    }
    if (!r) {
        free(json);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json; charset=utf-8");
    MHD_add_response_header(r, MHD_HTTP_HEADER_SERVER, "melt");
    if (allow) MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
    const enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_error(struct MHD_Connection *c, unsigned status, const char *msg)
{
    return send_body(c, status, melt_serve_error_json((int)status, msg), NULL);
}

/* The peer closed its end (checked while a non-streamed answer is made). */
static bool client_gone(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) return false;
    struct pollfd pf = {.fd = ci->connect_fd, .events = POLLRDHUP};
    return poll(&pf, 1, 0) == 1 && (pf.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/* Wait (under s->mu) until j leaves `state`, looking for a vanished client
 * every 100 ms. */
static void wait_while(melt_serve_server *s, job *j, enum job_state state, struct MHD_Connection *c)
{
    while (j->state == state) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000 * 1000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        if (pthread_cond_timedwait(&j->cv, &s->mu, &ts) == ETIMEDOUT && c && client_gone(c))
            atomic_store(&j->cancelled, true);
    }
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    job *j = cls;
    melt_serve_server *s = j->srv;
    (void)pos;
    pthread_mutex_lock(&s->mu);
    while (j->out_off == j->out_len && j->state != JOB_DONE) pthread_cond_wait(&j->cv, &s->mu);
    ssize_t n = MHD_CONTENT_READER_END_OF_STREAM;
    if (j->out_off < j->out_len) {
        n = (ssize_t)(j->out_len - j->out_off < max ? j->out_len - j->out_off : max);
        memcpy(buf, j->out + j->out_off, (size_t)n);
        j->out_off += (size_t)n;
    }
    pthread_mutex_unlock(&s->mu);
    return n;
}

static void stream_free(void *cls)
{
    job *j = cls;
    atomic_store(&j->cancelled, true);  /* no effect once it is done */
    job_unref(j);
}

static enum MHD_Result answer_stream(struct MHD_Connection *c, job *j)
{
    struct MHD_Response *r =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, stream_read, j, stream_free);
    if (!r) {
        job_unref(j);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(r, MHD_HTTP_HEADER_SERVER, "melt");
    const enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

/* Why a request cannot be served yet (or any more). */
static const char *not_ready(melt_serve_server *s)
{
    return atomic_load(&s->stopping) ? "the server is shutting down" : "Loading model";
}

/* POST /v1/completions and /v1/chat/completions. */
static enum MHD_Result answer_generate(melt_serve_server *s, struct MHD_Connection *c,
                                       enum melt_serve_kind kind, const char *body, size_t len)
{
    if (!atomic_load(&s->ready)) return send_error(c, 503, not_ready(s));
    job *j = calloc(1, sizeof *j);
    if (!j) return send_error(c, 500, "out of memory");
    j->srv = s;
    j->refs = 1;
    pthread_cond_init(&j->cv, NULL);
    melt_error err = {0};
    int status = melt_serve_parse_request(kind, body, len, &s->p.defaults, &j->req, &err);
    if (!status)
        status = melt_serve_prompt_tokens(&j->req, s->tok, s->tmpl, s->n_ctx, &j->ids, &j->n_ids, &err);
    const char *msg = err.msg;
    if (!status) {
        melt_serve_make_id(kind == MELT_SERVE_CHAT ? "chatcmpl-" : "cmpl-",
                           atomic_fetch_add(&s->next_id, 1), j->id, sizeof j->id);
        j->res.kind = kind;
        j->res.id = j->id;
        j->res.created = (int64_t)time(NULL);
        j->res.model = s->model_name;
        status = submit(s, j, &msg);
    }
    if (status) {
        const enum MHD_Result ret = send_error(c, (unsigned)status, msg);
        job_unref(j);
        return ret;
    }
    pthread_mutex_lock(&s->mu);
    /* a request refused before it started still gets a plain error */
    wait_while(s, j, JOB_QUEUED, c);
    if (j->req.stream && j->state != JOB_DONE) {
        pthread_mutex_unlock(&s->mu);
        return answer_stream(c, j);
    }
    wait_while(s, j, JOB_RUNNING, c);
    pthread_mutex_unlock(&s->mu);
    enum MHD_Result ret;
    if (j->fail_status) {
        ret = send_error(c, (unsigned)j->fail_status, j->fail_msg);
    } else if (j->req.stream) {  /* finished before we looked: send it all */
        return answer_stream(c, j);
    } else {
        j->res.text = j->out ? j->out : "";
        j->res.text_len = j->out_len;
        ret = send_body(c, MHD_HTTP_OK, melt_serve_result_json(&j->res), NULL);
    }
    job_unref(j);
    return ret;
}

static enum MHD_Result answer(melt_serve_server *s, struct MHD_Connection *c, request *rq)
{
    switch (rq->route) {
    case R_HEALTH:
        if (!atomic_load(&s->ready)) return send_error(c, 503, not_ready(s));
        return send_body(c, MHD_HTTP_OK, strdup("{\"status\":\"ok\"}"), NULL);
    case R_MODELS:
        if (!atomic_load(&s->ready)) return send_error(c, 503, not_ready(s));
        return send_body(c, MHD_HTTP_OK, melt_serve_models_json(&s->info), NULL);
    case R_COMPLETIONS: return answer_generate(s, c, MELT_SERVE_COMPLETION, rq->body, rq->len);
    case R_CHAT: return answer_generate(s, c, MELT_SERVE_CHAT, rq->body, rq->len);
    }
    return MHD_NO;
}

/* First call for a request: route it, refuse early what can be refused
 * before reading a body. Returns -1 to go on reading, else the result. */
static int start_request(melt_serve_server *s, struct MHD_Connection *c, const char *url,
                         const char *method, request *rq)
{
    const char *want = NULL;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (strcmp(url, routes[i].path) != 0) continue;
        want = routes[i].method;
        rq->route = routes[i].route;
        if (strcmp(method, want) == 0 || (strcmp(want, "GET") == 0 && strcmp(method, "HEAD") == 0))
            break;
    }
    if (!want) {
        char msg[300];
        snprintf(msg, sizeof msg, "File Not Found: %.256s", url);
        return send_error(c, 404, msg);
    }
    const bool is_get = strcmp(want, "GET") == 0;
    if (strcmp(method, want) != 0 && !(is_get && strcmp(method, "HEAD") == 0)) {
        char msg[400];
        snprintf(msg, sizeof msg, "method %.16s is not allowed on %.256s (use %s)", method, url, want);
        return send_body(c, 405, melt_serve_error_json(405, msg), is_get ? "GET, HEAD" : "POST");
    }
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl && strtoull(cl, NULL, 10) > s->p.max_body_bytes) {
        char msg[200];
        snprintf(msg, sizeof msg, "the request body is larger than %zu bytes", s->p.max_body_bytes);
        return send_error(c, 413, msg);
    }
    return -1;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    melt_serve_server *s = cls;
    (void)version;
    request *rq = *con_cls;
    if (!rq) {
        if (!(rq = calloc(1, sizeof *rq))) return MHD_NO;
        *con_cls = rq;
        pthread_mutex_lock(&s->mu);
        s->n_active++;
        pthread_mutex_unlock(&s->mu);
        const int early = start_request(s, c, url, method, rq);
        if (early >= 0) return (enum MHD_Result)early;
        if (strcmp(method, "POST") == 0) return MHD_YES;  /* the body comes next */
        return answer(s, c, rq);
    }
    if (*upload_data_size) {
        if (rq->too_large || rq->len + *upload_data_size > s->p.max_body_bytes) {
            rq->too_large = true;  /* read and drop the rest, answer 413 at the end */
        } else if (append(&rq->body, &rq->len, &rq->cap, upload_data, *upload_data_size) < 0) {
            return MHD_NO;
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (rq->too_large) {
        char msg[200];
        snprintf(msg, sizeof msg, "the request body is larger than %zu bytes", s->p.max_body_bytes);
        return send_error(c, 413, msg);
    }
    return answer(s, c, rq);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    melt_serve_server *s = cls;
    (void)c;
    (void)toe;
    request *rq = *con_cls;
    if (rq) {
        free(rq->body);
        free(rq);
        *con_cls = NULL;
        pthread_mutex_lock(&s->mu);
        s->n_active--;
        pthread_cond_broadcast(&s->active_cv);
        pthread_mutex_unlock(&s->mu);
    }
}

/* ---- lifecycle ---- */

/* The model's name: the alias, else the file name without .gguf. */
static void model_name(const melt_serve_params *p, char *buf, size_t size)
{
    if (p->alias) {
        snprintf(buf, size, "%s", p->alias);
        return;
    }
    const char *b = strrchr(p->model_path, '/');
    b = b ? b + 1 : p->model_path;
    size_t n = strlen(b);
    if (n > 5 && strcmp(b + n - 5, ".gguf") == 0) n -= 5;
    snprintf(buf, size, "%.*s", (int)n, b);
}

int melt_serve_start(const melt_serve_params *p, melt_serve_server **out, melt_error *err)
{
    *out = NULL;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV}, *ai = NULL;
    char port[16];
    snprintf(port, sizeof port, "%d", p->port);
    const int gai = getaddrinfo(p->host, port, &hints, &ai);
    if (gai) return melt_errorf(err, MELT_EINVAL, "serve: cannot resolve host '%s': %s", p->host, gai_strerror(gai));
    melt_serve_server *s = calloc(1, sizeof *s);
    if (!s) {
        freeaddrinfo(ai);
        return melt_errorf(err, MELT_ENOMEM, "out of memory");
    }
    s->p = *p;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->work_cv, NULL);
    pthread_cond_init(&s->active_cv, NULL);
    atomic_store(&s->next_id, (uint64_t)time(NULL) << 20);
    model_name(p, s->model_name, sizeof s->model_name);
    /* ITC: lets melt_serve_stop quiesce the daemon (stop accepting) */
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
                     MHD_USE_ITC;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    s->mhd = MHD_start_daemon(flags, (uint16_t)p->port, NULL, NULL, on_request, s,
                              MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                              MHD_OPTION_CONNECTION_LIMIT, (unsigned)p->max_connections,
                              MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)p->timeout_s,
                              MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                              MHD_OPTION_THREAD_STACK_SIZE, (size_t)(2u << 20),
                              MHD_OPTION_LISTEN_BACKLOG_SIZE, 4096u,
                              MHD_OPTION_END);
    const int saved_errno = errno;
    if (ai->ai_family == AF_INET6) snprintf(s->host, sizeof s->host, "[%s]", p->host);
    else snprintf(s->host, sizeof s->host, "%s", p->host);
    freeaddrinfo(ai);
    if (!s->mhd) {
        melt_errorf(err, MELT_EIO, "serve: cannot listen on %s:%d: %s", s->host, p->port,
                    saved_errno ? strerror(saved_errno) : "libmicrohttpd could not start");
        melt_serve_stop(s);
        return err->code;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : p->port;
    *out = s;
    return 0;
}

const char *melt_serve_host(const melt_serve_server *s) { return s->host; }
int melt_serve_port(const melt_serve_server *s) { return s->port; }
const char *melt_serve_model_name(const melt_serve_server *s) { return s->model_name; }

static int pick_template(melt_serve_server *s, melt_error *err)
{
    if (s->p.chat_template) {
        if (!melt_chat_template_parse(s->p.chat_template, &s->tmpl))
            return melt_errorf(err, MELT_EINVAL, "serve: unknown chat template '%s' (one of %s)",
                               s->p.chat_template, melt_chat_template_names());
        return 0;
    }
    melt_str j = {0};
    if (melt_gguf_get_str(melt_model_gguf(s->m), "tokenizer.chat_template", &j))
        s->tmpl = melt_chat_template_detect(j.ptr, (size_t)j.len);
    if (s->tmpl == MELT_CHAT_UNKNOWN) {
        /* llama-server's fallback too */
        s->tmpl = MELT_CHAT_CHATML;
        fprintf(stderr, "melt serve: %s: %s; chat completions use chatml (set --chat-template)\n",
                s->p.model_path, j.ptr ? "the model's chat template is not one melt knows"
                                       : "the model has no chat template");
    }
    return 0;
}

int melt_serve_load(melt_serve_server *s, uint64_t *load_ns, melt_error *err)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    /* Reading the file can take long (or block: a FIFO, a stalled network
     * file system) and nothing is held yet: let SIGINT/SIGTERM end the
     * process at once meanwhile, on this thread only (the server's threads
     * exist already and keep them blocked; the slots' threads are made
     * after the load, with the caller's mask restored). */
    sigset_t stop, saved;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_UNBLOCK, &stop, &saved);
    int rc = melt_model_load(s->p.model_path, NULL, &s->m, err);
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    if (rc < 0) return rc;
    if ((rc = melt_tokenizer_load(melt_model_gguf(s->m), &s->tok, err)) < 0) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        return melt_errorf(err, rc, "%s: %s", s->p.model_path, msg);
    }
    if ((rc = pick_template(s, err)) < 0) return rc;
    melt_context_params cp = melt_context_default_params();
    if (s->p.n_ctx) cp.n_ctx = s->p.n_ctx;
    if (s->p.n_batch) cp.n_batch = s->p.n_batch;
    cp.n_threads = s->p.n_threads;
    cp.kv_type = (enum melt_kv_type)s->p.kv_type;
    const int n = s->p.n_parallel > 0 ? s->p.n_parallel : 1;
    if (!(s->slots = calloc((size_t)n, sizeof *s->slots)))
        return melt_errorf(err, MELT_ENOMEM, "out of memory");
    s->n_slots = n;
    for (int i = 0; i < n; i++) {
        s->slots[i].srv = s;
        if ((rc = melt_context_new(s->m, &cp, &s->slots[i].ctx, err)) < 0) return rc;
    }
    s->n_ctx = melt_context_n_ctx(s->slots[0].ctx);
    s->p.defaults.n_vocab = melt_model_n_vocab(s->m);
    struct stat sb;
    s->info = (melt_serve_model_info){
        .name = s->model_name, .created = (int64_t)time(NULL), .n_vocab = melt_model_n_vocab(s->m),
        .n_ctx = s->n_ctx, .n_ctx_train = melt_model_n_ctx_train(s->m), .n_embd = melt_model_n_embd(s->m),
        .n_params = melt_model_n_params(s->m),
        .size_bytes = stat(s->p.model_path, &sb) == 0 ? (uint64_t)sb.st_size : 0};
    for (int i = 0; i < n; i++) {
        pthread_mutex_lock(&s->mu);
        s->n_idle++;
        pthread_mutex_unlock(&s->mu);
        if (pthread_create(&s->slots[i].thread, NULL, worker_main, &s->slots[i]) != 0)
            return melt_errorf(err, MELT_ENOMEM, "serve: cannot start slot thread %d", i);
        s->slots[i].running = true;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (load_ns)
        *load_ns = (uint64_t)(t1.tv_sec - t0.tv_sec) * 1000000000u + (uint64_t)t1.tv_nsec - (uint64_t)t0.tv_nsec;
    atomic_store(&s->ready, true);
    return 0;
}

void melt_serve_stop(melt_serve_server *s)
{
    if (!s) return;
    const MHD_socket listen_fd = s->mhd ? MHD_quiesce_daemon(s->mhd) : MHD_INVALID_SOCKET;
    pthread_mutex_lock(&s->mu);
    atomic_store(&s->stopping, true);
    atomic_store(&s->ready, false);
    while (s->q_head) {  /* never started: their clients get a 503 */
        job *j = s->q_head;
        s->q_head = j->next;
        job_fail_locked(j, 503, "the server is shutting down");
        job_unref_locked(j);
    }
    s->q_tail = NULL;
    s->n_queued = 0;
    pthread_cond_broadcast(&s->work_cv);
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < s->n_slots; i++)
        if (s->slots[i].running) pthread_join(s->slots[i].thread, NULL);
    /* Every job is done now. Give the requests still open a moment to send
     * their answers (a 503, the rest of a stream) before libmicrohttpd
     * closes every connection. */
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 3;
    pthread_mutex_lock(&s->mu);
    while (s->n_active > 0 && pthread_cond_timedwait(&s->active_cv, &s->mu, &until) != ETIMEDOUT) {}
    pthread_mutex_unlock(&s->mu);
    if (s->mhd) MHD_stop_daemon(s->mhd);
    if (listen_fd != MHD_INVALID_SOCKET) close(listen_fd);
    for (int i = 0; i < s->n_slots; i++) {
        melt_context_free(s->slots[i].ctx);
        free(s->slots[i].cached);
    }
    free(s->slots);
    melt_tokenizer_free(s->tok);
    melt_model_free(s->m);
    pthread_cond_destroy(&s->work_cv);
    pthread_cond_destroy(&s->active_cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

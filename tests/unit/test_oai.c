/* OpenAI-style streaming (src/backends/oai.c), server start/stop
 * (server.c) and the openai and mlc backends, against
 * tests/tools/replay_server answering with recorded llama-server output
 * (tests/fixtures/llamacpp) and the recordings of tests/data/oai. */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>

#include "backends/http.h"

/* ---- the replay server as a child process ---- */

typedef struct replay {
    pid_t pid;
    int port;
    char base[64];      /* http://127.0.0.1:PORT */
} replay;

static const char *replay_bin(void)
{
    static char path[4096];
    char self[4096];
    const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    assert_true(n > 0);
    self[n] = '\0';
    snprintf(path, sizeof path, "%s/replay_server", dirname(self));
    return path;
}

/* Start it with extra args (NULL-terminated); reads the port it prints. */
static void replay_start(replay *r, const char *const *args)
{
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    const char *argv[40];
    int k = 0;
    argv[k++] = replay_bin();
    for (; args[k - 1] && k < 38; k++) argv[k] = args[k - 1];
    argv[k] = NULL;
    r->pid = fork();
    assert_true(r->pid >= 0);
    if (r->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);   /* no orphan when a test fails midway */
        dup2(pfd[1], 1);
        close(pfd[0]);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(pfd[1]);
    char buf[32] = {0};
    size_t n = 0;
    while (n < sizeof buf - 1) {
        const ssize_t got = read(pfd[0], buf + n, 1);
        if (got <= 0 || buf[n] == '\n') break;
        n++;
    }
    close(pfd[0]);
    r->port = (int)strtol(buf, NULL, 10);
    assert_true(r->port > 0);
    snprintf(r->base, sizeof r->base, "http://127.0.0.1:%d", r->port);
}

static void replay_stop(replay *r)
{
    kill(r->pid, SIGTERM);
    waitpid(r->pid, NULL, 0);
}

/* ---- a recording sink ---- */

typedef struct rec {
    char text[64][64];
    int32_t id[64];
    int64_t t[64];
    int index[64];
    int n;
    char fig_key[64][48];
    double fig_val[64];
    char fig_unit[64][16];
    int n_fig;
    int stop_after;   /* > 0: ask to stop after this many tokens */
} rec;

static int on_token(void *ctx, int64_t t_ns, int index, int32_t id, const char *text, size_t len)
{
    rec *r = ctx;
    if (r->n < 64) {
        snprintf(r->text[r->n], sizeof r->text[0], "%.*s", (int)len, text);
        r->id[r->n] = id;
        r->t[r->n] = t_ns;
        r->index[r->n] = index;
    }
    r->n++;
    return r->stop_after > 0 && r->n >= r->stop_after;
}

static void on_figure(void *ctx, const char *key, double v, const char *unit)
{
    rec *r = ctx;
    if (r->n_fig < 64) {
        snprintf(r->fig_key[r->n_fig], sizeof r->fig_key[0], "%s", key);
        r->fig_val[r->n_fig] = v;
        snprintf(r->fig_unit[r->n_fig], sizeof r->fig_unit[0], "%s", unit);
    }
    r->n_fig++;
}

/* The figure called key (fails when absent); its unit must be unit. */
static double fig(const rec *r, const char *key, const char *unit)
{
    for (int i = 0; i < r->n_fig && i < 64; i++)
        if (strcmp(r->fig_key[i], key) == 0) {
            if (strcmp(r->fig_unit[i], unit) != 0) fail_msg("%s: unit '%s', want '%s'", key, r->fig_unit[i], unit);
            return r->fig_val[i];
        }
    fail_msg("no figure %s", key);
    return 0;
}

static const melt_chat_msg hello[] = {{"user", "Say hello"}};

/* What one streamed request left: the sink's record, the result, the error. */
typedef struct streamed {
    rec g;
    melt_backend_result res;
    melt_error err;
} streamed;

/* melt_oai_stream(c) with o->g as the sink (o->g.stop_after is kept). */
static int stream(const melt_oai_call *c, streamed *o)
{
    melt_backend_sink sink = {.ctx = &o->g, .token = on_token, .figure = on_figure};
    return melt_oai_stream(c, &sink, &o->res, &o->err);
}

/* ---- streaming ---- */

static void oai_chat_stream_yields_recorded_tokens_with_spread_times(void **state)
{
    (void)state;
    replay r;
    const char *args[] = {"--dir", "tests/fixtures/llamacpp", "--delay-ms", "15", "--split", "40",
                          "--route", "POST /v1/chat/completions=chat-stream.http", NULL};
    replay_start(&r, args);
    melt_backend_request rq = {.messages = hello, .n_messages = 1, .n_predict = 16};
    melt_oai_call c = {.base_url = r.base, .kind = MELT_OAI_CHAT, .model = "stories260K", .rq = &rq};
    streamed o = {0};
    const int rc = stream(&c, &o);
    replay_stop(&r);
    if (rc != 0) fail_msg("%s", o.err.msg);
    static const char *const want[] = {"\"", "H", "e", "re", "?", "\"", " ", "A",
                                       "n", "n", "a", "b", "y", "ed", ".", "\n"};
    assert_int_equal(o.g.n, 16);
    assert_int_equal(o.res.n_gen, 16);
    for (int i = 0; i < 16; i++) {
        assert_string_equal(o.g.text[i], want[i]);
        assert_int_equal(o.g.index[i], i);
        assert_int_equal(o.g.id[i], -1);
        assert_true(o.g.t[i] > o.res.t_request_ns);
        /* events were 15 ms apart on the wire */
        if (i > 0 && o.g.t[i] - o.g.t[i - 1] < 5000000)
            fail_msg("token %d only %lld ns after the previous", i, (long long)(o.g.t[i] - o.g.t[i - 1]));
    }
    assert_string_equal(o.res.reply, "\"Here?\" Annabyed.\n");
    assert_int_equal(o.res.end, MELT_BACKEND_END_LIMIT);
    assert_int_equal(o.res.n_prompt, 50);
    assert_true(fig(&o.g, "prompt_tokens", "count") == 50);
    assert_true(fig(&o.g, "completion_tokens", "count") == 16);
    assert_true(fig(&o.g, "total_tokens", "count") == 66);
    assert_true(fig(&o.g, "prompt_ms", "ms") == 3.469);
    assert_true(fig(&o.g, "predicted_n", "count") == 16);
    assert_true(fabs(fig(&o.g, "predicted_per_second", "tok/s") - 2474.4308808973933) < 1e-9);
    assert_true(fig(&o.g, "cache_n", "count") == 0);
    melt_backend_result_free(&o.res);
}

static void oai_cut_stream_is_lost_with_the_tokens_before_the_cut(void **state)
{
    (void)state;
    replay r;
    const char *args[] = {"--dir", "tests/fixtures/llamacpp", "--cut",
                          "--route", "POST /v1/chat/completions=chat-stream-cut.http", NULL};
    replay_start(&r, args);
    melt_backend_request rq = {.messages = hello, .n_messages = 1, .n_predict = 16};
    melt_oai_call c = {.base_url = r.base, .kind = MELT_OAI_CHAT, .rq = &rq};
    streamed o = {0};
    const int rc = stream(&c, &o);
    replay_stop(&r);
    assert_int_equal(rc, 0);
    assert_int_equal(o.res.end, MELT_BACKEND_END_LOST);
    /* the recording holds 10 complete token events before the cut one */
    assert_int_equal(o.res.n_gen, 10);
    assert_int_equal(o.g.n, 10);
    assert_string_equal(o.res.reply, "\"Here?\" Ann");
    assert_int_equal(o.g.n_fig, 0);
    melt_backend_result_free(&o.res);
}

static void oai_error_answers_carry_the_server_message(void **state)
{
    (void)state;
    replay r;
    const char *args[] = {"--dir", "tests/fixtures/llamacpp",
                          "--route", "POST /v1/chat/completions=error-bad-param.http",
                          "--route", "POST /v1/completions=error-bad-json.http", NULL};
    replay_start(&r, args);
    melt_backend_request rq = {.messages = hello, .n_messages = 1, .n_predict = 4};
    melt_oai_call c = {.base_url = r.base, .kind = MELT_OAI_CHAT, .rq = &rq};
    melt_backend_result res;
    melt_error err = {0};
    assert_true(melt_oai_stream(&c, NULL, &res, &err) < 0);
    assert_non_null(strstr(err.msg, "HTTP 400"));
    assert_non_null(strstr(err.msg, "Field 'max_tokens': Value must be between"));
    assert_int_equal(res.n_gen, 0);
    melt_backend_result_free(&res);

    melt_backend_request rq2 = {.prompt = "Once", .n_predict = 4};
    c.kind = MELT_OAI_COMPLETIONS;
    c.rq = &rq2;
    assert_true(melt_oai_stream(&c, NULL, &res, &err) < 0);
    assert_non_null(strstr(err.msg, "HTTP 500"));
    assert_non_null(strstr(err.msg, "parse error at line 1, column 15"));
    melt_backend_result_free(&res);

    /* no route: the replay server's own 404 error object */
    c.kind = MELT_OAI_LLAMA_COMPLETION;
    assert_true(melt_oai_stream(&c, NULL, &res, &err) < 0);
    assert_non_null(strstr(err.msg, "HTTP 404: no route for POST /completion"));
    melt_backend_result_free(&res);
    replay_stop(&r);
}

static void oai_error_events_mid_stream_fail_after_keeping_tokens(void **state)
{
    (void)state;
    replay r;
    const char *args[] = {"--dir", "tests/data/oai",
                          "--route", "POST /v1/chat/completions=chat-stream-error-event.http",
                          "--route", "POST /completion=completion-stream-error-field.http", NULL};
    replay_start(&r, args);
    melt_backend_request rq = {.messages = hello, .n_messages = 1, .n_predict = 4};
    melt_oai_call c = {.base_url = r.base, .kind = MELT_OAI_CHAT, .rq = &rq};
    streamed o = {0};
    assert_true(stream(&c, &o) < 0);
    assert_non_null(strstr(o.err.msg, "The server had an error while processing your request"));
    assert_int_equal(o.res.n_gen, 1);
    assert_string_equal(o.res.reply, "Hi");
    assert_int_equal(o.res.end, MELT_BACKEND_END_LOST);
    melt_backend_result_free(&o.res);

    melt_backend_request rq2 = {.prompt = "x", .n_predict = 4};
    c.kind = MELT_OAI_LLAMA_COMPLETION;
    c.rq = &rq2;
    memset(&o.g, 0, sizeof o.g);
    assert_true(stream(&c, &o) < 0);
    assert_non_null(strstr(o.err.msg, "context shift is disabled"));
    assert_int_equal(o.g.n, 1);
    assert_int_equal(o.g.id[0], 9038);
    melt_backend_result_free(&o.res);
    replay_stop(&r);
}

static void oai_llama_completion_reports_token_ids_and_timings(void **state)
{
    (void)state;
    replay r;
    const char *args[] = {"--dir", "tests/fixtures/llamacpp", "--split", "7", "--log", scratch_path("req.log"),
                          "--route", "POST /completion=completion-stream.http", NULL};
    unlink(scratch_path("req.log"));
    replay_start(&r, args);
    const melt_token prompt[] = {1, 403, 1638, 263, 931};
    melt_backend_request rq = {.tokens = prompt, .n_tokens = 5, .n_predict = 16, .ignore_eos = true};
    melt_sampler_params sp = melt_sampler_default_params();
    sp.temperature = 0;
    melt_oai_call c = {.base_url = r.base, .kind = MELT_OAI_LLAMA_COMPLETION, .rq = &rq, .sampling = &sp};
    streamed o = {0};
    const int rc = stream(&c, &o);
    replay_stop(&r);
    if (rc != 0) fail_msg("%s", o.err.msg);
    static const int32_t ids[] = {432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338, 401, 396, 267, 337};
    assert_int_equal(o.g.n, 16);
    for (int i = 0; i < 16; i++) assert_int_equal(o.g.id[i], ids[i]);
    assert_string_equal(o.res.reply, ", there was a little girl named Lily. She loved to play");
    assert_int_equal(o.res.end, MELT_BACKEND_END_LIMIT);
    assert_int_equal(o.res.n_prompt, 5);
    assert_true(fig(&o.g, "prompt_ms", "ms") == 19.478);
    assert_true(fig(&o.g, "cache_n", "count") == 4);
    assert_true(fig(&o.g, "predicted_per_token_ms", "ms") > 0);
    melt_backend_result_free(&o.res);
    /* what was sent */
    size_t n = 0;
    char *log = slurp_text(scratch_path("req.log"), &n);
    assert_non_null(strstr(log, "POST /completion HTTP/1.1\r\n"));
    assert_non_null(strstr(log, "\"prompt\":[1,403,1638,263,931]"));
    assert_non_null(strstr(log, "\"n_predict\":16"));
    assert_non_null(strstr(log, "\"ignore_eos\":true"));
    assert_non_null(strstr(log, "\"temperature\":0"));
    assert_non_null(strstr(log, "\"top_k\":40"));
    assert_non_null(strstr(log, "\"top_p\":0.95,"));
    assert_non_null(strstr(log, "\"min_p\":0.05,"));
    assert_non_null(strstr(log, "\"stream\":true"));
    assert_null(strstr(log, "stream_options"));
    free(log);
}

/* Token ids are numbers from the network: one outside int32 is unknown
 * (-1), not whatever an undefined conversion gives. */
static void oai_llama_completion_out_of_range_ids_are_unknown(void **state)
{
    (void)state;
    replay r;
    const char *args[] = {"--dir", "tests/data/oai",
                          "--route", "POST /completion=completion-stream-odd-ids.http", NULL};
    replay_start(&r, args);
    melt_backend_request rq = {.prompt = "x", .n_predict = 3};
    melt_oai_call c = {.base_url = r.base, .kind = MELT_OAI_LLAMA_COMPLETION, .rq = &rq};
    streamed o = {0};
    const int rc = stream(&c, &o);
    replay_stop(&r);
    if (rc != 0) fail_msg("%s", o.err.msg);
    assert_int_equal(o.g.n, 3);
    assert_int_equal(o.g.id[0], -1);
    assert_int_equal(o.g.id[1], -1);
    assert_int_equal(o.g.id[2], 312);
    assert_string_equal(o.res.reply, " Once upon a");
    assert_int_equal(o.res.end, MELT_BACKEND_END_LIMIT);
    melt_backend_result_free(&o.res);
}

static void oai_completions_survive_keepalives_and_multiline_data(void **state)
{
    (void)state;
    replay r;
    const char *args[] = {"--dir", "tests/data/oai", "--split", "3",
                          "--route", "POST /v1/completions=completions-stream-keepalive.http", NULL};
    replay_start(&r, args);
    melt_backend_request rq = {.prompt = "x", .n_predict = 8};
    melt_oai_call c = {.base_url = r.base, .kind = MELT_OAI_COMPLETIONS, .rq = &rq};
    streamed o = {0};
    assert_int_equal(stream(&c, &o), 0);
    replay_stop(&r);
    assert_string_equal(o.res.reply, "AB");
    assert_int_equal(o.res.end, MELT_BACKEND_END_EOG);
    assert_int_equal(o.res.n_prompt, 3);
    melt_backend_result_free(&o.res);
}

static void oai_sink_stop_and_cancel_end_as_caller(void **state)
{
    (void)state;
    replay r;
    const char *args[] = {"--dir", "tests/fixtures/llamacpp", "--delay-ms", "5",
                          "--route", "POST /v1/completions=v1-completions-stream.http", NULL};
    replay_start(&r, args);
    melt_backend_request rq = {.prompt = "Once upon a time", .n_predict = 16};
    melt_oai_call c = {.base_url = r.base, .kind = MELT_OAI_COMPLETIONS, .rq = &rq};
    streamed o = {.g = {.stop_after = 3}};
    assert_int_equal(stream(&c, &o), 0);
    assert_int_equal(o.res.end, MELT_BACKEND_END_CALLER);
    assert_int_equal(o.res.n_gen, 3);
    assert_string_equal(o.res.reply, ", there was");
    melt_backend_result_free(&o.res);

    volatile int cancel = 1;
    c.cancel = &cancel;
    memset(&o.g, 0, sizeof o.g);
    assert_int_equal(stream(&c, &o), 0);
    assert_int_equal(o.res.end, MELT_BACKEND_END_CALLER);
    melt_backend_result_free(&o.res);
    replay_stop(&r);
}

static void oai_reasoning_counts_as_tokens_but_not_reply(void **state)
{
    (void)state;
    replay r;
    const char *args[] = {"--dir", "tests/data/oai",
                          "--route", "POST /v1/chat/completions=chat-stream-reasoning.http", NULL};
    replay_start(&r, args);
    melt_backend_request rq = {.messages = hello, .n_messages = 1, .n_predict = 16};
    melt_oai_call c = {.base_url = r.base, .kind = MELT_OAI_CHAT, .rq = &rq};
    streamed o = {0};
    assert_int_equal(stream(&c, &o), 0);
    replay_stop(&r);
    assert_int_equal(o.g.n, 5);
    assert_string_equal(o.g.text[0], "Let");
    assert_string_equal(o.g.text[4], "!");
    assert_string_equal(o.res.reply, "Hi!");
    assert_int_equal(o.res.end, MELT_BACKEND_END_EOG);
    melt_backend_result_free(&o.res);
}

static void oai_a_server_that_ignores_stream_still_answers(void **state)
{
    (void)state;
    replay r;
    const char *args[] = {"--dir", "tests/fixtures/llamacpp",
                          "--route", "POST /v1/chat/completions=chat.http",
                          "--route", "POST /completion=completion.http", NULL};
    replay_start(&r, args);
    melt_backend_request rq = {.messages = hello, .n_messages = 1, .n_predict = 16};
    melt_oai_call c = {.base_url = r.base, .kind = MELT_OAI_CHAT, .rq = &rq};
    streamed o = {0};
    assert_int_equal(stream(&c, &o), 0);
    assert_string_equal(o.res.reply, "\"Here?\" Annabyed.\n");
    assert_int_equal(o.g.n, 1);
    assert_int_equal(o.res.end, MELT_BACKEND_END_LIMIT);   /* usage says all 16 came */
    assert_true(fig(&o.g, "prompt_per_second", "tok/s") > 278);
    melt_backend_result_free(&o.res);

    melt_backend_request rq2 = {.prompt = "Once upon a time", .n_predict = 32};
    c.kind = MELT_OAI_LLAMA_COMPLETION;
    c.rq = &rq2;
    assert_int_equal(melt_oai_stream(&c, NULL, &o.res, &o.err), 0);
    assert_string_equal(o.res.reply,
                        ", there was a little girl named Lily. She loved to play outside in the park. One day, she saw");
    assert_int_equal(o.res.end, MELT_BACKEND_END_LIMIT);
    melt_backend_result_free(&o.res);
    replay_stop(&r);
}

static void oai_refused_connection_names_host_port(void **state)
{
    (void)state;
    const int port = melt_http_free_port(NULL);
    char base[64];
    snprintf(base, sizeof base, "http://127.0.0.1:%d/v1", port);
    melt_backend_request rq = {.prompt = "x", .n_predict = 1};
    melt_oai_call c = {.base_url = base, .kind = MELT_OAI_COMPLETIONS, .rq = &rq};
    melt_backend_result res;
    melt_error err = {0};
    assert_true(melt_oai_stream(&c, NULL, &res, &err) < 0);
    char want[64];
    snprintf(want, sizeof want, "127.0.0.1:%d", port);
    assert_non_null(strstr(err.msg, want));
    assert_non_null(strstr(err.msg, "/v1/completions"));   /* "/v1" not doubled */
    melt_backend_result_free(&res);
}

static void oai_body_escapes_messages(void **state)
{
    (void)state;
    const melt_chat_msg m[] = {{"system", "be \"brief\"\n"}, {"user", "tab\there \x01 \xc3\xa9"}};
    melt_backend_request rq = {.messages = m, .n_messages = 2, .n_predict = 3};
    melt_oai_call c = {.base_url = "http://h", .kind = MELT_OAI_CHAT, .model = "m\"x", .rq = &rq};
    char *body = NULL;
    size_t len = 0;
    assert_int_equal(melt_oai_body(&c, &body, &len, NULL), 0);
    assert_string_equal(body, "{\"model\":\"m\\\"x\",\"messages\":[{\"role\":\"system\",\"content\":\"be "
                              "\\\"brief\\\"\\n\"},{\"role\":\"user\",\"content\":\"tab\\there \\u0001 "
                              "\xc3\xa9\"}],\"stream\":true,\"stream_options\":{\"include_usage\":true},"
                              "\"max_tokens\":3}");
    assert_int_equal(len, strlen(body));
    free(body);
    melt_backend_request none = {.n_predict = 3};
    c.rq = &none;
    assert_int_equal(melt_oai_body(&c, &body, &len, NULL), MELT_EINVAL);
}

/* ---- server.c ---- */

static void server_waits_through_loading_and_stops(void **state)
{
    (void)state;
    const int port = melt_http_free_port(NULL);
    char port_s[16], health[64];
    snprintf(port_s, sizeof port_s, "%d", port);
    snprintf(health, sizeof health, "http://127.0.0.1:%d/health", port);
    char *argv[] = {(char *)replay_bin(), "--port", port_s, "--loading", "3", "--dir",
                    "tests/fixtures/llamacpp", "--route", "GET /health=health.http", NULL};
    melt_server *s = NULL;
    melt_error err = {0};
    /* as in the agent: SIGTERM blocked here must not be blocked in the server */
    sigset_t term, old;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    sigprocmask(SIG_BLOCK, &term, &old);
    const int rc = melt_server_start(argv, health, scratch_path("srv.log"), 10000, NULL, &s, &err);
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) fail_msg("%s", err.msg);
    assert_true(melt_server_alive(s));
    assert_true(melt_server_start_ns(s) > 0);
    const pid_t pid = melt_server_pid(s);
    int status = 0;
    assert_int_equal(melt_http_fetch(health, NULL, NULL, 2000, NULL, &status, NULL, &err), 0);
    assert_int_equal(status, 200);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    melt_server_stop(s);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_true(kill(pid, 0) < 0 && errno == ESRCH);
    assert_true(t1.tv_sec - t0.tv_sec < 3);   /* SIGTERM worked; no 5 s wait for SIGKILL */
    unlink(scratch_path("srv.log"));
}

static void server_that_dies_is_reported_with_its_output(void **state)
{
    (void)state;
    char *argv[] = {"sh", "-c", "echo starting; echo 'error: model file not found' >&2; exit 3", NULL};
    melt_server *s = NULL;
    melt_error err = {0};
    assert_true(melt_server_start(argv, "http://127.0.0.1:9/health", NULL, 10000, NULL, &s, &err) < 0);
    assert_null(s);
    assert_non_null(strstr(err.msg, "exited with status 3"));
    assert_non_null(strstr(err.msg, "model file not found"));

    char *argv2[] = {"/nonexistent/llama-server", NULL};
    assert_true(melt_server_start(argv2, "http://127.0.0.1:9/health", NULL, 10000, NULL, &s, &err) < 0);
    assert_non_null(strstr(err.msg, "cannot run /nonexistent/llama-server"));
}

static void server_start_times_out_and_can_be_cancelled(void **state)
{
    (void)state;
    const int port = melt_http_free_port(NULL);
    char port_s[16], health[64];
    snprintf(port_s, sizeof port_s, "%d", port);
    snprintf(health, sizeof health, "http://127.0.0.1:%d/health", port);
    char *argv[] = {(char *)replay_bin(), "--port", port_s, "--loading", "1000000", NULL};
    melt_server *s = NULL;
    melt_error err = {0};
    assert_true(melt_server_start(argv, health, NULL, 600, NULL, &s, &err) < 0);
    assert_non_null(strstr(err.msg, "did not answer 200 within 600 ms (last status 503)"));
    volatile int cancel = 1;
    assert_true(melt_server_start(argv, health, NULL, 10000, &cancel, &s, &err) < 0);
    assert_non_null(strstr(err.msg, "cancelled"));
}

/* ---- the backends ---- */

static void openai_backend_discovers_the_model_and_sends_the_key(void **state)
{
    (void)state;
    replay r;
    const char *log = scratch_path("openai.log");
    unlink(log);
    const char *args[] = {"--dir", "tests/fixtures/llamacpp", "--log", log,
                          "--route", "GET /v1/models=v1-models.http",
                          "--route", "POST /v1/chat/completions=chat-stream.http",
                          "--route", "POST /v1/completions=v1-completions-stream.http", NULL};
    replay_start(&r, args);
    char url[80];
    snprintf(url, sizeof url, "%s/v1", r.base);
    const melt_backend_ops *ops = melt_backend_openai();
    assert_string_equal(ops->name, "openai");
    melt_backend_params p = melt_backend_default_params();
    p.url = url;
    p.api_key_env = "MELT_TEST_OPENAI_KEY";
    unsetenv("MELT_TEST_OPENAI_KEY");
    melt_backend *b = NULL;
    melt_error err = {0};
    assert_true(ops->open(&p, NULL, &b, &err) < 0);
    assert_non_null(strstr(err.msg, "MELT_TEST_OPENAI_KEY"));
    setenv("MELT_TEST_OPENAI_KEY", "sk-test-123", 1);
    if (ops->open(&p, NULL, &b, &err) != 0) fail_msg("%s", err.msg);
    assert_int_equal(ops->caps_of(b), MELT_BACKEND_TEXT | MELT_BACKEND_CHAT);
    assert_null(ops->tokenizer(b));
    rec g = {0};
    melt_backend_sink sink = {.ctx = &g, .token = on_token, .figure = on_figure};
    melt_backend_request rq = {.messages = hello, .n_messages = 1, .n_predict = 16};
    melt_backend_result res;
    assert_int_equal(ops->request(b, &rq, &sink, &res, &err), 0);
    assert_int_equal(res.n_gen, 16);
    melt_backend_result_free(&res);
    melt_backend_request rq2 = {.prompt = "Once upon a time", .n_predict = 16};
    assert_int_equal(ops->request(b, &rq2, &sink, &res, &err), 0);
    assert_string_equal(res.reply, ", there was a little girl named Lily. She loved to play");
    assert_int_equal(res.end, MELT_BACKEND_END_LIMIT);
    melt_backend_result_free(&res);
    ops->reset(b);
    ops->close(b);
    replay_stop(&r);
    size_t n = 0;
    char *sent = slurp_text(log, &n);
    assert_non_null(strstr(sent, "GET /v1/models HTTP/1.1\r\n"));
    assert_non_null(strstr(sent, "Authorization: Bearer sk-test-123\r\n"));
    assert_non_null(strstr(sent, "\"model\":\"stories260K\""));   /* from /v1/models */
    assert_non_null(strstr(sent, "\"prompt\":\"Once upon a time\""));
    assert_null(strstr(sent, "top_k"));                           /* OpenAI proper rejects it */
    free(sent);
    unsetenv("MELT_TEST_OPENAI_KEY");
}

static void openai_backend_goes_on_without_a_model_list_but_not_when_down(void **state)
{
    (void)state;
    replay r;
    const char *args[] = {"--dir", "tests/fixtures/llamacpp",
                          "--route", "POST /v1/chat/completions=chat-stream.http", NULL};
    replay_start(&r, args);
    const melt_backend_ops *ops = melt_backend_openai();
    melt_backend_params p = melt_backend_default_params();
    p.url = r.base;
    melt_backend *b = NULL;
    melt_error err = {0};
    if (ops->open(&p, NULL, &b, &err) != 0) fail_msg("%s", err.msg);   /* /v1/models: 404 */
    ops->close(b);
    replay_stop(&r);
    assert_true(ops->open(&p, NULL, &b, &err) < 0);   /* now nobody listens */
    assert_non_null(strstr(err.msg, "openai:"));
    assert_non_null(strstr(err.msg, "refused"));
    /* a wrong key: the server's 401 message, never the key */
    const char *args2[] = {"--dir", "tests/data/oai", "--route", "GET /v1/models=error-unauthorized.http", NULL};
    replay_start(&r, args2);
    p.url = r.base;
    p.api_key_env = "MELT_TEST_OPENAI_KEY";
    setenv("MELT_TEST_OPENAI_KEY", "sk-wrong-456", 1);
    assert_true(ops->open(&p, NULL, &b, &err) < 0);
    replay_stop(&r);
    assert_non_null(strstr(err.msg, "HTTP 401: Incorrect API key provided."));
    assert_null(strstr(err.msg, "sk-wrong-456"));
    unsetenv("MELT_TEST_OPENAI_KEY");
    p.api_key_env = NULL;
    p.url = NULL;
    assert_int_equal(ops->open(&p, NULL, &b, &err), MELT_EINVAL);
    p.url = "https://api.openai.com/v1";
    assert_int_equal(ops->open(&p, NULL, &b, &err), MELT_EUNSUPPORTED);
    /* a URL too long to keep whole is refused, not cut (a valid path of
     * 1010 bytes: the URL parser alone accepts it) */
    char long_url[1100];
    int k = snprintf(long_url, sizeof long_url, "http://127.0.0.1:1/");
    memset(long_url + k, 'a', 1010);
    long_url[k + 1010] = '\0';
    p.url = long_url;
    assert_int_equal(ops->open(&p, NULL, &b, &err), MELT_EINVAL);
    assert_non_null(strstr(err.msg, "url longer than"));
}

static void openai_backend_waits_while_the_server_loads(void **state)
{
    (void)state;
    replay r;
    const char *args[] = {"--dir", "tests/fixtures/llamacpp", "--loading", "3",
                          "--route", "GET /v1/models=v1-models.http", NULL};
    replay_start(&r, args);
    char url[80];
    snprintf(url, sizeof url, "%s/v1", r.base);
    const melt_backend_ops *ops = melt_backend_openai();
    melt_backend_params p = melt_backend_default_params();
    p.url = url;
    melt_backend *b = NULL;
    melt_error err = {0};
    /* three 503 "Loading model" answers, then the model list */
    if (ops->open(&p, NULL, &b, &err) != 0) fail_msg("%s", err.msg);
    ops->close(b);
    replay_stop(&r);
    /* still loading when the start timeout ends: the server's message */
    const char *args2[] = {"--dir", "tests/fixtures/llamacpp", "--loading", "1000000",
                           "--route", "GET /v1/models=v1-models.http", NULL};
    replay_start(&r, args2);
    snprintf(url, sizeof url, "%s/v1", r.base);
    p.start_timeout_ms = 500;
    assert_true(ops->open(&p, NULL, &b, &err) < 0);
    replay_stop(&r);
    assert_non_null(strstr(err.msg, "Loading model"));
}

static void mlc_backend_starts_serves_and_stops_the_server(void **state)
{
    (void)state;
    setenv("MELT_REPLAY_SERVER", replay_bin(), 1);
    const char *args_file = scratch_path("mlc-args");
    setenv("FAKE_MLC_ARGS", args_file, 1);
    const melt_backend_ops *ops = melt_backend_mlc();
    assert_string_equal(ops->name, "mlc");
    melt_backend_params p = melt_backend_default_params();
    p.model = "HF://mlc-ai/Llama-3.2-1B-Instruct-q4f16_1-MLC";
    p.binary = "tests/data/fake-mlc/mlc_llm";
    const char *extra[] = {"--mode", "local"};
    p.extra_args = extra;
    p.n_extra_args = 2;
    p.start_timeout_ms = 10000;
    rec g = {0};
    melt_backend_sink sink = {.ctx = &g, .token = on_token, .figure = on_figure};
    melt_backend *b = NULL;
    melt_error err = {0};
    if (ops->open(&p, &sink, &b, &err) != 0) fail_msg("%s", err.msg);
    assert_true(fig(&g, "load_ms", "ms") > 0);
    size_t n = 0;
    char *argv_text = slurp_text(args_file, &n);
    assert_non_null(strstr(argv_text, "serve\nHF://mlc-ai/Llama-3.2-1B-Instruct-q4f16_1-MLC\n--host\n127.0.0.1\n"
                                      "--port\n"));
    assert_non_null(strstr(argv_text, "\n--mode\nlocal\n"));
    free(argv_text);
    melt_backend_request rq = {.messages = hello, .n_messages = 1, .n_predict = 8, .ignore_eos = true};
    melt_backend_result res;
    g.n_fig = 0;
    if (ops->request(b, &rq, &sink, &res, &err) != 0) fail_msg("%s", err.msg);
    assert_string_equal(res.reply, "Once upon a time");
    assert_int_equal(res.n_gen, 4);
    assert_int_equal(res.end, MELT_BACKEND_END_EOG);
    assert_int_equal(res.n_prompt, 12);
    assert_true(fig(&g, "decode_tokens_per_s", "tok/s") == 95.25);
    assert_true(fig(&g, "ttft_s", "s") == 0.0148);
    assert_true(fig(&g, "prefill_tokens", "count") == 12);
    assert_true(fig(&g, "completion_tokens", "count") == 4);
    melt_backend_result_free(&res);
    ops->close(b);
    /* the server is gone: its port refuses */
    melt_error e2 = {0};
    char *line = NULL;
    FILE *f = fopen(args_file, "r");
    size_t cap = 0;
    char port_s[16] = "";
    while (getline(&line, &cap, f) > 0)
        if (strcmp(line, "--port\n") == 0 && getline(&line, &cap, f) > 0) snprintf(port_s, sizeof port_s, "%s", line);
    fclose(f);
    free(line);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/models", (int)strtol(port_s, NULL, 10));
    assert_true(melt_http_fetch(url, NULL, NULL, 1000, NULL, NULL, NULL, &e2) < 0);
    unlink(args_file);

    setenv("FAKE_MLC_FAIL", "CUDA out of memory", 1);
    assert_true(ops->open(&p, NULL, &b, &err) < 0);
    assert_non_null(strstr(err.msg, "mlc:"));
    assert_non_null(strstr(err.msg, "CUDA out of memory"));
    unsetenv("FAKE_MLC_FAIL");
    unsetenv("FAKE_MLC_ARGS");
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(oai_chat_stream_yields_recorded_tokens_with_spread_times),
        cmocka_unit_test(oai_cut_stream_is_lost_with_the_tokens_before_the_cut),
        cmocka_unit_test(oai_error_answers_carry_the_server_message),
        cmocka_unit_test(oai_error_events_mid_stream_fail_after_keeping_tokens),
        cmocka_unit_test(oai_llama_completion_reports_token_ids_and_timings),
        cmocka_unit_test(oai_llama_completion_out_of_range_ids_are_unknown),
        cmocka_unit_test(oai_completions_survive_keepalives_and_multiline_data),
        cmocka_unit_test(oai_sink_stop_and_cancel_end_as_caller),
        cmocka_unit_test(oai_reasoning_counts_as_tokens_but_not_reply),
        cmocka_unit_test(oai_a_server_that_ignores_stream_still_answers),
        cmocka_unit_test(oai_refused_connection_names_host_port),
        cmocka_unit_test(oai_body_escapes_messages),
        cmocka_unit_test(server_waits_through_loading_and_stops),
        cmocka_unit_test(openai_backend_waits_while_the_server_loads),
        cmocka_unit_test(server_that_dies_is_reported_with_its_output),
        cmocka_unit_test(server_start_times_out_and_can_be_cancelled),
        cmocka_unit_test(openai_backend_discovers_the_model_and_sends_the_key),
        cmocka_unit_test(openai_backend_goes_on_without_a_model_list_but_not_when_down),
        cmocka_unit_test(mlc_backend_starts_serves_and_stops_the_server),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* The backends' HTTP client (src/backends/http.c): URL parsing, the
 * response parser on buffers, and real requests against a loopback server
 * thread written here. */
#include "testutil.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <time.h>

#include "backends/http.h"

/* ---- URLs ---- */

static void http_parses_urls(void **state)
{
    (void)state;
    melt_http_url u;
    melt_error err = {0};
    assert_int_equal(melt_http_parse_url("http://10.0.0.2:8080/v1", &u, &err), 0);
    assert_string_equal(u.host, "10.0.0.2");
    assert_int_equal(u.port, 8080);
    assert_string_equal(u.path, "/v1");
    assert_int_equal(melt_http_parse_url("http://Example.org", &u, &err), 0);
    assert_int_equal(u.port, 80);
    assert_string_equal(u.path, "/");
    assert_int_equal(melt_http_parse_url("http://[::1]:9/a?b=c#frag", &u, &err), 0);
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 9);
    assert_string_equal(u.path, "/a?b=c");
    assert_int_equal(melt_http_parse_url("https://api.example.com/v1", &u, &err), MELT_EUNSUPPORTED);
    assert_non_null(strstr(err.msg, "tunnel"));
    static const char *const bad[] = {"ftp://x", "http://", "http://h:0/", "http://h:65536",
                                      "http://h:12a", "http://[::1/", "http://u@h/", "http://h/a b"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (melt_http_parse_url(bad[i], &u, &err) >= 0) fail_msg("accepted %s", bad[i]);
}

/* ---- the parser on buffers ---- */

typedef struct body {
    char data[65536];
    size_t len;
    int slices;
    int64_t last_t;
} body;

static int on_body(void *ctx, const char *d, size_t n, int64_t t_ns)
{
    body *b = ctx;
    assert_true(b->len + n < sizeof b->data);
    memcpy(b->data + b->len, d, n);
    b->len += n;
    b->data[b->len] = '\0';
    b->slices++;
    b->last_t = t_ns;
    return 0;
}

/* Feed text in steps of `step` bytes (0: all at once). */
static int parse_text(const char *text, size_t step, melt_http_response *resp, body *b, melt_error *err)
{
    melt_http_parser ps;
    memset(b, 0, sizeof *b);
    melt_http_parser_init(&ps, resp, on_body, b);
    const size_t n = strlen(text);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i += step ? step : n) {
        const size_t k = step && step < n - i ? step : n - i;
        rc = melt_http_parser_feed(&ps, text + i, k, (int64_t)i, err);
    }
    if (rc == 0) rc = melt_http_parser_eof(&ps);
    return rc;
}

static void http_parser_decodes_chunked_bodies(void **state)
{
    (void)state;
    const char *resp_text =
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nTRANSFER-ENCODING: chunked\r\n\r\n"
        "5;ext=1\r\nhello\r\n"
        "A \r\n, world!!!\r\n"
        "0\r\nX-Trailer: yes\r\n\r\n"
        "garbage after the end";
    for (size_t step = 0; step < 8; step++) {
        melt_http_response r;
        body b;
        melt_error err = {0};
        assert_int_equal(parse_text(resp_text, step, &r, &b, &err), 1);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.content_type, "text/event-stream");
        assert_true(r.complete);
        assert_string_equal(b.data, "hello, world!!!");
    }
}

static void http_parser_frames_by_length_and_by_close(void **state)
{
    (void)state;
    melt_http_response r;
    body b;
    melt_error err = {0};
    assert_int_equal(parse_text("HTTP/1.1 400 Bad\r\nContent-Length: 4\r\n\r\nabcdEXTRA", 3, &r, &b, &err), 1);
    assert_int_equal(r.status, 400);
    assert_string_equal(b.data, "abcd");
    assert_true(r.complete);
    /* no length, not chunked: the body runs to the close */
    assert_int_equal(parse_text("HTTP/1.0 200 OK\nServer: x\n\nuntil close", 2, &r, &b, &err), 1);
    assert_string_equal(b.data, "until close");
    assert_true(r.complete);
    /* a length that was not reached: cut */
    assert_int_equal(parse_text("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", 0, &r, &b, &err), 0);
    assert_false(r.complete);
    assert_string_equal(b.data, "abc");
    /* a chunked body without its last chunk: cut */
    assert_int_equal(parse_text("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n", 1, &r, &b,
                                &err), 0);
    assert_false(r.complete);
    assert_string_equal(b.data, "abc");
    /* 100 Continue, then the real answer; 204 has no body */
    assert_int_equal(parse_text("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", 0, &r, &b, &err),
                     1);
    assert_int_equal(r.status, 204);
    assert_int_equal(b.len, 0);
}

static void http_parser_rejects_garbage(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "SSH-2.0-OpenSSH_9.6\r\n",
        "HTTP/2 200\r\n\r\n",
        "HTTP/1.1 2x0 OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        melt_http_response r;
        body b;
        melt_error err = {0};
        if (parse_text(bad[i], 0, &r, &b, &err) >= 0) fail_msg("accepted: %s", bad[i]);
        assert_true(err.msg[0] != '\0');
    }
    /* a head that never ends is bounded */
    char *big = malloc(80000);
    size_t n = (size_t)snprintf(big, 80000, "HTTP/1.1 200 OK\r\n");
    while (n < 79000) n += (size_t)snprintf(big + n, 80000 - n, "X-Pad: %0100d\r\n", 0);
    melt_http_response r;
    body b;
    melt_error err = {0};
    assert_int_equal(parse_text(big, 4096, &r, &b, &err), MELT_EFORMAT);
    assert_non_null(strstr(err.msg, "64 KiB"));
    /* and so are trailers that never end */
    n = (size_t)snprintf(big, 80000, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n");
    while (n < 79000) n += (size_t)snprintf(big + n, 80000 - n, "X-Pad: %0100d\r\n", 0);
    assert_int_equal(parse_text(big, 4096, &r, &b, &err), MELT_EFORMAT);
    assert_non_null(strstr(err.msg, "trailer"));
    free(big);
}

static void http_parser_reads_every_recording(void **state)
{
    (void)state;
    static const char *const files[] = {"chat-stream.http", "completion-stream.http", "health.http",
                                        "error-bad-param.http", "v1-models.http", "completion.http"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char path[256];
        snprintf(path, sizeof path, "llamacpp/%s", files[i]);
        size_t n = 0;
        char *rec = slurp_text(fixture_path(path), &n);
        melt_http_parser ps;
        melt_http_response r;
        body b = {0};
        melt_http_parser_init(&ps, &r, on_body, &b);
        /* the recordings hold de-chunked bodies: read them as close-delimited */
        char *te = strstr(rec, "Transfer-Encoding: chunked");
        if (te) memcpy(te, "X-Transfer-Encodin: chunked", 26);
        assert_true(melt_http_parser_feed(&ps, rec, n, 1, NULL) >= 0);
        melt_http_parser_eof(&ps);
        assert_true(r.complete);
        assert_true(r.status == 200 || r.status == 400);
        assert_true(b.len > 0);
        free(rec);
    }
}

/* ---- a loopback server thread ---- */

typedef struct srv {
    int fd;
    int port;
    const char *reply;        /* sent in pieces split at '|' with pause_ms between */
    int pause_ms;
    bool stay_silent;         /* accept and never answer (until closed) */
    char request[8192];       /* what the client sent */
    size_t request_len;
    pthread_t th;
} srv;

static void msleep(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static void *srv_main(void *arg)
{
    srv *s = arg;
    const int c = accept(s->fd, NULL, NULL);
    if (c < 0) return NULL;
    /* read the head and a Content-Length body */
    for (;;) {
        const ssize_t r = recv(c, s->request + s->request_len, sizeof s->request - 1 - s->request_len, 0);
        if (r <= 0) break;
        s->request_len += (size_t)r;
        s->request[s->request_len] = '\0';
        char *end = strstr(s->request, "\r\n\r\n");
        if (!end) continue;
        char *cl = strstr(s->request, "Content-Length: ");
        const size_t want = cl ? strtoul(cl + 16, NULL, 10) : 0;
        if (s->request_len >= (size_t)(end - s->request) + 4 + want) break;
    }
    if (s->stay_silent) {
        char tmp[64];
        while (recv(c, tmp, sizeof tmp, 0) > 0) {
        }
    } else if (s->reply) {
        const char *p = s->reply;
        while (*p) {
            const char *bar = strchr(p, '|');
            const size_t k = bar ? (size_t)(bar - p) : strlen(p);
            if (send(c, p, k, MSG_NOSIGNAL) < 0) break;
            p += k + (bar ? 1 : 0);
            if (bar) msleep(s->pause_ms);
        }
    }
    close(c);
    return NULL;
}

static void srv_start(srv *s)
{
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    assert_int_equal(bind(s->fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(s->fd, 4), 0);
    getsockname(s->fd, (struct sockaddr *)&a, &al);
    s->port = ntohs(a.sin_port);
    pthread_create(&s->th, NULL, srv_main, s);
}

static void srv_join(srv *s)
{
    shutdown(s->fd, SHUT_RDWR);
    pthread_join(s->th, NULL);
    close(s->fd);
}

static void http_sends_a_well_formed_request_and_streams_the_body(void **state)
{
    (void)state;
    srv s = {.reply = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nab|cd\r\n|2\r\nef\r\n0\r\n\r\n",
             .pause_ms = 30};
    srv_start(&s);
    char url_s[64];
    snprintf(url_s, sizeof url_s, "http://127.0.0.1:%d/v1/x?q=1", s.port);
    melt_http_url u;
    assert_int_equal(melt_http_parse_url(url_s, &u, NULL), 0);
    const char *hdrs[] = {"Authorization: Bearer k", "Accept: text/event-stream", NULL};
    melt_http_request rq = {.method = "POST", .url = &u, .headers = hdrs, .body = "{\"a\":1}", .body_len = 7};
    melt_http_response resp;
    body b = {0};
    melt_error err = {0};
    assert_int_equal(melt_http_do(&rq, &resp, on_body, &b, &err), 0);
    srv_join(&s);
    assert_int_equal(resp.status, 200);
    assert_true(resp.complete);
    assert_string_equal(b.data, "abcdef");
    assert_true(b.slices >= 3);   /* delivered as the pieces arrived */
    assert_non_null(strstr(s.request, "POST /v1/x?q=1 HTTP/1.1\r\n"));
    char host[64];
    snprintf(host, sizeof host, "Host: 127.0.0.1:%d\r\n", s.port);
    assert_non_null(strstr(s.request, host));
    assert_non_null(strstr(s.request, "Content-Length: 7\r\n"));
    assert_non_null(strstr(s.request, "Connection: close\r\n"));
    assert_non_null(strstr(s.request, "Authorization: Bearer k\r\n"));
    assert_non_null(strstr(s.request, "Accept: text/event-stream\r\n"));
    assert_null(strstr(s.request, "Accept: */*"));
    assert_non_null(strstr(s.request, "\r\n\r\n{\"a\":1}"));
}

static void http_reports_refused_and_garbage_with_host_port(void **state)
{
    (void)state;
    melt_error err = {0};
    const int port = melt_http_free_port(&err);
    assert_true(port > 0);
    char url_s[64];
    snprintf(url_s, sizeof url_s, "http://127.0.0.1:%d/", port);
    int status = -1;
    assert_true(melt_http_fetch(url_s, NULL, NULL, 2000, NULL, &status, NULL, &err) < 0);
    char hp[32];
    snprintf(hp, sizeof hp, "127.0.0.1:%d", port);
    assert_non_null(strstr(err.msg, hp));
    assert_non_null(strstr(err.msg, "refused"));

    srv s = {.reply = "SSH-2.0-OpenSSH_9.6\r\n"};
    srv_start(&s);
    snprintf(url_s, sizeof url_s, "http://127.0.0.1:%d/", s.port);
    snprintf(hp, sizeof hp, "127.0.0.1:%d", s.port);
    assert_int_equal(melt_http_fetch(url_s, NULL, NULL, 2000, NULL, &status, NULL, &err), MELT_EFORMAT);
    srv_join(&s);
    assert_non_null(strstr(err.msg, hp));
    assert_non_null(strstr(err.msg, "not an HTTP"));
}

static void http_idle_timeout_and_cancel_end_a_silent_request(void **state)
{
    (void)state;
    srv s = {.stay_silent = true};
    srv_start(&s);
    char url_s[64];
    snprintf(url_s, sizeof url_s, "http://127.0.0.1:%d/", s.port);
    melt_http_url u;
    melt_http_parse_url(url_s, &u, NULL);
    melt_http_request rq = {.method = "GET", .url = &u, .idle_timeout_ms = 200};
    melt_http_response resp;
    melt_error err = {0};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_true(melt_http_do(&rq, &resp, NULL, NULL, &err) < 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    const double ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
    assert_true(ms >= 190 && ms < 2000);
    assert_non_null(strstr(err.msg, "timed out"));
    srv_join(&s);

    srv s2 = {.stay_silent = true};
    srv_start(&s2);
    snprintf(url_s, sizeof url_s, "http://127.0.0.1:%d/", s2.port);
    melt_http_parse_url(url_s, &u, NULL);
    volatile int cancel = 1;
    melt_http_request rq2 = {.method = "GET", .url = &u, .cancel = &cancel};
    assert_true(melt_http_do(&rq2, &resp, NULL, NULL, &err) < 0);
    assert_non_null(strstr(err.msg, "cancel"));
    srv_join(&s2);
}

static void http_fetch_collects_a_body_and_a_cut_body_is_incomplete(void **state)
{
    (void)state;
    srv s = {.reply = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 22\r\n\r\n{\"error\":\"loading\"}xyz"};
    srv_start(&s);
    char url_s[64];
    snprintf(url_s, sizeof url_s, "http://127.0.0.1:%d/health", s.port);
    int status = 0;
    char *b = NULL;
    melt_error err = {0};
    assert_int_equal(melt_http_fetch(url_s, NULL, NULL, 2000, NULL, &status, &b, &err), 0);
    srv_join(&s);
    assert_int_equal(status, 503);
    assert_string_equal(b, "{\"error\":\"loading\"}xyz");
    free(b);

    srv s2 = {.reply = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this"};
    srv_start(&s2);
    snprintf(url_s, sizeof url_s, "http://127.0.0.1:%d/", s2.port);
    melt_http_url u;
    melt_http_parse_url(url_s, &u, NULL);
    melt_http_request rq = {.method = "GET", .url = &u};
    melt_http_response resp;
    body bb = {0};
    assert_int_equal(melt_http_do(&rq, &resp, on_body, &bb, &err), 0);
    srv_join(&s2);
    assert_false(resp.complete);
    assert_string_equal(bb.data, "only this");
    assert_non_null(strstr(err.msg, "closed before the body ended"));

    /* melt_http_fetch gives whole bodies only: the same cut is an error */
    srv s3 = {.reply = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"data\":[]}"};
    srv_start(&s3);
    snprintf(url_s, sizeof url_s, "http://127.0.0.1:%d/v1/models", s3.port);
    memset(&err, 0, sizeof err);
    b = NULL;
    assert_true(melt_http_fetch(url_s, NULL, NULL, 2000, NULL, &status, &b, &err) < 0);
    srv_join(&s3);
    assert_null(b);
    assert_non_null(strstr(err.msg, "closed before the body ended"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(http_parses_urls),
        cmocka_unit_test(http_parser_decodes_chunked_bodies),
        cmocka_unit_test(http_parser_frames_by_length_and_by_close),
        cmocka_unit_test(http_parser_rejects_garbage),
        cmocka_unit_test(http_parser_reads_every_recording),
        cmocka_unit_test(http_sends_a_well_formed_request_and_streams_the_body),
        cmocka_unit_test(http_reports_refused_and_garbage_with_host_port),
        cmocka_unit_test(http_idle_timeout_and_cancel_end_a_silent_request),
        cmocka_unit_test(http_fetch_collects_a_body_and_a_cut_body_is_incomplete),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* A small HTTP/1.1 client for the backends (src/backends/http.h): one
 * request per connection (Connection: close), libc sockets only.
 *
 * The response side is a byte-at-a-time state machine (melt_http_parser)
 * so that it can be fed whatever recv() returns — or a buffer, in tests
 * and the fuzzer — and hand body bytes on as soon as they arrive, each
 * slice with the time its bytes were received. Every size is bounded: a
 * head line, the whole head, a chunk-size line.
 */
#include "backends/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HEAD_MAX_BYTES (64 * 1024)
#define FETCH_MAX_BYTES (16u << 20)
#define POLL_SLICE_MS 50

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- URLs ---- */

int melt_http_parse_url(const char *url, melt_http_url *out, melt_error *err)
{
    memset(out, 0, sizeof *out);
    if (!url || !*url) return melt_errorf(err, MELT_EINVAL, "empty URL");
    if (strncasecmp(url, "https://", 8) == 0)
        return melt_errorf(err, MELT_EUNSUPPORTED,
                           "%s: https is not supported; reach the server over plain http "
                           "(e.g. through an ssh or stunnel TLS tunnel)", url);
    if (strncasecmp(url, "http://", 7) != 0)
        return melt_errorf(err, MELT_EINVAL, "%s: URL must start with http://", url);
    const char *h = url + 7;
    const char *end_auth = h + strcspn(h, "/?#");
    if (end_auth == h) return melt_errorf(err, MELT_EINVAL, "%s: no host in URL", url);
    if (memchr(h, '@', (size_t)(end_auth - h)))
        return melt_errorf(err, MELT_EINVAL, "%s: user info in URLs is not supported", url);
    const char *host_end, *port_at = NULL;
    if (*h == '[') {
        const char *rb = memchr(h, ']', (size_t)(end_auth - h));
        if (!rb) return melt_errorf(err, MELT_EINVAL, "%s: unterminated [IPv6] host", url);
        if ((size_t)(rb - h - 1) >= sizeof out->host)
            return melt_errorf(err, MELT_EINVAL, "%s: host too long", url);
        memcpy(out->host, h + 1, (size_t)(rb - h - 1));
        host_end = rb + 1;
        if (host_end < end_auth) {
            if (*host_end != ':') return melt_errorf(err, MELT_EINVAL, "%s: bad host", url);
            port_at = host_end + 1;
        }
    } else {
        const char *colon = memchr(h, ':', (size_t)(end_auth - h));
        host_end = colon ? colon : end_auth;
        if ((size_t)(host_end - h) >= sizeof out->host || host_end == h)
            return melt_errorf(err, MELT_EINVAL, "%s: bad host", url);
        memcpy(out->host, h, (size_t)(host_end - h));
        if (colon) port_at = colon + 1;
    }
    out->port = 80;
    if (port_at) {
        long port = 0;
        if (port_at == end_auth) return melt_errorf(err, MELT_EINVAL, "%s: empty port", url);
        for (const char *q = port_at; q < end_auth; q++) {
            if (*q < '0' || *q > '9' || port > 65535)
                return melt_errorf(err, MELT_EINVAL, "%s: bad port", url);
            port = port * 10 + (*q - '0');
        }
        if (port < 1 || port > 65535) return melt_errorf(err, MELT_EINVAL, "%s: bad port", url);
        out->port = (int)port;
    }
    const char *path = end_auth;
    size_t plen = strcspn(path, "#");
    if (plen == 0 || *path != '/') {
        /* "http://h?x" -> "/?x" */
        if (plen + 2 > sizeof out->path) return melt_errorf(err, MELT_EINVAL, "%s: path too long", url);
        out->path[0] = '/';
        memcpy(out->path + 1, path, plen);
    } else {
        if (plen + 1 > sizeof out->path) return melt_errorf(err, MELT_EINVAL, "%s: path too long", url);
        memcpy(out->path, path, plen);
    }
    for (const char *q = out->path; *q; q++)
        if ((unsigned char)*q <= ' ' || *q == 0x7f)
            return melt_errorf(err, MELT_EINVAL, "%s: space or control character in URL", url);
    return 0;
}

/* ---- the response parser ---- */

enum ps_state {
    PS_STATUS = 0,
    PS_HEADER,
    PS_BODY_LENGTH,
    PS_BODY_CLOSE,
    PS_CHUNK_SIZE,
    PS_CHUNK_DATA,
    PS_CHUNK_END,      /* the CRLF after a chunk's data */
    PS_TRAILER,
    PS_DONE,
};

void melt_http_parser_init(melt_http_parser *ps, melt_http_response *resp, melt_http_body_fn fn,
                           void *ctx)
{
    memset(ps, 0, sizeof *ps);
    memset(resp, 0, sizeof *resp);
    ps->state = PS_STATUS;
    ps->remaining = -1;
    ps->resp = resp;
    ps->fn = fn;
    ps->ctx = ctx;
}

static int bad(melt_error *err, const char *what)
{
    return melt_errorf(err, MELT_EFORMAT, "%s", what);
}

static int parse_status_line(melt_http_parser *ps, const char *l, size_t n, melt_error *err)
{
    /* HTTP/1.x SP 3DIGIT [SP reason] */
    if (n < 12 || memcmp(l, "HTTP/1.", 7) != 0 || (l[7] != '0' && l[7] != '1') || l[8] != ' ')
        return bad(err, "not an HTTP/1.x response (bad status line)");
    for (int i = 9; i < 12; i++)
        if (l[i] < '0' || l[i] > '9') return bad(err, "bad status code in status line");
    if (n > 12 && l[12] != ' ') return bad(err, "bad status line");
    ps->resp->status = (l[9] - '0') * 100 + (l[10] - '0') * 10 + (l[11] - '0');
    if (ps->resp->status < 100) return bad(err, "bad status code in status line");
    return 0;
}

static void trim(const char **v, size_t *n)
{
    while (*n && (**v == ' ' || **v == '\t')) {
        (*v)++;
        (*n)--;
    }
    while (*n && ((*v)[*n - 1] == ' ' || (*v)[*n - 1] == '\t')) (*n)--;
}

static bool name_is(const char *l, size_t name_len, const char *want)
{
    return strlen(want) == name_len && strncasecmp(l, want, name_len) == 0;
}

static int parse_header(melt_http_parser *ps, const char *l, size_t n, melt_error *err)
{
    const char *colon = memchr(l, ':', n);
    if (!colon || colon == l) return bad(err, "bad header line in response");
    const size_t name_len = (size_t)(colon - l);
    for (size_t i = 0; i < name_len; i++)
        if (l[i] == ' ' || l[i] == '\t') return bad(err, "space in a response header name");
    const char *v = colon + 1;
    size_t vn = n - name_len - 1;
    trim(&v, &vn);
    if (name_is(l, name_len, "Content-Length")) {
        int64_t len = 0;
        if (vn == 0) return bad(err, "empty Content-Length");
        for (size_t i = 0; i < vn; i++) {
            if (v[i] < '0' || v[i] > '9' || len > ((int64_t)1 << 50))
                return bad(err, "bad Content-Length");
            len = len * 10 + (v[i] - '0');
        }
        if (ps->has_length && ps->remaining != len) return bad(err, "conflicting Content-Length headers");
        ps->has_length = true;
        ps->remaining = len;
    } else if (name_is(l, name_len, "Transfer-Encoding")) {
        /* chunked must be the last coding; anything else we cannot decode */
        if (vn >= 7 && strncasecmp(v + vn - 7, "chunked", 7) == 0) ps->chunked = true;
        else return melt_errorf(err, MELT_EUNSUPPORTED, "unsupported Transfer-Encoding '%.*s'",
                                (int)(vn < 60 ? vn : 60), v);
    } else if (name_is(l, name_len, "Content-Type")) {
        const size_t k = vn < sizeof ps->resp->content_type - 1 ? vn : sizeof ps->resp->content_type - 1;
        memcpy(ps->resp->content_type, v, k);
        ps->resp->content_type[k] = '\0';
    }
    return 0;
}

/* The head ended: choose how the body is framed. */
static int head_done(melt_http_parser *ps)
{
    const int st = ps->resp->status;
    if (st >= 100 && st < 200) {   /* interim (100 Continue): a real head follows */
        ps->state = PS_STATUS;
        ps->has_length = ps->chunked = false;
        ps->remaining = -1;
        return 0;
    }
    ps->head_done = true;
    if (st == 204 || st == 304) {
        ps->state = PS_DONE;
    } else if (ps->chunked) {
        ps->state = PS_CHUNK_SIZE;   /* chunked wins over a Content-Length */
    } else if (ps->has_length) {
        ps->state = ps->remaining == 0 ? PS_DONE : PS_BODY_LENGTH;
    } else {
        ps->state = PS_BODY_CLOSE;
    }
    if (ps->state == PS_DONE) {
        ps->done = true;
        ps->resp->complete = true;
        return 1;
    }
    return 0;
}

static int parse_chunk_size(melt_http_parser *ps, const char *l, size_t n, melt_error *err)
{
    size_t i = 0;
    int64_t size = 0;
    while (i < n && (l[i] == ' ' || l[i] == '\t')) i++;
    const size_t start = i;
    for (; i < n; i++) {
        const char c = l[i];
        int d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else break;
        if (size > ((int64_t)1 << 40)) return bad(err, "chunk size too large");
        size = size * 16 + d;
    }
    if (i == start) return bad(err, "bad chunk size line");
    while (i < n && (l[i] == ' ' || l[i] == '\t')) i++;
    if (i < n && l[i] != ';') return bad(err, "bad chunk size line");   /* ";ext" is ignored */
    ps->remaining = size;
    ps->state = size == 0 ? PS_TRAILER : PS_CHUNK_DATA;
    return 0;
}

/* A complete line (CR stripped) in a line-oriented state. Returns 0, 1 when
 * the response is complete, or < 0. */
static int on_line(melt_http_parser *ps, melt_error *err)
{
    const char *l = ps->line;
    const size_t n = ps->line_len;
    switch (ps->state) {
    case PS_STATUS:
        if (n == 0 && ps->resp->status == 0) return 0;   /* tolerate a leading blank line */
        ps->state = PS_HEADER;
        return parse_status_line(ps, l, n, err);
    case PS_HEADER:
        return n == 0 ? head_done(ps) : parse_header(ps, l, n, err);
    case PS_CHUNK_SIZE:
        return parse_chunk_size(ps, l, n, err);
    case PS_CHUNK_END:
        if (n != 0) return bad(err, "chunk data longer than its size");
        ps->state = PS_CHUNK_SIZE;
        return 0;
    case PS_TRAILER:
        if (n == 0) {
            ps->state = PS_DONE;
            ps->done = true;
            ps->resp->complete = true;
            return 1;
        }
        return 0;   /* trailer fields are ignored */
    default: return 0;
    }
}

static int deliver(melt_http_parser *ps, const char *p, size_t n, int64_t t_ns)
{
    if (n == 0 || !ps->fn) return 0;
    return ps->fn(ps->ctx, p, n, t_ns) != 0 ? 2 : 0;
}

int melt_http_parser_feed(melt_http_parser *ps, const char *p, size_t n, int64_t t_ns, melt_error *err)
{
    size_t i = 0;
    while (i < n) {
        if (ps->state == PS_DONE) return 1;
        if (ps->state == PS_BODY_CLOSE) return deliver(ps, p + i, n - i, t_ns);
        if (ps->state == PS_BODY_LENGTH || ps->state == PS_CHUNK_DATA) {
            size_t k = n - i;
            if ((int64_t)k > ps->remaining) k = (size_t)ps->remaining;
            ps->remaining -= (int64_t)k;
            const int rc = deliver(ps, p + i, k, t_ns);
            i += k;
            if (ps->remaining == 0) {
                if (ps->state == PS_BODY_LENGTH) {
                    ps->state = PS_DONE;
                    ps->done = true;
                    ps->resp->complete = true;
                    return rc ? rc : 1;
                }
                ps->state = PS_CHUNK_END;
            }
            if (rc) return rc;
            continue;
        }
        /* line states */
        const char c = p[i++];
        if ((!ps->head_done || ps->state == PS_TRAILER) && ++ps->n_header_bytes > HEAD_MAX_BYTES)
            return bad(err, "response head or trailer larger than 64 KiB");
        if (c == '\n') {
            if (ps->line_len && ps->line[ps->line_len - 1] == '\r') ps->line_len--;
            const int rc = on_line(ps, err);
            ps->line_len = 0;
            if (rc != 0) return rc;
            continue;
        }
        if (ps->line_len + 1 >= sizeof ps->line) return bad(err, "response line longer than 8 KiB");
        ps->line[ps->line_len++] = c;
    }
    return ps->state == PS_DONE ? 1 : 0;
}

int melt_http_parser_eof(melt_http_parser *ps)
{
    if (ps->state == PS_BODY_CLOSE) {
        ps->state = PS_DONE;
        ps->done = true;
        ps->resp->complete = true;
        return 1;
    }
    return ps->state == PS_DONE ? 1 : 0;
}

/* ---- the connection ---- */

static bool cancelled(const volatile int *cancel)
{
    return cancel && *cancel;
}

/* Wait for events on fd for up to timeout_ms in 50 ms slices, watching
 * cancel. 1 ready, 0 timeout, -1 cancelled, -2 poll error. */
static int wait_fd(int fd, short events, int64_t timeout_ms, const volatile int *cancel)
{
    const int64_t end = now_ns() + timeout_ms * 1000000;
    for (;;) {
        if (cancelled(cancel)) return -1;
        const int64_t left_ms = (end - now_ns()) / 1000000;
        if (left_ms <= 0) return 0;
        struct pollfd pfd = {.fd = fd, .events = events};
        const int rc = poll(&pfd, 1, (int)(left_ms < POLL_SLICE_MS ? left_ms : POLL_SLICE_MS));
        if (rc > 0) return 1;
        if (rc < 0 && errno != EINTR) return -2;
    }
}

/* The addresses of u: getaddrinfo, or in the static agent (where glibc's
 * resolver needs shared libraries at run time) IP literals only. */
#ifdef MELT_HTTP_NO_GETADDRINFO
typedef struct lit_addr {
    struct addrinfo ai;
    struct sockaddr_storage ss;
} lit_addr;

static int resolve(const melt_http_url *u, struct addrinfo **out, melt_error *err)
{
    lit_addr *la = calloc(1, sizeof *la);
    if (!la) return melt_errorf(err, MELT_ENOMEM, "out of memory");
    const char *host = strcmp(u->host, "localhost") == 0 ? "127.0.0.1" : u->host;
    struct sockaddr_in *v4 = (struct sockaddr_in *)&la->ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&la->ss;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)u->port);
        la->ai.ai_addrlen = sizeof *v4;
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)u->port);
        la->ai.ai_addrlen = sizeof *v6;
    } else {
        free(la);
        return melt_errorf(err, MELT_EINVAL, "%s:%d: static agent: give an IP address, not a host name",
                           u->host, u->port);
    }
    la->ai.ai_family = la->ss.ss_family;
    la->ai.ai_socktype = SOCK_STREAM;
    la->ai.ai_addr = (struct sockaddr *)&la->ss;
    *out = &la->ai;   /* first member: freed through it */
    return 0;
}

static void resolve_free(struct addrinfo *ai)
{
    free(ai);
}
#else
static int resolve(const melt_http_url *u, struct addrinfo **out, melt_error *err)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV};
    char port[16];
    snprintf(port, sizeof port, "%d", u->port);
    const int gai = getaddrinfo(u->host, port, &hints, out);
    if (gai != 0)
        return melt_errorf(err, MELT_EIO, "%s:%d: cannot resolve host: %s", u->host, u->port,
                           gai_strerror(gai));
    return 0;
}

static void resolve_free(struct addrinfo *ai)
{
    freeaddrinfo(ai);
}
#endif

static int connect_to(const melt_http_url *u, int64_t timeout_ms, const volatile int *cancel, int *out,
                      melt_error *err)
{
    struct addrinfo *res = NULL;
    const int rrc = resolve(u, &res, err);
    if (rrc < 0) return rrc;
    int last_errno = ECONNREFUSED;
    int rc = MELT_EIO;
    bool timed_out = false, was_cancelled = false;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        const int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                              ai->ai_protocol);
        if (fd < 0) {
            last_errno = errno;
            continue;
        }
        int ok = connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 ? 0 : errno;
        if (ok == EINPROGRESS) {
            const int w = wait_fd(fd, POLLOUT, timeout_ms, cancel);
            if (w == 1) {
                socklen_t sl = sizeof ok;
                if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &ok, &sl) < 0) ok = errno;
            } else {
                ok = ETIMEDOUT;
                timed_out = w == 0;
                was_cancelled = w == -1;
            }
        }
        if (ok == 0) {
            const int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            *out = fd;
            rc = 0;
            break;
        }
        close(fd);
        last_errno = ok;
        if (was_cancelled) break;
    }
    resolve_free(res);
    if (rc == 0) return 0;
    if (was_cancelled) return melt_errorf(err, MELT_EIO, "%s:%d: connect cancelled", u->host, u->port);
    if (timed_out)
        return melt_errorf(err, MELT_EIO, "%s:%d: connect timed out after %lld ms", u->host, u->port,
                           (long long)timeout_ms);
    return melt_errorf(err, MELT_EIO, "%s:%d: connect: %s", u->host, u->port, strerror(last_errno));
}

static int send_all(int fd, const char *p, size_t n, const melt_http_request *rq, int64_t timeout_ms,
                    melt_error *err)
{
    const melt_http_url *u = rq->url;
    while (n > 0) {
        const ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            const int rc = wait_fd(fd, POLLOUT, timeout_ms, rq->cancel);
            if (rc == 1) continue;
            return melt_errorf(err, MELT_EIO, "%s:%d: sending the request: %s", u->host, u->port,
                               rc == 0 ? "timed out" : rc == -1 ? "cancelled" : "poll failed");
        }
        return melt_errorf(err, MELT_EIO, "%s:%d: sending the request: %s", u->host, u->port,
                           strerror(errno));
    }
    return 0;
}

/* The request head (body sent separately). malloc'd. */
static char *format_head(const melt_http_request *rq, size_t *len)
{
    const melt_http_url *u = rq->url;
    size_t cap = 512 + strlen(u->host) + strlen(u->path);
    if (rq->headers)
        for (const char *const *h = rq->headers; *h; h++) cap += strlen(*h) + 2;
    char *b = malloc(cap);
    if (!b) return NULL;
    const bool v6 = strchr(u->host, ':') != NULL;
    int n = snprintf(b, cap, "%s %s HTTP/1.1\r\nHost: %s%s%s", rq->method ? rq->method : "GET", u->path,
                     v6 ? "[" : "", u->host, v6 ? "]" : "");
    if (u->port != 80) n += snprintf(b + n, cap - (size_t)n, ":%d", u->port);
    n += snprintf(b + n, cap - (size_t)n, "\r\nConnection: close\r\nUser-Agent: melt\r\n");
    if (rq->body) n += snprintf(b + n, cap - (size_t)n, "Content-Length: %zu\r\n", rq->body_len);
    bool has_accept = false;
    if (rq->headers)
        for (const char *const *h = rq->headers; *h; h++) {
            if (strncasecmp(*h, "Accept:", 7) == 0) has_accept = true;
            n += snprintf(b + n, cap - (size_t)n, "%s\r\n", *h);
        }
    if (!has_accept) n += snprintf(b + n, cap - (size_t)n, "Accept: */*\r\n");
    n += snprintf(b + n, cap - (size_t)n, "\r\n");
    *len = (size_t)n;
    return b;
}

int melt_http_do(const melt_http_request *rq, melt_http_response *resp, melt_http_body_fn fn, void *ctx,
                 melt_error *err)
{
    const melt_http_url *u = rq->url;
    const int64_t connect_ms = rq->connect_timeout_ms > 0 ? rq->connect_timeout_ms : 10000;
    const int64_t idle_ms = rq->idle_timeout_ms > 0 ? rq->idle_timeout_ms : 300000;
    melt_http_parser ps;
    melt_http_parser_init(&ps, resp, fn, ctx);

    int fd = -1;
    int rc = connect_to(u, connect_ms, rq->cancel, &fd, err);
    if (rc < 0) return rc;
    size_t head_len = 0;
    char *head = format_head(rq, &head_len);
    if (!head) {
        close(fd);
        return melt_errorf(err, MELT_ENOMEM, "%s:%d: out of memory", u->host, u->port);
    }
    rc = send_all(fd, head, head_len, rq, idle_ms, err);
    free(head);
    if (rc == 0 && rq->body && rq->body_len) rc = send_all(fd, rq->body, rq->body_len, rq, idle_ms, err);
    if (rc < 0) {
        close(fd);
        return rc;
    }

    char buf[16384];
    rc = 0;
    for (;;) {
        const int w = wait_fd(fd, POLLIN, idle_ms, rq->cancel);
        if (w != 1) {
            if (!ps.head_done)
                rc = melt_errorf(err, MELT_EIO, "%s:%d: %s", u->host, u->port,
                                 w == 0 ? "no response (timed out)"
                                 : w == -1 ? "cancelled" : "poll failed");
            else
                melt_errorf(err, MELT_EIO, "%s:%d: %s", u->host, u->port,
                            w == 0 ? "response stalled (idle timeout)" : "cancelled");
            break;
        }
        const ssize_t r = recv(fd, buf, sizeof buf, 0);
        const int64_t t = now_ns();
        if (r < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
            if (!ps.head_done)
                rc = melt_errorf(err, MELT_EIO, "%s:%d: reading the response: %s", u->host, u->port,
                                 strerror(errno));
            else
                melt_errorf(err, MELT_EIO, "%s:%d: connection lost: %s", u->host, u->port,
                            strerror(errno));
            break;
        }
        if (r == 0) {
            melt_http_parser_eof(&ps);
            if (!ps.head_done)
                rc = melt_errorf(err, MELT_EIO, "%s:%d: connection closed before a complete response head",
                                 u->host, u->port);
            else if (!resp->complete)
                melt_errorf(err, MELT_EIO, "%s:%d: connection closed before the body ended", u->host,
                            u->port);
            break;
        }
        const int f = melt_http_parser_feed(&ps, buf, (size_t)r, t, err);
        if (f < 0) {
            char why[sizeof err->msg];
            snprintf(why, sizeof why, "%s", err ? err->msg : "bad response");
            if (!ps.head_done)
                rc = melt_errorf(err, MELT_EFORMAT, "%s:%d: %s", u->host, u->port, why);
            else
                melt_errorf(err, MELT_EFORMAT, "%s:%d: %s", u->host, u->port, why);
            break;
        }
        if (f != 0) break;   /* complete, or the callback asked to stop */
    }
    close(fd);
    return rc;
}

/* ---- conveniences ---- */

typedef struct fetch_buf {
    char *p;
    size_t len, cap;
    bool too_big;
} fetch_buf;

static int fetch_body(void *ctx, const char *data, size_t len, int64_t t_ns)
{
    (void)t_ns;
    fetch_buf *b = ctx;
    if (b->len + len + 1 > FETCH_MAX_BYTES) {
        b->too_big = true;
        return 1;
    }
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + len + 1) cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) {
            b->too_big = true;
            return 1;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, len);
    b->len += len;
    return 0;
}

int melt_http_fetch(const char *url, const char *const *headers, const char *body, int64_t timeout_ms,
                    const volatile int *cancel, int *status, char **out_body, melt_error *err)
{
    if (status) *status = 0;
    if (out_body) *out_body = NULL;
    melt_http_url u;
    int rc = melt_http_parse_url(url, &u, err);
    if (rc < 0) return rc;
    const char *hdrs[34];
    size_t nh = 0;
    if (headers)
        for (; nh < 32 && headers[nh]; nh++) hdrs[nh] = headers[nh];
    if (body) hdrs[nh++] = "Content-Type: application/json";
    hdrs[nh] = NULL;
    melt_http_request rq = {
        .method = body ? "POST" : "GET", .url = &u, .headers = hdrs, .body = body,
        .body_len = body ? strlen(body) : 0, .connect_timeout_ms = timeout_ms,
        .idle_timeout_ms = timeout_ms, .cancel = cancel,
    };
    melt_http_response resp;
    fetch_buf b = {0};
    rc = melt_http_do(&rq, &resp, fetch_body, &b, err);
    if (rc == 0 && b.too_big)
        rc = melt_errorf(err, MELT_EFORMAT, "%s: response body larger than %u bytes", url, FETCH_MAX_BYTES);
    else if (rc == 0 && !resp.complete)   /* cut or stalled: err says which; not a whole body */
        rc = err ? melt_errorf(err, MELT_EIO, "%s", err->msg) : MELT_EIO;
    if (rc < 0) {
        free(b.p);
        return rc;
    }
    if (status) *status = resp.status;
    if (out_body) {
        if (!b.p) b.p = malloc(1);
        if (!b.p) return melt_errorf(err, MELT_ENOMEM, "out of memory");
        b.p[b.len] = '\0';
        *out_body = b.p;
    } else {
        free(b.p);
    }
    return 0;
}

int melt_http_free_port(melt_error *err)
{
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return melt_errorf(err, MELT_EIO, "free port: socket: %s", strerror(errno));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || getsockname(fd, (struct sockaddr *)&a, &al) < 0) {
        const int e = errno;
        close(fd);
        return melt_errorf(err, MELT_EIO, "free port: bind 127.0.0.1:0: %s", strerror(e));
    }
    close(fd);
    return ntohs(a.sin_port);
}

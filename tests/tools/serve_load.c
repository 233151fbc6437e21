/* serve_load: open N connections at once to a `melt serve` and send each a
 * small completion; every one must end answered (200 with a well-formed
 * completion, or 503 with an error object) or refused cleanly (connection
 * refused, or closed before any response byte: libmicrohttpd's connection
 * limit), all within the timeout.
 *
 *   serve_load HOST PORT N_CONNECTIONS [TIMEOUT_S] [MAX_TOKENS]
 *
 * One thread, nonblocking sockets, epoll. Prints one summary line; exit 0
 * when nothing was malformed or unfinished and at least one request got a
 * 200, 1 otherwise, 2 on bad usage. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum state { CONNECTING, SENDING, READING, FINISHED };
enum outcome { OK_200, BUSY_503, REFUSED, CLOSED_EARLY, BAD, UNFINISHED, N_OUTCOMES };
static const char *const outcome_names[] = {"200", "503", "refused", "closed early", "bad",
                                            "unfinished"};

typedef struct conn {
    int fd;
    enum state state;
    size_t sent;
    char *buf;
    size_t len, cap;
    enum outcome outcome;
} conn;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The body of a finished response, judged by its status line. */
static enum outcome judge(const conn *c, int max_tokens, char *why, size_t why_size)
{
    if (c->len == 0) return CLOSED_EARLY;
    int status = 0;
    if (sscanf(c->buf, "HTTP/1.%*d %d", &status) != 1) {
        snprintf(why, why_size, "no status line");
        return BAD;
    }
    const char *body = strstr(c->buf, "\r\n\r\n");
    if (!body) {
        snprintf(why, why_size, "no end of headers");
        return BAD;
    }
    body += 4;
    json_error_t je;
    json_t *o = json_loadb(body, c->len - (size_t)(body - c->buf), 0, &je);
    enum outcome out = BAD;
    if (!o) {
        snprintf(why, why_size, "status %d, body is not JSON: %s", status, je.text);
    } else if (status == 200) {
        json_t *ch = json_array_get(json_object_get(o, "choices"), 0);
        json_t *u = json_object_get(o, "usage");
        const json_int_t n = json_integer_value(json_object_get(u, "completion_tokens"));
        if (json_is_string(json_object_get(ch, "text")) && json_is_string(json_object_get(ch, "finish_reason")) &&
            json_is_integer(json_object_get(u, "completion_tokens")) && n >= 0 && n <= max_tokens)
            out = OK_200;
        else
            snprintf(why, why_size, "200 without a well-formed completion");
    } else if (status == 503) {
        if (json_integer_value(json_object_get(json_object_get(o, "error"), "code")) == 503)
            out = BUSY_503;
        else
            snprintf(why, why_size, "503 without an error object");
    } else {
        snprintf(why, why_size, "status %d", status);
    }
    json_decref(o);
    return out;
}

static void finish(conn *c, enum outcome o, int ep)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    c->state = FINISHED;
    c->outcome = o;
}

/* Read what is there; 1 when the peer has closed (or failed). */
static int drain(conn *c)
{
    for (;;) {
        if (c->len + 4096 + 1 > c->cap) {
            c->cap = c->cap ? 2 * c->cap : 8192;
            char *q = realloc(c->buf, c->cap);
            if (!q) return 1;
            c->buf = q;
        }
        const ssize_t n = read(c->fd, c->buf + c->len, 4096);
        if (n > 0) {
            c->len += (size_t)n;
            c->buf[c->len] = '\0';
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return 0;
        return 1;  /* EOF, or a reset */
    }
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: serve_load HOST PORT N_CONNECTIONS [TIMEOUT_S] [MAX_TOKENS]\n");
        return 2;
    }
    const int port = (int)strtol(argv[2], NULL, 10), n_conn = (int)strtol(argv[3], NULL, 10);
    const double timeout_s = argc > 4 ? strtod(argv[4], NULL) : 20;
    const int max_tokens = argc > 5 ? (int)strtol(argv[5], NULL, 10) : 2;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (n_conn < 1 || port < 1 || inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1) {
        fprintf(stderr, "serve_load: bad host, port or count\n");
        return 2;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)n_conn + 32) {
        rl.rlim_cur = (rlim_t)n_conn + 32;
        if (rl.rlim_max != RLIM_INFINITY && rl.rlim_cur > rl.rlim_max) rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    char body[256], req[512];
    snprintf(body, sizeof body, "{\"prompt\":\"Once upon a time\",\"max_tokens\":%d,\"temperature\":0}",
             max_tokens);
    const int req_len = snprintf(req, sizeof req,
                                 "POST /v1/completions HTTP/1.1\r\nHost: %s:%d\r\n"
                                 "Content-Type: application/json\r\nConnection: close\r\n"
                                 "Content-Length: %zu\r\n\r\n%s",
                                 argv[1], port, strlen(body), body);
    conn *cs = calloc((size_t)n_conn, sizeof *cs);
    const int ep = epoll_create1(0);
    if (!cs || ep < 0) {
        perror("serve_load");
        return 1;
    }
    const double t0 = now_s();
    int open_n = 0;
    for (int i = 0; i < n_conn; i++) {
        conn *c = &cs[i];
        c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        if (c->fd < 0) {
            fprintf(stderr, "serve_load: socket %d: %s\n", i, strerror(errno));
            c->state = FINISHED;
            c->outcome = BAD;
            continue;
        }
        if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS) {
            close(c->fd);
            c->fd = -1;
            c->state = FINISHED;
            c->outcome = errno == ECONNREFUSED ? REFUSED : BAD;
            continue;
        }
        struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN | EPOLLRDHUP, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
        open_n++;
    }
    char why[256] = "";
    int first_bad = -1;
    struct epoll_event evs[256];
    while (open_n > 0) {
        const double left = timeout_s - (now_s() - t0);
        if (left <= 0) break;
        const int n = epoll_wait(ep, evs, 256, (int)(left * 1000) + 1);
        if (n < 0 && errno != EINTR) break;
        for (int k = 0; k < n; k++) {
            conn *c = &cs[evs[k].data.u32];
            if (c->state == FINISHED) continue;
            if (c->state == CONNECTING) {
                int e = 0;
                socklen_t el = sizeof e;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &el);
                if (e) {
                    finish(c, e == ECONNREFUSED ? REFUSED : CLOSED_EARLY, ep);
                    open_n--;
                    continue;
                }
                c->state = SENDING;
            }
            if (c->state == SENDING && (evs[k].events & EPOLLOUT)) {
                const ssize_t w = send(c->fd, req + c->sent, (size_t)req_len - c->sent, MSG_NOSIGNAL);
                if (w < 0 && errno != EAGAIN) {
                    /* closed on us before it took the request */
                    finish(c, c->len ? BAD : CLOSED_EARLY, ep);
                    open_n--;
                    continue;
                }
                if (w > 0) c->sent += (size_t)w;
                if (c->sent == (size_t)req_len) {
                    c->state = READING;
                    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u32 = evs[k].data.u32};
                    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                }
            }
            if (evs[k].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
                if (!drain(c)) continue;
                char w2[256] = "";
                const enum outcome o = judge(c, max_tokens, w2, sizeof w2);
                if (o == BAD && first_bad < 0) {
                    first_bad = (int)evs[k].data.u32;
                    snprintf(why, sizeof why, "%s", w2);
                }
                finish(c, o, ep);
                open_n--;
            }
        }
    }
    const double took_s = now_s() - t0;
    int count[N_OUTCOMES] = {0};
    for (int i = 0; i < n_conn; i++) {
        if (cs[i].state != FINISHED) cs[i].outcome = UNFINISHED;
        count[cs[i].outcome]++;
        free(cs[i].buf);
        if (cs[i].fd >= 0) close(cs[i].fd);
    }
    printf("serve_load: %d connections in %.2f s:", n_conn, took_s);
    for (int o = 0; o < N_OUTCOMES; o++) printf(" %s %d%s", outcome_names[o], count[o], o + 1 < N_OUTCOMES ? "," : "\n");
    if (first_bad >= 0) printf("serve_load: first bad response (connection %d): %s\n", first_bad, why);
    free(cs);
    close(ep);
    return count[BAD] == 0 && count[UNFINISHED] == 0 && count[OK_200] > 0 ? 0 : 1;
}

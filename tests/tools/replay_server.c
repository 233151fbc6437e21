/* replay_server — answers HTTP requests with recorded responses, for the
 * backend tests (no llama.cpp or MLC needed).
 *
 *   replay_server [--host H] [--port P] [--dir DIR] [--delay-ms N] [--split N]
 *                 [--cut] [--loading N] [--max-conns N] [--log FILE]
 *                 --route 'METHOD PATH[~BODY_SUBSTRING]=FILE' ...
 *
 * Listens on H:P (127.0.0.1:0 by default) and prints the port on stdout.
 * Each connection gets the first route whose method and path match (and
 * whose body substring, when given, occurs in the request body); FILE
 * (relative to DIR) is a recorded response: head, blank line, body as
 * curl printed it. A recording whose head says Transfer-Encoding: chunked
 * is sent chunked as a real server does: one chunk per SSE event (blank
 * line separated), --delay-ms between them; --split N writes every chunk
 * in pieces of N bytes (separate writes, to exercise the client's
 * reassembly). --cut leaves out the final zero-size chunk and closes (a
 * dropped connection). --loading N answers the first N requests with 503
 * {"error":{"message":"Loading model",...}} as llama-server does while it
 * loads. --log appends every request (head and body, then a "----"
 * line) to FILE. No route: 404 with an error object. libc only; single-threaded,
 * one connection at a time.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_ROUTES 32
#define REQ_MAX (1 << 20)

typedef struct route {
    char method[16];
    char path[512];
    char needle[256];   /* "" = any body */
    char file[1024];
} route;

typedef struct opts {
    const char *host;
    int port;
    const char *dir;
    int delay_ms;
    size_t split;
    int cut;
    int loading;
    int max_conns;
    const char *log;
    route routes[MAX_ROUTES];
    int n_routes;
} opts;

static void die(const char *fmt, const char *arg)
{
    fprintf(stderr, "replay_server: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    exit(2);
}

static void parse_route(opts *o, const char *spec)
{
    if (o->n_routes == MAX_ROUTES) die("too many routes (%s)", spec);
    route *r = &o->routes[o->n_routes++];
    memset(r, 0, sizeof *r);
    const char *sp = strchr(spec, ' ');
    const char *eq = strrchr(spec, '=');
    if (!sp || !eq || eq < sp) die("bad --route '%s' (want 'METHOD PATH[~BODY]=FILE')", spec);
    snprintf(r->method, sizeof r->method, "%.*s", (int)(sp - spec), spec);
    const char *path = sp + 1;
    const char *tilde = memchr(path, '~', (size_t)(eq - path));
    const char *path_end = tilde ? tilde : eq;
    snprintf(r->path, sizeof r->path, "%.*s", (int)(path_end - path), path);
    if (tilde) snprintf(r->needle, sizeof r->needle, "%.*s", (int)(eq - tilde - 1), tilde + 1);
    snprintf(r->file, sizeof r->file, "%s", eq + 1);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        const ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int write_split(int fd, const char *p, size_t n, size_t split)
{
    if (split == 0) return write_all(fd, p, n);
    for (size_t i = 0; i < n; i += split) {
        if (write_all(fd, p + i, n - i < split ? n - i : split) < 0) return -1;
        sleep_ms(1);   /* separate segments on the wire */
    }
    return 0;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n + 4096 > cap) {
            cap = cap ? cap * 2 : 8192;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        const size_t r = fread(buf + n, 1, 4096, f);
        n += r;
        if (r < 4096) break;
    }
    fclose(f);
    *len = n;
    return buf;
}

/* Read one request: returns its method, path and body (static buffer). */
static int read_request(int fd, char *method, size_t mcap, char *path, size_t pcap, char **body,
                        size_t *body_len, const char **raw, size_t *raw_len)
{
    static char buf[REQ_MAX];
    size_t n = 0;
    char *end = NULL;
    while (!end) {
        if (n == sizeof buf - 1) return -1;
        const ssize_t r = recv(fd, buf + n, sizeof buf - 1 - n, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        n += (size_t)r;
        buf[n] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    const size_t head_len = (size_t)(end - buf) + 4;
    if (sscanf(buf, "%15s %511s", method, path) != 2) return -1;
    (void)mcap;
    (void)pcap;
    size_t want = 0;
    for (char *l = strstr(buf, "\r\n"); l && l < end; l = strstr(l + 2, "\r\n"))
        if (strncasecmp(l + 2, "Content-Length:", 15) == 0) want = strtoul(l + 17, NULL, 10);
    if (want > sizeof buf - 1 - head_len) return -1;
    while (n < head_len + want) {
        const ssize_t r = recv(fd, buf + n, head_len + want - n, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        n += (size_t)r;
    }
    buf[head_len + want] = '\0';
    *body = buf + head_len;
    *body_len = want;
    *raw = buf;
    *raw_len = head_len + want;
    return 0;
}

static void send_simple(int fd, int status, const char *reason, const char *json)
{
    char head[512];
    const int n = snprintf(head, sizeof head,
                           "HTTP/1.1 %d %s\r\nContent-Type: application/json; charset=utf-8\r\n"
                           "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                           status, reason, strlen(json));
    write_all(fd, head, (size_t)n);
    write_all(fd, json, strlen(json));
}

/* Send a recording: as recorded, or re-chunked per SSE event. */
static void send_recording(int fd, const opts *o, const char *rec, size_t len)
{
    const char *sep = strstr(rec, "\r\n\r\n");
    size_t head_len = sep ? (size_t)(sep - rec) + 4 : 0;
    if (!sep) {
        sep = strstr(rec, "\n\n");
        head_len = sep ? (size_t)(sep - rec) + 2 : len;
    }
    const char *body = rec + head_len;
    const size_t body_len = len - head_len;
    /* chunked? (case-insensitive header search in the head) */
    int chunked = 0;
    for (size_t i = 0; i + 26 <= head_len; i++)
        if (strncasecmp(rec + i, "Transfer-Encoding: chunked", 26) == 0) chunked = 1;
    if (write_split(fd, rec, head_len, o->split) < 0) return;
    if (!chunked) {
        write_split(fd, body, body_len, o->split);
        return;
    }
    size_t i = 0;
    while (i < body_len) {
        /* one event: up to and including the next blank line */
        const char *ev_end = NULL;
        for (size_t j = i; j + 1 < body_len; j++)
            if (body[j] == '\n' && body[j + 1] == '\n') {
                ev_end = body + j + 2;
                break;
            }
        const size_t k = ev_end ? (size_t)(ev_end - (body + i)) : body_len - i;
        char size_line[32];
        const int sl = snprintf(size_line, sizeof size_line, "%zx\r\n", k);
        char *chunk = malloc((size_t)sl + k + 2);
        if (!chunk) return;
        memcpy(chunk, size_line, (size_t)sl);
        memcpy(chunk + sl, body + i, k);
        memcpy(chunk + sl + k, "\r\n", 2);
        const int rc = write_split(fd, chunk, (size_t)sl + k + 2, o->split);
        free(chunk);
        if (rc < 0) return;
        i += k;
        if (o->delay_ms > 0 && i < body_len) sleep_ms(o->delay_ms);
    }
    if (!o->cut) write_all(fd, "0\r\n\r\n", 5);
}

static void serve_one(int fd, opts *o, int *n_served)
{
    char method[16], path[512];
    char *body = NULL;
    size_t body_len = 0;
    const char *raw = NULL;
    size_t raw_len = 0;
    if (read_request(fd, method, sizeof method, path, sizeof path, &body, &body_len, &raw, &raw_len) < 0)
        return;
    if (o->log) {
        FILE *f = fopen(o->log, "ab");
        if (f) {
            fwrite(raw, 1, raw_len, f);
            fputs("\n----\n", f);
            fclose(f);
        }
    }
    if ((*n_served)++ < o->loading) {
        send_simple(fd, 503, "Service Unavailable",
                    "{\"error\":{\"message\":\"Loading model\",\"type\":\"unavailable_error\",\"code\":503}}");
        return;
    }
    for (int i = 0; i < o->n_routes; i++) {
        const route *r = &o->routes[i];
        if (strcmp(r->method, method) != 0 || strcmp(r->path, path) != 0) continue;
        if (r->needle[0] && !memmem(body, body_len, r->needle, strlen(r->needle))) continue;
        char full[2048];
        snprintf(full, sizeof full, "%s/%s", o->dir, r->file);
        size_t len = 0;
        char *rec = slurp(full, &len);
        if (!rec) {
            send_simple(fd, 500, "Internal Server Error",
                        "{\"error\":{\"message\":\"replay_server: cannot read the recording\",\"code\":500}}");
            return;
        }
        send_recording(fd, o, rec, len);
        free(rec);
        return;
    }
    char msg[700];
    snprintf(msg, sizeof msg, "{\"error\":{\"message\":\"no route for %s %.400s\",\"code\":404}}", method, path);
    send_simple(fd, 404, "Not Found", msg);
}

int main(int argc, char **argv)
{
    opts o = {.host = "127.0.0.1", .dir = ".", .max_conns = -1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--cut")) {
            o.cut = 1;
            continue;
        }
        if (!v) die("%s needs a value", a);
        i++;
        if (!strcmp(a, "--route")) parse_route(&o, v);
        else if (!strcmp(a, "--host")) o.host = v;
        else if (!strcmp(a, "--port")) o.port = (int)strtol(v, NULL, 10);
        else if (!strcmp(a, "--dir")) o.dir = v;
        else if (!strcmp(a, "--delay-ms")) o.delay_ms = (int)strtol(v, NULL, 10);
        else if (!strcmp(a, "--split")) o.split = strtoul(v, NULL, 10);
        else if (!strcmp(a, "--loading")) o.loading = (int)strtol(v, NULL, 10);
        else if (!strcmp(a, "--max-conns")) o.max_conns = (int)strtol(v, NULL, 10);
        else if (!strcmp(a, "--log")) o.log = v;
        else die("unknown option %s", a);
    }
    signal(SIGPIPE, SIG_IGN);
    const int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o.port)};
    if (inet_pton(AF_INET, o.host, &a.sin_addr) != 1) die("bad --host %s (IPv4 only)", o.host);
    socklen_t al = sizeof a;
    if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof a) < 0 || listen(ls, 16) < 0 ||
        getsockname(ls, (struct sockaddr *)&a, &al) < 0)
        die("cannot listen: %s", strerror(errno));
    printf("%d\n", ntohs(a.sin_port));
    fflush(stdout);
    int served = 0;
    for (int conns = 0; o.max_conns < 0 || conns < o.max_conns; conns++) {
        const int fd = accept(ls, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR) continue;
            die("accept: %s", strerror(errno));
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        serve_one(fd, &o, &served);
        shutdown(fd, SHUT_WR);
        close(fd);
    }
    close(ls);
    return 0;
}

/* melt-agent --listen PORT [--bind ADDR] [--dir DIR]: serve the host's tcp
 * transport (src/transport/tcp.c) on a TCP port. Protocol: see
 * docs/agent-protocol.md, "TCP listener". One connection at a time; each
 * connection carries requests until the host closes it:
 *
 *   push NAME SIZE SHA256   -> "have PATH" (same file there) | "send", then
 *                              SIZE raw bytes -> "ok PATH" | "err MSG"
 *   df                      -> "ok BYTES" (free bytes in the work folder)
 *   echo T                  -> "echo T NS" (NS: the agent's clock, for clock sync)
 *   run N, then N times "LEN\n" + LEN bytes (argv, argv[0] ignored)
 *                           -> the cell's event stream (JSON lines), then
 *                              "#exit CODE"; meanwhile "interrupt" lines
 *                              from the host become SIGINT to the cell
 *   anything else           -> "err ..." (an overlong line closes the connection)
 *
 * The cell runs in a forked child whose stdout is the socket, by calling
 * the agent's main again (no exec: works where exec is not allowed). The
 * default bind address is 127.0.0.1: reach an iOS device through iproxy, a
 * board with an explicit --bind 0.0.0.0 (no authentication: a trusted
 * network only). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "melt/sha256.h"

typedef int (*agent_main_fn)(int argc, char **argv);
int agent_listen(int argc, char **argv, agent_main_fn agent_main);


#define LINE_MAX_BYTES 1024
#define RUN_MAX_ARGS 256
#define RUN_MAX_ARG 65536
#define PUSH_MAX_SIZE (1ULL << 40)

static int g_listen_fd = -1;   /* closed in a cell's child */

typedef struct conn {
    int fd;
    char buf[LINE_MAX_BYTES + 1];
    size_t n;       /* bytes in buf */
} conn;

static int write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

static int reply(conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int reply(conn *c, const char *fmt, ...)
{
    char line[LINE_MAX_BYTES + 64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0) return -1;
    if ((size_t)n > sizeof line - 2) n = (int)sizeof line - 2;
    line[n++] = '\n';
    return write_all(c->fd, line, (size_t)n);
}

/* Fill buf until it holds a line; 1 line (NUL-terminated, no '\n', length
 * in *len), 0 EOF, -1 error, -2 too long. */
static int read_line(conn *c, char *out, size_t *len)
{
    for (;;) {
        char *nl = memchr(c->buf, '\n', c->n);
        if (nl) {
            size_t l = (size_t)(nl - c->buf);
            memcpy(out, c->buf, l);
            out[l] = '\0';
            memmove(c->buf, nl + 1, c->n - l - 1);
            c->n -= l + 1;
            *len = l;
            return 1;
        }
        if (c->n >= LINE_MAX_BYTES) return -2;
        ssize_t r = read(c->fd, c->buf + c->n, LINE_MAX_BYTES - c->n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return -1;
        if (r == 0) return 0;
        c->n += (size_t)r;
    }
}

/* Exactly n raw bytes (buffered ones first); 0 ok, -1 EOF/error. */
static int read_exact(conn *c, void *dst, size_t n)
{
    char *d = dst;
    size_t k = c->n < n ? c->n : n;
    memcpy(d, c->buf, k);
    memmove(c->buf, c->buf + k, c->n - k);
    c->n -= k;
    d += k;
    n -= k;
    while (n) {
        ssize_t r = read(c->fd, d, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        d += r;
        n -= (size_t)r;
    }
    return 0;
}

static int valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 200 || s[0] == '.') return 0;
    for (size_t i = 0; i < n; i++) {
        const char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-' || ch == '+'))
            return 0;
    }
    return 1;
}

static int valid_hex64(const char *s)
{
    if (strlen(s) != 64) return 0;
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
    return 1;
}

/* 0: keep serving this connection, -1: close it. */
static int do_push(conn *c, const char *wd, char *args)
{
    char name[256], sha[80], extra[8];
    unsigned long long size;
    if (sscanf(args, "%255s %llu %79s %7s", name, &size, sha, extra) != 3 || !valid_name(name) ||
        !valid_hex64(sha) || size > PUSH_MAX_SIZE)
        return reply(c, "err usage: push NAME SIZE SHA256 (NAME: [A-Za-z0-9._+-], no leading dot)");
    char path[PATH_MAX + 512], tmp[PATH_MAX + 512];
    snprintf(path, sizeof path, "%s/%s", wd, name);
    snprintf(tmp, sizeof tmp, "%s/.%s.melt-tmp", wd, name);
    struct stat st;
    if (stat(path, &st) == 0 && (unsigned long long)st.st_size == size) {
        char have[65];
        melt_error e = {0};
        if (melt_sha256_file(path, have, &e) == 0 && strcmp(have, sha) == 0)
            return reply(c, "have %s", path);
    }
    struct statvfs v;
    if (statvfs(wd, &v) == 0 && (unsigned long long)v.f_bavail * v.f_frsize < size)
        return reply(c, "err no room: %llu bytes needed, %llu free in %s", size,
                     (unsigned long long)v.f_bavail * v.f_frsize, wd);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
    if (fd < 0) return reply(c, "err %s: %s", tmp, strerror(errno));
    if (reply(c, "send") < 0) {
        close(fd);
        unlink(tmp);
        return -1;
    }
    melt_sha256 h;
    melt_sha256_init(&h);
    static char chunk[1 << 16];
    unsigned long long left = size;
    int werr = 0;
    while (left) {
        const size_t k = left < sizeof chunk ? (size_t)left : sizeof chunk;
        if (read_exact(c, chunk, k) < 0) {
            close(fd);
            unlink(tmp);
            return -1;   /* the host went away mid-file */
        }
        melt_sha256_update(&h, chunk, k);
        if (!werr && write_all(fd, chunk, k) < 0) werr = errno ? errno : EIO;
        left -= k;
    }
    if (close(fd) != 0 && !werr) werr = errno;
    uint8_t dg[32];
    char got[65];
    melt_sha256_final(&h, dg);
    melt_sha256_hex(dg, got);
    if (werr) {
        unlink(tmp);
        return reply(c, "err writing %s: %s", tmp, strerror(werr));
    }
    if (strcmp(got, sha) != 0) {
        unlink(tmp);
        return reply(c, "err sha256 mismatch: got %s", got);
    }
    if (rename(tmp, path) != 0) {
        const int e = errno;
        unlink(tmp);
        return reply(c, "err %s: %s", path, strerror(e));
    }
    return reply(c, "ok %s", path);
}

/* Read the argv of a run request; then the cell, streamed; -1: close. */
static int do_run(conn *c, char *args, agent_main_fn agent_main)
{
    char *end;
    errno = 0;
    long n = strtol(args, &end, 10);
    if (errno || end == args || *end || n < 1 || n > RUN_MAX_ARGS)
        return reply(c, "err usage: run N (1..%d), then N times LEN and LEN bytes", RUN_MAX_ARGS) < 0
                   ? -1 : 0;
    char **argv = calloc((size_t)n + 1, sizeof *argv);
    if (!argv) return -1;
    int rc = 0;
    char line[LINE_MAX_BYTES + 1];
    for (long i = 0; i < n && rc == 0; i++) {
        size_t l;
        if (read_line(c, line, &l) != 1) { rc = -1; break; }
        long len = strtol(line, &end, 10);
        if (end == line || *end || len < 0 || len > RUN_MAX_ARG) {
            reply(c, "err bad argument length '%.40s' (0..%d)", line, RUN_MAX_ARG);
            rc = -1;   /* the stream is out of step: close */
            break;
        }
        if (!(argv[i] = malloc((size_t)len + 1)) || read_exact(c, argv[i], (size_t)len) < 0) {
            rc = -1;
            break;
        }
        argv[i][len] = '\0';
        if (memchr(argv[i], '\0', (size_t)len)) {
            reply(c, "err argument %ld holds a NUL byte", i);
            rc = -1;
        }
    }
#ifdef AGENT_LISTEN_NO_FORK   /* the fuzz target: parse only */
    (void)agent_main;
    if (rc == 0) rc = reply(c, "#exit 0") < 0 ? -1 : 0;
#else
    if (rc == 0) {
        pid_t pid = fork();
        if (pid < 0) {
            rc = reply(c, "err fork: %s", strerror(errno)) < 0 ? -1 : 0;
        } else if (pid == 0) {
            if (g_listen_fd >= 0) close(g_listen_fd);   /* the port stays the listener's */
            int nul = open("/dev/null", O_RDONLY);
            if (nul >= 0) dup2(nul, STDIN_FILENO);
            dup2(c->fd, STDOUT_FILENO);
            signal(SIGPIPE, SIG_DFL);
            static char a0[] = "melt-agent";
            argv[0] = a0;
            optind = 1;
            _exit(agent_main((int)n, argv));
        } else {
            /* relay interrupts until the cell ends or the host goes away */
            int status = 0, gone = 0;
            for (;;) {
                pid_t w = waitpid(pid, &status, WNOHANG);
                if (w == pid) break;
                struct pollfd pf = {.fd = c->fd, .events = POLLIN};
                if (gone) pf.fd = -1;
                int pr = poll(&pf, 1, 50);
                if (pr > 0 && (pf.revents & (POLLIN | POLLHUP | POLLERR))) {
                    size_t l;
                    int r = c->n < LINE_MAX_BYTES ? read_line(c, line, &l) : -2;
                    if (r == 1 && strcmp(line, "interrupt") == 0) kill(pid, SIGINT);
                    else if (r <= 0) {
                        /* the host went away: stop the cell, its output has nowhere to go */
                        kill(pid, SIGTERM);
                        gone = 1;
                    }
                }
            }
            if (gone) {
                rc = -1;
            } else {
                const int code = WIFEXITED(status) ? WEXITSTATUS(status)
                                 : WIFSIGNALED(status) ? 128 + WTERMSIG(status) : 1;
                rc = reply(c, "#exit %d", code) < 0 ? -1 : 0;
            }
        }
    }
#endif
    for (long i = 0; i < n; i++) free(argv[i]);
    free(argv);
    return rc;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void serve(int fd, const char *wd, agent_main_fn agent_main)
{
    conn c = {.fd = fd};
    char line[LINE_MAX_BYTES + 1];
    for (;;) {
        size_t l;
        const int r = read_line(&c, line, &l);
        if (r == -2) {
            reply(&c, "err request line longer than %d bytes", LINE_MAX_BYTES);
            return;
        }
        if (r <= 0) return;
        if (l && line[l - 1] == '\r') line[--l] = '\0';
        char *sp = strchr(line, ' ');
        char *args = sp ? sp + 1 : line + l;
        if (sp) *sp = '\0';
        int rc;
        if (strcmp(line, "push") == 0) {
            rc = do_push(&c, wd, args);
        } else if (strcmp(line, "run") == 0) {
            rc = do_run(&c, args, agent_main);
        } else if (strcmp(line, "df") == 0) {
            struct statvfs v;
            rc = statvfs(wd, &v) == 0
                     ? reply(&c, "ok %llu", (unsigned long long)v.f_bavail * v.f_frsize)
                     : reply(&c, "err %s: %s", wd, strerror(errno));
        } else if (strcmp(line, "echo") == 0) {
            rc = reply(&c, "echo %.200s %" PRId64, args, now_ns());
        } else if (strcmp(line, "interrupt") == 0) {
            rc = 0;   /* no cell running: nothing to do */
        } else {
            rc = reply(&c, "err unknown request (push, run, df, echo)");
        }
        if (rc < 0) return;
    }
}

int agent_listen(int argc, char **argv, agent_main_fn agent_main)
{
    static const struct option opts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"bind", required_argument, NULL, 'B'},
        {"dir", required_argument, NULL, 'd'},
        {NULL, 0, NULL, 0},
    };
    const char *bind_addr = "127.0.0.1", *dir = NULL;
    long port = -1;
    int o;
    opterr = 0;
    while ((o = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        char *end;
        switch (o) {
        case 'l':
            errno = 0;
            port = strtol(optarg, &end, 10);
            if (errno || end == optarg || *end || port < 0 || port > 65535) port = -2;
            break;
        case 'B': bind_addr = optarg; break;
        case 'd': dir = optarg; break;
        default:
            fprintf(stderr, "melt-agent: --listen PORT takes only --bind ADDR and --dir DIR "
                            "(at '%s')\n", argv[optind - 1]);
            return 2;
        }
    }
    if (port < 0 || optind < argc) {
        fprintf(stderr, "melt-agent: usage: melt-agent --listen PORT [--bind ADDR] [--dir DIR]\n");
        return 2;
    }
    if (dir && chdir(dir) != 0) {
        fprintf(stderr, "melt-agent: %s: %s\n", dir, strerror(errno));
        return 1;
    }
    char wd[PATH_MAX];
    if (!getcwd(wd, sizeof wd)) {
        fprintf(stderr, "melt-agent: cannot read the work folder: %s\n", strerror(errno));
        return 1;
    }
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, bind_addr, &sa.sin_addr) != 1) {
        fprintf(stderr, "melt-agent: --bind needs an IPv4 address, got '%s'\n", bind_addr);
        return 2;
    }
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (ls < 0 || setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(ls, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(ls, 4) != 0) {
        fprintf(stderr, "melt-agent: cannot listen on %s:%ld: %s\n", bind_addr, port,
                strerror(errno));
        if (ls >= 0) close(ls);
        return 1;
    }
    g_listen_fd = ls;
    signal(SIGPIPE, SIG_IGN);
    fprintf(stderr, "melt-agent: listening on %s:%ld, work folder %s\n", bind_addr, port, wd);
    for (;;) {
        int fd = accept(ls, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            fprintf(stderr, "melt-agent: accept: %s\n", strerror(errno));
            sleep(1);
            continue;
        }
        int fl = fcntl(fd, F_GETFD);
        if (fl >= 0) fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
        struct timeval tv = {.tv_sec = 300, .tv_usec = 0};   /* an idle host is dropped */
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        serve(fd, wd, agent_main);
        close(fd);
    }
}

/* melt — the tcp transport: a device running `melt-agent --listen PORT`
 * (agent/listen.c; protocol in docs/agent-protocol.md, "TCP listener"),
 * reached at the experiment device's host:port -- an iOS device through
 * iproxy, a board on a trusted network, or this machine on loopback.
 *
 * Each call (push, df, run) opens a connection of its own (connect timeout
 * TCP_CONNECT_TIMEOUT_MS, replies within TCP_CALL_TIMEOUT_MS); the agent
 * serves one connection at a time. Nothing goes through a shell: the argv
 * travels length-prefixed and the agent runs it without one.
 *
 * Push: the agent compares the sha256 the host sends with the file it has
 * and answers "have" (nothing sent) or "send"; it checks the sha256 of
 * what arrives before renaming it into place.
 *
 * Spawn: the host forks a small relay (leading its own process group, so
 * melt_proc works unchanged): it copies the agent's stream from the socket
 * to the proc's stdout pipe, strips the final "#exit CODE" line and exits
 * with CODE; SIGINT to the relay is forwarded as an "interrupt" line (the
 * agent finishes its token and writes bye). When the connection ends
 * without "#exit" (agent killed, link dropped) the relay ends by SIGHUP, so
 * the runner sees a hang-up, not an exit code, and marks the trial lost.
 * When melt itself goes away (its end of the pipe closes) the relay exits,
 * and the agent stops the cell when its connection closes.
 * stderr is an empty pipe (the agent's stderr stays on the device).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "melt/sha256.h"
#include "melt/transport.h"

#define TCP_CONNECT_TIMEOUT_MS 10000
#define TCP_CALL_TIMEOUT_MS 60000
#define TCP_LINE_MAX 1100

typedef struct tcp_state {
    char *name;
    char *host;
    char port[16];
} tcp_state;

static int oom(melt_error *err)
{
    return melt_errorf(err, MELT_ENOMEM, "tcp transport: out of memory");
}

static int wait_fd(int fd, short ev, int timeout_ms)
{
    struct pollfd pf = {.fd = fd, .events = ev};
    int r;
    do r = poll(&pf, 1, timeout_ms);
    while (r < 0 && errno == EINTR);
    return r;
}

/* A connected socket (blocking, close-on-exec), or a negative error. */
static int tcp_connect(const tcp_state *s, melt_error *err)
{
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int g = getaddrinfo(s->host, s->port, &hints, &ai);
    if (g != 0)
        return melt_errorf(err, MELT_EIO, "device '%s' (tcp %s:%s): %s", s->name, s->host,
                           s->port, gai_strerror(g));
    int e = ECONNREFUSED;
    for (struct addrinfo *a = ai; a; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                        a->ai_protocol);
        if (fd < 0) {
            e = errno;
            continue;
        }
        int r = connect(fd, a->ai_addr, a->ai_addrlen);
        if (r != 0 && errno == EINPROGRESS) {
            socklen_t l = sizeof e;
            if (wait_fd(fd, POLLOUT, TCP_CONNECT_TIMEOUT_MS) <= 0) {
                e = ETIMEDOUT;
            } else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &l) == 0 && e == 0) {
                r = 0;
            }
        } else if (r != 0) {
            e = errno;
        }
        if (r == 0) {
            fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
            freeaddrinfo(ai);
            return fd;
        }
        close(fd);
    }
    freeaddrinfo(ai);
    return melt_errorf(err, MELT_EIO, "device '%s' (tcp %s:%s): cannot connect: %s "
                       "(is `melt-agent --listen %s` running there?)", s->name, s->host, s->port,
                       strerror(e), s->port);
}

static int send_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

/* One reply line (no '\n') within the call timeout; read byte by byte so
 * nothing after it is consumed. */
static int recv_line_t(const tcp_state *s, int fd, char *line, size_t cap, int timeout_ms,
                       melt_error *err)
{
    size_t n = 0;
    for (;;) {
        if (wait_fd(fd, POLLIN, timeout_ms) <= 0)
            return melt_errorf(err, MELT_EIO, "device '%s' (tcp %s:%s): no reply in %d s",
                               s->name, s->host, s->port, timeout_ms / 1000);
        char ch;
        ssize_t r = recv(fd, &ch, 1, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0)
            return melt_errorf(err, MELT_EIO, "device '%s' (tcp %s:%s): connection closed",
                               s->name, s->host, s->port);
        if (ch == '\n') {
            line[n] = '\0';
            return 0;
        }
        if (n + 1 < cap) line[n++] = ch;
    }
}

static int recv_line(const tcp_state *s, int fd, char *line, size_t cap, melt_error *err)
{
    return recv_line_t(s, fd, line, cap, TCP_CALL_TIMEOUT_MS, err);
}

static int bad_reply(const tcp_state *s, const char *what, const char *line, melt_error *err)
{
    return melt_errorf(err, MELT_EIO, "device '%s' (tcp %s:%s): %s: %s", s->name, s->host,
                       s->port, what, strncmp(line, "err ", 4) == 0 ? line + 4 : line);
}

static void tcp_close(void *state)
{
    tcp_state *s = state;
    if (!s)
        return;
    free(s->name);
    free(s->host);
    free(s);
}

static int tcp_open(const melt_exp_device *dev, void **state, melt_error *err)
{
    if (!dev || !dev->host || !*dev->host || dev->port <= 0 || dev->port > 65535)
        return melt_errorf(err, MELT_EINVAL, "tcp transport: the device needs host and port");
    tcp_state *s = calloc(1, sizeof *s);
    if (!s)
        return oom(err);
    if (!(s->name = strdup(dev->name ? dev->name : dev->host)) || !(s->host = strdup(dev->host))) {
        tcp_close(s);
        return oom(err);
    }
    snprintf(s->port, sizeof s->port, "%d", dev->port);
    /* check now that an agent answers */
    int fd = tcp_connect(s, err);
    if (fd < 0) {
        tcp_close(s);
        return fd;
    }
    char line[TCP_LINE_MAX];
    int rc = send_all(fd, "echo open\n", 10) < 0
                 ? melt_errorf(err, MELT_EIO, "device '%s' (tcp %s:%s): send failed", s->name,
                               s->host, s->port)
                 : recv_line(s, fd, line, sizeof line, err);
    if (rc == 0 && strncmp(line, "echo open ", 10) != 0)
        rc = bad_reply(s, "not a melt agent", line, err);
    close(fd);
    if (rc < 0) {
        tcp_close(s);
        return rc;
    }
    *state = s;
    return 0;
}

static int tcp_free_space(void *state, const char *dir, uint64_t *bytes, melt_error *err)
{
    tcp_state *s = state;
    (void)dir;   /* the agent answers for its work folder */
    int fd = tcp_connect(s, err);
    if (fd < 0)
        return fd;
    char line[TCP_LINE_MAX];
    int rc = send_all(fd, "df\n", 3) < 0 ? melt_errorf(err, MELT_EIO, "tcp: send failed")
                                         : recv_line(s, fd, line, sizeof line, err);
    unsigned long long v;
    if (rc == 0 && sscanf(line, "ok %llu", &v) != 1)
        rc = bad_reply(s, "df", line, err);
    if (rc == 0)
        *bytes = v;
    close(fd);
    return rc;
}

static int tcp_push(void *state, const char *local_path, const char *remote_name,
                    char **remote_path, melt_error *err)
{
    tcp_state *s = state;
    char sha[65], line[TCP_LINE_MAX];
    struct stat st;
    if (stat(local_path, &st) != 0)
        return melt_errorf(err, MELT_EIO, "%s: %s", local_path, strerror(errno));
    int rc = melt_sha256_file(local_path, sha, err);
    if (rc < 0)
        return rc;
    FILE *f = NULL;
    int fd = tcp_connect(s, err);
    if (fd < 0)
        return fd;
    char req[512];
    int n = snprintf(req, sizeof req, "push %s %lld %s\n", remote_name, (long long)st.st_size, sha);
    if (n < 0 || (size_t)n >= sizeof req) {
        rc = melt_errorf(err, MELT_EINVAL, "tcp transport: file name too long: %s", remote_name);
        goto done;
    }
    /* the agent hashes its copy before answering, and after receiving: >= 4 MB/s */
    const long long t = TCP_CALL_TIMEOUT_MS + (long long)st.st_size / 4096;
    const int hash_ms = t > INT_MAX ? INT_MAX : (int)t;
    if (send_all(fd, req, (size_t)n) < 0 ||
        (rc = recv_line_t(s, fd, line, sizeof line, hash_ms, err)) < 0) {
        if (rc == 0)
            rc = melt_errorf(err, MELT_EIO, "device '%s' (tcp): send failed", s->name);
        goto done;
    }
    if (strncmp(line, "have ", 5) == 0)
        goto have_it;
    if (strcmp(line, "send") != 0) {
        rc = bad_reply(s, "push", line, err);
        goto done;
    }
    if (!(f = fopen(local_path, "rb"))) {
        rc = melt_errorf(err, MELT_EIO, "%s: %s", local_path, strerror(errno));
        goto done;
    }
    static char chunk[1 << 16];
    long long left = (long long)st.st_size;
    while (left > 0) {
        size_t k = fread(chunk, 1, left < (long long)sizeof chunk ? (size_t)left : sizeof chunk, f);
        if (k == 0) {
            rc = melt_errorf(err, MELT_EIO, "%s: short read (file changed?)", local_path);
            goto done;
        }
        if (send_all(fd, chunk, k) < 0) {
            rc = melt_errorf(err, MELT_EIO, "device '%s' (tcp %s:%s): connection lost while "
                             "sending %s", s->name, s->host, s->port, local_path);
            goto done;
        }
        left -= (long long)k;
    }
    if ((rc = recv_line_t(s, fd, line, sizeof line, hash_ms, err)) < 0)
        goto done;
    if (strncmp(line, "ok ", 3) != 0) {
        rc = bad_reply(s, "push", line, err);
        goto done;
    }
have_it:
    if (!(*remote_path = strdup(strchr(line, ' ') + 1)))
        rc = oom(err);
done:
    if (f)
        fclose(f);
    close(fd);
    return rc;
}

/* ---- the relay (a forked child: only system calls from here on) ---- */

static volatile sig_atomic_t g_relay_int;

static void relay_on_int(int sig)
{
    (void)sig;
    g_relay_int = 1;
}

static void relay_write(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) _exit(1);   /* melt is gone: closing the socket stops the cell */
        p += w;
        n -= (size_t)w;
    }
}

static void relay_hangup(void)
{
    signal(SIGHUP, SIG_DFL);
    raise(SIGHUP);
    _exit(129);
}

static void relay(int sock, int out)
{
    char buf[1 << 15], tag[64];
    size_t tn = 0;
    int at_start = 1, in_tag = 0;
    /* SIGINT blocked except inside ppoll: none is missed between the
     * check of the flag and the wait */
    sigset_t block, waitmask;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigprocmask(SIG_BLOCK, &block, &waitmask);
    sigdelset(&waitmask, SIGINT);
    for (;;) {
        if (g_relay_int) {
            g_relay_int = 0;
            send_all(sock, "interrupt\n", 10);
        }
        struct pollfd pf[2] = {{.fd = sock, .events = POLLIN}, {.fd = out, .events = 0}};
        if (ppoll(pf, 2, NULL, &waitmask) < 0)
            continue;   /* EINTR: a SIGINT to forward */
        if (pf[1].revents & (POLLERR | POLLHUP))
            _exit(1);   /* melt is gone: closing the socket stops the cell */
        ssize_t r = read(sock, buf, sizeof buf);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) relay_hangup();
        size_t from = 0;
        for (size_t i = 0; i < (size_t)r; i++) {
            const char ch = buf[i];
            if (in_tag) {
                if (ch == '\n') {
                    tag[tn] = '\0';
                    if (strncmp(tag, "#exit ", 6) == 0) {
                        int code = 0;   /* (no strtol: async-signal-safe) */
                        for (const char *d = tag + 6; *d >= '0' && *d <= '9' && code < 1000; d++)
                            code = code * 10 + (*d - '0');
                        close(out);
                        _exit(code & 255);
                    }
                    in_tag = 0;   /* another '#' line: dropped */
                    from = i + 1;
                    at_start = 1;
                } else if (tn + 1 < sizeof tag) {
                    tag[tn++] = ch;
                }
                continue;
            }
            if (at_start && ch == '#') {
                relay_write(out, buf + from, i - from);
                in_tag = 1;
                tn = 0;
                tag[tn++] = ch;
                continue;
            }
            at_start = ch == '\n';
        }
        if (!in_tag && from < (size_t)r)
            relay_write(out, buf + from, (size_t)r - from);
    }
}

static int tcp_spawn(void *state, char *const argv[], melt_proc *p, melt_error *err)
{
    tcp_state *s = state;
    memset(p, 0, sizeof *p);
    p->pid = -1;
    p->out_fd = p->err_fd = -1;
    int fd = tcp_connect(s, err);
    if (fd < 0)
        return fd;
    /* the request: run N, then each argument as LEN\n + bytes */
    size_t n = 0, total = 32;
    while (argv[n])
        total += strlen(argv[n++]) + 24;
    char *req = malloc(total);
    if (!req) {
        close(fd);
        return oom(err);
    }
    size_t off = (size_t)snprintf(req, total, "run %zu\n", n);
    for (size_t i = 0; i < n; i++) {
        const size_t l = strlen(argv[i]);
        off += (size_t)snprintf(req + off, total - off, "%zu\n", l);
        memcpy(req + off, argv[i], l);
        off += l;
    }
    const int sent = send_all(fd, req, off);
    free(req);
    int out[2] = {-1, -1}, errp[2] = {-1, -1};
    if (sent < 0 || pipe2(out, O_CLOEXEC) != 0 || pipe2(errp, O_CLOEXEC) != 0) {
        const int e = errno;
        close(fd);
        for (int i = 0; i < 2; i++) {
            if (out[i] >= 0) close(out[i]);
            if (errp[i] >= 0) close(errp[i]);
        }
        return melt_errorf(err, MELT_EIO, "device '%s' (tcp %s:%s): starting the run: %s",
                           s->name, s->host, s->port, sent < 0 ? "send failed" : strerror(e));
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        const int e = errno;
        close(fd);
        close(out[0]), close(out[1]), close(errp[0]), close(errp[1]);
        return melt_errorf(err, MELT_EIO, "tcp transport: fork: %s", strerror(e));
    }
    if (pid == 0) {
        setpgid(0, 0);
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = relay_on_int;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);   /* no SA_RESTART: read returns EINTR */
        signal(SIGTERM, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        signal(SIGPIPE, SIG_IGN);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        close(out[0]);
        close(errp[0]);
        close(errp[1]);   /* stderr: empty, the agent's stays on the device */
        relay(fd, out[1]);
        _exit(127);
    }
    setpgid(pid, pid);
    close(fd);
    close(out[1]);
    close(errp[1]);
    p->pid = pid;
    p->out_fd = out[0];
    p->err_fd = errp[0];
    p->new_group = true;
    fcntl(p->out_fd, F_SETFL, fcntl(p->out_fd, F_GETFL) | O_NONBLOCK);
    fcntl(p->err_fd, F_SETFL, fcntl(p->err_fd, F_GETFL) | O_NONBLOCK);
    return 0;
}

/* Clock sync: a connection of its own to the listening agent, which
 * answers "echo N" itself (agent_path is not needed). */
static int tcp_echo_open(void *state, const char *agent_path, melt_echo_chan *ch,
                         melt_error *err)
{
    (void)agent_path;
    int fd = tcp_connect(state, err);
    if (fd < 0)
        return fd;
    int one = 1;   /* each request is one small segment: no Nagle delay */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ch->wfd = ch->rfd = fd;
    ch->proc.pid = -1;
    return 0;
}

const melt_transport_ops melt_transport_tcp = {
    .version = MELT_TRANSPORT_API_VERSION,
    .name = "tcp",
    .open = tcp_open,
    .spawn = tcp_spawn,
    .push = tcp_push,
    .free_space = tcp_free_space,
    .close = tcp_close,
    .echo_open = tcp_echo_open,
    .resident_agent = true,
};

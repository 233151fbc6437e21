/* Clock sync: the minimum round-trip estimator and its echo channel
 * (include/melt/clock_sync.h). */
#include "melt/clock_sync.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define ECHO_TIMEOUT_MS 15000   /* the first round also waits for the agent to start */
#define ECHO_LINE_MAX 256

int melt_clock_estimate_offset(int rounds, melt_clock_now_fn now, melt_clock_echo_fn echo,
                               void *user, melt_clock_estimate *out, melt_error *err)
{
    if (rounds < 1 || !now || !echo || !out)
        return melt_errorf(err, MELT_EINVAL, "clock sync: bad arguments");
    memset(out, 0, sizeof *out);
    int64_t best_rtt = -1;
    for (int i = 0; i < rounds; i++) {
        int64_t dev = 0;
        const int64_t t_send = now(user);
        int rc = echo(user, &dev, err);
        const int64_t t_recv = now(user);
        if (rc < 0)
            return rc;
        const int64_t rtt = t_recv - t_send;
        if (rtt < 0)
            continue;
        out->rounds++;
        if (best_rtt >= 0 && rtt >= best_rtt)
            continue;
        best_rtt = rtt;
        /* the midpoint without overflow: t_send + rtt/2 */
        const int64_t mid = t_send + rtt / 2;
        out->offset_ns = mid - dev;
        out->rtt_ns = rtt;
        out->uncertainty_ns = (rtt + 1) / 2;
        out->host_ns = mid;
    }
    if (best_rtt < 0)
        return melt_errorf(err, MELT_EIO, "clock sync: no usable round (the host clock went back)");
    return 0;
}

int64_t melt_clock_host_now_ns(void *user)
{
    (void)user;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- the echo channel ---- */

typedef struct echo_ctx {
    melt_echo_chan *ch;
    unsigned seq;
} echo_ctx;

/* write() that neither raises SIGPIPE nor leaves one pending. */
static int write_all_nopipe(int fd, const char *p, size_t n)
{
    sigset_t pipe_set, old;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    int rc = 0;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            rc = -1;
            break;
        }
        p += w;
        n -= (size_t)w;
    }
    if (rc < 0 && errno == EPIPE) {
        const struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe_set, NULL, &zero) == SIGPIPE) {
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

/* One reply line into line (NUL-terminated, no '\n'). */
static int read_reply(int fd, char *line, size_t cap, melt_error *err)
{
    size_t n = 0;
    for (;;) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        int r = poll(&pf, 1, ECHO_TIMEOUT_MS);
        if (r < 0 && errno == EINTR)
            return melt_errorf(err, MELT_EIO, "clock sync: interrupted");
        if (r <= 0)
            return melt_errorf(err, MELT_EIO, "clock sync: no echo within %d ms",
                               ECHO_TIMEOUT_MS);
        ssize_t k = read(fd, line + n, cap - 1 - n);
        if (k < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (k <= 0)
            return melt_errorf(err, MELT_EIO, "clock sync: the echo channel closed%s",
                               n ? " mid-line" : " (does the agent know --echo?)");
        n += (size_t)k;
        line[n] = '\0';
        char *nl = memchr(line, '\n', n);
        if (nl) {
            *nl = '\0';
            if (nl > line && nl[-1] == '\r')
                nl[-1] = '\0';
            return 0;
        }
        if (n + 1 >= cap)
            return melt_errorf(err, MELT_EFORMAT, "clock sync: echo reply too long");
    }
}

static int echo_chan(void *user, int64_t *device_ns, melt_error *err)
{
    echo_ctx *c = user;
    char req[32], line[ECHO_LINE_MAX];
    const unsigned seq = c->seq++;
    int n = snprintf(req, sizeof req, "echo %u\n", seq);
    if (write_all_nopipe(c->ch->wfd, req, (size_t)n) < 0)
        return melt_errorf(err, MELT_EIO, "clock sync: sending an echo: %s", strerror(errno));
    int rc = read_reply(c->ch->rfd, line, sizeof line, err);
    if (rc < 0)
        return rc;
    unsigned got = 0;
    int64_t ns = 0;
    int used = 0;
    if (sscanf(line, "echo %u %" SCNd64 "%n", &got, &ns, &used) != 2 || line[used] != '\0' ||
        got != seq || ns < 0)
        return melt_errorf(err, MELT_EFORMAT, "clock sync: unexpected echo reply '%.80s'", line);
    *device_ns = ns;
    return 0;
}

void melt_echo_chan_close(melt_echo_chan *ch)
{
    if (ch->wfd >= 0 && ch->wfd != ch->rfd)
        close(ch->wfd);
    if (ch->rfd >= 0)
        close(ch->rfd);
    ch->wfd = ch->rfd = -1;
    if (ch->proc.pid > 0) {
        /* EOF ends the agent's echo loop; the client follows */
        if (melt_proc_wait(&ch->proc, 3000) == 0)
            melt_proc_signal(&ch->proc, SIGTERM);
        melt_proc_close(&ch->proc);
    }
}

int melt_clock_sync_transport(const melt_transport_ops *tops, void *state,
                              const char *agent_path, int rounds, melt_clock_estimate *out,
                              melt_error *err)
{
    if (!tops->echo_open)
        return melt_errorf(err, MELT_EUNSUPPORTED, "clock sync: transport '%s' has no echo",
                           tops->name);
    melt_echo_chan ch;
    memset(&ch, 0, sizeof ch);
    ch.wfd = ch.rfd = -1;
    ch.proc.pid = -1;
    ch.proc.out_fd = ch.proc.err_fd = -1;
    int rc = tops->echo_open(state, agent_path, &ch, err);
    if (rc < 0)
        return rc;
    echo_ctx c = {&ch, 0};
    rc = melt_clock_estimate_offset(rounds, melt_clock_host_now_ns, echo_chan, &c, out,
                                    err);
    melt_echo_chan_close(&ch);
    return rc;
}

int64_t melt_clock_to_host_ns(const melt_trial_info *t, int64_t device_ns)
{
    return t && t->has_clock ? device_ns + t->clock_offset_ns : device_ns;
}

void melt_clock_interpolate(const melt_clock_estimate *a, const melt_clock_estimate *b,
                            int64_t host_ns, int64_t *offset_ns, int64_t *uncertainty_ns)
{
    *offset_ns = a->offset_ns;
    *uncertainty_ns = a->uncertainty_ns;
    if (!b || b->host_ns == a->host_ns)
        return;
    /* clamp to [a, b]: outside it the drift is not known to be linear */
    double f = (double)(host_ns - a->host_ns) / (double)(b->host_ns - a->host_ns);
    f = f < 0 ? 0 : f > 1 ? 1 : f;
    *offset_ns = a->offset_ns + (int64_t)((double)(b->offset_ns - a->offset_ns) * f);
    if (b->uncertainty_ns > *uncertainty_ns)
        *uncertainty_ns = b->uncertainty_ns;
}

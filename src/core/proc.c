/* Child processes with piped output (see include/melt/proc.h). */
#include "melt/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

/* The child: wire the pipes, apply options, exec; on failure report errno
 * through the close-on-exec status pipe and exit. */
static void child_exec(char *const argv[], const melt_proc_opts *o, int out[2], int errp[2],
                       int in[2], int status_w)
{
    if (o->new_process_group)
        setpgid(0, 0);
    if (in[0] >= 0) {
        dup2(in[0], STDIN_FILENO);
        close(in[0]);
        close(in[1]);
    }
    dup2(out[1], STDOUT_FILENO);
    dup2(errp[1], STDERR_FILENO);
    close(out[0]);
    close(out[1]);
    close(errp[0]);
    close(errp[1]);
    if (o->stdin_null && in[0] < 0) {
        int dn = open("/dev/null", O_RDONLY);
        if (dn >= 0) {
            dup2(dn, STDIN_FILENO);
            close(dn);
        }
    }
    signal(SIGPIPE, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    if (o->cwd && chdir(o->cwd) < 0)
        goto fail;
    if (o->env_add)
        for (char *const *e = o->env_add; *e; e++)
            putenv(*e);
    execvp(argv[0], argv);
fail:;
    int e = errno;
    ssize_t w = write(status_w, &e, sizeof e);
    (void)w;
    _exit(127);
}

int melt_proc_spawn(char *const argv[], const melt_proc_opts *opts, melt_proc *p, melt_error *err)
{
    melt_proc_opts none = {0};
    const melt_proc_opts *o = opts ? opts : &none;
    memset(p, 0, sizeof *p);
    p->pid = -1;
    p->out_fd = p->err_fd = -1;
    if (!argv || !argv[0])
        return melt_errorf(err, MELT_EINVAL, "spawn: empty command");
    int out[2] = {-1, -1}, errp[2] = {-1, -1}, st[2] = {-1, -1}, in[2] = {-1, -1};
    if (o->stdin_pipe)
        *o->stdin_pipe = -1;
    if (pipe2(out, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0 || pipe2(st, O_CLOEXEC) < 0 ||
        (o->stdin_pipe && pipe2(in, O_CLOEXEC) < 0)) {
        int e = errno;
        close_fd(&out[0]), close_fd(&out[1]), close_fd(&errp[0]), close_fd(&errp[1]);
        close_fd(&st[0]), close_fd(&st[1]), close_fd(&in[0]), close_fd(&in[1]);
        return melt_errorf(err, MELT_EIO, "%s: cannot create pipes: %s", argv[0], strerror(e));
    }
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close_fd(&out[0]), close_fd(&out[1]), close_fd(&errp[0]), close_fd(&errp[1]);
        close_fd(&st[0]), close_fd(&st[1]), close_fd(&in[0]), close_fd(&in[1]);
        return melt_errorf(err, MELT_EIO, "%s: cannot fork: %s", argv[0], strerror(e));
    }
    if (pid == 0) {
        close(st[0]);
        child_exec(argv, o, out, errp, in, st[1]);
    }
    if (o->new_process_group)
        setpgid(pid, pid); /* also here: no race with an early signal */
    close_fd(&out[1]);
    close_fd(&errp[1]);
    close_fd(&st[1]);
    close_fd(&in[0]);
    int child_errno = 0;
    ssize_t n;
    do
        n = read(st[0], &child_errno, sizeof child_errno);
    while (n < 0 && errno == EINTR);
    close_fd(&st[0]);
    p->pid = pid;
    p->out_fd = out[0];
    p->err_fd = errp[0];
    p->new_group = o->new_process_group;
    if (n == (ssize_t)sizeof child_errno) { /* exec failed */
        close_fd(&in[1]);
        melt_proc_close(p);
        return melt_errorf(err, MELT_EIO, "cannot run %s: %s", argv[0], strerror(child_errno));
    }
    fcntl(p->out_fd, F_SETFL, fcntl(p->out_fd, F_GETFL) | O_NONBLOCK);
    fcntl(p->err_fd, F_SETFL, fcntl(p->err_fd, F_GETFL) | O_NONBLOCK);
    if (o->stdin_pipe)
        *o->stdin_pipe = in[1];
    return 0;
}

/* Drain one readable pipe; 1 = data handled, 0 = closed, <0 = stop value. */
static int drain(int *fd, int index, melt_proc_output_fn cb, void *user, int *stop)
{
    char buf[65536];
    for (;;) {
        ssize_t n = read(*fd, buf, sizeof buf);
        if (n > 0) {
            if (cb) {
                int rc = cb(index, buf, (size_t)n, user);
                if (rc) {
                    *stop = rc;
                    return 1;
                }
            }
            continue;
        }
        if (n == 0) {
            close_fd(fd);
            return 0;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 1;
        close_fd(fd);
        return 0;
    }
}

int melt_proc_pump(melt_proc *p, int timeout_ms, melt_proc_output_fn on_output, void *user,
                   melt_error *err)
{
    const int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
    while (p->out_fd >= 0 || p->err_fd >= 0) {
        struct pollfd pf[2];
        int n = 0, idx[2];
        if (p->out_fd >= 0) {
            pf[n] = (struct pollfd){.fd = p->out_fd, .events = POLLIN};
            idx[n++] = 1;
        }
        if (p->err_fd >= 0) {
            pf[n] = (struct pollfd){.fd = p->err_fd, .events = POLLIN};
            idx[n++] = 2;
        }
        int wait_ms = -1;
        if (deadline >= 0) {
            int64_t left = deadline - now_ms();
            if (left <= 0)
                return 0;
            wait_ms = left > 1000000 ? 1000000 : (int)left;
        }
        int r = poll(pf, (nfds_t)n, wait_ms);
        if (r < 0) {
            if (errno == EINTR)
                return 0; /* let the caller look at its signal flags */
            return melt_errorf(err, MELT_EIO, "poll: %s", strerror(errno));
        }
        if (r == 0)
            return 0;
        for (int i = 0; i < n; i++) {
            if (!(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            int stop = 0;
            drain(idx[i] == 1 ? &p->out_fd : &p->err_fd, idx[i], on_output, user, &stop);
            if (stop)
                return stop;
        }
    }
    return 1;
}

int melt_proc_wait(melt_proc *p, int timeout_ms)
{
    if (p->exited)
        return 1;
    if (p->pid <= 0)
        return 1;
    const int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
    for (;;) {
        int st;
        pid_t r = waitpid(p->pid, &st, timeout_ms < 0 ? 0 : WNOHANG);
        if (r == p->pid) {
            p->status = st;
            p->exited = true;
            return 1;
        }
        if (r < 0 && errno != EINTR) {
            p->exited = true; /* not our child any more: nothing to wait for */
            p->status = 0;
            return 1;
        }
        if (deadline >= 0 && now_ms() >= deadline)
            return 0;
        if (timeout_ms >= 0) {
            struct timespec ts = {0, 2 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
}

void melt_proc_signal(melt_proc *p, int sig)
{
    if (p->pid <= 0 || p->exited)
        return;
    if (p->new_group)
        kill(-p->pid, sig);
    else
        kill(p->pid, sig);
}

int melt_proc_exit_code(const melt_proc *p)
{
    if (!p->exited)
        return -1;
    if (WIFEXITED(p->status))
        return WEXITSTATUS(p->status);
    if (WIFSIGNALED(p->status))
        return 128 + WTERMSIG(p->status);
    return -1;
}

void melt_proc_close(melt_proc *p)
{
    close_fd(&p->out_fd);
    close_fd(&p->err_fd);
    if (p->pid > 0 && !p->exited) {
        melt_proc_signal(p, SIGKILL);
        melt_proc_wait(p, -1);
    }
}

/* Growable buffer for melt_proc_run. */
typedef struct sink {
    char *buf[3];
    size_t len[3], cap[3];
    bool keep[3];
    bool oom;
} sink;

static int collect(int index, const char *data, size_t n, void *user)
{
    sink *s = user;
    if (!s->keep[index] || s->oom)
        return 0;
    if (s->len[index] + n + 1 > s->cap[index]) {
        size_t cap = s->cap[index] ? s->cap[index] : 4096;
        while (cap < s->len[index] + n + 1)
            cap *= 2;
        char *b = realloc(s->buf[index], cap);
        if (!b) {
            s->oom = true;
            return 0;
        }
        s->buf[index] = b;
        s->cap[index] = cap;
    }
    memcpy(s->buf[index] + s->len[index], data, n);
    s->len[index] += n;
    s->buf[index][s->len[index]] = '\0';
    return 0;
}

static char *take(sink *s, int index)
{
    char *b = s->buf[index];
    if (!b)
        b = calloc(1, 1);
    s->buf[index] = NULL;
    return b;
}

int melt_proc_run(char *const argv[], const melt_proc_opts *opts, int timeout_ms, char **out,
                  char **errout, melt_error *err)
{
    melt_proc p;
    int rc = melt_proc_spawn(argv, opts, &p, err);
    if (rc < 0)
        return rc;
    sink s = {.keep = {false, out != NULL, errout != NULL}};
    const int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
    int done = 0;
    while (!done) {
        int left = -1;
        if (deadline >= 0) {
            int64_t l = deadline - now_ms();
            if (l <= 0)
                break;
            left = (int)(l > 1000000 ? 1000000 : l);
        }
        done = melt_proc_pump(&p, left, collect, &s, err);
        if (done < 0)
            break;
    }
    int wait_ms = -1;
    if (deadline >= 0) {
        int64_t l = deadline - now_ms();
        wait_ms = l > 0 ? (int)l : 0;
    }
    if (done == 1 && melt_proc_wait(&p, wait_ms) == 1) {
        rc = melt_proc_exit_code(&p);
    } else if (done >= 0) {
        rc = melt_errorf(err, MELT_EIO, "%s: timed out after %d ms", argv[0], timeout_ms);
    } else {
        rc = done;
    }
    melt_proc_close(&p);
    if (s.oom && rc >= 0)
        rc = melt_errorf(err, MELT_ENOMEM, "%s: out of memory collecting output", argv[0]);
    if (rc >= 0) {
        if (out)
            *out = take(&s, 1);
        if (errout)
            *errout = take(&s, 2);
    }
    free(s.buf[1]);
    free(s.buf[2]);
    return rc;
}

/* Starting and stopping a local inference server (src/backends/http.h):
 * llama-server, mlc_llm serve, or a test's replay server.
 *
 * The server gets its own process group (so stopping it also stops what
 * it spawned, and a terminal's Ctrl-C reaches only melt), stdin from
 * /dev/null, and its stdout and stderr in a log file — a pipe nobody
 * drains would block a chatty server. A failed start quotes the log's
 * last lines, which is where servers say why.
 */
#include "backends/http.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct melt_server {
    pid_t pid;
    bool exited;
    int status;          /* wait status once exited */
    bool tmp_log;        /* log_path is ours to remove */
    int64_t start_ns;    /* spawn -> healthy */
    char log_path[4096];
};

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

static int open_log(melt_server *s, const char *log_path, melt_error *err)
{
    int fd;
    if (log_path) {
        snprintf(s->log_path, sizeof s->log_path, "%s", log_path);
        fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    } else {
        /* Android has no /tmp; its shell's TMPDIR is /data/local/tmp. */
        const char *env = getenv("TMPDIR");
        const char *const dirs[] = {env && *env ? env : "/tmp", "/tmp", "/data/local/tmp", "."};
        fd = -1;
        for (size_t i = 0; i < sizeof dirs / sizeof *dirs && fd < 0; i++) {
            snprintf(s->log_path, sizeof s->log_path, "%s/melt-server-XXXXXX", dirs[i]);
            fd = mkstemp(s->log_path);
        }
        if (fd >= 0) {
            s->tmp_log = true;
            fcntl(fd, F_SETFD, FD_CLOEXEC);
        }
    }
    if (fd < 0) return melt_errorf(err, MELT_EIO, "%s: cannot open server log: %s", s->log_path, strerror(errno));
    return fd;
}

void melt_server_log_tail(const melt_server *s, char *buf, size_t cap)
{
    if (cap == 0) return;
    buf[0] = '\0';
    if (!s) return;
    const int fd = open(s->log_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    char tail[2048];
    struct stat st;
    off_t from = 0;
    if (fstat(fd, &st) == 0 && st.st_size > (off_t)sizeof tail - 1) from = st.st_size - (off_t)sizeof tail + 1;
    const ssize_t n = pread(fd, tail, sizeof tail - 1, from);
    close(fd);
    if (n <= 0) return;
    size_t len = (size_t)n;
    while (len > 0 && (tail[len - 1] == '\n' || tail[len - 1] == '\r' || tail[len - 1] == ' ')) len--;
    /* The last 4 lines, joined with " | ". */
    size_t start = len;
    int lines = 0;
    while (start > 0 && lines < 4) {
        start--;
        if (tail[start] == '\n') lines++;
    }
    if (tail[start] == '\n') start++;
    size_t k = 0;
    for (size_t i = start; i < len && k + 4 < cap; i++) {
        if (tail[i] == '\n') {
            memcpy(buf + k, " | ", 3);
            k += 3;
        } else if ((unsigned char)tail[i] >= 0x20 || tail[i] == '\t') {
            buf[k++] = tail[i];
        }
    }
    buf[k] = '\0';
}

static void reap(melt_server *s, bool block)
{
    if (s->exited) return;
    int st;
    const pid_t r = waitpid(s->pid, &st, block ? 0 : WNOHANG);
    if (r == s->pid || (r < 0 && errno == ECHILD)) {
        s->exited = true;
        s->status = r == s->pid ? st : 0;
    }
}

bool melt_server_alive(melt_server *s)
{
    if (!s) return false;
    reap(s, false);
    return !s->exited;
}

int melt_server_pid(const melt_server *s)
{
    return s ? (int)s->pid : -1;
}

int64_t melt_server_start_ns(const melt_server *s)
{
    return s ? s->start_ns : 0;
}

void melt_server_stop(melt_server *s)
{
    if (!s) return;
    reap(s, false);
    /* The group, even when the leader is gone: its children may live on. */
    kill(-s->pid, SIGTERM);
    for (int i = 0; i < 250 && !s->exited; i++) {   /* up to 5 s */
        sleep_ms(20);
        reap(s, false);
    }
    kill(-s->pid, SIGKILL);
    if (!s->exited) {
        kill(s->pid, SIGKILL);
        reap(s, true);
    }
    if (s->tmp_log) unlink(s->log_path);
    free(s);
}

static void describe_exit(const melt_server *s, char *buf, size_t cap)
{
    if (WIFEXITED(s->status)) snprintf(buf, cap, "exited with status %d", WEXITSTATUS(s->status));
    else if (WIFSIGNALED(s->status)) snprintf(buf, cap, "was killed by signal %d", WTERMSIG(s->status));
    else snprintf(buf, cap, "ended");
}

/* Spawn argv with the log as stdout/stderr, in a new process group. */
static int spawn(melt_server *s, char *const argv[], int log_fd, melt_error *err)
{
    const int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null_fd < 0) return melt_errorf(err, MELT_EIO, "/dev/null: %s", strerror(errno));
    const pid_t pid = fork();
    if (pid < 0) {
        close(null_fd);
        return melt_errorf(err, MELT_EIO, "%s: fork: %s", argv[0], strerror(errno));
    }
    if (pid == 0) {
        setpgid(0, 0);
        dup2(null_fd, 0);
        dup2(log_fd, 1);
        dup2(log_fd, 2);
        /* The agent runs with SIGINT/SIGTERM blocked and SIGPIPE ignored;
         * both survive exec, and a server that cannot get SIGTERM cannot
         * be stopped politely. Give it a clean slate. */
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        for (int sig = 1; sig < NSIG; sig++)
            if (sig != SIGKILL && sig != SIGSTOP) sigaction(sig, &dfl, NULL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
#ifdef __linux__
        /* If melt dies without stopping it, the server goes too (sent when
         * the thread that started it ends: start servers from a thread
         * that lives as long as they should). */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
#endif
        execvp(argv[0], argv);
        const int e = errno;
        dprintf(2, "melt: cannot run %s: %s\n", argv[0], strerror(e));
        _exit(127);
    }
    setpgid(pid, pid);   /* also here, so the group exists before we signal it */
    close(null_fd);
    s->pid = pid;
    return 0;
}

int melt_server_start(char *const argv[], const char *health_url, const char *log_path, int64_t timeout_ms,
                      const volatile int *cancel, melt_server **out, melt_error *err)
{
    *out = NULL;
    if (!argv || !argv[0]) return melt_errorf(err, MELT_EINVAL, "server: no command given");
    melt_http_url hu;
    int rc = melt_http_parse_url(health_url, &hu, err);
    if (rc < 0) return rc;
    if (timeout_ms <= 0) timeout_ms = 120000;
    melt_server *s = calloc(1, sizeof *s);
    if (!s) return melt_errorf(err, MELT_ENOMEM, "out of memory");
    const int log_fd = open_log(s, log_path, err);
    if (log_fd < 0) {
        free(s);
        return log_fd;
    }
    const int64_t t0 = mono_ns();
    rc = spawn(s, argv, log_fd, err);
    close(log_fd);
    if (rc < 0) {
        if (s->tmp_log) unlink(s->log_path);
        free(s);
        return rc;
    }

    const int64_t deadline = t0 + timeout_ms * 1000000;
    int pause_ms = 50;
    int last_status = 0;
    char tail[600], why[64];
    for (;;) {
        reap(s, false);
        if (s->exited) {
            describe_exit(s, why, sizeof why);
            melt_server_log_tail(s, tail, sizeof tail);
            rc = melt_errorf(err, MELT_EIO, "%s %s before it served %s; its output%s%s: %s", argv[0],
                             why, health_url, s->tmp_log ? "" : " in ", s->tmp_log ? "" : s->log_path,
                             tail[0] ? tail : "(none)");
            break;
        }
        if (cancel && *cancel) {
            rc = melt_errorf(err, MELT_EIO, "%s: start cancelled", argv[0]);
            break;
        }
        const int64_t left_ms = (deadline - mono_ns()) / 1000000;
        if (left_ms <= 0) {
            melt_server_log_tail(s, tail, sizeof tail);
            rc = melt_errorf(err, MELT_EIO,
                             "%s: %s did not answer 200 within %lld ms (last status %d); its output%s%s: %s",
                             argv[0], health_url, (long long)timeout_ms, last_status,
                             s->tmp_log ? "" : " in ", s->tmp_log ? "" : s->log_path,
                             tail[0] ? tail : "(none)");
            break;
        }
        int st = 0;
        melt_error herr = {0};
        /* 503 ("Loading model") and refused connections both mean: not yet. */
        if (melt_http_fetch(health_url, NULL, NULL, left_ms < 2000 ? left_ms : 2000, cancel, &st, NULL,
                            &herr) == 0) {
            last_status = st;
            if (st == 200) {
                s->start_ns = mono_ns() - t0;
                *out = s;
                return 0;
            }
        }
        for (int waited = 0; waited < pause_ms && !(cancel && *cancel); waited += 25) sleep_ms(25);
        if (pause_ms < 200) pause_ms += 50;
    }
    melt_server_stop(s);   /* a log the caller named stays for them */
    return rc;
}

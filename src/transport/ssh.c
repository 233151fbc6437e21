/* melt — the ssh transport: a Linux (or any POSIX) device reached with the
 * OpenSSH client, so the user's ~/.ssh/config, keys, agent and ProxyJump
 * work as they do for `ssh HOST`. MELT_SSH_CONFIG, when set, is passed as
 * `ssh -F FILE` (tests use it for a throw-away client configuration).
 *
 * Connections: one multiplexed connection per device carries every short
 * call (work folder, hashes, df, copies, interrupts): each runs
 * `ssh -o ControlMaster=auto -o ControlPath=DIR/cm -o ControlPersist=300`
 * where DIR is a private (0700) temporary folder made by open(); open's call
 * becomes the master and stays in the background, the others ride on it.
 * close() stops it (`ssh -O exit`) and removes DIR; an orphaned master (melt
 * killed) exits by itself after 300 s idle. The agent's stream is the one
 * exception: it gets a connection of its own (ControlPath=none), because a
 * multiplexing client always dies on SIGINT (it cannot ignore it), which
 * would cut the stream before the agent's last events (see Spawn). Every
 * call: BatchMode=yes (never a password prompt), ConnectTimeout=10, and
 * keep-alives (ServerAliveInterval=5, ServerAliveCountMax=3: a dead link is
 * noticed in about 15 s); every call but the agent's stream has a timeout.
 *
 * Quoting: ssh hands its command to the remote user's shell, so every
 * string that goes into it (work folder, file names, the agent's argv) is
 * quoted exactly once with melt_shell_quote (POSIX sh single quotes; the
 * device's login shell must be sh-compatible: sh, bash, dash, zsh, ash).
 * Locally nothing goes through a shell except two fixed scripts below whose
 * data arrive as positional parameters ("$@"), never as code.
 *
 * Work folder: the device's `workdir` (a leading `~/` means the remote
 * $HOME), else $HOME/.melt, else /tmp/melt-$(id -un); created with
 * mkdir -p and resolved to an absolute path at open().
 *
 * Push: `sha256sum` of the remote file is compared with the local one and an
 * unchanged file is not sent again; otherwise `df -Pk` must show room for
 * it (a clear error when not), and it is streamed by `ssh ... cat >` into a
 * temporary name, its size checked, and renamed into place.
 *
 * Spawn and interrupts: the remote command is
 *   cd WORKDIR && echo $$ > PIDFILE && exec AGENT ARGS...
 * so the agent replaces the remote shell and its pid is in PIDFILE; stdout
 * and stderr come back unchanged (no -t: a pty would rewrite the bytes).
 * ssh does not forward signals without a pty, so the local child (leading
 * its own process group, as the local transport's agent does) is a small sh
 * that runs ssh in the background -- SIGINT ignored there, as for any
 * asynchronous command of a non-interactive shell, and a non-multiplexed
 * ssh keeps it ignored -- and traps SIGINT/SIGTERM: the trap runs
 * `kill -INT/-TERM $(cat PIDFILE)` on the device through the control
 * connection. So melt_proc_signal(p, SIGINT) (the runner's first Ctrl-C)
 * reaches the remote agent, which finishes its token and writes bye, and
 * the stream stays intact to its last byte. SIGKILL (the second Ctrl-C)
 * ends the wrapper and ssh; the agent then dies of SIGPIPE on its next
 * write. When ssh itself fails (exit 255: connection refused or dropped, or
 * the remote agent killed by a signal) the wrapper ends by SIGHUP, so the
 * runner sees a hang-up, not an agent exit code, and marks the trial lost.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "melt/sha256.h"
#include "melt/transport.h"
#include "transport/shell_quote.h"

#define SSH_CALL_TIMEOUT_MS 60000     /* one short remote command */
#define SSH_OPEN_TIMEOUT_MS 60000     /* connect + authenticate + mkdir */
#define SSH_CLOSE_TIMEOUT_MS 10000
#define SSH_MAX_OPTS 32

typedef struct ssh_state {
    char *name;                   /* the device's name, for messages */
    char *host;
    char *opts[SSH_MAX_OPTS + 1]; /* "ssh" and its options, before "--" */
    size_t n_opts;
    size_t n_common;              /* opts[n_common..]: the control master's */
    char ctl_dir[PATH_MAX];       /* private folder of the control socket; "" when none */
    char *workdir;                /* absolute, on the device */
    char *qworkdir;               /* workdir quoted */
    unsigned n_spawn;
} ssh_state;

static int oom(melt_error *err)
{
    return melt_errorf(err, MELT_ENOMEM, "ssh transport: out of memory");
}

static int add_opt(ssh_state *s, const char *a)
{
    if (s->n_opts == SSH_MAX_OPTS || !(s->opts[s->n_opts] = strdup(a)))
        return -1;
    s->opts[++s->n_opts] = NULL;
    return 0;
}

/* ssh OPTS [extra] -- HOST [cmd]: a malloc'd array of borrowed strings.
 * mux: through the control master; else a connection of its own. */
static char **ssh_argv(const ssh_state *s, bool mux, const char *extra1, const char *extra2,
                       const char *cmd)
{
    char **v = calloc(s->n_opts + 10, sizeof *v);
    if (!v)
        return NULL;
    size_t n = 0;
    for (size_t i = 0; i < (mux ? s->n_opts : s->n_common); i++)
        v[n++] = s->opts[i];
    if (!mux) {
        v[n++] = "-o";
        v[n++] = "ControlMaster=no";
        v[n++] = "-o";
        v[n++] = "ControlPath=none";
    }
    if (extra1)
        v[n++] = (char *)extra1;
    if (extra2)
        v[n++] = (char *)extra2;
    v[n++] = "--";
    v[n++] = s->host;
    if (cmd)
        v[n++] = (char *)cmd;
    v[n] = NULL;
    return v;
}

/* The last line of text, for an error message. */

/* Run cmd on the device (stdin /dev/null); *out (may be NULL) gets its
 * stdout. A non-zero exit is an error naming the device and what failed. */
static int ssh_call(ssh_state *s, const char *what, const char *cmd, int timeout_ms, char **out,
                    melt_error *err)
{
    char **argv = ssh_argv(s, true, "-n", NULL, cmd);
    if (!argv)
        return oom(err);
    char *o = NULL, *e = NULL;
    melt_proc_opts po = {0};
    po.stdin_null = true;
    int rc = melt_proc_run(argv, &po, timeout_ms, out ? &o : NULL, &e, err);
    free(argv);
    if (rc > 0)
        rc = melt_errorf(err, MELT_EIO, "device '%s' (ssh %s): %s failed (%s %d)%s%s", s->name,
                         s->host, what, rc == 255 ? "ssh exit" : "exit", rc,
                         e && *e ? ": " : "", melt_last_line(e));
    else if (rc < 0)
        melt_errorf(err, err->code, "device '%s' (ssh %s): %s: %s", s->name, s->host, what,
                    err->msg);
    free(e);
    if (rc == 0 && out)
        *out = o;
    else
        free(o);
    return rc;
}

static void ssh_close(void *state)
{
    ssh_state *s = state;
    if (!s)
        return;
    if (s->ctl_dir[0]) {
        if (s->qworkdir) {
            /* pid files of this melt's spawns */
            char pat[64];
            snprintf(pat, sizeof pat, "/.melt-pid.%ld.*", (long)getpid());
            char *cmd = melt_concat3("rm -f -- ", s->qworkdir, pat);
            if (cmd) {
                melt_error e = {0};
                ssh_call(s, "cleaning up", cmd, SSH_CLOSE_TIMEOUT_MS, NULL, &e);
            }
            free(cmd);
        }
        char **argv = ssh_argv(s, true, "-O", "exit", NULL);
        if (argv) {
            melt_error e = {0};
            melt_proc_opts po = {0};
            po.stdin_null = true;
            melt_proc_run(argv, &po, SSH_CLOSE_TIMEOUT_MS, NULL, NULL, &e);
        }
        free(argv);
        char sock[PATH_MAX + 8];
        snprintf(sock, sizeof sock, "%s/cm", s->ctl_dir);
        unlink(sock);
        rmdir(s->ctl_dir);
    }
    for (size_t i = 0; i < s->n_opts; i++)
        free(s->opts[i]);
    free(s->name);
    free(s->host);
    free(s->workdir);
    free(s->qworkdir);
    free(s);
}

/* The remote shell code that creates and prints the work folder. */
static char *workdir_script(const char *workdir)
{
    const char *tail = "; mkdir -p -- \"$W\" && cd -- \"$W\" && pwd -P";
    if (!workdir || !*workdir)
        return melt_concat3("if [ -n \"$HOME\" ]; then W=\"$HOME/.melt\"; "
                      "else W=\"/tmp/melt-$(id -un)\"; fi", "", tail);
    if (strcmp(workdir, "~") == 0)
        return melt_concat3("W=\"$HOME\"", "", tail);
    const bool home = strncmp(workdir, "~/", 2) == 0;
    char *q = melt_shell_quote(home ? workdir + 2 : workdir);
    char *r = q ? melt_concat3(home ? "W=\"$HOME\"/" : "W=", q, tail) : NULL;
    free(q);
    return r;
}

static int ssh_open(const melt_exp_device *dev, void **state, melt_error *err)
{
    if (!dev || !dev->host || !*dev->host)
        return melt_errorf(err, MELT_EINVAL, "ssh transport: the device has no host");
    ssh_state *s = calloc(1, sizeof *s);
    if (!s)
        return oom(err);
    if (!(s->name = strdup(dev->name ? dev->name : dev->host)) || !(s->host = strdup(dev->host))) {
        ssh_close(s);
        return oom(err);
    }
    /* the control socket's folder: short (sun_path holds 108 bytes) and ours */
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp || strlen(tmp) > 64)
        tmp = "/tmp";
    snprintf(s->ctl_dir, sizeof s->ctl_dir, "%s/melt-ssh-XXXXXX", tmp);
    if (!mkdtemp(s->ctl_dir)) {
        int e = errno;
        s->ctl_dir[0] = '\0';
        ssh_close(s);
        return melt_errorf(err, MELT_EIO, "ssh transport: cannot create a folder in %s: %s", tmp,
                           strerror(e));
    }
    char ctl[PATH_MAX + 32], port[32];
    snprintf(ctl, sizeof ctl, "ControlPath=%s/cm", s->ctl_dir);
    snprintf(port, sizeof port, "%d", dev->port);
    const char *cfg = getenv("MELT_SSH_CONFIG");
    int bad = add_opt(s, "ssh");
    if (cfg && *cfg) {
        bad |= add_opt(s, "-F");
        bad |= add_opt(s, cfg);
    }
    const char *o[] = {"BatchMode=yes", "ConnectTimeout=10", "ServerAliveInterval=5",
                       "ServerAliveCountMax=3"};
    for (size_t i = 0; i < sizeof o / sizeof o[0]; i++) {
        bad |= add_opt(s, "-o");
        bad |= add_opt(s, o[i]);
    }
    if (dev->port > 0) {
        bad |= add_opt(s, "-p");
        bad |= add_opt(s, port);
    }
    if (dev->user && *dev->user) {
        bad |= add_opt(s, "-l");
        bad |= add_opt(s, dev->user);
    }
    s->n_common = s->n_opts;
    const char *m[] = {"ControlMaster=auto", ctl, "ControlPersist=300"};
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
        bad |= add_opt(s, "-o");
        bad |= add_opt(s, m[i]);
    }
    char *script = bad ? NULL : workdir_script(dev->workdir);
    if (!script) {
        ssh_close(s);
        return oom(err);
    }
    char *out = NULL;
    int rc = ssh_call(s, "connecting and creating the work folder", script, SSH_OPEN_TIMEOUT_MS,
                      &out, err);
    free(script);
    if (rc == 0) {
        const char *w = melt_last_line(out);
        if (w[0] != '/')
            rc = melt_errorf(err, MELT_EIO, "device '%s' (ssh %s): unexpected work folder '%s'",
                             s->name, s->host, w);
        else if (!(s->workdir = strdup(w)) || !(s->qworkdir = melt_shell_quote(w)))
            rc = oom(err);
    }
    free(out);
    if (rc < 0) {
        ssh_close(s);
        return rc;
    }
    *state = s;
    return 0;
}

static int ssh_free_space(void *state, const char *dir, uint64_t *bytes, melt_error *err)
{
    ssh_state *s = state;
    char *q = dir ? melt_shell_quote(dir) : NULL;
    char *cmd = melt_concat3("df -Pk -- ", q ? q : s->qworkdir, " | tail -n 1");
    free(q);
    if (!cmd)
        return oom(err);
    char *out = NULL;
    int rc = ssh_call(s, "df", cmd, SSH_CALL_TIMEOUT_MS, &out, err);
    free(cmd);
    if (rc == 0 && !melt_parse_df_free(out, bytes))
        rc = melt_errorf(err, MELT_EIO, "device '%s' (ssh %s): cannot read df's output '%s'",
                         s->name, s->host, out ? out : "");
    free(out);
    return rc;
}

static int ssh_push(void *state, const char *local_path, const char *remote_name,
                    char **remote_path, melt_error *err)
{
    ssh_state *s = state;
    char sha[65];
    struct stat st;
    if (stat(local_path, &st) != 0)
        return melt_errorf(err, MELT_EIO, "%s: %s", local_path, strerror(errno));
    char *path = melt_concat3(s->workdir, "/", remote_name);
    char *qname = melt_shell_quote(remote_name);
    char *tmpname = melt_concat3(".", remote_name, ".melt-tmp");
    char *qtmp = tmpname ? melt_shell_quote(tmpname) : NULL;
    char *cmd = NULL, *out = NULL, *copy = NULL;
    char **argv = NULL;
    int rc = 0;
    if (!path || !qname || !qtmp) {
        rc = oom(err);
        goto done;
    }
    /* the sha256 of a file of the same size there now, and the room left */
    size_t n = strlen(s->qworkdir) + 4 * strlen(qname) + 160;
    if (!(cmd = malloc(n))) {
        rc = oom(err);
        goto done;
    }
    snprintf(cmd, n,
             "cd -- %s || exit 1; [ -f %s ] && [ $(($(wc -c < %s))) -eq %jd ] && "
             "sha256sum -- %s; df -Pk . | tail -n 1",
             s->qworkdir, qname, qname, (intmax_t)st.st_size, qname);
    if ((rc = ssh_call(s, "checking the work folder", cmd, SSH_CALL_TIMEOUT_MS, &out, err)) < 0)
        goto done;
    bool hashed = false;
    for (const char *l = out; l && *l;) {
        const char *h = *l == '\\' ? l + 1 : l;   /* sha256sum escapes odd names */
        if (strlen(h) >= 65 && melt_is_sha256_line(h)) {
            if (!hashed && (rc = melt_sha256_file(local_path, sha, err)) < 0)
                goto done;
            hashed = true;
            if (memcmp(h, sha, 64) == 0)
                goto have_it;
        }
        const char *nl = strchr(l, '\n');
        l = nl ? nl + 1 : "";
    }
    uint64_t avail = 0;
    if (melt_parse_df_free(out, &avail) && (uint64_t)st.st_size > avail) {
        rc = melt_errorf(err, MELT_EIO,
                         "device '%s' (ssh %s): '%s' (%.1f MiB) does not fit in %s: "
                         "%.1f MiB free", s->name, s->host, local_path,
                         (double)st.st_size / 1048576.0, s->workdir, (double)avail / 1048576.0);
        goto done;
    }
    /* stream it into a temporary name, check its size, rename */
    n = strlen(s->qworkdir) + 4 * strlen(qtmp) + strlen(qname) + 192;
    if (!(copy = malloc(n))) {
        rc = oom(err);
        goto done;
    }
    snprintf(copy, n,
             "cd -- %s || exit 1; cat > %s && [ $(($(wc -c < %s))) -eq %jd ] && chmod %s %s && "
             "mv -f -- %s %s || { rm -f -- %s; exit 1; }",
             s->qworkdir, qtmp, qtmp, (intmax_t)st.st_size,
             (st.st_mode & S_IXUSR) ? "755" : "644", qtmp, qtmp, qname, qtmp);
    /* stdin from the file: a fixed script, the path and ssh's argv as data */
    char **sv = ssh_argv(s, true, NULL, NULL, copy);
    if (!sv) {
        rc = oom(err);
        goto done;
    }
    argv = calloc(s->n_opts + 10, sizeof *argv);
    if (!argv) {
        free(sv);
        rc = oom(err);
        goto done;
    }
    argv[0] = "sh";
    argv[1] = "-c";
    argv[2] = "exec \"$@\" < \"$0\"";
    argv[3] = (char *)local_path;
    for (size_t i = 0; sv[i]; i++)
        argv[4 + i] = sv[i];
    free(sv);
    char *e = NULL;
    const int64_t timeout = SSH_CALL_TIMEOUT_MS + (int64_t)st.st_size / 1024; /* >= 1 MB/s */
    rc = melt_proc_run(argv, NULL, timeout > INT_MAX ? INT_MAX : (int)timeout, NULL, &e, err);
    if (rc > 0)
        rc = melt_errorf(err, MELT_EIO, "device '%s' (ssh %s): copying '%s' to %s failed "
                         "(exit %d)%s%s", s->name, s->host, local_path, path, rc,
                         e && *e ? ": " : "", melt_last_line(e));
    else if (rc < 0)
        melt_errorf(err, err->code, "device '%s' (ssh %s): copying '%s': %s", s->name, s->host,
                    local_path, err->msg);
    free(e);
    if (rc < 0)
        goto done;
have_it:
    *remote_path = path;
    path = NULL;
    rc = 0;
done:
    free(argv);
    free(copy);
    free(out);
    free(cmd);
    free(qtmp);
    free(tmpname);
    free(qname);
    free(path);
    return rc;
}

/* The local child of spawn: ssh in the background, SIGINT/SIGTERM forwarded
 * to the remote agent, ssh's own failure (255) turned into SIGHUP.
 * $1, $2: the remote kill commands; $3: the remote command; then ssh's argv. */
static const char spawn_script[] =
    "i=$1 t=$2 r=$3; shift 3\n"
    "trap '\"$@\" \"$i\" </dev/null >/dev/null 2>&1' INT\n"
    "trap '\"$@\" \"$t\" </dev/null >/dev/null 2>&1' TERM\n"
    "\"$@\" \"$r\" </dev/null & p=$!\n"
    "while :; do\n"
    "  wait \"$p\"; s=$?\n"
    "  if [ \"$s\" -gt 128 ]; then\n"
    /* a trapped signal ended the wait: go on waiting while adb/ssh runs;
     * if the trap's own commands already reaped it, ask for its status */
    "    kill -0 \"$p\" 2>/dev/null && continue\n"
    "    wait \"$p\"; s=$?\n"
    "  fi\n"
    "  break\n"
    "done\n"
    "[ \"$s\" -ne 255 ] || kill -HUP $$\n"
    "exit \"$s\"\n";

static int ssh_spawn(void *state, char *const argv[], melt_proc *p, melt_error *err)
{
    ssh_state *s = state;
    char pidname[96];
    snprintf(pidname, sizeof pidname, "/.melt-pid.%ld.%u", (long)getpid(), s->n_spawn++);
    char *pidfile = melt_concat3(s->workdir, pidname, "");
    char *qpid = pidfile ? melt_shell_quote(pidfile) : NULL;
    char *args = melt_shell_join(argv);
    char *run = NULL, *kint = NULL, *kterm = NULL;
    char **sv = NULL, **v = NULL;
    int rc = 0;
    if (!qpid || !args) {
        rc = oom(err);
        goto done;
    }
    size_t n = strlen(s->qworkdir) + strlen(qpid) + strlen(args) + 64;
    size_t nk = strlen(qpid) + 64;
    run = malloc(n);
    kint = malloc(nk);
    kterm = malloc(nk);
    sv = ssh_argv(s, false, "-n", NULL, NULL);
    v = calloc(s->n_opts + 16, sizeof *v);
    if (!run || !kint || !kterm || !sv || !v) {
        rc = oom(err);
        goto done;
    }
    snprintf(run, n, "cd -- %s || exit 127; echo $$ > %s && exec %s", s->qworkdir, qpid, args);
    snprintf(kint, nk, "kill -INT \"$(cat -- %s)\"", qpid);
    snprintf(kterm, nk, "kill -TERM \"$(cat -- %s)\"", qpid);
    size_t k = 0;
    v[k++] = "sh";
    v[k++] = "-c";
    v[k++] = (char *)spawn_script;
    v[k++] = "melt-ssh";   /* $0 */
    v[k++] = kint;
    v[k++] = kterm;
    v[k++] = run;
    for (size_t i = 0; sv[i]; i++)
        v[k++] = sv[i];
    v[k] = NULL;
    melt_proc_opts o = {0};
    o.stdin_null = true;
    o.new_process_group = true;
    rc = melt_proc_spawn(v, &o, p, err);
    if (rc < 0)
        melt_errorf(err, err->code, "device '%s' (ssh %s): %s", s->name, s->host, err->msg);
done:
    free(v);
    free(sv);
    free(kterm);
    free(kint);
    free(run);
    free(args);
    free(qpid);
    free(pidfile);
    return rc;
}

/* Clock sync: `agent --echo` in the work folder over the multiplexed
 * connection, ssh's stdin and stdout as the channel (no -n, no tty). */
static int ssh_echo_open(void *state, const char *agent_path, melt_echo_chan *ch,
                         melt_error *err)
{
    ssh_state *s = state;
    char *qagent = melt_shell_quote(agent_path);
    size_t n = strlen(s->qworkdir) + (qagent ? strlen(qagent) : 0) + 48;
    char *cmd = qagent ? malloc(n) : NULL;
    char **v = cmd ? ssh_argv(s, true, "-T", NULL, cmd) : NULL;
    int rc = 0;
    if (!v) {
        rc = oom(err);
        goto done;
    }
    snprintf(cmd, n, "cd -- %s && exec %s --echo", s->qworkdir, qagent);
    melt_proc_opts o = {0};
    o.stdin_pipe = &ch->wfd;
    o.new_process_group = true;
    if ((rc = melt_proc_spawn(v, &o, &ch->proc, err)) < 0) {
        melt_errorf(err, err->code, "device '%s' (ssh %s): clock sync: %s", s->name, s->host,
                    err->msg);
        goto done;
    }
    ch->rfd = ch->proc.out_fd;   /* the channel owns it now */
    ch->proc.out_fd = -1;
done:
    free(v);
    free(cmd);
    free(qagent);
    return rc;
}

const melt_transport_ops melt_transport_ssh = {
    .version = MELT_TRANSPORT_API_VERSION,
    .name = "ssh",
    .open = ssh_open,
    .spawn = ssh_spawn,
    .push = ssh_push,
    .free_space = ssh_free_space,
    .close = ssh_close,
    .echo_open = ssh_echo_open,
};

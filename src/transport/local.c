/* melt — the local transport: the device is this machine. The agent runs
 * as a child process (argv, never a shell) in its own process group, with
 * stdin from /dev/null; files need no copy. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "melt/transport.h"

typedef struct local_state {
    char *workdir;   /* NULL: the current folder */
} local_state;

static int local_open(const melt_exp_device *dev, void **state, melt_error *err)
{
    local_state *s = calloc(1, sizeof *s);
    if (!s)
        return melt_errorf(err, MELT_ENOMEM, "local transport: out of memory");
    if (dev && dev->workdir && !(s->workdir = strdup(dev->workdir))) {
        free(s);
        return melt_errorf(err, MELT_ENOMEM, "local transport: out of memory");
    }
    *state = s;
    return 0;
}

static int local_spawn(void *state, char *const argv[], melt_proc *p, melt_error *err)
{
    (void)state;
    melt_proc_opts o = {0};
    o.stdin_null = true;
    o.new_process_group = true;   /* a terminal's Ctrl-C reaches only melt */
    return melt_proc_spawn(argv, &o, p, err);
}

static int local_push(void *state, const char *local_path, const char *remote_name,
                      char **remote_path, melt_error *err)
{
    (void)state;
    (void)remote_name;
    if (!(*remote_path = strdup(local_path)))
        return melt_errorf(err, MELT_ENOMEM, "local transport: out of memory");
    return 0;
}

static int local_free_space(void *state, const char *dir, uint64_t *bytes, melt_error *err)
{
    const local_state *s = state;
    const char *d = dir ? dir : s && s->workdir ? s->workdir : ".";
    struct statvfs v;
    if (statvfs(d, &v) != 0)
        return melt_errorf(err, MELT_EIO, "%s: %s", d, strerror(errno));
    *bytes = (uint64_t)v.f_bavail * (uint64_t)v.f_frsize;
    return 0;
}

/* Clock sync: the agent with --echo, its stdin and stdout as the channel. */
static int local_echo_open(void *state, const char *agent_path, melt_echo_chan *ch,
                           melt_error *err)
{
    (void)state;
    char *argv[] = {(char *)agent_path, "--echo", NULL};
    melt_proc_opts o = {0};
    o.stdin_pipe = &ch->wfd;
    o.new_process_group = true;
    int rc = melt_proc_spawn(argv, &o, &ch->proc, err);
    if (rc < 0)
        return rc;
    ch->rfd = ch->proc.out_fd;   /* the channel owns it now */
    ch->proc.out_fd = -1;
    return 0;
}

static void local_close(void *state)
{
    local_state *s = state;
    if (!s)
        return;
    free(s->workdir);
    free(s);
}

const melt_transport_ops melt_transport_local = {
    .version = MELT_TRANSPORT_API_VERSION,
    .name = "local",
    .open = local_open,
    .spawn = local_spawn,
    .push = local_push,
    .free_space = local_free_space,
    .close = local_close,
    .echo_open = local_echo_open,
};

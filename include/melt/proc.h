/* melt — child processes: spawn with argv (never through a shell), read
 * its stdout/stderr as they arrive, wait with a timeout, stop it.
 * Used by the local transport to run the agent, and by the ssh/adb
 * transports to run their clients. */
#ifndef MELT_PROC_H
#define MELT_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "melt/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct melt_proc {
    pid_t pid;
    int out_fd;    /* child's stdout, read end (non-blocking); -1 once closed */
    int err_fd;    /* child's stderr, read end (non-blocking); -1 once closed */
    int status;    /* wait status once exited */
    bool exited;
    bool new_group;  /* leads its own process group */
} melt_proc;

typedef struct melt_proc_opts {
    const char *cwd;            /* working directory, NULL = ours */
    char *const *env_add;       /* "K=V" strings added to our environment, NULL-terminated, or NULL */
    bool stdin_null;            /* child's stdin from /dev/null (default: inherit) */
    bool new_process_group;     /* child leads its own process group (so a
                                   terminal's Ctrl-C reaches only us) */
    int *stdin_pipe;            /* when set: the child's stdin is a pipe and
                                   *stdin_pipe gets its write end (blocking,
                                   close-on-exec; the caller closes it, which
                                   is the child's end of input); -1 on failure */
} melt_proc_opts;

/* Start argv[0] (searched in PATH when it has no '/') with argv. The
 * child's stdout and stderr are pipes. MELT_EIO naming argv[0] when it
 * cannot be started (also when exec fails in the child). */
int melt_proc_spawn(char *const argv[], const melt_proc_opts *opts, melt_proc *p,
                    melt_error *err);

/* Callback for output: fd_index 1 = stdout, 2 = stderr; data is not
 * NUL-terminated. A non-zero return stops melt_proc_pump early. */
typedef int (*melt_proc_output_fn)(int fd_index, const char *data, size_t n, void *user);

/* Read whatever the child writes for up to timeout_ms (-1: until both
 * pipes close), calling on_output. Returns 1 when both pipes are closed
 * (the child is done writing), 0 on timeout, the callback's value when it
 * stopped early, or a negative error. */
int melt_proc_pump(melt_proc *p, int timeout_ms, melt_proc_output_fn on_output, void *user,
                   melt_error *err);

/* Wait for the child to exit, up to timeout_ms (-1: forever). Returns 1
 * when it exited (p->status set), 0 on timeout. Closes nothing. */
int melt_proc_wait(melt_proc *p, int timeout_ms);

/* Send sig to the child (and its group when it leads one). */
void melt_proc_signal(melt_proc *p, int sig);

/* Exit code (0..255), 128 + signal when killed, -1 when not exited. */
int melt_proc_exit_code(const melt_proc *p);

/* Close the pipes; when the child has not exited, SIGKILL and reap it. */
void melt_proc_close(melt_proc *p);

/* Run argv to completion: collect stdout into *out (malloc'd, NUL-
 * terminated, may be NULL to discard) and stderr into *errout (likewise),
 * kill it after timeout_ms (-1: none). Returns the exit code (>= 0), or a
 * negative error (MELT_EIO also on timeout, with a message). */
int melt_proc_run(char *const argv[], const melt_proc_opts *opts, int timeout_ms, char **out,
                  char **errout, melt_error *err);

#ifdef __cplusplus
}
#endif
#endif

/* melt — transports: how the runner reaches a device to run the agent there.
 *
 * A transport is one file in src/transport/ that fills a melt_transport_ops
 * (a versioned struct of function pointers, as fio's ioengine_ops) and one
 * line in the NULL-terminated table melt_transport_registry
 * (src/transport/registry.c). The runner never names a transport: it looks
 * the experiment's `transport:` kind up with melt_transport_find.
 *
 * Compiled in: `local` (this machine), `ssh` (src/transport/ssh.c), `adb`
 * (src/transport/adb.c) and `tcp` (src/transport/tcp.c, to an agent run
 * with --listen).
 *
 * Ownership: open() returns a state the transport owns until close();
 * push() returns a malloc'd remote path the caller frees; spawn() fills a
 * melt_proc the caller reads with melt_proc_pump and ends with
 * melt_proc_close.
 */
#ifndef MELT_TRANSPORT_H
#define MELT_TRANSPORT_H

#include <stdint.h>

#include "melt/error.h"
#include "melt/experiment.h"
#include "melt/proc.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped when melt_transport_ops changes incompatibly; the registry only
 * lists transports written against the current version. */
#define MELT_TRANSPORT_API_VERSION 1

/* A line channel to the device's clock (clock sync, include/melt/
 * clock_sync.h): requests "echo N\n" written to wfd, replies
 * "echo N NS\n" read from rfd (docs/agent-protocol.md). proc is the local
 * child behind it (the agent, or the ssh/adb client; pid -1 for none). */
typedef struct melt_echo_chan {
    int wfd, rfd;
    melt_proc proc;
} melt_echo_chan;

typedef struct melt_transport_ops {
    int version;                /* MELT_TRANSPORT_API_VERSION */
    const char *name;           /* "local": the experiment's `transport:` value */
    /* Connect to the device dev (its host/serial/port/user/workdir). */
    int (*open)(const melt_exp_device *dev, void **state, melt_error *err);
    /* Run argv (argv[0]: the agent's path on the device, from push) on the
     * device, its stdout and stderr streamed back through p's pipes. The
     * remote process leads its own process group where the transport can
     * do that, so melt_proc_signal(p, SIGINT) reaches it and nothing else. */
    int (*spawn)(void *state, char *const argv[], melt_proc *p, melt_error *err);
    /* Make the local file available on the device as remote_name (a file
     * name, no folder) in its work folder; *remote_path (malloc'd) is where
     * it is. local: no copy, the path as is. */
    int (*push)(void *state, const char *local_path, const char *remote_name,
                char **remote_path, melt_error *err);
    /* Free bytes in dir on the device (NULL: the work folder). */
    int (*free_space)(void *state, const char *dir, uint64_t *bytes, melt_error *err);
    void (*close)(void *state);  /* NULL state is fine */
    /* Optional (NULL: no clock sync): open the echo channel to the device's
     * clock; agent_path is the agent's path from push (local, ssh and adb
     * start `agent --echo`; tcp asks the listening agent). Closed with
     * melt_echo_chan_close. */
    int (*echo_open)(void *state, const char *agent_path, melt_echo_chan *ch, melt_error *err);
    /* Optional (NULL: nothing to do): before a cell, put the device in the
     * state the experiment's device entry asks for (adb: `android:` screen
     * off, battery unplugged) and say what state it is in: *state_json gets
     * a malloc'd JSON object text (governor, thermal status, battery level;
     * NULL when nothing is known). cell_end undoes what cell_begin did (also
     * after an error or Ctrl-C; a no-op when nothing was done) and may
     * describe the state after it the same way. */
    int (*cell_begin)(void *state, char **state_json, melt_error *err);
    void (*cell_end)(void *state, char **state_json);
    /* The device's agent is already there and runs every spawn itself,
     * argv[0] ignored (tcp: `melt-agent --listen`): the runner pushes no
     * agent. */
    bool resident_agent;
    /* Optional (NULL: the experiment file names them): the devices this
     * transport finds by itself (`melt devices`), as entries open() takes:
     * *devs (malloc'd, n entries; free with melt_transport_free_list) with
     * name, transport and serial set. adb: `adb devices -l`. Returns 0, or
     * a negative error (adb not installed, ...). */
    int (*list)(melt_exp_device **devs, size_t *n, melt_error *err);
} melt_transport_ops;

/* Free a list() result. */
void melt_transport_free_list(melt_exp_device *devs, size_t n);

/* NULL-terminated table of every compiled-in transport. */
extern const melt_transport_ops *const melt_transport_registry[];

/* The transport called name, or NULL (not compiled in / not supported yet). */
const melt_transport_ops *melt_transport_find(const char *name);

#ifdef __cplusplus
}
#endif
#endif

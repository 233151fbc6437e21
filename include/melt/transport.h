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
} melt_transport_ops;

/* NULL-terminated table of every compiled-in transport. */
extern const melt_transport_ops *const melt_transport_registry[];

/* The transport called name, or NULL (not compiled in / not supported yet). */
const melt_transport_ops *melt_transport_find(const char *name);

#ifdef __cplusplus
}
#endif
#endif

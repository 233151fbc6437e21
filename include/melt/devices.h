/* melt — what devices melt can reach (`melt devices`, docs/devices.md):
 * this machine, the devices adb lists, and the devices an experiment file
 * names (ssh hosts, tcp endpoints, adb serials); for each, whether it
 * answers and, through its transport, the agent's `--describe` object. */
#ifndef MELT_DEVICES_H
#define MELT_DEVICES_H

#include <stdbool.h>
#include <stddef.h>

#include "melt/error.h"
#include "melt/experiment.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct melt_device_report {
    char *name;
    const char *transport;   /* "local", "adb", ... */
    char *where;             /* serial, host[:port], or NULL */
    bool from_experiment;    /* named in the experiment file */
    bool reachable;          /* opened (connected, selected) */
    char *reason;            /* why not reachable, or why not described; NULL */
    char *info_json;         /* the agent's --describe object; NULL when unknown */
} melt_device_report;

/* Probe this machine, adb's devices (when adb is installed) and e's
 * devices (e may be NULL), describing each with the agent at agent_path
 * (pushed where the transport needs it). Never fails for one device:
 * that device's report says why. */
int melt_devices_probe(const melt_experiment *e, const char *agent_path,
                       melt_device_report **out, size_t *n, melt_error *err);
void melt_devices_free(melt_device_report *r, size_t n);

#ifdef __cplusplus
}
#endif
#endif

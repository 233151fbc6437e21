/* melt — the table of transports. Adding one: a file in src/transport/
 * that defines its melt_transport_ops, and a line here. */
#include <stdlib.h>
#include <string.h>

#include "melt/transport.h"

extern const melt_transport_ops melt_transport_local;
extern const melt_transport_ops melt_transport_ssh;
extern const melt_transport_ops melt_transport_adb;
extern const melt_transport_ops melt_transport_tcp;

const melt_transport_ops *const melt_transport_registry[] = {
    &melt_transport_local,
    &melt_transport_ssh,
    &melt_transport_adb,
    &melt_transport_tcp,
    NULL,
};

const melt_transport_ops *melt_transport_find(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; melt_transport_registry[i]; i++) {
        const melt_transport_ops *t = melt_transport_registry[i];
        if (t->version == MELT_TRANSPORT_API_VERSION && strcmp(t->name, name) == 0)
            return t;
    }
    return NULL;
}

void melt_transport_free_list(melt_exp_device *devs, size_t n)
{
    for (size_t i = 0; devs && i < n; i++) {
        free(devs[i].name);
        free(devs[i].serial);
        free(devs[i].host);
        free(devs[i].user);
        free(devs[i].workdir);
    }
    free(devs);
}

/* `melt devices`: probe what melt can reach (include/melt/devices.h). */
#include "melt/devices.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "melt/transport.h"
#include "runner/runner_internal.h"

typedef struct reports {
    melt_device_report *v;
    size_t n, cap;
} reports;

static melt_device_report *add(reports *r)
{
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 8;
        melt_device_report *v = realloc(r->v, cap * sizeof *v);
        if (!v)
            return NULL;
        r->v = v;
        r->cap = cap;
    }
    melt_device_report *d = &r->v[r->n++];
    memset(d, 0, sizeof *d);
    return d;
}

static char *where_of(const melt_exp_device *dev)
{
    char buf[600];
    if (dev->serial)
        snprintf(buf, sizeof buf, "%s", dev->serial);
    else if (dev->host && dev->port)
        snprintf(buf, sizeof buf, "%s%s%s:%d", dev->user ? dev->user : "", dev->user ? "@" : "",
                 dev->host, dev->port);
    else if (dev->host)
        snprintf(buf, sizeof buf, "%s%s%s", dev->user ? dev->user : "", dev->user ? "@" : "",
                 dev->host);
    else
        return NULL;
    return strdup(buf);
}

/* Open dev, put the agent there, describe it; what fails goes to reason. */
static void probe(melt_device_report *d, const melt_exp_device *dev, const char *agent)
{
    const melt_transport_ops *t = melt_transport_find(melt_transport_name(dev->transport));
    melt_error err = {0};
    void *st = NULL;
    char *remote = NULL;
    d->name = strdup(dev->name ? dev->name : "?");
    d->transport = melt_transport_name(dev->transport);
    d->where = where_of(dev);
    if (!t) {
        d->reason = strdup("transport not supported by this melt");
        return;
    }
    if (t->open(dev, &st, &err) < 0) {
        d->reason = strdup(err.msg);
        return;
    }
    d->reachable = true;
    int rc = t->resident_agent ? ((remote = strdup("melt-agent")) ? 0 : MELT_ENOMEM)
                               : t->push(st, agent, "melt-agent", &remote, &err);
    if (rc == 0)
        rc = runner_describe_device(t, st, remote, NULL, &d->info_json, &err);
    if (rc < 0)
        d->reason = strdup(err.msg[0] ? err.msg : "out of memory");
    free(remote);
    t->close(st);
}

/* Is dev one already listed (adb by serial)? */
static bool listed(const reports *r, const melt_exp_device *dev)
{
    for (size_t i = 0; i < r->n; i++)
        if (dev->transport == MELT_TRANSPORT_ADB && dev->serial && r->v[i].where &&
            strcmp(r->v[i].transport, "adb") == 0 && strcmp(r->v[i].where, dev->serial) == 0) {
            r->v[i].from_experiment = true;
            return true;
        }
    return false;
}

int melt_devices_probe(const melt_experiment *e, const char *agent_path,
                       melt_device_report **out, size_t *n, melt_error *err)
{
    reports r = {0};
    melt_device_report *d;
    melt_exp_device local = {.name = "local", .transport = MELT_TRANSPORT_LOCAL};
    if (!(d = add(&r)))
        goto oom;
    probe(d, &local, agent_path);

    /* adb's own list; an experiment's adb device with no serial is the one attached */
    const melt_transport_ops *adb = melt_transport_find("adb");
    melt_exp_device *found = NULL;
    size_t n_found = 0;
    melt_error lerr = {0};
    size_t adb_first = r.n;
    if (adb && adb->list && adb->list(&found, &n_found, &lerr) < 0) {
        if (!(d = add(&r)))
            goto oom;
        d->name = strdup("adb");
        d->transport = "adb";
        d->reason = strdup(lerr.msg);
    } else if (adb && n_found == 0) {
        if (!(d = add(&r)))
            goto oom;
        d->name = strdup("adb");
        d->transport = "adb";
        d->reason = strdup("no adb device attached (adb devices -l lists none)");
    }
    for (size_t i = 0; i < n_found; i++) {
        if (!(d = add(&r))) {
            melt_transport_free_list(found, n_found);
            goto oom;
        }
        probe(d, &found[i], agent_path);
    }
    melt_transport_free_list(found, n_found);

    for (size_t i = 0; e && i < e->n_devices; i++) {
        const melt_exp_device *dev = &e->devices[i];
        if (dev->transport == MELT_TRANSPORT_LOCAL) {
            r.v[0].from_experiment = true;
            continue;
        }
        if (listed(&r, dev))
            continue;
        if (dev->transport == MELT_TRANSPORT_ADB && !dev->serial && n_found == 1) {
            r.v[adb_first].from_experiment = true;
            continue;
        }
        if (!(d = add(&r)))
            goto oom;
        probe(d, dev, agent_path);
        d->from_experiment = true;
        if (!d->name)
            goto oom;
    }
    *out = r.v;
    *n = r.n;
    return 0;
oom:
    melt_devices_free(r.v, r.n);
    return melt_errorf(err, MELT_ENOMEM, "out of memory");
}

void melt_devices_free(melt_device_report *r, size_t n)
{
    for (size_t i = 0; r && i < n; i++) {
        free(r[i].name);
        free(r[i].where);
        free(r[i].reason);
        free(r[i].info_json);
    }
    free(r);
}

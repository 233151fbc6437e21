/* The runner's clock sync around a cell (docs/devices.md, "Clock sync"):
 * an estimate before the cell's trials and one after, both stored in
 * clock_syncs; the trials run in between get the offset between the two
 * (the mean, its uncertainty widened by half their difference, which
 * bounds a linear drift) or the before one alone when the device did not
 * answer afterwards (lost). Events keep their raw device times. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "melt/clock_sync.h"
#include "runner/runner_internal.h"

int runner_clock_sync(const melt_transport_ops *tops, void *tstate, const char *agent,
                      melt_store *store, int64_t cell_rowid, const char *at,
                      melt_clock_estimate *est, melt_error *err)
{
    int rc = melt_clock_sync_transport(tops, tstate, agent, MELT_CLOCK_SYNC_ROUNDS, est, err);
    if (rc < 0)
        return rc;
    melt_clock_sync_row row = {.cell_rowid = cell_rowid, .host_ns = est->host_ns,
                               .offset_ns = est->offset_ns,
                               .uncertainty_ns = est->uncertainty_ns, .rtt_ns = est->rtt_ns,
                               .rounds = est->rounds};
    snprintf(row.at, sizeof row.at, "%s", at);
    return melt_store_add_clock_sync(store, &row, err);
}

int64_t runner_last_trial_id(melt_store *store, int64_t cell_rowid)
{
    melt_trial_info *t = NULL;
    size_t n = 0;
    melt_error err = {0};
    int64_t last = 0;
    if (melt_store_list_trials(store, cell_rowid, &t, &n, &err) == 0)
        for (size_t i = 0; i < n; i++)
            if (t[i].id > last)
                last = t[i].id;
    free(t);
    return last;
}

int runner_clock_apply(melt_store *store, int64_t cell_rowid, int64_t after_trial_id,
                       const melt_clock_estimate *before, const melt_clock_estimate *after,
                       melt_error *err)
{
    if (!before && !after)
        return 0;
    const melt_clock_estimate *a = before ? before : after, *b = before ? after : NULL;
    int64_t offset = a->offset_ns, bound = a->uncertainty_ns;
    if (b) {
        const int64_t d = b->offset_ns - a->offset_ns;
        offset = a->offset_ns + d / 2;
        bound = (a->uncertainty_ns > b->uncertainty_ns ? a->uncertainty_ns : b->uncertainty_ns) +
                (d < 0 ? -d : d) / 2 + 1;
    }
    melt_trial_info *t = NULL;
    size_t n = 0;
    int rc = melt_store_list_trials(store, cell_rowid, &t, &n, err);
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (t[i].id > after_trial_id)   /* run now, not by an earlier (resumed) run */
            rc = melt_store_set_trial_clock(store, t[i].id, offset, 2 * bound, err);
    free(t);
    return rc;
}

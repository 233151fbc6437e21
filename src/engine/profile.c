/* The engine profiler's tables and report (profile.h). */
#include <stdlib.h>
#include <string.h>

#include "engine/engine_internal.h"
#include "engine/profile.h"

static const char *const op_names[MELT_PROF_OP_COUNT] = {
    [MELT_PROF_EMBED] = "embed",
    [MELT_PROF_NORM] = "norm",
    [MELT_PROF_MATMUL] = "matmul",
    [MELT_PROF_BIAS] = "bias",
    [MELT_PROF_ROPE] = "rope",
    [MELT_PROF_KV_STORE] = "kv_store",
    [MELT_PROF_ATTENTION] = "attention",
    [MELT_PROF_FFN_ACT] = "ffn_act",
    [MELT_PROF_RESIDUAL] = "residual",
    [MELT_PROF_SAMPLING] = "sampling",
    [MELT_PROF_SCORING] = "scoring",
};

const char *melt_prof_op_name(int op)
{
    return op >= 0 && op < MELT_PROF_OP_COUNT ? op_names[op] : "?";
}

int melt_profile_new(int n_layer, melt_profile **out, melt_error *err)
{
    *out = NULL;
    if (n_layer < 0) return melt_errorf(err, MELT_EINVAL, "profile of %d layers", n_layer);
    melt_profile *p = calloc(1, sizeof *p);
    if (!p) return melt_errorf(err, MELT_ENOMEM, "out of memory for a profile");
    p->n_layer = n_layer;
    p->layer_ns = calloc((size_t)n_layer + 1, sizeof *p->layer_ns);
    if (!p->layer_ns) {
        free(p);
        return melt_errorf(err, MELT_ENOMEM, "out of memory for a profile");
    }
    *out = p;
    return 0;
}

void melt_profile_free(melt_profile *p)
{
    if (!p) return;
    free(p->layer_ns);
    free(p);
}

void melt_profile_reset(melt_profile *p)
{
    memset(p->op_ns, 0, sizeof p->op_ns);
    memset(p->op_calls, 0, sizeof p->op_calls);
    memset(p->layer_ns, 0, ((size_t)p->n_layer + 1) * sizeof *p->layer_ns);
}

void melt_profile_attach(melt_context *c, melt_profile *p)
{
    c->profile = p;
}

melt_profile *melt_profile_of(melt_context *c)
{
    return c->profile;
}

uint64_t melt_profile_total_ns(const melt_profile *p)
{
    uint64_t t = 0;
    for (int i = 0; i < MELT_PROF_OP_COUNT; i++) t += p->op_ns[i];
    return t;
}

static double share(uint64_t part, uint64_t total)
{
    return total ? 100.0 * (double)part / (double)total : 0.0;
}

void melt_profile_print(const melt_profile *p, FILE *out)
{
    const uint64_t total = melt_profile_total_ns(p);
    uint64_t calls = 0;
    for (int i = 0; i < MELT_PROF_OP_COUNT; i++) calls += p->op_calls[i];
    fprintf(out, "profile: %llu op calls, %.3f ms in ops\n", (unsigned long long)calls,
            (double)total / 1e6);
    fprintf(out, "%-10s %10s %12s %7s %10s\n", "op", "calls", "total_ms", "share", "mean_us");
    /* by descending time: a selection over the few kinds */
    bool done[MELT_PROF_OP_COUNT] = {0};
    for (int k = 0; k < MELT_PROF_OP_COUNT; k++) {
        int best = -1;
        for (int i = 0; i < MELT_PROF_OP_COUNT; i++)
            if (!done[i] && (best < 0 || p->op_ns[i] > p->op_ns[best])) best = i;
        done[best] = true;
        if (!p->op_calls[best]) continue;
        fprintf(out, "%-10s %10llu %12.3f %6.1f%% %10.2f\n", op_names[best],
                (unsigned long long)p->op_calls[best], (double)p->op_ns[best] / 1e6,
                share(p->op_ns[best], total),
                (double)p->op_ns[best] / 1e3 / (double)p->op_calls[best]);
    }
    fprintf(out, "%-10s %12s %7s\n", "layer", "total_ms", "share");
    for (int l = 0; l <= p->n_layer; l++) {
        char name[16];
        if (l < p->n_layer) snprintf(name, sizeof name, "%d", l);
        else snprintf(name, sizeof name, "other");
        fprintf(out, "%-10s %12.3f %6.1f%%\n", name, (double)p->layer_ns[l] / 1e6,
                share(p->layer_ns[l], total));
    }
}

void melt_profile_write_json(const melt_profile *p, FILE *out)
{
    const uint64_t total = melt_profile_total_ns(p);
    fprintf(out, "{\"total_ms\":%.6f,\"ops\":{", (double)total / 1e6);
    bool first = true;
    for (int i = 0; i < MELT_PROF_OP_COUNT; i++) {
        if (!p->op_calls[i]) continue;
        fprintf(out, "%s\"%s\":{\"calls\":%llu,\"ms\":%.6f,\"share\":%.4f}", first ? "" : ",",
                op_names[i], (unsigned long long)p->op_calls[i], (double)p->op_ns[i] / 1e6,
                share(p->op_ns[i], total) / 100.0);
        first = false;
    }
    fputs("},\"layers_ms\":[", out);
    for (int l = 0; l < p->n_layer; l++)
        fprintf(out, "%s%.6f", l ? "," : "", (double)p->layer_ns[l] / 1e6);
    fprintf(out, "],\"other_ms\":%.6f}", (double)p->layer_ns[p->n_layer] / 1e6);
}

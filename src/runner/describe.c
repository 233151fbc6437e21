/* The resolved form of an experiment: what `melt run --dry-run` prints and
 * what the runner stores beside the file's text. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "melt/experiment.h"
#include "melt/plan.h"
#include "melt/workload.h"

/* backend=NAME and its options, for engines other than the builtin one. */
static void print_backend(FILE *out, const melt_exp_engine *g)
{
    fprintf(out, "backend=%s ", g->backend);
    const char *keys[5] = {"mode", "binary", "url", "api_key_env", "served_model"};
    const char *vals[5] = {g->mode, g->binary, g->url, g->api_key_env, g->model};
    for (int k = 0; k < 5; k++)
        if (vals[k])
            fprintf(out, "%s=%s ", keys[k], vals[k]);
    if (g->port)
        fprintf(out, "port=%d ", g->port);
    for (size_t k = 0; k < g->n_args; k++)
        fprintf(out, "arg=%s ", g->args[k]);
}

static void print_model(FILE *out, const melt_exp_model *m)
{
    if (m->source == MELT_MODEL_PATH)
        fprintf(out, "model=%s", m->path);
    else
        fprintf(out, "model=synth:%s/%s/seed=%llu", m->preset, melt_ftype_name(m->ftype),
               (unsigned long long)m->seed);
}

static void print_workload(FILE *out, const melt_exp_workload *w, const melt_plan *plan, int n_ctx)
{
    fprintf(out, "workload=%s", melt_workload_kind_name(w->kind));
    if (w->kind == MELT_WORKLOAD_SYNTHETIC) {
        fprintf(out, " pp=%d tg=%d", (int)w->prompt_tokens, (int)w->gen_tokens);
        return;
    }
    size_t turns = 0;
    for (size_t i = 0; i < plan->n_convs; i++)
        turns += plan->convs[i].n_turns;
    fprintf(out, " file=%s", w->path);
    if (w->kind == MELT_WORKLOAD_PROMPTS)
        fprintf(out, " format=%s prompts=%zu", w->jsonl ? "jsonl" : "text", plan->n_convs);
    else
        fprintf(out, " conversations=%zu turns=%zu", plan->n_convs, turns);
    fprintf(out, " max_gen_tokens=%d", (int)w->max_gen_tokens);
    if (w->kind == MELT_WORKLOAD_CONVERSATIONS) {
        int limit = w->max_context_tokens > 0 && w->max_context_tokens < n_ctx
                        ? w->max_context_tokens : n_ctx;
        fprintf(out, " max_context_tokens=%d", limit);
    }
}

int melt_experiment_describe(const melt_experiment *e, FILE *out, melt_error *err)
{
    melt_plan **plans = calloc(e->n_workloads ? e->n_workloads : 1, sizeof *plans);
    if (!plans)
        return melt_errorf(err, MELT_ENOMEM, "%s: out of memory", e->path);
    int rc = 0;
    for (size_t i = 0; i < e->n_workloads && rc == 0; i++) {
        const melt_exp_workload *w = &e->workloads[i];
        melt_error werr = {0};
        if (melt_workload_plan(w, MELT_EXP_DEFAULT_N_CTX, &plans[i], &werr) < 0)
            rc = melt_errorf(err, werr.code, "%s:%d:%d: workloads[%zu]: %s", e->path, w->line,
                             w->col, w->item, werr.msg);
    }
    if (rc == 0) {
        size_t n = melt_experiment_n_cells(e);
        fprintf(out, "# experiment %s (%s): %zu cells, %d repetitions + %d warm-up each\n",
                e->name, e->path, n, e->repetitions, e->warmup);
        fprintf(out, "# cooldown: below %g C, wait %g..%g s; sampling: temperature=%g top_k=%d "
               "top_p=%g min_p=%g repeat_penalty=%g repeat_last_n=%d seed=%llu\n",
               e->cooldown.max_temp_c, e->cooldown.min_wait_s, e->cooldown.max_wait_s,
               (double)e->sampling.temperature, (int)e->sampling.top_k,
               (double)e->sampling.top_p, (double)e->sampling.min_p,
               (double)e->sampling.repeat_penalty, (int)e->sampling.repeat_last_n,
               (unsigned long long)e->sampling.seed);
        fprintf(out, "# probes:");
        for (size_t i = 0; i < e->n_probes; i++)
            fprintf(out, " %s@%gHz", e->probes[i].name, e->probes[i].rate_hz);
        fprintf(out, "%s\n", e->n_probes ? "" : " none");
        melt_cell c;
        for (size_t i = 0; melt_experiment_cell(e, i, &c); i++) {
            const melt_exp_engine *g = c.engine;
            fprintf(out, "%4zu  %s  transport=%s threads=", i + 1, c.id,
                   melt_transport_name(c.device->transport));
            if (g->n_threads)
                fprintf(out, "%d", g->n_threads);
            else
                fprintf(out, "all");
            fprintf(out, " context=%d batch=%d kv=%s ", g->n_ctx, g->n_batch,
                   g->kv_type == MELT_KV_F32 ? "f32" : "f16");
            if (strcmp(g->backend, "builtin") != 0)
                print_backend(out, g);
            print_model(out, c.model);
            fputc(' ', out);
            print_workload(out, c.workload, plans[c.workload - e->workloads], g->n_ctx);
            fputc('\n', out);
        }
    }
    for (size_t i = 0; i < e->n_workloads; i++)
        melt_plan_free(plans[i]);
    free(plans);
    return rc;
}

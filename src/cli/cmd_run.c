/* melt run FILE: run an experiment file (the runner, melt/runner.h), or
 * with --dry-run validate it, load every workload and list the cells. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "melt/experiment.h"
#include "melt/runner.h"
#include "melt/workload.h"

void usage_run(FILE *out)
{
    fputs("usage: melt run FILE [OPTIONS]\n"
          "Run the experiment FILE (YAML, see docs/experiment.md): every cell of\n"
          "devices x engines x models x workloads, with its warm-up and repetitions,\n"
          "one melt-agent process per trial; every event goes into the database.\n\n"
          "  -n, --dry-run        check the file, load the workloads and list the cells\n"
          "                       (index, id, resolved settings); run nothing\n"
          "      --db PATH        results database (default ./melt.db)\n"
          "      --resume [RUN]   reopen RUN (id, 'last' or name; default: the latest\n"
          "                       run of this experiment) and run only the missing trials\n"
          "      --agent PATH     the melt-agent to run (default: $MELT_AGENT, else the\n"
          "                       melt-agent beside this melt)\n"
          "      --models-dir DIR where synth models are generated and reused (default:\n"
          "                       .melt-models/ beside the database)\n"
          "      --idle-ms N      idle baseline before each measured trial (default 500)\n"
          "      --probe-root DIR read probe files below DIR (tests; default /)\n"
          "  -q, --quiet          no progress lines\n"
          "  -h, --help           show this help\n\n"
          "Exit: 0 every trial ok, 1 error, 2 usage, 3 finished but some trials were\n"
          "lost or failed (results untrustworthy), 130 interrupted (resume with --resume).\n",
          out);
}

static void print_model(const melt_exp_model *m)
{
    if (m->source == MELT_MODEL_PATH)
        printf("model=%s", m->path);
    else
        printf("model=synth:%s/%s/seed=%llu", m->preset, melt_ftype_name(m->ftype),
               (unsigned long long)m->seed);
}

static void print_workload(const melt_exp_workload *w, const melt_plan *plan, int n_ctx)
{
    printf("workload=%s", melt_workload_kind_name(w->kind));
    if (w->kind == MELT_WORKLOAD_SYNTHETIC) {
        printf(" pp=%d tg=%d", (int)w->prompt_tokens, (int)w->gen_tokens);
        return;
    }
    size_t turns = 0;
    for (size_t i = 0; i < plan->n_convs; i++)
        turns += plan->convs[i].n_turns;
    printf(" file=%s", w->path);
    if (w->kind == MELT_WORKLOAD_PROMPTS)
        printf(" format=%s prompts=%zu", w->jsonl ? "jsonl" : "text", plan->n_convs);
    else
        printf(" conversations=%zu turns=%zu", plan->n_convs, turns);
    printf(" max_gen_tokens=%d", (int)w->max_gen_tokens);
    if (w->kind == MELT_WORKLOAD_CONVERSATIONS) {
        int limit = w->max_context_tokens > 0 && w->max_context_tokens < n_ctx
                        ? w->max_context_tokens : n_ctx;
        printf(" max_context_tokens=%d", limit);
    }
}

static int dry_run(const melt_experiment *e)
{
    melt_error err = {0};
    melt_plan **plans = calloc(e->n_workloads, sizeof *plans);
    if (!plans) {
        fprintf(stderr, "melt: run: out of memory\n");
        return CLI_ERROR;
    }
    int rc = CLI_OK;
    for (size_t i = 0; i < e->n_workloads && rc == CLI_OK; i++) {
        const melt_exp_workload *w = &e->workloads[i];
        if (melt_workload_plan(w, MELT_EXP_DEFAULT_N_CTX, &plans[i], &err) < 0) {
            fprintf(stderr, "melt: %s:%d:%d: workloads[%zu]: %s\n", e->path, w->line, w->col,
                    w->item, err.msg);
            rc = CLI_ERROR;
        }
    }
    if (rc == CLI_OK) {
        size_t n = melt_experiment_n_cells(e);
        printf("# experiment %s (%s): %zu cells, %d repetitions + %d warm-up each\n", e->name,
               e->path, n, e->repetitions, e->warmup);
        printf("# cooldown: below %g C, wait %g..%g s; sampling: temperature=%g top_k=%d "
               "top_p=%g min_p=%g repeat_penalty=%g repeat_last_n=%d seed=%llu\n",
               e->cooldown.max_temp_c, e->cooldown.min_wait_s, e->cooldown.max_wait_s,
               (double)e->sampling.temperature, (int)e->sampling.top_k,
               (double)e->sampling.top_p, (double)e->sampling.min_p,
               (double)e->sampling.repeat_penalty, (int)e->sampling.repeat_last_n,
               (unsigned long long)e->sampling.seed);
        printf("# probes:");
        for (size_t i = 0; i < e->n_probes; i++)
            printf(" %s@%gHz", e->probes[i].name, e->probes[i].rate_hz);
        printf("%s\n", e->n_probes ? "" : " none");
        melt_cell c;
        for (size_t i = 0; melt_experiment_cell(e, i, &c); i++) {
            const melt_exp_engine *g = c.engine;
            printf("%4zu  %s  transport=%s threads=", i + 1, c.id,
                   melt_transport_name(c.device->transport));
            if (g->n_threads)
                printf("%d", g->n_threads);
            else
                printf("all");
            printf(" context=%d batch=%d kv=%s ", g->n_ctx, g->n_batch,
                   g->kv_type == MELT_KV_F32 ? "f32" : "f16");
            print_model(c.model);
            putchar(' ');
            print_workload(c.workload, plans[c.workload - e->workloads], g->n_ctx);
            putchar('\n');
        }
    }
    for (size_t i = 0; i < e->n_workloads; i++)
        melt_plan_free(plans[i]);
    free(plans);
    return rc;
}

/* SIGINTs (and SIGTERMs) so far: the first stops the current trial
 * cleanly, the second kills the agent (melt/runner.h). A signal handler
 * can reach nothing else. */
static volatile sig_atomic_t g_interrupts;

static void on_interrupt(int sig)
{
    (void)sig;
    if (g_interrupts < 100)
        g_interrupts++;
}

enum { OPT_DB = CLI_OPT_FREE, OPT_RESUME, OPT_AGENT, OPT_MODELS_DIR, OPT_IDLE, OPT_PROBE_ROOT };

int cmd_run(int argc, char **argv)
{
    static const struct option opts[] = {
        {"dry-run", no_argument, NULL, 'n'},
        {"db", required_argument, NULL, OPT_DB},
        {"resume", optional_argument, NULL, OPT_RESUME},
        {"agent", required_argument, NULL, OPT_AGENT},
        {"models-dir", required_argument, NULL, OPT_MODELS_DIR},
        {"idle-ms", required_argument, NULL, OPT_IDLE},
        {"probe-root", required_argument, NULL, OPT_PROBE_ROOT},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c, dry = 0;
    melt_runner_params rp = melt_runner_default_params();
    cli_getopt_reset();
    while ((c = cli_getopt(argc, argv, ":nqh", opts, usage_run)) != -1) {
        switch (c) {
        case 'n': dry = 1; break;
        case 'q': rp.quiet = true; break;
        case OPT_DB: rp.db_path = optarg; break;
        case OPT_RESUME:
            rp.resume = true;
            rp.resume_run = optarg;
            break;
        case OPT_AGENT: rp.agent_path = optarg; break;
        case OPT_MODELS_DIR: rp.models_dir = optarg; break;
        case OPT_PROBE_ROOT: rp.probe_root = optarg; break;
        case OPT_IDLE:
            if (!cli_parse_int(optarg, 0, 3600000, &rp.idle_ms))
                return cli_usage_error(usage_run, "run: --idle-ms needs an integer >= 0, got '%s'",
                                       optarg);
            break;
        case 'h': usage_run(stdout); return CLI_OK;
        default: return CLI_USAGE;
        }
    }
    if (optind >= argc)
        return cli_usage_error(usage_run, "run: missing experiment FILE");
    /* `--resume RUN`: the RUN is the argument after FILE */
    if (rp.resume && !rp.resume_run && optind + 2 == argc)
        rp.resume_run = argv[optind + 1];
    else if (optind + 1 < argc)
        return cli_usage_error(usage_run, "run: unexpected argument '%s'", argv[optind + 1]);
    melt_error err = {0};
    melt_experiment *e = NULL;
    if (melt_experiment_load(argv[optind], &e, &err) < 0)
        return cli_fail(&err);
    int rc;
    if (dry) {
        rc = dry_run(e);
    } else {
        struct sigaction sa, old_int, old_term;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_interrupt;   /* no SA_RESTART: waits wake up */
        sigemptyset(&sa.sa_mask);
        g_interrupts = 0;
        sigaction(SIGINT, &sa, &old_int);
        sigaction(SIGTERM, &sa, &old_term);
        rp.interrupts = &g_interrupts;
        rc = melt_runner_run(e, &rp, NULL, &err);
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGTERM, &old_term, NULL);
        if (rc == MELT_RUN_EXIT_ERROR || rc == MELT_RUN_EXIT_UNTRUSTWORTHY)
            fprintf(stderr, "melt: %s\n", err.msg[0] ? err.msg : melt_status_str(err.code));
    }
    melt_experiment_free(e);
    return rc;
}

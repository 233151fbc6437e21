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

static int dry_run(const melt_experiment *e)
{
    melt_error err = {0};
    if (melt_experiment_describe(e, stdout, &err) < 0) {
        fflush(stdout);
        return cli_fail(&err);
    }
    return CLI_OK;
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

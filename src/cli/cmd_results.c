/* melt results SUBCOMMAND: list, show and export stored runs; import a
 * JSON-lines event file as a trial (debugging, tests). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "melt/results.h"
#include "melt/store.h"

enum { OPT_DB = CLI_OPT_FREE, OPT_FORMAT, OPT_RUN, OPT_NAME, OPT_CELL, OPT_REP, OPT_WARMUP };

#define DB_HELP "  --db PATH     the results store (default ./" MELT_STORE_DEFAULT_PATH ")\n"

static void usage_results_ls(FILE *out)
{
    fputs("usage: melt results ls [--db PATH]\n"
          "List the stored runs: id, name, status, start time, cells, trials ok.\n\n"
          DB_HELP
          "  -h, --help    show this help\n", out);
}

static void usage_results_show(FILE *out)
{
    fputs("usage: melt results show [RUN] [--db PATH]\n"
          "Print a run's metadata and, per cell, every metric as mean ± 95% CI over\n"
          "the repetitions, with n (docs/metrics.md). RUN is an id, a name (its\n"
          "latest run) or \"last\" (the default).\n\n"
          DB_HELP
          "  -h, --help    show this help\n", out);
}

static void usage_results_export(FILE *out)
{
    fputs("usage: melt results export [RUN] --format md|csv|json|jsonl [--db PATH] [-o FILE]\n"
          "Write a run's per-cell summaries (n, mean, stddev, ci95, min, median, max of\n"
          "every metric) as a markdown table, CSV, one JSON document or JSON lines\n"
          "(docs/results.md). RUN as for `melt results show`.\n\n"
          "  --format F    md, csv, json or jsonl (required)\n"
          "  -o FILE       write to FILE instead of stdout\n"
          DB_HELP
          "  -h, --help    show this help\n", out);
}

static void usage_results_import(FILE *out)
{
    fputs("usage: melt results import-events --cell ID [--run RUN | --name NAME] [--rep N]\n"
          "                                  [--warmup] [--db PATH] FILE...\n"
          "Store JSON-lines event files (the agent's output, docs/agent-protocol.md)\n"
          "as trials of a cell: each FILE is one trial, repetitions N, N+1, ... Its\n"
          "status is the \"bye\" line's (lost without one). For debugging and tests.\n"
          "Prints the run id.\n\n"
          "  --cell ID     the cell's id (added to the run when new)\n"
          "  --run RUN     add to this run (id, name or \"last\"); default a new run\n"
          "  --name NAME   name of the new run (default \"import\")\n"
          "  --rep N       repetition of the first FILE (default 0)\n"
          "  --warmup      mark the trials as warm-up (not summarized)\n"
          DB_HELP
          "  -h, --help    show this help\n", out);
}

static int open_store(const char *db, melt_store **s)
{
    melt_error err = {0};
    if (melt_store_open(db, s, &err) < 0)
        return cli_fail(&err);
    return CLI_OK;
}

static int cmd_results_ls(int argc, char **argv)
{
    static const struct option opts[] = {
        {"db", required_argument, NULL, OPT_DB},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *db = NULL;
    int c;
    cli_getopt_reset();
    while ((c = cli_getopt(argc, argv, ":h", opts, usage_results_ls)) != -1) {
        switch (c) {
        case OPT_DB: db = optarg; break;
        case 'h': usage_results_ls(stdout); return CLI_OK;
        default: return CLI_USAGE;
        }
    }
    if (optind != argc)
        return cli_usage_error(usage_results_ls, "results ls: unexpected argument '%s'",
                               argv[optind]);
    melt_store *s;
    int rc = open_store(db, &s);
    if (rc != CLI_OK)
        return rc;
    melt_error err = {0};
    melt_run_info *runs = NULL;
    size_t n = 0;
    if (melt_store_list_runs(s, &runs, &n, &err) < 0) {
        melt_store_close(s);
        return cli_fail(&err);
    }
    printf("%-5s %-24s %-12s %-24s %5s %9s  %s\n", "id", "name", "status", "started", "cells",
           "trials ok", "host");
    for (size_t k = 0; k < n; k++) {
        char trials[48];
        snprintf(trials, sizeof trials, "%lld/%lld", (long long)runs[k].n_trials_ok,
                 (long long)runs[k].n_trials);
        printf("%-5lld %-24s %-12s %-24s %5lld %9s  %s\n", (long long)runs[k].id, runs[k].name,
               runs[k].status, runs[k].started, (long long)runs[k].n_cells, trials,
               runs[k].host);
    }
    free(runs);
    melt_store_close(s);
    return CLI_OK;
}

/* show and export: RUN, --db, and for export --format and -o. */
static int show_or_export(int argc, char **argv, bool export_)
{
    static const struct option opts[] = {
        {"db", required_argument, NULL, OPT_DB},
        {"format", required_argument, NULL, OPT_FORMAT},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    void (*usage)(FILE *) = export_ ? usage_results_export : usage_results_show;
    const char *db = NULL, *path = NULL, *format = NULL;
    int c;
    cli_getopt_reset();
    while ((c = cli_getopt(argc, argv, export_ ? ":ho:" : ":h", opts, usage)) != -1) {
        switch (c) {
        case OPT_DB: db = optarg; break;
        case OPT_FORMAT:
            if (!export_)
                return cli_usage_error(usage, "results show: --format is for export");
            format = optarg;
            break;
        case 'o': path = optarg; break;
        case 'h': usage(stdout); return CLI_OK;
        default: return CLI_USAGE;
        }
    }
    if (argc - optind > 1)
        return cli_usage_error(usage, "%s: expected at most one RUN", argv[0]);
    const char *spec = optind < argc ? argv[optind] : "last";
    enum melt_results_format fmt = MELT_RESULTS_TEXT;
    if (export_) {
        if (!format)
            return cli_usage_error(usage, "results export: --format is required");
        if (!melt_results_format_parse(format, &fmt) || fmt == MELT_RESULTS_TEXT)
            return cli_usage_error(usage, "results export: unknown format '%s' "
                                   "(md, csv, json, jsonl)", format);
    }
    melt_store *s;
    int rc = open_store(db, &s);
    if (rc != CLI_OK)
        return rc;
    melt_error err = {0};
    melt_run_info run;
    melt_results *r = NULL;
    if (melt_store_find_run(s, spec, &run, &err) < 0 ||
        melt_results_compute(s, run.id, &r, &err) < 0) {
        melt_store_close(s);
        return cli_fail(&err);
    }
    melt_store_close(s);
    FILE *out = stdout;
    if (path && !(out = fopen(path, "w"))) {
        melt_results_free(r);
        melt_errorf(&err, MELT_EIO, "%s: cannot create", path);
        return cli_fail(&err);
    }
    rc = melt_results_write(out, r, fmt, &err);
    if (out != stdout && fclose(out) != 0 && rc == 0)
        rc = melt_errorf(&err, MELT_EIO, "%s: write failed", path);
    melt_results_free(r);
    return rc < 0 ? cli_fail(&err) : CLI_OK;
}

static int cmd_results_show(int argc, char **argv) { return show_or_export(argc, argv, false); }
static int cmd_results_export(int argc, char **argv) { return show_or_export(argc, argv, true); }

static int cmd_results_import(int argc, char **argv)
{
    static const struct option opts[] = {
        {"db", required_argument, NULL, OPT_DB},
        {"run", required_argument, NULL, OPT_RUN},
        {"name", required_argument, NULL, OPT_NAME},
        {"cell", required_argument, NULL, OPT_CELL},
        {"rep", required_argument, NULL, OPT_REP},
        {"warmup", no_argument, NULL, OPT_WARMUP},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *db = NULL, *run_spec = NULL, *name = "import", *cell_id = NULL;
    int rep = 0, c;
    bool warmup = false;
    cli_getopt_reset();
    while ((c = cli_getopt(argc, argv, ":h", opts, usage_results_import)) != -1) {
        switch (c) {
        case OPT_DB: db = optarg; break;
        case OPT_RUN: run_spec = optarg; break;
        case OPT_NAME: name = optarg; break;
        case OPT_CELL: cell_id = optarg; break;
        case OPT_REP:
            if (!cli_parse_int(optarg, 0, 1000000, &rep))
                return cli_usage_error(usage_results_import, "results import-events: --rep "
                                       "wants an integer >= 0, not '%s'", optarg);
            break;
        case OPT_WARMUP: warmup = true; break;
        case 'h': usage_results_import(stdout); return CLI_OK;
        default: return CLI_USAGE;
        }
    }
    if (!cell_id || !*cell_id)
        return cli_usage_error(usage_results_import, "results import-events: --cell is required");
    if (optind >= argc)
        return cli_usage_error(usage_results_import, "results import-events: missing FILE");
    melt_store *s;
    int rc = open_store(db, &s);
    if (rc != CLI_OK)
        return rc;
    melt_error err = {0};
    int64_t run_id, cell;
    if (run_spec) {
        melt_run_info ri = {0};
        rc = melt_store_find_run(s, run_spec, &ri, &err);
        run_id = ri.id;
    } else {
        melt_run_meta meta = {.name = name};
        rc = melt_store_begin_run(s, &meta, &run_id, &err);
    }
    melt_cell_meta cm = {.cell_id = cell_id};
    if (rc == 0)
        rc = melt_store_add_cell(s, run_id, &cm, &cell, &err);
    for (int k = optind; rc == 0 && k < argc; k++) {
        int64_t trial;
        size_t n_ev = 0, n_bad = 0;
        char bye[16];
        rc = melt_store_begin_trial(s, cell, rep + (k - optind), warmup, &trial, &err);
        if (rc == 0)
            rc = melt_store_import_jsonl(s, trial, argv[k], stderr, &n_ev, &n_bad, bye, &err);
        if (rc == 0) {
            enum melt_trial_status st = MELT_TRIAL_LOST;
            if (bye[0] && !melt_trial_status_parse(bye, &st))
                st = MELT_TRIAL_ERROR;
            if (st == MELT_TRIAL_RUNNING)
                st = MELT_TRIAL_LOST;
            rc = melt_store_end_trial(s, trial, st, &err);
            fprintf(stderr, "melt: %s: %zu events as trial %lld (repetition %d, %s)%s\n",
                    argv[k], n_ev, (long long)trial, rep + (k - optind),
                    melt_trial_status_name(st), n_bad ? ", some lines skipped" : "");
        }
    }
    if (rc == 0 && !run_spec)
        rc = melt_store_end_run(s, run_id, "ok", &err);
    if (rc == 0)
        rc = melt_results_update(s, run_id, &err);
    melt_store_close(s);
    if (rc < 0)
        return cli_fail(&err);
    printf("%lld\n", (long long)run_id);
    return CLI_OK;
}

const cli_cmd cli_results_commands[] = {
    {"ls", "list the stored runs", cmd_results_ls, usage_results_ls, NULL},
    {"show", "print a run's per-cell summary table", cmd_results_show, usage_results_show, NULL},
    {"export", "write a run's summaries as md, csv, json or jsonl", cmd_results_export,
     usage_results_export, NULL},
    {"events", "write a run's events as JSON lines, with host-aligned times",
     cmd_results_events, usage_results_events, NULL},
    {"import-events", "store JSON-lines event files as trials (debugging)",
     cmd_results_import, usage_results_import, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

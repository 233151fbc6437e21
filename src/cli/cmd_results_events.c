/* melt results events [RUN] [--db PATH] [-o FILE]: every stored event of a
 * run as JSON lines, each with its device time (t_ns, as the agent wrote
 * it) and, where the trial has a clock (docs/devices.md, "Clock sync"),
 * the host time host_ns = t_ns + the trial's offset, with the offset's
 * uncertainty; for lining events up with a power monitor or other hosts. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "melt/clock_sync.h"
#include "melt/event.h"
#include "melt/store.h"

void usage_results_events(FILE *out)
{
    fputs("usage: melt results events [RUN] [--db PATH] [-o FILE]\n"
          "Write every stored event of RUN (id, 'last' or a name; default: the latest\n"
          "run) as JSON lines: the agent protocol's line (docs/agent-protocol.md) with\n"
          "\"cell\", \"trial\", \"rep\", \"warmup\" in front and, when the trial's clock was\n"
          "synced, \"host_ns\" (t_ns on the host's CLOCK_MONOTONIC) and\n"
          "\"host_uncertainty_ns\". t_ns stays the device's time.\n\n"
          "      --db PATH   results database (default ./melt.db)\n"
          "  -o FILE         write there instead of stdout\n"
          "  -h, --help      show this help\n", out);
}

/* One trial's events, each line prefixed. */
static int write_trial(FILE *out, melt_store *s, const char *qcell, const melt_trial_info *t,
                       melt_error *err)
{
    melt_event *ev = NULL;
    size_t n = 0;
    int rc = melt_store_get_events(s, t->id, &ev, &n, err);
    char line[2048];
    for (size_t i = 0; rc == 0 && i < n; i++) {
        size_t len = melt_event_format(&ev[i], line, sizeof line);
        if (len >= sizeof line || len < 2 || line[0] != '{')
            continue;   /* cannot happen with the stored field sizes */
        fprintf(out, "{\"cell\":%s,\"trial\":%lld,\"rep\":%d,\"warmup\":%s,", qcell,
                (long long)t->id, t->repetition, t->warmup ? "true" : "false");
        if (t->has_clock)
            fprintf(out, "\"host_ns\":%lld,\"host_uncertainty_ns\":%lld,",
                    (long long)melt_clock_to_host_ns(t, ev[i].t_ns),
                    (long long)(t->clock_rtt_ns / 2));
        fwrite(line + 1, 1, len - 1, out);
    }
    free(ev);
    return rc;
}

enum { OPT_DB = CLI_OPT_FREE };

int cmd_results_events(int argc, char **argv)
{
    static const struct option opts[] = {
        {"db", required_argument, NULL, OPT_DB},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *db = NULL, *path = NULL;
    int c;
    cli_getopt_reset();
    while ((c = cli_getopt(argc, argv, ":ho:", opts, usage_results_events)) != -1) {
        switch (c) {
        case OPT_DB: db = optarg; break;
        case 'o': path = optarg; break;
        case 'h': usage_results_events(stdout); return CLI_OK;
        default: return CLI_USAGE;
        }
    }
    if (optind + 1 < argc)
        return cli_usage_error(usage_results_events, "results events: unexpected argument '%s'",
                               argv[optind + 1]);
    const char *spec = optind < argc ? argv[optind] : "last";
    melt_error err = {0};
    melt_store *s = NULL;
    melt_run_info run;
    melt_cell_info *cells = NULL;
    size_t n_cells = 0;
    FILE *out = stdout;
    int rc = melt_store_open(db, &s, &err);
    if (rc == 0)
        rc = melt_store_find_run(s, spec, &run, &err);
    if (rc == 0)
        rc = melt_store_list_cells(s, run.id, &cells, &n_cells, &err);
    if (rc == 0 && path && !(out = fopen(path, "w")))
        rc = melt_errorf(&err, MELT_EIO, "%s: %s", path, strerror(errno));
    for (size_t k = 0; rc == 0 && k < n_cells; k++) {
        melt_trial_info *t = NULL;
        size_t n_t = 0;
        json_t *js = json_string(cells[k].cell_id);
        char *qcell = js ? json_dumps(js, JSON_ENCODE_ANY) : NULL;
        json_decref(js);
        rc = qcell ? melt_store_list_trials(s, cells[k].rowid, &t, &n_t, &err)
                   : melt_errorf(&err, MELT_ENOMEM, "out of memory");
        for (size_t i = 0; rc == 0 && i < n_t; i++)
            rc = write_trial(out, s, qcell, &t[i], &err);
        free(t);
        free(qcell);
    }
    if (out != stdout && out && fclose(out) != 0 && rc == 0)
        rc = melt_errorf(&err, MELT_EIO, "%s: %s", path, strerror(errno));
    melt_store_free_cells(cells, n_cells);
    melt_store_close(s);
    return rc < 0 ? cli_fail(&err) : CLI_OK;
}

/* melt report [RUN] [--db PATH] [-o FILE]: the HTML report of a stored run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "melt/report.h"
#include "melt/store.h"

enum { OPT_DB = CLI_OPT_FREE };

void usage_report(FILE *out)
{
    fputs("usage: melt report [RUN] [--db PATH] [-o FILE]\n"
          "Write one self-contained HTML file (inline CSS and SVG charts, no script,\n"
          "nothing loaded from the network) for a stored run: its metadata, the\n"
          "summary table (mean ± 95% CI per cell), tok/s and energy per token by cell,\n"
          "temperature and power over time, the inter-token latency CDF\n"
          "(docs/report.md). RUN is an id, a name (its latest run) or \"last\" (the\n"
          "default).\n\n"
          "  -o FILE       the HTML file (default report.html; \"-\" for stdout)\n"
          "  --db PATH     the results store (default ./" MELT_STORE_DEFAULT_PATH ")\n"
          "  -h, --help    show this help\n", out);
}

int cmd_report(int argc, char **argv)
{
    static const struct option opts[] = {
        {"db", required_argument, NULL, OPT_DB},
        {"output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *db = NULL, *path = "report.html";
    int c;
    cli_getopt_reset();
    while ((c = cli_getopt(argc, argv, ":ho:", opts, usage_report)) != -1) {
        switch (c) {
        case OPT_DB: db = optarg; break;
        case 'o': path = optarg; break;
        case 'h': usage_report(stdout); return CLI_OK;
        default: return CLI_USAGE;
        }
    }
    if (argc - optind > 1)
        return cli_usage_error(usage_report, "report: expected at most one RUN");
    if (!*path)
        return cli_usage_error(usage_report, "report: -o needs a file name");
    const char *spec = optind < argc ? argv[optind] : "last";

    melt_error err = {0};
    melt_store *s = NULL;
    melt_run_info run;
    if (melt_store_open(db, &s, &err) < 0)
        return cli_fail(&err);
    if (melt_store_find_run(s, spec, &run, &err) < 0) {
        melt_store_close(s);
        return cli_fail(&err);
    }
    bool to_stdout = strcmp(path, "-") == 0;
    /* Write beside the target, then rename: a failed report leaves no
     * half-written file behind. */
    size_t tlen = strlen(path) + 8;
    char *tmp = to_stdout ? NULL : malloc(tlen);
    FILE *out = stdout;
    if (!to_stdout) {
        if (!tmp) {
            melt_store_close(s);
            melt_errorf(&err, MELT_ENOMEM, "report: out of memory");
            return cli_fail(&err);
        }
        snprintf(tmp, tlen, "%s.tmp", path);
        if (!(out = fopen(tmp, "w"))) {
            melt_store_close(s);
            free(tmp);
            melt_errorf(&err, MELT_EIO, "%s: cannot create", path);
            return cli_fail(&err);
        }
    }
    int rc = melt_report_write(s, run.id, out, &err);
    melt_store_close(s);
    if (!to_stdout) {
        if (fclose(out) != 0 && rc == 0)
            rc = melt_errorf(&err, MELT_EIO, "%s: write failed", path);
        if (rc == 0 && rename(tmp, path) != 0)
            rc = melt_errorf(&err, MELT_EIO, "%s: cannot rename %s to it", path, tmp);
        if (rc < 0)
            remove(tmp);
        free(tmp);
    }
    if (rc < 0)
        return cli_fail(&err);
    if (!to_stdout)
        printf("%s\n", path);
    return CLI_OK;
}

/* melt import SOURCE: other tools' results into the store. */
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "melt/import.h"
#include "melt/results.h"
#include "melt/store.h"

enum { OPT_DB = CLI_OPT_FREE, OPT_NAME };

static void usage_import_llama_bench(FILE *out)
{
    fputs("usage: melt import llama-bench FILE [--db PATH] [--name NAME]\n"
          "Store llama-bench's -o json or -o jsonl output (told apart by the first\n"
          "character) as a new run: one cell per model x test x threads entry, one\n"
          "trial per sample, with the figures avg_ts, stddev_ts, avg_ns, stddev_ns,\n"
          "sample_ts, sample_ns (and prefill_tps for pp tests, decode_tps for tg\n"
          "tests). A file that does not parse or lacks a field stores nothing.\n"
          "Prints the run id (docs/results.md).\n\n"
          "  --db PATH     the results store (default ./" MELT_STORE_DEFAULT_PATH ")\n"
          "  --name NAME   the run's name (default \"llama-bench\")\n"
          "  -h, --help    show this help\n", out);
}

static int cmd_import_llama_bench(int argc, char **argv)
{
    static const struct option opts[] = {
        {"db", required_argument, NULL, OPT_DB},
        {"name", required_argument, NULL, OPT_NAME},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *db = NULL, *name = NULL;
    int c;
    cli_getopt_reset();
    while ((c = cli_getopt(argc, argv, ":h", opts, usage_import_llama_bench)) != -1) {
        switch (c) {
        case OPT_DB: db = optarg; break;
        case OPT_NAME: name = optarg; break;
        case 'h': usage_import_llama_bench(stdout); return CLI_OK;
        default: return CLI_USAGE;
        }
    }
    if (argc - optind != 1)
        return cli_usage_error(usage_import_llama_bench, "import llama-bench: expected one FILE");
    const char *path = argv[optind];
    melt_error err = {0};
    melt_store *s = NULL;
    if (melt_store_open(db, &s, &err) < 0)
        return cli_fail(&err);
    int64_t run_id = 0;
    size_t n = 0;
    int rc = melt_import_llama_bench(s, path, name, &run_id, &n, &err);
    if (rc == 0)
        rc = melt_results_update(s, run_id, &err);
    melt_store_close(s);
    if (rc < 0)
        return cli_fail(&err);
    fprintf(stderr, "melt: %s: %zu llama-bench entries as run %lld\n", path, n,
            (long long)run_id);
    printf("%lld\n", (long long)run_id);
    return CLI_OK;
}

const cli_cmd cli_import_commands[] = {
    {"llama-bench", "store llama-bench JSON / JSONL results as a run", cmd_import_llama_bench,
     usage_import_llama_bench, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

/* melt model info FILE [--json] */
#include <stdio.h>

#include "cli/cli.h"
#include "melt/gguf.h"
#include "melt/model.h"

void usage_model_info(FILE *out)
{
    fputs("usage: melt model info FILE [--json]\n"
          "Summarize a GGUF model: architecture, name, parameters, size, bits per\n"
          "weight, context, dimensions, heads, vocabulary, special tokens, chat\n"
          "template and a histogram of tensor types.\n\n"
          "  --json     print one JSON object (keys in docs/model-info.md)\n"
          "  -h, --help show this help\n", out);
}

int cmd_model_info(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int json = 0, c;
    cli_getopt_reset();
    while ((c = cli_getopt(argc, argv, ":h", opts, usage_model_info)) != -1) {
        switch (c) {
        case 'j': json = 1; break;
        case 'h': usage_model_info(stdout); return CLI_OK;
        default: return CLI_USAGE;
        }
    }
    if (optind != argc - 1)
        return cli_usage_error(usage_model_info, optind >= argc
                               ? "model info: missing FILE" : "model info: expected one FILE");
    melt_error err = {0};
    melt_gguf *g = NULL;
    if (melt_gguf_open(argv[optind], &g, &err) < 0)
        return cli_fail(&err);
    melt_model_info info;
    int rc = melt_model_info_get(g, &info, &err);
    melt_gguf_close(g);
    if (rc < 0)
        return cli_fail(&err);
    if (json) {
        if (melt_model_info_print_json(&info, stdout) < 0)
            return CLI_ERROR;
    } else {
        melt_model_info_print(&info, stdout);
    }
    return CLI_OK;
}

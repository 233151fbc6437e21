/* melt model SUBCOMMAND — dispatch to cmd_model_*.c */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static const cli_cmd model_commands[] = {
    {"info", "summarize a GGUF model file", cmd_model_info, usage_model_info},
    {"synth", "write a seeded random-weight model of a real shape", cmd_model_synth,
     usage_model_synth},
    {"quantize", "convert a model's weights to another type", cmd_model_quantize,
     usage_model_quantize},
    {NULL, NULL, NULL, NULL},
};

void usage_model(FILE *out)
{
    fputs("usage: melt model SUBCOMMAND [ARGS...]\n\nsubcommands:\n", out);
    for (const cli_cmd *c = model_commands; c->name; c++)
        fprintf(out, "  %-10s %s\n", c->name, c->summary);
    fputs("\nRun 'melt model SUBCOMMAND --help' for its options.\n", out);
}

int cmd_model(int argc, char **argv)
{
    if (argc < 2)
        return cli_usage_error(usage_model, "model: missing subcommand");
    const char *sub = argv[1];
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0) {
        usage_model(stdout);
        return CLI_OK;
    }
    for (const cli_cmd *c = model_commands; c->name; c++) {
        if (strcmp(c->name, sub) != 0)
            continue;
        if (cli_wants_help(argc - 1, argv + 1)) {
            c->usage(stdout);
            return CLI_OK;
        }
        /* Messages of the subcommand name it as "model SUB". */
        char name[64];
        snprintf(name, sizeof name, "model %s", c->name);
        argv[1] = name;
        return c->run(argc - 1, argv + 1);
    }
    return cli_usage_error(usage_model, "model: unknown subcommand '%s'", sub);
}

/* melt help [COMMAND] */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

void usage_help(FILE *out)
{
    fputs("usage: melt COMMAND [ARGS...]\n"
          "       melt help COMMAND     show a command's options\n"
          "       melt --version        version, build and CPU features\n"
          "\ncommands:\n", out);
    for (const cli_cmd *c = cli_commands; c->name; c++)
        fprintf(out, "  %-10s %s\n", c->name, c->summary);
    fputs("\nRun 'melt COMMAND --help' for the options of a command.\n", out);
}

int cmd_help(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage_help(stdout);
        return CLI_OK;
    }
    const cli_cmd *c = cli_find(cli_commands, argv[1]);
    if (!c)
        return cli_usage_error(usage_help, "unknown command '%s'", argv[1]);
    /* melt help GROUP SUB: the subcommand's own usage */
    if (c->subs && argc > 2) {
        const cli_cmd *sub = cli_find(c->subs, argv[2]);
        if (!sub)
            return cli_usage_error(usage_help, "%s: unknown subcommand '%s'", c->name, argv[2]);
        c = sub;
    }
    if (c->subs)
        cli_group_usage(c, stdout);
    else
        c->usage(stdout);
    return CLI_OK;
}

/* melt — entry point and command table. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

const cli_cmd cli_commands[] = {
    {"model", "inspect, synthesize and quantize model files", cmd_model, usage_model},
    {"tokenize", "turn text into token ids with a GGUF file's tokenizer", cmd_tokenize, usage_tokenize},
    {"version", "print version, build and CPU features", cmd_version, usage_version},
    {"help", "show help for melt or a command", cmd_help, usage_help},
    {NULL, NULL, NULL, NULL},
};

int cli_usage_error(void (*usage)(FILE *), const char *fmt, ...)
{
    va_list ap;
    fputs("melt: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (usage)
        usage(stderr);
    return CLI_USAGE;
}

int cli_fail(const melt_error *err)
{
    fprintf(stderr, "melt: %s\n", err->msg[0] ? err->msg : melt_status_str(err->code));
    return CLI_ERROR;
}

int cli_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            return 0;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
            return 1;
    }
    return 0;
}

int cli_parse_u64(const char *flag, const char *s, unsigned long long *out)
{
    char *end;
    if (!s || !*s || *s == '-')
        return 0;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || *end)
        return 0;
    (void)flag;
    *out = v;
    return 1;
}

static const cli_cmd *find_command(const char *name)
{
    for (const cli_cmd *c = cli_commands; c->name; c++)
        if (strcmp(c->name, name) == 0)
            return c;
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage_help(stderr);
        return CLI_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "--version") == 0 || strcmp(name, "-V") == 0)
        return cmd_version(argc - 1, argv + 1);
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0)
        return cmd_help(argc - 1, argv + 1);
    if (name[0] == '-')
        return cli_usage_error(usage_help, "unknown option '%s'", name);
    const cli_cmd *c = find_command(name);
    if (!c)
        return cli_usage_error(usage_help, "unknown command '%s'", name);
    if (c->usage && cli_wants_help(argc - 1, argv + 1) && c->run != cmd_model) {
        c->usage(stdout);
        return CLI_OK;
    }
    return c->run(argc - 1, argv + 1);
}

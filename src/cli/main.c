/* melt — entry point and command table. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

const cli_cmd cli_commands[] = {
    {"model", "inspect, synthesize and quantize model files", NULL, NULL, cli_model_commands},
    {"tokenize", "turn text into token ids with a GGUF file's tokenizer", cmd_tokenize,
     usage_tokenize, NULL},
    {"generate", "generate text from a prompt with the builtin engine", cmd_generate,
     usage_generate, NULL},
    {"chat", "chat with a model on stdin/stdout, history kept in the KV cache", cmd_chat,
     usage_chat, NULL},
    {"run", "run an experiment file", cmd_run, usage_run, NULL},
    {"devices", "list the devices melt can reach and describe them", cmd_devices, usage_devices, NULL},
    {"eval", "evaluate accuracy: perplexity of a text", NULL, NULL, cli_eval_commands},
    {"results", "list, show and export stored runs", NULL, NULL, cli_results_commands},
    {"report", "write a run's HTML report (charts and summary table)", cmd_report, usage_report,
     NULL},
    {"serve", "serve a model over an OpenAI-compatible HTTP API", cmd_serve, usage_serve, NULL},
    {"bench", "measure engine speed like llama-bench (pp/tg tokens per second)", cmd_bench,
     usage_bench, NULL},
    {"import", "import other tools' results into the store (llama-bench)", NULL, NULL,
     cli_import_commands},
    {"version", "print version, build and CPU features", cmd_version, usage_version, NULL},
    {"help", "show help for melt or a command", cmd_help, usage_help, NULL},
    {NULL, NULL, NULL, NULL, NULL},
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

const cli_cmd *cli_find(const cli_cmd *table, const char *name)
{
    for (const cli_cmd *c = table; c->name; c++)
        if (strcmp(c->name, name) == 0)
            return c;
    return NULL;
}

void cli_group_usage(const cli_cmd *group, FILE *out)
{
    fprintf(out, "usage: melt %s SUBCOMMAND [ARGS...]\n\nsubcommands:\n", group->name);
    for (const cli_cmd *c = group->subs; c->name; c++)
        fprintf(out, "  %-10s %s\n", c->name, c->summary);
    fprintf(out, "\nRun 'melt %s SUBCOMMAND --help' for its options.\n", group->name);
}

/* usage() of a group has no argument to say which group: print it here. */
static void print_usage(const cli_cmd *c, FILE *out)
{
    if (c->subs)
        cli_group_usage(c, out);
    else
        c->usage(out);
}

int cli_dispatch(const cli_cmd *group, int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "melt: %s: missing subcommand\n", group->name);
        cli_group_usage(group, stderr);
        return CLI_USAGE;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0) {
        cli_group_usage(group, stdout);
        return CLI_OK;
    }
    const cli_cmd *c = cli_find(group->subs, sub);
    if (!c) {
        fprintf(stderr, "melt: %s: unknown subcommand '%s'\n", group->name, sub);
        cli_group_usage(group, stderr);
        return CLI_USAGE;
    }
    if (cli_wants_help(argc - 1, argv + 1)) {
        print_usage(c, stdout);
        return CLI_OK;
    }
    /* Messages of the subcommand name it as "GROUP SUB". */
    char name[64];
    snprintf(name, sizeof name, "%s %s", group->name, c->name);
    argv[1] = name;
    return c->subs ? cli_dispatch(c, argc - 1, argv + 1) : c->run(argc - 1, argv + 1);
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
    const cli_cmd *c = cli_find(cli_commands, name);
    if (!c)
        return cli_usage_error(usage_help, "unknown command '%s'", name);
    if (c->subs)
        return cli_dispatch(c, argc - 1, argv + 1);
    if (cli_wants_help(argc - 1, argv + 1)) {
        c->usage(stdout);
        return CLI_OK;
    }
    return c->run(argc - 1, argv + 1);
}

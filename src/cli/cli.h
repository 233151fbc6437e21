/* Command-line front end: the command table and helpers shared by cmd_*.c.
 * A command parses its flags and calls library code; it does no work itself.
 * Exit codes: 0 success, 1 runtime error, 2 usage error. */
#ifndef MELT_CLI_H
#define MELT_CLI_H

#include <stdio.h>

#include "melt/error.h"

enum { CLI_OK = 0, CLI_ERROR = 1, CLI_USAGE = 2 };

typedef struct cli_cmd {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);   /* argv[0] is the command name */
    void (*usage)(FILE *out);
} cli_cmd;

/* Table of top-level commands, NULL-terminated. */
extern const cli_cmd cli_commands[];

/* Print "melt: <message>" plus the usage of cmd to stderr; returns CLI_USAGE. */
int cli_usage_error(void (*usage)(FILE *), const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Print "melt: <err->msg>" to stderr; returns CLI_ERROR. */
int cli_fail(const melt_error *err);
/* True when argv holds -h or --help before any "--". */
int cli_wants_help(int argc, char **argv);
/* Parse a non-negative integer flag value; on failure prints a usage error. */
int cli_parse_u64(const char *flag, const char *s, unsigned long long *out);

#define CLI_DECLARE(name) \
    int cmd_##name(int argc, char **argv); \
    void usage_##name(FILE *out);

CLI_DECLARE(help)
CLI_DECLARE(version)
CLI_DECLARE(model)
CLI_DECLARE(model_info)
CLI_DECLARE(model_synth)
CLI_DECLARE(model_quantize)
CLI_DECLARE(tokenize)



#include <getopt.h>

/* Run getopt_long quietly (our own messages). Returns the option char, -1
 * at the end, or prints a one-line error plus usage and returns '?'
 * (the caller then returns CLI_USAGE). Short options must start with ':'. */
int cli_getopt(int argc, char **argv, const char *shortopts,
               const struct option *longopts, void (*usage)(FILE *));
/* Reset getopt state before parsing a (sub)command's argv. */
void cli_getopt_reset(void);
#endif

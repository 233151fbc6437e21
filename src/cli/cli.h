/* Command-line front end: the command table and helpers shared by cmd_*.c.
 * A command parses its flags and calls library code; it does no work itself.
 * Exit codes: 0 success, 1 runtime error, 2 usage error. */
#ifndef MELT_CLI_H
#define MELT_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "melt/error.h"

enum { CLI_OK = 0, CLI_ERROR = 1, CLI_USAGE = 2 };

typedef struct cli_cmd {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);   /* argv[0] is the command name */
    void (*usage)(FILE *out);
    /* A command group (`melt model info`): its subcommands, NULL-terminated;
     * run and usage then dispatch through cli_dispatch. */
    const struct cli_cmd *subs;
} cli_cmd;

/* Table of top-level commands, NULL-terminated. */
extern const cli_cmd cli_commands[];

/* Print "melt: <message>" plus the usage of cmd to stderr; returns CLI_USAGE. */
int cli_usage_error(void (*usage)(FILE *), const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Run the subcommand argv[1] of group (argv[0] is the group's name): its
 * --help, or its run() with argv[0] renamed "GROUP SUB" for messages. */
int cli_dispatch(const cli_cmd *group, int argc, char **argv);
/* "usage: melt GROUP SUBCOMMAND" and the list of subcommands. */
void cli_group_usage(const cli_cmd *group, FILE *out);
/* The entry named name in a NULL-terminated table, or NULL. */
const cli_cmd *cli_find(const cli_cmd *table, const char *name);
/* Print "melt: <err->msg>" to stderr; returns CLI_ERROR. */
int cli_fail(const melt_error *err);
/* True when argv holds -h or --help before any "--". */
int cli_wants_help(int argc, char **argv);
/* Parse a non-negative integer flag value; returns 0 when s is not one. */
int cli_parse_u64(const char *flag, const char *s, unsigned long long *out);
/* Parse a decimal integer in [lo, hi]; returns 0 when s is not one. */
int cli_parse_int(const char *s, long lo, long hi, int *out);
/* Parse a finite float; returns 0 when s is not one. */
int cli_parse_float(const char *s, float *out);

#define CLI_DECLARE(name) \
    int cmd_##name(int argc, char **argv); \
    void usage_##name(FILE *out);

CLI_DECLARE(help)
CLI_DECLARE(version)
CLI_DECLARE(model_info)
CLI_DECLARE(model_synth)
CLI_DECLARE(model_quantize)
CLI_DECLARE(tokenize)
CLI_DECLARE(generate)
CLI_DECLARE(chat)
CLI_DECLARE(run)
CLI_DECLARE(report)
CLI_DECLARE(serve)
CLI_DECLARE(bench)
CLI_DECLARE(devices)
CLI_DECLARE(results_events)

/* Subcommand tables of the groups (cmd_model.c, cmd_eval.c). */
extern const cli_cmd cli_model_commands[], cli_eval_commands[];
extern const cli_cmd cli_results_commands[];
extern const cli_cmd cli_import_commands[];   /* cmd_import.c */

/* Helpers shared by the commands that run the builtin engine
 * (cli_engine.c). */
struct melt_sampler_params;
struct melt_model;
struct melt_tokenizer;
/* A sampling flag (OPT_TEMP ... OPT_SEED): 1 when opt was one and is set,
 * 0 when opt is not a sampling flag, -1 on a bad value (usage printed). */
enum { OPT_TEMP = 0x100, OPT_TOP_K, OPT_TOP_P, OPT_MIN_P, OPT_REPEAT_PENALTY,
       OPT_REPEAT_LAST_N, OPT_SEED, CLI_OPT_FREE /* first id for a command's own */ };
/* The long options of the sampling flags, for a command's option table. */
#define CLI_SAMPLING_LONGOPTS                                          \
    {"temp", required_argument, NULL, OPT_TEMP},                       \
    {"top-k", required_argument, NULL, OPT_TOP_K},                     \
    {"top-p", required_argument, NULL, OPT_TOP_P},                     \
    {"min-p", required_argument, NULL, OPT_MIN_P},                     \
    {"repeat-penalty", required_argument, NULL, OPT_REPEAT_PENALTY},   \
    {"repeat-last-n", required_argument, NULL, OPT_REPEAT_LAST_N},     \
    {"seed", required_argument, NULL, OPT_SEED}
int cli_sampling_opt(int opt, const char *arg, struct melt_sampler_params *sp,
                     void (*usage)(FILE *));
/* The model's tokenizer; an error names the file. */
int cli_load_tokenizer(const struct melt_model *m, const char *path,
                       struct melt_tokenizer **tok, melt_error *err);
/* The engine flags shared by generate, chat and eval: -m FILE, -t N,
 * -c N, -b N and --kv-type (getopt ids 'm', 't', 'c', 'b', 'K'), and the
 * model, tokenizer and context they open. */
typedef struct cli_engine {
    const char *model_path;
    int n_ctx, n_batch, n_threads;   /* 0 = the library's default */
    int kv_type;                     /* enum melt_kv_type */
    struct melt_model *m;
    struct melt_tokenizer *tok;
    struct melt_context *ctx;
    uint64_t load_ns;                /* model + tokenizer + context */
} cli_engine;
/* Defaults (F16 KV, library defaults for the rest). */
cli_engine cli_engine_defaults(void);
/* 1 when opt is an engine flag (and is set), 0 when it is not one, -1 on a
 * bad value (usage printed, naming cmd). */
int cli_engine_opt(int opt, const char *arg, cli_engine *e, const char *cmd,
                   void (*usage)(FILE *));
/* Load the model and its tokenizer and make a context; errors name the file. */
int cli_engine_open(cli_engine *e, melt_error *err);
void cli_engine_close(cli_engine *e);

/* s[0..n) as a JSON string literal. */
void cli_json_string(FILE *out, const char *s, size_t n);



#include <getopt.h>

/* Run getopt_long quietly (our own messages). Returns the option char, -1
 * at the end, or prints a one-line error plus usage and returns '?'
 * (the caller then returns CLI_USAGE). Short options must start with ':'. */
int cli_getopt(int argc, char **argv, const char *shortopts,
               const struct option *longopts, void (*usage)(FILE *));
/* Reset getopt state before parsing a (sub)command's argv. */
void cli_getopt_reset(void);
#endif

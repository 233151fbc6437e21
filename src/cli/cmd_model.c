/* melt model SUBCOMMAND: the subcommand table; one cmd_model_*.c each. */
#include "cli/cli.h"

const cli_cmd cli_model_commands[] = {
    {"info", "summarize a GGUF model file", cmd_model_info, usage_model_info, NULL},
    {"synth", "write a seeded random-weight model of a real shape", cmd_model_synth,
     usage_model_synth, NULL},
    {"quantize", "convert a model's weights to another type", cmd_model_quantize,
     usage_model_quantize, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

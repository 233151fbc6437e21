/* melt model synth --preset NAME --type TYPE [--seed S] [--vocab FILE] -o FILE */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "melt/model.h"

void usage_model_synth(FILE *out)
{
    fprintf(out,
            "usage: melt model synth --preset NAME --type TYPE [OPTIONS] -o FILE\n"
            "       melt model synth --list\n"
            "Write a deterministic random-weight llama-architecture model of a real\n"
            "shape. Speed does not depend on the weights, so benchmarks need no\n"
            "download. Same preset, type and seed give the same bytes.\n\n"
            "  -p, --preset NAME  model shape (see --list)\n"
            "  -T, --type TYPE    weight type: %s\n"
            "  -s, --seed S       random seed (default 1)\n"
            "      --vocab FILE   copy the tokenizer from this GGUF (default: a byte-level vocab)\n"
            "  -o, --output FILE  where to write the model\n"
            "  -t, --threads N    threads (default: all cores)\n"
            "  -l, --list         list the presets\n"
            "  -q, --quiet        no progress on stderr\n"
            "  -h, --help         show this help\n",
            melt_ftype_names());
}

static void list_presets(void)
{
    printf("%-16s %8s %6s %5s %5s %6s %7s  %s\n", "preset", "params", "embd", "layer",
           "head", "kvhead", "vocab", "description");
    for (const melt_synth_preset *p = melt_synth_presets(); p->name; p++) {
        double m = (double)melt_synth_param_count(p, p->n_vocab) / 1e6;
        printf("%-16s %7.1fM %6u %5u %5u %6u %7u  %s\n", p->name, m, p->n_embd,
               p->n_layer, p->n_head, p->n_head_kv, p->n_vocab, p->description);
    }
}

int cmd_model_synth(int argc, char **argv)
{
    static const struct option opts[] = {
        {"preset", required_argument, NULL, 'p'}, {"type", required_argument, NULL, 'T'},
        {"seed", required_argument, NULL, 's'},   {"vocab", required_argument, NULL, 'V'},
        {"output", required_argument, NULL, 'o'}, {"threads", required_argument, NULL, 't'},
        {"list", no_argument, NULL, 'l'},         {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    melt_synth_params p = melt_synth_default_params();
    const char *type = NULL, *out = NULL;
    unsigned long long n;
    int c, quiet = 0;
    cli_getopt_reset();
    while ((c = cli_getopt(argc, argv, ":p:T:s:o:t:lqh", opts, usage_model_synth)) != -1) {
        switch (c) {
        case 'p': p.preset = optarg; break;
        case 'T': type = optarg; break;
        case 'V': p.vocab_path = optarg; break;
        case 'o': out = optarg; break;
        case 'q': quiet = 1; break;
        case 's':
            if (!cli_parse_u64("--seed", optarg, &n))
                return cli_usage_error(usage_model_synth, "model synth: bad --seed '%s'", optarg);
            p.seed = n;
            break;
        case 't':
            if (!cli_parse_u64("--threads", optarg, &n) || n > 1024)
                return cli_usage_error(usage_model_synth, "model synth: bad --threads '%s'", optarg);
            p.n_threads = (int)n;
            break;
        case 'l': list_presets(); return CLI_OK;
        case 'h': usage_model_synth(stdout); return CLI_OK;
        default: return CLI_USAGE;
        }
    }
    if (optind < argc)
        return cli_usage_error(usage_model_synth, "model synth: unexpected argument '%s'", argv[optind]);
    if (!p.preset)
        return cli_usage_error(usage_model_synth, "model synth: --preset is required");
    if (!type)
        return cli_usage_error(usage_model_synth, "model synth: --type is required");
    if (!out)
        return cli_usage_error(usage_model_synth, "model synth: -o FILE is required");
    if (!melt_synth_find_preset(p.preset))
        return cli_usage_error(usage_model_synth,
                               "model synth: unknown preset '%s' (see melt model synth --list)", p.preset);
    if (!melt_ftype_parse(type, &p.ftype))
        return cli_usage_error(usage_model_synth, "model synth: unknown type '%s' (one of %s)", type,
                               melt_ftype_names());
    p.progress = !quiet && isatty(STDERR_FILENO);
    melt_error err = {0};
    if (melt_model_synth(&p, out, &err) < 0)
        return cli_fail(&err);
    return CLI_OK;
}

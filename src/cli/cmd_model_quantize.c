/* melt model quantize IN OUT TYPE */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "cli/cli.h"
#include "melt/quant.h"

void usage_model_quantize(FILE *out)
{
    fprintf(out,
            "usage: melt model quantize [OPTIONS] IN OUT TYPE\n"
            "Write IN (a GGUF with F32, F16 or BF16 weights) to OUT with its weights\n"
            "in TYPE. Metadata is copied; norms and other 1-D tensors stay F32.\n"
            "Same input and TYPE give the same tensor bytes as llama-quantize.\n\n"
            "TYPE: %s\n"
            "  q4_k, q5_k   every weight matrix in that type (llama-quantize --pure Q4_K_S/Q5_K_S)\n"
            "  q4_k_m, q5_k_m  llama.cpp's mixes (output, some attn_v/ffn_down in q6_K)\n\n"
            "  -t, --threads N  threads (default: all cores)\n"
            "  -v, --verbose    one line per tensor on stderr (default when stderr is a terminal)\n"
            "  -q, --quiet      no per-tensor lines\n"
            "  -h, --help       show this help\n",
            melt_ftype_names());
}

int cmd_model_quantize(int argc, char **argv)
{
    static const struct option opts[] = {
        {"threads", required_argument, NULL, 't'},
        {"verbose", no_argument, NULL, 'v'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    melt_quantize_params params = melt_quantize_default_params();
    params.verbose = isatty(STDERR_FILENO); /* progress for long conversions */
    unsigned long long n;
    int c;
    cli_getopt_reset();
    while ((c = cli_getopt(argc, argv, ":t:vqh", opts, usage_model_quantize)) != -1) {
        switch (c) {
        case 't':
            if (!cli_parse_u64("--threads", optarg, &n) || n > 1024)
                return cli_usage_error(usage_model_quantize,
                                       "model quantize: bad --threads '%s'", optarg);
            params.n_threads = (int)n;
            break;
        case 'v': params.verbose = true; break;
        case 'q': params.verbose = false; break;
        case 'h': usage_model_quantize(stdout); return CLI_OK;
        default: return CLI_USAGE;
        }
    }
    if (argc - optind != 3)
        return cli_usage_error(usage_model_quantize,
                               "model quantize: expected IN OUT TYPE, got %d argument(s)",
                               argc - optind);
    enum melt_ftype ftype;
    if (!melt_ftype_parse(argv[optind + 2], &ftype))
        return cli_usage_error(usage_model_quantize, "model quantize: unknown TYPE '%s' (one of %s)",
                               argv[optind + 2], melt_ftype_names());
    melt_error err = {0};
    if (melt_model_quantize(argv[optind], argv[optind + 1], ftype, &params, &err) < 0)
        return cli_fail(&err);
    return CLI_OK;
}

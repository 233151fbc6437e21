/* melt eval SUBCOMMAND — accuracy evaluation: ppl (kld, mc to come). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "melt/fs.h"
#include "engine/profile.h"
#include "melt/engine.h"
#include "melt/eval.h"
#include "melt/gguf.h"
#include "melt/tokenizer.h"

static int cmd_eval_ppl(int argc, char **argv);
static void usage_eval_ppl(FILE *out);

const cli_cmd cli_eval_commands[] = {
    {"ppl", "perplexity of a text file, llama-perplexity's method", cmd_eval_ppl, usage_eval_ppl,
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static void usage_eval_ppl(FILE *out)
{
    fputs("usage: melt eval ppl -m FILE -f TEXT [-c N] [-b B] [-t THREADS] [--chunks N]\n"
          "                     [--kv-type f16|f32] [--json] [--profile]\n"
          "Perplexity of a text file as llama-perplexity computes it: the text is\n"
          "tokenized (BOS first), split into chunks of N tokens (BOS at each chunk's\n"
          "start), and the second half of every chunk is scored.\n\n"
          "  -m, --model FILE    GGUF model\n"
          "  -f, --file TEXT     text file ('-' for stdin)\n"
          "  -c, --ctx N         tokens per chunk (default 512; the text needs 2*N)\n"
          "  -b, --batch B       most tokens decoded at once (default 512)\n"
          "  -t, --threads N     threads (default: all cores)\n"
          "      --chunks N      score at most N chunks\n"
          "      --kv-type T     KV cache element type, f16 (default) or f32\n"
          "      --json          print the result as one JSON object on stdout\n"
          "      --profile       print time per op kind and per layer to stderr\n"
          "  -h, --help          show this help\n\n"
          "Progress (one line per chunk) goes to stderr; the result line\n"
          "'PPL = X +/- SE' to stdout.\n", out);
}

static int parse_int(const char *flag, const char *s, int min, int *out)
{
    if (!cli_parse_int(s, min, 1000000000L, out)) {
        cli_usage_error(usage_eval_ppl, "eval ppl: %s needs an integer >= %d, got '%s'", flag, min, s);
        return 0;
    }
    return 1;
}

static void on_chunk(const melt_ppl_progress *p, void *user)
{
    (void)user;
    fprintf(stderr, "[%d/%d] ppl %.4f (chunk %.4f, %.1f ms)\n", p->chunk, p->n_chunks, p->ppl,
            p->chunk_ppl, (double)p->chunk_ns / 1e6);
}

static int cmd_eval_ppl(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},
        {"file", required_argument, NULL, 'f'},
        {"ctx", required_argument, NULL, 'c'},
        {"batch", required_argument, NULL, 'b'},
        {"threads", required_argument, NULL, 't'},
        {"chunks", required_argument, NULL, 'C'},
        {"kv-type", required_argument, NULL, 'K'},
        {"json", no_argument, NULL, 'j'},
        {"profile", no_argument, NULL, 'P'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    cli_engine e = cli_engine_defaults();
    e.n_ctx = 512;
    e.n_batch = 512;
    const char *file = NULL;
    int n_chunks = 0, json = 0, profile = 0, c;
    cli_getopt_reset();
    while ((c = cli_getopt(argc, argv, ":m:f:c:b:t:h", opts, usage_eval_ppl)) != -1) {
        const int s = cli_engine_opt(c, optarg, &e, argv[0], usage_eval_ppl);
        if (s < 0) return CLI_USAGE;
        if (s > 0) continue;
        switch (c) {
        case 'f': file = optarg; break;
        case 'C': if (!parse_int("--chunks", optarg, 1, &n_chunks)) return CLI_USAGE; break;
        case 'j': json = 1; break;
        case 'P': profile = 1; break;
        case 'h': usage_eval_ppl(stdout); return CLI_OK;
        default: return CLI_USAGE;
        }
    }
    if (optind < argc)
        return cli_usage_error(usage_eval_ppl, "eval ppl: unexpected argument '%s'", argv[optind]);
    if (!e.model_path)
        return cli_usage_error(usage_eval_ppl, "eval ppl: missing -m FILE");
    if (e.n_ctx < 4)
        return cli_usage_error(usage_eval_ppl, "eval ppl: -c needs an integer >= 4, got %d", e.n_ctx);
    const char *model = e.model_path;
    const int n_ctx = e.n_ctx;
    if (!file)
        return cli_usage_error(usage_eval_ppl, "eval ppl: missing -f TEXT");

    melt_error err = {0};
    char *text = NULL;
    size_t len = 0;
    melt_profile *prof = NULL;
    int rc = CLI_ERROR;
    if (melt_read_file(file, &text, &len, &err) < 0)
        goto fail;
    if (cli_engine_open(&e, &err) < 0)
        goto fail;
    melt_model *m = e.m;
    melt_tokenizer *tok = e.tok;
    melt_context *ctx = e.ctx;
    const uint64_t load_ns = e.load_ns;
    if (profile) {
        if (melt_profile_new(melt_model_n_layer(m), &prof, &err) < 0)
            goto fail;
        melt_profile_attach(ctx, prof);
    }
    fprintf(stderr, "eval ppl: %s, n_ctx %d, %d threads, loaded in %.1f ms\n", model, n_ctx,
            melt_context_n_threads(ctx), (double)load_ns / 1e6);
    melt_ppl_params pp = melt_ppl_default_params();
    pp.n_ctx = n_ctx;
    pp.n_chunks = n_chunks;
    melt_ppl_result r;
    if (melt_eval_ppl(m, ctx, tok, text, len, &pp, on_chunk, NULL, &r, &err) < 0)
        goto fail;
    const double secs = (double)r.t_ns / 1e9;
    const double tps = secs > 0 ? (double)r.n_decoded / secs : 0.0;
    fprintf(stderr, "eval ppl: %d tokens, %d chunks of %d, %d scored; %d decoded in %.1f ms (%.1f tokens/s)\n",
            r.n_tokens, r.n_chunks, r.n_ctx, r.n_scored, r.n_decoded, (double)r.t_ns / 1e6, tps);
    if (prof)
        melt_profile_print(prof, stderr);
    if (json) {
        fputs("{\"model\":", stdout);
        cli_json_string(stdout, model, strlen(model));
        printf(",\"n_ctx\":%d,\"n_tokens\":%d,\"n_chunks\":%d,\"n_scored\":%d,\"nll\":%.9f,"
               "\"ppl\":%.6f,\"ppl_se\":%.6f,\"n_decoded\":%d,\"load_ms\":%.3f,\"t_ms\":%.3f,"
               "\"decode_tps\":%.2f,\"n_threads\":%d",
               r.n_ctx, r.n_tokens, r.n_chunks, r.n_scored, r.nll, r.ppl, r.ppl_se, r.n_decoded,
               (double)load_ns / 1e6, (double)r.t_ns / 1e6, tps, melt_context_n_threads(ctx));
        if (prof) {
            fputs(",\"profile\":", stdout);
            melt_profile_write_json(prof, stdout);
        }
        fputs("}\n", stdout);
    } else {
        printf("PPL = %.4f +/- %.5f\n", r.ppl, r.ppl_se);
    }
    rc = CLI_OK;
    goto out;
fail:
    cli_fail(&err);
out:
    melt_profile_free(prof);
    cli_engine_close(&e);
    free(text);
    return rc;
}

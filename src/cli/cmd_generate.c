/* melt generate -m FILE -p TEXT [-n N] [sampling flags] [-t N] [-c N] ...
 * Streams the generated text (or one JSON object per token) to stdout and
 * a timing summary to stderr. The loop itself is melt_generate. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "engine/profile.h"
#include "melt/engine.h"
#include "melt/generate.h"
#include "melt/sampler.h"
#include "melt/tokenizer.h"


void usage_generate(FILE *out)
{
    fputs("usage: melt generate -m FILE -p TEXT [-n N] [--temp T] [--top-k K] [--top-p P]\n"
          "                     [--min-p M] [--repeat-penalty R] [--repeat-last-n N] [--seed S]\n"
          "                     [-t THREADS] [-c CTX] [--kv-type f16|f32] [--ignore-eos]\n"
          "                     [--json] [--profile]\n"
          "Generate text with the builtin engine. The text streams to stdout as the\n"
          "tokens arrive (the prompt is not echoed); load time, prompt and generation\n"
          "speed go to stderr.\n\n"
          "  -m, --model FILE        GGUF model\n"
          "  -p, --prompt TEXT       prompt (BOS added where the vocab asks; special\n"
          "                          tokens like <s> are recognized)\n"
          "  -n, --n-predict N       most tokens to generate (default 128; -1: until\n"
          "                          end of generation or a full context)\n"
          "      --temp T            temperature (default 0.8; 0: greedy)\n"
          "      --top-k K           keep the K most likely tokens (default 40; 0: off)\n"
          "      --top-p P           nucleus sampling (default 0.95; 1: off)\n"
          "      --min-p M           drop tokens below M x the top probability (default 0.05)\n"
          "      --repeat-penalty R  penalize recent tokens (default 1.0: off)\n"
          "      --repeat-last-n N   tokens the penalty looks back over (default 64)\n"
          "      --seed S            random seed (default 0)\n"
          "  -t, --threads N         threads (default: all cores)\n"
          "  -c, --ctx N             context size (default: the model's, at most 4096)\n"
          "      --kv-type T         KV cache element type, f16 (default) or f32\n"
          "      --ignore-eos        do not stop at end-of-generation tokens\n"
          "      --json              one JSON object per token on stdout\n"
          "                          {\"id\":..,\"text\":..,\"t_ns\":..} (CLOCK_MONOTONIC),\n"
          "                          then one summary object\n"
          "      --profile           print time per op kind and per layer to stderr\n"
          "  -h, --help              show this help\n", out);
}

typedef struct gen_out {
    int json;
    size_t n_bytes;  /* text bytes printed */
} gen_out;

static int on_token(const melt_gen_token *t, void *user)
{
    gen_out *o = user;
    if (o->json) {
        if (t->id == MELT_TOKEN_NULL) return 0;  /* the flush only matters for plain text */
        printf("{\"id\":%d,\"text\":", (int)t->id);
        cli_json_string(stdout, t->text, t->len);
        printf(",\"t_ns\":%llu}\n", (unsigned long long)t->t_ns);
    } else {
        fwrite(t->text, 1, t->len, stdout);
        o->n_bytes += t->len;
    }
    fflush(stdout);
    return 0;
}

int cmd_generate(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},
        {"prompt", required_argument, NULL, 'p'},
        {"n-predict", required_argument, NULL, 'n'},
        {"threads", required_argument, NULL, 't'},
        {"ctx", required_argument, NULL, 'c'},
        {"kv-type", required_argument, NULL, 'K'},
        {"ignore-eos", no_argument, NULL, 'E'},
        {"json", no_argument, NULL, 'j'},
        {"profile", no_argument, NULL, 'P'},
        CLI_SAMPLING_LONGOPTS,
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    cli_engine e = cli_engine_defaults();
    const char *prompt = NULL;
    int json = 0, profile = 0, c;
    melt_generate_params gp = melt_generate_default_params();
    melt_sampler_params sp = melt_sampler_default_params();
    cli_getopt_reset();
    while ((c = cli_getopt(argc, argv, ":m:p:n:t:c:h", opts, usage_generate)) != -1) {
        int s = cli_sampling_opt(c, optarg, &sp, usage_generate);
        if (s == 0)
            s = cli_engine_opt(c, optarg, &e, argv[0], usage_generate);
        if (s < 0) return CLI_USAGE;
        if (s > 0) continue;
        switch (c) {
        case 'p': prompt = optarg; break;
        case 'n':
            if (!cli_parse_int(optarg, -1, 1 << 30, &gp.n_predict))
                return cli_usage_error(usage_generate, "generate: -n needs an integer >= -1, got '%s'", optarg);
            break;
        case 'E': gp.ignore_eos = true; break;
        case 'j': json = 1; break;
        case 'P': profile = 1; break;
        case 'h': usage_generate(stdout); return CLI_OK;
        default: return CLI_USAGE;
        }
    }
    if (optind < argc)
        return cli_usage_error(usage_generate, "generate: unexpected argument '%s'", argv[optind]);
    if (!e.model_path)
        return cli_usage_error(usage_generate, "generate: missing -m FILE");
    if (!prompt)
        return cli_usage_error(usage_generate, "generate: missing -p TEXT");

    melt_error err = {0};
    melt_sampler *smp = NULL;
    melt_profile *prof = NULL;
    melt_token *ids = NULL;
    size_t n_ids = 0;
    int rc = CLI_ERROR;
    if (cli_engine_open(&e, &err) < 0) goto fail;
    melt_model *m = e.m;
    melt_tokenizer *tok = e.tok;
    melt_context *ctx = e.ctx;
    const uint64_t load_ns = e.load_ns;
    if (melt_sampler_new(&sp, melt_model_n_vocab(m), &smp, &err) < 0) goto fail;
    if (profile) {
        if (melt_profile_new(melt_model_n_layer(m), &prof, &err) < 0) goto fail;
        melt_profile_attach(ctx, prof);
    }
    if (melt_tokenize(tok, prompt, strlen(prompt),
                      MELT_TOKENIZE_ADD_SPECIAL | MELT_TOKENIZE_PARSE_SPECIAL, &ids, &n_ids, &err) < 0)
        goto fail;
    if (n_ids == 0) {
        melt_errorf(&err, MELT_EINVAL, "the prompt is empty (no tokens)");
        goto fail;
    }
    if (n_ids > (size_t)melt_context_n_ctx(ctx)) {
        melt_errorf(&err, MELT_EINVAL, "context overflow: the prompt has %zu tokens, the context holds %d (use -c)",
                    n_ids, melt_context_n_ctx(ctx));
        goto fail;
    }
    gen_out go = {.json = json};
    melt_generate_stats st;
    if (melt_generate(ctx, tok, smp, ids, (int)n_ids, 0, &gp, on_token, &go, NULL, &st, &err) < 0)
        goto fail;
    if (!json && go.n_bytes) putchar('\n');
    fflush(stdout);

    const double prompt_tps = melt_generate_prompt_tps(&st), gen_tps = melt_generate_decode_tps(&st);
    fprintf(stderr, "load:      %.2f ms\n", (double)load_ns / 1e6);
    fprintf(stderr, "prompt:    %d tokens in %.2f ms (%.1f tokens/s)\n", st.n_prompt,
            (double)st.prompt_ns / 1e6, prompt_tps);
    fprintf(stderr, "generated: %d tokens in %.2f ms (%.1f tokens/s), first token after %.2f ms, stop: %s\n",
            st.n_gen, (double)st.gen_ns / 1e6, gen_tps, (double)st.ttft_ns / 1e6,
            melt_stop_reason_name(st.stop));
    if (st.stop == MELT_STOP_CTX)
        fprintf(stderr, "melt: stopped: the context of %d tokens is full (use -c for a larger one)\n",
                melt_context_n_ctx(ctx));
    if (prof) melt_profile_print(prof, stderr);
    if (json) {
        printf("{\"summary\":true,\"n_prompt\":%d,\"n_gen\":%d,\"stop\":\"%s\",\"load_ms\":%.3f,"
               "\"prompt_ms\":%.3f,\"prompt_tps\":%.2f,\"ttft_ms\":%.3f,\"gen_ms\":%.3f,"
               "\"decode_tps\":%.2f,\"sample_ms\":%.3f,\"n_ctx\":%d,\"n_threads\":%d",
               st.n_prompt, st.n_gen, melt_stop_reason_name(st.stop), (double)load_ns / 1e6,
               (double)st.prompt_ns / 1e6, prompt_tps, (double)st.ttft_ns / 1e6,
               (double)st.gen_ns / 1e6, gen_tps, (double)st.sample_ns / 1e6,
               melt_context_n_ctx(ctx), melt_context_n_threads(ctx));
        if (prof) {
            fputs(",\"profile\":", stdout);
            melt_profile_write_json(prof, stdout);
        }
        fputs("}\n", stdout);
    }
    rc = CLI_OK;
    goto out;
fail:
    fflush(stdout);
    cli_fail(&err);
out:
    free(ids);
    melt_sampler_free(smp);
    cli_engine_close(&e);
    melt_profile_free(prof);
    return rc;
}

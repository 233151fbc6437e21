/* Helpers shared by the commands that run the builtin engine (generate,
 * chat, eval): number parsing, sampling flags, JSON strings, tokenizer. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "melt/engine.h"
#include "melt/sampler.h"
#include "melt/tokenizer.h"

int cli_parse_float(const char *s, float *out)
{
    char *end;
    errno = 0;
    const float v = strtof(s, &end);
    if (errno || end == s || *end || !isfinite(v))
        return 0;
    *out = v;
    return 1;
}

int cli_parse_int(const char *s, long lo, long hi, int *out)
{
    char *end;
    errno = 0;
    const long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return 0;
    *out = (int)v;
    return 1;
}

/* Sampling flags shared by generate and chat: returns 1 when opt was one
 * (and set it), 0 when it is not a sampling flag, -1 on a bad value (a
 * usage error has been printed). */
int cli_sampling_opt(int opt, const char *arg, melt_sampler_params *sp, void (*usage)(FILE *))
{
    int ok = 1, iv = 0;
    unsigned long long u = 0;
    switch (opt) {
    case OPT_TEMP: ok = cli_parse_float(arg, &sp->temperature); break;
    case OPT_TOP_K: ok = cli_parse_int(arg, 0, 1 << 30, &iv); sp->top_k = iv; break;
    case OPT_TOP_P: ok = cli_parse_float(arg, &sp->top_p) && sp->top_p >= 0 && sp->top_p <= 1; break;
    case OPT_MIN_P: ok = cli_parse_float(arg, &sp->min_p) && sp->min_p >= 0 && sp->min_p <= 1; break;
    case OPT_REPEAT_PENALTY: ok = cli_parse_float(arg, &sp->repeat_penalty) && sp->repeat_penalty > 0; break;
    case OPT_REPEAT_LAST_N: ok = cli_parse_int(arg, 0, 1 << 30, &iv); sp->repeat_last_n = iv; break;
    case OPT_SEED: ok = cli_parse_u64("--seed", arg, &u); sp->seed = u; break;
    default: return 0;
    }
    if (!ok) {
        static const char *const names[] = {"--temp", "--top-k", "--top-p", "--min-p",
                                            "--repeat-penalty", "--repeat-last-n", "--seed"};
        cli_usage_error(usage, "bad value '%s' for %s", arg, names[opt - OPT_TEMP]);
        return -1;
    }
    return 1;
}

void cli_json_string(FILE *out, const char *s, size_t n)
{
    fputc('"', out);
    for (size_t i = 0; i < n; i++) {
        const unsigned char ch = (unsigned char)s[i];
        switch (ch) {
        case '"': fputs("\\\"", out); break;
        case '\\': fputs("\\\\", out); break;
        case '\n': fputs("\\n", out); break;
        case '\r': fputs("\\r", out); break;
        case '\t': fputs("\\t", out); break;
        default:
            if (ch < 0x20 || ch == 0x7F) fprintf(out, "\\u%04x", ch);
            else fputc(ch, out);
        }
    }
    fputc('"', out);
}

cli_engine cli_engine_defaults(void)
{
    cli_engine e = {0};
    e.kv_type = MELT_KV_F16;
    return e;
}

int cli_engine_opt(int opt, const char *arg, cli_engine *e, const char *cmd,
                   void (*usage)(FILE *))
{
    int *target = NULL, lo = 1, hi = 1 << 24;
    switch (opt) {
    case 'm': e->model_path = arg; return 1;
    case 't': target = &e->n_threads; hi = 1 << 16; break;
    case 'c': target = &e->n_ctx; break;
    case 'b': target = &e->n_batch; break;
    case 'K':
        if (strcmp(arg, "f16") == 0) e->kv_type = MELT_KV_F16;
        else if (strcmp(arg, "f32") == 0) e->kv_type = MELT_KV_F32;
        else {
            cli_usage_error(usage, "%s: --kv-type is f16 or f32, got '%s'", cmd, arg);
            return -1;
        }
        return 1;
    default: return 0;
    }
    if (!cli_parse_int(arg, lo, hi, target)) {
        cli_usage_error(usage, "%s: -%c needs an integer >= %d, got '%s'", cmd, opt, lo, arg);
        return -1;
    }
    return 1;
}

int cli_engine_open(cli_engine *e, melt_error *err)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = melt_model_load(e->model_path, NULL, &e->m, err);
    if (rc < 0 || (rc = cli_load_tokenizer(e->m, e->model_path, &e->tok, err)) < 0)
        return rc;
    melt_context_params cp = melt_context_default_params();
    if (e->n_ctx) cp.n_ctx = e->n_ctx;
    if (e->n_batch) cp.n_batch = e->n_batch;
    cp.n_threads = e->n_threads;
    cp.kv_type = (enum melt_kv_type)e->kv_type;
    if ((rc = melt_context_new(e->m, &cp, &e->ctx, err)) < 0)
        return rc;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    e->load_ns = (uint64_t)(t1.tv_sec - t0.tv_sec) * 1000000000u + (uint64_t)t1.tv_nsec -
                 (uint64_t)t0.tv_nsec;
    return 0;
}

void cli_engine_close(cli_engine *e)
{
    melt_context_free(e->ctx);
    melt_tokenizer_free(e->tok);
    melt_model_free(e->m);
    e->ctx = NULL;
    e->tok = NULL;
    e->m = NULL;
}

/* The model's tokenizer; an error names the file. */
int cli_load_tokenizer(const melt_model *m, const char *path, melt_tokenizer **tok, melt_error *err)
{
    const int rc = melt_tokenizer_load(melt_model_gguf(m), tok, err);
    if (rc < 0) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        melt_errorf(err, rc, "%s: %s", path, msg);
    }
    return rc;
}

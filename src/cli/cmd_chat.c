/* melt chat -m FILE [--chat-template NAME] [--system TEXT] [sampling flags]
 * Interactive multi-turn chat on stdin/stdout. The conversation stays in
 * the KV cache between turns: each turn renders the whole conversation
 * with the chat template, tokenizes it, and decodes only the tokens past
 * the longest prefix the cache already holds (so a re-tokenization that
 * differs from the generated ids costs a few tokens, never correctness). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "engine/profile.h"
#include "melt/chat.h"
#include "melt/engine.h"
#include "melt/generate.h"
#include "melt/sampler.h"
#include "melt/tokenizer.h"

enum { OPT_TEMPLATE = CLI_OPT_FREE, OPT_SYSTEM, OPT_VERBOSE };

void usage_chat(FILE *out)
{
    fputs("usage: melt chat -m FILE [--chat-template NAME] [--system TEXT] [-n N]\n"
          "                 [--temp T --top-k K --top-p P --min-p M --repeat-penalty R\n"
          "                  --repeat-last-n N --seed S] [-t THREADS] [-c CTX]\n"
          "                 [--kv-type f16|f32] [--verbose]\n"
          "Chat with a model: each line read from stdin is a user turn, the answer is\n"
          "streamed to stdout. The conversation stays in the KV cache; each turn\n"
          "decodes only its new tokens.\n\n"
          "  -m, --model FILE        GGUF model\n"
          "      --chat-template N   prompt format (default: detected from the model's\n"
          "                          tokenizer.chat_template): llama2, llama3, chatml,\n"
          "                          mistral, phi3, gemma, zephyr\n"
          "      --system TEXT       system message at the start of the conversation\n"
          "  -n, --n-predict N       most tokens per answer (default -1: until the end\n"
          "                          of the turn or a full context)\n"
          "      --temp T ...        sampling, as for 'melt generate'\n"
          "  -t, --threads N         threads (default: all cores)\n"
          "  -c, --ctx N             context size (default: the model's, at most 4096)\n"
          "      --kv-type T         KV cache element type, f16 (default) or f32\n"
          "      --verbose           per turn on stderr: 'decoded N new tokens (K cached)'\n"
          "                          and the speed\n"
          "  -h, --help              show this help\n\n"
          "Commands on a line of their own: /reset (forget the conversation),\n"
          "/exit (or end of input) to quit.\n", out);
}

typedef struct chat {
    melt_chat_msg *msgs;   /* contents owned (malloc'd) */
    size_t n_msgs, cap_msgs;
    melt_token *cached;    /* the tokens in the KV cache, in order */
    size_t n_cached, cap_cached;
    char *reply;           /* the answer being streamed */
    size_t reply_len, reply_cap;
    bool oom;
} chat;

static bool push_msg(chat *ch, const char *role, const char *content, size_t len)
{
    if (ch->n_msgs == ch->cap_msgs) {
        size_t cap = ch->cap_msgs ? 2 * ch->cap_msgs : 8;
        melt_chat_msg *q = realloc(ch->msgs, cap * sizeof *q);
        if (!q) return false;
        ch->msgs = q;
        ch->cap_msgs = cap;
    }
    char *s = malloc(len + 1);
    if (!s) return false;
    memcpy(s, content, len);
    s[len] = '\0';
    ch->msgs[ch->n_msgs].role = role;
    ch->msgs[ch->n_msgs].content = s;
    ch->n_msgs++;
    return true;
}

static void pop_msgs(chat *ch, size_t keep)
{
    while (ch->n_msgs > keep) free((char *)ch->msgs[--ch->n_msgs].content);
}

static int on_token(const melt_gen_token *t, void *user)
{
    chat *ch = user;
    fwrite(t->text, 1, t->len, stdout);
    fflush(stdout);
    if (ch->reply_len + t->len + 1 > ch->reply_cap) {
        size_t cap = 2 * (ch->reply_len + t->len + 1);
        char *q = realloc(ch->reply, cap);
        if (!q) {
            ch->oom = true;
            return 1;
        }
        ch->reply = q;
        ch->reply_cap = cap;
    }
    memcpy(ch->reply + ch->reply_len, t->text, t->len);
    ch->reply_len += t->len;
    ch->reply[ch->reply_len] = '\0';
    return 0;
}

/* Make ch->cached hold n tokens (copied from a, then b). */
static bool set_cached(chat *ch, const melt_token *a, size_t na, const melt_token *b, size_t nb,
                       size_t n)
{
    if (n > ch->cap_cached) {
        melt_token *q = realloc(ch->cached, n * sizeof *q);
        if (!q) return false;
        ch->cached = q;
        ch->cap_cached = n;
    }
    for (size_t i = 0; i < n; i++) ch->cached[i] = i < na ? a[i] : b[i - na];
    ch->n_cached = n;
    return true;
}

/* One user turn: render, decode the uncached suffix, stream the answer.
 * Returns 0, or < 0 with err set (the turn is dropped from the history). */
static int chat_turn(chat *ch, melt_context *ctx, const melt_tokenizer *tok, melt_sampler *smp,
                     enum melt_chat_template tmpl, const melt_generate_params *gp, bool verbose,
                     melt_error *err)
{
    char *text = NULL;
    melt_token *ids = NULL, *gen = NULL;
    size_t n_ids = 0;
    int rc = melt_chat_render(tmpl, ch->msgs, ch->n_msgs, true, &text, err);
    if (rc < 0) return rc;
    rc = melt_tokenize(tok, text, strlen(text), MELT_TOKENIZE_ADD_SPECIAL | MELT_TOKENIZE_PARSE_SPECIAL,
                       &ids, &n_ids, err);
    free(text);
    if (rc < 0) return rc;
    const int n_ctx = melt_context_n_ctx(ctx);
    if (n_ids >= (size_t)n_ctx) {
        free(ids);
        return melt_errorf(err, MELT_EINVAL,
                           "context overflow: the conversation needs %zu tokens, the context holds %d "
                           "(/reset to start over, or use -c)", n_ids, n_ctx);
    }
    /* longest prefix already in the cache; decode at least one token */
    size_t k = 0;
    while (k < ch->n_cached && k < n_ids && ch->cached[k] == ids[k]) k++;
    if (k == n_ids) k--;
    ch->reply_len = 0;
    ch->oom = false;
    melt_generate_stats st;
    rc = melt_generate(ctx, tok, smp, ids + k, (int)(n_ids - k), (int)k, gp, on_token, ch, &gen, &st, err);
    if (rc == 0 && ch->oom) rc = melt_errorf(err, MELT_ENOMEM, "out of memory for the answer");
    if (rc == 0) {
        fputc('\n', stdout);
        fflush(stdout);
        /* the cache now holds the prompt, then the generated ids decoded */
        if (!set_cached(ch, ids, n_ids, gen, (size_t)st.n_gen, (size_t)st.n_past) ||
            !push_msg(ch, "assistant", ch->reply ? ch->reply : "", ch->reply_len))
            rc = melt_errorf(err, MELT_ENOMEM, "out of memory for the conversation");
    } else {
        ch->n_cached = k < ch->n_cached ? k : ch->n_cached;  /* past k the cache is unknown */
    }
    if (rc == 0 && verbose) {
        fprintf(stderr, "decoded %d new tokens (%zu cached); answer: %d tokens, %.1f tokens/s, stop: %s\n",
                st.n_prompt, k, st.n_gen, melt_generate_decode_tps(&st), melt_stop_reason_name(st.stop));
    }
    if (rc == 0 && st.stop == MELT_STOP_CTX)
        fprintf(stderr, "melt: the context of %d tokens is full; /reset to start over\n", n_ctx);
    free(ids);
    free(gen);
    return rc;
}

static void strip_newline(char *s, ssize_t *len)
{
    while (*len > 0 && (s[*len - 1] == '\n' || s[*len - 1] == '\r')) s[--*len] = '\0';
}

int cmd_chat(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},
        {"n-predict", required_argument, NULL, 'n'},
        {"threads", required_argument, NULL, 't'},
        {"ctx", required_argument, NULL, 'c'},
        {"kv-type", required_argument, NULL, 'K'},
        {"chat-template", required_argument, NULL, OPT_TEMPLATE},
        {"system", required_argument, NULL, OPT_SYSTEM},
        {"verbose", no_argument, NULL, OPT_VERBOSE},
        CLI_SAMPLING_LONGOPTS,
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    cli_engine e = cli_engine_defaults();
    const char *tmpl_name = NULL, *system = NULL;
    int c;
    bool verbose = false;
    melt_generate_params gp = melt_generate_default_params();
    gp.n_predict = -1;
    melt_sampler_params sp = melt_sampler_default_params();
    cli_getopt_reset();
    while ((c = cli_getopt(argc, argv, ":m:n:t:c:h", opts, usage_chat)) != -1) {
        int s = cli_sampling_opt(c, optarg, &sp, usage_chat);
        if (s == 0)
            s = cli_engine_opt(c, optarg, &e, argv[0], usage_chat);
        if (s < 0) return CLI_USAGE;
        if (s > 0) continue;
        switch (c) {
        case 'n':
            if (!cli_parse_int(optarg, -1, 1 << 30, &gp.n_predict))
                return cli_usage_error(usage_chat, "chat: -n needs an integer >= -1, got '%s'", optarg);
            break;
        case OPT_TEMPLATE: tmpl_name = optarg; break;
        case OPT_SYSTEM: system = optarg; break;
        case OPT_VERBOSE: verbose = true; break;
        case 'h': usage_chat(stdout); return CLI_OK;
        default: return CLI_USAGE;
        }
    }
    if (optind < argc)
        return cli_usage_error(usage_chat, "chat: unexpected argument '%s'", argv[optind]);
    if (!e.model_path)
        return cli_usage_error(usage_chat, "chat: missing -m FILE");
    const char *model = e.model_path;
    enum melt_chat_template tmpl = MELT_CHAT_UNKNOWN;
    if (tmpl_name && !melt_chat_template_parse(tmpl_name, &tmpl))
        return cli_usage_error(usage_chat, "chat: unknown chat template '%s' (one of %s)", tmpl_name,
                               melt_chat_template_names());

    melt_error err = {0};
    melt_sampler *smp = NULL;
    chat ch = {0};
    char *line = NULL;
    size_t line_cap = 0;
    int rc = CLI_ERROR;
    if (cli_engine_open(&e, &err) < 0) goto fail;
    melt_model *m = e.m;
    melt_tokenizer *tok = e.tok;
    melt_context *ctx = e.ctx;
    if (!tmpl_name) {
        melt_str j = {0};
        if (melt_gguf_get_str(melt_model_gguf(m), "tokenizer.chat_template", &j))
            tmpl = melt_chat_template_detect(j.ptr, (size_t)j.len);
        if (tmpl == MELT_CHAT_UNKNOWN) {
            melt_errorf(&err, MELT_EUNSUPPORTED, "%s: %s; choose one with --chat-template (%s)", model,
                        j.ptr ? "the model's chat template is not one melt knows"
                              : "the model has no chat template (tokenizer.chat_template)",
                        melt_chat_template_names());
            goto fail;
        }
    }
    if (melt_sampler_new(&sp, melt_model_n_vocab(m), &smp, &err) < 0) goto fail;
    if (verbose)
        fprintf(stderr, "chat: %s, template %s, n_ctx %d\n", model, melt_chat_template_name(tmpl),
                melt_context_n_ctx(ctx));
    const size_t n_base = system ? 1 : 0;
    if (system && !push_msg(&ch, "system", system, strlen(system))) {
        melt_errorf(&err, MELT_ENOMEM, "out of memory");
        goto fail;
    }
    const bool tty = isatty(STDIN_FILENO);
    for (;;) {
        if (tty) {
            fputs("> ", stdout);
            fflush(stdout);
        }
        ssize_t len = getline(&line, &line_cap, stdin);
        if (len < 0) break;
        strip_newline(line, &len);
        if (len == 0) continue;
        if (strcmp(line, "/exit") == 0 || strcmp(line, "/quit") == 0) break;
        if (strcmp(line, "/reset") == 0) {
            pop_msgs(&ch, n_base);
            ch.n_cached = 0;
            melt_sampler_reset(smp);
            if (verbose || tty) fputs("(conversation reset)\n", stderr);
            continue;
        }
        const size_t before = ch.n_msgs;
        if (!push_msg(&ch, "user", line, (size_t)len)) {
            melt_errorf(&err, MELT_ENOMEM, "out of memory");
            goto fail;
        }
        melt_error terr = {0};
        if (chat_turn(&ch, ctx, tok, smp, tmpl, &gp, verbose, &terr) < 0) {
            pop_msgs(&ch, before);
            if (terr.code == MELT_ENOMEM) {
                err = terr;
                goto fail;
            }
            cli_fail(&terr);  /* one line; the conversation goes on without this turn */
        }
    }
    rc = CLI_OK;
    goto out;
fail:
    fflush(stdout);
    cli_fail(&err);
out:
    free(line);
    pop_msgs(&ch, 0);
    free(ch.msgs);
    free(ch.cached);
    free(ch.reply);
    melt_sampler_free(smp);
    cli_engine_close(&e);
    return rc;
}

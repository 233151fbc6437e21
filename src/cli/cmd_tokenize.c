/* melt tokenize -m FILE (-p TEXT | -f FILE) [--no-bos] [--no-parse-special] [--ids] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "melt/fs.h"
#include "melt/gguf.h"
#include "melt/tokenizer.h"

void usage_tokenize(FILE *out)
{
    fputs("usage: melt tokenize -m FILE (-p TEXT | -f FILE) [--no-bos] [--no-parse-special] [--ids]\n"
          "Tokenize text with the tokenizer stored in a GGUF file (SentencePiece or\n"
          "byte-level BPE, as llama.cpp does).\n\n"
          "  -m, --model FILE       GGUF file with tokenizer.ggml.* metadata\n"
          "  -p, --prompt TEXT      text to tokenize\n"
          "  -f, --file FILE        read the text from FILE ('-' for stdin), byte for byte\n"
          "      --no-bos           do not add BOS/EOS even where the vocab asks for them\n"
          "      --no-parse-special treat control-token text like \"<s>\" as plain text\n"
          "      --ids              print only the ids, space-separated, on one line\n"
          "  -h, --help             show this help\n\n"
          "Without --ids: one line per token, the id and its piece in single quotes\n"
          "(\\n, \\t, \\\\, \\' and \\xNN for other control or invalid bytes).\n", out);
}

static void print_escaped(FILE *out, const char *s, size_t n)
{
    fputc('\'', out);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '\n': fputs("\\n", out); break;
        case '\t': fputs("\\t", out); break;
        case '\r': fputs("\\r", out); break;
        case '\\': fputs("\\\\", out); break;
        case '\'': fputs("\\'", out); break;
        default:
            if (c < 0x20 || c == 0x7F)
                fprintf(out, "\\x%02x", c);
            else
                fputc(c, out);
        }
    }
    fputc('\'', out);
}

int cmd_tokenize(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},
        {"prompt", required_argument, NULL, 'p'},
        {"file", required_argument, NULL, 'f'},
        {"no-bos", no_argument, NULL, 'B'},
        {"no-parse-special", no_argument, NULL, 'S'},
        {"ids", no_argument, NULL, 'i'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *model = NULL, *prompt = NULL, *file = NULL;
    int no_bos = 0, no_special = 0, ids_only = 0, c;
    cli_getopt_reset();
    while ((c = cli_getopt(argc, argv, ":m:p:f:h", opts, usage_tokenize)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'p': prompt = optarg; break;
        case 'f': file = optarg; break;
        case 'B': no_bos = 1; break;
        case 'S': no_special = 1; break;
        case 'i': ids_only = 1; break;
        case 'h': usage_tokenize(stdout); return CLI_OK;
        default: return CLI_USAGE;
        }
    }
    if (optind < argc)
        return cli_usage_error(usage_tokenize, "tokenize: unexpected argument '%s'", argv[optind]);
    if (!model)
        return cli_usage_error(usage_tokenize, "tokenize: missing -m FILE");
    if (!prompt == !file)
        return cli_usage_error(usage_tokenize, "tokenize: give exactly one of -p TEXT and -f FILE");

    melt_error err = {0};
    char *text = NULL;
    size_t len = 0;
    if (file) {
        if (melt_read_file(file, &text, &len, &err) < 0)
            return cli_fail(&err);
    }
    melt_gguf *g = NULL;
    melt_tokenizer *tok = NULL;
    if (melt_gguf_open(model, &g, &err) < 0) {
        free(text);
        return cli_fail(&err);
    }
    int rc = melt_tokenizer_load(g, &tok, &err);
    melt_gguf_close(g);
    if (rc < 0) {
        free(text);
        return cli_fail(&err);
    }
    unsigned flags = (no_bos ? 0u : MELT_TOKENIZE_ADD_SPECIAL) |
                     (no_special ? 0u : MELT_TOKENIZE_PARSE_SPECIAL);
    melt_token *ids = NULL;
    size_t n = 0;
    rc = melt_tokenize(tok, file ? text : prompt, file ? len : strlen(prompt), flags, &ids, &n, &err);
    free(text);
    if (rc < 0) {
        melt_tokenizer_free(tok);
        return cli_fail(&err);
    }
    for (size_t i = 0; i < n; i++) {
        if (ids_only) {
            printf(i ? " %d" : "%d", ids[i]);
        } else {
            size_t pl;
            const char *p = melt_token_piece(tok, ids[i], &pl);
            printf("%6d -> ", ids[i]);
            print_escaped(stdout, p, pl);
            fputc('\n', stdout);
        }
    }
    if (ids_only)
        fputc('\n', stdout);
    free(ids);
    melt_tokenizer_free(tok);
    if (fflush(stdout) != 0)
        return CLI_ERROR;
    return CLI_OK;
}

/* Workload plans: writer and dependency-free reader (see melt/plan.h).
 * Linked by the agent: libc only, no allocation beyond the plan itself. */
#include "melt/plan.h"

#include <stdlib.h>
#include <string.h>

static const char *const kind_names[] = {"synthetic", "conversations", "prompts"};

const char *melt_plan_kind_name(enum melt_plan_kind k)
{
    return (unsigned)k < 3 ? kind_names[k] : "?";
}

melt_plan *melt_plan_new(enum melt_plan_kind kind)
{
    melt_plan *p = calloc(1, sizeof *p);
    if (p) {
        p->kind = kind;
        p->ignore_eos = kind == MELT_PLAN_SYNTHETIC;
    }
    return p;
}

void melt_plan_free(melt_plan *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n_convs; i++) {
        for (size_t t = 0; t < p->convs[i].n_turns; t++)
            free(p->convs[i].turns[t]);
        free(p->convs[i].turns);
    }
    free(p->convs);
    free(p);
}

/* arr (count elements of sz bytes, capacity the next power of two) with
 * room for one more; NULL when out of memory (arr is then unchanged). */
static void *grow(void *arr, size_t count, size_t sz)
{
    if (count & (count - 1))
        return arr; /* not a power of two: there is room */
    return realloc(arr, (count ? 2 * count : 1) * sz);
}

int melt_plan_add_conv(melt_plan *p, melt_error *err)
{
    melt_plan_conv *c = grow(p->convs, p->n_convs, sizeof *c);
    if (!c)
        return melt_errorf(err, MELT_ENOMEM, "plan: out of memory");
    p->convs = c;
    memset(&c[p->n_convs++], 0, sizeof *c);
    return 0;
}

int melt_plan_add_turn(melt_plan *p, const char *text, size_t len, melt_error *err)
{
    if (p->n_convs == 0)
        return melt_errorf(err, MELT_EINVAL, "plan: a turn needs a conversation");
    if (memchr(text, '\0', len))
        return melt_errorf(err, MELT_EINVAL, "plan: a prompt may not hold a NUL byte");
    melt_plan_conv *c = &p->convs[p->n_convs - 1];
    char **turns = grow(c->turns, c->n_turns, sizeof *turns);
    if (!turns)
        return melt_errorf(err, MELT_ENOMEM, "plan: out of memory");
    c->turns = turns;
    char *s = malloc(len + 1);
    if (!s)
        return melt_errorf(err, MELT_ENOMEM, "plan: out of memory");
    memcpy(s, text, len);
    s[len] = '\0';
    c->turns[c->n_turns++] = s;
    return 0;
}

/* ---- writer ---- */

static void write_string(FILE *out, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    fputc('"', out);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        switch (*c) {
        case '\\': fputs("\\\\", out); break;
        case '"': fputs("\\\"", out); break;
        case '\n': fputs("\\n", out); break;
        case '\r': fputs("\\r", out); break;
        case '\t': fputs("\\t", out); break;
        default:
            if (*c < 0x20 || *c == 0x7f) {
                fputs("\\x", out);
                fputc(hex[*c >> 4], out);
                fputc(hex[*c & 15], out);
            } else {
                fputc(*c, out);
            }
        }
    }
    fputc('"', out);
}

int melt_plan_write(const melt_plan *p, FILE *out, melt_error *err)
{
    fprintf(out, "melt-plan %d\nkind %s\n", MELT_PLAN_VERSION, melt_plan_kind_name(p->kind));
    fprintf(out, "prompt_tokens %d\ngen_tokens %d\nmax_gen_tokens %d\nmax_context_tokens %d\n",
            (int)p->prompt_tokens, (int)p->gen_tokens, (int)p->max_gen_tokens,
            (int)p->max_context_tokens);
    fprintf(out, "ignore_eos %d\nconversations %zu\n", p->ignore_eos ? 1 : 0, p->n_convs);
    for (size_t i = 0; i < p->n_convs; i++) {
        fprintf(out, "conversation %zu\n", p->convs[i].n_turns);
        for (size_t t = 0; t < p->convs[i].n_turns; t++) {
            fputs("turn ", out);
            write_string(out, p->convs[i].turns[t]);
            fputc('\n', out);
        }
    }
    fputs("end\n", out);
    if (fflush(out) != 0 || ferror(out))
        return melt_errorf(err, MELT_EIO, "plan: write failed");
    return 0;
}

/* ---- reader ---- */

typedef struct reader {
    const char *buf, *end;
    const char *line;       /* current line (no newline) */
    size_t len;
    size_t lineno;
    melt_error *err;
} reader;

static bool next_line(reader *r)
{
    if (r->buf >= r->end)
        return false;
    const char *nl = memchr(r->buf, '\n', (size_t)(r->end - r->buf));
    r->line = r->buf;
    r->len = nl ? (size_t)(nl - r->buf) : (size_t)(r->end - r->buf);
    r->buf = nl ? nl + 1 : r->end;
    r->lineno++;
    return true;
}

static int bad(reader *r, const char *what)
{
    return melt_errorf(r->err, MELT_EFORMAT, "plan:%zu: %s", r->lineno, what);
}

/* The line is "key N" (N a decimal in [0, max]). */
static bool key_number(const reader *r, const char *key, unsigned long long max,
                       unsigned long long *out)
{
    size_t kl = strlen(key);
    if (r->len < kl + 2 || memcmp(r->line, key, kl) != 0 || r->line[kl] != ' ')
        return false;
    unsigned long long v = 0;
    size_t i = kl + 1;
    if (i >= r->len || r->len - i > 19)
        return false;
    for (; i < r->len; i++) {
        char c = r->line[i];
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (unsigned)(c - '0');
    }
    if (v > max)
        return false;
    *out = v;
    return true;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* `turn "..."`: append the unescaped string to the last conversation. */
static int read_turn(reader *r, melt_plan *p)
{
    if (r->len < 7 || memcmp(r->line, "turn \"", 6) != 0 || r->line[r->len - 1] != '"')
        return bad(r, "expected 'turn \"...\"'");
    const char *s = r->line + 6, *e = r->line + r->len - 1;
    char *out = malloc((size_t)(e - s) + 1);
    if (!out)
        return melt_errorf(r->err, MELT_ENOMEM, "plan: out of memory");
    size_t o = 0;
    int rc = 0;
    while (s < e) {
        unsigned char c = (unsigned char)*s++;
        if (c == '"' || c < 0x20 || c == 0x7f) {
            rc = bad(r, c == '"' ? "unescaped '\"' in a string" : "raw control byte in a string");
            break;
        }
        if (c != '\\') {
            out[o++] = (char)c;
            continue;
        }
        if (s >= e) {
            rc = bad(r, "string ends inside an escape");
            break;
        }
        char x = *s++;
        switch (x) {
        case '\\': out[o++] = '\\'; break;
        case '"': out[o++] = '"'; break;
        case 'n': out[o++] = '\n'; break;
        case 'r': out[o++] = '\r'; break;
        case 't': out[o++] = '\t'; break;
        case 'x': {
            int hi = e - s >= 2 ? hexval(s[0]) : -1, lo = e - s >= 2 ? hexval(s[1]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                rc = bad(r, "bad \\x escape (two hex digits, not 00)");
                break;
            }
            out[o++] = (char)(hi * 16 + lo);
            s += 2;
            break;
        }
        default: rc = bad(r, "unknown escape in a string"); break;
        }
        if (rc < 0)
            break;
    }
    if (rc == 0)
        rc = melt_plan_add_turn(p, out, o, r->err);
    free(out);
    return rc;
}

int melt_plan_parse(const char *buf, size_t len, melt_plan **out, melt_error *err)
{
    *out = NULL;
    reader r = {.buf = buf, .end = buf + len, .err = err};
    if (!next_line(&r) || r.len != 11 || memcmp(r.line, "melt-plan 1", 11) != 0)
        return bad(&r, "not a melt plan (expected 'melt-plan 1')");
    if (!next_line(&r) || r.len < 6 || memcmp(r.line, "kind ", 5) != 0)
        return bad(&r, "expected 'kind NAME'");
    int kind = -1;
    for (int k = 0; k < 3; k++)
        if (r.len - 5 == strlen(kind_names[k]) && memcmp(r.line + 5, kind_names[k], r.len - 5) == 0)
            kind = k;
    if (kind < 0)
        return bad(&r, "unknown kind (synthetic, conversations or prompts)");
    melt_plan *p = melt_plan_new((enum melt_plan_kind)kind);
    if (!p)
        return melt_errorf(err, MELT_ENOMEM, "plan: out of memory");
    static const char *const keys[] = {"prompt_tokens", "gen_tokens", "max_gen_tokens",
                                       "max_context_tokens", "ignore_eos"};
    int32_t *fields[] = {&p->prompt_tokens, &p->gen_tokens, &p->max_gen_tokens,
                         &p->max_context_tokens};
    int rc = 0;
    unsigned long long v, n_convs = 0;
    for (size_t k = 0; k < 5 && rc == 0; k++) {
        if (!next_line(&r) || !key_number(&r, keys[k], k == 4 ? 1 : INT32_MAX, &v)) {
            char what[64];
            snprintf(what, sizeof what, "expected '%s N'", keys[k]);
            rc = bad(&r, what);
        } else if (k == 4) {
            p->ignore_eos = v == 1;
        } else {
            *fields[k] = (int32_t)v;
        }
    }
    if (rc == 0 && (!next_line(&r) || !key_number(&r, "conversations", len, &n_convs)))
        rc = bad(&r, "expected 'conversations N'");
    for (unsigned long long c = 0; rc == 0 && c < n_convs; c++) {
        unsigned long long n_turns;
        if (!next_line(&r) || !key_number(&r, "conversation", len, &n_turns)) {
            rc = bad(&r, "expected 'conversation N'");
            break;
        }
        rc = melt_plan_add_conv(p, err);
        for (unsigned long long t = 0; rc == 0 && t < n_turns; t++)
            rc = next_line(&r) ? read_turn(&r, p) : bad(&r, "plan ends inside a conversation");
    }
    if (rc == 0 && (!next_line(&r) || r.len != 3 || memcmp(r.line, "end", 3) != 0))
        rc = bad(&r, "expected 'end' (is the plan truncated?)");
    if (rc == 0 && r.buf < r.end)
        rc = bad(&r, "data after 'end'");
    if (rc < 0) {
        melt_plan_free(p);
        return rc;
    }
    *out = p;
    return 0;
}

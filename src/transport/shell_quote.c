/* melt — POSIX sh quoting, and reading what remote commands print (see
 * shell_quote.h). */
#include "transport/shell_quote.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bytes of s quoted, without the NUL. */
static size_t quoted_len(const char *s)
{
    size_t n = 2;
    for (; *s; s++)
        n += *s == '\'' ? 4 : 1;
    return n;
}

/* Writes s quoted at out; returns the end. */
static char *quote_into(char *out, const char *s)
{
    *out++ = '\'';
    for (; *s; s++) {
        if (*s == '\'') {
            memcpy(out, "'\\''", 4);   /* close, escaped quote, reopen */
            out += 4;
        } else {
            *out++ = *s;
        }
    }
    *out++ = '\'';
    return out;
}

char *melt_shell_quote(const char *s)
{
    char *q = malloc(quoted_len(s) + 1);
    if (!q)
        return NULL;
    *quote_into(q, s) = '\0';
    return q;
}

char *melt_shell_join(char *const argv[])
{
    size_t n = 1;
    for (size_t i = 0; argv[i]; i++)
        n += quoted_len(argv[i]) + 1;
    char *q = malloc(n), *o = q;
    if (!q)
        return NULL;
    for (size_t i = 0; argv[i]; i++) {
        if (i)
            *o++ = ' ';
        o = quote_into(o, argv[i]);
    }
    *o = '\0';
    return q;
}

char *melt_concat3(const char *a, const char *b, const char *c)
{
    size_t n = strlen(a) + strlen(b) + strlen(c) + 1;
    char *r = malloc(n);
    if (r)
        snprintf(r, n, "%s%s%s", a, b, c);
    return r;
}

const char *melt_last_line(char *text)
{
    if (!text)
        return "";
    size_t n = strlen(text);
    while (n && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == ' '))
        text[--n] = '\0';
    char *nl = strrchr(text, '\n');
    return nl ? nl + 1 : text;
}

bool melt_is_sha256_line(const char *p)
{
    for (int i = 0; i < 64; i++)
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
            return false;
    return p[64] == ' ';
}

bool melt_parse_df_free(char *text, uint64_t *bytes)
{
    const char *line = melt_last_line(text);
    char num[64] = "";
    if (sscanf(line, "%*s %*s %*s %63s", num) != 1)
        return false;
    char *end = NULL;
    errno = 0;
    unsigned long long kib = strtoull(num, &end, 10);
    if (end != num && *end == '\0' && num[0] != '-' && errno == 0) {
        if (kib > UINT64_MAX / 1024u)
            return false;
        *bytes = (uint64_t)kib * 1024u;
        return true;
    }
    double v = strtod(num, &end);   /* old Android df: "1.5G" */
    if (end == num || !(v >= 0))
        return false;
    double mul;
    switch (*end) {
    case 'K': case 'k': mul = 1024.0; break;
    case 'M': mul = 1048576.0; break;
    case 'G': mul = 1073741824.0; break;
    case 'T': mul = 1099511627776.0; break;
    default: return false;
    }
    if (end[1] != '\0' || v * mul >= 18446744073709551615.0)
        return false;
    *bytes = (uint64_t)(v * mul);
    return true;
}

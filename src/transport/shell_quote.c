/* melt — POSIX sh quoting (see shell_quote.h). */
#include "transport/shell_quote.h"

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

#include "melt/fs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int melt_read_file(const char *path, char **buf, size_t *len, melt_error *err)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f)
        return melt_errorf(err, MELT_EIO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *p = malloc(cap);
    int rc = 0;
    for (;;) {
        if (!p) {
            rc = melt_errorf(err, MELT_ENOMEM, "%s: out of memory", path);
            break;
        }
        n += fread(p + n, 1, cap - 1 - n, f);   /* keep one byte for the NUL */
        if (n < cap - 1) {
            if (ferror(f))
                rc = melt_errorf(err, MELT_EIO, "%s: read error: %s", path, strerror(errno));
            break;
        }
        char *q = realloc(p, cap * 2);
        if (!q)
            free(p);
        p = q;
        cap *= 2;
    }
    if (f != stdin)
        fclose(f);
    if (rc < 0) {
        free(p);
        return rc;
    }
    p[n] = '\0';
    *buf = p;
    *len = n;
    return 0;
}

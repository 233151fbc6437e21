/* Helpers shared by the transport tests (test_transport.c, test_adb.c):
 * run argv through a transport and collect its stdout; '@'-substitution of
 * a path into hostile values; file existence. */
#ifndef MELT_TRANSPORT_TESTUTIL_H
#define MELT_TRANSPORT_TESTUTIL_H

#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>

#include "melt/proc.h"
#include "melt/transport.h"

typedef struct buf {
    char data[8192];
    size_t n;
} buf;

static inline int collect(int fd_index, const char *data, size_t n, void *user)
{
    buf *b = user;
    if (fd_index == 1 && b->n + n < sizeof b->data) {
        memcpy(b->data + b->n, data, n);
        b->n += n;
        b->data[b->n] = '\0';
    }
    return 0;
}

/* Run argv through t; stdout into *out; returns the exit code. */
static inline int run_on(const melt_transport_ops *t, void *st, char *const argv[], buf *out)
{
    melt_proc p = {.pid = -1, .out_fd = -1, .err_fd = -1};
    melt_error e = {0};
    out->n = 0;
    out->data[0] = '\0';
    if (t->spawn(st, argv, &p, &e) < 0)
        fail_msg("spawn: %s", e.msg);
    assert_int_equal(melt_proc_pump(&p, 20000, collect, out, &e), 1);
    assert_int_equal(melt_proc_wait(&p, 20000), 1);
    int code = melt_proc_exit_code(&p);
    melt_proc_close(&p);
    return code;
}

static inline char *subst(const char *s, const char *path)
{
    char tmp[4096];
    size_t k = 0;
    for (; *s && k + strlen(path) + 2 < sizeof tmp; s++) {
        if (*s == '@') {
            memcpy(tmp + k, path, strlen(path));
            k += strlen(path);
        } else {
            tmp[k++] = *s;
        }
    }
    tmp[k] = '\0';
    return strdup(tmp);
}

static inline bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

#endif

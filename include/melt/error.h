/* melt — error reporting.
 *
 * Every fallible function returns 0 on success or a negative MELT_E* code,
 * and fills a caller-owned melt_error with one line of context (what failed,
 * where: file, byte offset, key). The CLI prints that line and exits non-zero.
 */
#ifndef MELT_ERROR_H
#define MELT_ERROR_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

enum melt_status {
    MELT_OK = 0,
    MELT_EIO = -1,          /* open/read/write/mmap failed */
    MELT_EFORMAT = -2,      /* malformed input (bad magic, offset past EOF, ...) */
    MELT_ENOMEM = -3,       /* allocation failed */
    MELT_EINVAL = -4,       /* bad argument from the caller or user */
    MELT_EUNSUPPORTED = -5, /* well-formed but not something melt can do */
    MELT_ENOTFOUND = -6,    /* key, tensor or preset not present */
};

typedef struct melt_error {
    int code;       /* last MELT_E* code, 0 if none */
    char msg[512];  /* one line, no trailing newline */
} melt_error;

/* Record an error (printf-style message) and return code. err may be NULL.
 * The arguments may include err->msg itself, to prefix context. */
int melt_errorf(melt_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Clear err to "no error". */
void melt_error_clear(melt_error *err);

/* Short name of a status code ("format error", ...). */
const char *melt_status_str(int code);

#ifdef __cplusplus
}
#endif
#endif

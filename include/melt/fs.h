/* melt — small file helpers. */
#ifndef MELT_FS_H
#define MELT_FS_H

#include <stddef.h>

#include "melt/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Read a whole file ("-" = standard input) into *buf (malloc'd, with a NUL
 * after the *len bytes so text can be used as a C string; caller frees).
 * Errors name the path: MELT_EIO, MELT_ENOMEM. */
int melt_read_file(const char *path, char **buf, size_t *len, melt_error *err);

#ifdef __cplusplus
}
#endif
#endif

/* Helpers shared by the probes in src/probes/ (internal).
 *
 * Every file read is bounded (at most cap-1 bytes, with open/read/close and no
 * stdio, so sample() allocates nothing) and every number is parsed strictly:
 * empty, garbage or out-of-range text is MELT_EFORMAT, never a crash. */
#ifndef MELT_PROBE_UTIL_H
#define MELT_PROBE_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "melt/probe.h"

/* root joined with the printf-formatted rest (which starts with '/').
 * MELT_EINVAL if it does not fit. root NULL or "" means "/". */
int probe_path(char *buf, size_t n, const char *root, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* snprintf that says when it truncated: 0, or MELT_EINVAL (buf still
 * NUL-terminated). */
int probe_fmt(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Read at most cap-1 bytes of path into buf, NUL-terminated. Returns the byte
 * count, or MELT_ENOTFOUND (absent), MELT_EIO (unreadable). */
long probe_read(const char *path, char *buf, size_t cap);

/* First line of a small file, trailing whitespace removed. */
int probe_read_line(const char *path, char *buf, size_t cap);

/* One integer (decimal, optional sign, surrounding whitespace) from a file. */
int probe_read_i64(const char *path, int64_t *out);

/* Strict decimal parse at s (leading spaces skipped); *end after the digits.
 * MELT_EFORMAT on no digits or overflow. */
int probe_parse_i64(const char *s, const char **end, int64_t *out);

/* Is path an existing directory / readable file? */
int probe_is_dir(const char *path);
int probe_exists(const char *path);

/* Entries of dir whose names are prefix<number>[suffix...] — the numbers,
 * sorted ascending, into idx (at most cap). Returns the count, or
 * MELT_ENOTFOUND if dir is absent. */
int probe_list_numbered(const char *dir, const char *prefix, int *idx, int cap);

/* Options "k=v,k=v": MELT_EINVAL naming the first key not in known
 * (NULL-terminated). */
int probe_opts_check(const char *probe, const char *options, const char *const *known,
                     melt_error *err);
/* Value of key into val (NUL-terminated); 1 if present, 0 if not. */
int probe_opt(const char *options, const char *key, char *val, size_t n);

/* Copy a sysfs label into a key-safe form: [A-Za-z0-9_.-], others -> '_'. */
void probe_sanitize(char *dst, size_t n, const char *src);

/* Emit one MELT_EV_SAMPLE. */
void probe_emit(melt_probe_emit_fn emit, void *ctx, const char *probe, int64_t now_ns,
                const char *key, double value, const char *unit);

#endif

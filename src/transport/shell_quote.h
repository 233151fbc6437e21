/* melt — quoting for a POSIX shell, for transports whose remote side runs a
 * command line through the user's shell (ssh, adb shell).
 *
 * Every string is single-quoted, with each ' written as '\'' : inside single
 * quotes a POSIX sh expands nothing ($, `, \, ", newlines and UTF-8 are all
 * literal), so quoting a value once makes the shell hand it over exactly as
 * it was. Empty strings become ''. Quote each value exactly once: a quoted
 * value quoted again arrives with its quotes.
 *
 * Ownership: every function returns a malloc'd string the caller frees, or
 * NULL when out of memory.
 */
#ifndef MELT_TRANSPORT_SHELL_QUOTE_H
#define MELT_TRANSPORT_SHELL_QUOTE_H

#include <stddef.h>

/* s as one single-quoted word ("a b" -> 'a b', "it's" -> 'it'\''s'). */
char *melt_shell_quote(const char *s);

/* argv (NULL-terminated) as one command line: each element quoted, joined
 * by spaces. An empty argv gives "". */
char *melt_shell_join(char *const argv[]);

/* ---- reading what remote shell commands print (ssh, adb) ---- */

#include <stdbool.h>
#include <stdint.h>

/* a, b and c joined (malloc'd), or NULL when out of memory. */
char *melt_concat3(const char *a, const char *b, const char *c);
/* The last non-empty line of text, with trailing newlines, carriage returns
 * and spaces removed in place ("" for NULL). */
const char *melt_last_line(char *text);
/* True when p starts with a sha256sum line: 64 lower-case hex digits and a
 * space. */
bool melt_is_sha256_line(const char *p);
/* Free bytes from the last line of `df -Pk DIR` (4th column, KiB; Android's
 * old df writes it with a K/M/G/T suffix instead). */
bool melt_parse_df_free(char *text, uint64_t *bytes);

#endif

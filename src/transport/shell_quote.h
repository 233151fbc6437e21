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

#endif

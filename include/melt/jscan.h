/* melt — a small JSON reader for code that must stay libc only (the
 * backends inside the static agent). It parses one JSON text into a tree
 * held in two allocations, with strings unescaped (\uXXXX and surrogate
 * pairs to UTF-8), numbers as double, and a bounded nesting depth; nodes
 * are then looked up by member name, index or a dotted path such as
 * "choices.0.delta.content". Read-only after parsing; the host side uses
 * jansson instead. */
#ifndef MELT_JSCAN_H
#define MELT_JSCAN_H

#include <stdbool.h>
#include <stddef.h>

#include "melt/error.h"

#ifdef __cplusplus
extern "C" {
#endif

enum melt_jtype {
    MELT_JNULL = 0,
    MELT_JBOOL,
    MELT_JNUM,
    MELT_JSTR,
    MELT_JARR,
    MELT_JOBJ,
};

typedef struct melt_jnode melt_jnode;
typedef struct melt_jdoc melt_jdoc;

/* Deepest nesting of arrays/objects accepted. */
#define MELT_JSCAN_MAX_DEPTH 64

/* Parse text[0, len) (a single value, whitespace around it allowed).
 * MELT_EFORMAT with the byte offset on bad syntax, too deep nesting, a
 * lone surrogate escape or trailing bytes; MELT_ENOMEM. *out is freed
 * with melt_jdoc_free. */
int melt_jscan_parse(const char *text, size_t len, melt_jdoc **out, melt_error *err);
void melt_jdoc_free(melt_jdoc *doc);

const melt_jnode *melt_jdoc_root(const melt_jdoc *doc);

/* Every accessor below is NULL-safe: a NULL node reads as absent. */
enum melt_jtype melt_jnode_type(const melt_jnode *n);
/* Member key of an object (nil-safe: NULL for array elements / root). */
const char *melt_jnode_key(const melt_jnode *n);
/* Number of elements / members (0 for scalars). */
size_t melt_jnode_count(const melt_jnode *n);
/* i-th element or member in document order, or NULL. */
const melt_jnode *melt_jnode_at(const melt_jnode *n, size_t i);
/* The member called key of an object (the last one when repeated), or NULL. */
const melt_jnode *melt_jnode_get(const melt_jnode *obj, const char *key);
/* Follow a dotted path: each part is a member name, or an index when the
 * node is an array and the part is all digits. "" is n itself. */
const melt_jnode *melt_jnode_path(const melt_jnode *n, const char *path);

/* The string (NUL-terminated; *len, when not NULL, its length in bytes,
 * which may include NULs from \u0000), or NULL when n is not a string. */
const char *melt_jnode_str(const melt_jnode *n, size_t *len);
/* true and *out when n is a number. */
bool melt_jnode_num(const melt_jnode *n, double *out);
/* true and *out when n is true/false. */
bool melt_jnode_bool(const melt_jnode *n, bool *out);
/* The number at path, or dflt when absent or not a number. */
double melt_jnode_num_or(const melt_jnode *n, const char *path, double dflt);

/* Pieces shared with the event reader (src/runner/event.c), which scans
 * its lines without building a tree. The \uXXXX escape at p (p[0] is the
 * backslash; n bytes readable), with its low half when it is a high
 * surrogate: the code point in *cp and the bytes it took (6 or 12), or 0
 * with *why saying what is wrong (truncated, bad hex digits, a lone
 * surrogate). \u0000 is accepted (cp 0). */
size_t melt_json_unicode_escape(const char *p, size_t n, unsigned *cp, const char **why);
/* cp (at most 0x10FFFF) as UTF-8 into o (room for 4 bytes); the count. */
size_t melt_utf8_put(char *o, unsigned cp);

#ifdef __cplusplus
}
#endif
#endif

/* A YAML document as a small tree with 1-based line:column marks, loaded
 * with libyaml's event API (host only: the agent does not link libyaml).
 *
 * Scalars keep their text and whether they were plain (unquoted), so the
 * caller applies YAML's core schema itself: only a plain scalar is a number,
 * a boolean or null. Aliases are refused (no billion-laughs, no cycles),
 * nesting is capped, and a mapping with a repeated key is an error. */
#ifndef MELT_RUNNER_YAML_TREE_H
#define MELT_RUNNER_YAML_TREE_H

#include <stdbool.h>
#include <stddef.h>

#include "melt/error.h"

enum ynode_kind { YNODE_SCALAR, YNODE_SEQ, YNODE_MAP };

typedef struct ynode {
    enum ynode_kind kind;
    int line, col;          /* 1-based position of the node's first character */
    char *str;              /* scalar text, NUL-terminated (may hold NULs: len) */
    size_t len;
    bool plain;             /* scalar written without quotes or block style */
    size_t n;               /* sequence items, or mapping pairs */
    struct ynode **items;   /* seq: items[i]; map: key items[2i], value items[2i+1] */
} ynode;

#define YTREE_MAX_DEPTH 64

/* Parse buf[0..len) (one document). fname names the text in messages
 * ("FILE:LINE:COL: problem"). An empty document gives *root == NULL.
 * Free with ytree_free. */
int ytree_load(const char *buf, size_t len, const char *fname, ynode **root,
               melt_error *err);
void ytree_free(ynode *n);

/* Mapping look-up by key; NULL when absent or n is not a mapping. */
const ynode *ytree_get(const ynode *map, const char *key);
/* True for a plain scalar that YAML reads as null ("", "~", "null"). */
bool ytree_is_null(const ynode *n);

#endif

/* Fuzz target: the backends' JSON reader (src/core/jscan.c). Parses the
 * input; on success walks the whole tree by index and by key, checks that
 * counts, keys and string lengths agree, and that a member found by its
 * key is one with that key; a failure must leave no document. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "melt/jscan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t walk(const melt_jnode *n, int depth)
{
    if (depth > MELT_JSCAN_MAX_DEPTH + 1) abort();
    size_t seen = 1;
    const enum melt_jtype t = melt_jnode_type(n);
    size_t len = 0;
    const char *s = melt_jnode_str(n, &len);
    if ((t == MELT_JSTR) != (s != NULL) || (s && s[len] != '\0')) abort();
    const size_t count = melt_jnode_count(n);
    if (count && t != MELT_JARR && t != MELT_JOBJ) abort();
    for (size_t i = 0; i < count; i++) {
        const melt_jnode *k = melt_jnode_at(n, i);
        if (!k) abort();
        const char *key = melt_jnode_key(k);
        if ((t == MELT_JOBJ) != (key != NULL)) abort();
        if (key) {
            const melt_jnode *byk = melt_jnode_get(n, key);
            if (!byk || strcmp(melt_jnode_key(byk), key) != 0) abort();
        }
        seen += walk(k, depth + 1);
    }
    if (melt_jnode_at(n, count)) abort();
    return seen;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    melt_jdoc *doc = (melt_jdoc *)1;
    melt_error err = {0};
    const int rc = melt_jscan_parse((const char *)data, size, &doc, &err);
    if (rc < 0) {
        if (doc || err.msg[0] == '\0') abort();
        return 0;
    }
    const melt_jnode *root = melt_jdoc_root(doc);
    if (!root || walk(root, 1) > size + 1) abort();
    (void)melt_jnode_path(root, "choices.0.delta.content");
    (void)melt_jnode_num_or(root, "usage.extra.ttft_s", 0);
    melt_jdoc_free(doc);
    return 0;
}

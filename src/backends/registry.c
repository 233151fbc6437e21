/* melt — the table of backends (include/melt/backend.h) and the helpers
 * every backend shares. Adding a backend: one file that fills a
 * melt_backend_ops, one line in the table below. */
#include <stdlib.h>
#include <string.h>

#include "melt/backend.h"

const melt_backend_ops *melt_backend_builtin(void);    /* builtin.c */
const melt_backend_ops *melt_backend_llamacpp(void);   /* llamacpp.c */
const melt_backend_ops *melt_backend_mlc(void);        /* mlc.c */
const melt_backend_ops *melt_backend_openai(void);     /* openai.c */

static const melt_backend_ops *(*const table[])(void) = {
    melt_backend_builtin,
    melt_backend_llamacpp,
    melt_backend_mlc,
    melt_backend_openai,
};

const melt_backend_ops *melt_backend_find(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        const melt_backend_ops *ops = table[i]();
        if (ops && strcmp(ops->name, name) == 0)
            return ops;
    }
    return NULL;
}

const char *melt_backend_names(void)
{
    return "builtin, llamacpp, mlc, openai";
}

melt_backend_params melt_backend_default_params(void)
{
    melt_backend_params p;
    memset(&p, 0, sizeof p);
    p.sampling = melt_sampler_default_params();
    return p;
}

const char *melt_backend_end_name(enum melt_backend_end e)
{
    switch (e) {
    case MELT_BACKEND_END_LIMIT: return "limit";
    case MELT_BACKEND_END_EOG: return "eog";
    case MELT_BACKEND_END_CONTEXT: return "context";
    case MELT_BACKEND_END_CALLER: return "caller";
    case MELT_BACKEND_END_LOST: return "lost";
    }
    return "?";
}

void melt_backend_result_free(melt_backend_result *res)
{
    if (!res)
        return;
    free(res->reply);
    res->reply = NULL;
}

/* Fuzz target: the SSE parser (src/backends/sse.c) and the JSON reader
 * (src/core/jscan.c) on each event's data, as the OpenAI stream reads them.
 * The input is fed whole and again in pieces (sizes taken from its own
 * bytes); both must give the same events, and every event's data must be
 * NUL-terminated at its length. Events are capped at 4 KiB so oversize
 * handling runs too. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backends/http.h"
#include "melt/jscan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct seen {
    uint64_t hash;     /* over events and data, in order */
    size_t n;
} seen;

static int on_event(void *ctx, const char *event, const char *d, size_t len)
{
    seen *s = ctx;
    if (d[len] != '\0' || strlen(event) >= 64) abort();
    for (const char *p = event; *p; p++) s->hash = s->hash * 1099511628211u ^ (uint8_t)*p;
    for (size_t i = 0; i < len; i++) s->hash = s->hash * 1099511628211u ^ (uint8_t)d[i];
    s->hash = s->hash * 31 + len;
    s->n++;
    melt_jdoc *doc = NULL;
    if (melt_jscan_parse(d, len, &doc, NULL) == 0) {
        const melt_jnode *r = melt_jdoc_root(doc);
        size_t sl = 0;
        const char *c = melt_jnode_str(melt_jnode_path(r, "choices.0.delta.content"), &sl);
        if (c && c[sl] != '\0') abort();
        (void)melt_jnode_num_or(r, "usage.prompt_tokens", 0);
        for (size_t i = 0; i < melt_jnode_count(r); i++) (void)melt_jnode_key(melt_jnode_at(r, i));
        melt_jdoc_free(doc);
    }
    return 0;
}

static int run(const uint8_t *data, size_t size, int split, seen *out)
{
    melt_sse s;
    melt_sse_init(&s, on_event, out);
    s.max_event_bytes = 4096;
    int rc = 0;
    size_t i = 0, k = 0;
    while (i < size && rc == 0) {
        size_t step = split ? 1 + (size_t)data[k++ % size] % 17 : size;
        if (step > size - i) step = size - i;
        melt_error err = {0};
        rc = melt_sse_feed(&s, (const char *)data + i, step, &err);
        i += step;
    }
    melt_sse_free(&s);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    seen a = {0}, b = {0};
    const int ra = run(data, size, 0, &a);
    const int rb = run(data, size, 1, &b);
    if (ra != rb) abort();
    if (ra == 0 && (a.n != b.n || a.hash != b.hash)) abort();
    return 0;
}

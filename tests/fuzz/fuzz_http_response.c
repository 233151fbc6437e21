/* Fuzz target: the HTTP response parser (melt_http_parser in
 * src/backends/http.c) on raw response bytes, then the body through the
 * SSE parser as the backends do. Fed whole and again in pieces (sizes taken
 * from its own bytes): status, completeness and the body must agree, and
 * the body can never be longer than the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backends/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct got {
    uint64_t hash;
    size_t len;
    melt_sse sse;
} got;

static int on_event(void *ctx, const char *event, const char *d, size_t len)
{
    (void)ctx;
    (void)event;
    if (d[len] != '\0') abort();
    return 0;
}

static int on_body(void *ctx, const char *d, size_t n, int64_t t_ns)
{
    got *g = ctx;
    (void)t_ns;
    if (n == 0) abort();
    for (size_t i = 0; i < n; i++) g->hash = g->hash * 1099511628211u ^ (uint8_t)d[i];
    g->len += n;
    melt_sse_feed(&g->sse, d, n, NULL);
    return 0;
}

static int run(const uint8_t *data, size_t size, int split, got *g, melt_http_response *r)
{
    melt_http_parser ps;
    memset(g, 0, sizeof *g);
    melt_sse_init(&g->sse, on_event, NULL);
    g->sse.max_event_bytes = 8192;
    melt_http_parser_init(&ps, r, on_body, g);
    int rc = 0;
    size_t i = 0, k = 0;
    while (i < size && rc == 0) {
        size_t step = split ? 1 + (size_t)data[k++ % size] % 23 : size;
        if (step > size - i) step = size - i;
        melt_error err = {0};
        rc = melt_http_parser_feed(&ps, (const char *)data + i, step, (int64_t)i, &err);
        i += step;
    }
    if (rc == 0) rc = melt_http_parser_eof(&ps);
    melt_sse_free(&g->sse);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    got a, b;
    melt_http_response ra, rb;
    const int ca = run(data, size, 0, &a, &ra);
    const int cb = run(data, size, 1, &b, &rb);
    if (a.len > size || b.len > size) abort();
    if ((ca < 0) != (cb < 0)) abort();
    if (ca >= 0 && (ra.status != rb.status || ra.complete != rb.complete || a.len != b.len || a.hash != b.hash))
        abort();
    return 0;
}

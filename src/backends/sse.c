/* Server-Sent Events, incrementally (src/backends/http.h).
 *
 * Lines end in LF, CRLF or a lone CR (a CR at the end of a slice is held
 * until the next byte shows whether LF follows). A blank line dispatches
 * the event when it has data; "data:" lines are joined with LF; "event:"
 * names it; ":" comments (keep-alives), "id:", "retry:" and unknown
 * fields are skipped, except llama-server's "error:" lines (read as data
 * of an event named "error"). One space after the colon is dropped, as the spec
 * says. An event (or line) past max_event_bytes is an error rather than
 * unbounded memory.
 */
#include "backends/http.h"

#include <stdlib.h>
#include <string.h>

#define SSE_DEFAULT_MAX (4u << 20)

/* Internal line state kept in the struct's spare flag: whether the last
 * byte seen was a CR (so a following LF belongs to the same line end). */
enum { SSE_AFTER_CR = 1 };

void melt_sse_init(melt_sse *s, melt_sse_event_fn fn, void *ctx)
{
    memset(s, 0, sizeof *s);
    s->fn = fn;
    s->ctx = ctx;
}

static size_t max_bytes(const melt_sse *s)
{
    return s->max_event_bytes ? s->max_event_bytes : SSE_DEFAULT_MAX;
}

static int grow(char **buf, size_t *cap, size_t need, melt_error *err)
{
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 256;
    while (c < need) c *= 2;
    char *nb = realloc(*buf, c);
    if (!nb) return melt_errorf(err, MELT_ENOMEM, "SSE: out of memory");
    *buf = nb;
    *cap = c;
    return 0;
}

static int dispatch(melt_sse *s, melt_error *err)
{
    int rc = 0;
    if (s->has_data) {
        if (grow(&s->data, &s->data_cap, s->data_len + 1, err) < 0) return MELT_ENOMEM;
        s->data[s->data_len] = '\0';
        if (s->fn) rc = s->fn(s->ctx, s->event, s->data, s->data_len);
    }
    s->data_len = 0;
    s->has_data = false;
    s->event[0] = '\0';
    return rc;
}

/* One complete line (without its end) in s->buf[0, s->len). */
static int line(melt_sse *s, melt_error *err)
{
    const char *b = s->buf;
    const size_t n = s->len;
    if (n == 0) return dispatch(s, err);
    if (b[0] == ':') return 0;   /* comment / keep-alive */
    const char *colon = memchr(b, ':', n);
    const size_t name_len = colon ? (size_t)(colon - b) : n;
    const char *val = colon ? colon + 1 : b + n;
    size_t val_len = (size_t)(b + n - val);
    if (val_len > 0 && val[0] == ' ') {
        val++;
        val_len--;
    }
    /* llama-server writes a mid-stream failure as an "error:" field
     * instead of "data:": read it as the data of an event named error. */
    const bool is_error = name_len == 5 && memcmp(b, "error", 5) == 0;
    if (is_error) memcpy(s->event, "error", 6);
    if ((name_len == 4 && memcmp(b, "data", 4) == 0) || is_error) {
        const size_t sep = s->has_data ? 1 : 0;
        if (s->data_len + sep + val_len > max_bytes(s))
            return melt_errorf(err, MELT_EFORMAT, "SSE: event larger than %zu bytes", max_bytes(s));
        if (grow(&s->data, &s->data_cap, s->data_len + sep + val_len + 1, err) < 0) return MELT_ENOMEM;
        if (sep) s->data[s->data_len++] = '\n';
        memcpy(s->data + s->data_len, val, val_len);
        s->data_len += val_len;
        s->has_data = true;
    } else if (name_len == 5 && memcmp(b, "event", 5) == 0) {
        const size_t k = val_len < sizeof s->event - 1 ? val_len : sizeof s->event - 1;
        memcpy(s->event, val, k);
        s->event[k] = '\0';
    }
    return 0;
}

int melt_sse_feed(melt_sse *s, const char *p, size_t n, melt_error *err)
{
    for (size_t i = 0; i < n; i++) {
        const char c = p[i];
        if (c == '\n' && (s->flags & SSE_AFTER_CR)) {
            s->flags &= ~SSE_AFTER_CR;   /* the LF of a CRLF already ended the line */
            continue;
        }
        s->flags &= ~SSE_AFTER_CR;
        if (c == '\n' || c == '\r') {
            if (c == '\r') s->flags |= SSE_AFTER_CR;
            int rc = line(s, err);
            s->len = 0;
            if (rc != 0) return rc;
            continue;
        }
        if (s->len + 1 > max_bytes(s))
            return melt_errorf(err, MELT_EFORMAT, "SSE: line longer than %zu bytes", max_bytes(s));
        if (s->len + 1 > s->cap && grow(&s->buf, &s->cap, s->len + 1, err) < 0) return MELT_ENOMEM;
        /* Copy the run of ordinary bytes at once (the common case). */
        size_t j = i;
        while (j < n && p[j] != '\n' && p[j] != '\r') j++;
        const size_t run = j - i;
        if (s->len + run > max_bytes(s))
            return melt_errorf(err, MELT_EFORMAT, "SSE: line longer than %zu bytes", max_bytes(s));
        if (grow(&s->buf, &s->cap, s->len + run, err) < 0) return MELT_ENOMEM;
        memcpy(s->buf + s->len, p + i, run);
        s->len += run;
        i = j - 1;
    }
    return 0;
}

bool melt_sse_pending(const melt_sse *s)
{
    return s->len > 0 || s->has_data;
}

void melt_sse_free(melt_sse *s)
{
    free(s->buf);
    free(s->data);
    s->buf = s->data = NULL;
    s->len = s->cap = s->data_len = s->data_cap = 0;
}

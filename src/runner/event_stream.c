/* Splitting an agent's byte stream into event lines
 * (include/melt/event_stream.h). One buffer of max_line_bytes holds the
 * line being assembled; a line that arrives whole inside one feed is parsed
 * in place without a copy. */
#include "melt/event_stream.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct melt_event_stream {
    melt_event_fn on_event;
    melt_event_bad_fn on_bad;
    void *user;
    char *buf;          /* the partial line */
    size_t len, cap;
    int skipping;       /* the current line went over the cap: drop to '\n' */
    melt_event_stream_stats st;
};

melt_event_stream_params melt_event_stream_default_params(void)
{
    melt_event_stream_params p = {.max_line_bytes = 64 * 1024};
    return p;
}

int melt_event_stream_new(const melt_event_stream_params *params, melt_event_fn on_event,
                          melt_event_bad_fn on_bad, void *user, melt_event_stream **out,
                          melt_error *err)
{
    melt_event_stream_params p = params ? *params : melt_event_stream_default_params();
    if (p.max_line_bytes < 256) p.max_line_bytes = 256;
    *out = NULL;
    melt_event_stream *s = calloc(1, sizeof *s);
    if (s) s->buf = malloc(p.max_line_bytes);
    if (!s || !s->buf) {
        free(s);
        return melt_errorf(err, MELT_ENOMEM, "out of memory for an event stream buffer");
    }
    s->cap = p.max_line_bytes;
    s->on_event = on_event;
    s->on_bad = on_bad;
    s->user = user;
    *out = s;
    return 0;
}

void melt_event_stream_free(melt_event_stream *s)
{
    if (!s) return;
    free(s->buf);
    free(s);
}

static void report(melt_event_stream *s, const char *why, const char *line, size_t len)
{
    s->st.bad++;
    if (s->on_bad) s->on_bad(s->user, s->st.lines, why, line, len);
}

/* One complete line (terminator removed or absent). */
static int one_line(melt_event_stream *s, const char *line, size_t len, int at_eof)
{
    s->st.lines++;
    if (len && line[len - 1] == '\r') len--;
    size_t k = 0;
    while (k < len && (line[k] == ' ' || line[k] == '\t')) k++;
    if (k == len) {
        s->st.empty++;
        return 0;
    }
    melt_event ev;
    melt_error e = {0};
    if (melt_event_parse(line, len, &ev, &e) < 0) {
        char why[sizeof e.msg + 48];
        snprintf(why, sizeof why, "%s%s", at_eof ? "last line without a newline: " : "", e.msg);
        report(s, why, line, len);
        return 0;
    }
    s->st.good++;
    return s->on_event && s->on_event(s->user, &ev, s->st.lines) ? 1 : 0;
}

int melt_event_stream_feed(melt_event_stream *s, const char *data, size_t n)
{
    s->st.bytes += n;
    while (n) {
        const char *nl = memchr(data, '\n', n);
        const size_t take = nl ? (size_t)(nl - data) : n;   /* bytes of this line */
        int rc = 0;
        if (s->skipping) {
            /* over-long line already reported: drop bytes until its end */
        } else if (s->len + take > s->cap) {
            const size_t room = s->cap - s->len;
            memcpy(s->buf + s->len, data, room);
            s->len = s->cap;
            s->skipping = 1;
            s->st.too_long++;
            char why[96];
            snprintf(why, sizeof why, "line longer than %zu bytes (skipped)", s->cap);
            s->st.lines++;               /* numbered now, counted once */
            report(s, why, s->buf, s->len);
            s->st.lines--;
        } else if (nl && s->len == 0) {
            rc = one_line(s, data, take, 0);   /* whole line in place */
        } else {
            memcpy(s->buf + s->len, data, take);
            s->len += take;
            if (nl) rc = one_line(s, s->buf, s->len, 0);
        }
        if (!nl) break;
        if (s->skipping) s->st.lines++;
        if (nl) {
            s->skipping = 0;
            s->len = 0;
        }
        data = nl + 1;
        n -= take + 1;
        if (rc) return 1;
    }
    return 0;
}

int melt_event_stream_finish(melt_event_stream *s)
{
    int rc = 0;
    if (s->skipping) s->st.lines++;
    else if (s->len) rc = one_line(s, s->buf, s->len, 1);
    s->len = 0;
    s->skipping = 0;
    return rc;
}

int melt_event_stream_read_fd(melt_event_stream *s, int fd, melt_error *err)
{
    char chunk[16384];
    for (;;) {
        const ssize_t got = read(fd, chunk, sizeof chunk);
        if (got < 0) {
            if (errno == EINTR) continue;
            return melt_errorf(err, MELT_EIO, "reading the event stream: %s", strerror(errno));
        }
        if (got == 0) return melt_event_stream_finish(s);
        if (melt_event_stream_feed(s, chunk, (size_t)got)) return 1;
    }
}

void melt_event_stream_get_stats(const melt_event_stream *s, melt_event_stream_stats *st)
{
    *st = s->st;
}

/* Fuzz target: the agent's event lines (melt_event_parse) and the host's
 * stream reader. The input is parsed as one line; when it parses, the
 * event is formatted and parsed again and must come back equal (and the
 * formatted text must be one line). The same bytes are then fed to the
 * stream reader in two pieces split where the first byte says, and every
 * line it accepts must round-trip too. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "melt/event.h"
#include "melt/event_stream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int same(const melt_event *a, const melt_event *b)
{
    return a->kind == b->kind && a->t_ns == b->t_ns && a->req == b->req && a->i == b->i &&
           a->id == b->id && a->has_value == b->has_value && (!a->has_value || a->value == b->value) &&
           !strcmp(a->name, b->name) && !strcmp(a->key, b->key) && !strcmp(a->unit, b->unit) &&
           !strcmp(a->msg, b->msg);
}

static void check_round_trip(const melt_event *ev)
{
    char buf[4096];
    const size_t n = melt_event_format(ev, buf, sizeof buf);
    if (n >= sizeof buf || n == 0 || buf[n - 1] != '\n' || memchr(buf, '\n', n - 1)) abort();
    melt_event back;
    melt_error err = {0};
    if (melt_event_parse(buf, n, &back, &err) < 0) abort();
    if (!same(ev, &back)) abort();
}

static int on_event(void *user, const melt_event *ev, uint64_t line_no)
{
    (void)user;
    (void)line_no;
    check_round_trip(ev);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    melt_event ev;
    melt_error err = {0};
    const int rc = melt_event_parse((const char *)data, size, &ev, &err);
    if (rc == 0) check_round_trip(&ev);
    else if (rc != MELT_EFORMAT || !err.msg[0]) abort();

    melt_event_stream_params p = {.max_line_bytes = 256};
    melt_event_stream *s;
    if (melt_event_stream_new(&p, on_event, NULL, NULL, &s, &err) < 0) abort();
    const size_t cut = size ? data[0] % (size + 1) : 0;
    melt_event_stream_feed(s, (const char *)data, cut);
    melt_event_stream_feed(s, (const char *)data + cut, size - cut);
    melt_event_stream_finish(s);
    melt_event_stream_stats st;
    melt_event_stream_get_stats(s, &st);
    if (st.good + st.bad + st.empty != st.lines || st.bytes != size) abort();
    melt_event_stream_free(s);
    return 0;
}

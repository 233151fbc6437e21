/* The Server-Sent-Events parser (src/backends/sse.c). */
#include "testutil.h"

#include "backends/http.h"

typedef struct got {
    char events[64][32];
    char *data[64];
    size_t len[64];
    int n;
    int stop_at;   /* return non-zero at this event (-1: never) */
} got;

static int on_event(void *ctx, const char *event, const char *data, size_t len)
{
    got *g = ctx;
    if (g->n < 64) {
        snprintf(g->events[g->n], sizeof g->events[0], "%s", event);
        g->data[g->n] = malloc(len + 1);
        memcpy(g->data[g->n], data, len + 1);
        g->len[g->n] = len;
    }
    g->n++;
    return g->n - 1 == g->stop_at ? 7 : 0;
}

static void got_free(got *g)
{
    for (int i = 0; i < g->n && i < 64; i++) free(g->data[i]);
    memset(g, 0, sizeof *g);
}

/* Feed s in pieces of the given sizes (cycled); 0 = all at once. */
static int feed_split(melt_sse *s, const char *p, size_t n, const size_t *sizes, size_t n_sizes)
{
    size_t i = 0, k = 0;
    while (i < n) {
        size_t step = n_sizes ? sizes[k++ % n_sizes] : n;
        if (step > n - i) step = n - i;
        melt_error err = {0};
        const int rc = melt_sse_feed(s, p + i, step, &err);
        if (rc != 0) return rc;
        i += step;
    }
    return 0;
}

static const char stream_text[] =
    ": keep-alive comment\r\n"
    "data: {\"a\":1}\r\n\r\n"
    "event: error\n"
    "data: first\n"
    "data:second\n"
    "id: 7\n"
    "retry: 100\n"
    "unknown: x\n"
    "\n"
    ":\n"
    "data\n\n"                 /* a field with no colon: empty data */
    "data: last\r\r";          /* lone CR line ends */

static void check_stream(got *g)
{
    assert_int_equal(g->n, 4);
    assert_string_equal(g->events[0], "");
    assert_string_equal(g->data[0], "{\"a\":1}");
    assert_string_equal(g->events[1], "error");
    assert_string_equal(g->data[1], "first\nsecond");
    assert_int_equal(g->len[1], 12);
    assert_string_equal(g->events[2], "");   /* event name does not leak into the next */
    assert_string_equal(g->data[2], "");
    assert_string_equal(g->data[3], "last");
}

static void sse_splits_events_whole_and_byte_by_byte(void **state)
{
    (void)state;
    const size_t one[] = {1};
    const size_t odd[] = {3, 1, 7, 2, 13};
    const size_t *splits[] = {NULL, one, odd};
    const size_t n_splits[] = {0, 1, 5};
    for (int k = 0; k < 3; k++) {
        got g = {.stop_at = -1};
        melt_sse s;
        melt_sse_init(&s, on_event, &g);
        assert_int_equal(feed_split(&s, stream_text, sizeof stream_text - 1, splits[k], n_splits[k]), 0);
        check_stream(&g);
        assert_false(melt_sse_pending(&s));
        melt_sse_free(&s);
        got_free(&g);
    }
}

static void sse_random_splits_of_a_recording_give_the_same_events(void **state)
{
    (void)state;
    size_t n = 0;
    char *rec = slurp_text(fixture_path("llamacpp/chat-stream.http"), &n);
    const char *body = strstr(rec, "\r\n\r\n") + 4;
    const size_t body_len = n - (size_t)(body - rec);
    got ref = {.stop_at = -1};
    melt_sse s;
    melt_sse_init(&s, on_event, &ref);
    assert_int_equal(melt_sse_feed(&s, body, body_len, NULL), 0);
    melt_sse_free(&s);
    assert_int_equal(ref.n, 20);   /* role, 16 tokens, finish, usage, [DONE] */
    assert_string_equal(ref.data[19], "[DONE]");
    uint64_t seed = 12345;
    for (int trial = 0; trial < 50; trial++) {
        got g = {.stop_at = -1};
        melt_sse_init(&s, on_event, &g);
        size_t i = 0;
        while (i < body_len) {
            size_t step = 1 + (size_t)(test_rand_u64(&seed) % 97);
            if (step > body_len - i) step = body_len - i;
            assert_int_equal(melt_sse_feed(&s, body + i, step, NULL), 0);
            i += step;
        }
        assert_int_equal(g.n, ref.n);
        for (int e = 0; e < g.n; e++) assert_string_equal(g.data[e], ref.data[e]);
        melt_sse_free(&s);
        got_free(&g);
    }
    got_free(&ref);
    free(rec);
}

static void sse_reports_a_cut_event_as_pending(void **state)
{
    (void)state;
    size_t n = 0;
    char *rec = slurp_text(fixture_path("llamacpp/chat-stream-cut.http"), &n);
    const char *body = strstr(rec, "\r\n\r\n") + 4;
    got g = {.stop_at = -1};
    melt_sse s;
    melt_sse_init(&s, on_event, &g);
    assert_int_equal(melt_sse_feed(&s, body, n - (size_t)(body - rec), NULL), 0);
    assert_true(g.n > 1);
    assert_true(melt_sse_pending(&s));
    assert_non_null(strstr(g.data[g.n - 1], "\"content\":\"n\""));
    melt_sse_free(&s);
    got_free(&g);
    free(rec);
}

static void sse_rejects_oversized_events_and_lines(void **state)
{
    (void)state;
    got g = {.stop_at = -1};
    melt_sse s;
    melt_sse_init(&s, on_event, &g);
    s.max_event_bytes = 16;
    melt_error err = {0};
    const char many[] = "data: 0123456789\ndata: 0123456789\n\n";
    assert_int_equal(melt_sse_feed(&s, many, sizeof many - 1, &err), MELT_EFORMAT);
    assert_non_null(strstr(err.msg, "larger than 16"));
    assert_int_equal(g.n, 0);
    melt_sse_free(&s);
    melt_sse_init(&s, on_event, &g);
    s.max_event_bytes = 16;
    const char line[] = ": a comment much longer than sixteen bytes";
    assert_int_equal(melt_sse_feed(&s, line, sizeof line - 1, &err), MELT_EFORMAT);
    assert_non_null(strstr(err.msg, "longer than 16"));
    melt_sse_free(&s);
}

static void sse_stops_when_the_callback_asks(void **state)
{
    (void)state;
    got g = {.stop_at = 1};
    melt_sse s;
    melt_sse_init(&s, on_event, &g);
    const char t[] = "data: a\n\ndata: b\n\ndata: c\n\n";
    assert_int_equal(melt_sse_feed(&s, t, sizeof t - 1, NULL), 7);
    assert_int_equal(g.n, 2);
    melt_sse_free(&s);
    got_free(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sse_splits_events_whole_and_byte_by_byte),
        cmocka_unit_test(sse_random_splits_of_a_recording_give_the_same_events),
        cmocka_unit_test(sse_reports_a_cut_event_as_pending),
        cmocka_unit_test(sse_rejects_oversized_events_and_lines),
        cmocka_unit_test(sse_stops_when_the_callback_asks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

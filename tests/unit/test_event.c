/* The agent's event lines: format/parse round trips, rejection of each
 * kind of malformed line with a reason, and the host's stream reader. */
#include "testutil.h"

#include <fcntl.h>
#include <math.h>
#include <sys/wait.h>

#include "melt/event.h"
#include "melt/event_stream.h"

static melt_event blank(enum melt_event_kind k, int64_t t)
{
    melt_event ev;
    memset(&ev, 0, sizeof ev);
    ev.kind = k;
    ev.t_ns = t;
    ev.req = ev.i = ev.id = -1;
    return ev;
}

static void assert_same(const melt_event *a, const melt_event *b)
{
    assert_int_equal(a->kind, b->kind);
    assert_true(a->t_ns == b->t_ns);
    assert_int_equal(a->req, b->req);
    assert_int_equal(a->i, b->i);
    assert_int_equal(a->id, b->id);
    assert_int_equal(a->has_value, b->has_value);
    if (a->has_value) assert_true(a->value == b->value);
    assert_string_equal(a->name, b->name);
    assert_string_equal(a->key, b->key);
    assert_string_equal(a->unit, b->unit);
    assert_string_equal(a->msg, b->msg);
}

/* format, check it is one line, parse, compare. */
static void round_trip(const melt_event *ev)
{
    char buf[4096];
    const size_t n = melt_event_format(ev, buf, sizeof buf);
    assert_true(n < sizeof buf);
    assert_int_equal(strlen(buf), n);
    assert_int_equal(buf[n - 1], '\n');
    assert_null(memchr(buf, '\n', n - 1));
    melt_event back;
    melt_error err = {0};
    if (melt_event_parse(buf, n, &back, &err) < 0) fail_msg("parse of %s failed: %s", buf, err.msg);
    assert_same(ev, &back);
}

static void event_round_trips_every_kind(void **state)
{
    (void)state;
    melt_event ev = blank(MELT_EV_HELLO, 1);
    snprintf(ev.name, sizeof ev.name, "0.1.0");
    ev.id = 1;
    assert_true(melt_event_hello_add(&ev, "host", "pixel \"8\""));
    assert_true(melt_event_hello_add(&ev, "cpu", "Cortex\\X4"));
    round_trip(&ev);

    ev = blank(MELT_EV_PHASE, 2);
    snprintf(ev.name, sizeof ev.name, "prefill");
    snprintf(ev.key, sizeof ev.key, "begin");
    round_trip(&ev);

    ev = blank(MELT_EV_REQUEST, 3);
    ev.req = 0;
    ev.id = 128;
    round_trip(&ev);

    ev = blank(MELT_EV_FIRST_TOKEN, 4);
    ev.req = 7;
    round_trip(&ev);

    ev = blank(MELT_EV_TOKEN, 5);
    ev.req = 7;
    ev.i = 63;
    ev.id = 31999;
    round_trip(&ev);

    ev = blank(MELT_EV_END, 6);
    ev.req = 7;
    ev.id = 64;
    snprintf(ev.key, sizeof ev.key, "limit");
    round_trip(&ev);

    ev = blank(MELT_EV_SAMPLE, 7);
    snprintf(ev.name, sizeof ev.name, "thermal");
    snprintf(ev.key, sizeof ev.key, "cpu0_temp");
    snprintf(ev.unit, sizeof ev.unit, "mC");
    ev.value = 45000;
    ev.has_value = true;
    round_trip(&ev);
    ev.value = 0.1;   /* needs 17 digits */
    round_trip(&ev);
    ev.value = -1.2345678901234567e-300;
    round_trip(&ev);
    ev.unit[0] = '\0';   /* optional */
    round_trip(&ev);

    ev = blank(MELT_EV_ENGINE, 8);
    ev.req = 2;
    snprintf(ev.name, sizeof ev.name, "builtin");
    snprintf(ev.key, sizeof ev.key, "prompt_ns");
    snprintf(ev.unit, sizeof ev.unit, "ns");
    ev.value = 123456789;
    ev.has_value = true;
    round_trip(&ev);
    ev.req = -1;
    ev.name[0] = '\0';
    round_trip(&ev);

    ev = blank(MELT_EV_ERROR, 9);
    snprintf(ev.msg, sizeof ev.msg, "model.gguf: tensor 'x' at offset 12 past EOF");
    round_trip(&ev);

    ev = blank(MELT_EV_BYE, 10);
    snprintf(ev.key, sizeof ev.key, "interrupted");
    round_trip(&ev);
}

static void event_round_trips_odd_strings(void **state)
{
    (void)state;
    static const char *const odd[] = {
        "", "\"", "\\", "a\"b\\c", "line\nbreak\r\ttab", "\x01\x1f\x7f",
        "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80", "/slash/", "{\"json\":[1,2]}",
    };
    for (size_t k = 0; k < sizeof odd / sizeof odd[0]; k++) {
        melt_event ev = blank(MELT_EV_ERROR, 99);
        snprintf(ev.msg, sizeof ev.msg, "%s", odd[k]);
        round_trip(&ev);
        ev = blank(MELT_EV_SAMPLE, 99);
        snprintf(ev.name, sizeof ev.name, "%s", odd[k]);
        snprintf(ev.key, sizeof ev.key, "%s", odd[k]);
        ev.has_value = true;
        round_trip(&ev);
    }
    /* invalid UTF-8 is written as U+FFFD */
    melt_event ev = blank(MELT_EV_ERROR, 1), back;
    snprintf(ev.msg, sizeof ev.msg, "a\xFF" "b\xC3");
    char buf[512];
    melt_error err = {0};
    melt_event_format(&ev, buf, sizeof buf);
    assert_int_equal(melt_event_parse(buf, strlen(buf), &back, &err), 0);
    assert_string_equal(back.msg, "a\xEF\xBF\xBD" "b\xEF\xBF\xBD");
    /* a full-length message of characters that expand when escaped */
    memset(ev.msg, '"', sizeof ev.msg - 1);
    ev.msg[sizeof ev.msg - 1] = '\0';
    round_trip(&ev);
}

static void event_parses_escapes_and_surrogates(void **state)
{
    (void)state;
    const char *line = "{\"ev\":\"error\",\"t_ns\":1,\"msg\":\"\\u00e9\\u20AC\\ud83d\\ude00\\/\\b\\f\\n\\\"\"}";
    melt_event ev;
    melt_error err = {0};
    assert_int_equal(melt_event_parse(line, strlen(line), &ev, &err), 0);
    assert_string_equal(ev.msg, "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80/\b\f\n\"");
    /* keys may be escaped too */
    line = "{\"\\u0065v\":\"bye\",\"t_ns\":5,\"st\\u0061tus\":\"ok\"}";
    assert_int_equal(melt_event_parse(line, strlen(line), &ev, &err), 0);
    assert_int_equal(ev.kind, MELT_EV_BYE);
    assert_string_equal(ev.key, "ok");
}

static void event_keeps_int64_timestamps_exact(void **state)
{
    (void)state;
    static const int64_t ts[] = {0, 1, 9007199254740993LL /* 2^53 + 1 */, INT64_MAX, INT64_MAX - 1,
                                 -1, INT64_MIN};
    for (size_t k = 0; k < sizeof ts / sizeof ts[0]; k++) {
        melt_event ev = blank(MELT_EV_FIRST_TOKEN, ts[k]);
        ev.req = 0;
        round_trip(&ev);
    }
    melt_event ev;
    melt_error err = {0};
    const char *line = "{\"ev\":\"bye\",\"t_ns\":9223372036854775807,\"status\":\"ok\"}";
    assert_int_equal(melt_event_parse(line, strlen(line), &ev, &err), 0);
    assert_true(ev.t_ns == INT64_MAX);
    line = "{\"ev\":\"bye\",\"t_ns\":9223372036854775808,\"status\":\"ok\"}";
    assert_int_equal(melt_event_parse(line, strlen(line), &ev, &err), MELT_EFORMAT);
    assert_non_null(strstr(err.msg, "t_ns"));
    line = "{\"ev\":\"bye\",\"t_ns\":-9223372036854775809,\"status\":\"ok\"}";
    assert_int_equal(melt_event_parse(line, strlen(line), &ev, &err), MELT_EFORMAT);
}

static void event_skips_unknown_keys_and_nested_values(void **state)
{
    (void)state;
    const char *line =
        "  {\"new\":{\"a\":[1,{\"b\":null},\"}\"],\"c\":true}, \"ev\" : \"token\",\"x\":[],\"y\":{},"
        "\"t_ns\":42,\"req\":1,\"i\":2,\"id\":3,\"z\":-1.5e-3,\"w\":\"\\u0041\",\"f\":false}  \r\n";
    melt_event ev;
    melt_error err = {0};
    if (melt_event_parse(line, strlen(line), &ev, &err) < 0) fail_msg("%s", err.msg);
    assert_int_equal(ev.kind, MELT_EV_TOKEN);
    assert_true(ev.t_ns == 42);
    assert_int_equal(ev.req, 1);
    assert_int_equal(ev.i, 2);
    assert_int_equal(ev.id, 3);
    /* hello keeps its extra members as the details object */
    line = "{\"ev\":\"hello\",\"t_ns\":1,\"agent\":\"0.2.0\",\"proto\":1,\"host\":\"a\",\"gpu\":{\"n\":[1,2]}}";
    assert_int_equal(melt_event_parse(line, strlen(line), &ev, &err), 0);
    assert_string_equal(ev.name, "0.2.0");
    assert_int_equal(ev.id, 1);
    assert_string_equal(ev.msg, "{\"host\":\"a\",\"gpu\":{\"n\":[1,2]}}");
    round_trip(&ev);
}

static void expect_bad(const char *line, size_t len, const char *why)
{
    melt_event ev;
    melt_error err = {0};
    const int rc = melt_event_parse(line, len, &ev, &err);
    if (rc != MELT_EFORMAT) fail_msg("expected MELT_EFORMAT for [%.*s], got %d", (int)len, line, rc);
    if (!strstr(err.msg, why)) fail_msg("for [%.*s] expected a reason with '%s', got '%s'", (int)len, line, why, err.msg);
}

#define BAD(lit, why) expect_bad((lit), sizeof(lit) - 1, (why))

static void event_rejects_malformed_lines_with_a_reason(void **state)
{
    (void)state;
    BAD("", "empty line");
    BAD("   \n", "empty line");
    BAD("[1,2]", "not a JSON object");
    BAD("garbage", "not a JSON object");
    BAD("{\"ev\":\"token\",\"t_ns\":1,\"req\":0,\"i\":0,\"id\"", "truncated");
    BAD("{\"ev\":\"token\",\"t_ns\":1,\"req\":0,\"i\":0,\"id\":5", "truncated");
    BAD("{\"ev\":\"tok", "truncated string");
    BAD("{\"ev\":\"bye\",\"t_ns\":1,\"status\":\"ok\"}x", "garbage after");
    BAD("{\"ev\":\"bye\",\"t_ns\":1,\"status\":\"ok\"}{}", "garbage after");
    BAD("{\"t_ns\":1,\"status\":\"ok\"}", "missing \"ev\"");
    BAD("{\"ev\":\"bye\",\"status\":\"ok\"}", "missing \"t_ns\"");
    BAD("{\"ev\":\"bye\",\"t_ns\":1}", "without \"status\"");
    BAD("{\"ev\":\"token\",\"t_ns\":1,\"req\":0,\"id\":4}", "without \"i\"");
    BAD("{\"ev\":\"nope\",\"t_ns\":1}", "unknown event kind 'nope'");
    BAD("{\"ev\":3,\"t_ns\":1}", "\"ev\" is not a string");
    BAD("{\"ev\":\"bye\",\"ev\":\"bye\",\"t_ns\":1,\"status\":\"ok\"}", "duplicate key 'ev'");
    BAD("{\"ev\":\"bye\",\"t_ns\":1,\"t_ns\":2,\"status\":\"ok\"}", "duplicate key 't_ns'");
    BAD("{\"ev\":\"bye\",\"t_ns\":1.5,\"status\":\"ok\"}", "t_ns");
    BAD("{\"ev\":\"bye\",\"t_ns\":1e3,\"status\":\"ok\"}", "t_ns");
    BAD("{\"ev\":\"bye\",\"t_ns\":\"1\",\"status\":\"ok\"}", "t_ns");
    BAD("{\"ev\":\"bye\",\"t_ns\":01,\"status\":\"ok\"}", "expected ',' or '}'");
    BAD("{\"ev\":\"bye\",\"t_ns\":-,\"status\":\"ok\"}", "bad number");
    BAD("{\"ev\":\"bye\",\"t_ns\":1,\"status\":7}", "\"status\" is not a string");
    BAD("{\"ev\":\"token\",\"t_ns\":1,\"req\":0,\"i\":-1,\"id\":2}", "\"i\" is not an integer");
    BAD("{\"ev\":\"token\",\"t_ns\":1,\"req\":0,\"i\":2147483648,\"id\":2}", "\"i\" is not an integer");
    BAD("{\"ev\":\"sample\",\"t_ns\":1,\"probe\":\"p\",\"key\":\"k\",\"value\":null}", "not a finite number");
    BAD("{\"ev\":\"sample\",\"t_ns\":1,\"probe\":\"p\",\"key\":\"k\",\"value\":1e999}", "not a finite number");
    BAD("{\"ev\":\"phase\",\"t_ns\":1,\"name\":\"load\",\"edge\":\"middle\"}", "edge");
    BAD("{\"ev\":\"error\",\"t_ns\":1,\"msg\":\"\\x\"}", "bad escape");
    BAD("{\"ev\":\"error\",\"t_ns\":1,\"msg\":\"\\u12\"}", "\\u escape");
    BAD("{\"ev\":\"error\",\"t_ns\":1,\"msg\":\"\\ud800\"}", "surrogate");
    BAD("{\"ev\":\"error\",\"t_ns\":1,\"msg\":\"\\udc00\"}", "lone low surrogate");
    BAD("{\"ev\":\"error\",\"t_ns\":1,\"msg\":\"\\u0000\"}", "\\u0000");
    BAD("{\"ev\":\"error\",\"t_ns\":1,\"msg\":\"a\tb\"}", "control character");
    BAD("{\"ev\":\"error\",\"t_ns\":1,\"msg\":\"\xC0\xAF\"}", "invalid UTF-8");
    BAD("{\"ev\":\"error\",\"t_ns\":1,\"msg\":\"\xED\xA0\x80\"}", "invalid UTF-8");
    BAD("{\"ev\":\"error\",\"t_ns\":1,\"msg\":\"x\",}", "expected a string");
    BAD("{\"ev\":\"error\",\"t_ns\":1\n,\"msg\":\"x\"}", "line break inside the line");
    BAD("{\"ev\":\"error\" \"t_ns\":1}", "expected ',' or '}'");
    BAD("{\"ev\" \"error\"}", "expected ':'");
    BAD("{\"ev\":\"error\",\"t_ns\":1,\"x\":tru}", "unexpected character");
    BAD("{\"ev\":\"error\",\"t_ns\":1,\"x\":tru", "truncated literal");
    BAD("{\"ev\":\"error\",\"t_ns\":1,\"x\":nul,\"msg\":\"m\"}", "unexpected character");
    BAD("{\"ev\":\"error\",\"t_ns\":1,\"x\":[1,]}", "unexpected character");
    BAD("{\"ev\":\"error\",\"t_ns\":1,\"x\":[1 2]}", "expected ',' or ']'");
    BAD("{\"ev\":\"bye\",\0\"t_ns\":1}", "expected a string");
    /* nesting is bounded */
    char deep[400];
    size_t n = (size_t)snprintf(deep, sizeof deep, "{\"ev\":\"bye\",\"t_ns\":1,\"status\":\"ok\",\"x\":");
    while (n < 300) deep[n++] = '[';
    expect_bad(deep, n, "nested too deeply");
    /* never reads past len: the valid line cut at every length fails */
    const char *ok = "{\"ev\":\"token\",\"t_ns\":123,\"req\":0,\"i\":1,\"id\":2}";
    for (size_t k = 0; k < strlen(ok); k++) {
        char *cut = malloc(k ? k : 1);
        memcpy(cut, ok, k);
        melt_event ev;
        melt_error err = {0};
        assert_int_equal(melt_event_parse(cut, k, &ev, &err), MELT_EFORMAT);
        free(cut);
    }
}

/* A backend that streams text only (an HTTP chat, a CLI) has no token ids:
 * the token line then has no "id" and reads back as -1. */
static void event_token_without_id_is_text_only(void **state)
{
    (void)state;
    melt_event ev = blank(MELT_EV_TOKEN, 7), back;
    ev.req = 2;
    ev.i = 3;
    char buf[256];
    melt_event_format(&ev, buf, sizeof buf);
    assert_string_equal(buf, "{\"ev\":\"token\",\"t_ns\":7,\"req\":2,\"i\":3}\n");
    melt_error err = {0};
    assert_int_equal(melt_event_parse(buf, strlen(buf), &back, &err), 0);
    assert_int_equal(back.id, -1);
    assert_int_equal(back.i, 3);
    ev.id = 0;   /* id 0 is a real id and is written */
    melt_event_format(&ev, buf, sizeof buf);
    assert_non_null(strstr(buf, "\"id\":0}"));
}

static void event_hello_details_that_are_not_an_object_become_info(void **state)
{
    (void)state;
    static const char *const msgs[] = {"not json", "{\"agent\":\"x\"}", "{\"a\":1", "[1]"};
    for (size_t k = 0; k < sizeof msgs / sizeof msgs[0]; k++) {
        melt_event ev = blank(MELT_EV_HELLO, 1), back;
        snprintf(ev.name, sizeof ev.name, "0.1.0");
        snprintf(ev.msg, sizeof ev.msg, "%s", msgs[k]);
        char buf[1024], want[300];
        melt_error err = {0};
        melt_event_format(&ev, buf, sizeof buf);
        assert_int_equal(melt_event_parse(buf, strlen(buf), &back, &err), 0);
        assert_string_equal(back.name, "0.1.0");
        char esc[200];
        size_t o = 0;
        for (const char *c = msgs[k]; *c; c++) {
            if (*c == '"') esc[o++] = '\\';
            esc[o++] = *c;
        }
        esc[o] = '\0';
        snprintf(want, sizeof want, "{\"info\":\"%s\"}", esc);
        assert_string_equal(back.msg, want);
    }
    /* a detail that does not fit is dropped whole */
    melt_event ev = blank(MELT_EV_HELLO, 1);
    char big[300];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_true(melt_event_hello_add(&ev, "a", "b"));
    assert_false(melt_event_hello_add(&ev, "big", big));
    assert_string_equal(ev.msg, "{\"a\":\"b\"}");
}

static void event_format_reports_needed_length(void **state)
{
    (void)state;
    melt_event ev = blank(MELT_EV_TOKEN, 123456789);
    ev.req = 0;
    ev.i = 1;
    ev.id = 2;
    char big[256], small[10];
    const size_t need = melt_event_format(&ev, big, sizeof big);
    assert_int_equal(melt_event_format(&ev, small, sizeof small), need);
    assert_int_equal(strlen(small), sizeof small - 1);
    assert_memory_equal(small, big, sizeof small - 1);
    assert_int_equal(melt_event_format(&ev, NULL, 0), need);
    assert_string_equal(big, "{\"ev\":\"token\",\"t_ns\":123456789,\"req\":0,\"i\":1,\"id\":2}\n");
}

static void event_kind_names_round_trip(void **state)
{
    (void)state;
    for (int k = 0; k < MELT_EV_KIND_COUNT; k++) {
        enum melt_event_kind back;
        assert_true(melt_event_kind_parse(melt_event_kind_name((enum melt_event_kind)k), &back));
        assert_int_equal(back, k);
    }
    enum melt_event_kind x;
    assert_false(melt_event_kind_parse("tokens", &x));
}

/* ---- stream reader ---- */

typedef struct collected {
    int n_good, n_bad;
    uint64_t bad_lines[16];
    char reasons[16][160];
    int64_t last_t;
    int stop_after;
} collected;

static int on_ev(void *user, const melt_event *ev, uint64_t line_no)
{
    collected *c = user;
    (void)line_no;
    c->n_good++;
    c->last_t = ev->t_ns;
    return c->stop_after && c->n_good >= c->stop_after;
}

static void on_bad(void *user, uint64_t line_no, const char *reason, const char *line, size_t len)
{
    collected *c = user;
    (void)line;
    (void)len;
    if (c->n_bad < 16) {
        c->bad_lines[c->n_bad] = line_no;
        snprintf(c->reasons[c->n_bad], sizeof c->reasons[0], "%s", reason);
    }
    c->n_bad++;
}

/* Feed text in pieces of `step` bytes. */
static void feed_all(melt_event_stream *s, const char *text, size_t len, size_t step)
{
    for (size_t off = 0; off < len; off += step)
        melt_event_stream_feed(s, text + off, off + step <= len ? step : len - off);
    melt_event_stream_finish(s);
}

static void stream_reports_bad_lines_and_keeps_going(void **state)
{
    (void)state;
    const char *text =
        "{\"ev\":\"phase\",\"t_ns\":1,\"name\":\"load\",\"edge\":\"begin\"}\r\n"  /* 1 CRLF */
        "\n"                                                                    /* 2 empty */
        "garbage here\n"                                                        /* 3 bad */
        "{\"ev\":\"phase\",\"t_ns\":2,\"name\":\"load\",\"edge\":\"end\"}\n"    /* 4 */
        "{\"ev\":\"token\",\"t_ns\":3,\"req\":0,\"i\":0,\"id\":1}\n"            /* 5 */
        "{\"ev\":\"bye\",\"t_ns\":4,\"sta";                                     /* 6 truncated */
    const size_t len = strlen(text);
    for (size_t step = 1; step <= len; step = step * 3 + 1) {
        collected c = {0};
        melt_event_stream *s;
        melt_error err = {0};
        assert_int_equal(melt_event_stream_new(NULL, on_ev, on_bad, &c, &s, &err), 0);
        feed_all(s, text, len, step);
        melt_event_stream_stats st;
        melt_event_stream_get_stats(s, &st);
        assert_int_equal(c.n_good, 3);
        assert_int_equal(c.n_bad, 2);
        assert_int_equal(c.bad_lines[0], 3);
        assert_non_null(strstr(c.reasons[0], "not a JSON object"));
        assert_int_equal(c.bad_lines[1], 6);
        assert_non_null(strstr(c.reasons[1], "last line without a newline"));
        assert_non_null(strstr(c.reasons[1], "truncated"));
        assert_int_equal(st.lines, 6);
        assert_int_equal(st.good, 3);
        assert_int_equal(st.bad, 2);
        assert_int_equal(st.empty, 1);
        assert_int_equal(st.bytes, len);
        assert_true(c.last_t == 3);
        melt_event_stream_free(s);
    }
}

static void stream_accepts_a_complete_last_line_without_newline(void **state)
{
    (void)state;
    const char *text = "{\"ev\":\"bye\",\"t_ns\":4,\"status\":\"ok\"}";
    collected c = {0};
    melt_event_stream *s;
    melt_error err = {0};
    assert_int_equal(melt_event_stream_new(NULL, on_ev, on_bad, &c, &s, &err), 0);
    feed_all(s, text, strlen(text), 5);
    assert_int_equal(c.n_good, 1);
    assert_int_equal(c.n_bad, 0);
    melt_event_stream_free(s);
}

static void stream_caps_a_megabyte_line(void **state)
{
    (void)state;
    const size_t big = 1 << 20;
    const char *head = "{\"ev\":\"token\",\"t_ns\":1,\"req\":0,\"i\":0,\"id\":1}\n{\"ev\":\"error\",\"t_ns\":2,\"msg\":\"";
    const char *tail = "\"}\n{\"ev\":\"bye\",\"t_ns\":3,\"status\":\"ok\"}\n";
    const size_t hl = strlen(head), tl = strlen(tail);
    char *text = malloc(hl + big + tl);
    memcpy(text, head, hl);
    memset(text + hl, 'x', big);
    memcpy(text + hl + big, tail, tl);
    const size_t steps[] = {4096, 65536 + 7, hl + big + tl};
    for (size_t k = 0; k < 3; k++) {
        collected c = {0};
        melt_event_stream *s;
        melt_error err = {0};
        assert_int_equal(melt_event_stream_new(NULL, on_ev, on_bad, &c, &s, &err), 0);
        feed_all(s, text, hl + big + tl, steps[k]);
        melt_event_stream_stats st;
        melt_event_stream_get_stats(s, &st);
        assert_int_equal(c.n_good, 2);
        assert_int_equal(c.n_bad, 1);
        assert_int_equal(c.bad_lines[0], 2);
        assert_non_null(strstr(c.reasons[0], "line longer than 65536 bytes"));
        assert_int_equal(st.too_long, 1);
        assert_int_equal(st.lines, 3);
        assert_true(c.last_t == 3);
        melt_event_stream_free(s);
    }
    free(text);
}

static void stream_callback_can_stop_reading(void **state)
{
    (void)state;
    const char *text = "{\"ev\":\"bye\",\"t_ns\":1,\"status\":\"ok\"}\n{\"ev\":\"bye\",\"t_ns\":2,\"status\":\"ok\"}\n";
    collected c = {.stop_after = 1};
    melt_event_stream *s;
    melt_error err = {0};
    assert_int_equal(melt_event_stream_new(NULL, on_ev, NULL, &c, &s, &err), 0);
    assert_int_equal(melt_event_stream_feed(s, text, strlen(text)), 1);
    assert_int_equal(c.n_good, 1);
    melt_event_stream_free(s);
}

static void stream_reads_a_pipe(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    const pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        for (int k = 0; k < 1000; k++) {
            char line[128];
            const int n = snprintf(line, sizeof line,
                                   "{\"ev\":\"token\",\"t_ns\":%d,\"req\":0,\"i\":%d,\"id\":7}\n", k, k);
            /* split each line in two writes */
            if (write(fds[1], line, 10) != 10 || write(fds[1], line + 10, (size_t)n - 10) != n - 10) _exit(1);
        }
        _exit(0);
    }
    close(fds[1]);
    collected c = {0};
    melt_event_stream *s;
    melt_error err = {0};
    assert_int_equal(melt_event_stream_new(NULL, on_ev, on_bad, &c, &s, &err), 0);
    assert_int_equal(melt_event_stream_read_fd(s, fds[0], &err), 0);
    close(fds[0]);
    int status;
    waitpid(pid, &status, 0);
    assert_int_equal(c.n_good, 1000);
    assert_int_equal(c.n_bad, 0);
    assert_true(c.last_t == 999);
    melt_event_stream_free(s);
}

/* A captured melt-agent run (tests/data/agent/synthetic-16-8.jsonl, made
 * with build/melt-agent -m stories260K.gguf --synthetic 16,8 -t 1),
 * read end to end: every line parses, and it tells a complete trial. */
typedef struct trial {
    int n_token, n_first, n_request, n_end, n_hello, n_bye, n_phase_begin, n_phase_end;
    int64_t last_t;
    int monotonic;
    char end_reason[96], bye[96];
} trial;

static int on_trial(void *user, const melt_event *ev, uint64_t line_no)
{
    trial *t = user;
    (void)line_no;
    if (ev->kind != MELT_EV_SAMPLE) {
        if (ev->t_ns < t->last_t) t->monotonic = 0;
        t->last_t = ev->t_ns;
    }
    switch (ev->kind) {
    case MELT_EV_HELLO: t->n_hello++; break;
    case MELT_EV_TOKEN: t->n_token++; break;
    case MELT_EV_FIRST_TOKEN: t->n_first++; break;
    case MELT_EV_REQUEST: t->n_request++; break;
    case MELT_EV_END: t->n_end++; snprintf(t->end_reason, sizeof t->end_reason, "%s", ev->key); break;
    case MELT_EV_BYE: t->n_bye++; snprintf(t->bye, sizeof t->bye, "%s", ev->key); break;
    case MELT_EV_PHASE: if (!strcmp(ev->key, "begin")) t->n_phase_begin++; else t->n_phase_end++; break;
    default: break;
    }
    return 0;
}

static void stream_reads_a_captured_agent_run(void **state)
{
    (void)state;
    const int fd = open("tests/data/agent/synthetic-16-8.jsonl", O_RDONLY);
    assert_true(fd >= 0);
    trial t = {.monotonic = 1};
    collected c = {0};
    melt_event_stream *s;
    melt_error err = {0};
    assert_int_equal(melt_event_stream_new(NULL, on_trial, on_bad, &t, &s, &err), 0);
    assert_int_equal(melt_event_stream_read_fd(s, fd, &err), 0);
    close(fd);
    melt_event_stream_stats st;
    melt_event_stream_get_stats(s, &st);
    assert_int_equal(st.bad, 0);
    assert_int_equal(c.n_bad, 0);
    assert_int_equal(t.n_hello, 1);
    assert_int_equal(t.n_request, 1);
    assert_int_equal(t.n_first, 1);
    assert_int_equal(t.n_token, 8);
    assert_int_equal(t.n_end, 1);
    assert_string_equal(t.end_reason, "limit");
    assert_int_equal(t.n_bye, 1);
    assert_string_equal(t.bye, "ok");
    assert_int_equal(t.n_phase_begin, t.n_phase_end);
    assert_true(t.n_phase_begin >= 3);   /* load, prefill, decode */
    assert_true(t.monotonic);
    melt_event_stream_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(event_round_trips_every_kind),
        cmocka_unit_test(event_round_trips_odd_strings),
        cmocka_unit_test(event_parses_escapes_and_surrogates),
        cmocka_unit_test(event_keeps_int64_timestamps_exact),
        cmocka_unit_test(event_skips_unknown_keys_and_nested_values),
        cmocka_unit_test(event_rejects_malformed_lines_with_a_reason),
        cmocka_unit_test(event_hello_details_that_are_not_an_object_become_info),
        cmocka_unit_test(event_token_without_id_is_text_only),
        cmocka_unit_test(event_format_reports_needed_length),
        cmocka_unit_test(event_kind_names_round_trip),
        cmocka_unit_test(stream_reports_bad_lines_and_keeps_going),
        cmocka_unit_test(stream_accepts_a_complete_last_line_without_newline),
        cmocka_unit_test(stream_caps_a_megabyte_line),
        cmocka_unit_test(stream_callback_can_stop_reading),
        cmocka_unit_test(stream_reads_a_pipe),
        cmocka_unit_test(stream_reads_a_captured_agent_run),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* The agent's JSON-lines protocol (include/melt/event.h,
 * docs/agent-protocol.md): a formatter cheap enough for the token hot path
 * (no malloc, no stdio except for the one double of a sample) and a
 * hand-written, bounded parser. Both are libc only: the static agent links
 * this file, and the host uses the same parser on the stream it receives.
 *
 * Parsing is two passes over the line: the first checks the JSON syntax of
 * the whole object and finds "ev"; the second reads each member into its
 * field according to the kind. Neither recurses without a depth bound or
 * reads outside line[0, len).
 */
#include "melt/event.h"
#include "melt/jscan.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const kind_names[MELT_EV_KIND_COUNT] = {
    [MELT_EV_HELLO] = "hello",   [MELT_EV_PHASE] = "phase",
    [MELT_EV_REQUEST] = "request", [MELT_EV_FIRST_TOKEN] = "first_token",
    [MELT_EV_TOKEN] = "token",   [MELT_EV_END] = "end",
    [MELT_EV_SAMPLE] = "sample", [MELT_EV_ENGINE] = "engine",
    [MELT_EV_ERROR] = "error",   [MELT_EV_BYE] = "bye",
};

const char *melt_event_kind_name(enum melt_event_kind k)
{
    return (unsigned)k < MELT_EV_KIND_COUNT ? kind_names[k] : "?";
}

bool melt_event_kind_parse(const char *s, enum melt_event_kind *out)
{
    for (int k = 0; k < MELT_EV_KIND_COUNT; k++)
        if (strcmp(s, kind_names[k]) == 0) {
            *out = (enum melt_event_kind)k;
            return true;
        }
    return false;
}

/* ---- fields of each kind ---- */

enum fld { F_REQ, F_I, F_ID, F_VALUE, F_NAME, F_KEY, F_UNIT, F_MSG };

typedef struct field {
    const char *json;   /* key in the line */
    enum fld f;
    bool required;
} field;

#define MAX_FIELDS 5
static const field kind_fields[MELT_EV_KIND_COUNT][MAX_FIELDS] = {
    [MELT_EV_HELLO] = {{"agent", F_NAME, true}, {"proto", F_ID, false}},
    [MELT_EV_PHASE] = {{"name", F_NAME, true}, {"edge", F_KEY, true}},
    [MELT_EV_REQUEST] = {{"req", F_REQ, true}, {"n_prompt", F_ID, true}},
    [MELT_EV_FIRST_TOKEN] = {{"req", F_REQ, true}},
    /* id absent: the engine streamed text without token ids */
    [MELT_EV_TOKEN] = {{"req", F_REQ, true}, {"i", F_I, true}, {"id", F_ID, false}},
    [MELT_EV_END] = {{"req", F_REQ, true}, {"n_gen", F_ID, true}, {"reason", F_KEY, true}},
    [MELT_EV_SAMPLE] = {{"probe", F_NAME, true}, {"key", F_KEY, true}, {"value", F_VALUE, true},
                        {"unit", F_UNIT, false}},
    [MELT_EV_ENGINE] = {{"req", F_REQ, false}, {"engine", F_NAME, false}, {"key", F_KEY, true},
                        {"value", F_VALUE, true}, {"unit", F_UNIT, false}},
    [MELT_EV_ERROR] = {{"req", F_REQ, false}, {"msg", F_MSG, true}},
    [MELT_EV_BYE] = {{"status", F_KEY, true}},
};

/* ---- formatter ---- */

typedef struct wr {
    char *b;
    size_t n, len;   /* capacity, bytes wanted so far */
} wr;

static void put(wr *w, const char *s, size_t k)
{
    if (w->len < w->n) {
        const size_t room = w->n - w->len;
        memcpy(w->b + w->len, s, k < room ? k : room);
    }
    w->len += k;
}

#define PUTS(w, lit) put((w), (lit), sizeof(lit) - 1)

static void put_i64(wr *w, int64_t v)
{
    char tmp[24];
    size_t i = sizeof tmp;
    /* through uint64 so INT64_MIN negates without overflow */
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) tmp[--i] = '-';
    put(w, tmp + i, sizeof tmp - i);
}

static void put_double(wr *w, double v)
{
    if (!isfinite(v)) {
        PUTS(w, "null");
        return;
    }
    char tmp[40];
    /* the shortest of %.15g / %.17g that reads back exactly */
    int k = snprintf(tmp, sizeof tmp, "%.15g", v);
    if (strtod(tmp, NULL) != v) k = snprintf(tmp, sizeof tmp, "%.17g", v);
    put(w, tmp, (size_t)k);
}

/* Length of the valid UTF-8 character at s[0..n), 0 when invalid. */
static size_t utf8_char_len(const unsigned char *s, size_t n)
{
    const unsigned char b = s[0];
    if (b < 0x80) return 1;
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) need = 2;
    else if (b >= 0xE0 && b <= 0xEF) {
        need = 3;
        if (b == 0xE0) lo = 0xA0;
        else if (b == 0xED) hi = 0x9F;   /* no surrogates */
    } else if (b >= 0xF0 && b <= 0xF4) {
        need = 4;
        if (b == 0xF0) lo = 0x90;
        else if (b == 0xF4) hi = 0x8F;   /* <= U+10FFFF */
    } else return 0;
    if (n < need || s[1] < lo || s[1] > hi) return 0;
    for (size_t k = 2; k < need; k++)
        if (s[k] < 0x80 || s[k] > 0xBF) return 0;
    return need;
}

/* s as a JSON string: quotes, escapes, control characters as \u00XX and
 * bytes that are not UTF-8 as U+FFFD. */
static void put_str(wr *w, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    PUTS(w, "\"");
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s), run = 0;   /* bytes p[0..run) pending as they are */
    while (run < n) {
        const unsigned char c = p[run];
        if (c >= 0x20 && c != '"' && c != '\\' && c != 0x7F && c < 0x80) {
            run++;
            continue;
        }
        if (c >= 0x80) {
            const size_t k = utf8_char_len(p + run, n - run);
            if (k) {
                run += k;
                continue;
            }
        }
        put(w, (const char *)p, run);
        switch (c) {
        case '"': PUTS(w, "\\\""); break;
        case '\\': PUTS(w, "\\\\"); break;
        case '\n': PUTS(w, "\\n"); break;
        case '\r': PUTS(w, "\\r"); break;
        case '\t': PUTS(w, "\\t"); break;
        default:
            if (c >= 0x80) {
                PUTS(w, "\xEF\xBF\xBD");
            } else {
                char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
                put(w, u, 6);
            }
        }
        p += run + 1;
        n -= run + 1;
        run = 0;
    }
    put(w, (const char *)p, run);
    PUTS(w, "\"");
}

static void put_key(wr *w, const char *k)
{
    PUTS(w, ",\"");
    put(w, k, strlen(k));
    PUTS(w, "\":");
}

/* ---- JSON scanning (shared by both directions) ---- */

typedef struct jp {
    const char *p, *end;
    const char *why;    /* reason of the first error */
} jp;

#define MAX_DEPTH 64

static int fail(jp *j, const char *why)
{
    if (!j->why) j->why = why;
    return -1;
}

/* JSON whitespace within a line: space and tab (CR and LF end a line). */
static void skip_ws(jp *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t')) j->p++;
}

/* Text sink for a decoded string: keeps whole characters while they fit
 * in cap - 1 bytes, then drops the rest (a long value is truncated on a
 * character boundary, not rejected). */
typedef struct sink {
    char *out;       /* NULL: validate only */
    size_t cap, len;
    bool full;
} sink;

static void sink_put(sink *s, const char *c, size_t k)
{
    if (!s->out || s->full) return;
    if (s->len + k + 1 > s->cap) {
        s->full = true;
        return;
    }
    memcpy(s->out + s->len, c, k);
    s->len += k;
}

/* A string at j->p (which is at '"'), decoded into s. */
static int scan_string(jp *j, sink *s)
{
    if (j->p >= j->end || *j->p != '"') return fail(j, "expected a string");
    j->p++;
    for (;;) {
        if (j->p >= j->end) return fail(j, "truncated string");
        const unsigned char c = (unsigned char)*j->p;
        if (c == '"') {
            j->p++;
            break;
        }
        if (c < 0x20) return fail(j, "control character in string");
        if (c == '\\') {
            if (j->end - j->p < 2) return fail(j, "truncated escape");
            const char e = j->p[1];
            const char *simple = NULL;
            switch (e) {
            case '"': simple = "\""; break;
            case '\\': simple = "\\"; break;
            case '/': simple = "/"; break;
            case 'b': simple = "\b"; break;
            case 'f': simple = "\f"; break;
            case 'n': simple = "\n"; break;
            case 'r': simple = "\r"; break;
            case 't': simple = "\t"; break;
            case 'u': break;
            default: return fail(j, "bad escape in string");
            }
            if (simple) {
                sink_put(s, simple, 1);
                j->p += 2;
                continue;
            }
            unsigned cp;
            const char *why = NULL;
            const size_t used = melt_json_unicode_escape(j->p, (size_t)(j->end - j->p), &cp, &why);
            if (!used) return fail(j, why);
            j->p += used;
            if (cp == 0) return fail(j, "\\u0000 in string");
            char u[4];
            const size_t k = melt_utf8_put(u, cp);
            sink_put(s, u, k);
            continue;
        }
        const size_t k = utf8_char_len((const unsigned char *)j->p, (size_t)(j->end - j->p));
        if (!k) return fail(j, "invalid UTF-8 in string");
        sink_put(s, j->p, k);
        j->p += k;
    }
    if (s->out) s->out[s->len] = '\0';
    return 0;
}

/* A number per the JSON grammar; *is_int when it has no fraction or
 * exponent. */
static int scan_number(jp *j, bool *is_int)
{
    const char *p = j->p;
    *is_int = true;
    if (p < j->end && *p == '-') p++;
    if (p >= j->end) return fail(j, "truncated number");
    if (*p == '0') p++;
    else if (*p >= '1' && *p <= '9') while (p < j->end && *p >= '0' && *p <= '9') p++;
    else return fail(j, "bad number");
    if (p < j->end && *p == '.') {
        *is_int = false;
        p++;
        if (p >= j->end || *p < '0' || *p > '9') return fail(j, "bad number: digits expected after '.'");
        while (p < j->end && *p >= '0' && *p <= '9') p++;
    }
    if (p < j->end && (*p == 'e' || *p == 'E')) {
        *is_int = false;
        p++;
        if (p < j->end && (*p == '+' || *p == '-')) p++;
        if (p >= j->end || *p < '0' || *p > '9') return fail(j, "bad number: digits expected in exponent");
        while (p < j->end && *p >= '0' && *p <= '9') p++;
    }
    j->p = p;
    return 0;
}

static int scan_literal(jp *j, const char *lit)
{
    const size_t k = strlen(lit);
    if ((size_t)(j->end - j->p) < k) return fail(j, "truncated literal");
    if (memcmp(j->p, lit, k) != 0) return fail(j, "unexpected character");
    j->p += k;
    return 0;
}

static int scan_value(jp *j, int depth);

static int scan_container(jp *j, int depth)
{
    const char close = *j->p == '{' ? '}' : ']';
    const bool obj = close == '}';
    if (depth >= MAX_DEPTH) return fail(j, "nested too deeply");
    j->p++;
    skip_ws(j);
    if (j->p < j->end && *j->p == close) {
        j->p++;
        return 0;
    }
    for (;;) {
        skip_ws(j);
        if (obj) {
            sink none = {0};
            if (j->p >= j->end) return fail(j, "truncated object");
            if (scan_string(j, &none) < 0) return -1;
            skip_ws(j);
            if (j->p >= j->end) return fail(j, "truncated object");
            if (*j->p != ':') return fail(j, "expected ':' after a key");
            j->p++;
        }
        if (scan_value(j, depth + 1) < 0) return -1;
        skip_ws(j);
        if (j->p >= j->end) return fail(j, obj ? "truncated object" : "truncated array");
        if (*j->p == close) {
            j->p++;
            return 0;
        }
        if (*j->p != ',') return fail(j, obj ? "expected ',' or '}'" : "expected ',' or ']'");
        j->p++;
    }
}

static int scan_value(jp *j, int depth)
{
    skip_ws(j);
    if (j->p >= j->end) return fail(j, "truncated value");
    bool is_int;
    sink none = {0};
    switch (*j->p) {
    case '{':
    case '[': return scan_container(j, depth);
    case '"': return scan_string(j, &none);
    case 't': return scan_literal(j, "true");
    case 'f': return scan_literal(j, "false");
    case 'n': return scan_literal(j, "null");
    default:
        if (*j->p == '-' || (*j->p >= '0' && *j->p <= '9')) return scan_number(j, &is_int);
        return fail(j, "unexpected character");
    }
}

/* Iterating the members of a top-level object whose syntax is known good
 * (or checked as we go). */
typedef struct member {
    const char *k0, *k1;   /* the key, quotes included */
    const char *v0, *v1;   /* the raw value */
} member;

static int obj_open(jp *j)
{
    skip_ws(j);
    if (j->p >= j->end) return fail(j, "empty line");
    if (*j->p != '{') return fail(j, "not a JSON object");
    j->p++;
    skip_ws(j);
    return 0;
}

/* 1: *m is the next member; 0: the closing brace was read; -1: error. */
static int obj_next(jp *j, member *m, bool *first)
{
    skip_ws(j);
    if (j->p >= j->end) return fail(j, "truncated object");
    if (*j->p == '}') {
        j->p++;
        return 0;
    }
    if (!*first) {
        if (*j->p != ',') return fail(j, "expected ',' or '}'");
        j->p++;
        skip_ws(j);
    }
    *first = false;
    sink none = {0};
    m->k0 = j->p;
    if (j->p >= j->end) return fail(j, "truncated object");
    if (scan_string(j, &none) < 0) return -1;
    m->k1 = j->p;
    skip_ws(j);
    if (j->p >= j->end) return fail(j, "truncated object");
    if (*j->p != ':') return fail(j, "expected ':' after a key");
    j->p++;
    skip_ws(j);
    m->v0 = j->p;
    if (scan_value(j, 1) < 0) return -1;
    m->v1 = j->p;
    return 1;
}

/* Decode a string span [a, b) (quotes included, known valid) into out. */
static void decode_span(const char *a, const char *b, char *out, size_t cap, bool *truncated)
{
    jp j = {a, b, NULL};
    sink s = {out, cap, 0, false};
    if (scan_string(&j, &s) < 0) out[0] = '\0';
    if (truncated) *truncated = s.full;
}

/* An exact integer in [lo, hi] from a raw number span. */
static int read_int(const char *a, const char *b, int64_t lo, int64_t hi, int64_t *out)
{
    jp j = {a, b, NULL};
    bool is_int;
    if (a >= b || scan_number(&j, &is_int) < 0 || j.p != b || !is_int) return -1;
    const bool neg = *a == '-';
    uint64_t v = 0;
    const uint64_t lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (const char *p = a + neg; p < b; p++) {
        const unsigned d = (unsigned)(*p - '0');
        if (v > (lim - d) / 10) return -1;
        v = v * 10 + d;
    }
    const int64_t s = neg ? (v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v) : (int64_t)v;
    if (s < lo || s > hi) return -1;
    *out = s;
    return 0;
}

static int read_double(const char *a, const char *b, double *out)
{
    jp j = {a, b, NULL};
    bool is_int;
    if (a >= b || *a == 'n' || scan_number(&j, &is_int) < 0 || j.p != b) return -1;
    char tmp[512];
    const size_t k = (size_t)(b - a);
    if (k >= sizeof tmp) return -1;
    memcpy(tmp, a, k);
    tmp[k] = '\0';
    const double v = strtod(tmp, NULL);
    if (!isfinite(v)) return -1;
    *out = v;
    return 0;
}

/* ---- format ---- */

static bool reserved_hello_key(const char *k)
{
    return !strcmp(k, "ev") || !strcmp(k, "t_ns") || !strcmp(k, "agent") || !strcmp(k, "proto");
}

/* The members of msg when it is a JSON object whose keys do not clash with
 * hello's own: [*a, *b) spans them; false otherwise. */
static bool hello_members(const char *msg, const char **a, const char **b)
{
    jp j = {msg, msg + strlen(msg), NULL};
    if (obj_open(&j) < 0) return false;
    const char *first_m = j.p, *last = j.p;
    member m;
    bool first = true;
    int r;
    while ((r = obj_next(&j, &m, &first)) == 1) {
        char key[16];
        bool trunc;
        decode_span(m.k0, m.k1, key, sizeof key, &trunc);
        if (!trunc && reserved_hello_key(key)) return false;
        last = m.v1;
    }
    if (r < 0) return false;
    skip_ws(&j);
    if (j.p != j.end) return false;
    *a = first_m;
    *b = last;
    return true;
}

size_t melt_event_format(const melt_event *ev, char *buf, size_t n)
{
    wr w = {buf, n, 0};
    PUTS(&w, "{\"ev\":\"");
    const char *kn = melt_event_kind_name(ev->kind);
    put(&w, kn, strlen(kn));
    PUTS(&w, "\",\"t_ns\":");
    put_i64(&w, ev->t_ns);
    if ((unsigned)ev->kind < MELT_EV_KIND_COUNT) {
        const field *fs = kind_fields[ev->kind];
        for (int k = 0; k < MAX_FIELDS && fs[k].json; k++) {
            const field *f = &fs[k];
            switch (f->f) {
            case F_REQ:
            case F_I:
            case F_ID: {
                const int32_t v = f->f == F_REQ ? ev->req : f->f == F_I ? ev->i : ev->id;
                if (!f->required && v < 0) break;
                put_key(&w, f->json);
                put_i64(&w, v);
                break;
            }
            case F_VALUE:
                if (!f->required && !ev->has_value) break;
                put_key(&w, f->json);
                if (ev->has_value) put_double(&w, ev->value);
                else PUTS(&w, "null");
                break;
            default: {
                const char *s = f->f == F_NAME ? ev->name : f->f == F_KEY ? ev->key
                                : f->f == F_UNIT ? ev->unit : ev->msg;
                if (!f->required && !s[0]) break;
                put_key(&w, f->json);
                put_str(&w, s);
            }
            }
        }
        if (ev->kind == MELT_EV_HELLO && ev->msg[0]) {
            const char *a, *b;
            if (hello_members(ev->msg, &a, &b)) {
                if (b > a) {
                    PUTS(&w, ",");
                    put(&w, a, (size_t)(b - a));
                }
            } else {
                put_key(&w, "info");
                put_str(&w, ev->msg);
            }
        }
    }
    PUTS(&w, "}\n");
    if (n) buf[w.len < n ? w.len : n - 1] = '\0';
    return w.len;
}

/* ---- parse ---- */

static int bad(melt_error *err, const char *why)
{
    return melt_errorf(err, MELT_EFORMAT, "bad event line: %s", why);
}

/* Append member m ("key":value, raw) to the hello details in ev->msg when it
 * fits whole. */
static void hello_extra(melt_event *ev, const member *m)
{
    const size_t cur = strlen(ev->msg);
    const size_t kl = (size_t)(m->k1 - m->k0), vl = (size_t)(m->v1 - m->v0);
    /* "{" or "," + key + ":" + value + "}" + NUL */
    const size_t need = cur + 1 + kl + 1 + vl + 1 + 1;
    if (need > sizeof ev->msg) return;
    char *p = ev->msg + (cur ? cur - 1 : 0);   /* over the closing brace */
    *p++ = cur ? ',' : '{';
    memcpy(p, m->k0, kl);
    p += kl;
    *p++ = ':';
    memcpy(p, m->v0, vl);
    p += vl;
    *p++ = '}';
    *p = '\0';
}

int melt_event_parse(const char *line, size_t len, melt_event *ev, melt_error *err)
{
    memset(ev, 0, sizeof *ev);
    ev->req = ev->i = ev->id = -1;
    if (!line) return bad(err, "no line");
    /* the line terminator: "\n" or "\r\n", once */
    if (len && line[len - 1] == '\n') len--;
    if (len && line[len - 1] == '\r') len--;
    if (memchr(line, '\n', len) || memchr(line, '\r', len)) return bad(err, "line break inside the line");

    /* pass 1: syntax of the whole object, and the kind */
    jp j = {line, line + len, NULL};
    char kind[16] = "";
    bool have_ev = false, first = true;
    member m;
    int r;
    if (obj_open(&j) < 0) return bad(err, j.why);
    while ((r = obj_next(&j, &m, &first)) == 1) {
        char key[8];
        bool trunc;
        decode_span(m.k0, m.k1, key, sizeof key, &trunc);
        if (trunc || strcmp(key, "ev") != 0) continue;
        if (have_ev) return bad(err, "duplicate key 'ev'");
        have_ev = true;
        if (*m.v0 != '"') return bad(err, "\"ev\" is not a string");
        decode_span(m.v0, m.v1, kind, sizeof kind, &trunc);
        if (trunc) kind[0] = '\0';
    }
    if (r < 0) return bad(err, j.why);
    skip_ws(&j);
    if (j.p != j.end) return bad(err, "garbage after the object");
    if (!have_ev) return bad(err, "missing \"ev\"");
    enum melt_event_kind k;
    if (!melt_event_kind_parse(kind, &k)) {
        char why[64];
        for (char *c = kind; *c; c++)
            if ((unsigned char)*c < 0x20) *c = '?';
        snprintf(why, sizeof why, "unknown event kind '%s'", kind);
        return bad(err, why);
    }
    ev->kind = k;

    /* pass 2: the fields */
    const field *fs = kind_fields[k];
    unsigned seen = 0;      /* bit f: fs[f] read; bit MAX_FIELDS: t_ns */
    j.p = line;
    j.why = NULL;
    first = true;
    obj_open(&j);
    while (obj_next(&j, &m, &first) == 1) {
        char key[24];
        bool trunc;
        decode_span(m.k0, m.k1, key, sizeof key, &trunc);
        if (trunc) goto unknown;
        if (!strcmp(key, "ev")) continue;
        if (!strcmp(key, "t_ns")) {
            if (seen & (1u << MAX_FIELDS)) return bad(err, "duplicate key 't_ns'");
            seen |= 1u << MAX_FIELDS;
            int64_t t;
            if (read_int(m.v0, m.v1, INT64_MIN, INT64_MAX, &t) < 0)
                return bad(err, "\"t_ns\" is not an integer in int64 range");
            ev->t_ns = t;
            continue;
        }
        int fi = -1;
        for (int q = 0; q < MAX_FIELDS && fs[q].json; q++)
            if (!strcmp(key, fs[q].json)) fi = q;
        if (fi < 0) goto unknown;
        if (seen & (1u << fi)) {
            char why[64];
            snprintf(why, sizeof why, "duplicate key '%s'", key);
            return bad(err, why);
        }
        seen |= 1u << fi;
        const field *f = &fs[fi];
        char why[96];
        switch (f->f) {
        case F_REQ:
        case F_I:
        case F_ID: {
            int64_t v;
            if (read_int(m.v0, m.v1, 0, INT32_MAX, &v) < 0) {
                snprintf(why, sizeof why, "\"%s\" is not an integer in [0, 2^31)", f->json);
                return bad(err, why);
            }
            *(f->f == F_REQ ? &ev->req : f->f == F_I ? &ev->i : &ev->id) = (int32_t)v;
            break;
        }
        case F_VALUE:
            if (read_double(m.v0, m.v1, &ev->value) < 0) {
                snprintf(why, sizeof why, "\"%s\" is not a finite number", f->json);
                return bad(err, why);
            }
            ev->has_value = true;
            break;
        default: {
            char *dst = f->f == F_NAME ? ev->name : f->f == F_KEY ? ev->key
                        : f->f == F_UNIT ? ev->unit : ev->msg;
            const size_t cap = f->f == F_NAME ? sizeof ev->name : f->f == F_KEY ? sizeof ev->key
                               : f->f == F_UNIT ? sizeof ev->unit : sizeof ev->msg;
            if (*m.v0 != '"') {
                snprintf(why, sizeof why, "\"%s\" is not a string", f->json);
                return bad(err, why);
            }
            decode_span(m.v0, m.v1, dst, cap, NULL);
        }
        }
        continue;
    unknown:
        if (k == MELT_EV_HELLO) hello_extra(ev, &m);
    }
    if (!(seen & (1u << MAX_FIELDS))) return bad(err, "missing \"t_ns\"");
    for (int q = 0; q < MAX_FIELDS && fs[q].json; q++)
        if (fs[q].required && !(seen & (1u << q))) {
            char why[64];
            snprintf(why, sizeof why, "%s event without \"%s\"", kind_names[k], fs[q].json);
            return bad(err, why);
        }
    if (k == MELT_EV_PHASE && strcmp(ev->key, "begin") != 0 && strcmp(ev->key, "end") != 0)
        return bad(err, "phase \"edge\" is neither \"begin\" nor \"end\"");
    return 0;
}

bool melt_event_hello_add(melt_event *ev, const char *key, const char *value)
{
    char tmp[sizeof ev->msg];
    const size_t cur = strlen(ev->msg);
    if (cur >= sizeof tmp) return false;
    wr w = {tmp, sizeof tmp, 0};
    if (cur) put(&w, ev->msg, cur - 1);   /* without its closing brace */
    if (cur) PUTS(&w, ",");
    else PUTS(&w, "{");
    put_str(&w, key);
    PUTS(&w, ":");
    put_str(&w, value);
    PUTS(&w, "}");
    if (w.len >= sizeof tmp) return false;
    memcpy(ev->msg, tmp, w.len);
    ev->msg[w.len] = '\0';
    return true;
}

/* melt — reading what llama.cpp's command-line programs print
 * (src/backends/llamacpp.h): the timing summary on stderr and the
 * generated text on stdout. Pure functions over bytes, no I/O. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backends/llamacpp.h"

void melt_llamacpp_perf_init(melt_llamacpp_perf *p)
{
    p->load_ms = p->sampling_ms = p->prompt_ms = p->predicted_ms = p->total_ms = NAN;
    p->prompt_per_second = p->predicted_per_second = NAN;
    p->prompt_n = p->predicted_n = p->total_n = -1;
    p->n_lines = 0;
}

/* Where the summary's text starts after one of the printing functions'
 * names, or NULL. */
static const char *after_prefix(const char *s, const char *end)
{
    static const char *const names[] = {
        "common_perf_print:", "llama_perf_context_print:", "llama_perf_sampler_print:",
        "llama_print_timings:",
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const size_t n = strlen(names[i]);
        for (const char *q = s; q + n <= end; q++)
            if (memcmp(q, names[i], n) == 0)
                return q + n;
    }
    return NULL;
}

static const char *skip_sp(const char *s, const char *end)
{
    while (s < end && (*s == ' ' || *s == '\t'))
        s++;
    return s;
}

/* A decimal number at *s (digits, one '.', no sign or exponent); false
 * when none. */
static bool number(const char **s, const char *end, double *out)
{
    const char *q = skip_sp(*s, end);
    char buf[48];
    size_t n = 0;
    bool digit = false, dot = false;
    while (q < end && n + 1 < sizeof buf && ((*q >= '0' && *q <= '9') || (*q == '.' && !dot))) {
        if (*q == '.')
            dot = true;
        else
            digit = true;
        buf[n++] = *q++;
    }
    if (!digit || (q < end && *q >= '0' && *q <= '9'))
        return false;
    buf[n] = '\0';
    *out = strtod(buf, NULL);
    *s = q;
    return isfinite(*out);
}

/* The word at s equals w (followed by a non-letter). */
static bool word(const char **s, const char *end, const char *w)
{
    const char *q = skip_sp(*s, end);
    const size_t n = strlen(w);
    if ((size_t)(end - q) < n || memcmp(q, w, n) != 0)
        return false;
    if (q + n < end && ((q[n] >= 'a' && q[n] <= 'z') || (q[n] >= 'A' && q[n] <= 'Z')))
        return false;
    *s = q + n;
    return true;
}

static int count_of(double v)
{
    return v >= 0 && v < 2e9 && v == floor(v) ? (int)v : -1;
}

bool melt_llamacpp_perf_line(const char *line, size_t len, melt_llamacpp_perf *p)
{
    const char *end = line + len;
    const char *s = after_prefix(line, end);
    if (!s)
        return false;
    const char *eq = memchr(s, '=', (size_t)(end - s));
    if (!eq)
        return false;
    /* the label, trimmed */
    const char *a = skip_sp(s, eq), *b = eq;
    while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
        b--;
    const size_t ln = (size_t)(b - a);
#define LABEL(x) (ln == sizeof(x) - 1 && memcmp(a, x, ln) == 0)
    const char *q = eq + 1;
    double ms, n = NAN, per_tok, tps = NAN;
    if (!number(&q, end, &ms) || !word(&q, end, "ms"))
        return false;
    /* "/ N tokens" or "/ N runs" (total and eval; not "/ 7.9 %") */
    const char *r = skip_sp(q, end);
    if (r < end && *r == '/') {
        r++;
        double v;
        if (number(&r, end, &v) && (word(&r, end, "tokens") || word(&r, end, "runs"))) {
            n = v;
            q = r;
        }
    }
    /* "(X ms per token, Y tokens per second)" */
    r = skip_sp(q, end);
    if (r < end && *r == '(') {
        r++;
        if (number(&r, end, &per_tok) && word(&r, end, "ms") && word(&r, end, "per") &&
            word(&r, end, "token")) {
            r = skip_sp(r, end);
            if (r < end && *r == ',')
                r++;
            double v;
            if (number(&r, end, &v) && word(&r, end, "tokens") && word(&r, end, "per") &&
                word(&r, end, "second"))
                tps = v;
        }
    }
    if (LABEL("load time")) {
        p->load_ms = ms;
    } else if (LABEL("sampling time")) {
        p->sampling_ms = ms;
    } else if (LABEL("prompt eval time")) {
        p->prompt_ms = ms;
        p->prompt_n = count_of(n);
        p->prompt_per_second = tps;
    } else if (LABEL("eval time")) {
        p->predicted_ms = ms;
        p->predicted_n = count_of(n);
        p->predicted_per_second = tps;
    } else if (LABEL("total time")) {
        p->total_ms = ms;
        p->total_n = count_of(n);
    } else {
        return false;   /* samplers time, unaccounted time, graphs reused ... */
    }
#undef LABEL
    p->n_lines++;
    return true;
}

int melt_llamacpp_perf_parse(const char *text, size_t len, melt_llamacpp_perf *p)
{
    int n = 0;
    const char *s = text, *end = text + len;
    while (s < end) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        const char *e = nl ? nl : end;
        size_t l = (size_t)(e - s);
        if (l && s[l - 1] == '\r')
            l--;
        if (melt_llamacpp_perf_line(s, l, p))
            n++;
        s = nl ? nl + 1 : end;
    }
    return n;
}

/* ---- stdout: the echoed prompt and the end marker ---- */

static const char k_marker[] = " [end of text]";

void melt_llamacpp_echo_init(melt_llamacpp_echo *e, const char *prompt)
{
    memset(e, 0, sizeof *e);
    e->prompt = prompt;
    e->echo_done = !prompt || !*prompt;
}

static bool all_newlines(const char *h, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (h[i] != '\n')
            return false;
    return true;
}

/* What may still be the program's own ending: a prefix of the marker, the
 * marker and newlines, or newlines only (it ends its output with them). */
static bool hold_ok(const char *h, size_t n)
{
    const size_t m = sizeof k_marker - 1;
    if (n <= m && memcmp(h, k_marker, n) == 0)
        return true;
    if (n > m && memcmp(h, k_marker, m) == 0)
        return all_newlines(h + m, n - m);
    return all_newlines(h, n);
}

/* One generated byte through the hold. */
static size_t tail_byte(melt_llamacpp_echo *e, char c, char *out, size_t k, size_t cap)
{
    if (e->n_hold == sizeof e->hold) {   /* a long run of newlines: they were text */
        if (k < cap)
            out[k++] = e->hold[0];
        memmove(e->hold, e->hold + 1, --e->n_hold);
    }
    e->hold[e->n_hold++] = c;
    /* drop bytes from the front until the hold can still become the marker */
    while (e->n_hold && !hold_ok(e->hold, e->n_hold)) {
        if (k < cap)
            out[k++] = e->hold[0];
        memmove(e->hold, e->hold + 1, --e->n_hold);
    }
    return k;
}

size_t melt_llamacpp_echo_push(melt_llamacpp_echo *e, const char *in, size_t len, char *out, size_t cap)
{
    size_t k = 0;
    for (size_t i = 0; i < len; i++) {
        const char c = in[i];
        if (!e->echo_done) {
            if (e->matched == 0 && !e->space_skipped && c == ' ' && e->prompt[0] != ' ') {
                e->space_skipped = true;
                continue;
            }
            if (e->prompt[e->matched] == c) {
                if (e->prompt[++e->matched] == '\0')
                    e->echo_done = true;
                continue;
            }
            /* not the echo after all: what was held back is text */
            e->echo_done = true;
            if (e->space_skipped)
                k = tail_byte(e, ' ', out, k, cap);
            for (size_t j = 0; j < e->matched; j++)
                k = tail_byte(e, e->prompt[j], out, k, cap);
        }
        k = tail_byte(e, c, out, k, cap);
    }
    return k;
}

size_t melt_llamacpp_echo_finish(melt_llamacpp_echo *e, char *out, size_t cap)
{
    size_t k = 0;
    if (!e->echo_done) {   /* output ended inside what looked like the echo */
        e->echo_done = true;
        if (e->space_skipped)
            k = tail_byte(e, ' ', out, k, cap);
        for (size_t j = 0; j < e->matched; j++)
            k = tail_byte(e, e->prompt[j], out, k, cap);
    }
    const size_t m = sizeof k_marker - 1;
    if (e->n_hold >= m && memcmp(e->hold, k_marker, m) == 0)
        e->eog = true;   /* the marker (and newlines): not text */
    else if (!all_newlines(e->hold, e->n_hold))
        for (size_t j = 0; j < e->n_hold && k < cap; j++)
            out[k++] = e->hold[j];
    e->n_hold = 0;
    return k;
}

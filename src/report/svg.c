/* SVG chart primitives for the HTML report (svg.h). Geometry is in user
 * units of a fixed-width viewBox (the page scales it down on narrow
 * screens); styles come from the report's stylesheet (classes ct, grid,
 * axis, tick, al, lbl, val, ci, na, note). */
#include "report/svg.h"

#include <math.h>
#include <string.h>

#include "melt/report.h"

#define CHART_W 760.0       /* line charts */
#define BAR_CHART_W 860.0   /* bar charts: room for cell names */

/* ---- numbers ----------------------------------------------------------- */

void svg_axis_nice(double dmin, double dmax, int max_ticks, svg_axis *ax)
{
    if (max_ticks < 2)
        max_ticks = 2;
    if (!isfinite(dmin) || !isfinite(dmax)) {
        dmin = 0;
        dmax = 1;
    }
    if (dmin > dmax) {
        double t = dmin;
        dmin = dmax;
        dmax = t;
    }
    if (dmax - dmin <= fmax(fabs(dmin), fabs(dmax)) * 1e-9) {
        if (dmin == 0 && dmax == 0) {
            dmax = 1;
        } else {
            double w = fmax(fabs(dmin), fabs(dmax)) * 0.1;
            dmin -= w;
            dmax += w;
        }
    }
    double raw = (dmax - dmin) / (max_ticks - 1);
    double mag = pow(10.0, floor(log10(raw)));
    static const double mult[] = {1, 2, 5};
    double step = mag, lo = dmin, hi = dmax;
    int n = 2;
    for (int tries = 0; tries < 40; tries++) {
        step = mult[tries % 3] * mag * pow(10.0, tries / 3);
        lo = floor(dmin / step + 1e-9) * step;
        hi = ceil(dmax / step - 1e-9) * step;
        n = (int)llround((hi - lo) / step) + 1;
        if (n <= max_ticks)
            break;
    }
    if (n < 2) {             /* dmin == dmax on a tick */
        hi = lo + step;
        n = 2;
    }
    ax->lo = lo;
    ax->hi = hi;
    ax->step = step;
    ax->n_ticks = n;
    ax->decimals = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
}

void svg_tick_label(char *buf, size_t n, double v, int decimals)
{
    snprintf(buf, n, "%.*f", decimals, v);
    /* "-0", "-0.00": a rounding artefact, not a sign */
    if (buf[0] == '-' && strspn(buf + 1, "0.") == strlen(buf + 1))
        memmove(buf, buf + 1, strlen(buf));
}

static int decimals_for(double v)
{
    if (!isfinite(v) || v == 0)
        return 0;
    int d = 3 - (int)floor(log10(fabs(v)));
    return d < 0 ? 0 : d > 9 ? 9 : d;
}

void svg_fmt_value(char *buf, size_t n, double v)
{
    if (!isfinite(v)) {
        snprintf(buf, n, "–");
        return;
    }
    svg_tick_label(buf, n, v, decimals_for(v));
}

void svg_fmt_mean_ci(char *buf, size_t n, double v, double ci)
{
    if (!isfinite(v)) {
        snprintf(buf, n, "–");
        return;
    }
    int d = decimals_for(v != 0 ? v : ci);
    char a[64], b[64];
    svg_tick_label(a, sizeof a, v, d);
    if (!isfinite(ci)) {
        snprintf(buf, n, "%s", a);
        return;
    }
    if (fabs(ci) <= fabs(v) * 1e-9)          /* 0, or rounding noise of equal values */
        snprintf(b, sizeof b, "0");
    else
        svg_tick_label(b, sizeof b, ci, d);
    snprintf(buf, n, "%s ± %s", a, b);
}

/* ---- palette ----------------------------------------------------------- */

/* Tableau 10, with the yellow and grey darkened to read on white. */
static const char *const palette[] = {
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
    "#c9a227", "#b07aa1", "#ff9da7", "#9c755f", "#79706e",
};
static const char *const dashes[] = {"", "6 3", "2 2", "8 3 2 3"};

const char *svg_color(size_t i) { return palette[i % 10]; }
const char *svg_dash(size_t i) { return dashes[(i / 10) % 4]; }

/* ---- text -------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at p (n bytes left), 0 if invalid. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    unsigned c = p[0];
    size_t len;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;        /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else
        return 0;
    if (n < len || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t k = 2; k < len; k++)
        if (p[k] < 0x80 || p[k] > 0xBF)
            return 0;
    return len;
}

void svg_escape_n(FILE *out, const char *s, size_t n)
{
    static const char repl[] = "\xEF\xBF\xBD";   /* U+FFFD */
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned c = p[i];
        if (c < 0x80) {
            switch (c) {
            case '&': fputs("&amp;", out); break;
            case '<': fputs("&lt;", out); break;
            case '>': fputs("&gt;", out); break;
            case '"': fputs("&quot;", out); break;
            case '\'': fputs("&#39;", out); break;
            default:
                if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7F)
                    fputs(repl, out);
                else
                    fputc((int)c, out);
            }
            i++;
            continue;
        }
        size_t len = utf8_len(p + i, n - i);
        if (!len) {
            fputs(repl, out);
            i++;
        } else {
            fwrite(p + i, 1, len, out);
            i += len;
        }
    }
}

void melt_html_escape(FILE *out, const char *s)
{
    if (s)
        svg_escape_n(out, s, strlen(s));
}

size_t svg_utf8_prefix(const char *s, size_t max_cp, bool *cut)
{
    size_t cp = 0, i = 0;
    *cut = false;
    for (; s[i]; i++) {
        if (((unsigned char)s[i] & 0xC0) == 0x80)
            continue;            /* continuation: belongs to the previous one */
        if (cp == max_cp) {
            *cut = true;
            return i;
        }
        cp++;
    }
    return i;
}

void svg_escape_cut(FILE *out, const char *s, size_t max_cp)
{
    if (!s)
        return;
    bool cut;
    svg_utf8_prefix(s, max_cp, &cut);
    if (!cut || max_cp < 3) {
        if (cut)
            svg_escape_n(out, s, svg_utf8_prefix(s, max_cp, &cut));
        else
            melt_html_escape(out, s);
        return;
    }
    /* Cut in the middle: ids differ at both ends (device ... workload). */
    size_t total = 0;
    for (const char *p = s; *p; p++)
        total += ((unsigned char)*p & 0xC0) != 0x80;
    size_t head = (max_cp - 1) / 2, tail = max_cp - 1 - head;
    svg_escape_n(out, s, svg_utf8_prefix(s, head, &cut));
    fputs("…", out);
    size_t from = svg_utf8_prefix(s, total - tail, &cut);
    svg_escape_n(out, s + from, strlen(s + from));
}

/* ---- shared pieces ----------------------------------------------------- */

static void svg_open(FILE *out, const char *id, const char *title, double w, double h)
{
    fprintf(out, "<svg class=\"chart\" id=\"%s\" viewBox=\"0 0 %.0f %.0f\" width=\"%.0f\" "
            "height=\"%.0f\" role=\"img\" aria-labelledby=\"%s-t\">\n<title id=\"%s-t\">",
            id, w, h, w, h, id, id);
    melt_html_escape(out, title);
    fputs("</title>\n<text class=\"ct\" x=\"8\" y=\"20\">", out);
    melt_html_escape(out, title);
    fputs("</text>\n", out);
}

static double scale(double v, double lo, double hi, double a, double b)
{
    return a + (v - lo) / (hi - lo) * (b - a);
}

/* ---- bar chart --------------------------------------------------------- */

void svg_bar_chart_write(FILE *out, const svg_bar_chart *c)
{
    const double W = BAR_CHART_W, L = 300, R = 150, T = 34, row = 24, B = 46;
    const double x0 = L, x1 = W - R;
    size_t rows = c->n ? c->n : 1;
    const double yb = T + row * (double)rows;        /* bottom of the bars */
    const double h = yb + B;

    double lo = 0, hi = 0;
    for (size_t k = 0; k < c->n; k++) {
        double v = c->bars[k].value, e = c->bars[k].ci;
        if (!isfinite(v))
            continue;
        if (!isfinite(e) || e < 0)
            e = 0;
        hi = fmax(hi, v + e);
        lo = fmin(lo, v - e);
    }
    svg_axis ax;
    svg_axis_nice(lo, hi, 6, &ax);

    svg_open(out, c->id, c->title, W, h);
    char buf[128];
    for (int k = 0; k < ax.n_ticks; k++) {
        double t = ax.lo + k * ax.step;
        double x = scale(t, ax.lo, ax.hi, x0, x1);
        svg_tick_label(buf, sizeof buf, t, ax.decimals);
        fprintf(out, "<line class=\"grid\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>"
                "<text class=\"tick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
                x, T - 4, x, yb, x, yb + 15, buf);
    }
    fprintf(out, "<line class=\"axis\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n",
            x0, yb, x1, yb);
    double xz = scale(0, ax.lo, ax.hi, x0, x1);
    fprintf(out, "<line class=\"axis\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n",
            xz, T - 4, xz, yb);
    fprintf(out, "<text class=\"al\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">",
            (x0 + x1) / 2, h - 10);
    melt_html_escape(out, c->axis_label);
    fputs("</text>\n", out);

    if (!c->n)
        fprintf(out, "<text class=\"na\" x=\"%.1f\" y=\"%.1f\">no cells</text>\n", x0 + 6,
                T + row / 2 + 4);
    for (size_t k = 0; k < c->n; k++) {
        const svg_bar *b = &c->bars[k];
        double y = T + row * (double)k, ym = y + row / 2;
        svg_fmt_mean_ci(buf, sizeof buf, b->value, b->ci);
        fputs("<g class=\"bar\"><title>", out);
        melt_html_escape(out, b->full ? b->full : b->label);
        fprintf(out, ": %s", buf);
        if (isfinite(b->value)) {
            fputc(' ', out);
            melt_html_escape(out, c->unit);
            fprintf(out, " (n=%zu)", b->n);
        } else {
            fputs(" (no data)", out);
        }
        fprintf(out, "</title>\n<text class=\"lbl\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">",
                x0 - 8, ym + 4);
        svg_escape_cut(out, b->label, 44);
        fputs("</text>", out);
        if (!isfinite(b->value)) {
            fprintf(out, "<text class=\"na\" x=\"%.1f\" y=\"%.1f\">– no data</text></g>\n",
                    xz + 6, ym + 4);
            continue;
        }
        double xv = scale(b->value, ax.lo, ax.hi, x0, x1);
        fprintf(out, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"/>",
                fmin(xz, xv), y + 5, fabs(xv - xz), row - 10, svg_color(b->color));
        double xe = xv;
        if (isfinite(b->ci) && b->ci > 0) {
            double xa = scale(b->value - b->ci, ax.lo, ax.hi, x0, x1);
            xe = scale(b->value + b->ci, ax.lo, ax.hi, x0, x1);
            fprintf(out, "<path class=\"ci\" d=\"M%.1f %.1fH%.1fM%.1f %.1fV%.1fM%.1f %.1fV%.1f\"/>",
                    xa, ym, xe, xa, ym - 5, ym + 5, xe, ym - 5, ym + 5);
        }
        fprintf(out, "<text class=\"val\" x=\"%.1f\" y=\"%.1f\">%s</text></g>\n",
                fmax(xe, xv) + 6, ym + 4, buf);
    }
    fputs("</svg>\n", out);
}

/* ---- line chart -------------------------------------------------------- */

void svg_line_chart_write(FILE *out, const svg_line_chart *c)
{
    const double L = 64, R = 20, T = 34, PH = 240, AX = 46, LROW = 18;
    const int cols = 2;
    const double x0 = L, x1 = CHART_W - R, y0 = T + PH, y1 = T;
    size_t lrows = (c->n + cols - 1) / cols;
    const double h = y0 + AX + LROW * (double)lrows + 8;

    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
    for (size_t s = 0; s < c->n; s++)
        for (size_t k = 0; k < c->series[s].n; k++) {
            double x = c->series[s].x[k], y = c->series[s].y[k];
            if (!isfinite(x) || !isfinite(y) || (c->x_max > 0 && x > c->x_max))
                continue;
            xmin = fmin(xmin, x);
            xmax = fmax(xmax, x);
            ymin = fmin(ymin, y);
            ymax = fmax(ymax, y);
        }
    if (c->x_max > 0)
        xmax = c->x_max;
    if (!isfinite(xmin)) {
        xmin = 0;
        xmax = 1;
        ymin = 0;
        ymax = 1;
    }
    if (xmin > 0 && xmin < (xmax - xmin) * 0.25)
        xmin = 0;            /* start at 0 when the data nearly does */
    if (c->y_zero) {
        ymin = fmin(ymin, 0);
        ymax = fmax(ymax, 0);
    }
    svg_axis ax, ay;
    svg_axis_nice(xmin, xmax, 9, &ax);
    if (c->y_unit)
        svg_axis_nice(0, 1, 6, &ay);
    else
        svg_axis_nice(ymin, ymax, 6, &ay);

    svg_open(out, c->id, c->title, CHART_W, h);
    if (c->note) {
        fprintf(out, "<text class=\"note\" x=\"%.1f\" y=\"20\" text-anchor=\"end\">", x1);
        melt_html_escape(out, c->note);
        fputs("</text>\n", out);
    }
    fprintf(out, "<clipPath id=\"%s-clip\"><rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
            "height=\"%.1f\"/></clipPath>\n", c->id, x0, y1 - 2, x1 - x0, y0 - y1 + 4);
    char buf[64];
    for (int k = 0; k < ax.n_ticks; k++) {
        double t = ax.lo + k * ax.step, x = scale(t, ax.lo, ax.hi, x0, x1);
        svg_tick_label(buf, sizeof buf, t, ax.decimals);
        fprintf(out, "<line class=\"grid\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>"
                "<text class=\"tick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
                x, y1, x, y0, x, y0 + 15, buf);
    }
    for (int k = 0; k < ay.n_ticks; k++) {
        double t = ay.lo + k * ay.step, y = scale(t, ay.lo, ay.hi, y0, y1);
        svg_tick_label(buf, sizeof buf, t, ay.decimals);
        fprintf(out, "<line class=\"grid\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>"
                "<text class=\"tick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n",
                x0, y, x1, y, x0 - 6, y + 4, buf);
    }
    fprintf(out, "<path class=\"axis\" d=\"M%.1f %.1fV%.1fH%.1f\"/>\n", x0, y1, y0, x1);
    fprintf(out, "<text class=\"al\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">",
            (x0 + x1) / 2, y0 + 34);
    melt_html_escape(out, c->x_label);
    fprintf(out, "</text>\n<text class=\"al\" x=\"14\" y=\"%.1f\" text-anchor=\"middle\" "
            "transform=\"rotate(-90 14 %.1f)\">", (y0 + y1) / 2, (y0 + y1) / 2);
    melt_html_escape(out, c->y_label);
    fputs("</text>\n", out);

    for (size_t s = 0; s < c->n; s++) {
        const svg_series *se = &c->series[s];
        const char *dash = svg_dash(se->color);
        fputs("<g class=\"series\"><title>", out);
        melt_html_escape(out, se->full ? se->full : se->name);
        if (se->detail) {
            fputs(" (", out);
            melt_html_escape(out, se->detail);
            fputs(")", out);
        }
        fputs("</title>", out);
        size_t shown = 0;
        double px = 0, py = 0, prev_y = NAN;
        fprintf(out, "<polyline clip-path=\"url(#%s-clip)\" fill=\"none\" stroke=\"%s\" "
                "stroke-width=\"1.8\" stroke-linejoin=\"round\"%s%s%s points=\"", c->id,
                svg_color(se->color), *dash ? " stroke-dasharray=\"" : "", dash,
                *dash ? "\"" : "");
        for (size_t k = 0; k < se->n; k++) {
            double x = se->x[k], y = se->y[k];
            if (!isfinite(x) || !isfinite(y))
                continue;
            px = scale(x, ax.lo, ax.hi, x0, x1);
            py = scale(y, ay.lo, ay.hi, y0, y1);
            if (c->step && isfinite(prev_y))
                fprintf(out, "%.1f,%.1f ", px, prev_y);
            fprintf(out, "%.1f,%.1f ", px, py);
            prev_y = py;
            shown++;
            if (c->x_max > 0 && x > c->x_max)
                break;       /* one point past the edge, clipped */
        }
        fputs("\"/>", out);
        if (shown == 1)
            fprintf(out, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>", px, py,
                    svg_color(se->color));
        fputs("</g>\n", out);
    }
    if (!c->n)
        fprintf(out, "<text class=\"na\" x=\"%.1f\" y=\"%.1f\">no data</text>\n", x0 + 8,
                y1 + 20);

    /* legend: columns under the x axis label */
    const double colw = (x1 - x0) / cols;
    for (size_t s = 0; s < c->n; s++) {
        double lx = x0 + colw * (double)(s % cols);
        double ly = y0 + AX + LROW * (double)(s / cols) + 4;
        const char *dash = svg_dash(c->series[s].color);
        fputs("<g class=\"legend\"><title>", out);
        melt_html_escape(out, c->series[s].full ? c->series[s].full : c->series[s].name);
        if (c->series[s].detail) {
            fputs(" (", out);
            melt_html_escape(out, c->series[s].detail);
            fputs(")", out);
        }
        fprintf(out, "</title><line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                "stroke=\"%s\" stroke-width=\"3\"%s%s%s/>", lx, ly, lx + 22, ly,
                svg_color(c->series[s].color), *dash ? " stroke-dasharray=\"" : "", dash,
                *dash ? "\"" : "");
        fprintf(out, "<text class=\"lbl\" x=\"%.1f\" y=\"%.1f\">", lx + 28, ly + 4);
        svg_escape_cut(out, c->series[s].name, 46);
        fputs("</text></g>\n", out);
    }
    fputs("</svg>\n", out);
}

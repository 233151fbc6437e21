/* Small SVG chart helper for the HTML report: nice axes, horizontal bars
 * with CI whiskers, line charts (time series, step CDFs), a fixed palette.
 * Charts are written as inline <svg> elements (no script, no external
 * reference) with an accessible <title>; every label is HTML-escaped and a
 * long one is cut with "…" (the full text is in a <title> tooltip). */
#ifndef MELT_REPORT_SVG_H
#define MELT_REPORT_SVG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* An axis with round ticks: lo and hi are multiples of step, ticks at
 * lo + k * step for k in [0, n_ticks). decimals: digits after the point
 * that tick labels need (0 for step >= 1). */
typedef struct svg_axis {
    double lo, hi, step;
    int n_ticks;
    int decimals;
} svg_axis;

/* The axis with the smallest round step (1, 2 or 5 times a power of ten)
 * whose ticks, at most max_ticks (>= 2), cover [dmin, dmax]. An empty range
 * is widened around its value (0 gives [0, 1]); non-finite input [0, 1]. */
void svg_axis_nice(double dmin, double dmax, int max_ticks, svg_axis *ax);
/* A tick value as text with the axis' decimals ("-0" printed as "0"). */
void svg_tick_label(char *buf, size_t n, double v, int decimals);

/* v with 4 significant digits and no exponent ("1234", "123.4", "0.01234"),
 * "–" when not finite. */
void svg_fmt_value(char *buf, size_t n, double v);
/* "v ± ci" with ci at v's decimals ("± 0" when 0 or rounding noise); just v
 * when ci is not finite. */
void svg_fmt_mean_ci(char *buf, size_t n, double v, double ci);

/* The palette colour (#rrggbb) and dash pattern ("" solid) of series i:
 * ten colours, then the same colours dashed. */
const char *svg_color(size_t i);
const char *svg_dash(size_t i);

/* Bytes of the first max_cp code points of s (a whole UTF-8 sequence is
 * never cut); *cut set when s is longer. */
size_t svg_utf8_prefix(const char *s, size_t max_cp, bool *cut);
/* s[0..n) HTML-escaped (melt_html_escape for a length). */
void svg_escape_n(FILE *out, const char *s, size_t n);
/* s escaped and cut to max_cp code points: a longer s keeps its head and
 * tail around a "…" (cell ids differ at both ends). */
void svg_escape_cut(FILE *out, const char *s, size_t max_cp);

/* ---- horizontal bar chart: one bar per cell, value ± ci -------------- */

typedef struct svg_bar {
    const char *label;       /* the cell, short (cut on the chart) */
    const char *full;        /* NULL, or the whole name for the tooltip */
    double value;            /* NaN: no data ("–") */
    double ci;               /* 95% CI half-width; NaN: none */
    size_t n;                /* values behind the mean */
    size_t color;            /* palette index */
} svg_bar;

typedef struct svg_bar_chart {
    const char *id;          /* unique element id prefix ([a-z0-9-]) */
    const char *title;       /* "Decode throughput" */
    const char *axis_label;  /* "decode tok/s (mean ± 95% CI)" */
    const char *unit;        /* "tok/s": after values in tooltips */
    const svg_bar *bars;
    size_t n;
} svg_bar_chart;

void svg_bar_chart_write(FILE *out, const svg_bar_chart *c);

/* ---- line chart: one polyline per series ----------------------------- */

typedef struct svg_series {
    const char *name;        /* legend text (cut) */
    const char *full;        /* NULL, or the whole name for the tooltip */
    const double *x, *y;     /* n points, x ascending; non-finite points skipped */
    size_t n;
    size_t color;            /* palette index (colour and dash) */
    const char *detail;      /* NULL, or more for the tooltip: "cpu0_temp, rep 0" */
} svg_series;

typedef struct svg_line_chart {
    const char *id, *title;
    const char *x_label, *y_label;  /* with units: "time (s)", "power (W)" */
    const svg_series *series;
    size_t n;
    bool step;               /* a step function (CDF): horizontal then vertical */
    bool y_unit;             /* y axis fixed to [0, 1] */
    bool y_zero;             /* y axis includes 0 */
    double x_max;            /* > 0: x axis ends here (points beyond clipped) */
    const char *note;        /* NULL, or a line under the axis ("x clipped at ...") */
} svg_line_chart;

void svg_line_chart_write(FILE *out, const svg_line_chart *c);

#endif

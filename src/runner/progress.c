/* melt — the runner's progress: on a terminal one line redrawn in place
 * (cell i/n, cell id, repetition r/N, tokens, elapsed, ETA from the
 * trials finished so far), otherwise one plain line per finished trial. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "melt/runner.h"
#include "runner/runner_internal.h"

int64_t runner_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

char *melt_runner_format_duration(double seconds, char *buf, size_t n)
{
    if (!buf || n == 0)
        return buf;
    if (!(seconds >= 0) || seconds > 1e9) {
        snprintf(buf, n, "?");
        return buf;
    }
    long s = (long)(seconds + 0.5);
    if (s < 60)
        snprintf(buf, n, "%lds", s);
    else if (s < 3600)
        snprintf(buf, n, "%ldm%02lds", s / 60, s % 60);
    else
        snprintf(buf, n, "%ldh%02ldm", s / 3600, (s % 3600) / 60);
    return buf;
}

void runner_progress_init(runner_progress *p, FILE *out, bool quiet, int total)
{
    memset(p, 0, sizeof *p);
    p->out = out ? out : stderr;
    p->quiet = quiet;
    p->tty = isatty(fileno(p->out)) == 1;
    p->total = total;
    p->start_ns = runner_now_ns();
}

static void clear_line(runner_progress *p)
{
    if (p->tty && p->line_open) {
        fputs("\r\033[K", p->out);
        p->line_open = false;
    }
}

static void where(const runner_trial_pos *pos, char *buf, size_t n)
{
    if (pos->warmup)
        snprintf(buf, n, "[cell %zu/%zu warmup %d/%d]", pos->cell + 1, pos->n_cells,
                 pos->rep + 1, pos->n_reps);
    else
        snprintf(buf, n, "[cell %zu/%zu rep %d/%d]", pos->cell + 1, pos->n_cells, pos->rep + 1,
                 pos->n_reps);
}

static void draw(runner_progress *p, const runner_trial_pos *pos, int64_t n_tokens)
{
    char w[96], el[32], eta[32];
    const double elapsed = (double)(runner_now_ns() - p->start_ns) / 1e9;
    melt_runner_format_duration(elapsed, el, sizeof el);
    if (p->done > 0)
        melt_runner_format_duration(elapsed / p->done * (p->total - p->done), eta, sizeof eta);
    else
        snprintf(eta, sizeof eta, "?");
    where(pos, w, sizeof w);
    char line[512];
    snprintf(line, sizeof line, "%s %lld tok  elapsed %s  ETA %s  %s", w, (long long)n_tokens,
             el, eta, pos->cell_id);
    /* one line: never wider than the terminal (a wrapped line cannot be redrawn) */
    struct winsize ws;
    size_t width = ioctl(fileno(p->out), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1 ? ws.ws_col : 80;
    if (strlen(line) >= width)
        line[width - 1] = '\0';
    fprintf(p->out, "\r\033[K%s", line);
    fflush(p->out);
    p->line_open = true;
}

void runner_progress_update(runner_progress *p, const runner_trial_pos *pos, int64_t n_tokens,
                            bool force)
{
    if (p->quiet || !p->tty)
        return;
    const int64_t now = runner_now_ns();
    if (!force && now - p->last_draw_ns < 100000000)
        return;
    p->last_draw_ns = now;
    draw(p, pos, n_tokens);
}

void runner_progress_trial_done(runner_progress *p, const runner_trial_pos *pos,
                                const char *status, double decode_tps, const char *detail)
{
    p->done++;
    if (p->quiet)
        return;
    const bool plain = !p->tty || strcmp(status, "ok") != 0;
    if (!plain)
        return;   /* the next trial redraws the line */
    clear_line(p);
    char w[96];
    where(pos, w, sizeof w);
    fprintf(p->out, "%s %s: %s", w, pos->cell_id, status);
    if (isfinite(decode_tps))
        fprintf(p->out, ", %.1f tok/s decode", decode_tps);
    if (detail && *detail)
        fprintf(p->out, " (%s)", detail);
    fputc('\n', p->out);
    fflush(p->out);
}

void runner_progress_note(runner_progress *p, const char *fmt, ...)
{
    if (p->quiet)
        return;
    clear_line(p);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(p->out, fmt, ap);
    va_end(ap);
    fputc('\n', p->out);
    fflush(p->out);
}

void runner_progress_end(runner_progress *p)
{
    if (p->quiet)
        return;
    if (p->tty && p->line_open) {
        fputc('\n', p->out);
        p->line_open = false;
    }
    fflush(p->out);
}

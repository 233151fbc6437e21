/* melt — reading an agent's event stream on the host.
 *
 * Bytes arrive in arbitrary pieces (a pipe, a socket, adb shell, a file);
 * the reader splits them into lines, parses each with melt_event_parse and
 * calls back once per event. A bad line (garbage, a truncated object, an
 * over-long line) is reported with its line number and the reason, counted,
 * and skipped: reading goes on. Empty lines (and lines of only spaces) are
 * skipped silently. "\r\n" ends a line like "\n".
 *
 *   melt_event_stream *s;
 *   melt_event_stream_new(NULL, on_event, on_bad, ctx, &s, &err);
 *   melt_event_stream_read_fd(s, fd, &err);      // until EOF
 *   melt_event_stream_stats st; melt_event_stream_get_stats(s, &st);
 *   melt_event_stream_free(s);
 *
 * Or feed bytes from a poll loop with melt_event_stream_feed and end with
 * melt_event_stream_finish. Not thread-safe: one reader per stream.
 */
#ifndef MELT_EVENT_STREAM_H
#define MELT_EVENT_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "melt/error.h"
#include "melt/event.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct melt_event_stream melt_event_stream;

/* One good event; line_no counts from 1. A non-zero return stops reading
 * (feed/read_fd return 1). ev is valid during the call only. */
typedef int (*melt_event_fn)(void *user, const melt_event *ev, uint64_t line_no);

/* One bad line: the reason, and the line's first bytes (at most the line
 * cap; not NUL-terminated, may hold any bytes). */
typedef void (*melt_event_bad_fn)(void *user, uint64_t line_no, const char *reason,
                                  const char *line, size_t len);

typedef struct melt_event_stream_params {
    size_t max_line_bytes;   /* longer lines are reported and skipped;
                                default 64 KiB, at least 256 */
} melt_event_stream_params;

melt_event_stream_params melt_event_stream_default_params(void);

typedef struct melt_event_stream_stats {
    uint64_t lines;      /* lines seen (good + bad + empty) */
    uint64_t good;       /* parsed and passed to on_event */
    uint64_t bad;        /* reported through on_bad */
    uint64_t empty;      /* blank lines skipped */
    uint64_t bytes;      /* bytes fed */
    uint64_t too_long;   /* bad lines that were over the cap (in bad too) */
} melt_event_stream_stats;

/* params may be NULL (defaults); on_bad may be NULL. */
int melt_event_stream_new(const melt_event_stream_params *params, melt_event_fn on_event,
                          melt_event_bad_fn on_bad, void *user, melt_event_stream **out,
                          melt_error *err);
void melt_event_stream_free(melt_event_stream *s);

/* Feed data[0..n). Returns 0, or 1 when on_event asked to stop (the rest of
 * data is then not looked at). */
int melt_event_stream_feed(melt_event_stream *s, const char *data, size_t n);

/* End of input: a last line without its newline is parsed like any other
 * (a complete object is accepted; a cut one is reported as truncated).
 * Returns 0, or 1 when on_event asked to stop. */
int melt_event_stream_finish(melt_event_stream *s);

/* Read fd until end of file (retrying EINTR), feeding everything, then
 * finish. Returns 0 at EOF, 1 when on_event asked to stop, MELT_EIO (with
 * err) on a read error. */
int melt_event_stream_read_fd(melt_event_stream *s, int fd, melt_error *err);

void melt_event_stream_get_stats(const melt_event_stream *s, melt_event_stream_stats *st);

#ifdef __cplusplus
}
#endif
#endif

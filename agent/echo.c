/* melt-agent --echo: the device's clock for the host's clock sync over a
 * pipe (local, ssh, adb: the transport's stdin/stdout). Reads request lines
 * on stdin and answers each at once on stdout, as the tcp listener does:
 *
 *   echo T   -> "echo T NS"  (NS: CLOCK_MONOTONIC in ns, read after the
 *                             request arrived and just before the reply)
 *   other    -> "err unknown request (echo)"
 *
 * Ends (exit 0) at the end of input. Unbuffered: one read and one write per
 * request, so the reply leaves as soon as the clock is read. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"

#define ECHO_LINE_MAX 1024

static int write_all(const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(STDOUT_FILENO, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Answer one request line (no '\n'). */
static int answer(const char *line)
{
    char out[ECHO_LINE_MAX + 64];
    int n;
    if (strncmp(line, "echo ", 5) == 0 && strlen(line + 5) <= 200)
        n = snprintf(out, sizeof out, "echo %s %" PRId64 "\n", line + 5, agent_now_ns());
    else if (strcmp(line, "echo") == 0)
        n = snprintf(out, sizeof out, "echo %" PRId64 "\n", agent_now_ns());
    else
        n = snprintf(out, sizeof out, "err unknown request (echo)\n");
    return write_all(out, (size_t)n);
}

int agent_echo(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "melt-agent: usage: %s --echo (no other argument)\n", argv[0]);
        return 2;
    }
    char buf[ECHO_LINE_MAX];
    size_t n = 0;
    bool skipping = false;   /* inside an overlong line */
    for (;;) {
        ssize_t r = read(STDIN_FILENO, buf + n, sizeof buf - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return 0;
        n += (size_t)r;
        char *start = buf, *nl;
        while ((nl = memchr(start, '\n', n - (size_t)(start - buf)))) {
            *nl = '\0';
            if (nl > start && nl[-1] == '\r')
                nl[-1] = '\0';
            if (!skipping && answer(start) < 0)
                return 1;
            skipping = false;
            start = nl + 1;
        }
        n -= (size_t)(start - buf);
        memmove(buf, start, n);
        if (n == sizeof buf) {   /* no newline in a full buffer: drop it */
            if (!skipping && write_all("err request line too long\n", 26) < 0)
                return 1;
            skipping = true;
            n = 0;
        }
    }
}

/* The llamacpp backend's pure helpers (src/backends/llamacpp_log.c),
 * separate so that unit tests and the fuzz target reach them. */
#ifndef MELT_BACKENDS_LLAMACPP_H
#define MELT_BACKENDS_LLAMACPP_H

#include <stdbool.h>
#include <stddef.h>

/* The timing summary llama-completion / llama-cli print on stderr at the
 * end of a run, one "common_perf_print:" line each (older builds:
 * "llama_perf_context_print:", "llama_perf_sampler_print:",
 * "llama_print_timings:"), e.g.
 *
 *   common_perf_print:        load time =       3.51 ms
 *   common_perf_print: prompt eval time =       0.37 ms /     5 tokens (    0.07 ms per token, 13513.51 tokens per second)
 *   common_perf_print:        eval time =       4.43 ms /    31 runs   (    0.14 ms per token,  6994.58 tokens per second)
 *   common_perf_print:       total time =       5.63 ms /    36 tokens
 *
 * Fields not seen stay NAN (times, rates) or -1 (counts). */
typedef struct melt_llamacpp_perf {
    double load_ms;
    double sampling_ms;
    double prompt_ms;          /* "prompt eval time" */
    int prompt_n;              /* its tokens */
    double prompt_per_second;
    double predicted_ms;       /* "eval time": the generated tokens after the first */
    int predicted_n;           /* its runs */
    double predicted_per_second;
    double total_ms;
    int total_n;
    int n_lines;               /* summary lines recognised */
} melt_llamacpp_perf;

void melt_llamacpp_perf_init(melt_llamacpp_perf *p);
/* One line (without its newline; any bytes). True when it was a timing
 * line and its figures went into p. */
bool melt_llamacpp_perf_line(const char *line, size_t len, melt_llamacpp_perf *p);
/* Every line of text[0..len) (LF or CRLF); returns the lines recognised. */
int melt_llamacpp_perf_parse(const char *text, size_t len, melt_llamacpp_perf *p);

/* Filter over a CLI's stdout: the echoed prompt at its start (with or
 * without one leading space), a final " [end of text]" and the newlines
 * the program ends with are not generated text (so a last token that is
 * only newlines is not counted). Push bytes as they come; out receives the generated
 * bytes (at most len + hold bytes). */
typedef struct melt_llamacpp_echo {
    const char *prompt;        /* borrowed; NULL: no echo expected */
    size_t matched;            /* prompt bytes matched so far */
    bool space_skipped, echo_done;
    char hold[32];             /* a possible start of " [end of text]" */
    size_t n_hold;
    bool eog;                  /* " [end of text]" came at the end */
} melt_llamacpp_echo;

void melt_llamacpp_echo_init(melt_llamacpp_echo *e, const char *prompt);
/* Returns the bytes written to out (cap >= len + sizeof e->hold + strlen(prompt)). */
size_t melt_llamacpp_echo_push(melt_llamacpp_echo *e, const char *in, size_t len, char *out, size_t cap);
/* End of output: what is still held that is text (the marker dropped,
 * eog set). */
size_t melt_llamacpp_echo_finish(melt_llamacpp_echo *e, char *out, size_t cap);

#endif

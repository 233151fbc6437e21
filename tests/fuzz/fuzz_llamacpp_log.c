/* Fuzz target: what the llamacpp backend reads from llama-completion
 * (src/backends/llamacpp_log.c). The input is parsed as a stderr log (the
 * timing summary): the count returned must equal the lines recognised and
 * every figure read must be finite and non-negative. Then it is pushed
 * through the stdout filter twice, whole and split where the first byte
 * says, with a prompt made of its first bytes: both must give the same
 * text and the same end-of-generation verdict. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backends/llamacpp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_figure(double v)
{
    if (!isnan(v) && (!isfinite(v) || v < 0)) abort();
}

static size_t run_filter(const char *prompt, const char *in, size_t size, size_t cut, char *out,
                         bool *eog)
{
    melt_llamacpp_echo e;
    melt_llamacpp_echo_init(&e, prompt);
    const size_t cap = size + sizeof e.hold + 64 + 64;
    size_t n = melt_llamacpp_echo_push(&e, in, cut, out, cap);
    n += melt_llamacpp_echo_push(&e, in + cut, size - cut, out + n, cap - n);
    n += melt_llamacpp_echo_finish(&e, out + n, cap - n);
    if (n > size + 1) abort();   /* never more text than came in (+ an unmatched space) */
    *eog = e.eog;
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    melt_llamacpp_perf p;
    melt_llamacpp_perf_init(&p);
    const int n = melt_llamacpp_perf_parse(s, size, &p);
    if (n != p.n_lines || n < 0) abort();
    check_figure(p.load_ms);
    check_figure(p.sampling_ms);
    check_figure(p.prompt_ms);
    check_figure(p.prompt_per_second);
    check_figure(p.predicted_ms);
    check_figure(p.predicted_per_second);
    check_figure(p.total_ms);
    if (p.prompt_n < -1 || p.predicted_n < -1 || p.total_n < -1) abort();

    /* a prompt of up to 16 bytes taken from the input (no NUL inside) */
    char prompt[17];
    size_t pl = 0;
    while (pl < 16 && pl < size && data[pl] != 0) {
        prompt[pl] = (char)data[pl];
        pl++;
    }
    prompt[pl] = '\0';
    char *a = malloc(size + 256), *b = malloc(size + 256);
    if (!a || !b) abort();
    bool eog_a, eog_b;
    const size_t cut = size ? data[0] % (size + 1) : 0;
    const size_t na = run_filter(prompt, s, size, size, a, &eog_a);
    const size_t nb = run_filter(prompt, s, size, cut, b, &eog_b);
    if (na != nb || memcmp(a, b, na) != 0 || eog_a != eog_b) abort();
    free(a);
    free(b);
    return 0;
}

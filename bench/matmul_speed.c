/* One matmul of the builtin engine's kernels, timed in thread CPU time (so
 * that other load on the machine does not count): a random weight of
 * N_OUT x N_IN in TYPE, N_TOK activation rows, one thread, the given
 * kernel families back to back. A developer tool for kernel work.
 *
 * Usage: matmul_speed TYPE N_IN N_OUT N_TOK [REPS]   (TYPE: q4_0 q8_0 q4_K q6_K ...;
 * make bench-kernels)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/ops.h"
#include "melt/engine.h"
#include "melt/quant.h"
#include "melt/types.h"

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: matmul_speed TYPE N_IN N_OUT N_TOK [REPS]\n");
        return 2;
    }
    uint32_t t = 0;
    while (t < 64 && (!melt_type_name(t) || strcmp(melt_type_name(t), argv[1]) != 0)) t++;
    if (t == 64) {
        fprintf(stderr, "matmul_speed: unknown type %s\n", argv[1]);
        return 2;
    }
    const int64_t n_in = strtol(argv[2], NULL, 10), n_out = strtol(argv[3], NULL, 10);
    const int n_tok = (int)strtol(argv[4], NULL, 10), reps = argc > 5 ? (int)strtol(argv[5], NULL, 10) : 5;
    uint64_t rb;
    if (n_in <= 0 || n_out <= 0 || n_tok <= 0 || reps <= 0 || !melt_type_row_bytes(t, (uint64_t)n_in, &rb)) {
        fprintf(stderr, "matmul_speed: bad sizes (N_IN a multiple of %s's block, all > 0)\n", argv[1]);
        return 2;
    }
    uint8_t *wd = malloc(rb * (size_t)n_out);
    float *row = malloc(sizeof(float) * (size_t)n_in * (size_t)(n_tok > 0 ? n_tok : 1));
    uint64_t s = 88172645463325252ull;
    for (int64_t r = 0; r < n_out; r++) {
        for (int64_t i = 0; i < n_in; i++) {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            row[i] = (float)((s >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
        }
        melt_quantize_row_ref(t, row, wd + (size_t)r * rb, n_in);
    }
    if (!wd || !row) {
        fprintf(stderr, "matmul_speed: out of memory\n");
        return 1;
    }
    for (int64_t i = 0; i < n_in * n_tok; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        row[i] = (float)((s >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
    }
    melt_weight w = {.type = t, .n_in = n_in, .n_out = n_out, .row_bytes = rb, .data = wd};
    float *y = malloc(sizeof(float) * (size_t)n_out * (size_t)n_tok), *buf = malloc(sizeof(float) * (size_t)n_in);
    static const int fams[] = {MELT_KERNELS_AVX2, MELT_KERNELS_AVX512};
    static const char *names[] = {"avx2", "avx512"};
    for (int f = 0; f < 2; f++) {
        const melt_ops *ops = melt_ops_select(fams[f]);
        if (!ops) continue;
        const size_t ab = ops->act_row_bytes ? ops->act_row_bytes(t, n_in) : 0;
        void *xq = ab ? malloc(ab * (size_t)n_tok) : NULL;
        if (ab) ops->act_convert(t, row, n_tok, n_in, xq, 0, 1);
        double best = 1e9;
        for (int r = 0; r < reps; r++) {
            const double t0 = cpu_s();
            ops->matmul(&w, row, xq, n_tok, y, buf, 0, 1);
            const double dt = cpu_s() - t0;
            if (dt < best) best = dt;
        }
        printf("%-6s %s %lldx%lld n_tok %d: %.3f ms, %.1f GB/s of weights, %.2f G MAC/s\n", names[f], argv[1],
               (long long)n_out, (long long)n_in, n_tok, best * 1e3, (double)rb * n_out / best * 1e-9,
               (double)n_in * n_out * n_tok / best * 1e-9);
        free(xq);
    }
    free(wd);
    free(row);
    free(y);
    free(buf);
    return 0;
}

/* melt — CPU feature detection (runtime, for kernel dispatch and reports). */
#ifndef MELT_CPU_H
#define MELT_CPU_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct melt_cpu_features {
    bool sse3, ssse3, avx, avx2, fma, f16c;
    bool avx512f, avx512bw, avx512vl, avx512vnni, avx_vnni;
    bool neon, dotprod, i8mm, fp16_arith, sve;
} melt_cpu_features;

/* Features of the CPU this process runs on (detected once, cached). */
const melt_cpu_features *melt_cpu_detect(void);

/* Space-separated names of the features present ("AVX2 FMA F16C ..."),
 * written to buf; returns buf. */
char *melt_cpu_features_str(const melt_cpu_features *f, char *buf, size_t n);

/* CPU model name ("AMD EPYC 7B13" ...) into buf; "unknown" if not found. */
char *melt_cpu_model_name(char *buf, size_t n);

#ifdef __cplusplus
}
#endif
#endif

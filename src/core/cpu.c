#include "melt/cpu.h"

#include <stdio.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static unsigned long long read_xcr0(void)
{
    unsigned int lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}

static void detect(melt_cpu_features *f)
{
    unsigned int a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return;
    f->sse3 = c & bit_SSE3;
    f->ssse3 = c & bit_SSSE3;
    f->fma = c & bit_FMA;
    f->f16c = c & bit_F16C;
    bool osxsave = c & bit_OSXSAVE;
    bool avx_cpu = c & bit_AVX;
    /* The OS must save YMM (and ZMM) state or the instructions fault. */
    unsigned long long xcr0 = osxsave ? read_xcr0() : 0;
    bool ymm_ok = (xcr0 & 0x6) == 0x6;
    bool zmm_ok = (xcr0 & 0xe6) == 0xe6;
    f->avx = avx_cpu && ymm_ok;
    if (!f->avx) {
        f->fma = f->f16c = false;
    }
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
        f->avx2 = f->avx && (b & bit_AVX2);
        f->avx512f = zmm_ok && (b & bit_AVX512F);
        f->avx512bw = f->avx512f && (b & bit_AVX512BW);
        f->avx512vl = f->avx512f && (b & bit_AVX512VL);
        f->avx512vnni = f->avx512f && (c & bit_AVX512VNNI);
    }
    if (__get_cpuid_count(7, 1, &a, &b, &c, &d))
        f->avx_vnni = f->avx && (a & (1u << 4));
}
#elif defined(__aarch64__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif
#ifndef HWCAP_ASIMDHP
#define HWCAP_ASIMDHP (1 << 10)
#endif
#ifndef HWCAP_SVE
#define HWCAP_SVE (1 << 22)
#endif
#ifndef HWCAP2_I8MM
#define HWCAP2_I8MM (1 << 13)
#endif

static void detect(melt_cpu_features *f)
{
    unsigned long hw = getauxval(AT_HWCAP), hw2 = getauxval(AT_HWCAP2);
    f->neon = true; /* mandatory on AArch64 */
    f->dotprod = hw & HWCAP_ASIMDDP;
    f->fp16_arith = hw & HWCAP_ASIMDHP;
    f->sve = hw & HWCAP_SVE;
    f->i8mm = hw2 & HWCAP2_I8MM;
}
#else
static void detect(melt_cpu_features *f) { (void)f; }
#endif

const melt_cpu_features *melt_cpu_detect(void)
{
    /* Idempotent: concurrent first calls compute the same values. */
    static melt_cpu_features cached;
    static int done;
    if (!__atomic_load_n(&done, __ATOMIC_ACQUIRE)) {
        melt_cpu_features f = {0};
        detect(&f);
        cached = f;
        __atomic_store_n(&done, 1, __ATOMIC_RELEASE);
    }
    return &cached;
}

char *melt_cpu_features_str(const melt_cpu_features *f, char *buf, size_t n)
{
    static const struct { size_t off; const char *name; } names[] = {
#define F(field, label) {offsetof(melt_cpu_features, field), label}
        F(sse3, "SSE3"), F(ssse3, "SSSE3"), F(avx, "AVX"), F(avx2, "AVX2"),
        F(fma, "FMA"), F(f16c, "F16C"), F(avx512f, "AVX512F"),
        F(avx512bw, "AVX512BW"), F(avx512vl, "AVX512VL"),
        F(avx512vnni, "AVX512_VNNI"), F(avx_vnni, "AVX_VNNI"), F(neon, "NEON"),
        F(dotprod, "DOTPROD"), F(i8mm, "I8MM"), F(fp16_arith, "FP16"),
        F(sve, "SVE"),
#undef F
    };
    size_t used = 0;
    if (n == 0)
        return buf;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (!*((const bool *)((const char *)f + names[i].off)))
            continue;
        int w = snprintf(buf + used, n - used, "%s%s", used ? " " : "", names[i].name);
        if (w < 0 || (size_t)w >= n - used)
            break;
        used += (size_t)w;
    }
    if (used == 0)
        snprintf(buf, n, "none");
    return buf;
}

char *melt_cpu_model_name(char *buf, size_t n)
{
    snprintf(buf, n, "unknown");
    FILE *fp = fopen("/proc/cpuinfo", "r");
    if (!fp)
        return buf;
    char line[512];
    while (fgets(line, sizeof line, fp)) {
        /* x86: "model name"; many ARM kernels: "Hardware" or "CPU part". */
        if (strncmp(line, "model name", 10) == 0 || strncmp(line, "Hardware", 8) == 0) {
            char *colon = strchr(line, ':');
            if (!colon)
                continue;
            colon++;
            while (*colon == ' ' || *colon == '\t')
                colon++;
            colon[strcspn(colon, "\n")] = '\0';
            snprintf(buf, n, "%s", colon);
            break;
        }
    }
    fclose(fp);
    return buf;
}

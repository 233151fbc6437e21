/* nvml probe: Nvidia GPU power, temperature, SM clock, memory, utilization.
 *
 * libnvidia-ml.so.1 is loaded with dlopen at open (melt links nothing of
 * Nvidia's); no library, no driver or no GPU is "not present". NVML ignores
 * the root directory: the probe is only present when root is "/" (a fake
 * tree has no GPU), unless lib=PATH names the library explicitly.
 * Per GPU i, each sample:
 *   nvmlDeviceGetPowerUsage        mW (board power; ~100 ms averaging window
 *                                  on most boards)            -> gpuI_power_mw
 *   nvmlDeviceGetTotalEnergyConsumption  mJ since driver load -> gpuI_energy_uj (Volta+)
 *   nvmlDeviceGetTemperature(GPU)  °C                         -> gpuI_temp (mC)
 *   nvmlDeviceGetClockInfo(SM)     MHz                        -> gpuI_sm_clock_khz
 *   nvmlDeviceGetMemoryInfo        bytes                      -> gpuI_mem_used_bytes
 *   nvmlDeviceGetUtilizationRates  %                          -> gpuI_util_pct
 * A call a GPU does not support is skipped. Cost: a few driver ioctls per GPU
 * (tens of µs). Options: lib=PATH. Build with -DMELT_PROBE_NO_DLOPEN (static
 * agent on a libc without dlopen) to compile it as always absent. */
#include "probes/probe_util.h"

#include <stdlib.h>
#include <string.h>

#ifndef MELT_PROBE_NO_DLOPEN
#include <dlfcn.h>
#endif

#define NVML_MAX_GPUS 16

/* The few NVML types used, as nvml.h declares them. */
typedef struct nvml_device_st *nvml_device;
typedef struct {
    unsigned long long total, free, used;
} nvml_memory;
typedef struct {
    unsigned int gpu, memory;
} nvml_util;
enum { NVML_OK = 0, NVML_TEMPERATURE_GPU = 0, NVML_CLOCK_SM = 1 };

typedef struct {
    void *lib;
    int (*shutdown)(void);
    int (*power)(nvml_device, unsigned int *);
    int (*energy)(nvml_device, unsigned long long *);
    int (*temp)(nvml_device, int, unsigned int *);
    int (*clock)(nvml_device, int, unsigned int *);
    int (*mem)(nvml_device, nvml_memory *);
    int (*util)(nvml_device, nvml_util *);
    unsigned n;
    nvml_device dev[NVML_MAX_GPUS];
} nvml_state;

static void nvml_close(void *st)
{
    nvml_state *s = st;
    if (!s) return;
#ifndef MELT_PROBE_NO_DLOPEN
    if (s->shutdown) s->shutdown();
    if (s->lib) dlclose(s->lib);
#endif
    free(s);
}

#ifndef MELT_PROBE_NO_DLOPEN
/* dlsym returns void *; converting it to a function pointer is what POSIX
 * guarantees to work, memcpy keeps -Wpedantic quiet. */
static int sym(void *lib, const char *name, void *fnptr)
{
    void *p = dlsym(lib, name);
    if (!p) return -1;
    memcpy(fnptr, &p, sizeof p);
    return 0;
}
#endif

static int nvml_open(const char *root, int pid, const char *options, void **out, melt_error *err)
{
    static const char *const known[] = {"lib", NULL};
    int rc = probe_opts_check("nvml", options, known, err);
    if (rc) return rc;
#ifdef MELT_PROBE_NO_DLOPEN
    return melt_errorf(err, MELT_ENOTFOUND, "nvml: built without dlopen");
#else
    char lib[512] = "libnvidia-ml.so.1";
    int explicit_lib = probe_opt(options, "lib", lib, sizeof lib);
    if (!explicit_lib && root && *root && strcmp(root, "/") != 0)
        return melt_errorf(err, MELT_ENOTFOUND, "nvml: not used with a fake root (%s)", root);
    nvml_state *s = calloc(1, sizeof *s);
    if (!s) return melt_errorf(err, MELT_ENOMEM, "nvml: out of memory");
    s->lib = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    if (!s->lib) {
        const char *why = dlerror();
        free(s);
        return melt_errorf(err, MELT_ENOTFOUND, "nvml: cannot load %s (%s)", lib,
                           why ? why : "unknown");
    }
    int (*init)(void) = NULL;
    int (*count)(unsigned int *) = NULL;
    int (*handle)(unsigned int, nvml_device *) = NULL;
    if (sym(s->lib, "nvmlInit_v2", &init) || sym(s->lib, "nvmlShutdown", &s->shutdown) ||
        sym(s->lib, "nvmlDeviceGetCount_v2", &count) ||
        sym(s->lib, "nvmlDeviceGetHandleByIndex_v2", &handle)) {
        s->shutdown = NULL;
        nvml_close(s);
        return melt_errorf(err, MELT_ENOTFOUND, "nvml: %s lacks nvmlInit_v2 and friends", lib);
    }
    /* optional: a missing symbol only drops its key */
    sym(s->lib, "nvmlDeviceGetPowerUsage", &s->power);
    sym(s->lib, "nvmlDeviceGetTotalEnergyConsumption", &s->energy);
    sym(s->lib, "nvmlDeviceGetTemperature", &s->temp);
    sym(s->lib, "nvmlDeviceGetClockInfo", &s->clock);
    sym(s->lib, "nvmlDeviceGetMemoryInfo", &s->mem);
    sym(s->lib, "nvmlDeviceGetUtilizationRates", &s->util);
    int r = init();
    if (r != NVML_OK) {
        s->shutdown = NULL;
        nvml_close(s);
        return melt_errorf(err, MELT_ENOTFOUND, "nvml: nvmlInit_v2 failed (NVML code %d: no driver?)", r);
    }
    unsigned int c = 0;
    if (count(&c) != NVML_OK || c == 0) {
        nvml_close(s);
        return melt_errorf(err, MELT_ENOTFOUND, "nvml: no GPU");
    }
    for (unsigned i = 0; i < c && s->n < NVML_MAX_GPUS; i++)
        if (handle(i, &s->dev[s->n]) == NVML_OK) s->n++;
    if (s->n == 0) {
        nvml_close(s);
        return melt_errorf(err, MELT_ENOTFOUND, "nvml: no GPU handle could be opened");
    }
    *out = s;
    return 0;
#endif
}

static int nvml_sample(void *st, int64_t now_ns, melt_probe_emit_fn emit, void *ctx)
{
    nvml_state *s = st;
    int n = 0;
    char key[96];
    for (unsigned i = 0; i < s->n; i++) {
        nvml_device d = s->dev[i];
        unsigned int u;
        unsigned long long ull;
        nvml_memory m;
        nvml_util ut;
#define EMIT(fmt, v, unit)                                              \
        do {                                                            \
            snprintf(key, sizeof key, "gpu%u_" fmt, i);                 \
            probe_emit(emit, ctx, "nvml", now_ns, key, (double)(v), unit); \
            n++;                                                        \
        } while (0)
        if (s->power && s->power(d, &u) == NVML_OK) EMIT("power_mw", u, "mw");
        if (s->energy && s->energy(d, &ull) == NVML_OK) EMIT("energy_uj", (double)ull * 1000.0, "uj");
        if (s->temp && s->temp(d, NVML_TEMPERATURE_GPU, &u) == NVML_OK) EMIT("temp", (double)u * 1000.0, "mC");
        if (s->clock && s->clock(d, NVML_CLOCK_SM, &u) == NVML_OK) EMIT("sm_clock_khz", (double)u * 1000.0, "khz");
        if (s->mem && s->mem(d, &m) == NVML_OK) EMIT("mem_used_bytes", (double)m.used, "bytes");
        if (s->util && s->util(d, &ut) == NVML_OK) EMIT("util_pct", ut.gpu, "pct");
#undef EMIT
    }
    return n;
}

const melt_probe_ops melt_probe_nvml = {
    .version = MELT_PROBE_API_VERSION,
    .name = "nvml",
    .description = "Nvidia GPU power (mW), energy (µJ), temperature (mC), SM clock (kHz), "
                   "memory used (bytes), utilization %; libnvidia-ml.so.1 via dlopen; "
                   "a few driver calls per GPU",
    .default_hz = 10.0,
    .open = nvml_open,
    .sample = nvml_sample,
    .close = nvml_close,
};

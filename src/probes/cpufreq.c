/* cpufreq probe: frequency of every cpufreq policy, and throttling.
 *
 *   /sys/devices/system/cpu/cpufreq/policyN/scaling_cur_freq   kHz, every sample
 *   /sys/devices/system/cpu/cpufreq/policyN/scaling_max_freq   kHz, every sample
 *   /sys/devices/system/cpu/cpufreq/policyN/cpuinfo_{min,max}_freq  kHz, read at open
 *   /sys/devices/system/cpu/cpufreq/policyN/related_cpus       CPUs of the policy
 *   /proc/stat                                                 their busy time
 *
 * Throttle (docs/probes.md): a policy is throttled at a sample when its CPUs
 * were busy (mean busy >= busy_pct, default 90, over the interval since the
 * previous sample) and either its scaling_max_freq is below cpuinfo_max_freq
 * (a thermal or power cap) or its current frequency is below cur_pct
 * (default 90) percent of cpuinfo_max_freq. Without a busy figure (first
 * sample, no /proc/stat) only the cap counts. Options: busy_pct=N, cur_pct=N. */
#include "probes/probe_util.h"

#include <stdlib.h>
#include <string.h>

#define CPUFREQ_MAX_POLICIES 64
#define CPUFREQ_MAX_CPUS 1024
#define CPUFREQ_STAT_CAP 65536

typedef struct {
    int id;
    char cur_path[512], smax_path[512];
    int64_t min_khz, max_khz;
    int cpus[CPUFREQ_MAX_CPUS / 16];    /* related CPUs (first 64) */
    int n_cpus;
} cpufreq_policy;

typedef struct {
    uint64_t busy, total;
    int valid;
} cpufreq_ticks;

typedef struct {
    int n;
    cpufreq_policy *p;
    int busy_pct, cur_pct;
    char stat_path[512];
    char *buf;                  /* CPUFREQ_STAT_CAP bytes for /proc/stat */
    cpufreq_ticks *prev;        /* per CPU */
    cpufreq_ticks *now;
    int n_slots;
} cpufreq_state;

static void cpufreq_close(void *st)
{
    cpufreq_state *s = st;
    if (!s) return;
    free(s->p);
    free(s->buf);
    free(s->prev);
    free(s->now);
    free(s);
}

/* "0 1 2 3" or "0-3" or "0-3,6" into cpus. */
static int parse_cpu_list(const char *text, int *cpus, int cap)
{
    int n = 0;
    const char *p = text;
    while (*p && n < cap) {
        while (*p == ' ' || *p == ',' || *p == '\n' || *p == '\t') p++;
        if (!*p) break;
        int64_t a, b;
        if (probe_parse_i64(p, &p, &a) || a < 0 || a >= CPUFREQ_MAX_CPUS) return n;
        b = a;
        if (*p == '-' && (probe_parse_i64(p + 1, &p, &b) || b < a || b >= CPUFREQ_MAX_CPUS))
            return n;
        for (int64_t c = a; c <= b && n < cap; c++) cpus[n++] = (int)c;
    }
    return n;
}

static int opt_int(const char *options, const char *key, int def, int *out, melt_error *err)
{
    char v[32];
    *out = def;
    if (!probe_opt(options, key, v, sizeof v)) return 0;
    int64_t x;
    const char *end;
    if (probe_parse_i64(v, &end, &x) || *end || x < 0 || x > 100)
        return melt_errorf(err, MELT_EINVAL, "cpufreq: option %s=%s is not 0..100", key, v);
    *out = (int)x;
    return 0;
}

static int cpufreq_open(const char *root, int pid, const char *options, void **out,
                        melt_error *err)
{
    static const char *const known[] = {"busy_pct", "cur_pct", NULL};
    int rc = probe_opts_check("cpufreq", options, known, err);
    if (rc) return rc;
    int busy_pct, cur_pct;
    if ((rc = opt_int(options, "busy_pct", 90, &busy_pct, err)) ||
        (rc = opt_int(options, "cur_pct", 90, &cur_pct, err)))
        return rc;
    char dir[512];
    if (probe_path(dir, sizeof dir, root, "/sys/devices/system/cpu/cpufreq"))
        return melt_errorf(err, MELT_EINVAL, "cpufreq: root path too long");
    int idx[CPUFREQ_MAX_POLICIES];
    int n = probe_list_numbered(dir, "policy", idx, CPUFREQ_MAX_POLICIES);
    if (n <= 0) return melt_errorf(err, MELT_ENOTFOUND, "cpufreq: no policies in %s", dir);
    cpufreq_state *s = calloc(1, sizeof *s);
    if (s) s->p = calloc((size_t)n, sizeof *s->p);
    if (!s || !s->p) {
        cpufreq_close(s);
        return melt_errorf(err, MELT_ENOMEM, "cpufreq: out of memory");
    }
    s->busy_pct = busy_pct;
    s->cur_pct = cur_pct;
    int max_cpu = -1;
    for (int i = 0; i < n; i++) {
        cpufreq_policy *p = &s->p[s->n];
        char path[512], text[512];
        const char *base = "/sys/devices/system/cpu/cpufreq/policy";
        p->id = idx[i];
        if (probe_path(p->cur_path, sizeof p->cur_path, root, "%s%d/scaling_cur_freq", base, p->id) ||
            probe_path(p->smax_path, sizeof p->smax_path, root, "%s%d/scaling_max_freq", base, p->id))
            continue;
        if (!probe_exists(p->cur_path)) {   /* cpuinfo_cur_freq is root-only; try it */
            if (probe_path(p->cur_path, sizeof p->cur_path, root, "%s%d/cpuinfo_cur_freq", base,
                           p->id) || !probe_exists(p->cur_path))
                continue;
        }
        p->min_khz = p->max_khz = -1;
        if (!probe_path(path, sizeof path, root, "%s%d/cpuinfo_min_freq", base, p->id))
            if (probe_read_i64(path, &p->min_khz) || p->min_khz < 0) p->min_khz = -1;
        if (!probe_path(path, sizeof path, root, "%s%d/cpuinfo_max_freq", base, p->id))
            if (probe_read_i64(path, &p->max_khz) || p->max_khz <= 0) p->max_khz = -1;
        if (!probe_path(path, sizeof path, root, "%s%d/related_cpus", base, p->id) &&
            probe_read(path, text, sizeof text) >= 0)
            p->n_cpus = parse_cpu_list(text, p->cpus, (int)(sizeof p->cpus / sizeof p->cpus[0]));
        for (int c = 0; c < p->n_cpus; c++)
            if (p->cpus[c] > max_cpu) max_cpu = p->cpus[c];
        s->n++;
    }
    if (s->n == 0) {
        cpufreq_close(s);
        return melt_errorf(err, MELT_ENOTFOUND, "cpufreq: no readable policy in %s", dir);
    }
    if (max_cpu >= 0 && !probe_path(s->stat_path, sizeof s->stat_path, root, "/proc/stat") &&
        probe_exists(s->stat_path)) {
        s->n_slots = max_cpu + 1;
        s->buf = malloc(CPUFREQ_STAT_CAP);
        s->prev = calloc((size_t)s->n_slots, sizeof *s->prev);
        s->now = calloc((size_t)s->n_slots, sizeof *s->now);
        if (!s->buf || !s->prev || !s->now) {
            cpufreq_close(s);
            return melt_errorf(err, MELT_ENOMEM, "cpufreq: out of memory");
        }
    }
    *out = s;
    return 0;
}

/* Fill s->now from /proc/stat's cpuN lines. */
static void read_ticks(cpufreq_state *s)
{
    for (int i = 0; i < s->n_slots; i++) s->now[i].valid = 0;
    long r = probe_read(s->stat_path, s->buf, CPUFREQ_STAT_CAP);
    if (r < 0) return;
    for (const char *line = s->buf; line && *line;) {
        const char *nl = strchr(line, '\n');
        if (!nl && r == CPUFREQ_STAT_CAP - 1) break;
        if (strncmp(line, "cpu", 3) != 0) break;
        int64_t cpu, f[8] = {0};
        const char *p = line + 3;
        if (!probe_parse_i64(p, &p, &cpu) && cpu >= 0 && cpu < s->n_slots && *p == ' ') {
            int nf = 0;
            for (; nf < 8; nf++) {
                const char *q = p;
                while (*q == ' ') q++;
                if (*q == '\n' || !*q) break;
                if (probe_parse_i64(q, &p, &f[nf]) || f[nf] < 0) break;
            }
            if (nf >= 4) {
                uint64_t t = 0;
                for (int i = 0; i < nf; i++) t += (uint64_t)f[i];
                s->now[cpu].total = t;
                s->now[cpu].busy = t - (uint64_t)f[3] - (nf > 4 ? (uint64_t)f[4] : 0);
                s->now[cpu].valid = 1;
            }
        }
        line = nl ? nl + 1 : NULL;
    }
}

static int cpufreq_sample(void *st, int64_t now_ns, melt_probe_emit_fn emit, void *ctx)
{
    cpufreq_state *s = st;
    int n = 0, any_throttled = 0, any_known = 0;
    char key[96];
    if (s->buf) read_ticks(s);
    for (int i = 0; i < s->n; i++) {
        cpufreq_policy *p = &s->p[i];
        int64_t cur = -1, smax = -1;
        if (probe_read_i64(p->cur_path, &cur) || cur <= 0) cur = -1;
        if (probe_read_i64(p->smax_path, &smax) || smax <= 0) smax = -1;
#define EMIT(suffix, v, unit)                                             \
        do {                                                              \
            snprintf(key, sizeof key, "policy%d_" suffix, p->id);         \
            probe_emit(emit, ctx, "cpufreq", now_ns, key, (double)(v), unit); \
            n++;                                                          \
        } while (0)
        if (cur >= 0) EMIT("cur_khz", cur, "khz");
        if (smax >= 0) EMIT("scaling_max_khz", smax, "khz");
        if (p->min_khz >= 0) EMIT("min_khz", p->min_khz, "khz");
        if (p->max_khz > 0) EMIT("max_khz", p->max_khz, "khz");
        double busy = -1;
        if (s->buf && p->n_cpus > 0) {
            uint64_t db = 0, dt = 0;
            int ok = 0;
            for (int c = 0; c < p->n_cpus; c++) {
                const cpufreq_ticks *a = &s->prev[p->cpus[c]], *b = &s->now[p->cpus[c]];
                if (a->valid && b->valid && b->total >= a->total && b->busy >= a->busy) {
                    db += b->busy - a->busy;
                    dt += b->total - a->total;
                    ok = 1;
                }
            }
            if (ok && dt > 0) {
                busy = 100.0 * (double)db / (double)dt;
                if (busy > 100.0) busy = 100.0;
                EMIT("busy_pct", busy, "pct");
            }
        }
        if (p->max_khz > 0 && (cur > 0 || smax > 0)) {
            int capped = smax > 0 && smax < p->max_khz;
            int slow = cur > 0 && (double)cur < (double)p->max_khz * s->cur_pct / 100.0;
            int thr = busy < 0 ? capped : busy >= s->busy_pct && (capped || slow);
            EMIT("throttled", thr, "bool");
            any_throttled |= thr;
            any_known = 1;
        }
#undef EMIT
    }
    if (s->buf) {
        cpufreq_ticks *t = s->prev;
        s->prev = s->now;
        s->now = t;
    }
    if (any_known) {
        probe_emit(emit, ctx, "cpufreq", now_ns, "throttled", any_throttled, "bool");
        n++;
    }
    return n;
}

const melt_probe_ops melt_probe_cpufreq = {
    .version = MELT_PROBE_API_VERSION,
    .name = "cpufreq",
    .description = "per-policy current, scaling max and hardware min/max frequency (kHz), "
                   "busy % and throttled flag; /sys/devices/system/cpu/cpufreq/policy*/, "
                   "/proc/stat; two reads per policy plus one of /proc/stat",
    .default_hz = 10.0,
    .open = cpufreq_open,
    .sample = cpufreq_sample,
    .close = cpufreq_close,
};

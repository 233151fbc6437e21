/* procfs probe: CPU time and memory of the target process, system CPU busy.
 *
 *   /proc/PID/stat    utime + stime (fields 14, 15; clock ticks) -> proc_cpu_ns
 *   /proc/PID/status  VmRSS, VmHWM (kB)                           -> rss_bytes, hwm_bytes
 *   /proc/stat        cpu / cpuN lines (ticks)                    -> cpu_busy_pct, cpuN_busy_pct
 *
 * Busy percentages and proc_cpu_pct are deltas between two samples, so the
 * first sample has none. Resolution: one clock tick (10 ms with USER_HZ=100)
 * for CPU times, 4 KiB pages for memory. Cost: three small reads per sample. */
#include "probes/probe_util.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PROCFS_STAT_CAP 65536   /* the cpu lines come first; enough for ~900 CPUs */
#define PROCFS_MAX_CPUS 1024

typedef struct {
    uint64_t busy, total;
    int valid;
} cpu_ticks;

typedef struct {
    int pid;
    int percpu;
    int64_t tick_ns;
    char stat_path[512], status_path[512], sys_path[512];
    int has_proc, has_sys;
    int n_cpu;              /* slots: [0] = aggregate, [1 + N] = cpuN */
    cpu_ticks *prev;
    int64_t prev_cpu_ns, prev_now_ns;
    char *buf;              /* PROCFS_STAT_CAP bytes, reused by every read */
} procfs_state;

static const char *const procfs_opts[] = {"percpu", NULL};

static void procfs_close(void *st)
{
    procfs_state *s = st;
    if (!s) return;
    free(s->prev);
    free(s->buf);
    free(s);
}

/* Parse "cpu[N] user nice system idle iowait irq softirq steal ..." at line.
 * *slot = 0 for "cpu", 1 + N for "cpuN"; -1 if not a cpu line. */
static int parse_cpu_line(const char *line, int *slot, uint64_t *busy, uint64_t *total)
{
    if (strncmp(line, "cpu", 3) != 0) return -1;
    const char *p = line + 3;
    int64_t n = -1;
    if (*p >= '0' && *p <= '9') {
        if (probe_parse_i64(p, &p, &n) || n >= PROCFS_MAX_CPUS) return -1;
    }
    if (*p != ' ') return -1;
    int64_t f[8] = {0};
    int nf = 0;
    for (; nf < 8; nf++) {
        const char *q = p;
        while (*q == ' ') q++;
        if (*q == '\n' || *q == '\0') break;
        if (probe_parse_i64(q, &p, &f[nf]) || f[nf] < 0) return -1;
    }
    if (nf < 4) return -1;          /* user nice system idle at least */
    uint64_t t = 0;
    for (int i = 0; i < nf; i++) t += (uint64_t)f[i];   /* guest is inside user */
    *total = t;
    *busy = t - (uint64_t)f[3] - (nf > 4 ? (uint64_t)f[4] : 0);  /* minus idle, iowait */
    *slot = (int)(n + 1);
    return 0;
}

static int procfs_open(const char *root, int pid, const char *options, void **out,
                       melt_error *err)
{
    int rc = probe_opts_check("procfs", options, procfs_opts, err);
    if (rc) return rc;
    procfs_state *s = calloc(1, sizeof *s);
    if (!s) return melt_errorf(err, MELT_ENOMEM, "procfs: out of memory");
    s->pid = pid;
    char v[16];
    s->percpu = probe_opt(options, "percpu", v, sizeof v) ? strcmp(v, "0") != 0 : 1;
    long hz = sysconf(_SC_CLK_TCK);
    s->tick_ns = 1000000000LL / (hz > 0 ? hz : 100);
    s->prev_cpu_ns = -1;
    if (probe_path(s->sys_path, sizeof s->sys_path, root, "/proc/stat") ||
        (pid > 0 && (probe_path(s->stat_path, sizeof s->stat_path, root, "/proc/%d/stat", pid) ||
                     probe_path(s->status_path, sizeof s->status_path, root,
                                "/proc/%d/status", pid)))) {
        procfs_close(s);
        return melt_errorf(err, MELT_EINVAL, "procfs: root path too long");
    }
    s->has_sys = probe_exists(s->sys_path);
    s->has_proc = pid > 0 && probe_exists(s->stat_path);
    if (pid > 0 && !s->has_proc) {
        melt_errorf(err, MELT_ENOTFOUND, "procfs: no process %d (%s absent)", pid, s->stat_path);
        procfs_close(s);
        return MELT_ENOTFOUND;
    }
    if (!s->has_sys && !s->has_proc) {
        melt_errorf(err, MELT_ENOTFOUND, "procfs: %s absent", s->sys_path);
        procfs_close(s);
        return MELT_ENOTFOUND;
    }
    s->buf = malloc(PROCFS_STAT_CAP);
    if (!s->buf) {
        procfs_close(s);
        return melt_errorf(err, MELT_ENOMEM, "procfs: out of memory");
    }
    if (s->has_sys) {
        /* size the per-CPU table from the cpus present now (max index + 1) */
        int max_slot = 0;
        if (probe_read(s->sys_path, s->buf, PROCFS_STAT_CAP) >= 0) {
            for (char *line = s->buf; line && *line;) {
                int slot;
                uint64_t b, t;
                if (parse_cpu_line(line, &slot, &b, &t) == 0 && slot > max_slot) max_slot = slot;
                char *nl = strchr(line, '\n');
                line = nl ? nl + 1 : NULL;
            }
        }
        s->n_cpu = max_slot + 1;
        s->prev = calloc((size_t)s->n_cpu, sizeof *s->prev);
        if (!s->prev) {
            procfs_close(s);
            return melt_errorf(err, MELT_ENOMEM, "procfs: out of memory");
        }
    }
    *out = s;
    return 0;
}

/* "Key:   1234 kB" in status text -> bytes. */
static int status_kb(const char *text, const char *key, int64_t *bytes)
{
    size_t kl = strlen(key);
    for (const char *line = text; line && *line;) {
        if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
            int64_t kb;
            const char *end;
            const char *p = line + kl + 1;
            while (*p == ' ' || *p == '\t') p++;
            if (probe_parse_i64(p, &end, &kb) || kb < 0 || kb > INT64_MAX / 1024) return -1;
            *bytes = kb * 1024;
            return 0;
        }
        const char *nl = strchr(line, '\n');
        line = nl ? nl + 1 : NULL;
    }
    return -1;
}

static int sample_proc(procfs_state *s, int64_t now, melt_probe_emit_fn emit, void *ctx)
{
    int n = 0;
    long r = probe_read(s->stat_path, s->buf, 4096);
    if (r < 0) return (int)r;
    /* comm may hold spaces and ')': fields restart after the last ')' */
    char *p = strrchr(s->buf, ')');
    int64_t f[13];
    int nf = 0;
    if (p) {
        const char *q = p + 1;
        while (nf < 13) {
            while (*q == ' ') q++;
            if (!*q || *q == '\n') break;
            if (nf == 0) {                  /* field 3: state, a letter */
                f[nf++] = 0;
                q++;
                continue;
            }
            if (probe_parse_i64(q, &q, &f[nf])) break;
            nf++;
        }
    }
    /* after ')': index 0 = field 3 (state) ... index 11 = utime, 12 = stime */
    if (nf == 13 && f[11] >= 0 && f[12] >= 0 && f[11] < INT64_MAX / 2 / s->tick_ns &&
        f[12] < INT64_MAX / 2 / s->tick_ns) {
        int64_t cpu_ns = (f[11] + f[12]) * s->tick_ns;
        probe_emit(emit, ctx, "procfs", now, "proc_cpu_ns", (double)cpu_ns, "ns");
        n++;
        if (s->prev_cpu_ns >= 0 && now > s->prev_now_ns && cpu_ns >= s->prev_cpu_ns) {
            double pct = 100.0 * (double)(cpu_ns - s->prev_cpu_ns) / (double)(now - s->prev_now_ns);
            probe_emit(emit, ctx, "procfs", now, "proc_cpu_pct", pct, "pct");
            n++;
        }
        s->prev_cpu_ns = cpu_ns;
        s->prev_now_ns = now;
    }
    if (probe_read(s->status_path, s->buf, 8192) >= 0) {
        int64_t b;
        if (status_kb(s->buf, "VmRSS", &b) == 0) {
            probe_emit(emit, ctx, "procfs", now, "rss_bytes", (double)b, "bytes");
            n++;
        }
        if (status_kb(s->buf, "VmHWM", &b) == 0) {
            probe_emit(emit, ctx, "procfs", now, "hwm_bytes", (double)b, "bytes");
            n++;
        }
    }
    return n;
}

static int sample_sys(procfs_state *s, int64_t now, melt_probe_emit_fn emit, void *ctx)
{
    long r = probe_read(s->sys_path, s->buf, PROCFS_STAT_CAP);
    if (r < 0) return (int)r;
    int n = 0;
    for (char *line = s->buf; line && *line;) {
        char *nl = strchr(line, '\n');
        if (!nl && r == PROCFS_STAT_CAP - 1) break;     /* cut by the bound: incomplete */
        int slot;
        uint64_t busy, total;
        if (parse_cpu_line(line, &slot, &busy, &total) == 0 && slot < s->n_cpu) {
            cpu_ticks *pv = &s->prev[slot];
            if (pv->valid && total > pv->total && busy >= pv->busy &&
                (slot == 0 || s->percpu)) {
                double pct = 100.0 * (double)(busy - pv->busy) / (double)(total - pv->total);
                if (pct > 100.0) pct = 100.0;
                char key[32];
                if (slot == 0) snprintf(key, sizeof key, "cpu_busy_pct");
                else snprintf(key, sizeof key, "cpu%d_busy_pct", slot - 1);
                probe_emit(emit, ctx, "procfs", now, key, pct, "pct");
                n++;
            }
            pv->busy = busy;
            pv->total = total;
            pv->valid = 1;
        }
        line = nl ? nl + 1 : NULL;
        if (line && strncmp(line, "cpu", 3) != 0) break;    /* cpu lines are first */
    }
    return n;
}

static int procfs_sample(void *st, int64_t now_ns, melt_probe_emit_fn emit, void *ctx)
{
    procfs_state *s = st;
    int n = 0, rc_proc = 0, rc_sys = 0;
    if (s->has_proc) {
        rc_proc = sample_proc(s, now_ns, emit, ctx);
        if (rc_proc > 0) n += rc_proc;
    }
    if (s->has_sys) {
        rc_sys = sample_sys(s, now_ns, emit, ctx);
        if (rc_sys > 0) n += rc_sys;
    }
    if (s->has_proc && rc_proc < 0) return rc_proc;     /* target gone */
    if (!s->has_proc && rc_sys < 0) return rc_sys;
    return n;
}

const melt_probe_ops melt_probe_procfs = {
    .version = MELT_PROBE_API_VERSION,
    .name = "procfs",
    .description = "target process CPU time (ns, 1 tick = 10 ms), RSS and peak RSS (bytes), "
                   "system and per-CPU busy %; /proc/PID/stat, /proc/PID/status, /proc/stat; "
                   "3 small reads per sample",
    .default_hz = 10.0,
    .open = procfs_open,
    .sample = procfs_sample,
    .close = procfs_close,
};

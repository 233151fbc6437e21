/* rapl probe: Intel/AMD RAPL energy counters through powercap.
 *
 *   /sys/class/powercap/intel-rapl:N[:M]/name                 "package-0", "core", "dram", "psys"
 *   /sys/class/powercap/intel-rapl:N[:M]/energy_uj            µJ counter, wraps
 *   /sys/class/powercap/intel-rapl:N[:M]/max_energy_range_uj  the value where it wraps to 0
 *
 * Keys: "<zone>_energy_uj" = energy since the first sample, wrap-corrected
 * (cur < prev means one wrap: delta = max_energy_range_uj - prev + cur), and
 * "<zone>_power_mw" = that delta over the time between samples. Subzones are
 * named after their parent: "package-0.core". Subzones are part of their
 * package: do not add them up. Sample at least once per wrap period
 * (max_energy_range_uj / power: about 40 minutes at 100 W for the common
 * 262 kJ range): a second wrap inside one interval cannot be seen.
 * energy_uj is readable by root only since Linux 5.10 (CVE-2020-8694): a
 * counter we cannot read makes the probe "not present".
 * Resolution: the RAPL energy unit (~61 µJ), updated every ~1 ms.
 * Cost: one read per zone. */
#include "probes/probe_util.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#define RAPL_MAX_ZONES 32

typedef struct {
    char key[64];
    char path[512];
    int64_t max_uj;
    int64_t prev_uj;
    int64_t prev_ns;
    uint64_t total_uj;
    int valid;
} rapl_zone;

typedef struct {
    int n;
    rapl_zone z[RAPL_MAX_ZONES];
} rapl_state;

/* "intel-rapl:1:0" -> a=1, b=0 (b=-1 for a package). */
static int parse_zone(const char *name, int *a, int *b)
{
    const char *pre = "intel-rapl:";
    if (strncmp(name, pre, strlen(pre)) != 0) return -1;
    const char *p = name + strlen(pre);
    int64_t x, y = -1;
    if (probe_parse_i64(p, &p, &x) || x < 0 || x > 1024) return -1;
    if (*p == ':' && (probe_parse_i64(p + 1, &p, &y) || y < 0 || y > 1024)) return -1;
    if (*p) return -1;
    *a = (int)x;
    *b = (int)y;
    return 0;
}

static int rapl_open(const char *root, int pid, const char *options, void **out, melt_error *err)
{
    static const char *const known[] = {NULL};
    int rc = probe_opts_check("rapl", options, known, err);
    if (rc) return rc;
    char dir[512];
    if (probe_path(dir, sizeof dir, root, "/sys/class/powercap"))
        return melt_errorf(err, MELT_EINVAL, "rapl: root path too long");
    DIR *d = opendir(dir);
    if (!d) return melt_errorf(err, MELT_ENOTFOUND, "rapl: %s absent", dir);
    /* collect (a, b) pairs, then sort so packages come before their subzones */
    int zs[RAPL_MAX_ZONES][2], nz = 0;
    struct dirent *e;
    while ((e = readdir(d)) && nz < RAPL_MAX_ZONES) {
        int a, b;
        if (parse_zone(e->d_name, &a, &b) == 0) {
            zs[nz][0] = a;
            zs[nz][1] = b;
            nz++;
        }
    }
    closedir(d);
    for (int i = 1; i < nz; i++)
        for (int j = i; j > 0 && (zs[j - 1][0] > zs[j][0] ||
                                  (zs[j - 1][0] == zs[j][0] && zs[j - 1][1] > zs[j][1])); j--) {
            int t0 = zs[j][0], t1 = zs[j][1];
            zs[j][0] = zs[j - 1][0];
            zs[j][1] = zs[j - 1][1];
            zs[j - 1][0] = t0;
            zs[j - 1][1] = t1;
        }
    rapl_state *s = calloc(1, sizeof *s);
    if (!s) return melt_errorf(err, MELT_ENOMEM, "rapl: out of memory");
    int denied = 0;
    for (int i = 0; i < nz; i++) {
        int a = zs[i][0], b = zs[i][1];
        char zdir[600], path[700], name[48], pname[48];
        if (b < 0) snprintf(zdir, sizeof zdir, "%s/intel-rapl:%d", dir, a);
        else snprintf(zdir, sizeof zdir, "%s/intel-rapl:%d:%d", dir, a, b);
        rapl_zone *z = &s->z[s->n];
        memset(z, 0, sizeof *z);
        snprintf(path, sizeof path, "%s/name", zdir);
        if (probe_read_line(path, name, sizeof name) || !name[0])
            snprintf(name, sizeof name, "%s", b < 0 ? "package" : "sub");
        probe_sanitize(name, sizeof name, name);
        if (b >= 0) {
            snprintf(path, sizeof path, "%s/intel-rapl:%d/name", dir, a);
            if (probe_read_line(path, pname, sizeof pname) || !pname[0])
                snprintf(pname, sizeof pname, "package-%d", a);
            probe_sanitize(pname, sizeof pname, pname);
            if (probe_fmt(z->key, sizeof z->key, "%s.%s", pname, name)) continue;
        } else {
            snprintf(z->key, sizeof z->key, "%s", name);
        }
        snprintf(path, sizeof path, "%s/max_energy_range_uj", zdir);
        if (probe_read_i64(path, &z->max_uj) || z->max_uj <= 0) continue;
        int w = snprintf(z->path, sizeof z->path, "%s/energy_uj", zdir);
        if (w < 0 || (size_t)w >= sizeof z->path) continue;
        int64_t v;
        rc = probe_read_i64(z->path, &v);
        if (rc == MELT_EIO) denied++;
        if (rc) continue;
        s->n++;
    }
    if (s->n == 0) {
        free(s);
        if (denied)
            return melt_errorf(err, MELT_ENOTFOUND,
                               "rapl: %s/intel-rapl:*/energy_uj not readable (root only since Linux 5.10)",
                               dir);
        return melt_errorf(err, MELT_ENOTFOUND, "rapl: no intel-rapl zones in %s", dir);
    }
    *out = s;
    return 0;
}

static int rapl_sample(void *st, int64_t now_ns, melt_probe_emit_fn emit, void *ctx)
{
    rapl_state *s = st;
    int n = 0;
    char key[96];
    for (int i = 0; i < s->n; i++) {
        rapl_zone *z = &s->z[i];
        int64_t uj;
        if (probe_read_i64(z->path, &uj) || uj < 0 || uj > z->max_uj) continue;
        if (z->valid) {
            int64_t d = uj >= z->prev_uj ? uj - z->prev_uj : (z->max_uj - z->prev_uj) + uj;
            z->total_uj += (uint64_t)d;
            if (now_ns > z->prev_ns) {
                snprintf(key, sizeof key, "%s_power_mw", z->key);
                probe_emit(emit, ctx, "rapl", now_ns, key,
                           (double)d * 1e6 / (double)(now_ns - z->prev_ns), "mw");
                n++;
            }
        }
        snprintf(key, sizeof key, "%s_energy_uj", z->key);
        probe_emit(emit, ctx, "rapl", now_ns, key, (double)z->total_uj, "uj");
        n++;
        z->prev_uj = uj;
        z->prev_ns = now_ns;
        z->valid = 1;
    }
    return n;
}

static void rapl_close(void *st) { free(st); }

const melt_probe_ops melt_probe_rapl = {
    .version = MELT_PROBE_API_VERSION,
    .name = "rapl",
    .description = "RAPL energy per powercap zone (µJ since first sample, wrap-corrected) and "
                   "power between samples (mW); /sys/class/powercap/intel-rapl:*/energy_uj; "
                   "one read per zone; needs root on Linux >= 5.10",
    .default_hz = 10.0,
    .open = rapl_open,
    .sample = rapl_sample,
    .close = rapl_close,
};

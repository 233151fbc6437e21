/* power_supply probe: battery power on Android phones and Linux laptops.
 *
 *   /sys/class/power_supply/<supply>/current_now   µA (mA with units=milli)
 *   /sys/class/power_supply/<supply>/voltage_now   µV (mV with units=milli)
 *   /sys/class/power_supply/<supply>/status        "Discharging", "Charging", "Full", ...
 *   /sys/class/power_supply/<supply>/capacity      percent
 *   /sys/class/power_supply/<supply>/temp          tenths of a degree C
 *   /sys/class/power_supply/<supply>/power_now     µW, used when current_now is absent
 *
 * Power = current × voltage, reported so that positive means the battery is
 * discharging (the device draws from it). The sign of current_now differs by
 * vendor: negative while discharging on many Qualcomm/Pixel kernels, positive
 * on others. Option sign=auto (default) learns it from the first sample whose
 * status is "Discharging" (and assumes discharge-negative until then);
 * sign=discharge-negative / discharge-positive fixes it. supply=NAME picks the
 * supply (default "battery", else the first of type "Battery").
 * Resolution: as the fuel gauge updates (often 1 s or slower; the value is an
 * average on some gauges). Cost: four to five small reads per sample. */
#include "probes/probe_util.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char prefix[48];
    char cur[512], volt[512], status[512], cap[512], temp[512], pnow[512];
    int sign;           /* +1 discharge-positive, -1 discharge-negative, 0 unknown */
    int sign_fixed;
    int64_t scale;      /* to micro units: 1 or 1000 */
} psu_state;

static int find_battery(const char *root, char *name, size_t n)
{
    char dir[512], path[512], type[32];
    if (probe_path(dir, sizeof dir, root, "/sys/class/power_supply")) return -1;
    if (!probe_path(path, sizeof path, root, "/sys/class/power_supply/battery") &&
        probe_is_dir(path)) {
        snprintf(name, n, "battery");
        return 0;
    }
    DIR *d = opendir(dir);
    if (!d) return -1;
    struct dirent *e;
    int found = -1;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (probe_path(path, sizeof path, root, "/sys/class/power_supply/%s/type", e->d_name))
            continue;
        if (probe_read_line(path, type, sizeof type) == 0 && strcmp(type, "Battery") == 0) {
            found = probe_fmt(name, n, "%s", e->d_name) ? -1 : 0;
            break;
        }
    }
    closedir(d);
    return found;
}

static int psu_open(const char *root, int pid, const char *options, void **out, melt_error *err)
{
    static const char *const known[] = {"supply", "sign", "units", NULL};
    int rc = probe_opts_check("power_supply", options, known, err);
    if (rc) return rc;
    char supply[64] = "", sign[32] = "auto", units[16] = "micro";
    probe_opt(options, "sign", sign, sizeof sign);
    probe_opt(options, "units", units, sizeof units);
    int fixed_sign = 0;
    if (strcmp(sign, "discharge-negative") == 0) fixed_sign = -1;
    else if (strcmp(sign, "discharge-positive") == 0) fixed_sign = 1;
    else if (strcmp(sign, "auto") != 0)
        return melt_errorf(err, MELT_EINVAL,
                           "power_supply: sign=%s (auto|discharge-negative|discharge-positive)", sign);
    if (strcmp(units, "micro") != 0 && strcmp(units, "milli") != 0)
        return melt_errorf(err, MELT_EINVAL, "power_supply: units=%s (micro|milli)", units);
    if (probe_opt(options, "supply", supply, sizeof supply)) {
        if (!supply[0] || strchr(supply, '/') || strcmp(supply, "..") == 0)
            return melt_errorf(err, MELT_EINVAL, "power_supply: bad supply name '%s'", supply);
    } else if (find_battery(root, supply, sizeof supply)) {
        return melt_errorf(err, MELT_ENOTFOUND, "power_supply: no battery under %s/sys/class/power_supply",
                           root && strcmp(root, "/") ? root : "");
    }
    psu_state *s = calloc(1, sizeof *s);
    if (!s) return melt_errorf(err, MELT_ENOMEM, "power_supply: out of memory");
    const char *b = "/sys/class/power_supply/";
    if (probe_path(s->cur, sizeof s->cur, root, "%s%s/current_now", b, supply) ||
        probe_path(s->volt, sizeof s->volt, root, "%s%s/voltage_now", b, supply) ||
        probe_path(s->status, sizeof s->status, root, "%s%s/status", b, supply) ||
        probe_path(s->cap, sizeof s->cap, root, "%s%s/capacity", b, supply) ||
        probe_path(s->temp, sizeof s->temp, root, "%s%s/temp", b, supply) ||
        probe_path(s->pnow, sizeof s->pnow, root, "%s%s/power_now", b, supply)) {
        free(s);
        return melt_errorf(err, MELT_EINVAL, "power_supply: root path too long");
    }
    if (!(probe_exists(s->cur) && probe_exists(s->volt)) && !probe_exists(s->pnow)) {
        melt_errorf(err, MELT_ENOTFOUND, "power_supply: %s has neither current_now+voltage_now nor power_now",
                    supply);
        free(s);
        return MELT_ENOTFOUND;
    }
    probe_sanitize(s->prefix, sizeof s->prefix, supply);
    s->sign = fixed_sign;
    s->sign_fixed = fixed_sign != 0;
    s->scale = strcmp(units, "milli") == 0 ? 1000 : 1;
    *out = s;
    return 0;
}

static int psu_sample(void *st, int64_t now_ns, melt_probe_emit_fn emit, void *ctx)
{
    psu_state *s = st;
    int n = 0;
    char key[96], status[32];
    int discharging = -1;
    if (probe_read_line(s->status, status, sizeof status) == 0)
        discharging = strcmp(status, "Discharging") == 0;
    /* |values| beyond 1000 A or 1000 V are garbage, not batteries */
    const int64_t lim = 1000000000LL / s->scale;
    int64_t cur, volt;
    int have_cur = probe_read_i64(s->cur, &cur) == 0 && cur > -lim && cur < lim;
    int have_volt = probe_read_i64(s->volt, &volt) == 0 && volt >= 0 && volt < lim;
    if (have_cur) {
        cur *= s->scale;
        if (!s->sign_fixed && discharging == 1 && cur != 0) {
            s->sign = cur > 0 ? 1 : -1;
            s->sign_fixed = 1;          /* learned once; charging must not flip it */
        }
        int sign = s->sign ? s->sign : -1;
        cur *= sign;                    /* now positive = discharging */
        snprintf(key, sizeof key, "%s_current_ua", s->prefix);
        probe_emit(emit, ctx, "power_supply", now_ns, key, (double)cur, "ua");
        n++;
    }
    if (have_volt) {
        volt *= s->scale;
        snprintf(key, sizeof key, "%s_voltage_uv", s->prefix);
        probe_emit(emit, ctx, "power_supply", now_ns, key, (double)volt, "uv");
        n++;
    }
    snprintf(key, sizeof key, "%s_power_mw", s->prefix);
    if (have_cur && have_volt) {
        probe_emit(emit, ctx, "power_supply", now_ns, key, (double)cur * (double)volt / 1e9, "mw");
        n++;
    } else {
        int64_t uw;
        if (probe_read_i64(s->pnow, &uw) == 0 && uw >= 0 && uw < 1000000000000LL) {
            probe_emit(emit, ctx, "power_supply", now_ns, key, (double)uw / 1000.0, "mw");
            n++;
        }
    }
    int64_t v;
    if (probe_read_i64(s->cap, &v) == 0 && v >= 0 && v <= 100) {
        snprintf(key, sizeof key, "%s_capacity_pct", s->prefix);
        probe_emit(emit, ctx, "power_supply", now_ns, key, (double)v, "pct");
        n++;
    }
    if (probe_read_i64(s->temp, &v) == 0 && v > -2732 && v < 10000) {
        snprintf(key, sizeof key, "%s_temp", s->prefix);
        probe_emit(emit, ctx, "power_supply", now_ns, key, (double)v * 100.0, "mC");
        n++;
    }
    if (discharging >= 0) {
        snprintf(key, sizeof key, "%s_discharging", s->prefix);
        probe_emit(emit, ctx, "power_supply", now_ns, key, discharging, "bool");
        n++;
    }
    return n;
}

static void psu_close(void *st) { free(st); }

const melt_probe_ops melt_probe_power_supply = {
    .version = MELT_PROBE_API_VERSION,
    .name = "power_supply",
    .description = "battery power (mW, positive = discharging), current (µA), voltage (µV), "
                   "capacity %, temperature; /sys/class/power_supply/battery/; "
                   "sign convention auto-detected from status; 4-6 small reads per sample",
    .default_hz = 10.0,
    .open = psu_open,
    .sample = psu_sample,
    .close = psu_close,
};

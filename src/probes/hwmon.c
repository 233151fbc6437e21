/* hwmon probe: per-rail power from the INA3221 monitors of Nvidia Jetson boards.
 *
 * hwmon layout (JetPack 5+, Orin):
 *   /sys/bus/i2c/drivers/ina3221/<dev>/hwmon/hwmonN/inK_label   rail name ("VDD_IN")
 *   .../currK_input   mA      .../inK_input   mV (bus voltage)
 *   -> "<label>_power_mw" = mA × mV / 1000, "<label>_current_ma", "<label>_voltage_mv"
 * iio layout (JetPack 4, Nano/TX2/Xavier):
 *   /sys/bus/i2c/drivers/ina3221x/<dev>/iio:deviceN/rail_name_K, in_powerK_input (mW),
 *   in_currentK_input (mA), in_voltageK_input (mV)
 *
 * Channels labelled "NC" (not connected) are skipped. Resolution: INA3221
 * current LSB 40 µV over the board's shunt (a few mA), bus voltage LSB 8 mV;
 * the chip refreshes every few ms (conversion time × averaging × 3 channels).
 * Cost: two or three reads per rail (i2c traffic happens in the driver). */
#include "probes/probe_util.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#define HWMON_MAX_RAILS 32

typedef struct {
    char label[64];
    char cur[512], volt[512], pow[512];     /* pow: iio only */
} hwmon_rail;

typedef struct {
    int n;
    hwmon_rail r[HWMON_MAX_RAILS];
} hwmon_state;

static void add_hwmon_dir(hwmon_state *s, const char *dir)
{
    char path[768], label[64];
    for (int k = 1; k <= 8 && s->n < HWMON_MAX_RAILS; k++) {
        if (probe_fmt(path, sizeof path, "%s/in%d_label", dir, k)) continue;
        if (probe_read_line(path, label, sizeof label) || !label[0] || strcmp(label, "NC") == 0)
            continue;
        hwmon_rail *r = &s->r[s->n];
        memset(r, 0, sizeof *r);
        if (probe_fmt(r->cur, sizeof r->cur, "%s/curr%d_input", dir, k) ||
            probe_fmt(r->volt, sizeof r->volt, "%s/in%d_input", dir, k) ||
            !probe_exists(r->cur) || !probe_exists(r->volt))
            continue;
        probe_sanitize(r->label, sizeof r->label, label);
        s->n++;
    }
}

static void add_iio_dir(hwmon_state *s, const char *dir)
{
    char path[768], label[64];
    for (int k = 0; k < 8 && s->n < HWMON_MAX_RAILS; k++) {
        if (probe_fmt(path, sizeof path, "%s/rail_name_%d", dir, k)) continue;
        if (probe_read_line(path, label, sizeof label) || !label[0] || strcmp(label, "NC") == 0)
            continue;
        hwmon_rail *r = &s->r[s->n];
        memset(r, 0, sizeof *r);
        if (probe_fmt(r->pow, sizeof r->pow, "%s/in_power%d_input", dir, k) ||
            probe_fmt(r->cur, sizeof r->cur, "%s/in_current%d_input", dir, k) ||
            probe_fmt(r->volt, sizeof r->volt, "%s/in_voltage%d_input", dir, k) ||
            !probe_exists(r->pow))
            continue;
        probe_sanitize(r->label, sizeof r->label, label);
        s->n++;
    }
}

/* For each device dir under drv: each sub (prefix-numbered) dir under dev/mid. */
static void scan_driver(hwmon_state *s, const char *drv, const char *mid, const char *prefix,
                        int iio)
{
    DIR *d = opendir(drv);
    if (!d) return;
    struct dirent *e;
    char names[16][64];
    int nn = 0;
    while ((e = readdir(d)) && nn < 16) {
        if (e->d_name[0] == '.' || strchr(e->d_name, '-') == NULL) continue;   /* "1-0040" */
        if (probe_fmt(names[nn], sizeof names[0], "%s", e->d_name) == 0) nn++;
    }
    closedir(d);
    /* stable order across runs: sort the i2c device names */
    for (int i = 1; i < nn; i++)
        for (int j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            char t[64];
            memcpy(t, names[j], sizeof t);
            memcpy(names[j], names[j - 1], sizeof t);
            memcpy(names[j - 1], t, sizeof t);
        }
    for (int i = 0; i < nn; i++) {
        char base[600], sub[700];
        if (probe_fmt(base, sizeof base, "%s/%s%s", drv, names[i], mid)) continue;
        int idx[8];
        int m = probe_list_numbered(base, prefix, idx, 8);
        for (int j = 0; j < m; j++) {
            if (probe_fmt(sub, sizeof sub, "%s/%s%d", base, prefix, idx[j])) continue;
            if (iio) add_iio_dir(s, sub);
            else add_hwmon_dir(s, sub);
        }
    }
}

static int hwmon_open(const char *root, int pid, const char *options, void **out, melt_error *err)
{
    static const char *const known[] = {NULL};
    int rc = probe_opts_check("hwmon", options, known, err);
    if (rc) return rc;
    hwmon_state *s = calloc(1, sizeof *s);
    if (!s) return melt_errorf(err, MELT_ENOMEM, "hwmon: out of memory");
    char drv[512];
    if (!probe_path(drv, sizeof drv, root, "/sys/bus/i2c/drivers/ina3221"))
        scan_driver(s, drv, "/hwmon", "hwmon", 0);
    if (!probe_path(drv, sizeof drv, root, "/sys/bus/i2c/drivers/ina3221x"))
        scan_driver(s, drv, "", "iio:device", 1);
    if (s->n == 0) {
        free(s);
        return melt_errorf(err, MELT_ENOTFOUND,
                           "hwmon: no INA3221 rails under %s/sys/bus/i2c/drivers/ina3221{,x}",
                           root && strcmp(root, "/") ? root : "");
    }
    *out = s;
    return 0;
}

static int hwmon_sample(void *st, int64_t now_ns, melt_probe_emit_fn emit, void *ctx)
{
    hwmon_state *s = st;
    int n = 0;
    char key[96];
    for (int i = 0; i < s->n; i++) {
        hwmon_rail *r = &s->r[i];
        int64_t ma, mv, mw;
        /* INA3221 full scale is 163.8 mV over the shunt and 26 V on the bus */
        int hc = probe_read_i64(r->cur, &ma) == 0 && ma >= -1000000 && ma <= 1000000;
        int hv = probe_read_i64(r->volt, &mv) == 0 && mv >= 0 && mv <= 1000000;
        if (hc) {
            snprintf(key, sizeof key, "%s_current_ma", r->label);
            probe_emit(emit, ctx, "hwmon", now_ns, key, (double)ma, "ma");
            n++;
        }
        if (hv) {
            snprintf(key, sizeof key, "%s_voltage_mv", r->label);
            probe_emit(emit, ctx, "hwmon", now_ns, key, (double)mv, "mv");
            n++;
        }
        snprintf(key, sizeof key, "%s_power_mw", r->label);
        if (r->pow[0]) {
            if (probe_read_i64(r->pow, &mw) == 0 && mw >= 0 && mw < 100000000) {
                probe_emit(emit, ctx, "hwmon", now_ns, key, (double)mw, "mw");
                n++;
            }
        } else if (hc && hv) {
            probe_emit(emit, ctx, "hwmon", now_ns, key, (double)ma * (double)mv / 1000.0, "mw");
            n++;
        }
    }
    return n;
}

static void hwmon_close(void *st) { free(st); }

const melt_probe_ops melt_probe_hwmon = {
    .version = MELT_PROBE_API_VERSION,
    .name = "hwmon",
    .description = "Jetson INA3221 per-rail power (mW), current (mA), voltage (mV); "
                   "/sys/bus/i2c/drivers/ina3221/*/hwmon/hwmon*/ or ina3221x iio; "
                   "2-3 reads per rail",
    .default_hz = 10.0,
    .open = hwmon_open,
    .sample = hwmon_sample,
    .close = hwmon_close,
};

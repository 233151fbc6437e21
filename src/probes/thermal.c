/* thermal probe: every thermal zone's temperature.
 *
 *   /sys/class/thermal/thermal_zoneN/type  (read once at open) -> key "<type>_temp"
 *   /sys/class/thermal/thermal_zoneN/temp  milli-degrees Celsius -> value, unit "mC"
 *
 * A type shared by several zones gets the zone number appended
 * ("battery_temp", "battery_z7_temp"). A zone whose temp cannot be read at a
 * sample (some drivers answer EINVAL or EAGAIN while their sensor sleeps) is
 * skipped for that sample. Resolution: as the driver reports it (1 mC
 * nominally, often 100 or 1000 mC in practice). Cost: one read per zone. */
#include "probes/probe_util.h"

#include <stdlib.h>
#include <string.h>

#define THERMAL_MAX_ZONES 256

typedef struct {
    char path[512];
    char key[96];
} thermal_zone;

typedef struct {
    int n;
    thermal_zone *z;
} thermal_state;

static void thermal_close(void *st)
{
    thermal_state *s = st;
    if (!s) return;
    free(s->z);
    free(s);
}

static int thermal_open(const char *root, int pid, const char *options, void **out,
                        melt_error *err)
{
    static const char *const known[] = {NULL};
    int rc = probe_opts_check("thermal", options, known, err);
    if (rc) return rc;
    char dir[512];
    if (probe_path(dir, sizeof dir, root, "/sys/class/thermal"))
        return melt_errorf(err, MELT_EINVAL, "thermal: root path too long");
    int idx[THERMAL_MAX_ZONES];
    int n = probe_list_numbered(dir, "thermal_zone", idx, THERMAL_MAX_ZONES);
    if (n <= 0) return melt_errorf(err, MELT_ENOTFOUND, "thermal: no thermal zones in %s", dir);
    thermal_state *s = calloc(1, sizeof *s);
    if (s) s->z = calloc((size_t)n, sizeof *s->z);
    if (!s || !s->z) {
        thermal_close(s);
        return melt_errorf(err, MELT_ENOMEM, "thermal: out of memory");
    }
    for (int i = 0; i < n; i++) {
        thermal_zone *z = &s->z[s->n];
        char p[512], type[64], safe[64];
        if (probe_path(z->path, sizeof z->path, root, "/sys/class/thermal/thermal_zone%d/temp",
                       idx[i]) || !probe_exists(z->path))
            continue;
        if (probe_path(p, sizeof p, root, "/sys/class/thermal/thermal_zone%d/type", idx[i]) ||
            probe_read_line(p, type, sizeof type) || !type[0])
            snprintf(type, sizeof type, "thermal_zone%d", idx[i]);
        probe_sanitize(safe, sizeof safe, type);
        int dup = 0;
        for (int j = 0; j < s->n; j++) {
            size_t l = strlen(safe);
            if (strncmp(s->z[j].key, safe, l) == 0 && strcmp(s->z[j].key + l, "_temp") == 0)
                dup = 1;
        }
        if (dup) snprintf(z->key, sizeof z->key, "%s_z%d_temp", safe, idx[i]);
        else snprintf(z->key, sizeof z->key, "%s_temp", safe);
        s->n++;
    }
    if (s->n == 0) {
        thermal_close(s);
        return melt_errorf(err, MELT_ENOTFOUND, "thermal: no readable zone in %s", dir);
    }
    *out = s;
    return 0;
}

static int thermal_sample(void *st, int64_t now_ns, melt_probe_emit_fn emit, void *ctx)
{
    thermal_state *s = st;
    int n = 0;
    for (int i = 0; i < s->n; i++) {
        int64_t mc;
        /* plausible range -100 C .. 1000 C; below is a sensor that is off (Jetson
         * reports -256000 for powered-down CV zones), above a broken one */
        if (probe_read_i64(s->z[i].path, &mc) || mc < -100000 || mc > 1000000) continue;
        probe_emit(emit, ctx, "thermal", now_ns, s->z[i].key, (double)mc, "mC");
        n++;
    }
    return n;
}

const melt_probe_ops melt_probe_thermal = {
    .version = MELT_PROBE_API_VERSION,
    .name = "thermal",
    .description = "temperature of every thermal zone in milli-degrees C (key <type>_temp); "
                   "/sys/class/thermal/thermal_zone*/temp; one read per zone",
    .default_hz = 2.0,
    .open = thermal_open,
    .sample = thermal_sample,
    .close = thermal_close,
};

/* Probes: each probe on the fake device trees under tests/data/devices/ gives
 * the known values in the right units; absent sources are "not present";
 * counters wrap; sign conventions; throttle detection; malformed files do not
 * crash; the probe set keeps its rate and reports its own CPU time. */
#include "testutil.h"

#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <pthread.h>
#include <sys/stat.h>
#include <time.h>

#include "melt/probe.h"

#define PIXEL "tests/data/devices/pixel"
#define JETSON "tests/data/devices/jetson-orin"
#define LAPTOP "tests/data/devices/x86-laptop"
#define MAX_EV 1024

/* ---- helpers ---- */

typedef struct {
    melt_event ev[MAX_EV];
    int n;
    int overflow;
} collector;

static void collect(void *ctx, const melt_event *ev)
{
    collector *c = ctx;
    if (c->n < MAX_EV) c->ev[c->n++] = *ev;
    else c->overflow = 1;
}

/* The last sample with key; fails the test (naming the key) if absent. */
static const melt_event *find_ev(const collector *c, const char *key)
{
    for (int i = c->n - 1; i >= 0; i--)
        if (strcmp(c->ev[i].key, key) == 0) return &c->ev[i];
    return NULL;
}

static double value_of(const collector *c, const char *key, const char *unit)
{
    const melt_event *e = find_ev(c, key);
    if (!e) fail_msg("no sample with key '%s' (%d samples)", key, c->n);
    if (strcmp(e->unit, unit) != 0) fail_msg("key %s: unit '%s', expected '%s'", key, e->unit, unit);
    assert_int_equal(e->kind, MELT_EV_SAMPLE);
    assert_true(e->has_value);
    return e->value;
}

#define assert_value(c, key, unit, expect, tol)                                        \
    do {                                                                               \
        double got_ = value_of((c), (key), (unit));                                     \
        if (fabs(got_ - (double)(expect)) > (tol))                                      \
            fail_msg("key %s: got %.6f %s, expected %.6f", (key), got_, (unit), (double)(expect)); \
    } while (0)

static void *open_probe(const char *name, const char *root, int pid, const char *opts)
{
    const melt_probe_ops *ops = melt_probe_find(name);
    assert_non_null(ops);
    void *st = NULL;
    melt_error err = {0};
    int rc = ops->open(root, pid, opts, &st, &err);
    if (rc) fail_msg("open %s on %s: %d %s", name, root, rc, err.msg);
    assert_non_null(st);
    return st;
}

static int sample_probe(const char *name, void *st, int64_t now, collector *c)
{
    return melt_probe_find(name)->sample(st, now, collect, c);
}

static void close_probe(const char *name, void *st) { melt_probe_find(name)->close(st); }

static void mkdirs(const char *path)
{
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(tmp, 0755);
            *p = '/';
        }
    mkdir(tmp, 0755);
}

/* Write root/rel (creating directories) with exactly len bytes of data. */
static void put_bytes(const char *root, const char *rel, const void *data, size_t len)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    char *slash = strrchr(path, '/');
    *slash = '\0';
    mkdirs(path);
    *slash = '/';
    FILE *f = fopen(path, "wb");
    if (!f) fail_msg("cannot write %s", path);
    if (len) assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

static void put(const char *root, const char *rel, const char *text)
{
    put_bytes(root, rel, text, strlen(text));
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb; (void)flag; (void)ftw;
    return remove(p);
}

/* A fresh empty scratch directory (static buffer). */
static const char *scratch_root(const char *name)
{
    const char *p = scratch_path(name);
    nftw(p, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    mkdirs(p);
    return p;
}

static void scratch_done(const char *p) { nftw(p, rm_one, 16, FTW_DEPTH | FTW_PHYS); }

/* ---- registry ---- */

static void registry_lists_every_probe_with_complete_ops(void **state)
{
    (void)state;
    const char *want[] = {"procfs", "thermal", "cpufreq", "power_supply", "hwmon", "rapl", "nvml"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        assert_non_null(melt_probe_find(want[i]));
    int n = 0;
    for (const melt_probe_ops *const *p = melt_probe_registry; *p; p++, n++) {
        assert_int_equal((*p)->version, MELT_PROBE_API_VERSION);
        assert_non_null((*p)->open);
        assert_non_null((*p)->sample);
        assert_non_null((*p)->close);
        assert_true((*p)->default_hz > 0);
        assert_true(strlen((*p)->description) > 20);
        for (const melt_probe_ops *const *q = melt_probe_registry; q != p; q++)
            assert_string_not_equal((*q)->name, (*p)->name);
    }
    assert_int_equal(n, 7);
    assert_null(melt_probe_find("no-such-probe"));
}

static void probe_rejects_unknown_option(void **state)
{
    (void)state;
    void *st = NULL;
    melt_error err = {0};
    int rc = melt_probe_find("thermal")->open(PIXEL, 0, "bogus=1", &st, &err);
    assert_int_equal(rc, MELT_EINVAL);
    assert_non_null(strstr(err.msg, "bogus"));
    rc = melt_probe_find("power_supply")->open(PIXEL, 0, "sign=sideways", &st, &err);
    assert_int_equal(rc, MELT_EINVAL);
}

/* ---- procfs ---- */

static void procfs_reads_fake_process_cpu_time_and_memory(void **state)
{
    (void)state;
    collector *c = calloc(1, sizeof *c);
    void *st = open_probe("procfs", PIXEL, 4242, NULL);
    assert_true(sample_probe("procfs", st, 1000, c) >= 3);
    long hz = sysconf(_SC_CLK_TCK);
    /* utime 1234 + stime 567 ticks; the comm "(llama (server))" has spaces and parens */
    assert_value(c, "proc_cpu_ns", "ns", (1234.0 + 567.0) * (1e9 / (double)hz), 1);
    assert_value(c, "rss_bytes", "bytes", 524288.0 * 1024, 0);
    assert_value(c, "hwm_bytes", "bytes", 600000.0 * 1024, 0);
    assert_null(find_ev(c, "cpu_busy_pct"));       /* needs two samples */
    assert_string_equal(c->ev[0].name, "procfs");
    assert_int_equal(c->ev[0].t_ns, 1000);
    close_probe("procfs", st);
    free(c);
}

static void procfs_system_busy_is_the_delta_between_samples(void **state)
{
    (void)state;
    const char *root = scratch_root("procfs-busy");
    collector *c = calloc(1, sizeof *c);
    put(root, "proc/stat", "cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 50 0 50 350 50 0 0 0 0 0\n"
                           "cpu1 50 0 50 350 50 0 0 0 0 0\nintr 1 2\n");
    void *st = open_probe("procfs", root, 0, NULL);
    assert_int_equal(sample_probe("procfs", st, 1, c), 0);
    /* +200 busy, +100 idle overall; cpu0 all busy, cpu1 half busy... */
    put(root, "proc/stat", "cpu  300 0 100 800 100 0 0 0 0 0\ncpu0 150 0 50 350 50 0 0 0 0 0\n"
                           "cpu1 150 0 50 450 50 0 0 0 0 0\nintr 1 2\n");
    assert_int_equal(sample_probe("procfs", st, 2, c), 3);
    assert_value(c, "cpu_busy_pct", "pct", 200.0 / 300.0 * 100.0, 1e-9);
    assert_value(c, "cpu0_busy_pct", "pct", 100.0, 1e-9);
    assert_value(c, "cpu1_busy_pct", "pct", 50.0, 1e-9);
    close_probe("procfs", st);
    /* percpu=0 keeps only the total */
    c->n = 0;
    st = open_probe("procfs", root, 0, "percpu=0");
    sample_probe("procfs", st, 1, c);
    put(root, "proc/stat", "cpu  400 0 100 900 100 0 0 0 0 0\ncpu0 200 0 50 400 50 0 0 0 0 0\n");
    assert_int_equal(sample_probe("procfs", st, 2, c), 1);
    assert_value(c, "cpu_busy_pct", "pct", 50.0, 1e-9);
    close_probe("procfs", st);
    scratch_done(root);
    free(c);
}

static void procfs_on_real_proc_sees_own_rss_and_cpu_time_grow(void **state)
{
    (void)state;
    collector *c = calloc(1, sizeof *c);
    void *st = open_probe("procfs", "/", (int)getpid(), NULL);
    assert_true(sample_probe("procfs", st, melt_probe_now_ns(), c) > 0);
    double cpu0 = value_of(c, "proc_cpu_ns", "ns");
    assert_true(value_of(c, "rss_bytes", "bytes") > 0);
    assert_true(value_of(c, "hwm_bytes", "bytes") >= value_of(c, "rss_bytes", "bytes"));
    /* ~60 ms of busy work: at least a few 10 ms ticks */
    struct timespec a, b;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
    volatile uint64_t x = 1;
    do {
        for (int i = 0; i < 100000; i++) x = x * 6364136223846793005ULL + 1;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
    } while ((b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec) < 60000000LL);
    assert_true(sample_probe("procfs", st, melt_probe_now_ns(), c) > 0);
    double cpu1 = value_of(c, "proc_cpu_ns", "ns");
    if (!(cpu1 > cpu0)) fail_msg("CPU time did not grow: %.0f -> %.0f ns", cpu0, cpu1);
    assert_true(value_of(c, "cpu_busy_pct", "pct") >= 0.0);
    assert_true(value_of(c, "proc_cpu_pct", "pct") > 0.0);
    close_probe("procfs", st);
    free(c);
}

static void procfs_missing_process_is_not_present(void **state)
{
    (void)state;
    void *st = NULL;
    melt_error err = {0};
    assert_int_equal(melt_probe_find("procfs")->open(PIXEL, 999999, NULL, &st, &err), MELT_ENOTFOUND);
    assert_non_null(strstr(err.msg, "999999"));
}

/* ---- thermal ---- */

static void thermal_pixel_zones_in_millicelsius(void **state)
{
    (void)state;
    collector *c = calloc(1, sizeof *c);
    void *st = open_probe("thermal", PIXEL, 0, NULL);
    assert_int_equal(sample_probe("thermal", st, 5, c), 10);
    assert_value(c, "BIG_temp", "mC", 48300, 0);
    assert_value(c, "LITTLE_temp", "mC", 41800, 0);
    assert_value(c, "battery_temp", "mC", 31200, 0);
    assert_value(c, "quiet_therm_temp", "mC", 32700, 0);
    close_probe("thermal", st);
    free(c);
}

static void thermal_x86_sanitizes_types_and_numbers_duplicates(void **state)
{
    (void)state;
    collector *c = calloc(1, sizeof *c);
    void *st = open_probe("thermal", LAPTOP, 0, NULL);
    assert_int_equal(sample_probe("thermal", st, 5, c), 5);
    assert_value(c, "x86_pkg_temp_temp", "mC", 52000, 0);
    assert_value(c, "INT3400_Thermal_temp", "mC", 20000, 0);
    assert_value(c, "acpitz_temp", "mC", 27800, 0);
    assert_value(c, "acpitz_z3_temp", "mC", 29800, 0);
    close_probe("thermal", st);
    free(c);
}

static void thermal_jetson_skips_powered_off_zones(void **state)
{
    (void)state;
    collector *c = calloc(1, sizeof *c);
    void *st = open_probe("thermal", JETSON, 0, NULL);
    assert_int_equal(sample_probe("thermal", st, 5, c), 6);   /* 9 zones, 3 CV at -256 C */
    assert_value(c, "cpu-thermal_temp", "mC", 47343, 0);
    assert_value(c, "tj-thermal_temp", "mC", 47343, 0);
    assert_null(find_ev(c, "cv0-thermal_temp"));
    close_probe("thermal", st);
    free(c);
}

/* ---- cpufreq ---- */

static void cpufreq_pixel_reports_three_policies_in_khz(void **state)
{
    (void)state;
    collector *c = calloc(1, sizeof *c);
    void *st = open_probe("cpufreq", PIXEL, 0, NULL);
    assert_true(sample_probe("cpufreq", st, 5, c) > 0);
    assert_value(c, "policy0_cur_khz", "khz", 1804800, 0);
    assert_value(c, "policy0_min_khz", "khz", 300000, 0);
    assert_value(c, "policy4_cur_khz", "khz", 1497600, 0);
    assert_value(c, "policy4_max_khz", "khz", 2419200, 0);
    assert_value(c, "policy7_max_khz", "khz", 2841600, 0);
    assert_value(c, "policy7_scaling_max_khz", "khz", 1766400, 0);
    /* first sample: no busy figure yet, so only the cap counts */
    assert_value(c, "policy0_throttled", "bool", 0, 0);
    assert_value(c, "policy4_throttled", "bool", 0, 0);
    assert_value(c, "policy7_throttled", "bool", 1, 0);
    assert_value(c, "throttled", "bool", 1, 0);
    assert_null(find_ev(c, "policy1_cur_khz"));
    close_probe("cpufreq", st);
    free(c);
}

static void cpufreq_jetson_and_x86_policies(void **state)
{
    (void)state;
    collector *c = calloc(1, sizeof *c);
    void *st = open_probe("cpufreq", JETSON, 0, NULL);
    sample_probe("cpufreq", st, 5, c);
    assert_value(c, "policy4_cur_khz", "khz", 729600, 0);
    assert_value(c, "policy4_max_khz", "khz", 1984000, 0);
    assert_value(c, "throttled", "bool", 0, 0);
    close_probe("cpufreq", st);
    c->n = 0;
    st = open_probe("cpufreq", LAPTOP, 0, NULL);
    sample_probe("cpufreq", st, 5, c);
    assert_value(c, "policy0_cur_khz", "khz", 3200123, 0);
    assert_value(c, "policy3_cur_khz", "khz", 800000, 0);
    assert_value(c, "policy3_max_khz", "khz", 4700000, 0);
    close_probe("cpufreq", st);
    free(c);
}

/* One policy over CPUs 0-1 at cpuinfo_max 2 GHz; each step sets the clocks
 * and how busy the CPUs were since the previous step. */
static void cpufreq_throttle_is_busy_with_low_clock_or_cap(void **state)
{
    (void)state;
    const char *root = scratch_root("cpufreq-throttle");
    collector *c = calloc(1, sizeof *c);
    const char *pd = "sys/devices/system/cpu/cpufreq/policy0/";
    char rel[256];
#define PUTP(file, text) do { snprintf(rel, sizeof rel, "%s%s", pd, file); put(root, rel, text); } while (0)
    PUTP("related_cpus", "0-1\n");
    PUTP("cpuinfo_min_freq", "500000\n");
    PUTP("cpuinfo_max_freq", "2000000\n");
    PUTP("scaling_max_freq", "2000000\n");
    PUTP("scaling_cur_freq", "2000000\n");
    uint64_t busy = 0, idle = 0;
    char stat[256];
    void *st = NULL;
    struct { int busy_pct; const char *cur, *smax; int expect; } steps[] = {
        {95, "1000000\n", "2000000\n", 1},  /* busy, clock at half: throttled */
        {10, "500000\n", "2000000\n", 0},   /* idle and slow: just DVFS */
        {95, "2000000\n", "1500000\n", 1},  /* busy and capped */
        {95, "1950000\n", "2000000\n", 0},  /* busy near max: fine */
        {50, "1000000\n", "1500000\n", 0},  /* below busy_pct: not judged */
    };
    for (int i = -1; i < (int)(sizeof steps / sizeof steps[0]); i++) {
        if (i >= 0) {
            busy += (uint64_t)steps[i].busy_pct;
            idle += (uint64_t)(100 - steps[i].busy_pct);
            PUTP("scaling_cur_freq", steps[i].cur);
            PUTP("scaling_max_freq", steps[i].smax);
        }
        snprintf(stat, sizeof stat,
                 "cpu  %llu 0 0 %llu 0 0 0 0 0 0\ncpu0 %llu 0 0 %llu 0 0 0 0 0 0\n"
                 "cpu1 %llu 0 0 %llu 0 0 0 0 0 0\n",
                 (unsigned long long)(2 * busy), (unsigned long long)(2 * idle),
                 (unsigned long long)busy, (unsigned long long)idle, (unsigned long long)busy,
                 (unsigned long long)idle);
        put(root, "proc/stat", stat);
        if (i < 0) {
            st = open_probe("cpufreq", root, 0, NULL);
            sample_probe("cpufreq", st, 0, c);
            assert_value(c, "policy0_throttled", "bool", 0, 0);
            continue;
        }
        sample_probe("cpufreq", st, i + 1, c);
        assert_value(c, "policy0_busy_pct", "pct", steps[i].busy_pct, 1e-9);
        double got = value_of(c, "policy0_throttled", "bool");
        if (got != steps[i].expect)
            fail_msg("step %d (busy %d%%, cur %s smax %s): throttled %g, expected %d", i,
                     steps[i].busy_pct, steps[i].cur, steps[i].smax, got, steps[i].expect);
    }
#undef PUTP
    close_probe("cpufreq", st);
    /* thresholds are options */
    c->n = 0;
    st = open_probe("cpufreq", root, 0, "busy_pct=40,cur_pct=60");
    sample_probe("cpufreq", st, 0, c);
    busy += 50;
    idle += 50;
    snprintf(stat, sizeof stat, "cpu0 %llu 0 0 %llu 0 0 0 0 0 0\ncpu1 %llu 0 0 %llu 0 0 0 0 0 0\n",
             (unsigned long long)busy, (unsigned long long)idle, (unsigned long long)busy,
             (unsigned long long)idle);
    put(root, "proc/stat", stat);
    sample_probe("cpufreq", st, 1, c);
    assert_value(c, "policy0_throttled", "bool", 1, 0);    /* 50% >= 40, capped at 1.5 GHz */
    close_probe("cpufreq", st);
    void *bad = NULL;
    melt_error err = {0};
    assert_int_equal(melt_probe_find("cpufreq")->open(root, 0, "busy_pct=150", &bad, &err), MELT_EINVAL);
    scratch_done(root);
    free(c);
}

/* ---- power_supply ---- */

static void power_supply_pixel_negative_current_is_discharge(void **state)
{
    (void)state;
    collector *c = calloc(1, sizeof *c);
    void *st = open_probe("power_supply", PIXEL, 0, NULL);
    assert_int_equal(sample_probe("power_supply", st, 5, c), 6);
    /* 1.234567 A x 3.876 V */
    assert_value(c, "battery_power_mw", "mw", 1234567.0 * 3876000.0 / 1e9, 1e-6);
    assert_value(c, "battery_current_ua", "ua", 1234567, 0);
    assert_value(c, "battery_voltage_uv", "uv", 3876000, 0);
    assert_value(c, "battery_capacity_pct", "pct", 78, 0);
    assert_value(c, "battery_temp", "mC", 31200, 0);
    assert_value(c, "battery_discharging", "bool", 1, 0);
    close_probe("power_supply", st);
    free(c);
}

static void power_supply_laptop_positive_current_is_discharge(void **state)
{
    (void)state;
    collector *c = calloc(1, sizeof *c);
    void *st = open_probe("power_supply", LAPTOP, 0, NULL);   /* finds BAT0 by type */
    sample_probe("power_supply", st, 5, c);
    assert_value(c, "BAT0_power_mw", "mw", 1.5 * 11.4 * 1000, 1e-6);
    assert_value(c, "BAT0_current_ua", "ua", 1500000, 0);
    assert_value(c, "BAT0_capacity_pct", "pct", 64, 0);
    close_probe("power_supply", st);
    free(c);
}

/* The sign is learned while discharging and kept when charging starts, for
 * both vendor conventions; a fixed sign option overrides the guess. */
static void power_supply_sign_learned_while_discharging_both_vendors(void **state)
{
    (void)state;
    const char *root = scratch_root("psu-sign");
    collector *c = calloc(1, sizeof *c);
    const char *b = "sys/class/power_supply/battery/";
    char rel[128];
#define PUTB(f, t) do { snprintf(rel, sizeof rel, "%s%s", b, f); put(root, rel, t); } while (0)
    PUTB("voltage_now", "4000000\n");
    for (int vendor = 0; vendor < 2; vendor++) {
        const char *dis = vendor == 0 ? "-500000\n" : "500000\n";
        const char *chg = vendor == 0 ? "300000\n" : "-300000\n";
        c->n = 0;
        PUTB("status", "Discharging\n");
        PUTB("current_now", dis);
        void *st = open_probe("power_supply", root, 0, NULL);
        sample_probe("power_supply", st, 1, c);
        assert_value(c, "battery_power_mw", "mw", 2000.0, 1e-9);
        PUTB("status", "Charging\n");
        PUTB("current_now", chg);
        sample_probe("power_supply", st, 2, c);
        assert_value(c, "battery_power_mw", "mw", -1200.0, 1e-9);
        assert_value(c, "battery_current_ua", "ua", -300000, 0);
        assert_value(c, "battery_discharging", "bool", 0, 0);
        close_probe("power_supply", st);
    }
    /* fixed: discharge-positive on a Pixel-style negative reading gives negative power */
    c->n = 0;
    void *st = open_probe("power_supply", PIXEL, 0, "sign=discharge-positive");
    sample_probe("power_supply", st, 1, c);
    assert_value(c, "battery_power_mw", "mw", -1234567.0 * 3876000.0 / 1e9, 1e-6);
    close_probe("power_supply", st);
    /* milli units (older gauges): mA x mV */
    PUTB("status", "Discharging\n");
    PUTB("current_now", "-250\n");
    PUTB("voltage_now", "3800\n");
    c->n = 0;
    st = open_probe("power_supply", root, 0, "units=milli,sign=discharge-negative");
    sample_probe("power_supply", st, 1, c);
    assert_value(c, "battery_power_mw", "mw", 950.0, 1e-9);
    assert_value(c, "battery_current_ua", "ua", 250000, 0);
    close_probe("power_supply", st);
#undef PUTB
    scratch_done(root);
    free(c);
}

/* ---- hwmon ---- */

static void hwmon_jetson_ina3221_rails_in_milliwatts(void **state)
{
    (void)state;
    collector *c = calloc(1, sizeof *c);
    void *st = open_probe("hwmon", JETSON, 0, NULL);
    assert_int_equal(sample_probe("hwmon", st, 5, c), 9);   /* 3 rails x (mW, mA, mV) */
    assert_value(c, "VDD_IN_power_mw", "mw", 1032.0 * 5048.0 / 1000.0, 1e-9);
    assert_value(c, "VDD_CPU_GPU_CV_power_mw", "mw", 312.0 * 5040.0 / 1000.0, 1e-9);
    assert_value(c, "VDD_SOC_power_mw", "mw", 296.0 * 5048.0 / 1000.0, 1e-9);
    assert_value(c, "VDD_IN_current_ma", "ma", 1032, 0);
    assert_value(c, "VDD_IN_voltage_mv", "mv", 5048, 0);
    close_probe("hwmon", st);
    free(c);
}

static void hwmon_reads_old_iio_layout(void **state)
{
    (void)state;
    const char *root = scratch_root("hwmon-iio");
    const char *d = "sys/bus/i2c/drivers/ina3221x/6-0040/iio:device0/";
    char rel[160];
    const char *files[][2] = {{"rail_name_0", "POM_5V_IN\n"}, {"in_power0_input", "3120\n"},
                              {"in_current0_input", "624\n"}, {"in_voltage0_input", "5000\n"},
                              {"rail_name_1", "POM_5V_GPU\n"}, {"in_power1_input", "0\n"}};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(rel, sizeof rel, "%s%s", d, files[i][0]);
        put(root, rel, files[i][1]);
    }
    collector *c = calloc(1, sizeof *c);
    void *st = open_probe("hwmon", root, 0, NULL);
    sample_probe("hwmon", st, 5, c);
    assert_value(c, "POM_5V_IN_power_mw", "mw", 3120, 0);
    assert_value(c, "POM_5V_IN_current_ma", "ma", 624, 0);
    assert_value(c, "POM_5V_GPU_power_mw", "mw", 0, 0);
    close_probe("hwmon", st);
    scratch_done(root);
    free(c);
}

/* ---- rapl ---- */

static void rapl_laptop_energy_and_power_between_samples(void **state)
{
    (void)state;
    collector *c = calloc(1, sizeof *c);
    void *st = open_probe("rapl", LAPTOP, 0, NULL);
    assert_int_equal(sample_probe("rapl", st, 1000, c), 2);
    assert_value(c, "package-0_energy_uj", "uj", 0, 0);
    assert_value(c, "package-0.core_energy_uj", "uj", 0, 0);
    close_probe("rapl", st);
    /* a counter that moves: 0.5 J in 100 ms is 5 W */
    const char *root = scratch_root("rapl-power");
    put(root, "sys/class/powercap/intel-rapl:0/name", "package-0\n");
    put(root, "sys/class/powercap/intel-rapl:0/max_energy_range_uj", "262143328850\n");
    put(root, "sys/class/powercap/intel-rapl:0/energy_uj", "1000000\n");
    c->n = 0;
    st = open_probe("rapl", root, 0, NULL);
    sample_probe("rapl", st, 1000000000, c);
    put(root, "sys/class/powercap/intel-rapl:0/energy_uj", "1500000\n");
    sample_probe("rapl", st, 1100000000, c);
    assert_value(c, "package-0_energy_uj", "uj", 500000, 0);
    assert_value(c, "package-0_power_mw", "mw", 5000, 1e-9);
    close_probe("rapl", st);
    scratch_done(root);
    free(c);
}

static void rapl_counter_wraps_past_max_energy_range(void **state)
{
    (void)state;
    const char *root = scratch_root("rapl-wrap");
    put(root, "sys/class/powercap/intel-rapl:0/name", "package-0\n");
    put(root, "sys/class/powercap/intel-rapl:0/max_energy_range_uj", "1000000\n");
    put(root, "sys/class/powercap/intel-rapl:0/energy_uj", "998000\n");
    collector *c = calloc(1, sizeof *c);
    void *st = open_probe("rapl", root, 0, NULL);
    sample_probe("rapl", st, 0, c);
    put(root, "sys/class/powercap/intel-rapl:0/energy_uj", "999000\n");
    sample_probe("rapl", st, 1000000, c);                  /* +1000 µJ in 1 ms */
    assert_value(c, "package-0_power_mw", "mw", 1000, 1e-9);
    put(root, "sys/class/powercap/intel-rapl:0/energy_uj", "500\n");
    sample_probe("rapl", st, 2000000, c);                  /* wrapped: 1000 + 500 */
    assert_value(c, "package-0_energy_uj", "uj", 2500, 0);
    assert_value(c, "package-0_power_mw", "mw", 1500, 1e-9);
    put(root, "sys/class/powercap/intel-rapl:0/energy_uj", "2000000\n");   /* > max: garbage */
    int before = c->n;
    sample_probe("rapl", st, 3000000, c);
    assert_int_equal(c->n, before);
    close_probe("rapl", st);
    scratch_done(root);
    free(c);
}

/* ---- absent sources ---- */

static int notices;
static char notice_names[16][32];

static void count_notice(void *ctx, const char *probe, int code, const char *msg)
{
    int *n = ctx;
    assert_int_equal(code, MELT_ENOTFOUND);
    assert_true(strlen(msg) > 0);
    if (*n < 16) snprintf(notice_names[*n], sizeof notice_names[0], "%s", probe);
    (*n)++;
}

static void absent_probes_are_not_present_with_a_reason(void **state)
{
    (void)state;
    const char *root = scratch_root("empty");
    for (const melt_probe_ops *const *p = melt_probe_registry; *p; p++) {
        void *st = NULL;
        melt_error err = {0};
        int rc = (*p)->open(root, 0, NULL, &st, &err);
        if (rc != MELT_ENOTFOUND) fail_msg("%s on an empty root: %d, expected not present", (*p)->name, rc);
        assert_null(st);
        assert_true(strlen(err.msg) > 0);
    }
    scratch_done(root);
}

static void noop_emit(void *ctx, const melt_event *ev) { (void)ctx; (void)ev; }

static void probe_set_reports_each_absent_probe_once(void **state)
{
    (void)state;
    notices = 0;
    melt_probe_set_params p = melt_probe_set_default_params();
    p.root = PIXEL;
    p.emit = noop_emit;
    p.notice = count_notice;
    p.notice_ctx = &notices;
    melt_probe_set *set = NULL;
    melt_error err = {0};
    assert_int_equal(melt_probe_set_open(&set, &p, &err), 0);   /* every registry probe */
    /* pixel has procfs (system), thermal, cpufreq, power_supply; no hwmon, rapl, nvml */
    assert_int_equal(melt_probe_set_count(set), 4);
    assert_int_equal(notices, 3);
    assert_string_equal(notice_names[0], "hwmon");
    assert_string_equal(notice_names[1], "rapl");
    assert_string_equal(notice_names[2], "nvml");
    for (int i = 0; i < 3; i++) assert_true(melt_probe_set_sample_all(set, i) > 0);
    melt_probe_set_close(set);
    assert_int_equal(notices, 3);                                /* nothing more later */
}

static void nvml_absent_library_is_not_present(void **state)
{
    (void)state;
    const melt_probe_ops *ops = melt_probe_find("nvml");
    void *st = NULL;
    melt_error err = {0};
    assert_int_equal(ops->open("/", 0, "lib=/nonexistent/libnvidia-ml.so.1", &st, &err), MELT_ENOTFOUND);
    assert_non_null(strstr(err.msg, "libnvidia-ml"));
    /* the real library, when this machine has one, must work or be absent */
    int rc = ops->open("/", 0, NULL, &st, &err);
    if (rc == 0) {
        collector *c = calloc(1, sizeof *c);
        assert_true(ops->sample(st, 1, collect, c) >= 0);
        print_message("nvml present: %d samples\n", c->n);
        ops->close(st);
        free(c);
    } else {
        assert_int_equal(rc, MELT_ENOTFOUND);
    }
}

/* ---- malformed input ---- */

static void corrupted_tree_emits_nothing_bad_and_never_crashes(void **state)
{
    (void)state;
    const char *root = scratch_root("corrupt");
    static char big[200000];
    memset(big, '9', sizeof big);
    const char *bad[] = {"", "garbage\n", "99999999999999999999999\n", "-\n", "12abc\n",
                         "\xff\xfe\x00\x01", "-9223372036854775808\n", " \n\n", "1e9\n", "0x10\n"};
    size_t nb = sizeof bad / sizeof bad[0];
    char rel[256];
    for (size_t i = 0; i < nb + 1; i++) {
        const char *v = i < nb ? bad[i] : NULL;
        size_t len = v ? (i == 5 ? 4 : strlen(v)) : sizeof big;
        const void *data = v ? (const void *)v : big;
#define PB(fmt, ...) do { snprintf(rel, sizeof rel, fmt, __VA_ARGS__); put_bytes(root, rel, data, len); } while (0)
        PB("sys/class/thermal/thermal_zone%zu/temp", i);
        PB("sys/class/thermal/thermal_zone%zu/type", i);
        PB("sys/devices/system/cpu/cpufreq/policy%zu/scaling_cur_freq", i);
        PB("sys/devices/system/cpu/cpufreq/policy%zu/scaling_max_freq", i);
        PB("sys/devices/system/cpu/cpufreq/policy%zu/cpuinfo_max_freq", i);
        PB("sys/devices/system/cpu/cpufreq/policy%zu/cpuinfo_min_freq", i);
        PB("sys/devices/system/cpu/cpufreq/policy%zu/related_cpus", i);
        PB("sys/class/powercap/intel-rapl:%zu/energy_uj", i);
        PB("sys/class/powercap/intel-rapl:%zu/max_energy_range_uj", i);
        PB("sys/class/powercap/intel-rapl:%zu/name", i);
        PB("sys/bus/i2c/drivers/ina3221/1-00%zu/hwmon/hwmon0/in1_input", i + 40);
        PB("sys/bus/i2c/drivers/ina3221/1-00%zu/hwmon/hwmon0/curr1_input", i + 40);
        put(root, (snprintf(rel, sizeof rel, "sys/bus/i2c/drivers/ina3221/1-00%zu/hwmon/hwmon0/in1_label", i + 40), rel), "VDD_X\n");
        PB("sys/class/power_supply/bat%zu/current_now", i);
        PB("sys/class/power_supply/bat%zu/voltage_now", i);
        PB("sys/class/power_supply/bat%zu/status", i);
        PB("sys/class/power_supply/bat%zu/capacity", i);
        PB("sys/class/power_supply/bat%zu/temp", i);
        put(root, (snprintf(rel, sizeof rel, "sys/class/power_supply/bat%zu/type", i), rel), "Battery\n");
        PB("proc/%zu/stat", i + 100);
        PB("proc/%zu/status", i + 100);
#undef PB
    }
    /* one partly valid /proc/stat and process to mix good and bad lines */
    put(root, "proc/stat", "cpu  1 2 3\ncpu0 x y z\ncpu99999 1 2 3 4\ncpu1 -5 0 0 0\ncpu");
    put(root, "proc/300/stat", "300 (x");
    put(root, "proc/301/stat", "301 (a) b) R 1 2 3 4 5 6 7 8 9 10 99999999999999999999 12 13\n");
    put(root, "proc/301/status", "VmRSS:\t99999999999999999999 kB\nVmHWM:\t-5 kB\nVmRSS");
    int pids[] = {0, 100, 101, 105, 110, 300, 301};
    int opened = 0;
    collector *c = calloc(1, sizeof *c);
    for (const melt_probe_ops *const *p = melt_probe_registry; *p; p++) {
        for (size_t k = 0; k < sizeof pids / sizeof pids[0]; k++) {
            if (k > 0 && strcmp((*p)->name, "procfs") != 0) break;
            void *st = NULL;
            melt_error err = {0};
            int rc = (*p)->open(root, pids[k], NULL, &st, &err);
            if (rc) {
                assert_int_equal(rc, MELT_ENOTFOUND);
                continue;
            }
            opened++;
            c->n = 0;
            for (int s = 0; s < 3; s++) assert_true((*p)->sample(st, s * 100000000LL, collect, c) >= -6);
            for (int e = 0; e < c->n; e++) {
                if (!isfinite(c->ev[e].value)) fail_msg("%s %s: non-finite value", (*p)->name, c->ev[e].key);
                if (fabs(c->ev[e].value) > 1e15)
                    fail_msg("%s %s: absurd value %g", (*p)->name, c->ev[e].key, c->ev[e].value);
            }
            (*p)->close(st);
        }
    }
    /* thermal, cpufreq, power_supply, hwmon and procfs (7 pids) found files
     * to read; rapl has no zone with a valid range, nvml no library */
    assert_int_equal(opened, 4 + 7);
    scratch_done(root);
    free(c);
}

/* ---- probe set ---- */

typedef struct {
    pthread_mutex_t mu;
    int n_thermal, n_procfs;
    int64_t first_t, last_t;
} rate_ctx;

static void rate_emit(void *ctx, const melt_event *ev)
{
    rate_ctx *r = ctx;
    pthread_mutex_lock(&r->mu);
    if (strcmp(ev->name, "thermal") == 0 && strcmp(ev->key, "BIG_temp") == 0) {
        if (r->n_thermal++ == 0) r->first_t = ev->t_ns;
        r->last_t = ev->t_ns;
    }
    if (strcmp(ev->name, "procfs") == 0 && strcmp(ev->key, "rss_bytes") == 0) r->n_procfs++;
    pthread_mutex_unlock(&r->mu);
}

static void probe_set_samples_at_10hz_and_measures_its_cpu(void **state)
{
    (void)state;
    rate_ctx r = {.mu = PTHREAD_MUTEX_INITIALIZER};
    melt_probe_spec specs[] = {{"thermal", 10, NULL}, {"procfs", 5, NULL}, {"cpufreq", 0, NULL}};
    melt_probe_set_params p = melt_probe_set_default_params();
    p.root = PIXEL;
    p.pid = 4242;
    p.specs = specs;
    p.n_specs = 3;
    p.emit = rate_emit;
    p.emit_ctx = &r;
    melt_probe_set *set = NULL;
    melt_error err = {0};
    assert_int_equal(melt_probe_set_open(&set, &p, &err), 0);
    assert_int_equal(melt_probe_set_count(set), 3);
    assert_string_equal(melt_probe_set_name(set, 2), "cpufreq");
    assert_true(melt_probe_set_rate_hz(set, 2) == melt_probe_find("cpufreq")->default_hz);
    assert_int_equal(melt_probe_set_start(set, &err), 0);
    assert_int_equal(melt_probe_set_sample_all(set, 0), MELT_EINVAL);   /* not while running */
    struct timespec ts = {1, 0};
    while (nanosleep(&ts, &ts) && errno == EINTR) {}
    melt_probe_set_stats live;
    melt_probe_set_get_stats(set, &live);
    melt_probe_set_stop(set);
    melt_probe_set_stats st;
    melt_probe_set_get_stats(set, &st);
    /* 1 s at 10 Hz: 11 ticks (t = 0, 0.1 .. 1.0), tolerant of a slow machine */
    if (r.n_thermal < 8 || r.n_thermal > 12) fail_msg("thermal at 10 Hz for 1 s: %d samples", r.n_thermal);
    if (r.n_procfs < 4 || r.n_procfs > 7) fail_msg("procfs at 5 Hz for 1 s: %d samples", r.n_procfs);
    /* absolute deadlines: every tick lands near first + k*100 ms (a skipped
     * tick under load changes k, not the phase) */
    int64_t got = r.last_t - r.first_t;
    int64_t want = (got + 50000000LL) / 100000000LL * 100000000LL;
    if (want < 700000000LL || llabs(got - want) > 40000000LL)
        fail_msg("last tick %lld ns after the first, expected a multiple of 100 ms near 1 s",
                 (long long)got);
    assert_true(st.ticks >= (uint64_t)(r.n_thermal + r.n_procfs));
    assert_true(st.samples > st.ticks);
    assert_int_equal(st.errors, 0);
    assert_true(st.wall_ns >= 900000000LL && st.wall_ns < 3000000000LL);
    assert_true(st.cpu_ns > 0);
    assert_true(st.cpu_ns < st.wall_ns);
    assert_true(live.cpu_ns > 0 && live.cpu_ns <= st.cpu_ns);
    print_message("probe set: %llu ticks, %llu samples, %.3f ms CPU in %.3f s (%.4f%% of a core)\n",
                  (unsigned long long)st.ticks, (unsigned long long)st.samples, st.cpu_ns / 1e6,
                  st.wall_ns / 1e9, 100.0 * (double)st.cpu_ns / (double)st.wall_ns);
    /* stopped: synchronous sampling works, stop twice is harmless */
    assert_true(melt_probe_set_sample_all(set, 1) > 0);
    melt_probe_set_stop(set);
    melt_probe_set_close(set);
}

static void probe_set_rejects_unknown_probe_naming_known_ones(void **state)
{
    (void)state;
    melt_probe_spec specs[] = {{"thermal", 0, NULL}, {"thermals", 0, NULL}};
    melt_probe_set_params p = melt_probe_set_default_params();
    p.root = PIXEL;
    p.specs = specs;
    p.n_specs = 2;
    p.emit = noop_emit;
    melt_probe_set *set = (melt_probe_set *)1;
    melt_error err = {0};
    assert_int_equal(melt_probe_set_open(&set, &p, &err), MELT_EINVAL);
    assert_null(set);
    assert_non_null(strstr(err.msg, "thermals"));
    assert_non_null(strstr(err.msg, "cpufreq"));
    specs[1] = (melt_probe_spec){"thermal", 5000, NULL};
    assert_int_equal(melt_probe_set_open(&set, &p, &err), MELT_EINVAL);   /* rate too high */
    specs[1] = (melt_probe_spec){"power_supply", 1, "sign=bogus"};
    assert_int_equal(melt_probe_set_open(&set, &p, &err), MELT_EINVAL);   /* bad option */
    assert_non_null(strstr(err.msg, "bogus"));
}

static void probe_set_with_no_present_probe_idles_and_stops(void **state)
{
    (void)state;
    const char *root = scratch_root("set-empty");
    melt_probe_spec specs[] = {{"rapl", 10, NULL}};
    melt_probe_set_params p = melt_probe_set_default_params();
    p.root = root;
    p.specs = specs;
    p.n_specs = 1;
    p.emit = noop_emit;
    melt_probe_set *set = NULL;
    melt_error err = {0};
    assert_int_equal(melt_probe_set_open(&set, &p, &err), 0);
    assert_int_equal(melt_probe_set_count(set), 0);
    assert_int_equal(melt_probe_set_start(set, &err), 0);
    melt_probe_set_close(set);      /* stops the idle thread */
    scratch_done(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(registry_lists_every_probe_with_complete_ops),
        cmocka_unit_test(probe_rejects_unknown_option),
        cmocka_unit_test(procfs_reads_fake_process_cpu_time_and_memory),
        cmocka_unit_test(procfs_system_busy_is_the_delta_between_samples),
        cmocka_unit_test(procfs_on_real_proc_sees_own_rss_and_cpu_time_grow),
        cmocka_unit_test(procfs_missing_process_is_not_present),
        cmocka_unit_test(thermal_pixel_zones_in_millicelsius),
        cmocka_unit_test(thermal_x86_sanitizes_types_and_numbers_duplicates),
        cmocka_unit_test(thermal_jetson_skips_powered_off_zones),
        cmocka_unit_test(cpufreq_pixel_reports_three_policies_in_khz),
        cmocka_unit_test(cpufreq_jetson_and_x86_policies),
        cmocka_unit_test(cpufreq_throttle_is_busy_with_low_clock_or_cap),
        cmocka_unit_test(power_supply_pixel_negative_current_is_discharge),
        cmocka_unit_test(power_supply_laptop_positive_current_is_discharge),
        cmocka_unit_test(power_supply_sign_learned_while_discharging_both_vendors),
        cmocka_unit_test(hwmon_jetson_ina3221_rails_in_milliwatts),
        cmocka_unit_test(hwmon_reads_old_iio_layout),
        cmocka_unit_test(rapl_laptop_energy_and_power_between_samples),
        cmocka_unit_test(rapl_counter_wraps_past_max_energy_range),
        cmocka_unit_test(absent_probes_are_not_present_with_a_reason),
        cmocka_unit_test(probe_set_reports_each_absent_probe_once),
        cmocka_unit_test(nvml_absent_library_is_not_present),
        cmocka_unit_test(corrupted_tree_emits_nothing_bad_and_never_crashes),
        cmocka_unit_test(probe_set_samples_at_10hz_and_measures_its_cpu),
        cmocka_unit_test(probe_set_rejects_unknown_probe_naming_known_ones),
        cmocka_unit_test(probe_set_with_no_present_probe_idles_and_stops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

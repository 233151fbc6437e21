/* melt-agent --describe [--root DIR]: what this device is, as one JSON
 * object on stdout (for `melt devices` and the runner's stored device
 * info; docs/devices.md, "melt devices"):
 *
 *   agent, proto, host, os, kernel, arch, model, cpu, cores,
 *   mem_total_bytes, mem_available_bytes, governor {policyN: name},
 *   temps_c {zone type: °C}, and when present
 *   android {release, sdk, model, abi, battery_level, thermal_status}
 *   jetson {l4t, nvpmodel, nvpmodel_id, jetson_clocks}
 *
 * Files are read below DIR (default /: /proc, /sys, /etc), so tests point
 * it at a fake tree; tools (getprop, dumpsys, nvpmodel, jetson_clocks) are
 * run from PATH (tool_output, with a time limit) when they exist. Nothing here is required:
 * what cannot be read is left out. libc only. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <paths.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "melt/cpu.h"
#include "melt_version.h"

#define DESCRIBE_PROTO 1
#define MAX_ITEMS 64

/* ---- a tiny JSON writer (members in order, strings escaped) ---- */

typedef struct jw {
    FILE *f;
    int depth;
    bool first[8];
} jw;

/* Length (2..4) of the valid UTF-8 sequence at p (p[0] >= 0x80), 0 when
 * there is none: a stray byte, a cut or overlong sequence, a surrogate. */
static size_t utf8_len(const unsigned char *p)
{
    const size_t n = (p[0] & 0xe0) == 0xc0 ? 2 : (p[0] & 0xf0) == 0xe0 ? 3
                   : (p[0] & 0xf8) == 0xf0 ? 4 : 0;
    if (n == 0)
        return 0;
    const unsigned min = n == 2 ? 0x80 : n == 3 ? 0x800 : 0x10000;   /* no overlong forms */
    unsigned cp = p[0] & (0x7fu >> n);
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)   /* also stops at the NUL */
            return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    return cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) ? 0 : n;
}

/* Strings come from files and tools (another charset, a line cut by the
 * buffer): bytes that are not UTF-8 become U+FFFD so the host can parse
 * the object at all. */
static void jw_str(jw *w, const char *s)
{
    fputc('"', w->f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        size_t l;
        if (*p == '"' || *p == '\\')
            fprintf(w->f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(w->f, "\\u%04x", *p);
        else if (*p < 0x80)
            fputc(*p, w->f);
        else if ((l = utf8_len(p)) > 0) {
            fwrite(p, 1, l, w->f);
            p += l - 1;
        } else
            fputs("\\ufffd", w->f);
    }
    fputc('"', w->f);
}

static void jw_key(jw *w, const char *k)
{
    if (!w->first[w->depth])
        fputc(',', w->f);
    w->first[w->depth] = false;
    jw_str(w, k);
    fputc(':', w->f);
}

static void jw_open(jw *w, const char *k)
{
    if (k)
        jw_key(w, k);
    fputc('{', w->f);
    w->first[++w->depth] = true;
}

static void jw_close(jw *w)
{
    fputc('}', w->f);
    w->depth--;
}

static void jw_kstr(jw *w, const char *k, const char *v)
{
    if (!v || !*v)
        return;
    jw_key(w, k);
    jw_str(w, v);
}

static void jw_knum(jw *w, const char *k, double v)
{
    jw_key(w, k);
    fprintf(w->f, "%.10g", v);
}

/* ---- reading ---- */

/* The first line of root/rel (trimmed) into buf; false when unreadable. */
static bool read_line_at(const char *root, const char *rel, char *buf, size_t n)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s%s", root, rel);
    buf[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    bool ok = fgets(buf, (int)n, f) != NULL;
    fclose(f);
    size_t l = strlen(buf);
    while (l && (isspace((unsigned char)buf[l - 1]) || buf[l - 1] == '\0'))
        buf[--l] = '\0';
    return ok && l > 0;
}

/* A tool that does not answer within this time is killed and counts as
 * absent: describe must not hang on a wedged dumpsys or nvpmodel. */
#define TOOL_TIMEOUT_MS 3000

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The output of a shell command (stdout; at most n-1 bytes kept) into
 * out, NUL-terminated; killed with its children after TOOL_TIMEOUT_MS.
 * Returns the bytes kept, or -1 when it could not run. */
static ssize_t tool_output(const char *cmd, char *out, size_t n)
{
    int fd[2];
    out[0] = '\0';
    if (pipe(fd) < 0)
        return -1;
    const pid_t pid = fork();
    if (pid < 0) {
        close(fd[0]);
        close(fd[1]);
        return -1;
    }
    if (pid == 0) {   /* own process group, so a timeout kills the pipeline */
        setpgid(0, 0);
        dup2(fd[1], STDOUT_FILENO);
        close(fd[0]);
        close(fd[1]);
        const int devnull = open("/dev/null", O_RDWR);
        if (devnull >= 0) {
            dup2(devnull, STDIN_FILENO);
            dup2(devnull, STDERR_FILENO);
        }
        execl(_PATH_BSHELL, "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    close(fd[1]);
    size_t len = 0;
    const int64_t deadline = mono_ms() + TOOL_TIMEOUT_MS;
    bool timed_out = false;
    for (;;) {
        const int64_t left = deadline - mono_ms();
        if (left <= 0) {
            timed_out = true;
            break;
        }
        struct pollfd pf = {.fd = fd[0], .events = POLLIN};
        const int pr = poll(&pf, 1, (int)left);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            continue;   /* re-checks the deadline */
        char chunk[512];
        const ssize_t k = read(fd[0], chunk, sizeof chunk);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        const size_t keep = len + 1 < n ? ((size_t)k < n - 1 - len ? (size_t)k : n - 1 - len) : 0;
        memcpy(out + len, chunk, keep);
        len += keep;
    }
    close(fd[0]);
    if (timed_out)
        kill(-pid, SIGKILL);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    out[len] = '\0';
    return timed_out ? -1 : (ssize_t)len;
}

/* The first output line of a shell command into buf (trimmed). */
static bool tool_line(const char *cmd, char *buf, size_t n)
{
    char all[1024];
    buf[0] = '\0';
    if (tool_output(cmd, all, sizeof all) <= 0)
        return false;
    size_t l = strcspn(all, "\n");
    if (l >= n)
        l = n - 1;
    memcpy(buf, all, l);
    buf[l] = '\0';
    while (l && isspace((unsigned char)buf[l - 1]))
        buf[--l] = '\0';
    return l > 0;
}

static bool have_tool(const char *name)
{
    const char *path = getenv("PATH");
    char buf[PATH_MAX];
    for (const char *p = path ? path : "/usr/bin:/bin"; *p;) {
        size_t l = strcspn(p, ":");
        snprintf(buf, sizeof buf, "%.*s/%s", (int)l, p, name);
        if (l && access(buf, X_OK) == 0)
            return true;
        p += l + (p[l] == ':');
    }
    return false;
}

/* "NAME=value" of /etc/os-release (quotes dropped) into buf. */
static bool os_release(const char *root, const char *key, char *buf, size_t n)
{
    char path[PATH_MAX], line[512];
    snprintf(path, sizeof path, "%s/etc/os-release", root);
    FILE *f = fopen(path, "r");
    buf[0] = '\0';
    if (!f)
        return false;
    const size_t k = strlen(key);
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, k) != 0 || line[k] != '=')
            continue;
        char *v = line + k + 1;
        v[strcspn(v, "\n")] = '\0';
        size_t l = strlen(v);
        if (l >= 2 && (v[0] == '"' || v[0] == '\'') && v[l - 1] == v[0]) {
            v[l - 1] = '\0';
            v++;
        }
        snprintf(buf, n, "%.*s", (int)(n - 1), v);
        break;
    }
    fclose(f);
    return buf[0] != '\0';
}

static void meminfo(const char *root, jw *w)
{
    char path[PATH_MAX], line[256];
    snprintf(path, sizeof path, "%s/proc/meminfo", root);
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    unsigned long long kb;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "MemTotal: %llu kB", &kb) == 1)
            jw_knum(w, "mem_total_bytes", (double)kb * 1024);
        else if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
            jw_knum(w, "mem_available_bytes", (double)kb * 1024);
    }
    fclose(f);
}

/* Online CPUs from sys/devices/system/cpu/online ("0-7,9"), else sysconf. */
static int count_cores(const char *root)
{
    char buf[256];
    if (read_line_at(root, "/sys/devices/system/cpu/online", buf, sizeof buf)) {
        int n = 0;
        for (char *p = buf; *p;) {
            char *end;
            long a = strtol(p, &end, 10), b = a;
            if (end == p)
                break;
            if (*end == '-')
                b = strtol(end + 1, &end, 10);
            n += b >= a ? (int)(b - a + 1) : 0;
            p = *end == ',' ? end + 1 : end;
            if (*end != ',' )
                break;
        }
        if (n > 0)
            return n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The entries of root/rel starting with prefix, sorted (malloc'd names). */
static size_t list_dir(const char *root, const char *rel, const char *prefix, char **names,
                       size_t max)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s%s", root, rel);
    DIR *d = opendir(path);
    size_t n = 0;
    if (!d)
        return 0;
    for (struct dirent *e; n < max && (e = readdir(d));)
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0 && (names[n] = strdup(e->d_name)))
            n++;
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str);
    return n;
}

static void governors(const char *root, jw *w)
{
    char *pol[MAX_ITEMS], rel[PATH_MAX], gov[64];
    size_t n = list_dir(root, "/sys/devices/system/cpu/cpufreq", "policy", pol, MAX_ITEMS);
    bool opened = false;
    for (size_t i = 0; i < n; i++) {
        snprintf(rel, sizeof rel, "/sys/devices/system/cpu/cpufreq/%s/scaling_governor", pol[i]);
        if (read_line_at(root, rel, gov, sizeof gov)) {
            if (!opened)
                jw_open(w, "governor");
            opened = true;
            jw_kstr(w, pol[i], gov);
        }
        free(pol[i]);
    }
    if (opened)
        jw_close(w);
}

static void temperatures(const char *root, jw *w)
{
    char *zones[MAX_ITEMS], rel[PATH_MAX], type[96], temp[32];
    static char seen[MAX_ITEMS][96];   /* keys written so far */
    size_t n_seen = 0;
    size_t n = list_dir(root, "/sys/class/thermal", "thermal_zone", zones, MAX_ITEMS);
    bool opened = false;
    for (size_t i = 0; i < n; i++) {
        snprintf(rel, sizeof rel, "/sys/class/thermal/%s/temp", zones[i]);
        bool ok = read_line_at(root, rel, temp, sizeof temp);
        snprintf(rel, sizeof rel, "/sys/class/thermal/%s/type", zones[i]);
        if (ok && !read_line_at(root, rel, type, sizeof type))
            snprintf(type, sizeof type, "%s", zones[i]);
        char *end;
        long mc = strtol(temp, &end, 10);
        if (ok && end != temp && mc > -100000) {   /* -256 C: a sensor switched off */
            if (!opened)
                jw_open(w, "temps_c");
            opened = true;
            /* zones sharing a type (several acpitz on a PC) get their
             * zone's name appended, so no key repeats */
            bool dup = false;
            for (size_t k = 0; k < n_seen && !dup; k++)
                dup = strcmp(seen[k], type) == 0;
            char key[96];
            if (dup) {
                const int len = (int)strnlen(type, 60);
                snprintf(key, sizeof key, "%.*s.%.30s", len, type, zones[i]);
            } else {
                snprintf(key, sizeof key, "%s", type);
            }
            if (n_seen < MAX_ITEMS)
                snprintf(seen[n_seen++], sizeof seen[0], "%s", key);
            jw_knum(w, key, (double)mc / 1000.0);
        }
        free(zones[i]);
    }
    if (opened)
        jw_close(w);
}

static void android(jw *w)
{
    if (!have_tool("getprop"))
        return;
    char release[64], sdk[16], model[128], abi[64], buf[256];
    tool_line("getprop ro.build.version.release 2>/dev/null", release, sizeof release);
    tool_line("getprop ro.build.version.sdk 2>/dev/null", sdk, sizeof sdk);
    tool_line("getprop ro.product.model 2>/dev/null", model, sizeof model);
    tool_line("getprop ro.product.cpu.abi 2>/dev/null", abi, sizeof abi);
    if (!release[0] && !model[0] && !abi[0])
        return;
    jw_open(w, "android");
    jw_kstr(w, "release", release);
    jw_kstr(w, "sdk", sdk);
    jw_kstr(w, "model", model);
    jw_kstr(w, "abi", abi);
    if (have_tool("dumpsys")) {
        if (tool_line("dumpsys battery 2>/dev/null | grep 'level:'", buf, sizeof buf)) {
            const char *v = strchr(buf, ':');
            if (v)
                jw_knum(w, "battery_level", strtod(v + 1, NULL));
        }
        if (tool_line("dumpsys thermalservice 2>/dev/null | grep 'Thermal Status:'", buf,
                      sizeof buf)) {
            const char *v = strchr(buf, ':');
            if (v)
                jw_knum(w, "thermal_status", strtod(v + 1, NULL));
        }
    }
    jw_close(w);
}

/* "# R35 (release), REVISION: 4.1, GCID: ..." -> "35.4.1" */
static bool l4t_version(const char *root, char *out, size_t n)
{
    char line[256];
    int major = 0;
    char rev[32] = "";
    if (!read_line_at(root, "/etc/nv_tegra_release", line, sizeof line))
        return false;
    const char *r = strstr(line, "R");
    const char *v = strstr(line, "REVISION:");
    if (!r || sscanf(r, "R%d", &major) != 1 || !v || sscanf(v, "REVISION: %31[0-9.]", rev) != 1)
        return snprintf(out, n, "%s", line) > 0;
    snprintf(out, n, "%d.%s", major, rev);
    return true;
}

/* jetson_clocks --show: "on" when every CPU runs pinned (MinFreq equal
 * to MaxFreq), else "off". */
static const char *jetson_clocks_state(void)
{
    static char all[16384];   /* describe runs once per process */
    if (tool_output("jetson_clocks --show 2>/dev/null", all, sizeof all) <= 0)
        return NULL;
    int cpus = 0, pinned = 0;
    char *save = NULL;
    for (char *line = strtok_r(all, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        long long lo, hi;
        const char *mn = strstr(line, "MinFreq="), *mx = strstr(line, "MaxFreq=");
        if (strncmp(line, "cpu", 3) != 0 || !mn || !mx)
            continue;
        lo = strtoll(mn + 8, NULL, 10);
        hi = strtoll(mx + 8, NULL, 10);
        cpus++;
        pinned += lo == hi && lo > 0;
    }
    return cpus == 0 ? NULL : pinned == cpus ? "on" : "off";
}

static void jetson(const char *root, jw *w)
{
    char l4t[128] = "", mode[128] = "", id[16] = "";
    const bool has_l4t = l4t_version(root, l4t, sizeof l4t);
    const bool has_nvp = have_tool("nvpmodel");
    const bool has_jc = have_tool("jetson_clocks");
    if (!has_l4t && !has_nvp && !has_jc)
        return;
    jw_open(w, "jetson");
    jw_kstr(w, "l4t", l4t);
    if (has_nvp) {
        /* "NV Power Mode: MAXN" then the mode's number */
        char all[4096];
        char *save = NULL;
        if (tool_output("nvpmodel -q 2>/dev/null", all, sizeof all) <= 0)
            all[0] = '\0';
        for (char *line = strtok_r(all, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
            line[strcspn(line, "\r")] = '\0';
            const char *m = strstr(line, "Power Mode:");
            if (m) {
                m += strlen("Power Mode:");
                while (*m == ' ')
                    m++;
                snprintf(mode, sizeof mode, "%s", m);
            } else if (mode[0] && !id[0] && isdigit((unsigned char)line[0])) {
                snprintf(id, sizeof id, "%.15s", line);
            }
        }
        jw_kstr(w, "nvpmodel", mode);
        if (id[0])
            jw_knum(w, "nvpmodel_id", strtod(id, NULL));
    }
    if (has_jc)
        jw_kstr(w, "jetson_clocks", jetson_clocks_state());
    jw_close(w);
}

/* The board or product name: device tree, DMI, else Android's model. */
static void model_name(const char *root, char *buf, size_t n)
{
    if (read_line_at(root, "/proc/device-tree/model", buf, n) ||
        read_line_at(root, "/sys/firmware/devicetree/base/model", buf, n))
        return;
    if (read_line_at(root, "/sys/class/dmi/id/product_name", buf, n))
        return;
    if (have_tool("getprop"))
        tool_line("getprop ro.product.model 2>/dev/null", buf, n);
}

static void cpu_name(const char *root, char *buf, size_t n)
{
    char path[PATH_MAX], line[512];
    snprintf(path, sizeof path, "%s/proc/cpuinfo", root);
    buf[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    while (fgets(line, sizeof line, f)) {
        /* x86 "model name", arm "Hardware" / "Processor" / "CPU part" */
        if (strncmp(line, "model name", 10) == 0 || strncmp(line, "Hardware", 8) == 0 ||
            (!buf[0] && strncmp(line, "Processor", 9) == 0)) {
            char *v = strchr(line, ':');
            if (!v)
                continue;
            v++;
            while (*v == ' ' || *v == '\t')
                v++;
            v[strcspn(v, "\n")] = '\0';
            snprintf(buf, n, "%s", v);
            if (strncmp(line, "model name", 10) == 0 || strncmp(line, "Hardware", 8) == 0)
                break;
        }
    }
    fclose(f);
}

int agent_describe(int argc, char **argv)
{
    const char *root = "";
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--root") == 0 && i + 1 < argc) {
            root = argv[++i];
            if (strcmp(root, "/") == 0)
                root = "";
        } else {
            fprintf(stderr, "melt-agent: usage: %s --describe [--root DIR]\n", argv[0]);
            return 2;
        }
    }
    jw w = {.f = stdout};
    struct utsname u;
    const bool have_u = uname(&u) == 0;
    char os[256] = "", buf[256];
    if (os_release(root, "PRETTY_NAME", buf, sizeof buf))
        snprintf(os, sizeof os, "%s", buf);
    else if (have_tool("getprop") &&
             tool_line("getprop ro.build.version.release 2>/dev/null", buf, sizeof buf))
        snprintf(os, sizeof os, "Android %s", buf);
    else if (have_u)
        snprintf(os, sizeof os, "%s", u.sysname);

    jw_open(&w, NULL);
    jw_kstr(&w, "agent", MELT_VERSION);
    jw_knum(&w, "proto", DESCRIBE_PROTO);
    if (have_u) {
        jw_kstr(&w, "host", u.nodename);
        jw_kstr(&w, "os", os);
        jw_kstr(&w, "kernel", u.release);
        jw_kstr(&w, "arch", u.machine);
    }
    model_name(root, buf, sizeof buf);
    jw_kstr(&w, "model", buf);
    cpu_name(root, buf, sizeof buf);
    if (!buf[0] && !*root)
        melt_cpu_model_name(buf, sizeof buf);
    jw_kstr(&w, "cpu", buf);
    if (!*root) {
        melt_cpu_features_str(melt_cpu_detect(), buf, sizeof buf);
        jw_kstr(&w, "features", buf);
    }
    jw_knum(&w, "cores", count_cores(root));
    meminfo(root, &w);
    governors(root, &w);
    temperatures(root, &w);
    android(&w);
    jetson(root, &w);
    jw_close(&w);
    fputc('\n', stdout);
    return fflush(stdout) == 0 ? 0 : 1;
}

/* Bounded file reads and strict number parsing for the probes. */
#include "probes/probe_util.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int probe_path(char *buf, size_t n, const char *root, const char *fmt, ...)
{
    if (!root || !*root) root = "/";
    size_t rl = strlen(root);
    while (rl > 0 && root[rl - 1] == '/') rl--;     /* "/" -> "" */
    if (rl + 1 >= n) return MELT_EINVAL;
    memcpy(buf, root, rl);
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(buf + rl, n - rl, fmt, ap);
    va_end(ap);
    if (w < 0 || (size_t)w >= n - rl) return MELT_EINVAL;
    return 0;
}

int probe_fmt(char *buf, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(buf, n, fmt, ap);
    va_end(ap);
    return w < 0 || (size_t)w >= n ? MELT_EINVAL : 0;
}

long probe_read(const char *path, char *buf, size_t cap)
{
    if (cap == 0) return MELT_EINVAL;
    buf[0] = '\0';
    int fd;
    do fd = open(path, O_RDONLY | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) return errno == ENOENT || errno == ENOTDIR ? MELT_ENOTFOUND : MELT_EIO;
    size_t got = 0;
    while (got < cap - 1) {
        ssize_t r = read(fd, buf + got, cap - 1 - got);
        if (r < 0) {
            if (errno == EINTR) continue;
            close(fd);
            buf[got] = '\0';
            return MELT_EIO;
        }
        if (r == 0) break;
        got += (size_t)r;
    }
    close(fd);
    buf[got] = '\0';
    return (long)got;
}

int probe_read_line(const char *path, char *buf, size_t cap)
{
    long r = probe_read(path, buf, cap);
    if (r < 0) return (int)r;
    buf[strcspn(buf, "\n")] = '\0';
    size_t l = strlen(buf);
    while (l > 0 && isspace((unsigned char)buf[l - 1])) buf[--l] = '\0';
    return 0;
}

int probe_parse_i64(const char *s, const char **end, int64_t *out)
{
    while (*s == ' ' || *s == '\t') s++;
    int neg = 0;
    if (*s == '-' || *s == '+') neg = *s++ == '-';
    if (!isdigit((unsigned char)*s)) return MELT_EFORMAT;
    uint64_t v = 0;
    const uint64_t lim = neg ? (uint64_t)INT64_MAX + 1u : (uint64_t)INT64_MAX;
    while (isdigit((unsigned char)*s)) {
        unsigned d = (unsigned)(*s++ - '0');
        if (v > (lim - d) / 10) return MELT_EFORMAT;
        v = v * 10 + d;
    }
    if (end) *end = s;
    if (neg) *out = v == (uint64_t)INT64_MAX + 1u ? INT64_MIN : -(int64_t)v;
    else *out = (int64_t)v;
    return 0;
}

int probe_read_i64(const char *path, int64_t *out)
{
    char buf[64];
    long r = probe_read(path, buf, sizeof buf);
    if (r < 0) return (int)r;
    if (r == (long)sizeof buf - 1) return MELT_EFORMAT;   /* longer than any number */
    const char *end;
    int rc = probe_parse_i64(buf, &end, out);
    if (rc) return rc;
    while (isspace((unsigned char)*end)) end++;
    return *end ? MELT_EFORMAT : 0;
}

int probe_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int probe_exists(const char *path)
{
    return access(path, F_OK) == 0;
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

int probe_list_numbered(const char *dir, const char *prefix, int *idx, int cap)
{
    DIR *d = opendir(dir);
    if (!d) return MELT_ENOTFOUND;
    size_t pl = strlen(prefix);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < cap) {
        if (strncmp(e->d_name, prefix, pl) != 0) continue;
        const char *p = e->d_name + pl;
        if (!isdigit((unsigned char)*p)) continue;
        long v = 0;
        while (isdigit((unsigned char)*p) && v < 1000000) v = v * 10 + (*p++ - '0');
        if (*p || v >= 1000000) continue;     /* "policy0" yes, "policy0x" no */
        idx[n++] = (int)v;
    }
    closedir(d);
    qsort(idx, (size_t)n, sizeof *idx, cmp_int);
    return n;
}

/* Find key in "k=v,k=v": pointer to its value and the value's length. */
static const char *opt_find(const char *o, const char *key, size_t *vlen)
{
    size_t kl = strlen(key);
    while (o && *o) {
        const char *comma = strchr(o, ',');
        size_t len = comma ? (size_t)(comma - o) : strlen(o);
        const char *eq = memchr(o, '=', len);
        size_t klen = eq ? (size_t)(eq - o) : len;
        if (klen == kl && strncmp(o, key, kl) == 0) {
            *vlen = eq ? len - klen - 1 : 0;
            return eq ? eq + 1 : o + len;
        }
        o = comma ? comma + 1 : NULL;
    }
    return NULL;
}

int probe_opt(const char *options, const char *key, char *val, size_t n)
{
    size_t vl;
    const char *v = opt_find(options, key, &vl);
    if (!v) return 0;
    if (vl >= n) vl = n - 1;
    memcpy(val, v, vl);
    val[vl] = '\0';
    return 1;
}

int probe_opts_check(const char *probe, const char *options, const char *const *known,
                     melt_error *err)
{
    const char *o = options;
    while (o && *o) {
        const char *comma = strchr(o, ',');
        size_t len = comma ? (size_t)(comma - o) : strlen(o);
        const char *eq = memchr(o, '=', len);
        size_t klen = eq ? (size_t)(eq - o) : len;
        int ok = 0;
        for (const char *const *k = known; *k; k++)
            if (strlen(*k) == klen && strncmp(*k, o, klen) == 0) ok = 1;
        if (!ok && klen > 0)
            return melt_errorf(err, MELT_EINVAL, "probe %s: unknown option '%.*s'", probe,
                               (int)klen, o);
        o = comma ? comma + 1 : NULL;
    }
    return 0;
}

void probe_sanitize(char *dst, size_t n, const char *src)
{
    size_t i = 0;
    for (; src[i] && i + 1 < n; i++) {
        unsigned char c = (unsigned char)src[i];
        dst[i] = (isalnum(c) || c == '_' || c == '.' || c == '-') ? (char)c : '_';
    }
    dst[i] = '\0';
}

void probe_emit(melt_probe_emit_fn emit, void *ctx, const char *probe, int64_t now_ns,
                const char *key, double value, const char *unit)
{
    melt_event ev;
    memset(&ev, 0, sizeof ev);
    ev.kind = MELT_EV_SAMPLE;
    ev.t_ns = now_ns;
    ev.req = ev.i = ev.id = -1;
    ev.value = value;
    ev.has_value = true;
    snprintf(ev.name, sizeof ev.name, "%s", probe);
    snprintf(ev.key, sizeof ev.key, "%s", key);
    snprintf(ev.unit, sizeof ev.unit, "%s", unit);
    emit(ctx, &ev);
}

/* Experiment files: YAML tree → validated, expanded melt_experiment.
 * docs/experiment.md is the user's reference; keep the two in step. */
#include "melt/experiment.h"
#include "melt/fs.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "melt/model.h"
#include "runner/yaml_tree.h"

typedef struct pctx {
    const char *fname;
    const char *dir;
    melt_error *err;
} pctx;

#define PATH_MAX_LEN 160

/* ---- messages ---- */

/* "FILE:L:C: PATH: message" (PATH left out when empty). */
__attribute__((format(printf, 5, 6)))
static int fail_at(pctx *P, const ynode *n, int code, const char *path, const char *fmt, ...)
{
    char msg[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    int line = n ? n->line : 1, col = n ? n->col : 1;
    if (path && *path)
        return melt_errorf(P->err, code, "%s:%d:%d: %s: %s", P->fname, line, col, path, msg);
    return melt_errorf(P->err, code, "%s:%d:%d: %s", P->fname, line, col, msg);
}

static int oom(pctx *P)
{
    return melt_errorf(P->err, MELT_ENOMEM, "%s: out of memory", P->fname);
}

/* What a node holds, for "got ..." (one line, at most ~40 characters). */
static const char *describe(const ynode *n, char *buf, size_t cap)
{
    if (!n)
        return "nothing";
    if (n->kind == YNODE_SEQ)
        return "a list";
    if (n->kind == YNODE_MAP)
        return "a mapping";
    if (ytree_is_null(n))
        return "null";
    size_t o = 0;
    buf[o++] = '\'';
    for (size_t i = 0; i < n->len && o + 6 < cap; i++) {
        unsigned char c = (unsigned char)n->str[i];
        if (i == 40) {
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        buf[o++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    buf[o++] = '\'';
    buf[o] = '\0';
    return buf;
}

/* vsnprintf into a PATH_MAX_LEN buffer; a too-long path is cut, which only
 * shortens a message. */
__attribute__((format(printf, 2, 3)))
static void path_printf(char *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, PATH_MAX_LEN, fmt, ap);
    va_end(ap);
}

static void join(char *out, const char *parent, const char *key)
{
    if (parent && *parent)
        path_printf(out, "%s.%s", parent, key);
    else
        path_printf(out, "%s", key);
}

static void join_index(char *out, const char *parent, size_t i)
{
    path_printf(out, "%s[%zu]", parent, i);
}

/* ---- unknown keys ---- */

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64)
        return (size_t)-1;
    size_t row[65];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* The known word nearest to word, or NULL when none is near enough. */
static const char *nearest(const char *word, const char *const *known)
{
    const char *best = NULL;
    size_t best_d = (size_t)-1;
    for (size_t i = 0; known[i]; i++) {
        size_t d = edit_distance(word, known[i]);
        if (d < best_d) {
            best_d = d;
            best = known[i];
        }
    }
    size_t limit = 1 + strlen(word) / 3;
    if (limit > 3)
        limit = 3;
    return best_d <= limit ? best : NULL;
}

static void list_words(char *buf, size_t cap, const char *const *words)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; words[i] && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%s", i ? ", " : "", words[i]);
}

/* "unknown WHAT 'x' (did you mean 'y'?)" or "(one of: ...)". */
static int unknown_word(pctx *P, const ynode *at, const char *path, const char *what,
                        const char *word, const char *const *known)
{
    char shown[64];
    const char *near = nearest(word, known);
    if (near)
        return fail_at(P, at, MELT_EINVAL, path, "unknown %s %s (did you mean '%s'?)", what,
                       describe(at, shown, sizeof shown), near);
    char all[256];
    list_words(all, sizeof all, known);
    return fail_at(P, at, MELT_EINVAL, path, "unknown %s %s (one of: %s)", what,
                   describe(at, shown, sizeof shown), all);
}

static bool in_list(const char *s, const char *const *list)
{
    for (size_t i = 0; list[i]; i++)
        if (strcmp(s, list[i]) == 0)
            return true;
    return false;
}

/* Every key of map must be in known. */
static int check_keys(pctx *P, const ynode *map, const char *path, const char *const *known)
{
    for (size_t i = 0; i < map->n; i++) {
        const ynode *k = map->items[2 * i];
        if (strlen(k->str) != k->len || !in_list(k->str, known))
            return unknown_word(P, k, path, "key", k->str, known);
    }
    return 0;
}

/* ---- typed values ---- */

static int expect_map(pctx *P, const ynode *n, const char *path, bool null_ok)
{
    char shown[64];
    if (n->kind == YNODE_MAP || (null_ok && ytree_is_null(n)))
        return 0;
    return fail_at(P, n, MELT_EINVAL, path, "expected a mapping of keys, got %s",
                   describe(n, shown, sizeof shown));
}

static int expect_list(pctx *P, const ynode *n, const char *path)
{
    char shown[64];
    if (n->kind == YNODE_SEQ && n->n > 0)
        return 0;
    if (n->kind == YNODE_SEQ)
        return fail_at(P, n, MELT_EINVAL, path, "expected a non-empty list, got an empty one");
    return fail_at(P, n, MELT_EINVAL, path, "expected a non-empty list, got %s",
                   describe(n, shown, sizeof shown));
}

static const char *int_kind(long long lo)
{
    return lo == 1 ? "a positive integer" : lo == 0 ? "a non-negative integer" : "an integer";
}

static int get_int(pctx *P, const ynode *n, const char *path, long long lo, long long hi,
                   long long *out)
{
    char shown[64];
    if (n->kind == YNODE_SCALAR && n->plain && n->len > 0 && strlen(n->str) == n->len) {
        const char *s = n->str;
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        bool digits = (s[0] >= '0' && s[0] <= '9') ||
                      (s[0] == '-' && s[1] >= '0' && s[1] <= '9');
        if (digits && !*end && errno != ERANGE) {
            if (v < lo)
                return fail_at(P, n, MELT_EINVAL, path, "expected %s, got %s", int_kind(lo),
                               describe(n, shown, sizeof shown));
            if (v > hi)
                return fail_at(P, n, MELT_EINVAL, path, "expected at most %lld, got %s", hi,
                               describe(n, shown, sizeof shown));
            *out = v;
            return 0;
        }
    }
    return fail_at(P, n, MELT_EINVAL, path, "expected %s, got %s", int_kind(lo),
                   describe(n, shown, sizeof shown));
}

static int get_i32(pctx *P, const ynode *n, const char *path, long long lo, long long hi,
                   int32_t *out)
{
    long long v;
    int rc = get_int(P, n, path, lo, hi, &v);
    if (rc == 0)
        *out = (int32_t)v;
    return rc;
}

static int get_u64(pctx *P, const ynode *n, const char *path, uint64_t *out)
{
    char shown[64];
    if (n->kind == YNODE_SCALAR && n->plain && n->len > 0 && n->str[0] >= '0' &&
        n->str[0] <= '9' && strlen(n->str) == n->len) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(n->str, &end, 10);
        if (!*end && errno != ERANGE) {
            *out = v;
            return 0;
        }
    }
    return fail_at(P, n, MELT_EINVAL, path, "expected a non-negative integer, got %s",
                   describe(n, shown, sizeof shown));
}

/* A finite number in [lo, hi] (lo excluded when lo_open). */
static int get_num(pctx *P, const ynode *n, const char *path, double lo, bool lo_open, double hi,
                   double *out)
{
    char shown[64];
    if (n->kind == YNODE_SCALAR && n->plain && n->len > 0 && strlen(n->str) == n->len) {
        const char *s = n->str;
        bool ok = true;
        for (const char *c = s; *c; c++)
            if (!strchr("0123456789+-.eE", *c))
                ok = false;
        char *end;
        errno = 0;
        double v = ok ? strtod(s, &end) : 0;
        if (ok && !*end && errno != ERANGE && isfinite(v)) {
            if (v < lo || (lo_open && v == lo))
                return fail_at(P, n, MELT_EINVAL, path, "expected a number %s %g, got %s",
                               lo_open ? "above" : "of at least", lo,
                               describe(n, shown, sizeof shown));
            if (v > hi)
                return fail_at(P, n, MELT_EINVAL, path, "expected a number of at most %g, got %s",
                               hi, describe(n, shown, sizeof shown));
            *out = v;
            return 0;
        }
    }
    return fail_at(P, n, MELT_EINVAL, path, "expected a number, got %s",
                   describe(n, shown, sizeof shown));
}

/* A non-empty string without NUL bytes (quoted or plain, not null). */
static int get_str(pctx *P, const ynode *n, const char *path, const char **out)
{
    char shown[64];
    if (n->kind == YNODE_SCALAR && !ytree_is_null(n) && n->len > 0 &&
        strlen(n->str) == n->len) {
        *out = n->str;
        return 0;
    }
    return fail_at(P, n, MELT_EINVAL, path, "expected a string, got %s",
                   describe(n, shown, sizeof shown));
}

/* get_str without control characters (one line: names, hosts, folders). */
static int get_line_str(pctx *P, const ynode *n, const char *path, const char **out)
{
    int rc = get_str(P, n, path, out);
    if (rc < 0)
        return rc;
    for (const unsigned char *c = (const unsigned char *)*out; *c; c++)
        if (*c < 0x20 || *c == 0x7f)
            return fail_at(P, n, MELT_EINVAL, path, "may not hold control characters");
    return 0;
}

static int get_word(pctx *P, const ynode *n, const char *path, const char *what,
                    const char *const *words, size_t *index)
{
    const char *s;
    int rc = get_str(P, n, path, &s);
    if (rc < 0)
        return rc;
    for (size_t i = 0; words[i]; i++)
        if (strcmp(s, words[i]) == 0) {
            *index = i;
            return 0;
        }
    return unknown_word(P, n, path, what, s, words);
}

/* An integer or a non-empty list of them: *vals malloc'd (caller frees). */
/* How one item of a scalar-or-list value is read into a long long. */
typedef struct list_item {
    long long lo, hi;              /* integers: the range */
    const char *what;              /* words: what they name, for messages */
    const char *const *words;      /* words: the NULL-terminated choices (index stored) */
} list_item;

static int get_list_item(pctx *P, const ynode *item, const char *path, const list_item *how,
                         long long *out)
{
    if (!how->words)
        return get_int(P, item, path, how->lo, how->hi, out);
    size_t idx;
    int rc = get_word(P, item, path, how->what, how->words, &idx);
    if (rc == 0)
        *out = (long long)idx;
    return rc;
}

/* A value that is one item or a list of items (lists expand into
 * variants): *vals gets each item, read as `how` says. */
static int get_list(pctx *P, const ynode *n, const char *path, const list_item *how,
                    long long **vals, size_t *count)
{
    *vals = NULL;
    *count = 0;
    if (n->kind == YNODE_SEQ) {
        int rc = expect_list(P, n, path);
        if (rc < 0)
            return rc;
    }
    size_t c = n->kind == YNODE_SEQ ? n->n : 1;
    long long *v = calloc(c, sizeof *v);
    if (!v)
        return oom(P);
    for (size_t i = 0; i < c; i++) {
        char sub[PATH_MAX_LEN];
        const ynode *item = n->kind == YNODE_SEQ ? n->items[i] : n;
        if (n->kind == YNODE_SEQ)
            join_index(sub, path, i);
        else
            snprintf(sub, sizeof sub, "%s", path);
        int rc = get_list_item(P, item, sub, how, &v[i]);
        if (rc < 0) {
            free(v);
            return rc;
        }
    }
    *vals = v;
    *count = c;
    return 0;
}

static int get_int_list(pctx *P, const ynode *n, const char *path, long long lo, long long hi,
                        long long **vals, size_t *count)
{
    const list_item how = {.lo = lo, .hi = hi};
    return get_list(P, n, path, &how, vals, count);
}

static int get_word_list(pctx *P, const ynode *n, const char *path, const char *what,
                         const char *const *words, long long **vals, size_t *count)
{
    const list_item how = {.what = what, .words = words};
    return get_list(P, n, path, &how, vals, count);
}

/* ---- names and paths ---- */

static bool name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-' || c == '+';
}

/* A user-given name that becomes part of cell ids. */
static int get_name(pctx *P, const ynode *n, const char *path, const char **out)
{
    int rc = get_str(P, n, path, out);
    if (rc < 0)
        return rc;
    size_t len = strlen(*out);
    bool ok = len <= MELT_EXP_NAME_MAX && strcmp(*out, ".") != 0 && strcmp(*out, "..") != 0;
    for (size_t i = 0; ok && i < len; i++)
        ok = name_char((*out)[i]);
    if (!ok) {
        char shown[64];
        return fail_at(P, n, MELT_EINVAL, path,
                       "%s is not a usable name (at most %d letters, digits, '.', '_', '-', '+')",
                       describe(n, shown, sizeof shown), MELT_EXP_NAME_MAX);
    }
    return 0;
}

/* s made into a name: other characters become '_', cut to the limit. */
static char *make_name(const char *s, size_t len)
{
    if (len > MELT_EXP_NAME_MAX)
        len = MELT_EXP_NAME_MAX;
    char *out = malloc(len + 2);
    if (!out)
        return NULL;
    for (size_t i = 0; i < len; i++)
        out[i] = name_char(s[i]) ? s[i] : '_';
    out[len] = '\0';
    if (len == 0 || strcmp(out, ".") == 0 || strcmp(out, "..") == 0) {
        out[0] = '_';
        out[1] = '\0';
    }
    return out;
}

/* The file name of path without its folder and last extension. */
static void stem(const char *path, const char **start, size_t *len)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strrchr(base, '.');
    *start = base;
    *len = dot && dot != base ? (size_t)(dot - base) : strlen(base);
}

static char *resolve_path(const char *dir, const char *rel)
{
    size_t lr = strlen(rel);
    if (rel[0] == '/' || !dir || strcmp(dir, ".") == 0 || !*dir) {
        char *p = malloc(lr + 1);
        if (p)
            memcpy(p, rel, lr + 1);
        return p;
    }
    size_t ld = strlen(dir);
    char *p = malloc(ld + lr + 2);
    if (p)
        snprintf(p, ld + lr + 2, "%s/%s", dir, rel);
    return p;
}

/* A file path value, resolved and checked to be a readable regular file. */
static int get_file(pctx *P, const ynode *n, const char *path, char **out)
{
    const char *rel;
    int rc = get_str(P, n, path, &rel);
    if (rc < 0)
        return rc;
    char *full = resolve_path(P->dir, rel);
    if (!full)
        return oom(P);
    struct stat st;
    if (stat(full, &st) != 0) {
        int e = errno;
        rc = fail_at(P, n, MELT_EIO, path, "cannot open '%s': %s", full, strerror(e));
        free(full);
        return rc;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = fail_at(P, n, MELT_EIO, path, "'%s' is not a regular file", full);
        free(full);
        return rc;
    }
    *out = full;
    return 0;
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p)
        memcpy(p, s, n);
    return p;
}

/* ---- sections ---- */

static const char *const top_keys[] = {"name", "description", "seed", "repetitions", "warmup",
                                       "cooldown", "devices", "engines", "models", "workloads",
                                       "sampling", "probes", NULL};

static int parse_cooldown(pctx *P, const ynode *n, melt_exp_cooldown *c)
{
    static const char *const keys[] = {"max_temp_c", "min_wait_s", "max_wait_s", NULL};
    int rc;
    if ((rc = expect_map(P, n, "cooldown", true)) < 0)
        return rc;
    if (n->kind != YNODE_MAP)
        return 0;
    if ((rc = check_keys(P, n, "cooldown", keys)) < 0)
        return rc;
    const ynode *v;
    if ((v = ytree_get(n, "max_temp_c")) &&
        (rc = get_num(P, v, "cooldown.max_temp_c", 0, true, 150, &c->max_temp_c)) < 0)
        return rc;
    if ((v = ytree_get(n, "min_wait_s")) &&
        (rc = get_num(P, v, "cooldown.min_wait_s", 0, false, 86400, &c->min_wait_s)) < 0)
        return rc;
    if ((v = ytree_get(n, "max_wait_s")) &&
        (rc = get_num(P, v, "cooldown.max_wait_s", 0, false, 86400, &c->max_wait_s)) < 0)
        return rc;
    if (c->max_wait_s < c->min_wait_s) {
        const ynode *at = ytree_get(n, "max_wait_s") ? ytree_get(n, "max_wait_s") : n;
        return fail_at(P, at, MELT_EINVAL, "cooldown.max_wait_s",
                       "%g is below min_wait_s (%g)", c->max_wait_s, c->min_wait_s);
    }
    return 0;
}

static const char *const transport_names[] = {"local", "ssh", "adb", "tcp", NULL};

const char *melt_transport_name(enum melt_transport_kind k)
{
    return (unsigned)k < 4 ? transport_names[k] : "?";
}

/* `android: {screen_off: BOOL, battery_unplug: BOOL}` of an adb device. */
static int parse_android(pctx *P, const ynode *n, const char *path, size_t transport,
                         melt_exp_device *d)
{
    static const char *const keys[] = {"screen_off", "battery_unplug", NULL};
    static const char *const bools[] = {"false", "true", NULL};
    char sub[PATH_MAX_LEN], item[PATH_MAX_LEN];
    join(sub, path, "android");
    if (transport != MELT_TRANSPORT_ADB)
        return fail_at(P, n, MELT_EINVAL, sub, "only for transport 'adb', not '%s'",
                       transport_names[transport]);
    int rc;
    if ((rc = expect_map(P, n, sub, false)) < 0 || (rc = check_keys(P, n, sub, keys)) < 0)
        return rc;
    bool *dst[2] = {&d->android_screen_off, &d->android_battery_unplug};
    for (size_t k = 0; k < 2; k++) {
        const ynode *v = ytree_get(n, keys[k]);
        size_t b = 0;
        if (!v)
            continue;
        join(item, sub, keys[k]);
        if ((rc = get_word(P, v, item, "value", bools, &b)) < 0)
            return rc;
        *dst[k] = b == 1;
    }
    return 0;
}

static int parse_device(pctx *P, const ynode *n, size_t idx, melt_exp_device *d)
{
    static const char *const keys[] = {"name", "transport", "serial", "host",
                                       "port", "user",      "workdir", "android", NULL};
    /* which keys each transport uses: serial, host, port, user */
    static const bool uses[4][4] = {
        {false, false, false, false}, /* local */
        {false, true, true, true},    /* ssh */
        {true, false, false, false},  /* adb */
        {false, true, true, false},   /* tcp */
    };
    static const char *const opt_keys[] = {"serial", "host", "port", "user"};
    char path[PATH_MAX_LEN], sub[PATH_MAX_LEN];
    join_index(path, "devices", idx);
    int rc;
    if ((rc = expect_map(P, n, path, false)) < 0 || (rc = check_keys(P, n, path, keys)) < 0)
        return rc;
    const ynode *v;
    size_t t = 0;
    if ((v = ytree_get(n, "transport"))) {
        join(sub, path, "transport");
        if ((rc = get_word(P, v, sub, "transport", transport_names, &t)) < 0)
            return rc;
    }
    d->transport = (enum melt_transport_kind)t;
    for (size_t k = 0; k < 4; k++) {
        if ((v = ytree_get(n, opt_keys[k])) && !uses[t][k]) {
            join(sub, path, opt_keys[k]);
            return fail_at(P, v, MELT_EINVAL, sub, "not used by transport '%s'",
                           transport_names[t]);
        }
    }
    const char *s;
    char **dst[4] = {&d->serial, &d->host, NULL, &d->user};
    for (size_t k = 0; k < 4; k++) {
        if (k == 2 || !(v = ytree_get(n, opt_keys[k])))
            continue;
        join(sub, path, opt_keys[k]);
        if ((rc = get_line_str(P, v, sub, &s)) < 0)
            return rc;
        if (s[0] == '-')
            return fail_at(P, v, MELT_EINVAL, sub, "may not start with '-'");
        if (!(*dst[k] = dup_str(s)))
            return oom(P);
    }
    if ((v = ytree_get(n, "port"))) {
        long long port;
        join(sub, path, "port");
        if ((rc = get_int(P, v, sub, 1, 65535, &port)) < 0)
            return rc;
        d->port = (int)port;
    }
    if ((v = ytree_get(n, "workdir"))) {
        join(sub, path, "workdir");
        if ((rc = get_line_str(P, v, sub, &s)) < 0)
            return rc;
        if (!(d->workdir = dup_str(s)))
            return oom(P);
    }
    if ((v = ytree_get(n, "android")) && (rc = parse_android(P, v, path, t, d)) < 0)
        return rc;
    if ((t == MELT_TRANSPORT_SSH || t == MELT_TRANSPORT_TCP) && !d->host)
        return fail_at(P, n, MELT_EINVAL, path, "missing required key 'host' (transport '%s')",
                       transport_names[t]);
    if (t == MELT_TRANSPORT_TCP && !d->port)
        return fail_at(P, n, MELT_EINVAL, path, "missing required key 'port' (transport 'tcp')");
    if ((v = ytree_get(n, "name"))) {
        join(sub, path, "name");
        if ((rc = get_name(P, v, sub, &s)) < 0)
            return rc;
        d->name = dup_str(s);
    } else if (t == MELT_TRANSPORT_LOCAL) {
        d->name = dup_str("local");
    } else if (t == MELT_TRANSPORT_ADB) {
        d->name = d->serial ? make_name(d->serial, strlen(d->serial)) : dup_str("adb");
    } else {
        d->name = make_name(d->host, strlen(d->host));
    }
    return d->name ? 0 : oom(P);
}

static const char *const backend_names[] = {"builtin", "llamacpp", "mlc", "openai", NULL};
static const char *const kv_names[] = {"f16", "f32", NULL};

/* Append an engine variant; its id must be new. */
static int add_engine(pctx *P, melt_experiment *e, const ynode *at, const char *path,
                      const melt_exp_engine *v)
{
    char id[MELT_EXP_NAME_MAX * 2], who[MELT_EXP_NAME_MAX + 1];
    /* the backend (and its mode) lead the id: results and reports group by it */
    if (v->name)
        snprintf(who, sizeof who, "%s", v->name);
    else
        snprintf(who, sizeof who, "%s%s%s", v->backend,
                 v->mode || !strcmp(v->backend, "llamacpp") ? "-" : "",
                 v->mode ? v->mode : !strcmp(v->backend, "llamacpp") ? "server" : "");
    int o = v->n_threads ? snprintf(id, sizeof id, "%s-t%d-c%d", who, v->n_threads, v->n_ctx)
                         : snprintf(id, sizeof id, "%s-tall-c%d", who, v->n_ctx);
    if (v->n_batch != MELT_EXP_DEFAULT_N_BATCH)
        o += snprintf(id + o, sizeof id - (size_t)o, "-b%d", v->n_batch);
    if (v->kv_type != MELT_KV_F16)
        snprintf(id + o, sizeof id - (size_t)o, "-kv%s", kv_names[v->kv_type]);
    for (size_t i = 0; i < e->n_engines; i++)
        if (strcmp(e->engines[i].id, id) == 0)
            return fail_at(P, at, MELT_EINVAL, path, "engine variant '%s' is already in engines[%zu]",
                           id, e->engines[i].item);
    melt_exp_engine *grown = realloc(e->engines, (e->n_engines + 1) * sizeof *grown);
    if (!grown)
        return oom(P);
    e->engines = grown;
    melt_exp_engine *dst = &e->engines[e->n_engines];
    *dst = *v;
    dst->id = dup_str(id);
    dst->backend = dup_str(v->backend);
    bool ok = dst->id && dst->backend;
    char **strs[6] = {&dst->mode, &dst->binary, &dst->url, &dst->api_key_env, &dst->model,
                      &dst->name};
    for (size_t k = 0; k < 6; k++)
        if (*strs[k] && !(*strs[k] = dup_str(*strs[k])))
            ok = false;
    dst->args = v->n_args ? calloc(v->n_args, sizeof *dst->args) : NULL;
    if (v->n_args && !dst->args) {
        dst->n_args = 0;
        ok = false;
    }
    for (size_t k = 0; dst->args && k < v->n_args; k++)
        if (!(dst->args[k] = dup_str(v->args[k])))
            ok = false;
    e->n_engines++;
    return ok ? 0 : oom(P);
}

/* The backend options of an engine entry into o (strings borrowed from
 * the tree; o->args malloc'd): only the keys backend b uses. */
static int parse_backend_opts(pctx *P, const ynode *n, const char *path, size_t b,
                              melt_exp_engine *o)
{
    static const char *const opt_keys[] = {"mode", "binary", "url", "api_key_env", "model",
                                           "args", "port"};
    /* which keys each backend uses, in opt_keys order */
    static const bool uses[4][7] = {
        {false, false, false, false, false, false, false}, /* builtin */
        {true, true, false, false, false, true, true},     /* llamacpp */
        {false, true, false, false, true, true, true},     /* mlc */
        {false, false, true, true, true, false, false},    /* openai */
    };
    static const char *const modes[] = {"server", "cli", NULL};
    char sub[PATH_MAX_LEN];
    const ynode *v;
    int rc;
    for (size_t k = 0; k < 7; k++)
        if ((v = ytree_get(n, opt_keys[k])) && !uses[b][k]) {
            join(sub, path, opt_keys[k]);
            return fail_at(P, v, MELT_EINVAL, sub, "not used by backend '%s'", backend_names[b]);
        }
    if ((v = ytree_get(n, "mode"))) {
        size_t m;
        join(sub, path, "mode");
        if ((rc = get_word(P, v, sub, "mode", modes, &m)) < 0)
            return rc;
        o->mode = (char *)modes[m];
    }
    char **dst[4] = {&o->binary, &o->url, &o->api_key_env, &o->model};
    for (size_t k = 0; k < 4; k++) {
        const char *s;
        if (!(v = ytree_get(n, opt_keys[k + 1])))
            continue;
        join(sub, path, opt_keys[k + 1]);
        if ((rc = get_line_str(P, v, sub, &s)) < 0)
            return rc;
        *dst[k] = (char *)s;
    }
    if (o->url && strncmp(o->url, "http://", 7) != 0) {
        join(sub, path, "url");
        return fail_at(P, ytree_get(n, "url"), MELT_EINVAL, sub,
                       "expected an http:// URL, got '%s' (for https, reach the server through "
                       "a TLS tunnel)", o->url);
    }
    for (const char *c = o->api_key_env; c && *c; c++)
        if (!(*c == '_' || (*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') ||
              (c > o->api_key_env && *c >= '0' && *c <= '9'))) {
            join(sub, path, "api_key_env");
            return fail_at(P, ytree_get(n, "api_key_env"), MELT_EINVAL, sub,
                           "expected the name of an environment variable, got '%s'",
                           o->api_key_env);
        }
    if ((v = ytree_get(n, "port"))) {
        long long port;
        join(sub, path, "port");
        if ((rc = get_int(P, v, sub, 1, 65535, &port)) < 0)
            return rc;
        o->port = (int)port;
    }
    if ((v = ytree_get(n, "args"))) {
        join(sub, path, "args");
        if (v->kind == YNODE_SEQ && (rc = expect_list(P, v, sub)) < 0)
            return rc;
        const size_t c = v->kind == YNODE_SEQ ? v->n : 1;
        if (!(o->args = calloc(c, sizeof *o->args)))
            return oom(P);
        for (size_t i = 0; i < c; i++) {
            char item[PATH_MAX_LEN];
            const char *s;
            if (v->kind == YNODE_SEQ)
                join_index(item, sub, i);
            else
                snprintf(item, sizeof item, "%s", sub);
            if ((rc = get_line_str(P, v->kind == YNODE_SEQ ? v->items[i] : v, item, &s)) < 0)
                return rc;
            o->args[o->n_args++] = (char *)s;
        }
    }
    if (b == 3 && !o->url)
        return fail_at(P, n, MELT_EINVAL, path, "missing required key 'url' (backend 'openai')");
    return 0;
}

static int parse_engine(pctx *P, melt_experiment *e, const ynode *n, size_t idx)
{
    static const char *const keys[] = {"backend", "threads", "context", "batch", "kv_type",
                                       "mode", "binary", "url", "api_key_env", "model",
                                       "args", "port", "name", NULL};
    char path[PATH_MAX_LEN], sub[PATH_MAX_LEN];
    join_index(path, "engines", idx);
    int rc;
    if ((rc = expect_map(P, n, path, true)) < 0)
        return rc;
    if (n->kind == YNODE_MAP && (rc = check_keys(P, n, path, keys)) < 0)
        return rc;
    const ynode *v;
    size_t bk = 0;
    if ((v = ytree_get(n, "backend"))) {
        const char *s;
        join(sub, path, "backend");
        if ((rc = get_str(P, v, sub, &s)) < 0)
            return rc;
        while (backend_names[bk] && strcmp(backend_names[bk], s) != 0)
            bk++;
        if (!backend_names[bk])
            return fail_at(P, v, MELT_EINVAL, sub,
                           "unknown backend '%s' (one of: builtin, llamacpp, mlc, openai)", s);
    }
    melt_exp_engine opt;
    memset(&opt, 0, sizeof opt);
    if (n->kind == YNODE_MAP && (rc = parse_backend_opts(P, n, path, bk, &opt)) < 0) {
        free(opt.args);
        return rc;
    }
    if ((v = ytree_get(n, "name"))) {
        const char *s;
        join(sub, path, "name");
        if ((rc = get_name(P, v, sub, &s)) < 0) {
            free(opt.args);
            return rc;
        }
        opt.name = (char *)s;
    }
    /* value lists, in expansion order (the last varies fastest) */
    static const char *const list_keys[] = {"threads", "context", "batch", "kv_type"};
    long long defaults[4] = {0, MELT_EXP_DEFAULT_N_CTX, MELT_EXP_DEFAULT_N_BATCH, MELT_KV_F16};
    long long lo[4] = {1, 16, 1, 0}, hi[4] = {4096, 1 << 20, 1 << 16, 1};
    long long *vals[4] = {NULL, NULL, NULL, NULL};
    size_t counts[4] = {1, 1, 1, 1};
    for (size_t k = 0; k < 4 && rc == 0; k++) {
        join(sub, path, list_keys[k]);
        if (!(v = ytree_get(n, list_keys[k])))
            vals[k] = NULL;
        else if (k == 3)
            rc = get_word_list(P, v, sub, "kv_type", kv_names, &vals[k], &counts[k]);
        else
            rc = get_int_list(P, v, sub, lo[k], hi[k], &vals[k], &counts[k]);
    }
    size_t product = 1; /* capped, so it cannot overflow */
    for (size_t k = 0; k < 4; k++)
        product = product > MELT_EXP_MAX_VARIANTS ? product : product * counts[k];
    if (rc == 0 && e->n_engines + product > MELT_EXP_MAX_VARIANTS)
        rc = fail_at(P, n, MELT_EINVAL, path, "more than %d engine variants",
                     MELT_EXP_MAX_VARIANTS);
    for (size_t a = 0; rc == 0 && a < counts[0]; a++)
        for (size_t b = 0; rc == 0 && b < counts[1]; b++)
            for (size_t c = 0; rc == 0 && c < counts[2]; c++)
                for (size_t d = 0; rc == 0 && d < counts[3]; d++) {
                    melt_exp_engine ev = {
                        .backend = (char *)backend_names[bk],
                        .mode = opt.mode, .binary = opt.binary, .url = opt.url,
                        .api_key_env = opt.api_key_env, .model = opt.model,
                        .args = opt.args, .n_args = opt.n_args, .port = opt.port,
                        .name = opt.name,
                        .n_threads = (int)(vals[0] ? vals[0][a] : defaults[0]),
                        .n_ctx = (int)(vals[1] ? vals[1][b] : defaults[1]),
                        .n_batch = (int)(vals[2] ? vals[2][c] : defaults[2]),
                        .kv_type = (enum melt_kv_type)(vals[3] ? vals[3][d] : defaults[3]),
                        .item = idx,
                    };
                    rc = add_engine(P, e, n, path, &ev);
                }
    for (size_t k = 0; k < 4; k++)
        free(vals[k]);
    free(opt.args);
    return rc;
}

static int parse_model(pctx *P, const ynode *n, size_t idx, melt_exp_model *m)
{
    static const char *const keys[] = {"name", "path", "synth", NULL};
    static const char *const synth_keys[] = {"preset", "type", "seed", NULL};
    char path[PATH_MAX_LEN], sub[PATH_MAX_LEN], sub2[PATH_MAX_LEN];
    join_index(path, "models", idx);
    int rc;
    if ((rc = expect_map(P, n, path, false)) < 0 || (rc = check_keys(P, n, path, keys)) < 0)
        return rc;
    const ynode *file = ytree_get(n, "path"), *synth = ytree_get(n, "synth"), *v;
    if (file && synth) {
        join(sub, path, "synth");
        return fail_at(P, synth, MELT_EINVAL, sub, "a model has 'path' or 'synth', not both");
    }
    if (!file && !synth)
        return fail_at(P, n, MELT_EINVAL, path, "missing required key 'path' or 'synth'");
    if (file) {
        m->source = MELT_MODEL_PATH;
        join(sub, path, "path");
        if ((rc = get_file(P, file, sub, &m->path)) < 0)
            return rc;
    } else {
        m->source = MELT_MODEL_SYNTH;
        m->seed = 1;
        m->ftype = MELT_FTYPE_Q8_0;
        join(sub, path, "synth");
        if ((rc = expect_map(P, synth, sub, false)) < 0 ||
            (rc = check_keys(P, synth, sub, synth_keys)) < 0)
            return rc;
        const char *s;
        if (!(v = ytree_get(synth, "preset")))
            return fail_at(P, synth, MELT_EINVAL, sub, "missing required key 'preset'");
        join(sub2, sub, "preset");
        if ((rc = get_str(P, v, sub2, &s)) < 0)
            return rc;
        if (!melt_synth_find_preset(s)) {
            const char *names[64];
            size_t k = 0;
            for (const melt_synth_preset *p = melt_synth_presets(); p->name && k < 63; p++)
                names[k++] = p->name;
            names[k] = NULL;
            return unknown_word(P, v, sub2, "preset", s, names);
        }
        if (!(m->preset = dup_str(s)))
            return oom(P);
        if ((v = ytree_get(synth, "type"))) {
            join(sub2, sub, "type");
            if ((rc = get_str(P, v, sub2, &s)) < 0)
                return rc;
            if (!melt_ftype_parse(s, &m->ftype)) {
                char shown[64];
                return fail_at(P, v, MELT_EINVAL, sub2, "unknown type %s (one of: %s)",
                               describe(v, shown, sizeof shown), melt_ftype_names());
            }
        }
        if ((v = ytree_get(synth, "seed"))) {
            join(sub2, sub, "seed");
            if ((rc = get_u64(P, v, sub2, &m->seed)) < 0)
                return rc;
        }
    }
    const char *s;
    if ((v = ytree_get(n, "name"))) {
        join(sub, path, "name");
        if ((rc = get_name(P, v, sub, &s)) < 0)
            return rc;
        m->name = dup_str(s);
    } else if (m->source == MELT_MODEL_PATH) {
        size_t len;
        stem(m->path, &s, &len);
        m->name = make_name(s, len);
    } else {
        char buf[MELT_EXP_NAME_MAX * 2];
        int o = snprintf(buf, sizeof buf, "%s-%s", m->preset, melt_ftype_name(m->ftype));
        if (m->seed != 1)
            snprintf(buf + o, sizeof buf - (size_t)o, "-s%llu", (unsigned long long)m->seed);
        m->name = make_name(buf, strlen(buf));
    }
    return m->name ? 0 : oom(P);
}

static const char *const workload_kinds[] = {"synthetic", "conversations", "prompts", NULL};

const char *melt_workload_kind_name(enum melt_workload_kind k)
{
    return (unsigned)k < 3 ? workload_kinds[k] : "?";
}

static int add_workload(pctx *P, melt_experiment *e, const ynode *at, const char *path,
                        const melt_exp_workload *w, const char *id)
{
    for (size_t i = 0; i < e->n_workloads; i++)
        if (strcmp(e->workloads[i].id, id) == 0)
            return fail_at(P, at, MELT_EINVAL, path,
                           "workload '%s' is already in workloads[%zu] (set 'name' to tell them apart)",
                           id, e->workloads[i].item);
    melt_exp_workload *grown = realloc(e->workloads, (e->n_workloads + 1) * sizeof *grown);
    if (!grown)
        return oom(P);
    e->workloads = grown;
    melt_exp_workload *dst = &e->workloads[e->n_workloads++];
    *dst = *w;
    dst->path = NULL;
    dst->id = dup_str(id);
    if (w->path)
        dst->path = dup_str(w->path);
    return dst->id && (!w->path || dst->path) ? 0 : oom(P);
}

static int parse_workload(pctx *P, melt_experiment *e, const ynode *n, size_t idx)
{
    static const char *const keys[] = {"name", "synthetic", "conversations", "prompts",
                                       "max_gen_tokens", "max_context_tokens", "format", NULL};
    static const char *const synth_keys[] = {"prompt_tokens", "gen_tokens", NULL};
    static const char *const formats[] = {"text", "jsonl", NULL};
    char path[PATH_MAX_LEN], sub[PATH_MAX_LEN], sub2[PATH_MAX_LEN];
    join_index(path, "workloads", idx);
    int rc;
    if ((rc = expect_map(P, n, path, false)) < 0 || (rc = check_keys(P, n, path, keys)) < 0)
        return rc;
    const ynode *kind_node = NULL, *v;
    size_t kind = 0;
    for (size_t k = 0; workload_kinds[k]; k++) {
        if (!(v = ytree_get(n, workload_kinds[k])))
            continue;
        if (kind_node) {
            join(sub, path, workload_kinds[k]);
            return fail_at(P, v, MELT_EINVAL, sub, "a workload has one of %s, not both '%s' and '%s'",
                           "synthetic, conversations, prompts", workload_kinds[kind],
                           workload_kinds[k]);
        }
        kind_node = v;
        kind = k;
    }
    if (!kind_node)
        return fail_at(P, n, MELT_EINVAL, path,
                       "missing required key 'synthetic', 'conversations' or 'prompts'");
    /* keys that only some kinds use */
    static const char *const only_for[][2] = {
        {"max_gen_tokens", "conversations and prompts"},
        {"max_context_tokens", "conversations"},
        {"format", "prompts"},
    };
    static const bool used[3][3] = {{false, false, false}, {true, true, false}, {true, false, true}};
    for (size_t k = 0; k < 3; k++)
        if ((v = ytree_get(n, only_for[k][0])) && !used[kind][k]) {
            join(sub, path, only_for[k][0]);
            return fail_at(P, v, MELT_EINVAL, sub, "only used by %s workloads", only_for[k][1]);
        }
    const char *user_name = NULL;
    if ((v = ytree_get(n, "name"))) {
        join(sub, path, "name");
        if ((rc = get_name(P, v, sub, &user_name)) < 0)
            return rc;
    }
    melt_exp_workload w = {.kind = (enum melt_workload_kind)kind, .item = idx,
                           .line = n->line, .col = n->col,
                           .max_gen_tokens = MELT_EXP_DEFAULT_MAX_GEN_TOKENS};
    join(sub, path, workload_kinds[kind]);
    char id[MELT_EXP_NAME_MAX * 2];
    if (kind == MELT_WORKLOAD_SYNTHETIC) {
        if ((rc = expect_map(P, kind_node, sub, true)) < 0)
            return rc;
        if (kind_node->kind == YNODE_MAP && (rc = check_keys(P, kind_node, sub, synth_keys)) < 0)
            return rc;
        long long *pp = NULL, *tg = NULL;
        size_t n_pp = 1, n_tg = 1;
        if ((v = ytree_get(kind_node, "prompt_tokens"))) {
            join(sub2, sub, "prompt_tokens");
            rc = get_int_list(P, v, sub2, 0, 1 << 20, &pp, &n_pp);
        }
        if (rc == 0 && (v = ytree_get(kind_node, "gen_tokens"))) {
            join(sub2, sub, "gen_tokens");
            rc = get_int_list(P, v, sub2, 0, 1 << 20, &tg, &n_tg);
        }
        if (rc == 0 && e->n_workloads + n_pp * n_tg > MELT_EXP_MAX_VARIANTS)
            rc = fail_at(P, n, MELT_EINVAL, path, "more than %d workload variants",
                         MELT_EXP_MAX_VARIANTS);
        for (size_t a = 0; rc == 0 && a < n_pp; a++)
            for (size_t b = 0; rc == 0 && b < n_tg; b++) {
                w.prompt_tokens = (int32_t)(pp ? pp[a] : MELT_EXP_DEFAULT_PROMPT_TOKENS);
                w.gen_tokens = (int32_t)(tg ? tg[b] : MELT_EXP_DEFAULT_GEN_TOKENS);
                if (w.prompt_tokens == 0 && w.gen_tokens == 0) {
                    rc = fail_at(P, kind_node, MELT_EINVAL, sub,
                                 "prompt_tokens and gen_tokens are both 0");
                    break;
                }
                if (user_name && n_pp * n_tg == 1)
                    snprintf(id, sizeof id, "%s", user_name);
                else
                    snprintf(id, sizeof id, "%s-pp%d-tg%d", user_name ? user_name : "synthetic",
                             (int)w.prompt_tokens, (int)w.gen_tokens);
                rc = add_workload(P, e, n, path, &w, id);
            }
        free(pp);
        free(tg);
        return rc;
    }
    if ((rc = get_file(P, kind_node, sub, &w.path)) < 0)
        return rc;
    if ((v = ytree_get(n, "max_gen_tokens"))) {
        join(sub2, path, "max_gen_tokens");
        rc = get_i32(P, v, sub2, 1, 1 << 20, &w.max_gen_tokens);
    }
    if (rc == 0 && (v = ytree_get(n, "max_context_tokens"))) {
        join(sub2, path, "max_context_tokens");
        rc = get_i32(P, v, sub2, 16, 1 << 20, &w.max_context_tokens);
    }
    if (kind == MELT_WORKLOAD_PROMPTS) {
        size_t len = strlen(w.path);
        w.jsonl = (len > 6 && strcmp(w.path + len - 6, ".jsonl") == 0) ||
                  (len > 7 && strcmp(w.path + len - 7, ".ndjson") == 0);
        size_t f;
        if (rc == 0 && (v = ytree_get(n, "format"))) {
            join(sub2, path, "format");
            if ((rc = get_word(P, v, sub2, "format", formats, &f)) == 0)
                w.jsonl = f == 1;
        }
    }
    if (rc == 0) {
        if (user_name) {
            snprintf(id, sizeof id, "%s", user_name);
        } else {
            const char *s;
            size_t len;
            stem(w.path, &s, &len);
            char *nm = make_name(s, len);
            if (!nm)
                rc = oom(P);
            else
                snprintf(id, sizeof id, "%s-%s", workload_kinds[kind], nm);
            free(nm);
        }
    }
    if (rc == 0)
        rc = add_workload(P, e, n, path, &w, id);
    free(w.path);
    return rc;
}

static const char *const probe_names[] = {"procfs", "thermal", "cpufreq", "power_supply",
                                          "hwmon",  "rapl",    "nvml",    NULL};

static int parse_probe(pctx *P, const ynode *n, size_t idx, melt_exp_probe *p)
{
    static const char *const keys[] = {"name", "rate_hz", NULL};
    char path[PATH_MAX_LEN], sub[PATH_MAX_LEN];
    join_index(path, "probes", idx);
    int rc;
    p->rate_hz = 10;
    const ynode *name_node = n, *v;
    if (n->kind != YNODE_SCALAR) {
        if ((rc = expect_map(P, n, path, false)) < 0 || (rc = check_keys(P, n, path, keys)) < 0)
            return rc;
        if (!(name_node = ytree_get(n, "name")))
            return fail_at(P, n, MELT_EINVAL, path, "missing required key 'name'");
        join(sub, path, "name");
        if ((v = ytree_get(n, "rate_hz"))) {
            char sub2[PATH_MAX_LEN];
            join(sub2, path, "rate_hz");
            if ((rc = get_num(P, v, sub2, 0, true, 1000, &p->rate_hz)) < 0)
                return rc;
        }
    } else {
        snprintf(sub, sizeof sub, "%s", path);
    }
    size_t k;
    if ((rc = get_word(P, name_node, sub, "probe", probe_names, &k)) < 0)
        return rc;
    p->name = dup_str(probe_names[k]);
    return p->name ? 0 : oom(P);
}

/* Run fn over every item of the list at key (which must be non-empty). */
#define FOR_LIST(root, key, required, body)                                              \
    do {                                                                                 \
        const ynode *list_ = ytree_get(root, key);                                       \
        if (!list_ && required)                                                          \
            return fail_at(P, root, MELT_EINVAL, "", "missing required key '%s'", key);  \
        if (list_) {                                                                     \
            int lrc_ = expect_list(P, list_, key);                                       \
            if (lrc_ < 0)                                                                \
                return lrc_;                                                             \
            for (size_t i_ = 0; i_ < list_->n; i_++) {                                   \
                const ynode *item_ = list_->items[i_];                                   \
                body                                                                     \
            }                                                                            \
        }                                                                                \
    } while (0)

static int check_unique_names(pctx *P, const ynode *root, const char *key, size_t count,
                              const char *(*name_of)(const melt_experiment *, size_t),
                              const melt_experiment *e)
{
    const ynode *list = ytree_get(root, key);
    for (size_t i = 0; i < count; i++)
        for (size_t j = 0; j < i; j++)
            if (strcmp(name_of(e, i), name_of(e, j)) == 0) {
                char path[PATH_MAX_LEN];
                join_index(path, key, i);
                return fail_at(P, list ? list->items[i] : root, MELT_EINVAL, path,
                               "name '%s' is already used by %s[%zu] (set 'name' to tell them apart)",
                               name_of(e, i), key, j);
            }
    return 0;
}

static const char *device_name(const melt_experiment *e, size_t i) { return e->devices[i].name; }
static const char *model_name(const melt_experiment *e, size_t i) { return e->models[i].name; }
static const char *probe_name(const melt_experiment *e, size_t i) { return e->probes[i].name; }

static int parse_root(pctx *P, const ynode *root, melt_experiment *e)
{
    int rc;
    if ((rc = check_keys(P, root, "", top_keys)) < 0)
        return rc;
    const ynode *v;
    const char *s;
    if ((v = ytree_get(root, "name"))) {
        if ((rc = get_line_str(P, v, "name", &s)) < 0)
            return rc;
        e->name = dup_str(s);
    } else {
        size_t len;
        stem(P->fname, &s, &len);
        e->name = make_name(s, len);
    }
    if (!e->name)
        return oom(P);
    if ((v = ytree_get(root, "description"))) {
        if ((rc = get_str(P, v, "description", &s)) < 0)
            return rc;
        if (!(e->description = dup_str(s)))
            return oom(P);
    }
    if ((v = ytree_get(root, "seed")) && (rc = get_u64(P, v, "seed", &e->seed)) < 0)
        return rc;
    long long x;
    if ((v = ytree_get(root, "repetitions"))) {
        if ((rc = get_int(P, v, "repetitions", 1, 1000000, &x)) < 0)
            return rc;
        e->repetitions = (int)x;
    }
    if ((v = ytree_get(root, "warmup"))) {
        if ((rc = get_int(P, v, "warmup", 0, 1000000, &x)) < 0)
            return rc;
        e->warmup = (int)x;
    }
    if ((v = ytree_get(root, "cooldown")) && (rc = parse_cooldown(P, v, &e->cooldown)) < 0)
        return rc;

    const ynode *dl = ytree_get(root, "devices");
    if (dl) {
        FOR_LIST(root, "devices", false, {
            melt_exp_device *grown = realloc(e->devices, (i_ + 1) * sizeof *grown);
            if (!grown)
                return oom(P);
            e->devices = grown;
            memset(&e->devices[i_], 0, sizeof *grown);
            e->n_devices = i_ + 1;
            if ((rc = parse_device(P, item_, i_, &e->devices[i_])) < 0)
                return rc;
        });
        if ((rc = check_unique_names(P, root, "devices", e->n_devices, device_name, e)) < 0)
            return rc;
    } else {
        if (!(e->devices = calloc(1, sizeof *e->devices)))
            return oom(P);
        e->n_devices = 1;
        if (!(e->devices[0].name = dup_str("local")))
            return oom(P);
    }

    if (ytree_get(root, "engines")) {
        FOR_LIST(root, "engines", false, {
            if ((rc = parse_engine(P, e, item_, i_)) < 0)
                return rc;
        });
    } else {
        melt_exp_engine ev = {.backend = (char *)"builtin", .n_ctx = MELT_EXP_DEFAULT_N_CTX,
                              .n_batch = MELT_EXP_DEFAULT_N_BATCH, .kv_type = MELT_KV_F16};
        if ((rc = add_engine(P, e, root, "engines", &ev)) < 0)
            return rc;
    }

    FOR_LIST(root, "models", true, {
        melt_exp_model *grown = realloc(e->models, (i_ + 1) * sizeof *grown);
        if (!grown)
            return oom(P);
        e->models = grown;
        memset(&e->models[i_], 0, sizeof *grown);
        e->n_models = i_ + 1;
        if ((rc = parse_model(P, item_, i_, &e->models[i_])) < 0)
            return rc;
    });
    if ((rc = check_unique_names(P, root, "models", e->n_models, model_name, e)) < 0)
        return rc;

    FOR_LIST(root, "workloads", true, {
        if (e->n_workloads >= MELT_EXP_MAX_VARIANTS)
            return fail_at(P, item_, MELT_EINVAL, "workloads", "more than %d workload variants",
                           MELT_EXP_MAX_VARIANTS);
        if ((rc = parse_workload(P, e, item_, i_)) < 0)
            return rc;
    });
    /* n_engines, n_workloads <= 1024; devices and models are bounded by the
     * file's size, so the product below cannot overflow 64 bits. */
    double cells = (double)e->n_devices * (double)e->n_engines * (double)e->n_models *
                   (double)e->n_workloads;
    if (cells > MELT_EXP_MAX_CELLS)
        return fail_at(P, root, MELT_EINVAL, "", "the experiment expands into %.0f cells (at most %d)",
                       cells, MELT_EXP_MAX_CELLS);

    e->sampling.seed = e->seed;
    if ((v = ytree_get(root, "sampling"))) {
        static const char *const keys[] = {"temperature", "top_k", "top_p", "min_p",
                                           "repeat_penalty", "repeat_last_n", "seed", NULL};
        if ((rc = expect_map(P, v, "sampling", true)) < 0)
            return rc;
        if (v->kind == YNODE_MAP) {
            if ((rc = check_keys(P, v, "sampling", keys)) < 0)
                return rc;
            const ynode *f;
            double d;
            int32_t i32 = 0;
            melt_sampler_params *sp = &e->sampling;
            if ((f = ytree_get(v, "temperature"))) {
                if ((rc = get_num(P, f, "sampling.temperature", 0, false, 100, &d)) < 0)
                    return rc;
                sp->temperature = (float)d;
            }
            if ((f = ytree_get(v, "top_k"))) {
                if ((rc = get_i32(P, f, "sampling.top_k", -1, 1 << 30, &i32)) < 0)
                    return rc;
                sp->top_k = i32;
            }
            if ((f = ytree_get(v, "top_p"))) {
                if ((rc = get_num(P, f, "sampling.top_p", 0, false, 1, &d)) < 0)
                    return rc;
                sp->top_p = (float)d;
            }
            if ((f = ytree_get(v, "min_p"))) {
                if ((rc = get_num(P, f, "sampling.min_p", 0, false, 1, &d)) < 0)
                    return rc;
                sp->min_p = (float)d;
            }
            if ((f = ytree_get(v, "repeat_penalty"))) {
                if ((rc = get_num(P, f, "sampling.repeat_penalty", 0, true, 100, &d)) < 0)
                    return rc;
                sp->repeat_penalty = (float)d;
            }
            if ((f = ytree_get(v, "repeat_last_n"))) {
                if ((rc = get_i32(P, f, "sampling.repeat_last_n", 0, 1 << 20, &i32)) < 0)
                    return rc;
                sp->repeat_last_n = i32;
            }
            if ((f = ytree_get(v, "seed")) && (rc = get_u64(P, f, "sampling.seed", &sp->seed)) < 0)
                return rc;
        }
    }

    FOR_LIST(root, "probes", false, {
        melt_exp_probe *grown = realloc(e->probes, (i_ + 1) * sizeof *grown);
        if (!grown)
            return oom(P);
        e->probes = grown;
        memset(&e->probes[i_], 0, sizeof *grown);
        e->n_probes = i_ + 1;
        if ((rc = parse_probe(P, item_, i_, &e->probes[i_])) < 0)
            return rc;
    });
    return check_unique_names(P, root, "probes", e->n_probes, probe_name, e);
}

int melt_experiment_parse(const char *text, size_t len, const char *fname, const char *dir,
                          melt_experiment **out, melt_error *err)
{
    *out = NULL;
    if (!fname)
        fname = "<experiment>";
    pctx P = {.fname = fname, .dir = dir ? dir : ".", .err = err};
    ynode *root = NULL;
    int rc = ytree_load(text, len, fname, &root, err);
    if (rc < 0)
        return rc;
    if (!root) {
        return melt_errorf(err, MELT_EFORMAT, "%s:1:1: the experiment file is empty", fname);
    }
    if (root->kind != YNODE_MAP) {
        char shown[64];
        rc = fail_at(&P, root, MELT_EFORMAT, "",
                     "expected a mapping of keys at the top level, got %s",
                     describe(root, shown, sizeof shown));
        ytree_free(root);
        return rc;
    }
    melt_experiment *e = calloc(1, sizeof *e);
    if (!e) {
        ytree_free(root);
        return oom(&P);
    }
    e->seed = 1;
    e->repetitions = MELT_EXP_DEFAULT_REPETITIONS;
    e->warmup = MELT_EXP_DEFAULT_WARMUP;
    e->cooldown = (melt_exp_cooldown){.max_temp_c = 45, .min_wait_s = 0, .max_wait_s = 120};
    e->sampling = melt_sampler_default_params();
    e->path = dup_str(fname);
    e->dir = dup_str(P.dir);
    rc = e->path && e->dir ? parse_root(&P, root, e) : oom(&P);
    ytree_free(root);
    if (rc < 0) {
        melt_experiment_free(e);
        return rc;
    }
    *out = e;
    return 0;
}

int melt_experiment_load(const char *path, melt_experiment **out, melt_error *err)
{
    *out = NULL;
    char *buf = NULL;
    size_t len = 0;
    int rc = melt_read_file(path, &buf, &len, err);
    if (rc < 0)
        return rc;
    if (len > ((size_t)64 << 20)) {
        free(buf);
        return melt_errorf(err, MELT_EFORMAT, "%s: larger than 64 MiB", path);
    }
    const char *slash = strrchr(path, '/');
    char *dir;
    if (!slash) {
        dir = dup_str(".");
    } else if (slash == path) {
        dir = dup_str("/");
    } else {
        size_t dl = (size_t)(slash - path);
        dir = malloc(dl + 1);
        if (dir) {
            memcpy(dir, path, dl);
            dir[dl] = '\0';
        }
    }
    rc = dir ? melt_experiment_parse(buf, len, path, dir, out, err)
             : melt_errorf(err, MELT_ENOMEM, "%s: out of memory", path);
    free(dir);
    free(buf);
    return rc;
}

void melt_experiment_free(melt_experiment *e)
{
    if (!e)
        return;
    for (size_t i = 0; i < e->n_devices; i++) {
        melt_exp_device *d = &e->devices[i];
        free(d->name);
        free(d->serial);
        free(d->host);
        free(d->user);
        free(d->workdir);
    }
    for (size_t i = 0; i < e->n_engines; i++) {
        melt_exp_engine *g = &e->engines[i];
        free(g->id);
        free(g->backend);
        free(g->mode);
        free(g->binary);
        free(g->url);
        free(g->api_key_env);
        free(g->model);
        free(g->name);
        for (size_t k = 0; k < g->n_args; k++)
            free(g->args[k]);
        free(g->args);
    }
    for (size_t i = 0; i < e->n_models; i++) {
        free(e->models[i].name);
        free(e->models[i].path);
        free(e->models[i].preset);
    }
    for (size_t i = 0; i < e->n_workloads; i++) {
        free(e->workloads[i].id);
        free(e->workloads[i].path);
    }
    for (size_t i = 0; i < e->n_probes; i++)
        free(e->probes[i].name);
    free(e->devices);
    free(e->engines);
    free(e->models);
    free(e->workloads);
    free(e->probes);
    free(e->path);
    free(e->dir);
    free(e->name);
    free(e->description);
    free(e);
}

/* ---- cells ---- */

size_t melt_experiment_n_cells(const melt_experiment *e)
{
    return e->n_devices * e->n_engines * e->n_models * e->n_workloads;
}

bool melt_experiment_cell(const melt_experiment *e, size_t i, melt_cell *out)
{
    if (i >= melt_experiment_n_cells(e))
        return false;
    size_t r = i;
    size_t w = r % e->n_workloads;
    r /= e->n_workloads;
    size_t m = r % e->n_models;
    r /= e->n_models;
    size_t g = r % e->n_engines;
    size_t d = r / e->n_engines;
    out->index = i;
    out->device = &e->devices[d];
    out->engine = &e->engines[g];
    out->model = &e->models[m];
    out->workload = &e->workloads[w];
    snprintf(out->id, sizeof out->id, "%s/%s/%s/%s", out->device->name, out->engine->id,
             out->model->name, out->workload->id);
    return true;
}

long melt_experiment_find_cell(const melt_experiment *e, const char *id)
{
    melt_cell c;
    for (size_t i = 0; melt_experiment_cell(e, i, &c); i++)
        if (strcmp(c.id, id) == 0)
            return (long)i;
    return -1;
}

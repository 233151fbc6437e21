/* melt — the adb transport: an Android device reached with the `adb` binary
 * (Android platform-tools; $MELT_ADB when set, else `adb` from PATH).
 *
 * Device selection: every call is `adb -s SERIAL ...`. The device's
 * `serial:` when given; else `adb devices -l` must list exactly one device,
 * which is used. `adb devices -l` is parsed line by line: the header, blank
 * lines and the server's "* daemon ..." notes are skipped; each other line
 * is SERIAL, then a state (device, offline, unauthorized, recovery,
 * bootloader, sideload, host, "no permissions (...)"), then key:value
 * properties. A device in another state than `device` is refused with what
 * to do about it; none, or several with no serial, is one error line that
 * lists what adb found.
 *
 * Quoting: `adb shell` hands its command line to the device's sh (mksh or
 * toybox sh), so every value in it (work folder, file names, the agent's
 * argv) is quoted exactly once with melt_shell_quote and the whole command
 * goes to adb as one argument. `adb push` takes its paths as argv (the sync
 * protocol, no shell); the file goes to a fixed temporary name and is moved
 * into place by a quoted `mv`.
 *
 * Exit codes: adb forwards the remote exit code only with the shell
 * protocol (adb >= 7 and Android >= 7); older ones always exit 0. Short calls
 * therefore end with `printf '\n__melt_rc=%s\n' "$?"` and their status is
 * read from that marker (stripped from the output); no marker means adb
 * itself failed (device gone, offline), and the error says so with adb's
 * last line. The agent's stream gets no marker (it would mix into its JSON
 * lines): its exit code is adb's, so on a pre-7 device an agent that dies
 * reads as exit 0 -- the runner still marks the trial lost when no bye came.
 * `\r\n` (older adb's pty) reads as `\n`.
 *
 * Work folder: the device's `workdir` (absolute), default
 * /data/local/tmp/melt, created with mkdir -p at open().
 *
 * ABI: open() reads `getprop ro.product.cpu.abi` and `...abilist`; push()
 * of an ELF file (the agent) compares its e_machine with them and refuses,
 * naming both, when the device cannot run it (an x86-64 agent on an
 * arm64-v8a phone: build it with `make agent-aarch64`, give --agent).
 *
 * Push: `sha256sum` of the file there (when the device has sha256sum and the
 * size matches) equal to the local one: not sent again. Else `df` must show
 * room for it, then `adb push LOCAL WORKDIR/.melt-push.tmp`, size check,
 * chmod, mv into place.
 *
 * Spawn and interrupts: as the ssh transport: the remote command is
 *   cd WORKDIR && echo $$ > PIDFILE && exec AGENT ARGS...
 * run by a local sh wrapper (leading its own process group) that runs adb in
 * the background (SIGINT ignored there) and traps SIGINT/SIGTERM into
 * `adb shell kill -INT/-TERM $(cat PIDFILE)`. When adb exits non-zero the
 * wrapper asks `adb get-state`: when the device is no longer `device` (it
 * disappeared or went offline mid-command), the wrapper ends by SIGHUP so the
 * runner marks the trial lost, keeping what arrived.
 *
 * Timeouts: every call but the agent's stream has one (adb_call); the
 * wrapper's kill and get-state calls use `timeout 15` when it exists.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "melt/sha256.h"
#include "melt/transport.h"
#include "transport/adb_state.h"
#include "transport/shell_quote.h"

#define ADB_CALL_TIMEOUT_MS 60000
#define ADB_DEVICES_TIMEOUT_MS 30000   /* may start the adb server */
#define ADB_CLOSE_TIMEOUT_MS 10000
#define ADB_DEFAULT_WORKDIR "/data/local/tmp/melt"

typedef struct adb_state {
    char *name;       /* the device's name, for messages */
    char *adb;        /* the adb binary */
    char *serial;
    char *workdir;
    char *qworkdir;
    char abi[128];    /* ro.product.cpu.abi */
    char abilist[512];
    unsigned n_spawn;
    /* the Android rituals (experiment `android:`): asked for, and done */
    bool want_screen_off, want_unplug;
    bool screen_off, unplugged;
    char stay_on[16];   /* stay_on_while_plugged_in before (digits), "" unknown */
} adb_state;

static int oom(melt_error *err)
{
    return melt_errorf(err, MELT_ENOMEM, "adb transport: out of memory");
}

/* err's message behind a prefix (no overlapping vsnprintf). */
static int rewrap(melt_error *err, const char *fmt1, const char *a, const char *b,
                  const char *c)
{
    char prefix[512], m[sizeof err->msg];
    snprintf(m, sizeof m, "%s", err->msg);
    snprintf(prefix, sizeof prefix, fmt1, a, b, c);
    return melt_errorf(err, err->code, "%s: %s", prefix, m);
}

/* Drop every '\r' that precedes a '\n' (older adb runs commands on a pty). */
static void strip_cr(char *t)
{
    if (!t)
        return;
    char *w = t;
    for (char *r = t; *r; r++)
        if (!(r[0] == '\r' && (r[1] == '\n' || r[1] == '\0')))
            *w++ = *r;
    *w = '\0';
}

/* adb [-s SERIAL] a1 [a2 [a3 [a4]]]: run with stdin /dev/null. */
static int adb_run(const adb_state *s, bool with_serial, const char *a1, const char *a2,
                   const char *a3, const char *a4, int timeout_ms, char **out, char **errout,
                   melt_error *err)
{
    char *argv[10];
    size_t n = 0;
    argv[n++] = s->adb;
    if (with_serial && s->serial) {
        argv[n++] = "-s";
        argv[n++] = s->serial;
    }
    argv[n++] = (char *)a1;
    if (a2)
        argv[n++] = (char *)a2;
    if (a3)
        argv[n++] = (char *)a3;
    if (a4)
        argv[n++] = (char *)a4;
    argv[n] = NULL;
    melt_proc_opts po = {0};
    po.stdin_null = true;
    int rc = melt_proc_run(argv, &po, timeout_ms, out, errout, err);
    if (rc < 0 && strstr(err->msg, "cannot run"))
        rewrap(err, "adb transport: cannot run '%s'%s%s (install Android platform-tools, "
               "put adb in PATH or set MELT_ADB)", s->adb, "", "");
    return rc;
}

/* Run cmd in the device's shell; *out (may be NULL) gets its stdout, the
 * exit-code marker stripped. A non-zero exit is an error naming the device. */
static int adb_call(adb_state *s, const char *what, const char *cmd, int timeout_ms, char **out,
                    melt_error *err)
{
    char *full = melt_concat3("( ", cmd, "\n); printf '\\n__melt_rc=%s\\n' \"$?\"");
    if (!full)
        return oom(err);
    char *o = NULL, *e = NULL;
    int rc = adb_run(s, true, "shell", full, NULL, NULL, timeout_ms, &o, &e, err);
    free(full);
    if (rc >= 0) {
        strip_cr(o);
        char *m = NULL;
        for (char *p = o; p && (p = strstr(p, "\n__melt_rc=")); p++)
            m = p;
        if (!m) {
            rc = melt_errorf(err, MELT_EIO, "device '%s' (adb %s): %s failed: adb exit %d%s%s",
                             s->name, s->serial, what, rc, e && *e ? ": " : "", melt_last_line(e));
        } else {
            long code = strtol(m + strlen("\n__melt_rc="), NULL, 10);
            *m = '\0';
            if (code != 0) {
                char *tail = e && *e ? e : o;
                rc = melt_errorf(err, MELT_EIO, "device '%s' (adb %s): %s failed (exit %ld)%s%s",
                                 s->name, s->serial, what, code, tail && *tail ? ": " : "",
                                 melt_last_line(tail));
            } else {
                rc = 0;
            }
        }
    } else {
        rewrap(err, "device '%s' (adb %s): %s", s->name, s->serial ? s->serial : "?", what);
    }
    free(e);
    if (rc == 0 && out)
        *out = o;
    else
        free(o);
    return rc;
}

static void rituals_undo(adb_state *s);

static void adb_close(void *state)
{
    adb_state *s = state;
    if (!s)
        return;
    rituals_undo(s);   /* a cell that never reached cell_end */
    if (s->qworkdir && s->serial) {
        char pat[64];
        snprintf(pat, sizeof pat, "/.melt-pid.%ld.*", (long)getpid());
        char *cmd = melt_concat3("rm -f ", s->qworkdir, pat);
        if (cmd) {
            melt_error e = {0};
            adb_call(s, "cleaning up", cmd, ADB_CLOSE_TIMEOUT_MS, NULL, &e);
        }
        free(cmd);
    }
    free(s->name);
    free(s->adb);
    free(s->serial);
    free(s->workdir);
    free(s->qworkdir);
    free(s);
}

/* ---- adb devices -l ---- */

typedef struct adb_dev {
    char serial[256];
    char state[64];
    char model[128];
} adb_dev;

#define ADB_MAX_DEVS 32

/* Parse `adb devices -l`; returns how many were found (at most max). */
static size_t parse_devices(char *text, adb_dev *d, size_t max)
{
    size_t n = 0;
    for (char *line = text; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        char *l = line;
        line = nl ? nl + 1 : NULL;
        while (*l == ' ' || *l == '\t')
            l++;
        size_t len = strlen(l);
        while (len && (l[len - 1] == '\r' || l[len - 1] == ' ' || l[len - 1] == '\t'))
            l[--len] = '\0';
        if (!*l || *l == '*' || strncmp(l, "List of devices", 15) == 0 ||
            strncmp(l, "adb server", 10) == 0 || strncmp(l, "error:", 6) == 0)
            continue;
        char *sp = l + strcspn(l, " \t");
        if (!*sp)
            continue;   /* a serial with no state: not a device line */
        *sp++ = '\0';
        while (*sp == ' ' || *sp == '\t')
            sp++;
        if (n == max)
            break;
        adb_dev *v = &d[n++];
        memset(v, 0, sizeof *v);
        snprintf(v->serial, sizeof v->serial, "%s", l);
        if (strncmp(sp, "no permissions", 14) == 0) {
            snprintf(v->state, sizeof v->state, "no permissions");
        } else {
            size_t k = strcspn(sp, " \t");
            snprintf(v->state, sizeof v->state, "%.*s", (int)(k < 63 ? k : 63), sp);
        }
        const char *m = strstr(sp, " model:");
        if (m) {
            m += 7;
            size_t k = strcspn(m, " \t");
            snprintf(v->model, sizeof v->model, "%.*s", (int)(k < 127 ? k : 127), m);
        }
    }
    return n;
}

static void list_devices(const adb_dev *d, size_t n, char *buf, size_t size)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && o + 1 < size; i++) {
        int w = snprintf(buf + o, size - o, "%s%s (%s%s%s)", i ? ", " : "", d[i].serial,
                         d[i].state, d[i].model[0] ? ", " : "", d[i].model);
        if (w < 0)
            break;
        o += (size_t)w;
    }
}

static const char *state_hint(const char *state)
{
    if (strcmp(state, "unauthorized") == 0)
        return "accept the 'Allow USB debugging' prompt on the device";
    if (strcmp(state, "offline") == 0)
        return "reconnect it (or run 'adb kill-server')";
    if (strcmp(state, "no permissions") == 0)
        return "adb cannot open the USB device: check the udev rules / plugdev group";
    return "it must be booted into Android with USB debugging on";
}

static int select_device(adb_state *s, const melt_exp_device *dev, melt_error *err)
{
    char *o = NULL, *e = NULL;
    int rc = adb_run(s, false, "devices", "-l", NULL, NULL, ADB_DEVICES_TIMEOUT_MS, &o, &e, err);
    if (rc > 0)
        rc = melt_errorf(err, MELT_EIO, "device '%s': 'adb devices -l' failed (exit %d)%s%s",
                         s->name, rc, e && *e ? ": " : "", melt_last_line(e));
    else if (rc < 0)
        rewrap(err, "device '%s'%s%s", s->name, "", "");
    free(e);
    if (rc < 0) {
        free(o);
        return rc;
    }
    adb_dev *d = calloc(ADB_MAX_DEVS, sizeof *d);
    if (!d) {
        free(o);
        return oom(err);
    }
    size_t n = parse_devices(o ? o : (char *)"", d, ADB_MAX_DEVS);
    free(o);
    char found[1024];
    list_devices(d, n, found, sizeof found);
    const adb_dev *use = NULL;
    if (dev->serial && *dev->serial) {
        for (size_t i = 0; i < n; i++)
            if (strcmp(d[i].serial, dev->serial) == 0)
                use = &d[i];
        if (!use) {
            rc = melt_errorf(err, MELT_EIO, "device '%s': adb has no device with serial '%s' "
                             "(adb devices -l lists %s)", s->name, dev->serial,
                             n ? found : "none");
            goto done;
        }
    } else if (n == 0) {
        rc = melt_errorf(err, MELT_EIO,
                         "device '%s': no Android device found (adb devices -l lists none): "
                         "connect one with USB debugging on", s->name);
        goto done;
    } else if (n > 1) {
        rc = melt_errorf(err, MELT_EINVAL,
                         "device '%s': adb lists %zu devices: %s; give the device a 'serial:' "
                         "in the experiment file", s->name, n, found);
        goto done;
    } else {
        use = &d[0];
    }
    if (strcmp(use->state, "device") != 0) {
        rc = melt_errorf(err, MELT_EIO, "device '%s': adb device '%s' is %s: %s", s->name,
                         use->serial, use->state, state_hint(use->state));
        goto done;
    }
    if (!(s->serial = strdup(use->serial)))
        rc = oom(err);
done:
    free(d);
    return rc;
}

/* `melt devices`: every device `adb devices -l` lists, in any state (open
 * then says what to do about one that is not `device`). */
static int adb_list(melt_exp_device **devs, size_t *n, melt_error *err)
{
    const char *bin = getenv("MELT_ADB");
    adb_state s = {.name = "adb", .adb = (char *)(bin && *bin ? bin : "adb")};
    char *o = NULL, *e = NULL;
    *devs = NULL;
    *n = 0;
    int rc = adb_run(&s, false, "devices", "-l", NULL, NULL, ADB_DEVICES_TIMEOUT_MS, &o, &e, err);
    if (rc > 0)
        rc = melt_errorf(err, MELT_EIO, "'adb devices -l' failed (exit %d)%s%s", rc,
                         e && *e ? ": " : "", melt_last_line(e));
    free(e);
    adb_dev *d = rc == 0 ? calloc(ADB_MAX_DEVS, sizeof *d) : NULL;
    melt_exp_device *v = d ? calloc(ADB_MAX_DEVS, sizeof *v) : NULL;
    if (rc == 0 && !v)
        rc = oom(err);
    size_t k = rc == 0 ? parse_devices(o ? o : (char *)"", d, ADB_MAX_DEVS) : 0;
    for (size_t i = 0; i < k; i++) {
        v[i].transport = MELT_TRANSPORT_ADB;
        if (!(v[i].name = strdup(d[i].serial)) || !(v[i].serial = strdup(d[i].serial))) {
            melt_transport_free_list(v, i + 1);
            v = NULL;
            rc = oom(err);
            break;
        }
    }
    free(o);
    free(d);
    if (rc < 0) {
        free(v);
        return rc;
    }
    *devs = v;
    *n = k;
    return 0;
}

static int adb_open(const melt_exp_device *dev, void **state, melt_error *err)
{
    if (!dev)
        return melt_errorf(err, MELT_EINVAL, "adb transport: no device");
    const char *wd = dev->workdir && *dev->workdir ? dev->workdir : ADB_DEFAULT_WORKDIR;
    if (wd[0] != '/')
        return melt_errorf(err, MELT_EINVAL,
                           "device '%s': workdir '%s' must be an absolute path on the device "
                           "(default %s)", dev->name ? dev->name : "adb", wd,
                           ADB_DEFAULT_WORKDIR);
    adb_state *s = calloc(1, sizeof *s);
    if (!s)
        return oom(err);
    const char *bin = getenv("MELT_ADB");
    if (!(s->name = strdup(dev->name ? dev->name : "adb")) ||
        !(s->adb = strdup(bin && *bin ? bin : "adb")) || !(s->workdir = strdup(wd)) ||
        !(s->qworkdir = melt_shell_quote(wd))) {
        adb_close(s);
        return oom(err);
    }
    s->want_screen_off = dev->android_screen_off;
    s->want_unplug = dev->android_battery_unplug;
    int rc = select_device(s, dev, err);
    char *out = NULL;
    if (rc == 0) {
        /* getprop missing (not Android): no ABI, no check */
        char *cmd = melt_concat3("mkdir -p ", s->qworkdir, " && cd ");
        char *cmd2 = cmd ? melt_concat3(cmd, s->qworkdir,
                                  " || exit 1; "
                                  "echo \"abi=$(getprop ro.product.cpu.abi 2>/dev/null)\"; "
                                  "echo \"abilist=$(getprop ro.product.cpu.abilist 2>/dev/null)\"")
                         : NULL;
        free(cmd);
        rc = cmd2 ? adb_call(s, "creating the work folder", cmd2, ADB_CALL_TIMEOUT_MS, &out,
                             err)
                  : oom(err);
        free(cmd2);
    }
    for (char *l = rc == 0 ? out : NULL; l && *l;) {
        char *nl = strchr(l, '\n');
        if (nl)
            *nl = '\0';
        if (strncmp(l, "abi=", 4) == 0)
            snprintf(s->abi, sizeof s->abi, "%s", l + 4);
        else if (strncmp(l, "abilist=", 8) == 0)
            snprintf(s->abilist, sizeof s->abilist, "%s", l + 8);
        l = nl ? nl + 1 : NULL;
    }
    free(out);
    if (rc < 0) {
        adb_close(s);
        return rc;
    }
    *state = s;
    return 0;
}

/* ---- ABI ---- */

/* The Android ABI an ELF file runs as, or NULL when it is not ELF or
 * unknown; *elf set when it is ELF. */
static const char *elf_abi(const char *path, bool *elf, unsigned *machine)
{
    unsigned char h[20];
    *elf = false;
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t n = fread(h, 1, sizeof h, f);
    fclose(f);
    if (n < sizeof h || memcmp(h, "\177ELF", 4) != 0)
        return NULL;
    *elf = true;
    const unsigned m = h[5] == 2 ? (unsigned)h[18] << 8 | h[19] : (unsigned)h[19] << 8 | h[18];
    *machine = m;
    switch (m) {
    case 183: return "arm64-v8a";     /* EM_AARCH64 */
    case 40: return "armeabi-v7a";    /* EM_ARM */
    case 62: return "x86_64";         /* EM_X86_64 */
    case 3: return "x86";             /* EM_386 */
    case 243: return "riscv64";       /* EM_RISCV */
    default: return NULL;
    }
}

static bool abi_in_list(const char *abi, const char *list)
{
    size_t k = strlen(abi);
    for (const char *p = list; p && *p;) {
        const char *c = strchr(p, ',');
        size_t len = c ? (size_t)(c - p) : strlen(p);
        if (len == k && strncmp(p, abi, k) == 0)
            return true;
        if (strcmp(abi, "armeabi-v7a") == 0 && len == 7 && strncmp(p, "armeabi", 7) == 0)
            return true;
        p = c ? c + 1 : NULL;
    }
    return false;
}

static int check_abi(const adb_state *s, const char *local_path, melt_error *err)
{
    bool elf = false;
    unsigned m = 0;
    const char *abi = elf_abi(local_path, &elf, &m);
    if (!elf || !s->abi[0])
        return 0;   /* not a program, or a device that does not say */
    if (abi && (strcmp(abi, s->abi) == 0 || abi_in_list(abi, s->abilist) ||
                abi_in_list(abi, s->abi)))
        return 0;
    char what[48];
    if (abi)
        snprintf(what, sizeof what, "%s", abi);
    else
        snprintf(what, sizeof what, "ELF machine %u", m);
    return melt_errorf(err, MELT_EINVAL,
                       "device '%s' (adb %s) is %s but '%s' is built for %s: build the agent "
                       "for the device (make agent-aarch64) and give --agent PATH",
                       s->name, s->serial, s->abilist[0] ? s->abilist : s->abi, local_path, what);
}

/* ---- free space, push ---- */

/* Available bytes from the last line of `df -Pk` (KiB) or of Android's old
 * toolbox df (Filesystem Size Used Free Blksize, with K/M/G suffixes). */

static char *df_cmd(const char *qdir)
{
    size_t n = 2 * strlen(qdir) + 64;
    char *c = malloc(n);
    if (c)
        snprintf(c, n, "df -Pk %s 2>/dev/null || df %s", qdir, qdir);
    return c;
}

static int adb_free_space(void *state, const char *dir, uint64_t *bytes, melt_error *err)
{
    adb_state *s = state;
    char *q = dir ? melt_shell_quote(dir) : NULL;
    char *cmd = df_cmd(q ? q : s->qworkdir);
    free(q);
    if (!cmd)
        return oom(err);
    char *out = NULL;
    int rc = adb_call(s, "df", cmd, ADB_CALL_TIMEOUT_MS, &out, err);
    free(cmd);
    if (rc == 0 && !melt_parse_df_free(out, bytes))
        rc = melt_errorf(err, MELT_EIO, "device '%s' (adb %s): cannot read df's output '%s'",
                         s->name, s->serial, out ? out : "");
    free(out);
    return rc;
}

static int adb_push(void *state, const char *local_path, const char *remote_name,
                    char **remote_path, melt_error *err)
{
    adb_state *s = state;
    char sha[65];
    struct stat st;
    if (stat(local_path, &st) != 0)
        return melt_errorf(err, MELT_EIO, "%s: %s", local_path, strerror(errno));
    int rc = check_abi(s, local_path, err);
    if (rc < 0)
        return rc;
    char tmpname[64];
    snprintf(tmpname, sizeof tmpname, ".melt-push.%ld.tmp", (long)getpid());
    char *path = melt_concat3(s->workdir, "/", remote_name);
    char *tmppath = melt_concat3(s->workdir, "/", tmpname);
    /* "./NAME": a name that starts with '-' is no option to sha256sum or
     * mv (Android's toolbox mv may not know "--") */
    char *dotname = melt_concat3("./", remote_name, "");
    char *qname = dotname ? melt_shell_quote(dotname) : NULL;
    free(dotname);
    char *qtmp = melt_shell_quote(tmpname);
    char *dfc = df_cmd(".");
    char *cmd = NULL, *out = NULL, *copy = NULL, *local = NULL;
    if (!path || !tmppath || !qname || !qtmp || !dfc) {
        rc = oom(err);
        goto done;
    }
    size_t n = strlen(s->qworkdir) + 4 * strlen(qname) + strlen(dfc) + 200;
    if (!(cmd = malloc(n))) {
        rc = oom(err);
        goto done;
    }
    snprintf(cmd, n,
             "cd %s || exit 1; if [ -f %s ] && [ $(($(wc -c < %s))) -eq %jd ] && "
             "command -v sha256sum >/dev/null 2>&1; then sha256sum %s; fi; %s",
             s->qworkdir, qname, qname, (intmax_t)st.st_size, qname, dfc);
    if ((rc = adb_call(s, "checking the work folder", cmd, ADB_CALL_TIMEOUT_MS, &out, err)) < 0)
        goto done;
    bool hashed = false;
    for (const char *l = out; l && *l;) {
        const char *h = *l == '\\' ? l + 1 : l;
        if (strlen(h) >= 65 && melt_is_sha256_line(h)) {
            if (!hashed && (rc = melt_sha256_file(local_path, sha, err)) < 0)
                goto done;
            hashed = true;
            if (memcmp(h, sha, 64) == 0)
                goto have_it;
        }
        const char *nl = strchr(l, '\n');
        l = nl ? nl + 1 : "";
    }
    uint64_t avail = 0;
    if (melt_parse_df_free(out, &avail) && (uint64_t)st.st_size > avail) {
        rc = melt_errorf(err, MELT_EIO,
                         "device '%s' (adb %s): '%s' (%.1f MiB) does not fit in %s: "
                         "%.1f MiB free", s->name, s->serial, local_path,
                         (double)st.st_size / 1048576.0, s->workdir, (double)avail / 1048576.0);
        goto done;
    }
    /* adb push LOCAL TMP: argv, no shell; a leading '-' would read as an option */
    local = local_path[0] == '-' ? melt_concat3("./", local_path, "") : strdup(local_path);
    if (!local) {
        rc = oom(err);
        goto done;
    }
    char *e = NULL;
    const int64_t timeout = ADB_CALL_TIMEOUT_MS + (int64_t)st.st_size / 1024; /* >= 1 MB/s */
    rc = adb_run(s, true, "push", local, tmppath, NULL,
                 timeout > INT_MAX ? INT_MAX : (int)timeout, NULL, &e, err);
    if (rc > 0)
        rc = melt_errorf(err, MELT_EIO, "device '%s' (adb %s): adb push '%s' failed (exit %d)%s%s",
                         s->name, s->serial, local_path, rc, e && *e ? ": " : "", melt_last_line(e));
    else if (rc < 0)
        rewrap(err, "device '%s' (adb %s): pushing '%s'", s->name, s->serial, local_path);
    free(e);
    if (rc < 0)
        goto done;
    n = strlen(s->qworkdir) + 4 * strlen(qtmp) + strlen(qname) + 192;
    if (!(copy = malloc(n))) {
        rc = oom(err);
        goto done;
    }
    snprintf(copy, n,
             "cd %s || exit 1; [ $(($(wc -c < %s))) -eq %jd ] && chmod %s %s && "
             "mv -f %s %s || { rm -f %s; exit 1; }",
             s->qworkdir, qtmp, (intmax_t)st.st_size, (st.st_mode & S_IXUSR) ? "755" : "644",
             qtmp, qtmp, qname, qtmp);
    if ((rc = adb_call(s, "putting the pushed file in place", copy, ADB_CALL_TIMEOUT_MS, NULL,
                       err)) < 0)
        goto done;
have_it:
    *remote_path = path;
    path = NULL;
    rc = 0;
done:
    free(local);
    free(copy);
    free(out);
    free(cmd);
    free(dfc);
    free(qtmp);
    free(qname);
    free(tmppath);
    free(path);
    return rc;
}

/* ---- spawn ---- */

/* The local child of spawn: adb in the background, SIGINT/SIGTERM forwarded
 * to the remote agent; when adb fails and the device is gone, SIGHUP.
 * $1, $2: remote kill commands; $3: the remote command; then adb -s SERIAL. */
static const char spawn_script[] =
    "i=$1 t=$2 r=$3; shift 3\n"
    "to() { if command -v timeout >/dev/null 2>&1; then timeout 15 \"$@\"; else \"$@\"; fi; }\n"
    "trap 'to \"$@\" shell \"$i\" </dev/null >/dev/null 2>&1' INT\n"
    "trap 'to \"$@\" shell \"$t\" </dev/null >/dev/null 2>&1' TERM\n"
    "\"$@\" shell \"$r\" </dev/null & p=$!\n"
    "while :; do\n"
    "  wait \"$p\"; s=$?\n"
    "  if [ \"$s\" -gt 128 ]; then\n"
    /* a trapped signal ended the wait: go on waiting while adb/ssh runs;
     * if the trap's own commands already reaped it, ask for its status */
    "    kill -0 \"$p\" 2>/dev/null && continue\n"
    "    wait \"$p\"; s=$?\n"
    "  fi\n"
    "  break\n"
    "done\n"
    "if [ \"$s\" -ne 0 ]; then\n"
    "  g=$(to \"$@\" get-state </dev/null 2>/dev/null)\n"
    "  [ \"$g\" = device ] || kill -HUP $$\n"
    "fi\n"
    "exit \"$s\"\n";

static int adb_spawn(void *state, char *const argv[], melt_proc *p, melt_error *err)
{
    adb_state *s = state;
    char pidname[96];
    snprintf(pidname, sizeof pidname, "/.melt-pid.%ld.%u", (long)getpid(), s->n_spawn++);
    char *pidfile = melt_concat3(s->workdir, pidname, "");
    char *qpid = pidfile ? melt_shell_quote(pidfile) : NULL;
    char *args = melt_shell_join(argv);
    char *run = NULL, *kint = NULL, *kterm = NULL;
    int rc = 0;
    if (!qpid || !args) {
        rc = oom(err);
        goto done;
    }
    size_t n = strlen(s->qworkdir) + strlen(qpid) + strlen(args) + 64;
    size_t nk = strlen(qpid) + 64;
    run = malloc(n);
    kint = malloc(nk);
    kterm = malloc(nk);
    if (!run || !kint || !kterm) {
        rc = oom(err);
        goto done;
    }
    snprintf(run, n, "cd %s || exit 127; echo $$ > %s && exec %s", s->qworkdir, qpid, args);
    snprintf(kint, nk, "kill -INT \"$(cat %s)\"", qpid);
    snprintf(kterm, nk, "kill -TERM \"$(cat %s)\"", qpid);
    char *v[12];
    size_t k = 0;
    v[k++] = "sh";
    v[k++] = "-c";
    v[k++] = (char *)spawn_script;
    v[k++] = "melt-adb";
    v[k++] = kint;
    v[k++] = kterm;
    v[k++] = run;
    v[k++] = s->adb;
    v[k++] = "-s";
    v[k++] = s->serial;
    v[k] = NULL;
    melt_proc_opts o = {0};
    o.stdin_null = true;
    o.new_process_group = true;
    rc = melt_proc_spawn(v, &o, p, err);
    if (rc < 0)
        rewrap(err, "device '%s' (adb %s)%s", s->name, s->serial, "");
done:
    free(kterm);
    free(kint);
    free(run);
    free(args);
    free(qpid);
    free(pidfile);
    return rc;
}

/* Clock sync: `agent --echo` in the work folder; adb shell forwards its
 * stdin to it (the shell protocol, adb and Android 7 or later). */
static int adb_echo_open(void *state, const char *agent_path, melt_echo_chan *ch,
                         melt_error *err)
{
    adb_state *s = state;
    char *qagent = melt_shell_quote(agent_path);
    size_t n = strlen(s->qworkdir) + (qagent ? strlen(qagent) : 0) + 48;
    char *cmd = qagent ? malloc(n) : NULL;
    int rc = 0;
    if (!cmd) {
        free(qagent);
        return oom(err);
    }
    snprintf(cmd, n, "cd %s && exec %s --echo", s->qworkdir, qagent);
    char *v[] = {s->adb, "-s", s->serial, "shell", cmd, NULL};
    melt_proc_opts o = {0};
    o.stdin_pipe = &ch->wfd;
    o.new_process_group = true;
    if ((rc = melt_proc_spawn(v, &o, &ch->proc, err)) < 0) {
        rewrap(err, "device '%s' (adb %s): clock sync%s", s->name, s->serial, "");
    } else {
        ch->rfd = ch->proc.out_fd;   /* the channel owns it now */
        ch->proc.out_fd = -1;
    }
    free(cmd);
    free(qagent);
    return rc;
}

/* ---- the Android rituals around a cell ---- */

/* One adb call printing the device's state in sections: cpufreq governors,
 * the thermal service, the battery, thermal zones. */
static const char state_script[] =
    "echo '#governor'; for f in /sys/devices/system/cpu/cpufreq/policy*/scaling_governor; do "
    "[ -r \"$f\" ] && echo \"$f $(cat \"$f\")\"; done; "
    "echo '#thermalservice'; dumpsys thermalservice 2>/dev/null; "
    "echo '#battery'; dumpsys battery 2>/dev/null; "
    "echo '#zones'; for z in /sys/class/thermal/thermal_zone*; do "
    "[ -r \"$z/temp\" ] && echo \"$(cat \"$z/type\" 2>/dev/null) $(cat \"$z/temp\")\"; done; true";

static int read_state(adb_state *s, char **json, melt_error *err)
{
    char *out = NULL;
    int rc = adb_call(s, "reading the device state", state_script, ADB_CALL_TIMEOUT_MS, &out, err);
    if (rc == 0 && json && !(*json = melt_adb_state_json(out)))
        rc = oom(err);
    free(out);
    return rc;
}

/* Undo, newest first: the battery back to its real state, then the screen. */
static void rituals_undo(adb_state *s)
{
    melt_error e = {0};
    if (s->unplugged) {
        s->unplugged = false;
        adb_call(s, "dumpsys battery reset", "dumpsys battery reset", ADB_CALL_TIMEOUT_MS, NULL,
                 &e);
    }
    if (s->screen_off) {
        char cmd[96];
        s->screen_off = false;
        if (s->stay_on[0]) {
            snprintf(cmd, sizeof cmd, "settings put global stay_on_while_plugged_in %s",
                     s->stay_on);
            adb_call(s, "restoring stay-awake", cmd, ADB_CALL_TIMEOUT_MS, NULL, &e);
        }
        adb_call(s, "waking the screen", "input keyevent KEYCODE_WAKEUP", ADB_CALL_TIMEOUT_MS,
                 NULL, &e);
    }
}

static int adb_cell_begin(void *state, char **json, melt_error *err)
{
    adb_state *s = state;
    int rc = 0;
    if (s->want_screen_off && !s->screen_off) {
        /* stay-awake (a developer option) would light it again on USB power */
        char *out = NULL;
        s->stay_on[0] = '\0';
        if (adb_call(s, "reading stay-awake", "settings get global stay_on_while_plugged_in",
                     ADB_CALL_TIMEOUT_MS, &out, err) == 0) {
            char *v = out;
            while (*v == ' ' || *v == '\n')
                v++;
            size_t n = strspn(v, "0123456789");
            if (n && n < sizeof s->stay_on)
                snprintf(s->stay_on, sizeof s->stay_on, "%.*s", (int)n, v);
        }
        free(out);
        rc = adb_call(s, "turning the screen off",
                      "svc power stayon false && input keyevent KEYCODE_SLEEP",
                      ADB_CALL_TIMEOUT_MS, NULL, err);
        s->screen_off = true;   /* undo even when half done */
    }
    if (rc == 0 && s->want_unplug && !s->unplugged) {
        s->unplugged = true;
        rc = adb_call(s, "dumpsys battery unplug", "dumpsys battery unplug", ADB_CALL_TIMEOUT_MS,
                      NULL, err);
    }
    if (rc == 0)
        rc = read_state(s, json, err);
    if (rc < 0)
        rituals_undo(s);
    return rc;
}

static void adb_cell_end(void *state, char **json)
{
    adb_state *s = state;
    rituals_undo(s);
    melt_error e = {0};
    if (json && read_state(s, json, &e) < 0)
        *json = NULL;
}

const melt_transport_ops melt_transport_adb = {
    .version = MELT_TRANSPORT_API_VERSION,
    .name = "adb",
    .open = adb_open,
    .spawn = adb_spawn,
    .push = adb_push,
    .free_space = adb_free_space,
    .close = adb_close,
    .echo_open = adb_echo_open,
    .cell_begin = adb_cell_begin,
    .cell_end = adb_cell_end,
    .list = adb_list,
};

/* The adb transport driven directly against the fake adb
 * (tests/data/fake-adb/adb, through MELT_ADB) whose device lives in a
 * scratch folder: device selection from `adb devices -l`, argv values that
 * arrive literally (nothing in them runs), pushes that skip unchanged files
 * and refuse files that do not fit, the ABI check, exit codes and Ctrl-C
 * reaching the remote program. */
#include "testutil.h"

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/stat.h>

#include "melt/transport.h"

static char root[PATH_MAX];      /* FAKE_ADB_ROOT */
static char workdir[PATH_MAX + 32];   /* the sandbox's /data/local/tmp/melt */

static const char *const hostile[] = {
    "a; rm -rf x", "$(touch @)", "`touch @`", "x && touch @ || touch @", "'; touch @; '",
    "it's", "say \"hi\"", "new\nline", "", "${HOME} $PATH", "back\\slash", "*", "~",
    "héllo wörld ☃", "-n", "tab\there", "; echo __melt_rc=0",
};
#define N_HOSTILE (sizeof hostile / sizeof hostile[0])

#include "transport_testutil.h"

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static const melt_transport_ops *adb(void)
{
    const melt_transport_ops *t = melt_transport_find("adb");
    assert_non_null(t);
    return t;
}

static void *open_phone(const melt_exp_device *dev)
{
    void *st = NULL;
    melt_error e = {0};
    if (adb()->open(dev, &st, &e) < 0)
        fail_msg("open: %s", e.msg);
    return st;
}

/* open must fail with a message containing want (and one line) */
static void open_fails(const melt_exp_device *dev, const char *want)
{
    void *st = NULL;
    melt_error e = {0};
    assert_true(adb()->open(dev, &st, &e) < 0);
    assert_null(st);
    if (!strstr(e.msg, want) || strchr(e.msg, '\n'))
        fail_msg("expected one line with '%s', got: %s", want, e.msg);
}

static void devices_file(const char *text)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/devices.txt", root);
    if (!text) {
        unsetenv("FAKE_ADB_DEVICES");
        return;
    }
    write_file(path, text);
    setenv("FAKE_ADB_DEVICES", path, 1);
}

static void adb_selects_the_device(void **state)
{
    (void)state;
    melt_exp_device dev = {.name = "phone", .transport = MELT_TRANSPORT_ADB};
    /* the only device, no serial: used */
    adb()->close(open_phone(&dev));
    assert_true(exists(workdir));
    dev.serial = "FAKE0001";
    adb()->close(open_phone(&dev));
    dev.serial = "OTHER";
    open_fails(&dev, "no device with serial 'OTHER' (adb devices -l lists FAKE0001 (device, "
                     "Fake_Phone))");
    dev.serial = NULL;
    devices_file("");
    open_fails(&dev, "no Android device found");
    devices_file("FAKE0001\tdevice\nemulator-5554          device product:sdk model:Pixel_7 "
                 "transport_id:2\n");
    open_fails(&dev, "adb lists 2 devices: FAKE0001 (device), emulator-5554 (device, Pixel_7); "
                     "give the device a 'serial:'");
    devices_file("FAKE0001       unauthorized usb:1-1 transport_id:3\n");
    open_fails(&dev, "adb device 'FAKE0001' is unauthorized: accept the 'Allow USB debugging'");
    devices_file("FAKE0001\toffline\n");
    open_fails(&dev, "is offline");
    devices_file("NOPERM01\tno permissions (user in plugdev group; are your udev rules "
                 "wrong?); see [http://developer.android.com/tools/device.html]\n");
    open_fails(&dev, "'NOPERM01' is no permissions: adb cannot open the USB device");
    devices_file(NULL);
    dev.workdir = "relative/dir";
    open_fails(&dev, "must be an absolute path");
    setenv("MELT_ADB", "/nonexistent/adb", 1);
    dev.workdir = NULL;
    open_fails(&dev, "cannot run '/nonexistent/adb'");
    setenv("MELT_ADB", "tests/data/fake-adb/adb", 1);
}

static void adb_passes_args_literally(void **state)
{
    (void)state;
    melt_exp_device dev = {.name = "phone", .transport = MELT_TRANSPORT_ADB};
    void *st = open_phone(&dev);
    char pwned[PATH_MAX + 32];
    snprintf(pwned, sizeof pwned, "%s/pwned", root);
    char *argv[N_HOSTILE + 3];
    argv[0] = "printf";
    argv[1] = "<%s>\\n";
    char want[8192] = "";
    size_t n = 0;
    for (size_t i = 0; i < N_HOSTILE; i++) {
        argv[2 + i] = subst(hostile[i], pwned);
        n += (size_t)snprintf(want + n, sizeof want - n, "<%s>\n", argv[2 + i]);
    }
    argv[N_HOSTILE + 2] = NULL;
    buf out;
    assert_int_equal(run_on(adb(), st, argv, &out), 0);
    assert_string_equal(out.data, want);
    if (exists(pwned) || exists("pwned"))
        fail_msg("a command inside an argument ran");
    for (size_t i = 0; i < N_HOSTILE; i++)
        free(argv[2 + i]);
    adb()->close(st);
}

static ino_t inode_of(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        fail_msg("%s: not there", path);
    return st.st_ino;
}

static void assert_content(const char *path, const char *text)
{
    size_t n = 0;
    char *got = slurp(path, &n);
    if (n != strlen(text) || memcmp(got, text, n) != 0)
        fail_msg("%s: expected '%s', got '%.*s'", path, text, (int)n, got);
    free(got);
}

static void adb_push_skips_unchanged_file(void **state)
{
    (void)state;
    melt_exp_device dev = {.name = "phone", .transport = MELT_TRANSPORT_ADB};
    void *st = open_phone(&dev);
    melt_error e = {0};
    char local[PATH_MAX];
    snprintf(local, sizeof local, "%s", scratch_path("push-me"));
    write_file(local, "first version\n");
    const char *name = "it's a file; $(touch pwned)";
    char *remote = NULL;
    if (adb()->push(st, local, name, &remote, &e) < 0)
        fail_msg("push: %s", e.msg);
    assert_string_equal(remote, "/data/local/tmp/melt/it's a file; $(touch pwned)");
    free(remote);
    char there[PATH_MAX + 64];
    snprintf(there, sizeof there, "%s/%s", workdir, name);
    assert_content(there, "first version\n");
    const ino_t ino = inode_of(there);
    if (adb()->push(st, local, name, &remote, &e) < 0)
        fail_msg("push again: %s", e.msg);
    free(remote);
    assert_true(inode_of(there) == ino);   /* not copied again */
    write_file(local, "other version\n");
    if (adb()->push(st, local, name, &remote, &e) < 0)
        fail_msg("push changed: %s", e.msg);
    free(remote);
    assert_content(there, "other version\n");
    assert_false(exists("pwned"));
    unlink(local);
    adb()->close(st);
}

/* A name that starts with '-' (a model file "-q4.gguf") reaches sha256sum
 * and mv as a file, not as options: pushed once, then found unchanged. */
static void adb_push_takes_a_name_with_a_leading_dash(void **state)
{
    (void)state;
    melt_exp_device dev = {.name = "phone", .transport = MELT_TRANSPORT_ADB};
    void *st = open_phone(&dev);
    melt_error e = {0};
    char local[PATH_MAX];
    snprintf(local, sizeof local, "%s", scratch_path("dash-me"));
    write_file(local, "dash\n");
    const char *name = "-f.gguf";
    char *remote = NULL;
    if (adb()->push(st, local, name, &remote, &e) < 0)
        fail_msg("push: %s", e.msg);
    free(remote);
    char there[PATH_MAX + 64];
    snprintf(there, sizeof there, "%s/%s", workdir, name);
    assert_content(there, "dash\n");
    const ino_t ino = inode_of(there);
    if (adb()->push(st, local, name, &remote, &e) < 0)
        fail_msg("push again: %s", e.msg);
    free(remote);
    assert_true(inode_of(there) == ino);   /* its sha256 was read: not copied again */
    unlink(there);
    unlink(local);
    adb()->close(st);
}

static void adb_push_refuses_file_that_does_not_fit(void **state)
{
    (void)state;
    melt_exp_device dev = {.name = "phone", .transport = MELT_TRANSPORT_ADB};
    void *st = open_phone(&dev);
    melt_error e = {0};
    uint64_t free_bytes = 0;
    if (adb()->free_space(st, NULL, &free_bytes, &e) < 0)
        fail_msg("free_space: %s", e.msg);
    assert_true(free_bytes > 0);
    char local[PATH_MAX];
    snprintf(local, sizeof local, "%s", scratch_path("huge.gguf"));
    int fd = open(local, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)(free_bytes + ((uint64_t)1 << 30))), 0);
    close(fd);
    char *remote = NULL;
    assert_true(adb()->push(st, local, "huge.gguf", &remote, &e) < 0);
    if (!strstr(e.msg, "does not fit") || !strstr(e.msg, "MiB free"))
        fail_msg("expected a 'does not fit ... MiB free' error, got: %s", e.msg);
    assert_null(remote);
    unlink(local);
    adb()->close(st);
}

/* An ELF header of the given machine (x86-64 little-endian layout). */
static void write_elf(const char *path, unsigned machine)
{
    unsigned char h[64] = {0x7f, 'E', 'L', 'F', 2, 1, 1};
    h[16] = 2;   /* ET_EXEC */
    h[18] = (unsigned char)(machine & 0xff);
    h[19] = (unsigned char)(machine >> 8);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(h, 1, sizeof h, f), sizeof h);
    assert_int_equal(fclose(f), 0);
    chmod(path, 0755);
}

static void adb_refuses_agent_of_another_abi(void **state)
{
    (void)state;
    setenv("FAKE_ADB_ABI", "arm64-v8a", 1);
    melt_exp_device dev = {.name = "phone", .transport = MELT_TRANSPORT_ADB};
    void *st = open_phone(&dev);
    melt_error e = {0};
    char local[PATH_MAX];
    snprintf(local, sizeof local, "%s", scratch_path("agent-x86"));
    write_elf(local, 62);
    char *remote = NULL;
    assert_true(adb()->push(st, local, "melt-agent", &remote, &e) < 0);
    if (!strstr(e.msg, "is arm64-v8a but") || !strstr(e.msg, "built for x86_64"))
        fail_msg("expected an ABI error, got: %s", e.msg);
    write_elf(local, 183);   /* aarch64: fine */
    if (adb()->push(st, local, "melt-agent", &remote, &e) < 0)
        fail_msg("push aarch64: %s", e.msg);
    free(remote);
    unlink(local);
    adb()->close(st);
    unsetenv("FAKE_ADB_ABI");
}

static void adb_exit_code_and_interrupt_reach_the_remote_program(void **state)
{
    (void)state;
    melt_exp_device dev = {.name = "phone", .transport = MELT_TRANSPORT_ADB};
    void *st = open_phone(&dev);
    melt_error e = {0};
    char *ex[] = {"sh", "-c", "exit 5", NULL};
    buf out;
    assert_int_equal(run_on(adb(), st, ex, &out), 5);
    char *argv[] = {"sh", "-c",
                    "trap 'echo got-int; exit 7' INT; echo ready; while :; do sleep 0.1; done",
                    NULL};
    melt_proc p = {.pid = -1, .out_fd = -1, .err_fd = -1};
    if (adb()->spawn(st, argv, &p, &e) < 0)
        fail_msg("spawn: %s", e.msg);
    out.n = 0;
    out.data[0] = '\0';
    for (int i = 0; i < 100 && !strstr(out.data, "ready"); i++)
        assert_true(melt_proc_pump(&p, 100, collect, &out, &e) >= 0);
    assert_non_null(strstr(out.data, "ready"));
    melt_proc_signal(&p, SIGINT);
    assert_int_equal(melt_proc_pump(&p, 20000, collect, &out, &e), 1);
    assert_int_equal(melt_proc_wait(&p, 20000), 1);
    assert_string_equal(out.data, "ready\ngot-int\n");
    assert_int_equal(melt_proc_exit_code(&p), 7);
    melt_proc_close(&p);
    adb()->close(st);
}

int main(void)
{
    const char *tmp = getenv("MELT_TEST_TMP");
    snprintf(root, sizeof root, "%s/adb-%ld", tmp ? tmp : "/tmp", (long)getpid());
    if (mkdir(root, 0755) != 0)
        return 1;
    snprintf(workdir, sizeof workdir, "%s/data/local/tmp/melt", root);
    setenv("FAKE_ADB_ROOT", root, 1);
    setenv("MELT_ADB", "tests/data/fake-adb/adb", 1);
    unsetenv("FAKE_ADB_DEVICES");
    unsetenv("FAKE_ADB_VANISH_AFTER");
    unsetenv("FAKE_ADB_SERIAL");
    unsetenv("FAKE_ADB_ABI");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(adb_selects_the_device),
        cmocka_unit_test(adb_passes_args_literally),
        cmocka_unit_test(adb_push_skips_unchanged_file),
        cmocka_unit_test(adb_push_takes_a_name_with_a_leading_dash),
        cmocka_unit_test(adb_push_refuses_file_that_does_not_fit),
        cmocka_unit_test(adb_refuses_agent_of_another_abi),
        cmocka_unit_test(adb_exit_code_and_interrupt_reach_the_remote_program),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (!strchr(root, '\'') && system(cmd) != 0)
        rc = rc ? rc : 1;
    return rc;
}

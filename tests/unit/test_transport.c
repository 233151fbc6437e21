/* Transports driven directly: argv values reach the device literally
 * (nothing in them runs), pushes skip unchanged files and refuse files that
 * do not fit, exit codes and Ctrl-C reach the remote program.
 *
 * local always runs. ssh runs when tests/integration/test_ssh.sh points it
 * at its throw-away sshd (MELT_TEST_SSH_HOST, _PORT, _USER, _WORKDIR, and
 * MELT_SSH_CONFIG); otherwise those tests are skipped. */
#include "testutil.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>

#include "melt/transport.h"

/* Hostile values; "@" is replaced by a path to a file that must never
 * appear. */
static const char *const hostile[] = {
    "a; rm -rf x", "$(touch @)", "`touch @`", "x && touch @ || touch @", "'; touch @; '",
    "it's", "say \"hi\"", "new\nline", "", "${HOME} $PATH", "back\\slash", "*", "~",
    "héllo wörld ☃", "-n", "tab\there",
};
#define N_HOSTILE (sizeof hostile / sizeof hostile[0])

#include "transport_testutil.h"

/* printf '<%s>\n' VALUES... on the device gives back each value as is. */
static void args_arrive_literally(const melt_transport_ops *t, const melt_exp_device *dev,
                                  const char *pwned)
{
    void *st = NULL;
    melt_error e = {0};
    if (t->open(dev, &st, &e) < 0)
        fail_msg("open: %s", e.msg);
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
    assert_int_equal(run_on(t, st, argv, &out), 0);
    assert_string_equal(out.data, want);
    if (exists(pwned) || exists("pwned"))
        fail_msg("a command inside an argument ran: %s exists", pwned);
    for (size_t i = 0; i < N_HOSTILE; i++)
        free(argv[2 + i]);
    t->close(st);
}

static void local_transport_passes_args_literally(void **state)
{
    (void)state;
    char pwned[4096];
    snprintf(pwned, sizeof pwned, "%s", scratch_path("pwned"));
    melt_exp_device dev = {.name = "local"};
    args_arrive_literally(melt_transport_find("local"), &dev, pwned);
}

/* ---- ssh, against test_ssh.sh's sshd ---- */

static bool ssh_device(melt_exp_device *dev)
{
    const char *host = getenv("MELT_TEST_SSH_HOST");
    const char *port = getenv("MELT_TEST_SSH_PORT");
    if (!host || !*host)
        return false;
    memset(dev, 0, sizeof *dev);
    dev->name = "sshd";
    dev->transport = MELT_TRANSPORT_SSH;
    dev->host = (char *)host;
    dev->port = port ? (int)strtol(port, NULL, 10) : 0;
    dev->user = getenv("MELT_TEST_SSH_USER");
    dev->workdir = getenv("MELT_TEST_SSH_WORKDIR");
    return true;
}

static void ssh_transport_passes_args_literally(void **state)
{
    (void)state;
    melt_exp_device dev;
    if (!ssh_device(&dev))
        skip();
    char pwned[4096];
    snprintf(pwned, sizeof pwned, "%s/pwned", dev.workdir);
    args_arrive_literally(melt_transport_find("ssh"), &dev, pwned);
    if (exists("pwned"))
        fail_msg("a command ran in the work folder");
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

/* The file's whole content equals text. */
static void assert_content(const char *path, const char *text)
{
    size_t n = 0;
    char *got = slurp(path, &n);
    if (n != strlen(text) || memcmp(got, text, n) != 0)
        fail_msg("%s: expected '%s', got %zu bytes '%.*s'", path, text, n, (int)n, got);
    free(got);
}

static ino_t inode_of(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        fail_msg("%s: not there", path);
    return st.st_ino;
}

static void ssh_push_skips_unchanged_file(void **state)
{
    (void)state;
    melt_exp_device dev;
    if (!ssh_device(&dev))
        skip();
    const melt_transport_ops *t = melt_transport_find("ssh");
    void *st = NULL;
    melt_error e = {0};
    if (t->open(&dev, &st, &e) < 0)
        fail_msg("open: %s", e.msg);
    char local[4096];
    snprintf(local, sizeof local, "%s", scratch_path("push-me"));
    write_file(local, "first version\n");
    char *remote = NULL;
    if (t->push(st, local, "it's a file; $(x)", &remote, &e) < 0)
        fail_msg("push: %s", e.msg);
    char want[4200];
    snprintf(want, sizeof want, "%s/it's a file; $(x)", dev.workdir);
    assert_string_equal(remote, want);
    assert_content(remote, "first version\n");
    const ino_t ino = inode_of(remote);
    free(remote);
    /* unchanged: not copied again (a copy is renamed into place: new inode) */
    if (t->push(st, local, "it's a file; $(x)", &remote, &e) < 0)
        fail_msg("push again: %s", e.msg);
    assert_true(inode_of(remote) == ino);
    free(remote);
    /* changed, same size: copied */
    write_file(local, "other version\n");
    if (t->push(st, local, "it's a file; $(x)", &remote, &e) < 0)
        fail_msg("push changed: %s", e.msg);
    assert_content(remote, "other version\n");
    free(remote);
    unlink(local);
    t->close(st);
}

static void ssh_push_refuses_file_that_does_not_fit(void **state)
{
    (void)state;
    melt_exp_device dev;
    if (!ssh_device(&dev))
        skip();
    const melt_transport_ops *t = melt_transport_find("ssh");
    void *st = NULL;
    melt_error e = {0};
    if (t->open(&dev, &st, &e) < 0)
        fail_msg("open: %s", e.msg);
    uint64_t free_bytes = 0;
    if (t->free_space(st, NULL, &free_bytes, &e) < 0)
        fail_msg("free_space: %s", e.msg);
    assert_true(free_bytes > 0);
    char local[4096];
    snprintf(local, sizeof local, "%s", scratch_path("huge.gguf"));
    int fd = open(local, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    /* a sparse file larger than the free space: refused before any copy */
    assert_int_equal(ftruncate(fd, (off_t)(free_bytes + ((uint64_t)1 << 30))), 0);
    close(fd);
    char *remote = NULL;
    assert_true(t->push(st, local, "huge.gguf", &remote, &e) < 0);
    if (!strstr(e.msg, "does not fit") || !strstr(e.msg, "MiB free"))
        fail_msg("expected a 'does not fit ... MiB free' error, got: %s", e.msg);
    assert_null(remote);
    unlink(local);
    t->close(st);
}

static void ssh_exit_code_and_interrupt_reach_the_remote_program(void **state)
{
    (void)state;
    melt_exp_device dev;
    if (!ssh_device(&dev))
        skip();
    const melt_transport_ops *t = melt_transport_find("ssh");
    void *st = NULL;
    melt_error e = {0};
    if (t->open(&dev, &st, &e) < 0)
        fail_msg("open: %s", e.msg);
    char *ex[] = {"sh", "-c", "exit 5", NULL};
    buf out;
    assert_int_equal(run_on(t, st, ex, &out), 5);
    /* Ctrl-C: the runner's melt_proc_signal(SIGINT) reaches the remote
     * program, which reports it and exits on its own terms */
    char *argv[] = {"sh", "-c",
                    "trap 'echo got-int; exit 7' INT; echo ready; while :; do sleep 0.1; done",
                    NULL};
    melt_proc p = {.pid = -1, .out_fd = -1, .err_fd = -1};
    if (t->spawn(st, argv, &p, &e) < 0)
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
    t->close(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(local_transport_passes_args_literally),
        cmocka_unit_test(ssh_transport_passes_args_literally),
        cmocka_unit_test(ssh_push_skips_unchanged_file),
        cmocka_unit_test(ssh_push_refuses_file_that_does_not_fit),
        cmocka_unit_test(ssh_exit_code_and_interrupt_reach_the_remote_program),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

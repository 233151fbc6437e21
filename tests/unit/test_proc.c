/* Child processes: argv passed literally, output collected, exit codes,
 * timeouts and signals. */
#include "testutil.h"

#include <signal.h>
#include <sys/stat.h>
#include <time.h>

#include "melt/proc.h"

static void run_collects_stdout_and_exit_code(void **state)
{
    (void)state;
    char *argv[] = {"sh", "-c", "echo out; echo err >&2; exit 3", NULL};
    char *out = NULL, *err_text = NULL;
    melt_error e = {0};
    assert_int_equal(melt_proc_run(argv, NULL, 5000, &out, &err_text, &e), 3);
    assert_string_equal(out, "out\n");
    assert_string_equal(err_text, "err\n");
    free(out);
    free(err_text);
}

/* Shell metacharacters in an argument reach the program as they are:
 * nothing is run, no file is created. */
static void arguments_arrive_literally(void **state)
{
    (void)state;
    const char *pwned = scratch_path("pwned");
    char touch[4200], semi[4200];
    snprintf(touch, sizeof touch, "$(touch %s)", pwned);
    snprintf(semi, sizeof semi, "a; touch %s", pwned);
    char *argv[] = {"printf", "%s|", touch, semi, "`id`", "q'uo\"te", "new\nline", NULL};
    char *out = NULL;
    melt_error e = {0};
    assert_int_equal(melt_proc_run(argv, NULL, 5000, &out, NULL, &e), 0);
    char want[9000];
    snprintf(want, sizeof want, "%s|%s|`id`|q'uo\"te|new\nline|", touch, semi);
    assert_string_equal(out, want);
    struct stat st;
    assert_int_not_equal(stat(pwned, &st), 0);
    free(out);
}

static void missing_program_is_an_error_naming_it(void **state)
{
    (void)state;
    char *argv[] = {"melt-no-such-program", NULL};
    melt_error e = {0};
    assert_int_equal(melt_proc_run(argv, NULL, 5000, NULL, NULL, &e), MELT_EIO);
    assert_non_null(strstr(e.msg, "melt-no-such-program"));
}

static void timeout_kills_the_child(void **state)
{
    (void)state;
    char *argv[] = {"sleep", "30", NULL};
    melt_error e = {0};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(melt_proc_run(argv, NULL, 200, NULL, NULL, &e), MELT_EIO);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_non_null(strstr(e.msg, "timed out"));
    assert_true(t1.tv_sec - t0.tv_sec < 10);
}

typedef struct lines {
    char buf[256];
    size_t n;
    int calls;
} lines;

static int on_out(int fd_index, const char *data, size_t n, void *user)
{
    lines *l = user;
    if (fd_index == 1 && l->n + n < sizeof l->buf) {
        memcpy(l->buf + l->n, data, n);
        l->n += n;
        l->buf[l->n] = '\0';
        l->calls++;
    }
    return 0;
}

static void pump_streams_output_as_it_comes(void **state)
{
    (void)state;
    char *argv[] = {"sh", "-c", "echo a; sleep 0.3; echo b", NULL};
    melt_proc p;
    melt_error e = {0};
    assert_int_equal(melt_proc_spawn(argv, NULL, &p, &e), 0);
    lines l = {0};
    /* the first line arrives before the child ends */
    for (int i = 0; i < 100 && l.n < 2; i++)
        assert_true(melt_proc_pump(&p, 50, on_out, &l, &e) >= 0);
    assert_string_equal(l.buf, "a\n");
    assert_int_equal(melt_proc_pump(&p, 5000, on_out, &l, &e), 1);
    assert_string_equal(l.buf, "a\nb\n");
    assert_int_equal(melt_proc_wait(&p, 5000), 1);
    assert_int_equal(melt_proc_exit_code(&p), 0);
    melt_proc_close(&p);
}

static void signal_stops_the_child_and_reports_it(void **state)
{
    (void)state;
    char *argv[] = {"sleep", "30", NULL};
    melt_proc_opts o = {.new_process_group = true, .stdin_null = true};
    melt_proc p;
    melt_error e = {0};
    assert_int_equal(melt_proc_spawn(argv, &o, &p, &e), 0);
    assert_int_equal(melt_proc_wait(&p, 50), 0);
    melt_proc_signal(&p, SIGTERM);
    assert_int_equal(melt_proc_wait(&p, 5000), 1);
    assert_int_equal(melt_proc_exit_code(&p), 128 + SIGTERM);
    melt_proc_close(&p);
}

static void options_set_directory_and_environment(void **state)
{
    (void)state;
    char *argv[] = {"sh", "-c", "pwd; echo \"$MELT_TEST_VAR\"", NULL};
    char *env[] = {"MELT_TEST_VAR=x y", NULL};
    melt_proc_opts o = {.cwd = "/", .env_add = env};
    char *out = NULL;
    melt_error e = {0};
    assert_int_equal(melt_proc_run(argv, &o, 5000, &out, NULL, &e), 0);
    assert_string_equal(out, "/\nx y\n");
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(run_collects_stdout_and_exit_code),
        cmocka_unit_test(arguments_arrive_literally),
        cmocka_unit_test(missing_program_is_an_error_naming_it),
        cmocka_unit_test(timeout_kills_the_child),
        cmocka_unit_test(pump_streams_output_as_it_comes),
        cmocka_unit_test(signal_stops_the_child_and_reports_it),
        cmocka_unit_test(options_set_directory_and_environment),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* POSIX sh quoting: each value single-quoted once, so a real sh hands it
 * over literally and runs nothing inside it. */
#include "testutil.h"

#include <sys/stat.h>
#include <unistd.h>

#include "melt/proc.h"
#include "transport/shell_quote.h"

static void quote_wraps_in_single_quotes(void **state)
{
    (void)state;
    char *q = melt_shell_quote("a b");
    assert_string_equal(q, "'a b'");
    free(q);
}

static void quote_escapes_single_quotes_as_close_escape_reopen(void **state)
{
    (void)state;
    char *q = melt_shell_quote("it's");
    assert_string_equal(q, "'it'\\''s'");
    free(q);
    q = melt_shell_quote("''");
    assert_string_equal(q, "''\\'''\\'''");
    free(q);
}

static void quote_of_empty_string_is_an_empty_word(void **state)
{
    (void)state;
    char *q = melt_shell_quote("");
    assert_string_equal(q, "''");
    free(q);
}

static void quote_leaves_everything_else_as_is(void **state)
{
    (void)state;
    const char *v = "$(x) `y` \"z\" \\ \n ; & | * ~ é";
    char *q = melt_shell_quote(v);
    char want[128];
    snprintf(want, sizeof want, "'%s'", v);
    assert_string_equal(q, want);
    free(q);
}

static void join_quotes_each_element_once(void **state)
{
    (void)state;
    char *argv[] = {"printf", "%s\\n", "", "a'b", NULL};
    char *q = melt_shell_join(argv);
    assert_string_equal(q, "'printf' '%s\\n' '' 'a'\\''b'");
    free(q);
    char *none[] = {NULL};
    q = melt_shell_join(none);
    assert_string_equal(q, "");
    free(q);
}

/* The round trip through a real sh: every value arrives byte for byte as
 * one argument, and no command inside any of them runs. */
static void sh_receives_hostile_values_literally(void **state)
{
    (void)state;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", scratch_path("quote-dir"));
    assert_int_equal(mkdir(dir, 0700), 0);
    char *argv[] = {"printf", "<%s>\\n",
                    "a; rm -rf x", "$(touch pwned)", "`touch pwned`", "${HOME}",
                    "it's", "say \"hi\"", "new\nline", "", "tab\there", "back\\slash",
                    "héllo wörld ☃", "*", "~", "a && touch pwned || touch pwned", "-n",
                    "'; touch pwned; '", NULL};
    char *line = melt_shell_join(argv);
    assert_non_null(line);
    char *sh[] = {"sh", "-c", line, NULL};
    melt_proc_opts o = {0};
    o.cwd = dir;
    char *out = NULL;
    melt_error e = {0};
    assert_int_equal(melt_proc_run(sh, &o, 5000, &out, NULL, &e), 0);
    char want[1024] = "";
    size_t n = 0;
    for (size_t i = 2; argv[i]; i++)
        n += (size_t)snprintf(want + n, sizeof want - n, "<%s>\n", argv[i]);
    assert_string_equal(out, want);
    char pwned[4200];
    snprintf(pwned, sizeof pwned, "%s/pwned", dir);
    struct stat st;
    assert_int_not_equal(stat(pwned, &st), 0);
    free(out);
    free(line);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(quote_wraps_in_single_quotes),
        cmocka_unit_test(quote_escapes_single_quotes_as_close_escape_reopen),
        cmocka_unit_test(quote_of_empty_string_is_an_empty_word),
        cmocka_unit_test(quote_leaves_everything_else_as_is),
        cmocka_unit_test(join_quotes_each_element_once),
        cmocka_unit_test(sh_receives_hostile_values_literally),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

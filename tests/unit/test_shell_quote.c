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

static void df_output_gives_free_bytes(void **state)
{
    (void)state;
    uint64_t b = 0;
    char posix[] = "Filesystem 1024-blocks Used Available Capacity Mounted on\n"
                   "/dev/vda 263174212 16777216 83886080 17% /\n";
    assert_true(melt_parse_df_free(posix, &b));
    assert_int_equal(b, 83886080ull * 1024u);
    char android[] = "Filesystem Size Used Free Blksize\n/data 25.5G 10.1G 1.5G 4096\n\n";
    assert_true(melt_parse_df_free(android, &b));
    assert_int_equal(b, (uint64_t)(1.5 * 1073741824.0));
    char junk[] = "df: /nope: No such file or directory\n";
    assert_false(melt_parse_df_free(junk, &b));
    char bad_suffix[] = "x 1 2 12Q 3\n";
    assert_false(melt_parse_df_free(bad_suffix, &b));
    assert_false(melt_parse_df_free(NULL, &b));
}

static void sha256_lines_and_last_lines_are_recognized(void **state)
{
    (void)state;
    char text[] = "noise\n270cba1bd5109f42d03350f60406024560464db173c0e387d91f0426d3bd256d  m.gguf \r\n";
    const char *line = melt_last_line(text);
    assert_true(melt_is_sha256_line(line));
    assert_string_equal(line + 66, "m.gguf");
    assert_false(melt_is_sha256_line("270CBA1bd5109f42d03350f60406024560464db173c0e387d91f0426d3bd256d  x"));
    assert_false(melt_is_sha256_line("sha256sum: not found"));
    assert_string_equal(melt_last_line(NULL), "");
    char *c = melt_concat3("a", "/", "b");
    assert_string_equal(c, "a/b");
    free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(df_output_gives_free_bytes),
        cmocka_unit_test(sha256_lines_and_last_lines_are_recognized),
        cmocka_unit_test(quote_wraps_in_single_quotes),
        cmocka_unit_test(quote_escapes_single_quotes_as_close_escape_reopen),
        cmocka_unit_test(quote_of_empty_string_is_an_empty_word),
        cmocka_unit_test(quote_leaves_everything_else_as_is),
        cmocka_unit_test(join_quotes_each_element_once),
        cmocka_unit_test(sh_receives_hostile_values_literally),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

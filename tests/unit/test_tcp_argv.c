/* The tcp transport passes argv literally: hostile values (shell syntax,
 * quotes, newlines, backticks) sent to a `melt-agent --listen` on loopback
 * reach the agent's argv byte for byte and nothing in them runs. The agent
 * runs every request as itself (argv[0] ignored), so each value goes in as
 * the model path (`-m VALUE`): the agent's error line names the file it
 * could not open, which is VALUE exactly. (local, ssh: test_transport.c;
 * adb: test_adb.c.) */
#include "testutil.h"

#include <limits.h>
#include <signal.h>
#include <sys/stat.h>

#include "melt/event.h"
#include "melt/proc.h"
#include "melt/transport.h"
#include "transport_testutil.h"

/* "@" becomes a path that must never appear. */
static const char *const hostile[] = {
    "a; rm -rf x", "$(touch @)", "`touch @`", "x && touch @ || touch @", "'; touch @; '",
    "it's", "say \"hi\"", "new\nline", "${HOME} $PATH", "back\\slash", "*", "~",
    "héllo wörld ☃", "-n", "tab\there", "a\r\nb", "#exit 0",
};
#define N_HOSTILE (sizeof hostile / sizeof hostile[0])

typedef struct agent_srv {
    melt_proc p;
    int port;
    char dir[PATH_MAX];
} agent_srv;

typedef struct text {
    char s[4096];
    size_t n;
} text;

static int keep_err(int fd_index, const char *data, size_t n, void *user)
{
    text *t = user;
    if (fd_index == 2 && t->n + n < sizeof t->s) {
        memcpy(t->s + t->n, data, n);
        t->n += n;
        t->s[t->n] = '\0';
    }
    return strstr(t->s, "listening on") ? 1 : 0;
}

/* `melt-agent --listen PORT --dir DIR` on a free port. */
static void start_agent(agent_srv *a)
{
    const char *build = getenv("BUILD");
    char agent[PATH_MAX];
    snprintf(agent, sizeof agent, "%s/melt-agent", build && *build ? build : "build");
    if (access(agent, X_OK) != 0)
        fail_msg("no agent at %s (set BUILD)", agent);
    snprintf(a->dir, sizeof a->dir, "%s", scratch_path("tcp-dev"));
    mkdir(a->dir, 0777);
    for (int attempt = 0; attempt < 10; attempt++) {
        a->port = 20000 + (int)((getpid() * 131 + attempt * 7919) % 40000);
        char port[16];
        snprintf(port, sizeof port, "%d", a->port);
        char *argv[] = {agent, "--listen", port, "--dir", a->dir, NULL};
        melt_proc_opts o = {.stdin_null = true};
        melt_error e = {0};
        if (melt_proc_spawn(argv, &o, &a->p, &e) < 0)
            fail_msg("%s", e.msg);
        text t = {.n = 0};
        int rc = 0;
        for (int i = 0; i < 50 && rc == 0; i++)
            rc = melt_proc_pump(&a->p, 100, keep_err, &t, &e);
        if (rc == 1 && strstr(t.s, "listening on"))
            return;
        melt_proc_close(&a->p);   /* port taken: try another */
    }
    fail_msg("the agent did not listen on any port tried");
}

static void hostile_argv_arrives_literally_over_tcp(void **state)
{
    (void)state;
    agent_srv a;
    start_agent(&a);
    char pwned[PATH_MAX + 16];
    snprintf(pwned, sizeof pwned, "%s/pwned", a.dir);
    melt_exp_device dev = {.name = "ios", .transport = MELT_TRANSPORT_TCP,
                           .host = "127.0.0.1", .port = a.port};
    const melt_transport_ops *t = melt_transport_find("tcp");
    assert_non_null(t);
    void *st = NULL;
    melt_error e = {0};
    if (t->open(&dev, &st, &e) < 0)
        fail_msg("open: %s", e.msg);
    for (size_t i = 0; i < N_HOSTILE; i++) {
        char *v = subst(hostile[i], pwned);
        char *argv[] = {"ignored", "-m", v, "--synthetic", "1,1", NULL};
        buf out;
        assert_int_equal(run_on(t, st, argv, &out), 1);   /* the agent's "bye error" */
        /* the error line names the value as the file it could not open */
        bool found = false;
        for (char *line = out.data; line && *line;) {
            char *nl = strchr(line, '\n');
            size_t len = nl ? (size_t)(nl - line) : strlen(line);
            melt_event ev;
            if (melt_event_parse(line, len, &ev, &e) == 0 && ev.kind == MELT_EV_ERROR) {
                size_t vl = strlen(v);
                if (strncmp(ev.msg, v, vl) != 0 || strncmp(ev.msg + vl, ": cannot open", 13) != 0)
                    fail_msg("value %zu arrived as '%s', sent '%s'", i, ev.msg, v);
                found = true;
            }
            line = nl ? nl + 1 : NULL;
        }
        if (!found)
            fail_msg("value %zu: no error line in '%s'", i, out.data);
        free(v);
        if (exists(pwned))
            fail_msg("a command inside value %zu ran: %s exists", i, pwned);
    }
    t->close(st);
    melt_proc_signal(&a.p, SIGTERM);
    melt_proc_wait(&a.p, 5000);
    melt_proc_close(&a.p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hostile_argv_arrives_literally_over_tcp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Runner pieces that need no agent: the agent's argv built from a cell,
 * duration formatting for the ETA, synth cache names, the transport table
 * and the local transport. */
#include <math.h>

#include "testutil.h"

#include "melt/experiment.h"
#include "melt/runner.h"
#include "melt/transport.h"

static const char *EXP =
    "name: t\n"
    "seed: 7\n"
    "engines:\n"
    "  - threads: [1, 2]\n"
    "    context: 256\n"
    "    batch: 32\n"
    "    kv_type: f32\n"
    "models:\n"
    "  - synth: {preset: tiny, type: q8_0, seed: 3}\n"
    "workloads:\n"
    "  - synthetic: {prompt_tokens: 16, gen_tokens: 8}\n"
    "sampling: {temperature: 0.5, top_k: 10, top_p: 0.9, min_p: 0.01, repeat_penalty: 1.1,"
    " repeat_last_n: 32}\n"
    "probes:\n"
    "  - {name: procfs, rate_hz: 10}\n"
    "  - {name: thermal, rate_hz: 2.5}\n";

static melt_experiment *load(const char *text)
{
    melt_experiment *e = NULL;
    melt_error err = {0};
    int rc = melt_experiment_parse(text, strlen(text), "t.yaml", ".", &e, &err);
    if (rc < 0)
        fail_msg("parse: %s", err.msg);
    return e;
}

static char *join(char **argv)
{
    static char buf[2048];
    size_t k = 0;
    buf[0] = '\0';
    for (size_t i = 0; argv[i]; i++)
        k += (size_t)snprintf(buf + k, sizeof buf - k, "%s%s", i ? " " : "", argv[i]);
    return buf;
}

static void agent_argv_carries_engine_sampling_plan_and_probes(void **state)
{
    (void)state;
    melt_experiment *e = load(EXP);
    melt_cell c;
    assert_true(melt_experiment_cell(e, 1, &c));   /* threads 2 */
    char **argv = NULL;
    melt_error err = {0};
    assert_int_equal(melt_runner_agent_argv(e, &c, "/x/melt-agent", "/m/tiny.gguf", "/tmp/plan",
                                            500, NULL, &argv, &err), 0);
    assert_string_equal(join(argv),
                        "/x/melt-agent -m /m/tiny.gguf -t 2 -c 256 -b 32 --kv-type f32 "
                        "--temp 0.5 --top-k 10 --top-p 0.899999976 --min-p 0.00999999978 "
                        "--repeat-penalty 1.10000002 --repeat-last-n 32 --seed 7 "
                        "--plan /tmp/plan --reps 1 --idle-ms 500 "
                        "--probe procfs:10 --probe thermal:2.5");
    melt_runner_argv_free(argv);
    melt_experiment_free(e);
}

static void agent_argv_leaves_out_idle_when_zero_and_adds_probe_root(void **state)
{
    (void)state;
    melt_experiment *e = load(EXP);
    melt_cell c;
    assert_true(melt_experiment_cell(e, 0, &c));
    char **argv = NULL;
    melt_error err = {0};
    assert_int_equal(melt_runner_agent_argv(e, &c, "a", "m", "p", 0, "/fake", &argv, &err), 0);
    const char *s = join(argv);
    assert_null(strstr(s, "--idle-ms"));
    assert_non_null(strstr(s, " -t 1 "));
    assert_non_null(strstr(s, "--probe-root /fake"));
    melt_runner_argv_free(argv);
    melt_experiment_free(e);
}

static void agent_argv_all_threads_gives_no_t_flag(void **state)
{
    (void)state;
    melt_experiment *e = load("models:\n  - synth: {preset: tiny}\n"
                              "workloads:\n  - synthetic: {prompt_tokens: 4, gen_tokens: 4}\n");
    melt_cell c;
    assert_true(melt_experiment_cell(e, 0, &c));
    char **argv = NULL;
    melt_error err = {0};
    assert_int_equal(melt_runner_agent_argv(e, &c, "a", "m", "p", 0, NULL, &argv, &err), 0);
    const char *s = join(argv);
    assert_null(strstr(s, " -t "));
    assert_null(strstr(s, "--probe"));
    assert_non_null(strstr(s, "-c 2048 -b 512 --kv-type f16"));
    melt_runner_argv_free(argv);
    melt_experiment_free(e);
}

/* Frameworks under test: the engine entry's backend options reach the
 * agent as flags; an OpenAI endpoint gets the served model's name (or
 * none), never the model file. */
static void agent_argv_carries_backend_options(void **state)
{
    (void)state;
    melt_experiment *e = load("models:\n  - synth: {preset: tiny}\n"
                              "workloads:\n  - synthetic: {prompt_tokens: 4, gen_tokens: 4}\n"
                              "engines:\n"
                              "  - {backend: llamacpp, mode: cli, binary: /b/llama-completion,"
                              " args: [--mlock, -fa], threads: 2}\n"
                              "  - {backend: openai, url: 'http://10.1.2.3:8080/v1', api_key_env: K}\n"
                              "  - {backend: openai, name: edge, url: 'http://h:1', model: stories}\n");
    melt_cell c;
    char **argv = NULL;
    melt_error err = {0};
    assert_true(melt_experiment_cell(e, 0, &c));
    assert_int_equal(melt_runner_agent_argv(e, &c, "a", "/m/x.gguf", "p", 0, NULL, &argv, &err), 0);
    assert_non_null(strstr(join(argv), "a -m /m/x.gguf --backend llamacpp --backend-mode cli "
                                       "--binary /b/llama-completion --server-arg --mlock "
                                       "--server-arg -fa -t 2 "));
    melt_runner_argv_free(argv);
    assert_true(melt_experiment_cell(e, 1, &c));
    assert_int_equal(melt_runner_agent_argv(e, &c, "a", "/m/x.gguf", "p", 0, NULL, &argv, &err), 0);
    assert_non_null(strstr(join(argv), "a --backend openai --url http://10.1.2.3:8080/v1 "
                                       "--api-key-env K -c 2048"));
    assert_null(strstr(join(argv), "x.gguf"));
    melt_runner_argv_free(argv);
    assert_true(melt_experiment_cell(e, 2, &c));
    assert_int_equal(melt_runner_agent_argv(e, &c, "a", "/m/x.gguf", "p", 0, NULL, &argv, &err), 0);
    assert_non_null(strstr(join(argv), "a -m stories --backend openai "));
    assert_string_equal(c.engine->id, "edge-tall-c2048");
    melt_runner_argv_free(argv);
    melt_experiment_free(e);
}

static void durations_format_for_eta(void **state)
{
    (void)state;
    char b[32];
    assert_string_equal(melt_runner_format_duration(0, b, sizeof b), "0s");
    assert_string_equal(melt_runner_format_duration(44.6, b, sizeof b), "45s");
    assert_string_equal(melt_runner_format_duration(187, b, sizeof b), "3m07s");
    assert_string_equal(melt_runner_format_duration(3600 * 2 + 5 * 60 + 59, b, sizeof b), "2h05m");
    assert_string_equal(melt_runner_format_duration(-1, b, sizeof b), "?");
    assert_string_equal(melt_runner_format_duration(NAN, b, sizeof b), "?");
}

static void synth_cache_name_is_preset_type_seed(void **state)
{
    (void)state;
    melt_experiment *e = load(EXP);
    char b[128];
    assert_int_equal(melt_runner_synth_name(&e->models[0], b, sizeof b), 0);
    assert_string_equal(b, "tiny-q8_0-s3.gguf");
    assert_int_equal(melt_runner_synth_name(&e->models[0], b, 8), MELT_EINVAL);
    melt_experiment_free(e);
}

static void transport_table_has_local_and_ssh(void **state)
{
    (void)state;
    const char *const names[] = {"local", "ssh"};
    for (size_t i = 0; i < 2; i++) {
        const melt_transport_ops *t = melt_transport_find(names[i]);
        assert_non_null(t);
        assert_string_equal(t->name, names[i]);
        assert_int_equal(t->version, MELT_TRANSPORT_API_VERSION);
    }
    assert_null(melt_transport_find("no-such-transport"));
    assert_null(melt_transport_find(NULL));
}

static void local_transport_push_is_no_copy_and_spawn_streams(void **state)
{
    (void)state;
    const melt_transport_ops *t = melt_transport_find("local");
    void *st = NULL;
    melt_error err = {0};
    assert_int_equal(t->open(NULL, &st, &err), 0);
    char *remote = NULL;
    assert_int_equal(t->push(st, "/some/model.gguf", "model.gguf", &remote, &err), 0);
    assert_string_equal(remote, "/some/model.gguf");
    free(remote);
    uint64_t bytes = 0;
    assert_int_equal(t->free_space(st, "/", &bytes, &err), 0);
    assert_true(bytes > 0);
    char *argv[] = {"/bin/echo", "hello", NULL};
    melt_proc p;
    assert_int_equal(t->spawn(st, argv, &p, &err), 0);
    assert_true(p.new_group);
    char out[64] = "";
    size_t n = 0;
    for (;;) {
        char buf[64];
        ssize_t k = read(p.out_fd, buf, sizeof buf);
        if (k > 0 && n + (size_t)k < sizeof out) {
            memcpy(out + n, buf, (size_t)k);
            n += (size_t)k;
        } else if (k == 0) {
            break;
        } else {
            usleep(1000);
        }
    }
    out[n] = '\0';
    assert_string_equal(out, "hello\n");
    assert_int_equal(melt_proc_wait(&p, 5000), 1);
    assert_int_equal(melt_proc_exit_code(&p), 0);
    melt_proc_close(&p);
    t->close(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(agent_argv_carries_engine_sampling_plan_and_probes),
        cmocka_unit_test(agent_argv_leaves_out_idle_when_zero_and_adds_probe_root),
        cmocka_unit_test(agent_argv_all_threads_gives_no_t_flag),
        cmocka_unit_test(agent_argv_carries_backend_options),
        cmocka_unit_test(durations_format_for_eta),
        cmocka_unit_test(synth_cache_name_is_preset_type_seed),
        cmocka_unit_test(transport_table_has_local_and_ssh),
        cmocka_unit_test(local_transport_push_is_no_copy_and_spawn_streams),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

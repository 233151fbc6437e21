/* Experiment files, workloads and plans: every error kind with its exact
 * one-line message, defaults, matrix expansion order, relative paths,
 * workload loading, and the plan format's round trip. */
#include "testutil.h"

#include <sys/stat.h>

#include "melt/experiment.h"
#include "melt/plan.h"
#include "melt/workload.h"

/* Parse yaml as "exp.yaml" in examples/ (so conversations.json and
 * prompts.txt resolve); returns the error line, or "" on success (the
 * experiment is then kept in *out when out is not NULL). */
static const char *parse(const char *yaml, melt_experiment **out)
{
    static melt_error err;
    melt_experiment *e = NULL;
    melt_error_clear(&err);
    int rc = melt_experiment_parse(yaml, strlen(yaml), "exp.yaml", "examples", &e, &err);
    if (rc < 0) {
        assert_null(e);
        assert_true(err.msg[0] != '\0');
        assert_null(strchr(err.msg, '\n'));
        return err.msg;
    }
    if (out)
        *out = e;
    else
        melt_experiment_free(e);
    return "";
}

#define MINIMAL "models:\n  - synth: {preset: tiny}\nworkloads:\n  - synthetic: {}\n"

static void expect_error(const char *yaml, const char *want)
{
    const char *got = parse(yaml, NULL);
    if (strcmp(got, want) != 0)
        fail_msg("expected error\n  %s\ngot\n  %s", want, got);
}

static void experiment_minimal_file_gets_documented_defaults(void **state)
{
    (void)state;
    melt_experiment *e = NULL;
    assert_string_equal(parse(MINIMAL, &e), "");
    assert_string_equal(e->name, "exp");
    assert_int_equal(e->seed, 1);
    assert_int_equal(e->repetitions, 3);
    assert_int_equal(e->warmup, 1);
    assert_true(e->cooldown.max_temp_c == 45 && e->cooldown.min_wait_s == 0 &&
                e->cooldown.max_wait_s == 120);
    assert_int_equal(e->n_devices, 1);
    assert_string_equal(e->devices[0].name, "local");
    assert_int_equal(e->devices[0].transport, MELT_TRANSPORT_LOCAL);
    assert_int_equal(e->n_engines, 1);
    assert_string_equal(e->engines[0].id, "builtin-tall-c2048");
    assert_int_equal(e->engines[0].n_threads, 0);
    assert_int_equal(e->engines[0].n_batch, 512);
    assert_int_equal(e->engines[0].kv_type, MELT_KV_F16);
    assert_string_equal(e->models[0].name, "tiny-q8_0");
    assert_int_equal(e->models[0].ftype, MELT_FTYPE_Q8_0);
    assert_int_equal(e->models[0].seed, 1);
    assert_string_equal(e->workloads[0].id, "synthetic-pp512-tg128");
    melt_sampler_params d = melt_sampler_default_params();
    assert_true(e->sampling.temperature == d.temperature && e->sampling.top_k == d.top_k &&
                e->sampling.top_p == d.top_p && e->sampling.min_p == d.min_p &&
                e->sampling.repeat_penalty == d.repeat_penalty &&
                e->sampling.repeat_last_n == d.repeat_last_n);
    assert_int_equal(e->sampling.seed, 1); /* the experiment's seed */
    assert_int_equal(e->n_probes, 0);
    assert_int_equal(melt_experiment_n_cells(e), 1);
    melt_experiment_free(e);
}

static void experiment_reads_every_key_of_full_example(void **state)
{
    (void)state;
    melt_experiment *e = NULL;
    melt_error err = {0};
    assert_int_equal(melt_experiment_load("examples/full.yaml", &e, &err), 0);
    assert_string_equal(e->name, "full-example");
    assert_string_equal(e->description, "Every key, shown once.");
    assert_int_equal(e->seed, 42);
    assert_int_equal(e->repetitions, 5);
    assert_int_equal(e->warmup, 2);
    assert_true(e->cooldown.min_wait_s == 5 && e->cooldown.max_wait_s == 180);
    assert_string_equal(e->devices[0].name, "this-host");
    assert_string_equal(e->devices[0].workdir, "/tmp/melt");
    assert_int_equal(e->n_engines, 4);
    assert_int_equal(e->n_models, 2);
    assert_string_equal(e->models[1].name, "tiny-q4_0");
    assert_int_equal(e->n_workloads, 6);
    assert_string_equal(e->workloads[4].id, "chat");
    assert_int_equal(e->workloads[4].max_context_tokens, 1024);
    assert_string_equal(e->workloads[5].id, "prompts-prompts");
    assert_false(e->workloads[5].jsonl);
    assert_true(e->sampling.temperature == 0.7f && e->sampling.repeat_penalty == 1.1f);
    assert_int_equal(e->sampling.seed, 7);
    assert_int_equal(e->n_probes, 7);
    assert_string_equal(e->probes[3].name, "power_supply");
    assert_true(e->probes[1].rate_hz == 5 && e->probes[3].rate_hz == 10);
    assert_int_equal(melt_experiment_n_cells(e), 48);
    melt_experiment_free(e);
}

static void experiment_unknown_key_suggests_nearest(void **state)
{
    (void)state;
    expect_error("name: x\nseed: 2\nrepetitons: 3\n" MINIMAL,
                 "exp.yaml:3:1: unknown key 'repetitons' (did you mean 'repetitions'?)");
    expect_error(MINIMAL "engines:\n  - thread: 2\n",
                 "exp.yaml:6:5: engines[0]: unknown key 'thread' (did you mean 'threads'?)");
    expect_error(MINIMAL "sampling: {temprature: 1}\n",
                 "exp.yaml:5:12: sampling: unknown key 'temprature' (did you mean 'temperature'?)");
    expect_error(MINIMAL "zzz: 1\n",
                 "exp.yaml:5:1: unknown key 'zzz' (one of: name, description, seed, repetitions, "
                 "warmup, cooldown, devices, engines, models, workloads, sampling, probes)");
    expect_error(MINIMAL "probes: [thermals]\n",
                 "exp.yaml:5:10: probes[0]: unknown probe 'thermals' (did you mean 'thermal'?)");
    expect_error("models:\n  - synth: {preset: tiyn}\nworkloads:\n  - synthetic: {}\n",
                 "exp.yaml:2:21: models[0].synth.preset: unknown preset 'tiyn' (did you mean 'tiny'?)");
}

static void experiment_wrong_types_name_key_and_value(void **state)
{
    (void)state;
    expect_error(MINIMAL "engines:\n  - threads: two\n",
                 "exp.yaml:6:14: engines[0].threads: expected a positive integer, got 'two'");
    expect_error(MINIMAL "engines:\n  - threads: [1, 0]\n",
                 "exp.yaml:6:18: engines[0].threads[1]: expected a positive integer, got '0'");
    expect_error(MINIMAL "repetitions: '3'\n",
                 "exp.yaml:5:14: repetitions: expected a positive integer, got '3'");
    expect_error(MINIMAL "warmup: [1]\n",
                 "exp.yaml:5:9: warmup: expected a non-negative integer, got a list");
    expect_error(MINIMAL "cooldown: 5\n",
                 "exp.yaml:5:11: cooldown: expected a mapping of keys, got '5'");
    expect_error(MINIMAL "sampling: {top_p: 1.5}\n",
                 "exp.yaml:5:19: sampling.top_p: expected a number of at most 1, got '1.5'");
    expect_error(MINIMAL "sampling: {temperature: hot}\n",
                 "exp.yaml:5:25: sampling.temperature: expected a number, got 'hot'");
    expect_error(MINIMAL "engines:\n  - kv_type: q8\n",
                 "exp.yaml:6:14: engines[0].kv_type: unknown kv_type 'q8' (one of: f16, f32)");
    expect_error(MINIMAL "engines:\n  - backend: llama\n",
                 "exp.yaml:6:14: engines[0].backend: unknown backend 'llama' (one of: builtin, "
                 "llamacpp, mlc, openai)");
    expect_error(MINIMAL "cooldown: {min_wait_s: 10, max_wait_s: 5}\n",
                 "exp.yaml:5:40: cooldown.max_wait_s: 5 is below min_wait_s (10)");
    expect_error(MINIMAL "seed: -1\n",
                 "exp.yaml:5:7: seed: expected a non-negative integer, got '-1'");
    expect_error(MINIMAL "engines:\n  - threads: 99999\n",
                 "exp.yaml:6:14: engines[0].threads: expected at most 4096, got '99999'");
    expect_error(MINIMAL "name: \"two\\nlines\"\n",
                 "exp.yaml:5:7: name: may not hold control characters");
    expect_error("[1, 2]\n", "exp.yaml:1:1: expected a mapping of keys at the top level, got a list");
    expect_error("", "exp.yaml:1:1: the experiment file is empty");
}

/* Engine entries of the frameworks under test: each backend takes its own
 * keys, the id leads with the backend and its mode, and wrong keys or
 * values are one-line errors naming the place. */
static void experiment_backend_options_are_checked_and_kept(void **state)
{
    (void)state;
    melt_experiment *e = NULL;
    assert_string_equal(parse(MINIMAL "engines:\n"
                              "  - {backend: llamacpp, mode: cli, binary: /opt/llama-completion, threads: 2}\n"
                              "  - {backend: llamacpp, port: 8099, args: [--flash-attn, 'on']}\n"
                              "  - {backend: openai, url: 'http://10.0.0.2:8080/v1', api_key_env: MY_KEY,"
                              " model: stories}\n"
                              "  - {backend: mlc, model: Llama-3-q4f16_1-MLC, args: --mode=local}\n",
                              &e), "");
    assert_int_equal(e->n_engines, 4);
    assert_string_equal(e->engines[0].id, "llamacpp-cli-t2-c2048");
    assert_string_equal(e->engines[0].mode, "cli");
    assert_string_equal(e->engines[0].binary, "/opt/llama-completion");
    assert_string_equal(e->engines[1].id, "llamacpp-server-tall-c2048");   /* the default mode */
    assert_null(e->engines[1].mode);
    assert_int_equal(e->engines[1].port, 8099);
    assert_int_equal(e->engines[1].n_args, 2);
    assert_string_equal(e->engines[1].args[1], "on");
    assert_string_equal(e->engines[2].backend, "openai");
    assert_string_equal(e->engines[2].url, "http://10.0.0.2:8080/v1");
    assert_string_equal(e->engines[2].api_key_env, "MY_KEY");
    assert_string_equal(e->engines[2].model, "stories");
    assert_int_equal(e->engines[3].n_args, 1);
    assert_string_equal(e->engines[3].args[0], "--mode=local");
    melt_experiment_free(e);

    expect_error(MINIMAL "engines:\n  - {backend: builtin, url: 'http://x'}\n",
                 "exp.yaml:6:29: engines[0].url: not used by backend 'builtin'");
    expect_error(MINIMAL "engines:\n  - {backend: openai}\n",
                 "exp.yaml:6:5: engines[0]: missing required key 'url' (backend 'openai')");
    expect_error(MINIMAL "engines:\n  - {backend: openai, url: 'https://api.x/v1'}\n",
                 "exp.yaml:6:28: engines[0].url: expected an http:// URL, got 'https://api.x/v1' "
                 "(for https, reach the server through a TLS tunnel)");
    expect_error(MINIMAL "engines:\n  - {backend: openai, url: 'http://h', api_key_env: 'A-B'}\n",
                 "exp.yaml:6:53: engines[0].api_key_env: expected the name of an environment "
                 "variable, got 'A-B'");
    expect_error(MINIMAL "engines:\n  - {backend: llamacpp, mode: batch}\n",
                 "exp.yaml:6:31: engines[0].mode: unknown mode 'batch' (one of: server, cli)");
    expect_error(MINIMAL "engines:\n  - {backend: llamacpp, port: 0}\n",
                 "exp.yaml:6:31: engines[0].port: expected a positive integer, got '0'");
    expect_error(MINIMAL "engines:\n  - {backend: mlc, args: [1, [2]]}\n",
                 "exp.yaml:6:30: engines[0].args[1]: expected a string, got a list");
}

static void experiment_missing_and_empty_are_errors(void **state)
{
    (void)state;
    expect_error("workloads:\n  - synthetic: {}\n", "exp.yaml:1:1: missing required key 'models'");
    expect_error("models:\n  - synth: {preset: tiny}\n",
                 "exp.yaml:1:1: missing required key 'workloads'");
    expect_error("models: []\nworkloads:\n  - synthetic: {}\n",
                 "exp.yaml:1:9: models: expected a non-empty list, got an empty one");
    expect_error(MINIMAL "engines:\n", "exp.yaml:5:9: engines: expected a non-empty list, got null");
    expect_error("models:\n  - name: x\nworkloads:\n  - synthetic: {}\n",
                 "exp.yaml:2:5: models[0]: missing required key 'path' or 'synth'");
    expect_error("models:\n  - synth: {type: q8_0}\nworkloads:\n  - synthetic: {}\n",
                 "exp.yaml:2:12: models[0].synth: missing required key 'preset'");
    expect_error(MINIMAL "devices:\n  - transport: ssh\n",
                 "exp.yaml:6:5: devices[0]: missing required key 'host' (transport 'ssh')");
    expect_error(MINIMAL "devices:\n  - {transport: local, host: h}\n",
                 "exp.yaml:6:30: devices[0].host: not used by transport 'local'");
    expect_error(MINIMAL "probes:\n  - {rate_hz: 5}\n",
                 "exp.yaml:6:5: probes[0]: missing required key 'name'");
    expect_error("models:\n  - synth: {preset: tiny}\nworkloads:\n  - {}\n",
                 "exp.yaml:4:5: workloads[0]: missing required key 'synthetic', 'conversations' "
                 "or 'prompts'");
    expect_error("models:\n  - synth: {preset: tiny}\nworkloads:\n"
                 "  - synthetic: {prompt_tokens: 0, gen_tokens: 0}\n",
                 "exp.yaml:4:16: workloads[0].synthetic: prompt_tokens and gen_tokens are both 0");
    expect_error("models:\n  - synth: {preset: tiny}\nworkloads:\n"
                 "  - synthetic: {}\n    max_gen_tokens: 5\n",
                 "exp.yaml:5:21: workloads[0].max_gen_tokens: only used by conversations and "
                 "prompts workloads");
}

static void experiment_duplicates_are_errors(void **state)
{
    (void)state;
    expect_error("seed: 1\nname: a\nseed: 2\n" MINIMAL,
                 "exp.yaml:3:1: duplicate key 'seed' (first at 1:1)");
    expect_error("models:\n  - synth: {preset: tiny}\n  - synth: {preset: tiny}\n"
                 "workloads:\n  - synthetic: {}\n",
                 "exp.yaml:3:5: models[1]: name 'tiny-q8_0' is already used by models[0] (set "
                 "'name' to tell them apart)");
    expect_error(MINIMAL "engines:\n  - threads: 2\n  - threads: [1, 2]\n",
                 "exp.yaml:7:5: engines[1]: engine variant 'builtin-t2-c2048' is already in "
                 "engines[0]");
    expect_error(MINIMAL "  - synthetic: {prompt_tokens: 512}\n",
                 "exp.yaml:5:5: workloads[1]: workload 'synthetic-pp512-tg128' is already in "
                 "workloads[0] (set 'name' to tell them apart)");
    expect_error(MINIMAL "devices: [{transport: local}, {transport: local}]\n",
                 "exp.yaml:5:31: devices[1]: name 'local' is already used by devices[0] (set "
                 "'name' to tell them apart)");
}

static void experiment_yaml_syntax_errors_give_one_line(void **state)
{
    (void)state;
    expect_error("models: [1, 2\n",
                 "exp.yaml:2:1: did not find expected ',' or ']' (while parsing a flow sequence "
                 "at 1:9)");
    expect_error("a: b\n c: d\n",
                 "exp.yaml:2:3: mapping values are not allowed in this context");
    expect_error("base: &b {x: 1}\nother: *b\n",
                 "exp.yaml:2:8: aliases ('*b') are not supported in experiment files");
    expect_error(MINIMAL "---\nname: two\n",
                 "exp.yaml:5:1: more than one YAML document (an experiment file holds one)");
    expect_error("name: \"\x01\"\n", "exp.yaml: byte 7: control characters are not allowed");
    char deep[400];
    size_t o = (size_t)snprintf(deep, sizeof deep, "a: ");
    for (int i = 0; i < 100; i++)
        deep[o++] = '[';
    deep[o] = '\0';
    expect_error(deep, "exp.yaml:1:67: nested deeper than 64 levels");
}

static void experiment_expansion_is_bounded(void **state)
{
    (void)state;
    char yaml[2048];
    size_t o = (size_t)snprintf(yaml, sizeof yaml, MINIMAL "engines:\n  - threads: [");
    for (int i = 1; i <= 40; i++)
        o += (size_t)snprintf(yaml + o, sizeof yaml - o, "%s%d", i > 1 ? ", " : "", i);
    o += (size_t)snprintf(yaml + o, sizeof yaml - o, "]\n    context: [");
    for (int i = 1; i <= 30; i++)
        o += (size_t)snprintf(yaml + o, sizeof yaml - o, "%s%d", i > 1 ? ", " : "", 100 + i);
    snprintf(yaml + o, sizeof yaml - o, "]\n");
    expect_error(yaml, "exp.yaml:6:5: engines[0]: more than 1024 engine variants");
}

static void experiment_lists_expand_in_documented_order(void **state)
{
    (void)state;
    melt_experiment *e = NULL;
    const char *yaml =
        "devices: [{name: a}, {name: b, transport: adb, serial: X1}]\n"
        "engines:\n  - {threads: [1, 2], context: [512, 1024], kv_type: [f16, f32]}\n"
        "models:\n  - synth: {preset: tiny}\n  - synth: {preset: tiny, type: f16, seed: 3}\n"
        "workloads:\n  - synthetic: {prompt_tokens: [16, 32], gen_tokens: 8}\n"
        "  - name: talk\n    conversations: conversations.json\n";
    assert_string_equal(parse(yaml, &e), "");
    assert_int_equal(e->n_engines, 8);
    assert_int_equal(e->n_workloads, 3);
    assert_int_equal(melt_experiment_n_cells(e), 2 * 8 * 2 * 3);
    static const char *const engines[] = {
        "builtin-t1-c512",  "builtin-t1-c512-kvf32",  "builtin-t1-c1024", "builtin-t1-c1024-kvf32",
        "builtin-t2-c512",  "builtin-t2-c512-kvf32",  "builtin-t2-c1024", "builtin-t2-c1024-kvf32"};
    for (size_t i = 0; i < 8; i++)
        assert_string_equal(e->engines[i].id, engines[i]);
    assert_string_equal(e->models[1].name, "tiny-f16-s3");
    melt_cell c;
    assert_true(melt_experiment_cell(e, 0, &c));
    assert_string_equal(c.id, "a/builtin-t1-c512/tiny-q8_0/synthetic-pp16-tg8");
    assert_true(melt_experiment_cell(e, 1, &c));
    assert_string_equal(c.id, "a/builtin-t1-c512/tiny-q8_0/synthetic-pp32-tg8");
    assert_true(melt_experiment_cell(e, 2, &c));
    assert_string_equal(c.id, "a/builtin-t1-c512/tiny-q8_0/talk");
    assert_true(melt_experiment_cell(e, 3, &c));
    assert_string_equal(c.id, "a/builtin-t1-c512/tiny-f16-s3/synthetic-pp16-tg8");
    assert_true(melt_experiment_cell(e, 6, &c));
    assert_string_equal(c.id, "a/builtin-t1-c512-kvf32/tiny-q8_0/synthetic-pp16-tg8");
    assert_true(melt_experiment_cell(e, 95, &c));
    assert_string_equal(c.id, "b/builtin-t2-c1024-kvf32/tiny-f16-s3/talk");
    assert_int_equal(c.device->transport, MELT_TRANSPORT_ADB);
    assert_false(melt_experiment_cell(e, 96, &c));
    /* ids are unique and found again */
    for (size_t i = 0; melt_experiment_cell(e, i, &c); i++)
        assert_int_equal(melt_experiment_find_cell(e, c.id), (long)i);
    assert_int_equal(melt_experiment_find_cell(e, "a/nope"), -1);
    melt_experiment_free(e);
}

static void experiment_paths_resolve_against_its_folder(void **state)
{
    (void)state;
    char dir[4096], path[4200], model[4200];
    snprintf(dir, sizeof dir, "%s", scratch_path("expdir"));
    mkdir(dir, 0755);
    snprintf(model, sizeof model, "%s/m.gguf", dir);
    FILE *f = fopen(model, "wb");
    assert_non_null(f);
    fclose(f);
    snprintf(path, sizeof path, "%s/p.txt", dir);
    f = fopen(path, "wb");
    assert_non_null(f);
    fputs("first prompt\n\n  \nsecond prompt\r\n", f);
    fclose(f);
    snprintf(path, sizeof path, "%s/exp.yaml", dir);
    f = fopen(path, "wb");
    assert_non_null(f);
    fputs("models:\n  - path: m.gguf\nworkloads:\n  - prompts: p.txt\n", f);
    fclose(f);
    melt_experiment *e = NULL;
    melt_error err = {0};
    assert_int_equal(melt_experiment_load(path, &e, &err), 0);
    assert_string_equal(e->models[0].path, model);
    assert_string_equal(e->models[0].name, "m");
    assert_string_equal(e->name, "exp");
    melt_plan *p = NULL;
    assert_int_equal(melt_workload_plan(&e->workloads[0], 2048, &p, &err), 0);
    assert_int_equal(p->kind, MELT_PLAN_PROMPTS);
    assert_int_equal(p->n_convs, 2);
    assert_string_equal(p->convs[1].turns[0], "second prompt");
    melt_plan_free(p);
    melt_experiment_free(e);

    f = fopen(path, "wb");
    fputs("models:\n  - path: gone.gguf\nworkloads:\n  - prompts: p.txt\n", f);
    fclose(f);
    assert_int_equal(melt_experiment_load(path, &e, &err), MELT_EIO);
    char want[9000];
    snprintf(want, sizeof want,
             "%s:2:11: models[0].path: cannot open '%s/gone.gguf': No such file or directory",
             path, dir);
    assert_string_equal(err.msg, want);
    assert_int_equal(melt_experiment_load("/nonexistent/exp.yaml", &e, &err), MELT_EIO);
    assert_string_equal(err.msg, "/nonexistent/exp.yaml: cannot open: No such file or directory");
}

static void workload_conversations_load_and_carry_settings(void **state)
{
    (void)state;
    melt_experiment *e = NULL;
    assert_string_equal(parse("models:\n  - synth: {preset: tiny}\nworkloads:\n"
                              "  - conversations: conversations.json\n"
                              "    max_gen_tokens: 50\n    max_context_tokens: 4096\n", &e), "");
    melt_plan *p = NULL;
    melt_error err = {0};
    assert_int_equal(melt_workload_plan(&e->workloads[0], 1024, &p, &err), 0);
    assert_int_equal(p->kind, MELT_PLAN_CONVERSATIONS);
    assert_int_equal(p->max_gen_tokens, 50);
    assert_int_equal(p->max_context_tokens, 1024); /* capped by the engine's context */
    assert_false(p->ignore_eos);
    assert_int_equal(p->n_convs, 5);
    assert_int_equal(p->convs[2].n_turns, 4);
    assert_string_equal(p->convs[4].turns[0],
                        "Translate \"the library closes at seven\" into French and Spanish.");
    melt_plan_free(p);
    melt_experiment_free(e);

    static const struct { const char *json, *want; } bad[] = {
        {"{}", "c.json: expected a non-empty array of conversations, got an object"},
        {"[]", "c.json: expected a non-empty array of conversations, got an empty array"},
        {"[[\"a\"], []]", "c.json: [1]: expected a non-empty array of prompts, got an empty array"},
        {"[[\"a\", 3]]", "c.json: [0][1]: expected a non-empty string without NUL, got a number"},
        {"[[\"\"]]", "c.json: [0][0]: expected a non-empty string without NUL, got an unusable string"},
        {"[[\"a\\u0000b\"]]", "c.json: [0][0]: expected a non-empty string without NUL, got an unusable string"},
        {"[[\"a\"],\n [\"b\"", "c.json:2:5: ']' expected near end of file"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        melt_plan *q = melt_plan_new(MELT_PLAN_CONVERSATIONS);
        melt_error_clear(&err);
        assert_int_equal(melt_conversations_parse(bad[i].json, strlen(bad[i].json), "c.json", q,
                                                  &err), MELT_EFORMAT);
        assert_string_equal(err.msg, bad[i].want);
        melt_plan_free(q);
    }
}

static void workload_prompts_read_text_and_jsonl(void **state)
{
    (void)state;
    melt_error err = {0};
    melt_plan *p = melt_plan_new(MELT_PLAN_PROMPTS);
    const char *jl = "{\"prompt\": \"caf\\u00e9 \\\"one\\\"\"}\n\n{\"prompt\": \"two\\nlines\", \"id\": 2}\n";
    assert_int_equal(melt_prompts_parse(jl, strlen(jl), "p.jsonl", true, p, &err), 0);
    assert_int_equal(p->n_convs, 2);
    assert_string_equal(p->convs[0].turns[0], "caf\xc3\xa9 \"one\"");
    assert_string_equal(p->convs[1].turns[0], "two\nlines");
    melt_plan_free(p);
    p = melt_plan_new(MELT_PLAN_PROMPTS);
    const char *badjl = "{\"prompt\": \"x\"}\n{\"text\": \"y\"}\n";
    assert_int_equal(melt_prompts_parse(badjl, strlen(badjl), "p.jsonl", true, p, &err),
                     MELT_EFORMAT);
    assert_string_equal(err.msg, "p.jsonl:2: expected an object with a non-empty string \"prompt\"");
    melt_plan_free(p);
    p = melt_plan_new(MELT_PLAN_PROMPTS);
    assert_int_equal(melt_prompts_parse("\n \n", 3, "p.txt", false, p, &err), MELT_EFORMAT);
    assert_string_equal(err.msg, "p.txt: no prompts in the file");
    melt_plan_free(p);
    /* the format follows the extension unless given */
    melt_experiment *e = NULL;
    assert_string_equal(parse("models:\n  - synth: {preset: tiny}\nworkloads:\n"
                              "  - prompts: prompts.txt\n    format: jsonl\n", &e), "");
    assert_true(e->workloads[0].jsonl);
    assert_int_equal(melt_workload_plan(&e->workloads[0], 512, &p, &err), MELT_EFORMAT);
    assert_string_equal(err.msg, "examples/prompts.txt:1:4: '[' or '{' expected near 'Name'");
    melt_experiment_free(e);
}

static void workload_synthetic_plan_ignores_eos(void **state)
{
    (void)state;
    melt_experiment *e = NULL;
    assert_string_equal(parse("models:\n  - synth: {preset: tiny}\nworkloads:\n"
                              "  - synthetic: {prompt_tokens: 0, gen_tokens: 64}\n", &e), "");
    melt_plan *p = NULL;
    melt_error err = {0};
    assert_int_equal(melt_workload_plan(&e->workloads[0], 512, &p, &err), 0);
    assert_int_equal(p->kind, MELT_PLAN_SYNTHETIC);
    assert_int_equal(p->prompt_tokens, 0);
    assert_int_equal(p->gen_tokens, 64);
    assert_true(p->ignore_eos);
    assert_int_equal(p->n_convs, 0);
    melt_plan_free(p);
    melt_experiment_free(e);
}

static char *plan_text(const melt_plan *p, size_t *len)
{
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    assert_non_null(f);
    melt_error err = {0};
    assert_int_equal(melt_plan_write(p, f, &err), 0);
    fclose(f);
    return buf;
}

static void plan_round_trips_quotes_newlines_and_utf8(void **state)
{
    (void)state;
    static const char *const turns[] = {
        "plain",
        "say \"hi\" \\ back\\slash",
        "line one\nline two\r\n\ttabbed",
        "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80",
        "ctl \x01\x1f\x7f end",
        "trailing quote\"",
    };
    melt_plan *p = melt_plan_new(MELT_PLAN_CONVERSATIONS);
    melt_error err = {0};
    p->max_gen_tokens = 77;
    p->max_context_tokens = 1024;
    assert_int_equal(melt_plan_add_conv(p, &err), 0);
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(melt_plan_add_turn(p, turns[i], strlen(turns[i]), &err), 0);
    assert_int_equal(melt_plan_add_conv(p, &err), 0);
    for (size_t i = 4; i < 6; i++)
        assert_int_equal(melt_plan_add_turn(p, turns[i], strlen(turns[i]), &err), 0);
    assert_int_equal(melt_plan_add_turn(p, "a\0b", 3, &err), MELT_EINVAL);
    size_t len;
    char *text = plan_text(p, &len);
    /* one line per record: no raw newline inside a string */
    size_t lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += text[i] == '\n';
    assert_int_equal(lines, 8 + 2 + 6 + 1);
    assert_non_null(strstr(text, "turn \"say \\\"hi\\\" \\\\ back\\\\slash\"\n"));
    assert_non_null(strstr(text, "turn \"ctl \\x01\\x1f\\x7f end\"\n"));
    melt_plan *q = NULL;
    assert_int_equal(melt_plan_parse(text, len, &q, &err), 0);
    assert_int_equal(q->kind, MELT_PLAN_CONVERSATIONS);
    assert_int_equal(q->max_gen_tokens, 77);
    assert_int_equal(q->max_context_tokens, 1024);
    assert_false(q->ignore_eos);
    assert_int_equal(q->n_convs, 2);
    assert_int_equal(q->convs[0].n_turns, 4);
    assert_int_equal(q->convs[1].n_turns, 2);
    for (size_t i = 0; i < 6; i++)
        assert_string_equal(q->convs[i < 4 ? 0 : 1].turns[i < 4 ? i : i - 4], turns[i]);
    /* writing the parsed plan gives the same bytes */
    size_t len2;
    char *text2 = plan_text(q, &len2);
    assert_int_equal(len, len2);
    assert_memory_equal(text, text2, len);
    free(text2);
    melt_plan_free(q);

    /* every proper prefix is rejected (a truncated plan is not a shorter one) */
    for (size_t cut = 0; cut + 1 < len; cut++) {
        q = NULL;
        if (melt_plan_parse(text, cut, &q, &err) == 0)
            fail_msg("a plan cut at %zu of %zu bytes was accepted", cut, len);
        assert_null(q);
    }
    free(text);
    melt_plan_free(p);
}

static void plan_rejects_malformed_lines_with_line_numbers(void **state)
{
    (void)state;
    static const struct { const char *text, *want; } bad[] = {
        {"melt-plan 2\n", "plan:1: not a melt plan (expected 'melt-plan 1')"},
        {"melt-plan 1\nkind other\n", "plan:2: unknown kind (synthetic, conversations or prompts)"},
        {"melt-plan 1\nkind synthetic\nprompt_tokens -1\n", "plan:3: expected 'prompt_tokens N'"},
        {"melt-plan 1\nkind synthetic\nprompt_tokens 1\ngen_tokens 2\nmax_gen_tokens 0\n"
         "max_context_tokens 0\nignore_eos 2\n", "plan:7: expected 'ignore_eos N'"},
        {"melt-plan 1\nkind prompts\nprompt_tokens 0\ngen_tokens 0\nmax_gen_tokens 9\n"
         "max_context_tokens 0\nignore_eos 0\nconversations 1\nconversation 1\nturn \"a\\q\"\nend\n",
         "plan:10: unknown escape in a string"},
        {"melt-plan 1\nkind prompts\nprompt_tokens 0\ngen_tokens 0\nmax_gen_tokens 9\n"
         "max_context_tokens 0\nignore_eos 0\nconversations 1\nconversation 1\nturn \"a\\x00\"\nend\n",
         "plan:10: bad \\x escape (two hex digits, not 00)"},
        {"melt-plan 1\nkind prompts\nprompt_tokens 0\ngen_tokens 0\nmax_gen_tokens 9\n"
         "max_context_tokens 0\nignore_eos 0\nconversations 1\nconversation 1\nturn \"a\"b\"\nend\n",
         "plan:10: unescaped '\"' in a string"},
        {"melt-plan 1\nkind prompts\nprompt_tokens 0\ngen_tokens 0\nmax_gen_tokens 9\n"
         "max_context_tokens 0\nignore_eos 0\nconversations 99999999\n",
         "plan:8: expected 'conversations N'"},
        {"melt-plan 1\nkind prompts\nprompt_tokens 0\ngen_tokens 0\nmax_gen_tokens 9\n"
         "max_context_tokens 0\nignore_eos 0\nconversations 0\nend\nmore\n",
         "plan:9: data after 'end'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        melt_plan *p = NULL;
        melt_error err = {0};
        assert_int_equal(melt_plan_parse(bad[i].text, strlen(bad[i].text), &p, &err), MELT_EFORMAT);
        if (strcmp(err.msg, bad[i].want) != 0)
            fail_msg("case %zu: expected '%s', got '%s'", i, bad[i].want, err.msg);
        assert_null(p);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(experiment_minimal_file_gets_documented_defaults),
        cmocka_unit_test(experiment_reads_every_key_of_full_example),
        cmocka_unit_test(experiment_unknown_key_suggests_nearest),
        cmocka_unit_test(experiment_wrong_types_name_key_and_value),
        cmocka_unit_test(experiment_missing_and_empty_are_errors),
        cmocka_unit_test(experiment_backend_options_are_checked_and_kept),
        cmocka_unit_test(experiment_duplicates_are_errors),
        cmocka_unit_test(experiment_yaml_syntax_errors_give_one_line),
        cmocka_unit_test(experiment_lists_expand_in_documented_order),
        cmocka_unit_test(experiment_expansion_is_bounded),
        cmocka_unit_test(experiment_paths_resolve_against_its_folder),
        cmocka_unit_test(workload_conversations_load_and_carry_settings),
        cmocka_unit_test(workload_prompts_read_text_and_jsonl),
        cmocka_unit_test(workload_synthetic_plan_ignores_eos),
        cmocka_unit_test(plan_round_trips_quotes_newlines_and_utf8),
        cmocka_unit_test(plan_rejects_malformed_lines_with_line_numbers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

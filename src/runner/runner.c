/* melt — the runner: every cell of an experiment, trial by trial, through
 * a transport to the agent, into the store. docs/experiment.md, "Running",
 * is the user's description; this file reads top to bottom as the flow:
 *
 *   melt_runner_run: check transports and agent, open the store, begin (or
 *     reopen) the run, then per cell: run_cell, and the summary at the end.
 *   run_cell: model (synth cache), cell metadata, plan file, cool-down,
 *     warm-up trials, measured repetitions (skipping those done before).
 *   run_trial: spawn the agent, stream its events into the store in
 *     batches, decide the trial's status, store its metrics.
 */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "melt/clock_sync.h"
#include "melt/cpu.h"
#include "melt/event_stream.h"
#include "melt/fs.h"
#include "melt/metrics.h"
#include "melt/model.h"
#include "melt/plan.h"
#include "melt/report.h"
#include "melt/results.h"
#include "melt/runner.h"
#include "melt_version.h"
#include "melt/sha256.h"
#include "melt/store.h"
#include "melt/transport.h"
#include "melt/workload.h"
#include "runner/runner_internal.h"

#define EVENT_BATCH 512
#define ERRTAIL_MAX 1024

melt_runner_params melt_runner_default_params(void)
{
    melt_runner_params p;
    memset(&p, 0, sizeof p);
    p.idle_ms = MELT_RUNNER_DEFAULT_IDLE_MS;
    return p;
}

/* ---- agent argv ---- */

typedef struct argv_b {
    char **v;
    size_t n, cap;
    bool oom;
} argv_b;

static void arg(argv_b *a, const char *s)
{
    if (a->oom)
        return;
    if (a->n + 2 > a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 32;
        char **v = realloc(a->v, cap * sizeof *v);
        if (!v) {
            a->oom = true;
            return;
        }
        a->v = v;
        a->cap = cap;
    }
    if (!(a->v[a->n] = strdup(s))) {
        a->oom = true;
        return;
    }
    a->v[++a->n] = NULL;
}

static void argf(argv_b *a, const char *flag, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void argf(argv_b *a, const char *flag, const char *fmt, ...)
{
    char buf[64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    arg(a, flag);
    arg(a, buf);
}

void melt_runner_argv_free(char **argv)
{
    if (!argv)
        return;
    for (size_t i = 0; argv[i]; i++)
        free(argv[i]);
    free(argv);
}

/* --backend and its options (docs/backends.md) for an engine that is not
 * the builtin one. */
static void backend_args(argv_b *a, const melt_exp_engine *g)
{
    const char *flags[5] = {"--backend", "--backend-mode", "--binary", "--url", "--api-key-env"};
    const char *vals[5] = {g->backend, g->mode, g->binary, g->url, g->api_key_env};
    for (int k = 0; k < 5; k++)
        if (vals[k]) {
            arg(a, flags[k]);
            arg(a, vals[k]);
        }
    if (g->port > 0)
        argf(a, "--port", "%d", g->port);
    for (size_t k = 0; k < g->n_args; k++) {
        arg(a, "--server-arg");
        arg(a, g->args[k]);
    }
}

int melt_runner_agent_argv(const melt_experiment *e, const melt_cell *c, const char *agent,
                           const char *model_path, const char *plan_path, int idle_ms,
                           const char *probe_root, char ***argv, melt_error *err)
{
    argv_b a = {0};
    const melt_exp_engine *g = c->engine;
    const melt_sampler_params *sp = &e->sampling;
    arg(&a, agent);
    /* openai/mlc serve a model by name: the engine's `model`, else (mlc) the
     * file; an OpenAI endpoint without one uses its first */
    const bool served = strcmp(g->backend, "openai") == 0 || strcmp(g->backend, "mlc") == 0;
    const char *m = served && g->model ? g->model : strcmp(g->backend, "openai") == 0 ? NULL : model_path;
    if (m) {
        arg(&a, "-m");
        arg(&a, m);
    }
    if (strcmp(g->backend, "builtin") != 0)
        backend_args(&a, g);
    if (g->n_threads > 0)
        argf(&a, "-t", "%d", g->n_threads);
    argf(&a, "-c", "%d", g->n_ctx);
    argf(&a, "-b", "%d", g->n_batch);
    arg(&a, "--kv-type");
    arg(&a, g->kv_type == MELT_KV_F32 ? "f32" : "f16");
    argf(&a, "--temp", "%.9g", (double)sp->temperature);
    argf(&a, "--top-k", "%d", sp->top_k > 0 ? (int)sp->top_k : 0);
    argf(&a, "--top-p", "%.9g", (double)sp->top_p);
    argf(&a, "--min-p", "%.9g", (double)sp->min_p);
    argf(&a, "--repeat-penalty", "%.9g", (double)sp->repeat_penalty);
    argf(&a, "--repeat-last-n", "%d", (int)sp->repeat_last_n);
    argf(&a, "--seed", "%llu", (unsigned long long)sp->seed);
    arg(&a, "--plan");
    arg(&a, plan_path);
    if (c->model->source == MELT_MODEL_SYNTH && c->workload->kind == MELT_WORKLOAD_CONVERSATIONS) {
        arg(&a, "--chat-template");
        arg(&a, "chatml");
    }
    argf(&a, "--reps", "%d", 1);
    if (idle_ms > 0)
        argf(&a, "--idle-ms", "%d", idle_ms);
    for (size_t i = 0; i < e->n_probes; i++)
        argf(&a, "--probe", "%s:%g", e->probes[i].name, e->probes[i].rate_hz);
    if (probe_root) {
        arg(&a, "--probe-root");
        arg(&a, probe_root);
    }
    if (a.oom) {
        melt_runner_argv_free(a.v);
        return melt_errorf(err, MELT_ENOMEM, "out of memory for the agent's arguments");
    }
    *argv = a.v;
    return 0;
}

int melt_runner_synth_name(const melt_exp_model *m, char *buf, size_t n)
{
    int k = snprintf(buf, n, "%s-%s-s%llu.gguf", m->preset ? m->preset : "model",
                     melt_ftype_name(m->ftype), (unsigned long long)m->seed);
    return k < 0 || (size_t)k >= n ? MELT_EINVAL : 0;
}

/* ---- run state ---- */

typedef struct model_slot {
    char *path;              /* resolved file (malloc'd) */
    char sha256[65];         /* "" when not computed */
} model_slot;

typedef struct runner {
    const melt_experiment *e;
    const melt_runner_params *p;
    melt_store *store;
    int64_t run_id;
    char *db_path;
    char *agent;
    char *models_dir;
    model_slot *models;      /* e->n_models */
    melt_trial_key *done;    /* resume: trials complete before */
    size_t n_done;
    runner_progress prog;
    melt_runner_result res;
    /* the device open now */
    const melt_exp_device *dev;
    const melt_transport_ops *tops;
    void *tstate;
    char *remote_agent;
    char *dev_info;          /* the device's `--describe` JSON (NULL: unknown) */
    /* the cell whose device state cell_begin changed (cell_device.c) */
    bool cell_began;
    char *began_cell_id, *began_dj;
    /* host metadata (same for every local cell) */
    char kernel[512], governor[64], cpu_features[256], device_model[256];
} runner;

static bool interrupted(const runner *r)
{
    return r->p->interrupts && *r->p->interrupts > 0;
}

/* ---- trial ---- */

typedef struct trial {
    runner *r;
    int64_t trial_id;
    melt_event *ev;
    size_t n, cap, stored;
    bool bye;
    char bye_status[16];
    bool agent_error;
    bool engine_lost;        /* an end line with reason "lost" (the backend's stream was cut) */
    char first_error[MELT_EVENT_TEXT_MAX];
    int64_t n_tokens;
    char errtail[ERRTAIL_MAX];
    size_t errtail_len;
    uint64_t n_bad;
    int store_rc;
    melt_error store_err;
} trial;

static int flush_events(trial *t)
{
    if (t->store_rc < 0 || t->stored == t->n)
        return t->store_rc;
    t->store_rc = melt_store_add_events(t->r->store, t->trial_id, t->ev + t->stored,
                                        t->n - t->stored, &t->store_err);
    if (t->store_rc == 0)
        t->stored = t->n;
    return t->store_rc;
}

static int add_event(trial *t, const melt_event *ev)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 1024;
        melt_event *v = realloc(t->ev, cap * sizeof *v);
        if (!v) {
            t->store_rc = melt_errorf(&t->store_err, MELT_ENOMEM, "out of memory for events");
            return 1;
        }
        t->ev = v;
        t->cap = cap;
    }
    t->ev[t->n++] = *ev;
    if (t->n - t->stored >= EVENT_BATCH)
        flush_events(t);
    return t->store_rc < 0 ? 1 : 0;
}

static int on_event(void *user, const melt_event *ev, uint64_t line_no)
{
    (void)line_no;
    trial *t = user;
    switch (ev->kind) {
    case MELT_EV_BYE:
        t->bye = true;
        snprintf(t->bye_status, sizeof t->bye_status, "%.15s", ev->key);
        break;
    case MELT_EV_ERROR:
        if (!t->agent_error)
            snprintf(t->first_error, sizeof t->first_error, "%s", ev->msg);
        t->agent_error = true;
        break;
    case MELT_EV_TOKEN:
        t->n_tokens++;
        break;
    case MELT_EV_END:
        if (strcmp(ev->key, "lost") == 0)
            t->engine_lost = true;
        break;
    default:
        break;
    }
    return add_event(t, ev);
}

static void on_bad(void *user, uint64_t line_no, const char *reason, const char *line,
                   size_t len)
{
    (void)line;
    (void)len;
    trial *t = user;
    if (t->n_bad++ < 3)
        runner_progress_note(&t->r->prog, "melt: warning: agent output line %llu skipped: %s",
                             (unsigned long long)line_no, reason);
}

typedef struct pump_ctx {
    trial *t;
    melt_event_stream *s;
} pump_ctx;

static int on_output(int fd_index, const char *data, size_t n, void *user)
{
    pump_ctx *pc = user;
    trial *t = pc->t;
    if (fd_index == 1)
        return melt_event_stream_feed(pc->s, data, n) ? 1 : 0;
    /* stderr: keep the last ERRTAIL_MAX - 1 bytes */
    if (n >= ERRTAIL_MAX - 1) {
        memcpy(t->errtail, data + n - (ERRTAIL_MAX - 1), ERRTAIL_MAX - 1);
        t->errtail_len = ERRTAIL_MAX - 1;
    } else {
        size_t keep = t->errtail_len + n > ERRTAIL_MAX - 1 ? ERRTAIL_MAX - 1 - n : t->errtail_len;
        memmove(t->errtail, t->errtail + t->errtail_len - keep, keep);
        memcpy(t->errtail + keep, data, n);
        t->errtail_len = keep + n;
    }
    t->errtail[t->errtail_len] = '\0';
    return 0;
}

/* The last line(s) of the agent's stderr, fitted into one error message. */
static void stderr_tail(const trial *t, char *buf, size_t n)
{
    size_t len = t->errtail_len;
    while (len && (t->errtail[len - 1] == '\n' || t->errtail[len - 1] == '\r'))
        len--;
    size_t start = len > n - 1 ? len - (n - 1) : 0;
    size_t k = 0;
    for (size_t i = start; i < len && k + 1 < n; i++)
        buf[k++] = t->errtail[i] == '\n' ? '|' : t->errtail[i];
    buf[k] = '\0';
}

typedef struct trial_spec {
    const melt_cell *c;
    int64_t cell_rowid;
    const char *model_path, *plan_path;
    bool warmup;
    int rep;
    const melt_event *pre;   /* host events stored first (cool-down) */
    size_t n_pre;
    runner_trial_pos pos;
} trial_spec;

/* Returns the trial's status (>= 0) or a negative error (store, spawn). */
static int run_trial(runner *r, const trial_spec *ts, melt_error *err)
{
    trial t = {0};
    t.r = r;
    char **argv = NULL;
    melt_event_stream *s = NULL;
    melt_proc proc = {.pid = -1, .out_fd = -1, .err_fd = -1};
    bool spawned = false;
    int rc = melt_store_begin_trial(r->store, ts->cell_rowid, ts->rep, ts->warmup, &t.trial_id,
                                    err);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < ts->n_pre; i++)
        add_event(&t, &ts->pre[i]);
    rc = melt_runner_agent_argv(r->e, ts->c, r->remote_agent, ts->model_path, ts->plan_path,
                                ts->warmup ? 0 : r->p->idle_ms, r->p->probe_root, &argv, err);
    if (rc == 0)
        rc = melt_event_stream_new(NULL, on_event, on_bad, &t, &s, err);
    if (rc == 0)
        rc = r->tops->spawn(r->tstate, argv, &proc, err);
    if (rc < 0)
        goto fail;
    spawned = true;
    pump_ctx pc = {&t, s};
    bool sent_int = false, sent_kill = false;
    runner_progress_update(&r->prog, &ts->pos, 0, true);
    for (;;) {
        rc = melt_proc_pump(&proc, 100, on_output, &pc, err);
        if (rc < 0)
            goto fail;
        if (t.store_rc < 0) {
            *err = t.store_err;
            rc = t.store_rc;
            goto fail;
        }
        if (rc == 1)
            break;
        const int intr = r->p->interrupts ? (int)*r->p->interrupts : 0;
        if (intr >= 1 && !sent_int) {
            melt_proc_signal(&proc, SIGINT);   /* finish the token, write bye */
            sent_int = true;
            runner_progress_note(&r->prog, "melt: interrupted: stopping the agent "
                                           "(Ctrl-C again to kill it)");
        }
        if (intr >= 2 && !sent_kill) {
            melt_proc_signal(&proc, SIGKILL);
            sent_kill = true;
        }
        runner_progress_update(&r->prog, &ts->pos, t.n_tokens, false);
    }
    melt_event_stream_finish(s);
    if (melt_proc_wait(&proc, 10000) == 0) {
        melt_proc_signal(&proc, SIGKILL);
        melt_proc_wait(&proc, -1);
    }
    const int code = melt_proc_exit_code(&proc);
    const bool signaled = proc.exited && WIFSIGNALED(proc.status);

    enum melt_trial_status st;
    const bool clean_ok = t.bye && strcmp(t.bye_status, "ok") == 0 && code == 0;
    char why[MELT_EVENT_TEXT_MAX] = "";
    if ((sent_int || sent_kill) && !clean_ok)
        st = MELT_TRIAL_INTERRUPTED;
    else if (t.bye && t.engine_lost && !clean_ok)
        st = MELT_TRIAL_LOST;   /* the agent lived; the engine it measured went away */
    else if (t.bye)
        st = clean_ok ? MELT_TRIAL_OK
             : strcmp(t.bye_status, "interrupted") == 0 ? MELT_TRIAL_INTERRUPTED
                                                        : MELT_TRIAL_ERROR;
    else
        st = signaled || code == 0 ? MELT_TRIAL_LOST : MELT_TRIAL_ERROR;

    if (st == MELT_TRIAL_ERROR || st == MELT_TRIAL_LOST) {
        char tail[200];
        stderr_tail(&t, tail, sizeof tail);
        if (st == MELT_TRIAL_LOST && t.bye)
            snprintf(why, sizeof why, "lost: %.240s", t.first_error);
        else if (st == MELT_TRIAL_LOST)
            snprintf(why, sizeof why, "lost: the agent's stream ended without bye (%s %d)%s%.150s",
                     signaled ? "signal" : "exit", signaled ? WTERMSIG(proc.status) : code,
                     tail[0] ? "; stderr: " : "", tail);
        else if (t.agent_error)
            snprintf(why, sizeof why, "%.240s", t.first_error);
        else
            snprintf(why, sizeof why, "agent exit %d%s%.150s", code, tail[0] ? "; stderr: " : "",
                     tail);
        if ((st == MELT_TRIAL_LOST && !t.bye) || !t.agent_error || tail[0]) {
            melt_event ev;
            memset(&ev, 0, sizeof ev);
            ev.kind = MELT_EV_ERROR;
            ev.t_ns = t.n ? t.ev[t.n - 1].t_ns : runner_now_ns();
            ev.req = ev.i = ev.id = -1;
            /* lost: why says so; error: the agent's exit code and stderr's tail */
            if (st == MELT_TRIAL_LOST)
                snprintf(ev.msg, sizeof ev.msg, "%s", why);
            else
                snprintf(ev.msg, sizeof ev.msg, "agent exit %d; stderr: %.150s", code, tail);
            add_event(&t, &ev);
        }
    }
    if (flush_events(&t) < 0) {
        *err = t.store_err;
        rc = t.store_rc;
        goto fail;
    }
    if ((rc = melt_store_end_trial(r->store, t.trial_id, st, err)) < 0)
        goto fail;
    double tps = NAN;
    melt_trial_metrics m;
    melt_error merr = {0};
    if (t.n && melt_metrics_compute(t.ev, t.n, NULL, &m, &merr) == 0) {
        tps = m.decode_tps;
        if ((rc = melt_results_save_trial(r->store, r->run_id, t.trial_id, &m, err)) < 0)
            goto fail;
    }
    runner_progress_trial_done(&r->prog, &ts->pos, melt_trial_status_name(st),
                               st == MELT_TRIAL_OK ? tps : NAN, why);
    rc = (int)st;
fail:
    if (rc < 0 && t.trial_id > 0) {
        /* keep what arrived; the trial is an error */
        melt_error e2 = {0};
        if (t.store_rc == 0)
            flush_events(&t);
        melt_store_end_trial(r->store, t.trial_id,
                             interrupted(r) ? MELT_TRIAL_INTERRUPTED : MELT_TRIAL_ERROR, &e2);
    }
    if (spawned)
        melt_proc_close(&proc);
    melt_event_stream_free(s);
    melt_runner_argv_free(argv);
    free(t.ev);
    return rc;
}

/* ---- cell ---- */

static char *json_text(json_t *o)
{
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    return s;
}

static void jset_str(json_t *o, const char *k, const char *v)
{
    if (v)
        json_object_set_new(o, k, json_string(v));
}

static char *device_json(const melt_exp_device *d)
{
    json_t *o = json_object();
    jset_str(o, "name", d->name);
    jset_str(o, "transport", melt_transport_name(d->transport));
    jset_str(o, "host", d->host);
    jset_str(o, "serial", d->serial);
    jset_str(o, "user", d->user);
    if (d->port)
        json_object_set_new(o, "port", json_integer(d->port));
    jset_str(o, "workdir", d->workdir);
    return json_text(o);
}

static char *engine_json(const melt_exp_engine *g)
{
    json_t *o = json_object();
    jset_str(o, "id", g->id);
    jset_str(o, "backend", g->backend);
    /* llamacpp's mode is stored even when defaulted, so results say which */
    jset_str(o, "mode", g->mode ? g->mode : strcmp(g->backend, "llamacpp") == 0 ? "server" : NULL);
    jset_str(o, "binary", g->binary);
    jset_str(o, "url", g->url);
    jset_str(o, "api_key_env", g->api_key_env);   /* the name only, never the key */
    jset_str(o, "served_model", g->model);
    if (g->port)
        json_object_set_new(o, "port", json_integer(g->port));
    if (g->n_args) {
        json_t *args = json_array();
        for (size_t k = 0; k < g->n_args; k++)
            json_array_append_new(args, json_string(g->args[k]));
        json_object_set_new(o, "args", args);
    }
    /* where the model runs: on the device, or behind an endpoint (offloading) */
    jset_str(o, "runs_on", strcmp(g->backend, "openai") == 0 ? "endpoint" : "device");
    json_object_set_new(o, "threads", json_integer(g->n_threads));
    json_object_set_new(o, "context", json_integer(g->n_ctx));
    json_object_set_new(o, "batch", json_integer(g->n_batch));
    jset_str(o, "kv_type", g->kv_type == MELT_KV_F32 ? "f32" : "f16");
    return json_text(o);
}

static char *model_json(const melt_exp_model *m, const char *resolved)
{
    json_t *o = json_object();
    jset_str(o, "name", m->name);
    if (m->source == MELT_MODEL_SYNTH) {
        jset_str(o, "source", "synth");
        jset_str(o, "preset", m->preset);
        jset_str(o, "type", melt_ftype_name(m->ftype));
        json_object_set_new(o, "seed", json_integer((json_int_t)m->seed));
    } else {
        jset_str(o, "source", "path");
    }
    jset_str(o, "path", resolved);
    return json_text(o);
}

static char *workload_json(const melt_exp_workload *w, const melt_experiment *e)
{
    json_t *o = json_object();
    jset_str(o, "id", w->id);
    jset_str(o, "kind", melt_workload_kind_name(w->kind));
    if (w->kind == MELT_WORKLOAD_SYNTHETIC) {
        json_object_set_new(o, "prompt_tokens", json_integer(w->prompt_tokens));
        json_object_set_new(o, "gen_tokens", json_integer(w->gen_tokens));
    } else {
        jset_str(o, "path", w->path);
        json_object_set_new(o, "max_gen_tokens", json_integer(w->max_gen_tokens));
        if (w->kind == MELT_WORKLOAD_CONVERSATIONS)
            json_object_set_new(o, "max_context_tokens", json_integer(w->max_context_tokens));
        if (w->kind == MELT_WORKLOAD_PROMPTS)
            json_object_set_new(o, "jsonl", json_boolean(w->jsonl));
    }
    json_object_set_new(o, "repetitions", json_integer(e->repetitions));
    json_object_set_new(o, "warmup", json_integer(e->warmup));
    return json_text(o);
}

static void read_line_file(const char *path, char *buf, size_t n)
{
    buf[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    if (fgets(buf, (int)n, f)) {
        size_t l = strlen(buf);
        while (l && (buf[l - 1] == '\n' || buf[l - 1] == '\r' || buf[l - 1] == ' '))
            buf[--l] = '\0';
    }
    fclose(f);
}

static void host_metadata(runner *r)
{
    struct utsname u;
    if (uname(&u) == 0)
        snprintf(r->kernel, sizeof r->kernel, "%s %s %s %s", u.sysname, u.release, u.version,
                 u.machine);
    read_line_file("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor", r->governor,
                   sizeof r->governor);
    melt_cpu_features_str(melt_cpu_detect(), r->cpu_features, sizeof r->cpu_features);
    /* the board's name where the firmware gives one, else the CPU model */
    read_line_file("/proc/device-tree/model", r->device_model, sizeof r->device_model);
    if (!r->device_model[0])
        read_line_file("/sys/class/dmi/id/product_name", r->device_model, sizeof r->device_model);
    char cpu[160];
    melt_cpu_model_name(cpu, sizeof cpu);
    size_t l = strlen(r->device_model);
    snprintf(r->device_model + l, sizeof r->device_model - l, "%s%s", l ? "; " : "", cpu);
}

static int mkdir_p(const char *dir, melt_error *err)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf)
        return melt_errorf(err, MELT_EINVAL, "%s: path too long", dir);
    for (char *q = buf + 1; ; q++) {
        if (*q == '/' || *q == '\0') {
            char c = *q;
            *q = '\0';
            if (mkdir(buf, 0777) != 0 && errno != EEXIST)
                return melt_errorf(err, MELT_EIO, "cannot create folder '%s': %s", buf,
                                   strerror(errno));
            *q = c;
            if (!c)
                break;
        }
    }
    return 0;
}

/* The model file of m (a synth model generated into the cache once). */
static int resolve_model(runner *r, const melt_exp_model *m, model_slot *slot, melt_error *err)
{
    if (slot->path)
        return 0;
    if (m->source == MELT_MODEL_PATH) {
        if (access(m->path, R_OK) != 0)
            return melt_errorf(err, MELT_EIO, "model '%s': cannot read '%s': %s", m->name,
                               m->path, strerror(errno));
        if (!(slot->path = strdup(m->path)))
            return melt_errorf(err, MELT_ENOMEM, "out of memory");
        return 0;
    }
    char name[256], path[PATH_MAX], tmp[PATH_MAX + 32];
    if (melt_runner_synth_name(m, name, sizeof name) < 0 ||
        snprintf(path, sizeof path, "%s/%s", r->models_dir, name) >= (int)sizeof path)
        return melt_errorf(err, MELT_EINVAL, "model '%s': cache path too long", m->name);
    if (access(path, R_OK) != 0) {
        int rc = mkdir_p(r->models_dir, err);
        if (rc < 0)
            return rc;
        runner_progress_note(&r->prog, "melt: synthesizing model %s into %s", m->name, path);
        snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
        melt_synth_params sp = melt_synth_default_params();
        sp.preset = m->preset;
        sp.ftype = m->ftype;
        sp.seed = m->seed;
        if ((rc = melt_model_synth(&sp, tmp, err)) < 0) {
            unlink(tmp);
            return rc;
        }
        if (rename(tmp, path) != 0) {
            unlink(tmp);
            return melt_errorf(err, MELT_EIO, "cannot rename '%s' to '%s': %s", tmp, path,
                               strerror(errno));
        }
    }
    if (!(slot->path = strdup(path)))
        return melt_errorf(err, MELT_ENOMEM, "out of memory");
    return 0;
}

/* The cell's plan in a temporary file; *path is malloc'd. */
static int write_plan(const melt_cell *c, char **path, melt_error *err)
{
    melt_plan *plan = NULL;
    int rc = melt_workload_plan(c->workload, c->engine->n_ctx, &plan, err);
    if (rc < 0)
        return rc;
    const char *tmpdir = getenv("TMPDIR");
    char tmpl[PATH_MAX];
    snprintf(tmpl, sizeof tmpl, "%s/melt-plan-XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
    int fd = mkstemp(tmpl);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        if (fd >= 0)
            close(fd);
        melt_plan_free(plan);
        return melt_errorf(err, MELT_EIO, "cannot create a plan file in %s: %s",
                           tmpdir ? tmpdir : "/tmp", strerror(errno));
    }
    rc = melt_plan_write(plan, f, err);
    if (fclose(f) != 0 && rc == 0)
        rc = melt_errorf(err, MELT_EIO, "%s: %s", tmpl, strerror(errno));
    melt_plan_free(plan);
    if (rc == 0 && !(*path = strdup(tmpl)))
        rc = melt_errorf(err, MELT_ENOMEM, "out of memory");
    if (rc < 0)
        unlink(tmpl);
    return rc;
}

static int missing_reps(const runner *r, const melt_cell *c)
{
    int n = 0;
    for (int k = 0; k < r->e->repetitions; k++)
        if (!melt_trial_keys_contain(r->done, r->n_done, c->id, k))
            n++;
    return n;
}

/* Open the transport of c's device (when it changed) and put the agent there. */
static int use_device(runner *r, const melt_cell *c, melt_error *err)
{
    if (r->dev == c->device)
        return 0;
    if (r->tops) {
        r->tops->close(r->tstate);
        r->tstate = NULL;
        free(r->remote_agent);
        r->remote_agent = NULL;
    }
    free(r->dev_info);
    r->dev_info = NULL;
    r->dev = c->device;
    r->tops = melt_transport_find(melt_transport_name(c->device->transport));
    int rc = r->tops->open(c->device, &r->tstate, err);
    if (rc == 0 && r->tops->resident_agent)   /* tcp: the listening agent runs the cell */
        rc = (r->remote_agent = strdup("melt-agent")) ? 0 : melt_errorf(err, MELT_ENOMEM,
                                                                           "out of memory");
    else if (rc == 0)
        rc = r->tops->push(r->tstate, r->agent, "melt-agent", &r->remote_agent, err);
    if (rc < 0) {
        r->dev = NULL;
        return rc;
    }
    melt_error de = {0};
    if (runner_describe_device(r->tops, r->tstate, r->remote_agent, r->p->probe_root,
                               &r->dev_info, &de) < 0)
        runner_progress_note(&r->prog, "melt: warning: device '%s': %s", c->device->name, de.msg);
    return 0;
}

/* Undo what the transport's cell_begin did to the device (Android
 * rituals) and record the state after; after every cell, whatever ended it. */
static void end_cell_device(runner *r)
{
    if (!r->cell_began)
        return;
    r->cell_began = false;
    char *after = NULL;
    r->tops->cell_end(r->tstate, &after);
    if (after && r->began_dj) {
        r->began_dj = runner_json_set(r->began_dj, "state_after", after);
        melt_cell_meta meta = {.cell_id = r->began_cell_id, .device_json = r->began_dj};
        int64_t rowid = 0;
        melt_error e = {0};
        if (melt_store_add_cell(r->store, r->run_id, &meta, &rowid, &e) < 0)
            runner_progress_note(&r->prog, "melt: warning: storing the device state: %s", e.msg);
    }
    free(after);
    free(r->began_dj);
    free(r->began_cell_id);
    r->began_dj = r->began_cell_id = NULL;
}

/* Returns 0, 1 when interrupted, or a negative error. */
static int run_cell(runner *r, const melt_cell *c, size_t n_cells, melt_error *err)
{
    const melt_experiment *e = r->e;
    const int missing = missing_reps(r, c);
    r->res.n_skipped += e->repetitions - missing;
    if (missing == 0)
        return 0;
    int rc = use_device(r, c, err);
    if (rc < 0)
        return rc;
    model_slot *slot = &r->models[c->model - e->models];
    if ((rc = resolve_model(r, c->model, slot, err)) < 0)
        return rc;
    if (interrupted(r))
        return 1;
    if (!slot->sha256[0] && melt_sha256_file(slot->path, slot->sha256, err) < 0)
        return err->code;
    /* the model on the device: local uses it in place; ssh copies it into
     * the work folder unless the same sha256 is there, checking room first */
    const char *model_base = strrchr(slot->path, '/');
    char *model_remote = NULL;
    /* an OpenAI endpoint runs its own model elsewhere, and mlc given a model
     * by name loads that: nothing to copy */
    if (strcmp(c->engine->backend, "openai") == 0 ||
        (strcmp(c->engine->backend, "mlc") == 0 && c->engine->model))
        rc = (model_remote = strdup(slot->path)) ? 0 : melt_errorf(err, MELT_ENOMEM, "out of memory");
    else
        rc = r->tops->push(r->tstate, slot->path, model_base ? model_base + 1 : slot->path,
                           &model_remote, err);
    if (rc < 0)
        return rc;

    /* the device's state for the cell (adb: the Android rituals, undone by
     * end_cell_device after the cell however it ends) */
    char *state = NULL;
    if (r->tops->cell_begin) {
        if ((rc = r->tops->cell_begin(r->tstate, &state, err)) < 0) {
            free(model_remote);
            return rc;
        }
        r->cell_began = true;
    }
    char *dj = device_json(c->device), *ej = engine_json(c->engine),
         *mj = model_json(c->model, slot->path), *wj = workload_json(c->workload, e);
    dj = runner_json_set(runner_json_set(dj, "info", r->dev_info), "state", state);
    free(state);
    const bool local = c->device->transport == MELT_TRANSPORT_LOCAL;
    runner_device_meta dm;   /* remote devices: from their description */
    runner_info_meta(local ? NULL : r->dev_info, &dm);
#define META(host, dev) (local ? ((host)[0] ? (host) : NULL) : (dev)[0] ? (dev) : NULL)
    melt_cell_meta meta = {
        .cell_id = c->id, .device_json = dj, .engine_json = ej, .model_json = mj,
        .workload_json = wj,
        .device_model = META(r->device_model, dm.device_model),
        .kernel = META(r->kernel, dm.kernel),
        .governor = META(r->governor, dm.governor),
        .cpu_features = META(r->cpu_features, dm.cpu_features),
        .model_sha256 = slot->sha256,
    };
#undef META
    int64_t cell_rowid = 0;
    rc = melt_store_add_cell(r->store, r->run_id, &meta, &cell_rowid, err);
    if (rc == 0 && r->cell_began) {
        r->began_cell_id = strdup(c->id);
        r->began_dj = dj;
        dj = NULL;
    }
    free(dj);
    free(ej);
    free(mj);
    free(wj);
    if (rc < 0) {
        free(model_remote);
        return rc;
    }

    char *plan_local = NULL, *plan_remote = NULL;
    if ((rc = write_plan(c, &plan_local, err)) < 0) {
        melt_errorf(err, err->code, "%s:%d:%d: workloads[%zu]: %s", e->path, c->workload->line,
                    c->workload->col, c->workload->item, err->msg);
        free(model_remote);
        return rc;
    }
    rc = r->tops->push(r->tstate, plan_local, "plan.txt", &plan_remote, err);

    /* cool-down: recorded as a phase pair and a sample in the first trial */
    melt_event pre[4];
    size_t n_pre = 0;
    if (rc == 0) {
        runner_cooldown_result cd = {0};
        const int64_t t0 = runner_now_ns();
        if (local)
            runner_cooldown_local(&e->cooldown, r->p->probe_root, r->p->interrupts, &cd);
        const int64_t t1 = runner_now_ns();
        memset(pre, 0, sizeof pre);
        for (int i = 0; i < 4; i++) {
            pre[i].req = pre[i].i = pre[i].id = -1;
        }
        pre[0].kind = MELT_EV_PHASE;
        pre[0].t_ns = t0;
        snprintf(pre[0].name, sizeof pre[0].name, "cooldown");
        snprintf(pre[0].key, sizeof pre[0].key, "begin");
        pre[1] = pre[0];
        pre[1].t_ns = t1;
        snprintf(pre[1].key, sizeof pre[1].key, "end");
        pre[2].kind = MELT_EV_SAMPLE;
        pre[2].t_ns = t1;
        snprintf(pre[2].name, sizeof pre[2].name, "runner");
        snprintf(pre[2].key, sizeof pre[2].key, "cooldown_waited_ms");
        snprintf(pre[2].unit, sizeof pre[2].unit, "ms");
        pre[2].value = (double)(t1 - t0) / 1e6;
        pre[2].has_value = true;
        n_pre = 3;
        if (cd.timed_out) {
            pre[3] = pre[2];
            snprintf(pre[3].key, sizeof pre[3].key, "cooldown_timed_out");
            snprintf(pre[3].unit, sizeof pre[3].unit, "bool");
            pre[3].value = 1;
            n_pre = 4;
            runner_progress_note(&r->prog, "melt: cool-down: still %.1f C after %.1f s; going on",
                                 cd.max_temp_c, cd.waited_s);
        }
        if (cd.interrupted)
            rc = 1;
    }

    /* clock sync before the trials; the cool-down's host times become device times */
    melt_clock_estimate ck_before, ck_after;
    bool have_before = false, have_after = false;
    const int64_t last_trial = runner_last_trial_id(r->store, cell_rowid);
    const int lost_before = r->res.n_lost;
    if (rc == 0) {
        melt_error ce = {0};
        have_before = runner_clock_sync(r->tops, r->tstate, r->remote_agent, r->store, cell_rowid,
                                        "before", &ck_before, &ce) == 0;
        if (!have_before)
            runner_progress_note(&r->prog, "melt: warning: cell %s: %s", c->id, ce.msg);
        for (size_t i = 0; have_before && i < n_pre; i++)
            pre[i].t_ns -= ck_before.offset_ns;
    }

    trial_spec ts = {.c = c, .cell_rowid = cell_rowid, .model_path = model_remote,
                     .plan_path = plan_remote, .pre = pre, .n_pre = n_pre};
    ts.pos.cell = c->index;
    ts.pos.n_cells = n_cells;
    ts.pos.cell_id = c->id;
    for (int w = 0; rc == 0 && w < e->warmup + e->repetitions; w++) {
        ts.warmup = w < e->warmup;
        ts.rep = ts.warmup ? w : w - e->warmup;
        if (!ts.warmup && melt_trial_keys_contain(r->done, r->n_done, c->id, ts.rep))
            continue;
        ts.pos.warmup = ts.warmup;
        ts.pos.rep = ts.rep;
        ts.pos.n_reps = ts.warmup ? e->warmup : e->repetitions;
        int st = run_trial(r, &ts, err);
        ts.n_pre = 0;
        if (st < 0) {
            rc = st;
            break;
        }
        r->res.n_trials++;
        switch ((enum melt_trial_status)st) {
        case MELT_TRIAL_OK: r->res.n_ok++; break;
        case MELT_TRIAL_LOST: r->res.n_lost++; break;
        case MELT_TRIAL_INTERRUPTED: r->res.n_interrupted++; break;
        default: r->res.n_error++; break;
        }
        if (interrupted(r))
            rc = 1;
    }
    if (have_before && rc == 0 && r->res.n_lost == lost_before) {
        melt_error ce = {0};
        have_after = runner_clock_sync(r->tops, r->tstate, r->remote_agent, r->store, cell_rowid,
                                       "after", &ck_after, &ce) == 0;
        if (!have_after)
            runner_progress_note(&r->prog, "melt: warning: cell %s: %s", c->id, ce.msg);
    }
    melt_error ce = {0};
    if (runner_clock_apply(r->store, cell_rowid, last_trial, have_before ? &ck_before : NULL,
                           have_after ? &ck_after : NULL, &ce) < 0)
        runner_progress_note(&r->prog, "melt: warning: cell %s: storing the clock: %s", c->id,
                             ce.msg);
    if (plan_local)
        unlink(plan_local);
    free(plan_local);
    free(plan_remote);
    free(model_remote);
    return rc;
}

/* ---- the run ---- */

static int find_agent(const melt_runner_params *p, char **out, melt_error *err)
{
    const char *env = getenv("MELT_AGENT");
    char buf[PATH_MAX];
    const char *path = p->agent_path ? p->agent_path : env && *env ? env : NULL;
    if (!path) {
        ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 16);
        if (n <= 0)
            return melt_errorf(err, MELT_ENOTFOUND,
                               "cannot find melt-agent (no /proc/self/exe); give --agent PATH");
        buf[n] = '\0';
        char *slash = strrchr(buf, '/');
        snprintf(slash ? slash + 1 : buf, sizeof buf - (size_t)(slash ? slash + 1 - buf : 0),
                 "melt-agent");
        path = buf;
    }
    if (access(path, X_OK) != 0)
        return melt_errorf(err, MELT_ENOTFOUND,
                           "agent '%s' not found or not executable (build it with 'make', or "
                           "give --agent PATH or MELT_AGENT)", path);
    if (!(*out = strdup(path)))
        return melt_errorf(err, MELT_ENOMEM, "out of memory");
    return 0;
}

static char *models_dir_for(const char *db_path, const char *given)
{
    if (given)
        return strdup(given);
    const char *slash = strrchr(db_path, '/');
    size_t n = slash ? (size_t)(slash - db_path) : 1;
    const char *dir = slash ? db_path : ".";
    if (slash && n == 0) {
        dir = "/";
        n = 1;
    }
    size_t len = n + sizeof "/.melt-models";
    char *s = malloc(len);
    if (s)
        snprintf(s, len, "%.*s/.melt-models", (int)n, dir);
    return s;
}


/* What the store keeps of the experiment: the file as written, then its
 * resolved form (defaults, expanded lists, loaded workloads) as YAML
 * comments, so the text stays a valid experiment file. */
static int experiment_record(const melt_experiment *e, char **out, melt_error *err)
{
    char *text = NULL, *resolved = NULL, *buf = NULL;
    size_t len = 0, rlen = 0, blen = 0;
    int rc = melt_read_file(e->path, &text, &len, err);
    if (rc < 0)
        return rc;
    FILE *mem = open_memstream(&resolved, &rlen);
    if (!mem) {
        free(text);
        return melt_errorf(err, MELT_ENOMEM, "%s: out of memory", e->path);
    }
    rc = melt_experiment_describe(e, mem, err);
    fclose(mem);
    FILE *o = rc < 0 ? NULL : open_memstream(&buf, &blen);
    if (o) {
        fputs(text, o);
        if (len && text[len - 1] != '\n')
            fputc('\n', o);
        fputs("\n# --- resolved by melt " MELT_VERSION " ---\n", o);
        for (const char *line = resolved; line && *line;) {
            const char *nl = strchr(line, '\n');
            size_t n = nl ? (size_t)(nl - line) : strlen(line);
            fprintf(o, "%s%.*s\n", line[0] == '#' ? "" : "# ", (int)n, line);
            line += n + (nl ? 1 : 0);
        }
        fclose(o);
    } else if (rc == 0) {
        rc = melt_errorf(err, MELT_ENOMEM, "%s: out of memory", e->path);
    }
    free(text);
    free(resolved);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    *out = buf;
    return 0;
}

static int open_run(runner *r, melt_error *err)
{
    const melt_experiment *e = r->e;
    if (r->p->resume) {
        melt_run_info info;
        const char *spec = r->p->resume_run ? r->p->resume_run : e->name;
        int rc = melt_store_find_run(r->store, spec, &info, err);
        if (rc < 0)
            return rc;
        if (strcmp(info.name, e->name) != 0)
            return melt_errorf(err, MELT_EINVAL,
                               "run %lld is of experiment '%s', not '%s' (%s)",
                               (long long)info.id, info.name, e->name, e->path);
        r->run_id = info.id;
        return melt_store_completed_trials(r->store, r->run_id, &r->done, &r->n_done, err);
    }
    char *text = NULL;
    int rc = experiment_record(e, &text, err);
    if (rc < 0)
        return rc;
    melt_run_meta meta = {.name = e->name, .experiment = text};
    rc = melt_store_begin_run(r->store, &meta, &r->run_id, err);
    free(text);
    return rc;
}

static void print_summary(runner *r, FILE *out)
{
    melt_results *res = NULL;
    melt_error err = {0};
    if (melt_results_compute(r->store, r->run_id, &res, &err) < 0) {
        fprintf(stderr, "melt: warning: summary: %s\n", err.msg);
        return;
    }
    if (melt_results_save(r->store, res, &err) < 0)
        fprintf(stderr, "melt: warning: storing the summaries: %s\n", err.msg);
    fputc('\n', out);
    if (melt_results_write(out, res, MELT_RESULTS_TEXT, &err) < 0)
        fprintf(stderr, "melt: warning: summary: %s\n", err.msg);
    melt_results_free(res);
}

/* report.html beside the database. */
static void write_report(runner *r, FILE *out)
{
    const char *slash = strrchr(r->db_path, '/');
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%.*sreport.html", slash ? (int)(slash - r->db_path + 1) : 0,
             r->db_path);
    melt_error err = {0};
    FILE *f = fopen(path, "w");
    int rc = f ? melt_report_write(r->store, r->run_id, f, &err)
               : melt_errorf(&err, MELT_EIO, "%s: %s", path, strerror(errno));
    if (f && fclose(f) != 0 && rc == 0)
        rc = melt_errorf(&err, MELT_EIO, "%s: %s", path, strerror(errno));
    if (rc < 0)
        fprintf(stderr, "melt: warning: report: %s\n", err.msg);
    else
        fprintf(out, "report:   %s\n", path);
}

int melt_runner_run(const melt_experiment *e, const melt_runner_params *p,
                    melt_runner_result *res, melt_error *err)
{
    runner r;
    memset(&r, 0, sizeof r);
    r.e = e;
    r.p = p;
    r.res.run_id = 0;
    FILE *out = p->out ? p->out : stdout;
    const size_t n_cells = melt_experiment_n_cells(e);
    int rc = 0;

    for (size_t i = 0; i < e->n_devices; i++) {
        const char *kind = melt_transport_name(e->devices[i].transport);
        if (!melt_transport_find(kind)) {
            melt_errorf(err, MELT_EUNSUPPORTED,
                        "device '%s': transport '%s' is not supported yet (this melt runs "
                        "local, ssh, adb and tcp devices)", e->devices[i].name, kind);
            return MELT_RUN_EXIT_ERROR;
        }
    }
    if (find_agent(p, &r.agent, err) < 0)
        return MELT_RUN_EXIT_ERROR;
    r.db_path = strdup(p->db_path ? p->db_path : MELT_STORE_DEFAULT_PATH);
    r.models_dir = r.db_path ? models_dir_for(r.db_path, p->models_dir) : NULL;
    r.models = calloc(e->n_models ? e->n_models : 1, sizeof *r.models);
    if (!r.db_path || !r.models_dir || !r.models) {
        melt_errorf(err, MELT_ENOMEM, "out of memory");
        rc = MELT_RUN_EXIT_ERROR;
        goto done;
    }
    host_metadata(&r);
    if (melt_store_open(r.db_path, &r.store, err) < 0 || open_run(&r, err) < 0) {
        rc = MELT_RUN_EXIT_ERROR;
        goto done;
    }

    int total = 0;
    melt_cell c;
    for (size_t i = 0; melt_experiment_cell(e, i, &c); i++) {
        int m = missing_reps(&r, &c);
        if (m)
            total += m + e->warmup;
    }
    runner_progress_init(&r.prog, p->progress, p->quiet, total);
    if (p->resume)
        runner_progress_note(&r.prog, "melt: resuming run %lld: %d trials to run",
                             (long long)r.run_id, total);
    else
        runner_progress_note(&r.prog, "melt: run %lld: %zu cells, %d trials", (long long)r.run_id,
                             n_cells, total);

    int crc = 0;
    for (size_t i = 0; crc == 0 && melt_experiment_cell(e, i, &c); i++) {
        if (interrupted(&r))
            crc = 1;
        else
            crc = run_cell(&r, &c, n_cells, err);
        end_cell_device(&r);
    }
    runner_progress_end(&r.prog);
    melt_error e2 = {0};
    if (crc < 0) {
        melt_store_end_run(r.store, r.run_id, "error", &e2);
        rc = MELT_RUN_EXIT_ERROR;
    } else if (crc > 0 || interrupted(&r)) {
        r.res.interrupted = true;
        melt_store_end_run(r.store, r.run_id, "interrupted", &e2);
        fprintf(out, "interrupted: run %lld keeps everything collected so far\n"
                     "resume with: melt run %s --resume %lld --db %s\n",
                (long long)r.run_id, e->path, (long long)r.run_id, r.db_path);
        rc = MELT_RUN_EXIT_INTERRUPTED;
    } else {
        const bool bad = r.res.n_lost || r.res.n_error || r.res.n_interrupted;
        if (melt_store_end_run(r.store, r.run_id, bad ? "error" : "ok", err) < 0) {
            rc = MELT_RUN_EXIT_ERROR;
            goto done;
        }
        print_summary(&r, out);
        fprintf(out, "\ndatabase: %s (run %lld)\n", r.db_path, (long long)r.run_id);
        write_report(&r, out);
        if (bad) {
            melt_errorf(err, MELT_EIO,
                        "%d trial(s) lost, %d failed, %d interrupted: results are untrustworthy",
                        r.res.n_lost, r.res.n_error, r.res.n_interrupted);
            rc = MELT_RUN_EXIT_UNTRUSTWORTHY;
        }
    }
done:
    r.res.run_id = r.run_id;
    if (res)
        *res = r.res;
    end_cell_device(&r);
    if (r.tops)
        r.tops->close(r.tstate);
    free(r.remote_agent);
    free(r.dev_info);
    for (size_t i = 0; r.models && i < e->n_models; i++)
        free(r.models[i].path);
    free(r.models);
    melt_store_free_keys(r.done, r.n_done);
    melt_store_close(r.store);
    free(r.agent);
    free(r.db_path);
    free(r.models_dir);
    return rc;
}

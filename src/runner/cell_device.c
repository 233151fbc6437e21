/* What the runner records about a device (docs/devices.md): the agent's
 * `--describe` object once per device (model, OS, cores, memory, governors,
 * temperatures, Android and Jetson details), the transport's state around
 * each cell (adb: governor, thermal status, battery level before and after
 * the Android rituals), merged into the cell's device JSON. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "melt/transport.h"
#include "runner/runner_internal.h"

#define DESCRIBE_MAX_BYTES (256 * 1024)
#define DESCRIBE_TIMEOUT_MS 30000

typedef struct collect {
    char *buf;
    size_t len, cap;
    bool too_long;
} collect;

static int on_out(int fd_index, const char *data, size_t n, void *user)
{
    collect *c = user;
    if (fd_index != 1)
        return 0;
    if (c->len + n + 1 > DESCRIBE_MAX_BYTES) {
        c->too_long = true;
        return 1;
    }
    if (c->len + n + 1 > c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 4096;
        while (cap < c->len + n + 1)
            cap *= 2;
        char *b = realloc(c->buf, cap);
        if (!b)
            return 1;
        c->buf = b;
        c->cap = cap;
    }
    memcpy(c->buf + c->len, data, n);
    c->len += n;
    c->buf[c->len] = '\0';
    return 0;
}

int runner_describe_device(const melt_transport_ops *tops, void *tstate, const char *agent,
                           const char *root, char **json, melt_error *err)
{
    char *argv[] = {(char *)agent, "--describe", root ? "--root" : NULL, (char *)root, NULL};
    melt_proc p;
    *json = NULL;
    int rc = tops->spawn(tstate, argv, &p, err);
    if (rc < 0)
        return rc;
    collect c = {0};
    const int64_t deadline = runner_now_ns() + (int64_t)DESCRIBE_TIMEOUT_MS * 1000000;
    int done = 0;
    while (done == 0 && runner_now_ns() < deadline)
        done = melt_proc_pump(&p, 200, on_out, &c, err);
    if (done == 1 && melt_proc_wait(&p, 5000) == 1 && melt_proc_exit_code(&p) != 0)
        done = melt_errorf(err, MELT_EIO, "the agent's --describe exited %d (an older agent?)",
                           melt_proc_exit_code(&p));
    else if (done == 0)
        done = melt_errorf(err, MELT_EIO, "the agent's --describe did not answer in %d s",
                           DESCRIBE_TIMEOUT_MS / 1000);
    melt_proc_close(&p);
    if (done < 0 || c.too_long || !c.buf) {
        free(c.buf);
        if (done >= 0)
            done = melt_errorf(err, MELT_EFORMAT, "the agent's --describe printed %s",
                               c.too_long ? "too much" : "nothing");
        return done;
    }
    json_error_t je;
    json_t *o = json_loads(c.buf, JSON_DECODE_ANY, &je);
    free(c.buf);
    if (!json_is_object(o)) {
        json_decref(o);
        return melt_errorf(err, MELT_EFORMAT, "the agent's --describe is not a JSON object");
    }
    *json = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return *json ? 0 : melt_errorf(err, MELT_ENOMEM, "out of memory");
}

char *runner_json_set(char *obj_text, const char *key, const char *value_json)
{
    if (!obj_text || !value_json)
        return obj_text;
    json_t *o = json_loads(obj_text, 0, NULL), *v = json_loads(value_json, JSON_DECODE_ANY, NULL);
    char *out = NULL;
    if (json_is_object(o) && v && json_object_set(o, key, v) == 0)
        out = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    json_decref(o);
    json_decref(v);
    if (!out)
        return obj_text;
    free(obj_text);
    return out;
}

/* A string member of o, or "". */
static const char *jstr(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

void runner_info_meta(const char *info_json, runner_device_meta *m)
{
    memset(m, 0, sizeof *m);
    json_t *o = info_json ? json_loads(info_json, 0, NULL) : NULL;
    if (!json_is_object(o)) {
        json_decref(o);
        return;
    }
    const char *model = jstr(o, "model"), *cpu = jstr(o, "cpu");
    snprintf(m->device_model, sizeof m->device_model, "%s%s%s", model,
             *model && *cpu ? "; " : "", cpu);
    snprintf(m->kernel, sizeof m->kernel, "%s%s%s%s%s", jstr(o, "os"), *jstr(o, "os") ? " " : "",
             jstr(o, "kernel"), *jstr(o, "arch") ? " " : "", jstr(o, "arch"));
    /* the governors, "schedutil" or "policy0=schedutil policy4=performance" */
    json_t *g = json_object_get(o, "governor");
    const char *k, *first = NULL;
    json_t *v;
    bool same = true;
    json_object_foreach(g, k, v) {
        const char *s = json_string_value(v);
        if (!s)
            continue;
        if (!first)
            first = s;
        else if (strcmp(first, s) != 0)
            same = false;
    }
    size_t off = 0;
    if (first && same) {
        snprintf(m->governor, sizeof m->governor, "%s", first);
    } else if (first) {
        json_object_foreach(g, k, v) {
            int w = snprintf(m->governor + off, sizeof m->governor - off, "%s%s=%s",
                             off ? " " : "", k, json_string_value(v) ? json_string_value(v) : "");
            if (w < 0 || (size_t)w >= sizeof m->governor - off)
                break;
            off += (size_t)w;
        }
    }
    snprintf(m->cpu_features, sizeof m->cpu_features, "%s", jstr(o, "features"));
    json_decref(o);
}

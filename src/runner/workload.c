/* Workloads → plans (see melt/workload.h). */
#include "melt/workload.h"
#include "melt/fs.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER:
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

/* A non-empty string without NUL bytes. */
static bool usable_prompt(const json_t *v)
{
    return json_is_string(v) && json_string_length(v) > 0 &&
           strlen(json_string_value(v)) == json_string_length(v);
}

int melt_conversations_parse(const char *text, size_t len, const char *fname, melt_plan *p,
                             melt_error *err)
{
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
    if (!root)
        return melt_errorf(err, MELT_EFORMAT, "%s:%d:%d: %s", fname, je.line, je.column,
                           je.text);
    int rc = 0;
    if (!json_is_array(root) || json_array_size(root) == 0) {
        rc = melt_errorf(err, MELT_EFORMAT,
                         "%s: expected a non-empty array of conversations, got %s", fname,
                         json_is_array(root) ? "an empty array" : json_kind(root));
        goto out;
    }
    for (size_t i = 0; i < json_array_size(root) && rc == 0; i++) {
        const json_t *conv = json_array_get(root, i);
        if (!json_is_array(conv) || json_array_size(conv) == 0) {
            rc = melt_errorf(err, MELT_EFORMAT,
                             "%s: [%zu]: expected a non-empty array of prompts, got %s", fname,
                             i, json_is_array(conv) ? "an empty array" : json_kind(conv));
            break;
        }
        rc = melt_plan_add_conv(p, err);
        for (size_t t = 0; t < json_array_size(conv) && rc == 0; t++) {
            const json_t *turn = json_array_get(conv, t);
            if (!usable_prompt(turn))
                rc = melt_errorf(err, MELT_EFORMAT, "%s: [%zu][%zu]: expected a non-empty string "
                                 "without NUL, got %s", fname, i, t,
                                 json_is_string(turn) ? "an unusable string" : json_kind(turn));
            else
                rc = melt_plan_add_turn(p, json_string_value(turn), json_string_length(turn), err);
        }
    }
out:
    json_decref(root);
    return rc;
}

int melt_prompts_parse(const char *text, size_t len, const char *fname, bool jsonl,
                       melt_plan *p, melt_error *err)
{
    const char *s = text, *end = text + len;
    size_t lineno = 0, before = p->n_convs;
    while (s < end) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        size_t n = nl ? (size_t)(nl - s) : (size_t)(end - s);
        const char *line = s;
        s = nl ? nl + 1 : end;
        lineno++;
        if (n > 0 && line[n - 1] == '\r')
            n--;
        size_t blank = 0;
        while (blank < n && (line[blank] == ' ' || line[blank] == '\t'))
            blank++;
        if (blank == n)
            continue;
        if (memchr(line, '\0', n))
            return melt_errorf(err, MELT_EFORMAT, "%s:%zu: a NUL byte in a prompt", fname, lineno);
        int rc;
        if (!jsonl) {
            if ((rc = melt_plan_add_conv(p, err)) < 0 ||
                (rc = melt_plan_add_turn(p, line, n, err)) < 0)
                return rc;
            continue;
        }
        json_error_t je;
        json_t *obj = json_loadb(line, n, JSON_REJECT_DUPLICATES, &je);
        if (!obj)
            return melt_errorf(err, MELT_EFORMAT, "%s:%zu:%d: %s", fname, lineno, je.column,
                               je.text);
        const json_t *pr = json_is_object(obj) ? json_object_get(obj, "prompt") : NULL;
        if (!pr || !usable_prompt(pr)) {
            json_decref(obj);
            return melt_errorf(err, MELT_EFORMAT,
                               "%s:%zu: expected an object with a non-empty string \"prompt\"",
                               fname, lineno);
        }
        rc = melt_plan_add_conv(p, err);
        if (rc == 0)
            rc = melt_plan_add_turn(p, json_string_value(pr), json_string_length(pr), err);
        json_decref(obj);
        if (rc < 0)
            return rc;
    }
    if (p->n_convs == before)
        return melt_errorf(err, MELT_EFORMAT, "%s: no prompts in the file", fname);
    return 0;
}

int melt_workload_plan(const melt_exp_workload *w, int n_ctx, melt_plan **out, melt_error *err)
{
    *out = NULL;
    static const enum melt_plan_kind kinds[] = {MELT_PLAN_SYNTHETIC, MELT_PLAN_CONVERSATIONS,
                                                MELT_PLAN_PROMPTS};
    if ((unsigned)w->kind > 2)
        return melt_errorf(err, MELT_EINVAL, "workload '%s': unknown kind", w->id);
    melt_plan *p = melt_plan_new(kinds[w->kind]);
    if (!p)
        return melt_errorf(err, MELT_ENOMEM, "out of memory");
    int rc = 0;
    if (w->kind == MELT_WORKLOAD_SYNTHETIC) {
        p->prompt_tokens = w->prompt_tokens;
        p->gen_tokens = w->gen_tokens;
        p->ignore_eos = true;
    } else {
        p->max_gen_tokens = w->max_gen_tokens;
        if (w->kind == MELT_WORKLOAD_CONVERSATIONS)
            p->max_context_tokens = w->max_context_tokens > 0 && w->max_context_tokens < n_ctx
                                        ? w->max_context_tokens : n_ctx;
        char *text = NULL;
        size_t len = 0;
        rc = melt_read_file(w->path, &text, &len, err);
        if (rc == 0)
            rc = w->kind == MELT_WORKLOAD_CONVERSATIONS
                     ? melt_conversations_parse(text, len, w->path, p, err)
                     : melt_prompts_parse(text, len, w->path, w->jsonl, p, err);
        free(text);
    }
    if (rc < 0) {
        melt_plan_free(p);
        return rc;
    }
    *out = p;
    return 0;
}

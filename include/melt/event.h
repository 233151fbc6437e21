/* melt — the event stream: what a device reports about one trial.
 *
 * The agent (melt-agent, on the device) writes one JSON object per line to
 * stdout; the host parses the lines back into melt_event values, stores
 * every one, and computes metrics from them. Times are the device's
 * CLOCK_MONOTONIC in ns; the host aligns them to its own clock later.
 * docs/agent-protocol.md is the normative description of the lines.
 *
 *   {"ev":"hello","t_ns":1,"agent":"0.1.0","commit":"abc","host":"pixel","cpu":"..."}
 *   {"ev":"phase","t_ns":2,"name":"load","edge":"begin"}
 *   {"ev":"phase","t_ns":9,"name":"load","edge":"end"}
 *   {"ev":"request","t_ns":10,"req":0,"n_prompt":128}
 *   {"ev":"first_token","t_ns":55,"req":0}
 *   {"ev":"token","t_ns":55,"req":0,"i":0,"id":1234}
 *   {"ev":"end","t_ns":90,"req":0,"n_gen":64,"reason":"limit"}
 *   {"ev":"sample","t_ns":12,"probe":"thermal","key":"cpu0","value":45000,"unit":"mC"}
 *   {"ev":"error","t_ns":13,"msg":"..."}
 *   {"ev":"bye","t_ns":99,"status":"ok"}
 */
#ifndef MELT_EVENT_H
#define MELT_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "melt/error.h"

#ifdef __cplusplus
extern "C" {
#endif

enum melt_event_kind {
    MELT_EV_HELLO = 0,     /* agent start: version, commit, host, cpu (in text fields) */
    MELT_EV_PHASE,         /* name: load|warmup|idle|prefill|decode|cooldown; edge begin/end */
    MELT_EV_REQUEST,       /* a prompt is submitted: req, n_prompt */
    MELT_EV_FIRST_TOKEN,   /* first generated token of req */
    MELT_EV_TOKEN,         /* token i (id) of req */
    MELT_EV_END,           /* req finished: n_gen, reason (limit|eog|context|caller|error) */
    MELT_EV_SAMPLE,        /* probe sample: probe, key, value, unit */
    MELT_EV_ENGINE,        /* an engine's own timing figure: key, value, unit (per req) */
    MELT_EV_ERROR,         /* msg */
    MELT_EV_BYE,           /* agent end: status ok|error|interrupted */
    MELT_EV_KIND_COUNT
};

#define MELT_EVENT_TEXT_MAX 256

typedef struct melt_event {
    enum melt_event_kind kind;
    int64_t t_ns;          /* device CLOCK_MONOTONIC */
    int32_t req;           /* request index within the trial, -1 if none */
    int32_t i;             /* token index within req, -1 if none */
    int32_t id;            /* token id, or n_prompt / n_gen / hello's proto, -1 if none */
    double value;          /* sample/engine value */
    bool has_value;
    /* text fields, NUL-terminated, "" when absent:
     * name: phase name / probe name / hello agent version / engine name
     * key:  phase edge ("begin"/"end") / sample key / end reason / bye status
     * unit: sample unit
     * msg:  error message / hello details (JSON object text) */
    char name[64];
    char key[96];
    char unit[16];
    char msg[MELT_EVENT_TEXT_MAX];
} melt_event;

const char *melt_event_kind_name(enum melt_event_kind k);   /* "token", ... */
bool melt_event_kind_parse(const char *s, enum melt_event_kind *out);

/* One JSON line for ev, with the trailing newline, into buf (returns the
 * length, or the length needed when it does not fit, like snprintf).
 * Dependency-free: used by the static agent. */
size_t melt_event_format(const melt_event *ev, char *buf, size_t n);

/* Parse one line (without or with its newline). Unknown keys are ignored
 * (newer agents), a missing "ev" or "t_ns", a bad value or a truncated line
 * is MELT_EFORMAT with the reason in err. Never reads past line[len). */
int melt_event_parse(const char *line, size_t len, melt_event *ev, melt_error *err);

/* Add "key":"value" (JSON-escaped) to the hello details in ev->msg (a JSON
 * object's text, "" when empty). A member that would not fit whole is
 * dropped: returns false then. */
bool melt_event_hello_add(melt_event *ev, const char *key, const char *value);

#ifdef __cplusplus
}
#endif
#endif

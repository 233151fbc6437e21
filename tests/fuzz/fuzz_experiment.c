/* Fuzz target: experiment files (YAML via libyaml) from memory, plus the
 * plan reader on the same bytes. A rejection must be one line that names
 * the file; an accepted experiment must expand into cells whose ids find
 * themselves again; an accepted plan must write back to bytes that parse
 * to the same plan. Relative paths resolve under a folder that does not
 * exist. Built by `make fuzz` (libFuzzer) and replayed in `make test`. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "melt/experiment.h"
#include "melt/plan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_one_line(const melt_error *err, const char *prefix)
{
    if (err->code == 0 || err->msg[0] == '\0' || strchr(err->msg, '\n') ||
        strncmp(err->msg, prefix, strlen(prefix)) != 0)
        abort();
}

static void fuzz_experiment(const uint8_t *data, size_t size)
{
    melt_experiment *e = NULL;
    melt_error err = {0};
    if (melt_experiment_parse((const char *)data, size, "fuzz.yaml", "/nonexistent-melt-fuzz", &e,
                              &err) != 0) {
        check_one_line(&err, "fuzz.yaml");
        if (e)
            abort();
        return;
    }
    size_t n = melt_experiment_n_cells(e);
    if (n == 0)
        abort();
    melt_cell c;
    for (size_t i = 0; i < n && i < 64; i++) {
        if (!melt_experiment_cell(e, i, &c) || melt_experiment_find_cell(e, c.id) != (long)i)
            abort();
    }
    if (melt_experiment_cell(e, n, &c))
        abort();
    melt_experiment_free(e);
}

static void fuzz_plan(const uint8_t *data, size_t size)
{
    melt_plan *p = NULL;
    melt_error err = {0};
    if (melt_plan_parse((const char *)data, size, &p, &err) != 0) {
        check_one_line(&err, "plan:");
        return;
    }
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f || melt_plan_write(p, f, &err) != 0)
        abort();
    fclose(f);
    melt_plan *q = NULL;
    if (melt_plan_parse(buf, len, &q, &err) != 0 || q->n_convs != p->n_convs ||
        q->kind != p->kind || q->max_gen_tokens != p->max_gen_tokens)
        abort();
    for (size_t i = 0; i < p->n_convs; i++) {
        if (q->convs[i].n_turns != p->convs[i].n_turns)
            abort();
        for (size_t t = 0; t < p->convs[i].n_turns; t++)
            if (strcmp(q->convs[i].turns[t], p->convs[i].turns[t]) != 0)
                abort();
    }
    melt_plan_free(q);
    melt_plan_free(p);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_experiment(data, size);
    fuzz_plan(data, size);
    return 0;
}

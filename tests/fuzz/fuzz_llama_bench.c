/* Fuzz target: `melt import llama-bench` (melt_import_llama_bench) on any
 * bytes. The input goes to a scratch file and is imported into a scratch
 * store; the import either succeeds, adding exactly one run with at least
 * one cell, or fails with a message and adds nothing. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "melt/import.h"
#include "melt/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t count_runs(melt_store *s)
{
    melt_run_info *runs = NULL;
    size_t n = 0;
    melt_error err = {0};
    if (melt_store_list_runs(s, &runs, &n, &err) < 0)
        abort();
    free(runs);
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* a fresh store per input, removed afterwards (under the test
     * runner's scratch folder when there is one) */
    const char *dir = getenv("MELT_TEST_TMP") ? getenv("MELT_TEST_TMP") : "/tmp";
    char path[512], db[512], side[520];
    snprintf(path, sizeof path, "%s/melt-fuzz-lb-%ld.json", dir, (long)getpid());
    snprintf(db, sizeof db, "%s/melt-fuzz-lb-%ld.db", dir, (long)getpid());
    FILE *f = fopen(path, "wb");
    if (!f)
        return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    melt_store *s = NULL;
    melt_error err = {0};
    if (melt_store_open(db, &s, &err) < 0)
        abort();
    const size_t before = count_runs(s);
    int64_t run = 0;
    size_t n = 0;
    const int rc = melt_import_llama_bench(s, path, NULL, &run, &n, &err);
    const size_t after = count_runs(s);
    if (rc < 0 && (after != before || !err.msg[0]))
        abort();   /* a failed import stored something, or said nothing */
    if (rc == 0) {
        melt_cell_info *cells = NULL;
        size_t nc = 0;
        if (after != before + 1 || n == 0 || melt_store_list_cells(s, run, &cells, &nc, &err) < 0 ||
            nc == 0 || nc > n)
            abort();
        melt_store_free_cells(cells, nc);
    }
    melt_store_close(s);
    unlink(path);
    unlink(db);
    snprintf(side, sizeof side, "%s-wal", db);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", db);
    unlink(side);
    return 0;
}

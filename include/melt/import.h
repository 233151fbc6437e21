/* melt — importing other tools' results into the store (host-only).
 *
 * llama-bench: its -o json (one array) or -o jsonl (one object per line)
 * output, told apart by the first non-blank character. The whole file is
 * read and checked before anything is stored, so a bad file stores
 * nothing. docs/results.md, "import llama-bench", has the mapping.
 */
#ifndef MELT_IMPORT_H
#define MELT_IMPORT_H

#include <stddef.h>
#include <stdint.h>

#include "melt/error.h"
#include "melt/store.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Store path as a new run named run_name (NULL: "llama-bench"): a cell per
 * (model, test, threads) entry, a trial per sample. *run_id and *n_entries
 * (either may be NULL) get the run and the number of entries. Errors:
 * MELT_EIO (unreadable), MELT_EFORMAT ("PATH: line N: ..." or
 * "PATH: entry N: ..."), store errors. */
int melt_import_llama_bench(melt_store *s, const char *path, const char *run_name,
                            int64_t *run_id, size_t *n_entries, melt_error *err);

#ifdef __cplusplus
}
#endif
#endif

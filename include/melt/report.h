/* melt — the HTML report of a stored run: one self-contained file (inline
 * CSS, SVG charts drawn here, no script, no network) with the run's header,
 * the summary table and charts: decode and prefill tok/s by cell with 95%
 * CI bars, energy per token, temperature and power over time, the
 * inter-token latency CDF. docs/report.md describes it. Host-only.
 */
#ifndef MELT_REPORT_H
#define MELT_REPORT_H

#include <stdint.h>
#include <stdio.h>

#include "melt/error.h"
#include "melt/store.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Write the report of run_id to out. Reads the run's cells, summaries
 * (melt_results_compute) and events; every string from the store is
 * HTML-escaped. MELT_ENOTFOUND for an unknown run, MELT_EIO when out fails. */
int melt_report_write(melt_store *s, int64_t run_id, FILE *out, melt_error *err);

/* s as HTML text (also valid inside a double- or single-quoted attribute):
 * & < > " ' escaped, C0 controls other than tab/newline/CR and bytes that
 * are not UTF-8 written as U+FFFD. NULL writes nothing. */
void melt_html_escape(FILE *out, const char *s);

#ifdef __cplusplus
}
#endif
#endif

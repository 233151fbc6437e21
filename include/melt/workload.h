/* melt — workloads: a workload variant of an experiment (melt/experiment.h)
 * turned into the plan the agent runs (melt/plan.h). Host only: reads
 * JSON with jansson.
 *
 *  - conversations: MELT's format, a JSON array of conversations, each a
 *    non-empty array of user prompts (strings). The agent answers them
 *    turn by turn through the chat template, keeping the history, with at
 *    most max_gen_tokens per answer; when the history no longer fits in
 *    max_context_tokens, the oldest whole turns are dropped (the rule is in
 *    docs/experiment.md, "Context limit").
 *  - prompts: single prompts, one per line of a text file (blank lines
 *    skipped, a trailing CR removed) or JSON lines ({"prompt": "..."}).
 *  - synthetic: exact prompt_tokens and gen_tokens, end-of-generation
 *    ignored (llama-bench's pp/tg); the plan carries no text.
 */
#ifndef MELT_WORKLOAD_H
#define MELT_WORKLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "melt/error.h"
#include "melt/experiment.h"
#include "melt/plan.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Append the conversations of a MELT JSON text to p. fname names it in
 * messages ("conv.json:3:7: ..." for syntax errors, "conv.json: [2][0]:
 * expected a string, got a number" for shape errors). */
int melt_conversations_parse(const char *text, size_t len, const char *fname, melt_plan *p,
                             melt_error *err);
/* Append single prompts (text lines, or JSON lines when jsonl) to p, one
 * single-turn conversation each. Errors name "FILE:LINE". */
int melt_prompts_parse(const char *text, size_t len, const char *fname, bool jsonl,
                       melt_plan *p, melt_error *err);

/* The plan of workload variant w on an engine with a context of n_ctx
 * tokens (the conversation history limit is min(max_context_tokens, n_ctx),
 * or n_ctx when max_context_tokens is 0). Reads w->path. Free with
 * melt_plan_free. */
int melt_workload_plan(const melt_exp_workload *w, int n_ctx, melt_plan **out, melt_error *err);

#ifdef __cplusplus
}
#endif
#endif

/* melt — workload plans: what the agent runs for one cell, in a small
 * line-oriented text format that needs no JSON or YAML library to read.
 *
 * The host turns a workload (melt/workload.h) into a plan and sends it to
 * the agent; the agent parses it with melt_plan_parse (plan.c depends on
 * libc only, so the static agent links it). docs/experiment.md, "Plans",
 * describes the format; in short:
 *
 *   melt-plan 1
 *   kind conversations            synthetic | conversations | prompts
 *   prompt_tokens 0               synthetic: exact prompt length
 *   gen_tokens 0                  synthetic: exact generation length
 *   max_gen_tokens 128            conversations/prompts: most tokens per answer
 *   max_context_tokens 2048       conversations: history limit (drop oldest turns)
 *   ignore_eos 0                  1: generate past end-of-generation tokens
 *   conversations 2               number of conversation blocks that follow
 *   conversation 2                a conversation and its number of turns
 *   turn "Hello!\nHow are you?"   one user prompt, an escaped string
 *   turn "Tell me more."
 *   conversation 1
 *   turn "A single prompt."
 *   end
 *
 * Strings are double-quoted; inside, \\ \" \n \r \t and \xHH (other bytes
 * below 0x20 and 0x7f) are escaped, every other byte (UTF-8 included) is
 * written as is. A plan is only valid up to and including its "end" line,
 * so a truncated transfer is an error, not a shorter workload.
 */
#ifndef MELT_PLAN_H
#define MELT_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "melt/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MELT_PLAN_VERSION 1

enum melt_plan_kind {
    MELT_PLAN_SYNTHETIC = 0,
    MELT_PLAN_CONVERSATIONS,
    MELT_PLAN_PROMPTS,
};
const char *melt_plan_kind_name(enum melt_plan_kind k);

typedef struct melt_plan_conv {
    size_t n_turns;
    char **turns;              /* user prompts, NUL-terminated UTF-8, no NUL inside */
} melt_plan_conv;

typedef struct melt_plan {
    enum melt_plan_kind kind;
    int32_t prompt_tokens;     /* synthetic */
    int32_t gen_tokens;        /* synthetic */
    int32_t max_gen_tokens;    /* conversations/prompts */
    int32_t max_context_tokens;/* conversations: 0 = the context's size */
    bool ignore_eos;           /* synthetic: true */
    size_t n_convs;
    melt_plan_conv *convs;     /* prompts: one single-turn conversation each */
} melt_plan;

/* An empty plan of kind (free with melt_plan_free); NULL when out of memory. */
melt_plan *melt_plan_new(enum melt_plan_kind kind);
void melt_plan_free(melt_plan *p);
/* Append an empty conversation / a turn to the last conversation (copied).
 * MELT_EINVAL when text holds a NUL byte or there is no conversation yet. */
int melt_plan_add_conv(melt_plan *p, melt_error *err);
int melt_plan_add_turn(melt_plan *p, const char *text, size_t len, melt_error *err);

/* Write p in the format above. MELT_EIO when out fails. */
int melt_plan_write(const melt_plan *p, FILE *out, melt_error *err);
/* Parse a plan from buf[0..len). Errors name the line: "plan:7: ...". */
int melt_plan_parse(const char *buf, size_t len, melt_plan **out, melt_error *err);

#ifdef __cplusplus
}
#endif
#endif

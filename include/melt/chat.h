/* melt — chat templates: render a conversation into the prompt text a
 * model was trained on. Templates are detected from the GGUF's
 * tokenizer.chat_template (a Jinja text) by its markers, and can be
 * overridden by name. */
#ifndef MELT_CHAT_H
#define MELT_CHAT_H

#include <stdbool.h>
#include <stddef.h>

#include "melt/error.h"

#ifdef __cplusplus
extern "C" {
#endif

enum melt_chat_template {
    MELT_CHAT_UNKNOWN = 0,
    MELT_CHAT_LLAMA2,
    MELT_CHAT_LLAMA3,
    MELT_CHAT_CHATML,   /* qwen and others */
    MELT_CHAT_MISTRAL,
    MELT_CHAT_PHI3,
    MELT_CHAT_GEMMA,
    MELT_CHAT_ZEPHYR,
    MELT_CHAT_COUNT
};

typedef struct melt_chat_msg {
    const char *role;     /* "system", "user" or "assistant" */
    const char *content;
} melt_chat_msg;

/* "llama2", "llama3", "chatml", "mistral", "phi3", "gemma", "zephyr";
 * "unknown" for MELT_CHAT_UNKNOWN or a value out of range. */
const char *melt_chat_template_name(enum melt_chat_template t);
/* Parse a name (case-insensitive; "qwen" is chatml); false when unknown. */
bool melt_chat_template_parse(const char *name, enum melt_chat_template *out);
/* Comma-separated names, for help and errors. */
const char *melt_chat_template_names(void);
/* Which template a Jinja chat template text is, by its markers (tested in
 * llama.cpp's order; jinja need not be NUL-terminated); MELT_CHAT_UNKNOWN
 * when none matches or jinja is NULL. */
enum melt_chat_template melt_chat_template_detect(const char *jinja, size_t len);

/* Render n messages; with add_assistant the text ends where the model's
 * answer begins. *out is malloc'd (caller frees). The leading BOS token is
 * not written: the tokenizer adds it. Some formats write special-token text
 * between turns, so tokenize the result with special tokens parsed:
 * llama2 ends an answer with " </s>" and starts the next turn with "<s>";
 * mistral ends an answer with "</s>", zephyr every message with "</s>\n".
 * llama2 and mistral close a user turn with "[/INST]", after which the
 * answer begins, so add_assistant changes nothing for them. llama2,
 * mistral and gemma have no system role: a system message may only come
 * first (it is folded into the first user turn), and user and assistant
 * must then alternate, starting with user. llama2, llama3 and gemma strip
 * whitespace around contents, as their templates do; the others copy
 * contents verbatim. Roles are exact, lower-case. MELT_EINVAL for an
 * unknown role, NULL content or a conversation the template cannot
 * express. Formats: docs/chat-templates.md. */
int melt_chat_render(enum melt_chat_template t, const melt_chat_msg *msgs,
                     size_t n, bool add_assistant, char **out, melt_error *err);

#ifdef __cplusplus
}
#endif
#endif

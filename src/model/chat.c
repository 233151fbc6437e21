/* Chat templates: a fixed renderer per prompt format (no Jinja engine), and
 * detection of the format from a GGUF's Jinja text by the special-token
 * markers it contains, tested in the order llama.cpp tests them. The exact
 * text of each format is in docs/chat-templates.md.
 */
#include "melt/chat.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *const template_names[MELT_CHAT_COUNT] = {
    [MELT_CHAT_UNKNOWN] = "unknown", [MELT_CHAT_LLAMA2] = "llama2",
    [MELT_CHAT_LLAMA3] = "llama3",   [MELT_CHAT_CHATML] = "chatml",
    [MELT_CHAT_MISTRAL] = "mistral", [MELT_CHAT_PHI3] = "phi3",
    [MELT_CHAT_GEMMA] = "gemma",     [MELT_CHAT_ZEPHYR] = "zephyr",
};

const char *melt_chat_template_name(enum melt_chat_template t)
{
    if ((int)t <= MELT_CHAT_UNKNOWN || (int)t >= MELT_CHAT_COUNT) return "unknown";
    return template_names[t];
}

const char *melt_chat_template_names(void)
{
    return "llama2, llama3, chatml, mistral, phi3, gemma, zephyr";
}

static int ascii_lower(int ch) { return ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch; }

static bool eq_nocase(const char *a, const char *b)
{
    for (; *a && *b; a++, b++)
        if (ascii_lower((unsigned char)*a) != ascii_lower((unsigned char)*b)) return false;
    return *a == *b;
}

bool melt_chat_template_parse(const char *name, enum melt_chat_template *out)
{
    if (!name) return false;
    enum melt_chat_template t = MELT_CHAT_UNKNOWN;
    for (int i = MELT_CHAT_UNKNOWN + 1; i < MELT_CHAT_COUNT; i++)
        if (eq_nocase(name, template_names[i])) t = (enum melt_chat_template)i;
    if (eq_nocase(name, "qwen")) t = MELT_CHAT_CHATML;
    if (t == MELT_CHAT_UNKNOWN) return false;
    if (out) *out = t;
    return true;
}

/* ---- detection ---- */

static bool contains(const char *s, size_t len, const char *needle)
{
    const size_t n = strlen(needle);
    if (n == 0) return true;
    for (size_t i = 0; i + n <= len; i++)
        if (s[i] == needle[0] && memcmp(s + i, needle, n) == 0) return true;
    return false;
}

enum melt_chat_template melt_chat_template_detect(const char *jinja, size_t len)
{
    if (!jinja) return MELT_CHAT_UNKNOWN;
#define HAS(m) contains(jinja, len, (m))
    /* ChatML; phi-4 ("<|im_sep|>") and SmolVLM ("<end_of_utterance>") use
     * its markers for other formats, which melt does not render. */
    if (HAS("<|im_start|>"))
        return HAS("<|im_sep|>") || HAS("<end_of_utterance>") ? MELT_CHAT_UNKNOWN : MELT_CHAT_CHATML;
    /* [INST] formats: a <<SYS>> block means Llama 2's, else Mistral's. */
    if (HAS("[INST]")) return HAS("<<SYS>>") ? MELT_CHAT_LLAMA2 : MELT_CHAT_MISTRAL;
    if (HAS("<|end|>") && (HAS("<|assistant|>") || HAS("<|user|>"))) return MELT_CHAT_PHI3;
    if (HAS("[gMASK]")) return MELT_CHAT_UNKNOWN; /* ChatGLM: <|user|> without an end marker */
    /* Zephyr ends each turn with the EOS token, written literally or as
     * the eos_token variable. */
    if (HAS("<|user|>") && (HAS("</s>") || HAS("eos_token") || HAS("<|endoftext|>")))
        return MELT_CHAT_ZEPHYR;
    if (HAS("<start_of_turn>")) return MELT_CHAT_GEMMA;
    if (HAS("<|start_header_id|>") && HAS("<|end_header_id|>")) return MELT_CHAT_LLAMA3;
#undef HAS
    return MELT_CHAT_UNKNOWN;
}

/* ---- rendering ---- */

typedef struct buf {
    char *p;
    size_t len, cap;
    bool oom;
} buf;

static void put_n(buf *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) {
            if (cap > SIZE_MAX / 2) { b->oom = true; return; }
            cap *= 2;
        }
        char *p = realloc(b->p, cap);
        if (!p) { b->oom = true; return; }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void put(buf *b, const char *s) { put_n(b, s, strlen(s)); }

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Content without leading and trailing ASCII whitespace (Jinja's trim and
 * Python's strip(), for the ASCII range). */
static void put_trimmed(buf *b, const char *s)
{
    size_t n = strlen(s);
    while (n > 0 && is_space(*s)) s++, n--;
    while (n > 0 && is_space(s[n - 1])) n--;
    put_n(b, s, n);
}

enum role { ROLE_SYSTEM, ROLE_USER, ROLE_ASSISTANT };

static int role_of(const char *r)
{
    if (!r) return -1;
    if (strcmp(r, "system") == 0) return ROLE_SYSTEM;
    if (strcmp(r, "user") == 0) return ROLE_USER;
    if (strcmp(r, "assistant") == 0) return ROLE_ASSISTANT;
    return -1;
}

/* Formats whose turns are user/assistant pairs with no system role of their
 * own: a system message may only come first (it is folded into the first
 * user turn), then user and assistant alternate, starting with user. */
static int check_paired(enum melt_chat_template t, const melt_chat_msg *m, size_t n,
                        melt_error *err)
{
    const char *name = melt_chat_template_name(t);
    size_t i = 0;
    if (n > 0 && role_of(m[0].role) == ROLE_SYSTEM) {
        if (n == 1 || role_of(m[1].role) != ROLE_USER)
            return melt_errorf(err, MELT_EINVAL,
                               "chat template %s: the system message must be followed by a user message",
                               name);
        i = 1;
    }
    for (size_t k = 0; i < n; i++, k++) {
        const int want = k % 2 == 0 ? ROLE_USER : ROLE_ASSISTANT;
        const int got = role_of(m[i].role);
        if (got == ROLE_SYSTEM)
            return melt_errorf(err, MELT_EINVAL,
                               "chat template %s: system message %zu must be the first message",
                               name, i);
        if (got != want)
            return melt_errorf(err, MELT_EINVAL,
                               "chat template %s: message %zu is %s but roles must alternate "
                               "user/assistant starting with user",
                               name, i, m[i].role);
    }
    return 0;
}

/* Llama 2 chat (Meta): "[INST] <<SYS>>\nS\n<</SYS>>\n\nU [/INST] A </s><s>[INST] U [/INST]",
 * contents stripped. */
static void render_llama2(buf *b, const melt_chat_msg *m, size_t n)
{
    bool open = false; /* inside an [INST] whose user text is still to come */
    bool first = true;
    for (size_t i = 0; i < n; i++) {
        switch (role_of(m[i].role)) {
        case ROLE_SYSTEM:
            put(b, "[INST] <<SYS>>\n");
            put_trimmed(b, m[i].content);
            put(b, "\n<</SYS>>\n\n");
            open = true;
            break;
        case ROLE_USER:
            if (!open) put(b, first ? "[INST] " : "<s>[INST] ");
            put_trimmed(b, m[i].content);
            put(b, " [/INST]");
            open = false;
            break;
        default:
            put(b, " ");
            put_trimmed(b, m[i].content);
            put(b, " </s>");
            break;
        }
        first = false;
    }
}

/* Mistral 7B Instruct v0.2: "[INST] U [/INST]A</s>[INST] U [/INST]"; a
 * system message opens the first [INST] followed by one newline, as
 * llama.cpp does. Contents verbatim. */
static void render_mistral(buf *b, const melt_chat_msg *m, size_t n)
{
    bool open = false;
    for (size_t i = 0; i < n; i++) {
        switch (role_of(m[i].role)) {
        case ROLE_SYSTEM:
            put(b, "[INST] ");
            put(b, m[i].content);
            put(b, "\n");
            open = true;
            break;
        case ROLE_USER:
            if (!open) put(b, "[INST] ");
            put(b, m[i].content);
            put(b, " [/INST]");
            open = false;
            break;
        default:
            put(b, m[i].content);
            put(b, "</s>");
            break;
        }
    }
}

/* Gemma: "<start_of_turn>user\nU<end_of_turn>\n<start_of_turn>model\nA<end_of_turn>\n";
 * the system text and a blank line open the first user turn; contents
 * trimmed. */
static void render_gemma(buf *b, const melt_chat_msg *m, size_t n, bool add_assistant)
{
    const char *sys = NULL;
    for (size_t i = 0; i < n; i++) {
        switch (role_of(m[i].role)) {
        case ROLE_SYSTEM:
            sys = m[i].content;
            break;
        case ROLE_USER:
            put(b, "<start_of_turn>user\n");
            if (sys) {
                put_trimmed(b, sys);
                put(b, "\n\n");
                sys = NULL;
            }
            put_trimmed(b, m[i].content);
            put(b, "<end_of_turn>\n");
            break;
        default:
            put(b, "<start_of_turn>model\n");
            put_trimmed(b, m[i].content);
            put(b, "<end_of_turn>\n");
            break;
        }
    }
    if (add_assistant) put(b, "<start_of_turn>model\n");
}

/* Formats that write every message as a header naming its role, the
 * content, and an end marker. */
typedef struct role_format {
    const char *head_open;  /* before the role name */
    const char *head_close; /* after the role name */
    const char *end;        /* after the content */
    bool trim;
} role_format;

static void render_roles(buf *b, const role_format *f, const melt_chat_msg *m, size_t n,
                         bool add_assistant)
{
    for (size_t i = 0; i < n; i++) {
        put(b, f->head_open);
        put(b, m[i].role);
        put(b, f->head_close);
        if (f->trim) put_trimmed(b, m[i].content);
        else put(b, m[i].content);
        put(b, f->end);
    }
    if (add_assistant) {
        put(b, f->head_open);
        put(b, "assistant");
        put(b, f->head_close);
    }
}

static const role_format fmt_chatml = {"<|im_start|>", "\n", "<|im_end|>\n", false};
static const role_format fmt_llama3 = {"<|start_header_id|>", "<|end_header_id|>\n\n",
                                       "<|eot_id|>", true};
static const role_format fmt_phi3 = {"<|", "|>\n", "<|end|>\n", false};
static const role_format fmt_zephyr = {"<|", "|>\n", "</s>\n", false};

int melt_chat_render(enum melt_chat_template t, const melt_chat_msg *msgs,
                     size_t n, bool add_assistant, char **out, melt_error *err)
{
    if (!out) return melt_errorf(err, MELT_EINVAL, "chat: NULL output pointer");
    *out = NULL;
    if ((int)t <= MELT_CHAT_UNKNOWN || (int)t >= MELT_CHAT_COUNT)
        return melt_errorf(err, MELT_EINVAL, "chat: unknown template %d (known: %s)", (int)t,
                           melt_chat_template_names());
    if (n > 0 && !msgs)
        return melt_errorf(err, MELT_EINVAL, "chat: NULL message array for %zu messages", n);
    for (size_t i = 0; i < n; i++) {
        if (role_of(msgs[i].role) < 0)
            return melt_errorf(err, MELT_EINVAL,
                               "chat: message %zu has unknown role \"%s\" (expected system, user or assistant)",
                               i, msgs[i].role ? msgs[i].role : "(null)");
        if (!msgs[i].content)
            return melt_errorf(err, MELT_EINVAL, "chat: message %zu (%s) has no content", i,
                               msgs[i].role);
    }
    if (t == MELT_CHAT_LLAMA2 || t == MELT_CHAT_MISTRAL || t == MELT_CHAT_GEMMA) {
        int rc = check_paired(t, msgs, n, err);
        if (rc) return rc;
    }

    buf b = {0};
    put(&b, ""); /* an empty conversation still gives a string */
    switch (t) {
    case MELT_CHAT_LLAMA2: render_llama2(&b, msgs, n); break;
    case MELT_CHAT_MISTRAL: render_mistral(&b, msgs, n); break;
    case MELT_CHAT_GEMMA: render_gemma(&b, msgs, n, add_assistant); break;
    case MELT_CHAT_CHATML: render_roles(&b, &fmt_chatml, msgs, n, add_assistant); break;
    case MELT_CHAT_LLAMA3: render_roles(&b, &fmt_llama3, msgs, n, add_assistant); break;
    case MELT_CHAT_PHI3: render_roles(&b, &fmt_phi3, msgs, n, add_assistant); break;
    case MELT_CHAT_ZEPHYR: render_roles(&b, &fmt_zephyr, msgs, n, add_assistant); break;
    default: break;
    }
    if (b.oom) {
        free(b.p);
        return melt_errorf(err, MELT_ENOMEM, "chat: out of memory rendering %zu messages", n);
    }
    *out = b.p;
    return 0;
}

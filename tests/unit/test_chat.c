/* Chat templates: rendering of each format, the generation prompt,
 * detection from Jinja text, names, and rejected conversations.
 *
 * Expected strings are written from each format's published definition
 * (cited above each one), with the leading BOS left out because the
 * tokenizer adds it.
 */
#include "testutil.h"

#include "melt/chat.h"
#include "melt/gguf.h"

static const melt_chat_msg conv[] = {
    {"system", "You are a helpful assistant."},
    {"user", "Hello"},
    {"assistant", "Hi there"},
    {"user", "Who are you?"},
};
#define CONV_N (sizeof conv / sizeof conv[0])

static char *render(enum melt_chat_template t, const melt_chat_msg *m, size_t n, bool add_assistant)
{
    char *out = NULL;
    melt_error err = {0};
    int rc = melt_chat_render(t, m, n, add_assistant, &out, &err);
    if (rc != 0) fail_msg("render %s: %d %s", melt_chat_template_name(t), rc, err.msg);
    assert_non_null(out);
    return out;
}

static void expect_render(enum melt_chat_template t, const melt_chat_msg *m, size_t n,
                          bool add_assistant, const char *want)
{
    char *got = render(t, m, n, add_assistant);
    if (strcmp(got, want) != 0) {
        print_error("template %s, add_assistant %d\n", melt_chat_template_name(t), add_assistant);
        print_error("expected: \"%s\"\n", want);
        print_error("got:      \"%s\"\n", got);
    }
    assert_string_equal(got, want);
    free(got);
}

/* ---- one test per format ---- */

/* ChatML as Qwen's model cards and tokenizer_config.json define it: each
 * message "<|im_start|>ROLE\nCONTENT<|im_end|>\n"; generation prompt
 * "<|im_start|>assistant\n". */
static void chatml_renders_multi_turn_with_system(void **state)
{
    (void)state;
    const char *body =
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nHello<|im_end|>\n"
        "<|im_start|>assistant\nHi there<|im_end|>\n"
        "<|im_start|>user\nWho are you?<|im_end|>\n";
    expect_render(MELT_CHAT_CHATML, conv, CONV_N, false, body);
    expect_render(MELT_CHAT_CHATML, conv, CONV_N, true,
                  "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
                  "<|im_start|>user\nHello<|im_end|>\n"
                  "<|im_start|>assistant\nHi there<|im_end|>\n"
                  "<|im_start|>user\nWho are you?<|im_end|>\n"
                  "<|im_start|>assistant\n");
}

/* Llama 3 as Meta's model card ("Prompt format") defines it, after
 * <|begin_of_text|>: "<|start_header_id|>ROLE<|end_header_id|>\n\nCONTENT<|eot_id|>",
 * contents trimmed; generation prompt is the assistant header. */
static void llama3_renders_multi_turn_with_system(void **state)
{
    (void)state;
    expect_render(MELT_CHAT_LLAMA3, conv, CONV_N, true,
                  "<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant.<|eot_id|>"
                  "<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>"
                  "<|start_header_id|>assistant<|end_header_id|>\n\nHi there<|eot_id|>"
                  "<|start_header_id|>user<|end_header_id|>\n\nWho are you?<|eot_id|>"
                  "<|start_header_id|>assistant<|end_header_id|>\n\n");
    expect_render(MELT_CHAT_LLAMA3, conv, CONV_N, false,
                  "<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant.<|eot_id|>"
                  "<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>"
                  "<|start_header_id|>assistant<|end_header_id|>\n\nHi there<|eot_id|>"
                  "<|start_header_id|>user<|end_header_id|>\n\nWho are you?<|eot_id|>");
}

/* Llama 2 chat as Meta's reference code and the Hugging Face "How to
 * prompt Llama 2" post define it:
 *   <s>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user_1} [/INST] {answer_1} </s><s>[INST] {user_2} [/INST]
 * The user turn's "[/INST]" is where the answer begins, so the generation
 * prompt adds nothing. */
static void llama2_renders_multi_turn_with_system_block(void **state)
{
    (void)state;
    const char *want = "[INST] <<SYS>>\nYou are a helpful assistant.\n<</SYS>>\n\n"
                       "Hello [/INST] Hi there </s><s>[INST] Who are you? [/INST]";
    expect_render(MELT_CHAT_LLAMA2, conv, CONV_N, true, want);
    expect_render(MELT_CHAT_LLAMA2, conv, CONV_N, false, want);
    /* Without a system message; a conversation ending with an answer. */
    expect_render(MELT_CHAT_LLAMA2, conv + 1, 2, false, "[INST] Hello [/INST] Hi there </s>");
}

/* Mistral 7B Instruct v0.2, by its tokenizer_config.json template:
 * "[INST] " + user + " [/INST]" and answer + eos_token ("</s>"), after the
 * BOS. There is no system role; as llama.cpp does, the system text opens
 * the first [INST] followed by a newline. */
static void mistral_renders_multi_turn_with_folded_system(void **state)
{
    (void)state;
    const char *want = "[INST] You are a helpful assistant.\nHello [/INST]Hi there</s>"
                       "[INST] Who are you? [/INST]";
    expect_render(MELT_CHAT_MISTRAL, conv, CONV_N, true, want);
    expect_render(MELT_CHAT_MISTRAL, conv, CONV_N, false, want);
    expect_render(MELT_CHAT_MISTRAL, conv + 1, 3, true,
                  "[INST] Hello [/INST]Hi there</s>[INST] Who are you? [/INST]");
}

/* Phi-3 as Microsoft's model card defines it: "<|ROLE|>\nCONTENT<|end|>\n",
 * generation prompt "<|assistant|>\n"; the system message is written as a
 * <|system|> turn, as Phi-3.5's template and llama.cpp do. */
static void phi3_renders_multi_turn_with_system(void **state)
{
    (void)state;
    expect_render(MELT_CHAT_PHI3, conv, CONV_N, true,
                  "<|system|>\nYou are a helpful assistant.<|end|>\n"
                  "<|user|>\nHello<|end|>\n"
                  "<|assistant|>\nHi there<|end|>\n"
                  "<|user|>\nWho are you?<|end|>\n"
                  "<|assistant|>\n");
    expect_render(MELT_CHAT_PHI3, conv, CONV_N, false,
                  "<|system|>\nYou are a helpful assistant.<|end|>\n"
                  "<|user|>\nHello<|end|>\n"
                  "<|assistant|>\nHi there<|end|>\n"
                  "<|user|>\nWho are you?<|end|>\n");
}

/* Gemma as Google's model card ("Chat Template") defines it, after <bos>:
 * "<start_of_turn>user\nCONTENT<end_of_turn>\n<start_of_turn>model\n...".
 * Gemma has no system role; the system text and a blank line open the
 * first user turn (Gemma 3's template and llama.cpp do this). */
static void gemma_folds_system_into_first_user_turn(void **state)
{
    (void)state;
    expect_render(MELT_CHAT_GEMMA, conv, CONV_N, true,
                  "<start_of_turn>user\nYou are a helpful assistant.\n\nHello<end_of_turn>\n"
                  "<start_of_turn>model\nHi there<end_of_turn>\n"
                  "<start_of_turn>user\nWho are you?<end_of_turn>\n"
                  "<start_of_turn>model\n");
    expect_render(MELT_CHAT_GEMMA, conv, CONV_N, false,
                  "<start_of_turn>user\nYou are a helpful assistant.\n\nHello<end_of_turn>\n"
                  "<start_of_turn>model\nHi there<end_of_turn>\n"
                  "<start_of_turn>user\nWho are you?<end_of_turn>\n");
}

/* Zephyr as the zephyr-7b-beta model card shows it: "<|ROLE|>\nCONTENT</s>\n",
 * generation prompt "<|assistant|>\n". */
static void zephyr_renders_multi_turn_with_system(void **state)
{
    (void)state;
    expect_render(MELT_CHAT_ZEPHYR, conv, CONV_N, true,
                  "<|system|>\nYou are a helpful assistant.</s>\n"
                  "<|user|>\nHello</s>\n"
                  "<|assistant|>\nHi there</s>\n"
                  "<|user|>\nWho are you?</s>\n"
                  "<|assistant|>\n");
    expect_render(MELT_CHAT_ZEPHYR, conv, CONV_N, false,
                  "<|system|>\nYou are a helpful assistant.</s>\n"
                  "<|user|>\nHello</s>\n"
                  "<|assistant|>\nHi there</s>\n"
                  "<|user|>\nWho are you?</s>\n");
}

/* ---- behaviour across formats ---- */

static void generation_prompt_is_appended_only_with_add_assistant(void **state)
{
    (void)state;
    /* The text with add_assistant is the text without it plus the prompt. */
    const struct { enum melt_chat_template t; const char *prompt; } want[] = {
        {MELT_CHAT_CHATML, "<|im_start|>assistant\n"},
        {MELT_CHAT_LLAMA3, "<|start_header_id|>assistant<|end_header_id|>\n\n"},
        {MELT_CHAT_PHI3, "<|assistant|>\n"},
        {MELT_CHAT_GEMMA, "<start_of_turn>model\n"},
        {MELT_CHAT_ZEPHYR, "<|assistant|>\n"},
        {MELT_CHAT_LLAMA2, ""},
        {MELT_CHAT_MISTRAL, ""},
    };
    const melt_chat_msg one[] = {{"user", "Hi"}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        char *off = render(want[i].t, one, 1, false);
        char *on = render(want[i].t, one, 1, true);
        size_t lo = strlen(off);
        if (strncmp(on, off, lo) != 0 || strcmp(on + lo, want[i].prompt) != 0)
            fail_msg("%s: without \"%s\", with \"%s\"", melt_chat_template_name(want[i].t), off, on);
        free(off);
        free(on);
    }
}

/* A chat front-end renders the whole conversation each turn; the prompt of
 * one turn must be the start of the next one's, so the KV cache holds. */
static void each_turn_extends_the_previous_prompt(void **state)
{
    (void)state;
    for (int t = MELT_CHAT_UNKNOWN + 1; t < MELT_CHAT_COUNT; t++) {
        for (size_t skip = 0; skip < 2; skip++) { /* with and without the system message */
            char *first = render((enum melt_chat_template)t, conv + skip, 2 - skip, true);
            char *next = render((enum melt_chat_template)t, conv + skip, CONV_N - skip, true);
            if (strncmp(first, next, strlen(first)) != 0)
                fail_msg("%s: \"%s\" does not start with \"%s\"",
                         melt_chat_template_name((enum melt_chat_template)t), next, first);
            free(first);
            free(next);
        }
    }
}

static void empty_conversation_renders_only_the_generation_prompt(void **state)
{
    (void)state;
    expect_render(MELT_CHAT_CHATML, NULL, 0, true, "<|im_start|>assistant\n");
    expect_render(MELT_CHAT_CHATML, NULL, 0, false, "");
    expect_render(MELT_CHAT_LLAMA2, NULL, 0, true, "");
}

/* llama2, llama3 and gemma templates strip contents; the others keep them. */
static void contents_are_trimmed_only_where_the_template_trims(void **state)
{
    (void)state;
    const melt_chat_msg m[] = {{"system", " S \n"}, {"user", "\n U "}, {"assistant", "  A\t"}};
    expect_render(MELT_CHAT_LLAMA3, m, 3, false,
                  "<|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|>"
                  "<|start_header_id|>user<|end_header_id|>\n\nU<|eot_id|>"
                  "<|start_header_id|>assistant<|end_header_id|>\n\nA<|eot_id|>");
    expect_render(MELT_CHAT_LLAMA2, m, 3, false, "[INST] <<SYS>>\nS\n<</SYS>>\n\nU [/INST] A </s>");
    expect_render(MELT_CHAT_GEMMA, m, 3, false,
                  "<start_of_turn>user\nS\n\nU<end_of_turn>\n<start_of_turn>model\nA<end_of_turn>\n");
    expect_render(MELT_CHAT_CHATML, m, 3, false,
                  "<|im_start|>system\n S \n<|im_end|>\n<|im_start|>user\n\n U <|im_end|>\n"
                  "<|im_start|>assistant\n  A\t<|im_end|>\n");
    expect_render(MELT_CHAT_MISTRAL, m, 3, false, "[INST]  S \n\n\n U  [/INST]  A\t</s>");
}

static void unknown_role_is_rejected(void **state)
{
    (void)state;
    const melt_chat_msg m[] = {{"user", "Hi"}, {"tool", "42"}};
    const melt_chat_msg upper[] = {{"User", "Hi"}};
    const melt_chat_msg null_role[] = {{NULL, "Hi"}};
    const melt_chat_msg null_content[] = {{"user", NULL}};
    for (int t = MELT_CHAT_UNKNOWN + 1; t < MELT_CHAT_COUNT; t++) {
        char *out = (char *)"sentinel";
        melt_error err = {0};
        assert_int_equal(melt_chat_render((enum melt_chat_template)t, m, 2, true, &out, &err),
                         MELT_EINVAL);
        assert_null(out);
        if (!strstr(err.msg, "tool")) fail_msg("message \"%s\" does not name the role", err.msg);
        assert_int_equal(melt_chat_render((enum melt_chat_template)t, upper, 1, true, &out, &err),
                         MELT_EINVAL);
        assert_int_equal(melt_chat_render((enum melt_chat_template)t, null_role, 1, true, &out, &err),
                         MELT_EINVAL);
        assert_int_equal(melt_chat_render((enum melt_chat_template)t, null_content, 1, true, &out, &err),
                         MELT_EINVAL);
    }
    char *out = NULL;
    assert_int_equal(melt_chat_render(MELT_CHAT_UNKNOWN, conv, CONV_N, true, &out, NULL), MELT_EINVAL);
    assert_int_equal(melt_chat_render(MELT_CHAT_COUNT, conv, CONV_N, true, &out, NULL), MELT_EINVAL);
    assert_int_equal(melt_chat_render(MELT_CHAT_CHATML, NULL, 2, true, &out, NULL), MELT_EINVAL);
    assert_int_equal(melt_chat_render(MELT_CHAT_CHATML, conv, CONV_N, true, NULL, NULL), MELT_EINVAL);
}

/* Formats without a system role take it only first, and need
 * user/assistant alternation (their templates raise an error otherwise). */
static void paired_formats_reject_what_they_cannot_express(void **state)
{
    (void)state;
    const melt_chat_msg late_system[] = {{"user", "a"}, {"assistant", "b"}, {"system", "c"}, {"user", "d"}};
    const melt_chat_msg two_users[] = {{"user", "a"}, {"user", "b"}};
    const melt_chat_msg answer_first[] = {{"assistant", "a"}, {"user", "b"}};
    const melt_chat_msg system_only[] = {{"system", "a"}};
    const melt_chat_msg system_then_answer[] = {{"system", "a"}, {"assistant", "b"}};
    const struct { const melt_chat_msg *m; size_t n; } bad[] = {
        {late_system, 4}, {two_users, 2}, {answer_first, 2}, {system_only, 1}, {system_then_answer, 2},
    };
    const enum melt_chat_template paired[] = {MELT_CHAT_LLAMA2, MELT_CHAT_MISTRAL, MELT_CHAT_GEMMA};
    for (size_t t = 0; t < 3; t++) {
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            char *out = NULL;
            melt_error err = {0};
            int rc = melt_chat_render(paired[t], bad[i].m, bad[i].n, true, &out, &err);
            if (rc != MELT_EINVAL)
                fail_msg("%s case %zu: expected MELT_EINVAL, got %d", melt_chat_template_name(paired[t]), i, rc);
            assert_null(out);
            assert_non_null(strstr(err.msg, melt_chat_template_name(paired[t])));
        }
    }
    /* Formats with roles in the text express any order. */
    char *out = render(MELT_CHAT_CHATML, two_users, 2, false);
    assert_string_equal(out, "<|im_start|>user\na<|im_end|>\n<|im_start|>user\nb<|im_end|>\n");
    free(out);
}

/* ---- names ---- */

static void names_parse_case_insensitively_and_qwen_is_chatml(void **state)
{
    (void)state;
    for (int t = MELT_CHAT_UNKNOWN + 1; t < MELT_CHAT_COUNT; t++) {
        const char *name = melt_chat_template_name((enum melt_chat_template)t);
        enum melt_chat_template got = MELT_CHAT_UNKNOWN;
        assert_true(melt_chat_template_parse(name, &got));
        assert_int_equal(got, t);
        assert_non_null(strstr(melt_chat_template_names(), name));
    }
    enum melt_chat_template got = MELT_CHAT_UNKNOWN;
    assert_true(melt_chat_template_parse("qwen", &got));
    assert_int_equal(got, MELT_CHAT_CHATML);
    assert_true(melt_chat_template_parse("QWEN", &got));
    assert_int_equal(got, MELT_CHAT_CHATML);
    assert_true(melt_chat_template_parse("Llama3", &got));
    assert_int_equal(got, MELT_CHAT_LLAMA3);
    assert_true(melt_chat_template_parse("GEMMA", &got));
    assert_int_equal(got, MELT_CHAT_GEMMA);

    got = MELT_CHAT_PHI3;
    const char *bad[] = {"", "llama", "llama33", "chat ml", "unknown", "vicuna", "phi3 "};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (melt_chat_template_parse(bad[i], &got)) fail_msg("\"%s\" parsed", bad[i]);
        assert_int_equal(got, MELT_CHAT_PHI3); /* untouched */
    }
    assert_false(melt_chat_template_parse(NULL, &got));
    assert_string_equal(melt_chat_template_name(MELT_CHAT_UNKNOWN), "unknown");
    assert_string_equal(melt_chat_template_name((enum melt_chat_template)99), "unknown");
    assert_string_equal(melt_chat_template_names(),
                        "llama2, llama3, chatml, mistral, phi3, gemma, zephyr");
}

/* ---- detection ---- */

static enum melt_chat_template detect(const char *s) { return melt_chat_template_detect(s, strlen(s)); }

/* The chat template stored in llama.cpp's phi-3 vocab file. */
static void detects_phi3_from_the_fixture_gguf(void **state)
{
    (void)state;
    melt_gguf *g = NULL;
    melt_error err = {0};
    int rc = melt_gguf_open(fixture_path("vocab/ggml-vocab-phi-3.gguf"), &g, &err);
    if (rc != 0) fail_msg("open: %s", err.msg);
    melt_str tmpl = {0};
    assert_true(melt_gguf_get_str(g, "tokenizer.chat_template", &tmpl));
    assert_true(tmpl.len > 0);
    assert_int_equal(melt_chat_template_detect(tmpl.ptr, (size_t)tmpl.len), MELT_CHAT_PHI3);
    melt_gguf_close(g);
}

/* Short excerpts in the style of each family's tokenizer_config.json. */
static void detects_each_format_from_jinja_markers(void **state)
{
    (void)state;
    const struct { const char *jinja; enum melt_chat_template want; } cases[] = {
        {"{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] "
         "+ '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
         "{% endif %}",
         MELT_CHAT_CHATML},
        {"{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
         "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim "
         "+ '<|eot_id|>' %}{{ content }}{% endfor %}",
         MELT_CHAT_LLAMA3},
        {"{% if messages[0]['role'] == 'system' %}{% set system_message = '<<SYS>>\\n' + "
         "messages[0]['content'] | trim + '\\n<</SYS>>\\n\\n' %}{% endif %}{% for message in messages %}"
         "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
         "{% endif %}{% endfor %}",
         MELT_CHAT_LLAMA2},
        {"{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ '[INST] ' + "
         "message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
         "{{ message['content'] + eos_token}}{% endif %}{% endfor %}",
         MELT_CHAT_MISTRAL},
        {"{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\\n' + "
         "message['content'] + '<|end|>\\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\\n' + "
         "message['content'] + '<|end|>\\n'}}{% endif %}{% endfor %}{{ '<|assistant|>\\n' }}",
         MELT_CHAT_PHI3},
        {"{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'assistant') %}"
         "{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}"
         "{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}"
         "{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\\n'}}{% endif %}",
         MELT_CHAT_GEMMA},
        {"{% for message in messages %}\\n{% if message['role'] == 'user' %}\\n{{ '<|user|>\\n' + "
         "message['content'] + eos_token }}\\n{% elif message['role'] == 'assistant' %}\\n"
         "{{ '<|assistant|>\\n'  + message['content'] + eos_token }}\\n{% endif %}\\n{% endfor %}",
         MELT_CHAT_ZEPHYR},
        {"{{ '<|user|>\\n' + message['content'] + '</s>' }}", MELT_CHAT_ZEPHYR},
        {"", MELT_CHAT_UNKNOWN},
        {"{% for message in messages %}{{ message['content'] }}{% endfor %}", MELT_CHAT_UNKNOWN},
        {"{{ 'USER: ' + message['content'] + ' ASSISTANT: ' }}", MELT_CHAT_UNKNOWN},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        enum melt_chat_template got = detect(cases[i].jinja);
        if (got != cases[i].want)
            fail_msg("case %zu: expected %s got %s", i, melt_chat_template_name(cases[i].want),
                     melt_chat_template_name(got));
    }
    assert_int_equal(melt_chat_template_detect(NULL, 10), MELT_CHAT_UNKNOWN);
}

/* Markers are tested in llama.cpp's order, which settles templates that
 * contain several; formats melt does not render are not mistaken for one
 * it does. The length bounds the search. */
static void detection_follows_llama_cpp_marker_order(void **state)
{
    (void)state;
    /* ChatML is tested first: a template mentioning [INST] and <<SYS>> too. */
    assert_int_equal(detect("<|im_start|>system [INST] <<SYS>> <start_of_turn>"), MELT_CHAT_CHATML);
    /* [INST] before the <|user|> families and before Llama 3's headers. */
    assert_int_equal(detect("[INST] <|user|> <|end|> <|start_header_id|><|end_header_id|>"),
                     MELT_CHAT_MISTRAL);
    /* Phi-3's <|end|> before Zephyr's </s>. */
    assert_int_equal(detect("<|user|>\n{{ content }}<|end|>\n</s>"), MELT_CHAT_PHI3);
    /* Zephyr before Gemma. */
    assert_int_equal(detect("<|user|> eos_token <start_of_turn>"), MELT_CHAT_ZEPHYR);
    /* Gemma before Llama 3. */
    assert_int_equal(detect("<start_of_turn> <|start_header_id|><|end_header_id|>"), MELT_CHAT_GEMMA);
    /* Llama 3 needs both header markers. */
    assert_int_equal(detect("<|start_header_id|>"), MELT_CHAT_UNKNOWN);
    /* phi-4 and SmolVLM reuse <|im_start|> for other formats; ChatGLM has
     * <|user|> without an end marker. */
    assert_int_equal(detect("<|im_start|>user<|im_sep|>"), MELT_CHAT_UNKNOWN);
    assert_int_equal(detect("<|im_start|>User:<end_of_utterance>"), MELT_CHAT_UNKNOWN);
    assert_int_equal(detect("[gMASK]<sop><|user|>\n<|assistant|> eos_token"), MELT_CHAT_UNKNOWN);
    /* Only len bytes are searched; the text need not end with NUL. */
    const char text[] = "xxxx<|im_start|>";
    assert_int_equal(melt_chat_template_detect(text, 10), MELT_CHAT_UNKNOWN);
    assert_int_equal(melt_chat_template_detect(text, sizeof text - 1), MELT_CHAT_CHATML);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(chatml_renders_multi_turn_with_system),
        cmocka_unit_test(llama3_renders_multi_turn_with_system),
        cmocka_unit_test(llama2_renders_multi_turn_with_system_block),
        cmocka_unit_test(mistral_renders_multi_turn_with_folded_system),
        cmocka_unit_test(phi3_renders_multi_turn_with_system),
        cmocka_unit_test(gemma_folds_system_into_first_user_turn),
        cmocka_unit_test(zephyr_renders_multi_turn_with_system),
        cmocka_unit_test(generation_prompt_is_appended_only_with_add_assistant),
        cmocka_unit_test(each_turn_extends_the_previous_prompt),
        cmocka_unit_test(empty_conversation_renders_only_the_generation_prompt),
        cmocka_unit_test(contents_are_trimmed_only_where_the_template_trims),
        cmocka_unit_test(unknown_role_is_rejected),
        cmocka_unit_test(paired_formats_reject_what_they_cannot_express),
        cmocka_unit_test(names_parse_case_insensitively_and_qwen_is_chatml),
        cmocka_unit_test(detects_phi3_from_the_fixture_gguf),
        cmocka_unit_test(detects_each_format_from_jinja_markers),
        cmocka_unit_test(detection_follows_llama_cpp_marker_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

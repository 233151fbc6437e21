/* Tokenizers: llama.cpp's vocab test vectors, stories260K prompts, and the
 * pieces (byte fallback, special tokens, pre-tokenizer families). */
#include "testutil.h"

#include <jansson.h>

#include "melt/gguf.h"
#include "melt/tokenizer.h"
#include "model/tokenizer/pretokenize.h"
#include "model/tokenizer/tok_internal.h"
#include "model/tokenizer/unicode.h"

/* ---- helpers ---- */

static melt_tokenizer *load_vocab(const char *rel)
{
    melt_error err = {0};
    melt_gguf *g = NULL;
    if (melt_gguf_open(fixture_path(rel), &g, &err) < 0)
        fail_msg("open %s: %s", rel, err.msg);
    melt_tokenizer *t = NULL;
    if (melt_tokenizer_load(g, &t, &err) < 0)
        fail_msg("load tokenizer %s: %s", rel, err.msg);
    melt_gguf_close(g);
    return t;
}

/* ids of text as a string " 1 2 3" (the .out format) */
static char *ids_string(const melt_token *ids, size_t n)
{
    size_t cap = n * 12 + 1;
    char *s = malloc(cap);
    assert_non_null(s);
    size_t o = 0;
    s[0] = '\0';
    for (size_t i = 0; i < n; i++)
        o += (size_t)snprintf(s + o, cap - o, " %d", ids[i]);
    return s;
}

static char *tokenize_str(const melt_tokenizer *t, const char *text, size_t len, unsigned flags)
{
    melt_token *ids = NULL;
    size_t n = 0;
    melt_error err = {0};
    assert_int_equal(melt_tokenize(t, text, len, flags, &ids, &n, &err), 0);
    char *s = ids_string(ids, n);
    free(ids);
    return s;
}

static char *detok(const melt_tokenizer *t, const melt_token *ids, size_t n, unsigned flags,
                   size_t *len)
{
    char *text = NULL;
    melt_error err = {0};
    if (melt_detokenize(t, ids, n, flags, &text, len, &err) < 0)
        fail_msg("detokenize: %s", err.msg);
    return text;
}

static void expect_ids(const melt_tokenizer *t, const char *text, unsigned flags, const char *want)
{
    char *got = tokenize_str(t, text, strlen(text), flags);
    if (strcmp(got, want) != 0)
        fail_msg("tokenize '%s': expected '%s', got '%s'", text, want, got);
    free(got);
}

/* Every input of NAME.gguf.inp tokenizes to its line of NAME.gguf.out and
 * decodes back to itself. */
static void check_vectors(const char *name)
{
    char path[256];
    snprintf(path, sizeof path, "vocab/%s.gguf", name);
    melt_tokenizer *t = load_vocab(path);
    size_t inp_len, out_len;
    snprintf(path, sizeof path, "vocab/%s.gguf.inp", name);
    char *inp = slurp(fixture_path(path), &inp_len);
    snprintf(path, sizeof path, "vocab/%s.gguf.out", name);
    char *outs = slurp(fixture_path(path), &out_len);
    const char *sep = "\n__ggml_vocab_test__\n";
    size_t seplen = strlen(sep);
    const char *p = inp, *end = inp + inp_len;
    const char *o = outs, *oend = outs + out_len;
    int n_cases = 0, n_bad = 0;
    while (p < end) {
        const char *q = memmem(p, (size_t)(end - p), sep, seplen);
        if (!q)
            break;
        const char *nl = memchr(o, '\n', (size_t)(oend - o));
        assert_non_null(nl);
        char *want = strndup(o, (size_t)(nl - o));
        char *got = tokenize_str(t, p, (size_t)(q - p), 0);
        if (strcmp(got, want) != 0) {
            n_bad++;
            print_message("%s case %d '%.*s':\n  expected '%s'\n  got      '%s'\n", name, n_cases,
                          (int)(q - p), p, want, got);
        }
        /* decode back */
        melt_token *ids = NULL;
        size_t n = 0;
        melt_error err = {0};
        assert_int_equal(melt_tokenize(t, p, (size_t)(q - p), 0, &ids, &n, &err), 0);
        size_t dl;
        char *back = detok(t, ids, n, 0, &dl);
        if (dl != (size_t)(q - p) || memcmp(back, p, dl) != 0) {
            n_bad++;
            print_message("%s case %d: decode gave '%s' for '%.*s'\n", name, n_cases, back,
                          (int)(q - p), p);
        }
        free(back);
        free(ids);
        free(got);
        free(want);
        n_cases++;
        p = q + seplen;
        o = nl + 1;
    }
    assert_true(n_cases >= 40);
    if (n_bad)
        fail_msg("%s: %d of %d vectors wrong", name, n_bad, n_cases);
    free(inp);
    free(outs);
    melt_tokenizer_free(t);
}

/* ---- the vectors ---- */

static void spm_llama_matches_llamacpp_vectors(void **state)
{
    (void)state;
    check_vectors("ggml-vocab-llama-spm");
}

static void spm_phi3_matches_llamacpp_vectors(void **state)
{
    (void)state;
    check_vectors("ggml-vocab-phi-3");
}

static void bpe_llama3_matches_llamacpp_vectors(void **state)
{
    (void)state;
    check_vectors("ggml-vocab-llama-bpe");
}

static void stories260k_prompts_match_llamacpp(void **state)
{
    (void)state;
    melt_tokenizer *t = load_vocab("stories260K/stories260K.gguf");
    FILE *f = fopen(fixture_path("stories260K/greedy.jsonl"), "r");
    assert_non_null(f);
    char line[1 << 16];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        json_error_t je;
        json_t *o = json_loads(line, 0, &je);
        assert_non_null(o);
        const char *prompt = json_string_value(json_object_get(o, "prompt"));
        json_t *want = json_object_get(o, "prompt_tokens");
        assert_non_null(prompt);
        assert_true(json_is_array(want));
        melt_token *ids = NULL;
        size_t nid = 0;
        melt_error err = {0};
        assert_int_equal(melt_tokenize(t, prompt, strlen(prompt), MELT_TOKENIZE_ADD_SPECIAL, &ids,
                                       &nid, &err), 0);
        size_t nw = json_array_size(want);
        int same = nw == nid;
        for (size_t i = 0; same && i < nw; i++)
            same = json_integer_value(json_array_get(want, i)) == ids[i];
        if (!same) {
            char *got = ids_string(ids, nid);
            char *w = json_dumps(want, JSON_COMPACT);
            fail_msg("prompt '%s': expected %s, got%s", prompt, w, got);
        }
        /* and back: the text after the BOS; with REMOVE_SPECIAL llama.cpp
         * keeps the leading space of the first word */
        size_t dl;
        char *back = detok(t, ids + 1, nid - 1, 0, &dl);
        assert_string_equal(back, prompt);
        free(back);
        back = detok(t, ids, nid, MELT_DETOKENIZE_REMOVE_SPECIAL, &dl);
        assert_true(back[0] == ' ');
        assert_string_equal(back + 1, prompt);
        free(back);
        free(ids);
        json_decref(o);
        n++;
    }
    fclose(f);
    assert_true(n > 0);
    melt_tokenizer_free(t);
}

/* ---- pieces ---- */

static void spm_byte_fallback_for_unknown_chars(void **state)
{
    (void)state;
    melt_tokenizer *t = load_vocab("stories260K/stories260K.gguf");
    /* U+1F999 is not in a 512-token vocab: its four UTF-8 bytes come out as
     * <0xF0> <0x9F> <0xA6> <0x99> (byte n is token n + 3) */
    melt_token *ids = NULL;
    size_t n = 0;
    melt_error err = {0};
    const char *s = "\xF0\x9F\xA6\x99";
    assert_int_equal(melt_tokenize(t, s, 4, 0, &ids, &n, &err), 0);
    assert_true(n >= 4);
    assert_int_equal(ids[n - 4], 0xF0 + 3);
    assert_int_equal(ids[n - 3], 0x9F + 3);
    assert_int_equal(ids[n - 2], 0xA6 + 3);
    assert_int_equal(ids[n - 1], 0x99 + 3);
    size_t len;
    const char *p = melt_token_piece(t, 0xF0 + 3, &len);
    assert_int_equal(len, 1);
    assert_int_equal((unsigned char)p[0], 0xF0);
    size_t dl;
    char *back = detok(t, ids, n, 0, &dl);
    assert_int_equal(dl, 4);
    assert_memory_equal(back, s, 4);
    free(back);
    free(ids);
    /* invalid UTF-8 survives a round trip too */
    const char bad[] = "a\xFF\xC3(b\x80";
    assert_int_equal(melt_tokenize(t, bad, sizeof bad - 1, 0, &ids, &n, &err), 0);
    back = detok(t, ids, n, 0, &dl);
    assert_int_equal(dl, sizeof bad - 1);
    assert_memory_equal(back, bad, dl);
    free(back);
    free(ids);
    melt_tokenizer_free(t);
}

static void spm_adds_bos_and_leading_space(void **state)
{
    (void)state;
    melt_tokenizer *t = load_vocab("vocab/ggml-vocab-llama-spm.gguf");
    assert_true(melt_tokenizer_adds_bos(t));
    assert_int_equal(melt_tokenizer_bos(t), 1);
    assert_int_equal(melt_tokenizer_eos(t), 2);
    assert_int_equal(melt_tokenizer_kind(t), MELT_VOCAB_SPM);
    expect_ids(t, "Hello world", MELT_TOKENIZE_ADD_SPECIAL, " 1 15043 3186");
    expect_ids(t, "Hello world", 0, " 15043 3186");
    expect_ids(t, "", MELT_TOKENIZE_ADD_SPECIAL, " 1");
    expect_ids(t, "", 0, "");
    assert_true(melt_token_is_eog(t, 2));
    assert_false(melt_token_is_eog(t, 15043));
    melt_tokenizer_free(t);
}

static void special_tokens_parse_only_when_asked(void **state)
{
    (void)state;
    melt_tokenizer *t = load_vocab("vocab/ggml-vocab-llama-bpe.gguf");
    const char *s = "<|start_header_id|>user<|end_header_id|>";
    /* parsed: three tokens; the control tokens keep their ids */
    char *got = tokenize_str(t, s, strlen(s), MELT_TOKENIZE_PARSE_SPECIAL);
    assert_string_equal(got, " 128006 882 128007");
    free(got);
    /* not parsed: plain text, many tokens, none of them special */
    melt_token *ids = NULL;
    size_t n = 0;
    melt_error err = {0};
    assert_int_equal(melt_tokenize(t, s, strlen(s), 0, &ids, &n, &err), 0);
    assert_true(n > 3);
    for (size_t i = 0; i < n; i++)
        assert_true(ids[i] < 128000);
    size_t dl;
    char *back = detok(t, ids, n, 0, &dl);
    assert_string_equal(back, s);
    free(back);
    free(ids);
    /* BOS per the vocab (llama3 adds it), special rendered on request */
    expect_ids(t, "Hi", MELT_TOKENIZE_ADD_SPECIAL, " 128000 13347");
    melt_token two[] = {128000, 13347};
    back = detok(t, two, 2, 0, &dl);
    assert_string_equal(back, "Hi");
    free(back);
    back = detok(t, two, 2, MELT_DETOKENIZE_UNPARSE_SPECIAL, &dl);
    assert_string_equal(back, "<|begin_of_text|>Hi");
    free(back);
    assert_true(melt_token_is_eog(t, 128009)); /* <|eot_id|> */
    assert_int_equal(melt_tokenizer_eot(t), 128009);
    melt_tokenizer_free(t);
}

/* phi-3: special tokens eat the whitespace after them; "</s>" is
 * user-defined in the file but llama.cpp treats it as control. */
static void phi3_special_tokens_strip_following_space(void **state)
{
    (void)state;
    melt_tokenizer *t = load_vocab("vocab/ggml-vocab-phi-3.gguf");
    expect_ids(t, "<|user|>\nHello<|end|>", MELT_TOKENIZE_PARSE_SPECIAL, " 32010 15043 32007");
    assert_int_equal(melt_tokenizer_eot(t), 32007);
    assert_true(melt_token_is_eog(t, 32007));
    assert_int_equal(melt_token_type_of(t, 2), MELT_TOKEN_TYPE_USER_DEFINED);
    melt_token *ids = NULL;
    size_t n = 0;
    melt_error err = {0};
    assert_int_equal(melt_tokenize(t, "a</s>", 5, 0, &ids, &n, &err), 0);
    for (size_t i = 0; i < n; i++)
        assert_int_not_equal(ids[i], 2);    /* not parsed without PARSE_SPECIAL */
    free(ids);
    expect_ids(t, "a</s>", MELT_TOKENIZE_PARSE_SPECIAL, " 263 2");
    melt_tokenizer_free(t);
}

static void spm_special_token_gets_no_leading_space_after_it(void **state)
{
    (void)state;
    melt_tokenizer *t = load_vocab("vocab/ggml-vocab-llama-spm.gguf");
    /* "<s>" parsed: id 1, then "Hello" gets the space prefix again */
    expect_ids(t, "<s>Hello", MELT_TOKENIZE_PARSE_SPECIAL, " 1 15043");
    melt_tokenizer_free(t);
}

static void detokenize_rejects_ids_outside_vocab(void **state)
{
    (void)state;
    melt_tokenizer *t = load_vocab("stories260K/stories260K.gguf");
    melt_token bad[] = {5, 512};
    char *text = NULL;
    size_t len;
    melt_error err = {0};
    assert_int_equal(melt_detokenize(t, bad, 2, 0, &text, &len, &err), MELT_EINVAL);
    assert_null(text);
    assert_non_null(strstr(err.msg, "512"));
    assert_null(melt_token_piece(t, -1, &len));
    assert_int_equal(melt_tokenizer_n_vocab(t), 512);
    melt_tokenizer_free(t);
}

static void clean_spaces_tidies_punctuation_for_bpe(void **state)
{
    (void)state;
    melt_tokenizer *t = load_vocab("vocab/ggml-vocab-llama-bpe.gguf");
    const char *s = "Hello , world !";
    melt_token *ids = NULL;
    size_t n = 0;
    melt_error err = {0};
    assert_int_equal(melt_tokenize(t, s, strlen(s), 0, &ids, &n, &err), 0);
    size_t dl;
    char *back = detok(t, ids, n, MELT_DETOKENIZE_CLEAN_SPACES, &dl);
    assert_string_equal(back, "Hello, world!");
    free(back);
    back = detok(t, ids, n, 0, &dl);
    assert_string_equal(back, s);
    free(back);
    free(ids);
    melt_tokenizer_free(t);
}

/* A GGUF without tokenizer metadata, and one with an unknown pre value. */
static void load_rejects_missing_or_unknown_metadata(void **state)
{
    (void)state;
    melt_error err = {0};
    melt_gguf_writer *w = melt_gguf_writer_new();
    assert_non_null(w);
    assert_int_equal(melt_gguf_writer_set_str(w, "general.architecture", "llama", &err), 0);
    const char *p1 = scratch_path("notok.gguf");
    assert_int_equal(melt_gguf_writer_write(w, p1, NULL, NULL, &err), 0);
    melt_gguf *g = NULL;
    assert_int_equal(melt_gguf_open(p1, &g, &err), 0);
    melt_tokenizer *t = (melt_tokenizer *)1;
    assert_int_equal(melt_tokenizer_load(g, &t, &err), MELT_ENOTFOUND);
    assert_null(t);
    assert_non_null(strstr(err.msg, "tokenizer"));
    melt_gguf_close(g);
    unlink(p1);

    /* tiny BPE vocab with a pre-tokenizer nobody knows */
    melt_str toks[] = {{"a", 1}, {"b", 1}, {"ab", 2}};
    melt_str merges[] = {{"a b", 3}};
    assert_int_equal(melt_gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2", &err), 0);
    assert_int_equal(melt_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", 3, toks, &err), 0);
    assert_int_equal(melt_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", 1, merges, &err), 0);
    assert_int_equal(melt_gguf_writer_set_str(w, "tokenizer.ggml.pre", "no-such-pre", &err), 0);
    const char *p2 = scratch_path("badpre.gguf");
    assert_int_equal(melt_gguf_writer_write(w, p2, NULL, NULL, &err), 0);
    assert_int_equal(melt_gguf_open(p2, &g, &err), 0);
    assert_int_equal(melt_tokenizer_load(g, &t, &err), MELT_EUNSUPPORTED);
    assert_non_null(strstr(err.msg, "no-such-pre"));
    melt_gguf_close(g);

    /* the same vocab with pre "gpt-2" loads and merges "ab" */
    assert_int_equal(melt_gguf_writer_set_str(w, "tokenizer.ggml.pre", "gpt-2", &err), 0);
    assert_int_equal(melt_gguf_writer_write(w, p2, NULL, NULL, &err), 0);
    assert_int_equal(melt_gguf_open(p2, &g, &err), 0);
    assert_int_equal(melt_tokenizer_load(g, &t, &err), 0);
    melt_gguf_close(g);
    expect_ids(t, "abba", 0, " 2 1 0");
    melt_tokenizer_free(t);
    unlink(p2);
    melt_gguf_writer_free(w);
}

/* A BPE token whose chars are outside GPT-2's byte map decodes to visible
 * markers (as llama.cpp), and long ones do not overrun the piece buffers. */
static void bpe_unmappable_token_text_decodes_to_markers(void **state)
{
    (void)state;
    melt_error err = {0};
    char ctl[300];
    memset(ctl, 1, sizeof ctl);
    melt_str toks[] = {{"a", 1}, {ctl, sizeof ctl}, {"\xC4\x80", 2}};
    melt_gguf_writer *w = melt_gguf_writer_new();
    assert_non_null(w);
    assert_int_equal(melt_gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2", &err), 0);
    assert_int_equal(melt_gguf_writer_set_str(w, "tokenizer.ggml.pre", "gpt-2", &err), 0);
    assert_int_equal(melt_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", 3, toks, &err), 0);
    assert_int_equal(melt_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", 0, NULL, &err), 0);
    const char *path = scratch_path("unmappable.gguf");
    assert_int_equal(melt_gguf_writer_write(w, path, NULL, NULL, &err), 0);
    melt_gguf_writer_free(w);
    melt_gguf *g = NULL;
    melt_tokenizer *t = NULL;
    assert_int_equal(melt_gguf_open(path, &g, &err), 0);
    assert_int_equal(melt_tokenizer_load(g, &t, &err), 0);
    melt_gguf_close(g);
    size_t len;
    const char *p = melt_token_piece(t, 1, &len);
    assert_int_equal(len, sizeof ctl * 15);
    assert_memory_equal(p, "[UNK_BYTE_0x01]", 15);
    p = melt_token_piece(t, 2, &len);      /* U+0100 is byte 0x00 */
    assert_int_equal(len, 1);
    assert_int_equal(p[0], 0);
    melt_tokenizer_free(t);
    unlink(path);
}

/* ---- pre-tokenizers on hand-checked strings ---- */

/* Split s with pre value `pre` and join the words with '|'. */
static char *split_with(const char *pre, const char *s)
{
    pt_info info;
    if (!pt_lookup(pre, strlen(pre), &info))
        fail_msg("unknown pre %s", pre);
    size_t len = strlen(s), n = 0;
    uint32_t *cp = malloc((len + 1) * sizeof *cp);
    uint8_t *cls = malloc(len + 1);
    size_t *boff = malloc((len + 2) * sizeof *boff);
    for (size_t off = 0; off < len;) {
        boff[n] = off;
        cp[n] = uc_decode(s, len, &off);
        cls[n] = uc_class(cp[n]);
        n++;
    }
    boff[n] = len;
    pt_vec words = {0}, tmp = {0};
    assert_int_equal(pt_split(info.kind, cp, cls, n, &words, &tmp), 0);
    char *out = malloc(len * 2 + 2);
    size_t o = 0, start = 0;
    for (size_t k = 0; k < words.n; k++) {
        if (k)
            out[o++] = '|';
        memcpy(out + o, s + boff[start], boff[words.v[k]] - boff[start]);
        o += boff[words.v[k]] - boff[start];
        start = words.v[k];
    }
    out[o] = '\0';
    assert_int_equal(start, n);
    pt_vec_free(&words);
    pt_vec_free(&tmp);
    free(cp);
    free(cls);
    free(boff);
    return out;
}

#define EXPECT_SPLIT(pre, s, want) do { \
        char *got_ = split_with(pre, s); \
        if (strcmp(got_, want) != 0) \
            fail_msg("pre %s on '%s': expected '%s', got '%s'", pre, s, want, got_); \
        free(got_); \
    } while (0)

static void pretok_llama3_groups_digits_and_contractions(void **state)
{
    (void)state;
    EXPECT_SPLIT("llama-bpe", "1234567", "123|456|7");
    EXPECT_SPLIT("llama-bpe", "I'm HE'LL", "I|'m| HE|'LL");
    EXPECT_SPLIT("llama-bpe", "Hello, world!!\n\n  x", "Hello|,| world|!!\n\n| | x");
    EXPECT_SPLIT("llama-bpe", "a   b", "a|  | b");
    EXPECT_SPLIT("llama-bpe", "\tab   ", "\tab|   ");
    EXPECT_SPLIT("llama-bpe", "我想在apple工作", "我想在apple工作");
    EXPECT_SPLIT("llama-bpe", "\xF0\x9F\x98\x81 ?", "\xF0\x9F\x98\x81| ?");
    EXPECT_SPLIT("dbrx", "12345", "123|45");
}

static void pretok_gpt2_family(void **state)
{
    (void)state;
    EXPECT_SPLIT("gpt-2", "I'm 12345 dogs!!", "I|'m| 12345| dogs|!!");
    EXPECT_SPLIT("gpt-2", "Don'T", "Don|'|T");           /* case-sensitive contractions */
    EXPECT_SPLIT("gpt-2", "a  \n b", "a|  \n| b");
    EXPECT_SPLIT("mpt", "x   y", "x|  | y");
    EXPECT_SPLIT("olmo", "\xC3\x84pfel", "\xC3\x84pfel");
}

static void pretok_starcoder_and_falcon_split_digits(void **state)
{
    (void)state;
    EXPECT_SPLIT("starcoder", "abc 123", "abc| |1|2|3");
    EXPECT_SPLIT("refact", "x=42", "x|=|4|2");
    EXPECT_SPLIT("falcon", "a+b 1234", "a|+|b| |123|4");
    EXPECT_SPLIT("default", "hi!! 12345", "hi|!!| |123|45");
}

static void pretok_qwen2_single_digits(void **state)
{
    (void)state;
    EXPECT_SPLIT("qwen2", "abc 123", "abc| |1|2|3");
    EXPECT_SPLIT("qwen2", "It's", "It|'s");
    EXPECT_SPLIT("stablelm2", "x\r\n\r\ny", "x|\r\n\r\n|y");
}

static void pretok_gpt4o_and_tekken_split_case_changes(void **state)
{
    (void)state;
    EXPECT_SPLIT("gpt-4o", "HelloWorld it's", "Hello|World| it's");
    EXPECT_SPLIT("gpt-4o", "ABCdef 12345", "ABCdef| |123|45");
    EXPECT_SPLIT("tekken", "HelloWorld 12", "Hello|World| |1|2");
    EXPECT_SPLIT("tekken", "a/b//\n", "a|/b|//\n");
}

static void pretok_deepseek_cjk_and_poro(void **state)
{
    (void)state;
    EXPECT_SPLIT("deepseek-llm", "ab 我们\n12", "ab| |我们|\n|12");
    EXPECT_SPLIT("deepseek-coder", "x 12", "x| |1|2");
    EXPECT_SPLIT("deepseek-v3", "12345 ab", "123|45| ab");
    EXPECT_SPLIT("bloom", "Hi there, you.", "Hi| there|,| you|.");
    EXPECT_SPLIT("viking", "ab12", "ab|1|2");
}

static void pretok_whitespace_runs_and_emoji(void **state)
{
    (void)state;
    /* \s+(?!\S): the last space goes with the next word */
    EXPECT_SPLIT("llama-bpe", "    Hello", "   | Hello");
    EXPECT_SPLIT("gpt-2", "    Hello", "   | Hello");
    /* emoji are neither letters nor numbers: they group with punctuation */
    EXPECT_SPLIT("llama-bpe", " \xF0\x9F\x9A\x80 (x)", " \xF0\x9F\x9A\x80| (|x|)");
    EXPECT_SPLIT("qwen2", "\n\n\n", "\n\n\n");
}

static void pretok_digit_grouping_from_the_right(void **state)
{
    (void)state;
    EXPECT_SPLIT("superbpe", "1234567", "1|234|567");
    EXPECT_SPLIT("superbpe", "123456 78", "123|456| |78");
    EXPECT_SPLIT("tiny_aya", "1234567 x", "1|234|567| x");
    EXPECT_SPLIT("afmoe", "12345", "12|345");
    EXPECT_SPLIT("minicpm5", "1234567", "123|456|7");
}

/* Matchers run at every position of a run must not rescan it: 256K-long
 * runs of digits, spaces and capitals go through every family. A
 * quadratic matcher would take minutes here. */
static void pretok_long_runs_stay_linear(void **state)
{
    (void)state;
    static const char *const pres[] = {
        "default", "llama3", "gpt-2", "starcoder", "falcon", "qwen2", "jais-2", "deepseek-llm",
        "deepseek-coder", "deepseek-v3", "spark2_5", "bloom", "viking", "tekken", "gpt-4o",
        "tiny_aya", "superbpe", "kimi-k2", "afmoe", "exaone-moe", "minicpm5", "laguna", NULL,
    };
    size_t n = 1u << 18;
    uint32_t *cp = malloc((n + 1) * sizeof *cp);
    uint8_t *cls = malloc(n + 1);
    static const uint32_t fill[] = {'7', ' ', 'A', '\t'};
    for (size_t f = 0; f < 4; f++) {
        for (size_t i = 0; i < n; i++)
            cp[i] = fill[f];
        cp[n] = 'x';   /* a word character right after the run */
        for (size_t i = 0; i <= n; i++)
            cls[i] = uc_class(cp[i]);
        for (size_t k = 0; pres[k]; k++) {
            pt_info info;
            assert_true(pt_lookup(pres[k], strlen(pres[k]), &info));
            pt_vec words = {0}, tmp = {0};
            assert_int_equal(pt_split(info.kind, cp, cls, n + 1, &words, &tmp), 0);
            assert_int_equal(words.v[words.n - 1], n + 1);
            pt_vec_free(&words);
            pt_vec_free(&tmp);
        }
    }
    free(cp);
    free(cls);
}

static void pretok_every_known_value_splits_sanely(void **state)
{
    (void)state;
    static const char *const pres[] = {
        "default", "llama3", "llama-bpe", "dbrx", "smaug-bpe", "chatglm-bpe", "glm4",
        "deepseek-llm", "deepseek-coder", "deepseek-v3", "falcon", "mpt", "starcoder", "gpt-2",
        "jais", "jais-2", "olmo", "refact", "command-r", "smollm", "codeshell", "exaone", "qwen2",
        "stablelm2", "qwen35", "poro-chat", "bloom", "viking", "tekken", "gpt-4o", "llama4",
        "minimax-m2", "tiny_aya", "superbpe", "kimi-k2", "afmoe", "exaone-moe", "chameleon",
        "seed-coder", "bailingmoe", "ufakzeka", "grok-2", "minicpm5", "laguna", "spark2_5",
        "granite-embed-multi-97m", "hunyuan", "hunyuan-dense", "trillion", "granite-docling",
        "whitespace", NULL,
    };
    const char *s = "Hello, y'all! How are you \xF0\x9F\x98\x81 ?\xE6\x88\x91\xE6\x83\xB3 1314151\n\n  \tx";
    for (size_t i = 0; pres[i]; i++) {
        /* the words cover the text exactly, in order (checked in split_with) */
        char *got = split_with(pres[i], s);
        size_t j = 0, k = 0;
        for (; got[j]; j++)
            if (got[j] != '|')
                assert_int_equal(got[j], s[k++]);
        assert_int_equal(k, strlen(s));
        free(got);
    }
}

static void tokenizes_a_megabyte_quickly(void **state)
{
    (void)state;
    /* well under a second per MB; the bound here is loose for sanitizers */
    melt_tokenizer *t = load_vocab("vocab/ggml-vocab-llama-bpe.gguf");
    size_t story_len;
    char *story = slurp(fixture_path("stories260K/story.txt"), &story_len);
    size_t len = 1 << 20;
    char *big = malloc(len);
    for (size_t i = 0; i < len; i++)
        big[i] = story[i % story_len];
    melt_token *ids = NULL;
    size_t n = 0;
    melt_error err = {0};
    assert_int_equal(melt_tokenize(t, big, len, 0, &ids, &n, &err), 0);
    assert_true(n > len / 8);
    size_t dl;
    char *back = detok(t, ids, n, 0, &dl);
    assert_int_equal(dl, len);
    assert_memory_equal(back, big, len);
    free(back);
    free(ids);
    melt_tokenizer_free(t);
    t = load_vocab("vocab/ggml-vocab-llama-spm.gguf");
    assert_int_equal(melt_tokenize(t, big, len, 0, &ids, &n, &err), 0);
    assert_true(n > len / 8);
    free(ids);
    melt_tokenizer_free(t);
    free(big);
    free(story);
}

/* spm.c merges the stretches between never-merging characters one at a
 * time; the ids must be those of one pass over the whole text. */
static void spm_segmented_merge_equals_whole_text_merge(void **state)
{
    (void)state;
    static const char *const vocabs[] = {"stories260K/stories260K.gguf",
                                         "vocab/ggml-vocab-llama-spm.gguf"};
    size_t inp_len;
    char *inp = slurp(fixture_path("vocab/ggml-vocab-llama-spm.gguf.inp"), &inp_len);
    /* mixed scripts plus invalid bytes and multi-byte leads before newlines */
    static const char tail[] = "\xF0\nab the\n\xE2\nthe\xC3\nab";
    size_t len = inp_len + sizeof tail - 1 + 64;
    char *text = malloc(len);
    memcpy(text, inp, inp_len);
    memcpy(text + inp_len, tail, sizeof tail - 1);
    uint64_t seed = 7;
    for (size_t i = inp_len + sizeof tail - 1; i < len; i++) {
        static const char pool[] = "\xF0\n\xE2\x80\n\xC3 \t\x80" "ab\n";
        text[i] = pool[test_rand_u64(&seed) % (sizeof pool - 1)];
    }
    for (size_t v = 0; v < 2; v++) {
        melt_tokenizer *t = load_vocab(vocabs[v]);
        int n_lone = 0;
        for (int c = 0; c < 128; c++)
            n_lone += t->spm_lone[c];
        assert_true(n_lone > 0);             /* the shortcut is exercised */
        char *fast = tokenize_str(t, text, len, 0);
        memset(t->spm_lone, 0, sizeof t->spm_lone);
        char *slow = tokenize_str(t, text, len, 0);
        assert_string_equal(fast, slow);
        free(fast);
        free(slow);
        melt_tokenizer_free(t);
    }
    free(text);
    free(inp);
}

static void gpt2_byte_map_is_a_bijection(void **state)
{
    (void)state;
    int seen[0x200] = {0};
    for (unsigned b = 0; b < 256; b++) {
        uint32_t cp = uc_byte_to_cp((uint8_t)b);
        assert_true(cp < 0x200);
        assert_int_equal(seen[cp], 0);
        seen[cp] = 1;
        assert_int_equal(uc_cp_to_byte(cp), (int)b);
    }
    assert_int_equal(uc_byte_to_cp(' '), 0x120);   /* 'Ġ' */
    assert_int_equal(uc_byte_to_cp('\n'), 0x10A);  /* 'Ċ' */
    assert_int_equal(uc_byte_to_cp('A'), 'A');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(spm_llama_matches_llamacpp_vectors),
        cmocka_unit_test(spm_phi3_matches_llamacpp_vectors),
        cmocka_unit_test(bpe_llama3_matches_llamacpp_vectors),
        cmocka_unit_test(stories260k_prompts_match_llamacpp),
        cmocka_unit_test(spm_byte_fallback_for_unknown_chars),
        cmocka_unit_test(spm_adds_bos_and_leading_space),
        cmocka_unit_test(special_tokens_parse_only_when_asked),
        cmocka_unit_test(spm_special_token_gets_no_leading_space_after_it),
        cmocka_unit_test(phi3_special_tokens_strip_following_space),
        cmocka_unit_test(detokenize_rejects_ids_outside_vocab),
        cmocka_unit_test(clean_spaces_tidies_punctuation_for_bpe),
        cmocka_unit_test(load_rejects_missing_or_unknown_metadata),
        cmocka_unit_test(bpe_unmappable_token_text_decodes_to_markers),
        cmocka_unit_test(pretok_llama3_groups_digits_and_contractions),
        cmocka_unit_test(pretok_gpt2_family),
        cmocka_unit_test(pretok_starcoder_and_falcon_split_digits),
        cmocka_unit_test(pretok_qwen2_single_digits),
        cmocka_unit_test(pretok_gpt4o_and_tekken_split_case_changes),
        cmocka_unit_test(pretok_deepseek_cjk_and_poro),
        cmocka_unit_test(pretok_whitespace_runs_and_emoji),
        cmocka_unit_test(pretok_digit_grouping_from_the_right),
        cmocka_unit_test(pretok_long_runs_stay_linear),
        cmocka_unit_test(pretok_every_known_value_splits_sanely),
        cmocka_unit_test(tokenizes_a_megabyte_quickly),
        cmocka_unit_test(spm_segmented_merge_equals_whole_text_merge),
        cmocka_unit_test(gpt2_byte_map_is_a_bijection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

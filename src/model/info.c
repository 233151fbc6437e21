/* Summary of a GGUF model file (`melt model info`). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "melt/model.h"

static void copy_str(char *dst, size_t n, melt_str s)
{
    size_t len = s.len < n - 1 ? (size_t)s.len : n - 1;
    memcpy(dst, s.ptr, len);
    dst[len] = '\0';
}

/* An integer hyper-parameter ARCH.suffix: a scalar, or a per-layer array
 * (some models vary heads by layer), reported as its maximum. -1 if absent. */
static int64_t arch_int(const melt_gguf *g, const char *arch, const char *suffix)
{
    char key[256];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    int64_t v;
    if (melt_gguf_get_i64(g, key, &v))
        return v;
    const melt_gguf_value *a = melt_gguf_get_arr(g, key);
    if (!a)
        return -1;
    int64_t best = -1;
    for (uint64_t i = 0; i < a->v.arr.n; i++) {
        int64_t x;
        switch (a->v.arr.elem_type) {
        case MELT_GGUF_I32: x = ((const int32_t *)a->v.arr.data)[i]; break;
        case MELT_GGUF_U32: x = ((const uint32_t *)a->v.arr.data)[i]; break;
        default: return -1;
        }
        if (x > best)
            best = x;
    }
    return best;
}

static int64_t key_int(const melt_gguf *g, const char *key)
{
    int64_t v;
    return melt_gguf_get_i64(g, key, &v) ? v : -1;
}

static void read_tokenizer(const melt_gguf *g, melt_model_info *info)
{
    melt_str s;
    if (melt_gguf_get_str(g, "tokenizer.ggml.model", &s))
        copy_str(info->vocab_type, sizeof info->vocab_type, s);
    if (melt_gguf_get_str(g, "tokenizer.ggml.pre", &s))
        copy_str(info->vocab_pre, sizeof info->vocab_pre, s);
    const melt_gguf_value *tokens = melt_gguf_get_arr(g, "tokenizer.ggml.tokens");
    if (tokens)
        info->n_vocab = (int64_t)tokens->v.arr.n;
    info->bos_id = key_int(g, "tokenizer.ggml.bos_token_id");
    info->eos_id = key_int(g, "tokenizer.ggml.eos_token_id");
    info->has_chat_template = melt_gguf_find_kv(g, "tokenizer.chat_template") != NULL;
}

int melt_model_info_get(const melt_gguf *g, melt_model_info *info, melt_error *err)
{
    (void)err;
    memset(info, 0, sizeof *info);
    melt_str s;
    if (melt_gguf_get_str(g, "general.architecture", &s))
        copy_str(info->architecture, sizeof info->architecture, s);
    if (melt_gguf_get_str(g, "general.name", &s))
        copy_str(info->name, sizeof info->name, s);
    info->gguf_version = melt_gguf_version(g);
    info->file_size_bytes = melt_gguf_file_size(g);
    info->file_type = key_int(g, "general.file_type");

    const char *arch = info->architecture;
    info->n_ctx_train = arch_int(g, arch, "context_length");
    info->n_embd = arch_int(g, arch, "embedding_length");
    info->n_layer = arch_int(g, arch, "block_count");
    info->n_head = arch_int(g, arch, "attention.head_count");
    info->n_head_kv = arch_int(g, arch, "attention.head_count_kv");
    info->n_ff = arch_int(g, arch, "feed_forward_length");
    char key[256];
    snprintf(key, sizeof key, "%s.rope.freq_base", arch);
    if (!melt_gguf_get_f64(g, key, &info->rope_freq_base))
        info->rope_freq_base = 0;

    info->n_vocab = -1;
    read_tokenizer(g, info);

    info->n_tensors = melt_gguf_n_tensors(g);
    for (uint64_t i = 0; i < info->n_tensors; i++) {
        const melt_gguf_tensor *t = melt_gguf_tensor_at(g, i);
        info->n_params += t->n_elems;
        info->tensor_bytes += t->n_bytes;
        if (t->type < MELT_TYPE_COUNT) {
            info->type_count[t->type]++;
            info->type_bytes[t->type] += t->n_bytes;
        }
        if (info->n_vocab < 0 && melt_str_eq(t->name, "token_embd.weight") && t->n_dims >= 2)
            info->n_vocab = (int64_t)t->ne[1];
    }
    info->bits_per_weight = info->n_params ? 8.0 * (double)info->tensor_bytes / (double)info->n_params : 0;
    return 0;
}

/* "1.10 B", "292.80 K" ... */
static const char *human_count(uint64_t n, char *buf, size_t len)
{
    if (n >= 1000000000ULL)
        snprintf(buf, len, "%.2f B", (double)n / 1e9);
    else if (n >= 1000000ULL)
        snprintf(buf, len, "%.2f M", (double)n / 1e6);
    else if (n >= 1000ULL)
        snprintf(buf, len, "%.2f K", (double)n / 1e3);
    else
        snprintf(buf, len, "%" PRIu64, n);
    return buf;
}

static const char *human_bytes(uint64_t n, char *buf, size_t len)
{
    if (n >= (1ULL << 30))
        snprintf(buf, len, "%.2f GiB", (double)n / (double)(1ULL << 30));
    else if (n >= (1ULL << 20))
        snprintf(buf, len, "%.2f MiB", (double)n / (double)(1ULL << 20));
    else if (n >= 1024)
        snprintf(buf, len, "%.2f KiB", (double)n / 1024.0);
    else
        snprintf(buf, len, "%" PRIu64 " B", n);
    return buf;
}

static void print_opt(FILE *out, const char *label, int64_t v)
{
    if (v < 0)
        fprintf(out, "%-18s -\n", label);
    else
        fprintf(out, "%-18s %" PRId64 "\n", label, v);
}

void melt_model_info_print(const melt_model_info *in, FILE *out)
{
    char a[64], b[64];
    fprintf(out, "%-18s %s\n", "architecture", in->architecture[0] ? in->architecture : "-");
    fprintf(out, "%-18s %s\n", "name", in->name[0] ? in->name : "-");
    fprintf(out, "%-18s %" PRIu32 "\n", "gguf version", in->gguf_version);
    fprintf(out, "%-18s %s (%" PRIu64 ")\n", "parameters", human_count(in->n_params, a, sizeof a),
            in->n_params);
    fprintf(out, "%-18s %s (%" PRIu64 " bytes; tensors %s)\n", "file size",
            human_bytes(in->file_size_bytes, a, sizeof a), in->file_size_bytes,
            human_bytes(in->tensor_bytes, b, sizeof b));
    fprintf(out, "%-18s %.2f\n", "bits per weight", in->bits_per_weight);
    print_opt(out, "context length", in->n_ctx_train);
    print_opt(out, "embedding size", in->n_embd);
    print_opt(out, "layers", in->n_layer);
    print_opt(out, "heads", in->n_head);
    print_opt(out, "kv heads", in->n_head_kv);
    print_opt(out, "ffn size", in->n_ff);
    if (in->rope_freq_base > 0)
        fprintf(out, "%-18s %g\n", "rope freq base", in->rope_freq_base);
    fprintf(out, "%-18s %s%s%s%s\n", "vocab type", in->vocab_type[0] ? in->vocab_type : "-",
            in->vocab_pre[0] ? " (pre: " : "", in->vocab_pre, in->vocab_pre[0] ? ")" : "");
    print_opt(out, "vocab size", in->n_vocab);
    print_opt(out, "bos id", in->bos_id);
    print_opt(out, "eos id", in->eos_id);
    fprintf(out, "%-18s %s\n", "chat template", in->has_chat_template ? "yes" : "no");
    fprintf(out, "%-18s %" PRIu64 "\n", "tensors", in->n_tensors);
    for (uint32_t t = 0; t < MELT_TYPE_COUNT; t++) {
        if (!in->type_count[t])
            continue;
        fprintf(out, "  %-16s %6" PRIu64 " tensors %12s\n", melt_type_name(t), in->type_count[t],
                human_bytes(in->type_bytes[t], a, sizeof a));
    }
}

static json_t *json_opt_int(int64_t v)
{
    return v < 0 ? json_null() : json_integer(v);
}

static json_t *json_opt_str(const char *s)
{
    return s[0] ? json_string(s) : json_null();
}

int melt_model_info_print_json(const melt_model_info *in, FILE *out)
{
    json_t *types = json_object();
    for (uint32_t t = 0; t < MELT_TYPE_COUNT; t++) {
        if (!in->type_count[t])
            continue;
        json_object_set_new(types, melt_type_name(t),
                            json_pack("{s:I,s:I}", "count", (json_int_t)in->type_count[t],
                                      "bytes", (json_int_t)in->type_bytes[t]));
    }
    json_t *o = json_object();
    json_object_set_new(o, "architecture", json_opt_str(in->architecture));
    json_object_set_new(o, "name", json_opt_str(in->name));
    json_object_set_new(o, "gguf_version", json_integer(in->gguf_version));
    json_object_set_new(o, "file_size_bytes", json_integer((json_int_t)in->file_size_bytes));
    json_object_set_new(o, "tensor_bytes", json_integer((json_int_t)in->tensor_bytes));
    json_object_set_new(o, "n_params", json_integer((json_int_t)in->n_params));
    json_object_set_new(o, "n_tensors", json_integer((json_int_t)in->n_tensors));
    json_object_set_new(o, "bits_per_weight", json_real(in->bits_per_weight));
    json_object_set_new(o, "n_ctx_train", json_opt_int(in->n_ctx_train));
    json_object_set_new(o, "n_embd", json_opt_int(in->n_embd));
    json_object_set_new(o, "n_layer", json_opt_int(in->n_layer));
    json_object_set_new(o, "n_head", json_opt_int(in->n_head));
    json_object_set_new(o, "n_head_kv", json_opt_int(in->n_head_kv));
    json_object_set_new(o, "n_ff", json_opt_int(in->n_ff));
    json_object_set_new(o, "rope_freq_base",
                        in->rope_freq_base > 0 ? json_real(in->rope_freq_base) : json_null());
    json_object_set_new(o, "vocab_type", json_opt_str(in->vocab_type));
    json_object_set_new(o, "vocab_pre", json_opt_str(in->vocab_pre));
    json_object_set_new(o, "n_vocab", json_opt_int(in->n_vocab));
    json_object_set_new(o, "bos_id", json_opt_int(in->bos_id));
    json_object_set_new(o, "eos_id", json_opt_int(in->eos_id));
    json_object_set_new(o, "has_chat_template", json_boolean(in->has_chat_template));
    json_object_set_new(o, "file_type", json_opt_int(in->file_type));
    json_object_set_new(o, "tensor_types", types);
    int rc = json_dumpf(o, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
    fputc('\n', out);
    json_decref(o);
    return rc < 0 ? MELT_EIO : 0;
}

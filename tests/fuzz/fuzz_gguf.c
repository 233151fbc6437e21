/* Fuzz target: the GGUF reader on arbitrary bytes. Opens the buffer and
 * touches everything a caller could reach (every kv, every array element,
 * every tensor's first and last data byte, look-ups by name), then copies
 * the metadata into a writer, so any unchecked length or offset shows up
 * under ASan/UBSan. Built by `make fuzz` (libFuzzer) and, with
 * replay_main.c, as a corpus regression test in `make test`. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "melt/gguf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Sum every byte of s, so the reads cannot be optimized away. */
static unsigned touch_str(melt_str s)
{
    unsigned sum = 0;
    for (uint64_t i = 0; i < s.len; i++)
        sum += (unsigned char)s.ptr[i];
    return sum;
}

static unsigned touch_value(const melt_gguf_value *v)
{
    if (v->type == MELT_GGUF_STRING)
        return touch_str(v->v.str);
    if (v->type != MELT_GGUF_ARRAY)
        return (unsigned)v->v.u8;
    unsigned sum = 0;
    if (v->v.arr.elem_type == MELT_GGUF_STRING) {
        const melt_str *strs = v->v.arr.data;
        for (uint64_t i = 0; i < v->v.arr.n; i++)
            sum += touch_str(strs[i]);
        return sum;
    }
    const uint8_t *p = v->v.arr.data;
    uint64_t n_bytes = v->v.arr.n * melt_gguf_vtype_size(v->v.arr.elem_type);
    for (uint64_t i = 0; i < n_bytes; i++)
        sum += p[i];
    return sum;
}

/* Look a name up as a C string (names with a NUL byte cannot be). */
static const char *as_cstr(melt_str s, char *buf, size_t cap)
{
    if (s.len >= cap || memchr(s.ptr, '\0', s.len))
        return NULL;
    memcpy(buf, s.ptr, s.len);
    buf[s.len] = '\0';
    return buf;
}

static unsigned touch_file(const melt_gguf *g)
{
    char name[256];
    unsigned sum = 0;
    for (uint64_t i = 0; i < melt_gguf_n_kv(g); i++) {
        const melt_gguf_kv *kv = melt_gguf_kv_at(g, i);
        sum += touch_str(kv->key) + touch_value(&kv->value);
        const char *key = as_cstr(kv->key, name, sizeof name);
        if (key && melt_gguf_find_kv(g, key) != kv)
            abort();
    }
    for (uint64_t i = 0; i < melt_gguf_n_tensors(g); i++) {
        const melt_gguf_tensor *t = melt_gguf_tensor_at(g, i);
        sum += touch_str(t->name);
        if (t->n_bytes > 0) {
            const uint8_t *p = t->data;
            sum += p[0] + p[t->n_bytes - 1];
        }
        const char *tn = as_cstr(t->name, name, sizeof name);
        if (tn && melt_gguf_find_tensor(g, tn) != t)
            abort();
    }
    uint64_t u;
    int64_t s;
    double d;
    bool b;
    melt_str str;
    sum += melt_gguf_get_u64(g, "general.alignment", &u) +
           melt_gguf_get_i64(g, "llama.block_count", &s) +
           melt_gguf_get_f64(g, "llama.rope.freq_base", &d) +
           melt_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b) +
           melt_gguf_get_str(g, "general.architecture", &str) +
           (melt_gguf_get_arr(g, "tokenizer.ggml.tokens") != NULL);
    return sum;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    melt_gguf *g = NULL;
    melt_error err = {0};
    if (melt_gguf_open_buffer(data, size, &g, &err) != 0) {
        /* A rejection is one line naming the problem. */
        if (err.code == 0 || err.msg[0] == '\0' || strchr(err.msg, '\n'))
            abort();
        return 0;
    }
    volatile unsigned sink = touch_file(g);
    (void)sink;
    melt_gguf_writer *w = melt_gguf_writer_new();
    if (w && melt_gguf_writer_copy_kvs(w, g, &err) != 0 &&
        err.code != MELT_ENOMEM)
        abort(); /* whatever the reader accepts, the writer must take */
    melt_gguf_writer_free(w);
    melt_gguf_close(g);
    return 0;
}

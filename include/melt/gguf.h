/* melt — GGUF v2/v3 reader and writer.
 *
 * Reader: the file is mapped read-only; every count, length, offset, type id
 * and dimension is validated before use. A bad file yields MELT_EFORMAT and
 * a one-line message naming the problem and its byte offset, e.g.
 *   "m.gguf: tensor 46 ('blk.4.ffn_up.weight') data [1141088, 1185120) runs
 *    past end of file (size 1170000)".
 * Strings point into the mapping and are NOT NUL-terminated (use len).
 *
 * Writer: collects metadata and tensor descriptions, then writes a file with
 * the exact GGUF v3 layout llama.cpp expects (alignment, zero padding).
 */
#ifndef MELT_GGUF_H
#define MELT_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "melt/error.h"
#include "melt/types.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MELT_GGUF_DEFAULT_ALIGNMENT 32
#define MELT_GGUF_MAX_DIMS 4

/* Metadata value types, numbered as on disk. */
enum melt_gguf_vtype {
    MELT_GGUF_U8 = 0,
    MELT_GGUF_I8 = 1,
    MELT_GGUF_U16 = 2,
    MELT_GGUF_I16 = 3,
    MELT_GGUF_U32 = 4,
    MELT_GGUF_I32 = 5,
    MELT_GGUF_F32 = 6,
    MELT_GGUF_BOOL = 7,
    MELT_GGUF_STRING = 8,
    MELT_GGUF_ARRAY = 9,
    MELT_GGUF_U64 = 10,
    MELT_GGUF_I64 = 11,
    MELT_GGUF_F64 = 12,
    MELT_GGUF_VTYPE_COUNT = 13
};

/* A length-delimited string (not NUL-terminated). */
typedef struct melt_str {
    const char *ptr;
    uint64_t len;
} melt_str;

typedef struct melt_gguf_value {
    enum melt_gguf_vtype type;
    union {
        uint8_t u8;
        int8_t i8;
        uint16_t u16;
        int16_t i16;
        uint32_t u32;
        int32_t i32;
        float f32;
        bool b;
        uint64_t u64;
        int64_t i64;
        double f64;
        melt_str str;
        struct {
            enum melt_gguf_vtype elem_type; /* never MELT_GGUF_ARRAY */
            uint64_t n;
            /* Numeric/bool elements: n native values (bool as uint8_t),
             * aligned for their type. Strings: n melt_str. */
            const void *data;
        } arr;
    } v;
} melt_gguf_value;

typedef struct melt_gguf_kv {
    melt_str key;
    melt_gguf_value value;
} melt_gguf_kv;

typedef struct melt_gguf_tensor {
    melt_str name;
    uint32_t n_dims;                    /* 1..4 */
    uint64_t ne[MELT_GGUF_MAX_DIMS];    /* elements per dim; unused dims 1 */
    uint32_t type;                      /* enum melt_type */
    uint64_t offset;                    /* relative to the data section */
    uint64_t n_elems;                   /* product of ne */
    uint64_t n_bytes;                   /* size of the data */
    const void *data;                   /* into the mapping */
} melt_gguf_tensor;

/* Size in bytes of one element of a scalar value type (0 for STRING/ARRAY
 * or unknown). */
size_t melt_gguf_vtype_size(enum melt_gguf_vtype t);
const char *melt_gguf_vtype_name(enum melt_gguf_vtype t);

/* ---- reader ---- */

typedef struct melt_gguf melt_gguf;

/* Open and validate a file (mmap). On error *out is NULL. Free with close. */
int melt_gguf_open(const char *path, melt_gguf **out, melt_error *err);
/* Parse a caller-owned buffer (not copied; must outlive the handle). */
int melt_gguf_open_buffer(const void *buf, size_t size, melt_gguf **out,
                          melt_error *err);
void melt_gguf_close(melt_gguf *g);
/* Map the tensor data of an opened file into this process now (reading
 * what is not cached) rather than page by page on first use; a no-op for
 * buffers. */
void melt_gguf_prefetch(const melt_gguf *g);

uint32_t melt_gguf_version(const melt_gguf *g);
uint64_t melt_gguf_alignment(const melt_gguf *g);
uint64_t melt_gguf_data_offset(const melt_gguf *g); /* start of tensor data */
uint64_t melt_gguf_file_size(const melt_gguf *g);
const char *melt_gguf_path(const melt_gguf *g);     /* "" for buffers */

uint64_t melt_gguf_n_kv(const melt_gguf *g);
const melt_gguf_kv *melt_gguf_kv_at(const melt_gguf *g, uint64_t i);
const melt_gguf_kv *melt_gguf_find_kv(const melt_gguf *g, const char *key);

uint64_t melt_gguf_n_tensors(const melt_gguf *g);
const melt_gguf_tensor *melt_gguf_tensor_at(const melt_gguf *g, uint64_t i);
const melt_gguf_tensor *melt_gguf_find_tensor(const melt_gguf *g,
                                              const char *name);

/* Typed look-ups. Integer getters accept any integer value type whose value
 * fits the output; they return false when the key is absent or does not
 * fit. */
bool melt_gguf_get_u64(const melt_gguf *g, const char *key, uint64_t *out);
bool melt_gguf_get_i64(const melt_gguf *g, const char *key, int64_t *out);
bool melt_gguf_get_f64(const melt_gguf *g, const char *key, double *out);
bool melt_gguf_get_bool(const melt_gguf *g, const char *key, bool *out);
bool melt_gguf_get_str(const melt_gguf *g, const char *key, melt_str *out);
/* Array value of key (any element type) or NULL. */
const melt_gguf_value *melt_gguf_get_arr(const melt_gguf *g, const char *key);

/* True when s equals the NUL-terminated c string. */
bool melt_str_eq(melt_str s, const char *c);

/* ---- writer ---- */

typedef struct melt_gguf_writer melt_gguf_writer;

/* New empty writer for GGUF version 3. NULL on allocation failure. */
melt_gguf_writer *melt_gguf_writer_new(void);
void melt_gguf_writer_free(melt_gguf_writer *w);

/* Set key to a deep copy of v (strings and arrays are copied). A key that
 * already exists keeps its position and takes the new value. Setting
 * "general.alignment" (u32, power of two) changes the data alignment. */
int melt_gguf_writer_set(melt_gguf_writer *w, const char *key,
                         const melt_gguf_value *v, melt_error *err);
int melt_gguf_writer_set_u32(melt_gguf_writer *w, const char *key, uint32_t x,
                             melt_error *err);
int melt_gguf_writer_set_i32(melt_gguf_writer *w, const char *key, int32_t x,
                             melt_error *err);
int melt_gguf_writer_set_u64(melt_gguf_writer *w, const char *key, uint64_t x,
                             melt_error *err);
int melt_gguf_writer_set_f32(melt_gguf_writer *w, const char *key, float x,
                             melt_error *err);
int melt_gguf_writer_set_bool(melt_gguf_writer *w, const char *key, bool x,
                              melt_error *err);
int melt_gguf_writer_set_str(melt_gguf_writer *w, const char *key,
                             const char *s, melt_error *err);
/* Array of n elements of a scalar type; data holds n native values. */
int melt_gguf_writer_set_arr(melt_gguf_writer *w, const char *key,
                             enum melt_gguf_vtype elem_type, uint64_t n,
                             const void *data, melt_error *err);
int melt_gguf_writer_set_arr_str(melt_gguf_writer *w, const char *key,
                                 uint64_t n, const melt_str *strs,
                                 melt_error *err);
/* Copy every key/value of g (in order) into w. */
int melt_gguf_writer_copy_kvs(melt_gguf_writer *w, const melt_gguf *g,
                              melt_error *err);
bool melt_gguf_writer_remove(melt_gguf_writer *w, const char *key);

/* Declare a tensor. data (n_bytes computed from type and shape) is NOT
 * copied and must stay valid until melt_gguf_writer_write returns; pass
 * NULL to have the fill callback produce it at write time. Tensors are
 * written in the order added. */
int melt_gguf_writer_add_tensor(melt_gguf_writer *w, const char *name,
                                uint32_t type, uint32_t n_dims,
                                const uint64_t *ne, const void *data,
                                melt_error *err);

/* Produces the bytes of tensor index (order of add_tensor) into dst. */
typedef int (*melt_gguf_fill_fn)(void *ctx, uint64_t index, void *dst,
                                 uint64_t n_bytes, melt_error *err);

/* Write the file. fill may be NULL when every tensor has data. The file is
 * written to path + ".tmp" and renamed into place, so a failed write never
 * leaves a half file under path. */
int melt_gguf_writer_write(melt_gguf_writer *w, const char *path,
                           melt_gguf_fill_fn fill, void *ctx, melt_error *err);

#ifdef __cplusplus
}
#endif
#endif

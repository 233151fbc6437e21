/* `melt model quantize`: file types, threaded row quantization, and the
 * whole-file conversion (GGUF in, GGUF out, llama-quantize's rules). */
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "melt/gguf.h"
#include "melt/quant.h"
#include "melt/types.h"
#include "model/quant_rules.h"

/* ---- file types ---- */

static const char *const ftype_names[MELT_FTYPE_COUNT] = {
    [MELT_FTYPE_F32] = "f32",       [MELT_FTYPE_F16] = "f16",
    [MELT_FTYPE_BF16] = "bf16",     [MELT_FTYPE_Q8_0] = "q8_0",
    [MELT_FTYPE_Q4_0] = "q4_0",     [MELT_FTYPE_Q4_K] = "q4_k",
    [MELT_FTYPE_Q5_K] = "q5_k",     [MELT_FTYPE_Q6_K] = "q6_k",
    [MELT_FTYPE_Q4_K_M] = "q4_k_m", [MELT_FTYPE_Q5_K_M] = "q5_k_m",
};

bool melt_ftype_parse(const char *s, enum melt_ftype *out)
{
    if (!s)
        return false;
    for (int i = 0; i < MELT_FTYPE_COUNT; i++) {
        if (strcasecmp(s, ftype_names[i]) == 0) {
            if (out)
                *out = (enum melt_ftype)i;
            return true;
        }
    }
    return false;
}

const char *melt_ftype_name(enum melt_ftype f)
{
    if ((unsigned)f >= MELT_FTYPE_COUNT)
        return "?";
    return ftype_names[f];
}

const char *melt_ftype_names(void)
{
    return "f32, f16, bf16, q8_0, q4_0, q4_k, q5_k, q6_k, q4_k_m, q5_k_m";
}

melt_quantize_params melt_quantize_default_params(void)
{
    melt_quantize_params p = {.n_threads = 0, .verbose = false};
    return p;
}

/* ---- threaded rows ---- */

/* Below this many elements per thread, starting a thread costs more than
 * it saves. */
#define MIN_ELEMS_PER_THREAD (16 * 1024)

typedef struct rows_job {
    uint32_t type;
    const float *x;
    uint8_t *y;
    int64_t n_per_row;
    uint64_t row_bytes;
    int64_t row0, n_rows;
    int rc;
} rows_job;

static void *rows_worker(void *arg)
{
    rows_job *j = arg;
    j->rc = melt_quantize_row_ref(j->type, j->x + j->row0 * j->n_per_row,
                                  j->y + (uint64_t)j->row0 * j->row_bytes,
                                  j->n_rows * j->n_per_row);
    return NULL;
}

static int online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 1024 ? 1024 : (int)n;
}

int melt_quantize_rows(uint32_t type, const float *x, void *y, int64_t n_rows,
                       int64_t n_per_row, int n_threads)
{
    if (!melt_type_supported(type))
        return MELT_EUNSUPPORTED;
    uint64_t row_bytes;
    if (n_rows < 0 || n_per_row < 0 ||
        !melt_type_row_bytes(type, (uint64_t)n_per_row, &row_bytes))
        return MELT_EINVAL;
    if (n_rows == 0 || n_per_row == 0)
        return MELT_OK;
    if (!x || !y || n_rows > INT64_MAX / n_per_row)
        return MELT_EINVAL;

    int nt = n_threads > 0 ? n_threads : online_cpus();
    int64_t by_work = (n_rows * n_per_row) / MIN_ELEMS_PER_THREAD;
    if (by_work < nt)
        nt = by_work < 1 ? 1 : (int)by_work;
    if (nt > n_rows)
        nt = (int)n_rows;

    /* Contiguous row ranges; each block depends only on its own inputs,
     * so the split cannot change the bytes. */
    rows_job jobs_small[16];
    rows_job *jobs = nt <= 16 ? jobs_small : calloc((size_t)nt, sizeof *jobs);
    pthread_t *tids = nt > 1 ? calloc((size_t)nt, sizeof *tids) : NULL;
    bool *started = nt > 1 ? calloc((size_t)nt, sizeof *started) : NULL;
    if (!jobs || (nt > 1 && (!tids || !started))) {
        if (jobs != jobs_small)
            free(jobs);
        free(tids);
        free(started);
        /* no memory for bookkeeping: do it all here */
        return melt_quantize_row_ref(type, x, y, n_rows * n_per_row);
    }
    int64_t per = n_rows / nt, extra = n_rows % nt, row = 0;
    for (int i = 0; i < nt; i++) {
        int64_t n = per + (i < extra ? 1 : 0);
        jobs[i] = (rows_job){type, x, y, n_per_row, row_bytes, row, n, 0};
        row += n;
    }
    for (int i = 1; i < nt; i++)
        started[i] = pthread_create(&tids[i], NULL, rows_worker, &jobs[i]) == 0;
    rows_worker(&jobs[0]);
    int rc = jobs[0].rc;
    for (int i = 1; i < nt; i++) {
        if (started[i])
            pthread_join(tids[i], NULL);
        else
            rows_worker(&jobs[i]); /* could not start a thread: run it here */
        if (!rc)
            rc = jobs[i].rc;
    }
    if (jobs != jobs_small)
        free(jobs);
    free(tids);
    free(started);
    return rc;
}

/* ---- whole file ---- */

/* Rows converted per step, so memory stays bounded for huge tensors. */
#define CHUNK_ELEMS (16u * 1024 * 1024)

typedef struct qtensor {
    const melt_gguf_tensor *src;
    char *name;           /* NUL-terminated copy */
    uint32_t type;        /* output type */
    int layer;            /* N of "blk.N.", -1 for other tensors */
} qtensor;

typedef struct qctx {
    const char *in_path;
    const melt_gguf *g;
    qtensor *t;           /* in output order */
    uint64_t n;
    const melt_quantize_params *params;
    float *f32;           /* CHUNK_ELEMS (or one row, if larger) floats */
    size_t f32_elems;
} qctx;

static bool is_float_type(uint32_t type)
{
    return type == MELT_TYPE_F32 || type == MELT_TYPE_F16 || type == MELT_TYPE_BF16;
}

static char *name_dup(melt_str s)
{
    char *p = malloc((size_t)s.len + 1);
    if (p) {
        memcpy(p, s.ptr, (size_t)s.len);
        p[s.len] = '\0';
    }
    return p;
}

static void shape_str(const melt_gguf_tensor *t, char *buf, size_t n)
{
    size_t off = 0;
    buf[0] = '\0';
    for (uint32_t d = 0; d < t->n_dims && off < n; d++) {
        int k = snprintf(buf + off, n - off, "%s%" PRIu64, d ? ", " : "", t->ne[d]);
        if (k < 0)
            break;
        off += (size_t)k;
    }
}

/* The output bytes of tensor index: converted chunk by chunk of rows
 * (input -> f32 -> output type). The writer prefixes errors with the
 * output path and the tensor's name. */
static int fill_tensor(void *vctx, uint64_t index, void *dst, uint64_t n_bytes,
                       melt_error *err)
{
    qctx *q = vctx;
    if (index >= q->n)
        return melt_errorf(err, MELT_EINVAL, "no tensor %" PRIu64, index);
    const qtensor *qt = &q->t[index];
    const melt_gguf_tensor *s = qt->src;
    if (qt->type == s->type) { /* kept as it is */
        if (n_bytes != s->n_bytes)
            return melt_errorf(err, MELT_EINVAL, "%s: size mismatch", q->in_path);
        memcpy(dst, s->data, (size_t)n_bytes);
        return MELT_OK;
    }
    uint64_t n_per_row = s->ne[0];
    uint64_t n_rows = n_per_row ? s->n_elems / n_per_row : 0;
    uint64_t in_row_bytes, out_row_bytes;
    if (!melt_type_row_bytes(s->type, n_per_row, &in_row_bytes) ||
        !melt_type_row_bytes(qt->type, n_per_row, &out_row_bytes) ||
        out_row_bytes * n_rows != n_bytes)
        return melt_errorf(err, MELT_EINVAL, "%s: size mismatch", q->in_path);
    uint64_t rows_per_chunk = n_per_row ? q->f32_elems / n_per_row : 0;
    if (rows_per_chunk == 0)
        rows_per_chunk = 1;
    const uint8_t *in = s->data;
    uint8_t *out = dst;
    for (uint64_t r = 0; r < n_rows; r += rows_per_chunk) {
        uint64_t nr = n_rows - r < rows_per_chunk ? n_rows - r : rows_per_chunk;
        uint64_t ne = nr * n_per_row;
        int rc = melt_dequantize_row_ref(s->type, in + r * in_row_bytes, q->f32,
                                         (int64_t)ne);
        if (rc)
            return melt_errorf(err, rc, "%s: cannot read %s data", q->in_path,
                               melt_type_name(s->type));
        for (uint64_t i = 0; i < ne; i++)
            if (!isfinite(q->f32[i]))
                return melt_errorf(err, MELT_EFORMAT,
                                   "%s: non-finite value (%g) at element %" PRIu64,
                                   q->in_path, (double)q->f32[i], r * n_per_row + i);
        rc = melt_quantize_rows(qt->type, q->f32, out + r * out_row_bytes,
                                (int64_t)nr, (int64_t)n_per_row,
                                q->params->n_threads);
        if (rc)
            return melt_errorf(err, rc, "%s: cannot convert to %s", q->in_path,
                               melt_type_name(qt->type));
    }
    return MELT_OK;
}

static void progress(const qctx *q, uint64_t i)
{
    const qtensor *qt = &q->t[i];
    const melt_gguf_tensor *s = qt->src;
    char shape[128];
    shape_str(s, shape, sizeof shape);
    uint64_t out_bytes = 0;
    melt_type_row_bytes(qt->type, s->n_elems, &out_bytes);
    fprintf(stderr, "[%4" PRIu64 "/%4" PRIu64 "] %-36s [%s] %s -> %s, %.2f MiB -> %.2f MiB\n",
            i + 1, q->n, qt->name, shape, melt_type_name(s->type), melt_type_name(qt->type),
            (double)s->n_bytes / (1024.0 * 1024.0), (double)out_bytes / (1024.0 * 1024.0));
}

static int fill_verbose(void *vctx, uint64_t index, void *dst, uint64_t n_bytes,
                        melt_error *err)
{
    qctx *q = vctx;
    if (index < q->n)
        progress(q, index);
    return fill_tensor(vctx, index, dst, n_bytes, err);
}

/* Model shape for the mix rules, from ARCH.* keys and the tensor names. */
static void model_shape(const melt_gguf *g, melt_quant_model_shape *shape)
{
    memset(shape, 0, sizeof *shape);
    char arch[64] = "", key[128];
    melt_str a;
    if (melt_gguf_get_str(g, "general.architecture", &a) && a.len < sizeof arch) {
        memcpy(arch, a.ptr, (size_t)a.len);
        arch[a.len] = '\0';
    }
    uint64_t v;
    snprintf(key, sizeof key, "%s.block_count", arch);
    if (melt_gguf_get_u64(g, key, &v) && v <= UINT32_MAX)
        shape->n_layer = (uint32_t)v;
    snprintf(key, sizeof key, "%s.attention.head_count", arch);
    if (melt_gguf_get_u64(g, key, &v) && v <= UINT32_MAX)
        shape->n_head = (uint32_t)v;
    snprintf(key, sizeof key, "%s.attention.head_count_kv", arch);
    if (melt_gguf_get_u64(g, key, &v) && v <= UINT32_MAX)
        shape->n_head_kv = (uint32_t)v;
    else
        shape->n_head_kv = shape->n_head;
    shape->has_output = melt_gguf_find_tensor(g, "output.weight") != NULL;

    if (shape->n_layer == 0) { /* no block_count: count blk.N prefixes */
        for (uint64_t i = 0; i < melt_gguf_n_tensors(g); i++) {
            const melt_gguf_tensor *t = melt_gguf_tensor_at(g, i);
            char buf[32];
            size_t len = t->name.len < sizeof buf - 1 ? (size_t)t->name.len : sizeof buf - 1;
            memcpy(buf, t->name.ptr, len);
            buf[len] = '\0';
            unsigned il;
            if (sscanf(buf, "blk.%u.", &il) == 1 && il < UINT32_MAX && il + 1 > shape->n_layer)
                shape->n_layer = il + 1;
        }
    }
}

/* llama-quantize's output order (its loader keeps weights in a map
 * sorted this way): tensors outside the blocks first, then block by
 * block, by name within each. Same order => same file bytes. */
static int tensor_order(const void *pa, const void *pb)
{
    const qtensor *a = pa, *b = pb;
    if (a->layer != b->layer)
        return a->layer < b->layer ? -1 : 1;
    return strcmp(a->name, b->name);
}

/* Decide every tensor's output type; refuse what melt cannot convert. */
static int plan_tensors(qctx *q, enum melt_ftype ftype, melt_error *err)
{
    melt_quant_model_shape shape;
    model_shape(q->g, &shape);
    for (uint64_t i = 0; i < q->n; i++) {
        qtensor *qt = &q->t[i];
        qt->src = melt_gguf_tensor_at(q->g, i);
        qt->name = name_dup(qt->src->name);
        if (!qt->name)
            return melt_errorf(err, MELT_ENOMEM, "%s: out of memory", q->in_path);
        if (sscanf(qt->name, "blk.%d.", &qt->layer) != 1)
            qt->layer = -1;
    }
    if (q->n > 1)
        qsort(q->t, (size_t)q->n, sizeof *q->t, tensor_order);
    size_t max_row = 0;
    for (uint64_t i = 0; i < q->n; i++) {
        qtensor *qt = &q->t[i];
        const melt_gguf_tensor *s = qt->src;
        if (!melt_quant_tensor_quantizable(qt->name, s->n_dims)) {
            qt->type = s->type; /* norms, biases, 1-D: copied as they are */
            continue;
        }
        qt->type = melt_quant_pick_type(ftype, qt->name, s->n_dims, s->ne, &shape);
        if (qt->type == s->type)
            continue;
        if (!is_float_type(s->type))
            return melt_errorf(err, MELT_EUNSUPPORTED,
                               "%s: tensor '%s' is already %s; melt quantizes only "
                               "from f32, f16 or bf16 weights",
                               q->in_path, qt->name, melt_type_name(s->type));
        if (!melt_type_supported(qt->type))
            return melt_errorf(err, MELT_EUNSUPPORTED, "%s: tensor '%s': cannot write type %s",
                               q->in_path, qt->name, melt_type_name(qt->type));
        if (s->ne[0] > max_row)
            max_row = (size_t)s->ne[0];
    }
    q->f32_elems = max_row > CHUNK_ELEMS ? max_row : CHUNK_ELEMS;
    return MELT_OK;
}

static int set_metadata(melt_gguf_writer *w, const melt_gguf *g, enum melt_ftype ftype,
                        melt_error *err)
{
    int rc = melt_gguf_writer_copy_kvs(w, g, err);
    if (rc)
        return rc;
    /* llama-quantize appends these two last, in this order */
    melt_gguf_writer_remove(w, "general.quantization_version");
    melt_gguf_writer_remove(w, "general.file_type");
    if ((rc = melt_gguf_writer_set_u32(w, "general.quantization_version", 2, err)) ||
        (rc = melt_gguf_writer_set_u32(w, "general.file_type", melt_ftype_to_llama(ftype), err)))
        return rc;
    /* a split input becomes one file */
    melt_gguf_writer_remove(w, "split.no");
    melt_gguf_writer_remove(w, "split.count");
    melt_gguf_writer_remove(w, "split.tensors.count");
    return MELT_OK;
}

int melt_model_quantize(const char *in_path, const char *out_path,
                        enum melt_ftype ftype, const melt_quantize_params *params,
                        melt_error *err)
{
    if (!in_path || !out_path)
        return melt_errorf(err, MELT_EINVAL, "quantize: missing input or output path");
    if ((unsigned)ftype >= MELT_FTYPE_COUNT)
        return melt_errorf(err, MELT_EINVAL, "quantize: unknown type %d (one of %s)",
                           (int)ftype, melt_ftype_names());
    melt_quantize_params defaults = melt_quantize_default_params();
    if (!params)
        params = &defaults;

    melt_gguf *g = NULL;
    int rc = melt_gguf_open(in_path, &g, err);
    if (rc)
        return rc;
    qctx q = {.in_path = in_path, .g = g, .n = melt_gguf_n_tensors(g), .params = params};
    melt_gguf_writer *w = melt_gguf_writer_new();
    q.t = calloc(q.n ? (size_t)q.n : 1, sizeof *q.t);
    if (!w || !q.t) {
        rc = melt_errorf(err, MELT_ENOMEM, "%s: out of memory", in_path);
        goto out;
    }
    if ((rc = plan_tensors(&q, ftype, err)) || (rc = set_metadata(w, g, ftype, err)))
        goto out;

    bool any_converted = false;
    for (uint64_t i = 0; i < q.n; i++) {
        const qtensor *qt = &q.t[i];
        any_converted |= qt->type != qt->src->type;
        /* every tensor goes through the fill callback, one at a time */
        rc = melt_gguf_writer_add_tensor(w, qt->name, qt->type, qt->src->n_dims,
                                         qt->src->ne, NULL, err);
        if (rc)
            goto out;
    }
    if (any_converted) {
        q.f32 = malloc(q.f32_elems * sizeof(float));
        if (!q.f32) {
            rc = melt_errorf(err, MELT_ENOMEM, "%s: out of memory", in_path);
            goto out;
        }
    }
    rc = melt_gguf_writer_write(w, out_path, params->verbose ? fill_verbose : fill_tensor,
                                &q, err);
out:
    if (q.t)
        for (uint64_t i = 0; i < q.n; i++)
            free(q.t[i].name);
    free(q.t);
    free(q.f32);
    melt_gguf_writer_free(w);
    melt_gguf_close(g);
    return rc;
}

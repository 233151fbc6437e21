/* melt_gguf_prefetch: after it, every page of the tensor data of a mapped
 * file is mapped into the process (resident in /proc/self/smaps), where
 * opening the file maps only what the header parse touched. Buffers are
 * left alone. */
#include "testutil.h"

#include "melt/gguf.h"
#include "melt/types.h"

#define N_ELEMS (16u << 20)    /* 16 MiB of I8 tensor data: 4096 pages */
#define PAGE_BYTES 4096u

static const char *write_file(void)
{
    uint8_t *data = malloc(N_ELEMS);
    assert_non_null(data);
    for (size_t i = 0; i < N_ELEMS; i++)
        data[i] = (uint8_t)(i * 7u);
    melt_gguf_writer *w = melt_gguf_writer_new();
    assert_non_null(w);
    melt_error err = {0};
    const uint64_t ne[1] = {N_ELEMS};
    assert_int_equal(melt_gguf_writer_add_tensor(w, "big", MELT_TYPE_I8, 1, ne, data, &err), 0);
    const char *path = scratch_path("prefetch.gguf");
    if (melt_gguf_writer_write(w, path, NULL, NULL, &err))
        fail_msg("write %s: %s", path, err.msg);
    melt_gguf_writer_free(w);
    free(data);
    return path;
}

/* Resident KiB of the mapping holding addr (/proc/self/smaps "Rss:"):
 * pages mapped into this process, whatever the size of their folios. */
static long rss_kib_at(const void *addr)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    assert_non_null(f);
    char line[512];
    bool in = false;
    long kib = -1;
    const uintptr_t a = (uintptr_t)addr;
    while (kib < 0 && fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' '))
            in = a >= lo && a < hi;
        else if (in && sscanf(line, "Rss: %ld kB", &kib) == 1)
            break;
    }
    fclose(f);
    assert_true(kib >= 0);
    return kib;
}

static void prefetch_maps_the_tensor_data(void **state)
{
    (void)state;
    const char *path = write_file();
    melt_gguf *g = NULL;
    melt_error err = {0};
    if (melt_gguf_open(path, &g, &err))
        fail_msg("open %s: %s", path, err.msg);
    const melt_gguf_tensor *t = melt_gguf_find_tensor(g, "big");
    assert_non_null(t);
    assert_int_equal(t->n_bytes, N_ELEMS);
    /* parsing the header maps a few pages (or a folio) of the file, not
     * the tensor data */
    const long before = rss_kib_at(t->data);
    assert_true(before < (long)(N_ELEMS / 1024 / 2));
    melt_gguf_prefetch(g);
    /* every page of the data is mapped now: reading it faults no more */
    assert_true(rss_kib_at(t->data) >= (long)(N_ELEMS / 1024));
    const volatile uint8_t *p = t->data;
    int bad = 0;
    for (size_t i = 0; i < N_ELEMS; i += PAGE_BYTES)
        bad += p[i] != (uint8_t)(i * 7u);
    assert_int_equal(bad, 0);
    melt_gguf_close(g);
    unlink(path);
}

static void prefetch_leaves_buffers_alone(void **state)
{
    (void)state;
    size_t n;
    void *buf = slurp(fixture_path("stories260K/stories260K.gguf"), &n);
    melt_gguf *g = NULL;
    melt_error err = {0};
    if (melt_gguf_open_buffer(buf, n, &g, &err))
        fail_msg("open buffer: %s", err.msg);
    melt_gguf_prefetch(g);
    melt_gguf_close(g);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(prefetch_maps_the_tensor_data),
        cmocka_unit_test(prefetch_leaves_buffers_alone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

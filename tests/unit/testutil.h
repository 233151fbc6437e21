/* Helpers shared by the cmocka unit tests. Tests run from the repo root. */
#ifndef MELT_TESTUTIL_H
#define MELT_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

/* Path of a reference file under tests/fixtures/ (static buffer). */
static inline const char *fixture_path(const char *rel)
{
    static char buf[4096];
    snprintf(buf, sizeof buf, "tests/fixtures/%s", rel);
    return buf;
}

/* A scratch file path unique to this process (static buffer, one at a time
 * per name). Lives under $MELT_TEST_TMP or /tmp. */
static inline const char *scratch_path(const char *name)
{
    static char buf[4096];
    const char *dir = getenv("MELT_TEST_TMP");
    snprintf(buf, sizeof buf, "%s/%ld-%s", dir ? dir : "/tmp", (long)getpid(), name);
    return buf;
}

/* Read a whole file into malloc'd memory; *size set. Fails the test if absent. */
static inline void *slurp(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *p = malloc(n > 0 ? (size_t)n : 1);
    assert_non_null(p);
    if (n > 0 && fread(p, 1, (size_t)n, f) != (size_t)n) fail_msg("short read %s", path);
    fclose(f);
    *size = (size_t)n;
    return p;
}

/* slurp, NUL-terminated (for text searched with strstr). */
static inline char *slurp_text(const char *path, size_t *size)
{
    char *p = slurp(path, size);
    char *z = realloc(p, *size + 1);
    assert_non_null(z);
    z[*size] = '\0';
    return z;
}

/* Deterministic xorshift64* for random test data. */
static inline uint64_t test_rand_u64(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

/* Uniform float in [-1, 1). */
static inline float test_rand_f32(uint64_t *s)
{
    return (float)((test_rand_u64(s) >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

#endif

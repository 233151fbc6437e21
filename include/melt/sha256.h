/* melt — SHA-256 (FIPS 180-4), for model identity in results and for
 * skipping unchanged files when deploying to a device. Dependency-free. */
#ifndef MELT_SHA256_H
#define MELT_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "melt/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct melt_sha256 {
    uint32_t h[8];
    uint64_t n_bytes;
    uint8_t block[64];
    size_t fill;
} melt_sha256;

void melt_sha256_init(melt_sha256 *s);
void melt_sha256_update(melt_sha256 *s, const void *data, size_t n);
void melt_sha256_final(melt_sha256 *s, uint8_t digest[32]);
/* Lower-case hex of digest into hex (65 bytes with the NUL). */
void melt_sha256_hex(const uint8_t digest[32], char hex[65]);
/* Hash a whole file; hex gets 64 lower-case digits. Errors name the path. */
int melt_sha256_file(const char *path, char hex[65], melt_error *err);

#ifdef __cplusplus
}
#endif
#endif

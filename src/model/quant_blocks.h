/* Quantized block layouts, byte for byte as GGUF stores them (ggml's
 * block_* structs). Every field is a byte array or uint16_t, so there is
 * no padding; the static_asserts tie each struct to the geometry in
 * src/model/types.c. Scales (d, dmin, m) are IEEE halves (melt_fp16_*).
 * Multi-byte fields are little-endian on disk; melt only runs on
 * little-endian hosts. */
#ifndef MELT_QUANT_BLOCKS_H
#define MELT_QUANT_BLOCKS_H

#include <assert.h>
#include <stdint.h>

#define MELT_QK4_0 32
#define MELT_QK4_1 32
#define MELT_QK5_0 32
#define MELT_QK5_1 32
#define MELT_QK8_0 32
#define MELT_QK_K 256
#define MELT_K_SCALE_SIZE 12 /* packed 6-bit scales + mins of q4_K/q5_K */

/* q4_0: x = d * (q - 8), q in 0..15; element j in the low nibble of qs[j],
 * element j + 16 in the high nibble. */
typedef struct melt_block_q4_0 {
    uint16_t d;
    uint8_t qs[MELT_QK4_0 / 2];
} melt_block_q4_0;
static_assert(sizeof(melt_block_q4_0) == 18, "q4_0 block size");

/* q4_1: x = d * q + m, q in 0..15, nibbles as q4_0. */
typedef struct melt_block_q4_1 {
    uint16_t d;
    uint16_t m;
    uint8_t qs[MELT_QK4_1 / 2];
} melt_block_q4_1;
static_assert(sizeof(melt_block_q4_1) == 20, "q4_1 block size");

/* q5_0: x = d * (q - 16), q in 0..31: low 4 bits as q4_0, bit 4 of
 * element j in bit j of qh (a little-endian uint32). */
typedef struct melt_block_q5_0 {
    uint16_t d;
    uint8_t qh[4];
    uint8_t qs[MELT_QK5_0 / 2];
} melt_block_q5_0;
static_assert(sizeof(melt_block_q5_0) == 22, "q5_0 block size");

/* q5_1: x = d * q + m, q in 0..31, bits as q5_0. */
typedef struct melt_block_q5_1 {
    uint16_t d;
    uint16_t m;
    uint8_t qh[4];
    uint8_t qs[MELT_QK5_1 / 2];
} melt_block_q5_1;
static_assert(sizeof(melt_block_q5_1) == 24, "q5_1 block size");

/* q8_0: x = d * q, q signed. */
typedef struct melt_block_q8_0 {
    uint16_t d;
    int8_t qs[MELT_QK8_0];
} melt_block_q8_0;
static_assert(sizeof(melt_block_q8_0) == 34, "q8_0 block size");

/* q4_K: 8 sub-blocks of 32; x = d*sc[j]*q - dmin*m[j], q in 0..15.
 * scales[12] packs eight 6-bit (sc, m) pairs: j < 4 in the low 6 bits of
 * scales[j] / scales[j+4]; j >= 4 in the nibbles of scales[j+4] with the
 * top two bits in bits 6-7 of scales[j-4] / scales[j]. qs: for each
 * 64-element chunk, 32 bytes with elements 0..31 in the low nibbles and
 * 32..63 in the high nibbles. */
typedef struct melt_block_q4_K {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[MELT_K_SCALE_SIZE];
    uint8_t qs[MELT_QK_K / 2];
} melt_block_q4_K;
static_assert(sizeof(melt_block_q4_K) == 144, "q4_K block size");

/* q5_K: as q4_K with a fifth bit: element n*64 + j (j < 32) has its bit 4
 * in bit 2n of qh[j], element n*64 + 32 + j in bit 2n+1. */
typedef struct melt_block_q5_K {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[MELT_K_SCALE_SIZE];
    uint8_t qh[MELT_QK_K / 8];
    uint8_t qs[MELT_QK_K / 2];
} melt_block_q5_K;
static_assert(sizeof(melt_block_q5_K) == 176, "q5_K block size");

/* q6_K: 16 sub-blocks of 16; x = d * scales[j] * (q - 32), q in 0..63.
 * Per 128-element half: ql[0..63] hold the low nibbles (elements l and
 * l+64 in ql[l], l+32 and l+96 in ql[l+32]), qh[0..31] the top two bits
 * of elements l, l+32, l+64, l+96 in bit pairs 0, 2, 4, 6. */
typedef struct melt_block_q6_K {
    uint8_t ql[MELT_QK_K / 2];
    uint8_t qh[MELT_QK_K / 4];
    int8_t scales[MELT_QK_K / 16];
    uint16_t d;
} melt_block_q6_K;
static_assert(sizeof(melt_block_q6_K) == 210, "q6_K block size");

/* q8_K: activations for k-quant dot products; d is a float here. */
typedef struct melt_block_q8_K {
    float d;
    int8_t qs[MELT_QK_K];
    int16_t bsums[MELT_QK_K / 16];
} melt_block_q8_K;
static_assert(sizeof(melt_block_q8_K) == 292, "q8_K block size");

#endif

#include "melt/types.h"

#include <stdint.h>

/* Block geometry of every GGUF tensor type, so files of any type can be
 * sized and checked even when melt cannot compute with that type. */
static const melt_type_traits type_table[MELT_TYPE_COUNT] = {
    [MELT_TYPE_F32] = {"f32", 1, 4, false},
    [MELT_TYPE_F16] = {"f16", 1, 2, false},
    [MELT_TYPE_Q4_0] = {"q4_0", 32, 18, true},
    [MELT_TYPE_Q4_1] = {"q4_1", 32, 20, true},
    [MELT_TYPE_Q5_0] = {"q5_0", 32, 22, true},
    [MELT_TYPE_Q5_1] = {"q5_1", 32, 24, true},
    [MELT_TYPE_Q8_0] = {"q8_0", 32, 34, true},
    [MELT_TYPE_Q8_1] = {"q8_1", 32, 36, true},
    [MELT_TYPE_Q2_K] = {"q2_K", 256, 84, true},
    [MELT_TYPE_Q3_K] = {"q3_K", 256, 110, true},
    [MELT_TYPE_Q4_K] = {"q4_K", 256, 144, true},
    [MELT_TYPE_Q5_K] = {"q5_K", 256, 176, true},
    [MELT_TYPE_Q6_K] = {"q6_K", 256, 210, true},
    [MELT_TYPE_Q8_K] = {"q8_K", 256, 292, true},
    [MELT_TYPE_IQ2_XXS] = {"iq2_xxs", 256, 66, true},
    [MELT_TYPE_IQ2_XS] = {"iq2_xs", 256, 74, true},
    [MELT_TYPE_IQ3_XXS] = {"iq3_xxs", 256, 98, true},
    [MELT_TYPE_IQ1_S] = {"iq1_s", 256, 50, true},
    [MELT_TYPE_IQ4_NL] = {"iq4_nl", 32, 18, true},
    [MELT_TYPE_IQ3_S] = {"iq3_s", 256, 110, true},
    [MELT_TYPE_IQ2_S] = {"iq2_s", 256, 82, true},
    [MELT_TYPE_IQ4_XS] = {"iq4_xs", 256, 136, true},
    [MELT_TYPE_I8] = {"i8", 1, 1, false},
    [MELT_TYPE_I16] = {"i16", 1, 2, false},
    [MELT_TYPE_I32] = {"i32", 1, 4, false},
    [MELT_TYPE_I64] = {"i64", 1, 8, false},
    [MELT_TYPE_F64] = {"f64", 1, 8, false},
    [MELT_TYPE_IQ1_M] = {"iq1_m", 256, 56, true},
    [MELT_TYPE_BF16] = {"bf16", 1, 2, false},
    [MELT_TYPE_TQ1_0] = {"tq1_0", 256, 54, true},
    [MELT_TYPE_TQ2_0] = {"tq2_0", 256, 66, true},
    [MELT_TYPE_MXFP4] = {"mxfp4", 32, 17, true},
};

const melt_type_traits *melt_type_traits_of(uint32_t type)
{
    if (type >= MELT_TYPE_COUNT || type_table[type].name == NULL)
        return NULL;
    return &type_table[type];
}

const char *melt_type_name(uint32_t type)
{
    const melt_type_traits *t = melt_type_traits_of(type);
    return t ? t->name : "?";
}

bool melt_type_row_bytes(uint32_t type, uint64_t n_elems, uint64_t *bytes_out)
{
    const melt_type_traits *t = melt_type_traits_of(type);
    if (!t || n_elems % t->block_elems != 0)
        return false;
    uint64_t blocks = n_elems / t->block_elems;
    if (blocks > UINT64_MAX / t->block_bytes)
        return false;
    *bytes_out = blocks * t->block_bytes;
    return true;
}

/* Inverted-dropout masks for fastnn._kernels' training step: fastnn._contract.keep_bits, in one
 * loop without branches, compiled twice: for baseline x86-64 (SSE2: four 32-bit lanes, its
 * multiplies emulated) and, with a target attribute, for AVX2 (eight lanes, one multiply
 * instruction each), used when the CPU has it (fastnn_simd_available, microkernels.h). Integer
 * hashing and one multiply per element: both give the same bits.
 */
#ifndef FASTNN_DROPOUT_H
#define FASTNN_DROPOUT_H

#include <stddef.h>
#include <stdint.h>
#include "microkernels.h"

static inline uint32_t fastnn_lowbias32(uint32_t x) {
    x ^= x >> 16;
    x *= 0x7FEB352DU;
    x ^= x >> 15;
    x *= 0x846CA68BU;
    return x ^ (x >> 16);
}

/* mask[e] = scale where keep_bits(base, e) >= threshold, else 0; dropped[e] = a[e] * mask[e]. */
#define FASTNN_DROPOUT_LOOP(T)                                                                   \
    const uint32_t low = (uint32_t)base, high = (uint32_t)(base >> 32);                          \
    for (ptrdiff_t e = 0; e < size; e++) {                                                       \
        T m = fastnn_lowbias32(fastnn_lowbias32((uint32_t)e + low) ^ high) >= threshold ? scale : (T)0; \
        mask[e] = m;                                                                             \
        dropped[e] = a[e] * m;                                                                   \
    }

#define FASTNN_DROPOUT(NAME, T, TARGET)                                                          \
    TARGET static void NAME(const T* restrict a, T* restrict dropped, T* restrict mask,          \
                            ptrdiff_t size, uint64_t base, uint32_t threshold, T scale) {        \
        FASTNN_DROPOUT_LOOP(T)                                                                   \
    }

FASTNN_DROPOUT(fastnn_dropout_base_f, float, )
FASTNN_DROPOUT(fastnn_dropout_base_d, double, )
#if FASTNN_SIMD
FASTNN_DROPOUT(fastnn_dropout_avx2_f, float, FASTNN_TARGET)
FASTNN_DROPOUT(fastnn_dropout_avx2_d, double, FASTNN_TARGET)
#else  /* no AVX2 build possible: simd is never set, the baseline loop stands in */
#define fastnn_dropout_avx2_f fastnn_dropout_base_f
#define fastnn_dropout_avx2_d fastnn_dropout_base_d
#endif

/* The entry points, by float type: the AVX2 loop when simd (the CPU has it and it is on), else the baseline one. */
#define FASTNN_DROPOUT_ENTRY(NAME, T, BASE, AVX2)                                                 \
    static void NAME(const T* a, T* dropped, T* mask, ptrdiff_t size, uint64_t base, uint32_t threshold, \
                     T scale, int simd) {                                                         \
        (simd ? AVX2 : BASE)(a, dropped, mask, size, base, threshold, scale);                     \
    }

FASTNN_DROPOUT_ENTRY(fastnn_dropout_f, float, fastnn_dropout_base_f, fastnn_dropout_avx2_f)
FASTNN_DROPOUT_ENTRY(fastnn_dropout_d, double, fastnn_dropout_base_d, fastnn_dropout_avx2_d)

#endif

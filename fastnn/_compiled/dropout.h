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
#endif

static void fastnn_dropout_f(const float* a, float* dropped, float* mask, ptrdiff_t size, uint64_t base,
                             uint32_t threshold, float scale, int simd) {
#if FASTNN_SIMD
    if (simd) {
        fastnn_dropout_avx2_f(a, dropped, mask, size, base, threshold, scale);
        return;
    }
#endif
    (void)simd;
    fastnn_dropout_base_f(a, dropped, mask, size, base, threshold, scale);
}

static void fastnn_dropout_d(const double* a, double* dropped, double* mask, ptrdiff_t size, uint64_t base,
                             uint32_t threshold, double scale, int simd) {
#if FASTNN_SIMD
    if (simd) {
        fastnn_dropout_avx2_d(a, dropped, mask, size, base, threshold, scale);
        return;
    }
#endif
    (void)simd;
    fastnn_dropout_base_d(a, dropped, mask, size, base, threshold, scale);
}

#endif

/* Matrix-product micro-kernels for fastnn._kernels, in AVX2 + FMA.
 *
 * The products of small networks are small: a 32-row batch through 32-wide layers is 32x32x32.
 * At such sizes OpenBLAS spends as long packing its operands into its own layout as multiplying
 * them, plus a fixed cost per call; fastnn's portable loops are built for baseline x86-64 (SSE2,
 * no FMA) and run at a quarter of the vector width. These kernels read the operands where they
 * lie and keep a block of the output in registers: 4 rows by 2 vectors for `rows`, 4 x 2 dot
 * products for `dots`. Once the streamed operand leaves the caches OpenBLAS's blocking wins, so
 * matmul.pxi's path chooser keeps it for large operands (bench/bench_kernels.py measures the cut).
 *
 * Compiled with a target attribute (GCC, Clang) next to the baseline code, and used only when the
 * CPU has AVX2 and FMA (fastnn_simd_available); elsewhere fastnn uses its loops and BLAS.
 * This file defines the dispatch and includes microkernel_body.h once per float type.
 */
#ifndef FASTNN_MICROKERNELS_H
#define FASTNN_MICROKERNELS_H

#include <stddef.h>
#include <string.h>
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#endif

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define FASTNN_SIMD 1
#define FASTNN_TARGET __attribute__((target("avx2,fma")))
#else
#define FASTNN_SIMD 0
#define FASTNN_TARGET
#endif

static int fastnn_simd_available(void) {
#if FASTNN_SIMD
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

#define FASTNN_CAT_(a, b) a##b
#define FASTNN_CAT(a, b) FASTNN_CAT_(a, b)

#define FNN_T float
#define FNN_IS_FLOAT 1
#define FNN_SUFFIX _f
#include "microkernel_body.h"
#undef FNN_T
#undef FNN_IS_FLOAT
#undef FNN_SUFFIX

#define FNN_T double
#define FNN_IS_FLOAT 0
#define FNN_SUFFIX _d
#include "microkernel_body.h"
#undef FNN_T
#undef FNN_IS_FLOAT
#undef FNN_SUFFIX

#endif

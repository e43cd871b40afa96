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
 * CPU has AVX2 and FMA (fastnn_simd_available); elsewhere fastnn uses its loops and BLAS. Each
 * kernel exists at two widths: AVX2's 32-byte vectors and, for CPUs with AVX-512 F and DQ
 * (fastnn_simd512_available), 64-byte ones: the same code, with twice the lanes.
 * This file defines the dispatch and includes microkernel_body.h once per float type and width.
 */
#ifndef FASTNN_MICROKERNELS_H
#define FASTNN_MICROKERNELS_H

#include <stddef.h>
#include <string.h>
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>
#endif

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define FASTNN_SIMD 1
#define FASTNN_TARGET __attribute__((target("avx2,fma")))
#define FASTNN_TARGET512 __attribute__((target("avx512f,avx512dq,avx2,fma")))
#else
#define FASTNN_SIMD 0
#define FASTNN_TARGET
#define FASTNN_TARGET512
#endif

static int fastnn_simd_available(void) {
#if FASTNN_SIMD
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

/* AVX-512 (F and DQ) besides AVX2 + FMA: the micro-kernels' 64-byte versions. */
static int fastnn_simd512_available(void) {
#if FASTNN_SIMD
    __builtin_cpu_init();
    return fastnn_simd_available() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq");
#else
    return 0;
#endif
}

/* The CPU's family as CPUID reports it (base family plus extended family), 0 where unknown. */
static unsigned fastnn_cpu_family(void) {
#if FASTNN_SIMD
    unsigned eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx))
        return 0;
    unsigned family = (eax >> 8) & 0xf;
    return family == 0xf ? family + ((eax >> 20) & 0xff) : family;
#else
    return 0;
#endif
}

/* Whether the 64-byte versions are the default: everywhere they exist except on AMD's cores before
 * Zen 5 (family 0x1A), which run a 512-bit operation as two 256-bit halves (bench/bench_mlp.py's
 * micro-kernel widths rows measure both). FASTNN_SIMD=avx2 or avx512 chooses either anyway. */
static int fastnn_simd512_preferred(void) {
#if FASTNN_SIMD
    return fastnn_simd512_available() && (!__builtin_cpu_is("amd") || fastnn_cpu_family() >= 0x1a);
#else
    return 0;
#endif
}

/* The CPU features fastnn reports (fastnn.show_config), one bit each, in FASTNN_FEATURE_NAMES' order. */
#define FASTNN_FEATURE_NAMES "avx2 fma avx512f avx512dq avx512bf16 amx-tile amx-bf16"
static unsigned fastnn_cpu_features(void) {
#if FASTNN_SIMD
    __builtin_cpu_init();
    return (unsigned)((__builtin_cpu_supports("avx2") ? 1 : 0) | (__builtin_cpu_supports("fma") ? 2 : 0)
                      | (__builtin_cpu_supports("avx512f") ? 4 : 0) | (__builtin_cpu_supports("avx512dq") ? 8 : 0)
                      | (__builtin_cpu_supports("avx512bf16") ? 16 : 0) | (__builtin_cpu_supports("amx-tile") ? 32 : 0)
                      | (__builtin_cpu_supports("amx-bf16") ? 64 : 0));
#else
    return 0;
#endif
}

#define FASTNN_CAT_(a, b) a##b
#define FASTNN_CAT(a, b) FASTNN_CAT_(a, b)

#define FNN_T float
#define FNN_IS_FLOAT 1
#define FNN_VBYTES 32
#define FNN_TARGET_OF FASTNN_TARGET
#define FNN_SUFFIX _f
#include "microkernel_body.h"
#undef FNN_SUFFIX
#define FNN_SUFFIX _f512
#undef FNN_VBYTES
#define FNN_VBYTES 64
#undef FNN_TARGET_OF
#define FNN_TARGET_OF FASTNN_TARGET512
#include "microkernel_body.h"
#undef FNN_T
#undef FNN_IS_FLOAT
#undef FNN_SUFFIX
#undef FNN_VBYTES
#undef FNN_TARGET_OF

#define FNN_T double
#define FNN_IS_FLOAT 0
#define FNN_VBYTES 32
#define FNN_TARGET_OF FASTNN_TARGET
#define FNN_SUFFIX _d
#include "microkernel_body.h"
#undef FNN_SUFFIX
#define FNN_SUFFIX _d512
#undef FNN_VBYTES
#define FNN_VBYTES 64
#undef FNN_TARGET_OF
#define FNN_TARGET_OF FASTNN_TARGET512
#include "microkernel_body.h"
#undef FNN_T
#undef FNN_IS_FLOAT
#undef FNN_SUFFIX
#undef FNN_VBYTES
#undef FNN_TARGET_OF

#endif

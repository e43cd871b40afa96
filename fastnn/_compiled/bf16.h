/* bfloat16 matrix products with float32 sums, for bf16.pxi's native path.
 *
 * The operands of a product are rounded from float32 to bfloat16 (round to nearest even, float32
 * subnormals to signed zero, NaN to a quiet NaN) and the sums are in float32: what AVX512-BF16's
 * vcvtne2ps2bf16 and vdpbf16ps do, whatever MXCSR says. The emulation path (fastnn_bf16_round and
 * float32 products) defines the result; the native one must agree with it to float32 rounding.
 *
 * vdpbf16ps multiplies pairs of bfloat16 held in one 32-bit lane, so an operand is packed once in
 * the "pairs" layout (fastnn_bf16_pack): the two bfloat16 of one 32-bit word are two consecutive
 * elements along the summed dimension. fastnn_bf16_gemm then keeps an 8 x 32 block of C in 16
 * registers, broadcasts one pair of A per row and reads two vectors of B per pair.
 *
 * The conversions are portable; the pack's vector paths and the product are compiled with a target
 * attribute (the build is baseline x86-64) and used only where fastnn_bf16_native_available().
 * Nothing here keeps state between calls: calls on disjoint outputs may run in several threads.
 */
#ifndef FASTNN_BF16_H
#define FASTNN_BF16_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifndef FASTNN_SIMD
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define FASTNN_SIMD 1
#else
#define FASTNN_SIMD 0
#endif
#endif

#if FASTNN_SIMD
#include <immintrin.h>
/* avx512bw for vpermw in the pack; every CPU with AVX512-BF16 has it. */
#define FASTNN_BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512bf16")))
#define FASTNN_BF16_KERNEL static inline __attribute__((always_inline, target("avx512f,avx512bw,avx512bf16")))
#endif

/* Pairs of the summed dimension per block of the product: a 32-column panel of B, KC x 128 bytes,
 * stays in L1 while the rows of A stream past it. */
#ifndef FASTNN_BF16_KC
#define FASTNN_BF16_KC 256
#endif
/* Rows of A per block: MC x KC pairs of A stay in L2 while every panel of B reads them. */
#ifndef FASTNN_BF16_MC
#define FASTNN_BF16_MC 512
#endif

/* ---- Conversions (portable) ---------------------------------------------------------------- */

static inline uint16_t fastnn_bf16_from_float(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7f800000u) == 0)              /* zero or subnormal: the hardware flushes to zero */
        return (uint16_t)((u >> 16) & 0x8000u);
    if ((u & 0x7fffffffu) > 0x7f800000u)     /* NaN: truncate, and quiet it */
        return (uint16_t)((u >> 16) | 0x0040u);
    u += 0x7fffu + ((u >> 16) & 1u);         /* nearest even; FLT_MAX rounds up to inf */
    return (uint16_t)(u >> 16);
}

static inline float fastnn_bf16_to_float(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* The same rounding on the bits of a float32, returning the rounded float32's bits. Branch-free so
 * that gcc vectorises the loop below with SSE2's integer operations (the signed compare is safe:
 * both sides are below 2^31). */
static inline uint32_t fastnn_bf16_round_bits_(uint32_t u) {
    uint32_t r = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    uint32_t q = (u | 0x00400000u) & 0xffff0000u;
    r = (int32_t)(u & 0x7fffffffu) > (int32_t)0x7f800000 ? q : r;
    r = (u & 0x7f800000u) == 0 ? (u & 0x80000000u) : r;
    return r;
}

/* gcc's overlap check lets dst == src through to the vector loop. */
static void fastnn_bf16_round(const float* src, float* dst, ptrdiff_t n) {
    for (ptrdiff_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, src + i, sizeof u);
        u = fastnn_bf16_round_bits_(u);
        memcpy(dst + i, &u, sizeof u);
    }
}

static int fastnn_bf16_native_available(void) {
#if FASTNN_SIMD
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
           && __builtin_cpu_supports("avx512bf16");
#else
    return 0;
#endif
}

/* ---- Pack ---------------------------------------------------------------------------------- */

static void fastnn_bf16_pack_scalar_(const float* src, ptrdiff_t rs, ptrdiff_t cs, ptrdiff_t k, ptrdiff_t n,
                                     uint32_t* out, ptrdiff_t ldo) {
    for (ptrdiff_t p = 0; 2 * p < k; p++) {
        const float* r0 = src + 2 * p * rs;
        uint32_t* o = out + p * ldo;
        if (2 * p + 1 < k) {
            const float* r1 = r0 + rs;
            for (ptrdiff_t j = 0; j < n; j++)
                o[j] = (uint32_t)fastnn_bf16_from_float(r0[j * cs])
                       | (uint32_t)fastnn_bf16_from_float(r1[j * cs]) << 16;
        } else {
            for (ptrdiff_t j = 0; j < n; j++)
                o[j] = fastnn_bf16_from_float(r0[j * cs]);
        }
    }
}

#if FASTNN_SIMD
static inline __mmask16 fastnn_bf16_mask_(ptrdiff_t count) {
    return count >= 16 ? (__mmask16)0xffff : count <= 0 ? (__mmask16)0 : (__mmask16)((1u << count) - 1u);
}

/* cs == 1: a pair row is two rows of M, converted together and interleaved word by word. */
FASTNN_BF16_TARGET
static void fastnn_bf16_pack_rows_(const float* src, ptrdiff_t rs, ptrdiff_t k, ptrdiff_t n,
                                   uint32_t* out, ptrdiff_t ldo) {
    const __m512i zip = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
                                         23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    for (ptrdiff_t p = 0; 2 * p < k; p++) {
        const float* r0 = src + 2 * p * rs;
        const float* r1 = r0 + rs;
        int two = 2 * p + 1 < k;
        uint32_t* o = out + p * ldo;
        ptrdiff_t j = 0;
        for (; j + 16 <= n; j += 16) {
            __m512 lo = _mm512_loadu_ps(r0 + j);
            __m512 hi = two ? _mm512_loadu_ps(r1 + j) : _mm512_setzero_ps();
            __m512i w = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
            _mm512_storeu_si512((void*)(o + j), _mm512_permutexvar_epi16(zip, w));
        }
        if (j < n) {
            __mmask16 mk = fastnn_bf16_mask_(n - j);
            __m512 lo = _mm512_maskz_loadu_ps(mk, r0 + j);
            __m512 hi = two ? _mm512_maskz_loadu_ps(mk, r1 + j) : _mm512_setzero_ps();
            __m512i w = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
            _mm512_mask_storeu_epi32((void*)(o + j), mk, _mm512_permutexvar_epi16(zip, w));
        }
    }
}

/* rs == 1: a column of M is contiguous, so 32 consecutive floats of it make 16 consecutive pairs
 * of one output column. 16 such columns are converted, transposed as a 16 x 16 block of words and
 * stored as 16 row pieces of 64 bytes. */
FASTNN_BF16_TARGET
static void fastnn_bf16_pack_cols_(const float* src, ptrdiff_t cs, ptrdiff_t k, ptrdiff_t n,
                                   uint32_t* out, ptrdiff_t ldo) {
    ptrdiff_t k2 = (k + 1) / 2;
    for (ptrdiff_t j0 = 0; j0 < n; j0 += 16) {
        ptrdiff_t nj = n - j0 < 16 ? n - j0 : 16;
        __mmask16 mj = fastnn_bf16_mask_(nj);
        for (ptrdiff_t p0 = 0; p0 < k2; p0 += 16) {
            ptrdiff_t np = k2 - p0 < 16 ? k2 - p0 : 16;
            ptrdiff_t nf = k - 2 * p0;
            __m512i r[16], t[16];
            if (nf >= 32) {
                for (int j = 0; j < 16; j++) {
                    if (j < nj) {
                        const float* c = src + (j0 + j) * cs + 2 * p0;
                        r[j] = (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(c + 16), _mm512_loadu_ps(c));
                    } else {
                        r[j] = _mm512_setzero_si512();
                    }
                }
            } else {
                __mmask16 m0 = fastnn_bf16_mask_(nf), m1 = fastnn_bf16_mask_(nf - 16);
                for (int j = 0; j < 16; j++) {
                    if (j < nj) {
                        const float* c = src + (j0 + j) * cs + 2 * p0;
                        r[j] = (__m512i)_mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(m1, c + 16),
                                                            _mm512_maskz_loadu_ps(m0, c));
                    } else {
                        r[j] = _mm512_setzero_si512();
                    }
                }
            }
            for (int j = 0; j < 16; j += 2) {
                t[j] = _mm512_unpacklo_epi32(r[j], r[j + 1]);
                t[j + 1] = _mm512_unpackhi_epi32(r[j], r[j + 1]);
            }
            for (int j = 0; j < 16; j += 4) {
                r[j] = _mm512_unpacklo_epi64(t[j], t[j + 2]);
                r[j + 1] = _mm512_unpackhi_epi64(t[j], t[j + 2]);
                r[j + 2] = _mm512_unpacklo_epi64(t[j + 1], t[j + 3]);
                r[j + 3] = _mm512_unpackhi_epi64(t[j + 1], t[j + 3]);
            }
            /* r[4g + s] now holds, in 128-bit lane L, rows 4g..4g+3 of column 4L + s. */
            for (int s = 0; s < 4; s++) {
                t[s] = _mm512_shuffle_i32x4(r[s], r[4 + s], 0x88);
                t[4 + s] = _mm512_shuffle_i32x4(r[s], r[4 + s], 0xdd);
                t[8 + s] = _mm512_shuffle_i32x4(r[8 + s], r[12 + s], 0x88);
                t[12 + s] = _mm512_shuffle_i32x4(r[8 + s], r[12 + s], 0xdd);
            }
            for (int s = 0; s < 4; s++) {
                r[s] = _mm512_shuffle_i32x4(t[s], t[8 + s], 0x88);
                r[8 + s] = _mm512_shuffle_i32x4(t[s], t[8 + s], 0xdd);
                r[4 + s] = _mm512_shuffle_i32x4(t[4 + s], t[12 + s], 0x88);
                r[12 + s] = _mm512_shuffle_i32x4(t[4 + s], t[12 + s], 0xdd);
            }
            uint32_t* o = out + p0 * ldo + j0;
            if (nj == 16) {
                for (int q = 0; q < 16; q++)
                    if (q < np)
                        _mm512_storeu_si512((void*)(o + q * ldo), r[q]);
            } else {
                for (int q = 0; q < 16; q++)
                    if (q < np)
                        _mm512_mask_storeu_epi32((void*)(o + q * ldo), mj, r[q]);
            }
        }
    }
}
#endif

static void fastnn_bf16_pack(const float* src, ptrdiff_t rs, ptrdiff_t cs, ptrdiff_t k, ptrdiff_t n,
                             uint32_t* out, ptrdiff_t ldo) {
    if (k <= 0 || n <= 0)
        return;
#if FASTNN_SIMD
    if (fastnn_bf16_native_available()) {
        if (cs == 1) {
            fastnn_bf16_pack_rows_(src, rs, k, n, out, ldo);
            return;
        }
        if (rs == 1) {
            fastnn_bf16_pack_cols_(src, cs, k, n, out, ldo);
            return;
        }
    }
#endif
    fastnn_bf16_pack_scalar_(src, rs, cs, k, n, out, ldo);
}

/* ---- Rows in pairs --------------------------------------------------------------------------- */

/* out (m rows of (k+1)/2 words) = the rows of src (m x k, row-major) in bfloat16: consecutive
 * elements of a row are already the pairs a product summing over k reads (A with a_row = (k+1)/2,
 * a_pair = 1), so this is a conversion, without the interleave of fastnn_bf16_pack. An odd k's
 * last word has a zero high half. */
static void fastnn_bf16_convert_scalar_(const float* src, ptrdiff_t m, ptrdiff_t k, uint32_t* out) {
    ptrdiff_t k2 = (k + 1) / 2;
    for (ptrdiff_t i = 0; i < m; i++) {
        const float* r = src + i * k;
        uint32_t* o = out + i * k2;
        for (ptrdiff_t p = 0; p < k / 2; p++)
            o[p] = (uint32_t)fastnn_bf16_from_float(r[2 * p]) | (uint32_t)fastnn_bf16_from_float(r[2 * p + 1]) << 16;
        if (k % 2)
            o[k2 - 1] = fastnn_bf16_from_float(r[k - 1]);
    }
}

#if FASTNN_SIMD
FASTNN_BF16_TARGET
static void fastnn_bf16_convert_vector_(const float* src, ptrdiff_t m, ptrdiff_t k, uint32_t* out) {
    ptrdiff_t k2 = (k + 1) / 2;
    for (ptrdiff_t i = 0; i < m; i++) {
        const float* r = src + i * k;
        uint32_t* o = out + i * k2;
        ptrdiff_t j = 0;
        for (; j + 32 <= k; j += 32)  /* 32 floats: 16 words, in order */
            _mm512_storeu_si512((void*)(o + j / 2),
                                (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(r + j + 16), _mm512_loadu_ps(r + j)));
        if (j < k) {
            __m512 lo = _mm512_maskz_loadu_ps(fastnn_bf16_mask_(k - j), r + j);
            __m512 hi = _mm512_maskz_loadu_ps(fastnn_bf16_mask_(k - j - 16), r + j + 16);
            _mm512_mask_storeu_epi32((void*)(o + j / 2), fastnn_bf16_mask_((k - j + 1) / 2),
                                     (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
        }
    }
}
#endif

static void fastnn_bf16_convert(const float* src, ptrdiff_t m, ptrdiff_t k, uint32_t* out) {
#if FASTNN_SIMD
    if (fastnn_bf16_native_available()) {
        fastnn_bf16_convert_vector_(src, m, k, out);
        return;
    }
#endif
    fastnn_bf16_convert_scalar_(src, m, k, out);
}

/* ---- Product ------------------------------------------------------------------------------- */

#if FASTNN_SIMD
#define FASTNN_BF16_R1(X) X(0)
#define FASTNN_BF16_R2(X) X(0) X(1)
#define FASTNN_BF16_R4(X) X(0) X(1) X(2) X(3)
#define FASTNN_BF16_R8(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)

#define FASTNN_BF16_DECL2(r)                                                                   \
    __m512 c##r##a = add ? _mm512_maskz_loadu_ps(m0, C + (r) * ldc) : _mm512_setzero_ps();      \
    __m512 c##r##b = add ? _mm512_maskz_loadu_ps(m1, C + (r) * ldc + 16) : _mm512_setzero_ps();
#define FASTNN_BF16_STEP2(r)                                                                   \
    {                                                                                          \
        __m512bh a_ = (__m512bh)_mm512_set1_epi32((int)ap[(r) * a_row]);                        \
        c##r##a = _mm512_dpbf16_ps(c##r##a, a_, b0);                                           \
        c##r##b = _mm512_dpbf16_ps(c##r##b, a_, b1);                                           \
    }
#define FASTNN_BF16_STORE2(r)                                                                  \
    _mm512_mask_storeu_ps(C + (r) * ldc, m0, c##r##a);                                         \
    _mm512_mask_storeu_ps(C + (r) * ldc + 16, m1, c##r##b);

#define FASTNN_BF16_DECL1(r)                                                                   \
    __m512 c##r##a = add ? _mm512_maskz_loadu_ps(m0, C + (r) * ldc) : _mm512_setzero_ps();
#define FASTNN_BF16_STEP1(r)                                                                   \
    c##r##a = _mm512_dpbf16_ps(c##r##a, (__m512bh)_mm512_set1_epi32((int)ap[(r) * a_row]), b0);
#define FASTNN_BF16_STORE1(r) _mm512_mask_storeu_ps(C + (r) * ldc, m0, c##r##a);

/* C's rows times a B panel packed contiguously (kc pairs x 32 words, or x 16 for the narrow one),
 * stored under the column masks. After the first k block (add) the sums start from C, so they run
 * in the same order as without blocking. */
#define FASTNN_BF16_KERNEL32(NAME, ROWS)                                                       \
    FASTNN_BF16_KERNEL void NAME(const uint32_t* A, ptrdiff_t a_row, ptrdiff_t a_pair,          \
                                 const uint32_t* bp, ptrdiff_t kc, float* C, ptrdiff_t ldc,     \
                                 __mmask16 m0, __mmask16 m1, int add) {                         \
        ROWS(FASTNN_BF16_DECL2)                                                                \
        const uint32_t* ap = A;                                                                \
        for (ptrdiff_t p = 0; p < kc; p++, ap += a_pair, bp += 32) {                           \
            __m512bh b0 = (__m512bh)_mm512_load_si512((const void*)bp);                         \
            __m512bh b1 = (__m512bh)_mm512_load_si512((const void*)(bp + 16));                  \
            ROWS(FASTNN_BF16_STEP2)                                                            \
        }                                                                                      \
        ROWS(FASTNN_BF16_STORE2)                                                               \
    }
#define FASTNN_BF16_KERNEL16(NAME, ROWS)                                                       \
    FASTNN_BF16_KERNEL void NAME(const uint32_t* A, ptrdiff_t a_row, ptrdiff_t a_pair,          \
                                 const uint32_t* bp, ptrdiff_t kc, float* C, ptrdiff_t ldc,     \
                                 __mmask16 m0, int add) {                                       \
        ROWS(FASTNN_BF16_DECL1)                                                                \
        const uint32_t* ap = A;                                                                \
        for (ptrdiff_t p = 0; p < kc; p++, ap += a_pair, bp += 16) {                           \
            __m512bh b0 = (__m512bh)_mm512_load_si512((const void*)bp);                         \
            ROWS(FASTNN_BF16_STEP1)                                                            \
        }                                                                                      \
        ROWS(FASTNN_BF16_STORE1)                                                               \
    }

FASTNN_BF16_KERNEL32(fastnn_bf16_k8x32_, FASTNN_BF16_R8)
FASTNN_BF16_KERNEL32(fastnn_bf16_k4x32_, FASTNN_BF16_R4)
FASTNN_BF16_KERNEL32(fastnn_bf16_k2x32_, FASTNN_BF16_R2)
FASTNN_BF16_KERNEL32(fastnn_bf16_k1x32_, FASTNN_BF16_R1)
FASTNN_BF16_KERNEL16(fastnn_bf16_k8x16_, FASTNN_BF16_R8)
FASTNN_BF16_KERNEL16(fastnn_bf16_k4x16_, FASTNN_BF16_R4)
FASTNN_BF16_KERNEL16(fastnn_bf16_k2x16_, FASTNN_BF16_R2)
FASTNN_BF16_KERNEL16(fastnn_bf16_k1x16_, FASTNN_BF16_R1)

/* One block of the product: rows [0, mc) of A against columns [0, n) of B over kc pairs. Inlined
 * twice, with a_row the constant 1 (the caller's case: the row pairs of A are adjacent words) and
 * with a_row a variable. */
FASTNN_BF16_KERNEL void fastnn_bf16_block_(const uint32_t* A, ptrdiff_t a_row, ptrdiff_t a_pair,
                                            const uint32_t* B, ptrdiff_t ldb, float* C, ptrdiff_t ldc,
                                            ptrdiff_t mc, ptrdiff_t n, ptrdiff_t kc, int add,
                                            uint32_t* bp) {
    for (ptrdiff_t j0 = 0; j0 < n; j0 += 32) {
        ptrdiff_t nr = n - j0 < 32 ? n - j0 : 32;
        __mmask16 m0 = fastnn_bf16_mask_(nr), m1 = fastnn_bf16_mask_(nr - 16);
        const uint32_t* b = B + j0;
        float* c = C + j0;
        /* B's panel, copied contiguously: B's rows are often a power of two apart, which would
         * put the whole panel in a few sets of L1; the copy's zeros also pad the last columns. */
        if (nr > 16) {
            for (ptrdiff_t p = 0; p < kc; p++) {
                _mm512_store_si512((void*)(bp + 32 * p), _mm512_loadu_si512((const void*)(b + p * ldb)));
                _mm512_store_si512((void*)(bp + 32 * p + 16), _mm512_maskz_loadu_epi32(m1, b + p * ldb + 16));
            }
            ptrdiff_t i = 0;
            for (; i + 8 <= mc; i += 8)
                fastnn_bf16_k8x32_(A + i * a_row, a_row, a_pair, bp, kc, c + i * ldc, ldc, m0, m1, add);
            if (i + 4 <= mc) {
                fastnn_bf16_k4x32_(A + i * a_row, a_row, a_pair, bp, kc, c + i * ldc, ldc, m0, m1, add);
                i += 4;
            }
            if (i + 2 <= mc) {
                fastnn_bf16_k2x32_(A + i * a_row, a_row, a_pair, bp, kc, c + i * ldc, ldc, m0, m1, add);
                i += 2;
            }
            if (i < mc)
                fastnn_bf16_k1x32_(A + i * a_row, a_row, a_pair, bp, kc, c + i * ldc, ldc, m0, m1, add);
        } else {
            for (ptrdiff_t p = 0; p < kc; p++)
                _mm512_store_si512((void*)(bp + 16 * p), _mm512_maskz_loadu_epi32(m0, b + p * ldb));
            ptrdiff_t i = 0;
            for (; i + 8 <= mc; i += 8)
                fastnn_bf16_k8x16_(A + i * a_row, a_row, a_pair, bp, kc, c + i * ldc, ldc, m0, add);
            if (i + 4 <= mc) {
                fastnn_bf16_k4x16_(A + i * a_row, a_row, a_pair, bp, kc, c + i * ldc, ldc, m0, add);
                i += 4;
            }
            if (i + 2 <= mc) {
                fastnn_bf16_k2x16_(A + i * a_row, a_row, a_pair, bp, kc, c + i * ldc, ldc, m0, add);
                i += 2;
            }
            if (i < mc)
                fastnn_bf16_k1x16_(A + i * a_row, a_row, a_pair, bp, kc, c + i * ldc, ldc, m0, add);
        }
    }
}

FASTNN_BF16_TARGET
static void fastnn_bf16_gemm_unit_(const uint32_t* A, ptrdiff_t a_pair, const uint32_t* B, ptrdiff_t ldb,
                                   float* C, ptrdiff_t ldc, ptrdiff_t mc, ptrdiff_t n, ptrdiff_t kc, int add,
                                   uint32_t* bp) {
    fastnn_bf16_block_(A, 1, a_pair, B, ldb, C, ldc, mc, n, kc, add, bp);
}

FASTNN_BF16_TARGET
static void fastnn_bf16_gemm_strided_(const uint32_t* A, ptrdiff_t a_row, ptrdiff_t a_pair, const uint32_t* B,
                                      ptrdiff_t ldb, float* C, ptrdiff_t ldc, ptrdiff_t mc, ptrdiff_t n,
                                      ptrdiff_t kc, int add, uint32_t* bp) {
    fastnn_bf16_block_(A, a_row, a_pair, B, ldb, C, ldc, mc, n, kc, add, bp);
}
#endif

/* The product without AVX512-BF16, for completeness (bf16.pxi does not call it there): each
 * lane's sum as vdpbf16ps forms it, high product then low, in float32. */
static void fastnn_bf16_gemm_scalar_(const uint32_t* A, ptrdiff_t a_row, ptrdiff_t a_pair,
                                     const uint32_t* B, ptrdiff_t ldb, float* C, ptrdiff_t ldc,
                                     ptrdiff_t m, ptrdiff_t n, ptrdiff_t k2) {
    for (ptrdiff_t i = 0; i < m; i++)
        for (ptrdiff_t j = 0; j < n; j++) {
            float s = 0.0f;
            for (ptrdiff_t p = 0; p < k2; p++) {
                uint32_t a = A[i * a_row + p * a_pair], b = B[p * ldb + j];
                s += fastnn_bf16_to_float((uint16_t)(a >> 16)) * fastnn_bf16_to_float((uint16_t)(b >> 16));
                s += fastnn_bf16_to_float((uint16_t)a) * fastnn_bf16_to_float((uint16_t)b);
            }
            C[i * ldc + j] = s;
        }
}

static void fastnn_bf16_gemm(const uint32_t* A, ptrdiff_t a_row, ptrdiff_t a_pair,
                             const uint32_t* B, ptrdiff_t ldb, float* C, ptrdiff_t ldc,
                             ptrdiff_t m, ptrdiff_t n, ptrdiff_t k2) {
    if (m <= 0 || n <= 0)
        return;
    if (k2 <= 0) {
        for (ptrdiff_t i = 0; i < m; i++)
            memset(C + i * ldc, 0, (size_t)n * sizeof(float));
        return;
    }
#if FASTNN_SIMD
    if (!fastnn_bf16_native_available()) {
        fastnn_bf16_gemm_scalar_(A, a_row, a_pair, B, ldb, C, ldc, m, n, k2);
        return;
    }
    /* B's panel on the stack (KC x 32 words), not static: concurrent calls each have their own. */
    uint32_t bp[FASTNN_BF16_KC * 32] __attribute__((aligned(64)));
    for (ptrdiff_t p0 = 0; p0 < k2; p0 += FASTNN_BF16_KC) {
        ptrdiff_t kc = k2 - p0 < FASTNN_BF16_KC ? k2 - p0 : FASTNN_BF16_KC;
        for (ptrdiff_t i0 = 0; i0 < m; i0 += FASTNN_BF16_MC) {
            ptrdiff_t mc = m - i0 < FASTNN_BF16_MC ? m - i0 : FASTNN_BF16_MC;
            if (a_row == 1)
                fastnn_bf16_gemm_unit_(A + i0 + p0 * a_pair, a_pair, B + p0 * ldb, ldb, C + i0 * ldc, ldc,
                                       mc, n, kc, p0 > 0, bp);
            else
                fastnn_bf16_gemm_strided_(A + i0 * a_row + p0 * a_pair, a_row, a_pair, B + p0 * ldb, ldb,
                                          C + i0 * ldc, ldc, mc, n, kc, p0 > 0, bp);
        }
    }
#else
    fastnn_bf16_gemm_scalar_(A, a_row, a_pair, B, ldb, C, ldc, m, n, k2);
#endif
}

#endif

/* The elementwise passes of the training step on whole vectors: the softmax cross-entropy (dense
 * and sparse labels), the sigmoid binary cross-entropy, the optimizer steps (Adam/AdamW, momentum,
 * RMSprop), the derivative of an activation with the bias gradient's column sums, the bias +
 * activation pass (ReLU, leaky ReLU, linear, sigmoid, tanh, softmax) and the weight penalties'
 * gradient and sum of squares, for losses.pxi, optimizers.pxi, activations.pxi and trainer.pxi.
 *
 * fastnn is built for baseline x86-64 (SSE2), so its own loops run two float64 lanes wide and call
 * libm's scalar exp once per element. These versions are compiled with target attributes next to
 * the baseline code, at AVX2's width (32 bytes) and AVX-512's (64 bytes), and used only on CPUs
 * that have them (fastnn_simd_available, fastnn_simd512_available in microkernels.h); the .pxi
 * loops stay the portable path (FASTNN_SIMD=0) and the reference these are tested against.
 *
 * Numerics, against the .pxi loops:
 * - exp (and tanh's expm1) is computed on whole vectors by range reduction and a polynomial
 *   (elementwise_body.h), within a few ulps of libm's; where libm's exp is subnormal, libm itself
 *   is called for those lanes, so results underflow as libm's do. The one log per row stays libm's.
 * - Every other operation is the .pxi's, in the same order and precision, and without FMA: the
 *   body is compiled with floating-point contraction off (GCC contracts a*b+c into one rounding
 *   by default, which would make the vector results differ from the portable ones). So the
 *   optimizer steps, the derivatives and the bias sums (summed row by row, as there) are the
 *   portable path's bit for bit; the losses differ from it only through exp and the order of the
 *   double sums (lane by lane, then across lanes).
 */
#ifndef FASTNN_ELEMENTWISE_H
#define FASTNN_ELEMENTWISE_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "microkernels.h"

/* The derivatives and activations these passes take; activations.pxi maps the contract's codes
 * onto these (softmax's derivative and exp's activation stay on its loops). */
enum { FASTNN_EW_NONE, FASTNN_EW_LINEAR, FASTNN_EW_SIGMOID, FASTNN_EW_TANH, FASTNN_EW_RELU,
       FASTNN_EW_LEAKY_RELU, FASTNN_EW_EXP, FASTNN_EW_SOFTMAX };
/* The optimizer formulas. */
enum { FASTNN_EW_ADAM, FASTNN_EW_ADAMW, FASTNN_EW_MOMENTUM, FASTNN_EW_NESTEROV, FASTNN_EW_RMSPROP };

#if FASTNN_SIMD

#if defined(__clang__)
#pragma clang fp contract(off)
#else
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
#endif

#define FNN_T float
#define FNN_IS_FLOAT 1
#define FNN_VBYTES 32
#define FNN_TGT FASTNN_TARGET
#define FNN_SUFFIX _f
#include "elementwise_body.h"
#undef FNN_SUFFIX
#undef FNN_VBYTES
#undef FNN_TGT
#define FNN_VBYTES 64
#define FNN_TGT FASTNN_TARGET512
#define FNN_SUFFIX _f512
#include "elementwise_body.h"
#undef FNN_T
#undef FNN_IS_FLOAT
#undef FNN_SUFFIX
#undef FNN_VBYTES
#undef FNN_TGT

#define FNN_T double
#define FNN_IS_FLOAT 0
#define FNN_VBYTES 32
#define FNN_TGT FASTNN_TARGET
#define FNN_SUFFIX _d
#include "elementwise_body.h"
#undef FNN_SUFFIX
#undef FNN_VBYTES
#undef FNN_TGT
#define FNN_VBYTES 64
#define FNN_TGT FASTNN_TARGET512
#define FNN_SUFFIX _d512
#include "elementwise_body.h"
#undef FNN_T
#undef FNN_IS_FLOAT
#undef FNN_SUFFIX
#undef FNN_VBYTES
#undef FNN_TGT

#if !defined(__clang__)
#pragma GCC pop_options
#endif

/* The entry points, by float type: the AVX-512 version when `wide`, else the AVX2 one. The .pxi
 * calls them only when simd is on (the CPU has AVX2 and FMA, and wide only with AVX-512 F, DQ). */
#define FASTNN_EW_ENTRIES(S, T)                                                                     \
    static double fastnn_ew_softmax_sparse##S(const T* Z, const int64_t* labels, const T* w, T* dZ,  \
                                               ptrdiff_t m, ptrdiff_t n, double w_sum, int wide) {   \
        return (wide ? fastnn_ewk_softmax_sparse##S##512 : fastnn_ewk_softmax_sparse##S)(             \
            Z, labels, w, dZ, m, n, w_sum);                                                          \
    }                                                                                                \
    static double fastnn_ew_softmax_dense##S(const T* Z, const T* Y, const T* w, T* dZ, ptrdiff_t m, \
                                              ptrdiff_t n, double w_sum, int wide) {                 \
        return (wide ? fastnn_ewk_softmax_dense##S##512 : fastnn_ewk_softmax_dense##S)(               \
            Z, Y, w, dZ, m, n, w_sum);                                                               \
    }                                                                                                \
    static double fastnn_ew_sigmoid_bce##S(const T* Z, const T* Y, T* dZ, ptrdiff_t size, T scale,   \
                                           int wide) {                                               \
        return (wide ? fastnn_ewk_sigmoid_bce##S##512 : fastnn_ewk_sigmoid_bce##S)(Z, Y, dZ, size, scale); \
    }                                                                                                \
    static void fastnn_ew_step##S(int formula, T* param, const T* grad, T* s1, T* s2, ptrdiff_t size, \
                                  T a, T b, T c, T d, T e, T f, T decay, int wide) {                 \
        (wide ? fastnn_ewk_step##S##512 : fastnn_ewk_step##S)(formula, param, grad, s1, s2, size,      \
                                                             a, b, c, d, e, f, decay);               \
    }                                                                                                \
    static void fastnn_ew_grad##S(const T* A, const T* dA, int code, T* out, T* db, ptrdiff_t m,     \
                                  ptrdiff_t n, T slope, int wide) {                                  \
        (wide ? fastnn_ewk_grad##S##512 : fastnn_ewk_grad##S)(A, dA, code, out, db, m, n, slope);      \
    }                                                                                                \
    static void fastnn_ew_activate##S(const T* Z, const T* b, int code, T* out, ptrdiff_t m,         \
                                      ptrdiff_t n, T slope, int wide) {                              \
        (wide ? fastnn_ewk_activate##S##512 : fastnn_ewk_activate##S)(Z, b, code, out, m, n, slope);   \
    }                                                                                                \
    static void fastnn_ew_add_scaled##S(T* g, const T* p, ptrdiff_t size, T c, int wide) {            \
        (wide ? fastnn_ewk_add_scaled##S##512 : fastnn_ewk_add_scaled##S)(g, p, size, c);              \
    }                                                                                                \
    static double fastnn_ew_sum_squares##S(const T* x, ptrdiff_t size, int wide) {                   \
        return (wide ? fastnn_ewk_sum_squares##S##512 : fastnn_ewk_sum_squares##S)(x, size);           \
    }

FASTNN_EW_ENTRIES(_f, float)
FASTNN_EW_ENTRIES(_d, double)

#else  /* no vector build possible: simd is never set, so these are never called */

#define FASTNN_EW_STUBS(S, T)                                                                       \
    static double fastnn_ew_softmax_sparse##S(const T* Z, const int64_t* labels, const T* w, T* dZ,  \
                                               ptrdiff_t m, ptrdiff_t n, double w_sum, int wide) {   \
        return 0;                                                                                    \
    }                                                                                                \
    static double fastnn_ew_softmax_dense##S(const T* Z, const T* Y, const T* w, T* dZ, ptrdiff_t m, \
                                              ptrdiff_t n, double w_sum, int wide) {                 \
        return 0;                                                                                    \
    }                                                                                                \
    static double fastnn_ew_sigmoid_bce##S(const T* Z, const T* Y, T* dZ, ptrdiff_t size, T scale,   \
                                           int wide) {                                               \
        return 0;                                                                                    \
    }                                                                                                \
    static void fastnn_ew_step##S(int formula, T* param, const T* grad, T* s1, T* s2, ptrdiff_t size, \
                                  T a, T b, T c, T d, T e, T f, T decay, int wide) {}                \
    static void fastnn_ew_grad##S(const T* A, const T* dA, int code, T* out, T* db, ptrdiff_t m,     \
                                  ptrdiff_t n, T slope, int wide) {}                                 \
    static void fastnn_ew_activate##S(const T* Z, const T* b, int code, T* out, ptrdiff_t m,         \
                                      ptrdiff_t n, T slope, int wide) {}                             \
    static void fastnn_ew_add_scaled##S(T* g, const T* p, ptrdiff_t size, T c, int wide) {}          \
    static double fastnn_ew_sum_squares##S(const T* x, ptrdiff_t size, int wide) { return 0; }

FASTNN_EW_STUBS(_f, float)
FASTNN_EW_STUBS(_d, double)

#endif

#endif

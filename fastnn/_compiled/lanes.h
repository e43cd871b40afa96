/* One training batch of a tiny network with the batch across vector lanes, for train_epochs.
 *
 * In a network a few neurons wide (XOR's 2-2-1), every matrix product is a handful of
 * multiplications, and the layer-by-layer path spends its time on what surrounds them: choosing
 * a product's path, loops whose lengths are 1 to 4, one call to exp per element. Here a group of
 * rows (4 float64 or 8 float32, one AVX2 vector) goes through the whole network at once:
 * neuron j of a layer is one vector, its value for each row of the group, so a product is a few
 * vector multiply-adds, an activation is one pass over whole vectors and exp is computed for a
 * whole vector by a polynomial (fastnn_lane_exp). The forward pass, the loss and the backward
 * pass of each group follow each other while everything is in registers; the gradient sums over
 * the groups in vector accumulators, added across lanes once per batch.
 *
 * What it takes: layers up to 64 bytes wide; activations linear, sigmoid, tanh, ReLU and leaky ReLU;
 * binary cross-entropy from logits or mean squared error; unweighted rows. trainer.pxi decides when a network qualifies
 * (_lane_codes, the one place the step's path is chosen) and keeps the layer-by-layer path for everything else. The numbers are those of
 * that path up to rounding: the same formulas, summed in another order, with exp computed here.
 *
 * Like the micro-kernels, compiled for AVX2 + FMA next to the baseline code and used only on
 * CPUs that have them (fastnn_simd_available, microkernels.h).
 */
#ifndef FASTNN_LANES_H
#define FASTNN_LANES_H

#include <math.h>
#include <stdint.h>
#include "microkernels.h"

/* The activations and losses the lanes compute; trainer.pxi maps the contract's codes onto these. */
enum { FASTNN_LANE_LINEAR, FASTNN_LANE_SIGMOID, FASTNN_LANE_TANH, FASTNN_LANE_RELU, FASTNN_LANE_LEAKY_RELU };
enum { FASTNN_LANE_BCE, FASTNN_LANE_MSE };

#if FASTNN_SIMD
/* Row offsets for AVX2's gathers, four to a vector; the lanes' loss sums in double, four to a vector. */
typedef int64_t fastnn_lane_offsets __attribute__((vector_size(32)));
typedef double fastnn_lane_sums __attribute__((vector_size(32)));
typedef float fastnn_lane_half __attribute__((vector_size(16)));
#endif

/* The widest layer the lanes take: 64 bytes, 16 float32 or 8 float64; from there on the
 * micro-kernels stream the products faster. */
#define FASTNN_LANE_MAX_BYTES 64
#define FASTNN_LANE_MAX_WIDTH (FASTNN_LANE_MAX_BYTES / (ptrdiff_t)sizeof(float))

/* The small helpers are always inlined, so that in the batches of fixed shapes (lanes_body.h's
 * FNN_FIXED) every size is a constant where it is used. */
#define FASTNN_INLINE static inline __attribute__((always_inline))
#define FNN_UNROLL _Pragma("GCC unroll 16")

/* Whether fastnn_lanes_batch sends the shapes compiled with constant sizes to their own code (1,
 * the default) or every network to the code for any sizes (0: for tests, which hold the two to
 * the same results). */
static int fastnn_lanes_fixed __attribute__((unused)) = 1;

/* total / count, as a multiplication where count is a power of two: the same bits (both round
 * total / count once), without a division's latency, which a tiny network's epoch waits on. */
static inline double fastnn_lane_mean(double total, ptrdiff_t count) {
    return (count & (count - 1)) == 0 ? total * (1.0 / (double)count) : total / (double)count;
}

#define FNN_T float
#define FNN_I int32_t
#define FNN_IS_FLOAT 1
#define FNN_SUFFIX _f
#include "lanes_body.h"
#undef FNN_T
#undef FNN_I
#undef FNN_IS_FLOAT
#undef FNN_SUFFIX

#define FNN_T double
#define FNN_I int64_t
#define FNN_IS_FLOAT 0
#define FNN_SUFFIX _d
#include "lanes_body.h"
#undef FNN_T
#undef FNN_I
#undef FNN_IS_FLOAT
#undef FNN_SUFFIX

#endif

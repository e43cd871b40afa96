/* The lanes for one float type, FNN_T (float or double) with FNN_I its same-sized integer,
 * named with FNN_SUFFIX (_f, _d). Included twice by lanes.h; see there for what they are.
 * A vector holds one neuron's value for each of FNN_LANES rows of the batch.
 */
#define FNN_V FASTNN_CAT(fastnn_lane_vec, FNN_SUFFIX)
#define FNN_VI FASTNN_CAT(fastnn_lane_ivec, FNN_SUFFIX)
#define FNN_LANES ((ptrdiff_t)(32 / sizeof(FNN_T)))
#define FNN_SELECT FASTNN_CAT(fastnn_lane_select, FNN_SUFFIX)
#define FNN_FMA FASTNN_CAT(fastnn_lane_fma, FNN_SUFFIX)
#define FNN_KEEP FASTNN_CAT(fastnn_lane_keep, FNN_SUFFIX)
#define FNN_EXP_PARTS FASTNN_CAT(fastnn_lane_exp_parts, FNN_SUFFIX)
#define FNN_EXP FASTNN_CAT(fastnn_lane_exp, FNN_SUFFIX)
#define FNN_EXPM1 FASTNN_CAT(fastnn_lane_expm1, FNN_SUFFIX)
#define FNN_ACTIVATE FASTNN_CAT(fastnn_lane_activate, FNN_SUFFIX)
#define FNN_GRAD FASTNN_CAT(fastnn_lane_grad, FNN_SUFFIX)
#define FNN_GATHER FASTNN_CAT(fastnn_lane_gather, FNN_SUFFIX)
#define FNN_WIDEN FASTNN_CAT(fastnn_lane_widen, FNN_SUFFIX)
#define FNN_HALVES (FNN_LANES / 4)
#define FNN_STATE FASTNN_CAT(fastnn_lane_state, FNN_SUFFIX)
#define FNN_LOAD_GROUP FASTNN_CAT(fastnn_lane_load_group, FNN_SUFFIX)
#define FNN_FORWARD FASTNN_CAT(fastnn_lane_forward, FNN_SUFFIX)
#define FNN_LOSS FASTNN_CAT(fastnn_lane_loss, FNN_SUFFIX)
#define FNN_BACKWARD FASTNN_CAT(fastnn_lane_backward, FNN_SUFFIX)
#define FNN_FINISH FASTNN_CAT(fastnn_lane_finish, FNN_SUFFIX)
#define FNN_START FASTNN_CAT(fastnn_lane_start, FNN_SUFFIX)
#define FNN_LIVE FASTNN_CAT(fastnn_lane_live, FNN_SUFFIX)

/* The FNN_T elements of scratch fastnn_lanes_batch needs: the activations of every layer, three
 * buffers of a layer's width (two gradients, the targets), one accumulator per parameter, and a
 * vector's worth to align the start. */
static ptrdiff_t FASTNN_CAT(fastnn_lanes_scratch, FNN_SUFFIX)(const int64_t* sizes, ptrdiff_t L, ptrdiff_t n_params) {
    ptrdiff_t vectors = 3 * FASTNN_LANE_MAX_WIDTH + n_params + 1, l;
    for (l = 0; l <= L; l++)
        vectors += sizes[l];
    return vectors * FNN_LANES;
}

#if FASTNN_SIMD

typedef FNN_T FNN_V __attribute__((vector_size(32)));
typedef FNN_I FNN_VI __attribute__((vector_size(32)));

/* where(mask, a, b) for a mask from a vector comparison (each lane all ones or all zeros):
 * C has no ?: on vectors. */
FASTNN_TARGET FASTNN_INLINE FNN_V FNN_SELECT(FNN_VI mask, FNN_V a, FNN_V b) {
#if FNN_IS_FLOAT
    return (FNN_V)_mm256_blendv_ps((__m256)b, (__m256)a, (__m256)mask);  /* one instruction, not and-andnot-or */
#else
    return (FNN_V)_mm256_blendv_pd((__m256d)b, (__m256d)a, (__m256d)mask);
#endif
}

/* a * b + c in one rounding. Written out where a sum has two products, (a b + c d): the compiler
 * would fuse either product, and not always the same one in the unrolled code of a fixed shape as
 * in the loops of any shape; this way both fuse the same and give the same bits. */
FASTNN_TARGET FASTNN_INLINE FNN_V FNN_FMA(FNN_V a, FNN_V b, FNN_V c) {
#if FNN_IS_FLOAT
    return (FNN_V)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c);
#else
    return (FNN_V)_mm256_fmadd_pd((__m256d)a, (__m256d)b, (__m256d)c);
#endif
}

/* v itself, with the compiler unable to see that it is a product: where a product from one piece
 * of the batch meets an addition in another, the compiler fuses the two into an FMA when it sees
 * both (the unrolled code of a fixed shape, which keeps v in a register) and cannot when v went
 * through memory (the code of any shape); kept apart, both round the same. No instruction. */
FASTNN_TARGET FASTNN_INLINE FNN_V FNN_KEEP(FNN_V v) {
    __asm__("" : "+x"(v));
    return v;
}

/* The parts of exp(x) for x <= 0, or NaN, lane by lane: x = k ln2 + r with |r| <= ln2/2, and
 * exp(x) = 2^k (1 + s) where s = r + r²/2 + r³/6 + ...: exp(r) - 1 by its Taylor series to the
 * term below half an ulp (degree 13 for float64, 7 for float32). Returns 2^k, built in the
 * exponent bits, and sets s; FNN_EXP and FNN_EXPM1 finish them, within an ulp or two of libm's.
 * s = r + r²/2 + r³ q, with q = 1/6 + r/24 + ... by Estrin's scheme (pairs of terms combined with
 * r², r⁴ and r⁸): a chain of 6 dependent operations from x's reduction to exp, not Horner's 14,
 * since a tiny network's epoch waits on two exps one after the other; the small terms are summed
 * first and 1 is added last, so the rounding stays at the size of s's last bit. */
FASTNN_TARGET FASTNN_INLINE FNN_V FNN_EXP_PARTS(FNN_V x, FNN_V* s) {
#if FNN_IS_FLOAT
    const FNN_T log2e = 1.44269504088896341f, ln2_hi = 0.693145751953125f, ln2_lo = 1.42860676533018708e-06f;
    const FNN_T shifter = 12582912.0f;  /* 1.5 * 2^23: x + shifter rounds x to an integer in the low bits */
    static const FNN_T c[] = {1.0f / 5040, 1.0f / 720, 1.0f / 120, 1.0f / 24, 1.0f / 6, 0.5f};
    const int bias = 127, mantissa = 23;
#else
    /* ln2_hi has its low 32 bits zero, so k * ln2_hi is exact (fdlibm's split) */
    const FNN_T log2e = 1.4426950408889634, ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;
    const FNN_T shifter = 6755399441055744.0;  /* 1.5 * 2^52 */
    static const FNN_T c[] = {1.0 / 6227020800.0, 1.0 / 479001600.0, 1.0 / 39916800.0, 1.0 / 3628800.0, 1.0 / 362880.0,
                       1.0 / 40320.0, 1.0 / 5040.0, 1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5};
    const int bias = 1023, mantissa = 52;
#endif
    const FNN_V zero = {0};
    FNN_V kd = x * log2e + shifter;
    FNN_V k = kd - shifter;
    const FNN_V r = (x - k * ln2_hi) - k * ln2_lo, r2 = r * r, r3 = r2 * r, r4 = r2 * r2;
#if FNN_IS_FLOAT  /* q = c4 + c3 r + ... + c0 r⁴ */
    FNN_V q = FNN_FMA(r2, FNN_FMA(r, zero + c[1], zero + c[2]), FNN_FMA(r, zero + c[3], zero + c[4]));
    q = FNN_FMA(r4, zero + c[0], q);
    *s = FNN_FMA(r3, q, FNN_FMA(r2, zero + c[5], r));
#else  /* q = c10 + c9 r + ... + c0 r¹⁰ */
    const FNN_V r8 = r4 * r4;
    FNN_V t0 = FNN_FMA(r, zero + c[9], zero + c[10]), t1 = FNN_FMA(r, zero + c[7], zero + c[8]);
    FNN_V t2 = FNN_FMA(r, zero + c[5], zero + c[6]), t3 = FNN_FMA(r, zero + c[3], zero + c[4]);
    FNN_V t4 = FNN_FMA(r, zero + c[1], zero + c[2]);
    FNN_V u0 = FNN_FMA(r2, t1, t0), u1 = FNN_FMA(r2, t3, t2), u2 = FNN_FMA(r2, zero + c[0], t4);
    FNN_V q = FNN_FMA(r8, u2, FNN_FMA(r4, u1, u0));
    *s = FNN_FMA(r3, q, FNN_FMA(r2, zero + c[11], r));
#endif
    /* kd's low bits hold k (plus 2^51 or 2^22, which the shift pushes out): the exponent of 2^k */
    return (FNN_V)(((FNN_VI)kd + bias) << mantissa);
}

/* log of the smallest normal number: below it exp(x) is 0 here (libm gives a subnormal) */
#define FNN_LOWEST ((FNN_T)(FNN_IS_FLOAT ? -87.3365447505531 : -708.3964185322641))

/* exp(x) for x <= 0, or NaN. */
FASTNN_TARGET FASTNN_INLINE FNN_V FNN_EXP(FNN_V x) {
    FNN_V s, two_k = FNN_EXP_PARTS(x, &s);
    return FNN_SELECT(x < FNN_LOWEST, (FNN_V){0}, FNN_FMA(two_k, s, two_k));  /* NaN < lowest is false: NaN stays */
}

/* exp(x) - 1 for x <= 0, or NaN, without the cancellation of exp(x) - 1 near 0: there k = 0 and
 * it is s itself. */
FASTNN_TARGET FASTNN_INLINE FNN_V FNN_EXPM1(FNN_V x) {
    FNN_V s, two_k = FNN_EXP_PARTS(x, &s);
    return FNN_SELECT(x < FNN_LOWEST, (FNN_V){0} - 1, FNN_FMA(two_k, s, two_k - 1));
}

/* v = f(v) for n neurons, as activations.pxi's _activate computes it (one test of the code per layer). */
FASTNN_TARGET FASTNN_INLINE void FNN_ACTIVATE(FNN_V* v, ptrdiff_t n, int64_t code, FNN_T slope) {
    const FNN_V zero = {0}, one = zero + 1;
    ptrdiff_t j;
    if (code == FASTNN_LANE_SIGMOID) {  /* exp(-|z|) never overflows: 1/(1+e) for z >= 0, e/(1+e) below */
        FNN_UNROLL for (j = 0; j < n; j++) {
            FNN_V z = v[j], e = FNN_EXP(FNN_SELECT(z < 0, z, -z));
            v[j] = FNN_SELECT(z >= 0, one, e) / (one + e);
        }
    } else if (code == FASTNN_LANE_TANH) {  /* tanh|z| = -e / (2 + e), e = expm1(-2|z|): no overflow, no cancellation */
        FNN_UNROLL for (j = 0; j < n; j++) {
            FNN_V z = v[j], e = FNN_EXPM1(FNN_SELECT(z < 0, z + z, -(z + z)));
            FNN_V t = -e / (e + 2);
            v[j] = FNN_SELECT(z < 0, -t, t);
        }
    } else if (code == FASTNN_LANE_RELU) {
        FNN_UNROLL for (j = 0; j < n; j++)
            v[j] = FNN_SELECT(v[j] < 0, zero, v[j]);  /* NaN stays NaN */
    } else if (code == FASTNN_LANE_LEAKY_RELU) {
        FNN_UNROLL for (j = 0; j < n; j++)
            v[j] = FNN_SELECT(v[j] < 0, zero, v[j]) + slope * FNN_SELECT(v[j] < 0, v[j], zero);
    }
}

/* d = d * f'(Z) through a = f(Z) for n neurons, as activations.pxi's _activation_grad computes it. */
FASTNN_TARGET FASTNN_INLINE void FNN_GRAD(const FNN_V* a, FNN_V* d, ptrdiff_t n, int64_t code, FNN_T slope) {
    const FNN_V zero = {0}, one = zero + 1;
    ptrdiff_t j;
    if (code == FASTNN_LANE_SIGMOID) {
        FNN_UNROLL for (j = 0; j < n; j++)
            d[j] = d[j] * (a[j] * (one - a[j]));
    } else if (code == FASTNN_LANE_TANH) {
        FNN_UNROLL for (j = 0; j < n; j++)
            d[j] = d[j] * (one - a[j] * a[j]);
    } else if (code == FASTNN_LANE_RELU) {
        FNN_UNROLL for (j = 0; j < n; j++)
            d[j] = d[j] * FNN_SELECT(a[j] > 0, one, zero);  /* a multiply: NaN * 0 is NaN */
    } else if (code == FASTNN_LANE_LEAKY_RELU) {
        FNN_UNROLL for (j = 0; j < n; j++)
            d[j] = d[j] * FNN_SELECT(a[j] > 0, one, zero + slope);
    }
}

/* Column `column` of the rows at offsets off (elements from X, FNN_LANES of them, four to a
 * vector), 0 in the lanes that are not live: one gather instruction per four rows. */
FASTNN_TARGET FASTNN_INLINE FNN_V FNN_GATHER(const FNN_T* column, const fastnn_lane_offsets off[], FNN_VI live) {
#if FNN_IS_FLOAT
    __m128 lo = _mm256_mask_i64gather_ps(_mm_setzero_ps(), column, (__m256i)off[0],
                                         _mm_castsi128_ps(_mm256_castsi256_si128((__m256i)live)), 4);
    __m128 hi = _mm256_mask_i64gather_ps(_mm_setzero_ps(), column, (__m256i)off[1],
                                         _mm_castsi128_ps(_mm256_extracti128_si256((__m256i)live, 1)), 4);
    return (FNN_V)_mm256_set_m128(hi, lo);
#else
    return (FNN_V)_mm256_mask_i64gather_pd(_mm256_setzero_pd(), column, (__m256i)off[0], (__m256d)live, 8);
#endif
}

/* v's lanes in double, four to a vector: the losses are summed in double, as everywhere in fastnn. */
FASTNN_TARGET FASTNN_INLINE void FNN_WIDEN(FNN_V v, fastnn_lane_sums out[]) {
#if FNN_IS_FLOAT
    fastnn_lane_half lo, hi;
    memcpy(&lo, &v, sizeof lo);
    memcpy(&hi, (const char*)&v + sizeof lo, sizeof hi);
    out[0] = __builtin_convertvector(lo, fastnn_lane_sums);
    out[1] = __builtin_convertvector(hi, fastnn_lane_sums);
#else
    out[0] = v;
#endif
}

/* The pieces of a batch, each written once and inlined into both the batch of any network
 * (fastnn_lanes_any) and the batches of fixed shapes (FNN_FIXED): there the sizes are constants,
 * so the compiler unrolls every loop over neurons and keeps the group's activations, gradients and
 * accumulators in registers. Both run the same operations in the same order. */

/* The batch's loss and hit count so far, by lane (the loss in double). q: each lane's log1p terms
 * summed as one, 1 + q = prod(1 + e), as losses.pxi's _sigmoid_bce does; each factor is at most 2,
 * so after FLUSH_EVERY terms q < 2^256. */
typedef struct {
    fastnn_lane_sums loss_sum[FNN_HALVES], q[FNN_HALVES];
    double total;
    FNN_VI hits;
    int terms;
} FNN_STATE;

enum { FASTNN_CAT(fastnn_lane_flush_every, FNN_SUFFIX) = 256 };

/* The rows of group g (rows g to g + FNN_LANES - 1 of the batch, those past m not live): their
 * inputs transposed into the lanes of act[0 .. n_x), their targets into y[0 .. n_y). */
FASTNN_TARGET FASTNN_INLINE void FNN_LOAD_GROUP(const FNN_T* X, const FNN_T* Y, const int64_t* idx, ptrdiff_t m,
                                                ptrdiff_t g, ptrdiff_t n_x, ptrdiff_t n_y, FNN_VI is_live,
                                                FNN_V* act, FNN_V* y) {
    fastnn_lane_offsets rows[FNN_HALVES] = {{0}}, x_at[FNN_HALVES], y_at[FNN_HALVES];
    ptrdiff_t h, lane, p, j;
    FNN_UNROLL for (h = 0; h < FNN_HALVES; h++) {
        if (idx == NULL)  /* rows in order: g + 4h + 0..3 (the lanes past the end are masked) */
            rows[h] = (fastnn_lane_offsets){0, 1, 2, 3} + (g + 4 * h);
        else if (g + 4 * h + 4 <= m)
            rows[h] = (fastnn_lane_offsets)_mm256_loadu_si256((const __m256i*)(idx + g + 4 * h));
        else
            for (lane = 0; g + 4 * h + lane < m; lane++)
                rows[h][lane] = idx[g + 4 * h + lane];
        x_at[h] = rows[h] * n_x;
        y_at[h] = rows[h] * n_y;
    }
    FNN_UNROLL for (p = 0; p < n_x; p++)
        act[p] = FNN_GATHER(X + p, x_at, is_live);
    FNN_UNROLL for (j = 0; j < n_y; j++)
        y[j] = FNN_GATHER(Y + j, y_at, is_live);
}

/* One layer forward: out_j = f(sum_p in_p W[p, j] + b_j), the sum from its first term; W (n_in,
 * n_out) then b. */
FASTNN_TARGET FASTNN_INLINE void FNN_FORWARD(const FNN_V* in, FNN_V* out, const FNN_T* W, ptrdiff_t n_in,
                                             ptrdiff_t n_out, int64_t code, FNN_T slope) {
    const FNN_T* b = W + n_in * n_out;
    ptrdiff_t j, p;
    FNN_UNROLL for (j = 0; j < n_out; j++) {
        FNN_V z = in[0] * W[j];
        FNN_UNROLL for (p = 1; p < n_in; p++)
            z = FNN_FMA(in[p], (FNN_V){0} + W[p * n_out + j], z);
        out[j] = FNN_KEEP(z) + b[j];  /* z is a product when n_in is 1 */
    }
    FNN_ACTIVATE(out, n_out, code, slope);
}

/* The loss of the group's outputs z (summed by lane, in double, into s), its gradient with respect
 * to them into d (times loss_scale), the hits. */
FASTNN_TARGET FASTNN_INLINE void FNN_LOSS(const FNN_V* z_out, const FNN_V* y, FNN_V* d, ptrdiff_t n_y, int loss,
                                          double loss_scale, FNN_T bce_scale, FNN_T mse_denominator,
                                          FNN_VI is_live, FNN_STATE* s) {
    const FNN_V zero = {0}, one = zero + 1;
    fastnn_lane_sums wide[FNN_HALVES], e_wide[FNN_HALVES];
    ptrdiff_t j, h, lane;
    FNN_UNROLL for (j = 0; j < n_y; j++) {
        const FNN_V z = z_out[j], target = y[j];
        if (loss == FASTNN_LANE_BCE) {  /* max(z, 0) - z y + log1p(exp(-|z|)), gradient sigmoid(z) - y */
            FNN_V e = FNN_EXP(FNN_SELECT(z < 0, z, -z));
            d[j] = FNN_SELECT(is_live, (FNN_SELECT(z >= 0, one, e) / (one + e) - target) * bce_scale, zero);
            FNN_WIDEN(FNN_SELECT(is_live, FNN_SELECT(z < 0, zero, z) - z * target, zero), wide);
            FNN_WIDEN(FNN_SELECT(is_live, e, zero), e_wide);
            FNN_UNROLL for (h = 0; h < FNN_HALVES; h++) {
                s->loss_sum[h] += wide[h];
                s->q[h] += e_wide[h] + s->q[h] * e_wide[h];
            }
            if (++s->terms == FASTNN_CAT(fastnn_lane_flush_every, FNN_SUFFIX)) {
                FNN_UNROLL for (h = 0; h < FNN_HALVES; h++)
                    FNN_UNROLL for (lane = 0; lane < 4; lane++)
                        s->total += log1p(s->q[h][lane]);
                FNN_UNROLL for (h = 0; h < FNN_HALVES; h++)
                    s->q[h] = (fastnn_lane_sums){0};
                s->terms = 0;
            }
            s->hits += ~((z > 0) ^ (target > (FNN_T)0.5)) & is_live;  /* -1 in each lane that is right */
        } else {  /* MSE: (a - y)², gradient 2 (a - y) */
            FNN_V diff = FNN_SELECT(is_live, z - target, zero);
            d[j] = diff / mse_denominator;
            FNN_WIDEN(diff, wide);
            FNN_UNROLL for (h = 0; h < FNN_HALVES; h++)
                s->loss_sum[h] += wide[h] * wide[h];
        }
        if (loss_scale != 1.0)
            d[j] = d[j] * (FNN_T)loss_scale;
    }
}

/* One layer backward: dz = d f'(z) (in d); db += dz; dW += in dz; and, unless d_in is NULL (the
 * network's input needs no gradient), d_in = dz Wᵀ. a_in: the layer's input, out: its output. */
FASTNN_TARGET FASTNN_INLINE void FNN_BACKWARD(const FNN_V* a_in, const FNN_V* out, FNN_V* d, FNN_V* d_in,
                                              const FNN_T* W, FNN_V* gW, ptrdiff_t n_in, ptrdiff_t n_out,
                                              int64_t code, FNN_T slope) {
    FNN_V* gb = gW + n_in * n_out;
    ptrdiff_t j, p;
    FNN_GRAD(out, d, n_out, code, slope);
    FNN_UNROLL for (j = 0; j < n_out; j++)
        gb[j] += FNN_KEEP(d[j]);  /* d is a product (f'(z), the loss's scale) */
    FNN_UNROLL for (p = 0; p < n_in; p++)
        FNN_UNROLL for (j = 0; j < n_out; j++)
            gW[p * n_out + j] += a_in[p] * d[j];
    if (d_in != NULL) {
        FNN_UNROLL for (p = 0; p < n_in; p++) {
            FNN_V s = d[0] * W[p * n_out];
            FNN_UNROLL for (j = 1; j < n_out; j++)
                s = FNN_FMA(d[j], (FNN_V){0} + W[p * n_out + j], s);
            d_in[p] = s;
        }
    }
}

/* The end of a batch: the gradient's lanes added into G (eight accumulators at a time) and the
 * accumulators left at zero, the hits added to *correct; returns the batch's mean loss. */
FASTNN_TARGET FASTNN_INLINE double FNN_FINISH(FNN_V* grad, FNN_T* G, FNN_T* P, ptrdiff_t n_params, int sgd, FNN_T lr,
                                              FNN_STATE* s, int loss, ptrdiff_t m, ptrdiff_t n_y, ptrdiff_t* correct) {
    const FNN_V zero = {0};
    ptrdiff_t i, j, h, lane;
    FNN_UNROLL for (i = 0; i + 8 <= n_params; i += 8) {
        FASTNN_CAT(fastnn_sum8, FNN_SUFFIX)(grad + i, G + i);
        FNN_UNROLL for (j = i; j < i + 8; j++)
            grad[j] = zero;
    }
    FNN_UNROLL for (; i < n_params; i++) {
        G[i] = FASTNN_CAT(fastnn_hsum, FNN_SUFFIX)(grad[i]);
        grad[i] = zero;
    }
    if (sgd) {  /* optimizers.pxi's SGD step, P -= lr G, here while G is at hand */
        const FNN_V rate = zero + lr;
        FNN_UNROLL for (i = 0; i + FNN_LANES <= n_params; i += FNN_LANES) {
            FNN_V g, w;
            memcpy(&g, G + i, sizeof g);
            memcpy(&w, P + i, sizeof w);
            FNN_V step = rate * g;
            __asm__("" : "+x"(step));  /* rounded before the subtraction, as there: not fused into an FMA */
            w = w - step;
            memcpy(P + i, &w, sizeof w);
        }
        FNN_UNROLL for (; i < n_params; i++) {
            FNN_T step = lr * G[i];
            __asm__("" : "+x"(step));
            P[i] = P[i] - step;
        }
    }
    FNN_UNROLL for (lane = 0; lane < FNN_LANES; lane++)
        *correct -= s->hits[lane];
    double total = s->total, fold = 0;  /* the lanes' q folded into one, 1 + fold = prod(1 + q), flushed before it overflows */
    FNN_UNROLL for (h = 0; h < FNN_HALVES; h++)
        FNN_UNROLL for (lane = 0; lane < 4; lane++) {
            total += s->loss_sum[h][lane];
            fold += s->q[h][lane] + fold * s->q[h][lane];
            if (fold > 1e100) {
                total += log1p(fold);
                fold = 0;
            }
        }
    if (loss == FASTNN_LANE_BCE)
        total += log1p(fold);
    return fastnn_lane_mean(total, m * n_y);
}

FASTNN_TARGET FASTNN_INLINE void FNN_START(FNN_STATE* s) {
    ptrdiff_t h;
    FNN_UNROLL for (h = 0; h < FNN_HALVES; h++)
        s->loss_sum[h] = s->q[h] = (fastnn_lane_sums){0};
    s->total = 0;
    s->hits = (FNN_VI){0};
    s->terms = 0;
}

/* The lanes past the end of a group of `live` rows: all ones in lanes 0 .. live - 1. */
FASTNN_TARGET FASTNN_INLINE FNN_VI FNN_LIVE(ptrdiff_t live) {
    FNN_VI lane_id;
    FNN_UNROLL for (ptrdiff_t lane = 0; lane < FNN_LANES; lane++)
        lane_id[lane] = (FNN_I)lane;
    return lane_id < (FNN_I)live;
}

/* fastnn_lanes_batch for any network the lanes take (arguments: there), its buffers in scratch. */
FASTNN_TARGET static double FASTNN_CAT(fastnn_lanes_any, FNN_SUFFIX)(
        const FNN_T* X, const FNN_T* Y, const int64_t* idx, ptrdiff_t m, const int64_t* sizes,
        const int64_t* codes, ptrdiff_t L, int loss, double loss_scale, FNN_T slope, FNN_T* P,
        FNN_T* G, FNN_T* scratch, ptrdiff_t n_params, int sgd, FNN_T lr, ptrdiff_t* correct) {
    const ptrdiff_t n_x = sizes[0], n_y = sizes[L];
    FNN_V* act = (FNN_V*)(((uintptr_t)scratch + 31) & ~(uintptr_t)31);  /* act[sizes[0] + ... + sizes[L]] */
    ptrdiff_t n_act = 0, l, g;
    for (l = 0; l <= L; l++)
        n_act += sizes[l];
    FNN_V* d = act + n_act;  /* the gradient with respect to the current layer's output, */
    FNN_V* d_in = d + FASTNN_LANE_MAX_WIDTH;  /* and to its input */
    FNN_V* y = d_in + FASTNN_LANE_MAX_WIDTH;  /* the group's targets */
    FNN_V* grad = y + FASTNN_LANE_MAX_WIDTH;  /* the gradient's sums over groups, by lane */
    /* the mean's divisors in the data's type, as the layer-by-layer losses compute them */
    const FNN_T bce_scale = (FNN_T)(1.0 / ((double)m * n_y)), mse_denominator = (FNN_T)((double)m * n_y / 2.0);
    FNN_STATE s;
    FNN_START(&s);
    for (g = 0; g < m; g += FNN_LANES) {
        const FNN_VI is_live = FNN_LIVE(m - g);
        FNN_LOAD_GROUP(X, Y, idx, m, g, n_x, n_y, is_live, act, y);
        const FNN_T* W = P;
        FNN_V* in = act;
        for (l = 0; l < L; l++) {
            FNN_FORWARD(in, in + sizes[l], W, sizes[l], sizes[l + 1], codes[l], slope);
            W += sizes[l] * sizes[l + 1] + sizes[l + 1];
            in += sizes[l];
        }
        FNN_LOSS(in, y, d, n_y, loss, loss_scale, bce_scale, mse_denominator, is_live, &s);
        /* backward, last layer first */
        ptrdiff_t w_end = n_params, a_end = n_act;
        for (l = L - 1; l >= 0; l--) {
            const ptrdiff_t n_in = sizes[l], n_out = sizes[l + 1];
            const ptrdiff_t w_at = w_end - n_out - n_in * n_out;
            const FNN_V* out = act + a_end - n_out;
            FNN_BACKWARD(out - n_in, out, d, l > 0 ? d_in : NULL, P + w_at, grad + w_at, n_in, n_out, codes[l], slope);
            FNN_V* swap = d;
            d = d_in;
            d_in = swap;
            w_end = w_at;
            a_end -= n_out;
        }
    }
    return FNN_FINISH(grad, G, P, n_params, sgd, lr, &s, loss, m, n_y, correct);
}

/* fastnn_lanes_batch for the network 2-H-1 (one hidden layer of H neurons), its buffers on the
 * stack: the same pieces in the same order as fastnn_lanes_any, with every size a constant. */
#define FNN_FIXED(H)                                                                                          \
FASTNN_TARGET __attribute__((noinline)) static double FASTNN_CAT(fastnn_lanes_2_##H##_1, FNN_SUFFIX)(         \
        const FNN_T* X, const FNN_T* Y, const int64_t* idx, ptrdiff_t m, const int64_t* codes, int loss,    \
        double loss_scale, FNN_T slope, FNN_T* P, FNN_T* G, int sgd, FNN_T lr, ptrdiff_t* correct) {        \
    enum { N0 = 2, N1 = H, N2 = 1, W1_AT = N0 * N1 + N1, N_PARAMS = W1_AT + N1 * N2 + N2 };                 \
    FNN_V act[N0 + N1 + N2], y[N2], d2[N2], d1[N1], grad[N_PARAMS];                                          \
    const FNN_T bce_scale = (FNN_T)(1.0 / ((double)m * N2)), mse_denominator = (FNN_T)((double)m * N2 / 2.0); \
    FNN_STATE s;                                                                                              \
    FNN_START(&s);                                                                                            \
    FNN_UNROLL for (ptrdiff_t i = 0; i < N_PARAMS; i++)                                                       \
        grad[i] = (FNN_V){0};                                                                                 \
    for (ptrdiff_t g = 0; g < m; g += FNN_LANES) {                                                            \
        const FNN_VI is_live = FNN_LIVE(m - g);                                                               \
        FNN_LOAD_GROUP(X, Y, idx, m, g, N0, N2, is_live, act, y);                                             \
        FNN_FORWARD(act, act + N0, P, N0, N1, codes[0], slope);                                               \
        FNN_FORWARD(act + N0, act + N0 + N1, P + W1_AT, N1, N2, codes[1], slope);                             \
        FNN_LOSS(act + N0 + N1, y, d2, N2, loss, loss_scale, bce_scale, mse_denominator, is_live, &s);        \
        FNN_BACKWARD(act + N0, act + N0 + N1, d2, d1, P + W1_AT, grad + W1_AT, N1, N2, codes[1], slope);      \
        FNN_BACKWARD(act, act + N0, d1, NULL, P, grad, N0, N1, codes[0], slope);                              \
    }                                                                                                         \
    return FNN_FINISH(grad, G, P, N_PARAMS, sgd, lr, &s, loss, m, N2, correct);                               \
}

/* The networks compiled with constant sizes: XOR's 2-2-1 and its other hidden widths (the
 * lesson's --hidden), up to the 8 neurons of a float64 vector's 64 bytes. */
#define FNN_FIXED_HIDDEN(X) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8)
FNN_FIXED_HIDDEN(FNN_FIXED)

/* Forward, loss and backward of one batch of m >= 1 rows; returns the batch's mean loss.
 * Row r of the batch is X[idx[r]] and Y[idx[r]], or X[r] and Y[r] when idx is NULL; X: (., sizes[0]),
 * Y: (., sizes[L]), row-major. codes: (L,) FASTNN_LANE_* activations; loss: FASTNN_LANE_BCE (from
 * logits: the output's code is LINEAR) or FASTNN_LANE_MSE, each the mean over the batch's rows and
 * outputs. P, G: (n_params,) the parameters and the gradient, W (n_in, n_out) then b per layer.
 * G gets the gradient of the mean loss times loss_scale and, when sgd is not 0, P the SGD step
 * P -= lr G (as optimizers.pxi's _sgd_step: lr G rounded, then subtracted); *correct gets the
 * number of outputs on the target's side (BCE: logit > 0 where target > 0.5) added. Every layer is 1 neuron to
 * FASTNN_LANE_MAX_BYTES wide. scratch: fastnn_lanes_scratch elements, zeros before the first call (its
 * gradient accumulators are left at zero for the next).
 * A network 2-H-1 of FNN_FIXED_HIDDEN goes to its own compiled version (unless
 * fastnn_lanes_fixed is 0, for tests), any other to fastnn_lanes_any. */
FASTNN_TARGET static double FASTNN_CAT(fastnn_lanes_batch, FNN_SUFFIX)(
        const FNN_T* X, const FNN_T* Y, const int64_t* idx, ptrdiff_t m, const int64_t* sizes,
        const int64_t* codes, ptrdiff_t L, int loss, double loss_scale, FNN_T slope, FNN_T* P,
        FNN_T* G, FNN_T* scratch, ptrdiff_t n_params, int sgd, FNN_T lr, ptrdiff_t* correct) {
#define FNN_CASE(H)                                                                                          \
    case H:                                                                                                   \
        return FASTNN_CAT(fastnn_lanes_2_##H##_1, FNN_SUFFIX)(X, Y, idx, m, codes, loss, loss_scale, slope, P, G, sgd, lr, correct);
    if (L == 2 && sizes[0] == 2 && sizes[2] == 1 && fastnn_lanes_fixed) {
        switch (sizes[1]) {
            FNN_FIXED_HIDDEN(FNN_CASE)
        }
    }
#undef FNN_CASE
    return FASTNN_CAT(fastnn_lanes_any, FNN_SUFFIX)(X, Y, idx, m, sizes, codes, L, loss, loss_scale, slope, P, G,
                                                     scratch, n_params, sgd, lr, correct);
}

#undef FNN_FIXED
#undef FNN_FIXED_HIDDEN

#else  /* no AVX2 build: never called (fastnn_simd_available is false) */

static double FASTNN_CAT(fastnn_lanes_batch, FNN_SUFFIX)(
        const FNN_T* X, const FNN_T* Y, const int64_t* idx, ptrdiff_t m, const int64_t* sizes,
        const int64_t* codes, ptrdiff_t L, int loss, double loss_scale, FNN_T slope, FNN_T* P,
        FNN_T* G, FNN_T* scratch, ptrdiff_t n_params, int sgd, FNN_T lr, ptrdiff_t* correct) {
    (void)X; (void)Y; (void)idx; (void)m; (void)sizes; (void)codes; (void)L; (void)loss; (void)loss_scale;
    (void)slope; (void)P; (void)G; (void)scratch; (void)n_params; (void)sgd; (void)lr; (void)correct;
    return 0;
}

#endif

#undef FNN_V
#undef FNN_VI
#undef FNN_LANES
#undef FNN_SELECT
#undef FNN_FMA
#undef FNN_KEEP
#undef FNN_EXP_PARTS
#undef FNN_EXP
#undef FNN_EXPM1
#undef FNN_LOWEST
#undef FNN_ACTIVATE
#undef FNN_GRAD
#undef FNN_GATHER
#undef FNN_WIDEN
#undef FNN_HALVES
#undef FNN_STATE
#undef FNN_LOAD_GROUP
#undef FNN_FORWARD
#undef FNN_LOSS
#undef FNN_BACKWARD
#undef FNN_FINISH
#undef FNN_START
#undef FNN_LIVE

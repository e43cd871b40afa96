/* The lanes for one float type, FNN_T (float or double) with FNN_I its same-sized integer,
 * named with FNN_SUFFIX (_f, _d). Included twice by lanes.h; see there for what they are.
 * A vector holds one neuron's value for each of FNN_LANES rows of the batch.
 */
#define FNN_V FASTNN_CAT(fastnn_lane_vec, FNN_SUFFIX)
#define FNN_VI FASTNN_CAT(fastnn_lane_ivec, FNN_SUFFIX)
#define FNN_LANES ((ptrdiff_t)(32 / sizeof(FNN_T)))
#define FNN_SELECT FASTNN_CAT(fastnn_lane_select, FNN_SUFFIX)
#define FNN_EXP_PARTS FASTNN_CAT(fastnn_lane_exp_parts, FNN_SUFFIX)
#define FNN_EXP FASTNN_CAT(fastnn_lane_exp, FNN_SUFFIX)
#define FNN_EXPM1 FASTNN_CAT(fastnn_lane_expm1, FNN_SUFFIX)
#define FNN_ACTIVATE FASTNN_CAT(fastnn_lane_activate, FNN_SUFFIX)
#define FNN_GRAD FASTNN_CAT(fastnn_lane_grad, FNN_SUFFIX)
#define FNN_GATHER FASTNN_CAT(fastnn_lane_gather, FNN_SUFFIX)
#define FNN_WIDEN FASTNN_CAT(fastnn_lane_widen, FNN_SUFFIX)

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
FASTNN_TARGET static inline FNN_V FNN_SELECT(FNN_VI mask, FNN_V a, FNN_V b) {
#if FNN_IS_FLOAT
    return (FNN_V)_mm256_blendv_ps((__m256)b, (__m256)a, (__m256)mask);  /* one instruction, not and-andnot-or */
#else
    return (FNN_V)_mm256_blendv_pd((__m256d)b, (__m256d)a, (__m256d)mask);
#endif
}

/* The parts of exp(x) for x <= 0, or NaN, lane by lane: x = k ln2 + r with |r| <= ln2/2, and
 * exp(x) = 2^k (1 + r p) where p = 1 + r/2 + r²/6 + ...: exp(r) by its Taylor series to the term
 * below half an ulp (degree 13 for float64, 7 for float32). Returns 2^k, built in the exponent
 * bits, and sets p and r; FNN_EXP and FNN_EXPM1 finish them, within an ulp or two of libm's. */
FASTNN_TARGET static inline FNN_V FNN_EXP_PARTS(FNN_V x, FNN_V* p, FNN_V* r) {
#if FNN_IS_FLOAT
    const FNN_T log2e = 1.44269504088896341f, ln2_hi = 0.693145751953125f, ln2_lo = 1.42860676533018708e-06f;
    const FNN_T shifter = 12582912.0f;  /* 1.5 * 2^23: x + shifter rounds x to an integer in the low bits */
    static const FNN_T c[] = {1.0f / 5040, 1.0f / 720, 1.0f / 120, 1.0f / 24, 1.0f / 6, 0.5f, 1.0f};
    const int bias = 127, mantissa = 23;
#else
    /* ln2_hi has its low 32 bits zero, so k * ln2_hi is exact (fdlibm's split) */
    const FNN_T log2e = 1.4426950408889634, ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;
    const FNN_T shifter = 6755399441055744.0;  /* 1.5 * 2^52 */
    static const FNN_T c[] = {1.0 / 6227020800.0, 1.0 / 479001600.0, 1.0 / 39916800.0, 1.0 / 3628800.0, 1.0 / 362880.0,
                       1.0 / 40320.0, 1.0 / 5040.0, 1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0};
    const int bias = 1023, mantissa = 52;
#endif
    FNN_V kd = x * log2e + shifter;
    FNN_V k = kd - shifter;
    *r = (x - k * ln2_hi) - k * ln2_lo;
    *p = (FNN_V){0} + c[0];
    for (size_t i = 1; i < sizeof c / sizeof c[0]; i++)  /* Horner: 1 + r(1/2 + r(1/6 + ...)) */
        *p = *p * *r + c[i];
    /* kd's low bits hold k (plus 2^51 or 2^22, which the shift pushes out): the exponent of 2^k */
    return (FNN_V)(((FNN_VI)kd + bias) << mantissa);
}

/* log of the smallest normal number: below it exp(x) is 0 here (libm gives a subnormal) */
#define FNN_LOWEST ((FNN_T)(FNN_IS_FLOAT ? -87.3365447505531 : -708.3964185322641))

/* exp(x) for x <= 0, or NaN. */
FASTNN_TARGET static inline FNN_V FNN_EXP(FNN_V x) {
    FNN_V p, r, two_k = FNN_EXP_PARTS(x, &p, &r);
    return FNN_SELECT(x < FNN_LOWEST, (FNN_V){0}, (p * r + 1) * two_k);  /* NaN < lowest is false: NaN stays */
}

/* exp(x) - 1 for x <= 0, or NaN, without the cancellation of exp(x) - 1 near 0: there k = 0 and
 * it is r p itself. */
FASTNN_TARGET static inline FNN_V FNN_EXPM1(FNN_V x) {
    FNN_V p, r, two_k = FNN_EXP_PARTS(x, &p, &r);
    return FNN_SELECT(x < FNN_LOWEST, (FNN_V){0} - 1, two_k * (r * p) + (two_k - 1));
}

/* v = f(v) for n neurons, as activations.pxi's _activate computes it (one test of the code per layer). */
FASTNN_TARGET static inline void FNN_ACTIVATE(FNN_V* v, ptrdiff_t n, int64_t code, FNN_T slope) {
    const FNN_V zero = {0}, one = zero + 1;
    ptrdiff_t j;
    if (code == FASTNN_LANE_SIGMOID) {  /* exp(-|z|) never overflows: 1/(1+e) for z >= 0, e/(1+e) below */
        for (j = 0; j < n; j++) {
            FNN_V z = v[j], e = FNN_EXP(FNN_SELECT(z < 0, z, -z));
            v[j] = FNN_SELECT(z >= 0, one, e) / (one + e);
        }
    } else if (code == FASTNN_LANE_TANH) {  /* tanh|z| = -e / (2 + e), e = expm1(-2|z|): no overflow, no cancellation */
        for (j = 0; j < n; j++) {
            FNN_V z = v[j], e = FNN_EXPM1(FNN_SELECT(z < 0, z + z, -(z + z)));
            FNN_V t = -e / (e + 2);
            v[j] = FNN_SELECT(z < 0, -t, t);
        }
    } else if (code == FASTNN_LANE_RELU) {
        for (j = 0; j < n; j++)
            v[j] = FNN_SELECT(v[j] < 0, zero, v[j]);  /* NaN stays NaN */
    } else if (code == FASTNN_LANE_LEAKY_RELU) {
        for (j = 0; j < n; j++)
            v[j] = FNN_SELECT(v[j] < 0, zero, v[j]) + slope * FNN_SELECT(v[j] < 0, v[j], zero);
    }
}

/* d = d * f'(Z) through a = f(Z) for n neurons, as activations.pxi's _activation_grad computes it. */
FASTNN_TARGET static inline void FNN_GRAD(const FNN_V* a, FNN_V* d, ptrdiff_t n, int64_t code, FNN_T slope) {
    const FNN_V zero = {0}, one = zero + 1;
    ptrdiff_t j;
    if (code == FASTNN_LANE_SIGMOID) {
        for (j = 0; j < n; j++)
            d[j] = d[j] * (a[j] * (one - a[j]));
    } else if (code == FASTNN_LANE_TANH) {
        for (j = 0; j < n; j++)
            d[j] = d[j] * (one - a[j] * a[j]);
    } else if (code == FASTNN_LANE_RELU) {
        for (j = 0; j < n; j++)
            d[j] = d[j] * FNN_SELECT(a[j] > 0, one, zero);  /* a multiply: NaN * 0 is NaN */
    } else if (code == FASTNN_LANE_LEAKY_RELU) {
        for (j = 0; j < n; j++)
            d[j] = d[j] * FNN_SELECT(a[j] > 0, one, zero + slope);
    }
}

/* Column `column` of the rows at offsets off (elements from X, FNN_LANES of them, four to a
 * vector), 0 in the lanes that are not live: one gather instruction per four rows. */
FASTNN_TARGET static inline FNN_V FNN_GATHER(const FNN_T* column, const fastnn_lane_offsets off[], FNN_VI live) {
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
FASTNN_TARGET static inline void FNN_WIDEN(FNN_V v, fastnn_lane_sums out[]) {
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

/* Forward, loss and backward of one batch of m >= 1 rows; returns the batch's mean loss.
 * Row r of the batch is X[idx[r]] and Y[idx[r]], or X[r] and Y[r] when idx is NULL; X: (., sizes[0]),
 * Y: (., sizes[L]), row-major. codes: (L,) FASTNN_LANE_* activations; loss: FASTNN_LANE_BCE (from
 * logits: the output's code is LINEAR) or FASTNN_LANE_MSE, each the mean over the batch's rows and
 * outputs. P, G: (n_params,) the parameters and the gradient, W (n_in, n_out) then b per layer.
 * G gets the gradient of the mean loss times loss_scale; *correct gets the number of outputs on
 * the target's side (BCE: logit > 0 where target > 0.5) added. Every layer is 1 neuron to
 * FASTNN_LANE_MAX_BYTES wide. scratch: fastnn_lanes_scratch elements, zeros before the first call (its
 * gradient accumulators are left at zero for the next). */
FASTNN_TARGET static double FASTNN_CAT(fastnn_lanes_batch, FNN_SUFFIX)(
        const FNN_T* X, const FNN_T* Y, const int64_t* idx, ptrdiff_t m, const int64_t* sizes,
        const int64_t* codes, ptrdiff_t L, int loss, double loss_scale, FNN_T slope, const FNN_T* P,
        FNN_T* G, FNN_T* scratch, ptrdiff_t n_params, ptrdiff_t* correct) {
    enum { HALVES = FNN_LANES / 4, FLUSH_EVERY = 256 };
    const ptrdiff_t n_x = sizes[0], n_y = sizes[L];
    const FNN_V zero = {0}, one = zero + 1;
    FNN_V* act = (FNN_V*)(((uintptr_t)scratch + 31) & ~(uintptr_t)31);  /* act[sizes[0] + ... + sizes[L]] */
    ptrdiff_t n_act = 0, l, i, j, p, g, h, lane, terms = 0;
    for (l = 0; l <= L; l++)
        n_act += sizes[l];
    FNN_V* d = act + n_act;  /* the gradient with respect to the current layer's output, */
    FNN_V* d_in = d + FASTNN_LANE_MAX_WIDTH;  /* and to its input */
    FNN_V* y = d_in + FASTNN_LANE_MAX_WIDTH;  /* the group's targets */
    FNN_V* grad = y + FASTNN_LANE_MAX_WIDTH;  /* the gradient's sums over groups, by lane */
    FNN_VI lane_id, hits = {0};
    for (lane = 0; lane < FNN_LANES; lane++)
        lane_id[lane] = (FNN_I)lane;
    /* the mean's divisors in the data's type, as the layer-by-layer losses compute them */
    const FNN_T bce_scale = (FNN_T)(1.0 / ((double)m * n_y)), mse_denominator = (FNN_T)((double)m * n_y / 2.0);
    /* q: each lane's log1p terms summed as one, 1 + q = prod(1 + e), as losses.pxi's
     * _sigmoid_bce does; each factor is at most 2, so after FLUSH_EVERY terms q < 2^256. */
    fastnn_lane_sums loss_sum[HALVES], q[HALVES], wide[HALVES], e_wide[HALVES];
    double total = 0;
    for (h = 0; h < HALVES; h++)
        loss_sum[h] = q[h] = (fastnn_lane_sums){0};

    for (g = 0; g < m; g += FNN_LANES) {
        const ptrdiff_t live = m - g < FNN_LANES ? m - g : FNN_LANES;
        const FNN_VI is_live = lane_id < (FNN_I)live;  /* the lanes past the batch's end hold zeros */
        fastnn_lane_offsets rows[HALVES] = {{0}}, x_at[HALVES], y_at[HALVES];
        for (h = 0; h < HALVES; h++) {
            if (idx == NULL)  /* rows in order: g + 4h + 0..3 (the lanes past the end are masked) */
                rows[h] = (fastnn_lane_offsets){0, 1, 2, 3} + (g + 4 * h);
            else if (g + 4 * h + 4 <= m)
                memcpy(&rows[h], idx + g + 4 * h, sizeof rows[h]);
            else
                for (lane = 0; g + 4 * h + lane < m; lane++)
                    rows[h][lane] = idx[g + 4 * h + lane];
            x_at[h] = rows[h] * n_x;
            y_at[h] = rows[h] * n_y;
        }
        for (p = 0; p < n_x; p++)  /* the group's rows transposed into the lanes */
            act[p] = FNN_GATHER(X + p, x_at, is_live);
        for (j = 0; j < n_y; j++)
            y[j] = FNN_GATHER(Y + j, y_at, is_live);

        /* forward: out_j = f(sum_p in_p W[p, j] + b_j), the sum from its first term */
        const FNN_T* W = P;
        FNN_V* in = act;
        for (l = 0; l < L; l++) {
            const ptrdiff_t n_in = sizes[l], n_out = sizes[l + 1];
            const FNN_T* b = W + n_in * n_out;
            FNN_V* out = in + n_in;
            for (j = 0; j < n_out; j++) {
                FNN_V z = in[0] * W[j];
                for (p = 1; p < n_in; p++)
                    z += in[p] * W[p * n_out + j];
                out[j] = z + b[j];
            }
            FNN_ACTIVATE(out, n_out, codes[l], slope);
            W = b + n_out;
            in = out;
        }

        /* the loss (summed by lane, in double), its gradient with respect to the output, the hits */
        for (j = 0; j < n_y; j++) {
            const FNN_V z = in[j], target = y[j];
            if (loss == FASTNN_LANE_BCE) {  /* max(z, 0) - z y + log1p(exp(-|z|)), gradient sigmoid(z) - y */
                FNN_V e = FNN_EXP(FNN_SELECT(z < 0, z, -z));
                d[j] = FNN_SELECT(is_live, (FNN_SELECT(z >= 0, one, e) / (one + e) - target) * bce_scale, zero);
                FNN_WIDEN(FNN_SELECT(is_live, FNN_SELECT(z < 0, zero, z) - z * target, zero), wide);
                FNN_WIDEN(FNN_SELECT(is_live, e, zero), e_wide);
                for (h = 0; h < HALVES; h++) {
                    loss_sum[h] += wide[h];
                    q[h] += e_wide[h] + q[h] * e_wide[h];
                }
                if (++terms == FLUSH_EVERY) {
                    for (h = 0; h < HALVES; h++)
                        for (lane = 0; lane < 4; lane++)
                            total += log1p(q[h][lane]);
                    for (h = 0; h < HALVES; h++)
                        q[h] = (fastnn_lane_sums){0};
                    terms = 0;
                }
                hits += ~((z > 0) ^ (target > (FNN_T)0.5)) & is_live;  /* -1 in each lane that is right */
            } else {  /* MSE: (a - y)², gradient 2 (a - y) */
                FNN_V diff = FNN_SELECT(is_live, z - target, zero);
                d[j] = diff / mse_denominator;
                FNN_WIDEN(diff, wide);
                for (h = 0; h < HALVES; h++)
                    loss_sum[h] += wide[h] * wide[h];
            }
            if (loss_scale != 1.0)
                d[j] = d[j] * (FNN_T)loss_scale;
        }

        /* backward, last layer first: dz = d f'(z); db += dz; dW += in dz; d_in = dz Wᵀ */
        ptrdiff_t w_end = n_params, a_end = n_act;
        for (l = L - 1; l >= 0; l--) {
            const ptrdiff_t n_in = sizes[l], n_out = sizes[l + 1];
            const ptrdiff_t w_at = w_end - n_out - n_in * n_out;
            const FNN_V* out = act + a_end - n_out;
            const FNN_V* a_in = out - n_in;
            FNN_V* gW = grad + w_at;
            FNN_V* gb = gW + n_in * n_out;
            FNN_GRAD(out, d, n_out, codes[l], slope);
            for (j = 0; j < n_out; j++)
                gb[j] += d[j];
            for (p = 0; p < n_in; p++)
                for (j = 0; j < n_out; j++)
                    gW[p * n_out + j] += a_in[p] * d[j];
            if (l > 0) {  /* the network's input needs no gradient */
                const FNN_T* Wl = P + w_at;
                for (p = 0; p < n_in; p++) {
                    FNN_V s = d[0] * Wl[p * n_out];
                    for (j = 1; j < n_out; j++)
                        s += d[j] * Wl[p * n_out + j];
                    d_in[p] = s;
                }
                FNN_V* swap = d;
                d = d_in;
                d_in = swap;
            }
            w_end = w_at;
            a_end -= n_out;
        }
    }

    /* each accumulator's lanes added, eight accumulators at a time; left at zero */
    for (i = 0; i + 8 <= n_params; i += 8) {
        FASTNN_CAT(fastnn_sum8, FNN_SUFFIX)(grad + i, G + i);
        for (j = i; j < i + 8; j++)
            grad[j] = zero;
    }
    for (; i < n_params; i++) {
        G[i] = FASTNN_CAT(fastnn_hsum, FNN_SUFFIX)(grad[i]);
        grad[i] = zero;
    }
    for (lane = 0; lane < FNN_LANES; lane++)
        *correct -= hits[lane];
    double fold = 0;  /* the lanes' q folded into one, 1 + fold = prod(1 + q), flushed before it overflows */
    for (h = 0; h < HALVES; h++)
        for (lane = 0; lane < 4; lane++) {
            total += loss_sum[h][lane];
            fold += q[h][lane] + fold * q[h][lane];
            if (fold > 1e100) {
                total += log1p(fold);
                fold = 0;
            }
        }
    if (loss == FASTNN_LANE_BCE)
        total += log1p(fold);
    return total / ((double)m * n_y);
}

#else  /* no AVX2 build: never called (fastnn_simd_available is false) */

static double FASTNN_CAT(fastnn_lanes_batch, FNN_SUFFIX)(
        const FNN_T* X, const FNN_T* Y, const int64_t* idx, ptrdiff_t m, const int64_t* sizes,
        const int64_t* codes, ptrdiff_t L, int loss, double loss_scale, FNN_T slope, const FNN_T* P,
        FNN_T* G, FNN_T* scratch, ptrdiff_t n_params, ptrdiff_t* correct) {
    (void)X; (void)Y; (void)idx; (void)m; (void)sizes; (void)codes; (void)L; (void)loss; (void)loss_scale;
    (void)slope; (void)P; (void)G; (void)scratch; (void)n_params; (void)correct;
    return 0;
}

#endif

#undef FNN_V
#undef FNN_VI
#undef FNN_LANES
#undef FNN_SELECT
#undef FNN_EXP_PARTS
#undef FNN_EXP
#undef FNN_EXPM1
#undef FNN_LOWEST
#undef FNN_ACTIVATE
#undef FNN_GRAD
#undef FNN_GATHER
#undef FNN_WIDEN

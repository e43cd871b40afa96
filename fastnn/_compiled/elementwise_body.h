/* The elementwise passes for one float type FNN_T at one vector width FNN_VBYTES (32: AVX2 + FMA,
 * 64: AVX-512 F and DQ), compiled with FNN_TGT and named with FNN_SUFFIX (_f, _f512, _d, _d512).
 * Included four times by elementwise.h; see there for what they are and how they round.
 * Rows whose length is not a multiple of the vector width end with a partial vector: the last
 * elements are loaded into a full one padded with neutral values, and only they are written back.
 */
#define FNN_L ((ptrdiff_t)(FNN_VBYTES / sizeof(FNN_T)))
#define FNN_N(name) FASTNN_CAT(FASTNN_CAT(fastnn_ewk_, name), FNN_SUFFIX)
#define FNN_V FNN_N(vec)
#define FNN_VI FNN_N(ivec)
#define FNN_VD FNN_N(dvec)
#define FNN_VDI FNN_N(divec)
#define FNN_VH FNN_N(hvec)

typedef FNN_T FNN_V __attribute__((vector_size(FNN_VBYTES)));
/* Sums in double: a vector of doubles takes half a vector of floats (FNN_PARTS of them a vector). */
typedef double FNN_VD __attribute__((vector_size(FNN_VBYTES)));
typedef int64_t FNN_VDI __attribute__((vector_size(FNN_VBYTES)));
#if FNN_IS_FLOAT
typedef int32_t FNN_VI __attribute__((vector_size(FNN_VBYTES)));
typedef float FNN_VH __attribute__((vector_size(FNN_VBYTES / 2)));
#define FNN_PARTS 2
#else
typedef int64_t FNN_VI __attribute__((vector_size(FNN_VBYTES)));
#define FNN_PARTS 1
#endif

FNN_TGT static inline FNN_V FNN_N(load)(const FNN_T* p) {
    FNN_V v;
    memcpy(&v, p, sizeof v);  /* an unaligned load */
    return v;
}

FNN_TGT static inline void FNN_N(store)(FNN_T* p, FNN_V v) {
    memcpy(p, &v, sizeof v);
}

/* Lanes below n all ones, the others zero. */
FNN_TGT static inline FNN_VI FNN_N(live)(ptrdiff_t n) {
    FNN_VI iota;
    for (ptrdiff_t l = 0; l < FNN_L; l++)
        iota[l] = (int)l;
    return iota < (int)n;
}

/* The last n < FNN_L elements of a row in a full vector, the other lanes `pad`; and the store of
 * a vector's first n lanes. Masked loads and stores, one instruction each: a copy of n elements
 * through a buffer compiled to a call of memcpy, which cost more than the vector work of a short
 * row (the ten logits of a classifier). The masked-off lanes are never read or written, so the
 * row may end at the end of a page. */
FNN_TGT static inline FNN_V FNN_N(load_part)(const FNN_T* p, ptrdiff_t n, FNN_T pad) {
#if FNN_VBYTES == 64 && FNN_IS_FLOAT
    return (FNN_V)_mm512_mask_loadu_ps(_mm512_set1_ps(pad), (__mmask16)((1u << n) - 1), p);
#elif FNN_VBYTES == 64
    return (FNN_V)_mm512_mask_loadu_pd(_mm512_set1_pd(pad), (__mmask8)((1u << n) - 1), p);
#elif FNN_IS_FLOAT
    __m256i live = (__m256i)FNN_N(live)(n);
    return (FNN_V)_mm256_blendv_ps(_mm256_set1_ps(pad), _mm256_maskload_ps(p, live), (__m256)live);
#else
    __m256i live = (__m256i)FNN_N(live)(n);
    return (FNN_V)_mm256_blendv_pd(_mm256_set1_pd(pad), _mm256_maskload_pd(p, live), (__m256d)live);
#endif
}

FNN_TGT static inline void FNN_N(store_part)(FNN_T* p, FNN_V v, ptrdiff_t n) {
#if FNN_VBYTES == 64 && FNN_IS_FLOAT
    _mm512_mask_storeu_ps(p, (__mmask16)((1u << n) - 1), (__m512)v);
#elif FNN_VBYTES == 64
    _mm512_mask_storeu_pd(p, (__mmask8)((1u << n) - 1), (__m512d)v);
#elif FNN_IS_FLOAT
    _mm256_maskstore_ps(p, (__m256i)FNN_N(live)(n), (__m256)v);
#else
    _mm256_maskstore_pd(p, (__m256i)FNN_N(live)(n), (__m256d)v);
#endif
}

/* where(mask, a, b) for a mask from a vector comparison (each lane all ones or all zeros). */
FNN_TGT static inline FNN_V FNN_N(select)(FNN_VI mask, FNN_V a, FNN_V b) {
#if FNN_VBYTES == 32 && FNN_IS_FLOAT
    return (FNN_V)_mm256_blendv_ps((__m256)b, (__m256)a, (__m256)mask);
#elif FNN_VBYTES == 32
    return (FNN_V)_mm256_blendv_pd((__m256d)b, (__m256d)a, (__m256d)mask);
#else
    return (FNN_V)((mask & (FNN_VI)a) | (~mask & (FNN_VI)b));
#endif
}

/* Whether any lane of a comparison's mask is set. */
FNN_TGT static inline int FNN_N(any)(FNN_VI mask) {
#if FNN_VBYTES == 32 && FNN_IS_FLOAT
    return _mm256_movemask_ps((__m256)mask) != 0;
#elif FNN_VBYTES == 32
    return _mm256_movemask_pd((__m256d)mask) != 0;
#elif FNN_IS_FLOAT
    return _mm512_movepi32_mask((__m512i)mask) != 0;
#else
    return _mm512_movepi64_mask((__m512i)mask) != 0;
#endif
}

FNN_TGT static inline FNN_V FNN_N(sqrt)(FNN_V x) {
#if FNN_VBYTES == 32 && FNN_IS_FLOAT
    return (FNN_V)_mm256_sqrt_ps((__m256)x);
#elif FNN_VBYTES == 32
    return (FNN_V)_mm256_sqrt_pd((__m256d)x);
#elif FNN_IS_FLOAT
    return (FNN_V)_mm512_sqrt_ps((__m512)x);
#else
    return (FNN_V)_mm512_sqrt_pd((__m512d)x);
#endif
}

/* a * b + c in one rounding: used inside exp only (contraction is off everywhere else). */
FNN_TGT static inline FNN_V FNN_N(fma)(FNN_V a, FNN_V b, FNN_V c) {
#if FNN_VBYTES == 32 && FNN_IS_FLOAT
    return (FNN_V)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c);
#elif FNN_VBYTES == 32
    return (FNN_V)_mm256_fmadd_pd((__m256d)a, (__m256d)b, (__m256d)c);
#elif FNN_IS_FLOAT
    return (FNN_V)_mm512_fmadd_ps((__m512)a, (__m512)b, (__m512)c);
#else
    return (FNN_V)_mm512_fmadd_pd((__m512d)a, (__m512d)b, (__m512d)c);
#endif
}

FNN_TGT static inline FNN_V FNN_N(abs)(FNN_V x) {
#if FNN_IS_FLOAT
    const FNN_VI magnitude = (FNN_VI){0} + (int32_t)0x7fffffff;
#else
    const FNN_VI magnitude = (FNN_VI){0} + (int64_t)0x7fffffffffffffff;
#endif
    return (FNN_V)((FNN_VI)x & magnitude);
}

/* Part k < FNN_PARTS of x in double. */
FNN_TGT static inline FNN_VD FNN_N(part)(FNN_V x, int k) {
#if FNN_IS_FLOAT
    FNN_VH half;
    memcpy(&half, (const char*)&x + k * sizeof half, sizeof half);
    return __builtin_convertvector(half, FNN_VD);
#else
    (void)k;
    return x;
#endif
}

/* sums + x's lanes in double (a float vector's two halves added in turn). */
FNN_TGT static inline FNN_VD FNN_N(add_wide)(FNN_VD sums, FNN_V x) {
    for (int k = 0; k < FNN_PARTS; k++)
        sums += FNN_N(part)(x, k);
    return sums;
}

/* The lanes' sum, lane by lane in order. */
FNN_TGT static inline double FNN_N(hsum)(FNN_VD v) {
    double total = 0;
    for (size_t l = 0; l < sizeof v / sizeof v[0]; l++)
        total += v[l];
    return total;
}

FNN_TGT static inline FNN_T FNN_N(libm_exp)(FNN_T x) {
#if FNN_IS_FLOAT
    return expf(x);
#else
    return exp(x);
#endif
}

FNN_TGT static inline FNN_T FNN_N(libm_log)(FNN_T x) {
#if FNN_IS_FLOAT
    return logf(x);
#else
    return log(x);
#endif
}

/* exp(x) for x <= 0, or NaN, lane by lane: x = k ln2 + r with |r| <= ln2/2 and
 * exp(x) = 2^k (1 + r p), p = 1 + r/2 + r²/6 + ...: exp(r) by its Taylor series to the term below
 * half an ulp (degree 13 for float64, 7 for float32), as lanes_body.h's. 2^k is built in the
 * exponent bits, which holds while the result is a normal number; below that (rare: a logit far
 * under the row's largest) libm computes the lanes whose result is subnormal, and 0 is exact
 * where libm's result is 0 too. NaN stays NaN. */
FNN_TGT static inline FNN_V FNN_N(exp)(FNN_V x) {
#if FNN_IS_FLOAT
    const FNN_T log2e = 1.44269504088896341f, ln2_hi = 0.693145751953125f, ln2_lo = 1.42860676533018708e-06f;
    const FNN_T shifter = 12582912.0f;  /* 1.5 * 2^23: x + shifter rounds x to an integer in the low bits */
    static const FNN_T c[] = {1.0f / 5040, 1.0f / 720, 1.0f / 120, 1.0f / 24, 1.0f / 6, 0.5f, 1.0f};
    const int bias = 127, mantissa = 23;
    const FNN_T lowest = -87.3365447505531f;  /* log of the smallest normal number */
    const FNN_T zero_below = -104.0f;         /* below it expf is 0 */
#else
    /* ln2_hi has its low 32 bits zero, so k * ln2_hi is exact (fdlibm's split) */
    const FNN_T log2e = 1.4426950408889634, ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;
    const FNN_T shifter = 6755399441055744.0;  /* 1.5 * 2^52 */
    static const FNN_T c[] = {1.0 / 6227020800.0, 1.0 / 479001600.0, 1.0 / 39916800.0, 1.0 / 3628800.0,
                              1.0 / 362880.0, 1.0 / 40320.0, 1.0 / 5040.0, 1.0 / 720.0, 1.0 / 120.0,
                              1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0};
    const int bias = 1023, mantissa = 52;
    const FNN_T lowest = -708.3964185322641;
    const FNN_T zero_below = -745.2;  /* below it exp is 0 */
#endif
    const FNN_V zero = {0};
    FNN_V kd = FNN_N(fma)(x, zero + log2e, zero + shifter);
    FNN_V k = kd - shifter;
    FNN_V r = FNN_N(fma)(k, zero - ln2_hi, x);
    r = FNN_N(fma)(k, zero - ln2_lo, r);
    FNN_V p = zero + c[0];
    for (size_t i = 1; i < sizeof c / sizeof c[0]; i++)  /* Horner: 1 + r(1/2 + r(1/6 + ...)) */
        p = FNN_N(fma)(p, r, zero + c[i]);
    /* kd's low bits hold k (plus 2^51 or 2^22, which the shift pushes out): the exponent of 2^k */
    FNN_V two_k = (FNN_V)(((FNN_VI)kd + bias) << mantissa);
    FNN_V y = FNN_N(fma)(p, r, zero + 1) * two_k;
    FNN_VI under = x < lowest;  /* false for NaN */
    if (__builtin_expect(FNN_N(any)(under), 0)) {
        FNN_T xs[FNN_L], ys[FNN_L];
        y = FNN_N(select)(under, zero, y);
        FNN_N(store)(xs, x);
        FNN_N(store)(ys, y);
        for (ptrdiff_t l = 0; l < FNN_L; l++)
            if (xs[l] < lowest && xs[l] >= zero_below)
                ys[l] = FNN_N(libm_exp)(xs[l]);
        y = FNN_N(load)(ys);
    }
    return y;
}

/* exp(x) - 1 for x <= 0, or NaN, without the cancellation of exp(x) - 1 near 0: the parts of
 * exp above, 2^k (1 + r p) - 1 = 2^k r p + (2^k - 1), which is r p itself where k = 0. Below the
 * smallest normal result it is -1 (as libm's, to the last bit). */
FNN_TGT static inline FNN_V FNN_N(expm1)(FNN_V x) {
#if FNN_IS_FLOAT
    const FNN_T log2e = 1.44269504088896341f, ln2_hi = 0.693145751953125f, ln2_lo = 1.42860676533018708e-06f;
    const FNN_T shifter = 12582912.0f;
    static const FNN_T c[] = {1.0f / 5040, 1.0f / 720, 1.0f / 120, 1.0f / 24, 1.0f / 6, 0.5f, 1.0f};
    const int bias = 127, mantissa = 23;
    const FNN_T lowest = -87.3365447505531f;
#else
    const FNN_T log2e = 1.4426950408889634, ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;
    const FNN_T shifter = 6755399441055744.0;
    static const FNN_T c[] = {1.0 / 6227020800.0, 1.0 / 479001600.0, 1.0 / 39916800.0, 1.0 / 3628800.0,
                              1.0 / 362880.0, 1.0 / 40320.0, 1.0 / 5040.0, 1.0 / 720.0, 1.0 / 120.0,
                              1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0};
    const int bias = 1023, mantissa = 52;
    const FNN_T lowest = -708.3964185322641;
#endif
    const FNN_V zero = {0};
    FNN_V kd = FNN_N(fma)(x, zero + log2e, zero + shifter);
    FNN_V k = kd - shifter;
    FNN_V r = FNN_N(fma)(k, zero - ln2_hi, x);
    r = FNN_N(fma)(k, zero - ln2_lo, r);
    FNN_V p = zero + c[0];
    for (size_t i = 1; i < sizeof c / sizeof c[0]; i++)
        p = FNN_N(fma)(p, r, zero + c[i]);
    FNN_V two_k = (FNN_V)(((FNN_VI)kd + bias) << mantissa);
    FNN_V y = FNN_N(fma)(two_k, r * p, two_k - 1);
    return FNN_N(select)(x < lowest, zero - 1, y);  /* NaN < lowest is false: NaN stays */
}

/* max(z[:n]) as activations.pxi's _row_max: NaN if the row holds one. n >= 1. */
FNN_TGT static inline FNN_T FNN_N(row_max)(const FNN_T* z, ptrdiff_t n) {
    FNN_V top = (FNN_V){0} - (FNN_T)INFINITY, v;
    FNN_T lanes[FNN_L], best;
    ptrdiff_t j = 0;
    for (; j + FNN_L <= n; j += FNN_L) {
        v = FNN_N(load)(z + j);
        top = FNN_N(select)((v > top) | (v != v), v, top);  /* once a lane is NaN, it stays */
    }
    if (j < n) {
        v = FNN_N(load_part)(z + j, n - j, -(FNN_T)INFINITY);
        top = FNN_N(select)((v > top) | (v != v), v, top);
    }
    FNN_N(store)(lanes, top);
    best = lanes[0];
    for (ptrdiff_t l = 1; l < FNN_L; l++)
        if (lanes[l] > best || lanes[l] != lanes[l])
            best = lanes[l];
    return best;
}

/* exp(d[k]) in place for k < count: the rows of a block as one run, so that short rows (ten
 * classes) fill whole vectors too. */
FNN_TGT static void FNN_N(exp_run)(FNN_T* d, ptrdiff_t count) {
    ptrdiff_t k = 0;
    for (; k + FNN_L <= count; k += FNN_L)
        FNN_N(store)(d + k, FNN_N(exp)(FNN_N(load)(d + k)));
    if (k < count)
        FNN_N(store_part)(d + k, FNN_N(exp)(FNN_N(load_part)(d + k, count - k, 0)), count - k);
}

/* The rows of one block of the softmax losses: at most FASTNN_EW_BLOCK of them, and few enough that
 * the block's gradient stays in L1 between its three passes. */
#ifndef FASTNN_EW_BLOCK
#define FASTNN_EW_BLOCK 64
#endif
static inline ptrdiff_t FNN_N(block_rows)(ptrdiff_t n) {
    ptrdiff_t rows = (ptrdiff_t)(2048 / sizeof(FNN_T)) / n;
    return rows < 1 ? 1 : rows > FASTNN_EW_BLOCK ? FASTNN_EW_BLOCK : rows;
}

/* max(z[:n]) as activations.pxi's _row_max (NaN if the row holds one), one element at a time: the
 * rows of a classifier are short. Without branches (maxsd, and the NaN flag on the side): the
 * compares of random logits mispredict, and a branch per element made the max of a ten-class row
 * the costliest part of softmax_sparse (`perf annotate`). */
static inline FNN_T FNN_N(row_max1)(const FNN_T* z, ptrdiff_t n) {
    FNN_T top = z[0];
    int nan = z[0] != z[0];
    for (ptrdiff_t j = 1; j < n; j++) {
        FNN_T v = z[j];
        top = v > top ? v : top;
        nan |= v != v;
    }
    return nan ? (FNN_T)NAN : top;
}

/* losses.pxi's _softmax_sparse_cce: returns the weighted sum of the rows' losses. A block of rows
 * at a time, in three passes: each row's max and d = z - max (d may be z); exp of the whole block
 * on vectors; then per row the loops of the .pxi, the sum in the same order. */
FNN_TGT static double FNN_N(softmax_sparse)(const FNN_T* Z, const int64_t* labels, const FNN_T* w, FNN_T* dZ,
                                           ptrdiff_t m, ptrdiff_t n, double w_sum) {
    const FNN_T denom = (FNN_T)w_sum, one = 1;
    const ptrdiff_t block = FNN_N(block_rows)(n);
    FNN_T shifted_label[FASTNN_EW_BLOCK], wi = 1;
    double loss_sum = 0;
    for (ptrdiff_t i0 = 0; i0 < m; i0 += block) {
        ptrdiff_t rows = m - i0 < block ? m - i0 : block, i, j;
        for (i = 0; i < rows; i++) {
            const FNN_T* z = Z + (i0 + i) * n;
            FNN_T* d = dZ + (i0 + i) * n;
            FNN_T top = n < 2 * FNN_L ? FNN_N(row_max1)(z, n) : FNN_N(row_max)(z, n);
            shifted_label[i] = z[labels[i0 + i]] - top;  /* read before d overwrites it: dZ may be Z */
            for (j = 0; j < n; j++)
                d[j] = z[j] - top;
        }
        FNN_N(exp_run)(dZ + i0 * n, rows * n);
        for (i = 0; i < rows; i++) {
            FNN_T* d = dZ + (i0 + i) * n;
            ptrdiff_t label = (ptrdiff_t)labels[i0 + i];
            double sum_e = 0;
            if (w != NULL)
                wi = w[i0 + i];
            for (j = 0; j < n; j++)
                sum_e += d[j];
            FNN_T total = (FNN_T)sum_e;
            loss_sum += (FNN_N(libm_log)(total) - shifted_label[i]) * wi;
            FNN_T e_label = d[label];
            for (j = 0; j < n; j++)
                d[j] = ((d[j] / total) * wi) / denom;
            d[label] = ((e_label / total - one) * wi) / denom;
        }
    }
    return loss_sum;
}

/* losses.pxi's _softmax_cce for dZ not Z (in place, the .pxi's loops): returns the weighted sum
 * of the rows' losses. In blocks, as softmax_sparse. */
FNN_TGT static double FNN_N(softmax_dense)(const FNN_T* Z, const FNN_T* Y, const FNN_T* w, FNN_T* dZ,
                                          ptrdiff_t m, ptrdiff_t n, double w_sum) {
    const FNN_T denom = (FNN_T)w_sum;
    const ptrdiff_t block = FNN_N(block_rows)(n);
    FNN_T tops[FASTNN_EW_BLOCK], wi = 1;
    double loss_sum = 0;
    for (ptrdiff_t i0 = 0; i0 < m; i0 += block) {
        ptrdiff_t rows = m - i0 < block ? m - i0 : block, i, j;
        for (i = 0; i < rows; i++) {
            const FNN_T* z = Z + (i0 + i) * n;
            FNN_T* d = dZ + (i0 + i) * n;
            FNN_T top = n < 2 * FNN_L ? FNN_N(row_max1)(z, n) : FNN_N(row_max)(z, n);
            tops[i] = top;
            for (j = 0; j < n; j++)
                d[j] = z[j] - top;
        }
        FNN_N(exp_run)(dZ + i0 * n, rows * n);
        for (i = 0; i < rows; i++) {
            const FNN_T* z = Z + (i0 + i) * n;
            const FNN_T* t = Y + (i0 + i) * n;
            FNN_T* d = dZ + (i0 + i) * n;
            FNN_T top = tops[i];
            double sum_e = 0, sum_y = 0;
            if (w != NULL)
                wi = w[i0 + i];
            for (j = 0; j < n; j++) {
                sum_e += d[j];
                sum_y += t[j];
            }
            FNN_T total = (FNN_T)sum_e, y_sum = (FNN_T)sum_y;
            FNN_T log_sum = FNN_N(libm_log)(total);
            /* -sum_j y_j log p_j with log p_j = shifted_j - log_sum (log-sum-exp, no log of 0) */
            for (j = 0; j < n; j++)
                loss_sum += (t[j] * (log_sum - (z[j] - top))) * wi;
            for (j = 0; j < n; j++)
                d[j] = ((((d[j] / total) * y_sum) - t[j]) * wi) / denom;
        }
    }
    return loss_sum;
}

/* losses.pxi's _sigmoid_bce without weights, over size elements: dZ = (sigmoid(z) - y) * scale
 * and returns the sum of the elements' losses. The log1p terms are summed as in the .pxi, as
 * log1p of a running product, one product per lane. */
FNN_TGT static double FNN_N(sigmoid_bce)(const FNN_T* Z, const FNN_T* Y, FNN_T* dZ, ptrdiff_t size,
                                        FNN_T scale) {
    const FNN_V zero = {0}, one = zero + 1, sv = zero + scale;
    FNN_VD losses = {0}, q[FNN_PARTS] = {{0}};
    double flushed = 0, qs[sizeof losses / sizeof losses[0]];
    for (ptrdiff_t j = 0; j < size; j += FNN_L) {
        ptrdiff_t left = size - j;
        int part = left < FNN_L;
        FNN_V z = part ? FNN_N(load_part)(Z + j, left, 0) : FNN_N(load)(Z + j);
        FNN_V y = part ? FNN_N(load_part)(Y + j, left, 0) : FNN_N(load)(Y + j);
        FNN_V e = FNN_N(exp)(-FNN_N(abs)(z));
        FNN_V term = FNN_N(select)(z < 0, zero, z) - z * y;
        FNN_V g = (FNN_N(select)(z >= 0, one, e) / (one + e) - y) * sv;
        if (part) {
            FNN_VI live = FNN_N(live)(left);
            term = FNN_N(select)(live, term, zero);
            e = FNN_N(select)(live, e, zero);
            FNN_N(store_part)(dZ + j, g, left);
        } else {
            FNN_N(store)(dZ + j, g);
        }
        losses = FNN_N(add_wide)(losses, term);
        for (int k = 0; k < FNN_PARTS; k++) {
            FNN_VD ed = FNN_N(part)(e, k);
            q[k] += ed + q[k] * ed;  /* positive terms only: no digits lost; flushed long before overflow */
            FNN_VDI big = q[k] > 1e100;
            int64_t any_big = 0;
            for (size_t l = 0; l < sizeof qs / sizeof qs[0]; l++)
                any_big |= big[l];
            if (__builtin_expect(any_big != 0, 0)) {
                memcpy(qs, &q[k], sizeof qs);
                for (size_t l = 0; l < sizeof qs / sizeof qs[0]; l++)
                    if (qs[l] > 1e100) {
                        flushed += log1p(qs[l]);
                        qs[l] = 0;
                    }
                memcpy(&q[k], qs, sizeof qs);
            }
        }
    }
    for (int k = 0; k < FNN_PARTS; k++) {
        memcpy(qs, &q[k], sizeof qs);
        for (size_t l = 0; l < sizeof qs / sizeof qs[0]; l++)
            flushed += log1p(qs[l]);
    }
    return FNN_N(hsum)(losses) + flushed;
}

/* optimizers.pxi's _normal_or_zero: x, or 0 where x is subnormal; NaN stays NaN. */
FNN_TGT static inline FNN_V FNN_N(normal_or_zero)(FNN_V x) {
    const FNN_T tiny = FNN_IS_FLOAT ? 1.17549435082228750797e-38f : 2.2250738585072013830902e-308;
    return FNN_N(select)(FNN_N(abs)(x) < tiny, (FNN_V){0}, x);
}

static inline FNN_T FNN_N(sqrt1)(FNN_T x) {
#if FNN_IS_FLOAT
    return sqrtf(x);
#else
    return sqrt(x);
#endif
}

static inline FNN_T FNN_N(normal_or_zero1)(FNN_T x) {
    const FNN_T tiny = FNN_IS_FLOAT ? 1.17549435082228750797e-38f : 2.2250738585072013830902e-308;
    return (x < 0 ? -x : x) < tiny ? 0 : x;
}

/* optimizers.pxi's steps, the same operations in the same order (so the same bits), over size
 * elements. ADAM, ADAMW: s1 = m, s2 = v, a..f = beta1, 1 - beta1, beta2, 1 - beta2, the step size,
 * eps, and AdamW's decay rate (its pass param -= rate * param fused in); MOMENTUM, NESTEROV:
 * s1 = velocity, a = lr, b = momentum; RMSPROP: s1 = v, s2 = velocity or NULL, a = lr, b = rho,
 * c = eps, d = momentum. The elements after the last full vector go through the same formula one
 * at a time (the T-typed scalar versions below). */
#define FNN_ADAM(P, G, M, V)                                                                   \
    do {                                                                                       \
        if (formula == FASTNN_EW_ADAMW)                                                        \
            P = P - decay * P;                                                                 \
        M = NZ(M * a + b * G);                                                                 \
        V = NZ(V * c + d * G * G);                                                             \
        P = P - e * M / (SQRT(V) + f);                                                         \
    } while (0)
#define FNN_MOMENTUM(P, G, U)                                                                  \
    do {                                                                                       \
        U = NZ(U * b - a * G);                                                                 \
        P = formula == FASTNN_EW_NESTEROV ? P + (b * U - a * G) : P + U;                       \
    } while (0)

FNN_TGT static void FNN_N(step)(int formula, FNN_T* param, const FNN_T* grad, FNN_T* s1, FNN_T* s2,
                               ptrdiff_t size, FNN_T a, FNN_T b, FNN_T c, FNN_T d, FNN_T e, FNN_T f,
                               FNN_T decay) {
    ptrdiff_t i = 0;
    FNN_V P, G, S1, S2, inc;
    FNN_T p, g, t1, t2, inc1;
    if (formula == FASTNN_EW_ADAM || formula == FASTNN_EW_ADAMW) {
#define NZ FNN_N(normal_or_zero)
#define SQRT FNN_N(sqrt)
        for (; i + FNN_L <= size; i += FNN_L) {
            P = FNN_N(load)(param + i), G = FNN_N(load)(grad + i);
            S1 = FNN_N(load)(s1 + i), S2 = FNN_N(load)(s2 + i);
            FNN_ADAM(P, G, S1, S2);
            FNN_N(store)(s1 + i, S1), FNN_N(store)(s2 + i, S2), FNN_N(store)(param + i, P);
        }
#undef NZ
#undef SQRT
#define NZ FNN_N(normal_or_zero1)
#define SQRT FNN_N(sqrt1)
        for (; i < size; i++) {
            p = param[i], g = grad[i], t1 = s1[i], t2 = s2[i];
            FNN_ADAM(p, g, t1, t2);
            s1[i] = t1, s2[i] = t2, param[i] = p;
        }
#undef NZ
#undef SQRT
    } else if (formula == FASTNN_EW_MOMENTUM || formula == FASTNN_EW_NESTEROV) {
#define NZ FNN_N(normal_or_zero)
        for (; i + FNN_L <= size; i += FNN_L) {
            P = FNN_N(load)(param + i), G = FNN_N(load)(grad + i), S1 = FNN_N(load)(s1 + i);
            FNN_MOMENTUM(P, G, S1);
            FNN_N(store)(s1 + i, S1), FNN_N(store)(param + i, P);
        }
#undef NZ
#define NZ FNN_N(normal_or_zero1)
        for (; i < size; i++) {
            p = param[i], g = grad[i], t1 = s1[i];
            FNN_MOMENTUM(p, g, t1);
            s1[i] = t1, param[i] = p;
        }
#undef NZ
    } else {  /* RMSPROP: c1 = 1 - rho in the data's type, as the .pxi's */
        const FNN_T c1 = 1 - b;
        for (; i + FNN_L <= size; i += FNN_L) {
            P = FNN_N(load)(param + i), G = FNN_N(load)(grad + i), S1 = FNN_N(load)(s1 + i);
            S1 = FNN_N(normal_or_zero)(S1 * b + c1 * G * G);
            FNN_N(store)(s1 + i, S1);
            inc = a * G / FNN_N(sqrt)(S1 + c);
            if (s2 != NULL) {
                S2 = FNN_N(load)(s2 + i);
                inc = FNN_N(normal_or_zero)(S2 * d + inc);
                FNN_N(store)(s2 + i, inc);
            }
            FNN_N(store)(param + i, P - inc);
        }
        for (; i < size; i++) {
            g = grad[i];
            t1 = FNN_N(normal_or_zero1)(s1[i] * b + c1 * g * g);
            s1[i] = t1;
            inc1 = a * g / FNN_N(sqrt1)(t1 + c);
            if (s2 != NULL) {
                inc1 = FNN_N(normal_or_zero1)(s2[i] * d + inc1);
                s2[i] = inc1;
            }
            param[i] = param[i] - inc1;
        }
    }
}
#undef FNN_ADAM
#undef FNN_MOMENTUM

/* trainer.pxi's weight penalties' gradient: g[i] = g[i] + c * p[i], a product and a sum (no FMA),
 * as its loop. */
FNN_TGT static void FNN_N(add_scaled)(FNN_T* g, const FNN_T* p, ptrdiff_t size, FNN_T c) {
    ptrdiff_t i = 0;
    for (; i + FNN_L <= size; i += FNN_L)
        FNN_N(store)(g + i, FNN_N(load)(g + i) + c * FNN_N(load)(p + i));
    if (i < size)
        FNN_N(store_part)(g + i, FNN_N(load_part)(g + i, size - i, 0) + c * FNN_N(load_part)(p + i, size - i, 0),
                          size - i);
}

/* trainer.pxi's weight penalties' sum of squares: sum(x²) in double, lane by lane and then across
 * the lanes (cmath.pxi's _sum_squares adds in four running sums: the two differ by rounding). */
FNN_TGT static double FNN_N(sum_squares)(const FNN_T* x, ptrdiff_t size) {
    FNN_VD sums = {0};
    ptrdiff_t i = 0;
    for (; i + FNN_L <= size; i += FNN_L)
        for (int k = 0; k < FNN_PARTS; k++) {
            FNN_VD v = FNN_N(part)(FNN_N(load)(x + i), k);
            sums += v * v;
        }
    if (i < size)
        for (int k = 0; k < FNN_PARTS; k++) {
            FNN_VD v = FNN_N(part)(FNN_N(load_part)(x + i, size - i, 0), k);
            sums += v * v;
        }
    return FNN_N(hsum)(sums);
}

/* activations.pxi's _activation_grad for the elementwise codes: out = dA * f'(Z) through A = f(Z),
 * and, unless db is NULL, db = the column sums of out, added row by row as there. out is dA or
 * does not overlap it. */
#define FNN_DERIVATIVE(code, o, a, zero, one, slope)                                           \
    ((code) == FASTNN_EW_RELU ? (o) * ((a) > 0 ? (one) : (zero))                               \
     : (code) == FASTNN_EW_SIGMOID ? (o) * ((a) * ((one) - (a)))                               \
     : (code) == FASTNN_EW_TANH ? (o) * ((one) - (a) * (a))                                     \
     : (code) == FASTNN_EW_LEAKY_RELU ? (o) * ((a) > 0 ? (one) : (slope))                       \
     : (code) == FASTNN_EW_EXP ? (o) * (a) : (o))

FNN_TGT static inline FNN_V FNN_N(derivative)(int code, FNN_V o, FNN_V a, FNN_T slope) {
    const FNN_V zero = {0}, one = zero + 1;
    if (code == FASTNN_EW_RELU)
        return o * FNN_N(select)(a > 0, one, zero);  /* a multiply, as in NumPy: NaN * 0 is NaN */
    if (code == FASTNN_EW_SIGMOID)
        return o * (a * (one - a));
    if (code == FASTNN_EW_TANH)
        return o * (one - a * a);
    if (code == FASTNN_EW_LEAKY_RELU)
        return o * FNN_N(select)(a > 0, one, zero + slope);
    if (code == FASTNN_EW_EXP)
        return o * a;
    return o;
}

/* The rows with one code: the loop is compiled once per code, so no test of it is left inside.
 * With db, four vectors of columns at a time down all the rows, their sums kept in registers:
 * adding each row into db in memory made every row wait for the last one's stores. Each column
 * is still summed row by row, in order. */
FNN_TGT static inline void FNN_N(grad_rows)(const FNN_T* A, const FNN_T* dA, int code, FNN_T* out, FNN_T* db,
                                           ptrdiff_t m, ptrdiff_t n, FNN_T slope) {
    const FNN_T zero = 0, one = 1;
    ptrdiff_t j0 = 0;
    if (db != NULL)
        for (; j0 + 4 * FNN_L <= n; j0 += 4 * FNN_L) {
            FNN_V s0 = FNN_N(load)(db + j0), s1 = FNN_N(load)(db + j0 + FNN_L);
            FNN_V s2 = FNN_N(load)(db + j0 + 2 * FNN_L), s3 = FNN_N(load)(db + j0 + 3 * FNN_L);
            for (ptrdiff_t i = 0; i < m; i++) {
                const FNN_T* a = A + i * n + j0;
                const FNN_T* g = dA + i * n + j0;
                FNN_T* o = out + i * n + j0;
                FNN_V r0 = FNN_N(derivative)(code, FNN_N(load)(g), FNN_N(load)(a), slope);
                FNN_V r1 = FNN_N(derivative)(code, FNN_N(load)(g + FNN_L), FNN_N(load)(a + FNN_L), slope);
                FNN_V r2 = FNN_N(derivative)(code, FNN_N(load)(g + 2 * FNN_L), FNN_N(load)(a + 2 * FNN_L), slope);
                FNN_V r3 = FNN_N(derivative)(code, FNN_N(load)(g + 3 * FNN_L), FNN_N(load)(a + 3 * FNN_L), slope);
                FNN_N(store)(o, r0);
                FNN_N(store)(o + FNN_L, r1);
                FNN_N(store)(o + 2 * FNN_L, r2);
                FNN_N(store)(o + 3 * FNN_L, r3);
                s0 += r0; s1 += r1; s2 += r2; s3 += r3;
            }
            FNN_N(store)(db + j0, s0);
            FNN_N(store)(db + j0 + FNN_L, s1);
            FNN_N(store)(db + j0 + 2 * FNN_L, s2);
            FNN_N(store)(db + j0 + 3 * FNN_L, s3);
        }
    for (ptrdiff_t i = 0; i < m; i++) {  /* the columns from j0 on, row by row */
        const FNN_T* a = A + i * n;
        const FNN_T* g = dA + i * n;
        FNN_T* o = out + i * n;
        ptrdiff_t j = j0;
        for (; j + FNN_L <= n; j += FNN_L) {
            FNN_V r = FNN_N(derivative)(code, FNN_N(load)(g + j), FNN_N(load)(a + j), slope);
            FNN_N(store)(o + j, r);
            if (db != NULL)
                FNN_N(store)(db + j, FNN_N(load)(db + j) + r);
        }
        for (; j < n; j++) {
            FNN_T r = FNN_DERIVATIVE(code, g[j], a[j], zero, one, slope);
            o[j] = r;
            if (db != NULL)
                db[j] += r;
        }
    }
}

FNN_TGT static void FNN_N(grad)(const FNN_T* A, const FNN_T* dA, int code, FNN_T* out, FNN_T* db,
                               ptrdiff_t m, ptrdiff_t n, FNN_T slope) {
    if (db != NULL)
        for (ptrdiff_t j = 0; j < n; j++)
            db[j] = 0;
#define FNN_CASE(CODE) case CODE: FNN_N(grad_rows)(A, dA, CODE, out, db, m, n, slope); break;
    switch (code) {
        FNN_CASE(FASTNN_EW_RELU)
        FNN_CASE(FASTNN_EW_SIGMOID)
        FNN_CASE(FASTNN_EW_TANH)
        FNN_CASE(FASTNN_EW_LEAKY_RELU)
        FNN_CASE(FASTNN_EW_EXP)
        default: FNN_N(grad_rows)(A, dA, FASTNN_EW_LINEAR, out, db, m, n, slope);
    }
#undef FNN_CASE
}
#undef FNN_DERIVATIVE

/* activations.pxi's _activate for LINEAR, RELU, LEAKY_RELU, SIGMOID and TANH (and SOFTMAX, below): out = f(Z + b), b NULL
 * for no bias; out is Z or does not overlap it. The sum z + b is rounded to the data's type before
 * f, as there. Without a bias the rows are one flat run of m * n elements. */
FNN_TGT static inline FNN_V FNN_N(activation)(int code, FNN_V x, FNN_T slope) {
    const FNN_V zero = {0}, one = zero + 1;
    if (code == FASTNN_EW_RELU)
        return FNN_N(select)(x < 0, zero, x);  /* np.maximum(x, 0): NaN stays NaN */
    if (code == FASTNN_EW_LEAKY_RELU)
        return FNN_N(select)(x < 0, zero, x) + slope * FNN_N(select)(x < 0, x, zero);
    if (code == FASTNN_EW_SIGMOID) {  /* exp(-|z|) never overflows: 1/(1+e) for z >= 0, e/(1+e) below */
        FNN_V e = FNN_N(exp)(-FNN_N(abs)(x));
        return FNN_N(select)(x >= 0, one, e) / (one + e);
    }
    if (code == FASTNN_EW_TANH) {  /* tanh|z| = -e / (2 + e), e = expm1(-2|z|): no overflow, no cancellation */
        FNN_V a = FNN_N(abs)(x), e = FNN_N(expm1)(-(a + a));
        FNN_V t = FNN_N(abs)(-e / (e + 2));
        return (FNN_V)((FNN_VI)t | ((FNN_VI)x & ~(FNN_VI)FNN_N(abs)(x)));  /* x's sign: tanh(-0) is -0 */
    }
    return x;
}

FNN_TGT static inline void FNN_N(activate_rows)(const FNN_T* Z, const FNN_T* b, int code, FNN_T* out,
                                               ptrdiff_t m, ptrdiff_t n, FNN_T slope) {
    for (ptrdiff_t i = 0; i < m; i++) {
        const FNN_T* z = Z + i * n;
        FNN_T* o = out + i * n;
        ptrdiff_t j = 0;
        for (; j + FNN_L <= n; j += FNN_L) {
            FNN_V x = FNN_N(load)(z + j);
            if (b != NULL)
                x = x + FNN_N(load)(b + j);
            FNN_N(store)(o + j, FNN_N(activation)(code, x, slope));
        }
        if (j < n) {
            FNN_V x = FNN_N(load_part)(z + j, n - j, 0);
            if (b != NULL)
                x = x + FNN_N(load_part)(b + j, n - j, 0);
            FNN_N(store_part)(o + j, FNN_N(activation)(code, x, slope), n - j);
        }
    }
}

/* activate_rows for rows shorter than four vectors (a classifier's logits), with a bias: the m rows
 * as one run of m * n elements on whole vectors, the bias read from a tile of it repeated over
 * lcm(n, L) elements (whole rows and whole vectors). Row by row, each short row ended in a partial
 * vector whose masked store the next row's loads waited for. */
FNN_TGT static inline void FNN_N(activate_tiled)(const FNN_T* Z, const FNN_T* b, int code, FNN_T* out,
                                                ptrdiff_t m, ptrdiff_t n, FNN_T slope) {
    FNN_T tile[4 * FNN_L * FNN_L];  /* lcm(n, L) <= n * L < 4 L * L */
    ptrdiff_t period = n, size = m * n, e = 0, t = 0;
    while (period % FNN_L)
        period += n;
    for (ptrdiff_t k = 0; k < period; k++)
        tile[k] = b[k % n];
    for (; e + FNN_L <= size; e += FNN_L) {
        FNN_N(store)(out + e, FNN_N(activation)(code, FNN_N(load)(Z + e) + FNN_N(load)(tile + t), slope));
        t += FNN_L;
        if (t == period)
            t = 0;
    }
    if (e < size) {
        FNN_V x = FNN_N(load_part)(Z + e, size - e, 0) + FNN_N(load_part)(tile + t, size - e, 0);
        FNN_N(store_part)(out + e, FNN_N(activation)(code, x, slope), size - e);
    }
}

/* The bias + activation pass of one code (the loop compiled once per code, as in grad). */
FNN_TGT static inline void FNN_N(activate_code)(const FNN_T* Z, const FNN_T* b, int code, FNN_T* out,
                                               ptrdiff_t m, ptrdiff_t n, FNN_T slope) {
    if (b != NULL && n < 4 * FNN_L && m > 1)
        FNN_N(activate_tiled)(Z, b, code, out, m, n, slope);
    else
        FNN_N(activate_rows)(Z, b, code, out, m, n, slope);
}

/* activations.pxi's _softmax_row over m rows: out = softmax(Z + b), in blocks of rows as the
 * softmax losses: z + b, each row's max and the shift; exp of the block on vectors; per row the sum
 * in double, in the .pxi's order, and the division. */
FNN_TGT static void FNN_N(softmax_rows)(const FNN_T* Z, const FNN_T* b, FNN_T* out, ptrdiff_t m, ptrdiff_t n) {
    const ptrdiff_t block = FNN_N(block_rows)(n);
    for (ptrdiff_t i0 = 0; i0 < m; i0 += block) {
        ptrdiff_t rows = m - i0 < block ? m - i0 : block, i, j;
        for (i = 0; i < rows; i++) {
            const FNN_T* z = Z + (i0 + i) * n;
            FNN_T* o = out + (i0 + i) * n;
            if (b != NULL)
                for (j = 0; j < n; j++)
                    o[j] = z[j] + b[j];
            else if (o != z)
                memcpy(o, z, (size_t)n * sizeof(FNN_T));
            FNN_T top = n < 2 * FNN_L ? FNN_N(row_max1)(o, n) : FNN_N(row_max)(o, n);
            for (j = 0; j < n; j++)
                o[j] = o[j] - top;
        }
        FNN_N(exp_run)(out + i0 * n, rows * n);
        for (i = 0; i < rows; i++) {
            FNN_T* o = out + (i0 + i) * n;
            double sum_e = 0;
            for (j = 0; j < n; j++)
                sum_e += o[j];
            FNN_T total = (FNN_T)sum_e;
            for (j = 0; j < n; j++)
                o[j] = o[j] / total;
        }
    }
}

FNN_TGT static void FNN_N(activate)(const FNN_T* Z, const FNN_T* b, int code, FNN_T* out, ptrdiff_t m,
                                   ptrdiff_t n, FNN_T slope) {
    if (code == FASTNN_EW_SOFTMAX) {
        FNN_N(softmax_rows)(Z, b, out, m, n);
        return;
    }
    if (b == NULL) {
        n *= m;
        m = 1;
    }
#define FNN_CASE(CODE) case CODE: FNN_N(activate_code)(Z, b, CODE, out, m, n, slope); break;
    switch (code) {  /* the loop compiled once per code, as in grad */
        FNN_CASE(FASTNN_EW_RELU)
        FNN_CASE(FASTNN_EW_SIGMOID)
        FNN_CASE(FASTNN_EW_TANH)
        FNN_CASE(FASTNN_EW_LEAKY_RELU)
        default: FNN_N(activate_code)(Z, b, FASTNN_EW_LINEAR, out, m, n, slope);
    }
#undef FNN_CASE
}

#undef FNN_L
#undef FNN_N
#undef FNN_V
#undef FNN_VI
#undef FNN_VD
#undef FNN_VDI
#undef FNN_VH
#undef FNN_PARTS

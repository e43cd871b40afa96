/* The micro-kernels for one float type, FNN_T (float or double), and one vector width,
 * FNN_VBYTES (32: AVX2, 64: AVX-512), compiled for the target FNN_TARGET_OF and named with
 * FNN_SUFFIX (_f, _d, _f512, _d512). Included four times by microkernels.h; see there for why
 * they exist. Row-major operands.
 *
 * rows: C (m, n) = sum over p < k of A[i*as + p*ap] * B[p*n + j]. B's rows are contiguous and
 *       are what the vectors load; A is read through strides, so the same kernel computes X·W
 *       (A = X: as = k, ap = 1) and Xᵀ·dZ (A = X read down its columns: as = 1, ap = n_in).
 * rows_relu: rows, then C times ReLU's derivative at the layer's output and C's column sums into
 *       db: dZ·Wᵀ through a transposed W, whose product is the layer below's dA, and that
 *       layer's derivative pass while the tile is in registers (the same bits as the two apart).
 * dots: C (m, k) = P[i] · Q[q] over rows of length n: dZ·Wᵀ, whose right operand is W's rows.
 */
#define FNN_V FASTNN_CAT(fastnn_vec, FNN_SUFFIX)
#define FNN_LANES ((ptrdiff_t)(FNN_VBYTES / sizeof(FNN_T)))
#define FNN_LOAD FASTNN_CAT(fastnn_load, FNN_SUFFIX)
#define FNN_STORE FASTNN_CAT(fastnn_store, FNN_SUFFIX)
#define FNN_HSUM FASTNN_CAT(fastnn_hsum, FNN_SUFFIX)
#define FNN_SUM8 FASTNN_CAT(fastnn_sum8, FNN_SUFFIX)
#define FNN_VI FASTNN_CAT(fastnn_veci, FNN_SUFFIX)
#define FNN_RELU_GRAD FASTNN_CAT(fastnn_relu_grad, FNN_SUFFIX)
#define FNN_V_ZERO ((FNN_V){0})

#if FASTNN_SIMD

typedef FNN_T FNN_V __attribute__((vector_size(FNN_VBYTES)));
#if FNN_IS_FLOAT
typedef int FNN_VI __attribute__((vector_size(FNN_VBYTES)));
#else
typedef long long FNN_VI __attribute__((vector_size(FNN_VBYTES)));
#endif

/* Unaligned loads and stores: memcpy of a vector's size compiles to one vmovu instruction. */
FNN_TARGET_OF static inline FNN_V FNN_LOAD(const FNN_T* p) {
    FNN_V v;
    memcpy(&v, p, sizeof v);
    return v;
}

FNN_TARGET_OF static inline void FNN_STORE(FNN_T* p, FNN_V v) {
    memcpy(p, &v, sizeof v);
}

FNN_TARGET_OF static inline FNN_T FNN_HSUM(FNN_V v) {
#if FNN_VBYTES == 64 && FNN_IS_FLOAT
    return _mm512_reduce_add_ps((__m512)v);  /* a tree of shuffles and adds, not 16 dependent adds */
#elif FNN_VBYTES == 64
    return _mm512_reduce_add_pd((__m512d)v);
#else
    FNN_T s = 0;
    for (ptrdiff_t l = 0; l < FNN_LANES; l++)
        s += v[l];
    return s;
#endif
}

/* The lane sums of eight vectors, in order, with a few horizontal adds and one cross-lane
 * shuffle instead of eight scalar loops: dots' 4 x 2 blocks end with eight such sums. */
FNN_TARGET_OF static inline void FNN_SUM8(const FNN_V v[8], FNN_T out[8]) {
#if FNN_VBYTES != 32  /* AVX-512: its reductions cost the same as a loop over the lanes */
    for (int h = 0; h < 8; h++)
        out[h] = FNN_HSUM(v[h]);
#elif FNN_IS_FLOAT
    __m256 t0 = _mm256_hadd_ps((__m256)v[0], (__m256)v[1]), t1 = _mm256_hadd_ps((__m256)v[2], (__m256)v[3]);
    __m256 t2 = _mm256_hadd_ps((__m256)v[4], (__m256)v[5]), t3 = _mm256_hadd_ps((__m256)v[6], (__m256)v[7]);
    __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);  /* the sums of v0-3 and of v4-7, by halves */
    _mm256_storeu_ps(out, _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31)));
#else
    for (int h = 0; h < 2; h++) {
        __m256d t0 = _mm256_hadd_pd((__m256d)v[4 * h], (__m256d)v[4 * h + 1]);
        __m256d t1 = _mm256_hadd_pd((__m256d)v[4 * h + 2], (__m256d)v[4 * h + 3]);
        _mm256_storeu_pd(out + 4 * h, _mm256_add_pd(_mm256_permute2f128_pd(t0, t1, 0x20),
                                                    _mm256_permute2f128_pd(t0, t1, 0x31)));
    }
#endif
}

/* ReLU's derivative on a tile of dA: dA * (a > 0 ? 1 : 0), a multiply as activations.pxi's pass
 * makes it (NaN * 0 is NaN), the factor the bits of 1 or of +0. */
FNN_TARGET_OF static inline FNN_V FNN_RELU_GRAD(FNN_V g, const FNN_T* a) {
    const FNN_V one = FNN_V_ZERO + 1;
    return g * (FNN_V)((FNN_VI)(FNN_LOAD(a) > 0) & (FNN_VI)one);
}

/* rows, and with `act` (and db) also the epilogue of ReLU's derivative: C = (A·B) * relu'(act),
 * act (m, n) the layer's ReLU output, and db += C's column sums, each column's rows added in
 * order, as the derivative pass adds them. always_inline: each caller's NULL or not compiles out. */
FNN_TARGET_OF static inline __attribute__((always_inline)) void FASTNN_CAT(fastnn_rows_body, FNN_SUFFIX)(
        const FNN_T* A, ptrdiff_t as, ptrdiff_t ap, const FNN_T* B, FNN_T* C,
        ptrdiff_t m, ptrdiff_t k, ptrdiff_t n, const FNN_T* act, FNN_T* db) {
    const ptrdiff_t L = FNN_LANES;
    ptrdiff_t i = 0, j, p, r;
    for (; i + 4 <= m; i += 4) {  /* four rows of C at a time: each load of B feeds four FMAs */
        const FNN_T* a0 = A + i * as;
        const FNN_T* a1 = a0 + as;
        const FNN_T* a2 = a1 + as;
        const FNN_T* a3 = a2 + as;
        for (j = 0; j + 2 * L <= n; j += 2 * L) {
            FNN_V c00 = {0}, c01 = {0}, c10 = {0}, c11 = {0}, c20 = {0}, c21 = {0}, c30 = {0}, c31 = {0};
            for (p = 0; p < k; p++) {
                FNN_V b0 = FNN_LOAD(B + p * n + j), b1 = FNN_LOAD(B + p * n + j + L);
                FNN_T x0 = a0[p * ap], x1 = a1[p * ap], x2 = a2[p * ap], x3 = a3[p * ap];
                c00 += x0 * b0; c01 += x0 * b1;
                c10 += x1 * b0; c11 += x1 * b1;
                c20 += x2 * b0; c21 += x2 * b1;
                c30 += x3 * b0; c31 += x3 * b1;
            }
            if (act) {
                const FNN_T* g = act + i * n + j;
                c00 = FNN_RELU_GRAD(c00, g);             c01 = FNN_RELU_GRAD(c01, g + L);
                c10 = FNN_RELU_GRAD(c10, g + n);         c11 = FNN_RELU_GRAD(c11, g + n + L);
                c20 = FNN_RELU_GRAD(c20, g + 2 * n);     c21 = FNN_RELU_GRAD(c21, g + 2 * n + L);
                c30 = FNN_RELU_GRAD(c30, g + 3 * n);     c31 = FNN_RELU_GRAD(c31, g + 3 * n + L);
                FNN_V s0 = FNN_LOAD(db + j), s1 = FNN_LOAD(db + j + L);
                s0 += c00; s0 += c10; s0 += c20; s0 += c30;
                s1 += c01; s1 += c11; s1 += c21; s1 += c31;
                FNN_STORE(db + j, s0);
                FNN_STORE(db + j + L, s1);
            }
            FNN_STORE(C + i * n + j, c00);           FNN_STORE(C + i * n + j + L, c01);
            FNN_STORE(C + (i + 1) * n + j, c10);     FNN_STORE(C + (i + 1) * n + j + L, c11);
            FNN_STORE(C + (i + 2) * n + j, c20);     FNN_STORE(C + (i + 2) * n + j + L, c21);
            FNN_STORE(C + (i + 3) * n + j, c30);     FNN_STORE(C + (i + 3) * n + j + L, c31);
        }
        for (; j + L <= n; j += L) {
            FNN_V c0 = {0}, c1 = {0}, c2 = {0}, c3 = {0};
            for (p = 0; p < k; p++) {
                FNN_V b0 = FNN_LOAD(B + p * n + j);
                c0 += a0[p * ap] * b0; c1 += a1[p * ap] * b0; c2 += a2[p * ap] * b0; c3 += a3[p * ap] * b0;
            }
            if (act) {
                const FNN_T* g = act + i * n + j;
                c0 = FNN_RELU_GRAD(c0, g);         c1 = FNN_RELU_GRAD(c1, g + n);
                c2 = FNN_RELU_GRAD(c2, g + 2 * n); c3 = FNN_RELU_GRAD(c3, g + 3 * n);
                FNN_V s0 = FNN_LOAD(db + j);
                s0 += c0; s0 += c1; s0 += c2; s0 += c3;
                FNN_STORE(db + j, s0);
            }
            FNN_STORE(C + i * n + j, c0);       FNN_STORE(C + (i + 1) * n + j, c1);
            FNN_STORE(C + (i + 2) * n + j, c2); FNN_STORE(C + (i + 3) * n + j, c3);
        }
        for (; j < n; j++) {  /* the last n % L columns */
            for (r = 0; r < 4; r++) {
                FNN_T s = 0;
                for (p = 0; p < k; p++)
                    s += A[(i + r) * as + p * ap] * B[p * n + j];
                if (act) {
                    s = s * (act[(i + r) * n + j] > 0 ? (FNN_T)1 : (FNN_T)0);
                    db[j] += s;
                }
                C[(i + r) * n + j] = s;
            }
        }
    }
    for (; i < m; i++) {  /* the last m % 4 rows, one at a time */
        const FNN_T* a0 = A + i * as;
        for (j = 0; j + L <= n; j += L) {
            FNN_V c0 = {0};
            for (p = 0; p < k; p++)
                c0 += a0[p * ap] * FNN_LOAD(B + p * n + j);
            if (act) {
                c0 = FNN_RELU_GRAD(c0, act + i * n + j);
                FNN_STORE(db + j, FNN_LOAD(db + j) + c0);
            }
            FNN_STORE(C + i * n + j, c0);
        }
        for (; j < n; j++) {
            FNN_T s = 0;
            for (p = 0; p < k; p++)
                s += a0[p * ap] * B[p * n + j];
            if (act) {
                s = s * (act[i * n + j] > 0 ? (FNN_T)1 : (FNN_T)0);
                db[j] += s;
            }
            C[i * n + j] = s;
        }
    }
}

FNN_TARGET_OF static void FASTNN_CAT(fastnn_rows, FNN_SUFFIX)(
        const FNN_T* A, ptrdiff_t as, ptrdiff_t ap, const FNN_T* B, FNN_T* C,
        ptrdiff_t m, ptrdiff_t k, ptrdiff_t n) {
    FASTNN_CAT(fastnn_rows_body, FNN_SUFFIX)(A, as, ap, B, C, m, k, n, NULL, NULL);
}

/* rows with ReLU's derivative and the bias sums as its epilogue (see rows_body); db zeroed by
 * the caller. */
FNN_TARGET_OF static void FASTNN_CAT(fastnn_rows_relu, FNN_SUFFIX)(
        const FNN_T* A, ptrdiff_t as, ptrdiff_t ap, const FNN_T* B, FNN_T* C,
        ptrdiff_t m, ptrdiff_t k, ptrdiff_t n, const FNN_T* act, FNN_T* db) {
    FASTNN_CAT(fastnn_rows_body, FNN_SUFFIX)(A, as, ap, B, C, m, k, n, act, db);
}

/* One dot product of two rows of length n: a vector of partial sums, added across its lanes,
 * then the last n % L terms one by one. */
FNN_TARGET_OF static inline FNN_T FASTNN_CAT(fastnn_dot, FNN_SUFFIX)(const FNN_T* x, const FNN_T* y, ptrdiff_t n) {
    const ptrdiff_t L = FNN_LANES;
    FNN_V acc = {0};
    ptrdiff_t j = 0;
    for (; j + L <= n; j += L)
        acc += FNN_LOAD(x + j) * FNN_LOAD(y + j);
    FNN_T total = FNN_HSUM(acc);
    for (; j < n; j++)
        total += x[j] * y[j];
    return total;
}

/* Blocks of 4 rows of P by 2 rows of Q, eight accumulator vectors (6 loads feed 8 FMAs); the
 * edges of C, one dot product at a time. */
FNN_TARGET_OF static void FASTNN_CAT(fastnn_dots, FNN_SUFFIX)(
        const FNN_T* P, const FNN_T* Q, FNN_T* C, ptrdiff_t m, ptrdiff_t k, ptrdiff_t n) {
    const ptrdiff_t L = FNN_LANES;
    const ptrdiff_t n_vec = n - n % L;
    ptrdiff_t i = 0, q, j;
    for (; i + 4 <= m; i += 4) {
        const FNN_T* d0 = P + i * n;
        const FNN_T* d1 = d0 + n;
        const FNN_T* d2 = d1 + n;
        const FNN_T* d3 = d2 + n;
        for (q = 0; q + 2 <= k; q += 2) {
            const FNN_T* w0 = Q + q * n;
            const FNN_T* w1 = w0 + n;
            FNN_V c00 = {0}, c01 = {0}, c10 = {0}, c11 = {0}, c20 = {0}, c21 = {0}, c30 = {0}, c31 = {0};
            FNN_T t[8];
            for (j = 0; j < n_vec; j += L) {
                FNN_V x0 = FNN_LOAD(w0 + j), x1 = FNN_LOAD(w1 + j);
                FNN_V y0 = FNN_LOAD(d0 + j), y1 = FNN_LOAD(d1 + j), y2 = FNN_LOAD(d2 + j), y3 = FNN_LOAD(d3 + j);
                c00 += y0 * x0; c01 += y0 * x1;
                c10 += y1 * x0; c11 += y1 * x1;
                c20 += y2 * x0; c21 += y2 * x1;
                c30 += y3 * x0; c31 += y3 * x1;
            }
            FNN_V block[8] = {c00, c01, c10, c11, c20, c21, c30, c31};
            FNN_SUM8(block, t);
            for (j = n_vec; j < n; j++) {
                t[0] += d0[j] * w0[j]; t[1] += d0[j] * w1[j];
                t[2] += d1[j] * w0[j]; t[3] += d1[j] * w1[j];
                t[4] += d2[j] * w0[j]; t[5] += d2[j] * w1[j];
                t[6] += d3[j] * w0[j]; t[7] += d3[j] * w1[j];
            }
            C[i * k + q] = t[0];           C[i * k + q + 1] = t[1];
            C[(i + 1) * k + q] = t[2];     C[(i + 1) * k + q + 1] = t[3];
            C[(i + 2) * k + q] = t[4];     C[(i + 2) * k + q + 1] = t[5];
            C[(i + 3) * k + q] = t[6];     C[(i + 3) * k + q + 1] = t[7];
        }
        for (; q < k; q++) {  /* an odd last row of Q */
            C[i * k + q] = FASTNN_CAT(fastnn_dot, FNN_SUFFIX)(d0, Q + q * n, n);
            C[(i + 1) * k + q] = FASTNN_CAT(fastnn_dot, FNN_SUFFIX)(d1, Q + q * n, n);
            C[(i + 2) * k + q] = FASTNN_CAT(fastnn_dot, FNN_SUFFIX)(d2, Q + q * n, n);
            C[(i + 3) * k + q] = FASTNN_CAT(fastnn_dot, FNN_SUFFIX)(d3, Q + q * n, n);
        }
    }
    for (; i < m; i++)  /* the last m % 4 rows of P */
        for (q = 0; q < k; q++)
            C[i * k + q] = FASTNN_CAT(fastnn_dot, FNN_SUFFIX)(P + i * n, Q + q * n, n);
}

#else  /* no AVX2 build possible: never called, fastnn_simd_available() is 0 */

static void FASTNN_CAT(fastnn_rows, FNN_SUFFIX)(
        const FNN_T* A, ptrdiff_t as, ptrdiff_t ap, const FNN_T* B, FNN_T* C,
        ptrdiff_t m, ptrdiff_t k, ptrdiff_t n) {
    (void)A; (void)as; (void)ap; (void)B; (void)C; (void)m; (void)k; (void)n;
}

static void FASTNN_CAT(fastnn_rows_relu, FNN_SUFFIX)(
        const FNN_T* A, ptrdiff_t as, ptrdiff_t ap, const FNN_T* B, FNN_T* C,
        ptrdiff_t m, ptrdiff_t k, ptrdiff_t n, const FNN_T* act, FNN_T* db) {
    (void)A; (void)as; (void)ap; (void)B; (void)C; (void)m; (void)k; (void)n; (void)act; (void)db;
}

static void FASTNN_CAT(fastnn_dots, FNN_SUFFIX)(
        const FNN_T* P, const FNN_T* Q, FNN_T* C, ptrdiff_t m, ptrdiff_t k, ptrdiff_t n) {
    (void)P; (void)Q; (void)C; (void)m; (void)k; (void)n;
}

#endif

#undef FNN_V
#undef FNN_LANES
#undef FNN_LOAD
#undef FNN_STORE
#undef FNN_HSUM
#undef FNN_SUM8
#undef FNN_VI
#undef FNN_RELU_GRAD
#undef FNN_V_ZERO

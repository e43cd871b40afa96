# bfloat16 products (fastnn._contract, "bfloat16 products"): a dense layer's products with their
# operands rounded to bfloat16 and their sums in float32, by one of two paths with one result (to
# float32 rounding):
#   native     AVX512-BF16's dot products (bf16.h) on operands packed in pairs of bfloat16, where
#              the CPU has it and the micro-kernels are on;
#   emulation  the operands rounded to bfloat16 in float32 arrays, then matmul.pxi's float32
#              products: everywhere else, the reference the native path is tested against, and the
#              NumPy twin's way (fastnn/_fallback/bfloat16.py).
# Each operand is converted once per layout it is read in: W once per step (in training, by
# trainer.pxi's _bf16_update in the optimizer's pass, _bf16_weight_rows; in predict, _bf16_weights),
# a layer's input once for X·W and once for Xᵀ·dZ, dZ once for each of its two products.

from libc.stdint cimport uint32_t


cdef extern from "bf16.h" nogil:
    void fastnn_bf16_round(const float* src, float* dst, Py_ssize_t n)
    int fastnn_bf16_native_available()
    void fastnn_bf16_pack(const float* src, Py_ssize_t rs, Py_ssize_t cs, Py_ssize_t k, Py_ssize_t n,
                          uint32_t* out, Py_ssize_t ldo)
    void fastnn_bf16_convert(const float* src, Py_ssize_t m, Py_ssize_t k, uint32_t* out)
    void fastnn_bf16_gemm(const uint32_t* A, Py_ssize_t a_row, Py_ssize_t a_pair, const uint32_t* B, Py_ssize_t ldb,
                          float* C, Py_ssize_t ldc, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k2)

cdef bint _bf16_hardware = fastnn_bf16_native_available()


def round_bfloat16(a, out):
    """out = a rounded to bfloat16 (and widened back to float32). a, out: (n,) float32; out may be a."""
    _contract.check_rounding(a, out)
    cdef const float[::1] src = a
    cdef float[::1] dst = out
    if src.shape[0]:
        with nogil:
            fastnn_bf16_round(&src[0], &dst[0], src.shape[0])


def _bf16_threads(run, sizes):
    """The threads that share the native bfloat16 products of run's steps: the contract's
    pool_threads for a batch (1: no pool). sizes: run's layer widths (a list)."""
    if not run.bfloat16 or not _bf16_native():
        return 1
    return _contract.pool_threads(run.threads, min(run.batch, run.X.shape[0]), sizes)


def _bf16_path() -> str:
    """How bfloat16 products are computed now: "avx512bf16" or "emulation"."""
    return "avx512bf16" if _bf16_native() else "emulation"


cdef inline bint _bf16_native() noexcept nogil:
    return _bf16_hardware and _simd


cdef inline Py_ssize_t _pairs(Py_ssize_t k) noexcept nogil:
    return (k + 1) // 2


# Sizes, in 4-byte words, of the scratch each of a layer's operands takes (on either path: the
# native one's are the larger).

cdef inline Py_ssize_t _bf16_weights_size(Py_ssize_t n_in, Py_ssize_t n_out) noexcept nogil:
    """W (n_in, n_out): its pairs (over n_in) then its transpose's (over n_out); or W rounded."""
    return _pairs(n_in) * n_out + _pairs(n_out) * n_in


cdef inline Py_ssize_t _bf16_rows_size(Py_ssize_t rows, Py_ssize_t width) noexcept nogil:
    """A (rows, width) operand (a layer's input, or dZ): its transpose's pairs (over width) then its
    own (over rows); or it rounded."""
    return _pairs(width) * rows + _pairs(rows) * width


cdef enum:
    BF16_NR = 32  # columns of the native kernel's register block (bf16.h): column pieces are multiples of it
    BF16_MR = 8   # and its rows


cdef struct Bf16Product:  # one native product's arguments, as fastnn_bf16_gemm takes them, and its pieces
    const uint32_t* A
    Py_ssize_t a_row, a_pair
    const uint32_t* B
    Py_ssize_t ldb
    float* C
    Py_ssize_t ldc, m, n, k2
    bint by_columns
    Py_ssize_t piece      # columns or rows per piece


cdef void _bf16_piece(void* ctx, ptrdiff_t t, int worker) noexcept nogil:
    cdef const Bf16Product* p = <const Bf16Product*>ctx
    cdef Py_ssize_t start = t * p.piece
    if p.by_columns:
        fastnn_bf16_gemm(p.A, p.a_row, p.a_pair, p.B + start, p.ldb, p.C + start, p.ldc, p.m,
                         min(p.piece, p.n - start), p.k2)
    else:
        fastnn_bf16_gemm(p.A + start * p.a_row, p.a_row, p.a_pair, p.B, p.ldb, p.C + start * p.ldc, p.ldc,
                         min(p.piece, p.m - start), p.n, p.k2)


cdef void _bf16_gemm(fastnn_pool* pool, const uint32_t* A, Py_ssize_t a_row, Py_ssize_t a_pair, const uint32_t* B,
                     Py_ssize_t ldb, float* C, Py_ssize_t ldc, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k2) noexcept nogil:
    """fastnn_bf16_gemm, its output cut into pieces that the pool's threads share (pool NULL: one
    call). Every element is summed by one kernel call in the same order whatever the pieces, so
    the result does not depend on the number of threads."""
    cdef Bf16Product p
    cdef Py_ssize_t pieces = 0 if pool == NULL else POOL_PIECES_PER_THREAD * (pool.helpers + 1)
    p.A, p.a_row, p.a_pair, p.B, p.ldb, p.C, p.ldc, p.m, p.n, p.k2 = A, a_row, a_pair, B, ldb, C, ldc, m, n, k2
    if pieces and n >= BF16_NR * pieces:
        p.by_columns = True
        p.piece = (n + pieces - 1) // pieces
        p.piece = (p.piece + BF16_NR - 1) // BF16_NR * BF16_NR
        fastnn_pool_run(pool, _bf16_piece, &p, (n + p.piece - 1) // p.piece)
    elif pieces and m >= BF16_MR * pieces:
        p.by_columns = False
        p.piece = (m + pieces - 1) // pieces
        p.piece = (p.piece + BF16_MR - 1) // BF16_MR * BF16_MR
        fastnn_pool_run(pool, _bf16_piece, &p, (m + p.piece - 1) // p.piece)
    else:
        fastnn_bf16_gemm(A, a_row, a_pair, B, ldb, C, ldc, m, n, k2)


cdef struct Bf16Conversion:  # one fastnn_bf16_pack (rows 0) or fastnn_bf16_convert (rows > 0), and its pieces
    const float* src
    Py_ssize_t rs, cs, k, n, ldo, rows, piece
    uint32_t* out


cdef void _bf16_conversion_piece(void* ctx, ptrdiff_t t, int worker) noexcept nogil:
    cdef const Bf16Conversion* c = <const Bf16Conversion*>ctx
    cdef Py_ssize_t start = t * c.piece
    if c.rows:  # rows [start, start + piece) of a conversion
        fastnn_bf16_convert(c.src + start * c.k, min(c.piece, c.rows - start), c.k, c.out + start * _pairs(c.k))
    else:       # columns [start, start + piece) of a pack
        fastnn_bf16_pack(c.src + start * c.cs, c.rs, c.cs, c.k, min(c.piece, c.n - start), c.out + start, c.ldo)


cdef void _bf16_shared(fastnn_pool* pool, Bf16Conversion* c, Py_ssize_t size) noexcept nogil:
    """Run the conversion c, its `size` columns (pack) or rows (convert) cut into pieces (multiples
    of 16) that the pool's threads share; pool NULL: in one piece. Each element is converted alone,
    so the pieces do not change the result."""
    cdef Py_ssize_t pieces = 1 if pool == NULL else POOL_PIECES_PER_THREAD * (pool.helpers + 1)
    c.piece = size if pieces == 1 or size < 16 * pieces else ((size + pieces - 1) // pieces + 15) // 16 * 16
    if c.piece == size:
        _bf16_conversion_piece(c, 0, 0)
    else:
        fastnn_pool_run(pool, _bf16_conversion_piece, c, (size + c.piece - 1) // c.piece)


cdef void _bf16_pack(fastnn_pool* pool, const float* src, Py_ssize_t rs, Py_ssize_t cs, Py_ssize_t k, Py_ssize_t n,
                     uint32_t* out, Py_ssize_t ldo) noexcept nogil:
    """fastnn_bf16_pack, shared by the pool's threads (NULL: one)."""
    cdef Bf16Conversion c
    c.src, c.rs, c.cs, c.k, c.n, c.out, c.ldo, c.rows = src, rs, cs, k, n, out, ldo, 0
    _bf16_shared(pool, &c, n)


cdef void _bf16_convert(fastnn_pool* pool, const float* src, Py_ssize_t m, Py_ssize_t k, uint32_t* out) noexcept nogil:
    """fastnn_bf16_convert, shared by the pool's threads (NULL: one)."""
    cdef Bf16Conversion c
    c.src, c.k, c.out, c.rows = src, k, out, m
    _bf16_shared(pool, &c, m)


cdef void _bf16_weight_rows(const float* W, uint32_t* w, Py_ssize_t n_in, Py_ssize_t n_out, Py_ssize_t r0,
                            Py_ssize_t rows) noexcept nogil:
    """Rows [r0, r0 + rows) of W (n_in, n_out) into w, which holds _bf16_weights_size(n_in, n_out)
    words, as the products read W (r0 even)."""
    if _bf16_native():
        fastnn_bf16_pack(W + r0 * n_out, n_out, 1, rows, n_out, w + (r0 // 2) * n_out, n_out)
        fastnn_bf16_pack(W + r0 * n_out, 1, n_out, n_out, rows, w + _pairs(n_in) * n_out + r0, n_in)
    else:
        fastnn_bf16_round(W + r0 * n_out, <float*>w + r0 * n_out, rows * n_out)


cdef inline void _bf16_weights(const float* W, uint32_t* w, Py_ssize_t n_in, Py_ssize_t n_out) noexcept nogil:
    """All of W (n_in, n_out) into w as the products read it (_bf16_weight_rows)."""
    _bf16_weight_rows(W, w, n_in, n_out, 0, n_in)


cdef void _bf16_forward(fastnn_pool* pool, const float* X, const uint32_t* w, uint32_t* x, const float* b,
                        int activation, float* out, Py_ssize_t m, Py_ssize_t n_in, Py_ssize_t n_out) noexcept nogil:
    """out = f(X·W + b) with bfloat16 operands. X: (m, n_in), out: (m, n_out); w: _bf16_weights of
    W; x: _bf16_rows_size(m, n_in) words of scratch; pool: the threads that share the native
    products, or NULL."""
    if _bf16_native():
        _bf16_convert(pool, X, m, n_in, x)
        _bf16_gemm(pool, x, _pairs(n_in), 1, w, n_out, out, n_out, m, n_out, _pairs(n_in))
    else:
        fastnn_bf16_round(X, <float*>x, m * n_in)
        _matmul(<const float*>x, <const float*>w, out, m, n_in, n_out)
    _activate(out, b, activation, out, m, n_out)  # + b and f in one pass


cdef void _bf16_backward(fastnn_pool* pool, const float* X, const uint32_t* w, uint32_t* x, uint32_t* dz, const float* A,
                         const float* dA, int activation, float* dZ, float* dW, float* db, float* dX,
                         Py_ssize_t m, Py_ssize_t n_in, Py_ssize_t n_out) noexcept nogil:
    """_dense_backward with bfloat16 operands: dZ = dA * f'(Z) and db in float32, then dW = Xᵀ·dZ
    and (dX not NULL) dX = dZ·Wᵀ. w: as _bf16_forward's; x, dz: _bf16_rows_size(m, n_in) and
    _bf16_rows_size(m, n_out) words of scratch; pool: as _bf16_forward's."""
    _activation_grad(A, dA, activation, dZ, db, m, n_out)  # dZ and db in one pass
    cdef uint32_t* x_pairs = x + _pairs(n_in) * m
    cdef uint32_t* dz_pairs = dz + _pairs(n_out) * m
    if _bf16_native():
        _bf16_pack(pool, X, n_in, 1, m, n_in, x_pairs, n_in)
        _bf16_pack(pool, dZ, n_out, 1, m, n_out, dz_pairs, n_out)
        _bf16_gemm(pool, x_pairs, 1, n_in, dz_pairs, n_out, dW, n_out, n_in, n_out, _pairs(m))
        if dX != NULL:
            _bf16_convert(pool, dZ, m, n_out, dz)
            _bf16_gemm(pool, dz, _pairs(n_out), 1, w + _pairs(n_in) * n_out, n_in, dX, n_in, m, n_in, _pairs(n_out))
    else:
        fastnn_bf16_round(X, <float*>x, m * n_in)
        fastnn_bf16_round(dZ, <float*>dz, m * n_out)
        _matmul_tn(<const float*>x, <const float*>dz, dW, m, n_in, n_out)
        if dX != NULL:
            _matmul_nt(<const float*>dz, <const float*>w, dX, m, n_out, n_in)


def _bf16_product_rounds(const float[:, ::1] A not None, const float[:, ::1] B not None, float[:, ::1] C not None,
                         Py_ssize_t reps, int threads):
    """For benchmarks: `reps` times C = A·B (A: (m, k), B: (k, n), C: (m, n)) with bfloat16
    operands on the native path (the products of a forward pass: A converted, B packed, once),
    shared by `threads` threads as a training step shares them, without returning to Python."""
    cdef Py_ssize_t m = A.shape[0], k = A.shape[1], n = B.shape[1], r
    if B.shape[0] != k or C.shape[0] != m or C.shape[1] != n or m == 0 or k == 0 or n == 0:
        raise ValueError("A (m, k), B (k, n), C (m, n), none empty")
    if not _bf16_native():
        raise RuntimeError("no AVX512-BF16 here (or FASTNN_SIMD=0): the native bfloat16 products are off")
    _contract.check_threads(threads)
    a_array = np.empty(_pairs(k) * m, np.uint32)
    b_array = np.empty(_pairs(k) * n, np.uint32)
    cdef uint32_t[::1] a = a_array
    cdef uint32_t[::1] b = b_array
    cdef fastnn_pool* pool = fastnn_pool_start(threads) if threads > 1 else NULL
    if threads > 1 and pool == NULL:
        raise MemoryError()
    with nogil:
        fastnn_bf16_convert(&A[0, 0], m, k, &a[0])
        fastnn_bf16_pack(&B[0, 0], n, 1, k, n, &b[0], n)
        for r in range(reps):
            _bf16_gemm(pool, &a[0], _pairs(k), 1, &b[0], n, &C[0, 0], n, m, n, _pairs(k))
        fastnn_pool_stop(pool)

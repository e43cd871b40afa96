# libm in the precision of the data (the f-versions for float32), the data pointers of the arrays
# a `def` received, and the small loops several families share.

cdef inline floating _exp(floating x) noexcept nogil:
    if floating is float:
        return expf(x)
    else:
        return exp(x)


cdef inline floating _log(floating x) noexcept nogil:
    if floating is float:
        return logf(x)
    else:
        return log(x)


cdef inline floating _log1p(floating x) noexcept nogil:
    if floating is float:
        return log1pf(x)
    else:
        return log1p(x)


cdef inline floating _tanh(floating x) noexcept nogil:
    if floating is float:
        return tanhf(x)
    else:
        return tanh(x)


cdef inline floating _sqrt(floating x) noexcept nogil:
    if floating is float:
        return sqrtf(x)
    else:
        return sqrt(x)


cdef inline floating _abs(floating x) noexcept nogil:
    if floating is float:
        return fabsf(x)
    else:
        return fabs(x)


cdef inline floating _row_max(const floating* z, Py_ssize_t n) noexcept nogil:
    """max(z[:n]) as np.max computes it: NaN if the row holds a NaN. n >= 1."""
    cdef Py_ssize_t j
    cdef floating top = z[0]
    for j in range(1, n):
        if z[j] > top or z[j] != z[j]:  # once top is NaN, nothing replaces it
            top = z[j]
    return top


cdef inline bint _finite(double x) noexcept nogil:
    return x - x == 0  # false for inf and NaN (no -ffast-math here, so this is not folded away)


cdef bint _all_finite(const floating* x, Py_ssize_t size) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(size):
        if not (x[i] - x[i] == 0):
            return False
    return True


cdef double _sum_squares(const floating* x, Py_ssize_t size) noexcept nogil:
    """sum(x²) in double, in four running sums: one sum's chain of dependent adds would wait on
    each add's latency (the order differs from NumPy's pairwise sum only by rounding)."""
    cdef double s0 = 0, s1 = 0, s2 = 0, s3 = 0
    cdef Py_ssize_t i, end = size - size % 4
    for i in range(0, end, 4):
        s0 += <double>x[i] * x[i]
        s1 += <double>x[i + 1] * x[i + 1]
        s2 += <double>x[i + 2] * x[i + 2]
        s3 += <double>x[i + 3] * x[i + 3]
    for i in range(end, size):
        s0 += <double>x[i] * x[i]
    return (s0 + s1) + (s2 + s3)


cdef bint _in_range(const int64_t* values, Py_ssize_t size, Py_ssize_t n) noexcept nogil:
    """Every value in [0, n): class labels, and the trainer's row orders."""
    cdef Py_ssize_t i
    for i in range(size):
        if values[i] < 0 or values[i] >= n:
            return False
    return True


# Data pointers of the arrays a `def` received; NULL for an empty array, whose data is never read.

cdef inline const floating* _in2(const floating[:, ::1] a) noexcept nogil:
    return &a[0, 0] if a.shape[0] > 0 and a.shape[1] > 0 else NULL


cdef inline floating* _out2(floating[:, ::1] a) noexcept nogil:
    return &a[0, 0] if a.shape[0] > 0 and a.shape[1] > 0 else NULL


cdef inline const floating* _in1(const floating[::1] a) noexcept nogil:
    return &a[0] if a.shape[0] > 0 else NULL


cdef inline floating* _out1(floating[::1] a) noexcept nogil:
    return &a[0] if a.shape[0] > 0 else NULL


cdef inline const int64_t* _labels_ptr(const int64_t[::1] labels) noexcept nogil:
    return &labels[0] if labels.shape[0] > 0 else NULL




# The vector versions of the elementwise passes (elementwise.h: AVX2 + FMA, and AVX-512 where
# `wide`), which losses.pxi, optimizers.pxi, activations.pxi and trainer.pxi call when simd is on;
# their own loops stay the portable path.

cdef extern from "elementwise.h" nogil:
    enum:
        FASTNN_EW_NONE
        FASTNN_EW_LINEAR
        FASTNN_EW_SIGMOID
        FASTNN_EW_TANH
        FASTNN_EW_RELU
        FASTNN_EW_LEAKY_RELU
        FASTNN_EW_EXP
        FASTNN_EW_SOFTMAX
        FASTNN_EW_ADAM
        FASTNN_EW_ADAMW
        FASTNN_EW_MOMENTUM
        FASTNN_EW_NESTEROV
        FASTNN_EW_RMSPROP
    double fastnn_ew_softmax_sparse_f(const float* Z, const int64_t* labels, const float* w, float* dZ,
                                      Py_ssize_t m, Py_ssize_t n, double w_sum, bint wide)
    double fastnn_ew_softmax_sparse_d(const double* Z, const int64_t* labels, const double* w, double* dZ,
                                      Py_ssize_t m, Py_ssize_t n, double w_sum, bint wide)
    double fastnn_ew_softmax_dense_f(const float* Z, const float* Y, const float* w, float* dZ,
                                     Py_ssize_t m, Py_ssize_t n, double w_sum, bint wide)
    double fastnn_ew_softmax_dense_d(const double* Z, const double* Y, const double* w, double* dZ,
                                     Py_ssize_t m, Py_ssize_t n, double w_sum, bint wide)
    double fastnn_ew_sigmoid_bce_f(const float* Z, const float* Y, float* dZ, Py_ssize_t size, float scale,
                                   bint wide)
    double fastnn_ew_sigmoid_bce_d(const double* Z, const double* Y, double* dZ, Py_ssize_t size, double scale,
                                   bint wide)
    void fastnn_ew_step_f(int formula, float* param, const float* grad, float* s1, float* s2, Py_ssize_t size,
                          float a, float b, float c, float d, float e, float f, float decay, bint wide)
    void fastnn_ew_step_d(int formula, double* param, const double* grad, double* s1, double* s2, Py_ssize_t size,
                          double a, double b, double c, double d, double e, double f, double decay, bint wide)
    void fastnn_ew_grad_f(const float* A, const float* dA, int code, float* out, float* db, Py_ssize_t m,
                          Py_ssize_t n, float slope, bint wide)
    void fastnn_ew_grad_d(const double* A, const double* dA, int code, double* out, double* db, Py_ssize_t m,
                          Py_ssize_t n, double slope, bint wide)
    void fastnn_ew_activate_f(const float* Z, const float* b, int code, float* out, Py_ssize_t m, Py_ssize_t n,
                              float slope, bint wide)
    void fastnn_ew_activate_d(const double* Z, const double* b, int code, double* out, Py_ssize_t m,
                              Py_ssize_t n, double slope, bint wide)
    void fastnn_ew_add_scaled_f(float* g, const float* p, Py_ssize_t size, float c, bint wide)
    void fastnn_ew_add_scaled_d(double* g, const double* p, Py_ssize_t size, double c, bint wide)
    double fastnn_ew_sum_squares_f(const float* x, Py_ssize_t size, bint wide)
    double fastnn_ew_sum_squares_d(const double* x, Py_ssize_t size, bint wide)


cdef inline bint _overlap(const void* a, const void* b, size_t n_bytes) noexcept nogil:
    """Whether two different ranges of n_bytes each share a byte (views of one buffer)."""
    cdef const char* x = <const char*>a
    cdef const char* y = <const char*>b
    return x != y and x < y + n_bytes and y < x + n_bytes

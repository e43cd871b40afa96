# One dense layer, A = f(X @ W + b), forward and backward (the NumPy twin: fastnn/_fallback/dense.py).
# Its products are matmul.pxi's, its bias + activation passes activations.pxi's.

cdef void _dense_forward(const floating* X, const floating* W, const floating* b, int activation, floating* out,
                         Py_ssize_t batch, Py_ssize_t n_in, Py_ssize_t n_out) noexcept nogil:
    _matmul(X, W, out, batch, n_in, n_out)
    _activate(out, b, activation, out, batch, n_out)  # + b and f in one pass


def dense_forward(const floating[:, ::1] X not None, const floating[:, ::1] W not None,
                  const floating[::1] b not None, int activation, floating[:, ::1] out not None, bfloat16=False):
    """out = f(X @ W + b). X: (batch, n_in), W: (n_in, n_out), b: (n_out,), out: (batch, n_out).
    bfloat16: X @ W of X and W rounded to bfloat16 (fastnn._contract's bfloat16 products)."""
    if W.shape[0] != X.shape[1]:
        raise ValueError(f"X has {X.shape[1]} columns but W has {W.shape[0]} rows")
    if b.shape[0] != W.shape[1]:
        raise _contract.shape_error("b", b, (W.shape[1],))
    if out.shape[0] != X.shape[0] or out.shape[1] != W.shape[1]:
        raise _contract.shape_error("out", out, (X.shape[0], W.shape[1]))
    if not _is_activation(activation):
        raise _contract.activation_error(activation)
    if activation == SOFTMAX and out.shape[1] == 0:
        raise _contract.empty_softmax_error("out", out)
    _contract.check_bfloat16(bfloat16, np.float32 if floating is float else np.float64)
    cdef Py_ssize_t m = X.shape[0], n_in = X.shape[1], n_out = W.shape[1]
    cdef uint32_t[::1] scratch
    if floating is float:
        if bfloat16 and m and n_in and n_out:
            scratch = np.empty(_bf16_weights_size(n_in, n_out) + _bf16_rows_size(m, n_in), np.uint32)
            with nogil:
                _bf16_weights(_in2(W), &scratch[0], n_in, n_out)
                _bf16_forward(NULL, _in2(X), &scratch[0], &scratch[_bf16_weights_size(n_in, n_out)], _in1(b), activation,
                              _out2(out), m, n_in, n_out)
            return
    with nogil:
        _dense_forward(_in2(X), _in2(W), _in1(b), activation, _out2(out), X.shape[0], X.shape[1], W.shape[1])


cdef bint _dense_backward(const floating* X, const floating* W, const floating* A, const floating* dA,
                          int activation, floating* dZ, floating* dW, floating* db, floating* dX,
                          Py_ssize_t batch, Py_ssize_t n_in, Py_ssize_t n_out, bint derived,
                          const floating* relu_below, floating* db_below) noexcept nogil:
    """As dense_backward; dX NULL: no input gradient. derived: dZ and db are already computed (by
    the product above, see relu_below), dA is not read. relu_below: when the layer below is a ReLU
    (its output, (batch, n_in)), its derivative pass is fused into dX's product where that product
    allows (_matmul_nt_relu): dX then holds the layer below's dZ and db_below its bias gradient,
    and True is returned; NULL, or False: dX holds its dA."""
    if not derived:
        _activation_grad(A, dA, activation, dZ, db, batch, n_out)  # dZ and db in one pass
    _matmul_tn(X, dZ, dW, batch, n_in, n_out)
    if dX == NULL:
        return False
    if relu_below != NULL and _matmul_nt_relu(dZ, W, dX, batch, n_out, n_in, relu_below, db_below):
        return True
    _matmul_nt(dZ, W, dX, batch, n_out, n_in)
    return False


def dense_backward(const floating[:, ::1] X not None, const floating[:, ::1] W not None,
                   const floating[:, ::1] A not None, const floating[:, ::1] dA not None, int activation,
                   floating[:, ::1] dZ not None, floating[:, ::1] dW not None, floating[::1] db not None,
                   floating[:, ::1] dX=None, bfloat16=False):
    """Backward pass of one dense layer whose forward was A = f(X @ W + b).

    dZ = dA * f'(Z) (dZ may be dA), db = sum over the batch of dZ, dW = X.T @ dZ, and, unless
    dX is None (the network's input needs no gradient), dX = dZ @ W.T.
    X: (batch, n_in), W: (n_in, n_out), A, dA, dZ: (batch, n_out), dW: (n_in, n_out),
    db: (n_out,), dX: (batch, n_in) or None. bfloat16: both products of X, dZ and W rounded to
    bfloat16 (fastnn._contract's bfloat16 products); dZ and db are not rounded.
    """
    cdef Py_ssize_t batch = X.shape[0], n_in = X.shape[1], n_out = W.shape[1]
    if W.shape[0] != n_in:
        raise _contract.shape_error("W", W, (n_in, n_out))
    if A.shape[0] != batch or A.shape[1] != n_out:
        raise _contract.shape_error("A", A, (batch, n_out))
    if dW.shape[0] != n_in or dW.shape[1] != n_out:
        raise _contract.shape_error("dW", dW, (n_in, n_out))
    if db.shape[0] != n_out:
        raise _contract.shape_error("db", db, (n_out,))
    if not _is_activation(activation):
        raise _contract.activation_error(activation)
    if dA.shape[0] != batch or dA.shape[1] != n_out:
        raise _contract.shape_error("dA", dA, (batch, n_out))
    if dZ.shape[0] != batch or dZ.shape[1] != n_out:
        raise _contract.shape_error("dZ", dZ, (batch, n_out))
    cdef floating* input_grad = NULL
    if dX is not None:
        if dX.shape[0] != batch or dX.shape[1] != n_in:
            raise _contract.shape_error("dX", dX, (batch, n_in))
        input_grad = _out2(dX)  # NULL also when empty: nothing to write
    _contract.check_bfloat16(bfloat16, np.float32 if floating is float else np.float64)
    cdef uint32_t[::1] scratch
    cdef Py_ssize_t w_size, x_size
    if floating is float:
        if bfloat16 and batch and n_in and n_out:
            w_size, x_size = _bf16_weights_size(n_in, n_out), _bf16_rows_size(batch, n_in)
            scratch = np.empty(w_size + x_size + _bf16_rows_size(batch, n_out), np.uint32)
            with nogil:
                _bf16_weights(_in2(W), &scratch[0], n_in, n_out)
                _bf16_backward(NULL, _in2(X), &scratch[0], &scratch[w_size], &scratch[w_size + x_size], _in2(A), _in2(dA),
                               activation, _out2(dZ), _out2(dW), _out1(db), input_grad, batch, n_in, n_out)
            return
    with nogil:
        _dense_backward(_in2(X), _in2(W), _in2(A), _in2(dA), activation, _out2(dZ), _out2(dW), _out1(db),
                        input_grad, batch, n_in, n_out, False, NULL, NULL)

# The work fastnn's thread pool (pool.h) shares: the training step of one batch, the "pool"
# specialisation of train_epochs (trainer.pxi chooses it, _pool_threads) for networks whose products
# are large; and network_predict, a network's output for many rows, by chunks of rows.
#
# In the training step, every product of a layer is cut into pieces, POOL_PIECES_PER_THREAD per
# thread, and each task computes one piece with a one-thread BLAS call:
#   forward   Z[:, piece] = A·W[:, piece], then + b and f over the piece while it is in cache;
#   backward  dW[:, piece] = Aᵀ·dZ[:, piece] and db[piece] (the column sums, row by row), and
#             dX[:, piece] = dZ·W[piece, :]ᵀ, then, over that piece, the dropout mask and the layer
#             before's f', which makes the layer before's dZ;
#   update    the optimizer's formula over ranges of the flat parameters.
# Wide layers are cut by their output columns, which copies the smaller operand into each piece (the
# batch's activations, not W) and needs no sums across pieces; a layer too narrow to cut that way
# (a classifier's output) or a softmax is cut by rows, and its weight gradient by its inputs. Every
# element is summed in the order a one-thread BLAS call over its piece sums it, so reruns with the
# same thread count give the same results bit for bit, whichever thread takes which piece; other
# thread counts cut other pieces and agree to rounding. What the layers path does once per batch
# on the whole output (the loss, its gradient, the metrics, dropout masks) stays on the calling
# thread between the pool's jobs.

cdef enum:
    POOL_FORWARD, POOL_BACKWARD, POOL_UPDATE


cdef struct PoolJob:  # what the tasks of one job read
    int phase
    bint is_float
    const Layer* layers
    Py_ssize_t l, rows
    Py_ssize_t pieces      # how many pieces a product is cut into (POOL_PIECES_PER_THREAD per thread)
    const void* x          # the batch's input (rows, n_in)
    void* P
    void* G
    void* w                # the work buffer that the layers' offsets point into
    Py_ssize_t dw_tasks    # backward: the tasks before it are dW pieces, the rest dX pieces
    const UpdateArgs* u    # update: the optimizer, its learning rate and step, the state
    double lr
    long long step
    void* velocity
    void* m
    void* v
    Py_ssize_t n_params


cdef inline Py_ssize_t _piece(Py_ssize_t size, Py_ssize_t pieces) noexcept nogil:
    """The length of the pieces a dimension of `size` is cut into: `pieces` of them, a multiple of
    16 long, unless it is shorter than POOL_MIN_PIECE."""
    if size <= POOL_MIN_PIECE:
        return size
    return ((size + pieces - 1) // pieces + 15) // 16 * 16


cdef inline Py_ssize_t _count(Py_ssize_t size, Py_ssize_t piece) noexcept nogil:
    return (size + piece - 1) // piece


cdef inline bint _by_columns(const Layer* layer) noexcept nogil:
    """Whether a layer's products are cut by its output columns: a wide layer's are; a layer whose
    outputs are too few to cut (a classifier's 1-10), or a softmax (whole rows), is cut by rows in
    its forward product and by its inputs in its weight gradient."""
    return layer.code != SOFTMAX and layer.n_out > POOL_MIN_PIECE


cdef inline Py_ssize_t _forward_tasks(const PoolJob* job, const Layer* layer) noexcept nogil:
    if _by_columns(layer):
        return _count(layer.n_out, _piece(layer.n_out, job.pieces))
    return _count(job.rows, _piece(job.rows, job.pieces))


cdef inline Py_ssize_t _weight_grad_tasks(const PoolJob* job, const Layer* layer) noexcept nogil:
    if _by_columns(layer):
        return _count(layer.n_out, _piece(layer.n_out, job.pieces))
    return _count(layer.n_in, _piece(layer.n_in, job.pieces))


def _pool_threads(run, sizes, lanes):
    """The threads of the pool that train_epochs shares run's steps with, or 0 for none: the
    contract's pool_threads for a batch, when the step is not on the lanes. sizes: run's layer
    widths (a list)."""
    if lanes is not None or run.bfloat16:
        return 0
    threads = _contract.pool_threads(run.threads, min(run.batch, run.X.shape[0]), sizes)
    return threads if threads > 1 else 0


cdef void _forward_piece(const PoolJob* job, Py_ssize_t t, floating* w) noexcept nogil:
    """Piece t of layer job.l's forward pass: Z = A·W, + b and f over the piece."""
    cdef const Layer* layer = &job.layers[job.l]
    cdef Py_ssize_t n = layer.n_out, k = layer.n_in, rows = job.rows, i, piece, at, size
    cdef const floating* a = _layer_input(job.layers, job.l, <const floating*>job.x, w)
    cdef const floating* P = <const floating*>job.P
    cdef floating* z = w + layer.act_at
    if _by_columns(layer):  # Z[:, at:at + size]
        piece = _piece(n, job.pieces)
        at = t * piece
        size = min(piece, n - at)
        _gemm(False, False, rows, size, k, a, k, P + layer.w_at + at, n, z + at, n)
        for i in range(rows):
            _activate(z + i * n + at, P + layer.b_at + at, layer.code, z + i * n + at, 1, size)
    else:  # Z[at:at + size, :]
        piece = _piece(rows, job.pieces)
        at = t * piece
        size = min(piece, rows - at)
        _gemm(False, False, size, n, k, a + at * k, k, P + layer.w_at, n, z + at * n, n)
        _activate(z + at * n, P + layer.b_at, layer.code, z + at * n, size, n)


cdef void _weight_grad_piece(const PoolJob* job, Py_ssize_t t, floating* w) noexcept nogil:
    """Piece t of layer job.l's dW = Aᵀ·dZ, and its db = the column sums of dZ (row by row, as
    _activation_grad sums them): by output columns, or by inputs (the rows of dW; db with the first)."""
    cdef const Layer* layer = &job.layers[job.l]
    cdef Py_ssize_t n = layer.n_out, k = layer.n_in, rows = job.rows, i, j, piece, at, size
    cdef const floating* a = _layer_input(job.layers, job.l, <const floating*>job.x, w)
    cdef const floating* d = w + layer.delta_at
    cdef floating* G = <floating*>job.G
    cdef floating* db = G + layer.b_at
    cdef Py_ssize_t c0 = 0, c1 = n  # db's columns this piece sums
    if _by_columns(layer):
        piece = _piece(n, job.pieces)
        at = t * piece
        size = min(piece, n - at)
        _gemm(True, False, k, size, rows, a, k, d + at, n, G + layer.w_at + at, n)
        c0, c1 = at, at + size
    else:
        piece = _piece(k, job.pieces)
        at = t * piece
        size = min(piece, k - at)
        _gemm(True, False, size, n, rows, a + at, k, d, n, G + layer.w_at + at * n, n)
        if t > 0:
            return
    for j in range(c0, c1):
        db[j] = 0
    for i in range(rows):
        for j in range(c0, c1):
            db[j] += d[i * n + j]


cdef void _input_grad_piece(const PoolJob* job, Py_ssize_t t, floating* w) noexcept nogil:
    """Piece t of layer job.l's (> 0) dX = dZ·Wᵀ, then over the piece the layer's dropout mask and
    the layer before's f': the layer before's dZ. By the layer before's columns (whole rows when it
    is a softmax or too narrow to cut)."""
    cdef const Layer* layer = &job.layers[job.l]
    cdef const Layer* before = &job.layers[job.l - 1]
    cdef Py_ssize_t n = layer.n_out, k = layer.n_in, rows = job.rows, i, j, piece
    cdef Py_ssize_t r0 = 0, r1 = rows, p0 = 0, p1 = k  # the piece: dX[r0:r1, p0:p1]
    cdef const floating* P = <const floating*>job.P
    cdef floating* dx = w + before.delta_at
    cdef floating* row
    cdef const floating* mask
    if _by_columns(before):
        piece = _piece(k, job.pieces)
        p0 = t * piece
        p1 = min(p0 + piece, k)
    else:
        piece = _piece(rows, job.pieces)
        r0 = t * piece
        r1 = min(r0 + piece, rows)
    _gemm(False, True, r1 - r0, p1 - p0, n, w + layer.delta_at + r0 * n, n, P + layer.w_at + p0 * n, n,
          dx + r0 * k + p0, k)
    for i in range(r0, r1):
        row = dx + i * k + p0
        if layer.rate > 0:
            mask = w + layer.mask_at + i * k + p0
            for j in range(p1 - p0):
                row[j] = row[j] * mask[j]
        _activation_grad(w + before.act_at + i * k + p0, row, before.code, row, NULL, 1, p1 - p0)


cdef inline Py_ssize_t _input_grad_tasks(const PoolJob* job, const Layer* before) noexcept nogil:
    if _by_columns(before):
        return _count(before.n_out, _piece(before.n_out, job.pieces))
    return _count(job.rows, _piece(job.rows, job.pieces))


cdef void _update_range(const PoolJob* job, Py_ssize_t t, floating* P) noexcept nogil:
    cdef Py_ssize_t at = t * POOL_UPDATE_RANGE, size = min(<Py_ssize_t>POOL_UPDATE_RANGE, job.n_params - at)
    cdef floating* velocity = <floating*>job.velocity
    cdef floating* m = <floating*>job.m
    cdef floating* v = <floating*>job.v
    _step(job.u, job.lr, P + at, <const floating*>job.G + at, velocity + at if velocity != NULL else NULL,
          m + at if m != NULL else NULL, v + at if v != NULL else NULL, size, job.step)


cdef void _pool_task_of(const PoolJob* job, Py_ssize_t t, floating* w) noexcept nogil:
    if job.phase == POOL_FORWARD:
        _forward_piece(job, t, w)
    elif job.phase == POOL_BACKWARD:
        if t < job.dw_tasks:
            _weight_grad_piece(job, t, w)
        else:
            _input_grad_piece(job, t - job.dw_tasks, w)
    else:
        _update_range(job, t, <floating*>job.P)


cdef void _pool_task(void* ctx, ptrdiff_t t, int worker) noexcept nogil:
    """Task t of the PoolJob at ctx (pool.h's task function), in the job's dtype."""
    cdef const PoolJob* job = <const PoolJob*>ctx
    if job.is_float:
        _pool_task_of(job, t, <float*>job.w)
    else:
        _pool_task_of(job, t, <double*>job.w)


cdef double _pooled_batch(fastnn_pool* pool, PoolJob* job, const Layer* layers, Py_ssize_t L,
                          const floating* x, const floating* y, const int64_t* labels, const floating* sw, int loss,
                          floating scale, bint scaled, floating* P, floating* G, floating* w, Py_ssize_t rows,
                          Py_ssize_t* correct, Extras* extras) noexcept nogil:
    """_layers_batch's batch, its products and the passes over their outputs shared by the pool."""
    cdef Py_ssize_t l
    job.is_float = floating is float
    job.layers = layers
    job.rows = rows
    job.x = x
    job.P = P
    job.G = G
    job.w = w
    job.phase = POOL_FORWARD
    for l in range(L):
        _drop_layer_input(layers, l, x, w, extras, rows)
        job.l = l
        fastnn_pool_run(pool, _pool_task, job, _forward_tasks(job, &layers[l]))
    cdef floating* d = w + layers[L - 1].delta_at
    cdef floating* a = w + layers[L - 1].act_at
    cdef double batch_loss = _loss_and_metrics(layers, L, a, y, labels, sw, loss, scale, scaled, w, rows, correct,
                                               extras)
    _activation_grad(a, d, layers[L - 1].code, d, NULL, rows, layers[L - 1].n_out)
    job.phase = POOL_BACKWARD
    for l in range(L - 1, -1, -1):
        job.l = l
        job.dw_tasks = _weight_grad_tasks(job, &layers[l])
        fastnn_pool_run(pool, _pool_task, job, job.dw_tasks + (_input_grad_tasks(job, &layers[l - 1]) if l > 0 else 0))
    return batch_loss


cdef void _pooled_update(fastnn_pool* pool, PoolJob* job, const UpdateArgs* u, floating* P, floating* G,
                         floating* velocity, floating* m, floating* v, Py_ssize_t n_params,
                         long long step) noexcept nogil:
    """_update with the optimizer's formula over ranges of the parameters shared by the pool."""
    job.lr = _scheduled_lr(u, step)
    _clip(u, G, n_params)
    job.phase = POOL_UPDATE
    job.is_float = floating is float
    job.u = u
    job.step = step
    job.P = P
    job.G = G
    job.velocity = velocity
    job.m = m
    job.v = v
    job.n_params = n_params
    fastnn_pool_run(pool, _pool_task, job, (n_params + POOL_UPDATE_RANGE - 1) // POOL_UPDATE_RANGE)


cdef struct PredictJob:
    bint is_float
    const int64_t* sizes
    const int64_t* codes
    Py_ssize_t L, n, rows, width  # layers, rows of X, rows per chunk, the widest hidden layer
    const void* P
    const void* X
    void* out
    void* scratch                 # per worker: two (rows, width) buffers for the hidden layers
    uint32_t* bf                  # bfloat16 products (float32 only), or NULL: each layer's W as they read
    uint32_t* bf_inputs           # it (bf16.pxi); and per worker, bf_rows words from bf_inputs for a
    Py_ssize_t bf_rows            # layer's input


cdef void _predict_chunk(const PredictJob* job, Py_ssize_t t, int worker, floating* scratch) noexcept nogil:
    cdef Py_ssize_t r0 = t * job.rows, m = min(job.rows, job.n - r0), l, at = 0, n_in, n_out
    cdef const floating* P = <const floating*>job.P
    cdef const floating* a = <const floating*>job.X + r0 * job.sizes[0]
    cdef floating* hidden = scratch + <Py_ssize_t>worker * 2 * job.rows * job.width
    cdef floating* dst
    cdef Py_ssize_t bf_at = 0  # the layer's W in job.bf
    cdef uint32_t* bf_input = NULL
    if job.bf != NULL:
        bf_input = job.bf_inputs + <Py_ssize_t>worker * job.bf_rows
    for l in range(job.L):
        n_in, n_out = job.sizes[l], job.sizes[l + 1]
        if l == job.L - 1:
            dst = <floating*>job.out + r0 * n_out
        else:
            dst = hidden + (l % 2) * job.rows * job.width
        if floating is float and bf_input != NULL:
            _bf16_forward(NULL, a, job.bf + bf_at, bf_input, P + at + n_in * n_out, <int>job.codes[l], dst, m, n_in, n_out)
        else:
            _dense_forward(a, P + at, P + at + n_in * n_out, <int>job.codes[l], dst, m, n_in, n_out)
        at += n_in * n_out + n_out
        bf_at += _bf16_weights_size(n_in, n_out)
        a = dst


cdef void _predict_task(void* ctx, ptrdiff_t t, int worker) noexcept nogil:
    cdef const PredictJob* job = <const PredictJob*>ctx
    if job.is_float:
        _predict_chunk(job, t, worker, <float*>job.scratch)
    else:
        _predict_chunk(job, t, worker, <double*>job.scratch)


def network_predict(sizes, codes, params, X, out, rows, threads, bfloat16=False):
    """out = the output of the network (layer widths sizes (L+1,) int64, activation codes (L,)
    int64, params (n_params,) in the contract's layout) for X, `rows` rows at a time, with bfloat16
    products when `bfloat16`; the chunks are shared by `threads` threads when the work is large
    enough (the contract's pool_threads); the output is the same for every thread count.
    X: (n, sizes[0]), out: (n, sizes[-1])."""
    _contract.check_predict(sizes, codes, params, X, out, rows, threads, bfloat16)
    _predict(sizes, codes, params, X, out, rows, threads, bool(bfloat16))


def _predict(sizes, codes, const floating[::1] params, const floating[:, ::1] X, floating[:, ::1] out, Py_ssize_t rows,
             int threads, bint bfloat16):
    """network_predict after its checks, for the dtype of params."""
    cdef const int64_t[::1] size_view = sizes
    cdef const int64_t[::1] code_view = codes
    cdef Py_ssize_t n = X.shape[0], L = code_view.shape[0], l
    if n == 0:
        return
    cdef PredictJob job
    job.is_float = floating is float
    job.sizes = &size_view[0]
    job.codes = &code_view[0]
    job.L = L
    job.n = n
    workers = _contract.pool_threads(threads, n, sizes.tolist())
    # up to POOL_PREDICT_CHUNKS chunks of at least POOL_MIN_PIECE rows even when `rows` would make
    # fewer, so that a few rows are shared too; from n alone, so that the chunks (and a row's
    # output) are the same for every thread count
    job.rows = min(rows, n, max(POOL_MIN_PIECE, (n + POOL_PREDICT_CHUNKS - 1) // POOL_PREDICT_CHUNKS))
    job.width = max([1] + [int(w) for w in sizes[1:L]])
    n_chunks = (n + job.rows - 1) // job.rows
    workers = min(workers, n_chunks)
    scratch = np.empty(workers * 2 * job.rows * job.width, np.float32 if floating is float else np.float64)
    cdef floating[::1] scratch_view = scratch
    job.P = &params[0]
    job.X = &X[0, 0]
    job.out = &out[0, 0]
    job.scratch = &scratch_view[0]
    # bfloat16: every layer's W converted once, then per worker the scratch of a layer's input
    cdef Py_ssize_t bf_weights = 0, at = 0, bf_at = 0
    for l in range(L):
        bf_weights += _bf16_weights_size(size_view[l], size_view[l + 1])
    job.bf_rows = max([_bf16_rows_size(job.rows, int(w)) for w in sizes[:L]])
    bf_array = np.empty(bf_weights + workers * job.bf_rows if bfloat16 else 1, np.uint32)
    cdef uint32_t[::1] bf_view = bf_array
    job.bf = &bf_view[0] if bfloat16 else NULL
    job.bf_inputs = job.bf + bf_weights if bfloat16 else NULL
    if floating is float:
        if bfloat16:
            with nogil:
                for l in range(L):
                    _bf16_weights(&params[at], job.bf + bf_at, size_view[l], size_view[l + 1])
                    at += size_view[l] * size_view[l + 1] + size_view[l + 1]
                    bf_at += _bf16_weights_size(size_view[l], size_view[l + 1])
    cdef fastnn_pool* pool = NULL
    cdef Py_ssize_t t, count = n_chunks
    if workers > 1:
        pool = fastnn_pool_start(workers)
        if pool == NULL:
            raise MemoryError()
    with nogil:
        if pool != NULL:
            fastnn_pool_run(pool, _predict_task, &job, count)
            fastnn_pool_stop(pool)
        else:
            for t in range(count):
                _predict_task(&job, t, 0)

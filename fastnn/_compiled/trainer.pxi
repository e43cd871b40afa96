# Whole training runs: the training step written once for this twin (the NumPy twin:
# fastnn/_fallback/trainer.py). fastnn.trainer is train_epochs' one caller.
#
# For small networks the cost of training is per call, not per FLOP, so train_epochs runs many
# epochs (gather, forward, loss, backward, update for every batch) in one call without the GIL.
# The step has two specialisations, chosen in one place (_lane_codes):
#   "layers"  layer by layer through the dense kernels (matmul.pxi, activations.pxi, losses.pxi);
#   "lanes"   for tiny networks, a whole batch across vector lanes, forward, loss and backward of
#             each group of rows in registers (lanes.h): the same formulas, summed in another
#             order, with exp computed by a polynomial.
# (And "pool", pooled.pxi, for large float32 products shared by fastnn's threads.) A run with
# bfloat16 products takes "layers", its products through bf16.pxi, its W converted for them in the
# optimizer's pass (_bf16_update), both shared by a pool of their own on several threads.

from libc.stdint cimport uint32_t, uint64_t

cdef extern from "lanes.h" nogil:
    enum:
        FASTNN_LANE_LINEAR
        FASTNN_LANE_SIGMOID
        FASTNN_LANE_TANH
        FASTNN_LANE_RELU
        FASTNN_LANE_LEAKY_RELU
        FASTNN_LANE_BCE
        FASTNN_LANE_MSE
        FASTNN_LANE_MAX_BYTES
    Py_ssize_t fastnn_lanes_scratch_f(const int64_t* sizes, Py_ssize_t L, Py_ssize_t n_params)
    Py_ssize_t fastnn_lanes_scratch_d(const int64_t* sizes, Py_ssize_t L, Py_ssize_t n_params)
    double fastnn_lanes_batch_f(const float* X, const float* Y, const int64_t* idx, Py_ssize_t m,
                                const int64_t* sizes, const int64_t* codes, Py_ssize_t L, int loss,
                                double loss_scale, float slope, float* P, float* G, float* scratch,
                                Py_ssize_t n_params, int sgd, float lr, Py_ssize_t* correct)
    double fastnn_lanes_batch_d(const double* X, const double* Y, const int64_t* idx, Py_ssize_t m,
                                const int64_t* sizes, const int64_t* codes, Py_ssize_t L, int loss,
                                double loss_scale, double slope, double* P, double* G, double* scratch,
                                Py_ssize_t n_params, int sgd, double lr, Py_ssize_t* correct)
    int fastnn_lanes_fixed


def _set_fixed_lanes(bint on):
    """Send the 2-H-1 networks to the lanes compiled for their sizes (on: the default) or to the
    lanes of any sizes; returns the previous setting. For tests, which hold the two to the same
    results."""
    global fastnn_lanes_fixed
    previous = fastnn_lanes_fixed != 0
    fastnn_lanes_fixed = 1 if on else 0
    return previous


_LANE_ACTIVATIONS = {LINEAR: FASTNN_LANE_LINEAR, SIGMOID: FASTNN_LANE_SIGMOID, TANH: FASTNN_LANE_TANH,
                     RELU: FASTNN_LANE_RELU, LEAKY_RELU: FASTNN_LANE_LEAKY_RELU}


def _lane_codes(run, sizes=None, codes=None):
    """(activation codes, loss code) of lanes.h when the lanes train `run`, else None: micro-kernels
    on, every layer 1 to 64 bytes wide (where the micro-kernels take over), activations linear,
    sigmoid, tanh, ReLU or leaky ReLU, binary cross-entropy from logits or MSE, unweighted rows,
    no dropout and no metrics beyond the loss's correct count.
    sizes, codes: run's, as lists, when the caller has them."""
    sizes = [int(s) for s in run.sizes] if sizes is None else sizes
    codes = [int(c) for c in run.codes] if codes is None else codes
    if (not _simd or run.bfloat16 or run.sample_weight is not None or not codes or min(sizes) < 1
            or max(sizes) * run.params.dtype.itemsize > FASTNN_LANE_MAX_BYTES):
        return None
    if (run.metrics is not None and len(run.metrics)) or (run.dropout is not None and run.dropout.any()):
        return None  # the lanes keep no outputs for metrics, and draw no masks
    if any(code not in _LANE_ACTIVATIONS for code in codes):
        return None
    if run.loss == BINARY_CROSSENTROPY and codes[len(codes) - 1] == LINEAR:  # (wraparound is off)
        lane_loss = FASTNN_LANE_BCE
    elif run.loss == MSE:
        lane_loss = FASTNN_LANE_MSE
    else:
        return None
    return np.array([_LANE_ACTIVATIONS[code] for code in codes], np.int64), lane_loss


def step_path(run):
    """Which specialisation of the step train_epochs takes for run (a fastnn._contract.TrainingRun):
    "lanes" (tiny networks across vector lanes), "pool" (large products shared by fastnn's
    threads, pooled.pxi) or "layers"."""
    lanes = _lane_codes(run)
    if lanes is not None:
        return "lanes"
    return "pool" if _pool_threads(run, [int(s) for s in run.sizes], lanes) else "layers"


cdef struct Layer:
    Py_ssize_t n_in, n_out
    int code
    Py_ssize_t w_at, b_at    # offsets of W and b in the flat parameters
    Py_ssize_t act_at        # offset in the work buffer of the layer's output activation,
    Py_ssize_t delta_at      # and of the gradient with respect to it
    double rate              # dropout on the layer's input (0: none); then in the work buffer
    Py_ssize_t drop_at       # the dropped-out input,
    Py_ssize_t mask_at       # and the mask: 1 / (1 - rate) where kept, else 0
    uint32_t threshold       # keep_bits >= threshold: kept
    double l1, l2            # Keras' kernel regularizers on W
    Py_ssize_t bw_at         # bfloat16 products: the offset of W as they read it in Bf16Run.w


cdef struct Bf16Run:  # what a run with bfloat16 products keeps besides the work buffer (bf16.pxi)
    uint32_t* w              # each layer's W as the products read it (at the layer's bw_at)
    uint32_t* x              # scratch that the layers share for their input as the products read it,
    uint32_t* dz             # and for their dZ
    fastnn_pool* pool        # the threads that share the products, or NULL: one


cdef struct Extras:  # what a batch computes besides its loss and gradient: metrics and dropout
    bint count               # the correct predictions (the run's count_correct)
    const int64_t* metrics   # codes, n_metrics of them, summed into sums
    Py_ssize_t n_metrics, top_k
    double* sums
    int fused                # the output activation the loss takes logits of (-1: none)
    Py_ssize_t predictions_at  # in the work buffer: (rows, n_out) for the probabilities the metrics see
    uint64_t seed            # the dropout seed, and the step the masks belong to
    uint64_t step


cdef inline uint64_t _splitmix64(uint64_t x) noexcept nogil:
    """SplitMix64 (Steele, Lea and Flood), as fastnn._contract.splitmix64."""
    cdef uint64_t z = x + <uint64_t>0x9E3779B97F4A7C15ULL
    z = (z ^ (z >> 30)) * <uint64_t>0xBF58476D1CE4E5B9ULL
    z = (z ^ (z >> 27)) * <uint64_t>0x94D049BB133111EBULL
    return z ^ (z >> 31)


cdef extern from "dropout.h" nogil:
    void fastnn_dropout_f(const float* a, float* dropped, float* mask, Py_ssize_t size, uint64_t base,
                          uint32_t threshold, float scale, bint simd)
    void fastnn_dropout_d(const double* a, double* dropped, double* mask, Py_ssize_t size, uint64_t base,
                          uint32_t threshold, double scale, bint simd)


cdef inline void _drop_out(const Layer* layer, const floating* a, floating* dropped, floating* mask, Py_ssize_t size,
                           uint64_t base) noexcept nogil:
    """The inverted-dropout mask of a layer's input a (size elements) and the dropped input
    (dropout.h: fastnn._contract.keep_bits of the stream `base`)."""
    if floating is float:
        fastnn_dropout_f(a, dropped, mask, size, base, layer.threshold, <float>(1.0 / (1.0 - layer.rate)), _simd)
    else:
        fastnn_dropout_d(a, dropped, mask, size, base, layer.threshold, 1.0 / (1.0 - layer.rate), _simd)


cdef inline const floating* _layer_input(const Layer* layers, Py_ssize_t l, const floating* x,
                                        floating* w) noexcept nogil:
    """What layer l multiplies: its dropped-out input, the data x, or the layer before's output."""
    if layers[l].rate > 0:
        return w + layers[l].drop_at
    if l == 0:
        return x
    return w + layers[l - 1].act_at


cdef inline void _drop_layer_input(const Layer* layers, Py_ssize_t l, const floating* x, floating* w,
                                   const Extras* extras, Py_ssize_t rows) noexcept nogil:
    """The dropout mask of layer l's input for this batch and the dropped-out input (no dropout: nothing)."""
    if layers[l].rate > 0:
        _drop_out(&layers[l], x if l == 0 else w + layers[l - 1].act_at, w + layers[l].drop_at,
                  w + layers[l].mask_at, rows * layers[l].n_in,
                  _splitmix64(_splitmix64(extras.seed + extras.step) + <uint64_t>l))


cdef double _loss_and_metrics(const Layer* layers, Py_ssize_t L, const floating* a, const floating* y,
                              const int64_t* labels, const floating* sw, int loss, floating scale, bint scaled,
                              floating* w, Py_ssize_t rows, Py_ssize_t* correct, Extras* extras) noexcept nogil:
    """The batch's mean loss of the network's output a, its gradient (times `scale` when `scaled`)
    into the output layer's delta, the correct predictions added to *correct, the metrics' sums."""
    cdef Py_ssize_t i, j, n_y = layers[L - 1].n_out
    cdef floating* d = w + layers[L - 1].delta_at
    cdef const floating* out
    cdef double batch_loss = _loss_batch(loss, a, y, labels, sw, d, rows, n_y)
    if extras.count:
        correct[0] += _count_correct(loss, a, y, labels, rows, n_y)
    if extras.n_metrics:
        out = a
        if extras.fused >= 0:  # the metrics see probabilities, not the logits the loss takes
            _activate(a, NULL, extras.fused, w + extras.predictions_at, rows, n_y)
            out = w + extras.predictions_at
        for j in range(extras.n_metrics):
            extras.sums[j] += _metric_sum(<int>extras.metrics[j], out, y, labels, rows, n_y, extras.top_k)
    if scaled:
        for i in range(rows * n_y):
            d[i] = d[i] * scale
    return batch_loss


cdef double _layers_batch(const Layer* layers, Py_ssize_t L, const floating* x, const floating* y,
                          const int64_t* labels, const floating* sw, int loss, floating scale, bint scaled,
                          const floating* P, floating* G, floating* w, const Bf16Run* bf, Py_ssize_t rows,
                          Py_ssize_t* correct, Extras* extras) noexcept nogil:
    """One batch layer by layer: forward (through each layer's dropout), the loss and its gradient
    (times `scale` when `scaled`), the metrics, backward into G; returns the batch's mean loss and
    adds its correct predictions to *correct. x: (rows, n_in) inputs; y: (rows, n_out) targets or
    labels: (rows,); sw: (rows,) weights or NULL; w: the work buffer that layers' offsets point into;
    bf: NULL, or (float32) the run's bfloat16 products, whose W _bf16_all_weights and then
    _bf16_update after each step keep as the products read it."""
    cdef Py_ssize_t l, i
    cdef floating* d
    cdef floating* z
    cdef floating* mask
    for l in range(L):
        _drop_layer_input(layers, l, x, w, extras, rows)
        if floating is float:
            if bf != NULL:
                _bf16_forward(bf.pool, _layer_input(layers, l, x, w), bf.w + layers[l].bw_at, bf.x,
                              P + layers[l].b_at, layers[l].code, w + layers[l].act_at, rows, layers[l].n_in,
                              layers[l].n_out)
                continue
        _dense_forward(_layer_input(layers, l, x, w), P + layers[l].w_at, P + layers[l].b_at, layers[l].code,
                       w + layers[l].act_at, rows, layers[l].n_in, layers[l].n_out)
    cdef double batch_loss = _loss_and_metrics(layers, L, w + layers[L - 1].act_at, y, labels, sw, loss, scale,
                                               scaled, w, rows, correct, extras)
    cdef bint derived = False  # the layer's dZ and db came with the product of the layer above
    cdef bint fuse
    for l in range(L - 1, -1, -1):
        d = w + layers[l].delta_at
        if floating is float and bf != NULL:
            _bf16_backward(bf.pool, _layer_input(layers, l, x, w), bf.w + layers[l].bw_at, bf.x, bf.dz,
                           w + layers[l].act_at, d, layers[l].code, d, G + layers[l].w_at,
                           G + layers[l].b_at, NULL if l == 0 else w + layers[l - 1].delta_at, rows,
                           layers[l].n_in, layers[l].n_out)
        else:
            # a ReLU layer below, with no dropout mask between: its derivative in this layer's dX product
            fuse = l > 0 and layers[l].rate == 0 and layers[l - 1].code == RELU
            derived = _dense_backward(_layer_input(layers, l, x, w), P + layers[l].w_at, w + layers[l].act_at, d,
                                      layers[l].code, d, G + layers[l].w_at, G + layers[l].b_at,
                                      NULL if l == 0 else w + layers[l - 1].delta_at, rows, layers[l].n_in,
                                      layers[l].n_out, derived, w + layers[l - 1].act_at if fuse else NULL,
                                      G + layers[l - 1].b_at if fuse else NULL)
        if l > 0 and layers[l].rate > 0:  # back through the mask to the previous layer's output
            z = w + layers[l - 1].delta_at
            mask = w + layers[l].mask_at
            for i in range(rows * layers[l].n_in):
                z[i] = z[i] * mask[i]
    return batch_loss


cdef enum:
    BF16_UPDATE_ROWS = 16  # rows of W per task of _bf16_update: W's pairs over its rows take an even
                           # count, the transpose's pairs 16 words of each of their rows at a time


cdef struct Bf16Update:  # _bf16_update's job
    const Layer* layers
    Py_ssize_t L
    const UpdateArgs* u
    double lr
    long long step
    float* P
    const float* G
    float* velocity
    float* m
    float* v
    uint32_t* bf_w


cdef inline Py_ssize_t _bf16_update_tasks(const Layer* layer) noexcept nogil:
    """The tasks of a layer in _bf16_update: its W by blocks of rows, then its b."""
    return (layer.n_in + BF16_UPDATE_ROWS - 1) // BF16_UPDATE_ROWS + 1


cdef void _bf16_update_task(void* ctx, ptrdiff_t t, int worker) noexcept nogil:
    cdef const Bf16Update* job = <const Bf16Update*>ctx
    cdef Py_ssize_t l = 0, r0 = 0, rows = 0, at, size
    while t >= _bf16_update_tasks(&job.layers[l]):
        t -= _bf16_update_tasks(&job.layers[l])
        l += 1
    cdef const Layer* layer = &job.layers[l]
    if t == _bf16_update_tasks(layer) - 1:  # the bias
        at, size = layer.b_at, layer.n_out
    else:
        r0 = t * BF16_UPDATE_ROWS
        rows = min(<Py_ssize_t>BF16_UPDATE_ROWS, layer.n_in - r0)
        at, size = layer.w_at + r0 * layer.n_out, rows * layer.n_out
    _step(job.u, job.lr, job.P + at, job.G + at, job.velocity + at if job.velocity != NULL else NULL,
          job.m + at if job.m != NULL else NULL, job.v + at if job.v != NULL else NULL, size, job.step)
    if at != layer.b_at:  # these rows of W, as the products read them, while they are in cache
        _bf16_weight_rows(job.P + layer.w_at, job.bf_w + layer.bw_at, layer.n_in, layer.n_out, r0, rows)


cdef void _bf16_update(const Bf16Run* bf, const Layer* layers, Py_ssize_t L, const UpdateArgs* u, float* P,
                       float* G, float* velocity, float* m, float* v, Py_ssize_t n_params,
                       long long step) noexcept nogil:
    """_update, and with it each W converted for the bfloat16 products (_bf16_weight_rows) row block
    by row block as the step leaves it: W is read once per step for both. The blocks are shared by
    bf's pool; every element's update is _update's."""
    cdef Bf16Update job
    cdef Py_ssize_t l, tasks = 0
    job.layers, job.L, job.u, job.step, job.P, job.G, job.bf_w = layers, L, u, step, P, G, bf.w
    job.velocity, job.m, job.v = velocity, m, v
    job.lr = _scheduled_lr(u, step)
    _clip(u, G, n_params)
    for l in range(L):
        tasks += _bf16_update_tasks(&layers[l])
    if bf.pool != NULL:
        fastnn_pool_run(bf.pool, _bf16_update_task, &job, tasks)
    else:
        for l in range(tasks):
            _bf16_update_task(&job, l, 0)


cdef void _bf16_all_weights(const Bf16Run* bf, const Layer* layers, Py_ssize_t L, const float* P) noexcept nogil:
    """Every W as the bfloat16 products read it (from then on, _bf16_update keeps them so)."""
    cdef Py_ssize_t l
    for l in range(L):
        _bf16_weights(P + layers[l].w_at, bf.w + layers[l].bw_at, layers[l].n_in, layers[l].n_out)


cdef void _add_scaled(floating* G, const floating* P, Py_ssize_t size, floating c) noexcept nogil:
    """G[i] += c * P[i] for i < size: a weight penalty's gradient (elementwise.h's vectors when simd is on)."""
    cdef Py_ssize_t i
    if _simd:
        if floating is float:
            fastnn_ew_add_scaled_f(G, P, size, c, _wide)
        else:
            fastnn_ew_add_scaled_d(G, P, size, c, _wide)
        return
    for i in range(size):
        G[i] = G[i] + c * P[i]


cdef double _penalty_squares(const floating* P, Py_ssize_t size) noexcept nogil:
    """sum(P[i]²) for i < size in double: a weight penalty's loss (elementwise.h's vectors when simd is on)."""
    if _simd:
        if floating is float:
            return fastnn_ew_sum_squares_f(P, size, _wide)
        return fastnn_ew_sum_squares_d(P, size, _wide)
    return _sum_squares(P, size)


cdef void _penalize(const Layer* layers, Py_ssize_t L, const floating* P, floating* G,
                    double* batch_loss) noexcept nogil:
    """Keras' kernel regularizers: l1 sign(W) + 2 l2 W added to W's gradient, l1 sum|W| and
    l2 sum W² (sums in double) to the batch's loss, layer by layer."""
    cdef Py_ssize_t l, i
    cdef double s
    cdef floating c1, c2, p
    for l in range(L):
        if layers[l].l1 > 0:
            c1 = <floating>layers[l].l1
            s = 0
            for i in range(layers[l].w_at, layers[l].b_at):
                p = P[i]
                G[i] = G[i] + c1 * <floating>((p > 0) - (p < 0))
                s += _abs(p)
            batch_loss[0] += layers[l].l1 * s
        if layers[l].l2 > 0:
            c2 = <floating>(2.0 * layers[l].l2)
            _add_scaled(G + layers[l].w_at, P + layers[l].w_at, layers[l].b_at - layers[l].w_at, c2)
            batch_loss[0] += layers[l].l2 * _penalty_squares(P + layers[l].w_at, layers[l].b_at - layers[l].w_at)


cdef enum:
    CHECK_MILLISECONDS = 2


cdef double _milliseconds_since(timespec* last) noexcept nogil:
    """Milliseconds since *last; sets *last to now when that is CHECK_MILLISECONDS or more."""
    cdef timespec now
    clock_gettime(CLOCK_MONOTONIC, &now)
    cdef double ms = (now.tv_sec - last.tv_sec) * 1e3 + (now.tv_nsec - last.tv_nsec) * 1e-6
    if ms >= CHECK_MILLISECONDS:
        last[0] = now
    return ms


def _signal_raised():
    """Run the Python signal handlers (in the main thread; elsewhere nothing is pending): the
    exception one of them raised (KeyboardInterrupt for Ctrl-C), else None."""
    try:
        PyErr_CheckSignals()
    except BaseException as exc:
        return exc
    return None


_scratch_of_thread = threading.local()


def _scratch(str name, Py_ssize_t size, dtype):
    """A 1-d array of `size` elements of dtype that the calling thread's next train_epochs call
    reuses. The work buffers of a large network take tens of megabytes; allocated afresh by each call
    (each fit's chunk), every page of them was faulted in and zeroed by the kernel again, a few percent
    of a large network's epoch. Nothing is read from them before it is written."""
    arrays = getattr(_scratch_of_thread, "arrays", None)
    if arrays is None:
        arrays = _scratch_of_thread.arrays = {}
    array = arrays.get(name)
    if array is None or array.size < size or array.dtype != dtype:
        array = arrays[name] = np.empty(max(size, 1), dtype)
    return array[:max(size, 1)]


def train_epochs(run, order, long long step, epoch_loss, epoch_correct, epoch_metrics):
    """Train run (fastnn._contract.TrainingRun) for len(epoch_loss) epochs in one call; returns
    (epochs finished, optimizer step count, stopped).

    order: (epochs, n) int64 row order of each epoch, or None to take the rows in order. step: the
    number of updates made so far (Adam's t). Writes per epoch the mean loss into epoch_loss
    (float64 (epochs,)), the number of correct predictions into epoch_correct (int64 (epochs,)) and
    the sums of run.metrics into epoch_metrics (float64 (epochs, k)).
    If an epoch's loss or parameters are not finite, the parameters are put back as they were
    before that epoch and the call returns early: epochs finished < len(epoch_loss), and
    epoch_loss[finished] holds the bad loss. A stop request (run.stop) or Ctrl-C ends the call
    after the batch it is in, within milliseconds (stopped True): the parameters, the optimizer
    state and the step count are those of that last batch, and a partly trained epoch does not
    count as finished.
    """
    _contract.check_run(run, order, step, epoch_loss, epoch_correct, epoch_metrics, check_values=False)
    return _train(run.params, run, order, step, epoch_loss, epoch_correct, epoch_metrics)


def _train(floating[::1] params, run, order, long long step, double[::1] epoch_loss, int64_t[::1] epoch_correct,
           double[:, ::1] epoch_metrics):
    """train_epochs after its checks, for the dtype of params."""
    sizes = run.sizes.tolist()
    codes = run.codes.tolist()
    cdef const floating[:, ::1] X = run.X
    cdef Py_ssize_t n = X.shape[0], epochs = epoch_loss.shape[0], L = len(codes)
    cdef int loss = run.loss
    cdef bint sparse = loss == SPARSE_CATEGORICAL_CROSSENTROPY
    cdef const floating[:, ::1] Y_view
    cdef const int64_t[::1] labels_view
    cdef const floating[::1] weights_view
    cdef const int64_t[:, ::1] order_view
    cdef const floating* Yp = NULL
    cdef const int64_t* labels = NULL
    cdef const floating* weights = NULL
    cdef const int64_t* rows_of = NULL  # (epochs, n) or NULL: in order
    if sparse:
        labels_view = run.labels
        labels = &labels_view[0]
        if not _in_range(labels, n, sizes[L]):
            raise _contract.label_range_error(sizes[L])
    else:
        Y_view = run.Y
        Yp = &Y_view[0, 0]
    if run.sample_weight is not None:
        weights_view = run.sample_weight
        weights = &weights_view[0]
    if order is not None:
        order_view = order
        rows_of = &order_view[0, 0]
        if not _in_range(rows_of, epochs * n, n):
            raise _contract.order_range_error(n)
    cdef floating[::1] grads = run.grads
    cdef floating* P = &params[0]
    cdef floating* G = &grads[0]
    cdef Py_ssize_t n_params = params.shape[0], batch = run.batch
    cdef Py_ssize_t rows_max = min(batch, n), n_x = sizes[0], n_y = sizes[L]

    # the optimizer step: its settings and state, or none (update is None: gradient only)
    cdef bint updates = run.update is not None
    cdef _UpdateState update = _update_state(run.update, sizes) if updates else None
    cdef const UpdateArgs* u = &update.args if updates else NULL
    cdef floating* velocity = <floating*>update.velocity if updates else NULL
    cdef floating* m1 = <floating*>update.m if updates else NULL
    cdef floating* m2 = <floating*>update.v if updates else NULL
    cdef double loss_scale = run.loss_scale, l2 = run.l2
    cdef floating scale_f = <floating>loss_scale, l2_f

    # the layers, and the work buffer: each layer's output and its gradient (and, with dropout,
    # its dropped-out input and mask), the gathered batch (X rows, Y rows, weights), the
    # predictions the metrics see, the parameters as they were before the epoch
    dropout = run.dropout.tolist() if run.dropout is not None else [0.0] * L
    penalties = run.penalties.tolist() if run.penalties is not None else [[0.0, 0.0]] * L
    cdef Layer* layers = <Layer*>PyMem_Malloc(L * sizeof(Layer))
    if layers == NULL:
        raise MemoryError()
    cdef Py_ssize_t at = 0, p_at = 0, l, bf_size = 0
    for l in range(L):  # the flat parameters in the contract's layout: W then b per layer
        layers[l].n_in = sizes[l]
        layers[l].n_out = sizes[l + 1]
        layers[l].code = codes[l]
        layers[l].w_at = p_at
        layers[l].b_at = p_at + sizes[l] * sizes[l + 1]
        p_at = layers[l].b_at + sizes[l + 1]
        layers[l].act_at = at
        layers[l].delta_at = at + rows_max * sizes[l + 1]
        at += 2 * rows_max * sizes[l + 1]
        layers[l].rate = dropout[l]
        layers[l].threshold = _contract.keep_threshold(dropout[l])
        layers[l].drop_at = layers[l].mask_at = 0
        if dropout[l] > 0:
            layers[l].drop_at = at
            layers[l].mask_at = at + rows_max * sizes[l]
            at += 2 * rows_max * sizes[l]
        layers[l].l1, layers[l].l2 = penalties[l]
        layers[l].bw_at = bf_size
        bf_size += _bf16_weights_size(sizes[l], sizes[l + 1])
    # then the input and the dZ scratch that the layers share (each layer converts its own where they
    # are read)
    cdef Py_ssize_t bx_at = 0, bdz_at = 0
    if run.bfloat16:  # (check_run: float32 only)
        bx_at = bf_size
        bdz_at = bx_at + max([_bf16_rows_size(rows_max, s) for s in sizes[:L]])
        bf_size = bdz_at + max([_bf16_rows_size(rows_max, s) for s in sizes[1:]])
    bf_array = _scratch("bfloat16", bf_size if run.bfloat16 else 1, np.uint32)
    cdef uint32_t[::1] bf_view = bf_array
    cdef Bf16Run bf_run
    bf_run.w, bf_run.x, bf_run.dz, bf_run.pool = &bf_view[0], &bf_view[0] + bx_at, &bf_view[0] + bdz_at, NULL
    cdef const Bf16Run* bf = &bf_run if run.bfloat16 else NULL
    cdef bint penalized = any(a > 0 or b > 0 for a, b in penalties)
    cdef Py_ssize_t batch_at = at, targets_at = at + rows_max * n_x, weights_at = targets_at + rows_max * n_y
    cdef Py_ssize_t predictions_at = weights_at + rows_max
    cdef Py_ssize_t last_at = predictions_at + rows_max * n_y
    work_array = _scratch("work", last_at + n_params, np.float32 if floating is float else np.float64)
    cdef floating[::1] work = work_array
    cdef floating* w = &work[0]
    label_array = np.empty(rows_max, np.int64)
    cdef int64_t[::1] label_rows = label_array

    # tiny networks: the lanes, with their own scratch
    lanes = _lane_codes(run, sizes, codes)
    cdef bint in_lanes = lanes is not None
    cdef const int64_t[::1] size_view = run.sizes
    cdef const int64_t[::1] lane_codes = lanes[0] if in_lanes else np.zeros(0, np.int64)
    cdef int lane_loss = lanes[1] if in_lanes else 0
    cdef Py_ssize_t lane_scratch = 0
    if in_lanes:
        if floating is float:
            lane_scratch = fastnn_lanes_scratch_f(&size_view[0], L, n_params)
        else:
            lane_scratch = fastnn_lanes_scratch_d(&size_view[0], L, n_params)
    lane_array = np.zeros(lane_scratch, np.float32 if floating is float else np.float64)
    cdef floating[::1] lane_work = lane_array
    # plain SGD on the lanes: its step is made by the lanes, on the gradient they have just summed
    # (nothing else changes the gradient: no clipping, no L2, no penalties)
    cdef bint lane_sgd = (in_lanes and updates and u.optimizer == SGD and u.clipvalue <= 0 and u.clipnorm <= 0
                          and u.global_clipnorm <= 0 and l2 == 0.0 and not penalized)
    cdef floating lane_lr = 0

    cdef double total, batch_loss, w_sum, penalty
    cdef Py_ssize_t epoch, start, rows, r, i, idx, finished = epochs, correct
    cdef const floating* x
    cdef const floating* y = NULL
    cdef const floating* sw = NULL
    cdef const int64_t* lab = NULL
    cdef const int64_t* rows_at = NULL
    # stop checks: the run's stop flag after every batch; the signal handlers at most every
    # CHECK_MILLISECONDS, by the clock read every check_every batches (about a microsecond of work)
    cdef bint stopped = False
    pending = None
    cdef const signed char* stop_flag = NULL
    cdef const signed char[::1] stop_view
    if run.stop is not None:
        stop_view = run.stop
        stop_flag = &stop_view[0]
    # metrics and dropout: what _layers_batch does besides the loss and gradient
    metric_array = np.ascontiguousarray(run.metrics if run.metrics is not None else np.zeros(0, np.int64))
    cdef const int64_t[::1] metric_codes = metric_array
    cdef Py_ssize_t n_metrics = metric_codes.shape[0], j
    sums_array = np.zeros(max(1, n_metrics))
    cdef double[::1] sums = sums_array
    cdef Extras extras
    extras.count = run.count_correct
    extras.metrics = &metric_codes[0] if n_metrics else NULL
    extras.n_metrics = n_metrics
    extras.top_k = run.top_k
    extras.sums = &sums[0]
    fused = _contract.LOSSES[loss].fused
    extras.fused = -1 if fused is None else fused
    extras.predictions_at = predictions_at
    extras.seed = <uint64_t>run.dropout_seed
    cdef Py_ssize_t check_every = max(1, min(1024, 1000000 // max(1, rows_max * n_params)))
    cdef bint n_pow2 = (n & (n - 1)) == 0
    cdef double inv_n = 1.0 / n if n > 0 else 0.0
    cdef Py_ssize_t countdown = check_every
    cdef timespec last_check
    clock_gettime(CLOCK_MONOTONIC, &last_check)
    # large networks on several threads: fastnn's pool, for this call (stopped in `finally`)
    cdef int threads = _pool_threads(run, sizes, lanes)
    cdef fastnn_pool* pool = NULL
    cdef PoolJob job
    if threads:
        pool = fastnn_pool_start(threads)
        if pool == NULL:
            PyMem_Free(layers)
            raise MemoryError()
        job.pieces = POOL_PIECES_PER_THREAD * threads
    # bfloat16 products of a large network on several threads: shared by a pool of their own (the
    # rest of the step stays on the calling thread)
    cdef int bf_threads = _bf16_threads(run, sizes)
    if bf_threads > 1:
        bf_run.pool = fastnn_pool_start(bf_threads)
        if bf_run.pool == NULL:
            fastnn_pool_stop(pool)
            PyMem_Free(layers)
            raise MemoryError()
    try:
        with nogil:
            if floating is float:
                if bf != NULL:
                    _bf16_all_weights(bf, layers, L, P)
            for epoch in range(epochs):
                for i in range(n_params):  # (a loop: its loads match the update's stores just before, which
                    w[last_at + i] = P[i]  # memcpy's wider, overlapping ones of a small network would wait on)
                total = 0
                correct = 0
                for j in range(n_metrics):
                    sums[j] = 0
                start = 0
                while start < n:
                    rows = min(batch, n - start)
                    x = &X[start, 0]
                    if sparse:
                        lab = labels + start
                    else:
                        y = Yp + start * n_y
                    if weights != NULL:
                        sw = weights + start
                    if in_lanes:  # the lanes read the batch's rows where they are
                        if rows_of != NULL:
                            x, y, rows_at = &X[0, 0], Yp, rows_of + epoch * n + start
                        if lane_sgd:  # the update of this batch, made by the lanes
                            step += 1
                            lane_lr = <floating>_scheduled_lr(u, step)
                        if floating is float:
                            batch_loss = fastnn_lanes_batch_f(x, y, rows_at, rows, &size_view[0], &lane_codes[0], L,
                                                              lane_loss, loss_scale, <float>LEAKY_SLOPE, P, G,
                                                              &lane_work[0], n_params, lane_sgd, lane_lr, &correct)
                        else:
                            batch_loss = fastnn_lanes_batch_d(x, y, rows_at, rows, &size_view[0], &lane_codes[0], L,
                                                              lane_loss, loss_scale, LEAKY_SLOPE, P, G,
                                                              &lane_work[0], n_params, lane_sgd, lane_lr, &correct)
                    else:
                        if rows_of != NULL:  # gather this batch's rows
                            for r in range(rows):
                                idx = <Py_ssize_t>rows_of[epoch * n + start + r]
                                memcpy(w + batch_at + r * n_x, &X[idx, 0], n_x * sizeof(floating))
                                if sparse:
                                    label_rows[r] = labels[idx]
                                else:
                                    memcpy(w + targets_at + r * n_y, Yp + idx * n_y, n_y * sizeof(floating))
                                if weights != NULL:
                                    w[weights_at + r] = weights[idx]
                            x = w + batch_at
                            y = w + targets_at
                            lab = &label_rows[0]
                            if weights != NULL:
                                sw = w + weights_at
                        extras.step = <uint64_t>(step + 1)  # the update this batch precedes
                        if pool != NULL:
                            batch_loss = _pooled_batch(pool, &job, layers, L, x, y, lab, sw, loss, scale_f,
                                                       loss_scale != 1.0, P, G, w, rows, &correct, &extras)
                        else:
                            batch_loss = _layers_batch(layers, L, x, y, lab, sw, loss, scale_f, loss_scale != 1.0,
                                                       P, G, w, bf, rows, &correct, &extras)
                    if loss_scale != 1.0:
                        batch_loss = batch_loss * loss_scale
                    if l2 != 0.0:  # the contract's L2 option: on the weights, over the batch's weight sum
                        w_sum = _weight_sum(sw, rows)
                        l2_f = <floating>(l2 / w_sum)
                        for l in range(L):
                            penalty = _penalty_squares(P + layers[l].w_at, layers[l].b_at - layers[l].w_at)
                            _add_scaled(G + layers[l].w_at, P + layers[l].w_at, layers[l].b_at - layers[l].w_at, l2_f)
                            batch_loss = batch_loss + 0.5 * l2 * penalty / w_sum
                    if penalized:
                        _penalize(layers, L, P, G, &batch_loss)
                    total += batch_loss * rows
                    start += rows
                    if updates and not lane_sgd:
                        step += 1
                        if pool != NULL:
                            _pooled_update(pool, &job, u, P, G, velocity, m1, m2, n_params, step)
                        elif bf == NULL:
                            _update(u, P, G, velocity, m1, m2, n_params, step)
                        elif floating is float:  # (bf: float32 only)
                            _bf16_update(bf, layers, L, u, P, G, velocity, m1, m2, n_params, step)
                    if stop_flag != NULL and stop_flag[0] != 0:  # a stop request: after every batch
                        stopped = True
                        break
                    countdown -= 1
                    if countdown == 0:  # a signal (Ctrl-C): every few milliseconds
                        countdown = check_every
                        if _milliseconds_since(&last_check) >= CHECK_MILLISECONDS:
                            with gil:
                                pending = _signal_raised()
                                stopped = pending is not None
                            if stopped:
                                break
                if stopped and start < n:  # within an epoch: it does not count as finished
                    finished = epoch
                    break
                # (n a power of two: a multiplication, the same bits as the division without its latency)
                epoch_loss[epoch] = total * inv_n if n_pow2 else total / n
                epoch_correct[epoch] = correct if extras.count else 0  # (the lanes count anyway)
                for j in range(n_metrics):
                    epoch_metrics[epoch, j] = sums[j]
                if not (_finite(epoch_loss[epoch]) and _all_finite(P, n_params)):
                    memcpy(P, w + last_at, n_params * sizeof(floating))
                    finished = epoch
                    break
                if stopped:
                    finished = epoch + 1
                    break
    finally:
        fastnn_pool_stop(pool)
        fastnn_pool_stop(bf_run.pool)
        PyMem_Free(layers)
    if pending is not None and not isinstance(pending, KeyboardInterrupt):
        raise pending  # what a signal handler of the user's raised
    return finished, step, bool(stopped)

"""Network: a stack of dense layers as the kernels see it.

The layer widths, the activation codes, and one flat buffer of parameters (W then b per layer,
fastnn._contract.layout) with one of gradients of the same length; every layer's W, b, dW and db
are views into them, so one optimizer step updates the whole network in one pass. Sequential,
the scikit-learn estimators, gradcheck and explain all reach the parameters through a Network.
"""
import contextlib
import threading
from typing import Iterator, Sequence

import numpy as np

from . import _contract
from .backend import get_backend, ops
from .threads import one_thread_blas, product_threads


# Rows per chunk of predict: large enough to amortise each kernel call, small enough that the
# chunk's activations stay in cache-sized buffers.
PREDICT_ROWS = 1024


class Network:
    """sizes: (L+1,) layer widths; codes: (L,) activation codes (fastnn._contract); dtype;
    bfloat16: the products take bfloat16 operands (fastnn._contract's bfloat16 products; float32).

    Attributes: sizes and codes (int64 arrays); params and grads, (n_params,) of `dtype`;
    slices[l], where layer l lies in them; W[l] (n_in, n_out), b[l] (n_out,), dW[l], db[l], views;
    lock, held by whoever writes `grads` (a fit, a gradient pass): one at a time; stop, a (1,)
    int8 flag that another thread sets to 1 to end the network's training run after its current
    batch (fastnn._contract.TrainingRun.stop).
    """

    def __init__(self, sizes: Sequence[int], codes: Sequence[int], dtype, bfloat16: bool = False):
        self.sizes = np.array(sizes, np.int64)
        self.codes = np.array(codes, np.int64)
        self.dtype = np.dtype(dtype)
        _contract.check_bfloat16(bfloat16, self.dtype)
        self.bfloat16 = bool(bfloat16)
        self.slices, n_params = _contract.layout(self.sizes)
        self.params = np.zeros(n_params, self.dtype)
        self.grads = np.zeros(n_params, self.dtype)
        self._make_views()
        self.lock = threading.Lock()
        self._owner = None
        self.stop = np.zeros(1, np.int8)

    def _make_views(self) -> None:
        def views(flat):
            return ([flat[s.w_at:s.b_at].reshape(int(i), int(o))
                     for s, i, o in zip(self.slices, self.sizes[:-1], self.sizes[1:])],
                    [flat[s.b_at:s.end] for s in self.slices])
        self.W, self.b = views(self.params)
        self.dW, self.db = views(self.grads)

    # Pickling (joblib and Dask ship models between processes): the lock is not picklable, and the
    # views must point into the unpickled buffers again.
    def __getstate__(self) -> dict:
        return {"sizes": self.sizes, "codes": self.codes, "dtype": self.dtype, "params": self.params,
                "grads": self.grads, "bfloat16": self.bfloat16}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update({"bfloat16": False, **state})  # (pickled before bfloat16 existed: False)
        self.slices, _ = _contract.layout(self.sizes)
        self._make_views()
        self.lock = threading.Lock()
        self._owner = None
        self.stop = np.zeros(1, np.int8)

    @contextlib.contextmanager
    def fitting(self, what: str) -> Iterator[None]:
        """Hold `lock` for a fit (or a gradient pass) named `what`; RuntimeError if it is held."""
        if not self.lock.acquire(blocking=False):
            if self._owner == threading.get_ident():
                raise RuntimeError(f"{what} was called while this model is being fitted in the same thread "
                                   "(from one of the fit's callbacks?): fit another model there, or after fit returns")
            raise RuntimeError(f"this model is already being fitted in another thread, so {what} cannot run; "
                               "fit separate models in parallel, or wait for the other fit to finish")
        self._owner = threading.get_ident()
        try:
            yield
        finally:
            self._owner = None
            self.lock.release()

    @property
    def n_params(self) -> int:
        return self.params.size

    @property
    def n_layers(self) -> int:
        return len(self.codes)

    def loss_codes(self, loss: int) -> np.ndarray:
        """The activation codes as the loss takes them: the output's LINEAR when the loss `loss`
        (a code) is computed from logits (fastnn._contract.LOSSES[loss].fused)."""
        codes = self.codes.copy()
        if _contract.LOSSES[loss].fused is not None:
            codes[-1] = _contract.LINEAR
        return codes

    def layer_outputs(self, X: np.ndarray) -> list[np.ndarray]:
        """Every layer's output A_l = f(A_(l-1) W_l + b_l) for X (n, sizes[0]), one (n, sizes[l+1])
        array per layer, through the dense layers' forward kernel."""
        outputs = [np.empty((X.shape[0], int(width)), self.dtype) for width in self.sizes[1:]]
        a = X
        for l, out in enumerate(outputs):
            ops().dense_forward(a, self.W[l], self.b[l], int(self.codes[l]), out, self.bfloat16)
            a = out
        return outputs

    def predict(self, X: np.ndarray, out: np.ndarray, rows: int = PREDICT_ROWS) -> None:
        """out = the network's output for X, `rows` rows at a time, the chunks shared by
        fastnn's pool (fastnn.threads.product_threads) when the work is large. X: (n, sizes[0]) and
        out: (n, sizes[-1]), C-contiguous, of the network's dtype."""
        threads = product_threads(self.bfloat16)
        pooled = _contract.pool_threads(threads, X.shape[0], self.sizes) > 1 and get_backend() == "cython"
        with one_thread_blas() if pooled else contextlib.nullcontext():  # each of the pool's workers: one
            ops().network_predict(self.sizes, self.codes, self.params, X, out, rows, threads, self.bfloat16)

"""scikit-learn's MLPClassifier and MLPRegressor, trained by fastnn's compiled kernels.

Change one import and a pipeline, grid search or pickled model keeps working:

    from fastnn.sklearn import MLPClassifier      # was: from sklearn.neural_network import ...

The constructors take scikit-learn's parameters with the same names, meanings and defaults, plus
`dtype` (None: float32 input stays float32, anything else is float64, as scikit-learn does;
"float32" asks for the fast path) and `precision` (None, or "bfloat16": the matrix products take
bfloat16 operands with float32 sums and float32 weights, fastnn.Sequential's precision; with
dtype None it makes the model float32). Training follows scikit-learn's algorithm step for step (the
same initialisation from `random_state`, the same shuffles, batches, L2 penalty, sample weights,
learning-rate schedules, stopping rules and attributes), but each epoch is one call of the training
step (fastnn.trainer) with the GIL released, and L-BFGS evaluates the loss and gradient with one
full-batch pass of it. L-BFGS is fastnn.lbfgs, the unbounded case of SciPy's L-BFGS-B (which
scikit-learn calls) with its direction, line search and stopping rules, without the cost of its
bounds. The fitted network is `model_`, a fastnn.Sequential: `coefs_[i]` and
`intercepts_[i]` are views of its layers' W and b.

Where fastnn differs from scikit-learn:
- Losses are computed from logits (no clipping of probabilities at eps).
- Sparse X is accepted and densified (the kernels work on dense rows).
- A training run whose loss or weights become NaN or inf stops at that epoch (scikit-learn carries
  on to max_iter): without early stopping, fit raises scikit-learn's ValueError; with it, the epoch
  gets a NaN validation score and the best weights are restored.
- For several outputs, MLPRegressor's loss_ is half the squared error summed over the outputs
  (the loss whose gradient both libraries follow); scikit-learn reports it averaged over outputs.
"""
import warnings

import numpy as np
import scipy.sparse

try:
    import sklearn  # noqa: F401
except ImportError as error:
    raise ImportError('fastnn.sklearn needs scikit-learn: pip install "fastnn[sklearn]"') from error

from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier as _SkMLPClassifier
from sklearn.neural_network import MLPRegressor as _SkMLPRegressor
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state, column_or_1d
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import type_of_target, unique_labels
from sklearn.utils.validation import check_is_fitted, validate_data
# scikit-learn's own helpers, so that parameters, weights, partial_fit's classes and L-BFGS's result
# are checked with its exact rules and messages.
from sklearn.base import _fit_context
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.multiclass import _check_partial_fit_first_call
from sklearn.utils.optimize import _check_optimize_result
from sklearn.utils.validation import _check_sample_weight

from . import _contract, lbfgs
from .backend import ops
from .layers import Dense
from .model import Sequential
from .optimizers import SGD, Adam
from .trainer import Data, Trainer

# scikit-learn's activation names -> fastnn's.
_ACTIVATIONS = {"identity": "linear", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu",
                "softmax": "softmax", "exp": "exp"}
# Output activation -> the fastnn loss computed from it (the classifier's labels are sparse).
_LOSSES = {"softmax": "sparse_categorical_crossentropy", "logistic": "binary_crossentropy",
           "identity": "mse", "exp": "poisson"}
_NON_FINITE = ("Solver produced non-finite parameter weights. The input data may contain large values "
               "and need to be preprocessed.")


def _loss_scale(out_activation, n_outputs):
    """scikit-learn's losses in units of fastnn's: its binary and Poisson losses sum over the outputs
    where fastnn averages, and its squared error is half of a sum over the outputs."""
    return {"softmax": 1.0, "logistic": float(n_outputs), "exp": float(n_outputs),
            "identity": n_outputs / 2.0}[out_activation]


class _EpochOrders:
    """The row order of each epoch: scikit-learn's shuffle(sample_idx, random_state=...) before
    every epoch, the same draws and orders. The kernels draw them from a copy of the generator's
    MT19937 state, which goes back into the generator at `close()` (RandomState's get_state and
    set_state cost as much as a few epochs' shuffles: once a fit, not once a call). NumPy's global
    generator (random_state=None), which other threads may draw from meanwhile, is not copied:
    one draw from it seeds a generator of the fit's own."""

    def __init__(self, random_state: np.random.RandomState, is_global: bool, n: int, longest: int):
        if is_global:
            random_state = np.random.RandomState(random_state.randint(np.iinfo(np.int32).max))
        self._generator = random_state
        self._name, self._key, self._pos, *self._gauss = random_state.get_state()
        self._rows = np.arange(n, dtype=np.int64)  # scikit-learn's sample_idx
        self._order = np.empty((longest, n), np.int64)
        self._before = None

    def draw(self, count: int) -> np.ndarray:
        """The orders of the next `count` epochs: (count, n) int64."""
        self._before = self._key.copy(), self._pos, self._rows
        self._pos = ops().shuffle_orders(self._key, self._pos, self._rows, self._order[:count])
        self._rows = self._order[count - 1].copy()
        return self._order[:count]

    def keep(self, ran: int) -> None:
        """Only the first `ran` epochs of the last draw ran: the generator as if only they had
        been drawn."""
        self._key, self._pos, self._rows = self._before
        if ran:
            self.draw(ran)

    def close(self) -> None:
        """Put the state the draws reached back into the generator."""
        self._generator.set_state((self._name, self._key, self._pos, *self._gauss))


class _Optimizer:
    """What scikit-learn's SGDOptimizer / AdamOptimizer keep between epochs: the learning rate (and
    its schedule), the step count, and the training step's Update, whose state buffers the
    kernels update in place."""

    def __init__(self, est, n_params, dtype):
        self.learning_rate_init = est.learning_rate_init
        lr = float(est.learning_rate_init)
        self.step = 0
        if est.solver == "adam":
            self.lr_schedule, self.power_t = "constant", 0.0
            self.update = _contract.Update(optimizer=_contract.ADAM, lr=lr, beta1=est.beta_1, beta2=est.beta_2,
                                           eps=est.epsilon, m=np.zeros(n_params, dtype), v=np.zeros(n_params, dtype))
        else:  # sgd; momentum 0 makes scikit-learn's velocity update plain gradient descent
            self.lr_schedule, self.power_t = est.learning_rate, est.power_t
            if est.momentum > 0:
                self.update = _contract.Update(
                    optimizer=_contract.NESTEROV if est.nesterovs_momentum else _contract.MOMENTUM,
                    lr=lr, momentum=est.momentum, velocity=np.zeros(n_params, dtype))
            else:
                self.update = _contract.Update(optimizer=_contract.SGD, lr=lr)

    @property
    def learning_rate(self) -> float:
        """The schedule's learning rate: the Update's, so the next epoch's kernel call reads it."""
        return self.update.lr

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        self.update.lr = float(value)

    def iteration_ends(self, time_step):
        if self.lr_schedule == "invscaling":
            self.learning_rate = float(self.learning_rate_init) / (time_step + 1) ** self.power_t

    def trigger_stopping(self, msg, verbose):
        """True to stop; the adaptive schedule divides the learning rate by 5 instead, down to 1e-6."""
        if self.lr_schedule != "adaptive" or self.learning_rate <= 1e-6:
            if verbose:
                print(msg + (" Learning rate too small." if self.lr_schedule == "adaptive" else "") + " Stopping.")
            return True
        self.learning_rate /= 5.0
        if verbose:
            print(msg + " Setting learning rate to %f" % self.learning_rate)
        return False


class _BaseMLP(BaseEstimator):
    """The training and prediction both estimators share; scikit-learn's BaseMultilayerPerceptron."""

    def _store(self, params):
        for name, value in params.items():
            if name not in ("self", "__class__"):
                setattr(self, name, value)

    # ------------------------------------------------------------------ the fastnn model

    def _dtype(self, X):
        if self.dtype is not None:
            return np.dtype(self.dtype)
        if self.precision == "bfloat16":  # float32 master weights under bfloat16 products
            return np.dtype(np.float32)
        return X.dtype if X.dtype == np.float32 else np.dtype(np.float64)

    def _as_dense(self, X, dtype):
        if scipy.sparse.issparse(X):
            X = X.toarray()
        return np.ascontiguousarray(X, dtype=dtype)

    def _build_model(self, weights, dtype):
        """model_ from [W1, b1, W2, b2, ...]; coefs_ and intercepts_ become views into it."""
        n_layers = len(weights) // 2
        names = [_ACTIVATIONS[self.activation]] * (n_layers - 1) + [_ACTIVATIONS[self.out_activation_]]
        layers = [Dense(W.shape[0], W.shape[1], name) for W, name in zip(weights[0::2], names)]
        model = Sequential(layers, seed=0, dtype=np.dtype(dtype).name, precision=self.precision)
        model.set_weights(weights)
        # model_ comes compiled with the matching fastnn optimizer, for users who go on with model_.fit
        # (fastnn's SGD takes momentum < 1). The estimator itself trains with _Optimizer's state.
        optimizer = (Adam(self.learning_rate_init, self.beta_1, self.beta_2, self.epsilon) if self.solver == "adam"
                     else SGD(self.learning_rate_init, min(self.momentum, 0.999), self.nesterovs_momentum))
        model.compile(_LOSSES[self.out_activation_], optimizer)
        self.model_ = model
        self.coefs_ = [layer.W for layer in model.dense_layers]
        self.intercepts_ = [layer.b for layer in model.dense_layers]

    def _sync_model(self, dtype=None):
        """Make model_ hold coefs_ and intercepts_ (rebuilt if they were assigned or unpickled)."""
        model = getattr(self, "model_", None)
        if (model is not None and len(model.dense_layers) == len(self.coefs_)
                and all(c is layer.W and b is layer.b
                        for c, b, layer in zip(self.coefs_, self.intercepts_, model.dense_layers))):
            return
        dtype = dtype or (model.dtype if model is not None else np.float64)
        weights = [np.asarray(a, dtype) for pair in zip(self.coefs_, self.intercepts_) for a in pair]
        self._build_model([w.reshape(w.shape[0], -1) if i % 2 == 0 else w.reshape(-1)
                           for i, w in enumerate(weights)], dtype)

    def __setstate__(self, state):
        super().__setstate__(state)
        if "model_" in state:  # pickled views come back as copies: point them at the model again
            self.coefs_ = [layer.W for layer in self.model_.dense_layers]
            self.intercepts_ = [layer.b for layer in self.model_.dense_layers]

    # ------------------------------------------------------------------ fit

    def _initialize(self, y, layer_units, dtype):
        """First fit: scikit-learn's attributes and its Glorot initialisation from random_state."""
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = y.shape[1]
        self.n_layers_ = len(layer_units)
        if not is_classifier(self):
            self.out_activation_ = "exp" if self.loss == "poisson" else "identity"
        elif self._label_binarizer.y_type_ == "multiclass":
            self.out_activation_ = "softmax"
        else:
            self.out_activation_ = "logistic"
        factor = 2.0 if self.activation == "logistic" else 6.0
        weights = []
        for fan_in, fan_out in zip(layer_units[:-1], layer_units[1:]):
            bound = np.sqrt(factor / (fan_in + fan_out))
            weights.append(self._random_state.uniform(-bound, bound, (fan_in, fan_out)))
            weights.append(self._random_state.uniform(-bound, bound, fan_out))
        self._build_model(weights, dtype)
        self._best_params = self.model_.network.params.copy()
        if self.solver in ("sgd", "adam"):
            self.loss_curve_ = []
            self._no_improvement_count = 0
            if self.early_stopping:
                self.validation_scores_ = []
                self.best_validation_score_ = -np.inf
                self.best_loss_ = None
            else:
                self.best_loss_ = np.inf
                self.validation_scores_ = None
                self.best_validation_score_ = None

    def _fit(self, X, y, sample_weight=None, incremental=False):
        hidden = self.hidden_layer_sizes
        hidden = list(hidden) if hasattr(hidden, "__iter__") else [hidden]
        if np.any(np.array(hidden) <= 0):
            raise ValueError("hidden_layer_sizes must be > 0, got %s." % hidden)
        first_pass = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)
        X, y = self._validate_input(X, y, incremental, reset=first_pass)
        dtype = self._dtype(X) if first_pass or not hasattr(self, "model_") else self.model_.dtype
        X = self._as_dense(X, dtype)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=dtype)
            if not np.any(sample_weight):  # as scikit-learn's check says it (older ones did not check)
                raise ValueError("Sample weights must contain at least one non-zero number.")
        if y.ndim == 1:
            y = y.reshape((-1, 1))
        self.n_outputs_ = y.shape[1]
        layer_units = [X.shape[1]] + hidden + [self.n_outputs_]
        self._random_state = check_random_state(self.random_state)
        if first_pass:
            self._initialize(y, layer_units, dtype)
        else:
            self._sync_model(dtype)
        if self.solver in ("sgd", "adam"):
            self._fit_stochastic(X, y, sample_weight, incremental)
        else:
            self._fit_lbfgs(Data(X, self._targets(y, dtype), sample_weight))
        return self

    def _sparse_labels(self):
        return self.out_activation_ == "softmax"

    def _targets(self, y, dtype):
        """y (n, n_outputs) -> class labels (n,) int64 for softmax, else (n, n_outputs) of dtype."""
        if self._sparse_labels():
            return np.ascontiguousarray(np.argmax(y, axis=1), np.int64)
        if self.out_activation_ == "exp" and np.any(y < 0):
            raise ValueError("Some value(s) of y are negative which is not allowed for Poisson regression.")
        return np.ascontiguousarray(y, dtype)

    def _loss_scale(self):
        return _loss_scale(self.out_activation_, self.n_outputs_)

    def _full_batch(self, data):
        """The pass of the full-batch loss (with the L2 term) and its gradient at model_'s params,
        into its grads (`loss_and_count()`): the training step on one batch of all rows, updating
        nothing."""
        return Trainer(self.model_.network, self.model_.loss_code, data, batch=data.n, l2=self.alpha,
                       loss_scale=self._loss_scale(), count_correct=False)

    def _loss_grad_lbfgs(self, packed, X, y, sample_weight, *buffers):
        """scikit-learn's hook of the same name (its test_gradient checks it against finite
        differences): loss and gradient at `packed`, the parameters in scikit-learn's order (W1,
        W2, ..., b1, b2, ...), for X and the binarized y. `buffers` (its activations, deltas and
        gradient lists) are not needed: the kernel keeps its own."""
        dtype = self.model_.dtype
        y = y.reshape(-1, 1) if y.ndim == 1 else y
        X = self._as_dense(X, dtype)
        weights = None if sample_weight is None else np.ascontiguousarray(sample_weight, dtype)
        trainer = self._full_batch(Data(X, self._targets(y, dtype), weights))
        network = self.model_.network
        slices = network.slices
        order = np.concatenate([np.arange(s.w_at, s.b_at) for s in slices] +
                               [np.arange(s.b_at, s.end) for s in slices])
        network.params[order] = packed
        loss, _ = trainer.loss_and_count()
        return loss, network.grads[order].astype(np.float64)

    def _fit_lbfgs(self, data):
        """fastnn.lbfgs (L-BFGS-B's unbounded case, as scikit-learn runs SciPy's) on the full-batch
        loss and gradient of model_'s flat parameters."""
        trainer = self._full_batch(data)
        params, grads = self.model_.network.params, self.model_.network.grads

        def loss_and_grad(x):
            params[...] = x
            loss, _ = trainer.loss_and_count()
            return loss, grads

        result = lbfgs.minimize(loss_and_grad, params, max_iter=self.max_iter, max_fun=self.max_fun, gtol=self.tol)
        self.n_iter_ = _check_optimize_result("lbfgs", result, self.max_iter)
        self.loss_ = float(result.fun)
        params[...] = result.x
        if not np.isfinite(params).all():
            raise ValueError(_NON_FINITE)

    def _fit_stochastic(self, X, y, sample_weight, incremental):
        """scikit-learn's _fit_stochastic, with runs of epochs in one call of the training step."""
        network = self.model_.network
        params = network.params
        if not incremental or not hasattr(self, "_optimizer"):
            self._optimizer = _Optimizer(self, params.size, params.dtype)
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        early_stopping = self.early_stopping
        targets = self._targets(y, params.dtype)
        if early_stopping:
            # the same split as scikit-learn's (same generator, same stratification)
            stratify = y if is_classifier(self) and self.n_outputs_ == 1 else None
            arrays = (X, targets, y) if sample_weight is None else (X, targets, y, sample_weight)
            parts = train_test_split(*arrays, random_state=self._random_state, test_size=self.validation_fraction,
                                     stratify=stratify)
            X_train, X_val, t_train, _, _, y_val = parts[:6]
            sw_train, sw_val = parts[6:8] if sample_weight is not None else (None, None)
            if X_val.shape[0] < 2:
                raise ValueError("The validation set is too small. Increase 'validation_fraction' "
                                 "or the size of your dataset.")
            if is_classifier(self):
                y_val = self._label_binarizer.inverse_transform(y_val)
            X_train = np.ascontiguousarray(X_train)
            t_train = np.ascontiguousarray(t_train)
        else:
            X_train, t_train, sw_train = X, targets, sample_weight
            X_val = y_val = sw_val = None
        train = Data(X_train, t_train, sw_train)
        n = train.n
        if self.batch_size == "auto":
            batch = min(200, n)
        else:
            if self.batch_size > n:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to be clipped")
            batch = int(np.clip(self.batch_size, 1, n))
        opt = self._optimizer
        # Epochs per kernel call: as many as can run before any decision needs Python. The
        # stopping rule's count grows by at most one per epoch, so it cannot fire before epoch
        # n_iter_no_change + 1 - count of a call: a call runs up to there and the per-epoch
        # bookkeeping then replays its epochs in order, so every rule fires at the same epoch as
        # with one call per epoch. Validation scores need the weights of each epoch, the
        # invscaling schedule a new learning rate, partial_fit one epoch: one epoch per call.
        one_at_a_time = early_stopping or incremental or opt.lr_schedule == "invscaling"
        longest = 1 if one_at_a_time else max(1, min(self.max_iter, self.n_iter_no_change + 1))
        orders = _EpochOrders(self._random_state, self.random_state is None, n, longest) if self.shuffle else None
        trainer = Trainer(network, self.model_.loss_code, train, batch, update=opt.update, l2=self.alpha,
                          loss_scale=self._loss_scale(), count_correct=False)  # scikit-learn reports no accuracy
        try:
            self.n_iter_ = 0
            while self.n_iter_ < self.max_iter:
                count = 1 if one_at_a_time else max(1, min(self.max_iter - self.n_iter_,
                                                           self.n_iter_no_change + 1 - self._no_improvement_count))
                result = trainer.epochs(count, None if orders is None else orders.draw(count), opt.step)
                opt.step = result.step
                ran = result.finished + (result.finished < count)  # the epochs that started
                if orders is not None and ran < count:
                    orders.keep(ran)
                if self._epochs_end(result, count, early_stopping, incremental, n, X_val, y_val, sw_val):
                    break
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.")
        finally:
            if orders is not None:
                orders.close()
        if early_stopping:
            params[...] = self._best_params

    def _epochs_end(self, result, count, early_stopping, incremental, n, X_val, y_val, sw_val):
        """scikit-learn's bookkeeping after each epoch, for the `count` epochs of one kernel call
        in turn; True when training stops. A call that a stop request or Ctrl-C ended raises
        KeyboardInterrupt after the epochs before the one it interrupted (the weights are those
        of its last batch)."""
        opt = self._optimizer
        if result.stopped:
            epochs = min(result.finished, count - 1)
        else:
            epochs = result.finished + (result.finished < count)  # and the non-finite one
        for e in range(epochs):
            self.n_iter_ += 1
            self.loss_ = float(result.loss[e])
            self.t_ += n
            self.loss_curve_.append(self.loss_)
            if self.verbose:
                print("Iteration %d, loss = %.8f" % (self.n_iter_, self.loss_))
            if e == result.finished:  # the kernel put back the weights from before this epoch
                if not early_stopping:
                    raise ValueError(_NON_FINITE)
                self.validation_scores_.append(np.nan)  # a diverged network scores NaN
                warnings.warn("The loss became non-finite at iteration %d; stopping with the best "
                              "weights." % self.n_iter_, ConvergenceWarning)
                return True
            self._update_no_improvement_count(early_stopping, X_val, y_val, sw_val)
            opt.iteration_ends(self.t_)
            if self._no_improvement_count > self.n_iter_no_change:
                if early_stopping:
                    msg = ("Validation score did not improve more than tol=%f for %d consecutive epochs."
                           % (self.tol, self.n_iter_no_change))
                else:
                    msg = ("Training loss did not improve more than tol=%f for %d consecutive epochs."
                           % (self.tol, self.n_iter_no_change))
                if opt.trigger_stopping(msg, self.verbose):
                    return True
                self._no_improvement_count = 0
            if incremental:
                return True
            if self.n_iter_ == self.max_iter:
                warnings.warn("Stochastic Optimizer: Maximum iterations (%d) reached and the optimization "
                              "hasn't converged yet." % self.max_iter, ConvergenceWarning)
        if result.stopped:
            raise KeyboardInterrupt
        return False

    def _update_no_improvement_count(self, early_stopping, X, y, sample_weight):
        if early_stopping:
            score = self._score(X, y, sample_weight=sample_weight)
            self.validation_scores_.append(score)
            if self.verbose:
                print("Validation score: %f" % score)
            if score < self.best_validation_score_ + self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                np.copyto(self._best_params, self.model_.network.params)
        else:
            if self.loss_curve_[-1] > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if self.loss_curve_[-1] < self.best_loss_:
                self.best_loss_ = self.loss_curve_[-1]

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the model to X (n_samples, n_features), dense or sparse, and y (n_samples,) or
        (n_samples, n_outputs); sample_weight (n_samples,) weights each row's loss."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    # ------------------------------------------------------------------ predict

    def _forward_pass_fast(self, X, check_input=True):
        """The network's output (probabilities, or the regression's values), (n_samples, n_outputs).
        As in scikit-learn, a diverged network's NaN comes back as it is (its scores are NaN);
        fastnn's own predict raises instead."""
        if check_input:
            X = validate_data(self, X, accept_sparse=["csr", "csc"], reset=False)
        self._sync_model()
        X = self._as_dense(X, self.model_.dtype)
        out = np.empty((X.shape[0], self.model_.n_out), self.model_.dtype)
        self.model_.network.predict(X, out)
        return out

    def _score_with_function(self, X, y, sample_weight, score_function):
        y_pred = self._predict(X, check_input=False)
        if np.issubdtype(y_pred.dtype, np.floating) and not np.isfinite(y_pred).all():
            return np.nan
        return score_function(y, y_pred, sample_weight=sample_weight)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


_DTYPE = {"dtype": [None, StrOptions({"float32", "float64"})], "precision": [None, StrOptions({"bfloat16"})]}


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """scikit-learn's MLPClassifier on fastnn's kernels: the same parameters, attributes and
    methods (see its documentation), plus `dtype` and the fastnn model `model_`.

    Binary and multilabel targets get a sigmoid output per label, multiclass a softmax; labels may
    be of any type. partial_fit is there for the stochastic solvers.
    """

    _parameter_constraints = {**_SkMLPClassifier._parameter_constraints, **_DTYPE}

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=0.0001,
                 batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5, max_iter=200,
                 shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1, beta_1=0.9,
                 beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000, dtype=None,
                 precision=None):
        self._store(locals())

    loss = "log_loss"  # scikit-learn's name for the classifier's loss (not a parameter)

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                             dtype=(np.float64, np.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError("warm_start can only be used where `y` has the same classes as in the "
                                     f"previous call to fit. Previously got {self.classes_}, `y` has {classes}")
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has {self.classes_}. "
                                 f"'y' has {classes}.")
        return X, self._binarized(y)

    def _binarized(self, y):
        """self._label_binarizer.transform(y) as bool (n, n_classes). A multiclass y whose labels are
        all in classes_ (which _validate_input has made sure of) is one-hot coded from its labels'
        positions directly: transform repeats scikit-learn's checks of y, which cost every fit more
        than the coding (docs/performance.md, "Full batches and L-BFGS")."""
        binarizer = self._label_binarizer
        if binarizer.y_type_ == "multiclass" and not binarizer.sparse_output and y.ndim == 1 and y.size:
            classes = binarizer.classes_
            at = np.minimum(np.searchsorted(classes, y), classes.shape[0] - 1)
            if np.array_equal(classes[at], y):
                Y = np.zeros((y.shape[0], classes.shape[0]), bool)
                Y[np.arange(y.shape[0]), at] = True
                return Y
        return binarizer.transform(y).astype(bool)

    def predict(self, X):
        """Class labels for X (n_samples, n_features): (n_samples,), or (n_samples, n_labels) multilabel."""
        check_is_fitted(self)
        return self._predict(X)

    def _predict(self, X, check_input=True):
        y_pred = self._forward_pass_fast(X, check_input=check_input)
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        return self._label_binarizer.inverse_transform(y_pred)

    def _score(self, X, y, sample_weight=None):
        return self._score_with_function(X, y, sample_weight, accuracy_score)

    def _check_solver(self):
        if self.solver not in ("sgd", "adam"):
            raise AttributeError("partial_fit is only available for stochastic optimizers. "
                                 f"{self.solver} is not stochastic.")
        return True

    @available_if(lambda est: est._check_solver())
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over X, y. classes (all labels) is required on the first call."""
        if _check_partial_fit_first_call(self, classes):
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def predict_log_proba(self, X):
        """log(predict_proba(X)), (n_samples, n_classes)."""
        y_prob = self.predict_proba(X)
        return np.log(y_prob, out=y_prob)

    def predict_proba(self, X):
        """Probability of each class, (n_samples, n_classes), columns ordered as classes_."""
        check_is_fitted(self)
        y_pred = self._forward_pass_fast(X)
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        if y_pred.ndim == 1:
            return np.vstack([1 - y_pred, y_pred]).T
        return y_pred

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    """scikit-learn's MLPRegressor on fastnn's kernels: the same parameters, attributes and methods
    (see its documentation), plus `dtype` and the fastnn model `model_`.

    loss="squared_error" (identity output) or "poisson" (exp output, y >= 0); 1-D or multi-output y.
    """

    _parameter_constraints = {**_SkMLPRegressor._parameter_constraints, **_DTYPE}

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5,
                 max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False,
                 momentum=0.9, nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1, beta_1=0.9,
                 beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000, dtype=None,
                 precision=None):
        self._store(locals())

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True, y_numeric=True,
                             dtype=(np.float64, np.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        return X, y

    def predict(self, X):
        """Predicted values for X (n_samples, n_features): (n_samples,) or (n_samples, n_outputs)."""
        check_is_fitted(self)
        return self._predict(X)

    def _predict(self, X, check_input=True):
        y_pred = self._forward_pass_fast(X, check_input=check_input)
        return y_pred.ravel() if y_pred.shape[1] == 1 else y_pred

    def _score(self, X, y, sample_weight=None):
        return self._score_with_function(X, y, sample_weight, r2_score)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over X, y (L-BFGS: one full run, as in scikit-learn)."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)


__all__ = ["MLPClassifier", "MLPRegressor"]

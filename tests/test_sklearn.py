"""fastnn.sklearn: scikit-learn's estimator contract, scikit-learn's own numbers, both backends.

scikit-learn's own test_mlp.py runs against these classes in test_sklearn_upstream.py; here:
check_estimator, equality with scikit-learn's trajectory, the two backends, and what fastnn adds
(dtype, model_, pickling of the compiled model, threads).
"""
import pickle
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")

import joblib  # noqa: E402
import scipy.sparse  # noqa: E402
from sklearn import neural_network  # noqa: E402
from sklearn.datasets import load_iris, make_multilabel_classification, make_regression  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.preprocessing import LabelBinarizer  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import fastnn  # noqa: E402
from fastnn.sklearn import MLPClassifier, MLPRegressor  # noqa: E402


@parametrize_with_checks([MLPClassifier(), MLPRegressor()])
def test_check_estimator(backend, estimator, check):
    """scikit-learn's estimator checks, every one, on the default estimators, on each backend."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


def _data(kind):
    """Small data sets of each target type: (X, y) with X scaled to [0, 1]."""
    iris = load_iris()
    X = iris.data / iris.data.max(axis=0)
    if kind == "multiclass":
        return X, iris.target
    if kind == "binary":
        return X, np.where(iris.target == 2, "virginica", "other")  # string labels
    if kind == "multilabel":
        X, Y = make_multilabel_classification(n_samples=80, n_features=5, n_classes=3, random_state=0)
        return X / X.max(), Y
    X, y = make_regression(n_samples=80, n_features=4, n_targets=2 if kind == "multioutput" else 1,
                           noise=1.0, random_state=0)
    if kind == "poisson":
        return X, np.random.default_rng(0).poisson(np.exp(0.3 * X[:, 0] + 1.0))
    return X, y / y.std()


# (kind, estimator parameters): every solver and schedule, L2, early stopping, each output type
SETUPS = {
    "multiclass-adam": ("multiclass", dict(solver="adam", learning_rate_init=0.01)),
    "binary-sgd-nesterov": ("binary", dict(solver="sgd", learning_rate_init=0.1)),
    "multilabel-sgd-invscaling": ("multilabel", dict(solver="sgd", momentum=0.5, nesterovs_momentum=False,
                                                     learning_rate="invscaling", power_t=0.3,
                                                     learning_rate_init=0.5)),
    "multiclass-sgd-adaptive": ("multiclass", dict(solver="sgd", momentum=0.0, learning_rate="adaptive",
                                                   tol=1e-2, n_iter_no_change=2)),
    "multiclass-lbfgs": ("multiclass", dict(solver="lbfgs", alpha=1e-3)),
    "binary-early-stopping": ("binary", dict(solver="adam", early_stopping=True, learning_rate_init=0.01,
                                             n_iter_no_change=3)),
    "regression-adam": ("regression", dict(solver="adam", learning_rate_init=0.01, batch_size=16)),
    # tol=0: fastnn reports another multi-output loss (test_multioutput_loss), which must not move the stop
    "multioutput-adam": ("multioutput", dict(solver="adam", activation="tanh", tol=0.0)),
    "poisson-sgd": ("poisson", dict(loss="poisson", solver="sgd", learning_rate_init=0.01)),
}


def _fit(module, kind, params, sample_weight=None, max_iter=25, **extra):
    X, y = _data(kind)
    estimator_class = module.MLPRegressor if kind in ("regression", "multioutput", "poisson") else module.MLPClassifier
    estimator = estimator_class(hidden_layer_sizes=(7, 5), activation=params.pop("activation", "logistic"),
                                random_state=0, max_iter=max_iter, alpha=params.pop("alpha", 0.01),
                                **params, **extra)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        estimator.fit(X, y, sample_weight=sample_weight)
    return estimator, X, y


def _assert_same_training(ours, theirs, rtol):
    assert ours.n_iter_ == theirs.n_iter_
    assert ours.t_ == theirs.t_
    if ours.n_outputs_ == 1 or isinstance(ours, MLPClassifier):
        np.testing.assert_allclose(ours.loss_, theirs.loss_, rtol=rtol)
        if hasattr(theirs, "loss_curve_"):
            np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=rtol)
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol)
    assert ours.out_activation_ == theirs.out_activation_


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("setup", SETUPS, ids=SETUPS.keys())
def test_same_training_as_scikit_learn(backend, setup, weighted):
    """The same initialisation, shuffles, batches, loss, penalty, weights and schedules: in float64
    fastnn reproduces scikit-learn's loss curve, iterations and weights on both backends."""
    kind, params = SETUPS[setup]
    n = len(_data(kind)[0])
    sample_weight = np.random.default_rng(1).uniform(0.2, 2.0, n) if weighted else None
    ours, X, _ = _fit(fastnn.sklearn, kind, dict(params), sample_weight)
    theirs, _, _ = _fit(neural_network, kind, dict(params), sample_weight)
    # lbfgs amplifies rounding over its line searches; the stochastic solvers stay within 1e-9
    _assert_same_training(ours, theirs, rtol=1e-5 if params["solver"] == "lbfgs" else 1e-9)
    if hasattr(theirs, "validation_scores_") and theirs.validation_scores_ is not None:
        np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_)
    if kind in ("binary", "multiclass"):
        np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
    else:
        np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("early_stopping", [False, True], ids=["", "early_stopping"])
def test_the_generator_ends_where_scikit_learns_does(backend, early_stopping):
    """A RandomState given as random_state is left where scikit-learn leaves it: the initial
    weights, the validation split and every epoch's shuffle drawn from it, in turn."""
    X, y = _data("multiclass")
    states = []
    for module in (fastnn.sklearn, neural_network):
        generator = np.random.RandomState(3)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            module.MLPClassifier(hidden_layer_sizes=(5,), max_iter=30, random_state=generator,
                                 early_stopping=early_stopping).fit(X, y)
        states.append(generator.get_state())
    assert states[0][2] == states[1][2]
    np.testing.assert_array_equal(states[0][1], states[1][1])


def test_an_unseeded_fit_shuffles_with_a_generator_of_its_own(backend):
    """random_state=None: the shuffles come from a generator seeded by one draw from NumPy's global
    one, so the global generator moves as much for 3 epochs as for 30 (other threads may draw from
    it during the fit: a copy of its state put back at the end would repeat their numbers)."""
    X, y = _data("multiclass")
    states = []
    for epochs in (3, 30):
        np.random.seed(11)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            MLPClassifier(hidden_layer_sizes=(5,), max_iter=epochs, tol=0.0).fit(X, y)
        states.append(np.random.get_state())
    assert states[0][2] == states[1][2]
    np.testing.assert_array_equal(states[0][1], states[1][1])
    np.random.seed(11)
    assert np.random.get_state()[2] != states[0][2]  # the fit drew from it


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_multioutput_loss(backend, weighted):
    """For several outputs fastnn reports the loss whose gradient both libraries follow: half the
    squared error summed over the outputs, weighted mean over rows, plus alpha/2 |W|² / sum(w)
    (scikit-learn averages the first term over the outputs)."""
    X, Y = _data("multioutput")
    w = np.random.default_rng(2).uniform(0.5, 2.0, len(X)) if weighted else np.ones(len(X))
    est, _, _ = _fit(fastnn.sklearn, "multioutput", dict(solver="lbfgs"), sample_weight=w if weighted else None)
    errors = 0.5 * ((est.predict(X) - Y) ** 2).sum(axis=1)
    penalty = 0.5 * est.alpha * sum((W ** 2).sum() for W in est.coefs_) / w.sum()
    np.testing.assert_allclose(est.loss_, (w * errors).sum() / w.sum() + penalty, rtol=1e-9)


def test_partial_fit_continues_like_fit(backend):
    """n calls of partial_fit are n epochs of fit: the optimizer state carries over between calls."""
    X, y = _data("multiclass")
    fitted, _, _ = _fit(fastnn.sklearn, "multiclass", dict(solver="sgd", learning_rate_init=0.1), max_iter=8,
                        tol=0.0)
    stepped = MLPClassifier(hidden_layer_sizes=(7, 5), activation="logistic", random_state=0, alpha=0.01,
                            solver="sgd", learning_rate_init=0.1)
    for _ in range(8):
        stepped.partial_fit(X, y, classes=np.unique(y))
    for a, b in zip(fitted.coefs_, stepped.coefs_):
        np.testing.assert_allclose(a, b, rtol=1e-12)


@pytest.mark.parametrize("dtype, requested, expected", [
    (np.float64, None, np.float64), (np.float32, None, np.float32), (np.int64, None, np.float64),
    (np.float64, "float32", np.float32), (np.float32, "float64", np.float64)])
def test_dtype(backend, dtype, requested, expected):
    """float32 input stays float32 (as in scikit-learn), anything else is float64; dtype= overrides."""
    X, y = _data("multiclass")
    X = np.round(X * 10).astype(dtype)
    est = MLPClassifier(hidden_layer_sizes=(6,), max_iter=60, learning_rate_init=0.01, random_state=0,
                        dtype=requested)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    assert est.model_.dtype == expected
    assert all(c.dtype == expected for c in est.coefs_ + est.intercepts_)
    assert est.predict_proba(X).dtype == expected
    assert est.score(X, y) > 0.5


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_float32_learns_like_float64(backend, solver):
    """float32 weights under SciPy's float64 L-BFGS too: the same accuracy as float64."""
    X, y = _data("multiclass")
    scores = []
    for dtype in ("float32", "float64"):
        est, _, _ = _fit(fastnn.sklearn, "multiclass", dict(solver=solver, learning_rate_init=0.01), max_iter=200,
                         dtype=dtype)
        assert est.coefs_[0].dtype == dtype
        scores.append(est.score(X, y))
    assert scores[0] > 0.9 and abs(scores[0] - scores[1]) <= 0.02


@pytest.mark.parametrize("labels", [np.array([3, 1, 2, 1, 3, 0]), np.array(["b", "a", "c", "a", "c", "b"], object),
                                    np.array([1.0, 3.0, 2.0, 1.0, 3.0, 2.0])], ids=["int", "str", "float"])
def test_the_multiclass_targets_are_label_binarizers(labels):
    """_binarized's direct one-hot coding of a multiclass y equals LabelBinarizer.transform, for a
    y with all classes and for one with a subset of them (partial_fit with classes=...), and a
    label outside classes_ takes transform's own path (a zero row)."""
    est = fastnn.sklearn.MLPClassifier()
    est._label_binarizer = LabelBinarizer().fit(labels)
    for y in (labels, labels[[1, 3, 1]], np.concatenate([labels, labels[:1]])):
        np.testing.assert_array_equal(est._binarized(y), est._label_binarizer.transform(y).astype(bool))
    unseen = labels.copy()
    unseen[0] = "z" if labels.dtype == object else 99
    np.testing.assert_array_equal(est._binarized(unseen), est._label_binarizer.transform(unseen).astype(bool))
    assert not est._binarized(unseen)[0].any()


def test_bad_dtype_is_rejected():
    with pytest.raises(ValueError, match="dtype"):
        MLPClassifier(dtype="float16").fit([[0.0], [1.0]], [0, 1])


def test_model_and_coefs_are_one_set_of_weights(backend):
    est, X, _ = _fit(fastnn.sklearn, "multiclass", dict(solver="adam"))
    assert isinstance(est.model_, fastnn.Sequential)
    assert [layer.activation for layer in est.model_.layers] == ["sigmoid", "sigmoid", "softmax"]
    np.testing.assert_allclose(est.model_.predict(X), est.predict_proba(X))
    assert est.coefs_[0] is est.model_.layers[0].W
    est.coefs_[1][...] = 0.0  # in place: the model sees it
    assert not est.model_.layers[1].W.any()


def test_assigned_coefs_are_used(backend):
    """As scikit-learn's users (and its test_fit) do: assigning coefs_ changes what predict computes."""
    est, X, _ = _fit(fastnn.sklearn, "regression", dict(solver="lbfgs"))
    est.coefs_ = [2 * c for c in est.coefs_]
    est.intercepts_ = [np.zeros_like(b) for b in est.intercepts_]
    hidden = X
    for W in est.coefs_[:-1]:
        hidden = 1 / (1 + np.exp(-hidden @ W))  # logistic hidden layers, zero biases
    np.testing.assert_allclose(est.predict(X), (hidden @ est.coefs_[-1]).ravel(), rtol=1e-10)
    assert est.coefs_[0] is est.model_.layers[0].W  # and they are the model's weights again


@pytest.mark.parametrize("module", [pickle, joblib], ids=["pickle", "joblib"])
def test_pickled_estimators_predict_the_same_and_keep_training(backend, tmp_path, module):
    est, X, y = _fit(fastnn.sklearn, "multiclass", dict(solver="sgd", learning_rate_init=0.1))
    with open(tmp_path / "est.pkl", "wb") as f:
        module.dump(est, f)
    with open(tmp_path / "est.pkl", "rb") as f:
        copy = module.load(f)
    np.testing.assert_array_equal(copy.predict_proba(X), est.predict_proba(X))
    assert copy.coefs_[0] is copy.model_.layers[0].W  # views into the unpickled model again
    copy.partial_fit(X, y)  # the optimizer state travelled too: the same step as the original's
    est.partial_fit(X, y)
    np.testing.assert_array_equal(copy.predict_proba(X), est.predict_proba(X))


def test_pipeline_with_the_import_changed(backend, tmp_path):
    """The one-import change: a scaler + MLP pipeline fits, scores, pickles and predicts the same."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = _data("multiclass")
    pipe = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(8,), max_iter=300, learning_rate_init=0.01,
                                                                random_state=0))
    pipe.fit(X, y)
    assert pipe.score(X, y) > 0.9
    with open(tmp_path / "pipe.joblib", "wb") as f:
        joblib.dump(pipe, f)
    with open(tmp_path / "pipe.joblib", "rb") as f:
        loaded = joblib.load(f)
    np.testing.assert_array_equal(loaded.predict_proba(X), pipe.predict_proba(X))


def test_sparse_input_equals_dense(backend):
    X, y = _data("multiclass")
    dense, _, _ = _fit(fastnn.sklearn, "multiclass", dict(solver="adam"))
    sparse = MLPClassifier(**dense.get_params())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sparse.fit(scipy.sparse.csr_matrix(X), y)
    np.testing.assert_allclose(sparse.predict_proba(scipy.sparse.csr_matrix(X)), dense.predict_proba(X))


def test_dataframe_feature_names(backend):
    pd = pytest.importorskip("pandas")
    X, y = _data("multiclass")
    frame = pd.DataFrame(X, columns=["sepal_l", "sepal_w", "petal_l", "petal_w"])
    est = MLPClassifier(hidden_layer_sizes=(5,), max_iter=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(frame, y)
    assert list(est.feature_names_in_) == list(frame.columns)
    assert est.n_features_in_ == 4


def test_poisson_rejects_negative_targets():
    with pytest.raises(ValueError, match="negative"):
        MLPRegressor(loss="poisson").fit([[0.0], [1.0]], [1.0, -1.0])


def test_bad_parameters_raise_scikit_learns_errors():
    with pytest.raises(ValueError, match="'solver' parameter of MLPClassifier must be"):
        MLPClassifier(solver="newton").fit([[0.0], [1.0]], [0, 1])
    with pytest.raises(ValueError, match="'alpha' parameter of MLPRegressor must be"):
        MLPRegressor(alpha=-1.0).fit([[0.0], [1.0]], [0.0, 1.0])


def test_threaded_grid_search_equals_sequential(backend):
    """Fits in two threads share the kernels without sharing state: the same scores as one by one."""
    X, y = _data("multiclass")
    grid = {"hidden_layer_sizes": [(4,), (8,)], "alpha": [1e-4, 1e-1]}
    scores = []
    for n_jobs in (1, 2):
        search = GridSearchCV(MLPClassifier(max_iter=30, random_state=0, learning_rate_init=0.01), grid, cv=2,
                              n_jobs=n_jobs)
        with joblib.parallel_config(backend="threading"), warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            search.fit(X, y)
        scores.append(search.cv_results_["mean_test_score"])
    np.testing.assert_array_equal(scores[0], scores[1])


def test_onnx_export_of_the_estimator_model(backend, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    import fastnn.onnx

    est, X, _ = _fit(fastnn.sklearn, "multiclass", dict(solver="adam"))
    fastnn.onnx.export(est.model_, tmp_path / "est.onnx")
    session = ort.InferenceSession(str(tmp_path / "est.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(["output"], {"input": X.astype(est.model_.dtype)})[0]
    np.testing.assert_allclose(got, est.predict_proba(X), rtol=1e-10, atol=1e-12)


def test_missing_scikit_learn_names_the_extra(monkeypatch):
    import sys

    monkeypatch.delitem(sys.modules, "fastnn.sklearn")
    monkeypatch.setitem(sys.modules, "sklearn", None)  # makes `import sklearn` raise ImportError
    with pytest.raises(ImportError, match=r'pip install "fastnn\[sklearn\]"'):
        import fastnn.sklearn  # noqa: F401


def test_import_fastnn_does_not_import_scikit_learn():
    import subprocess
    import sys

    code = "import sys, fastnn; print('sklearn' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/")
    assert result.stdout.strip() == "False"

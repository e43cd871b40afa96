"""ONNX export: onnxruntime gives what predict gives, for every activation, loss, dtype and batch size;
the file is checked, written atomically, and bad models get clear errors."""
import importlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import fastnn as fnn  # noqa: E402
import fastnn.onnx as fnn_onnx  # noqa: E402
from fastnn import activations  # noqa: E402

RTOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-10}
# An output that cancels to near 0 keeps the rounding of its terms, which reach ~10 here (a float32
# rounding of 10 is ~1e-6, and Gemm sums in another order than fastnn): an absolute floor.
ATOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}
ALL_ACTIVATIONS = sorted(activations.CODES)  # a new fastnn activation is tested here automatically


def session(path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # a shared 2-core machine; the shapes are tiny
    return ort.InferenceSession(os.fspath(path), options, providers=["CPUExecutionProvider"])


def run(sess, X):
    return sess.run([fnn_onnx.OUTPUT_NAME], {fnn_onnx.INPUT_NAME: X})[0]


def assert_matches_predict(sess, model, X):
    expected = model.predict(X)
    got = run(sess, X)
    assert got.dtype == model.dtype and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=RTOL[model.dtype], atol=ATOL[model.dtype])


def randomize(model, rng, size=1.0):
    """Random weights and, above all, non-zero biases (init leaves them 0, which hides a lost bias)."""
    model.set_weights([rng.uniform(-size, size, w.shape) for w in model.get_weights()])


def inputs(rng, rows, n_in, dtype):
    return (2.0 * rng.standard_normal((rows, n_in))).astype(dtype)


@pytest.mark.parametrize("activation", ALL_ACTIVATIONS)
def test_every_activation_as_hidden_and_output_layer(backend, dtype, activation, tmp_path):
    rng = np.random.default_rng(0)
    model = fnn.Sequential([fnn.Dense(4, 6, activation), fnn.Dense(6, 5, activation),
                            fnn.Dense(5, 3, activation)], seed=0, dtype=dtype.name)
    # exp(exp(exp(.))) of unit weights reaches 1e16, where exp turns float32's rounding of its
    # argument into a relative error of |z| eps: smaller weights keep the comparison meaningful.
    randomize(model, rng, size=0.3 if activation == "exp" else 1.0)
    fnn_onnx.export(model, tmp_path / "m.onnx")
    X = inputs(rng, 64, 4, dtype)
    assert_matches_predict(session(tmp_path / "m.onnx"), model, X)


@pytest.mark.parametrize("loss, output", [
    ("binary_crossentropy", "sigmoid"),
    ("categorical_crossentropy", "softmax"),
    ("sparse_categorical_crossentropy", "softmax"),
    *[("mse", name) for name in ALL_ACTIVATIONS],
])
def test_trained_model_with_each_loss(backend, dtype, loss, output, tmp_path):
    """Losses work from logits, but predict (and so the graph) applies the output activation."""
    rng = np.random.default_rng(1)
    n_out = 3
    X = inputs(rng, 40, 4, dtype)
    if loss == "sparse_categorical_crossentropy":
        y = rng.integers(0, n_out, 40)
    elif loss == "categorical_crossentropy":
        y = np.eye(n_out)[rng.integers(0, n_out, 40)]
    elif loss == "binary_crossentropy":
        y = rng.integers(0, 2, (40, n_out))  # multi-label: one sigmoid per output
    else:
        y = rng.uniform(0, 1, (40, n_out))
    model = fnn.Sequential([fnn.Dense(4, 8, "tanh"), fnn.Dense(8, n_out, output)], seed=0, dtype=dtype.name)
    model.compile(loss, fnn.Adam(lr=0.01))
    model.fit(X, y, epochs=5, batch_size=8, verbose=0)
    fnn_onnx.export(model, tmp_path / "m.onnx")
    sess = session(tmp_path / "m.onnx")
    assert_matches_predict(sess, model, X)
    got = run(sess, X)
    if output == "softmax":
        np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=RTOL[dtype])
    if output == "sigmoid":
        assert np.all((got > 0) & (got < 1))


def test_one_file_serves_any_batch_size(backend, dtype, tmp_path):
    rng = np.random.default_rng(2)
    model = fnn.Sequential([fnn.Dense(3, 5, "relu"), fnn.Dense(5, 2, "softmax")], seed=0, dtype=dtype.name)
    randomize(model, rng)
    path = tmp_path / "m.onnx"
    fnn_onnx.export(model, path)
    graph = onnx.load(path).graph
    for value, width in ((graph.input[0], 3), (graph.output[0], 2)):
        batch, features = value.type.tensor_type.shape.dim
        assert batch.dim_param == "batch" and not batch.HasField("dim_value")  # symbolic, not fixed
        assert features.dim_value == width
    sess = session(path)
    for rows in (1, 2, 17, 1500):  # 1500: more than predict's 1024-row chunk
        assert_matches_predict(sess, model, inputs(rng, rows, 3, dtype))


def test_graph_is_checked_typed_and_named(dtype, tmp_path):
    model = fnn.Sequential([fnn.Dense(3, 4, "sigmoid"), fnn.Dense(4, 4), fnn.Dense(4, 2, "softmax")],
                           seed=0, dtype=dtype.name)
    path = tmp_path / "m.onnx"
    fnn_onnx.export(model, path)
    proto = onnx.load(path)
    onnx.checker.check_model(proto, full_check=True)
    elem = onnx.helper.np_dtype_to_tensor_dtype(dtype)
    assert [i.name for i in proto.graph.input] == ["input"]
    assert [o.name for o in proto.graph.output] == ["output"]
    assert proto.graph.input[0].type.tensor_type.elem_type == elem
    assert proto.graph.output[0].type.tensor_type.elem_type == elem
    assert all(init.data_type == elem for init in proto.graph.initializer)
    # One Gemm per layer, the activation after it; a linear layer adds nothing.
    assert [n.op_type for n in proto.graph.node] == ["Gemm", "Sigmoid", "Gemm", "Gemm", "Softmax"]


def test_leaky_relu_uses_fastnns_slope(dtype, tmp_path):
    model = fnn.Sequential([fnn.Dense(1, 1, "leaky_relu")], dtype=dtype.name)
    model.set_weights([np.ones((1, 1)), np.zeros(1)])
    fnn_onnx.export(model, tmp_path / "m.onnx")
    got = run(session(tmp_path / "m.onnx"), np.array([[-3.0], [2.0]], dtype))
    np.testing.assert_array_equal(got, np.array([[-3.0 * dtype.type(activations.LEAKY_SLOPE)], [2.0]], dtype))


def test_failed_export_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"the previous model")
    model = fnn.Sequential([fnn.Dense(2, 1, "sigmoid")], seed=0)

    def disk_full(fd):
        raise OSError("no space left on device")

    monkeypatch.setattr(fnn_onnx.os, "fsync", disk_full)  # fails after the bytes went to the temp file
    with pytest.raises(OSError, match="no space"):
        fnn_onnx.export(model, path)
    with pytest.raises(TypeError):
        fnn_onnx.export("not a model", path)
    assert path.read_bytes() == b"the previous model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]  # no temp file left behind


def test_export_replaces_an_existing_file(tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"old")
    fnn_onnx.export(fnn.Sequential([fnn.Dense(2, 1)], seed=0), str(path))
    onnx.checker.check_model(onnx.load(path))


class _Estimator:
    """Looks like a scikit-learn estimator (fit, get_params), fitted or not."""

    def fit(self, X, y):
        return self

    def get_params(self, deep=True):
        return {}


def test_not_a_sequential_is_a_type_error(tmp_path):
    path = tmp_path / "m.onnx"
    with pytest.raises(TypeError, match="model must be a fastnn.Sequential, got Dense"):
        fnn_onnx.export(fnn.Dense(2, 1), path)
    with pytest.raises(TypeError, match="got NoneType"):
        fnn_onnx.export(None, path)
    unfitted = _Estimator()
    with pytest.raises(TypeError, match="must be fitted first, then pass est.model_"):
        fnn_onnx.export(unfitted, path)
    fitted = _Estimator()
    fitted.model_ = fnn.Sequential([fnn.Dense(2, 1)])
    with pytest.raises(TypeError, match=r"pass its network, est\.model_"):
        fnn_onnx.export(fitted, path)
    assert not path.exists()


def test_activation_without_onnx_mapping_is_named(tmp_path, monkeypatch):
    model = fnn.Sequential([fnn.Dense(2, 3, "relu"), fnn.Dense(3, 1)], seed=0)
    # An activation fastnn might gain later without an ONNX builder for it.
    monkeypatch.setattr(model.layers[1], "activation", "swish")
    with pytest.raises(ValueError, match=r"model\.dense_layers\[1\] has activation 'swish'.*supported"):
        fnn_onnx.export(model, tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_non_finite_weights_are_refused(tmp_path):
    model = fnn.Sequential([fnn.Dense(2, 3, "relu"), fnn.Dense(3, 1)], seed=0)
    model.network.b[1][0] = np.nan  # set_weights refuses NaN; reach the buffer as a bug might
    with pytest.raises(ValueError, match=r"model\.dense_layers\[1\] has NaN or inf weights"):
        fnn_onnx.export(model, tmp_path / "m.onnx")


def test_every_fastnn_activation_has_a_builder():
    assert set(activations.CODES) <= set(fnn_onnx.ACTIVATIONS)


def test_missing_onnx_names_the_extra(monkeypatch):
    monkeypatch.delitem(sys.modules, "fastnn.onnx")
    monkeypatch.setitem(sys.modules, "onnx", None)  # makes `import onnx` raise ImportError
    with pytest.raises(ImportError, match=r'pip install "fastnn\[onnx\]"'):
        importlib.import_module("fastnn.onnx")


def test_import_fastnn_does_not_import_onnx(tmp_path):
    env = dict(os.environ)
    package_parent = str(Path(fnn.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([package_parent] + [p for p in [env.get("PYTHONPATH")] if p])
    code = ("import sys, fastnn\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('onnx', 'onnxruntime') or m == 'fastnn.onnx'))")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_dropout_is_left_out_of_the_deployed_graph(backend, tmp_path):
    """Dropout acts only while training: the exported network is the Dense layers, and matches
    predict after a fit that used the masks."""
    rng = np.random.default_rng(4)
    X = inputs(rng, 32, 3, np.float32)
    model = fnn.Sequential([fnn.Dropout(0.2), fnn.Dense(3, 8, "relu"), fnn.Dropout(0.5), fnn.Dense(8, 2, "softmax")],
                           seed=0)
    model.compile("sparse_categorical_crossentropy", fnn.Adam(learning_rate=0.01))
    model.fit(X, rng.integers(0, 2, 32), epochs=3, verbose=0)
    fnn_onnx.export(model, tmp_path / "m.onnx")
    assert_matches_predict(session(tmp_path / "m.onnx"), model, X)

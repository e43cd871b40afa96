"""ONNX export: a trained fastnn.Sequential as an ONNX graph, for runtimes outside Python/fastnn.

    import fastnn.onnx
    fastnn.onnx.export(model, "model.onnx")          # a fastnn.Sequential
    fastnn.onnx.export(est.model_, "model.onnx")     # a fitted fastnn.sklearn estimator's network

The graph computes exactly what `model.predict` returns: per Dense layer one Gemm (X @ W + b), then
the layer's activation. Its input is named "input", (batch, n_in); its output "output",
(batch, n_out); both in the model's dtype (float32 or float64), the batch dimension symbolic.

Needs the optional extra: pip install "fastnn[onnx]". `import fastnn` never imports this module.
"""
import os
from typing import Callable, Optional

import numpy as np

try:
    import onnx
    from onnx import TensorProto, helper, numpy_helper
except ImportError as exc:  # the extra is missing: say how to get it
    raise ImportError('fastnn.onnx needs the onnx package: pip install "fastnn[onnx]"') from exc

from . import __version__, activations
from .model import Sequential
from .atomic import write_atomically

INPUT_NAME = "input"
OUTPUT_NAME = "output"
# Opset 13 (IR version 7) has every op used here with double support and Softmax over one axis;
# an old opset keeps the file loadable by older runtimes (onnxruntime >= 1.8).
OPSET = 13
IR_VERSION = 7

_ELEM_TYPE = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE}

# An activation builder: (Z name, output name, dtype) -> the nodes computing output = f(Z).
Builder = Callable[[str, str, np.dtype], list]


def _unary(op: str, **attrs) -> Builder:
    return lambda z, out, dtype: [helper.make_node(op, [z], [out], **attrs)]


def _leaky_relu(z: str, out: str, dtype: np.dtype) -> list:
    slope = activations.LEAKY_SLOPE
    if dtype == np.float32:
        # LeakyRelu's alpha attribute is a float32: the same number the float32 kernels use.
        return [helper.make_node("LeakyRelu", [z], [out], alpha=slope)]
    # In float64 that attribute would be 0.009999999776..., off by 2e-9 relative: spell out
    # where(z > 0, z, z * slope) with a double constant, as the kernels compute it.
    return [
        helper.make_node("Constant", [], [f"{out}_slope"],
                         value=numpy_helper.from_array(np.array(slope, dtype), f"{out}_slope")),
        helper.make_node("Constant", [], [f"{out}_zero"],
                         value=numpy_helper.from_array(np.array(0, dtype), f"{out}_zero")),
        helper.make_node("Mul", [z, f"{out}_slope"], [f"{out}_scaled"]),
        helper.make_node("Greater", [z, f"{out}_zero"], [f"{out}_positive"]),
        helper.make_node("Where", [f"{out}_positive", z, f"{out}_scaled"], [out]),
    ]


# Activation name (fastnn.activations.CODES) -> ONNX nodes. None: linear, the Gemm's output as is.
ACTIVATIONS: dict[str, Optional[Builder]] = {
    "linear": None,
    "sigmoid": _unary("Sigmoid"),
    "relu": _unary("Relu"),
    "tanh": _unary("Tanh"),
    "leaky_relu": _leaky_relu,
    "softmax": _unary("Softmax", axis=-1),  # over the last axis, per row
    "exp": _unary("Exp"),  # the log link: a Poisson regression's output
}


def _check_model(model) -> None:
    """TypeError/ValueError, naming the problem, for anything export cannot write."""
    if not isinstance(model, Sequential):
        hint = ""
        if isinstance(getattr(model, "model_", None), Sequential):
            hint = "; for a fastnn.sklearn estimator pass its network, est.model_"
        elif hasattr(model, "fit") and hasattr(model, "get_params"):
            hint = "; a fastnn.sklearn estimator must be fitted first, then pass est.model_"
        raise TypeError(f"model must be a fastnn.Sequential, got {type(model).__name__}{hint}")
    for i, layer in enumerate(model.dense_layers):
        if layer.activation not in ACTIVATIONS:
            raise ValueError(f"model.dense_layers[{i}] has activation {layer.activation!r}, which has no ONNX "
                             f"mapping in fastnn.onnx (supported: {sorted(ACTIVATIONS)})")
        if not (np.all(np.isfinite(layer.W)) and np.all(np.isfinite(layer.b))):
            raise ValueError(f"model.dense_layers[{i}] has NaN or inf weights: nothing to deploy")


def to_onnx(model: Sequential) -> onnx.ModelProto:
    """The ONNX model of `model` (checked with onnx.checker.check_model), without writing a file.

    Layer i becomes Gemm(input or a{i-1}, W{i}, b{i}) -> z{i}, then its activation -> a{i}
    (the last layer writes "output"); W{i} (n_in, n_out) and b{i} (n_out,) are initializers.
    """
    _check_model(model)
    dtype = model.dtype
    nodes, weights = [], []
    x = INPUT_NAME
    for i, layer in enumerate(model.dense_layers):
        out = OUTPUT_NAME if i == len(model.dense_layers) - 1 else f"a{i}"
        build = ACTIVATIONS[layer.activation]
        z = out if build is None else f"z{i}"
        weights += [numpy_helper.from_array(layer.W.copy(), f"W{i}"),
                    numpy_helper.from_array(layer.b.copy(), f"b{i}")]
        nodes.append(helper.make_node("Gemm", [x, f"W{i}", f"b{i}"], [z], name=f"dense_{i}"))
        if build is not None:
            nodes += build(z, out, dtype)
        x = out
    elem = _ELEM_TYPE[dtype]
    graph = helper.make_graph(
        nodes, "fastnn_sequential",
        inputs=[helper.make_tensor_value_info(INPUT_NAME, elem, ["batch", model.n_in])],
        outputs=[helper.make_tensor_value_info(OUTPUT_NAME, elem, ["batch", model.n_out])],
        initializer=weights)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="fastnn", producer_version=__version__,
                              doc_string=repr(model))
    proto.ir_version = IR_VERSION
    onnx.checker.check_model(proto, full_check=True)
    return proto


def export(model: Sequential, path) -> None:
    """Write `model` to `path` as an ONNX file whose output equals `model.predict(X)`.

    model: a fastnn.Sequential of Dense layers, float32 or float64, any activation fastnn has
        (linear, sigmoid, relu, tanh, leaky_relu with fastnn's slope, softmax over the last axis,
        exp).
        The output activation is always applied, as predict applies it (probabilities for
        sigmoid/softmax outputs, even though the losses are computed from logits). For a fitted
        fastnn.sklearn.MLPClassifier/MLPRegressor pass `est.model_`: the graph then gives what
        `est.model_.predict` gives (the classifier's probabilities, not its labels).
    path: str or os.PathLike. The graph's input "input" is (batch, n_in), its output "output"
        (batch, n_out), both in the model's dtype, with a symbolic batch dimension.

    The file is written to a temporary file in the same folder and then renamed over `path`, so a
    failed export leaves an existing file untouched. TypeError if model is not a Sequential,
    ValueError for an activation without an ONNX mapping or non-finite weights.
    """
    proto = to_onnx(model)  # every check happens before the file system is touched
    data = proto.SerializeToString()
    write_atomically(os.fspath(path), lambda f: f.write(data))

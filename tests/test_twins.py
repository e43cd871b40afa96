"""fastnn._kernels and fastnn._fallback are twins: same functions, same parameters, same results,
and fastnn/_kernels.pyi declares exactly those functions. The `both_backends` fixture skips these
tests when the extension is not built, and fails them when FASTNN_REQUIRE_EXTENSION=1."""
import ast
import inspect
import re
from pathlib import Path

import numpy as np
import pytest

import fastnn
from fastnn import _fallback, activations

# Kernels that take an activation code; the twins are compared for every code.
TAKES_ACTIVATION = {"activate", "activation_grad", "dense_forward", "dense_backward", "train_epochs", "step_path",
                    "network_predict"}
SHAPES = [(1, 1, 1), (5, 4, 3), (33, 17, 65)]  # (batch, n_in, n_out)


def public_functions(module):
    """The public functions defined in `module` itself or, for a package, in its files (not imports
    such as np, nor constants)."""
    return {name: obj for name, obj in vars(module).items()
            if callable(obj) and not name.startswith("_") and not inspect.isclass(obj)
            and getattr(obj, "__module__", "").split(".")[:2] == module.__name__.split(".")}


def split_top_level(text):
    """Split at the commas that are not inside brackets ("double[:, ::1] X, int a" -> 2 parts)."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += char in "([{"
        depth -= char in ")]}"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [p.strip() for p in parts + [current] if p.strip()]


def parameters(func):
    """[(name, has a default)] of a Python function, or a Cython one (binding=True, Cython 3's
    default, gives it an inspect.signature; otherwise read __text_signature__ or the signature
    embedsignature puts on the docstring's first line, which for a fused function is only its
    dispatcher's)."""
    try:
        return [(p.name, p.default is not p.empty) for p in inspect.signature(func).parameters.values()]
    except (TypeError, ValueError):
        pass
    text = getattr(func, "__text_signature__", None) or (func.__doc__ or "").split("\n", 1)[0]
    inside = text[text.index("(") + 1:text.rindex(")")]
    result = []
    for part in split_top_level(inside):
        if part.startswith("$") or part in ("/", "*"):
            continue
        declaration, has_default, _ = part.partition("=")
        declaration = re.sub(r"\s+(not|or)\s+None\s*$", "", declaration)  # "double[::1] x not None"
        result.append((re.findall(r"\w+", declaration)[-1], bool(has_default)))
    return result


def test_same_public_functions(both_backends):
    compiled, fallback = (set(public_functions(m)) for m in (both_backends["cython"], _fallback))
    assert compiled == fallback, (f"only in _kernels: {sorted(compiled - fallback)}; "
                                  f"only in _fallback: {sorted(fallback - compiled)}")


def test_same_parameters(both_backends):
    compiled = public_functions(both_backends["cython"])
    for name, func in public_functions(_fallback).items():
        if name in compiled:  # a missing function is test_same_public_functions' report
            assert parameters(compiled[name]) == parameters(func), f"{name}: (parameter, has default)"


def test_pyi_declares_the_contract():
    """_kernels.pyi (parsed with ast) declares each public function of _fallback, with its
    parameter names in order, and nothing else (several @overload stubs of one name are fine)."""
    path = Path(fastnn.__file__).parent / "_kernels.pyi"
    assert path.is_file(), f"{path} is missing"
    declared = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_"):
            args = node.args
            declared.setdefault(node.name, []).append([a.arg for a in args.posonlyargs + args.args + args.kwonlyargs])
    contract = {name: [p for p, _ in parameters(func)] for name, func in public_functions(_fallback).items()}
    assert set(declared) == set(contract), (f"only in the .pyi: {sorted(set(declared) - set(contract))}; "
                                            f"missing from it: {sorted(set(contract) - set(declared))}")
    for name, stubs in declared.items():
        for stub in stubs:
            assert stub == contract[name], f"{name} in the .pyi: {stub}, in _fallback: {contract[name]}"


def test_backends_agree(both_backends, kernel_name, dtype, make_call, call_arrays, assert_close):
    """Same random inputs, several shapes, every activation: same return value, same arrays after
    the call (outputs written, inputs untouched), float64 to 1e-12 and float32 to 1e-5 relative to
    each array's largest magnitude (matrix products may sum in another order)."""
    rng = np.random.default_rng(0)
    codes = sorted(activations.NAMES) if kernel_name in TAKES_ACTIVATION else [activations.SIGMOID]
    for shape in SHAPES:
        for code in codes:
            args, _ = make_call(kernel_name, dtype, rng, *shape, activation=code)
            copy_args, arrays_of = call_arrays
            runs = {}
            for backend_name, module in both_backends.items():
                copies = copy_args(args)
                runs[backend_name] = getattr(module, kernel_name)(*copies.values()), arrays_of(copies)
            (value_c, arrays_c), (value_p, arrays_p) = runs["cython"], runs["python"]
            where = f"{kernel_name}, shape {shape}, activation {activations.NAMES[code]}"
            assert type(value_c) is type(value_p), where
            if kernel_name == "step_path":  # the one answer that differs by design: only one twin has lanes
                assert value_p == "layers" and value_c in ("layers", "lanes"), where
            elif isinstance(value_p, float):
                assert_close(value_c, value_p, dtype, scale=abs(value_p))
            else:
                assert value_c == value_p, where
            for key, expected in arrays_p.items():
                if isinstance(expected, np.ndarray) and expected.dtype.kind == "f" and expected.size:
                    assert_close(arrays_c[key], expected, dtype, scale=np.abs(expected).max())
                elif isinstance(expected, np.ndarray):
                    np.testing.assert_array_equal(arrays_c[key], expected, err_msg=f"{where}: {key}")


def test_activation_codes_mean_the_same_function(both_backends, dtype, assert_close):
    """Each code of fastnn.activations gives the same f and f' on both backends, and a code
    outside the table is refused by both (the .pyx enum mirrors the table)."""
    Z = np.linspace(-40, 40, 97, dtype=dtype).reshape(1, -1)  # crosses 0 and saturates
    dA = np.cos(Z)
    for name, code in activations.CODES.items():
        results = {}
        for backend_name, module in both_backends.items():
            A, dZ = np.empty_like(Z), np.empty_like(Z)
            module.activate(Z, code, A)
            module.activation_grad(A, dA, code, dZ)
            results[backend_name] = A, dZ
        for compiled, fallback in zip(results["cython"], results["python"]):
            assert_close(compiled, fallback, dtype, scale=np.abs(fallback).max())
    for bad_code in (-1, max(activations.CODES.values()) + 1):
        for module in both_backends.values():
            with pytest.raises(ValueError):
                module.activate(Z, bad_code, np.empty_like(Z))

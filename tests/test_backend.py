"""Choosing the backend: get/set/use_backend, FASTNN_BACKEND, FASTNN_REQUIRE_EXTENSION, and the
compiled kernels releasing the GIL."""
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import fastnn
from fastnn import _fallback
from fastnn.activations import SIGMOID
from fastnn.backend import ops

REQUIRE_EXTENSION = os.environ.get("FASTNN_REQUIRE_EXTENSION", "").strip().lower() in {"1", "true", "yes", "on"}


def test_set_backend_switches_the_kernel_module():
    before = fastnn.get_backend()
    try:
        fastnn.set_backend("python")
        assert fastnn.get_backend() == "python" and ops() is _fallback
        if "cython" in fastnn.available_backends():
            fastnn.set_backend("cython")
            assert fastnn.get_backend() == "cython" and ops().__name__ == "fastnn._kernels"
    finally:
        fastnn.set_backend(before)


def test_use_backend_restores_the_previous_one_even_on_an_exception(compiled):
    before = fastnn.get_backend()
    try:
        fastnn.set_backend("cython")
        with pytest.raises(KeyError):
            with fastnn.use_backend("python"):
                assert fastnn.get_backend() == "python" and ops() is _fallback
                raise KeyError("boom")
        assert fastnn.get_backend() == "cython" and ops() is compiled
    finally:
        fastnn.set_backend(before)


def test_unknown_backend_name_is_refused():
    before = fastnn.get_backend()
    with pytest.raises(ValueError, match="nope") as info:
        fastnn.set_backend("nope")
    assert "cython" in str(info.value) and "python" in str(info.value)
    assert fastnn.get_backend() == before


def test_compiled_backend_when_required(backend_at_import):
    """CI sets FASTNN_REQUIRE_EXTENSION=1: then fastnn must have started on the compiled backend."""
    if REQUIRE_EXTENSION:
        assert backend_at_import == "cython", "FASTNN_REQUIRE_EXTENSION=1 but fastnn started on the python backend"
        assert "cython" in fastnn.available_backends()
    else:
        assert backend_at_import in fastnn.available_backends()
        assert fastnn.get_backend() in fastnn.available_backends()


def run_python(code, tmp_path, **env_vars):
    """Run `code` in a fresh interpreter that imports the fastnn under test (from an empty folder,
    so no source checkout in the working directory can shadow it)."""
    env = dict(os.environ, **env_vars)
    package_parent = str(Path(fastnn.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([package_parent] + [p for p in [env.get("PYTHONPATH")] if p])
    return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)


def test_fastnn_backend_python_env_selects_the_python_backend(tmp_path):
    result = run_python("import fastnn; print(fastnn.__file__); print(fastnn.get_backend())", tmp_path,
                        FASTNN_BACKEND="python")
    assert result.returncode == 0, result.stderr
    file, name = result.stdout.split()
    assert Path(file).resolve() == Path(fastnn.__file__).resolve()
    assert name == "python"


def test_fastnn_backend_bogus_env_fails_at_import_listing_the_names(tmp_path):
    result = run_python("import fastnn", tmp_path, FASTNN_BACKEND="bogus")
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert "bogus" in last_line and "cython" in last_line and "python" in last_line


def count_while(action, duration=None):
    """Count in a second Python thread while `action()` runs in this one (or, when action is None,
    while this thread sleeps `duration` s). Returns (counts, seconds)."""
    state = {"count": 0, "running": True}

    def counter():
        while state["running"]:
            state["count"] += 1

    thread = threading.Thread(target=counter, daemon=True)
    thread.start()
    while state["count"] == 0:  # the counter is running
        time.sleep(0.001)
    start_count, start = state["count"], time.perf_counter()
    if action is None:
        time.sleep(duration)
    else:
        action()
    counts, seconds = state["count"] - start_count, time.perf_counter() - start
    state["running"] = False
    thread.join()
    return counts, seconds


def test_compiled_kernels_release_the_gil(compiled):
    """A long compiled call (sigmoid over tens of millions of elements) must let another Python
    thread run. Holding the GIL, the counter thread would stop for the whole call (Python hands the
    GIL over every 5 ms, and a C call that keeps it is not interrupted): progress ~0. Released, the
    counter keeps a good fraction of its undisturbed rate. No wall-clock limit is asserted; three
    tries keep a noisy 2-core machine from failing it by chance."""
    small = np.full((1000, 1000), -0.5)
    start = time.perf_counter()
    compiled.activate(small, SIGMOID, small)
    per_element = (time.perf_counter() - start) / small.size
    rows = int(min(60_000_000, max(1_000_000, 0.5 / max(per_element, 1e-12))) // 1000)  # ~0.5 s, <= 480 MB
    Z = np.full((rows, 1000), -0.5)

    fractions = []
    for _ in range(3):
        counts, seconds = count_while(lambda: compiled.activate(Z, SIGMOID, Z))
        baseline, baseline_seconds = count_while(None, duration=seconds)
        fractions.append((counts / seconds) / (baseline / baseline_seconds))
        if fractions[-1] > 0.2:
            break
    assert max(fractions) > 0.2, (f"while activate ran ({seconds:.2f} s) the other thread counted at "
                                  f"{[f'{f:.0%}' for f in fractions]} of its undisturbed rate: the GIL was held")


def test_show_config_reports_the_cpu_features_paths_threads_and_blas(backend, capsys):
    import fastnn
    config = fastnn.config.config()
    assert config["backend"] == fastnn.get_backend()
    assert config["threads"] == fastnn.get_num_threads()
    assert config["blas"], "fastnn's kernels call SciPy's BLAS, which must be found"
    if config["compiled backend built"]:
        features = config["cpu features"]
        assert set(features) >= {"avx2", "fma", "avx512f", "avx512bf16", "amx-tile", "amx-bf16"}
        assert config["vector paths"] in ("avx512", "avx2", "portable")
        if not features["avx2"]:
            assert config["vector paths"] == "portable"
        native = features["avx512bf16"] and config["vector paths"] != "portable"
        assert config["bfloat16 products"] == ("avx512bf16" if native else "emulation")
    fastnn.show_config()
    printed = capsys.readouterr().out
    assert "backend: " + fastnn.get_backend() in printed and "blas:" in printed

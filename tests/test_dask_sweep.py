"""examples/dask_sweep.py, run as a user runs it: a grid search of fastnn.sklearn.MLPClassifier on a
two-worker LocalCluster of worker processes, which unpickle the estimator and import fastnn."""
import ast
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("dask")
pytest.importorskip("distributed")
pytest.importorskip("sklearn")

from sklearn.model_selection import ParameterGrid  # noqa: E402

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "dask_sweep.py"


def run_example(*args, cwd, python_code=None):
    # cwd off the checkout, as in test_xor.py: the process and its spawned workers must import the
    # installed fastnn, not the source folder (sys.path[0] is the script's folder, examples/).
    command = [sys.executable, str(EXAMPLE), *args] if python_code is None else [sys.executable, "-c", python_code]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=600)


def test_sweep_on_a_local_cluster(tmp_path):
    result = run_example("--workers", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "cluster: 2 workers, 2 threads (LocalCluster)" in out, out
    # The fits ran on the cluster (both workers), not in the client process.
    assert re.search(r"fitted on 2 worker\(s\)", out), out

    best = ast.literal_eval(re.search(r"^best parameters: (.*)$", out, re.M).group(1))
    grid = list(ParameterGrid(runpy.run_path(str(EXAMPLE))["PARAM_GRID"]))
    assert best in grid, f"best parameters {best} are not a point of the grid {grid}"
    score = float(re.search(r"^best CV score: ([0-9.]+)$", out, re.M).group(1))
    assert 0.8 < score <= 1.0, out  # scikit-learn's own MLPClassifier scores about 0.92 here


def test_missing_dask_names_the_extra(tmp_path):
    # Run the example with `distributed` made unimportable (None in sys.modules blocks an import).
    code = ("import sys, runpy; sys.modules['distributed'] = None; sys.argv = [sys.argv[0]]; "
            f"runpy.run_path({str(EXAMPLE)!r}, run_name='__main__')")
    result = run_example(cwd=tmp_path, python_code=code)
    assert result.returncode == 2, result.stdout + result.stderr
    assert 'pip install "fastnn[dask]"' in result.stderr, result.stderr
    assert "Traceback" not in result.stderr, result.stderr

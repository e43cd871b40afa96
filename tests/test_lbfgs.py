"""fastnn.lbfgs against SciPy's L-BFGS-B, whose unbounded case it is: the same iterates, the same
evaluation counts, the same stopping rules; and its failures end in a status, not in NaN."""
from collections import deque

import numpy as np
import pytest
import scipy.optimize

from fastnn import lbfgs


def rosenbrock(x):
    return scipy.optimize.rosen(x), scipy.optimize.rosen_der(x)


def scipy_lbfgsb(fun_and_grad, x0, max_iter, max_fun=15000, gtol=1e-5):
    return scipy.optimize.minimize(fun_and_grad, x0, jac=True, method="L-BFGS-B",
                                   options=dict(maxiter=max_iter, maxfun=max_fun, gtol=gtol))


# Rosenbrock's valley makes the line search work: several evaluations in some iterations, steps
# longer and shorter than 1, and a restart of the memory when a pair is too flat
STARTS = {"2d": np.array([-1.2, 1.0]), "10d": np.linspace(-1.0, 1.0, 10),
          "30d": np.random.default_rng(0).standard_normal(30)}


@pytest.mark.parametrize("max_iter", [5, 20, 1000])
@pytest.mark.parametrize("start", ["2d", "10d"])
def test_the_iterates_are_scipys(start, max_iter):
    x0 = STARTS[start]
    theirs = scipy_lbfgsb(rosenbrock, x0, max_iter)
    ours = lbfgs.minimize(rosenbrock, x0, max_iter=max_iter, max_fun=15000, gtol=1e-5)
    assert (ours.nit, ours.nfev, ours.status) == (theirs.nit, theirs.nfev, theirs.status)
    np.testing.assert_allclose(ours.x, theirs.x, rtol=0, atol=1e-9)
    np.testing.assert_allclose(ours.fun, theirs.fun, rtol=1e-9, atol=1e-14)
    np.testing.assert_array_equal(ours.jac, scipy.optimize.rosen_der(ours.x))


def test_twenty_iterations_in_thirty_dimensions_are_scipys():
    x0 = STARTS["30d"]
    theirs = scipy_lbfgsb(rosenbrock, x0, 20)
    ours = lbfgs.minimize(rosenbrock, x0, max_iter=20, max_fun=15000)
    assert (ours.nit, ours.nfev) == (theirs.nit, theirs.nfev) == (20, 22)
    np.testing.assert_allclose(ours.x, theirs.x, rtol=0, atol=1e-10)


def test_the_evaluation_limit_stops_after_the_iteration_that_passes_it():
    """As SciPy: the limit is checked after each iteration, so the count may pass max_fun."""
    x0 = STARTS["10d"]
    theirs = scipy_lbfgsb(rosenbrock, x0, 1000, max_fun=12)
    ours = lbfgs.minimize(rosenbrock, x0, max_iter=1000, max_fun=12)
    assert ours.status == theirs.status == 1
    assert "EVALUATIONS" in ours.message
    assert (ours.nit, ours.nfev) == (theirs.nit, theirs.nfev)
    assert ours.nfev > 12


def test_a_start_at_the_minimum_takes_no_iteration():
    ours = lbfgs.minimize(rosenbrock, np.ones(5), max_iter=100, max_fun=100)
    assert (ours.nit, ours.nfev, ours.status) == (0, 1, 0)
    np.testing.assert_array_equal(ours.x, np.ones(5))


def test_convergence_by_relative_reduction():
    """A quadratic with a loose gtol: the relative-decrease rule ends it, as SciPy's does."""
    A = np.diag(np.linspace(1.0, 50.0, 8))

    def quadratic(x):
        return 0.5 * x @ A @ x + 1.0, A @ x

    x0 = np.arange(1.0, 9.0)
    theirs = scipy_lbfgsb(quadratic, x0, 1000, gtol=1e-12)
    ours = lbfgs.minimize(quadratic, x0, max_iter=1000, max_fun=15000, gtol=1e-12)
    assert ours.status == theirs.status == 0
    assert (ours.nit, ours.nfev) == (theirs.nit, theirs.nfev)
    np.testing.assert_allclose(ours.x, theirs.x, atol=1e-9)


def test_a_function_that_is_infinite_off_its_start_fails_cleanly():
    """Every step's value is inf: the line search fails from -g, and the result is the start,
    finite, with status 2."""
    def cliff(x):
        if np.any(x != 1.0):
            return np.inf, np.full_like(x, np.nan)
        return 1.0, np.ones_like(x)

    ours = lbfgs.minimize(cliff, np.ones(4), max_iter=100, max_fun=100)
    assert ours.status == 2 and "LINE SEARCH" in ours.message
    np.testing.assert_array_equal(ours.x, np.ones(4))
    assert ours.fun == 1.0 and ours.nit == 0


def test_reruns_are_bit_identical():
    a = lbfgs.minimize(rosenbrock, STARTS["30d"], max_iter=200, max_fun=15000)
    b = lbfgs.minimize(rosenbrock, STARTS["30d"], max_iter=200, max_fun=15000)
    np.testing.assert_array_equal(a.x, b.x)
    assert (a.nit, a.nfev) == (b.nit, b.nfev)


# ----------------------------------------------------------------------------- the direction

def dense_inverse_hessian(pairs, n):
    """L-BFGS's H from its pairs (oldest first) by the BFGS update of explicit matrices, from
    H0 = (sᵀy / yᵀy of the newest pair) I."""
    s, y = pairs[-1]
    H = (s @ y) / (y @ y) * np.eye(n)
    for s, y in pairs:
        rho = 1.0 / (s @ y)
        V = np.eye(n) - rho * np.outer(y, s)
        H = V.T @ H @ V + rho * np.outer(s, s)
    return H


@pytest.mark.parametrize("count", [0, 1, 4])
def test_the_direction_is_minus_h_g(count):
    """The two-loop recursion's -H·g equals the explicit BFGS matrices' (pairs with sᵀy > 0, as
    L-BFGS keeps); without pairs it is -g."""
    rng = np.random.default_rng(count)
    n = 7
    pairs = []
    for _ in range(count):
        s = rng.standard_normal(n)
        y = 3 * s + rng.standard_normal(n)
        pairs.append((s, y, 1.0 / (s @ y)))
    g = rng.standard_normal(n)
    expected = -dense_inverse_hessian([(s, y) for s, y, _ in pairs], n) @ g if count else -g
    np.testing.assert_allclose(lbfgs._direction(g, deque(pairs)), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("change, error, message", [
    (dict(max_iter=0), ValueError, "max_iter must be >= 1"),
    (dict(max_fun=2.5), TypeError, "max_fun must be an int"),
    (dict(memory=0), ValueError, "memory must be >= 1"),
    (dict(gtol=-1.0), ValueError, "gtol must lie in"),
    (dict(ftol=float("nan")), ValueError, "ftol must be finite"),
    (dict(x0=np.ones((2, 2))), ValueError, "x0 must be a 1-d array"),
    (dict(x0=np.array([1.0, np.inf])), ValueError, "x0 must be a 1-d array of finite numbers"),
], ids=["max_iter", "max_fun", "memory", "gtol", "ftol", "x0-2d", "x0-inf"])
def test_bad_arguments_raise_before_any_evaluation(change, error, message):
    calls = []

    def counted(x):
        calls.append(x)
        return rosenbrock(x)

    args = dict(x0=np.zeros(3), max_iter=10, max_fun=10)
    args.update(change)
    with pytest.raises(error, match=message):
        lbfgs.minimize(counted, **args)
    assert not calls

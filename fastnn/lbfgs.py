"""L-BFGS: the full-batch optimizer of `fastnn.sklearn`'s `solver="lbfgs"`.

The unbounded case of L-BFGS-B as SciPy runs it (`scipy.optimize.minimize(method="L-BFGS-B")`,
which scikit-learn's MLP calls), without the machinery for bounds, which scikit-learn never uses
and which costs SciPy a large share of an iteration of a small network (docs/performance.md):
- the direction -H·g from the last `memory` steps s and gradient changes y (the two-loop
  recursion, H's diagonal start scaled by sᵀy / yᵀy of the newest pair: the same direction as
  L-BFGS-B's compact form); a pair with sᵀy <= eps·(-step·gᵀd) is not kept;
- the first step 1/‖g‖, every later one 1, then the Moré-Thuente line search (sufficient decrease
  1e-3, curvature 0.9, interval tolerance 0.1, at most 20 evaluations) for a step that meets the
  strong Wolfe conditions; a search that fails forgets the pairs and tries again from -g, or stops
  when there were none;
- the same stopping tests: max|g| <= gtol (status 0), a relative decrease of f of at most ftol
  (status 0), `max_iter` iterations or more than `max_fun` evaluations (status 1), a line search
  that fails from -g (status 2).
`tests/test_lbfgs.py` holds its iterates to SciPy's.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.linalg.blas import daxpy, ddot

from .validation import check_positive_int, check_real

FTOL = 2.220446049250313e-09  # SciPy's default ftol for L-BFGS-B (factr 1e7 times the float64 epsilon)
EPS = float(np.finfo(np.float64).eps)
MAX_LINE_EVALS = 20
STEP_MAX = 1e10  # L-BFGS-B's bound on a step without variable bounds

# Moré-Thuente's constants, as L-BFGS-B sets them
DECREASE, CURVATURE, INTERVAL = 1e-3, 0.9, 0.1


@dataclass
class Result:
    """x: the parameters (n,); fun and jac: f and its gradient there; nit: iterations; nfev:
    evaluations; status: 0 converged, 1 a limit reached, 2 a line search failed; message: why it
    stopped."""
    x: np.ndarray
    fun: float
    jac: np.ndarray
    nit: int
    nfev: int
    status: int
    message: str


def minimize(fun_and_grad: Callable[[np.ndarray], tuple[float, np.ndarray]], x0: np.ndarray, *, max_iter: int,
             max_fun: int, gtol: float = 1e-5, ftol: float = FTOL, memory: int = 10) -> Result:
    """Minimize f from x0 (n,) float64. fun_and_grad(x) -> (f, the gradient (n,)); it may reuse
    its gradient array between calls (it is copied). max_iter, max_fun, memory: ints >= 1; gtol,
    ftol: finite, >= 0."""
    max_iter, max_fun = check_positive_int("max_iter", max_iter), check_positive_int("max_fun", max_fun)
    memory = check_positive_int("memory", memory)
    gtol, ftol = check_real("gtol", gtol, low=0.0), check_real("ftol", ftol, low=0.0)
    x = np.array(x0, np.float64)
    if x.ndim != 1 or not np.isfinite(x).all():
        raise ValueError(f"x0 must be a 1-d array of finite numbers, got shape {x.shape}")
    f, g = _evaluate(fun_and_grad, x)
    nfev, nit = 1, 0
    if np.max(np.abs(g), initial=0.0) <= gtol:
        return Result(x, f, g, 0, nfev, 0, "CONVERGENCE: NORM OF GRADIENT <= GTOL")
    pairs: deque = deque(maxlen=memory)  # (s, y, 1 / yᵀs)
    while True:
        d = _direction(g, pairs)
        slope = float(g @ d)
        if slope >= 0:  # not a descent direction (rounding): forget the pairs
            pairs.clear()
            d, slope = -g, -float(g @ g)
        step = min(1.0 / np.sqrt(-slope), STEP_MAX) if nit == 0 else 1.0
        search = _LineSearch(f, slope, step)
        ok = False
        for _ in range(MAX_LINE_EVALS):
            x_new = x + search.step * d
            f_new, g_new = _evaluate(fun_and_grad, x_new)
            nfev += 1
            done, ok = search.next(f_new, float(g_new @ d))
            if done:
                break
        if not ok:
            if not pairs:
                return Result(x, f, g, nit, nfev, 2, "ABNORMAL: LINE SEARCH FAILED")
            pairs.clear()  # try again from -g, as L-BFGS-B does
            continue
        s, y = x_new - x, g_new - g
        f_old, x, f, g = f, x_new, f_new, g_new
        nit += 1
        if nit >= max_iter:
            return Result(x, f, g, nit, nfev, 1, "STOP: TOTAL NO. OF ITERATIONS REACHED LIMIT")
        if nfev > max_fun:
            return Result(x, f, g, nit, nfev, 1, "STOP: TOTAL NO. OF f AND g EVALUATIONS EXCEEDS LIMIT")
        if np.max(np.abs(g)) <= gtol:
            return Result(x, f, g, nit, nfev, 0, "CONVERGENCE: NORM OF GRADIENT <= GTOL")
        if f_old - f <= ftol * max(abs(f_old), abs(f), 1.0):
            return Result(x, f, g, nit, nfev, 0, "CONVERGENCE: RELATIVE REDUCTION OF F <= FTOL")
        sy = float(s @ y)
        if sy > EPS * -slope * search.step:
            pairs.append((s, y, 1.0 / sy))


def _evaluate(fun_and_grad, x):
    f, g = fun_and_grad(x)
    return float(f), np.array(g, np.float64)


def _direction(g: np.ndarray, pairs: deque) -> np.ndarray:
    """-H·g by the two-loop recursion over the pairs (oldest first), H's start sᵀy / yᵀy of the
    newest pair (the identity without pairs). BLAS's daxpy updates q in place: numpy's q -= a·y
    makes a temporary, and at a small network's size the calls are most of the time."""
    q = g.copy()
    alphas = []
    for s, y, rho in reversed(pairs):
        alpha = rho * ddot(s, q)
        q = daxpy(y, q, a=-alpha)
        alphas.append(alpha)
    if pairs:
        _, y, rho = pairs[-1]
        q *= 1.0 / (rho * ddot(y, y))
    for (s, y, rho), alpha in zip(pairs, reversed(alphas)):
        q = daxpy(s, q, a=alpha - rho * ddot(y, q))
    return -q


class _LineSearch:
    """Moré and Thuente's search for a step along d (ACM TOMS 20(3), 1994) with L-BFGS-B's
    constants: from f(0), f'(0) < 0 and a first step, `next(f, f')` at each tried step says
    (done, ok) and leaves the next step to try in `step`. It keeps an interval [lo, hi] of steps
    that holds a point meeting the conditions: each new step is a safeguarded cubic or quadratic
    fit through the ends, and while f has not yet turned upward, of the auxiliary function
    f(a) - f(0) - DECREASE·a·f'(0)."""

    def __init__(self, f0: float, g0: float, step: float):
        self.f0, self.g0, self.step = f0, g0, step
        self.gtest = DECREASE * g0
        self.bracketed, self.stage = False, 1
        self.width = STEP_MAX
        self.width_before = 2 * self.width
        self.lo = self.hi = (0.0, f0, g0)  # (step, f, f') at the interval's ends; lo: the best so far
        self.min_step, self.max_step = 0.0, step + 4.0 * step

    def next(self, f: float, g: float) -> tuple[bool, bool]:
        step = self.step
        if not (np.isfinite(f) and np.isfinite(g)):
            return True, False
        ftest = self.f0 + step * self.gtest
        if self.stage == 1 and f <= ftest and g >= 0:
            self.stage = 2
        if f <= ftest and abs(g) <= CURVATURE * -self.g0:
            return True, True
        if self.bracketed and (step <= self.min_step or step >= self.max_step
                               or self.max_step - self.min_step <= INTERVAL * self.max_step):
            return True, True  # rounding or a narrow interval: L-BFGS-B takes the step (a warning)
        if step == STEP_MAX and f <= ftest and g <= self.gtest:
            return True, True
        if step == 0.0 and (f > ftest or g >= self.gtest):
            return True, True
        if self.stage == 1 and f <= self.lo[1] and f > ftest:  # on the auxiliary function
            shift = self.gtest

            def aux(point):
                return (point[0], point[1] - point[0] * shift, point[2] - shift)

            def back(point):
                return (point[0], point[1] + point[0] * shift, point[2] + shift)
            lo, hi, new = self._fit(aux(self.lo), aux(self.hi), aux((step, f, g)))
            self.lo, self.hi = back(lo), back(hi)
        else:
            self.lo, self.hi, new = self._fit(self.lo, self.hi, (step, f, g))
        lo_step, hi_step = self.lo[0], self.hi[0]
        if self.bracketed:
            if abs(hi_step - lo_step) >= 0.66 * self.width_before:
                new = lo_step + 0.5 * (hi_step - lo_step)
            self.width_before, self.width = self.width, abs(hi_step - lo_step)
            self.min_step, self.max_step = min(lo_step, hi_step), max(lo_step, hi_step)
        else:
            self.min_step, self.max_step = new + 1.1 * (new - lo_step), new + 4.0 * (new - lo_step)
        new = min(max(new, 0.0), STEP_MAX)
        if self.bracketed and (new <= self.min_step or new >= self.max_step
                               or self.max_step - self.min_step <= INTERVAL * self.max_step):
            new = lo_step
        self.step = new
        return False, False

    def _fit(self, lo, hi, at):
        """The interval's new ends and the next step, from the ends lo (the best so far) and hi
        and the step just tried, `at`: each (step, f, f')."""
        (sx, fx, dx), (sy, fy, dy), (sp, fp, dp) = lo, hi, at
        turned = dp * np.sign(dx) < 0  # the slope changed sign between lo and `at`
        lower, upper = self.min_step, self.max_step
        if fp > fx:  # f rose: a minimum lies between; the cubic's minimizer, or towards the quadratic's
            cubic = sx + _cubic_ratio(sx, fx, dx, sp, fp, dp, sp < sx, from_lo=True) * (sp - sx)
            quadratic = sx + dx / ((fx - fp) / (sp - sx) + dx) / 2 * (sp - sx)
            new = cubic if abs(cubic - sx) < abs(quadratic - sx) else cubic + (quadratic - cubic) / 2
            self.bracketed = True
        elif turned:  # a minimum lies between
            cubic = sp + _cubic_ratio(sx, fx, dx, sp, fp, dp, sp > sx, from_lo=False) * (sx - sp)
            secant = sp + dp / (dp - dx) * (sx - sp)
            new = cubic if abs(cubic - sp) > abs(secant - sp) else secant
            self.bracketed = True
        elif abs(dp) < abs(dx):  # the slope flattens: the cubic's minimizer if it lies beyond
            theta = 3 * (fx - fp) / (sp - sx) + dx + dp
            scale = max(abs(theta), abs(dx), abs(dp))
            gamma = scale * np.sqrt(max(0.0, (theta / scale) ** 2 - (dx / scale) * (dp / scale)))
            if sp > sx:
                gamma = -gamma
            r = ((gamma - dp) + theta) / ((gamma + (dx - dp)) + gamma)
            if r < 0 and gamma != 0:
                cubic = sp + r * (sx - sp)
            else:
                cubic = upper if sp > sx else lower
            secant = sp + dp / (dp - dx) * (sx - sp)
            if self.bracketed:
                new = cubic if abs(cubic - sp) < abs(secant - sp) else secant
                reach = sp + 0.66 * (sy - sp)
                new = min(reach, new) if sp > sx else max(reach, new)
            else:
                new = cubic if abs(cubic - sp) > abs(secant - sp) else secant
                new = max(lower, min(upper, new))
        elif self.bracketed:  # the slope steepens: the cubic through `at` and hi
            new = sp + _cubic_ratio(sy, fy, dy, sp, fp, dp, sp > sy, from_lo=False) * (sy - sp)
        else:
            new = upper if sp > sx else lower
        if fp > fx:
            hi = at
        else:
            if turned:
                hi = lo
            lo = at
        return lo, hi, new


def _cubic_ratio(s1, f1, d1, s2, f2, d2, flip, from_lo):
    """Where the minimizer of the cubic through (s1, f1, d1) and (s2, f2, d2) lies, as a fraction
    of the way from s1 (from_lo) or from s2 to the other end; flip: the sign of gamma."""
    theta = 3 * (f1 - f2) / (s2 - s1) + d1 + d2
    scale = max(abs(theta), abs(d1), abs(d2))
    gamma = scale * np.sqrt((theta / scale) ** 2 - (d1 / scale) * (d2 / scale))
    if flip:
        gamma = -gamma
    if from_lo:
        return ((gamma - d1) + theta) / (((gamma - d1) + gamma) + d2)
    return ((gamma - d2) + theta) / (((gamma - d2) + gamma) + d1)

"""Pictures of the lesson: how the loss fell, and what the network learned.

    from fastnn import plot
    ax = plot.history(history)                    # loss (and accuracy) per epoch
    ax = plot.decision_boundary(model, X, y)      # the input plane coloured by the model's output

Each function draws into `ax` (a new figure when it is None) and returns the matplotlib Axes, so
figures are composed as with any matplotlib code. matplotlib is an optional extra
(`pip install "fastnn[plot]"`); without a display, the non-interactive Agg backend is used.
"""
import os
import sys
from typing import Optional, Union

import numpy as np

from .callbacks import History
from .model import Sequential


def _import_pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ImportError('fastnn.plot needs matplotlib: pip install "fastnn[plot]"') from None
    # Headless (a server, CI): choose Agg before pyplot picks a GUI backend that cannot open.
    # A backend the user chose (MPLBACKEND, Jupyter's inline one, an earlier pyplot import) stays.
    headless = sys.platform.startswith("linux") and not (os.environ.get("DISPLAY")
                                                          or os.environ.get("WAYLAND_DISPLAY"))
    if headless and "matplotlib.pyplot" not in sys.modules and not os.environ.get("MPLBACKEND"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot
    return pyplot


plt = _import_pyplot()

# First-layer neuron lines are drawn by default up to this many neurons; more would hide the picture.
_MAX_AUTO_LINES = 8
# Up to this many legend entries fit inside the plane; more go below it, in columns.
_MAX_INSIDE_ENTRIES = 4
# Grid points per side of the decision_boundary image.
_GRID = 200
# Neuron-line colours that stand out on the red-blue shading (no reds or blues); more lines than
# colours are drawn in one grey and share a legend entry.
_LINE_COLORS = ["#2ca02c", "#ffb000", "#9467bd", "#17becf", "#e377c2", "#8c564b", "#bcbd22", "#000000"]
_MANY_LINES_COLOR = "#555555"


def _new_axes(figsize):
    """Axes of a new figure laid out so that labels, colour bars and legends are not clipped."""
    return plt.figure(figsize=figsize, layout="constrained").add_subplot()


def history(history: Union[History, dict], ax=None, log: bool = False):
    """Plot loss per epoch (and accuracy, on a right-hand axis, when it was recorded), for training
    and, when present, validation data. Returns the Axes holding the loss.

    history: the History returned by model.fit, or its `history` dict {"loss": [...], ...}
    (keys "loss", "val_loss", "accuracy", "val_accuracy", one value per epoch).
    log: a logarithmic loss axis (useful when the loss falls by decades, as XOR's does).
    """
    logs = history.history if isinstance(history, History) else history
    if not isinstance(logs, dict):
        raise TypeError(f"history must be a fastnn History or its history dict, got {type(history).__name__}")
    if not logs.get("loss"):
        raise ValueError(f"history holds no 'loss' values (keys: {sorted(logs)}): fit at least one epoch")
    if ax is None:
        ax = _new_axes((6, 4))
    epochs = np.arange(1, len(logs["loss"]) + 1)
    lines = [ax.plot(epochs, logs["loss"], color="C0", label="loss")[0]]
    if logs.get("val_loss"):
        lines += ax.plot(epochs, logs["val_loss"], color="C0", linestyle="--", label="val_loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    if log:
        ax.set_yscale("log")
    if logs.get("accuracy"):
        acc_ax = ax.twinx()
        lines += acc_ax.plot(epochs, logs["accuracy"], color="C1", label="accuracy")
        if logs.get("val_accuracy"):
            lines += acc_ax.plot(epochs, logs["val_accuracy"], color="C1", linestyle="--", label="val_accuracy")
        acc_ax.set_ylabel("accuracy")
        acc_ax.set_ylim(-0.02, 1.02)
    ax.legend(lines, [line.get_label() for line in lines], loc="center right")
    ax.set_title("training history")
    return ax


def _targets(y, n: int) -> np.ndarray:
    """y as a float array with one row per row of X: (n,) or (n, k)."""
    y = np.asarray(y, dtype=np.float64)
    if y.ndim == 0 or y.shape[0] != n:
        raise ValueError(f"y must have one row per row of X ({n}), got shape {y.shape}")
    if not np.all(np.isfinite(y)):
        raise ValueError("y must hold finite numbers")
    return y.reshape(n) if y.ndim == 2 and y.shape[1] == 1 else y


def _labels(y: np.ndarray) -> np.ndarray:
    """Class labels (n,) from _targets: labels (n,) or one-hot rows (n, k)."""
    return np.argmax(y, axis=1) if y.ndim == 2 else np.rint(y).astype(np.int64)


def _neuron_line(ax, w: np.ndarray, b: float, xlim, ylim, **style) -> None:
    """Draw w[0]·x1 + w[1]·x2 + b = 0 across the view, solving for the coordinate with the larger weight."""
    if abs(w[1]) >= abs(w[0]) and w[1] != 0:
        x1 = np.array(xlim)
        ax.plot(x1, -(w[0] * x1 + b) / w[1], **style)
    elif w[0] != 0:
        x2 = np.array(ylim)
        ax.plot(-(w[1] * x2 + b) / w[0], x2, **style)


def decision_boundary(model: Sequential, X, y, ax=None, neuron_lines: Optional[bool] = None):
    """Colour the input plane by the model's output and draw the data on top. Returns the Axes.

    model: a Sequential with 2 inputs. X: (n_samples, 2). y: labels (n_samples,), targets
    (n_samples, 1) or one-hot rows (n_samples, n_classes).
    One sigmoid output, or two softmax outputs: the plane is shaded by P(y=1), with its 0.5
    contour, the decision boundary. More classes: coloured by the predicted class, with a legend
    of the classes. One unbounded output (regression): the output surface with a colour bar, and
    the points coloured by their targets on the same scale.
    neuron_lines: draw each first-layer neuron's line w·x + b = 0 (where its z changes sign); by
    default when the first layer has at most 8 neurons.
    """
    if not isinstance(model, Sequential):
        raise TypeError(f"model must be a fastnn.Sequential, got {type(model).__name__}")
    if model.n_in != 2:
        raise ValueError(f"decision_boundary draws the plane of a model with 2 inputs; this model has "
                         f"n_in={model.n_in}")
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != 2:
        raise ValueError(f"X must be 2-D with 2 columns, (n_samples, 2), got shape {X.shape}")
    if X.shape[0] == 0 or not np.all(np.isfinite(X)):
        raise ValueError(f"X must hold at least one row of finite numbers (shape {X.shape})")
    targets = _targets(y, X.shape[0])
    if ax is None:
        ax = _new_axes((5, 5))

    low, high = X.min(axis=0), X.max(axis=0)
    pad = 0.25 * np.maximum(high - low, 1e-3)
    xlim, ylim = (low[0] - pad[0], high[0] + pad[0]), (low[1] - pad[1], high[1] + pad[1])
    g1, g2 = np.meshgrid(np.linspace(*xlim, _GRID), np.linspace(*ylim, _GRID))
    out = model.predict(np.column_stack([g1.ravel(), g2.ravel()])).astype(np.float64)

    last = model.dense_layers[-1]
    entries = []  # legend handles beyond the neuron lines
    title = "decision boundary"
    if model.n_out == 1 and last.activation not in ("sigmoid", "softmax"):  # regression: the surface
        value = out[:, 0].reshape(g1.shape)
        if targets.ndim != 1:
            raise ValueError(f"y must hold one target per row for a one-output model, got shape {np.shape(y)}")
        norm = plt.Normalize(min(value.min(), targets.min()), max(value.max(), targets.max()))
        shading = ax.contourf(g1, g2, value, levels=20, cmap="viridis", norm=norm, alpha=0.85)
        plt.colorbar(shading, ax=ax, label="output (points: their targets)")
        point_colors = plt.get_cmap("viridis")(norm(targets))
        title = "output surface"
    elif model.n_out == 1 or (model.n_out == 2 and last.activation == "softmax"):
        value = out[:, -1].reshape(g1.shape)  # the output, or P(class 1)
        shading = ax.contourf(g1, g2, value, levels=np.linspace(0, 1, 21), cmap="RdBu_r", alpha=0.75)
        ax.contour(g1, g2, value, levels=[0.5], colors="k", linewidths=1)
        plt.colorbar(shading, ax=ax, label="P(y=1)")
        point_colors = plt.get_cmap("RdBu_r")(np.where(_labels(targets) > 0, 0.95, 0.05))
    else:
        from matplotlib.patches import Patch
        labels = _labels(targets)
        classes = np.argmax(out, axis=1).reshape(g1.shape)
        k = model.n_out
        ax.contourf(g1, g2, classes, levels=np.arange(k + 1) - 0.5, cmap="tab10", vmin=-0.5, vmax=9.5,
                    alpha=0.35)
        tab10 = plt.get_cmap("tab10")
        point_colors = tab10(labels % 10)
        entries = [Patch(facecolor=tab10(c % 10), edgecolor="k", label=f"class {c}") for c in range(k)]
    size = float(np.clip(3000 / X.shape[0], 8, 150))
    ax.scatter(X[:, 0], X[:, 1], c=point_colors, s=size, edgecolors="k", linewidths=0.6, zorder=3)

    first = model.dense_layers[0]
    if neuron_lines or (neuron_lines is None and first.n_out <= _MAX_AUTO_LINES):
        prefix = "h" if len(model.dense_layers) > 1 else "o"  # hidden neurons, or a one-layer model's outputs
        coloured = first.n_out <= len(_LINE_COLORS)
        for j in range(first.n_out):
            label = (f"{prefix}{j + 1}: w·x + b = 0" if coloured
                     else f"{prefix}1 to {prefix}{first.n_out}: w·x + b = 0" if j == 0 else None)
            _neuron_line(ax, first.W[:, j].astype(np.float64), float(first.b[j]), xlim, ylim,
                         color=_LINE_COLORS[j] if coloured else _MANY_LINES_COLOR, linestyle="--", linewidth=2,
                         gid=f"neuron-{j}", label=label)
    handles = entries + ax.get_legend_handles_labels()[0]
    if len(handles) > _MAX_INSIDE_ENTRIES:  # below the plane, where they hide nothing
        ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2 if len(handles) <= 8 else 3,
                  fontsize="small")
    elif handles:
        ax.legend(handles=handles, loc="upper center", fontsize="small", framealpha=0.8)
    ax.set_xlim(xlim)
    ax.set_ylim(ylim)
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    ax.set_title(title)
    return ax

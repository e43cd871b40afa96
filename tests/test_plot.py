"""fastnn.plot and the CLI's --plot: figures are written headless as non-empty PNGs of the stated
size, the neuron lines are where w·x + b = 0, bad input is refused, a missing matplotlib says what to
install."""
import importlib
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import pytest

import fastnn as fnn
from fastnn import data
from fastnn.__main__ import DEMO_FIGSIZE, DPI, SEEDS_FIGSIZE, XOR_FIGSIZE
from fastnn.lesson import xor_model

plot = pytest.importorskip("fastnn.plot", reason="matplotlib is not installed")
plt = plot.plt


def png_size(path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk; fails on anything that is not a PNG."""
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


def assert_png(path, size_inches) -> None:
    """A PNG of figsize × DPI pixels that shows something: more than one colour."""
    expected = (round(size_inches[0] * DPI), round(size_inches[1] * DPI))
    assert png_size(path) == expected
    pixels = plt.imread(str(path))
    assert pixels.shape[:2] == expected[::-1]
    assert len(np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)) > 10


def headless_env() -> dict:
    """This process's environment without a display or a chosen matplotlib backend."""
    return {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "MPLBACKEND")}


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "fastnn", *args], capture_output=True, text=True,
                          cwd=tempfile.gettempdir(), timeout=600, env=headless_env())


@pytest.fixture
def trained_xor(backend):
    X, y = data.xor()
    model = xor_model(seed=0)
    history = model.fit(X, y, epochs=2000, batch_size=None, verbose=0)
    return model, history, X, y


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


# ---------------------------------------------------------------- the functions

def test_history_returns_axes_and_draws_every_curve(backend, tmp_path):
    X, labels = data.moons(200, seed=0)
    model = fnn.Sequential([fnn.Dense(2, 8, "tanh"), fnn.Dense(8, 2, "softmax")], seed=0)
    model.compile(loss="sparse_categorical_crossentropy", optimizer=fnn.Adam(lr=0.01))
    history = model.fit(X[:150], labels[:150], epochs=5, validation_data=(X[150:], labels[150:]), verbose=0)
    ax = plot.history(history)
    assert isinstance(ax, plt.Axes)
    drawn = [line.get_label() for a in ax.figure.axes for line in a.get_lines()]
    assert sorted(drawn) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    np.testing.assert_array_equal(ax.get_lines()[0].get_ydata(), history.history["loss"])
    ax.figure.set_size_inches(6, 4)
    ax.figure.savefig(tmp_path / "history.png", dpi=DPI)
    assert_png(tmp_path / "history.png", (6, 4))


def test_history_draws_into_a_given_axes_and_takes_a_dict():
    fig, (left, right) = plt.subplots(1, 2)
    assert plot.history({"loss": [1.0, 0.5, 0.25]}, ax=right, log=True) is right
    assert right.get_yscale() == "log" and len(left.get_lines()) == 0
    assert len(fig.axes) == 2  # no accuracy recorded: no second y axis


def test_history_refuses_what_is_not_a_history():
    with pytest.raises(ValueError, match="no 'loss'"):
        plot.history({"loss": []})
    with pytest.raises(TypeError, match="history must be"):
        plot.history([0.5, 0.4])


def test_decision_boundary_draws_each_hidden_neurons_line(trained_xor, tmp_path):
    model, _, X, y = trained_xor
    ax = plot.decision_boundary(model, X, y)
    assert isinstance(ax, plt.Axes)
    first = model.layers[0]
    lines = sorted((line for line in ax.get_lines() if (line.get_gid() or "").startswith("neuron-")),
                   key=lambda line: line.get_gid())
    assert [line.get_gid() for line in lines] == ["neuron-0", "neuron-1"]
    for j, line in enumerate(lines):
        x1, x2 = line.get_xdata(), line.get_ydata()
        z = first.W[0, j] * x1 + first.W[1, j] * x2 + first.b[j]  # on the line, z = w·x + b = 0
        np.testing.assert_allclose(z, 0, atol=1e-9 * (1 + np.abs(first.W[:, j]).sum() * 10))
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["h1: w·x + b = 0", "h2: w·x + b = 0"]
    ax.figure.savefig(tmp_path / "plane.png", dpi=DPI)
    assert_png(tmp_path / "plane.png", (5, 5))


def test_decision_boundary_many_classes_and_no_lines(backend):
    X, labels = data.classification(300, n_features=2, n_classes=4, seed=0)
    model = fnn.Sequential([fnn.Dense(2, 32, "relu"), fnn.Dense(32, 4, "softmax")], seed=0)
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    ax = plot.decision_boundary(model, X, data.one_hot(labels, 4))
    assert not any((line.get_gid() or "").startswith("neuron-") for line in ax.get_lines())  # 32 > 8
    ax = plot.decision_boundary(model, X, labels, neuron_lines=True)
    assert sum((line.get_gid() or "").startswith("neuron-") for line in ax.get_lines()) == 32


def _inside_figure(artist) -> bool:
    """Whether artist, once drawn, lies wholly inside its figure (not clipped by the edge)."""
    fig = artist.figure
    fig.canvas.draw()
    box = artist.get_tightbbox() if isinstance(artist, plt.Axes) else artist.get_window_extent()
    page = fig.bbox
    return box.x0 >= page.x0 - 0.5 and box.y0 >= page.y0 - 0.5 and box.x1 <= page.x1 + 0.5 and box.y1 <= page.y1 + 0.5


@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("last", [1e-3, 0.3])  # decades; less than one (log: labelled minor ticks, 3×10⁻¹)
def test_history_labels_lie_inside_its_figure(log, last):
    losses = list(np.geomspace(0.7, last, 50))
    ax = plot.history({"loss": losses, "accuracy": list(np.linspace(0.5, 1, 50))}, log=log)
    right = [a for a in ax.figure.axes if a is not ax][0]
    assert _inside_figure(ax) and _inside_figure(right)  # with their tick labels and axis labels


def _neuron_lines(ax):
    return sorted((line for line in ax.get_lines() if (line.get_gid() or "").startswith("neuron-")),
                  key=lambda line: int(line.get_gid().split("-")[1]))


def test_decision_boundary_gives_each_of_many_lines_its_own_legend_entry(backend):
    X, y = data.xor()
    model = xor_model(hidden=6, seed=1)
    model.fit(X, y, epochs=500, batch_size=None, verbose=0)
    ax = plot.decision_boundary(model, X, y)
    lines, legend = _neuron_lines(ax), ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == [f"h{j}: w·x + b = 0" for j in range(1, 7)]
    colours = [line.get_color() for line in lines]
    assert len(set(colours)) == 6
    assert [handle.get_color() for handle in legend.legend_handles] == colours
    assert _inside_figure(legend)


def test_decision_boundary_of_a_regression_model_draws_its_output_surface(backend):
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, size=(120, 2))
    y = (np.sin(3 * X[:, 0]) + X[:, 1] ** 2)[:, None]
    model = fnn.Sequential([fnn.Dense(2, 8, "tanh"), fnn.Dense(8, 1, "linear")], seed=0)
    model.compile("mse", fnn.Adam(lr=0.01))
    model.fit(X, y, epochs=50, verbose=0)
    ax = plot.decision_boundary(model, X, y)
    assert ax.get_title() == "output surface"
    contours = [c for c in ax.collections if hasattr(c, "levels")]
    assert contours and all(0.5 not in list(c.levels) or len(c.levels) > 2 for c in contours)  # no 0.5 boundary
    colorbar_axes = [a for a in ax.figure.axes if a is not ax]
    assert len(colorbar_axes) == 1 and "output" in colorbar_axes[0].get_ylabel()
    points = [c for c in ax.collections if c.get_offsets().shape[0] == X.shape[0]][0]
    assert len(np.unique(points.get_facecolors(), axis=0)) > 20  # each point by its target, not two classes


def test_decision_boundary_of_many_classes_has_a_class_legend(backend):
    X, labels = data.classification(300, n_features=2, n_classes=3, seed=0)
    model = fnn.Sequential([fnn.Dense(2, 4, "relu"), fnn.Dense(4, 3, "softmax")], seed=0)
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    ax = plot.decision_boundary(model, X, labels)
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts[:3] == ["class 0", "class 1", "class 2"] and len(texts) == 3 + 4
    assert _inside_figure(ax.get_legend())


@pytest.mark.parametrize("bad_X, message", [
    (np.zeros(4), r"X must be 2-D with 2 columns, \(n_samples, 2\), got shape \(4,\)"),
    (np.zeros((4, 3)), r"got shape \(4, 3\)"),
    (np.zeros((2, 2, 2)), r"got shape \(2, 2, 2\)"),
    (np.zeros((0, 2)), r"at least one row of finite numbers"),
    (np.array([[0.0, np.nan]]), r"at least one row of finite numbers"),
])
def test_decision_boundary_refuses_input_that_is_not_2d(trained_xor, bad_X, message):
    model, _, _, y = trained_xor
    with pytest.raises(ValueError, match=message):
        plot.decision_boundary(model, bad_X, y[:len(bad_X)])


def test_decision_boundary_refuses_a_model_without_2_inputs(backend):
    model = fnn.Sequential([fnn.Dense(3, 1, "sigmoid")])
    with pytest.raises(ValueError, match="2 inputs; this model has n_in=3"):
        plot.decision_boundary(model, np.zeros((4, 3)), np.zeros(4))
    with pytest.raises(TypeError, match="model must be a fastnn.Sequential"):
        plot.decision_boundary(None, np.zeros((4, 2)), np.zeros(4))


def test_decision_boundary_refuses_labels_of_another_length(trained_xor):
    model, _, X, y = trained_xor
    with pytest.raises(ValueError, match=r"y must have one row per row of X \(4\)"):
        plot.decision_boundary(model, X, y[:3])


def test_missing_matplotlib_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    monkeypatch.delitem(sys.modules, "fastnn.plot")
    with pytest.raises(ImportError, match=r'pip install "fastnn\[plot\]"'):
        importlib.import_module("fastnn.plot")


@pytest.mark.parametrize("command", [["xor"], ["xor", "--seeds", "2"], ["demo"]])
def test_cli_without_matplotlib_says_what_to_install_before_training(monkeypatch, capsys, tmp_path, command):
    from fastnn.__main__ import main
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.delitem(sys.modules, "fastnn.plot")
    monkeypatch.delattr(fnn, "plot", raising=False)  # else `from fastnn import plot` finds the attribute
    out = tmp_path / ("out.png" if command[0] == "xor" else "out")  # xor writes a file, demo a folder of them
    assert main([*command, "--plot", str(out)]) == 2
    captured = capsys.readouterr()
    assert 'pip install "fastnn[plot]"' in captured.err
    assert captured.out == ""  # nothing was trained
    assert not out.exists()


def test_headless_import_uses_agg():
    code = "import fastnn.plot, matplotlib; print(matplotlib.get_backend())"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=tempfile.gettempdir(), env=headless_env(), timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().lower() == "agg"


# ---------------------------------------------------------------- the commands

def test_cli_xor_plot(both_backends, tmp_path):
    """Written into a folder that does not exist yet; the truth table is printed as before."""
    path = tmp_path / "sub" / "xor.png"
    result = run_cli("xor", "--plot", str(path), "--epochs", "3000")
    assert result.returncode == 0, result.stderr
    assert f"wrote {path}" in result.stdout and result.stdout.count(" ok") == 4
    assert_png(path, XOR_FIGSIZE)


def test_cli_xor_plot_refuses_explain(tmp_path):
    result = run_cli("xor", "--explain", "--plot", str(tmp_path / "x.png"))
    assert result.returncode == 2 and "--explain" in result.stderr
    assert not (tmp_path / "x.png").exists()


def test_cli_seeds_plot(both_backends, tmp_path):
    path = tmp_path / "seeds.png"
    result = run_cli("xor", "--seeds", "12", "--epochs", "1000", "--plot", str(path))
    assert result.returncode == 0, result.stderr
    assert_png(path, SEEDS_FIGSIZE)


def test_cli_demo_plot(both_backends, tmp_path):
    result = run_cli("demo", "--backend", "cython", "--plot", str(tmp_path / "figs"))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == [
        "5-classes-20-features.png", "moons.png", "spirals.png"]
    assert_png(tmp_path / "figs" / "moons.png", DEMO_FIGSIZE[2])
    assert_png(tmp_path / "figs" / "spirals.png", DEMO_FIGSIZE[2])
    assert_png(tmp_path / "figs" / "5-classes-20-features.png", DEMO_FIGSIZE[None])

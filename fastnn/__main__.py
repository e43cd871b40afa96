"""python -m fastnn xor | demo | bench: the lesson's XOR network, a tour of generated data sets,
and the benchmark suite's table of speed ratios."""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import fastnn as fnn
from fastnn import data
from fastnn.lesson import (PLATEAU_FALL, XOR_SEED, SeedRuns, grew, on_plateau, plateau_window, right_side, train_seeds,
                           xor_model)

# Figures: size in inches at DPI dots per inch (so the PNGs are 1200×400, 800×450, ... pixels).
DPI = 100
XOR_FIGSIZE = (12, 4)
SEEDS_FIGSIZE = (8, 4.5)
DEMO_FIGSIZE = {2: (10, 4), None: (6, 4)}  # by input size: 2-D data also gets its decision boundary


def _truth_table(model, X, y) -> bool:
    p = model.predict(X)[:, 0]
    ok = right_side(p, y[:, 0])
    print("  x1  x2 | target | output a = P(y=1) | rounded")
    for xi, yi, pi, good in zip(X, y[:, 0], p, ok):
        mark = "ok" if good else "WRONG"
        print(f"  {xi[0]:2.0f}  {xi[1]:2.0f} |   {yi:.0f}    |      {pi:.4f}       |   {round(pi)}  {mark}")
    return bool(np.all(ok))


def _print_seeds(runs: SeedRuns, args, seconds: float, threads: int) -> None:
    n = len(runs.seeds)
    window = plateau_window(args.epochs)
    print(f"XOR with a 2-{args.hidden}-1 network from {n} seeds ({runs.seeds[0]} to {runs.seeds[-1]}): "
          f"sigmoid, binary cross-entropy, full-batch gradient descent (η = {args.lr:g}), "
          f"{args.epochs} epochs each")
    print(f"backend: {fnn.get_backend()}, {threads} threads (fit_parallel; the kernels release the GIL)\n")
    learned, diverged, stuck, falling = (int(m.sum()) for m in (runs.learned, runs.diverged, runs.stuck,
                                                               runs.still_falling))
    rows = [("learned XOR (every output on the right side of 0.5)",
             f"{learned:5d} of {n} ({100 * learned / n:.1f} %)"),
            ("diverged (the loss ended above where it started: try a smaller --lr)", f"{diverged:5d}"),
            (f"stuck on a plateau (loss fell < {PLATEAU_FALL:.0%} in the last {window} epochs)", f"{stuck:5d}")]
    if stuck:
        counts = np.bincount(runs.wrong[runs.stuck], minlength=5)
        rows += [(f"    with {k} pattern{'s' if k > 1 else ''} wrong", f"{counts[k]:5d}")
                 for k in range(1, 5) if counts[k]]
    rows.append(("not learned yet, loss still falling", f"{falling:5d}"))
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label:{width}s} {value}")
    q = np.quantile(runs.final_loss, [0, 0.25, 0.5, 0.75, 1])
    print(f"\nfinal loss: min {q[0]:.4g}, 25 % {q[1]:.4g}, median {q[2]:.4g}, 75 % {q[3]:.4g}, max {q[4]:.4g}")
    edges = [0.0, 1e-3, 1e-2, 1e-1, 1.0, np.inf]
    counts, _ = np.histogram(runs.final_loss, bins=edges)
    names = ["< 0.001", "0.001 to 0.01", "0.01 to 0.1", "0.1 to 1", ">= 1"]
    for name, count in zip(names, counts):
        if count or name != ">= 1":
            print(f"  {name:14s} {count:5d} {'#' * int(round(50 * count / n))}".rstrip())
    failed = runs.seeds[~runs.learned]
    if failed.size:
        shown = ", ".join(str(s) for s in failed[:25])
        if failed.size > 25:
            shown += f", ... ({failed.size - 25} more)"
        print(f"\nseeds that did not learn: {shown}")
        print(f"  ({_program()} xor --seed {failed[0]} --hidden {args.hidden} --epochs {args.epochs} "
              f"--lr {args.lr:g} shows one)")
    total = n * args.epochs
    print(f"\n{n} runs, {total:,} epochs in {seconds:.2f} s on {threads} threads "
          f"({seconds / total * 1e6:.2f} µs per epoch, wall clock)")


def _seeds_figure(runs: SeedRuns, args, path) -> None:
    from fastnn.plot import plt
    fig, ax = plt.subplots(figsize=SEEDS_FIGSIZE, layout="constrained")
    low, high = np.log10(max(runs.final_loss.min(), 1e-12)), np.log10(max(runs.final_loss.max(), 1e-12))
    bins = np.logspace(low - 0.05, high + 0.05, 50)
    groups = [(runs.learned, "learned", "C0"), (runs.diverged, "diverged", "C4"),
              (runs.stuck, "stuck on a plateau", "C3"), (runs.still_falling, "not learned yet, still falling", "C1")]
    ax.hist([runs.final_loss[mask] for mask, _, _ in groups], bins=bins, stacked=True,
            label=[f"{label} ({int(mask.sum())})" for mask, label, _ in groups],
            color=[color for _, _, color in groups])
    ax.set_xscale("log")
    ax.set_xlabel("final loss (binary cross-entropy)")
    ax.set_ylabel("seeds")
    ax.set_title(f"XOR, 2-{args.hidden}-1 network, {len(runs.seeds)} seeds, {args.epochs} epochs each")
    ax.legend()
    _save(fig, path)


def _save(fig, path) -> None:
    from fastnn.plot import plt
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    print(f"wrote {path}")


def _xor_figure(model, history, X, y, path) -> None:
    """Loss curve, decision boundary with the hidden neurons' lines, and the truth table."""
    from fastnn import plot
    fig, (ax_loss, ax_plane, ax_table) = plot.plt.subplots(
        1, 3, figsize=XOR_FIGSIZE, width_ratios=[1.1, 1.1, 0.9], layout="constrained")
    plot.history(history, ax=ax_loss, log=True)
    ax_loss.set_title(f"loss per epoch (η = {model.optimizer.lr:g})")
    plot.decision_boundary(model, X, y, ax=ax_plane)
    ax_plane.set_title(f"output and the {model.dense_layers[0].n_out} hidden neurons' lines")
    p = model.predict(X)[:, 0]
    ok = right_side(p, y[:, 0])
    rows = [[f"{a:g}", f"{b:g}", f"{t:g}", f"{pi:.3f}", "ok" if good else "WRONG"]
            for (a, b), t, pi, good in zip(X, y[:, 0], p, ok)]
    ax_table.axis("off")
    table = ax_table.table(cellText=rows, colLabels=["x1", "x2", "target", "output", ""], loc="center",
                           colWidths=[0.13, 0.13, 0.2, 0.22, 0.28])
    table.auto_set_font_size(False)
    table.set_fontsize(10)
    table.scale(1, 2)
    ax_table.set_title(f"truth table, {len(history.epoch)} epochs\nloss {history.history['loss'][-1]:.4g}")
    _save(fig, path)


def cmd_xor(args) -> int:
    if args.seeds is not None:
        return cmd_xor_seeds(args)
    X, y = data.xor()
    model = xor_model(args.hidden, args.seed, args.lr)
    print(f"XOR with a 2-{args.hidden}-1 network: sigmoid hidden and output, binary cross-entropy, "
          f"full-batch gradient descent (η = {args.lr:g})")
    print(f"backend: {fnn.get_backend()}, dtype float64, seed {args.seed}, {args.epochs} epochs\n")
    start = time.perf_counter()
    if args.explain:
        from fastnn.explain import explain_xor
        explain_xor(model, X, y, args.epochs)
        print()
        final = model.evaluate(X, y)["loss"]
    else:
        try:
            history = model.fit(X, y, epochs=args.epochs, batch_size=None, verbose=0)
        except fnn.TrainingDivergedError as exc:
            print(f"diverged: {exc}")
            return 1
        final = history.history["loss"][-1]
    seconds = time.perf_counter() - start
    learned = _truth_table(model, X, y)
    print(f"\nfinal loss {final:.6f} after {args.epochs} epochs in {seconds:.3f} s "
          f"({seconds / args.epochs * 1e6:.2f} µs per epoch, {fnn.get_backend()} backend)")
    if learned:
        print("learned XOR: every output is on the right side of 0.5")
    elif not args.explain and grew(history.history["loss"]):
        print(f"did NOT learn XOR: the loss grew from {history.history['loss'][0]:.4g} (training diverged); "
              "try a smaller --lr")
    elif not args.explain and on_plateau(history.history["loss"], args.epochs):
        print("did NOT learn XOR: this start is stuck on a plateau (a 2-2-1 sigmoid net has local minima); "
              "try another --seed")
    else:
        print("did NOT learn XOR yet: the loss is still falling; try more --epochs")
    if args.plot:
        _xor_figure(model, history, X, y, args.plot)
    return 0 if learned else 1


def cmd_xor_seeds(args) -> int:
    seeds = range(args.seed, args.seed + args.seeds)
    threads = min(os.cpu_count() or 1, args.seeds)  # what fit_parallel uses by default
    start = time.perf_counter()
    runs = train_seeds(seeds, args.hidden, args.epochs, args.lr)
    seconds = time.perf_counter() - start
    _print_seeds(runs, args, seconds, threads)
    if args.plot:
        _seeds_figure(runs, args, args.plot)
    return 0


def _shuffled(X, y, seed: int):
    """moons and spirals come sorted by class: shuffle once, so the last 20 % (the test split) holds both."""
    order = np.random.default_rng(seed).permutation(len(X))
    return X[order], y[order]


def _demo_sets():
    Xm, ym = _shuffled(*data.moons(1000, noise=0.15, seed=1), seed=1)
    Xs, ys = _shuffled(*data.spirals(1000, noise=0.15, seed=2), seed=2)
    Xc, yc = data.classification(20000, n_features=20, n_classes=5, seed=3)
    return [  # name, X, labels, hidden sizes, activation, epochs
        ("moons", Xm, ym, [16, 16], "tanh", 200),
        ("spirals", Xs, ys, [64, 64], "relu", 300),
        ("5 classes, 20 features", Xc, yc, [64, 32], "relu", 10),
    ]


def _demo_figure(name, model, history, X, labels, test_accuracy, path) -> None:
    """The training history and, for 2-D data, the decision boundary over the test points."""
    from fastnn import plot
    two_d = X.shape[1] == 2
    fig, axes = plot.plt.subplots(1, 2 if two_d else 1, figsize=DEMO_FIGSIZE[2 if two_d else None],
                                  layout="constrained", squeeze=False)
    plot.history(history, ax=axes[0, 0])
    axes[0, 0].set_title(f"{name}: training history")
    if two_d:
        plot.decision_boundary(model, X, labels, ax=axes[0, 1])
        axes[0, 1].set_title(f"test points, accuracy {test_accuracy:.3f}")
    _save(fig, path)


def cmd_demo(args) -> int:
    backends = [args.backend] if args.backend else fnn.available_backends()
    print(f"{'data set':26s} {'backend':8s} {'train acc':>9s} {'test acc':>9s} {'time':>8s}")
    figures = []
    for name, X, labels, hidden, act, epochs in _demo_sets():
        n_classes = int(labels.max()) + 1
        split = int(0.8 * len(X))
        sizes = [X.shape[1]] + hidden
        for backend in backends:
            with fnn.use_backend(backend):
                layers = [fnn.Dense(a, b, activation=act) for a, b in zip(sizes[:-1], sizes[1:])]
                layers.append(fnn.Dense(sizes[-1], n_classes, activation="softmax"))
                model = fnn.Sequential(layers, seed=0, dtype="float32")
                model.compile(loss="sparse_categorical_crossentropy", optimizer=fnn.Adam(lr=0.003))
                start = time.perf_counter()
                history = model.fit(X[:split], labels[:split], epochs=epochs, batch_size=32, verbose=0)
                seconds = time.perf_counter() - start
                train = model.evaluate(X[:split], labels[:split])["accuracy"]
                test = model.evaluate(X[split:], labels[split:])["accuracy"]
            print(f"{name:26s} {backend:8s} {train:9.3f} {test:9.3f} {seconds:7.2f}s")
            if args.plot and backend == backends[0]:  # one figure per data set, from the first backend
                slug = "-".join("".join(c if c.isalnum() else " " for c in name).split())
                path = Path(args.plot) / f"{slug}.png"
                figures.append((name, model, history, X[split:], labels[split:], test, path))
    for figure in figures:
        _demo_figure(*figure)
    return 0


def cmd_bench(args) -> int:
    from fastnn import benchreport
    return benchreport.main(quick=args.quick, as_json=args.json, path=args.path, pytest_args=args.pytest_args)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _seed(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not (value > 0 and value < float("inf")):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _figure_path(text: str) -> str:
    """A PNG (or other matplotlib format) path whose folder exists and can be written, checked
    before any training."""
    path = Path(text)
    if text.endswith(("/", os.sep)) or path.is_dir() or path.name in ("", ".", ".."):
        raise argparse.ArgumentTypeError(f"{text!r} is a folder; give a file name such as xor.png")
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in ("png", "pdf", "svg", "jpg", "jpeg", "eps", "ps", "tif", "tiff", "webp"):
        raise argparse.ArgumentTypeError(f"{text!r}: the file name must end in .png (or .pdf, .svg, ...)")
    _writable_folder(path.parent if str(path.parent) else Path("."))
    return text


def _figure_folder(text: str) -> str:
    _writable_folder(Path(text))
    return text


def _writable_folder(folder: Path) -> None:
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent  # missing folders are made, inside one that exists
    try:  # a real file, made and removed: some folders (/proc) refuse files their mode allows
        if not existing.is_dir():
            raise NotADirectoryError(str(existing))
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"cannot write into {str(folder)!r} ({exc.strerror or exc})") from None


def _program() -> str:
    return "fastnn" if Path(sys.argv[0]).name == "fastnn" else "python -m fastnn"


def main(argv=None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:  # the reader went away (| head): no traceback, and no second one at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _main(argv=None) -> int:
    defaults = argparse.ArgumentDefaultsHelpFormatter
    parser = argparse.ArgumentParser(prog=_program(), description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {fnn.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("xor", help="train the lesson's 2-2-1 XOR network and print its truth table",
                       formatter_class=defaults)
    xor = p
    p.add_argument("--explain", action="store_true", help="print the math of the first steps")
    p.add_argument("--epochs", type=_positive_int, default=10_000, help="full-batch epochs of training")
    p.add_argument("--lr", type=_positive_float, default=0.5, help="the learning rate η of gradient descent")
    p.add_argument("--seed", type=_seed, default=XOR_SEED, help="the seed of the starting weights")
    p.add_argument("--hidden", type=_positive_int, default=2, help="hidden neurons (2 in the lesson)")
    p.add_argument("--backend", choices=fnn.backend.BACKENDS, help="default: the compiled one when built")
    p.add_argument("--seeds", type=_positive_int, metavar="N",
                   help="train from N seeds (--seed, --seed + 1, ...) in parallel threads and count how "
                        "many learn XOR")
    p.add_argument("--plot", metavar="PNG", type=_figure_path, help="write a figure: loss curve, decision "
                   f"boundary and truth table ({XOR_FIGSIZE[0] * DPI}x{XOR_FIGSIZE[1] * DPI} px); with --seeds a "
                   f"histogram of final losses ({SEEDS_FIGSIZE[0] * DPI:.0f}x{SEEDS_FIGSIZE[1] * DPI:.0f} px). "
                   'Needs matplotlib: pip install "fastnn[plot]"')
    p.set_defaults(run=cmd_xor)
    p = sub.add_parser("demo", help="train on generated data sets, accuracy and time per backend",
                       formatter_class=defaults)
    p.add_argument("--backend", choices=fnn.backend.BACKENDS, help="default: every available backend")
    p.add_argument("--plot", metavar="DIR", type=_figure_folder, help="write a figure per data set into DIR "
                   '(history; decision boundary for 2-D data). Needs matplotlib: pip install "fastnn[plot]"')
    p.set_defaults(run=cmd_demo)
    p = sub.add_parser("bench", help="run the benchmark suite (bench/) and print the table of ratios")
    p.add_argument("--quick", action="store_true", help="a short pass: less data, one round")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--path", help="the bench/ folder (default: ./bench)")
    p.add_argument("pytest_args", nargs="*", help="passed to pytest, e.g. -- -k xor")
    p.set_defaults(run=cmd_bench)
    args = parser.parse_args(argv)
    if args.command == "xor" and args.explain and (args.plot or args.seeds is not None):
        xor.error("--explain prints the math of one run; use it without --plot and --seeds")
    if getattr(args, "plot", None):
        try:  # before any training: a missing matplotlib should not cost a whole run
            from fastnn import plot  # noqa: F401
        except ImportError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    if getattr(args, "backend", None) and args.command == "xor":
        fnn.set_backend(args.backend)
    try:
        return args.run(args)
    except (ValueError, ImportError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

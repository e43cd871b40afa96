"""python -m fastnn xor | demo | bench: the lesson's XOR network, a tour of generated data sets,
and the benchmark suite's table of speed ratios."""
import argparse
import sys
import time

import numpy as np

import fastnn as fnn
from fastnn import data

XOR_SEED = 0  # converges on both backends (tests/test_xor.py checks it); some seeds do not


def xor_model(hidden: int = 2, seed=XOR_SEED, lr: float = 0.5, dtype: str = "float64") -> fnn.Sequential:
    """The lesson's network: 2 inputs, `hidden` sigmoid neurons, 1 sigmoid output, cross-entropy, GD."""
    model = fnn.Sequential([fnn.Dense(2, hidden, activation="sigmoid"),
                            fnn.Dense(hidden, 1, activation="sigmoid")], seed=seed, dtype=dtype)
    model.compile(loss="binary_crossentropy", optimizer=fnn.SGD(lr=lr))
    return model


def _truth_table(model, X, y) -> bool:
    p = model.predict(X)[:, 0]
    print("  x1  x2 | target | output a = P(y=1) | rounded")
    for xi, yi, pi in zip(X, y[:, 0], p):
        mark = "ok" if round(pi) == yi else "WRONG"
        print(f"  {xi[0]:2.0f}  {xi[1]:2.0f} |   {yi:.0f}    |      {pi:.4f}       |   {round(pi)}  {mark}")
    return bool(np.all(np.round(p) == y[:, 0]))


def cmd_xor(args) -> int:
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
        history = model.fit(X, y, epochs=args.epochs, batch_size=None, verbose=0)
        final = history.history["loss"][-1] if args.epochs else model.evaluate(X, y)["loss"]
    seconds = time.perf_counter() - start
    learned = _truth_table(model, X, y)
    print(f"\nfinal loss {final:.6f} after {args.epochs} epochs in {seconds:.3f} s "
          f"({seconds / max(args.epochs, 1) * 1e6:.2f} µs per epoch, {fnn.get_backend()} backend)")
    if learned:
        print("learned XOR: every output is on the right side of 0.5")
    else:
        print("did NOT learn XOR: this start is stuck (a 2-2-1 sigmoid net has local minima); "
              "try another --seed or more --epochs")
    return 0 if learned else 1


def _demo_sets():
    Xm, ym = data.moons(1000, noise=0.15, seed=1)
    Xs, ys = data.spirals(1000, noise=0.15, seed=2)
    Xc, yc = data.classification(20000, n_features=20, n_classes=5, seed=3)
    return [  # name, X, labels, hidden sizes, activation, epochs
        ("moons", Xm, ym, [16, 16], "tanh", 200),
        ("spirals", Xs, ys, [64, 64], "relu", 300),
        ("5 classes, 20 features", Xc, yc, [64, 32], "relu", 10),
    ]


def cmd_demo(args) -> int:
    backends = [args.backend] if args.backend else fnn.available_backends()
    print(f"{'data set':26s} {'backend':8s} {'train acc':>9s} {'test acc':>9s} {'time':>8s}")
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
                model.fit(X[:split], labels[:split], epochs=epochs, batch_size=32, verbose=0)
                seconds = time.perf_counter() - start
                train = model.evaluate(X[:split], labels[:split])["accuracy"]
                test = model.evaluate(X[split:], labels[split:])["accuracy"]
            print(f"{name:26s} {backend:8s} {train:9.3f} {test:9.3f} {seconds:7.2f}s")
    return 0


def cmd_bench(args) -> int:
    from fastnn import benchreport
    return benchreport.main(quick=args.quick, as_json=args.json, path=args.path, pytest_args=args.pytest_args)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fastnn", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("xor", help="train the lesson's 2-2-1 XOR network and print its truth table")
    p.add_argument("--explain", action="store_true", help="print the math of the first steps")
    p.add_argument("--epochs", type=int, default=10_000)
    p.add_argument("--lr", type=float, default=0.5)
    p.add_argument("--seed", type=int, default=XOR_SEED)
    p.add_argument("--hidden", type=int, default=2, help="hidden neurons (2 in the lesson)")
    p.add_argument("--backend", choices=fnn.backend.BACKENDS)
    p.set_defaults(run=cmd_xor)
    p = sub.add_parser("demo", help="train on generated data sets, accuracy and time per backend")
    p.add_argument("--backend", choices=fnn.backend.BACKENDS, help="default: every available backend")
    p.set_defaults(run=cmd_demo)
    p = sub.add_parser("bench", help="run the benchmark suite (bench/) and print the table of ratios")
    p.add_argument("--quick", action="store_true", help="a short pass: less data, one round")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--path", help="the bench/ folder (default: ./bench)")
    p.add_argument("pytest_args", nargs="*", help="passed to pytest, e.g. -- -k xor")
    p.set_defaults(run=cmd_bench)
    args = parser.parse_args(argv)
    if getattr(args, "backend", None) and args.command == "xor":
        fnn.set_backend(args.backend)
    try:
        return args.run(args)
    except (ValueError, ImportError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

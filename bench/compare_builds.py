"""Is one build of fastnn as fast as another? Both timed in turn, in one run, on the same machine.

    python bench/compare_builds.py OLD_SRC NEW_SRC [--rounds N] [--threads 1] [--cpus 0]

Each SRC is a source checkout with the extension built in place (fastnn/_kernels*.so present).
The workloads are the training cases of bench/bench_xor.py and bench/bench_mlp.py, configured as
there (copied, not imported: this tool runs against two different builds):
  xor     2-2-1 sigmoid, binary cross-entropy, SGD lr 0.5, float64, full batch, 10,000 epochs;
  small   20-32-32-2 ReLU/softmax, sparse categorical cross-entropy, SGD lr 0.05 momentum 0.9,
          float32, 20,000 samples, batch 32, one epoch in order;
  medium  128-512-512-10, the same, 100,000 samples, batch 256;
  digits  fastnn.sklearn's MLPClassifier(hidden_layer_sizes=(64,), random_state=0), its defaults
          (float64, adam, batch 200), on scikit-learn's digits split as bench/bench_sklearn.py
          splits it: a whole fit, stopping rules included (needs scikit-learn).
--workloads picks some of them (comma-separated; default all).

Method: every round runs, for each workload, OLD and NEW one after the other (which goes first
alternates between rounds), each in a fresh Python process with PYTHONPATH=SRC, its working
directory outside both checkouts, FASTNN_REQUIRE_EXTENSION=1 and OPENBLAS_NUM_THREADS /
OMP_NUM_THREADS = --threads (other OPENBLAS_* and FASTNN_* settings are inherited by both).
The process checks it imported fastnn and fastnn._kernels from SRC, builds untimed a fresh model
for every fit, fits untimed for at least 0.3 s (bench/common.py's warm-up), then times fits with
time.perf_counter and reports the best (shortest) one, and whether the last model learned, as
JSON: on a shared host the noise only ever adds time, in bursts that a median of fits still shows.
The summary gives, per workload, each build's median over rounds and the median of the
per-round ratios new/old with their min-max: the two runs of a round see the same machine, so
the ratio cancels the slow drifts of a shared host; a ratio above 1 means NEW is slower.
Both builds' processes are pinned to the same cores, the first --threads of those this process
may use (as bench/common.py's threads()), or those given by --cpus: cores of one shared host can
run the same work at different speeds.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

# name: (description, timed fits at least, timed seconds at least)
WORKLOADS = {"xor": ("XOR 2-2-1, 10,000 epochs, full batch", 20, 0.5),
             "small": ("20-32-32-2, 20,000 samples, batch 32", 20, 0.5),
             "medium": ("128-512-512-10, 100,000 samples, batch 256", 3, 0.0),
             "digits": ("digits, fastnn.sklearn MLPClassifier (64,), float64", 5, 0.5)}

CHILD = r"""
import json, os, sys, time
import numpy as np
import fastnn as fnn
import fastnn._kernels

name, src, min_fits, min_seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
files = [os.path.realpath(fnn.__file__), os.path.realpath(fastnn._kernels.__file__)]
assert all(f.startswith(os.path.realpath(src) + os.sep) for f in files), files
assert fnn.get_backend() == "cython", fnn.get_backend()

if name == "xor":
    X, y = fnn.data.xor()

    def build():
        model = fnn.Sequential([fnn.Dense(2, 2, activation="sigmoid"),
                                fnn.Dense(2, 1, activation="sigmoid")], seed=0, dtype="float64")
        model.compile(loss="binary_crossentropy", optimizer=fnn.SGD(lr=0.5))
        return model

    def fit(model):
        model.fit(X, y, epochs=10_000, batch_size=None, verbose=0)

    def learned(model):
        return bool(np.array_equal(np.round(model.predict(X).reshape(-1, 1)), y))
elif name == "digits":
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from fastnn.sklearn import MLPClassifier
    X, X_test, y, y_test = train_test_split(*load_digits(return_X_y=True), random_state=0)

    def build():
        return MLPClassifier(hidden_layer_sizes=(64,), random_state=0)

    def fit(model):
        model.fit(X, y)

    def learned(model):
        return bool(model.score(X_test, y_test) > 0.9)
else:
    n, sizes, batch = {"small": (20_000, [20, 32, 32, 2], 32),
                       "medium": (100_000, [128, 512, 512, 10], 256)}[name]
    X, y = fnn.data.classification(n, n_features=sizes[0], n_classes=sizes[-1], seed=0, dtype="float32")

    def build():
        layers = [fnn.Dense(a, b, activation="relu") for a, b in zip(sizes[:-2], sizes[1:-1])]
        layers.append(fnn.Dense(sizes[-2], sizes[-1], activation="softmax"))
        model = fnn.Sequential(layers, seed=0, dtype="float32")
        model.compile("sparse_categorical_crossentropy", fnn.SGD(lr=0.05, momentum=0.9))
        return model

    def fit(model):
        model.fit(X, y, epochs=1, batch_size=batch, shuffle=False, verbose=0)

    def learned(model):
        return bool(np.mean(model.predict(X).argmax(1) == y) > 1.5 / sizes[-1])

start = time.perf_counter()
while True:
    fit(build())
    if time.perf_counter() - start >= 0.3:
        break
seconds = []
while len(seconds) < min_fits or sum(seconds) < min_seconds:
    model = build()
    t = time.perf_counter()
    fit(model)
    seconds.append(time.perf_counter() - t)
print(json.dumps({"seconds": min(seconds), "fits": len(seconds),
                  "learned": learned(model), "files": files}))
"""


def run(src: str, workload: str, args, cwd: str) -> dict:
    env = dict(os.environ, PYTHONPATH=src, FASTNN_REQUIRE_EXTENSION="1",
               OPENBLAS_NUM_THREADS=str(args.threads), OMP_NUM_THREADS=str(args.threads))
    env.pop("FASTNN_BACKEND", None)
    _, min_fits, min_seconds = WORKLOADS[workload]
    out = subprocess.run([sys.executable, "-c", CHILD, workload, src, str(min_fits), str(min_seconds)],
                         env=env, cwd=cwd, capture_output=True, text=True,
                         preexec_fn=lambda: os.sched_setaffinity(0, args.cpus))
    if out.returncode:
        sys.exit(f"{workload} with {src} failed:\n{out.stderr}")
    return json.loads(out.stdout.splitlines()[-1])


def cpu_model() -> str:
    try:
        lines = subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
    except OSError:
        return "unknown (no lscpu)"
    return next((l.split(":", 1)[1].strip() for l in lines if l.startswith("Model name")), "unknown")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old_src")
    parser.add_argument("new_src")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workloads", type=lambda s: s.split(","), default=list(WORKLOADS),
                        help=f"comma-separated, of {', '.join(WORKLOADS)}")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cpus", type=lambda s: {int(c) for c in s.split(",")}, default=None,
                        help="comma-separated cores to pin both builds' processes to")
    args = parser.parse_args()
    unknown = sorted(set(args.workloads) - set(WORKLOADS))
    if unknown:
        parser.error(f"--workloads: unknown {', '.join(unknown)}; choose from {', '.join(WORKLOADS)}")
    args.cpus = args.cpus or set(sorted(os.sched_getaffinity(0))[:args.threads])
    builds = {"old": os.path.abspath(args.old_src), "new": os.path.abspath(args.new_src)}
    set_here = ("OPENBLAS_NUM_THREADS", "FASTNN_REQUIRE_EXTENSION", "FASTNN_BACKEND")
    inherited = " ".join(f"{k}={v}" for k, v in sorted(os.environ.items())
                         if k.startswith(("OPENBLAS_", "FASTNN_")) and k not in set_here)
    print(f"CPU: {cpu_model()}; {os.cpu_count()} cores; threads {args.threads}; rounds {args.rounds}; "
          f"pinned to cores {sorted(args.cpus)}; python {sys.executable}")
    print(f"inherited: {inherited or 'none'}")
    for label, src in builds.items():
        print(f"{label}: {src}")

    seconds = {(w, b): [] for w in args.workloads for b in builds}
    with tempfile.TemporaryDirectory(prefix="fastnn_compare_") as cwd:
        for r in range(args.rounds):
            order = ["old", "new"] if r % 2 == 0 else ["new", "old"]
            for workload in args.workloads:
                for label in order:
                    res = run(builds[label], workload, args, cwd)
                    seconds[workload, label].append(res["seconds"])
                    print(f"round {r + 1} {workload:6} {label} {res['seconds'] * 1e3:9.3f} ms "
                          f"(best of {res['fits']}){'' if res['learned'] else ' DID NOT LEARN'}  "
                          f"{res['files'][0]}  {res['files'][1]}", flush=True)

    print("\nms: each build's median over rounds of its runs' best fit; ratio: per round, new/old")
    print(f"{'workload':50} {'old ms':>10} {'new ms':>10}   ratio median [min-max]")
    for workload in args.workloads:
        description = WORKLOADS[workload][0]
        old, new = seconds[workload, "old"], seconds[workload, "new"]
        ratios = [n / o for o, n in zip(old, new)]
        print(f"{workload + ': ' + description:50} {statistics.median(old) * 1e3:10.3f} "
              f"{statistics.median(new) * 1e3:10.3f}   {statistics.median(ratios):.3f} "
              f"[{min(ratios):.3f}-{max(ratios):.3f}]")


if __name__ == "__main__":
    main()

"""What Keras' training features cost: the network of examples/keras_tabular.py with all of them
(Dropout, an L2 kernel penalty, AdamW with a cosine schedule and clipnorm, class weights, an extra
metric) against the same fit without them, interleaved in every round, and each feature alone."""
import numpy as np
import pytest

import fastnn as fnn

from common import interleaved, threads

# name: what the fit adds to the plain network and Adam
FEATURES = {
    "dropout": dict(dropout=0.2),
    "l2 penalty": dict(penalty=1e-5),
    "AdamW + cosine schedule + clipnorm": dict(schedule=True),
    "metric mae": dict(metrics=["accuracy", "mae"]),
    "class weights": dict(class_weight={0: 1.0, 1: 4.0}),
}
ALL = {key: value for options in FEATURES.values() for key, value in options.items()}


def data(quick: bool):
    rng = np.random.default_rng(0)
    n, d = (4_000 if quick else 16_000), 20
    X = rng.standard_normal((n, d)).astype(np.float32)
    return X, (X @ rng.standard_normal(d) > 0.8).astype(np.float32)


def make(width: int, steps: int, dropout=0.0, penalty=0.0, schedule=False, metrics=None, class_weight=None):
    """(model, fit's extra keywords) for a 20-width-width/2-1 network with the given features;
    steps: the fit's optimizer steps, which the schedule spans."""
    layers = [fnn.Dense(20, width, "relu", kernel_regularizer=fnn.regularizers.l2(penalty) if penalty else None)]
    if dropout:
        layers.append(fnn.Dropout(dropout))
    layers.append(fnn.Dense(width, width // 2, "relu"))
    if dropout:
        layers.append(fnn.Dropout(dropout / 2))
    layers.append(fnn.Dense(width // 2, 1, "sigmoid"))
    model = fnn.Sequential(layers, seed=0)
    if schedule:
        rate = fnn.optimizers.schedules.CosineDecay(1e-4, decay_steps=steps, warmup_target=3e-3,
                                                    warmup_steps=steps // 10)
        optimizer = fnn.AdamW(learning_rate=rate, weight_decay=1e-4, clipnorm=1.0)
    else:
        optimizer = fnn.Adam(learning_rate=1e-3)
    model.compile("binary_crossentropy", optimizer, metrics=metrics)
    return model, {} if class_weight is None else {"class_weight": class_weight}


@pytest.mark.parametrize("width, batch", [(64, 64), (256, 256)], ids=["20-64-32-1 batch 64", "20-256-128-1 batch 256"])
def test_keras_features_cost(benchmark, rounds, quick, width, batch):
    benchmark.group = f"keras features: {width}-wide network, batch {batch}, 3 epochs, interleaved"
    if "cython" not in fnn.available_backends():
        pytest.skip("compiled backend not built")
    X, y = data(quick)
    steps = 3 * -(-int(0.8 * len(X)) // batch)

    def entry(options):
        def run(made):
            model, keywords = made
            model.fit(X, y, epochs=3, batch_size=batch, validation_split=0.2, verbose=0, **keywords)
            return model
        return run, 3 * len(X), lambda: make(width, steps, **options)

    runs = {"plain": entry({}), "all features": entry(ALL)}
    runs.update({name: entry(options) for name, options in FEATURES.items()})
    with threads(1):
        results, _ = interleaved(benchmark, runs, 2 * rounds, "sample")
    majority = max(np.mean(y), 1 - np.mean(y))
    for name, model in results.items():
        assert model.evaluate(X, y)["accuracy"] > majority + 0.1, name  # each variant learned

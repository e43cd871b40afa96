"""A Keras user's MLP script for a tabular problem, run by fastnn: only the two import lines differ
from the Keras original (`import keras` and `from keras import layers`).

    python examples/keras_tabular.py [workdir]

An imbalanced binary problem (1 positive in 5) with 20 features: Dense layers given only their
units, Dropout, AdamW with a cosine schedule and warm-up, class weights, validation_split,
metrics, EarlyStopping and ModelCheckpoint; then the best checkpoint is loaded and trained on.
"""
import os
import sys
import time

import numpy as np

import fastnn as keras  # Keras: import keras
from fastnn import layers  # Keras: from keras import layers

workdir = sys.argv[1] if len(sys.argv) > 1 else "."
rng = np.random.default_rng(0)
n, n_features = 20_000, 20
X = rng.standard_normal((n, n_features)).astype("float32")
w = rng.standard_normal(n_features)
score = X @ w / np.sqrt(n_features) + 0.5 * np.sin(3 * X[:, 0]) * X[:, 1]
y = (score > np.quantile(score, 0.8)).astype("float32")  # 20% positives
X_train, X_test, y_train, y_test = X[:16_000], X[16_000:], y[:16_000], y[16_000:]

model = keras.Sequential([
    keras.Input(shape=(n_features,)),
    layers.Dense(64, activation="relu", kernel_regularizer=keras.regularizers.l2(1e-5)),
    layers.Dropout(0.2),
    layers.Dense(32, activation="relu"),
    layers.Dropout(0.1),
    layers.Dense(1, activation="sigmoid"),
])
batch_size, epochs = 64, 30
steps = epochs * int(np.ceil(0.8 * len(X_train) / batch_size))
schedule = keras.optimizers.schedules.CosineDecay(1e-4, decay_steps=steps, warmup_target=3e-3,
                                                  warmup_steps=steps // 10)
model.compile(optimizer=keras.optimizers.AdamW(learning_rate=schedule, weight_decay=1e-4),
              loss="binary_crossentropy", metrics=["accuracy", "mae"])
model.summary()

best = os.path.join(workdir, "best.keras")
callbacks = [keras.callbacks.EarlyStopping(monitor="val_loss", patience=5, restore_best_weights=True),
             keras.callbacks.ModelCheckpoint(best, monitor="val_loss", save_best_only=True)]
started = time.perf_counter()
history = model.fit(X_train, y_train, batch_size=batch_size, epochs=epochs, validation_split=0.2,
                    class_weight={0: 1.0, 1: 4.0}, callbacks=callbacks, verbose=2)
print(f"fit: {len(history.epoch)} epochs in {time.perf_counter() - started:.1f} s")
print("test:", model.evaluate(X_test, y_test, verbose=0, return_dict=True))

restored = keras.models.load_model(best)
print("best checkpoint, test:", restored.evaluate(X_test, y_test, verbose=0, return_dict=True))
more = restored.fit(X_train, y_train, batch_size=batch_size, epochs=restored.epochs_trained + 3,
                    initial_epoch=restored.epochs_trained, validation_split=0.2, class_weight={0: 1.0, 1: 4.0},
                    verbose=2)
print("after 3 more epochs, test:", restored.evaluate(X_test, y_test, verbose=0, return_dict=True))

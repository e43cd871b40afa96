"""`python -m fastnn xor --explain`: the lesson's cycle printed with the real numbers.

Forward z = w·x + b, a = σ(z); the loss; backpropagation δ = ∂L/∂z, ∂L/∂w, ∂L/∂b; the update
w ← w − η ∂L/∂w. The loss, the gradients, each pattern's δ and the update come from the training
step that fit runs (fastnn.trainer); a comes from the network's forward pass (the kernels
predict uses), and only z = w·a + b is recomputed here, for display, because neither keeps it.
"""
from typing import Callable

import numpy as np

from . import trainer


def _neuron_names(model) -> list[list[str]]:
    names = []
    for l, layer in enumerate(model.dense_layers):
        last = l == len(model.dense_layers) - 1
        names.append([("o" if last else "h") + (str(j + 1) if layer.n_out > 1 or not last else "")
                      for j in range(layer.n_out)])
    return names


def _forward(model, X: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """z and a = f(z) of every layer for X, (n, n_out) each: a from the network's forward pass, z
    recomputed from the layer's input for display."""
    network = model.network
    acts = network.layer_outputs(X)
    zs = [a_in @ W + b for a_in, W, b in zip([X] + acts[:-1], network.W, network.b)]
    return zs, acts


def _print_parameters(model, names, out) -> None:
    for l, layer in enumerate(model.dense_layers):
        for j, name in enumerate(names[l]):
            w = ", ".join(f"{v:+.4f}" for v in layer.W[:, j])
            out(f"  {name:>3}: w = [{w}]  b = {layer.b[j]:+.4f}")


def _deltas(model, X: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    """δ = ∂L/∂z of every layer for each pattern, (n, n_out) per layer, L the batch's mean loss: the
    bias gradient of a one-pattern pass of the training step, its loss scaled by 1/n."""
    n = X.shape[0]
    network = model.network
    scratch = np.empty_like(network.grads)
    deltas = [np.empty((n, layer.n_out)) for layer in model.dense_layers]
    for i in range(n):
        trainer.gradient(network, model.loss_code, trainer.Data(X[i:i + 1], y[i:i + 1]), loss_scale=1.0 / n,
                         grads=scratch)
        for l, s in enumerate(network.slices):
            deltas[l][i] = scratch[s.b_at:s.end]
    return deltas


def explain_step(model, X: np.ndarray, y: np.ndarray, step: int, out: Callable[[str], None] = print) -> float:
    """Print one full-batch training step of `model` on (X, y) and take it. Returns the loss."""
    names = _neuron_names(model)
    lr = model.optimizer.lr
    n = X.shape[0]
    data = trainer.Data.for_model(model, X, y)
    network = model.network
    out(f"\n=== step {step} " + "=" * 60)
    out("forward: every neuron computes z = w·x + b, then a = σ(z) = 1 / (1 + e^(−z))")
    zs, acts = _forward(model, data.X)
    for i in range(n):
        cells = []
        for l in range(len(model.dense_layers)):
            for j, name in enumerate(names[l]):
                cells.append(f"{name} z={zs[l][i, j]:+.3f} a={acts[l][i, j]:.3f}")
        x = ", ".join(f"{v:g}" for v in X[i])
        out(f"  x = ({x}) → " + " | ".join(cells) + f"   target {y[i, 0]:g}")
    loss, _ = trainer.gradient(network, model.loss_code, data)
    out(f"loss: L = mean over the {n} patterns of −[y·log a + (1−y)·log(1−a)] = {loss:.6f}")
    out("backward: δ = ∂L/∂z. Output: δ = (a − y)/" + str(n) +
        ". Hidden: δ = (Σ δ_next · w_next) · a(1 − a). Then ∂L/∂w = Σ δ·(input), ∂L/∂b = Σ δ.")
    before = [(W.copy(), b.copy(), dW.copy(), db.copy())
              for W, b, dW, db in zip(network.W, network.b, network.dW, network.db)]
    deltas = _deltas(model, data.X, data.y)
    for l in range(len(model.dense_layers) - 1, -1, -1):
        for j, name in enumerate(names[l]):
            d = ", ".join(f"{v:+.4f}" for v in deltas[l][:, j])
            out(f"  {name:>3}: δ per pattern = [{d}]")
    out(f"update: w ← w − η·∂L/∂w with η = {lr:g}")
    step_of_fit = trainer.Trainer(network, model.loss_code, data, batch=n, update=model.optimizer.update())
    result = step_of_fit.epochs(1, step=model.optimizer.iterations)
    model.optimizer.iterations = result.step
    if result.stopped:
        raise KeyboardInterrupt
    for l, layer in enumerate(model.dense_layers):
        W0, b0, dW, db = before[l]
        inputs = names[l - 1] if l else [f"x{i + 1}" for i in range(layer.n_in)]
        for j, name in enumerate(names[l]):
            for i, src in enumerate(inputs):
                out(f"  {name}.w[{src}]: {W0[i, j]:+.4f} − {lr:g}·({dW[i, j]:+.4f}) = {layer.W[i, j]:+.4f}")
            out(f"  {name}.b    : {b0[j]:+.4f} − {lr:g}·({db[j]:+.4f}) = {layer.b[j]:+.4f}")
    return loss


def explain_xor(model, X: np.ndarray, y: np.ndarray, epochs: int, steps: int = 2,
                out: Callable[[str], None] = print) -> None:
    """Print the first `steps` steps in full, then train to `epochs` and show how the loss fell."""
    names = _neuron_names(model)
    out("A network is layers of neurons; each has weights w and a bias b. The starting weights "
        "(random, seeded):")
    _print_parameters(model, names, out)
    losses = [explain_step(model, X, y, s + 1, out) for s in range(min(steps, epochs))]
    remaining = epochs - len(losses)
    if remaining > 0:
        history = model.fit(X, y, epochs=remaining, batch_size=None, verbose=0)
        losses += history.history["loss"]
    out("\n=== how the loss fell " + "=" * 50)
    marks = sorted({1, 2, 10, 100, 1000, 5000, epochs} & set(range(1, epochs + 1)))
    for e in marks:
        out(f"  epoch {e:>6}: loss {losses[e - 1]:.6f}")
    out("learned parameters:")
    _print_parameters(model, names, out)

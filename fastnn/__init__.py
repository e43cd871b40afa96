"""fastnn: a small neural-network framework whose hot paths are compiled Cython kernels.

    import fastnn as fnn
    model = fnn.Sequential([fnn.Dense(2, 2, activation="sigmoid"),
                            fnn.Dense(2, 1, activation="sigmoid")], seed=0, dtype="float64")
    model.compile(loss="binary_crossentropy", optimizer=fnn.SGD(lr=0.5))
    model.fit(X, y, epochs=10_000, batch_size=None, verbose=0)
"""
from . import callbacks, data, layers, metrics, models, optimizers, regularizers, schedules
from .backend import available_backends, get_backend, set_backend, use_backend
from .config import show_config
from .callbacks import Callback, EarlyStopping, History, LearningRateScheduler, ModelCheckpoint, ReduceLROnPlateau
from .gradcheck import gradcheck
from .layers import Dense, Dropout, Input
from .model import Sequential, TrainingDivergedError, load
from .optimizers import SGD, Adam, AdamW, RMSprop
from .parallel import fit_parallel
from .threads import get_num_threads, set_num_threads

__version__ = "0.1.0"
__all__ = ["Adam", "AdamW", "Callback", "Dense", "Dropout", "EarlyStopping", "History", "Input",
           "LearningRateScheduler", "ModelCheckpoint", "ReduceLROnPlateau", "RMSprop", "Sequential", "SGD",
           "TrainingDivergedError", "available_backends", "callbacks", "data", "fit_parallel", "get_backend",
           "get_num_threads", "gradcheck", "layers", "load", "metrics", "models", "optimizers",
           "regularizers", "schedules", "set_backend", "set_num_threads", "show_config", "use_backend"]

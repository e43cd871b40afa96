"""Keras' `keras.models` names: the model class and load_model (fnn.load)."""
from .model import Sequential, load as load_model

__all__ = ["Sequential", "load_model"]

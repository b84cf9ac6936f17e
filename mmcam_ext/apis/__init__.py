"""Library API: the batched engine and the inferencer."""
from .engine import CAMEngine, normalize_maps

__all__ = ['CAMEngine', 'normalize_maps']

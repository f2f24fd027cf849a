"""The torch device of a ``device`` config key (``train.device``, ``evaluate.device``)."""

from __future__ import annotations

import torch

from nowcast.errors import UserError


def resolve_device(name: str, key: str) -> torch.device:
    """``auto`` → ``cuda`` when torch sees a GPU, else ``cpu``; ``cpu`` and ``cuda`` as given.

    ``cuda`` without a GPU is a UserError naming ``key`` (the config key that asked for it).
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError(f"{key}: cuda requested, but torch {torch.__version__} sees no CUDA GPU")
    return torch.device(name)

"""`nowcast predict`: new radar files → the checkpoint's preprocessing → model → CF-netCDF.

One job per module: :mod:`~nowcast.predict.trained` (what the checkpoint prescribes),
:mod:`~nowcast.predict.inputs` (which frames, and the checks on them),
:mod:`~nowcast.predict.pipeline` (the steps, and :func:`predict`),
:mod:`~nowcast.predict.writer` (the CF-1.8 file), :mod:`~nowcast.predict.pictures` (PNG/GIF).
:func:`predict` is imported on first use, so that importing one submodule stays light.
"""

from __future__ import annotations

from typing import Any

__all__ = ["predict"]


def __getattr__(name: str) -> Any:
    if name == "predict":
        from nowcast.predict.pipeline import predict

        return predict
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

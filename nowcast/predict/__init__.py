"""`nowcast predict`: new radar files → the checkpoint's preprocessing → model → CF-netCDF.

One job per module: :mod:`~nowcast.predict.recipe` (what the checkpoint prescribes),
:mod:`~nowcast.predict.inputs` (which frames, and the checks on them),
:mod:`~nowcast.predict.pipeline` (the steps, and :func:`predict`),
:mod:`~nowcast.predict.writer` (the CF-1.8 file), :mod:`~nowcast.predict.pictures` (PNG/GIF).
"""

from nowcast.predict.pipeline import Timings, predict

__all__ = ["Timings", "predict"]

"""HKO-style preprocessing: radar frames → 100×100 uint8 frames, masks, blocks and splits.

For ``nowcast predict`` (reproducing training-time preprocessing from a store or
checkpoint ``preprocess`` dict)::

    from nowcast.io import read_frame
    from nowcast.preprocess import TransformSettings, transform_frame, output_coordinates

    s = TransformSettings.from_dict(preprocess_json)
    u8 = transform_frame(read_frame(path, input_cfg, zr).dbz, s)   # (size, size) uint8

The names below are imported on first use (module ``__getattr__``): the per-frame transform
does not pull in the whole pipeline (its clutter filter needs scikit-learn).
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name → the submodule that defines it
_WHERE = {
    "preprocess": "pipeline",
    "run_preprocess": "pipeline",
    "settings_json": "pipeline",
    "TransformSettings": "transform",
    "output_coordinates": "transform",
    "transform_field": "transform",
    "transform_frame": "transform",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))

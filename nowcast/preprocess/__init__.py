"""HKO-style preprocessing: radar frames → 100×100 uint8 frames, masks, blocks and splits.

For ``nowcast predict`` (reproducing training-time preprocessing from a store or
checkpoint ``preprocess`` dict)::

    from nowcast.io import read_frame
    from nowcast.preprocess import TransformSettings, transform_frame, output_coordinates

    s = TransformSettings.from_dict(preprocess_json)
    u8 = transform_frame(read_frame(path, input_cfg, zr).dbz, s)   # (size, size) uint8
"""

from nowcast.preprocess.pipeline import preprocess, run_preprocess, settings_json
from nowcast.preprocess.transform import (
    TransformSettings,
    output_coordinates,
    transform_field,
    transform_frame,
)

__all__ = [
    "TransformSettings",
    "output_coordinates",
    "preprocess",
    "run_preprocess",
    "settings_json",
    "transform_field",
    "transform_frame",
]

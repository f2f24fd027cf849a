"""Radar file readers (CF-netCDF, ODIM_H5; any pysteps importer with ``input.format:
pysteps``) → a common :class:`Frame` in dBZ.

frame = read_frame(path, cfg.input, cfg.zr, interval_minutes=6)
frame.dbz        # (H, W) float32 dBZ, NaN outside coverage, −inf no echo
frame.x, frame.y # pixel centres: projected [m], or lon/lat [degrees] (nowcast.io.crs)
                 # frame.grid_mapping: CF attributes
"""

from nowcast.io.frame import BadInputFile, Frame, grid_key
from nowcast.io.paths import RADAR_SUFFIXES, expand_inputs
from nowcast.io.read import read_frame, read_frames, sniff_format

__all__ = [
    "BadInputFile",
    "Frame",
    "RADAR_SUFFIXES",
    "expand_inputs",
    "grid_key",
    "read_frame",
    "read_frames",
    "sniff_format",
]

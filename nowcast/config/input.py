"""`input`: which radar files `nowcast preprocess` reads, and how."""

from __future__ import annotations

from typing import Any, Literal, Optional

from nowcast.config.base import Section


class InputConfig(Section):
    """The raw radar files (CF-netCDF, ODIM_H5, or any format a pysteps importer reads) and
    how to find the field in them."""

    paths: list[str] = []
    """Files, directories (searched recursively) or glob patterns; ``--input`` replaces it."""
    pattern: str = "*"
    """File-name glob applied inside directories, e.g. ``synth_*.nc``. Only names ending in
    .nc, .nc4, .cdf, .h5, .hdf5 or .hdf are taken there, unless the pattern ends in an
    extension of its own (``*.pgm.gz``, ``AQC*.gif``, ``*.grib2``): then every name it
    matches. Files named directly or matched by a glob in ``paths`` are always taken."""
    variable: Optional[str] = None
    """The field to read: a netCDF variable name or an ODIM quantity (DBZH, TH, RATE, ACRR).
    None: find it by CF standard_name (equivalent_reflectivity_factor, rainfall_rate,
    precipitation_amount) or by ODIM quantity. Not used with ``format: pysteps`` (name the
    quantity in ``importer_kwargs``, e.g. ``qty: DBZH``)."""
    format: Literal["auto", "pysteps"] = "auto"
    """auto: CF-netCDF or ODIM_H5, recognised from each file's first bytes. pysteps: every
    file is read by the pysteps importer named by ``importer`` (FMI PGM, MeteoSwiss GIF,
    MRMS GRIB2, KNMI/DWD/OPERA HDF5, …), its time taken from the file name by
    ``time_format``."""
    importer: Optional[str] = None
    """With ``format: pysteps``: the pysteps importer's name (``pysteps.io.get_method(name,
    "importer")``), e.g. fmi_pgm, mch_gif, mch_hdf5, knmi_hdf5, opera_hdf5, odim_hdf5,
    mrms_grib, bom_rf3, dwd_hdf5, saf_crri."""
    importer_kwargs: dict[str, Any] = {}
    """With ``format: pysteps``: keyword arguments passed to the importer (plain YAML values),
    e.g. ``{gzipped: true}`` for fmi_pgm or ``{product: AQC, unit: mm/h, accutime: 5}`` for
    mch_gif."""
    time_format: Optional[str] = None
    """With ``format: pysteps``: where the valid time (UTC) sits in each file name, as a
    strftime pattern searched anywhere in the name (the first match counts), e.g.
    ``"%Y%m%d%H%M"`` or ``"AQC%y%j%H%M"``. Directives: %Y %y %m %d %j %H %M %S; other text
    is matched literally."""
    skip_bad: bool = False
    """Skip unreadable or unusable files (and count them in the summary) instead of stopping
    with an error naming the first one; ``--skip-bad`` sets it."""

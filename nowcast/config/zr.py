"""`zr`: the Z–R relation Z = a·R^b used to convert rain rates and accumulations to dBZ."""

from __future__ import annotations

from nowcast.config.base import PositiveFloat, Section


class ZRConfig(Section):
    """Z [mm^6 m^-3] = a · R [mm/h] ^ b. Default Marshall–Palmer (200, 1.6); HKO-7 uses 58.53, 1.56."""

    a: PositiveFloat = 200.0
    """Coefficient a of Z = a·R^b (Z in mm^6 m^-3, R in mm/h)."""
    b: PositiveFloat = 1.6
    """Exponent b of Z = a·R^b."""

"""Motion estimation and extrapolation nowcasts (pysteps), on gray-level frames.

- :mod:`nowcast.extrapolation.motion`: the registry of motion methods (``MOTIONS``,
  ``get_motion``), each ``(T, H, W) frames → (2, H, W)`` velocity [pixels a frame] and
  knowing how many of the last inputs it reads; the input-frame check they share.
- :mod:`nowcast.extrapolation.semilagrangian`: the last input advected by that motion,
  ``(T_in, H, W) → (n_out, H, W)`` a window (:func:`extrapolate`, :class:`Extrapolation`).

Used by the models' advection prior, evaluate's extrapolation baselines and the motion
study script. pysteps is imported on first use, not with this package.
"""

"""Drawing rain-rate fields [mm/h]: :mod:`nowcast.plotting.colormap` holds the radar colour
scale (pysteps' "intensity" scale, 0.08–160 mm/h) and the helpers that draw a (H, W) field
and its colour bar, shared by evaluate's figures and predict's pictures."""

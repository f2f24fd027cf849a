"""The radar colour scale shared by the evaluation plots and predict's pictures."""

from __future__ import annotations

import matplotlib.colors as mcolors
import numpy as np
import pytest
from matplotlib.figure import Figure

from nowcast.plotting.colormap import OUTSIDE_COLOUR, add_rate_colorbar, draw_rate, rate_colormap
from nowcast.pysteps_import import import_pysteps


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # inside pysteps' get_colormap
def test_colour_scale_is_pysteps_intensity_scale_in_mm_per_hour():
    cmap, norm, levels = rate_colormap()
    precipfields = import_pysteps("pysteps.visualization.precipfields")
    ref_cmap, _, ref_levels, _ = precipfields.get_colormap("intensity", "mm/h", "pysteps")
    assert levels == [float(v) for v in ref_levels] and levels[0] == 0.08 and levels[-1] == 160
    for rate in (0.1, 1.2, 3.0, 12.0, 50.0, 120.0):  # same colour in each band
        band = np.searchsorted(levels, rate, side="right") - 1
        np.testing.assert_allclose(cmap(norm(rate)), ref_cmap(band), atol=1e-6)
    assert cmap(norm(0.01))[3] == 0.0  # below 0.08 mm/h: transparent (no rain)


def test_draw_rate_greys_out_masked_pixels_and_has_a_colour_bar():
    fig = Figure()
    ax = fig.add_subplot()
    rate = np.array([[0.0, 5.0], [np.nan, 50.0]])
    mask = np.array([[True, False], [True, True]])
    image = draw_rate(ax, rate, mask)
    rgba = image.to_rgba(image.get_array())
    grey = mcolors.to_rgba(OUTSIDE_COLOUR)
    np.testing.assert_allclose(rgba[0, 1], grey)  # masked pixel
    np.testing.assert_allclose(rgba[1, 0], grey)  # NaN (no data)
    assert rgba[0, 0][3] == 0.0 and rgba[1, 1][3] == 1.0
    bar = add_rate_colorbar(fig, image, ax)
    assert [t.get_text() for t in bar.ax.get_yticklabels()][:3] == ["0.08", "0.16", "0.25"]

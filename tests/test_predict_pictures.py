"""PNG frames and the GIF: the radar colour scale is used, one image per lead, sizes, bytes."""

from __future__ import annotations

import numpy as np
from matplotlib.colors import to_rgb
from PIL import Image

from nowcast.plotting.colormap import OUTSIDE_COLOUR, rate_colormap
from nowcast.predict.pictures import FIGSIZE, render, write_gif, write_pngs

REF = np.datetime64("2024-06-01T12:00")
X = np.arange(20) * 3300.0
Y = np.arange(20)[::-1] * 3300.0


def _fields():
    """Lead 1 uniform 5 mm/h, lead 2 uniform 40 mm/h with its top-left quarter not predicted."""
    rate = np.stack([np.full((20, 20), 5.0), np.full((20, 20), 40.0)])
    rate[1, :10, :10] = np.nan
    return rate


def _colour_of(rate: float) -> np.ndarray:
    cmap, norm, _ = rate_colormap()
    return np.round(np.array(cmap(norm(rate))[:3]) * 255)


def _count(img: Image.Image, rgb: np.ndarray, tol: int = 0) -> int:
    a = np.asarray(img.convert("RGB"), dtype=int)
    return int(np.sum(np.all(np.abs(a - rgb) <= tol, axis=-1)))


def test_pngs_one_per_lead_in_the_radar_scale(tmp_path):
    images = render(_fields(), REF, np.array([6, 12]), X, Y, dpi=50)
    paths = write_pngs(tmp_path / "png", images, np.array([6, 12]))
    assert [p.name for p in paths] == ["nowcast_+006min.png", "nowcast_+012min.png"]
    first, second = (Image.open(p) for p in paths)
    assert first.size == (round(FIGSIZE[0] * 50), round(FIGSIZE[1] * 50))
    grey = np.round(np.array(to_rgb(OUTSIDE_COLOUR)) * 255)
    # the map area is filled with the scale's colour for 5 mm/h (first) / 40 mm/h (second)
    assert _count(first, _colour_of(5.0)) > 3000
    assert _count(first, _colour_of(40.0)) < _count(second, _colour_of(40.0))
    # the not-predicted quarter is grey, about a third of the coloured area
    n_grey, n_40 = _count(second, grey), _count(second, _colour_of(40.0))
    assert 0.25 < n_grey / n_40 < 0.45
    assert _count(first, grey) < n_grey / 10


def test_dpi_sets_the_size_and_output_is_deterministic(tmp_path):
    leads = np.array([6, 12])
    a = write_pngs(tmp_path / "a", render(_fields(), REF, leads, X, Y, dpi=80), leads)
    b = write_pngs(tmp_path / "b", render(_fields(), REF, leads, X, Y, dpi=80), leads)
    assert Image.open(a[0]).size == (round(FIGSIZE[0] * 80), round(FIGSIZE[1] * 80))
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]


def test_gif_has_a_frame_per_lead(tmp_path):
    images = render(_fields(), REF, np.array([6, 12]), X, Y, dpi=50)
    path = write_gif(tmp_path / "n.gif", images, frame_ms=300)
    gif = Image.open(path)
    assert gif.format == "GIF" and gif.n_frames == 2
    assert gif.info["duration"] == 300 and gif.info["loop"] == 0
    gif.seek(0)
    first = gif.convert("RGB")
    gif.seek(1)
    second = gif.convert("RGB")
    assert _count(first, _colour_of(5.0), tol=8) > 3000
    assert _count(second, _colour_of(40.0), tol=8) > 2000
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind

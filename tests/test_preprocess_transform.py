"""Each transform step against an independent formula or a literal, unfused implementation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.ndimage as ndi
from scipy.integrate import quad

from nowcast.errors import UserError
from nowcast.preprocess import (
    TransformSettings,
    output_coordinates,
    transform_field,
    transform_frame,
)
from nowcast.preprocess.crop import central_crop, crop_origin, crop_window
from nowcast.preprocess.disk import disk_filter, disk_kernel
from nowcast.preprocess.resize import area_matrix, area_resize
from nowcast.units import dbz_to_gray_float32

# --------------------------------------------------------------------------- disk kernel


def _area_in_disk(r: float, x1: float, x2: float, y1: float, y2: float, n: int = 4000) -> float:
    """Area of [x1,x2]×[y1,y2] inside the circle of radius r: midpoint rule over x of the exact
    covered height (independent of the analytic formula in nowcast)."""
    xs = x1 + (np.arange(n) + 0.5) * (x2 - x1) / n
    half = np.sqrt(np.clip(r * r - xs * xs, 0.0, None))
    height = np.clip(np.minimum(y2, half) - np.maximum(y1, -half), 0.0, None)
    return float(height.sum() * (x2 - x1) / n)


def test_disk_kernel_matches_matlab_fspecial_disk_1():
    # MATLAB: fspecial('disk', 1)
    expected = np.array(
        [[0.0251, 0.1453, 0.0251], [0.1453, 0.3183, 0.1453], [0.0251, 0.1453, 0.0251]]
    )
    np.testing.assert_allclose(disk_kernel(1), expected, atol=5e-5)


def test_disk_kernel_r10_is_pixel_area_in_circle():
    k = disk_kernel(10)
    assert k.shape == (21, 21)
    assert k.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(k, k.T, atol=1e-15)
    np.testing.assert_allclose(k, k[::-1, ::-1], atol=1e-15)
    # the kernel holds the whole disk, so the normaliser is the disk's area π r²
    norm = math.pi * 100.0
    assert k[10, 10] == pytest.approx(1.0 / norm, rel=1e-12)  # centre pixel fully inside
    assert k[0, 0] == 0.0 and k[0, 3] == 0.0  # corners fully outside
    # top-middle pixel: ∫_{-½}^{½} (√(100 − x²) − 9.5) dx, by quadrature
    top, _ = quad(lambda x: math.sqrt(100 - x * x) - 9.5, -0.5, 0.5)
    assert k[0, 10] == pytest.approx(top / norm, rel=1e-9)
    # a few boundary pixels against midpoint integration of the covered height
    for i, j in ((0, 8), (2, 3), (3, 2), (1, 5), (6, 1), (4, 4), (10, 0), (7, 19)):
        dy, dx = i - 10, j - 10
        area = _area_in_disk(10.0, dx - 0.5, dx + 0.5, dy - 0.5, dy + 0.5)
        assert k[i, j] == pytest.approx(area / norm, abs=2e-8), (i, j)


def test_disk_kernel_other_radii():
    for r in (0.5, 2.5, 3, 7.2):
        k = disk_kernel(r)
        c = k.shape[0] // 2
        assert k.shape[0] == 2 * math.ceil(r - 0.5) + 1
        assert k.sum() == pytest.approx(1.0)
        areas = np.array(
            [
                [
                    _area_in_disk(r, j - c - 0.5, j - c + 0.5, i - c - 0.5, i - c + 0.5)
                    for j in range(2 * c + 1)
                ]
                for i in range(2 * c + 1)
            ]
        )
        np.testing.assert_allclose(k, areas / areas.sum(), atol=2e-7)
    assert disk_kernel(0).tolist() == [[1.0]]


# --------------------------------------------------------------------------- disk filter


def test_disk_filter_equals_direct_correlation():
    rng = np.random.default_rng(0)
    field = rng.random((61, 57))
    got = disk_filter(field, 10)
    direct = ndi.correlate(field, disk_kernel(10), mode="constant")[10:-10, 10:-10]
    assert got.shape == (41, 37)
    np.testing.assert_allclose(got, direct, atol=2e-6)


def test_disk_filter_uses_only_real_neighbours():
    rng = np.random.default_rng(1)
    field = rng.random((30, 30))
    field[:, :8] = np.nan  # no data on the left
    field[20, 20] = np.nan
    got = disk_filter(field, 3)
    k = disk_kernel(3)
    c = 3
    for i, j in ((0, 0), (5, 3), (10, 12), (16, 16), (17, 17), (23, 23)):
        win = field[i : i + 2 * c + 1, j : j + 2 * c + 1]
        ok = ~np.isnan(win)
        if np.isnan(field[i + c, j + c]):
            assert np.isnan(got[i, j])
        else:
            expect = (k * np.where(ok, win, 0)).sum() / (k * ok).sum()
            assert got[i, j] == pytest.approx(expect, abs=2e-6), (i, j)
    # a constant field stays constant right up to the edge of coverage
    const = np.where(np.isnan(field), np.nan, 0.37)
    out = disk_filter(const, 3)
    np.testing.assert_allclose(out[~np.isnan(out)], 0.37, atol=1e-6)


# --------------------------------------------------------------------------- resize


def test_area_matrix_rows_and_constant_field():
    a = area_matrix(330, 100)
    np.testing.assert_allclose(a.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(a.sum(axis=0), 100 / 330, atol=1e-12)  # each pixel shared out whole
    values, covered = area_resize(np.full((330, 330), 0.42), (100, 100))
    np.testing.assert_allclose(values, 0.42, atol=1e-12)
    assert covered.all()


def test_area_resize_equals_supersampled_block_mean():
    # 330 → 100: upsample ×10 (3300 = 100 × 33), then plain 33×33 block means
    rng = np.random.default_rng(2)
    field = rng.random((330, 330))
    fine = np.kron(field, np.ones((10, 10)))
    ref = fine.reshape(100, 33, 100, 33).mean(axis=(1, 3))
    values, _ = area_resize(field, (100, 100))
    np.testing.assert_allclose(values, ref, atol=1e-12)


def test_area_resize_coverage_and_partial_cells():
    field = np.ones((33, 33))
    field[0, 0] = np.nan  # cell (0, 0) of a 10×10 output has 3.3×3.3 pixels, one missing
    field[20:, 20:] = np.nan
    values, covered = area_resize(field, (10, 10))
    fine = np.kron(np.isnan(field), np.ones((10, 10))).reshape(10, 33, 10, 33).any(axis=(1, 3))
    np.testing.assert_array_equal(covered, ~fine)  # covered ⇔ no source pixel is missing
    np.testing.assert_allclose(values[~np.isnan(values)], 1.0)  # mean of the covered part
    assert not covered[0, 0] and values[0, 0] == pytest.approx(1.0)
    assert np.isnan(values[9, 9])


# --------------------------------------------------------------------------- gray level, crop


def test_gray_level_end_points():
    dbz = np.array([-10.0, 60.0, 25.0, -32.0, -np.inf, 75.0, np.nan])
    g = dbz_to_gray_float32(dbz, -10.0, 60.0)
    np.testing.assert_allclose(g[:6], [0.0, 1.0, 0.5, 0.0, 0.0, 1.0], atol=1e-7)
    assert np.isnan(g[6])
    # stored uint8 round(255·P): the HKO-7 pixel value (dBZ + 10) / 70 · 255; 32 dBZ → 153
    u8 = transform_frame(
        np.full((40, 40), 32.0), TransformSettings(crop=20, disk_radius=2, size=10)
    )
    assert u8.dtype == np.uint8 and np.all(u8 == 153)
    assert np.all(
        transform_frame(np.full((40, 40), 60.0), TransformSettings(crop=20, disk_radius=2, size=10))
        == 255
    )
    assert np.all(
        transform_frame(
            np.full((40, 40), -np.inf), TransformSettings(crop=20, disk_radius=2, size=10)
        )
        == 0
    )


def test_central_crop():
    a = np.arange(12 * 9, dtype=np.float32).reshape(12, 9)
    assert crop_origin(a.shape, 5) == (3, 2)
    np.testing.assert_array_equal(central_crop(a, 5), a[3:8, 2:7])
    m = central_crop(a, 5, margin=3)  # rows 0..10 exist, columns −1..9 do not all exist
    assert m.shape == (11, 11)
    np.testing.assert_array_equal(m[:, 1:10], a[0:11, 0:9])
    assert np.isnan(m[:, 0]).all() and np.isnan(m[:, 10]).all()
    with pytest.raises(UserError, match=r"smaller than the crop \(13×13"):
        crop_origin(a.shape, 13)


@pytest.mark.parametrize("margin", [0, 2, 3, 5])
def test_central_crop_of_a_window_equals_that_of_the_grid(margin):
    a = np.arange(12 * 9, dtype=np.float32).reshape(12, 9)
    rows, cols = crop_window(a.shape, 5, margin)  # what a reader reads: clipped to the grid
    window = a[rows, cols]
    got = central_crop(window, 5, margin, shape=a.shape, origin=(rows.start, cols.start))
    np.testing.assert_array_equal(got, central_crop(a, 5, margin))
    with pytest.raises(ValueError, match="misses part of the crop"):
        central_crop(window[1:], 5, margin, shape=a.shape, origin=(rows.start + 1, cols.start))


# --------------------------------------------------------------------------- whole transform


def _literal_transform(dbz: np.ndarray, s: TransformSettings) -> np.ndarray:
    """Unfused float64 reference: gray → crop + margin → correlate → crop → supersampled area mean."""
    gray = np.clip((dbz.astype(np.float64) - s.z_min) / (s.z_max - s.z_min), 0, 1)
    h, w = gray.shape
    r0, c0 = (h - s.crop) // 2, (w - s.crop) // 2
    c = math.ceil(s.disk_radius - 0.5)
    region = gray[r0 - c : r0 + s.crop + c, c0 - c : c0 + s.crop + c]
    filtered = ndi.correlate(region, disk_kernel(s.disk_radius), mode="constant")[c:-c, c:-c]
    k = s.size // math.gcd(s.crop, s.size)  # upsample so cells are whole blocks
    fine = np.kron(filtered, np.ones((k, k)))
    block = fine.shape[0] // s.size
    cells = fine.reshape(s.size, block, s.size, block).mean(axis=(1, 3))
    return np.rint(cells * 255).astype(np.uint8)


def test_transform_frame_equals_literal_pipeline():
    rng = np.random.default_rng(3)
    dbz = rng.uniform(-20, 70, (400, 380)).astype(np.float32)
    dbz[rng.random(dbz.shape) < 0.3] = -np.inf  # no echo
    s = TransformSettings()
    got = transform_frame(dbz, s)
    ref = _literal_transform(dbz, s)
    assert got.shape == (100, 100)
    assert np.abs(got.astype(int) - ref.astype(int)).max() <= 1  # float32 FFT vs float64
    assert np.mean(got == ref) > 0.99


def test_transform_field_coverage_outside_the_radar():
    dbz = np.full((360, 360), 30.0, dtype=np.float32)
    yy, xx = np.mgrid[:360, :360]
    dbz[np.hypot(yy - 179.5, xx - 179.5) > 170] = np.nan  # circular coverage
    gray, covered = transform_field(dbz, TransformSettings())
    # a cell is covered iff all its source pixels are: compare with the mask itself
    crop_nan = np.isnan(central_crop(dbz, 330))
    fine = np.kron(crop_nan, np.ones((10, 10))).reshape(100, 33, 100, 33).any(axis=(1, 3))
    np.testing.assert_array_equal(covered, ~fine)
    np.testing.assert_allclose(gray[covered], 40 / 70, atol=1e-5)  # constant stays constant


def test_output_coordinates_locate_cells_in_the_input_grid():
    x = -239500.0 + 1000.0 * np.arange(480)
    y = x[::-1].copy()
    cx, cy = output_coordinates(x, y, TransformSettings())
    # crop starts at pixel 75; cell j covers pixels 75 + [3.3 j, 3.3 (j+1)), centre 75 + 3.3 j + 1.15
    assert cx[0] == pytest.approx(x[75] + 1150.0)
    np.testing.assert_allclose(np.diff(cx), 3300.0)
    np.testing.assert_allclose(cx + cx[::-1], 0.0, atol=1e-6)  # symmetric about the centre
    np.testing.assert_allclose(cy, cx[::-1])

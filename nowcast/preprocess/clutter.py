"""The clutter (noise) mask of each calendar month, by scikit-learn K-means.

Per-pixel monthly statistics are gathered on the central crop at the input's own
resolution, before the disk filter (so a clutter spoke one or two pixels wide is not
smeared out), from the gray level quantised like the store (``u = round(255·P)``): the
echo frequency (share of the month's frames with data in which ``u ≥ 1``, i.e. echo above
``z_min``) and the mean and spread of ``u`` over the frames with echo.

Features of a pixel with echo in the month:

1. echo-frequency excess: its echo frequency minus its background, the median over
   ``clutter_window`` × ``clutter_window`` output cells of the cell-averaged frequency.
   Over a month weather is smooth at that scale; fixed echoes stand out.
2. intensity spread: the coefficient of variation (std / mean) of ``u`` over its echo
   frames, capped at 1 and weighted by :data:`CV_WEIGHT` for the clustering. Ground
   clutter returns a steady echo; rain at a point waxes and wanes.

Clustering. K-means (``clutter_clusters`` clusters, ``random_state`` = ``preprocess.seed``,
3 initialisations) on those two features of every pixel that had echo in the month.

Noise rule. A cluster is noise when its centre has an echo-frequency excess of at least
``clutter_min_excess`` (default 0.15: echo in 15 % more of the month's frames than its
surroundings) **and** an intensity spread of at most ``clutter_max_cv`` (default 0.2).
Weather does not meet both on a month's statistics — a month without clutter gets an
empty mask — while fixed clutter does even within a few hours (the Melbourne spoke in 61
frames). A stored cell (output grid) is noise when at least :data:`CELL_FRACTION` of its
area is noise pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.ndimage as ndi
from sklearn.cluster import KMeans

from nowcast.preprocess.resize import area_matrix, area_resize

#: a cell of the output grid is noise when this share of its area is noise pixels
CELL_FRACTION = 0.25
#: weight of the intensity spread against the echo-frequency excess in the K-means distance
CV_WEIGHT = 0.5
#: features are rounded to 1/QUANTUM before clustering
QUANTUM = 1024


@dataclass
class MonthStats:
    """Per-pixel sums over a month's frames on the crop, ``(crop, crop)`` each.

    Integer sums of the quantised gray level ``u = round(255·P)``: exact, so the result
    does not depend on the order in which chunks are added.
    """

    u_sum: np.ndarray  # int64, Σ u over frames with data
    u_sq: np.ndarray  # int64, Σ u² over frames with data
    echo: np.ndarray  # int32, frames with u ≥ 1
    count: np.ndarray  # int32, frames with data
    frames: int = 0

    @classmethod
    def zeros(cls, n: int) -> MonthStats:
        z = np.zeros((n, n), np.int32)
        return cls(np.zeros((n, n), np.int64), np.zeros((n, n), np.int64), z, z.copy(), 0)

    def add_frame(self, gray: np.ndarray) -> None:
        """Add one frame's gray level on the crop, (crop, crop) float, NaN = no data."""
        ok = ~np.isnan(gray)
        u = np.rint(np.where(ok, gray, np.float32(0)) * np.float32(255)).astype(np.int32)
        self.u_sum += u
        self.u_sq += u * u
        self.echo += u > 0
        self.count += ok
        self.frames += 1

    def merge(self, other: MonthStats) -> None:
        """Add another partial sum of the same month."""
        self.u_sum += other.u_sum
        self.u_sq += other.u_sq
        self.echo += other.echo
        self.count += other.count
        self.frames += other.frames


def features(stats: MonthStats, size: int, window: int) -> tuple[np.ndarray, np.ndarray]:
    """``(X, used)``: X (n_used, 2) = [echo-frequency excess, CV_WEIGHT · intensity spread]
    of the pixels with echo in the month (``used`` (crop, crop) bool)."""
    has_data = stats.count > 0
    used = stats.echo > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        freq = np.where(has_data, stats.echo / stats.count, np.nan)
        mean = stats.u_sum / stats.echo
        var = np.maximum(stats.u_sq / stats.echo - mean * mean, 0.0)
        cv = np.minimum(np.sqrt(var) / mean, 1.0)
    excess = freq - _background(freq, size, window)
    return np.stack([excess[used], CV_WEIGHT * cv[used]], axis=-1), used


def _background(field: np.ndarray, size: int, window: int) -> np.ndarray:
    """Local median of ``field`` (crop, crop) at the scale of ``window`` output cells."""
    cells, _ = area_resize(field, (size, size))
    finite = np.isfinite(cells)
    if not finite.any():
        return np.zeros_like(field)
    cells = np.where(finite, cells, np.median(cells[finite]))
    bg = ndi.median_filter(cells, size=window, mode="nearest")
    a = area_matrix(field.shape[0], size)
    # back to pixels: each pixel takes the overlap-weighted mean of the cells it lies in
    return (a.T @ bg @ a) / np.outer(a.sum(axis=0), a.sum(axis=0))


@dataclass(frozen=True)
class ClutterRule:
    """The K-means settings and the noise rule (``preprocess.clutter_*``)."""

    clusters: int = 12
    window: int = 21
    min_excess: float = 0.15
    max_cv: float = 0.2
    seed: int = 0

    @classmethod
    def from_config(cls, pre) -> ClutterRule:
        return cls(
            pre.clutter_clusters,
            pre.clutter_window,
            pre.clutter_min_excess,
            pre.clutter_max_cv,
            pre.seed,
        )


def noise_pixels(stats: MonthStats, size: int, rule: ClutterRule) -> np.ndarray:
    """(crop, crop) bool: pixels in the noise cluster(s) of the month (see module doc).

    The features are rounded to 1/:data:`QUANTUM` and K-means runs on the distinct rows
    weighted by their counts (the same objective, a fraction of the points).
    """
    X, used = features(stats, size, rule.window)
    mask = np.zeros(used.shape, dtype=bool)
    if rule.clusters == 0:
        return mask
    rows, inverse, counts = np.unique(
        np.rint(X * QUANTUM).astype(np.int32), axis=0, return_inverse=True, return_counts=True
    )
    if rows.shape[0] < rule.clusters:
        return mask  # (almost) no echo this month
    km = KMeans(n_clusters=rule.clusters, n_init=3, random_state=rule.seed)
    km.fit(rows / QUANTUM, sample_weight=counts)
    centres = km.cluster_centers_
    noise = np.flatnonzero(
        (centres[:, 0] >= rule.min_excess) & (centres[:, 1] <= CV_WEIGHT * rule.max_cv)
    )
    mask[used] = np.isin(km.labels_[inverse.reshape(-1)], noise)
    return mask


def noise_cells(pixels: np.ndarray, size: int) -> np.ndarray:
    """(size, size) bool: output cells with at least :data:`CELL_FRACTION` noise area."""
    share, _ = area_resize(pixels.astype(np.float64), (size, size))
    return share >= CELL_FRACTION


def month_mask(stats: MonthStats, size: int, rule: ClutterRule) -> np.ndarray:
    """The stored ``noise_mask`` of one month, (size, size) bool."""
    return noise_cells(noise_pixels(stats, size, rule), size)

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
from pathlib import Path

import cv2
import numpy as np
import scipy.ndimage as ndi
from sklearn.cluster import KMeans
from threadpoolctl import threadpool_limits

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

    u_sum: np.ndarray  # Σ u over frames with data
    u_sq: np.ndarray  # Σ u² over frames with data
    echo: np.ndarray  # frames with u ≥ 1
    count: np.ndarray  # frames with data
    frames: int = 0

    @classmethod
    def zeros(cls, n: int) -> MonthStats:
        """Empty 32-bit sums (enough for a chunk of files; see :meth:`widened`)."""
        z = np.zeros((n, n), np.int32)
        return cls(z, z.copy(), z.copy(), z.copy(), 0)

    def add_frame(self, gray: np.ndarray) -> None:
        """Add one frame's gray level on the crop, (crop, crop) float in [0, 1], NaN = no data.

        ``u = round(255·P)`` is computed in float32 (round half to even, as ``np.rint``).
        """
        gray = np.asarray(gray, dtype=np.float32)
        missing = np.isnan(gray)
        u = cv2.convertScaleAbs(gray, alpha=255.0)  # saturate(round(|255·P|)), uint8
        if missing.any():
            u[missing] = 0
            self.count += ~missing
        else:
            self.count += 1
        np.add(self.u_sum, u, out=self.u_sum)
        np.add(self.u_sq, np.square(u, dtype=np.uint16), out=self.u_sq)
        np.add(self.echo, u > 0, out=self.echo)
        self.frames += 1

    def widened(self) -> MonthStats:
        """A copy with 64-bit counters (a month of 1-minute frames overflows 32 bits)."""
        return MonthStats(
            self.u_sum.astype(np.int64),
            self.u_sq.astype(np.int64),
            self.echo.astype(np.int64),
            self.count.astype(np.int64),
            self.frames,
        )

    def merge(self, other: MonthStats) -> None:
        """Add another partial sum of the same month."""
        self.u_sum += other.u_sum
        self.u_sq += other.u_sq
        self.echo += other.echo
        self.count += other.count
        self.frames += other.frames


class MonthlyStats:
    """The running :class:`MonthStats` of every month, at most ``keep`` of them in memory.

    Months not touched lately are parked as ``.npz`` files in ``folder`` (the spool), so
    memory does not grow with the number of months in the archive.
    """

    def __init__(self, folder: Path, keep: int = 4):
        self.folder = Path(folder)
        self.keep = keep
        self._live: dict[str, MonthStats] = {}
        self._parked: set[str] = set()

    @property
    def months(self) -> set[str]:
        return set(self._live) | self._parked

    def add(self, month: str, part: MonthStats) -> None:
        """Add a chunk's partial sums of ``month``."""
        total = self._take(month)
        if total is None:
            total = part.widened()
        else:
            total.merge(part)
        self._live[month] = total
        while len(self._live) > self.keep:
            old = next(iter(self._live))
            st = self._live.pop(old)
            np.savez(
                self._file(old),
                u_sum=st.u_sum,
                u_sq=st.u_sq,
                echo=st.echo,
                count=st.count,
                frames=st.frames,
            )
            self._parked.add(old)

    def get(self, month: str) -> MonthStats | None:
        """The month's total (None if no frame fell in it)."""
        st = self._take(month)
        if st is not None:
            self._live[month] = st
        return st

    def take(self, month: str) -> MonthStats | None:
        """The month's total, no longer kept here (None if no frame fell in it): for reading
        every month once without holding them all in memory."""
        return self._take(month)

    def _take(self, month: str) -> MonthStats | None:
        if month in self._live:
            return self._live.pop(month)
        if month in self._parked:
            self._parked.discard(month)
            with np.load(self._file(month)) as z:
                return MonthStats(z["u_sum"], z["u_sq"], z["echo"], z["count"], int(z["frames"]))
        return None

    def _file(self, month: str) -> Path:
        return self.folder / f"clutter-{month}.npz"


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
    q = np.rint(X * QUANTUM).astype(np.int64)
    key = (q[:, 0] + 2 * QUANTUM) * (4 * QUANTUM) + (q[:, 1] + 2 * QUANTUM)  # one int per row
    keys, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    rows = np.stack(
        [keys // (4 * QUANTUM) - 2 * QUANTUM, keys % (4 * QUANTUM) - 2 * QUANTUM], axis=-1
    )
    if rows.shape[0] < rule.clusters:
        return mask  # (almost) no echo this month
    km = KMeans(n_clusters=rule.clusters, n_init=3, random_state=rule.seed)
    with threadpool_limits(1):  # a few thousand weighted points: threads only add overhead
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

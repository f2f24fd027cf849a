"""Frame selection (the newest n_in) and the checks on time, grid and data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nowcast.errors import UserError
from nowcast.predict.inputs import (
    check_data,
    check_grid,
    check_same_grid,
    select_newest,
)


def _times(minutes, start="2024-06-01T12:00"):
    t0 = np.datetime64(start, "s")
    return [t0 + np.timedelta64(int(round(m * 60)), "s") for m in minutes]


def _paths(n):
    return [Path(f"/data/f{i:02d}.nc") for i in range(n)]


def test_newest_frames_are_chosen_in_time_order():
    # files in scrambled order, 6 min apart, with an old gap that does not matter
    minutes = [30, 0, 24, 6, 18, 36, 42, -60]
    idx = select_newest(_times(minutes), _paths(8), 5, 6.0, 1.0)
    assert [minutes[i] for i in idx] == [18, 24, 30, 36, 42]


def test_spacing_within_tolerance_is_accepted():
    idx = select_newest(_times([0, 5.5, 12.4, 18, 23.2]), _paths(5), 5, 6.0, 1.0)
    assert idx == [0, 1, 2, 3, 4]


def test_too_few_frames_names_the_folder():
    with pytest.raises(UserError, match=r"^/data: 3 radar frames found, the model needs 5"):
        select_newest(_times([0, 6, 12]), _paths(3), 5, 6.0, 1.0)


def test_gap_names_the_file_after_it():
    with pytest.raises(UserError, match=r"^/data/f03.nc: not consecutive: 12 min after .*f02.nc"):
        select_newest(_times([0, 6, 12, 24, 30]), _paths(5), 5, 6.0, 1.0)


def test_irregular_spacing_beyond_tolerance():
    with pytest.raises(UserError, match=r"f02.nc: not consecutive: 7.5 min"):
        select_newest(_times([0, 6, 13.5, 19.5, 25.5]), _paths(5), 5, 6.0, 1.0)
    # the same sequence passes with a wider tolerance
    assert select_newest(_times([0, 6, 13.5, 19.5, 25.5]), _paths(5), 5, 6.0, 1.5)


def test_duplicate_names_both_files():
    with pytest.raises(
        UserError,
        match=r"^/data/f04.nc: duplicate frame: valid at 2024-06-01 12:18, .* as /data/f03.nc$",
    ):
        select_newest(_times([0, 6, 12, 18, 18.5]), _paths(5), 5, 6.0, 1.0)


def test_duplicate_just_before_the_chosen_frames():
    # six files, newest five consecutive, the extra one duplicates the oldest chosen frame
    with pytest.raises(UserError, match="duplicate frame"):
        select_newest(_times([0, 6, 12, 18, 24, 0]), _paths(6), 5, 6.0, 1.0)


def test_grid_checks():
    check_grid(Path("f.nc"), (330, 400), (330, 330))
    with pytest.raises(
        UserError, match=r"^f.nc: grid 329×400 is smaller than the checkpoint's 330×330 crop"
    ):
        check_grid(Path("f.nc"), (329, 400), (330, 330))
    x, y = np.arange(10.0), np.arange(8.0)
    check_same_grid(Path("b.nc"), x, y, Path("a.nc"), x.copy(), y.copy())
    with pytest.raises(UserError, match="^b.nc: grid differs from that of a.nc"):
        check_same_grid(Path("b.nc"), x + 500.0, y, Path("a.nc"), x, y)
    with pytest.raises(UserError, match="^b.nc: grid differs"):
        check_same_grid(Path("b.nc"), x[:-1], y, Path("a.nc"), x, y)


def test_data_checks():
    crop = (slice(2, 6), slice(2, 6))
    field = np.full((8, 8), np.nan)
    with pytest.raises(UserError, match="^f.nc: all-NaN frame"):
        check_data(Path("f.nc"), field, crop)
    field[0, 0] = 10.0
    with pytest.raises(
        UserError, match="^f.nc: no radar data inside the checkpoint's central crop"
    ):
        check_data(Path("f.nc"), field, crop)
    field[3, 3] = -32.0
    check_data(Path("f.nc"), field, crop)

"""`preprocess.crops: tiles`: a grid of crop × crop tiles, each its own sequence.

A small CF archive (64 × 46 pixels, crop 20, so 3 × 2 tiles) whose bottom tile row has no
data and whose bottom-right tile is mostly outside coverage, with a steady clutter echo in
one tile. Each stored tile is checked against an independent reference: the ordinary
central-crop run on files that hold only that tile (plus the disk filter's margin).
"""

from __future__ import annotations

import json
from pathlib import Path

import netCDF4
import numpy as np
import pytest
from cli_support import assert_one_line_error, checksums
from typer.testing import CliRunner

from nowcast.cli import app
from nowcast.errors import UserError
from nowcast.preprocess.merge import merge_stores
from nowcast.store import FrameReader, read_meta, window_starts

runner = CliRunner()
H, W = 64, 46
CROP, SIZE, RADIUS, MARGIN = 20, 10, 2, 2  # MARGIN = ceil(RADIUS − ½)
MARGIN_OPERA = 10  # ceil(disk_radius − ½) for the default disk_radius of 10
N_FILES = 16
SMALL = [
    f"preprocess.crop={CROP}",
    f"preprocess.size={SIZE}",
    f"preprocess.disk_radius={RADIUS}",
    "preprocess.clutter_clusters=3",
    "preprocess.clutter_window=3",
    "preprocess.block_frames=4",
    "preprocess.split_ratio=[1,1,1]",
    "data.n_in=2",
    "data.n_out=2",
]
CLUTTER = (slice(4, 8), slice(26, 30))  # steady echo, inside tile (0, 20)
NO_DATA_ROW = 40  # rows ≥ 40 (the third tile row) have no data
HOLE = (slice(25, 40), slice(25, None))  # most of tile (20, 20) is outside coverage


def _field(k: int) -> np.ndarray:
    """Frame k [dBZ] (H, W): sparse random echo, no echo (−32) elsewhere, NaN outside."""
    rng = np.random.default_rng(100 + k)
    dbz = np.where(rng.random((H, W)) < 0.3, rng.uniform(5, 50, (H, W)), -32.0)
    dbz[CLUTTER] = 45.0
    dbz[NO_DATA_ROW:] = np.nan
    dbz[HOLE] = np.nan
    return dbz.astype(np.float32)


def _write(path: Path, minutes: float, dbz: np.ndarray, x: np.ndarray, y: np.ndarray) -> Path:
    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension("time", 1)
        nc.createDimension("y", y.size)
        nc.createDimension("x", x.size)
        t = nc.createVariable("time", "f8", ("time",))
        t.units = "minutes since 2024-05-01 00:00:00"
        t[:] = [minutes]
        for name, values in (("x", x), ("y", y)):
            v = nc.createVariable(name, "f8", (name,))
            v.standard_name, v.units = f"projection_{name}_coordinate", "m"
            v[:] = values
        v = nc.createVariable("dbz", "f4", ("time", "y", "x"), fill_value=np.float32(np.nan))
        v.standard_name, v.units = "equivalent_reflectivity_factor", "dBZ"
        v[:] = dbz[None]
    return path


X = np.arange(W) * 1000.0
Y = 64000.0 - np.arange(H) * 1000.0


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiles_in")
    for k in range(N_FILES):
        _write(folder / f"f_{k:02d}.nc", 6 * k, _field(k), X, Y)
    return folder


def _preprocess(inputs: list[Path], store: Path, *sets: str):
    args = ["preprocess", "-q", *[a for p in inputs for a in ("-i", str(p))], "-o", str(store)]
    for s in (*SMALL, *sets):
        args += ["--set", s]
    return runner.invoke(app, args)


@pytest.fixture(scope="module")
def tiled(archive, tmp_path_factory):
    store = tmp_path_factory.mktemp("tiles_out") / "tiled.nc"
    result = _preprocess([archive], store, "preprocess.crops=tiles")
    assert result.exit_code == 0, (result.output, result.stderr)
    return store


def _reference_store(archive: Path, at: tuple[int, int], folder: Path) -> Path:
    """The central-crop store of files holding only the tile at ``at`` and its margin
    (NaN where the margin falls outside the original grid), on the tile's own coordinates."""
    r0, c0 = at
    n = CROP + 2 * MARGIN
    rows, cols = np.arange(r0 - MARGIN, r0 - MARGIN + n), np.arange(c0 - MARGIN, c0 - MARGIN + n)
    inside_r, inside_c = (rows >= 0) & (rows < H), (cols >= 0) & (cols < W)
    folder.mkdir()
    for k in range(N_FILES):
        part = np.full((n, n), np.nan, dtype=np.float32)
        part[np.ix_(inside_r, inside_c)] = _field(k)[np.ix_(rows[inside_r], cols[inside_c])]
        _write(folder / f"f_{k:02d}.nc", 6 * k, part, cols * 1000.0, 64000.0 - rows * 1000.0)
    store = folder / "ref.nc"
    result = _preprocess([folder], store)
    assert result.exit_code == 0, (result.output, result.stderr)
    return store


def test_tile_layout_and_dropped_tiles(tiled):
    meta = read_meta(tiled)
    t = meta.tiles
    # 3 rows × 2 columns of tiles; the third row has no data, so 4 are stored
    assert list(zip(t.row0.tolist(), t.col0.tolist())) == [(0, 0), (0, 20), (20, 0), (20, 20)]
    per_tile = 1440 // 6
    assert meta.times.size == 4 * per_tile
    np.testing.assert_array_equal(t.index, np.repeat(np.arange(4), per_tile))
    for k in range(4):
        own = meta.times[t.index == k]
        assert own[0] == np.datetime64("2024-05-01T00:00") and np.all(np.diff(own) > 0)
    assert int(meta.valid.sum()) == 4 * N_FILES
    assert t.coverage.shape == (4, SIZE, SIZE) and t.noise_mask.shape == (4, 1, SIZE, SIZE)
    # the file's plain x, y, coverage and noise mask are tile 0's
    np.testing.assert_array_equal(meta.x, t.x[0])
    np.testing.assert_array_equal(meta.coverage, t.coverage[0])
    np.testing.assert_array_equal(meta.noise_mask, t.noise_mask[0])
    assert meta.preprocess["crops"] == "tiles" and meta.preprocess["tile_stride"] == CROP


def test_each_tile_is_the_central_crop_run_on_that_square(tiled, archive, tmp_path):
    meta = read_meta(tiled)
    frames = FrameReader(tiled).read(0, meta.times.size)
    t = meta.tiles
    for k, at in enumerate(zip(t.row0.tolist(), t.col0.tolist())):
        ref = read_meta(_reference_store(archive, at, tmp_path / f"tile{k}"))
        own = t.index == k
        ref_frames = FrameReader(ref.path).read(0, ref.times.size)
        np.testing.assert_array_equal(frames[own], ref_frames)
        np.testing.assert_array_equal(meta.times[own], ref.times)
        np.testing.assert_array_equal(meta.valid[own], ref.valid)
        np.testing.assert_array_equal(meta.split[own], ref.split)  # same (seed, date) rule
        np.testing.assert_array_equal(meta.block[own] >= 0, ref.block >= 0)
        np.testing.assert_array_equal(t.coverage[k], ref.coverage)
        np.testing.assert_array_equal(t.noise_mask[k], ref.noise_mask)
        np.testing.assert_allclose(t.x[k], ref.x, rtol=0, atol=1e-6)
        np.testing.assert_allclose(t.y[k], ref.y, rtol=0, atol=1e-6)
    # the masks really differ per tile: the clutter tile has noise cells, the others none;
    # the bottom-right tile is partly outside coverage
    assert t.noise_mask[1].any() and not t.noise_mask[[0, 2, 3]].any()
    assert t.coverage[[0, 1, 2]].all() and 0 < t.coverage[3].mean() < 0.5


def test_windows_never_cross_tiles(tiled):
    meta = read_meta(tiled)
    blocks_of = [set(meta.block[(meta.tiles.index == k) & (meta.block >= 0)]) for k in range(4)]
    assert all(not (a & b) for i, a in enumerate(blocks_of) for b in blocks_of[i + 1 :])
    total = 0
    for split in ("train", "val", "test"):
        for length in (2, 4):
            for s in window_starts(meta, split, length):
                assert len(set(meta.tiles.index[s : s + length])) == 1
        total += window_starts(meta, split, 4).size
    # each tile holds 16 frames: four whole 4-frame blocks, one window each
    assert total == 4 * 4
    # windows and their masks through the training dataset: the mask is the window's tile's
    from nowcast.data.windows import WindowDataset

    ds = WindowDataset(meta, "train", 2, 2)
    for i in range(len(ds)):
        tile = int(meta.tiles.index[ds.starts[i]])
        np.testing.assert_array_equal(ds.mask(i), meta.pixel_mask(ds.time(i), tile))
    ds.close()


def test_min_coverage_drops_a_tile(archive, tmp_path):
    store = tmp_path / "s.nc"
    result = _preprocess(
        [archive], store, "preprocess.crops=tiles", "preprocess.tile_min_coverage=0.5"
    )
    assert result.exit_code == 0, (result.output, result.stderr)
    t = read_meta(store).tiles
    assert list(zip(t.row0.tolist(), t.col0.tolist())) == [(0, 0), (0, 20), (20, 0)]


def test_stride_overlapping_tiles(archive, tmp_path):
    store = tmp_path / "s.nc"
    result = _preprocess([archive], store, "preprocess.crops=tiles", "preprocess.tile_stride=13")
    assert result.exit_code == 0, (result.output, result.stderr)
    t = read_meta(store).tiles
    # (64 − 20) // 13 + 1 = 4 rows by (46 − 20) // 13 + 1 = 3 columns of overlapping tiles;
    # the tiles at (26, 26) and (39, 26) lie wholly in the hole and the no-data rows below
    empty = {(26, 26), (39, 26)}
    expected = [(r, c) for r in (0, 13, 26, 39) for c in (0, 13, 26) if (r, c) not in empty]
    assert list(zip(t.row0.tolist(), t.col0.tolist())) == expected


def test_center_store_unchanged(archive, tmp_path):
    store = tmp_path / "center.nc"
    result = _preprocess([archive], store)
    assert result.exit_code == 0, (result.output, result.stderr)
    meta = read_meta(store)
    assert meta.tiles is None and meta.times.size == 240
    for key in ("crops", "tile_stride", "tile_min_coverage"):
        assert key not in meta.preprocess
    with netCDF4.Dataset(store) as nc:
        assert not [v for v in nc.variables if v.startswith("tile")]
        assert "tile" not in nc.dimensions
    # the central crop (rows 22–41, cols 13–32) reaches the no-data rows: a central store of
    # a composite is what it always was
    assert json.loads(json.dumps(meta.preprocess))["grid"]["crop_row0"] == (H - CROP) // 2


@pytest.mark.parametrize(
    "sets, message",
    [
        (["preprocess.crops=squares"], "preprocess.crops"),
        (["preprocess.tile_stride=10"], "preprocess.tile_stride: is only used with"),
        (["preprocess.tile_min_coverage=0.5"], "preprocess.tile_min_coverage: is only used"),
        (["preprocess.crops=tiles", "preprocess.tile_stride=0"], "preprocess.tile_stride"),
        (["preprocess.crops=tiles", "preprocess.tile_min_coverage=1.5"], "tile_min_coverage"),
        (
            ["preprocess.crops=tiles", "preprocess.tile_min_coverage=0.9"],
            "preprocess.tile_min_coverage: 0.9 keeps no tile: the best of the 6 tiles",
        ),
    ],
)
def test_bad_tile_settings(archive, tmp_path, sets, message):
    # g_*.nc: every fourth column without data, so no tile has 0.9 of its cells covered
    archive = tmp_path / "in"
    archive.mkdir()
    for k in range(3):
        dbz = _field(k)
        dbz[:, ::4] = np.nan
        _write(archive / f"g_{k}.nc", 6 * k, dbz, X, Y)
    store = tmp_path / "s.nc"
    store.write_bytes(b"an older store")
    before = checksums(archive, store)
    result = _preprocess([archive], store, *sets)
    assert_one_line_error(result, message)
    assert checksums(archive, store) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "s.nc"]


def test_tiled_stores_are_not_merged(tiled, tmp_path):
    with pytest.raises(UserError, match=r"tiled\.nc: a tiled store .* cannot be merged"):
        merge_stores([tiled], tmp_path / "m.nc")
    assert not (tmp_path / "m.nc").exists()


def test_opera_composite_as_tiles(radar_dir, tmp_path):
    """The 2200 × 1900 OPERA composite (pysteps importer, 15 minutes), 3 frames, as 6 × 5
    tiles of 330: every tile's frames are the transform of its own square of the file."""
    from nowcast.config.loader import load_config
    from nowcast.io import read_frame
    from nowcast.preprocess import TransformSettings, transform_frame

    config = Path(__file__).resolve().parents[1] / "configs" / "data" / "opera.yaml"
    folder = radar_dir / "opera_20180824_15min_odim"
    files = sorted(p for p in folder.iterdir() if p.suffix == ".hdf")[:3]
    store = tmp_path / "opera_tiles.nc"
    sets = [
        "preprocess.crops=tiles",
        "preprocess.block_frames=2",
        "preprocess.clutter_clusters=4",
        "data.n_in=1",
        "data.n_out=1",
    ]
    args = ["preprocess", "-q", "-c", str(config), *[a for f in files for a in ("-i", str(f))]]
    result = runner.invoke(app, [*args, "-o", str(store), *[a for s in sets for a in ("--set", s)]])
    assert result.exit_code == 0, (result.output, result.stderr)
    meta = read_meta(store)
    t = meta.tiles
    assert meta.preprocess["grid"]["shape"] == [2200, 1900]
    assert t.row0.size == 30 and set(t.row0.tolist()) == {0, 330, 660, 990, 1320, 1650}
    assert set(t.col0.tolist()) == {0, 330, 660, 990, 1320}
    assert meta.times.size == 30 * 96 and int(meta.valid.sum()) == 30 * 3
    # 18:00 and 18:15 make one whole 2-frame block per tile: one window of 2 per tile
    starts = np.concatenate([window_starts(meta, s, 2) for s in ("train", "val", "test")])
    assert starts.size == 30 and np.unique(t.index[starts]).size == 30
    # tile (660, 990) against the central-crop transform of that square (with its margin)
    cfg = load_config(config, [], {})
    s = TransformSettings.from_dict(meta.preprocess)
    dbz = read_frame(files[0], cfg.input, cfg.zr).dbz
    k = int(np.flatnonzero((t.row0 == 660) & (t.col0 == 990))[0])
    m = MARGIN_OPERA
    square = dbz[660 - m : 990 + m, 990 - m : 1320 + m]
    first = int(np.flatnonzero((t.index == k) & meta.valid)[0])
    stored = FrameReader(store).read(first, first + 1)[0]
    np.testing.assert_array_equal(stored, transform_frame(square, s))
    assert stored.any()  # a rainy square: not a comparison of empty frames


def test_evaluate_scores_every_tile(tiled, tmp_path):
    meta = read_meta(tiled)
    split = max(("train", "val", "test"), key=lambda s: window_starts(meta, s, 4).size)
    n = window_starts(meta, split, 4).size
    out = tmp_path / "report"
    args = ["evaluate", "-q", "--baselines", "persistence", "--split", split, "--out", str(out)]
    sets = [f"data.store={tiled}", "data.n_in=2", "data.n_out=2", "evaluate.batch_size=3"]
    result = runner.invoke(app, [*args, *[a for s in sets for a in ("--set", s)]])
    assert result.exit_code == 0, (result.output, result.stderr)
    persistence = json.loads((out / "report.json").read_text())["persistence"]
    starts = window_starts(meta, split, 4)
    assert persistence["n_sequences"] == n
    assert len({int(meta.tiles.index[s]) for s in starts}) > 1  # windows of several tiles
    # every window counts the pixels of its own tile's coverage and noise mask
    expected = sum(
        int(meta.pixel_mask(meta.times[s], int(meta.tiles.index[s])).sum()) for s in starts
    )
    assert persistence["pixels"] == [expected, expected]
    tile0 = sum(int(meta.pixel_mask(meta.times[s], 0).sum()) for s in starts)
    assert expected != tile0  # the split holds windows of a tile masked unlike tile 0


def test_train_on_tiles_and_the_checkpoint_carries_tile_0(tiled, tmp_path, one_torch_thread):
    import yaml

    from nowcast.checkpoint import load_checkpoint

    config = tmp_path / "train.yaml"
    raw = {
        "data": {"store": str(tiled), "n_in": 2, "n_out": 2, "workers": 0},
        "model": {"name": "convlstm", "layers": 1, "hidden": 4, "kernel": 3, "patch": 2},
        "train": {
            "out_dir": str(tmp_path / "run"),
            "steps": 2,
            "batch_size": 2,
            "val_every": 2,
            "checkpoint_every": 2,
            "device": "cpu",
        },
    }
    config.write_text(yaml.safe_dump(raw))
    result = runner.invoke(app, ["train", "-q", "-c", str(config)])
    assert result.exit_code == 0, (result.output, result.stderr)
    meta = read_meta(tiled)
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    np.testing.assert_array_equal(ckpt["masks"]["coverage"].numpy(), meta.tiles.coverage[0])
    np.testing.assert_array_equal(np.asarray(ckpt["grid"]["x"]), meta.tiles.x[0])
    assert ckpt["preprocess"]["crops"] == "tiles"

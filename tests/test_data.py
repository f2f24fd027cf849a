"""The window Dataset over a real store: values, masks per month, laziness, DataLoader workers."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from nowcast.data import WindowDataset, open_split, worker_context
from nowcast.data.toy import write_blob_store
from nowcast.errors import UserError
from nowcast.store import FrameReader, StoreWriter, read_meta


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    # 16 x 24 grid; blocks 0-2 train, 3 val, 4 test, 5 none; block 1 has a missing frame
    path = tmp_path_factory.mktemp("data") / "store.nc"
    return write_blob_store(
        path,
        splits=("train", "train", "train", "val", "test", "none"),
        h=16,
        w=24,
        missing=(45,),
        seed=3,
    )


def test_items_are_the_stored_frames_as_gray(store):
    meta = read_meta(store)
    ds = WindowDataset(meta, "train", 5, 15)
    # block 0: 21 windows; block 1 (40..79) with frame 45 missing: starts 46..60; block 2: 21
    assert len(ds) == 21 + 15 + 21
    assert ds.starts[21] == 46 and not np.any((ds.starts < 46) & (ds.starts + 20 > 45))
    reader = FrameReader(store)
    raw = reader.read(0, meta.times.size)
    reader.close()
    for i in (0, 20, 21, len(ds) - 1):
        x, y, m = ds[i]
        s = int(ds.starts[i])
        assert x.shape == (5, 1, 16, 24) and y.shape == (15, 1, 16, 24) and m.shape == (16, 24)
        assert x.dtype == torch.float32 and y.dtype == torch.float32 and m.dtype == torch.bool
        # the stored frames, with the clutter (noise mask of the window's month) as no echo
        noise = meta.noise_mask[meta.month_index(meta.times[s])]
        frames = np.where(noise, 0, raw[s : s + 20]).astype(np.float32) / 255
        np.testing.assert_array_equal(x[:, 0].numpy(), frames[:5])
        np.testing.assert_array_equal(y[:, 0].numpy(), frames[5:])
        np.testing.assert_array_equal(m.numpy(), meta.pixel_mask(meta.times[s]))
        assert 0.0 <= float(x.min()) and float(y.max()) <= 1.0


def test_window_length_follows_n_in_and_n_out(store):
    meta = read_meta(store)
    assert len(WindowDataset(meta, "val", 5, 15)) == 21
    assert len(WindowDataset(meta, "val", 3, 4)) == 40 - 7 + 1
    x, y, _ = WindowDataset(meta, "test", 3, 4)[0]
    assert x.shape[0] == 3 and y.shape[0] == 4


def test_mask_is_that_of_the_windows_month(tmp_path):
    # two blocks either side of midnight 30 June / 1 July, a different noise mask each month
    h, w, n = 8, 8, 80
    times = np.datetime64("2024-06-30T20:00:00", "s") + np.arange(n) * np.timedelta64(6, "m")
    noise = np.zeros((2, h, w), bool)
    noise[0, 1, 1] = True  # June
    noise[1, 2, 2] = True  # July
    coverage = np.ones((h, w), bool)
    coverage[0, :] = False
    path = tmp_path / "s.nc"
    with StoreWriter(
        path, times, np.arange(w) * 1e3, np.arange(h) * 1e3, {}, {"z_min": -10, "z_max": 60}
    ) as wr:
        wr.write_frames(0, np.full((n, h, w), 100, np.uint8))
        wr.finish(
            np.ones(n, bool),
            np.arange(n) // 40,
            np.zeros(n, np.int8),
            ["2024-06", "2024-07"],
            noise,
            coverage,
        )
    ds = WindowDataset(read_meta(path), "train", 2, 2)
    june = next(i for i in range(len(ds)) if str(ds.time(i))[:7] == "2024-06")
    july = next(i for i in range(len(ds)) if str(ds.time(i))[:7] == "2024-07")
    m_june, m_july = ds[june][2].numpy(), ds[july][2].numpy()
    assert not m_june[1, 1] and m_june[2, 2] and not m_june[0].any()
    assert m_july[1, 1] and not m_july[2, 2] and not m_july[0].any()
    assert m_june.sum() == h * w - w - 1


def test_dataset_is_lazy_and_small(store):
    ds = WindowDataset(read_meta(store), "train", 5, 15)
    assert ds.reader._nc is None  # constructing reads no frame
    _ = ds[0]
    assert ds.reader._nc is not None
    blob = pickle.dumps(ds)  # what DataLoader workers get: metadata only, no handle
    frames_bytes = read_meta(store).times.size * 16 * 24
    assert len(blob) < frames_bytes / 2
    assert pickle.loads(blob).reader._nc is None


def test_dataloader_workers_give_the_same_batches(store):
    ds = WindowDataset(read_meta(store), "train", 5, 15)
    order = torch.randperm(len(ds), generator=torch.Generator().manual_seed(0)).tolist()

    def batches(workers):
        ctx = worker_context(workers)
        loader = DataLoader(
            ds, batch_size=4, sampler=order, num_workers=workers, multiprocessing_context=ctx
        )
        return list(loader)

    for a, b in zip(batches(0), batches(2)):
        for ta, tb in zip(a, b):
            assert torch.equal(ta, tb)


def test_split_without_windows_is_a_user_error(store):
    with pytest.raises(
        UserError, match=r"data.store: .*store.nc: the 'val' split has no window of 50"
    ):
        open_split(store, "val", 20, 30)
    with pytest.raises(UserError, match="unknown split"):
        open_split(store, "validation", 5, 15)

"""``train.augment``: the 8 flips and quarter turns, applied alike to a window's parts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_train_loop import cpu_trainer
from train_support import tiny_config

from nowcast.data.toy import write_blob_store
from nowcast.train.augment import SHAPE_KEEPING, augment_batch, dihedral, draw_codes


def _numpy_symmetry(a: np.ndarray, code: int) -> np.ndarray:
    """The same group written with numpy: mirror (fliplr) first, then np.rot90 code % 4 times."""
    if code >= 4:
        a = np.fliplr(a)
    return np.rot90(a, code % 4)


def test_the_eight_symmetries_are_numpys_and_distinct():
    a = torch.arange(12.0).reshape(3, 4)
    sq = torch.rand(5, 5)
    seen = set()
    for code in range(8):
        np.testing.assert_array_equal(dihedral(a, code).numpy(), _numpy_symmetry(a.numpy(), code))
        seen.add(dihedral(sq, code).numpy().tobytes())
    assert len(seen) == 8  # a generic square has 8 different images
    for code in SHAPE_KEEPING:
        assert dihedral(a, code).shape == a.shape


def test_draws_cover_the_group_and_keep_non_square_shapes():
    g = torch.Generator().manual_seed(0)
    assert set(draw_codes(400, True, g).tolist()) == set(range(8))
    assert set(draw_codes(400, False, g).tolist()) == set(SHAPE_KEEPING)


def test_inputs_targets_and_mask_turn_together():
    b, h = 6, 8
    x = torch.rand(b, 5, 1, h, h)
    y = torch.rand(b, 3, 1, h, h)
    mask = x[:, 0, 0] > 0.5  # a mask tied to the first input frame
    codes = torch.tensor([0, 1, 2, 3, 5, 7])
    xa, ya, ma = augment_batch(codes, x, y, mask)
    for i, c in enumerate(codes.tolist()):
        for t in range(5):
            assert torch.equal(xa[i, t, 0], dihedral(x[i, t, 0], c))
        assert torch.equal(ya[i, 2, 0], dihedral(y[i, 2, 0], c))
    assert torch.equal(ma, xa[:, 0, 0] > 0.5)  # still the same pixels


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module", params=[(16, 16), (16, 24)], ids=["square", "non-square"])
def grid_store(request, tmp_path_factory):
    h, w = request.param
    path = tmp_path_factory.mktemp("aug") / "store.nc"
    return write_blob_store(path, splits=("train", "train", "val", "test"), h=h, w=w, seed=5)


def test_an_augmented_step_is_a_plain_step_on_the_turned_windows(grid_store, tmp_path):
    """train.augment = true on a batch does exactly what a plain step does on the windows
    turned by the codes drawn from (seed, step) — and that differs from the unturned step.
    A non-square grid gets only the shape-keeping symmetries."""
    store = grid_store
    runs = {
        name: cpu_trainer(tiny_config(store, tmp_path / name, steps=2, **kw), tmp_path / name)
        for name, kw in (("aug", {"augment": True}), ("turned", {}), ("plain", {}))
    }
    batch = next(iter(runs["aug"].loader))
    square = batch[0].shape[-1] == batch[0].shape[-2]
    g = torch.Generator().manual_seed((runs["aug"].tc.seed * 1_000_033 + 0 + 1) % 2**63)
    codes = draw_codes(runs["aug"].tc.batch_size, square, g)
    assert set(codes.tolist()) != {0}  # something is turned
    assert square or set(codes.tolist()) <= set(SHAPE_KEEPING)
    loss_aug = runs["aug"].train_step(batch)
    loss_turned = runs["turned"].train_step(augment_batch(codes, *batch))
    loss_plain = runs["plain"].train_step(batch)
    assert loss_aug == loss_turned and loss_aug != loss_plain
    for (name, a), b in zip(
        runs["aug"].net.state_dict().items(), runs["turned"].net.state_dict().values()
    ):
        assert torch.equal(a, b), name

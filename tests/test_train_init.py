"""`train.init_from`: a run that starts from another run's weights (fine-tuning), and the
one-line errors for a checkpoint that cannot start it."""

from __future__ import annotations

import pytest
import torch
from train_support import tiny_config, weights
from typer.testing import CliRunner

from nowcast.cli import app
from nowcast.data.toy import write_blob_store
from nowcast.train import train
from nowcast.train.rundir import read_metrics

runner = CliRunner()


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return write_blob_store(
        tmp_path_factory.mktemp("init") / "store.nc", splits=("train", "val"), h=16, w=16
    )


@pytest.fixture(scope="module")
def pretrained(store, tmp_path_factory):
    """A 12-step run: the weights fine-tuning starts from."""
    out = tmp_path_factory.mktemp("pre") / "run"
    train(tiny_config(store, out, lr=0.01))
    return out / "checkpoints" / "last.pt"


def test_run_starts_from_the_checkpoints_weights(store, pretrained, tmp_path):
    start = weights(pretrained)
    # one step at a negligible learning rate: Adam moves each weight by about lr, so the
    # run's weights are those it started from
    run = train(
        tiny_config(store, tmp_path / "ft", steps=1, lr=1e-12, init_from=str(pretrained))
    ).run_dir
    tuned = weights(run / "checkpoints" / "last.pt")
    assert tuned.keys() == start.keys()
    for key in start:
        torch.testing.assert_close(tuned[key], start[key], rtol=0, atol=1e-9)
    # without init_from the same config starts from the seed's weights, far from them
    fresh = weights(
        train(tiny_config(store, tmp_path / "fresh", steps=1, lr=1e-12)).last_checkpoint
    )
    assert max((fresh[k] - start[k]).abs().max().item() for k in start) > 1e-3
    # the optimiser and the step start afresh; the start line names the checkpoint
    ckpt = torch.load(run / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    assert ckpt["step"] == 1 and ckpt["config"]["train"]["init_from"] == str(pretrained)
    start_line = next(m for m in read_metrics(run / "metrics.jsonl") if m["event"] == "start")
    assert start_line["init_from"] == str(pretrained)


def test_fine_tuning_changes_the_weights(store, pretrained, tmp_path):
    run = train(
        tiny_config(store, tmp_path / "ft", steps=3, lr=0.01, init_from=str(pretrained))
    ).run_dir
    tuned, start = weights(run / "checkpoints" / "last.pt"), weights(pretrained)
    assert max((tuned[k] - start[k]).abs().max().item() for k in start) > 1e-4


def _one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    err = result.stderr
    assert err.startswith("nowcast: error: ") and err.count("\n") == 1, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)


@pytest.mark.parametrize(
    "model, fragments",
    [
        ({"hidden": 8}, ["train.init_from:", "the weights do not fit a convlstm"]),
        ({"name": "predrnn"}, ["train.init_from:", "holds a convlstm model, not the predrnn"]),
    ],
)
def test_cli_refuses_a_checkpoint_of_another_model(store, pretrained, tmp_path, model, fragments):
    path = tmp_path / "c.yaml"
    tiny_config(store, tmp_path / "run", path, model=model, init_from=str(pretrained))
    _one_line_error(runner.invoke(app, ["train", "--config", str(path)]), *fragments)
    assert not (tmp_path / "run").exists()


def test_cli_refuses_a_missing_or_foreign_checkpoint(store, tmp_path):
    path = tmp_path / "c.yaml"
    tiny_config(store, tmp_path / "run", path, init_from=str(tmp_path / "nope.pt"))
    _one_line_error(
        runner.invoke(app, ["train", "--config", str(path)]),
        f"train.init_from: {tmp_path / 'nope.pt'}: no such checkpoint",
    )
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    tiny_config(store, tmp_path / "run", path, init_from=str(tmp_path / "junk.pt"))
    _one_line_error(
        runner.invoke(app, ["train", "--config", str(path)]),
        "train.init_from:",
        "not a nowcast checkpoint",
    )
    assert not (tmp_path / "run").exists()

"""Evaluation overhead: the share of `nowcast evaluate` time spent outside model inference and
the baselines (reading windows, metrics, report and plots). Target ≤ 10 %.

Setup, all real: a 100×100 dataset store of moving rain cells (``nowcast.data.toy``) with
three 40-frame test blocks (63 windows of 5 + 15 frames), a checkpoint of the paper-sized
ConvLSTM (``model`` defaults: 3 layers × 64, 5×5, patch 4; untrained weights run exactly as
fast as trained ones), and both baselines. ``--quick``: one block and a 2 × 32 ConvLSTM.
The stage times itself (``evaluate(..., timings=Timings())``); both parts are measured
in the same call, so the ratio needs no outside reference. Library imports (torch, pysteps,
matplotlib) are done before the timed call and reported on their own.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

TARGET = 0.10


def run(quick: bool = False) -> None:
    t0 = time.perf_counter()
    import torch

    from nowcast.checkpoint import save_checkpoint
    from nowcast.config import load_config
    from nowcast.data.toy import write_blob_store
    from nowcast.evaluate import evaluate
    from nowcast.extrapolation.semilagrangian import Extrapolation
    from nowcast.models import build
    from nowcast.plotting.colormap import rate_colormap
    from nowcast.progress import set_quiet
    from nowcast.store import read_meta
    from nowcast.timings import Timings
    from nowcast.train.state import store_payload

    Extrapolation(3), rate_colormap()  # import pysteps and build the colour map once
    import_s = time.perf_counter() - t0

    set_quiet(True)
    blocks = 1 if quick else 3
    model_keys = {"layers": 2, "hidden": 32} if quick else {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        store = write_blob_store(tmp / "store.nc", splits=("test",) * blocks, h=100, w=100, seed=1)
        overrides = {
            "data.store": str(store),
            "evaluate.out": str(tmp / "eval"),
            **{f"model.{k}": v for k, v in model_keys.items()},
        }
        cfg = load_config(None, overrides=overrides)
        torch.manual_seed(0)
        model = build("convlstm", cfg.model)
        payload = {"model_name": "convlstm", "config": cfg.model_dump(mode="json"), "step": 0}
        ckpt = save_checkpoint(
            tmp / "best.pt",
            {**payload, "state_dict": model.state_dict(), **store_payload(read_meta(store))},
        )
        t = Timings()
        evaluate(cfg, [ckpt], ["persistence", "extrapolation"], timings=t)
    per_method = t.starting("method:")
    total, methods = t["total"], sum(per_method.values())
    other = total - methods - t["reading"] - t["metrics"] - t["writing"]
    windows = 21 * blocks
    print(
        f"windows: {windows} (100×100, 5 in + 15 out); torch threads {torch.get_num_threads()}; "
        f"library imports before the call {import_s:.1f} s"
    )
    print(f"{'part':<34} {'s':>8} {'share':>7}")
    rows = [
        (
            f"model inference ({name})"
            if name not in ("persistence", "extrapolation")
            else f"baseline {name}",
            v,
        )
        for name, v in per_method.items()
    ]
    rows += [
        ("reading windows", t["reading"]),
        ("metrics (all methods)", t["metrics"]),
        ("report + plots + config", t["writing"]),
        ("setup (store, checkpoint, checks)", other),
    ]
    for name, v in rows:
        print(f"{name:<34} {v:>8.2f} {v / total:>7.1%}")
    print(f"{'total evaluate() call':<34} {total:>8.2f}")
    frac = 1.0 - methods / total  # the share outside model inference and baselines
    verdict = "meets" if frac <= TARGET else "MISSES"
    print(
        f"evaluate: {frac:.1%} of the time outside model inference and baselines "
        f"({verdict} the ≤ {TARGET:.0%} target); metrics cost {t['metrics'] / windows * 1000:.1f} ms per window "
        f"for {len(per_method)} methods"
    )

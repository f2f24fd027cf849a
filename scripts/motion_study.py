"""Which pysteps motion makes the best plain extrapolation on the real 5-minute events?

    python scripts/motion_study.py        # after scripts/train_shipped.py made the stores

Scores semi-Lagrangian extrapolation of the last input (pysteps, ``outval`` 0, as
evaluate's baselines) under several motion estimates, on every window (5 in, 12 out) of
each real 5-minute event's store in ``runs/shipped/`` — RMI (the shipped model's test
event), FMI and MeteoSwiss — with the metrics of ``nowcast evaluate`` (tables summed over
windows, CSI ≥ 1 mm/h averaged over the 12 leads). Probability matching onto the last
input (``model.probability_matching``) is scored for LK and Proesmans too. No network is
involved. Writes ``models/eval/motion_study.json`` and prints a table (models/README.md
"Why Proesmans").
"""

from __future__ import annotations

import functools
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from nowcast.data.windows import WindowDataset
from nowcast.extrapolation.motion import MOTIONS, pysteps_motion
from nowcast.extrapolation.semilagrangian import extrapolate
from nowcast.models.probmatch import match_empirical_cdf
from nowcast.store import read_meta
from nowcast.units import GrayScale
from nowcast.verification.metrics import MetricAccumulator

STORES = {
    "rmi": ("runs/shipped/rmi_store.nc", "test"),
    "fmi": ("runs/shipped/fmi_store.nc", "train"),
    "mch": ("runs/shipped/mch_store.nc", "train"),
}
OUT = Path("models/eval/motion_study.json")
N_IN, N_OUT = 5, 12
MARSHALL_PALMER = {"a": 200.0, "b": 1.6}


def motions() -> dict[str, tuple[int, object]]:
    """name → (inputs used, motion callable (frames) → (2, H, W)): the registered motions
    (:data:`nowcast.extrapolation.motion.MOTIONS`) and pysteps variants beside them."""
    lk, pr = MOTIONS["lk"].estimate, MOTIONS["proesmans"].estimate
    return {
        "lk (3 inputs)": (3, lk),
        "lk (4 inputs)": (4, lk),
        "lk (5 inputs)": (5, lk),
        "proesmans (defaults)": (2, pr),
        "proesmans (lam 25)": (2, functools.partial(pysteps_motion("proesmans"), lam=25.0)),
        "vet (3 inputs)": (3, functools.partial(pysteps_motion("VET"), verbose=False)),
        "darts (5 inputs, N_t 3)": (
            5,
            functools.partial(pysteps_motion("DARTS"), N_t=3, verbose=False),
        ),
    }


def windows(path: str, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, GrayScale]:
    """(inputs (W, 5, H, W), truth (W, 12, H, W), mask (H, W), scale) of a store's split."""
    meta = read_meta(path)
    ds = WindowDataset(meta, split, N_IN, N_OUT)
    xs, ys = zip(
        *[(x[:, 0].numpy(), y[:, 0].numpy()) for x, y, _ in (ds[i] for i in range(len(ds)))]
    )
    scale = GrayScale.from_preprocess(meta.preprocess, path, MARSHALL_PALMER)
    return np.stack(xs), np.stack(ys), ds.mask(0), scale


def extrapolate_all(x: np.ndarray, frames: int, motion) -> np.ndarray:
    """(W, 5, H, W) → (W, 12, H, W): the last input advected by ``motion`` of the last
    ``frames`` inputs, window by window, as evaluate's extrapolation baselines do it."""
    return np.stack([extrapolate(w, N_OUT, motion, frames) for w in x])


def csi_at_1(
    pred: np.ndarray, truth: np.ndarray, mask: np.ndarray, scale: GrayScale
) -> list[float]:
    """CSI ≥ 1 mm/h per lead, tables summed over windows (as nowcast evaluate)."""
    acc = MetricAccumulator(N_OUT, [1.0], scale)
    acc.update(
        torch.from_numpy(pred).float(), torch.from_numpy(truth).float(), torch.from_numpy(mask)
    )
    return [float(c[0]) for c in acc.result().csi]


def matched(pred: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Probability matching of every lead onto the last input (``model.probability_matching``)."""
    p = torch.from_numpy(pred).float().unsqueeze(2)
    ref = torch.from_numpy(x[:, -1:]).float()
    return match_empirical_cdf(p, ref)[:, :, 0].numpy()


def main() -> None:
    missing = [p for p, _ in STORES.values() if not Path(p).exists()]
    if missing:
        sys.exit(f"motion_study: {missing[0]} not found; run scripts/train_shipped.py first")
    results: dict[str, dict[str, list[float]]] = {}
    for event, (path, split) in STORES.items():
        x, y, mask, scale = windows(path, split)
        for name, (frames, motion) in motions().items():
            t0 = time.perf_counter()
            pred = extrapolate_all(x, frames, motion)
            seconds = (time.perf_counter() - t0) / len(x)
            results.setdefault(name, {})[event] = csi_at_1(pred, y, mask, scale)
            results[name].setdefault("seconds_per_window", []).append(seconds)
            if name in ("lk (3 inputs)", "proesmans (defaults)"):
                pm = name + " + probability matching"
                results.setdefault(pm, {})[event] = csi_at_1(matched(pred, x), y, mask, scale)
            print(f"{event}: {name} done", flush=True)
    OUT.write_text(json.dumps(results, indent=1) + "\n")
    print("\n| motion | RMI | FMI | MeteoSwiss | s a window |\n|---|---|---|---|---|")
    for name, r in results.items():
        means = [np.mean(r[e]) for e in STORES]
        sec = f"{np.mean(r['seconds_per_window']):.3f}" if "seconds_per_window" in r else ""
        print(f"| {name} | " + " | ".join(f"{m:.3f}" for m in means) + f" | {sec} |")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()

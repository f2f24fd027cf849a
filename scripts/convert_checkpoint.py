"""Convert a format-1 nowcast checkpoint (numpy arrays inside) to format 2 (tensors only).

    python scripts/convert_checkpoint.py OLD.pt NEW.pt

Format 1 stored the masks, the grid and numpy's generator state as numpy objects, which only
Python's full unpickler reads -- and the full unpickler runs whatever code a file asks it to.
This script is the one place in nowcast that loads a file that way (``weights_only=False``):
run it only on a file you trust. It writes NEW.pt in the current format (numpy arrays as
tensors, generator states as plain values), keeps the weights, masks, grid, config, version
and git commit, then reads NEW.pt back with the safe loader and checks that every tensor
and array equals the one in OLD.pt. OLD.pt is not changed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nowcast.checkpoint import FORMAT, OLD_FORMAT, load_checkpoint, save_checkpoint
from nowcast.errors import UserError
from nowcast.train.state import pack_rng


def convert(old: Path, new: Path) -> int:
    """Write ``new`` from the trusted format-1 checkpoint ``old``; the number of arrays and
    tensors checked equal. UserError naming the file on any problem."""
    if not old.is_file():
        raise UserError(f"{old}: no such checkpoint")
    if new.exists() and new.samefile(old):
        raise UserError(f"{new}: is the input file; write the converted checkpoint elsewhere")
    try:
        payload = torch.load(old, map_location="cpu", weights_only=False)  # trusted, on request
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a foreign file
        raise UserError(f"{old}: not a checkpoint ({type(exc).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != OLD_FORMAT:
        tag = payload.get("format") if isinstance(payload, dict) else None
        raise UserError(f"{old}: not a '{OLD_FORMAT}' checkpoint (format tag {tag!r})")
    converted = dict(payload)
    rng = payload.get("rng")
    if isinstance(rng, dict) and isinstance(rng.get("numpy"), tuple):
        converted["rng"] = pack_rng(rng["python"], rng["numpy"], rng["torch"], rng["cuda"])
    save_checkpoint(new, converted)
    again = load_checkpoint(new)
    n = _check_equal(payload, again, "checkpoint", skip={"format", "rng"})
    if isinstance(rng, dict):
        n += _check_rng(rng, again["rng"])
    return n


def _check_rng(old: dict[str, Any], new: dict[str, Any]) -> int:
    """Count of generator states compared; UserError unless ``new`` restores ``old``."""
    py, nps = new["python"], new["numpy"]
    python = (py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss_next"])
    numpy = (
        nps["bit_generator"],
        nps["keys"].numpy().astype(np.uint32),
        nps["pos"],
        nps["has_gauss"],
        nps["cached_gaussian"],
    )
    same = python == tuple(old["python"]) and all(
        np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b
        for a, b in zip(numpy, old["numpy"])
    )
    same = same and torch.equal(new["torch"], old["torch"]) and len(new["cuda"]) == len(old["cuda"])
    if not same or not all(torch.equal(a, b) for a, b in zip(new["cuda"], old["cuda"])):
        raise UserError("converted checkpoint['rng'] does not restore the original states")
    return 2 + len(old["cuda"])


def _check_equal(a: Any, b: Any, where: str, skip: set[str] = frozenset()) -> int:
    """Count of arrays compared; UserError at the first difference between ``a`` (old) and
    ``b`` (its conversion)."""
    if isinstance(a, dict):
        if not isinstance(b, dict) or set(a) != set(b):
            raise UserError(f"converted {where} has other keys than the original")
        return sum(_check_equal(a[k], b[k], f"{where}[{k!r}]") for k in a if k not in skip)
    if isinstance(a, (list, tuple)):
        if len(a) != len(b):
            raise UserError(f"converted {where} has another length than the original")
        return sum(_check_equal(x, y, f"{where}[{i}]") for i, (x, y) in enumerate(zip(a, b)))
    if isinstance(a, torch.Tensor):
        if not isinstance(b, torch.Tensor) or a.dtype != b.dtype or not torch.equal(a, b):
            raise UserError(f"converted {where} differs from the original")
        return 1
    if isinstance(a, np.ndarray):
        x = a
        y = b.numpy() if isinstance(b, torch.Tensor) else np.asarray(b)
        if x.dtype != y.dtype or x.shape != y.shape or not np.array_equal(x, y, equal_nan=True):
            raise UserError(f"converted {where} differs from the original")
        return 1
    if a != b and not (a != a and b != b):  # NaN equals NaN here
        raise UserError(f"converted {where} differs from the original ({a!r} → {b!r})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=(
            f"Convert a {OLD_FORMAT} checkpoint to {FORMAT}. WARNING: this loads OLD with "
            "Python's full unpickler (torch.load weights_only=False), which runs any code the "
            "file holds -- use it only on a file you trust. nowcast itself never loads a "
            "file that way."
        )
    )
    parser.add_argument("old", type=Path, help=f"the {OLD_FORMAT} checkpoint (a trusted file)")
    parser.add_argument("new", type=Path, help=f"where to write the {FORMAT} checkpoint")
    args = parser.parse_args(argv)
    try:
        n = convert(args.old, args.new)
    except UserError as exc:
        print(f"convert_checkpoint: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    print(f"{args.new}: written in {FORMAT}; {n} arrays and tensors equal to {args.old}'s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

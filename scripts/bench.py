#!/usr/bin/env python
"""Benchmarks: `python scripts/bench.py NAME [...]` with NAME one of the stages, or `all`.

Each stage has its own module ``scripts/bench_<name>.py`` exposing ``run(quick: bool) -> None``,
which prints its table, measuring targets as ratios against a reference timed in the same run.
``--threads N`` and ``--models a,b`` are passed on as ``run(..., threads=N, models=(a, b))``
(only ``precision`` takes them).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

BENCHES = ["synth", "preprocess", "models", "train", "evaluate", "predict", "precision"]


def available() -> list[str]:
    here = Path(__file__).resolve().parent
    return [b for b in BENCHES if (here / f"bench_{b}.py").exists()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", default=["all"], help=f"{', '.join(BENCHES)} or all")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (benchmarks that take it)"
    )
    parser.add_argument(
        "--models", default=None, help="comma-separated networks (benchmarks that take it)"
    )
    args = parser.parse_args()
    names = available() if args.names == ["all"] else args.names
    for name in names:
        if name not in available():
            parser.error(
                f"unknown or not yet built benchmark {name!r} (available: {', '.join(available())})"
            )
        print(f"\n=== bench {name} ===", flush=True)
        kwargs: dict = {"threads": args.threads} if args.threads else {}
        if args.models:
            kwargs["models"] = tuple(args.models.split(","))
        importlib.import_module(f"bench_{name}").run(quick=args.quick, **kwargs)


if __name__ == "__main__":
    main()

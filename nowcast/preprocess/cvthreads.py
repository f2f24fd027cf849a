"""OpenCV's thread count for a block of code (threadpoolctl does not reach OpenCV)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import cv2


@contextlib.contextmanager
def cv2_threads(n: int) -> Iterator[None]:
    """OpenCV's thread count set to ``n`` inside the block, restored after it."""
    before = cv2.getNumThreads()
    cv2.setNumThreads(n)
    try:
        yield
    finally:
        cv2.setNumThreads(before)

"""Mixed precision (``train.amp``, ``evaluate.amp``, ``predict.amp``): which autocast dtype runs.

    dtype = resolve_amp("auto", torch.device("cpu"), "train.amp")   # torch.bfloat16 or None
    with autocast(device, dtype):
        pred = model(inputs, n_out)

``auto`` takes bfloat16 where the hardware computes it natively: on CUDA when the GPU
supports it (else float16), on the CPU when it has AVX512-BF16 or AMX-BF16 units (else
float32, since emulated bfloat16 is slower than float32). ``bf16`` asks for bfloat16
everywhere (emulated on a CPU without the units), ``fp16`` for float16 with loss scaling
on CUDA (the CPU then runs float32), ``off`` for float32. Autocast runs the convolutions
and matrix products in the low precision; the weights, the optimiser state, the losses and
the metric sums stay float32.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from pathlib import Path

import torch

from nowcast.progress import warn

#: ``amp`` values of the config (``off`` also accepts YAML's false)
AMP_CHOICES = ("auto", "bf16", "fp16", "off")

_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.cache
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (AVX512-BF16 or AMX-BF16)."""
    cpu = getattr(torch, "cpu", None)
    for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        probe = getattr(cpu, name, None)
        try:
            if probe is not None and probe():
                return True
        except RuntimeError:
            pass
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
    return any(f in flags for f in _FLAGS)


def resolve_amp(amp: str, device: torch.device, key: str) -> torch.dtype | None:
    """The autocast dtype for the setting ``amp`` of ``key`` on ``device`` (None: float32).

    Warns (naming ``key``) where the setting cannot be honoured as asked: ``bf16`` on a GPU
    without bfloat16 (float16 instead), ``fp16`` on the CPU (float32 instead).
    """
    if amp == "off":
        return None
    if device.type == "cuda":
        if amp in ("auto", "bf16") and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        if amp == "bf16":
            warn(f"{key}: this GPU has no bf16; running fp16 (with loss scaling) instead")
        return torch.float16
    if device.type != "cpu":
        return None
    if amp == "auto":
        return torch.bfloat16 if cpu_has_native_bf16() else None
    if amp == "fp16":
        warn(f"{key}: fp16 is for CUDA; the CPU runs float32 (use bf16 or auto)")
        return None
    return torch.bfloat16


def amp_name(dtype: torch.dtype | None) -> str:
    """The precision in force as recorded in metrics, reports and checkpoints: ``bf16``,
    ``fp16`` or ``off`` (float32) — the ``amp`` value that asks for it."""
    return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "off")


def precision_line(dtype: torch.dtype | None, device: torch.device, amp: str) -> str:
    """One line for the user: what runs, and why (``amp`` as configured)."""
    if dtype is None:
        why = "amp: off" if amp == "off" else f"amp: {amp}; no native bf16 here"
        return f"precision: float32 on {device.type} ({why})"
    return f"precision: {amp_name(dtype)} autocast on {device.type} (amp: {amp}), float32 weights"


@contextlib.contextmanager
def autocast(device: torch.device, dtype: torch.dtype | None) -> Iterator[None]:
    """``torch.autocast`` for ``dtype`` on ``device``; nothing when ``dtype`` is None."""
    if dtype is None:
        yield
        return
    with torch.autocast(device.type, dtype=dtype):
        yield

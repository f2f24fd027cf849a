"""`model`: which network (ConvLSTM, PredRNN, MIM) and its size (the models stage).

Shapes the network sees: frames of ``H × W`` are cut into ``patch × patch`` blocks
(space-to-depth), so the recurrent cells run on ``(H/patch) × (W/patch)`` grids with
``patch²`` input channels. Checks that need several keys at once (a per-layer ``hidden``
list of the right length, equal widths for PredRNN/MIM, an odd ``kernel``) are made by
:func:`nowcast.models.check_config` when the model is built, with one-line errors naming
the key.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from nowcast.config.base import NonNegativeInt, Section

Width = Annotated[int, Field(ge=1, le=4096)]


class ModelConfig(Section):
    """The network: registry name, depth, widths, kernel, patch, initialisation, sampling."""

    name: Literal["convlstm", "predrnn", "mim"] = "convlstm"
    """Registry name of the network (``nowcast.models.build``): ``convlstm`` (Shi et al.
    2015 encoder–forecaster), ``predrnn`` (ST-LSTM stack) or ``mim`` (Memory In Memory)."""
    layers: Annotated[int, Field(ge=1, le=16)] = 3
    """Number of stacked recurrent layers (for ConvLSTM: in the encoder and in the forecaster)."""
    hidden: Annotated[list[Width], Field(min_length=1)] = [64]
    """Hidden channels: one integer (or a one-entry list) for every layer, or a list with
    one entry per layer (ConvLSTM only; PredRNN and MIM pass memory between layers, so
    need equal widths)."""
    kernel: Annotated[int, Field(ge=1, le=15)] = 5
    """Side of the square convolution kernels of every gate, in (patched) pixels; odd."""
    patch: Annotated[int, Field(ge=1, le=16)] = 4
    """Space-to-depth factor: H and W of the frames must be divisible by it."""
    forget_bias: float = 1.0
    """Initial bias of every forget gate (learned afterwards); +1 keeps memories early on."""
    residual: bool = False
    """Predict each frame as a change to the frame before it (the last input for the first
    lead, then the previous prediction; with ``advection`` the lead's extrapolated frame):
    ``clamp(frame_before + head)``. Off (the papers'
    networks): the head gives whole frames. On, an untrained network starts as persistence
    and short leads stay as sharp as the input."""
    probability_matching: bool = False
    """At inference (eval mode), remap each predicted frame onto the value distribution of
    the last input frame (pysteps' empirical-CDF matching, ``nowcast.models.probmatch``):
    the network still says where rain is, the latest observation how much of each
    intensity; the wet area never grows. Counters the fading with lead time of an
    MSE-trained network. Training (and its loss) never sees it; validation does. Whole
    frames are ranked (pixels outside coverage and clutter included)."""
    matching_reference: Literal["last_input", "advected"] = "last_input"
    """What ``probability_matching`` takes each frame's value distribution from:
    ``last_input`` (the latest observation, for every lead) or ``advected`` (each lead's
    own extrapolated frame of ``advection``: rain that the motion carries out of the grid
    leaves the distribution too, and an untrained network still forecasts exactly the
    extrapolation). ``advected`` needs ``advection`` and ``probability_matching``."""
    advection: bool = False
    """Forecast on top of pysteps extrapolation (ConvLSTM only; ≥ 3 inputs with LK): the
    last input advected by the motion of ``advection_motion``, exactly as evaluate's
    ``extrapolation`` (or ``extrapolation_proesmans``) baseline (``nowcast.models.advection``). The forecaster reads each
    lead's extrapolated frame, and with ``residual`` the head's change is added to it (the
    head starts at zero: an untrained network forecasts the extrapolation). The network
    learns what motion alone misses (growth, decay, the motion's errors). Costs one
    pysteps extrapolation per window on the CPU, in training too (cached per window)."""
    advection_motion: Literal["lk", "proesmans"] = "lk"
    """The motion of ``advection``: ``lk`` (Lucas–Kanade from the last 3 inputs, as
    evaluate's ``extrapolation``) or ``proesmans`` (pysteps' Proesmans optical flow from the
    last 2 inputs, as evaluate's ``extrapolation_proesmans``; slower than ``lk``). Only with
    ``advection``."""
    correction_scale: Annotated[
        list[Annotated[float, Field(ge=0.0, le=1.0)]], Field(min_length=1)
    ] = [1.0]
    """How much of the head's learned change is added to the extrapolation, per lead: with
    ``advection`` and ``residual`` lead k is ``clamp(extrapolated_k + s_k · change_k)``,
    s_k the k-th entry (leads past the list take its last entry; one number = every lead).
    1 (default): the whole change; 0: the network forecasts its extrapolation prior
    exactly. A shrinkage set after training (``scripts/train_shipped.py`` chooses it per
    lead on held-out radars); values in [0, 1]."""
    channels_last: bool = True
    """Run the convolutions in channels-last (NHWC) memory format (faster than channels-first
    on CPU; docs/benchmarks.md); false = channels-first."""
    sampling_iters: NonNegativeInt = 50000
    """Scheduled sampling (PredRNN's linear schedule): the teacher-forcing probability falls
    linearly from 1 at step 0 to 0 at this many optimiser steps; 0 = never teacher-force.
    Used by :func:`nowcast.models.scheduled_sampling_mask` (ConvLSTM takes no frame input
    in its forecaster, so it ignores the mask)."""

    @field_validator("hidden", mode="before")
    @classmethod
    def _one_width_for_all(cls, value: object) -> object:
        """A single integer means the same width for every layer."""
        return [value] if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("correction_scale", mode="before")
    @classmethod
    def _one_scale_for_all(cls, value: object) -> object:
        """A single number means the same scale for every lead."""
        if isinstance(value, int | float) and not isinstance(value, bool):
            return [value]
        return value

"""Probability matching: give each predicted frame the value distribution of an observed one.

A batched torch port of pysteps' ``nonparam_match_empirical_cdf`` (as STEPS uses it): the
network keeps deciding *where* rain is (the rank of every pixel), the latest observation
decides *how much* of each intensity there is. It undoes the fading of rain area and
intensity with lead time of an MSE-trained network (models/README.md).

Per frame, with ``z`` the frame's minimum ("dry") and ``z_ref`` the reference's:
the k-th smallest predicted value is replaced by the k-th smallest reference value, and
pixels at ``z`` get ``z_ref`` (they stay dry: the wet area never grows).

pysteps first sets the reference's values below its ``1 − wet fraction`` percentile to
``z_ref`` when the reference is the wetter one. That step cannot change the result: the
predicted wet pixels take the top ``wet`` reference values, which lie at or above that
percentile, and every lower rank belongs to a dry pixel. It is left out; the tests check
equality with pysteps' function in both cases.

Limitation: whole frames are ranked, pixels outside coverage and clutter included (gray 0
outside coverage; a clutter echo in the last input would be handed to some forecast pixel).
"""

from __future__ import annotations

from torch import Tensor


def match_empirical_cdf(pred: Tensor, ref: Tensor) -> Tensor:
    """pred (B, T, C, H, W), ref (B, C, H, W) → (B, T, C, H, W) in ``pred``'s dtype: every
    ``pred[b, t]`` remapped onto the values of ``ref[b]`` (see module doc). Finite inputs;
    matched in float32 at least (half-precision ties would be broken by raster order)."""
    b, t = pred.shape[:2]
    p = pred.reshape(b, t, -1)
    if p.element_size() < 4:
        p = p.float()
    r = ref.reshape(b, 1, -1).to(p.dtype)
    ranked = r.sort(-1).values.expand(b, t, -1)  # (B, T, N): the reference's order statistics
    order = p.argsort(dim=-1, stable=True)
    out = p.new_empty(p.shape).scatter_(-1, order, ranked)
    dry = p == p.gather(-1, order[..., :1])  # at the prediction's minimum
    out = out.where(~dry, ranked[..., :1])  # z_ref: the reference's minimum
    return out.reshape(pred.shape).to(pred.dtype)

"""Verification scores of gray-level forecasts against observations (HKO-7 protocol).

:mod:`nowcast.verification.metrics`: streaming contingency tables per (lead time,
threshold) and error sums per lead time, from forecasts and observations ``(B, T, H, W)``
gray levels in [0, 1] and a ``(H, W)`` mask, on the tensors' device; CSI, HSS, POD, FAR,
ETS, bias and (B-)MSE/MAE computed once from the summed tables. Thresholds are rain rates
[mm/h], converted through the store's :class:`nowcast.units.GrayScale`. Used by the
evaluate stage, training's validation and its B-MSE loss weights.
"""

"""Metrics against independent references: the known-answer vector of docs/verification.md, pysteps'
det_cat_fct, hand-computed B-MSE and rain-rate errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pysteps.verification.detcatscores import det_cat_fct

from nowcast.units import GrayScale, dbz_to_rate, rate_to_dbz
from nowcast.verification.metrics import MetricAccumulator, categorical_scores

MP = GrayScale(z_min=-10.0, z_max=60.0, a=200.0, b=1.6)
HKO = GrayScale(z_min=-10.0, z_max=60.0, a=58.53, b=1.56)
KNOWN = {
    "csi": 0.573426,
    "hss": 0.608871,
    "ets": 0.437682,
    "pod": 0.780952,
    "far": 0.316667,
    "bias": 1.142857,
}


def test_known_answer_vector_from_counts():
    s = categorical_scores(82, 23, 38, 222)
    for name, value in KNOWN.items():
        assert s[name] == pytest.approx(value, abs=1e-6), name


def test_known_answer_vector_through_the_accumulator():
    """Fields laid out to give H=82, F=38, M=23, R=222 exactly at a 2 mm/h threshold."""
    lo, hi = MP.mmh_to_gray([1.0, 4.0])
    counts = {(hi, hi): 82, (hi, lo): 38, (lo, hi): 23, (lo, lo): 222}  # (pred, obs)
    pred = np.concatenate([np.full(n, p) for (p, _), n in counts.items()])
    obs = np.concatenate([np.full(n, o) for (_, o), n in counts.items()])
    acc = MetricAccumulator(1, [2.0], MP)
    acc.update(
        torch.tensor(pred).view(1, 1, 1, -1),
        torch.tensor(obs).view(1, 1, 1, -1),
        torch.ones(1, len(pred), dtype=torch.bool),
    )
    r = acc.result()
    assert (r.hits[0, 0], r.false_alarms[0, 0], r.misses[0, 0], r.correct_negatives[0, 0]) == (
        82,
        38,
        23,
        222,
    )
    for name, value in KNOWN.items():
        assert getattr(r, name)[0, 0] == pytest.approx(value, abs=1e-6), name


def test_hko7_thresholds_in_dbz():
    """HKO-7 Z–R (docs/verification.md): 0.5, 2, 5, 10, 30 mm/h ≈ 12.98, 22.37, 28.58, 33.27,
    40.72 dBZ."""
    gray = HKO.mmh_to_gray([0.5, 2, 5, 10, 30])
    dbz = HKO.z_min + gray * (HKO.z_max - HKO.z_min)
    np.testing.assert_allclose(dbz, [12.98, 22.37, 28.58, 33.27, 40.72], atol=0.006)
    np.testing.assert_allclose(gray, (dbz + 10) / 70)


def _random_fields(rng, shape, thresholds_gray):
    """Quantised gray fields (k/255) with NaNs, plus pixels lying exactly on each threshold."""
    obs = rng.integers(0, 256, size=shape) / 255.0
    pred = np.clip(obs + rng.normal(0, 0.15, size=shape), 0, 1)
    flat_p, flat_o = pred.reshape(-1), obs.reshape(-1)
    for t in thresholds_gray:  # ties: ≥ counts them as events, > would not
        idx = rng.choice(flat_p.size, 40, replace=False)
        flat_p[idx[:20]] = t
        flat_o[idx[10:30]] = t
    flat_p[rng.random(flat_p.size) < 0.05] = np.nan
    flat_o[rng.random(flat_o.size) < 0.05] = np.nan
    return pred, obs


def test_against_pysteps_det_cat_fct_with_ge_mapped_to_gt():
    rng = np.random.default_rng(0)
    thresholds = [0.5, 2.0, 5.0, 10.0, 30.0]
    tg = MP.mmh_to_gray(thresholds)
    B, L, H, W = 3, 4, 24, 20
    mask = rng.random((B, H, W)) > 0.2
    acc = MetricAccumulator(L, thresholds, MP)
    pred, obs = _random_fields(rng, (B, L, H, W), tg)
    acc.update(torch.tensor(pred), torch.tensor(obs), torch.tensor(mask))
    r = acc.result()
    names = {"csi": "CSI", "hss": "HSS", "pod": "POD", "far": "FAR", "ets": "GSS", "bias": "BIAS"}
    sensitive = False
    for lead in range(L):
        both = mask & np.isfinite(pred[:, lead]) & np.isfinite(obs[:, lead])  # NaNs masked jointly
        p, o = pred[:, lead][both], obs[:, lead][both]
        for k, t in enumerate(tg):
            ref = det_cat_fct(p, o, np.nextafter(t, -np.inf))  # x ≥ t  ⇔  x > nextafter(t, −∞)
            for ours, theirs in names.items():
                assert getattr(r, ours)[lead, k] == pytest.approx(
                    ref[theirs], abs=1e-9, nan_ok=True
                )
            strict = det_cat_fct(p, o, t)
            sensitive |= strict["CSI"] != ref["CSI"]
    assert sensitive, "the tie pixels should make ≥ and > differ"


def test_contingency_total_is_the_number_of_valid_pixels_and_streaming_is_exact():
    rng = np.random.default_rng(1)
    thresholds = [0.5, 2.0, 10.0]
    B, L, H, W = 4, 3, 16, 18
    pred, obs = _random_fields(rng, (B, L, H, W), MP.mmh_to_gray(thresholds))
    mask = rng.random((B, H, W)) > 0.3
    whole = MetricAccumulator(L, thresholds, MP)
    whole.update(torch.tensor(pred), torch.tensor(obs), torch.tensor(mask))
    parts = MetricAccumulator(L, thresholds, MP)
    for i in range(B):  # one window at a time
        parts.update(
            torch.tensor(pred[i : i + 1]),
            torch.tensor(obs[i : i + 1]),
            torch.tensor(mask[i : i + 1]),
        )
    a, b = whole.result(), parts.result()
    valid = mask[:, None] & np.isfinite(pred) & np.isfinite(obs)
    n_valid = valid.sum(axis=(0, 2, 3))
    total = a.hits + a.misses + a.false_alarms + a.correct_negatives
    np.testing.assert_array_equal(total, np.repeat(n_valid[:, None], len(thresholds), axis=1))
    np.testing.assert_array_equal(a.pixels, n_valid)
    for name in ("hits", "misses", "false_alarms", "correct_negatives"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    for name in ("mse", "mae", "b_mse", "b_mae", "mse_rate", "mae_rate", "csi", "hss"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-12)
    assert a.n_sequences == b.n_sequences == B


def test_sums_of_shares_give_the_whole_split():
    """state()/load_state(): what DDP validation adds over processes (each scores every
    world-th window) gives the accumulator of the whole split."""
    rng = np.random.default_rng(2)
    thresholds = [0.5, 2.0]
    B, L, H, W = 5, 2, 8, 10
    pred, obs = _random_fields(rng, (B, L, H, W), MP.mmh_to_gray(thresholds))
    mask = rng.random((B, H, W)) > 0.2
    whole = MetricAccumulator(L, thresholds, MP)
    whole.update(torch.tensor(pred), torch.tensor(obs), torch.tensor(mask))
    shares = []
    for rank in range(2):  # windows rank, rank + 2, …: 3 and 2 windows
        acc = MetricAccumulator(L, thresholds, MP)
        rows = slice(rank, None, 2)
        acc.update(torch.tensor(pred[rows]), torch.tensor(obs[rows]), torch.tensor(mask[rows]))
        shares.append(acc.state())
    merged = MetricAccumulator(L, thresholds, MP)
    merged.load_state([a + b for a, b in zip(*shares)])
    a, b = whole.result(), merged.result()
    assert b.n_sequences == B
    for name in ("hits", "misses", "false_alarms", "correct_negatives", "pixels"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    for name in ("mse", "b_mse", "mae_rate", "csi"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-12)


def test_mse_and_balanced_errors_by_hand():
    """Two sequences of one 2×2 frame; rain rates chosen in each B-MSE weight band."""
    rates = np.array([[1.0, 3.0], [7.0, 40.0]])  # weights 1, 2, 5, 30
    obs = MP.mmh_to_gray(rates)
    delta = np.array([[0.1, -0.2], [0.05, -0.3]])
    pred1 = obs + delta
    obs2 = np.array([[0.0, 0.0], [0.0, 0.0]])  # no rain: weight 1 everywhere
    pred2 = np.array([[0.2, 0.0], [0.0, np.nan]])  # the NaN pixel does not count
    mask2 = np.array([[True, True], [False, True]])  # nor does the masked one
    acc = MetricAccumulator(1, [2.0], MP)
    acc.update(
        torch.tensor(pred1)[None, None],
        torch.tensor(obs)[None, None],
        torch.ones(1, 2, 2, dtype=torch.bool),
    )
    acc.update(
        torch.tensor(pred2)[None, None], torch.tensor(obs2)[None, None], torch.tensor(mask2)[None]
    )
    r = acc.result()
    w = np.array([1, 2, 5, 30])
    d = delta.reshape(-1)
    assert r.mse[0] == pytest.approx((np.sum(d**2) + 0.2**2) / 2)
    assert r.mae[0] == pytest.approx((np.sum(np.abs(d)) + 0.2) / 2)
    assert r.b_mse[0] == pytest.approx((np.sum(w * d**2) + 0.2**2) / 2)
    assert r.b_mae[0] == pytest.approx((np.sum(w * np.abs(d)) + 0.2) / 2)
    # rain rate: through units.py (numpy), mean over the 4 + 2 counting pixels
    to_rate = lambda g: dbz_to_rate(MP.z_min + np.clip(g, 0, 1) * 70.0, MP.a, MP.b)  # noqa: E731
    e = np.concatenate(
        [(to_rate(pred1) - to_rate(obs)).reshape(-1), [to_rate(0.2) - to_rate(0.0), 0.0]]
    )
    assert r.pixels[0] == 6
    assert r.mse_rate[0] == pytest.approx(np.mean(e**2), rel=1e-5)
    assert r.mae_rate[0] == pytest.approx(np.mean(np.abs(e)), rel=1e-5)
    assert rate_to_dbz(rates, MP.a, MP.b)[1, 1] == pytest.approx(MP.z_min + obs[1, 1] * 70.0)


def test_undefined_scores_are_nan():
    """No event forecast or observed at 30 mm/h: CSI, POD, FAR are 0/0 → NaN; R counts all."""
    acc = MetricAccumulator(2, [0.5, 30.0], MP)
    g = torch.full((1, 2, 5, 5), float(MP.mmh_to_gray(1.0)), dtype=torch.float64)
    acc.update(g, g, torch.ones(5, 5, dtype=torch.bool))
    r = acc.result()
    np.testing.assert_array_equal(r.csi[:, 0], [1.0, 1.0])
    assert (
        np.isnan(r.csi[:, 1]).all() and np.isnan(r.pod[:, 1]).all() and np.isnan(r.far[:, 1]).all()
    )
    np.testing.assert_array_equal(r.correct_negatives[:, 1], [25, 25])
    np.testing.assert_array_equal(r.mse, [0.0, 0.0])


def test_float32_batches_match_float64():
    rng = np.random.default_rng(2)
    pred = rng.random((2, 3, 10, 10))
    obs = np.round(rng.random((2, 3, 10, 10)) * 255) / 255
    a, b = MetricAccumulator(3, [0.5, 5.0], MP), MetricAccumulator(3, [0.5, 5.0], MP)
    mask = torch.ones(10, 10, dtype=torch.bool)
    a.update(torch.tensor(pred), torch.tensor(obs), mask)
    b.update(torch.tensor(pred).float(), torch.tensor(obs).float(), mask)
    ra, rb = a.result(), b.result()
    np.testing.assert_array_equal(ra.hits, rb.hits)
    np.testing.assert_allclose(ra.mse, rb.mse, rtol=1e-5)
    np.testing.assert_allclose(ra.mse_rate, rb.mse_rate, rtol=1e-4)


def test_gray_scale_from_preprocess_dict_and_errors():
    from nowcast.errors import UserError

    s = GrayScale.from_preprocess({"z_min": -10, "z_max": 60, "zr": {"a": 58.53, "b": 1.56}})
    assert s == HKO
    assert GrayScale.from_preprocess({"z_min": -10, "z_max": 60, "a": 200, "b": 1.6}) == MP
    with pytest.raises(
        UserError, match="store.nc: preprocess attribute lacks the gray-scale constants z_max"
    ):
        GrayScale.from_preprocess({"z_min": -10, "a": 200, "b": 1.6}, source="store.nc")
    assert s.max_mmh() == pytest.approx(dbz_to_rate(60.0, 58.53, 1.56))
    g = torch.linspace(0, 1, 11, dtype=torch.float64)
    np.testing.assert_allclose(s.gray_to_mmh(g).numpy(), s.gray_to_mmh_np(g.numpy()), rtol=1e-12)


def test_gray_scale_takes_the_zr_relation_from_the_config_when_the_store_has_none():
    s = GrayScale.from_preprocess(
        {"z_min": -10, "z_max": 60}, "s.nc", zr_default={"a": 200, "b": 1.6}
    )
    assert s == MP
    stored = {"z_min": -10, "z_max": 60, "zr": {"a": 58.53, "b": 1.56}}
    assert GrayScale.from_preprocess(stored, "s.nc", zr_default={"a": 200, "b": 1.6}) == HKO

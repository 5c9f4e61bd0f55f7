"""Robustness battery: extreme magnitudes, hostile inputs, determinism, threads, memory."""

import numpy as np
import pytest
import torch

from sklearn_latent import RelativeProjector, functional as F, select_anchors

# Powers of two (~1e+-30): scaling by them is exact, so results must scale exactly.
HUGE, TINY = 2.0**100, 2.0**-100
DEGREE = {"cosine": 0, "angular": 0, "dot": 2, "euclidean": 1, "l1": 1, "linf": 1, "lp": 1}


def _scales(dtype):
    """(s, s) pairs: ~1e+-30 in float32, ~1e+-180 in float64 (squares overflow both)."""
    return (HUGE, TINY) if dtype == torch.float32 else (2.0**600, 2.0**-600)


# --------------------------------------------------------------------------
# extreme magnitudes: regression tests of the kernel fixes
# --------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("metric", F.METRICS)
def test_pairwise_scales_exactly_at_extreme_magnitudes(metric, dtype):
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(30, 6, generator=gen, dtype=torch.float64).to(dtype)
    A = torch.randn(5, 6, generator=gen, dtype=torch.float64).to(dtype)
    ref = F.pairwise(X, A, metric, p=3.0).to(torch.float64)
    info = torch.finfo(dtype)
    for s in _scales(dtype):
        out = F.pairwise(X * s, A * s, metric, p=3.0)
        expected = ref
        for _ in range(DEGREE[metric]):
            expected = expected * s
        if expected.abs().max() > info.max or expected.abs().max() < info.tiny:
            continue  # dot products beyond the dtype's range: nothing to compare
        assert torch.isfinite(out).all(), (metric, s)
        torch.testing.assert_close(out.to(torch.float64), expected, rtol=1e-5, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_safe_normalize_and_layer_normalize_at_extreme_magnitudes(dtype):
    X = torch.randn(20, 7, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    X = X.to(dtype)
    for s in _scales(dtype):
        torch.testing.assert_close(F._safe_normalize(X * s), F._safe_normalize(X))
        torch.testing.assert_close(F.layer_normalize(X * s), F.layer_normalize(X))
        torch.testing.assert_close(F._row_norms(X * s) / s, F._row_norms(X))
    assert torch.equal(F._safe_normalize(torch.zeros(2, 3, dtype=dtype)), torch.zeros(2, 3, dtype=dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "params",
    [
        dict(metric="cosine"),
        dict(metric="angular", center=False),
        dict(metric="euclidean", normalize="standard"),
        dict(metric="l1", normalize="layer", anchors="fps"),
        dict(metric="linf", anchors="kmeans"),
        dict(metric="lp", p=3.0, normalize="l2"),
        dict(metric="dot", normalize="l2"),
        dict(metric="cosine", top_k=3, exponent=2.0, normalize="standard"),
    ],
    ids=lambda p: "-".join(f"{v}" for v in p.values()),
)
def test_relative_projector_scales_exactly_at_extreme_magnitudes(params, dtype):
    X = np.random.default_rng(2).normal(size=(40, 5)).astype(dtype)
    ref = RelativeProjector(6, random_state=0, **params).fit(X)
    R = ref.transform(X)
    degree = DEGREE[params["metric"]] if params.get("normalize") is None else 0
    for s in _scales(torch.float32 if dtype == np.float32 else torch.float64):
        est = RelativeProjector(6, random_state=0, **params).fit(X * dtype(s))
        np.testing.assert_array_equal(est.anchor_indices_, ref.anchor_indices_)
        out = est.transform(X * dtype(s))
        assert np.isfinite(out).all()
        np.testing.assert_allclose(out / s**degree, R, rtol=2e-5, atol=1e-6)
        # inverse_transform and the stored mean norm scale with the data
        if params["metric"] == "cosine" and params.get("top_k") is None:
            assert est.mean_anchor_norm_ == pytest.approx(ref.mean_anchor_norm_ * s, rel=1e-6)
            np.testing.assert_allclose(
                est.inverse_transform(out) / s, ref.inverse_transform(R), rtol=1e-4, atol=1e-5
            )


@pytest.mark.parametrize("method", ["fps", "kmeans"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_select_anchors_same_rows_at_extreme_magnitudes(method, dtype):
    X = np.random.default_rng(3).normal(size=(200, 4)).astype(dtype)
    ref = select_anchors(X, 12, method, random_state=0)
    for s in _scales(torch.float32 if dtype == np.float32 else torch.float64):
        np.testing.assert_array_equal(select_anchors(X * dtype(s), 12, method, random_state=0), ref)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unrepresentable_results_raise_instead_of_inf(dtype):
    # dot products of |x| ~ 1e30 are ~1e60: beyond float32 (and 1e180 beyond float64).
    s = HUGE if dtype == np.float32 else 2.0**600
    X = np.random.default_rng(4).normal(size=(30, 4)).astype(dtype) * dtype(s)
    est = RelativeProjector(5, metric="dot", random_state=0)
    with pytest.raises(ValueError, match=f"overflows {np.dtype(dtype).name}"):
        est.fit(X).transform(X)
    with pytest.raises(ValueError, match="overflows"):
        RelativeProjector(5, metric="dot", normalize="standard", random_state=0).fit(X)
    # row-wise normalizations do not need the product itself: they still work
    out = RelativeProjector(5, metric="dot", normalize="l2", random_state=0).fit(X).transform(X)
    assert np.isfinite(out).all()

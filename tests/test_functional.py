"""The pure torch kernels of ``sklearn_latent.functional`` against naive numpy formulas."""

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal

from sklearn_latent import functional as F


def _t(a, device, dtype=torch.float64):
    return torch.as_tensor(np.asarray(a), dtype=dtype, device=device)


def _n(t):
    return t.detach().cpu().numpy()


# --------------------------------------------------------------------------
# naive references: explicit loops over (x, a) pairs
# --------------------------------------------------------------------------
def _naive(X, A, metric, center=None, p=2.0):
    X = np.asarray(X, dtype=np.float64)
    A = np.asarray(A, dtype=np.float64)
    if center is not None:
        X, A = X - center, A - center
    out = np.empty((X.shape[0], A.shape[0]))
    for i, x in enumerate(X):
        for j, a in enumerate(A):
            diff = x - a
            if metric in ("cosine", "angular"):
                nx, na = np.sqrt(np.sum(x * x)), np.sqrt(np.sum(a * a))
                c = 0.0 if nx == 0 or na == 0 else np.sum(x * a) / (nx * na)
                out[i, j] = c if metric == "cosine" else np.arccos(np.clip(c, -1, 1))
            elif metric == "dot":
                out[i, j] = np.sum(x * a)
            elif metric == "euclidean":
                out[i, j] = np.sqrt(np.sum(diff**2))
            elif metric == "l1":
                out[i, j] = np.sum(np.abs(diff))
            elif metric == "linf":
                out[i, j] = np.max(np.abs(diff))
            elif metric == "lp":
                out[i, j] = np.sum(np.abs(diff) ** p) ** (1.0 / p)
    return out


def _sample(n=30, k=7, d=5, seed=0, offset=0.0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) + offset
    A = rng.normal(size=(k, d)) * 1.5 + offset
    return X, A


@pytest.mark.parametrize("metric", F.METRICS)
@pytest.mark.parametrize("centered", [False, True])
def test_pairwise_matches_naive_formula(device, metric, centered):
    X, A = _sample(offset=0.3)
    c = np.linspace(-1, 1, X.shape[1]) if centered else None
    got = F.pairwise(_t(X, device), _t(A, device), metric,
                     center=None if c is None else _t(c, device), p=3.0)
    assert got.shape == (30, 7)
    assert got.device.type == device.type
    assert got.dtype == torch.float64
    expected = _naive(X, A, metric, center=c, p=3.0)
    assert_allclose(_n(got), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("metric", F.METRICS)
def test_pairwise_float32(device, metric):
    X, A = _sample()
    got = F.pairwise(_t(X, device, torch.float32), _t(A, device, torch.float32), metric, p=3.0)
    assert got.dtype == torch.float32
    assert_allclose(_n(got), _naive(X, A, metric, p=3.0), rtol=1e-4, atol=1e-4)


def test_centering_changes_cosine_and_dot_not_distances(device):
    X, A = _sample()
    c = _t(np.full(X.shape[1], 2.0), device)
    Xt, At = _t(X, device), _t(A, device)
    for metric in ("cosine", "dot", "angular"):
        diff = (F.pairwise(Xt, At, metric, center=c) - F.pairwise(Xt, At, metric)).abs()
        assert float(diff.max()) > 1e-2, metric
    for metric in ("euclidean", "l1", "linf", "lp"):
        assert_allclose(_n(F.pairwise(Xt, At, metric, center=c, p=3.0)),
                        _n(F.pairwise(Xt, At, metric, p=3.0)), atol=1e-10)


def test_lp_with_p_1_2_inf_equals_named_distances(device):
    X, A = _sample()
    Xt, At = _t(X, device), _t(A, device)
    assert_allclose(_n(F.pairwise(Xt, At, "lp", p=1.0)), _n(F.pairwise(Xt, At, "l1")),
                    atol=1e-12)
    assert_allclose(_n(F.pairwise(Xt, At, "lp", p=2.0)), _n(F.pairwise(Xt, At, "euclidean")),
                    atol=1e-10)


def test_unknown_metric_raises(device):
    X, A = _sample()
    with pytest.raises(ValueError, match="metric='nope'"):
        F.pairwise(_t(X, device), _t(A, device), "nope")


@pytest.mark.parametrize("offset", [1e4, -3e4])
def test_euclidean_exact_for_large_offsets(device, offset):
    # ||x||^2 + ||a||^2 - 2 x.a cancels catastrophically at |x| ~ 1e4 (errors
    # ~1e-3 near zero distance); the anchor-mean shift keeps float64 exact.
    X, _ = _sample(n=40, d=6)
    A = X[[0, 3, 5, 11, 17]]  # anchors are rows: exact zeros in the answer
    expected = _naive(X, A, "euclidean")
    got = _n(F.pairwise(_t(X + offset, device), _t(A + offset, device), "euclidean"))
    assert_allclose(got, expected, rtol=1e-9, atol=1e-6)
    proj = F._relative_projector(_t(A + offset, device), "euclidean")
    assert_allclose(_n(proj(_t(X + offset, device))), expected, rtol=1e-9, atol=1e-6)


def test_euclidean_is_never_nan_for_identical_rows(device):
    X = _t(np.tile(np.random.default_rng(1).normal(size=(1, 9)) * 1e3, (5, 1)), device)
    out = F.pairwise(X, X, "euclidean")
    assert bool(torch.isfinite(out).all())
    assert float(out.max()) < 1e-4


@pytest.mark.parametrize("metric", ["cosine", "angular"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_zero_rows_give_zero_cosine_never_nan(device, metric, dtype):
    X, A = _sample()
    X[[2, 5]] = 0.0
    A[3] = 0.0
    out = F.pairwise(_t(X, device, dtype), _t(A, device, dtype), metric)
    assert bool(torch.isfinite(out).all())
    zero = 0.0 if metric == "cosine" else np.pi / 2
    assert_allclose(_n(out)[[2, 5]], zero, atol=1e-6)
    assert_allclose(_n(out)[:, 3], zero, atol=1e-6)
    # and centering onto a row makes that row zero: still 0, not NaN
    c = _t(X[7], device, dtype)
    out = F.pairwise(_t(X, device, dtype), _t(A, device, dtype), metric, center=c)
    assert bool(torch.isfinite(out).all())
    assert_allclose(_n(out)[7], zero, atol=1e-6)


@pytest.mark.parametrize("metric", ["cosine", "angular"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_vectors_zero_up_to_rounding_after_centering_give_zero(device, metric, dtype):
    # the mean of 3 copies of a row is not that row in floating point: the
    # centered anchors are rounding noise, whose direction must not leak out
    X = np.random.default_rng(0).normal(size=(20, 4)) + 0.1
    A = _t(X[[3, 3, 3]], device, dtype)
    c = A.mean(dim=0)
    assert not torch.equal(A[0] - c, torch.zeros_like(c)) or dtype == torch.float32
    zero = 0.0 if metric == "cosine" else np.pi / 2
    for out in (F.pairwise(_t(X, device, dtype), A, metric, center=c),
                F._relative_projector(A, metric, center=c)(_t(X, device, dtype))):
        assert_allclose(_n(out), zero, atol=1e-6)
    # a sample equal to the anchor mean up to rounding is a zero vector too
    A = _t(X[:3], device, dtype)
    c = A.mean(dim=0)
    probe = (A[0] + A[1] + A[2]) / 3  # the mean, rounded differently
    out = F.pairwise(probe[None], A, metric, center=c)
    assert_allclose(_n(out), zero, atol=1e-6)
    # ... while a genuinely small difference keeps its direction
    small = c + 1e-3 * (A[0] - c)
    out = F.pairwise(small[None], A[:1], "cosine", center=c)
    assert_allclose(_n(out), 1.0, atol=1e-4)


def test_safe_normalize(device):
    X = np.random.default_rng(0).normal(size=(6, 4))
    X[1] = 0
    out = _n(F._safe_normalize(_t(X, device)))
    assert_allclose(np.linalg.norm(out[[0, 2, 3, 4, 5]], axis=1), 1.0)
    assert_array_equal(out[1], 0.0)


def test_relative_projection_matches_projector_closure(device):
    X, A = _sample(n=25, k=6)
    c = _t(A.mean(0), device)
    Xt, At = _t(X, device), _t(A, device)
    for metric in F.METRICS:
        kw = {"top_k": 3, "exponent": 2.0} if metric in F.SIMILARITIES else {}
        a = F.relative_projection(Xt, At, metric, center=c, p=3.0, **kw)
        b = F._relative_projector(At, metric, center=c, p=3.0, **kw)(Xt)
        assert_array_equal(_n(a), _n(b))


# --------------------------------------------------------------------------
# sparsify / layer_normalize
# --------------------------------------------------------------------------
@pytest.mark.parametrize("top_k", [1, 3, 8])
def test_sparsify_top_k_keeps_largest_entries(device, top_k):
    R = np.random.default_rng(0).normal(size=(20, 8))
    out = _n(F.sparsify(_t(R, device), top_k=top_k))
    assert_array_equal((out != 0).sum(axis=1), top_k)
    for r, o in zip(R, out):
        keep = np.argsort(-r)[:top_k]
        assert_array_equal(np.flatnonzero(o), np.sort(keep))
        assert_array_equal(o[keep], r[keep])


def test_sparsify_identity_by_default(device):
    R = _t(np.random.default_rng(0).normal(size=(4, 5)), device)
    assert torch.equal(F.sparsify(R), R)


@pytest.mark.parametrize("exponent", [0.5, 2.0, 3.0])
def test_sparsify_signed_exponent_never_nan(device, exponent):
    R = np.random.default_rng(0).uniform(-1, 1, size=(20, 8))
    R[0, 0] = 0.0
    assert (R < 0).any()
    out = _n(F.sparsify(_t(R, device), exponent=exponent))
    assert np.isfinite(out).all()
    assert_allclose(out, np.sign(R) * np.abs(R) ** exponent, rtol=1e-12)
    assert_array_equal(np.sign(out), np.sign(R))


def test_sparsify_top_k_then_exponent(device):
    R = np.random.default_rng(0).uniform(-1, 1, size=(10, 6))
    R[0] = -np.abs(R[0])  # a row whose kept entries are negative
    out = _n(F.sparsify(_t(R, device), top_k=2, exponent=0.5))
    assert np.isfinite(out).all()
    expected = np.zeros_like(R)
    for i, r in enumerate(R):
        keep = np.argsort(-r)[:2]
        expected[i, keep] = np.sign(r[keep]) * np.abs(r[keep]) ** 0.5
    assert_allclose(out, expected, rtol=1e-12, atol=0)
    assert (out[0] < 0).sum() == 2


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("value", [0.1, 0.3, 1 / 3, 1e5 + 0.1])
@pytest.mark.parametrize("width", [3, 7, 300])
def test_layer_normalize_constant_rows_are_zero(device, dtype, value, width):
    # the row mean of a constant row is not always that constant in floating
    # point; the difference is rounding noise and must not become +-1
    R = torch.full((2, width), value, dtype=dtype, device=device)
    R[1, 0] += 1.0
    out = _n(F.layer_normalize(R))
    assert_array_equal(out[0], 0.0)
    assert_allclose(out[1].std(), 1.0, rtol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_layer_normalize(device, dtype):
    R = np.random.default_rng(0).normal(size=(12, 9)) * 5 + 3
    R[4] = 7.25  # constant row
    out = _n(F.layer_normalize(_t(R, device, dtype)))
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    rows = [i for i in range(12) if i != 4]
    assert_allclose(out[rows].mean(axis=1), 0.0, atol=tol)
    assert_allclose(out[rows].std(axis=1), 1.0, atol=tol)
    assert_array_equal(out[4], 0.0)
    expected = (R[rows] - R[rows].mean(1, keepdims=True)) / R[rows].std(1, keepdims=True)
    assert_allclose(out[rows], expected, rtol=tol, atol=tol)


# --------------------------------------------------------------------------
# inverse relative projection
# --------------------------------------------------------------------------
@pytest.mark.parametrize("k", [8, 20])  # centered anchors span the space when k >= d + 1
@pytest.mark.parametrize("centered", [False, True])
def test_inverse_relative_projection_round_trip(device, k, centered):
    rng = np.random.default_rng(0)
    d = 6
    X = rng.normal(size=(50, d)) + 0.5
    A = rng.normal(size=(k, d)) + 0.5
    c = A.mean(0) if centered else None
    ct = None if c is None else _t(c, device)
    R = F.relative_projection(_t(X, device), _t(A, device), "cosine", center=ct)
    P = F.normalized_anchor_inverse(_t(A, device), center=ct)
    assert P.shape == (k, d)
    Xc = X - (0.0 if c is None else c)
    unit = Xc / np.linalg.norm(Xc, axis=1, keepdims=True)
    # directions come back exactly when the anchors span the space (k >= d)
    Y = _n(F.inverse_relative_projection(R, P))
    assert_allclose(Y, unit, atol=1e-10)
    # with scale and offset: y = s * norm(x - c) + c
    Y = _n(F.inverse_relative_projection(R, P, scale=2.5, offset=ct))
    assert_allclose(Y, 2.5 * unit + (0.0 if c is None else c), atol=1e-10)


def test_normalized_anchor_inverse_ridge(device):
    rng = np.random.default_rng(0)
    A = rng.normal(size=(12, 5))
    At = _t(A, device)
    plain = _n(F.normalized_anchor_inverse(At))
    A_hat = A / np.linalg.norm(A, axis=1, keepdims=True)
    assert_allclose(plain, np.linalg.pinv(A_hat).T, atol=1e-10)
    ridge = _n(F.normalized_anchor_inverse(At, alpha=0.1))
    expected = np.linalg.solve(A_hat @ A_hat.T + 0.1 * np.eye(12), A_hat)
    assert_allclose(ridge, expected, atol=1e-10)
    # ridge still recovers directions approximately
    X = rng.normal(size=(30, 5))
    R = F.relative_projection(_t(X, device), At, "cosine")
    Y = _n(F.inverse_relative_projection(R, _t(ridge, device)))
    cos = np.sum(Y * X, 1) / np.linalg.norm(X, axis=1)
    assert cos.min() > 0.99


def test_normalized_anchor_inverse_keeps_dtype(device):
    A = _t(np.random.default_rng(0).normal(size=(8, 4)), device, torch.float32)
    P = F.normalized_anchor_inverse(A)
    assert P.dtype == torch.float32 and P.device.type == device.type

"""The L1 / L-inf / Lp kernels (functional/_lp.py): JIT and pure-torch fallback.

Reference: the naive formula ``(sum_t |x_t - a_t| ** p) ** (1 / p)`` (``max`` for
L-inf) evaluated in float64.  L-inf is a maximum of exactly rounded differences,
so every implementation must agree bit for bit with the naive formula in the
input dtype; L1 / Lp sums may differ by the summation order only, bounded by
``d * eps`` times the sum of the terms.
"""

import math

import numpy as np
import pytest
import torch

import sklearn_latent.functional as F
from sklearn_latent import ProductInvarianceProjector, RelativeProjector
from sklearn_latent.functional import _lp

needs_jit = pytest.mark.skipif(
    not _lp.jit_available(), reason="numba (the 'fast' extra) is not installed"
)
PS = [1.0, math.inf, 3.0, 1.5]
EPS = {torch.float32: torch.finfo(torch.float32).eps, torch.float64: torch.finfo(torch.float64).eps}


def _data(n, k, d, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = (torch.randn(n, d, generator=g, dtype=torch.float64) * 3 + 1).to(dtype)
    A = torch.randn(k, d, generator=g, dtype=torch.float64).to(dtype)
    return X, A


def _naive(X, A, p):
    """Naive formula: exact |x - a| in the input dtype, then float64 arithmetic."""
    diff = (X[:, None, :] - A[None, :, :]).abs()
    if math.isinf(p):
        return diff.amax(-1)
    return (diff.double() ** p).sum(-1) ** (1.0 / p)


def _check(got, X, A, p):
    ref = _naive(X, A, p)
    assert got.dtype == X.dtype and got.shape == ref.shape
    if math.isinf(p):
        assert torch.equal(got, ref)  # exact
        return
    # Summation order: |error| <= d * eps * sum of terms (the terms are positive),
    # plus rounding of the root; a factor 4 of slack.
    d = X.shape[1]
    bound = 4 * (d + 2) * EPS[X.dtype] * ref.double()
    assert bool(((got.double() - ref).abs() <= bound + 1e-300).all())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("p", PS)
@pytest.mark.parametrize("n, k, d", [(1, 5, 3), (40, 33, 19), (130, 67, 100), (7, 200, 1)])
def test_minkowski_matches_naive_formula_jit_and_fallback(n, k, d, p, dtype, monkeypatch):
    X, A = _data(n, k, d, dtype, seed=n + k)
    _check(F._minkowski(X, A, p), X, A, p)
    monkeypatch.setattr(_lp, "USE_JIT", False)
    assert not _lp.usable(X, A)
    _check(F._minkowski(X, A, p), X, A, p)


@needs_jit
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("p", PS)
def test_jit_kernel_takes_the_jit_path_and_equals_the_fallback(p, dtype, monkeypatch):
    X, A = _data(150, 70, 50, dtype)
    assert _lp.usable(X, A)
    jit = _lp.minkowski(X, A, p)
    monkeypatch.setattr(_lp, "USE_JIT", False)
    fallback = F._minkowski(X, A, p)
    if math.isinf(p):
        assert torch.equal(jit, fallback)
    else:
        torch.testing.assert_close(jit, fallback, rtol=200 * EPS[dtype], atol=0)


@needs_jit
@pytest.mark.parametrize("p", [1.0, math.inf, 3.0])
def test_jit_rows_do_not_depend_on_chunks_or_threads(p):
    X, A = _data(300, 41, 33, torch.float32)
    full = _lp.minkowski(X, A, p)
    for a, b in [(0, 1), (5, 77), (64, 300), (299, 300)]:
        assert torch.equal(_lp.minkowski(X[a:b], A, p), full[a:b])
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert torch.equal(_lp.minkowski(X, A, p), full)
    finally:
        torch.set_num_threads(threads)


@needs_jit
def test_jit_small_and_degenerate_inputs_use_the_fallback_or_agree():
    X, A = _data(3, 2, 4, torch.float32)
    assert not _lp.usable(X, A)  # too little work for the JIT's call overhead
    assert not _lp.usable(X.half(), A.half())
    Xg = X.clone().requires_grad_()
    assert not _lp.usable(Xg, A)
    X0 = torch.zeros(500, 0)
    assert torch.equal(_lp.minkowski(X0, torch.zeros(300, 0), 1.0), torch.zeros(500, 300))


@pytest.mark.parametrize("metric", ["l1", "linf", "lp"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relative_projector_difference_metrics_naive_and_chunked(backend, metric, dtype):
    rng = np.random.default_rng(3)
    X = (rng.normal(size=(260, 24)) + 2.0).astype(dtype)
    est = RelativeProjector(50, anchors="fps", metric=metric, p=3.0, random_state=0)
    R = backend.to_numpy(est.fit_transform(backend.asarray(X)))
    assert R.dtype == dtype
    p = {"l1": 1.0, "linf": math.inf, "lp": 3.0}[metric]
    X64 = torch.from_numpy(X).double()
    ref = _naive(X64, X64[torch.from_numpy(est.anchor_indices_)], p).numpy()
    # the estimator subtracts the anchor mean first (rounded in the input dtype)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(R, ref, rtol=tol, atol=tol * np.abs(X).max())
    chunked = est.set_params(batch_size=64).transform(backend.asarray(X))
    np.testing.assert_array_equal(backend.to_numpy(chunked), R)


@needs_jit
def test_product_projector_same_with_and_without_jit(monkeypatch):
    rng = np.random.default_rng(4)
    X = rng.normal(size=(200, 16)).astype(np.float32)
    est = ProductInvarianceProjector(
        40, metrics=("l1", "linf"), normalize=None, random_state=0
    ).fit(X)
    jit = est.transform(X)
    monkeypatch.setattr(_lp, "USE_JIT", False)
    fallback = est.transform(X)
    np.testing.assert_allclose(jit, fallback, rtol=1e-4, atol=1e-4)
    # L-inf columns are the second half: exact in both
    k = est.anchors_.shape[0]
    np.testing.assert_array_equal(jit[:, k:], fallback[:, k:])

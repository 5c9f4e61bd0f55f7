"""The fast (blocked, no-autograd) kernels agree with the naive formulas.

``functional._pairwise_prepared`` computes cosine, angular, dot and euclidean
by row blocks into one preallocated result when no gradient is needed, and by
the plain differentiable formulas otherwise; ``apply_batched`` copies chunk
results straight into the output.  These tests pin both against float64
references written out naively, over several blocks with a ragged last one.
"""

import numpy as np
import pytest
import torch

from sklearn_latent import RelativeProjector
from sklearn_latent import functional as F
from sklearn_latent._backend import apply_batched

METRICS = ("cosine", "angular", "dot", "euclidean")
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of 7 rows (for d = 5), so every test crosses block boundaries."""
    monkeypatch.setitem(F._BLOCK_ELEMENTS, "cpu", 35)
    monkeypatch.setattr(F, "_BLOCK_ELEMENTS_OTHER", 35)


def naive(X, A, metric, center):
    """float64 numpy reference, one formula per metric, no shortcuts."""
    X, A = X.astype(np.float64), A.astype(np.float64)
    if center is not None:
        X, A = X - center, A - center
    if metric == "dot":
        return X @ A.T
    if metric == "euclidean":
        return np.sqrt(((X[:, None, :] - A[None, :, :]) ** 2).sum(-1))
    nx, na = np.linalg.norm(X, axis=1), np.linalg.norm(A, axis=1)
    Xh = np.divide(X, nx[:, None], out=np.zeros_like(X), where=nx[:, None] > 0)
    Ah = np.divide(A, na[:, None], out=np.zeros_like(A), where=na[:, None] > 0)
    cos = Xh @ Ah.T
    return np.arccos(np.clip(cos, -1, 1)) if metric == "angular" else cos


def data(dtype, n=23, k=6, d=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * 3 + 1
    A = rng.normal(size=(k, d))
    X[4] = 0.0  # zero sample
    A[2] = 0.0  # zero anchor
    return X.astype(dtype), A.astype(dtype)


@pytest.mark.usefixtures("small_blocks")
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("centered", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_blocked_matches_naive_and_autograd_path(metric, centered, dtype):
    X, A = data(dtype)
    c = A.mean(axis=0) if centered else None
    Xt, At = torch.from_numpy(X), torch.from_numpy(A)
    ct = None if c is None else torch.from_numpy(c)
    with torch.no_grad():
        fast = F.pairwise(Xt, At, metric, center=ct)
    Xg = Xt.clone().requires_grad_(True)
    slow = F.pairwise(Xg, At, metric, center=ct)
    assert slow.grad_fn is not None  # really the differentiable path
    assert fast.dtype == Xt.dtype and fast.shape == (23, 6)
    assert torch.isfinite(fast).all()
    # euclidean has no explicit center: it subtracts the anchor mean itself
    ref_center = A.astype(np.float64).mean(0) if metric == "euclidean" and c is None else c
    ref = naive(X, A, metric, ref_center)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    if metric == "angular":
        tol = 2e-3 if dtype == np.float32 else 1e-6  # arccos is steep near +-1
    fast, slow = fast.numpy(), slow.detach().numpy()
    if metric == "euclidean":
        # the distance of two equal points (the zero sample to the zero anchor) is the
        # square root of the rounding residue of |x|^2 + |a|^2 - 2 x.a: up to sqrt(eps)
        # times the norms (1.8e-8 in float64 on one CPU, 0 on another); the rest to tol
        same = ref == 0.0
        bound = 4.0 * np.sqrt(np.finfo(dtype).eps) * float(np.abs(X).max() + np.abs(A).max())
        assert same.sum() == 1 and np.abs(fast[same]).max() <= bound
        assert np.abs(slow[same]).max() <= bound
        fast, slow, ref = fast[~same], slow[~same], ref[~same]
    np.testing.assert_allclose(fast, ref, atol=tol, rtol=tol)
    np.testing.assert_allclose(fast, slow, atol=tol, rtol=tol)


@pytest.mark.usefixtures("small_blocks")
@pytest.mark.parametrize("centered", [False, True])
def test_zero_rows_give_zero_cosine(centered):
    X, A = data(np.float32)
    c = torch.from_numpy(A.mean(axis=0)) if centered else None
    Xt, At = torch.from_numpy(X), torch.from_numpy(A)
    if centered:  # zero after centering
        Xt[4] = c
        At[2] = c
    with torch.no_grad():
        R = F.relative_projection(Xt, At, "cosine", center=c)
    assert not torch.isnan(R).any()
    assert torch.equal(R[4], torch.zeros(6))
    assert torch.equal(R[:, 2], torch.zeros(23))


@pytest.mark.usefixtures("small_blocks")
def test_blocked_does_not_modify_inputs():
    X, A = data(np.float32)
    X0, A0 = X.copy(), A.copy()
    Xt, At = torch.from_numpy(X), torch.from_numpy(A)
    with torch.no_grad():
        for metric in METRICS:
            F.pairwise(Xt, At, metric, center=torch.from_numpy(A.mean(0)))
            F.pairwise(Xt, At, metric)
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(A, A0)


def test_gradient_flows_through_the_differentiable_path():
    X, A = data(np.float64)
    Xt = torch.from_numpy(X).requires_grad_(True)
    At = torch.from_numpy(A).requires_grad_(True)
    R = F.relative_projection(Xt, At, "cosine", center=At.mean(0))
    R.sum().backward()
    assert Xt.grad is not None and At.grad is not None
    assert torch.isfinite(Xt.grad).all() and torch.isfinite(At.grad).all()


@pytest.mark.parametrize("center", [True, False])
def test_float32_with_large_offset_keeps_precision(center):
    rng = np.random.default_rng(0)
    X64 = rng.normal(size=(200, 64)) + 1e4
    X32 = X64.astype(np.float32)
    kw = dict(n_anchors=20, center=center, random_state=0)
    R64 = RelativeProjector(**kw).fit(X64).transform(X64)
    R32 = RelativeProjector(**kw, batch_size=64).fit(X32).transform(X32)
    assert R32.dtype == np.float32
    assert np.abs(R32 - R64).max() < 1e-3


@pytest.mark.parametrize("metric", METRICS)
def test_transform_batched_equals_unbatched(metric):
    X, _ = data(np.float32, n=101, d=8)
    est = RelativeProjector(10, metric=metric, random_state=0).fit(X)
    full = est.transform(X)
    # Chunks change the GEMM's blocking, hence float32 rounding: up to eps * scale
    # for dot, and its square root for the distance of an anchor to itself (and
    # arccos near 1).
    atol = {"cosine": 1e-6, "dot": 1e-5 * np.abs(full).max(), "angular": 2e-3,
            "euclidean": 1e-2}[metric]
    for batch_size in (1, 7, 100, 101, 1000):
        part = est.set_params(batch_size=batch_size).transform(X)
        assert part.dtype == np.float32
        np.testing.assert_allclose(part, full, rtol=1e-5, atol=atol)
    Xt = torch.from_numpy(X)
    part = est.set_params(batch_size=7).transform(Xt)
    assert isinstance(part, torch.Tensor) and part.dtype == torch.float32
    np.testing.assert_allclose(part.numpy(), full, rtol=1e-5, atol=atol)


def test_apply_batched_copies_chunks_into_the_output():
    X = np.arange(30.0, dtype=np.float32).reshape(10, 3)
    X.flags.writeable = False  # read-only input (memmap-like) is copied chunk by chunk

    def fn(T):
        return torch.cat([T.sum(dim=1, keepdim=True), -T[:, :1]], dim=1)

    expected = np.stack([X.sum(1), -X[:, 0]], axis=1)
    for batch_size in (None, 1, 3, 10):
        out = apply_batched(fn, X, device=torch.device("cpu"), n_outputs=2,
                            batch_size=batch_size)
        assert isinstance(out, np.ndarray) and out.dtype == np.float32
        np.testing.assert_array_equal(out, expected)
        out = apply_batched(fn, torch.from_numpy(X.copy()), device=torch.device("cpu"),
                            n_outputs=2, batch_size=batch_size)
        assert isinstance(out, torch.Tensor)
        np.testing.assert_array_equal(out.numpy(), expected)


@pytest.mark.cuda
@cuda
@pytest.mark.parametrize("metric", METRICS)
def test_blocked_on_cuda_matches_cpu(metric):
    X, A = data(np.float32, n=300, d=16)
    Xt, At = torch.from_numpy(X), torch.from_numpy(A)
    with torch.no_grad():
        cpu = F.pairwise(Xt, At, metric, center=At.mean(0))
        gpu = F.pairwise(Xt.cuda(), At.cuda(), metric, center=At.mean(0).cuda())
    np.testing.assert_allclose(gpu.cpu().numpy(), cpu.numpy(), atol=1e-4, rtol=1e-4)
    est = RelativeProjector(6, metric=metric, device="cuda", batch_size=64, random_state=0)
    R = est.fit(X).transform(X)
    assert isinstance(R, np.ndarray)
    R_t = est.transform(Xt.cuda())
    assert R_t.device.type == "cuda"
    np.testing.assert_allclose(R_t.cpu().numpy(), R, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("where", [(0, 0), (6, 2), (10, 4)])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_tensor_finite_check_by_blocks_finds_every_bad_value(where, bad):
    from sklearn_latent._backend import _all_finite

    X = torch.zeros(11, 5, dtype=torch.float32)
    assert _all_finite(X, block_elements=10)
    X[where] = bad
    assert not _all_finite(X, block_elements=10)  # blocks of 2 rows, ragged last one
    with pytest.raises(ValueError, match="NaN" if np.isnan(bad) else "infinity"):
        RelativeProjector(2).fit(X)


def test_tensor_validation_allocates_no_input_sized_mask(monkeypatch):
    X = torch.randn(5000, 8)
    seen = []
    isfinite = torch.isfinite

    def spy(T):
        seen.append(T.numel())
        return isfinite(T)

    monkeypatch.setattr(torch, "isfinite", spy)
    monkeypatch.setattr("sklearn_latent._backend._all_finite.__defaults__", (1024,))
    RelativeProjector(3, random_state=0).fit(X)
    assert seen and max(seen) <= 1024

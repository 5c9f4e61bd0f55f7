"""Similarity measures of issue 16: paper formulas written plainly, invariances both ways,
calibration against a permutation null, many spaces at once."""

import pickle

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose
from scipy.stats import ortho_group

from sklearn_latent import functional as F
from sklearn_latent.metrics import (
    MEASURES,
    CalibratedScore,
    calibrate,
    cknna,
    laplacian_eigenvalue_distance,
    linear_cka,
    plot_similarity_matrix,
    procrustes_distance,
    pwcca,
    rbf_cka,
    shape_distance,
    similarity_matrix,
    svcca,
)

X_REF = np.arange(32.0).reshape(8, 4)
Y_REF = np.array(
    [
        [1, 2, 27, 22], [0, 28, 15, 18], [12, 9, 14, 8], [11, 19, 16, 13],
        [31, 20, 10, 3], [24, 5, 7, 29], [4, 30, 21, 6], [26, 17, 23, 25],
    ],
    dtype=float,
)


def _pair(n=60, dx=6, dy=5, seed=0, noise=1.0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, dx))
    Y = X @ rng.normal(size=(dx, dy)) + noise * rng.normal(size=(n, dy))
    return X, Y


# --------------------------------------------------------------------------
# plain formulas (n x n matrices, numpy float64)
# --------------------------------------------------------------------------
def _hsic_u(K, L):
    """Song et al. (2012), as written in REFERENCE.md."""
    n = K.shape[0]
    K, L = K.copy(), L.copy()
    np.fill_diagonal(K, 0.0)
    np.fill_diagonal(L, 0.0)
    one = np.ones(n)
    return (np.trace(K @ L) + (one @ K @ one) * (one @ L @ one) / ((n - 1) * (n - 2))
            - 2.0 * (K @ one) @ (L @ one) / (n - 2)) / (n * (n - 3))


def _cka_u(K, L):
    return _hsic_u(K, L) / np.sqrt(_hsic_u(K, K) * _hsic_u(L, L))


def _sq_dist(X):
    return ((X[:, None, :] - X[None, :, :]) ** 2).sum(-1)


def _whiten(X, alpha):
    """netrep's partial whitening (preserve_variance=True), written plainly."""
    lam, V = np.linalg.eigh(X.T @ X)
    lam = np.maximum(lam, 1e-10 * lam.max())
    d = alpha + (1 - alpha) * lam ** -0.5
    new_var = np.sum(alpha**2 * lam + 2 * alpha * (1 - alpha) * lam**0.5 + (1 - alpha) ** 2)
    d *= np.sqrt(lam.sum() / new_var)
    return X @ (V * d) @ V.T


def _naive_shape(X, Y, alpha, kind):
    X, Y = X - X.mean(0), Y - Y.mean(0)
    X, Y = _whiten(X, alpha), _whiten(Y, alpha)
    d = max(X.shape[1], Y.shape[1])
    X = np.pad(X, ((0, 0), (0, d - X.shape[1])))
    Y = np.pad(Y, ((0, 0), (0, d - Y.shape[1])))
    U, _, Vt = np.linalg.svd(X.T @ Y)
    XR = X @ U @ Vt  # the optimal rotation of X onto Y
    if kind == "angular":
        c = np.sum(XR * Y) / (np.linalg.norm(X) * np.linalg.norm(Y))
        return np.arccos(np.clip(c, -1, 1))
    return np.linalg.norm(XR - Y) / np.sqrt(X.shape[0])


def _naive_procrustes(X, Y):
    """Ding et al. (2021): ||X||^2 + ||Y||^2 - 2 ||X^T Y||_* on centered, normalized data."""
    X, Y = X - X.mean(0), Y - Y.mean(0)
    X, Y = X / np.linalg.norm(X), Y / np.linalg.norm(Y)
    return np.sum(X**2) + np.sum(Y**2) - 2 * np.linalg.norm(X.T @ Y, ord="nuc")


def _orth_basis(X, keep=None):
    """Orthonormal basis of the centered columns (top directions to `keep` variance)."""
    X = X - X.mean(0)
    U, s, _ = np.linalg.svd(X, full_matrices=False)
    r = int((s > 1e-10 * s[0]).sum())
    if keep is not None:
        frac = np.cumsum(s**2) / np.sum(s**2)
        r = min(r, int((frac < keep).sum()) + 1)
    return U[:, :r], X


def _naive_svcca(X, Y, keep=0.99):
    Qx, _ = _orth_basis(X, keep)
    Qy, _ = _orth_basis(Y, keep)
    return np.linalg.svd(Qx.T @ Qy, compute_uv=False).mean()


def _naive_pwcca(X, Y):
    """Morcos et al. (2018): alpha_i = sum_j |<h_i, x_j>|, h_i the canonical variates of X."""
    Qx, Xc = _orth_basis(X)
    Qy, _ = _orth_basis(Y)
    U, rho, _ = np.linalg.svd(Qx.T @ Qy, full_matrices=False)
    H = Qx @ U  # unit-norm canonical variates of X, one per column
    alpha = np.abs(H.T @ Xc).sum(axis=1)
    return (alpha * rho).sum() / alpha.sum()


def _naive_cknna(A, B, k):
    """Huh et al. (2024), their cknna(unbiased=True) on normalized features, plainly."""
    A = A / np.linalg.norm(A, axis=1, keepdims=True)
    B = B / np.linalg.norm(B, axis=1, keepdims=True)
    K, L = A @ A.T, B @ B.T

    def mask(S):
        S = S.copy()
        np.fill_diagonal(S, -np.inf)
        M = np.zeros_like(S)
        np.put_along_axis(M, np.argsort(-S, axis=1)[:, :k], 1.0, axis=1)
        return M

    def hsic(P, Q):  # their hsic_unbiased: sum(P~ * Q~^T), sum(P~ @ Q~)
        n = P.shape[0]
        return (np.sum(P * Q.T) + P.sum() * Q.sum() / ((n - 1) * (n - 2))
                - 2 * np.sum(P @ Q) / (n - 2)) / (n * (n - 3))

    mk, ml = mask(K), mask(L)
    m = mk * ml
    return hsic(m * K, m * L) / np.sqrt(hsic(mk * K, mk * K) * hsic(ml * L, ml * L))


def _dense_laplacian_spectrum(X, k, top):
    Z = X / np.linalg.norm(X, axis=1, keepdims=True)
    S = Z @ Z.T
    np.fill_diagonal(S, -np.inf)
    W = np.zeros_like(S)
    np.put_along_axis(W, np.argsort(-S, axis=1)[:, :k], 1.0, axis=1)
    W = np.maximum(W, W.T)
    L = np.diag(W.sum(1)) - W
    return np.sort(np.linalg.eigvalsh(L))[::-1][:top]


# --------------------------------------------------------------------------
# reference values
# --------------------------------------------------------------------------
def test_unbiased_cka_matches_song_et_al(backend):
    X, Y = _pair(n=30, seed=1)
    Xs = X + 100.0  # the feature-space form is translation invariant
    expect_lin = _cka_u(X @ X.T, Y @ Y.T)  # computed without the offset (exact invariance)
    assert_allclose(linear_cka(backend.asarray(Xs), backend.asarray(Y), unbiased=True),
                    expect_lin, rtol=1e-9)
    expect_rbf = _cka_u(np.exp(-_sq_dist(X) / 8.0), np.exp(-_sq_dist(Y) / 8.0))
    for batch_size in (None, 7):
        got = rbf_cka(backend.asarray(X), backend.asarray(Y), sigma=2.0, unbiased=True,
                      batch_size=batch_size)
        assert_allclose(got, expect_rbf, rtol=1e-9)
    # the reference pair of REFERENCE.md: biased values unchanged
    assert round(linear_cka(X_REF, Y_REF), 4) == 0.2815
    assert round(rbf_cka(X_REF, Y_REF), 4) == 0.3945
    assert_allclose(linear_cka(X_REF, Y_REF, unbiased=True),
                    _cka_u(X_REF @ X_REF.T, Y_REF @ Y_REF.T), rtol=1e-9)


def test_unbiased_cka_near_zero_on_independent_data():
    rng = np.random.default_rng(2)
    biased, unbiased = [], []
    for _ in range(30):
        A, B = rng.normal(size=(32, 16)), rng.normal(size=(32, 16))
        biased.append(linear_cka(A, B))
        unbiased.append(linear_cka(A, B, unbiased=True))
    assert np.mean(biased) > 0.25  # the plug-in estimator's small-sample inflation
    assert abs(np.mean(unbiased)) < 0.03


def test_linear_cka_float32_unbiased_close_to_float64():
    X, Y = _pair(n=200, dx=12, dy=9, seed=3)
    X = X + 1e4
    a = linear_cka(X.astype(np.float32), Y.astype(np.float32), unbiased=True)
    b = linear_cka(X.astype(np.float32).astype(np.float64), Y.astype(np.float32).astype(
        np.float64), unbiased=True)
    assert_allclose(a, b, rtol=1e-6)


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("kind", ["angular", "euclidean"])
def test_shape_distance_matches_williams_et_al(backend, alpha, kind):
    X, Y = _pair(n=80, dx=6, dy=4, seed=4, noise=2.0)  # different widths: zero-padding
    got = shape_distance(backend.asarray(X), backend.asarray(Y), alpha=alpha, kind=kind)
    assert isinstance(got, float)
    assert_allclose(got, _naive_shape(X, Y, alpha, kind), rtol=1e-8)
    assert_allclose(shape_distance(Y, X, alpha=alpha, kind=kind), got, rtol=1e-8)


def test_procrustes_distance_matches_ding_et_al(backend):
    X, Y = _pair(n=70, dx=5, dy=7, seed=5, noise=2.0)
    got = procrustes_distance(backend.asarray(X), backend.asarray(Y))
    assert_allclose(got, _naive_procrustes(X, Y), rtol=1e-9)
    assert_allclose(got, 2 * (1 - np.cos(shape_distance(X, Y, alpha=1.0))), rtol=1e-9)


def test_svcca_pwcca_match_the_papers(backend):
    rng = np.random.default_rng(6)
    X = rng.normal(size=(120, 8)) * np.linspace(3, 0.2, 8)
    Y = X @ rng.normal(size=(8, 6)) + 1.5 * rng.normal(size=(120, 6))
    Xb, Yb = backend.asarray(X), backend.asarray(Y)
    for keep in (0.99, 0.8, 1.0):
        assert_allclose(svcca(Xb, Yb, variance=keep), _naive_svcca(X, Y, keep), rtol=1e-8)
    assert_allclose(pwcca(Xb, Yb), _naive_pwcca(X, Y), rtol=1e-8)
    assert abs(pwcca(X, Y) - pwcca(Y, X)) > 1e-3  # weights come from X: not symmetric


def test_cknna_matches_huh_et_al(backend):
    X, Y = _pair(n=80, seed=7, noise=1.0)
    expect = _naive_cknna(X, Y, 7)
    assert 0.1 < expect < 0.9
    for batch_size in (None, 6):
        got = cknna(backend.asarray(X), backend.asarray(Y), k=7, batch_size=batch_size)
        assert_allclose(got, expect, rtol=1e-9)


def test_laplacian_eigenvalue_distance_matches_dense_spectra(backend):
    rng = np.random.default_rng(8)
    X, Y = rng.normal(size=(90, 5)), rng.normal(size=(70, 3))  # different n: no pairing
    lx, ly = _dense_laplacian_spectrum(X, 4, 6), _dense_laplacian_spectrum(Y, 4, 6)
    got = laplacian_eigenvalue_distance(backend.asarray(X), backend.asarray(Y), k=4,
                                        n_eigenvalues=6)
    assert_allclose(got, np.sum((lx - ly) ** 2), rtol=1e-7)


def test_knn_graph_laplacian_and_eigenpairs():
    X = torch.as_tensor(np.random.default_rng(9).normal(size=(150, 6)))
    for normalized in (True, False):
        L = F.knn_graph_laplacian(X, 5, normalized=normalized)
        D = L.toarray()
        assert_allclose(D, D.T)
        w = np.linalg.eigvalsh(D)
        for which, ref in (("smallest", w[:4]), ("largest", w[-4:])):
            vals, vecs = F.laplacian_eigenpairs(L, 4, which=which)
            assert_allclose(vals, ref, atol=1e-8)
            assert_allclose(D @ vecs, vecs * vals, atol=1e-7)
    assert_allclose(np.linalg.eigvalsh(F.knn_graph_laplacian(X, 5).toarray())[[0, -1]].clip(0),
                    [0.0, np.linalg.eigvalsh(F.knn_graph_laplacian(X, 5).toarray())[-1]])
    assert np.linalg.eigvalsh(F.knn_graph_laplacian(X, 5).toarray()).max() <= 2 + 1e-12


# --------------------------------------------------------------------------
# invariances and non-invariances
# --------------------------------------------------------------------------
@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**16), scale=st.floats(0.01, 100.0), shift=st.floats(-50, 50))
def test_invariant_to_rotation_scale_shift(seed, scale, shift):
    X, Y = _pair(n=50, dx=5, dy=4, seed=seed, noise=1.0)
    Q = ortho_group.rvs(4, random_state=seed)
    Y2 = scale * Y @ Q + shift
    for f in (procrustes_distance, shape_distance, lambda A, B: shape_distance(A, B, alpha=0.0),
              svcca, pwcca, lambda A, B: linear_cka(A, B, unbiased=True)):
        assert_allclose(f(X, Y2), f(X, Y), rtol=1e-6, atol=1e-9)
    # partial whitening (0 < alpha < 1) mixes raw and whitened data: rotations and shifts only
    assert_allclose(shape_distance(X, Y @ Q + shift, alpha=0.5), shape_distance(X, Y, alpha=0.5),
                    rtol=1e-6)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**16))
def test_non_invariances(seed):
    rng = np.random.default_rng(seed)
    X, Y = _pair(n=60, dx=5, dy=5, seed=seed, noise=1.0)
    aniso = Y * np.array([8.0, 1.0, 1.0, 1.0, 0.1])
    M = rng.normal(size=(5, 5)) + 3 * np.eye(5)  # an invertible linear map
    # alpha = 1 and Procrustes: not invariant to anisotropic scaling
    assert abs(procrustes_distance(X, aniso) - procrustes_distance(X, Y)) > 1e-3
    assert abs(shape_distance(X, aniso) - shape_distance(X, Y)) > 1e-4
    # alpha = 0 (CCA-like) is invariant to invertible linear maps; CCA and pwcca's Y side too
    assert_allclose(shape_distance(X, Y @ M, alpha=0.0), shape_distance(X, Y, alpha=0.0),
                    rtol=1e-6)
    assert_allclose(svcca(X, Y @ M, variance=1.0), svcca(X, Y, variance=1.0), rtol=1e-6)
    assert_allclose(pwcca(X, Y @ M), pwcca(X, Y), rtol=1e-6)
    # pwcca weighs by X's coordinates: not invariant to rotations of X
    Q = ortho_group.rvs(5, random_state=seed)
    assert abs(pwcca(X @ Q, Y) - pwcca(X, Y)) > 1e-5
    # the euclidean shape metric is not scale invariant; the angular one is
    euclid = shape_distance(X, Y, kind="euclidean")
    assert abs(shape_distance(X, 3 * Y, kind="euclidean") - euclid) > 1e-3
    assert_allclose(shape_distance(X, 3 * Y), shape_distance(X, Y), rtol=1e-9)


def test_shape_metric_triangle_inequality():
    rng = np.random.default_rng(10)
    spaces = [rng.normal(size=(40, 4)) @ rng.normal(size=(4, 4)) for _ in range(5)]
    for kind in ("angular", "euclidean"):
        D = np.array([[shape_distance(a, b, alpha=0.5, kind=kind) for b in spaces]
                      for a in spaces])
        assert np.all(np.diag(D) < 1e-6)
        assert np.all(D[:, :, None] <= D[:, None, :] + D.T[None, :, :] + 1e-9)


def test_cknna_invariances():
    rng = np.random.default_rng(11)
    X = rng.normal(size=(150, 6))
    Q = ortho_group.rvs(6, random_state=3)
    Y = X @ rng.normal(size=(6, 6)) + 0.5 * rng.normal(size=(150, 6))
    assert_allclose(cknna(X, 2.0 * Y @ Q, k=8), cknna(X, Y, k=8), rtol=1e-9)
    assert round(cknna(X, X @ Q, k=8), 9) == 1.0
    assert abs(cknna(X, Y + 2.0, k=8) - cknna(X, Y, k=8)) > 1e-3  # inner products shift
    assert abs(cknna(X, rng.normal(size=(150, 6)), k=8)) < 0.1


def test_mutual_knn_invariances():
    from sklearn_latent.metrics import knn_jaccard, mutual_knn_alignment

    rng = np.random.default_rng(16)
    X = rng.normal(size=(150, 6))
    Q = ortho_group.rvs(6, random_state=6)
    for f in (mutual_knn_alignment, knn_jaccard):
        assert f(X, 3.0 * X @ Q, k=8) == 1.0  # cosine: rotations, isotropic scaling
        assert f(X, X @ Q + 5.0, k=8, metric="euclidean") == 1.0  # euclidean: translation
        assert f(X, X + 2.0, k=8) < 0.9  # cosine: not translation
        assert f(X, X * [10.0, 1, 1, 1, 1, 0.1], k=8, metric="euclidean") < 0.9  # anisotropic


def test_laplacian_distance_invariances():
    rng = np.random.default_rng(12)
    X = rng.normal(size=(120, 6))
    Q = ortho_group.rvs(6, random_state=4)
    moved = (3.0 * X @ Q)[rng.permutation(120)]
    assert laplacian_eigenvalue_distance(X, moved, k=5) < 1e-12
    bent = np.tanh(4 * X) * [9, 1, 1, 1, 1, 0.1]
    assert laplacian_eigenvalue_distance(X, bent, k=5) > 1.0


# --------------------------------------------------------------------------
# known answers, every measure
# --------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(MEASURES))
def test_known_answers_every_measure(name):
    """Identical spaces: the best score; a rotated copy: the same (for every measure
    invariant to rotations of Y); independent noise: a calibrated score about 0."""
    f, kind, paired, _ = MEASURES[name]
    params = {"k": 5} if name in ("cknna", "mutual_knn_alignment", "knn_jaccard",
                                  "laplacian_eigenvalue_distance") else {}
    if name == "laplacian_eigenvalue_distance":
        params["n_eigenvalues"] = 5
    rng = np.random.default_rng(21)
    X = rng.normal(size=(80, 6))
    best = 1.0 if kind == "similarity" else 0.0
    Q = ortho_group.rvs(6, random_state=5)
    for Y in (X, X @ Q):  # every measure is invariant to rotations of its second space
        assert f(X, Y, **params) == pytest.approx(best, abs=1e-6), name
    # independent noise: the raw score may be far from the null's mean at small n
    # (biased CKA); the calibrated one is within a few null standard deviations of 0
    Z = rng.normal(size=(80, 5))
    if not paired:
        assert f(X, Z, **params) > 0.1  # no correspondences: different graphs differ
        return
    res = calibrate(name, X, Z, n_permutations=40, random_state=0, **params)
    assert abs(res.calibrated) < 4.0 * res.null_std + 1e-9, (name, res)
    assert res.p_value > 0.01
    related = calibrate(name, X, X @ rng.normal(size=(6, 5)) + 0.3 * Z, n_permutations=19,
                        random_state=0, **params)
    assert related.p_value == pytest.approx(1 / 20) and related.calibrated > 0.0, name


# --------------------------------------------------------------------------
# undefined measures raise
# --------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(MEASURES))
def test_constant_space_raises(name):
    X = np.random.default_rng(0).normal(size=(30, 4))
    with pytest.raises(ValueError, match="Y is constant"):
        MEASURES[name][0](X, np.ones((30, 3)))


@pytest.mark.parametrize("f", [svcca, pwcca])
def test_cca_needs_more_samples_than_dimensions(f):
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="needs more samples than"):
        f(rng.normal(size=(10, 6)), rng.normal(size=(10, 5)))


def test_bad_parameters():
    X, Y = _pair(n=20)
    with pytest.raises(ValueError, match=r"alpha=1.5 must be in \[0, 1\]"):
        shape_distance(X, Y, alpha=1.5)
    with pytest.raises(ValueError, match="kind='cosine' is not supported"):
        shape_distance(X, Y, kind="cosine")
    with pytest.raises(ValueError, match=r"variance=0 must be in \(0, 1\]"):
        svcca(X, Y, variance=0)
    with pytest.raises(TypeError, match="unbiased must be True or False"):
        linear_cka(X, Y, unbiased=1)
    with pytest.raises(ValueError, match="n_eigenvalues=99 is out of range"):
        laplacian_eigenvalue_distance(X, Y, k=3, n_eigenvalues=99)
    with pytest.raises(ValueError, match="at least 4 paired samples; got 3"):
        linear_cka(X[:3], Y[:3], unbiased=True)


# --------------------------------------------------------------------------
# calibration
# --------------------------------------------------------------------------
@pytest.mark.parametrize("name,params", [
    ("linear_cka", {}), ("linear_cka", {"unbiased": True}), ("shape_distance", {"alpha": 0.5}),
    ("procrustes_distance", {}), ("svcca", {}), ("pwcca", {}), ("cknna", {"k": 5}),
    ("rbf_cka", {}), ("mutual_knn_alignment", {"k": 5}),
])
def test_calibrate_null_is_the_measure_on_shuffled_rows(backend, name, params):
    X, Y = _pair(n=40, dx=5, dy=4, seed=13, noise=1.5)
    res = calibrate(name, backend.asarray(X), backend.asarray(Y), n_permutations=6,
                    random_state=3, **params)
    assert isinstance(res, CalibratedScore) and res.n_permutations == 6
    seeds = np.random.default_rng(3).integers(2**63 - 1, size=6)
    f = MEASURES[name][0]
    expect = [f(X, Y[np.random.default_rng(int(s)).permutation(40)], **params) for s in seeds]
    assert_allclose(res.null, expect, rtol=1e-7, atol=1e-10)
    assert_allclose(res.score, f(X, Y, **params), rtol=1e-12)
    # the same permutations for any number of workers
    again = calibrate(name, X, Y, n_permutations=6, random_state=3, n_jobs=2, **params)
    assert_allclose(again.null, res.null, rtol=1e-12)
    assert pickle.loads(pickle.dumps(res)).score == res.score


@pytest.mark.parametrize("n", [12, 50, 400])
def test_calibrated_score_near_zero_on_independent_data(n):
    rng = np.random.default_rng(n)
    cal = [calibrate("linear_cka", rng.normal(size=(n, 32)), rng.normal(size=(n, 32)),
                     n_permutations=30, random_state=i).calibrated for i in range(8)]
    raw = linear_cka(rng.normal(size=(n, 32)), rng.normal(size=(n, 32)))
    assert abs(np.mean(cal)) < 0.03 + 0.5 * raw / np.sqrt(8 * 30)
    if n == 12:
        assert raw > 0.5  # what the calibration removes


def test_calibrate_related_and_distances():
    X, Y = _pair(n=80, seed=14, noise=0.5)
    sim = calibrate("linear_cka", X, Y, n_permutations=19, random_state=0)
    assert sim.p_value == pytest.approx(1 / 20) and sim.calibrated > 0.3
    dist = calibrate("procrustes_distance", X, Y, n_permutations=19, random_state=0)
    assert dist.kind == "distance" and dist.calibrated > 0.3 and dist.p_value == pytest.approx(0.05)
    assert dist.calibrated == pytest.approx(dist.null_mean - dist.score)


def test_calibrate_bad_input():
    X, Y = _pair(n=20)
    with pytest.raises(ValueError, match="needs no correspondences"):
        calibrate("laplacian_eigenvalue_distance", X, Y)
    with pytest.raises(ValueError, match="measure='cka' is not supported"):
        calibrate("cka", X, Y)
    with pytest.raises(ValueError, match="n_permutations=0 must be at least 1"):
        calibrate("linear_cka", X, Y, n_permutations=0)
    with pytest.raises(TypeError, match="random_state must be"):
        calibrate("linear_cka", X, Y, random_state="a")

    def my_distance(A, B):
        return float(np.abs(A[:, 0] - B[:, 0]).mean())

    my_distance.kind = "distance"
    res = calibrate(my_distance, X, X[:, :3] + 0.0, n_permutations=9, random_state=0)
    assert res.measure == "my_distance" and res.kind == "distance" and res.p_value == 0.1


# --------------------------------------------------------------------------
# many spaces
# --------------------------------------------------------------------------
def _spaces():
    rng = np.random.default_rng(15)
    X = rng.normal(size=(60, 6))
    return {"x": X, "rot": X @ ortho_group.rvs(6, random_state=1),
            "lin": X @ rng.normal(size=(6, 4)), "noise": rng.normal(size=(60, 5))}


def test_similarity_matrix_tidy_and_symmetric():
    spaces = _spaces()
    res = similarity_matrix(spaces, ["linear_cka", "pwcca", "procrustes_distance"], n_jobs=2)
    assert list(res.columns) == ["a", "b", "measure", "score", "error"]
    assert len(res) == 3 * 16 and res.attrs["spaces"] == list(spaces)
    assert res.attrs["kinds"]["procrustes_distance"] == "distance"
    cell = res.set_index(["a", "b", "measure"])["score"]
    for a in spaces:
        for b in spaces:
            assert cell[a, b, "linear_cka"] == cell[b, a, "linear_cka"]
            assert_allclose(cell[a, b, "pwcca"], pwcca(spaces[a], spaces[b]), rtol=1e-12)
    assert cell["x", "rot", "linear_cka"] == pytest.approx(1.0)
    fig = plot_similarity_matrix(res)
    assert len(fig.axes) == 6


def test_similarity_matrix_calibrated_and_errors():
    spaces = _spaces()
    spaces["const"] = np.ones((60, 2))
    with pytest.raises(ValueError, match="Y is constant"):
        similarity_matrix(spaces)
    res = similarity_matrix(spaces, n_permutations=5, random_state=0, errors="record")
    assert {"calibrated", "p_value", "null_mean", "null_std"} <= set(res.columns)
    bad = res[res["b"] == "const"]
    assert bad["score"].isna().all() and bad["error"].str.contains("constant").all()
    assert res[(res["a"] != "const") & (res["b"] != "const")]["score"].notna().all()


def test_similarity_matrix_checks_samples():
    pd = pytest.importorskip("pandas")
    spaces = _spaces()
    with pytest.raises(ValueError, match=r"row counts differ: \{'x': 60, 'short': 59\}"):
        similarity_matrix({"x": spaces["x"], "short": spaces["x"][:59]})
    ids = {"x": np.arange(60), "rot": np.arange(60)[::-1]}
    with pytest.raises(ValueError, match="another order: reorder the rows"):
        similarity_matrix({"x": spaces["x"], "rot": spaces["rot"]}, ids=ids)
    a = pd.DataFrame(spaces["x"], index=[f"s{i}" for i in range(60)])
    b = pd.DataFrame(spaces["rot"], index=[f"s{i}" for i in range(1, 61)])
    with pytest.raises(ValueError, match="row 0 is 's0' in 'a' and 's1' in 'b'"):
        similarity_matrix({"a": a, "b": b})
    b.index = a.index
    res = similarity_matrix({"a": a, "b": b})
    assert res.set_index(["a", "b"])["score"]["a", "b"] == pytest.approx(1.0)
    # no correspondences needed: different row counts are fine
    res = similarity_matrix({"x": spaces["x"], "half": spaces["x"][:30]},
                            "laplacian_eigenvalue_distance", k=4, n_eigenvalues=5)
    assert res["score"].notna().all()


@pytest.mark.parametrize("backend", ["joblib", "dask"])
def test_similarity_matrix_backends_give_the_same_table(backend):
    if backend == "dask":
        pytest.importorskip("dask")
    spaces = _spaces()
    measures = ["linear_cka", "pwcca", "shape_distance"]
    serial = similarity_matrix(spaces, measures)
    res = similarity_matrix(spaces, measures, backend=backend, n_jobs=2)
    assert res.attrs == serial.attrs
    assert res[["a", "b", "measure"]].equals(serial[["a", "b", "measure"]])
    assert_allclose(res["score"], serial["score"], rtol=1e-12)
    cal = similarity_matrix(spaces, "svcca", backend=backend, n_permutations=4, random_state=0)
    assert_allclose(cal["null_mean"], similarity_matrix(
        spaces, "svcca", n_permutations=4, random_state=0)["null_mean"], rtol=1e-12)
    with pytest.raises(ValueError, match="backend='spark' is not supported"):
        similarity_matrix(spaces, backend="spark")

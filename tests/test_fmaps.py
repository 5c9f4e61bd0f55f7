"""FunctionalMapTranslator and functional_map_similarity (latent functional maps, issue 14)."""

import pickle
import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from sklearn_latent import FunctionalMapTranslator, ProcrustesTranslator, load, save
from sklearn_latent.functional import _fmaps as FF
from sklearn_latent.metrics import functional_map_similarity


def _views(n=300, d=10, d_y=14, seed=0):
    """X: anisotropic clusters; Y: the same items rotated into d_y dims, shifted, shuffled.

    Returns X, Y, perm (row j of Y is item perm[j]), inv (item i is row inv[i]), labels.
    """
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(6, d)) * np.linspace(3, 0.5, d)
    labels = rng.integers(6, size=n)
    X = centers[labels] + rng.normal(size=(n, d)) * np.linspace(1, 0.1, d)
    Q = np.linalg.qr(rng.normal(size=(d_y, d_y)))[0][:d]      # orthonormal rows
    perm = rng.permutation(n)
    Y = (X @ Q + 2.0)[perm]
    return X, Y, perm, np.argsort(perm), labels


def _seeds(inv, m, seed=1):
    items = np.random.default_rng(seed).choice(len(inv), m, replace=False)
    return np.c_[items, inv[items]]


def _precision(est, perm):
    p = est.matched_pairs_
    return float(np.mean(perm[p[:, 1]] == p[:, 0]))


def _top1(P, T):
    d = ((P[:, None, :] - T[None, :, :]) ** 2).sum(-1)
    return float(np.mean(d.argmin(1) == np.arange(len(P))))


def test_solver_known_answer_and_commutativity_limit():
    """C A_x = A_y exactly for a planted orthogonal C with enough descriptors; a large
    alpha with distinct eigenvalues drives C towards diagonal."""
    rng = np.random.default_rng(0)
    k, m = 6, 20
    C_true = torch.as_tensor(np.linalg.qr(rng.normal(size=(k, k)))[0])
    A_x = torch.as_tensor(rng.normal(size=(k, m)))
    lam = torch.linspace(0, 1, k, dtype=torch.float64)
    C = FF.solve_functional_map(A_x, C_true @ A_x, lam, lam, 1e-12)
    torch.testing.assert_close(C, C_true, atol=1e-6, rtol=0)
    C_big = FF.solve_functional_map(A_x, C_true @ A_x, lam, lam, 1e6)
    off = C_big - torch.diag(torch.diagonal(C_big))
    assert float(off.abs().max()) < 1e-3
    assert FF.fmap_similarity(C_true, skip_first=False) == pytest.approx(1.0)


def test_recovers_planted_correspondence_across_widths(backend):
    X, Y, perm, inv, _ = _views(seed=1)
    seeds = _seeds(inv, 10, seed=2)
    est = FunctionalMapTranslator(seeds=backend.asarray(seeds), n_refine=2).fit(
        backend.asarray(X), backend.asarray(Y))
    assert _precision(est, perm) > 0.95             # measured 1.0
    assert est.matched_pairs_.shape[0] > 250
    assert est.is_seed_[:10].all() and not est.is_seed_[10:].any()
    P = est.transform(backend.asarray(X))
    assert backend.is_kind(P)
    P = backend.to_numpy(P)
    assert P.shape == (300, 14)
    ceiling = ProcrustesTranslator().fit(X, Y[inv]).transform(X)
    assert _top1(P, Y[inv]) >= _top1(ceiling, Y[inv]) - 0.02


def test_few_seeds_beat_seeds_only_procrustes():
    """5 seeds in 10 dimensions cannot fix a rotation; the spectra find the other pairs."""
    X, Y, perm, inv, _ = _views(seed=3)
    seeds = _seeds(inv, 5, seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)   # too few anchors for a unique map
        base = ProcrustesTranslator().fit(X[seeds[:, 0]], Y[seeds[:, 1]]).transform(X)
        pure = FunctionalMapTranslator(seeds=seeds).fit(X, Y)
        refined = FunctionalMapTranslator(seeds=seeds, n_refine=2).fit(X, Y)
    top_base = _top1(base, Y[inv])
    assert _top1(pure.transform(X), Y[inv]) > top_base + 0.1
    assert _top1(refined.transform(X), Y[inv]) > top_base + 0.3
    assert _precision(pure, perm) > 0.3                    # pure LFM: fewer, noisier pairs


def test_different_row_counts_and_determinism():
    X, Y, perm, inv, _ = _views(n=320)
    keep = np.sort(np.random.default_rng(5).choice(320, 250, replace=False))  # rows of Y kept
    Y2 = Y[keep]
    pos = np.full(320, -1)
    pos[keep] = np.arange(250)
    items = [i for i in range(320) if pos[inv[i]] >= 0][:10]
    seeds = np.array([[i, pos[inv[i]]] for i in items])
    a = FunctionalMapTranslator(seeds=seeds, n_refine=1).fit(X, Y2)
    b = FunctionalMapTranslator(seeds=seeds, n_refine=1).fit(X, Y2)
    np.testing.assert_array_equal(a.matched_pairs_, b.matched_pairs_)
    np.testing.assert_array_equal(a.transform(X), b.transform(X))
    p = a.matched_pairs_
    assert np.mean(perm[keep][p[:, 1]] == p[:, 0]) > 0.9    # pairs hit the shared items
    assert a.functional_map_.shape == (30, 30)


def test_pickle_persist_clone_and_stitching_pipeline(tmp_path):
    X, Y, perm, inv, labels = _views()
    est = FunctionalMapTranslator(seeds=_seeds(inv, 10), n_refine=1).fit(X, Y)
    head = LogisticRegression(max_iter=300).fit(Y, labels[perm])
    pipe = make_pipeline(FrozenEstimator(est), FrozenEstimator(head))
    assert pipe.score(X, labels) > 0.9
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(again.transform(X), est.transform(X))
    save(est, tmp_path / "lfm.skl")
    loaded = load(tmp_path / "lfm.skl")
    np.testing.assert_array_equal(loaded.transform(X), est.transform(X))
    assert loaded.similarity_ == est.similarity_
    c = clone(est)
    assert c.get_params()["seeds"] is not None and not hasattr(c, "translator_")
    assert est.get_feature_names_out().shape == (14,)


def test_bad_input_raises_clearly():
    X, Y, perm, inv, _ = _views(n=60)
    seeds = _seeds(inv, 5)
    with pytest.raises(ValueError, match="needs known pairs"):
        FunctionalMapTranslator().fit(X, Y)
    with pytest.raises(ValueError, match="at least 2 seed pairs"):
        FunctionalMapTranslator(seeds=seeds[:1]).fit(X, Y)
    with pytest.raises(ValueError, match=r"seeds\[:, 1\] must lie in \[0, 60\)"):
        FunctionalMapTranslator(seeds=np.r_[seeds, [[7, 60]]]).fit(X, Y)
    with pytest.raises(ValueError, match="repeats a row of X"):
        FunctionalMapTranslator(seeds=np.r_[seeds, seeds[:1]]).fit(X, Y)
    with pytest.raises(TypeError, match="integer row indices"):
        FunctionalMapTranslator(seeds=seeds.astype(float)).fit(X, Y)
    with pytest.raises(ValueError, match="n_neighbors=60 is too large"):
        FunctionalMapTranslator(seeds=seeds, n_neighbors=60).fit(X, Y)
    with pytest.raises(ValueError, match="n_components=61 eigenvectors exceed"):
        FunctionalMapTranslator(seeds=seeds, n_components=61).fit(X, Y)
    with pytest.raises(ValueError, match="alpha"):
        FunctionalMapTranslator(seeds=seeds, alpha=-1.0).fit(X, Y)
    bad = X.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        FunctionalMapTranslator(seeds=seeds).fit(bad, Y)
    with pytest.raises(ValueError, match="y is constant"):
        FunctionalMapTranslator(seeds=seeds).fit(X, np.ones_like(Y))
    with pytest.raises(ValueError, match="requires y"):
        FunctionalMapTranslator(seeds=seeds).fit(X)
    with pytest.raises(ValueError, match="2-D embeddings"):
        FunctionalMapTranslator(seeds=seeds).fit(X, np.zeros(60))
    est = FunctionalMapTranslator(seeds=seeds, n_components=10).fit(X, Y)
    with pytest.raises(ValueError, match="features"):
        est.transform(X[:, :3])


def test_functional_map_similarity():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(250, 6)) * np.arange(1, 7)
    Q = np.linalg.qr(rng.normal(size=(6, 6)))[0]
    kw = dict(n_components=15)
    assert functional_map_similarity(X, 2.0 * X @ Q, **kw) == pytest.approx(1.0)
    noisy = functional_map_similarity(X, X + rng.normal(size=X.shape), **kw)
    unrelated = functional_map_similarity(X, rng.normal(size=X.shape), **kw)
    shuffled = functional_map_similarity(X, X[rng.permutation(250)], **kw)
    assert noisy > max(unrelated, shuffled) + 0.2           # measured ~0.97 vs ~0.56
    # with a few known pairs the spaces need not be paired (here 200 vs 250 rows)
    perm = rng.permutation(250)
    Y = (X @ Q)[perm][:200]
    inv = np.argsort(perm)
    items = [i for i in range(250) if inv[i] < 200][:10]
    seeds = np.c_[items, inv[items]]
    s = functional_map_similarity(torch.as_tensor(X), Y, seeds=seeds, **kw)
    assert 0.0 < s <= 1.0
    with pytest.raises(ValueError, match="needs paired rows"):
        functional_map_similarity(X, Y, **kw)
    with pytest.raises(ValueError, match="n_neighbors=250 is too large"):
        functional_map_similarity(X, X, n_neighbors=250)

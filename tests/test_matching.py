"""Anchor discovery from seeds: known answers, scikit-learn API, bad input, digits."""

import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from numpy.testing import assert_array_equal
from scipy.stats import ortho_group
from sklearn.base import clone
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_latent import AnchorMatcher, ProcrustesTranslator, discover_anchors, load, save
from sklearn_latent import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

pytestmark = pytest.mark.filterwarnings("ignore:The .* map is determined on only:UserWarning")


def _saved(est, path):
    """``est`` after a round trip through the library's safe file format."""
    save(est, path)
    return load(path)


def _unpaired(n=300, d=10, noise=0.0, seed=0):
    """X, and Y = a rotated, rescaled, shifted copy of X (plus noise) listed in another order."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    perm = rng.permutation(n)  # row j of Y is item perm[j]
    Y = 2.0 * X @ ortho_group.rvs(d, random_state=seed) + 5.0
    Y = (Y + noise * rng.normal(size=Y.shape))[perm]
    return X, Y, perm


def _seeds(perm, s, seed=0):
    items = np.random.default_rng(seed).choice(len(perm), s, replace=False)
    inv = np.argsort(perm)
    return np.stack([items, inv[items]], axis=1)


def _precision(pairs, perm):
    return float(np.mean(perm[pairs[:, 1]] == pairs[:, 0]))


# --------------------------------------------------------------------------
# functional pieces
# --------------------------------------------------------------------------
def test_mutual_nearest_neighbors_known_answer():
    S = torch.tensor([[0.9, 0.2, 0.1], [0.8, 0.3, 0.0], [0.1, 0.2, 0.7]])
    rows, cols, score = F.mutual_nearest_neighbors(S)
    assert rows.tolist() == [0, 2] and cols.tolist() == [0, 2]
    torch.testing.assert_close(score, torch.tensor([0.9, 0.7]))


def test_sinkhorn_marginals_and_limit(device):
    gen = torch.Generator().manual_seed(0)
    S = torch.rand(7, 5, generator=gen, dtype=torch.float64).to(device)
    P = F.sinkhorn(S, epsilon=0.1, n_iter=500, tol=1e-12)
    torch.testing.assert_close(P.sum(1), torch.full((7,), 1 / 7, dtype=torch.float64,
                                                    device=device), atol=1e-9, rtol=0)
    torch.testing.assert_close(P.sum(0), torch.full((5,), 1 / 5, dtype=torch.float64,
                                                    device=device), atol=1e-9, rtol=0)
    # small epsilon on a square problem: the plan concentrates on the best permutation
    perm = torch.randperm(6, generator=gen)
    S = torch.eye(6, dtype=torch.float64)[perm].to(device)
    P = F.sinkhorn(S, epsilon=0.01)
    assert torch.equal(P.argmax(1).cpu(), perm)  # S[i, perm[i]] = 1
    assert float(P.max(1).values.min()) > 0.99 / 6


# --------------------------------------------------------------------------
# known answers
# --------------------------------------------------------------------------
@pytest.mark.parametrize("matching", ["mutual_nn", "sinkhorn"])
def test_isometric_spaces_are_matched_exactly(backend, matching):
    X, Y, perm = _unpaired()
    seeds = _seeds(perm, 12)
    pairs, conf = discover_anchors(backend.asarray(X), backend.asarray(Y), seeds, 120,
                                   matching=matching)
    assert isinstance(pairs, np.ndarray) and pairs.shape == (120, 2)
    assert_array_equal(pairs[:12], seeds)  # seeds first, kept
    assert np.isinf(conf[:12]).all() and np.isfinite(conf[12:]).all()
    assert (np.diff(conf[12:]) <= 1e-12).all()  # decreasing confidence
    assert len(np.unique(pairs[:, 0])) == 120 and len(np.unique(pairs[:, 1])) == 120
    assert _precision(pairs, perm) == 1.0


def test_noise_lowers_precision_and_confidence_ranks_it():
    X, Y, perm = _unpaired(n=400, noise=1.0, seed=1)
    pairs, conf = discover_anchors(X, Y, _seeds(perm, 15), 200)
    correct = perm[pairs[15:, 1]] == pairs[15:, 0]
    assert 0.5 < correct.mean() < 1.0  # a real, imperfect task
    half = len(correct) // 2  # the more confident half is more often right
    assert correct[:half].mean() > correct[half:].mean()


@pytest.mark.parametrize("batch_size", [1, 7, 250, 255, "auto"])
def test_batch_size_never_changes_what_is_learned(batch_size):
    # docs/arrays.md: chunking never changes a result, in fit as in transform
    X, Y, perm = _unpaired(n=250, noise=0.5, seed=2)
    seeds = _seeds(perm, 10)
    ref = discover_anchors(X, Y, seeds, 100)
    out = discover_anchors(X, Y, seeds, 100, batch_size=batch_size)
    assert_array_equal(out[0], ref[0])
    assert_array_equal(out[1], ref[1])
    full = AnchorMatcher(100, seeds=seeds, discovery="relative").fit(X, Y)
    chunked = AnchorMatcher(100, seeds=seeds, discovery="relative",
                            batch_size=batch_size).fit(X, Y)
    assert_array_equal(chunked.matched_pairs_, full.matched_pairs_)
    assert_array_equal(chunked.transform(X), full.transform(X))


def test_partial_overlap_and_too_few_seeds():
    # Y holds only 40 of X's 300 items: with as many seeds as dimensions (10)
    # every Y item is matched to its X item ...
    X, Y, perm = _unpaired()
    items = perm[:40]  # row j of Y[:40] is item items[j]
    seeds = np.stack([items[:10], np.arange(10)], axis=1)
    pairs, _ = discover_anchors(X, Y[:40], seeds, 40)
    assert pairs.shape[0] == 40
    assert np.mean(items[pairs[:, 1]] == pairs[:, 0]) == 1.0
    # ... with 5 seeds in 10 dimensions the first relative spaces do not tell the
    # 300 X items apart: mutual matches run out (fewer pairs) and some are wrong
    pairs, _ = discover_anchors(X, Y[:40], seeds[:5], 40)
    assert pairs.shape[0] < 40
    assert np.mean(items[pairs[:, 1]] == pairs[:, 0]) < 0.95


def test_matcher_translates_like_a_translator_on_the_true_pairs(backend):
    X, Y, perm = _unpaired(n=200)
    seeds = _seeds(perm, 10)
    matcher = AnchorMatcher(60, seeds=seeds, discovery="relative").fit(
        backend.asarray(X), backend.asarray(Y))
    pairs = matcher.matched_pairs_
    assert_array_equal(matcher.is_seed_, np.arange(len(pairs)) < 10)
    truth = ProcrustesTranslator().fit(X[pairs[:, 0]], Y[np.argsort(perm)[pairs[:, 0]]])
    out = backend.to_numpy(matcher.transform(backend.asarray(X)))
    np.testing.assert_allclose(out, truth.transform(X), atol=1e-8)
    assert _precision(pairs, perm) == 1.0
    # Close to the planted map, up to what standard scaling on 60 anchors allows: each
    # feature's std is estimated from 60 rows (relative error ~1/sqrt(2 * 60) = 0.09), so the
    # map is not exactly the planted one.  Over 200 random draws of 60 true pairs the mean
    # absolute error / spread is 0.094 (95th percentile 0.126, max 0.151; it depends on which
    # 60 pairs, and BLAS kernels pick among near-ties: 0.095 with AVX2 kernels, 0.106 with AVX-512); 30
    # pairs give 0.15 on average and a wrong pairing 1.46.  0.25 separates the two with margin.
    assert np.abs(out[perm] - Y).mean() < 0.25 * np.abs(Y - Y.mean(0)).mean()


# --------------------------------------------------------------------------
# scikit-learn API
# --------------------------------------------------------------------------
_LABELS = (
    "the check fits on class labels as the second space: its matched anchors are "
    "constant rows and no translation exists (ProcrustesTranslator raises)"
)


_LABELS_1D = (
    "the check fits on 1-D class labels as y; y is the second space's 2-D embeddings "
    "and a 1-D y is refused with a clear error"
)


def _expected_failed_checks(estimator):
    if estimator.discovery != "relative":  # the default: pair-free discovery
        return {name: _LABELS_1D for name in (
            "check_transformer_data_not_an_array", "check_transformer_general",
            "check_transformer_preserve_dtypes",
        )}
    return {name: _LABELS for name in (
        "check_dont_overwrite_parameters", "check_positive_only_tag_during_fit",
        "check_estimators_nan_inf", "check_f_contiguous_array_estimator",
        "check_transformer_data_not_an_array", "check_transformer_general",
        "check_transformer_preserve_dtypes", "check_methods_sample_order_invariance",
        "check_methods_subset_invariance", "check_dict_unchanged", "check_fit_idempotent",
        "check_fit2d_predict1d",
    )}


@parametrize_with_checks(
    [AnchorMatcher(), AnchorMatcher(4, seeds=np.array([[0, 0], [1, 1], [2, 2]]),
                                     discovery="relative", n_iter=2)],
    expected_failed_checks=_expected_failed_checks,
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_clone_pickle_persist(tmp_path):
    X, Y, perm = _unpaired(n=150)
    matcher = AnchorMatcher(40, seeds=_seeds(perm, 8), discovery="relative",
                            matching="sinkhorn").fit(X, Y)
    for other in (pickle.loads(pickle.dumps(matcher)), _saved(matcher, tmp_path / "m")):
        assert_array_equal(other.matched_pairs_, matcher.matched_pairs_)
        np.testing.assert_array_equal(other.transform(X), matcher.transform(X))
    c = clone(matcher)
    assert not hasattr(c, "matched_pairs_")
    assert_array_equal(c.fit(X, Y).matched_pairs_, matcher.matched_pairs_)


# --------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------
def test_bad_input_raises_clearly():
    X, Y, perm = _unpaired(n=50)
    seeds = _seeds(perm, 5)
    for kwargs, exc, match in [
        (dict(seeds=None), ValueError, "seeds are required"),
        (dict(seeds=np.zeros((0, 2), dtype=int)), ValueError, "n_seeds >= 1"),
        (dict(seeds=seeds[:, :1]), ValueError, r"shape \(n_seeds, 2\)"),
        (dict(seeds=seeds.astype(float)), TypeError, "integer"),
        (dict(seeds=np.array([[0, 0], [50, 1]])), ValueError,
         r"seeds\[:, 0\] must lie in \[0, 50\)"),
        (dict(seeds=np.array([[0, 0], [1, -1]])), ValueError, r"seeds\[:, 1\]"),
        (dict(seeds=np.array([[0, 0], [0, 1]])), ValueError, "repeats a row of X"),
        (dict(seeds=seeds, n_anchors=3), ValueError, "n_anchors=3 must lie in"),
        (dict(seeds=seeds, n_anchors=51), ValueError, "n_anchors=51"),
        (dict(seeds=seeds, matching="ot"), ValueError, "matching='ot'"),
        (dict(seeds=seeds, n_iter=0), ValueError, "n_iter"),
        (dict(seeds=seeds, epsilon=0.0), ValueError, "epsilon"),
    ]:
        kwargs.setdefault("n_anchors", 20)
        with pytest.raises(exc, match=match):
            discover_anchors(X, Y, **kwargs)
        n_anchors = kwargs.pop("n_anchors")
        with pytest.raises(exc, match=match):
            AnchorMatcher(n_anchors, discovery="relative", **kwargs).fit(X, Y)
    with pytest.raises(ValueError, match="NaN"):
        discover_anchors(X, np.where(Y > 6, np.nan, Y), seeds, 20)
    with pytest.raises(ValueError, match="requires y"):
        AnchorMatcher(20, seeds=seeds, discovery="relative").fit(X)
    with pytest.raises(ValueError, match="2-D embeddings"):
        AnchorMatcher(20, seeds=seeds, discovery="relative").fit(X, Y[:, 0])
    matcher = AnchorMatcher(20, seeds=seeds, discovery="relative").fit(X, Y)
    with pytest.raises(ValueError, match="features"):
        matcher.transform(X[:, :3])


# --------------------------------------------------------------------------
# real data: two digits encoders, Y rows shuffled, 10 known pairs
# --------------------------------------------------------------------------
@pytest.mark.slow
def test_digits_discovered_anchors_stitch_better_than_the_seeds():
    from _digits_encoders import digits_encoder, digits_split, fit_single_thread
    from sklearn.linear_model import LogisticRegression

    _, _, y_train, y_test = digits_split()
    A_train, A_test = digits_encoder("A")
    B_train, B_test = digits_encoder("B")
    perm = np.random.default_rng(0).permutation(len(B_train))
    seeds = _seeds(perm, 10)
    head = fit_single_thread(LogisticRegression(max_iter=2000), B_train, y_train)
    seeds_only = ProcrustesTranslator().fit(A_train[seeds[:, 0]], B_train[seeds[:, 0]])
    matcher = AnchorMatcher(300, seeds=seeds, discovery="relative").fit(A_train, B_train[perm])
    precision = _precision(matcher.matched_pairs_, perm)
    acc_seeds = head.score(seeds_only.transform(A_test), y_test)
    acc_discovered = head.score(matcher.transform(A_test), y_test)
    assert precision > 0.8  # measured 0.89 (chance: 1 / 1257)
    assert acc_discovered > acc_seeds + 0.05  # measured 0.96 vs 0.87

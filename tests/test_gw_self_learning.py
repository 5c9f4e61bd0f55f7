"""Gromov-Wasserstein matching (AnchorMatcher(discovery="gw")) and SelfLearningTranslator."""

import pickle
import sys
import warnings

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from sklearn_latent import (
    AlignmentWarning,
    AnchorMatcher,
    ProcrustesTranslator,
    SelfLearningTranslator,
    load,
    save,
)
from sklearn_latent.metrics import top_k_accuracy
from test_zeropair import _hierarchical, _isotropic, _precision

# GW runs on 300-row subsamples, a short refinement: about 1 s a fit
GW = dict(discovery="gw", gw_samples=300, n_refine=5, random_state=0)


def _seeds(perm, n):
    """The first ``n`` rows of Y with their true X rows: ``(perm[j], j)``."""
    return np.stack([perm[:n], np.arange(n)], axis=1)


# --------------------------------------------------------------------------
# Gromov-Wasserstein
# --------------------------------------------------------------------------
def test_gw_recovers_the_permutation_across_widths(backend):
    pytest.importorskip("ot")
    X, Y, perm = _hierarchical(n=500, d=10, d_y=14)
    with warnings.catch_warnings():
        warnings.simplefilter("error", AlignmentWarning)
        matcher = AnchorMatcher(**GW).fit(backend.asarray(X), backend.asarray(Y))
    assert _precision(matcher.matched_pairs_, perm) > 0.95  # measured 1.0
    assert matcher.matched_pairs_.shape[0] > 0.9 * len(X)
    assert matcher.mutual_fraction_ > 0.9 > 0.5 > matcher.null_mutual_fraction_
    assert matcher.n_centroids_ == 300  # the GW subsample
    out = backend.to_numpy(matcher.transform(backend.asarray(X)))
    # as good as Procrustes on all true pairs (the supervised ceiling)
    ceiling = ProcrustesTranslator().fit(X[perm], Y).transform(X)
    assert top_k_accuracy(out[perm], Y) > top_k_accuracy(ceiling[perm], Y) - 0.03


def test_gw_warns_on_unalignable_spaces_and_is_deterministic():
    pytest.importorskip("ot")
    # isotropic, and GW sees only half of the rows per run: no point matches
    X, Y, perm = _isotropic(n=400)
    with pytest.warns(AlignmentWarning, match="unlikely to be right"):
        a = AnchorMatcher(**dict(GW, gw_samples=200)).fit(X, Y)
    assert _precision(a.matched_pairs_, perm) < 0.3  # the warning is deserved (measured 0.0)
    with pytest.warns(AlignmentWarning):
        b = AnchorMatcher(**dict(GW, gw_samples=200)).fit(X, Y)
    assert_array_equal(a.matched_pairs_, b.matched_pairs_)
    assert a.alignment_score_ == b.alignment_score_
    unrelated = np.random.default_rng(1).normal(size=(300, 12))
    with pytest.warns(AlignmentWarning, match="unlikely to be right"):
        AnchorMatcher(**GW).fit(X, unrelated)


def test_gw_without_pot_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ot", None)  # import ot raises ImportError
    X, Y, _ = _hierarchical(n=60)
    with pytest.raises(ImportError, match=r"sklearn-latent\[ot\]"):
        AnchorMatcher(discovery="gw").fit(X, Y)
    AnchorMatcher(n_centroids=4, n_runs=1, n_refine=1).fit(X, Y)  # the rest still works


def test_gw_bad_input():
    pytest.importorskip("ot")
    X, Y, _ = _hierarchical(n=60)
    with pytest.raises(ValueError, match="gw_samples == 1, must be >= 2"):
        AnchorMatcher(discovery="gw", gw_samples=1).fit(X, Y)
    with pytest.raises(TypeError, match="gw_samples must be an int"):
        AnchorMatcher(discovery="gw", gw_samples=0.5).fit(X, Y)
    with pytest.raises(ValueError, match="NaN"):
        AnchorMatcher(discovery="gw").fit(np.where(X > 2, np.nan, X), Y)


# --------------------------------------------------------------------------
# self-learning
# --------------------------------------------------------------------------
def test_self_learning_grows_a_few_seeds_into_the_permutation(backend):
    X, Y, perm = _hierarchical(n=500, d=10, d_y=14)
    seeds = _seeds(perm, 10)
    with warnings.catch_warnings():
        warnings.simplefilter("error", AlignmentWarning)
        sl = SelfLearningTranslator(seeds=seeds, random_state=0).fit(
            backend.asarray(X), backend.asarray(Y)
        )
    assert_array_equal(sl.dictionary_[:10], seeds)
    assert sl.is_seed_.sum() == 10 and not sl.is_seed_[10:].any()
    assert sl.dictionary_.shape[0] > 0.9 * len(X)
    assert _precision(sl.dictionary_, perm) > 0.97  # measured 1.0
    assert sl.mutual_fraction_ > 0.9 > 0.5 > sl.null_mutual_fraction_
    # the seeds alone (10 pairs, 10 dimensions) give a poor map; the refined one is exact
    alone = ProcrustesTranslator(scaling="center").fit(X[seeds[:, 0]], Y[seeds[:, 1]])
    out = backend.to_numpy(sl.transform(backend.asarray(X)))
    assert np.abs(out[perm] - Y).max() < 1e-4 < np.abs(alone.transform(X)[perm] - Y).max()
    assert sl.get_feature_names_out()[:2].tolist() == [
        "selflearningtranslator0", "selflearningtranslator1"
    ]


def test_self_learning_around_other_translators():
    X, Y, perm = _hierarchical(n=400)
    seeds = _seeds(perm, 30)
    ridge = SelfLearningTranslator(Ridge(alpha=1e-3), seeds=seeds, random_state=0).fit(X, Y)
    assert _precision(ridge.dictionary_, perm) > 0.97
    # a fitted translator as the start, no seeds: it is refined, not modified
    start = ProcrustesTranslator(scaling="center").fit(X[seeds[:, 0]], Y[seeds[:, 1]])
    coef = start.coef_.copy()
    warm = SelfLearningTranslator(start, random_state=0).fit(X, Y)
    assert _precision(warm.dictionary_, perm) > 0.97 and not warm.is_seed_.any()
    assert_array_equal(start.coef_, coef)


def test_self_learning_warns_when_the_seeds_do_not_carry():
    X, Y, perm = _hierarchical(n=400)
    unrelated = np.random.default_rng(1).normal(size=(400, 10)) * np.geomspace(3, 0.3, 10)
    with pytest.warns(AlignmentWarning, match="unlikely to be right"):
        sl = SelfLearningTranslator(seeds=_seeds(perm, 10), random_state=0).fit(X, unrelated)
    assert sl.mutual_fraction_ < 0.5 * (1 + sl.null_mutual_fraction_)


def test_self_learning_deterministic_pickle_persist_pipeline(tmp_path):
    X, Y, perm = _hierarchical(n=300)
    seeds = _seeds(perm, 10)
    a = SelfLearningTranslator(seeds=seeds, random_state=0).fit(X, Y)
    b = SelfLearningTranslator(seeds=seeds, random_state=0).fit(X, Y)
    assert_array_equal(a.dictionary_, b.dictionary_)
    assert a.null_mutual_fraction_ == b.null_mutual_fraction_
    assert_array_equal(pickle.loads(pickle.dumps(a)).transform(X), a.transform(X))
    save(a, tmp_path / "sl.npz")
    assert_array_equal(load(tmp_path / "sl.npz").transform(X), a.transform(X))
    # zero-shot stitching: a classifier of y's space applied to translated X
    labels = (X[:, 0] > np.median(X[:, 0])).astype(int)
    head = LogisticRegression().fit(Y, labels[perm])
    pipe = make_pipeline(FunctionTransformer(), SelfLearningTranslator(seeds=seeds,
                                                                       random_state=0))
    pipe.fit(X, Y)
    assert make_pipeline(pipe, head).score(X, labels) > 0.95


def test_self_learning_bad_input():
    X, Y, perm = _hierarchical(n=60)
    with pytest.raises(ValueError, match="needs a start"):
        SelfLearningTranslator().fit(X, Y)
    with pytest.raises(ValueError, match="seeds has 1 pair"):
        SelfLearningTranslator(seeds=[[0, 0]]).fit(X, Y)
    with pytest.raises(ValueError, match=r"seeds\[:, 1\] must lie in \[0, 60\)"):
        SelfLearningTranslator(seeds=[[0, 0], [1, 99]]).fit(X, Y)
    with pytest.raises(TypeError, match="translator must be an estimator"):
        SelfLearningTranslator(object(), seeds=_seeds(perm, 5)).fit(X, Y)
    with pytest.raises(TypeError, match="n_refine must be an int"):
        SelfLearningTranslator(seeds=_seeds(perm, 5), n_refine=1.5).fit(X, Y)
    with pytest.raises(ValueError, match="NaN"):
        SelfLearningTranslator(seeds=_seeds(perm, 5)).fit(np.where(X > 2, np.nan, X), Y)
    with pytest.raises(ValueError, match="y is constant"):
        SelfLearningTranslator(seeds=_seeds(perm, 5)).fit(X, np.ones_like(Y))
    with pytest.raises(ValueError, match="target y is None"):
        SelfLearningTranslator(seeds=_seeds(perm, 5)).fit(X)

"""RelativeAggregator: known answers, scikit-learn API, bad input, digits."""

import pickle
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.stats import ortho_group
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_latent import RelativeAggregator, RelativeProjector, load, save

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _saved(est, path):
    """``est`` after a round trip through the library's safe file format."""
    save(est, path)
    return load(path)


def _spaces(n=120, seed=0):
    rng = np.random.default_rng(seed)
    X1 = rng.normal(size=(n, 6))
    X2 = np.tanh(X1 @ rng.normal(size=(6, 9)))
    X3 = rng.normal(size=(n, 4))
    return X1, X2, X3


@pytest.mark.parametrize("aggregation", ["mean", "concat", "sum"])
def test_equals_projectors_on_parallel_anchors(backend, aggregation):
    X1, X2, X3 = _spaces()
    X = np.hstack([X1, X2, X3])
    agg = RelativeAggregator((6, 9, 4), 10, aggregation=aggregation, normalize="l2",
                             random_state=0).fit(backend.asarray(X))
    idx = agg.anchor_indices_
    parts = [RelativeProjector(anchors=idx, normalize="l2").fit(Z).transform(Z)
             for Z in (X1, X2, X3)]
    expected = {"mean": sum(parts) / 3, "sum": sum(parts), "concat": np.hstack(parts)}
    out = agg.transform(backend.asarray(X))
    assert backend.is_kind(out)
    assert_allclose(backend.to_numpy(out), expected[aggregation], atol=1e-12)
    names = agg.get_feature_names_out()
    assert len(names) == expected[aggregation].shape[1]


def test_mean_of_isometric_copies_is_each_relative_space():
    X1, _, _ = _spaces()
    X2 = 3.0 * X1 @ ortho_group.rvs(6, random_state=0) + 1.0
    agg = RelativeAggregator((6, 6), 8, random_state=0)
    R = agg.fit_transform(np.hstack([X1, X2]))
    assert_allclose(R, agg.projectors_[0].transform(X1), atol=1e-12)


def test_float32_and_batching(backend):
    X = np.hstack(_spaces()).astype(np.float32)
    agg = RelativeAggregator((6, 9, 4), 10, random_state=0).fit(backend.asarray(X))
    out = agg.transform(backend.asarray(X))
    assert backend.dtype_name(out) == "float32"
    batched = agg.set_params(batch_size=7).transform(backend.asarray(X))
    assert_allclose(backend.to_numpy(batched), backend.to_numpy(out), atol=1e-6)


@parametrize_with_checks([
    RelativeAggregator(n_anchors=5, random_state=0),
    RelativeAggregator(n_anchors=0.5, aggregation="concat", normalize="standard",
                       anchors="fps", random_state=0),
])
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_clone_pickle_persist_grid_search(tmp_path):
    X = np.hstack(_spaces())
    y = (X[:, 0] > 0).astype(int)
    agg = RelativeAggregator((6, 9, 4), 10, random_state=0).fit(X)
    for other in (pickle.loads(pickle.dumps(agg)), _saved(agg, tmp_path / "agg")):
        assert_array_equal(other.transform(X), agg.transform(X))
    assert not hasattr(clone(agg), "projectors_")
    pipe = make_pipeline(RelativeAggregator((6, 9, 4), 10, random_state=0),
                         LogisticRegression())
    grid = GridSearchCV(pipe, {"relativeaggregator__aggregation": ["mean", "concat"]}, cv=3)
    grid.fit(X, y)
    assert grid.best_score_ > 0.7


def test_bad_input_raises_clearly():
    X = np.hstack(_spaces())
    for params, exc, match in [
        (dict(widths=(6, 9)), ValueError, r"sum to 15, but X has 19 features"),
        (dict(widths=(6, 0, 13)), ValueError, "positive ints"),
        (dict(widths=()), ValueError, "non-empty"),
        (dict(widths="6,13"), TypeError, "widths"),
        (dict(widths=(6, 13), aggregation="max"), ValueError, "aggregation='max'"),
        (dict(widths=(6, 13), normalize="z"), ValueError, "normalize='z'"),
        (dict(widths=(6, 13), n_anchors=1.5), ValueError, "n_anchors=1.5"),
        (dict(widths=(6, 13), anchors=np.array([0, 500])), ValueError, "anchor indices"),
    ]:
        with pytest.raises(exc, match=match):
            RelativeAggregator(**params).fit(X)
    agg = RelativeAggregator((6, 13), 5, random_state=0).fit(X)
    with pytest.raises(ValueError, match="features"):
        agg.transform(X[:, :6])
    with pytest.raises(ValueError, match="NaN"):
        agg.transform(np.full_like(X, np.nan))


# --------------------------------------------------------------------------
# real data: three digits encoders aggregated
# --------------------------------------------------------------------------
@pytest.mark.slow
def test_digits_aggregated_space_at_least_as_good_as_the_single_spaces():
    from _digits_encoders import digits_encoder, digits_split, fit_single_thread

    _, _, y_train, y_test = digits_split()
    spaces = [digits_encoder(name) for name in "ABC"]
    train = np.hstack([s[0] for s in spaces])
    test = np.hstack([s[1] for s in spaces])
    widths = tuple(s[0].shape[1] for s in spaces)
    idx = RelativeAggregator(widths, 64, random_state=0).fit(train).anchor_indices_

    def accuracy(transformer, Xtr, Xte):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pipe = make_pipeline(transformer, LogisticRegression(max_iter=3000))
            return fit_single_thread(pipe, Xtr, y_train).score(Xte, y_test)

    single = [accuracy(RelativeProjector(anchors=idx), tr, te) for tr, te in spaces]
    mean = accuracy(RelativeAggregator(widths, anchors=idx), train, test)
    assert mean >= max(single) - 0.01, (mean, single)


# --------------------------------------------------------------------------
# issue 12
# --------------------------------------------------------------------------
@pytest.mark.parametrize("change", [
    dict(aggregation="concat"), dict(normalize="l2"), dict(metric="euclidean"),
    dict(center=False), dict(widths=(15, 4)),
])
def test_parameters_changed_after_fit_refuse_transform(backend, change):
    from sklearn.exceptions import NotFittedError

    X = backend.asarray(np.hstack(_spaces()))
    agg = RelativeAggregator((6, 13), 10, random_state=0).fit(X)
    agg.set_params(**change)
    (name, _), = change.items()
    with pytest.raises(NotFittedError, match=f"fitted with {name}=.*but {name} is now"):
        agg.transform(X)
    assert backend.to_numpy(agg.fit(X).transform(X)).shape[0] == 120


def test_single_centered_anchor_raises_naming_the_aggregator(backend):
    X = backend.asarray(np.hstack(_spaces()))
    with pytest.raises(ValueError, match="n_anchors=1 gives 1 anchor from n_samples=120"):
        RelativeAggregator((6, 13), 1).fit(X)

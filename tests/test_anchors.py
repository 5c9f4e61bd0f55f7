"""Anchor strategies (``sklearn_latent.anchors``) and the ``anchors`` parameter."""

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import make_blobs

from sklearn_latent import RelativeProjector, select_anchors
from sklearn_latent.anchors import STRATEGIES, _check_n_anchors


def _data(n=120, d=6, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d))


def _labels(n=120, n_classes=4, seed=0):
    return np.random.default_rng(seed).integers(0, n_classes, size=n)


def _select(X, k, method, seed, y=None):
    return select_anchors(X, k, method, y=y, random_state=seed)


def _valid(idx, n, k):
    assert isinstance(idx, np.ndarray)
    assert idx.dtype == np.int64
    assert idx.shape == (k,)
    assert len(np.unique(idx)) == k
    assert idx.min() >= 0 and idx.max() < n


# --------------------------------------------------------------------------
# every strategy
# --------------------------------------------------------------------------
@pytest.mark.parametrize("method", STRATEGIES)
@pytest.mark.parametrize("k", [1, 10, 120])
def test_indices_distinct_and_in_range(method, k):
    X, y = _data(), _labels()
    _valid(_select(X, k, method, 0, y=y), 120, k)


@pytest.mark.parametrize("method", STRATEGIES)
@pytest.mark.parametrize("seed", [0, 7])
def test_deterministic_under_random_state(method, seed):
    X, y = _data(), _labels()
    first = _select(X, 15, method, seed, y=y)
    second = _select(X, 15, method, seed, y=y)
    assert_array_equal(first, second)
    # a RandomState instance seeded alike gives the same result
    third = select_anchors(X, 15, method, y=y, random_state=np.random.RandomState(seed))
    assert_array_equal(first, third)


@pytest.mark.parametrize("method", ["random", "fps", "kmeans", "stratified"])
def test_different_seeds_differ(method):
    X, y = _data(), _labels()
    picks = {tuple(np.sort(_select(X, 15, method, seed, y=y))) for seed in range(4)}
    assert len(picks) >= 3


@pytest.mark.parametrize("method", STRATEGIES)
def test_tensor_input_gives_the_same_indices(backend, method):
    X, y = _data(), _labels()
    expected = _select(X, 12, method, 3, y=y)
    got = select_anchors(backend.asarray(X), 12, method, y=y, random_state=3)
    assert isinstance(got, np.ndarray) and got.dtype == np.int64
    assert_array_equal(got, expected)


@pytest.mark.parametrize("method", ["fps", "kmeans"])
def test_float32_input(method):
    X = _data().astype(np.float32)
    _valid(_select(X, 10, method, 0), 120, 10)
    _valid(select_anchors(torch.from_numpy(X), 10, method, random_state=0), 120, 10)


# --------------------------------------------------------------------------
# n_anchors
# --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "n_anchors,expected",
    [(5, 5), (np.int64(5), 5), (0.1, 12), (0.05, 6), (1e-6, 1), (1.0, 120), (None, 120)],
)
def test_n_anchors_int_fraction_none(n_anchors, expected):
    X = _data()
    assert _check_n_anchors(n_anchors, 120) == expected
    idx = select_anchors(X, n_anchors, "random", random_state=0)
    assert idx.shape == (expected,)
    proj = RelativeProjector(n_anchors, center=expected > 1, random_state=0).fit(X)
    assert proj.anchors_.shape == (expected, 6)
    assert proj.transform(X).shape == (120, expected)


def test_n_anchors_none_takes_every_row():
    X = _data()
    assert_array_equal(np.sort(select_anchors(X, None, "random", random_state=0)),
                       np.arange(120))
    proj = RelativeProjector(None, anchors="fps", random_state=0).fit(X)
    assert_array_equal(np.sort(proj.anchor_indices_), np.arange(120))


@pytest.mark.parametrize(
    "n_anchors,exc,match",
    [
        (121, ValueError, "n_anchors=121 exceeds the number of samples"),
        (0, ValueError, "n_anchors=0 must be at least 1"),
        (-2, ValueError, "n_anchors=-2 must be at least 1"),
        (1.5, ValueError, r"n_anchors=1.5 as a fraction must lie in \(0, 1\]"),
        (0.0, ValueError, "as a fraction"),
        (True, TypeError, "n_anchors must be an int"),
        ("5", TypeError, "n_anchors must be an int"),
    ],
)
def test_bad_n_anchors(n_anchors, exc, match):
    with pytest.raises(exc, match=match):
        select_anchors(_data(), n_anchors, "random", random_state=0)


def test_unknown_method():
    with pytest.raises(ValueError, match="method='farthest' is not supported"):
        select_anchors(_data(), 3, "farthest")


# --------------------------------------------------------------------------
# random
# --------------------------------------------------------------------------
def test_random_covers_rows_uniformly():
    X = _data(n=50)
    counts = np.zeros(50)
    for seed in range(200):
        counts[select_anchors(X, 5, "random", random_state=seed)] += 1
    # each row is picked with probability 5/50: 20 times in expectation
    assert counts.min() > 5 and counts.max() < 40


# --------------------------------------------------------------------------
# fps
# --------------------------------------------------------------------------
def _brute_force_fps(X, k, start):
    D = np.sqrt(((X[:, None, :] - X[None, :, :]) ** 2).sum(-1))
    chosen = [start]
    for _ in range(k - 1):
        nearest = D[:, chosen].min(axis=1)
        chosen.append(int(np.argmax(nearest)))
    return np.asarray(chosen)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("offset", [0.0, 50.0])
def test_fps_picks_the_farthest_point_each_step(seed, offset):
    X = np.random.default_rng(seed).normal(size=(40, 3)) + offset
    idx = select_anchors(X, 12, "fps", random_state=seed)
    assert_array_equal(idx, _brute_force_fps(X, 12, int(idx[0])))


def test_fps_spreads_over_well_separated_blobs():
    X, labels = make_blobs(300, n_features=3, centers=6, cluster_std=0.3,
                           center_box=(-30, 30), random_state=0)
    for seed in range(3):
        idx = select_anchors(X, 6, "fps", random_state=seed)
        assert len(set(labels[idx])) == 6


# --------------------------------------------------------------------------
# kmeans
# --------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(6))
def test_kmeans_one_anchor_per_blob(seed):
    X, labels = make_blobs(500, n_features=4, centers=5, cluster_std=0.5,
                           center_box=(-20, 20), random_state=seed)
    idx = select_anchors(X, 5, "kmeans", random_state=seed)
    _valid(idx, 500, 5)
    assert sorted(labels[idx]) == [0, 1, 2, 3, 4]


def test_kmeans_anchors_are_real_rows_near_centroids():
    X, labels = make_blobs(400, n_features=3, centers=4, cluster_std=0.4,
                           center_box=(-15, 15), random_state=1)
    proj = RelativeProjector(4, anchors="kmeans", random_state=0).fit(X)
    assert_array_equal(proj.anchors_, X[proj.anchor_indices_])
    for i in proj.anchor_indices_:
        members = X[labels == labels[i]]
        centroid = members.mean(0)
        # the anchor is among the rows closest to its blob's centroid
        d = np.linalg.norm(members - centroid, axis=1)
        assert np.linalg.norm(X[i] - centroid) <= np.quantile(d, 0.1)


def test_kmeans_with_duplicate_rows_stays_distinct():
    base = np.random.default_rng(0).normal(size=(5, 3))
    X = np.repeat(base, 8, axis=0)  # 40 rows, 5 distinct points
    idx = select_anchors(X, 12, "kmeans", random_state=0)
    _valid(idx, 40, 12)


# --------------------------------------------------------------------------
# stratified
# --------------------------------------------------------------------------
@pytest.mark.parametrize("k", [4, 10, 13, 40])
def test_stratified_is_balanced(k):
    X, y = _data(), _labels()
    idx = select_anchors(X, k, "stratified", y=y, random_state=0)
    _valid(idx, 120, k)
    counts = np.bincount(y[idx], minlength=4)
    assert counts.max() - counts.min() <= 1


def test_stratified_class_smaller_than_its_share():
    y = np.array([0] * 50 + [1] * 30 + [2] * 3)
    X = _data(n=len(y))
    idx = select_anchors(X, 15, "stratified", y=y, random_state=0)
    _valid(idx, len(y), 15)
    assert_array_equal(np.bincount(y[idx]), [6, 6, 3])
    idx = select_anchors(X, 40, "stratified", y=y, random_state=1)
    counts = np.bincount(y[idx])
    assert counts[2] == 3 and abs(counts[0] - counts[1]) <= 1 and counts.sum() == 40


def test_stratified_string_labels():
    y = np.array(["cat", "dog", "emu"] * 20)
    idx = select_anchors(_data(n=60), 9, "stratified", y=y, random_state=0)
    values, counts = np.unique(y[idx], return_counts=True)
    assert_array_equal(counts, [3, 3, 3])


def test_stratified_needs_matching_y():
    X = _data()
    with pytest.raises(ValueError, match="needs the class labels y"):
        select_anchors(X, 5, "stratified", random_state=0)
    with pytest.raises(ValueError, match="y has 10 entries but X has 120 rows"):
        select_anchors(X, 5, "stratified", y=np.zeros(10), random_state=0)


def test_stratified_in_projector():
    X, y = _data(), _labels()
    proj = RelativeProjector(8, anchors="stratified", random_state=0).fit(X, y)
    assert_array_equal(np.bincount(y[proj.anchor_indices_], minlength=4), [2, 2, 2, 2])
    with pytest.raises(ValueError, match="anchors='stratified' needs the class labels y"):
        RelativeProjector(8, anchors="stratified").fit(X)


# --------------------------------------------------------------------------
# the anchors parameter of RelativeProjector
# --------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["list", "ndarray", "int32", "tensor"])
def test_explicit_indices(kind):
    X = _data()
    idx = [5, 0, 17, 99, 42]
    anchors = {"list": idx, "ndarray": np.array(idx), "int32": np.array(idx, np.int32),
               "tensor": torch.tensor(idx)}[kind]
    proj = RelativeProjector(300, anchors=anchors).fit(X)  # n_anchors is ignored
    assert_array_equal(proj.anchor_indices_, idx)
    assert proj.anchor_indices_.dtype == np.int64
    assert_array_equal(proj.anchors_, X[idx])


@pytest.mark.parametrize("as_tensor", [False, True])
def test_explicit_vectors(as_tensor):
    X = _data()
    V = np.random.default_rng(1).normal(size=(7, 6))
    proj = RelativeProjector(anchors=torch.from_numpy(V) if as_tensor else V).fit(X)
    assert proj.anchor_indices_ is None
    assert isinstance(proj.anchors_, np.ndarray)
    assert_array_equal(proj.anchors_, V)
    R = proj.transform(X)
    assert R.shape == (120, 7)
    # same result as picking those rows by index from a stacked matrix
    stacked = np.vstack([X, V])
    by_index = RelativeProjector(anchors=np.arange(120, 127)).fit(stacked)
    assert_allclose(by_index.transform(X), R, atol=1e-12)


def test_explicit_vectors_take_the_dtype_of_x():
    X = _data().astype(np.float32)
    proj = RelativeProjector(anchors=np.eye(3, 6)).fit(X)
    assert proj.anchors_.dtype == np.float32


def test_callable_anchors():
    X = _data()
    seen = {}

    def pick(Xv, n_anchors, random_state):
        seen.update(n=n_anchors, rs=random_state, shape=Xv.shape)
        return np.argsort(Xv[:, 0])[-n_anchors:]

    proj = RelativeProjector(0.05, anchors=pick, random_state=3).fit(X)
    assert seen == {"n": 6, "rs": 3, "shape": (120, 6)}
    assert_array_equal(proj.anchor_indices_, np.argsort(X[:, 0])[-6:])
    # a callable may return a tensor
    proj = RelativeProjector(4, anchors=lambda Xv, k, rs: torch.arange(k)).fit(X)
    assert_array_equal(proj.anchor_indices_, np.arange(4))


def test_parallel_anchors_across_spaces():
    X = _data()
    Y = np.tanh(X @ np.random.default_rng(2).normal(size=(6, 9)))
    proj_a = RelativeProjector(10, anchors="fps", random_state=0).fit(X)
    proj_b = RelativeProjector(anchors=proj_a.anchor_indices_).fit(Y)
    assert_array_equal(proj_b.anchor_indices_, proj_a.anchor_indices_)
    assert_array_equal(proj_b.anchors_, Y[proj_a.anchor_indices_])
    assert proj_b.transform(Y).shape == (120, 10)


@pytest.mark.parametrize("method", STRATEGIES)
def test_projector_anchors_equal_select_anchors(backend, method):
    X, y = _data(), _labels()
    proj = RelativeProjector(9, anchors=method, random_state=5).fit(backend.asarray(X), y)
    assert isinstance(proj.anchor_indices_, np.ndarray)
    assert isinstance(proj.anchors_, np.ndarray)
    assert_array_equal(proj.anchor_indices_, select_anchors(X, 9, method, y=y, random_state=5))
    assert_array_equal(proj.anchors_, X[proj.anchor_indices_])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fps_same_rows_with_and_without_the_jit_step(dtype, monkeypatch):
    """The numba step of fps (the 'fast' extra) does the torch steps' IEEE operations
    in the same order, so both paths pick the same rows for a given random_state."""
    from sklearn_latent.functional import _lp

    X = np.random.default_rng(7).normal(size=(2000, 24)).astype(dtype)
    jit = select_anchors(X, 40, "fps", random_state=3)
    monkeypatch.setattr(_lp, "USE_JIT", False)
    assert_array_equal(select_anchors(X, 40, "fps", random_state=3), jit)
    assert_array_equal(select_anchors(X, 40, "fps", random_state=3), jit)  # deterministic

"""RelativeProjector: invariances, known answers, scikit-learn API, bad input, stitching."""

import pickle
import warnings

import joblib
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from scipy.stats import ortho_group
from sklearn.base import clone
from sklearn.datasets import load_digits, make_classification
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_latent import RelativeProjector


def _data(n=60, d=7, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d))


def _relative_pair(X, Y, k, seed, **params):
    """Relative spaces of X and Y against parallel anchors (the same rows)."""
    proj_a = RelativeProjector(k, random_state=seed, **params).fit(X)
    proj_b = RelativeProjector(anchors=proj_a.anchor_indices_, **params).fit(Y)
    assert_array_equal(proj_b.anchor_indices_, proj_a.anchor_indices_)
    return proj_a.transform(X), proj_b.transform(Y)


def _max_diff(X, Y, k, seed, **params):
    R_a, R_b = _relative_pair(X, Y, k, seed, **params)
    return float(np.abs(R_a - R_b).max())


# --------------------------------------------------------------------------
# invariances and non-invariances (REFERENCE.md table), property-based
# --------------------------------------------------------------------------
@st.composite
def spaces(draw, min_d=2, max_d=10):
    """A Gaussian latent space (n, d), a number of anchors k and a seed."""
    n = draw(st.integers(20, 60))
    d = draw(st.integers(min_d, max_d))
    k = draw(st.integers(3, 12))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * draw(st.sampled_from([0.1, 1.0, 10.0]))
    return X, k, seed, rng


def _orthogonal(d, seed):
    return ortho_group.rvs(d, random_state=seed) if d > 1 else np.array([[-1.0]])


def _generic_rotation(d):
    """A fixed orthogonal map far from every signed permutation (those keep l1/linf)."""
    Q = ortho_group.rvs(d, random_state=0)
    assert np.abs(Q).max() < 0.95
    return Q


# tolerance of an invariance: cosine is exact to rounding; arccos and the GEMM
# euclidean have a square-root singularity at 0 (an anchor against itself)
ATOL = {"cosine": 1e-9, "angular": 1e-6, "euclidean": 1e-6, "l1": 1e-9, "linf": 1e-9}
# a real difference, far above every tolerance
DIFFERENT = 1e-2


@pytest.mark.parametrize("metric", ["cosine", "angular"])
@pytest.mark.parametrize("center", [True, False])
@given(space=spaces(), scale=st.floats(0.05, 20.0))
def test_cosine_invariant_to_orthogonal_maps_and_isotropic_scaling(metric, center, space,
                                                                   scale):
    X, k, seed, _ = space
    Y = scale * X @ _orthogonal(X.shape[1], seed)
    R_a, R_b = _relative_pair(X, Y, k, seed, metric=metric, center=center)
    assert_allclose(R_a, R_b, atol=ATOL[metric])


@pytest.mark.parametrize("metric", ["cosine", "angular"])
@given(space=spaces(), shift=st.floats(0.5, 100.0))
def test_centered_cosine_invariant_to_translation(metric, space, shift):
    X, k, seed, rng = space
    t = rng.normal(size=X.shape[1]) * shift * X.std()
    Y = 2.5 * X @ _orthogonal(X.shape[1], seed) + t
    R_a, R_b = _relative_pair(X, Y, k, seed, metric=metric, center=True)
    assert_allclose(R_a, R_b, atol=ATOL[metric])


@pytest.mark.parametrize("metric", ["cosine", "angular"])
@given(space=spaces(), shift=st.floats(1.0, 100.0))
def test_uncentered_cosine_not_invariant_to_translation(metric, space, shift):
    X, k, seed, rng = space
    t = rng.normal(size=X.shape[1])
    t *= shift * np.linalg.norm(X, axis=1).mean() / np.linalg.norm(t)
    assert _max_diff(X, X + t, k, seed, metric=metric, center=False) > DIFFERENT
    # ... while centering removes exactly that difference
    R_a, R_b = _relative_pair(X, X + t, k, seed, metric=metric, center=True)
    assert_allclose(R_a, R_b, atol=ATOL[metric])


@pytest.mark.parametrize("metric", ["cosine", "angular"])
@pytest.mark.parametrize("center", [True, False])
@given(space=spaces())
def test_cosine_not_invariant_to_anisotropic_scaling(metric, center, space):
    X, k, seed, _ = space
    Y = X * np.linspace(0.4, 2.5, X.shape[1])
    assert _max_diff(X, Y, k, seed, metric=metric, center=center) > DIFFERENT


@pytest.mark.parametrize("center", [True, False])
@given(space=spaces(min_d=1), shift=st.floats(0.0, 1e3))
def test_euclidean_invariant_to_orthogonal_maps_and_translation(center, space, shift):
    X, k, seed, rng = space
    t = rng.normal(size=X.shape[1]) * shift
    Y = X @ _orthogonal(X.shape[1], seed) + t
    R_a, R_b = _relative_pair(X, Y, k, seed, metric="euclidean", center=center)
    assert_allclose(R_a, R_b, atol=ATOL["euclidean"] * max(1.0, X.std()))


@pytest.mark.parametrize("metric", ["euclidean", "l1", "linf"])
@given(space=spaces(min_d=1), scale=st.sampled_from([0.4, 2.5]))
def test_distances_not_invariant_to_scaling(metric, space, scale):
    X, k, seed, _ = space
    diff = _max_diff(X, scale * X, k, seed, metric=metric)
    assert diff > DIFFERENT * X.std()
    # distances scale exactly with the data
    R_a, R_b = _relative_pair(X, scale * X, k, seed, metric=metric)
    assert_allclose(scale * R_a, R_b, atol=ATOL[metric] * max(1.0, X.std()) * 10)


@pytest.mark.parametrize("metric", ["l1", "linf"])
@given(space=spaces(min_d=1), shift=st.floats(0.0, 1e3), data=st.data())
def test_l1_linf_invariant_to_permutation_sign_flips_translation(metric, space, shift, data):
    X, k, seed, rng = space
    d = X.shape[1]
    perm = data.draw(st.permutations(range(d)))
    signs = np.asarray(data.draw(st.lists(st.sampled_from([-1.0, 1.0]), min_size=d,
                                          max_size=d)))
    Y = X[:, perm] * signs + rng.normal(size=d) * shift
    R_a, R_b = _relative_pair(X, Y, k, seed, metric=metric)
    assert_allclose(R_a, R_b, rtol=1e-9, atol=1e-9 * max(1.0, shift))


@pytest.mark.parametrize("metric", ["l1", "linf"])
@given(space=spaces(min_d=2))
def test_l1_linf_not_invariant_to_general_rotation(metric, space):
    X, k, seed, _ = space
    Y = X @ _generic_rotation(X.shape[1])
    assert _max_diff(X, Y, k, seed, metric=metric) > DIFFERENT * X.std()
    # the euclidean distances of the same pair are unchanged
    R_a, R_b = _relative_pair(X, Y, k, seed, metric="euclidean")
    assert_allclose(R_a, R_b, atol=ATOL["euclidean"] * max(1.0, X.std()))


# --------------------------------------------------------------------------
# known answers
# --------------------------------------------------------------------------
def _mean_row_cosine(A, B):
    return float(np.mean(np.sum(A * B, 1) / (np.linalg.norm(A, axis=1)
                                           * np.linalg.norm(B, axis=1))))


@pytest.mark.parametrize("center", [False, True])
def test_isometry_demo(center):
    # REFERENCE.md: 1000 x 128 Gaussian, random orthogonal map, 300 anchors
    X = np.random.default_rng(0).normal(size=(1000, 128))
    Y = X @ ortho_group.rvs(128, random_state=0)
    assert abs(_mean_row_cosine(X, Y)) < 0.1
    R_x, R_y = _relative_pair(X, Y, 300, 0, center=center)
    assert R_x.shape == (1000, 300)
    assert _mean_row_cosine(R_x, R_y) > 0.999


INVERTIBLE = [
    {},
    {"normalize": "standard"},
    {"normalize": "l2"},
    {"exponent": 2.0},
    {"exponent": 0.5, "normalize": "standard"},
    {"center": False},
    {"batch_size": 7},
]


@pytest.mark.parametrize("params", INVERTIBLE, ids=lambda p: str(p) or "default")
@pytest.mark.parametrize("k", ["min", 40])
def test_inverse_transform_recovers_directions(backend, params, k):
    n, d = 120, 16
    # the fewest anchors that span the space: d, or d + 1 once centered
    if k == "min":
        k = d + int(params.get("center", True))
    X = np.random.default_rng(1).normal(size=(n, d)) + 0.3
    Xb = backend.asarray(X)
    proj = RelativeProjector(k, random_state=0, **params).fit(Xb)
    R = proj.transform(Xb)
    X_rec = proj.inverse_transform(R)
    assert backend.is_kind(X_rec)
    X_rec = backend.to_numpy(X_rec)
    assert X_rec.shape == (n, d)
    c = proj.anchor_mean_ if proj.center else 0.0
    cos = np.sum((X_rec - c) * (X - c), 1) / (
        np.linalg.norm(X_rec - c, axis=1) * np.linalg.norm(X - c, axis=1))
    assert cos.min() > 0.999
    assert_allclose(cos, 1.0, atol=1e-8)
    # rescaled to the mean (centered) anchor norm
    assert_allclose(np.linalg.norm(X_rec - c, axis=1), proj.mean_anchor_norm_, rtol=1e-8)


def test_inverse_transform_float32():
    X = np.random.default_rng(1).normal(size=(80, 8)).astype(np.float32)
    proj = RelativeProjector(20, random_state=0).fit(X)
    X_rec = proj.inverse_transform(proj.transform(X))
    assert X_rec.dtype == np.float32
    c = proj.anchor_mean_
    cos = np.sum((X_rec - c) * (X - c), 1) / (
        np.linalg.norm(X_rec - c, axis=1) * np.linalg.norm(X - c, axis=1))
    assert cos.min() > 0.999


@pytest.mark.parametrize(
    "params,match",
    [
        ({"metric": "euclidean"}, "metric='euclidean'"),
        ({"metric": "angular"}, "metric='angular'"),
        ({"top_k": 3}, "top_k=3"),
        ({"normalize": "layer"}, "normalize='layer'"),
    ],
)
def test_inverse_transform_refuses_lossy_settings(params, match):
    X = _data()
    proj = RelativeProjector(10, random_state=0, **params).fit(X)
    with pytest.raises(ValueError, match=match):
        proj.inverse_transform(proj.transform(X))


def test_inverse_transform_bad_input():
    X = _data()
    proj = RelativeProjector(10, random_state=0)
    with pytest.raises(NotFittedError):
        proj.inverse_transform(np.zeros((2, 10)))
    proj.fit(X)
    with pytest.raises(ValueError, match="R has 9 columns, but the projector has 10 anchors"):
        proj.inverse_transform(np.zeros((2, 9)))
    with pytest.raises(ValueError, match="NaN"):
        proj.inverse_transform(np.full((2, 10), np.nan))
    with pytest.raises(ValueError, match="2D"):
        proj.inverse_transform(np.zeros(10))


# --------------------------------------------------------------------------
# scikit-learn API
# --------------------------------------------------------------------------
@parametrize_with_checks(
    [
        RelativeProjector(5, random_state=0),
        RelativeProjector(0.5, metric="euclidean", normalize="standard", random_state=0),
        RelativeProjector(5, anchors="fps", top_k=3, exponent=2.0, normalize="l2",
                          random_state=0),
        RelativeProjector(5, metric="l1", anchors="kmeans", normalize="layer",
                          random_state=0),
    ]
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


CONFIGS = [
    {},
    {"center": False},
    {"metric": "angular"},
    {"metric": "dot", "normalize": "standard"},
    {"metric": "euclidean", "normalize": "layer"},
    {"metric": "l1", "anchors": "kmeans"},
    {"metric": "linf", "anchors": "fps"},
    {"metric": "lp", "p": 3.0, "normalize": "l2"},
    {"top_k": 4, "exponent": 2.0},
    {"batch_size": 11},
]


@pytest.mark.parametrize("params", CONFIGS, ids=lambda p: str(p) or "default")
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_backends_agree_with_numpy(backend, params, dtype):
    X = _data(n=50, d=6).astype(dtype)
    ref = RelativeProjector(8, random_state=0, **params).fit(X)
    expected = ref.transform(X)
    proj = RelativeProjector(8, random_state=0, **params).fit(backend.asarray(X))
    assert_array_equal(proj.anchor_indices_, ref.anchor_indices_)
    out = proj.transform(backend.asarray(X))
    assert backend.is_kind(out) and backend.dtype_name(out) == dtype
    tol = 1e-4 if dtype == "float32" else 1e-10
    assert_allclose(backend.to_numpy(out), expected, rtol=tol, atol=tol)
    # fitted on one kind, applied to another: the output follows the input
    if backend.is_torch:
        cross = ref.transform(backend.asarray(X))
        assert backend.is_kind(cross)
        assert_allclose(backend.to_numpy(cross), expected, rtol=tol, atol=tol)
        cross = proj.transform(X)
        assert isinstance(cross, np.ndarray)
        assert_allclose(cross, expected, rtol=tol, atol=tol)


def test_grid_search_over_metric_n_anchors_and_anchors():
    X, y = make_classification(150, n_features=8, n_informative=5, random_state=0)
    pipe = make_pipeline(RelativeProjector(normalize="standard", random_state=0),
                         LogisticRegression(max_iter=500))
    grid = GridSearchCV(
        pipe,
        {
            "relativeprojector__metric": ["cosine", "euclidean"],
            "relativeprojector__n_anchors": [4, 30],
            "relativeprojector__anchors": ["random", "fps"],
        },
        cv=3,
    )
    grid.fit(X, y)
    assert len(grid.cv_results_["params"]) == 8
    assert np.isfinite(grid.cv_results_["mean_test_score"]).all()
    assert grid.best_score_ > 0.75
    # 30 anchors describe the data better than 4
    scores = grid.cv_results_["mean_test_score"]
    n_anchors = np.array([p["relativeprojector__n_anchors"] for p in grid.cv_results_["params"]])
    assert scores[n_anchors == 30].mean() > scores[n_anchors == 4].mean()
    assert grid.best_estimator_.predict(X).shape == (150,)


def test_clone():
    proj = RelativeProjector(7, metric="l1", anchors="fps", random_state=3).fit(_data())
    fresh = clone(proj)
    assert fresh.get_params() == proj.get_params()
    assert not hasattr(fresh, "anchors_")
    assert_array_equal(fresh.fit(_data()).transform(_data()), proj.transform(_data()))
    parallel = RelativeProjector(anchors=proj.anchor_indices_)
    assert_array_equal(clone(parallel).anchors, proj.anchor_indices_)


FITTED_ARRAYS = ("anchors_", "anchor_indices_", "anchor_mean_", "output_mean_", "output_scale_")


@pytest.mark.parametrize("fit_kind", ["numpy", "tensor", "tensor-float32"])
def test_pickle_and_joblib_round_trip(tmp_path, fit_kind):
    X = _data()
    Xf = {"numpy": X, "tensor": torch.from_numpy(X.copy()),
          "tensor-float32": torch.from_numpy(X.astype(np.float32))}[fit_kind]
    proj = RelativeProjector(9, normalize="standard", random_state=0).fit(Xf)
    for name in FITTED_ARRAYS:
        assert isinstance(getattr(proj, name), np.ndarray), name
    assert isinstance(proj.mean_anchor_norm_, float)
    assert not any(isinstance(v, torch.Tensor) for v in vars(proj).values())
    expected = proj.transform(X)
    expected_t = proj.transform(torch.from_numpy(X))
    loaded = pickle.loads(pickle.dumps(proj))
    path = tmp_path / "proj.joblib"
    joblib.dump(proj, path)
    for other in (loaded, joblib.load(path), joblib.load(path, mmap_mode="r")):
        assert_array_equal(other.transform(X), expected)
        assert torch.equal(other.transform(torch.from_numpy(X)), expected_t)
        for name in FITTED_ARRAYS:
            assert_array_equal(getattr(other, name), getattr(proj, name))


@pytest.mark.cuda
def test_fitted_on_cuda_pickles_to_numpy():
    X = _data()
    proj = RelativeProjector(9, normalize="standard", random_state=0)
    proj.fit(torch.from_numpy(X).cuda())
    for name in FITTED_ARRAYS:
        assert isinstance(getattr(proj, name), np.ndarray), name
    loaded = pickle.loads(pickle.dumps(proj))
    assert_allclose(loaded.transform(X), proj.transform(X), atol=1e-12)


def test_fit_transform_equals_fit_then_transform(backend):
    X = backend.asarray(_data())
    for params in CONFIGS:
        a = RelativeProjector(6, random_state=0, **params).fit_transform(X)
        b = RelativeProjector(6, random_state=0, **params).fit(X).transform(X)
        assert_allclose(backend.to_numpy(a), backend.to_numpy(b), atol=1e-12)


def test_normalizations():
    X = _data()
    R = RelativeProjector(8, normalize="l2", random_state=0).fit_transform(X)
    assert_allclose(np.linalg.norm(R, axis=1), 1.0)
    R = RelativeProjector(8, normalize="standard", random_state=0).fit_transform(X)
    assert_allclose(R.mean(0), 0.0, atol=1e-12)
    assert_allclose(R.std(0), 1.0)
    R = RelativeProjector(8, metric="euclidean", normalize="layer", random_state=0)
    R = R.fit_transform(X)
    assert_allclose(R.mean(1), 0.0, atol=1e-12)
    assert_allclose(R.std(1), 1.0)


def test_top_k_and_exponent_in_projector():
    X = _data()
    dense = RelativeProjector(8, random_state=0).fit(X).transform(X)
    R = RelativeProjector(8, top_k=3, exponent=2.0, random_state=0).fit(X).transform(X)
    assert_array_equal((R != 0).sum(1), 3)
    for r, dr in zip(R, dense):
        keep = np.argsort(-dr)[:3]
        assert_allclose(r[keep], np.sign(dr[keep]) * dr[keep] ** 2, rtol=1e-12)


def test_get_feature_names_out():
    proj = RelativeProjector(3, metric="l1", random_state=0)
    with pytest.raises(NotFittedError):
        proj.get_feature_names_out()
    names = proj.fit(_data()).get_feature_names_out()
    assert names.dtype == object
    assert list(names) == ["l1_a0", "l1_a1", "l1_a2"]


# --------------------------------------------------------------------------
# bad input: clear errors, and a failing fit changes nothing
# --------------------------------------------------------------------------
def _fitted_state(est):
    return {k: v for k, v in vars(est).items() if k.endswith("_")}


def _assert_same_state(before, after):
    assert set(before) == set(after)
    for name, value in before.items():
        other = after[name]
        if isinstance(value, np.ndarray):
            assert other is value or np.array_equal(other, value), name
        else:
            assert other == value, name


def _assert_fit_fails_cleanly(params, X, exc, match, y=None):
    """The error is raised, a fresh estimator stays unfitted, a fitted one unchanged."""
    params = {"n_anchors": 4, **params}
    fresh = RelativeProjector(**params)
    with pytest.raises(exc, match=match):
        fresh.fit(X, y)
    assert _fitted_state(fresh) == {}
    with pytest.raises(NotFittedError):
        fresh.transform(_data(d=3))

    good_X = _data(n=20, d=3)
    fitted = RelativeProjector(4, normalize="standard", random_state=0).fit(good_X)
    good = fitted.get_params()
    before = dict(_fitted_state(fitted))
    R = fitted.transform(good_X)
    with pytest.raises(exc, match=match):
        fitted.set_params(**params).fit(X, y)
    _assert_same_state(before, _fitted_state(fitted))
    assert_array_equal(fitted.set_params(**good).transform(good_X), R)


GOOD = _data(n=20, d=3)
BAD_DATA = [
    ("nan", np.where(GOOD > 1, np.nan, GOOD), ValueError, "Input X contains NaN"),
    ("inf", np.where(GOOD > 1, np.inf, GOOD), ValueError, "Input X contains infinity"),
    ("tensor-nan", torch.tensor(np.where(GOOD > 1, np.nan, GOOD)), ValueError,
     "Input X contains NaN"),
    ("tensor-inf", torch.tensor(np.where(GOOD > 1, -np.inf, GOOD)), ValueError,
     "Input X contains infinity"),
    ("empty", np.empty((0, 3)), ValueError, "0 sample"),
    ("tensor-empty", torch.empty((0, 3)), ValueError, "0 sample"),
    ("1d", GOOD[:, 0], ValueError, "Expected 2D array"),
    ("tensor-1d", torch.tensor(GOOD[:, 0]), ValueError, "Expected a 2D tensor"),
    ("3d", GOOD[None], ValueError, "3"),
    ("no-features", np.empty((5, 0)), ValueError, "0 feature"),
    ("strings", np.array([["a", "b", "c"]] * 20), ValueError, "could not convert string"),
    ("complex", GOOD + 1j, ValueError, "Complex data not supported"),
    ("tensor-complex", torch.tensor(GOOD + 1j), ValueError, "Complex data not supported"),
    ("sparse-csr", "csr", TypeError, "Sparse data was passed"),
    ("sparse-coo", "coo", TypeError, "Sparse data was passed"),
    ("tensor-sparse", torch.tensor(GOOD).to_sparse(), TypeError, "Sparse tensor"),
]


@pytest.mark.parametrize("X,exc,match", [c[1:] for c in BAD_DATA],
                         ids=[c[0] for c in BAD_DATA])
def test_bad_data(X, exc, match):
    if isinstance(X, str):
        import scipy.sparse as sp

        X = {"csr": sp.csr_matrix, "coo": sp.coo_array}[X](GOOD)
    _assert_fit_fails_cleanly({"n_anchors": 4}, X, exc, match)


BAD_PARAMS = [
    ("n_anchors-fraction", {"n_anchors": 1.5}, ValueError,
     r"n_anchors=1.5 as a fraction must lie in \(0, 1\]"),
    ("n_anchors-zero", {"n_anchors": 0}, ValueError, "n_anchors=0 must be at least 1"),
    ("n_anchors-negative", {"n_anchors": -1}, ValueError, "n_anchors=-1 must be at least 1"),
    ("n_anchors-fraction", {"n_anchors": 1.2}, ValueError, "n_anchors=1.2 as a fraction"),
    ("n_anchors-bool", {"n_anchors": True}, TypeError, "n_anchors must be an int"),
    ("n_anchors-fps", {"n_anchors": 0, "anchors": "fps"}, ValueError, "n_anchors=0"),
    ("metric", {"metric": "cosinus"}, ValueError, "metric='cosinus' is not supported"),
    ("anchors", {"anchors": "farthest"}, ValueError, "anchors='farthest' is not supported"),
    ("stratified-no-y", {"anchors": "stratified"}, ValueError,
     "anchors='stratified' needs the class labels y"),
    ("normalize", {"normalize": "minmax"}, ValueError, "normalize='minmax' is not supported"),
    ("center", {"center": "yes"}, TypeError, "center must be a bool"),
    ("top_k-too-large", {"n_anchors": 4, "top_k": 5}, ValueError,
     r"top_k=5 must lie in \[1, n_anchors=4\]"),
    ("top_k-zero", {"top_k": 0}, ValueError, "top_k=0 must lie in"),
    ("top_k-float", {"top_k": 2.0}, TypeError, "top_k must be None or an int"),
    ("top_k-distance", {"top_k": 2, "metric": "euclidean"}, ValueError,
     "top_k and exponent apply to similarity metrics"),
    ("exponent-distance", {"exponent": 2.0, "metric": "l1"}, ValueError,
     "not to metric='l1'"),
    ("exponent-zero", {"exponent": 0.0}, ValueError, "exponent == 0.0, must be > 0.0"),
    ("exponent-negative", {"exponent": -1.0}, ValueError, "exponent == -1.0, must be > 0.0"),
    ("p", {"metric": "lp", "p": 0.5}, ValueError, "p == 0.5, must be >= 1"),
    ("indices-out-of-range", {"anchors": [0, 20]}, ValueError,
     r"anchor indices must lie in \[0, 20\)"),
    ("indices-negative", {"anchors": np.array([-1, 2])}, ValueError,
     r"got values in \[-1, 2\]"),
    ("indices-float", {"anchors": np.array([0.0, 1.0])}, TypeError,
     "anchor indices must be integers"),
    ("indices-empty", {"anchors": np.array([], dtype=int)}, ValueError, "non-empty 1-D"),
    ("callable-out-of-range", {"anchors": lambda X, k, rs: np.array([0, 99])}, ValueError,
     "anchor indices must lie in"),
    ("vectors-width", {"anchors": np.ones((4, 5))}, ValueError,
     "anchors has 5 features but X has 3"),
    ("vectors-nan", {"anchors": np.full((4, 3), np.nan)}, ValueError,
     "Input anchors contains NaN"),
    ("anchors-3d", {"anchors": np.ones((2, 2, 3))}, TypeError, "ndim=3"),
    ("batch_size-zero", {"batch_size": 0}, ValueError, "batch_size == 0, must be >= 1"),
    ("batch_size-float", {"batch_size": 2.5}, TypeError, "batch_size must be None"),
    ("device", {"device": "gpu"}, ValueError, "device='gpu' is not a valid device"),
]


@pytest.mark.parametrize("params,exc,match", [c[1:] for c in BAD_PARAMS],
                         ids=[c[0] for c in BAD_PARAMS])
def test_bad_params(params, exc, match):
    _assert_fit_fails_cleanly(params, GOOD, exc, match)


def test_bad_params_on_tensor_input():
    X = torch.from_numpy(GOOD.copy())
    _assert_fit_fails_cleanly({"n_anchors": 1.5}, X, ValueError, "n_anchors=1.5 as a fraction")
    _assert_fit_fails_cleanly({"anchors": [0, 20]}, X, ValueError, "anchor indices must lie")


def test_stratified_with_wrong_y_fails_cleanly():
    _assert_fit_fails_cleanly({"anchors": "stratified"}, GOOD, ValueError,
                              "y has 5 entries but X has 20 rows", y=np.zeros(5))


@pytest.mark.parametrize("kind", ["numpy", "tensor"])
def test_transform_bad_input(kind):
    conv = (lambda a: a) if kind == "numpy" else (lambda a: torch.from_numpy(np.array(a)))
    proj = RelativeProjector(4, random_state=0)
    with pytest.raises(NotFittedError):
        proj.transform(conv(GOOD))
    proj.fit(conv(GOOD))
    before = dict(_fitted_state(proj))
    with pytest.raises(ValueError, match="X has 2 features, but RelativeProjector is expecting 3"):
        proj.transform(conv(GOOD[:, :2]))
    with pytest.raises(ValueError, match="NaN"):
        proj.transform(conv(np.where(GOOD > 1, np.nan, GOOD)))
    with pytest.raises(ValueError, match="2D"):
        proj.transform(conv(GOOD[0]))
    _assert_same_state(before, _fitted_state(proj))


@pytest.mark.parametrize("center", [True, False])
@pytest.mark.parametrize("metric", ["cosine", "angular"])
def test_zero_rows_and_duplicate_anchors_give_finite_output(backend, center, metric):
    X = _data(n=30, d=5)
    X[[4, 9]] = 0.0
    anchors = np.array([1, 4, 4, 9, 12, 12])  # zero rows and duplicates as anchors
    proj = RelativeProjector(anchors=anchors, metric=metric, center=center)
    proj.fit(backend.asarray(X))
    probe = X.copy()
    if center:
        probe[0] = proj.anchor_mean_  # zero after centering
    else:
        probe[0] = 0.0
    R = backend.to_numpy(proj.transform(backend.asarray(probe)))
    assert np.isfinite(R).all()
    zero = 0.0 if metric == "cosine" else np.pi / 2
    assert_allclose(R[0], zero, atol=1e-12)
    assert_array_equal(R[:, 1], R[:, 2])  # duplicate anchors give duplicate columns
    assert_array_equal(R[:, 4], R[:, 5])
    if not center:
        assert_allclose(R[:, 1], zero, atol=1e-12)  # a zero anchor
        assert_allclose(R[[4, 9]], zero, atol=1e-12)  # zero samples


def test_all_anchors_identical_is_refused_with_centering():
    # centered, they are all the zero vector: every similarity would be 0 (issue 12)
    X = _data(n=20, d=4)
    with pytest.raises(ValueError, match="the 3 anchors are all equal"):
        RelativeProjector(anchors=np.array([3, 3, 3])).fit(X)
    with pytest.raises(ValueError, match="the 2 anchors are all equal"):
        RelativeProjector(anchors=np.array([3, 3]), normalize="standard").fit(X)
    # without centering (or for a distance) they are valid, if redundant, anchors
    R = RelativeProjector(anchors=np.array([3, 3]), center=False).fit(X).transform(X)
    assert np.isfinite(R).all() and np.abs(R).max() > 0
    R = RelativeProjector(anchors=np.array([3, 3]), metric="euclidean").fit(X).transform(X)
    assert np.isfinite(R).all() and np.abs(R).max() > 0


# --------------------------------------------------------------------------
# zero-shot stitching on real data (the paper's protocol, scaled down)
# --------------------------------------------------------------------------
def _hidden(mlp, X):
    return np.maximum(X @ mlp.coefs_[0] + mlp.intercepts_[0], 0.0)


@pytest.fixture(scope="module")
def digits_encoders():
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
    encoders = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for seed in (0, 1):
            encoders.append(MLPClassifier((64,), random_state=seed, max_iter=300)
                            .fit(X_tr, y_tr))
    H_a = (_hidden(encoders[0], X_tr), _hidden(encoders[0], X_te))
    H_b = (_hidden(encoders[1], X_tr), _hidden(encoders[1], X_te))
    return H_a, H_b, y_tr, y_te


@pytest.mark.slow
def test_zero_shot_stitching_on_digits(digits_encoders):
    from sklearn.frozen import FrozenEstimator

    (A_tr, A_te), (B_tr, B_te), y_tr, y_te = digits_encoders
    absolute = LogisticRegression(max_iter=2000).fit(A_tr, y_tr)
    abs_own, abs_stitched = absolute.score(A_te, y_te), absolute.score(B_te, y_te)

    figures = {}
    for metric in ("cosine", "euclidean"):
        proj_a = RelativeProjector(300, metric=metric, random_state=0).fit(A_tr)
        proj_b = RelativeProjector(anchors=proj_a.anchor_indices_, metric=metric).fit(B_tr)
        clf = LogisticRegression(max_iter=2000).fit(proj_a.transform(A_tr), y_tr)
        own = clf.score(proj_a.transform(A_te), y_te)
        stitched = make_pipeline(FrozenEstimator(proj_b), FrozenEstimator(clf)).score(B_te, y_te)
        figures[metric] = (own, stitched)

    print(f"\ndigits stitching: absolute own {abs_own:.3f} stitched {abs_stitched:.3f}; "
          + "; ".join(f"relative {m} own {o:.3f} stitched {s:.3f}"
                      for m, (o, s) in figures.items()))
    assert abs_own > 0.9
    assert abs_stitched <= 0.35
    for metric, (own, stitched) in figures.items():
        assert own >= 0.9, metric
        assert stitched >= 0.90, metric


# --------------------------------------------------------------------------
# issue 12: degenerate anchors, parameters changed after fit, n_anchors > rows
# --------------------------------------------------------------------------
@pytest.mark.parametrize("metric", ["cosine", "angular", "dot"])
def test_single_centered_anchor_raises(backend, metric):
    # it used to return all zeros (a single centered anchor is the zero vector)
    X = backend.asarray(_data(n=30, d=4))
    with pytest.raises(ValueError, match="n_anchors=1 gives 1 anchor.*at least 2 anchors"):
        RelativeProjector(1, metric=metric).fit(X)
    with pytest.raises(ValueError, match="anchors gives 1 anchor"):
        RelativeProjector(anchors=np.array([3]), metric=metric).fit(X)
    # without centering, or for a distance, one anchor is a valid description
    for params in (dict(center=False, metric=metric), dict(metric="euclidean")):
        R = backend.to_numpy(RelativeProjector(1, random_state=0, **params).fit(X).transform(X))
        assert R.shape == (30, 1) and np.abs(R).max() > 0


def test_callable_returning_more_than_n_anchors_raises(backend):
    X = backend.asarray(_data(n=30, d=4))

    def too_many(Xv, n_anchors, random_state):
        return np.arange(n_anchors + 3)

    with pytest.raises(ValueError, match="too_many returned 8 indices for n_anchors=5"):
        RelativeProjector(5, anchors=too_many).fit(X)
    proj = RelativeProjector(5, anchors=lambda Xv, k, rs: np.arange(k - 1)).fit(X)
    assert proj.anchors_.shape[0] == 4  # fewer is the callable's choice


@pytest.mark.parametrize("change", [
    dict(normalize="standard"), dict(normalize="l2"), dict(top_k=30), dict(top_k=5),
    dict(metric="euclidean"), dict(center=False), dict(exponent=2.0), dict(p=3.0),
])
def test_parameters_changed_after_fit_refuse_transform(backend, change):
    # normalize="standard" after fit raised AttributeError; top_k=30 > 10 anchors went
    # unchecked; the other changes silently mixed old fitted state with new parameters
    X = backend.asarray(_data(n=40, d=4))
    proj = RelativeProjector(10, random_state=0).fit(X)
    (name, value), = change.items()
    proj.set_params(**change)
    with pytest.raises(NotFittedError, match=f"fitted with {name}=.*but {name} is now"):
        proj.transform(X)
    if name != "metric":
        with pytest.raises(NotFittedError, match=f"{name}"):
            proj.inverse_transform(np.zeros((2, 10)))
    if change == dict(top_k=30):  # and validates them against the anchors
        with pytest.raises(ValueError, match=r"top_k=30 must lie in \[1, n_anchors=10\]"):
            proj.fit(X)
        return
    R = backend.to_numpy(proj.fit(X).transform(X))  # a new fit takes them
    assert R.shape == (40, 10)


def test_where_and_in_how_many_chunks_may_change_after_fit(backend):
    X = backend.asarray(_data(n=40, d=4))
    proj = RelativeProjector(10, random_state=0).fit(X)
    full = backend.to_numpy(proj.transform(X))
    got = backend.to_numpy(proj.set_params(batch_size=7, device="cpu").transform(X))
    assert_allclose(got, full)


@pytest.mark.parametrize("anchors", ["random", "fps", "kmeans", "callable"])
def test_n_anchors_above_the_rows_takes_every_row_with_a_warning(backend, anchors):
    X = _data(n=20, d=4)
    strategy = (lambda Xv, k, rs: np.arange(k)[::-1]) if anchors == "callable" else anchors
    with pytest.warns(UserWarning, match="n_anchors=300 exceeds the 20 rows of X: every row"):
        proj = RelativeProjector(300, anchors=strategy, random_state=0).fit(backend.asarray(X))
    assert_array_equal(np.sort(proj.anchor_indices_), np.arange(20))
    # parallel anchors: another space of the same 20 samples gets the same rows, in order
    Q = ortho_group.rvs(4, random_state=0)
    with pytest.warns(UserWarning, match="exceeds"):
        other = RelativeProjector(300, anchors=strategy, random_state=0).fit(X @ Q)
    if anchors != "kmeans":  # k-means picks by geometry, the same up to rotation anyway
        assert_array_equal(other.anchor_indices_, proj.anchor_indices_)
    # explicit indices are never truncated: out of range is an error
    with pytest.raises(ValueError, match="anchor indices must lie in"):
        RelativeProjector(anchors=np.arange(25)).fit(X)
    # a fraction or None never warns
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        RelativeProjector(None).fit(X)
        RelativeProjector(1.0).fit(X)

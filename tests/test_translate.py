"""ProcrustesTranslator: known answers, statistics, array kinds, pipelines, bad input."""

import pickle
import warnings

import joblib
import numpy as np
import pytest
import sklearn
import torch
from scipy.stats import ortho_group
from sklearn.base import clone
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_latent import (
    ProcrustesTranslator,
    TranslationStats,
    merge_translation_stats,
    translation_stats,
)
from sklearn_latent import functional as F

METHODS = ("orthogonal", "scaled", "linear", "affine")
SCALINGS = ("isotropic", "standard", "center", None)
CUDA = torch.cuda.is_available()
# The documented under-determination warning, expected where a test uses few rows
# (partial_fit's first chunks) or constant (zero-padded) features on purpose.
UNDERDETERMINED = "ignore:The .* map is determined on only:UserWarning"

# --------------------------------------------------------------------------
# array kinds (local: numpy, torch on CPU, torch on CUDA when present)
# --------------------------------------------------------------------------
KINDS = [
    "numpy",
    "torch-cpu",
    pytest.param(
        "torch-cuda",
        marks=[pytest.mark.cuda, pytest.mark.skipif(not CUDA, reason="needs a CUDA device")],
    ),
]


def as_kind(A, kind):
    if kind == "numpy":
        return A
    return torch.as_tensor(A, device="cuda" if kind == "torch-cuda" else "cpu")


def back(A):
    return A.detach().cpu().numpy() if isinstance(A, torch.Tensor) else np.asarray(A)


def assert_kind(out, kind):
    if kind == "numpy":
        assert isinstance(out, np.ndarray)
    else:
        assert isinstance(out, torch.Tensor)
        assert out.device.type == ("cuda" if kind == "torch-cuda" else "cpu")


def semi_orthogonal(d_x, d_y, seed):
    """(d_x, d_y) with orthonormal rows (d_x <= d_y) or columns (d_x > d_y)."""
    Q = ortho_group.rvs(max(d_x, d_y), random_state=seed)
    return Q[:d_x, :d_y]


def mean_cosine(A, B):
    A, B = back(A), back(B)
    return float(np.mean(np.sum(A * B, 1) / np.linalg.norm(A, axis=1) / np.linalg.norm(B, axis=1)))


def reference_map(X, Y, method, scaling, alpha=0.0):
    """Direct numpy implementation of the paper's formulas on explicitly scaled data."""
    n = X.shape[0]
    if scaling is None:
        mx, my = np.zeros(X.shape[1]), np.zeros(Y.shape[1])
    else:
        mx, my = X.mean(0), Y.mean(0)
    if scaling == "standard":
        sx, sy = X.std(0), Y.std(0)
        sx[sx == 0], sy[sy == 0] = 1.0, 1.0
    elif scaling == "isotropic":  # one std per space: the root of the mean variance
        sx = np.full(X.shape[1], np.sqrt(X.var(0).mean()))
        sy = np.full(Y.shape[1], np.sqrt(Y.var(0).mean()))
    else:
        sx, sy = np.ones(X.shape[1]), np.ones(Y.shape[1])
    Xt, Yt = (X - mx) / sx, (Y - my) / sy
    if method in ("orthogonal", "scaled"):
        U, S, Vt = np.linalg.svd(Xt.T @ Yt, full_matrices=False)
        R = U @ Vt
        if scaling == "isotropic" and method == "orthogonal":
            # the translation gets the target's total variance, d_y in scaled units
            sx = sx * np.sqrt(np.sum((Xt @ R) ** 2) / n / Y.shape[1])
            Xt = (X - mx) / sx
        s = S.sum() / np.sum((Xt @ R) ** 2) if method == "scaled" else 1.0
        return lambda Z: (s * ((Z - mx) / sx) @ R) * sy + my
    bias = method == "affine" and scaling is None
    A = np.hstack([Xt, np.ones((n, 1))]) if bias else Xt
    pen = alpha * np.eye(A.shape[1])
    if bias:
        pen[-1, -1] = 0.0
    W = np.linalg.solve(A.T @ A + pen, A.T @ Yt)

    def apply(Z):
        Zt = (Z - mx) / sx
        if bias:
            Zt = np.hstack([Zt, np.ones((Z.shape[0], 1))])
        return (Zt @ W) * sy + my

    return apply


# --------------------------------------------------------------------------
# scikit-learn conformance
# --------------------------------------------------------------------------
_LABELS = (
    "passes the 1-D integer class labels of make_blobs as y: the translator needs 2-D "
    "paired target embeddings and rejects labels by design (UserWarning + ValueError); "
    "dtype preservation and fit/transform consistency are tested here with a 2-D target"
)


def _expected_failed_checks(estimator):
    return {
        "check_transformer_general": _LABELS,
        "check_transformer_preserve_dtypes": _LABELS,
        "check_transformer_data_not_an_array": _LABELS,
    }


@parametrize_with_checks(
    [ProcrustesTranslator(m) for m in METHODS], expected_failed_checks=_expected_failed_checks
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_tags():
    tags = ProcrustesTranslator().__sklearn_tags__()
    assert tags.estimator_type == "regressor"
    assert tags.transformer_tags is not None
    assert tags.target_tags.required and tags.target_tags.multi_output
    assert not tags.target_tags.single_output


def test_expected_failed_checks_really_are_the_labels_case():
    # The three excluded checks fit on make_blobs' 1-D integer labels: show that
    # this, and only this, is what trips them, and that a 2-D target passes.
    from sklearn.datasets import make_blobs

    X, labels = make_blobs(n_samples=30, centers=2, random_state=0)
    with pytest.warns(UserWarning, match="looks like class labels"):
        with pytest.raises(ValueError, match="2-D paired target"):
            ProcrustesTranslator().fit(X, labels)
    for dtype in (np.float32, np.float64):
        Xd = X.astype(dtype)
        tr = ProcrustesTranslator().fit(Xd, labels[:, None])
        assert tr.transform(Xd).dtype == dtype
        np.testing.assert_allclose(
            tr.transform(Xd), clone(tr).fit_transform(Xd, labels[:, None]), rtol=1e-5
        )


# --------------------------------------------------------------------------
# known answers
# --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "d_x,d_y,scaling",
    [(12, 12, "center"), (12, 12, "standard"), (8, 14, "center"), (14, 8, "center")],
)
def test_orthogonal_recovers_planted_map(d_x, d_y, scaling):
    # (With d_x != d_y the columns of Y = X Q have unequal variances, so the
    # per-feature standardization of scaling="standard" is itself anisotropic
    # and Q is no longer the exact answer: such cases use scaling="center".)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(4000, d_x))
    Q = semi_orthogonal(d_x, d_y, seed=1)
    Y = X @ Q + 0.01 * rng.normal(size=(4000, d_y))
    tr = ProcrustesTranslator(scaling=scaling).fit(X, Y)
    # exact for d_x <= d_y; for d_x > d_y the Procrustes solution is the polar
    # factor of X^T X Q, equal to Q up to the sampling anisotropy of X^T X.
    atol = 0.01 if (scaling == "center" and d_x <= d_y) else 0.08
    np.testing.assert_allclose(tr.map_, Q, atol=atol)
    assert mean_cosine(tr.transform(X), Y) > 0.999
    assert tr.rank_ == min(d_x, d_y)
    # the map really is (semi-)orthogonal
    small = tr.map_ @ tr.map_.T if d_x <= d_y else tr.map_.T @ tr.map_
    np.testing.assert_allclose(small, np.eye(min(d_x, d_y)), atol=1e-12)


@pytest.mark.parametrize("d_x,d_y", [(10, 10), (6, 11)])
def test_isotropic_orthogonal_recovers_a_similarity_of_anisotropic_data(d_x, d_y):
    # y = s x Q + b with features of very unequal variances: one std per space keeps
    # the relation a rotation, so the default recovers it exactly; per-feature
    # standardization ("standard") makes it anisotropic and misses it
    rng = np.random.default_rng(11)
    X = rng.normal(size=(500, d_x)) * np.geomspace(5.0, 0.05, d_x) + 3.0
    Q = semi_orthogonal(d_x, d_y, seed=4)
    Y = 2.5 * X @ Q - 1.0
    tr = ProcrustesTranslator().fit(X, Y)
    assert tr.get_params()["scaling"] == "isotropic"
    np.testing.assert_allclose(tr.transform(X), Y, atol=1e-9)
    np.testing.assert_allclose(tr.map_, Q, atol=1e-10)
    # one std per space; the source's makes the translation's total variance the target's
    np.testing.assert_allclose(tr.y_scale_, np.sqrt(Y.var(0).mean()), rtol=1e-12)
    np.testing.assert_allclose(tr.x_scale_, np.sqrt(X.var(0).sum() / d_y), rtol=1e-12)
    np.testing.assert_allclose(tr.inverse_transform(Y), X, atol=1e-9)
    standard = ProcrustesTranslator(scaling="standard").fit(X, Y)
    assert np.abs(standard.transform(X) - Y).max() > 1.0


@pytest.mark.parametrize("method", ["orthogonal", "scaled", "linear", "affine"])
def test_isotropic_equals_standard_when_every_feature_has_the_same_std(method):
    # the one std is the root of the mean variance: on features of equal variances
    # it is every feature's std, so the two scalings give the same map, fixed
    # ridge alpha included (alpha means the same in both)
    rng = np.random.default_rng(14)
    X = rng.normal(size=(120, 6)) @ rng.normal(size=(6, 6))
    Y = X @ rng.normal(size=(6, 6)) + rng.normal(size=(120, 6))
    X = 3.0 * (X - X.mean(0)) / X.std(0) + 1.0
    Y = 0.5 * (Y - Y.mean(0)) / Y.std(0) - 2.0
    iso = ProcrustesTranslator(method, scaling="isotropic", alpha=5.0).fit(X, Y)
    std = ProcrustesTranslator(method, scaling="standard", alpha=5.0).fit(X, Y)
    np.testing.assert_allclose(iso.coef_, std.coef_, atol=1e-10)
    np.testing.assert_allclose(iso.intercept_, std.intercept_, atol=1e-10)


def test_isotropic_gives_a_narrower_target_its_total_variance():
    # d_x > d_y: the map keeps part of X's variance; the source's scale follows the
    # variance kept, so the translation has the target's total variance (scaling by
    # all of X's variance would shrink it toward the mean)
    rng = np.random.default_rng(12)
    X = rng.normal(size=(400, 12)) * np.linspace(0.5, 2.0, 12)
    Y = X @ rng.normal(size=(12, 3)) + 0.3 * rng.normal(size=(400, 3))
    tr = ProcrustesTranslator().fit(X, Y)
    T = tr.transform(X)
    assert T.var(0).sum() == pytest.approx(Y.var(0).sum(), rel=1e-10)
    R = tr.map_
    kept = np.sum(((X - X.mean(0)) @ R) ** 2) / 400
    np.testing.assert_allclose(tr.x_scale_, np.sqrt(kept / 3), rtol=1e-10)
    assert kept < 0.9 * X.var(0).sum()  # a narrower target keeps part of X's variance
    # it needs X^T X: statistics without it are refused with the reason
    lean = translation_stats(X, Y, gram=False)
    with pytest.raises(ValueError, match=r"scaling='isotropic', 12 -> 3 features\) needs"):
        ProcrustesTranslator().fit_from_stats(lean)
    # ... and a wider target does not (the map keeps all of X's variance)
    ProcrustesTranslator().fit_from_stats(translation_stats(Y, X, gram=False))


def test_isotropic_ignores_constant_and_dead_features():
    # a dead unit (std 1e-33) and a constant one add nothing to the total variance
    # and are never divided by: the translation equals the one without them
    rng = np.random.default_rng(13)
    X = rng.normal(size=(300, 6))
    Y = X @ semi_orthogonal(6, 6, seed=5) + 0.1 * rng.normal(size=(300, 6))
    Xd = np.hstack([X, 1e-33 * rng.normal(size=(300, 1)), np.full((300, 1), 4.0)])
    Yd = np.hstack([Y, np.full((300, 1), -2.0)])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The .* map is determined on only")
        full = ProcrustesTranslator().fit(Xd, Yd)
    ref = ProcrustesTranslator().fit(X, Y)
    np.testing.assert_allclose(full.transform(Xd)[:, :6], ref.transform(X), atol=1e-10)
    np.testing.assert_allclose(full.transform(Xd)[:, 6], -2.0, atol=1e-10)


@pytest.mark.parametrize("d_x,d_y", [(10, 10), (6, 11), (11, 6)])
def test_scaled_recovers_scale_rotation_and_offset(d_x, d_y):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(3000, d_x)) + 5.0
    Q = semi_orthogonal(d_x, d_y, seed=2)
    b = rng.normal(size=d_y) * 10
    Y = 3.5 * X @ Q + b
    tr = ProcrustesTranslator("scaled", scaling="center").fit(X, Y)
    if d_x <= d_y:  # exact: no information is lost
        np.testing.assert_allclose(tr.map_, Q, atol=1e-10)
        assert tr.scale_ == pytest.approx(3.5, rel=1e-10)
        np.testing.assert_allclose(tr.transform(X), Y, atol=1e-9)
    else:  # a projection: the scale uses ||X R||^2, so it stays unbiased
        np.testing.assert_allclose(tr.map_, Q, atol=0.06)
        assert tr.scale_ == pytest.approx(3.5, rel=0.01)
        # the polar factor of X^T X Q is Q only up to the sampling anisotropy of X^T X
        assert mean_cosine(tr.transform(X) - Y.mean(0), Y - Y.mean(0)) > 0.995
    # the orthogonal method cannot absorb the scale: a non-invariance that must show
    plain = ProcrustesTranslator("orthogonal", scaling="center").fit(X, Y)
    err = np.abs(plain.transform(X) - Y).mean()
    assert err > 0.5 * np.abs(Y - Y.mean(0)).mean()


def test_scaled_with_wide_source_divides_by_projected_energy():
    # d_x > d_y: s = trace(S) / ||X R||^2; dividing by ||X||^2 would shrink it
    rng = np.random.default_rng(2)
    X = rng.normal(size=(2000, 20)) * np.linspace(0.5, 3, 20)
    Q = semi_orthogonal(20, 5, seed=3)
    Y = 2.0 * X @ Q
    tr = ProcrustesTranslator("scaled", scaling="center").fit(X, Y)
    Xc = X - X.mean(0)
    U, S, Vt = np.linalg.svd(Xc.T @ (Y - Y.mean(0)), full_matrices=False)
    R = U @ Vt
    assert tr.scale_ == pytest.approx(S.sum() / np.sum((Xc @ R) ** 2), rel=1e-10)
    assert tr.scale_ > 1.5 * S.sum() / np.sum(Xc**2)


@pytest.mark.parametrize("d_x,d_y", [(7, 7), (5, 9), (9, 5)])
def test_affine_and_linear_recover_planted_affine_map(d_x, d_y):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(500, d_x))
    A = rng.normal(size=(d_x, d_y))
    b = rng.normal(size=d_y) + 4.0
    Y = X @ A + b
    for scaling in SCALINGS:
        tr = ProcrustesTranslator("affine", scaling=scaling).fit(X, Y)
        np.testing.assert_allclose(tr.coef_, A, atol=1e-9)
        np.testing.assert_allclose(tr.intercept_, b, atol=1e-9)
    # linear without centering has no bias: it cannot fit the offset
    lin = ProcrustesTranslator("linear", scaling=None).fit(X, Y)
    np.testing.assert_allclose(lin.intercept_, 0.0)
    assert np.abs(lin.transform(X) - Y).max() > 0.5
    # ... but with centering linear == affine
    for scaling in ("standard", "center"):
        lin = ProcrustesTranslator("linear", scaling=scaling).fit(X, Y)
        np.testing.assert_allclose(lin.transform(X), Y, atol=1e-9)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("scaling", SCALINGS)
@pytest.mark.parametrize("d_x,d_y", [(6, 6), (4, 7), (7, 4)])
def test_matches_direct_formulas(method, scaling, d_x, d_y):
    rng = np.random.default_rng(4)
    X = rng.normal(size=(60, d_x)) * rng.uniform(0.5, 4, d_x) + rng.normal(size=d_x) * 3
    Y = X[:, :1] @ rng.normal(size=(1, d_y)) + rng.normal(size=(60, d_y)) + 2.0
    if d_x > d_y:  # a constant feature: zero std -> 1 (keeps X^T Y of full rank min(d_x, d_y))
        X[:, 0] = 1.5
    elif d_x < d_y:
        Y[:, 0] = -2.5
    alpha = 0.3 if method in ("linear", "affine") else 0.0
    tr = ProcrustesTranslator(method, scaling=scaling, alpha=alpha).fit(X, Y)
    Z = rng.normal(size=(9, d_x))
    np.testing.assert_allclose(
        tr.transform(Z), reference_map(X, Y, method, scaling, alpha)(Z), atol=1e-10
    )


def test_ridge_alpha_shrinks_the_map():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(100, 6))
    Y = X @ rng.normal(size=(6, 4))
    norms = [
        np.linalg.norm(ProcrustesTranslator("linear", alpha=a).fit(X, Y).map_)
        for a in (0.0, 10.0, 1000.0)
    ]
    assert norms[0] > norms[1] > norms[2]
    # alpha does not touch the orthogonal methods
    a = ProcrustesTranslator("orthogonal", alpha=0.0).fit(X, Y)
    b = ProcrustesTranslator("orthogonal", alpha=50.0).fit(X, Y)
    np.testing.assert_array_equal(a.coef_, b.coef_)


@pytest.mark.filterwarnings(UNDERDETERMINED)
@pytest.mark.parametrize("d_x,d_y", [(5, 9), (9, 5)])
def test_zero_padding_equivalence(d_x, d_y):
    rng = np.random.default_rng(6)
    X = rng.normal(size=(300, d_x))
    Y = rng.normal(size=(300, d_y)) + X[:, :1]
    rect = ProcrustesTranslator(scaling="center").fit(X, Y)
    d = max(d_x, d_y)
    if d_x < d_y:  # pad the source: identical outputs
        Xp = np.hstack([X, np.zeros((300, d - d_x))])
        square = ProcrustesTranslator(scaling="center").fit(Xp, Y)
        np.testing.assert_allclose(square.transform(Xp), rect.transform(X), atol=1e-10)
        np.testing.assert_allclose(square.map_[:d_x], rect.map_, atol=1e-10)
    else:  # pad the target: the first d_y outputs agree, the rest is zero
        Yp = np.hstack([Y, np.zeros((300, d - d_y))])
        square = ProcrustesTranslator(scaling="center").fit(X, Yp)
        np.testing.assert_allclose(square.transform(X)[:, :d_y], rect.transform(X), atol=1e-10)
        np.testing.assert_allclose(square.map_[:, :d_y], rect.map_, atol=1e-10)
        # ... and the padded (constant) target columns are undetermined: they get
        # nothing, not a random rotation of the source
        assert square.rank_ == d_y
        np.testing.assert_allclose(square.transform(X)[:, d_y:], 0.0, atol=1e-10)


@pytest.mark.parametrize("method", ["orthogonal", "scaled"])
@pytest.mark.parametrize("scaling", SCALINGS)
def test_inverse_transform_round_trips(method, scaling):
    rng = np.random.default_rng(7)
    X = rng.normal(size=(200, 6)) * 2 + 1
    Y = rng.normal(size=(200, 9))
    tr = ProcrustesTranslator(method, scaling=scaling).fit(X, Y)
    np.testing.assert_allclose(tr.inverse_transform(tr.transform(X)), X, atol=1e-10)
    # exact transpose: inverse_coef_ is coef_^T up to the diagonal scalings
    R = tr.map_
    np.testing.assert_allclose(R @ R.T, np.eye(6), atol=1e-12)


def test_inverse_transform_linear_is_pseudo_inverse():
    rng = np.random.default_rng(8)
    X = rng.normal(size=(200, 5))
    Y = rng.normal(size=(200, 8))
    tr = ProcrustesTranslator("linear").fit(X, Y)
    np.testing.assert_allclose(tr.inverse_transform(tr.transform(X)), X, atol=1e-9)
    expected = np.linalg.pinv(tr.map_) / tr.y_scale_[:, None] * tr.x_scale_[None, :]
    np.testing.assert_allclose(tr.inverse_coef_, expected, atol=1e-10)
    # square and invertible: inverse of the forward map
    sq = ProcrustesTranslator("affine").fit(X, Y[:, :5])
    np.testing.assert_allclose(sq.inverse_transform(sq.transform(X)), X, atol=1e-9)


def test_inverse_transform_wide_source_is_a_projection():
    rng = np.random.default_rng(9)
    X = rng.normal(size=(200, 9))
    Y = rng.normal(size=(200, 4))
    tr = ProcrustesTranslator(scaling="center").fit(X, Y)
    T = tr.transform(X)
    back_ = tr.inverse_transform(T)
    assert np.abs(back_ - X).max() > 0.5  # information was dropped
    np.testing.assert_allclose(tr.transform(back_), T, atol=1e-10)  # exact on the image


# --------------------------------------------------------------------------
# sufficient statistics: partial_fit, map-reduce, precision
# --------------------------------------------------------------------------
CUTS = [0, 3, 40, 41, 150, 151, 260, 300]  # 7 uneven chunks, one of a single row


@pytest.mark.filterwarnings(UNDERDETERMINED)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("scaling", SCALINGS)
@pytest.mark.parametrize("d_x,d_y", [(6, 6), (4, 9), (9, 4)])
def test_partial_fit_equals_fit(method, scaling, d_x, d_y):
    rng = np.random.default_rng(10)
    X = rng.normal(size=(300, d_x)) * 3 + 7
    Y = X[:, :1] * rng.normal(size=(1, d_y)) + rng.normal(size=(300, d_y)) - 2
    full = ProcrustesTranslator(method, scaling=scaling, alpha=0.1).fit(X, Y)
    part = ProcrustesTranslator(method, scaling=scaling, alpha=0.1)
    for a, b in zip(CUTS[:-1], CUTS[1:]):
        part.partial_fit(X[a:b], Y[a:b])
    np.testing.assert_allclose(part.coef_, full.coef_, atol=1e-10)
    np.testing.assert_allclose(part.intercept_, full.intercept_, atol=1e-10)
    np.testing.assert_allclose(part.inverse_coef_, full.inverse_coef_, atol=1e-10)
    assert part.n_samples_seen_ == 300 and part.anchor_indices_ is None
    np.testing.assert_allclose(part.transform(X), full.transform(X), atol=1e-10)


@pytest.mark.filterwarnings(UNDERDETERMINED)
def test_partial_fit_single_row_chunks_and_first_row():
    rng = np.random.default_rng(11)
    X, Y = rng.normal(size=(20, 3)), rng.normal(size=(20, 3))
    tr = ProcrustesTranslator()
    with pytest.raises(ValueError, match="at least 2 paired samples"):
        tr.partial_fit(X[:1], Y[:1])
    assert not hasattr(tr, "stats_")  # the failed call left nothing behind
    tr.partial_fit(X[:2], Y[:2])
    for i in range(2, 20):
        tr.partial_fit(X[i : i + 1], Y[i : i + 1])
    np.testing.assert_allclose(tr.coef_, ProcrustesTranslator().fit(X, Y).coef_, atol=1e-10)


def test_float32_with_large_offset_keeps_float64_accuracy():
    rng = np.random.default_rng(12)
    X32 = (rng.normal(size=(3000, 5)) + 1000.0).astype(np.float32)
    Y32 = (X32[:, :3] - 1000.0) * 2 + rng.normal(size=(3000, 3)).astype(np.float32) + 1000.0
    Y32 = Y32.astype(np.float32)
    X64, Y64 = X32.astype(np.float64), Y32.astype(np.float64)
    tr = ProcrustesTranslator("linear")
    for a, b in zip(range(0, 3000, 700), list(range(700, 3000, 700)) + [3000]):
        tr.partial_fit(X32[a:b], Y32[a:b])
    s = tr.stats_
    Xc, Yc = X64 - X64.mean(0), Y64 - Y64.mean(0)
    np.testing.assert_allclose(s.x_mean, X64.mean(0), rtol=1e-14)
    np.testing.assert_allclose(s.xy, Xc.T @ Yc, rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(s.xx, Xc.T @ Xc, rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(s.x_ss, (Xc**2).sum(0), rtol=1e-12)
    # the map equals the float64 fit on the same values
    full = ProcrustesTranslator("linear").fit(X64, Y64)
    np.testing.assert_allclose(tr.coef_, full.coef_, atol=1e-10)
    # fit on float32 goes through the same float64 path
    np.testing.assert_allclose(ProcrustesTranslator("linear").fit(X32, Y32).coef_, full.coef_,
                               atol=1e-10)
    # the test can fail: float32 raw moments lose the centered statistics entirely
    raw = X32.T @ Y32 - 3000 * np.outer(X32.mean(0), Y32.mean(0))
    assert np.abs(raw - Xc.T @ Yc).max() > 1e3 * np.abs(s.xy - Xc.T @ Yc).max()


@pytest.mark.parametrize("kind", KINDS)
def test_map_reduce_statistics_equal_fit(kind):
    rng = np.random.default_rng(13)
    X, Y = rng.normal(size=(400, 7)) + 3, rng.normal(size=(400, 5)) - 1
    blocks = [
        translation_stats(as_kind(X[a:b], kind), as_kind(Y[a:b], kind))
        for a, b in [(0, 50), (50, 333), (333, 400)]
    ]
    assert isinstance(blocks[0], TranslationStats)
    assert isinstance(blocks[0].xy, np.ndarray if kind == "numpy" else torch.Tensor)
    forward = merge_translation_stats(*blocks)
    backward = merge_translation_stats(*blocks[::-1])
    for method in METHODS:
        ref = ProcrustesTranslator(method).fit(X, Y)
        for stats in (forward, backward):
            tr = ProcrustesTranslator(method).fit_from_stats(stats)
            np.testing.assert_allclose(tr.coef_, ref.coef_, atol=1e-10)
            assert tr.n_features_in_ == 7 and tr.n_features_out_ == 5
    # stats_ of two partially fitted translators merge too
    t1 = ProcrustesTranslator("affine").partial_fit(X[:200], Y[:200])
    t2 = ProcrustesTranslator("affine").partial_fit(X[200:], Y[200:])
    both = merge_translation_stats(t1.stats_, t2.stats_)
    merged = ProcrustesTranslator("affine").fit_from_stats(both)
    np.testing.assert_allclose(merged.coef_, ProcrustesTranslator("affine").fit(X, Y).coef_,
                               atol=1e-10)


def test_functional_merge_is_exact_and_gramless_stats_are_enough_for_orthogonal():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(120, 4, generator=g, dtype=torch.float64) + 50
    Y = torch.randn(120, 6, generator=g, dtype=torch.float64)
    whole = F.translation_stats(X, Y)
    part = F.merge_translation_stats(F.translation_stats(X[:17], Y[:17]),
                                     F.translation_stats(X[17:], Y[17:]))
    for a, b in zip(whole, part):
        if isinstance(a, int):
            assert a == b
        else:
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-11)
    lean = F.translation_stats(X, Y, gram=False)
    assert lean.xx is None
    torch.testing.assert_close(F.solve_translation(lean).coef, F.solve_translation(whole).coef)
    with pytest.raises(ValueError, match="gram=True"):
        F.solve_translation(lean, "linear")
    with pytest.raises(ValueError, match="gram=True"):
        ProcrustesTranslator("affine").fit_from_stats(lean)


def test_merge_translation_stats_rejects_bad_input():
    X, Y = np.ones((4, 3)) + np.arange(4)[:, None], np.arange(8.0).reshape(4, 2)
    a = translation_stats(X, Y)
    b = translation_stats(np.ones((4, 2)), Y)
    with pytest.raises(ValueError, match="different widths"):
        merge_translation_stats(a, b)
    with pytest.raises(ValueError, match="at least one"):
        merge_translation_stats()
    with pytest.raises(TypeError, match="TranslationStats"):
        merge_translation_stats({"n": 3})
    bad = a._replace(xy=a.xy * np.nan)
    with pytest.raises(ValueError, match="NaN"):
        ProcrustesTranslator().fit_from_stats(bad)
    with pytest.raises(ValueError, match="shape"):
        ProcrustesTranslator().fit_from_stats(a._replace(x_ss=a.x_ss[:2]))


def test_partial_fit_after_fit_continues_and_checks_widths():
    rng = np.random.default_rng(14)
    X, Y = rng.normal(size=(100, 4)), rng.normal(size=(100, 3))
    tr = ProcrustesTranslator("linear").fit(X[:60], Y[:60])
    tr.partial_fit(X[60:], Y[60:])
    np.testing.assert_allclose(tr.coef_, ProcrustesTranslator("linear").fit(X, Y).coef_,
                               atol=1e-10)
    with pytest.raises(ValueError, match="expecting 3 target features"):
        tr.partial_fit(X[:5], Y[:5, :2])
    with pytest.raises(ValueError, match="expecting 4 features"):
        tr.partial_fit(X[:5, :3], Y[:5])
    orth = ProcrustesTranslator("orthogonal", scaling="center").partial_fit(X, Y)
    orth.set_params(method="linear")
    with pytest.raises(ValueError, match="lack"):
        orth.partial_fit(X, Y)
    # the default isotropic scaling onto a narrower target keeps X^T X: it can continue
    iso = ProcrustesTranslator("orthogonal").partial_fit(X, Y)
    iso.set_params(method="linear").partial_fit(X, Y)


# --------------------------------------------------------------------------
# anchors
# --------------------------------------------------------------------------
def test_anchor_selection_picks_paired_rows():
    rng = np.random.default_rng(15)
    X, Y = rng.normal(size=(200, 5)), rng.normal(size=(200, 6))
    tr = ProcrustesTranslator(n_anchors=40, random_state=0).fit(X, Y)
    idx = tr.anchor_indices_
    assert idx.shape == (40,)
    ref = ProcrustesTranslator().fit(X[idx], Y[idx])
    np.testing.assert_allclose(tr.coef_, ref.coef_, atol=1e-12)
    explicit = ProcrustesTranslator(anchors=idx).fit(X, Y)
    np.testing.assert_allclose(explicit.coef_, ref.coef_, atol=1e-12)
    frac = ProcrustesTranslator(n_anchors=0.25, anchors="fps", random_state=0).fit(X, Y)
    assert frac.anchor_indices_.shape == (50,)
    np.testing.assert_array_equal(ProcrustesTranslator().fit(X, Y).anchor_indices_,
                                  np.arange(200))


def test_stratified_anchors_with_routed_target():
    rng = np.random.default_rng(16)
    X, Y = rng.normal(size=(90, 4)), rng.normal(size=(90, 4))
    labels = np.repeat([0, 1, 2], 30)
    tr = ProcrustesTranslator(n_anchors=30, anchors="stratified", random_state=0)
    tr.fit(X, labels, target=Y)
    assert np.bincount(labels[tr.anchor_indices_]).tolist() == [10, 10, 10]
    with pytest.raises(ValueError, match="needs class labels"):
        ProcrustesTranslator(n_anchors=30, anchors="stratified").fit(X, Y)


# --------------------------------------------------------------------------
# array kinds, dtypes, persistence
# --------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("method", METHODS)
def test_array_kinds_and_dtypes(kind, dtype, method):
    rng = np.random.default_rng(17)
    X = rng.normal(size=(80, 6)).astype(dtype)
    Y = (X @ rng.normal(size=(6, 5)) + 0.1 * rng.normal(size=(80, 5))).astype(dtype)
    ref = ProcrustesTranslator(method).fit(X.astype(np.float64), Y.astype(np.float64))
    tr = ProcrustesTranslator(method).fit(as_kind(X, kind), as_kind(Y, kind))
    for name in ("coef_", "intercept_", "inverse_coef_", "x_mean_", "y_scale_", "map_"):
        assert isinstance(getattr(tr, name), np.ndarray)
    np.testing.assert_allclose(tr.coef_, ref.coef_, atol=1e-8)
    out = tr.transform(as_kind(X, kind))
    assert_kind(out, kind)
    assert back(out).dtype == dtype
    np.testing.assert_array_equal(back(tr.predict(as_kind(X, kind))), back(out))
    tol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(back(out), ref.transform(X.astype(np.float64)), atol=tol)
    inv = tr.inverse_transform(as_kind(Y, kind))
    assert_kind(inv, kind)
    assert back(inv).dtype == dtype
    assert isinstance(tr.score(as_kind(X, kind), as_kind(Y, kind)), float)


def test_mixed_kinds_and_array_likes():
    rng = np.random.default_rng(18)
    X, Y = rng.normal(size=(50, 3)), rng.normal(size=(50, 2))
    ref = ProcrustesTranslator().fit(X, Y)
    a = ProcrustesTranslator().fit(torch.from_numpy(X), Y)
    b = ProcrustesTranslator().fit(X.tolist(), torch.from_numpy(Y))
    np.testing.assert_allclose(a.coef_, ref.coef_)
    np.testing.assert_allclose(b.coef_, ref.coef_)


def test_feature_names_and_pandas_output():
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(19)
    X = pd.DataFrame(rng.normal(size=(40, 3)), columns=["a", "b", "c"])
    Y = rng.normal(size=(40, 2))
    tr = ProcrustesTranslator().fit(X, Y)
    assert tr.feature_names_in_.tolist() == ["a", "b", "c"]
    assert tr.get_feature_names_out().tolist() == [
        "procrustestranslator0", "procrustestranslator1",
    ]
    out = tr.set_output(transform="pandas").transform(X)
    assert isinstance(out, pd.DataFrame)
    assert out.columns.tolist() == tr.get_feature_names_out().tolist()


@pytest.mark.parametrize("kind", ["numpy", "torch-cpu"])
@pytest.mark.parametrize("method", METHODS)
def test_pickle_joblib_clone_round_trips(kind, method, tmp_path):
    rng = np.random.default_rng(20)
    X = rng.normal(size=(60, 5)).astype(np.float32)
    Y = rng.normal(size=(60, 4)).astype(np.float32)
    tr = ProcrustesTranslator(method, n_anchors=40, random_state=0)
    tr.fit(as_kind(X, kind), as_kind(Y, kind))
    ref = back(tr.transform(as_kind(X, kind)))
    ref_inv = back(tr.inverse_transform(as_kind(Y, kind)))
    path = tmp_path / "tr.joblib"
    joblib.dump(tr, path)
    for other in (pickle.loads(pickle.dumps(tr)), joblib.load(path)):
        np.testing.assert_array_equal(back(other.transform(as_kind(X, kind))), ref)
        np.testing.assert_array_equal(back(other.inverse_transform(as_kind(Y, kind))), ref_inv)
        # and the loaded model keeps learning: its statistics pickled too
        other.partial_fit(X[:10], Y[:10])
    refit = clone(tr).fit(as_kind(X, kind), as_kind(Y, kind))
    np.testing.assert_array_equal(back(refit.transform(as_kind(X, kind))), ref)


@pytest.mark.cuda
@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
def test_cuda_fit_pickles_to_cpu_and_matches():
    rng = np.random.default_rng(21)
    X, Y = rng.normal(size=(500, 16)), rng.normal(size=(500, 12))
    cpu = ProcrustesTranslator("scaled").fit(X, Y)
    gpu = ProcrustesTranslator("scaled", device="cuda").fit(X, Y)
    np.testing.assert_allclose(gpu.coef_, cpu.coef_, atol=1e-10)
    out = gpu.transform(torch.as_tensor(X, device="cuda"))
    assert out.device.type == "cuda"
    loaded = pickle.loads(pickle.dumps(gpu))
    np.testing.assert_allclose(loaded.transform(X), cpu.transform(X), atol=1e-10)


# --------------------------------------------------------------------------
# pipelines
# --------------------------------------------------------------------------
def _two_spaces(n=300, d_a=8, d_b=10, seed=22):
    """Two embeddings of the same 3-class data related by a rotation + noise."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.repeat([0, 1, 2], n // 3))
    centers = rng.normal(size=(3, d_a)) * 3
    A = centers[labels] + rng.normal(size=(n, d_a))
    B = A @ semi_orthogonal(d_a, d_b, seed) * 2 + 5 + 0.05 * rng.normal(size=(n, d_b))
    return A, B, labels


def test_pipeline_with_frozen_translator_zero_shot():
    A, B, labels = _two_spaces()
    tr = ProcrustesTranslator(n_anchors=50, random_state=0).fit(A[:150], B[:150])
    clf = LogisticRegression().fit(B[:150], labels[:150])
    pipe = make_pipeline(FrozenEstimator(tr), FrozenEstimator(clf))
    acc = pipe.score(A[150:], labels[150:])
    assert acc == pytest.approx(clf.score(tr.transform(A[150:]), labels[150:]))
    assert acc > 0.95
    assert clf.score(B[150:], labels[150:]) > 0.95
    # fitting the frozen pipeline does not touch the translator
    coef = tr.coef_.copy()
    pipe.fit(A[:10], labels[:10])
    np.testing.assert_array_equal(tr.coef_, coef)


def test_pipeline_without_routing_gives_the_labels_error():
    A, _, labels = _two_spaces()
    pipe = make_pipeline(ProcrustesTranslator(), LogisticRegression())
    with pytest.warns(UserWarning, match="set_fit_request"):
        with pytest.raises(ValueError, match="looks like class labels"):
            pipe.fit(A, labels)


def test_pipeline_with_routed_target_and_grid_search():
    A, B, labels = _two_spaces()
    with sklearn.config_context(enable_metadata_routing=True):
        tr = ProcrustesTranslator().set_fit_request(target=True)
        pipe = make_pipeline(tr, LogisticRegression())
        pipe.fit(A, labels, target=B)
        fitted = pipe[0]
        np.testing.assert_allclose(fitted.coef_, ProcrustesTranslator().fit(A, B).coef_)
        assert pipe.score(A, labels) > 0.95

        # GridSearchCV splits `target` per fold, like X and the labels: a fold
        # that received the whole target would raise the row-count error.
        seen = []

        class Spy(ProcrustesTranslator):
            def fit(self, X, y=None, *, target=None):
                seen.append((len(X), None if target is None else len(target)))
                return super().fit(X, y, target=target)

        spy = Spy().set_fit_request(target=True)
        grid = GridSearchCV(
            make_pipeline(spy, LogisticRegression()),
            {"spy__n_anchors": [20, None]},
            cv=KFold(3),
            error_score="raise",
        )
        grid.fit(A, labels, target=B)
        assert all(nx == nt for nx, nt in seen)
        assert {nx for nx, _ in seen} == {200, 300}
        assert grid.best_score_ > 0.9


def test_grid_search_over_translator_params_on_paired_data():
    rng = np.random.default_rng(23)
    X = rng.normal(size=(240, 6)) * np.linspace(1, 3, 6)
    Y = 1.7 * X @ ortho_group.rvs(6, random_state=3) + 0.05 * rng.normal(size=(240, 6))
    grid = GridSearchCV(
        ProcrustesTranslator(random_state=0),
        {"method": list(METHODS), "n_anchors": [10, 100], "scaling": ["standard", "center"]},
        cv=3,
        error_score="raise",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # few-anchor rank warnings
        grid.fit(X, Y)
    assert len(grid.cv_results_["params"]) == 16
    best = grid.best_params_
    assert best["method"] != "orthogonal" and best["scaling"] == "center"
    assert best["n_anchors"] == 100
    assert grid.best_score_ > 0.99


# --------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------
@pytest.fixture
def paired():
    rng = np.random.default_rng(24)
    return rng.normal(size=(30, 4)), rng.normal(size=(30, 3))


@pytest.mark.parametrize(
    "params,match",
    [
        ({"method": "procrustes"}, "method='procrustes' is not supported"),
        ({"scaling": "minmax"}, "scaling='minmax' is not supported"),
        ({"alpha": -1.0}, "alpha == -1.0, must be >= 0.0"),
        ({"alpha": float("inf")}, "alpha=inf must be finite"),
        ({"n_anchors": 1}, "n_anchors=1 gives 1 sample"),
        ({"n_anchors": 1.5}, r"n_anchors=1.5 as a fraction must lie in \(0, 1\]"),
        ({"anchors": np.zeros((3, 4))}, "explicit anchor vectors"),
        ({"anchors": np.array([0, 99])}, r"must lie in \[0, 30\)"),
    ],
)
def test_bad_params_fail_and_leave_the_estimator_unchanged(paired, params, match):
    X, Y = paired
    tr = ProcrustesTranslator().fit(X, Y)
    before = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in vars(tr).items()}
    tr.set_params(**params)
    with pytest.raises(ValueError, match=match):
        tr.fit(X + 1, Y)
    for k, v in before.items():
        if isinstance(v, np.ndarray):
            np.testing.assert_array_equal(getattr(tr, k), v)
        elif k not in params:
            assert getattr(tr, k) == v or k == "stats_"
    np.testing.assert_array_equal(tr.stats_.xy, before["stats_"].xy)


def test_bad_data(paired):
    X, Y = paired
    tr = ProcrustesTranslator()
    with pytest.raises(ValueError, match="y has 29 rows but X has 30"):
        tr.fit(X, Y[:29])
    with pytest.raises(ValueError, match="target has 29 rows"):
        tr.fit(X, target=Y[:29])
    for bad in (np.nan, np.inf):
        Xb, Yb = X.copy(), Y.copy()
        Xb[3, 1], Yb[5, 2] = bad, bad
        with pytest.raises(ValueError, match="NaN|infinity"):
            tr.fit(Xb, Y)
        with pytest.raises(ValueError, match="NaN|infinity"):
            tr.fit(X, Yb)
        with pytest.raises(ValueError, match="NaN|infinity"):
            tr.fit(torch.from_numpy(X), torch.from_numpy(Yb))
    with pytest.raises(ValueError, match="requires y to be passed"):
        tr.fit(X)
    with pytest.raises(ValueError, match=r"reshape\(-1, 1\)"):
        tr.fit(X, Y[:, 0])
    with pytest.warns(UserWarning, match="looks like class labels"):
        with pytest.raises(ValueError, match="looks like class labels"):
            tr.fit(X, np.arange(30) % 3)
    with pytest.warns(UserWarning, match="looks like class labels"):
        with pytest.raises(ValueError, match="looks like class labels"):
            tr.fit(torch.from_numpy(X), torch.arange(30) % 3)
    assert not hasattr(tr, "coef_")
    tr.fit(X, Y)
    with pytest.raises(ValueError, match="expecting 3 \\(target-space\\) features"):
        tr.inverse_transform(X)
    with pytest.raises(ValueError, match="expecting 4 features"):
        tr.transform(Y)


def test_degenerate_anchors():
    rng = np.random.default_rng(25)
    X, Y = rng.normal(size=(50, 8)), rng.normal(size=(50, 6))
    # fewer anchors than dimensions: the map is not unique -> documented warning
    few = "only 4 of min\\(d_x, d_y\\)=6 .*5 anchors span at most 4"
    with pytest.warns(UserWarning, match=few):
        ProcrustesTranslator(n_anchors=5, random_state=0).fit(X, Y)
    with pytest.warns(UserWarning, match="more than 8 anchors or use alpha > 0"):
        ProcrustesTranslator("linear", n_anchors=5, alpha=0.0, random_state=0).fit(X, Y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tr = ProcrustesTranslator("linear", n_anchors=5, alpha=1.0, random_state=0).fit(X, Y)
        assert tr.rank_ == 8
        ProcrustesTranslator(n_anchors=20, random_state=0).fit(X, Y)
    # the minimum-norm fallback still interpolates the anchors
    with pytest.warns(UserWarning):
        tr = ProcrustesTranslator("linear", scaling=None, n_anchors=5, alpha=0.0,
                                  random_state=0).fit(X, Y)
    idx = tr.anchor_indices_
    np.testing.assert_allclose(tr.transform(X[idx]), Y[idx], atol=1e-9)
    # constant (e.g. dead ReLU) target features: named as the cause, not the anchor count
    Yd = Y.copy()
    Yd[:, :2] = 0.0
    dead = "only 4 of .*0 source and 2 target features are constant"
    with pytest.warns(UserWarning, match=dead) as rec:
        tr = ProcrustesTranslator().fit(X, Yd)
    assert "more than" not in str(rec[0].message) and tr.rank_ == 4
    # constant target: nothing to align
    with pytest.raises(ValueError, match="zero cross-covariance"):
        ProcrustesTranslator().fit(X, np.ones((50, 6)))
    # two anchors with standard scaling work (rank 1, warned)
    with pytest.warns(UserWarning, match="only 1 of"):
        ProcrustesTranslator(n_anchors=2, random_state=0).fit(X, Y)


# --------------------------------------------------------------------------
# real stitching on digits
# --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def digits_encoders():
    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier

    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X / 16, y, test_size=0.3, stratify=y, random_state=0)

    def encoder(width, seed):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            mlp = MLPClassifier((width,), random_state=seed, max_iter=40).fit(Xtr, ytr)
        W, b = mlp.coefs_[0], mlp.intercepts_[0]
        return np.maximum(Xtr @ W + b, 0), np.maximum(Xte @ W + b, 0)

    return {
        "A64": encoder(64, 0), "B64": encoder(64, 1), "C96": encoder(96, 1),
        "ytr": ytr, "yte": yte,
    }


@pytest.mark.slow
@pytest.mark.filterwarnings(UNDERDETERMINED)  # dead ReLU units are constant features
@pytest.mark.parametrize("target,expected", [("B64", 0.970), ("C96", 0.961)])
def test_digits_stitching(digits_encoders, target, expected):
    enc = digits_encoders
    (A_tr, A_te), (T_tr, T_te) = enc["A64"], enc[target]
    ytr, yte = enc["ytr"], enc["yte"]
    clf = LogisticRegression(max_iter=1000).fit(T_tr, ytr)
    own = clf.score(T_te, yte)
    tr = ProcrustesTranslator(n_anchors=300, random_state=0).fit(A_tr, T_tr)
    stitched = make_pipeline(FrozenEstimator(tr), FrozenEstimator(clf)).score(A_te, yte)
    # measured: own 0.972 for both targets; stitched 0.970 (64 -> 64), 0.961 (64 -> 96)
    assert own == pytest.approx(0.972, abs=0.015)
    assert stitched == pytest.approx(expected, abs=0.015)
    assert own - stitched < 0.03
    if target == "B64":  # same width: the untranslated (absolute) baseline is near chance
        absolute = clf.score(A_te, yte)
        assert absolute < 0.2  # measured 0.111
        assert stitched - absolute > 0.8


@pytest.mark.filterwarnings(UNDERDETERMINED)
@pytest.mark.parametrize("method", ["orthogonal", "scaled"])
def test_undetermined_directions_map_to_zero(method):
    # 20 anchors in 50 dimensions determine at most 19 directions; the full
    # U V^T would rotate the other 31 at random (relative error 1.16 on the
    # identity task, worse than predicting the mean); the partial isometry
    # keeps only the determined part.
    rng = np.random.default_rng(3)
    X = rng.normal(size=(200, 50))
    tr = ProcrustesTranslator(method, anchors=np.arange(20)).fit(X, X)
    assert tr.rank_ == 19
    assert np.linalg.matrix_rank(tr.map_) == 19
    err = np.linalg.norm(tr.transform(X) - X) / np.linalg.norm(X)
    # the 19 determined directions are reproduced, the other 31 of 50 map to zero: the
    # relative error is about sqrt(31 / 50) = 0.787 (measured 0.782; the identity's
    # failure modes give >= 1)
    assert abs(err - np.sqrt(31 / 50)) < 0.05
    # the anchors themselves are still reproduced
    np.testing.assert_allclose(tr.transform(X[:20]), X[:20], atol=1e-8)


# --------------------------------------------------------------------------
# alpha="auto": generalized cross-validation from the statistics
# --------------------------------------------------------------------------
def _noisy_pair(n=60, d_x=25, d_y=6, noise=1.0, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d_x)) * rng.uniform(0.5, 2.0, size=d_x) + 3.0
    W = rng.normal(size=(d_x, d_y)) / np.sqrt(d_x)
    Y = X @ W + noise * rng.normal(size=(n, d_y)) - 1.0
    return X, Y


def _brute_gcv(Xt, Yt, alpha, intercept):
    """GCV of ridge on explicit (scaled) data: refit, explicit hat matrix."""
    n = Xt.shape[0]
    A = Xt - Xt.mean(0) if intercept else Xt
    B = Yt - Yt.mean(0) if intercept else Yt
    H = A @ np.linalg.pinv(A.T @ A + alpha * np.eye(A.shape[1])) @ A.T
    rss = np.sum((B - H @ B) ** 2)
    df = np.trace(H) + intercept
    return rss / n / (1 - df / n) ** 2


def _brute_loo(Xt, Yt, alpha, intercept):
    """Leave-one-out squared error of ridge by refitting n times."""
    n, total = Xt.shape[0], 0.0
    for i in range(n):
        keep = np.arange(n) != i
        A, B = Xt[keep], Yt[keep]
        mx, my = (A.mean(0), B.mean(0)) if intercept else (0.0, 0.0)
        W = np.linalg.pinv((A - mx).T @ (A - mx) + alpha * np.eye(A.shape[1])) @ (
            (A - mx).T @ (B - my)
        )
        total += np.sum(((Xt[i] - mx) @ W + my - Yt[i]) ** 2)
    return total / n


@pytest.mark.parametrize("scaling", ["isotropic", "standard", "center", None])
@pytest.mark.parametrize("method", ["linear", "affine"])
def test_gcv_scores_equal_brute_force_and_pick_its_minimum(method, scaling):
    X, Y = _noisy_pair()
    stats = F.translation_stats(torch.as_tensor(X), torch.as_tensor(Y))
    intercept = scaling is not None or method == "affine"
    if scaling == "standard":
        Xt, Yt = X / X.std(0), Y / Y.std(0)
    elif scaling == "isotropic":
        Xt, Yt = X / np.sqrt(X.var(0).mean()), Y / np.sqrt(Y.var(0).mean())
    else:
        Xt, Yt = X, Y
    tr = ProcrustesTranslator(method, scaling=scaling, alpha="auto").fit(X, Y)
    # the same grid, scored by refitting with an explicit hat matrix
    G = (Xt - Xt.mean(0)).T @ (Xt - Xt.mean(0)) if intercept else Xt.T @ Xt
    grid = F.ridge_alpha_grid(torch.as_tensor(np.linalg.eigvalsh(G)), G.shape[0]).numpy()
    brute = np.array([_brute_gcv(Xt, Yt, a, int(intercept)) if a > 0 else np.inf for a in grid])
    ours = F.solve_translation(stats, method, scaling=scaling, alpha="auto")
    assert ours.alpha == tr.alpha_
    np.testing.assert_allclose(tr.alpha_, grid[np.argmin(brute)], rtol=1e-9)
    # and the scores themselves
    from sklearn_latent.functional._translation import _ridge_gcv

    s = F._as_stats(stats)
    Gs = torch.as_tensor(G)
    Cs = torch.as_tensor(
        (Xt - Xt.mean(0)).T @ (Yt - Yt.mean(0)) if intercept else Xt.T @ Yt
    )
    yy = float(np.sum((Yt - Yt.mean(0)) ** 2) if intercept else np.sum(Yt**2))
    _, _, _, alphas, scores = _ridge_gcv(Gs, Cs, yy, s.n, int(intercept))
    finite = np.isfinite(brute)
    np.testing.assert_allclose(scores.numpy()[finite], brute[finite], rtol=1e-6)


def test_gcv_choice_is_near_the_brute_force_leave_one_out_optimum():
    # Fewer anchors than dimensions and noise: the regime where alpha matters.
    X, Y = _noisy_pair(n=40, d_x=30, d_y=4, noise=1.0, seed=1)
    tr = ProcrustesTranslator("affine", scaling="center", alpha="auto").fit(X, Y)
    grid = F.ridge_alpha_grid(torch.as_tensor(np.linalg.eigvalsh(np.cov(X.T) * 39)), 30).numpy()
    loo = np.array([_brute_loo(X, Y, a, True) for a in grid[1::2]])
    chosen = _brute_loo(X, Y, tr.alpha_, True)
    assert tr.alpha_ > 0
    assert chosen <= 1.1 * loo.min()
    # and far better than no penalty at all (the default before alpha="auto")
    assert chosen < 0.5 * _brute_loo(X, Y, grid[1], True)


def test_auto_alpha_is_the_same_for_fit_partial_fit_and_map_reduce(backend):
    X, Y = _noisy_pair(n=90, d_x=40, d_y=5, noise=0.5, seed=2)
    Xb, Yb = backend.asarray(X), backend.asarray(Y)
    full = ProcrustesTranslator("linear", alpha="auto").fit(Xb, Yb)
    part = ProcrustesTranslator("linear", alpha="auto")
    for i in range(0, 90, 25):
        part.partial_fit(Xb[i:i + 25], Yb[i:i + 25])
    stats = merge_translation_stats(*(translation_stats(Xb[i:i + 30], Yb[i:i + 30])
                                      for i in (0, 30, 60)))
    mr = ProcrustesTranslator("linear", alpha="auto").fit_from_stats(stats)
    assert full.alpha_ > 0
    assert part.alpha_ == pytest.approx(full.alpha_, rel=1e-12)
    assert mr.alpha_ == pytest.approx(full.alpha_, rel=1e-12)
    np.testing.assert_allclose(part.coef_, full.coef_, atol=1e-9)
    np.testing.assert_allclose(backend.to_numpy(mr.transform(Xb)),
                               backend.to_numpy(full.transform(Xb)), atol=1e-8)


def test_auto_alpha_through_dask_equals_fit():
    da = pytest.importorskip("dask.array")
    from sklearn_latent import dask as sld

    X, Y = _noisy_pair(n=120, d_x=30, d_y=5, noise=0.5, seed=3)
    tr = sld.fit_translator(ProcrustesTranslator("affine", alpha="auto"),
                            da.from_array(X, chunks=40), da.from_array(Y, chunks=40))
    ref = ProcrustesTranslator("affine", alpha="auto").fit(X, Y)
    assert tr.alpha_ == pytest.approx(ref.alpha_, rel=1e-12)
    np.testing.assert_allclose(tr.coef_, ref.coef_, atol=1e-9)


def test_auto_alpha_picks_zero_on_exact_overdetermined_maps():
    X = np.random.default_rng(4).normal(size=(200, 6))
    W = np.random.default_rng(5).normal(size=(6, 3))
    tr = ProcrustesTranslator("affine", alpha="auto").fit(X, X @ W + 2.0)
    assert tr.alpha_ == 0.0
    np.testing.assert_allclose(tr.transform(X), X @ W + 2.0, atol=1e-9)


def test_orthogonal_methods_ignore_alpha_and_report_zero():
    X, Y = _noisy_pair()
    tr = ProcrustesTranslator("orthogonal", alpha="auto").fit(X, Y)
    assert tr.alpha_ == 0.0


# --------------------------------------------------------------------------
# method="lowrank"
# --------------------------------------------------------------------------
def test_lowrank_recovers_a_planted_low_rank_affine_map(backend):
    rng = np.random.default_rng(6)
    X = rng.normal(size=(400, 20)) + 5.0
    W = rng.normal(size=(20, 3)) @ rng.normal(size=(3, 12))  # rank 3
    Y = X @ W - 4.0 + 0.01 * rng.normal(size=(400, 12))
    tr = ProcrustesTranslator("lowrank", rank=3, scaling="center").fit(
        backend.asarray(X), backend.asarray(Y)
    )
    assert np.linalg.matrix_rank(tr.coef_, tol=1e-8) == 3
    np.testing.assert_allclose(tr.coef_, W, atol=0.01)
    out = backend.to_numpy(tr.transform(backend.asarray(X)))
    assert np.abs(out - (X @ W - 4.0)).max() < 0.05
    # a rank-2 map cannot: it loses the third direction
    tr2 = ProcrustesTranslator("lowrank", rank=2, scaling="center").fit(X, Y)
    assert np.abs(tr2.transform(X) - Y).mean() > 10 * np.abs(out - Y).mean()


@pytest.mark.parametrize("scaling", ["isotropic", "standard", "center", None])
@pytest.mark.parametrize("d_x,d_y", [(10, 6), (6, 10)])
def test_lowrank_at_full_rank_equals_affine(scaling, d_x, d_y):
    X, Y = _noisy_pair(n=80, d_x=d_x, d_y=d_y, noise=0.3, seed=7)
    full = ProcrustesTranslator("lowrank", rank=min(d_x, d_y), scaling=scaling, alpha=0.5)
    ref = ProcrustesTranslator("affine", scaling=scaling, alpha=0.5).fit(X, Y)
    full.fit(X, Y)
    np.testing.assert_allclose(full.coef_, ref.coef_, atol=1e-9)
    np.testing.assert_allclose(full.intercept_, ref.intercept_, atol=1e-9)


def test_lowrank_is_the_best_rank_r_least_squares_map_and_inverts_on_its_image():
    X, Y = _noisy_pair(n=300, d_x=8, d_y=7, noise=0.5, seed=8)
    tr = ProcrustesTranslator("lowrank", rank=2, scaling="center", alpha=0.0).fit(X, Y)
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    # classical reduced-rank regression: OLS fitted values projected on their top-2 PCs
    W = np.linalg.lstsq(Xc, Yc, rcond=None)[0]
    _, _, Vt = np.linalg.svd(Xc @ W, full_matrices=False)
    np.testing.assert_allclose(tr.coef_, W @ Vt[:2].T @ Vt[:2], atol=1e-9)
    Z = tr.transform(X)
    np.testing.assert_allclose(tr.transform(tr.inverse_transform(Z)), Z, atol=1e-8)


def test_lowrank_partial_fit_equals_fit():
    X, Y = _noisy_pair(n=120, d_x=9, d_y=5, noise=0.3, seed=9)
    ref = ProcrustesTranslator("lowrank", rank=2, alpha="auto").fit(X, Y)
    tr = ProcrustesTranslator("lowrank", rank=2, alpha="auto")
    for i in range(0, 120, 50):
        tr.partial_fit(X[i:i + 50], Y[i:i + 50])
    np.testing.assert_allclose(tr.coef_, ref.coef_, atol=1e-9)


@pytest.mark.parametrize(
    "params,err,match",
    [
        ({"method": "lowrank"}, ValueError, "needs rank="),
        ({"method": "lowrank", "rank": 0}, ValueError, "rank == 0, must be >= 1"),
        ({"method": "lowrank", "rank": 2.5}, TypeError, "rank must be an instance of int"),
        ({"method": "lowrank", "rank": True}, TypeError, "rank must be an int"),
        ({"method": "lowrank", "rank": 7}, ValueError, r"rank=7 exceeds min\(d_x, d_y\)=5"),
        ({"method": "linear", "alpha": "best"}, ValueError, "alpha='best' must be"),
    ],
)
def test_lowrank_and_alpha_bad_params(params, err, match):
    X, Y = _noisy_pair(n=30, d_x=6, d_y=5)
    with pytest.raises(err, match=match):
        ProcrustesTranslator(**params).fit(X, Y)


# --------------------------------------------------------------------------
# float32 with offsets, predict's kind, statistics checks
# --------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["orthogonal", "affine"])
@pytest.mark.parametrize("offset", [0.0, 1e2, 1e4, 1e6])
def test_float32_transform_is_as_accurate_as_its_inputs(backend, method, offset):
    rng = np.random.default_rng(10)
    X = (rng.normal(size=(300, 12)) + offset).astype(np.float32)
    Y = (rng.normal(size=(300, 12)) @ rng.normal(size=(12, 12))).astype(np.float32)
    Y = (X.astype(np.float64) - offset) @ rng.normal(size=(12, 12)) + 0.1 * Y + 3.0
    tr = ProcrustesTranslator(method, scaling="center").fit(X.astype(np.float64), Y)
    # the float64 computation on the same float32 values is the reference
    ref = tr.transform(X.astype(np.float64))
    out = backend.to_numpy(tr.transform(backend.asarray(X)))
    assert out.dtype == np.float32
    eps = np.finfo(np.float32).eps
    # a few ulps of the output's magnitude, whatever the input offset
    assert np.abs(out - ref).max() <= 64 * eps * np.abs(ref).max()
    back_ref = tr.inverse_transform(ref.astype(np.float32).astype(np.float64))
    back = backend.to_numpy(tr.inverse_transform(backend.asarray(ref.astype(np.float32))))
    assert np.abs(back - back_ref).max() <= 64 * eps * np.abs(back_ref).max()


def test_predict_returns_arrays_under_pandas_output():
    pd = pytest.importorskip("pandas")
    X, Y = _noisy_pair(n=40, d_x=5, d_y=3)
    tr = ProcrustesTranslator().set_output(transform="pandas").fit(X, Y)
    assert isinstance(tr.transform(X), pd.DataFrame)
    pred = tr.predict(X)
    assert isinstance(pred, np.ndarray)
    np.testing.assert_allclose(pred, tr.transform(X).to_numpy())


def test_fit_from_stats_rejects_negative_sums_of_squares():
    X, Y = _noisy_pair(n=40, d_x=5, d_y=3)
    stats = translation_stats(X, Y)
    bad = stats._replace(y_ss=-stats.y_ss)
    with pytest.raises(ValueError, match="y_ss has negative entries"):
        ProcrustesTranslator().fit_from_stats(bad)
    bad = stats._replace(x_ss=np.where(np.arange(5) == 2, -1.0, stats.x_ss))
    with pytest.raises(ValueError, match="x_ss has negative entries"):
        merge_translation_stats(stats, bad)
    xx = stats.xx.copy()
    xx[0, 0] = -1.0
    with pytest.raises(ValueError, match="xx has a negative diagonal"):
        ProcrustesTranslator("linear").fit_from_stats(stats._replace(xx=xx))


@pytest.mark.filterwarnings(UNDERDETERMINED)
def test_dead_columns_are_never_divided_by():
    # a dead unit (std 1e-33) of a real encoder: standard scaling used to blow it up
    rng = np.random.default_rng(11)
    X = rng.normal(size=(200, 8))
    Y = X @ ortho_group.rvs(8, random_state=1)
    Y[:, 3] = 1e-33 * rng.normal(size=200)
    tr = ProcrustesTranslator(scaling="standard").fit(X, Y)
    assert tr.y_scale_[3] == 1.0
    assert np.abs(tr.transform(X)[:, 3]).max() < 1e-6


# --------------------------------------------------------------------------
# lazy solve after partial_fit
# --------------------------------------------------------------------------
def test_partial_fit_solves_lazily_with_the_same_attributes(tmp_path):
    from sklearn.utils.validation import check_is_fitted

    from sklearn_latent import load, save

    X, Y = _noisy_pair(n=100, d_x=7, d_y=5, noise=0.2)
    ref = ProcrustesTranslator("affine", alpha="auto").fit(X, Y)
    tr = ProcrustesTranslator("affine", alpha="auto")
    tr.partial_fit(X[:50], Y[:50]).partial_fit(X[50:], Y[50:])
    assert "coef_" not in vars(tr)  # nothing solved yet
    check_is_fitted(tr)
    assert tr.get_params()["alpha"] == "auto"
    copies = [pickle.loads(pickle.dumps(tr)), clone(tr)]
    save(tr, tmp_path / "m.skl")
    copies.append(load(tmp_path / "m.skl"))
    for name in ("coef_", "intercept_", "inverse_coef_", "map_", "alpha_", "rank_", "x_mean_"):
        np.testing.assert_allclose(getattr(tr, name), getattr(ref, name), atol=1e-10)
    assert "coef_" in vars(tr)  # solved once, then kept
    for c in copies[:1] + copies[2:]:
        np.testing.assert_allclose(c.transform(X), ref.transform(X), atol=1e-10)
    assert not hasattr(copies[1], "coef_")  # the clone is unfitted
    with pytest.raises(AttributeError):
        tr.no_such_attribute_
    # a new chunk invalidates the solved map
    tr.partial_fit(X[:10], Y[:10])
    assert "coef_" not in vars(tr)
    assert tr.n_samples_seen_ == 110

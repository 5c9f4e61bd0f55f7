"""InverseRelativeProjector, RelativeTranslator and the pruning kernels of functional."""

import pickle
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.linalg import orthogonal_procrustes
from scipy.stats import ortho_group
from sklearn.base import clone
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import (
    check_dataframe_column_names_consistency,
    check_set_output_transform,
    check_transformer_get_feature_names_out,
    parametrize_with_checks,
)

from sklearn_latent import InverseRelativeProjector, RelativeProjector, RelativeTranslator
from sklearn_latent import functional as F

CUDA = torch.cuda.is_available()


def row_cosines(A, B):
    A, B = np.asarray(A, dtype=np.float64), np.asarray(B, dtype=np.float64)
    return (A * B).sum(1) / np.linalg.norm(A, axis=1) / np.linalg.norm(B, axis=1)


def gaussian(n=400, d=12, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).normal(size=(n, d)).astype(dtype)


class _AsManyAnchorsAsFeatures:
    """Anchor callable for scikit-learn's checks: k = d (at least 2), so the
    checks' ``fit(X).transform(X)`` hands transform a valid (n, k) input.

    A class with a fixed repr, so test ids are the same in every pytest-xdist worker.
    """

    def __call__(self, X, n_anchors, random_state):
        n, d = X.shape
        return np.arange(min(n, max(2, d)))

    def __repr__(self):
        return "as_many_anchors_as_features"


as_many_anchors_as_features = _AsManyAnchorsAsFeatures()


# --------------------------------------------------------------------------
# scikit-learn API
# --------------------------------------------------------------------------
# InverseRelativeProjector.transform takes (n, n_anchors) relative
# representations, not (n, n_features_in_) samples of the fitted space.  The
# common checks call fit(X).transform(X) on the same X, so they run on
# instances with as many anchors as features: then X is a valid input of
# transform, and every check (including the n_features_in_ error message,
# which names the n_anchors columns transform expects) runs for real.
_LABELS = (
    "passes the 1-D integer class labels of make_blobs as y: RelativeTranslator needs "
    "the paired target embeddings and refuses labels (ValueError), as ProcrustesTranslator "
    "does; dtype preservation and fit/transform consistency are tested with a 2-D target "
    "in test_translator_keeps_dtype_and_fit_transform_consistency"
)


def _expected_failed_checks(estimator):
    if not isinstance(estimator, RelativeTranslator):
        return {}
    return {
        "check_transformer_general": _LABELS,
        "check_transformer_preserve_dtypes": _LABELS,
        "check_transformer_data_not_an_array": _LABELS,
    }


@parametrize_with_checks(
    [
        InverseRelativeProjector(n_anchors=None, anchors=as_many_anchors_as_features),
        InverseRelativeProjector(
            n_anchors=None, anchors=as_many_anchors_as_features, prune_threshold=0.5,
            n_subspaces=2, random_state=0,
        ),
        RelativeTranslator(n_anchors=0.5, random_state=0),
        RelativeTranslator(n_anchors=0.5, prune_threshold=0.3, alpha=1e-3, random_state=0),
    ],
    expected_failed_checks=_expected_failed_checks,
)
@pytest.mark.filterwarnings("ignore:The inverse relative projection is determined:UserWarning")
@pytest.mark.filterwarnings("ignore:The normalized anchors of:UserWarning")
def test_sklearn_compatible(estimator, check):
    # the checks' tiny random data leave the inverse under-determined (warned)
    check(estimator)


@pytest.mark.parametrize(
    "estimator",
    [
        InverseRelativeProjector(n_anchors=None, anchors=as_many_anchors_as_features),
        RelativeTranslator(n_anchors=0.5, random_state=0),
    ],
    ids=["irp", "translator"],
)
@pytest.mark.parametrize("check", [check_transformer_get_feature_names_out,
                                   check_set_output_transform])
def test_feature_name_checks(estimator, check):
    labels_check = check is check_transformer_get_feature_names_out
    if isinstance(estimator, RelativeTranslator) and labels_check:
        # that check fits on make_blobs' 1-D integer labels, refused as y; the same
        # assertions with a 2-D target:
        X = gaussian(30, 4)
        tr = clone(estimator).fit(X, gaussian(30, 3, seed=1))
        names = tr.get_feature_names_out()
        assert names.tolist() == [f"relativetranslator{j}" for j in range(3)]
        assert len(names) == tr.transform(X).shape[1]
        with pytest.raises(ValueError, match="input_features should have length"):
            tr.get_feature_names_out(["a", "b"])
        return
    check(type(estimator).__name__, estimator)


def test_translator_dataframe_column_names():
    pytest.importorskip("pandas")
    check_dataframe_column_names_consistency(
        "RelativeTranslator", RelativeTranslator(n_anchors=0.5, random_state=0)
    )


def test_irp_output_is_named_after_the_fitted_space():
    # transform's input is R (one column per anchor), so the fitted feature
    # names describe the output, not the input.
    pd = pytest.importorskip("pandas")
    Y = pd.DataFrame(gaussian(100, 5), columns=list("vwxyz"))
    irp = InverseRelativeProjector(20, random_state=0).fit(Y)
    assert irp.get_feature_names_out().tolist() == list("vwxyz")
    R = RelativeProjector(anchors=irp.anchor_indices_).fit(Y.to_numpy()).transform(Y.to_numpy())
    out = irp.set_output(transform="pandas").transform(pd.DataFrame(R))
    assert list(out.columns) == list("vwxyz")
    np.testing.assert_allclose(out.to_numpy(),
                               irp.set_output(transform="default").transform(R))


# --------------------------------------------------------------------------
# known answers
# --------------------------------------------------------------------------
@pytest.mark.parametrize("center", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trip_in_one_space(center, dtype, backend):
    X = gaussian(dtype=dtype) + (2.0 if center else 0.0)
    rp = RelativeProjector(48, center=center, random_state=0).fit(backend.asarray(X))
    irp = InverseRelativeProjector(anchors=rp.anchor_indices_, center=center,
                                   alpha=0.0).fit(
        backend.asarray(X))
    X_hat = irp.transform(rp.transform(backend.asarray(X)))
    assert type(X_hat) is type(backend.asarray(X)) and X_hat.shape == X.shape
    assert X_hat.dtype in (np.dtype(dtype), torch.float32 if dtype == np.float32
                           else torch.float64)
    mu = irp.anchor_mean_ if center else 0.0
    assert row_cosines(backend.to_numpy(X_hat) - mu, X - mu).min() > 0.99
    # the output norm is the mean anchor norm of the fitted space
    np.testing.assert_allclose(np.linalg.norm(backend.to_numpy(X_hat) - mu, axis=1),
                               irp.mean_anchor_norm_, rtol=1e-4)
    # same formula as RelativeProjector.inverse_transform (shared kernels)
    X_rp = rp.inverse_transform(rp.transform(backend.asarray(X)))
    np.testing.assert_allclose(backend.to_numpy(X_hat), backend.to_numpy(X_rp),
                               rtol=1e-4, atol=1e-4)


def test_planted_rotation_across_spaces():
    X = gaussian(500, 16)
    Q = ortho_group.rvs(16, random_state=1)
    Y = 3.0 * X @ Q + np.linspace(-2, 2, 16)
    src = RelativeProjector(64, random_state=0).fit(X)
    tgt = InverseRelativeProjector(anchors=src.anchor_indices_, alpha=0.0).fit(Y)
    translate = make_pipeline(FrozenEstimator(src), FrozenEstimator(tgt))
    Y_hat = translate.transform(X)
    mu = tgt.anchor_mean_
    assert row_cosines(Y_hat - mu, Y - mu).min() > 0.999
    # the absolute vectors are not comparable across the spaces
    assert np.abs(row_cosines(X, Y)).mean() < 0.5
    # the one-estimator form gives the same map
    tr = RelativeTranslator(anchors=src.anchor_indices_).fit(X, Y)
    np.testing.assert_allclose(tr.predict(X), Y_hat, rtol=1e-10, atol=1e-10)
    assert tr.score(X, Y) > 0.9


@pytest.mark.parametrize("alpha", [0.0, 0.3])
def test_transform_is_the_least_squares_solution(alpha):
    rng = np.random.default_rng(0)
    Y = rng.normal(size=(200, 6)) + 1.0
    irp = InverseRelativeProjector(30, alpha=alpha, random_state=0).fit(Y)
    R = rng.uniform(-1, 1, size=(25, 30))
    B = Y[irp.anchor_indices_] - Y[irp.anchor_indices_].mean(0)
    B_hat = B / np.linalg.norm(B, axis=1, keepdims=True)
    # argmin ||B_hat y - r||^2 + alpha ||y||^2, written independently
    dirs = np.linalg.solve(B_hat.T @ B_hat + alpha * np.eye(6), B_hat.T @ R.T).T
    expected = dirs / np.linalg.norm(dirs, axis=1, keepdims=True)
    expected = expected * np.linalg.norm(B, axis=1).mean() + Y[irp.anchor_indices_].mean(0)
    np.testing.assert_allclose(irp.transform(R), expected, rtol=1e-9, atol=1e-9)
    unit = clone(irp).set_params(rescale=None).fit(Y).transform(R)
    np.testing.assert_allclose(np.linalg.norm(unit - irp.anchor_mean_, axis=1), 1.0)


def test_subspaces_average_the_pruned_reconstructions():
    rng = np.random.default_rng(1)
    Y = rng.normal(size=(300, 8)) @ rng.normal(size=(8, 8))  # correlated anchors
    irp = InverseRelativeProjector(60, prune_threshold=0.4, n_subspaces=5, alpha=0.0,
                                   random_state=0).fit(Y)
    assert len(irp.anchor_subsets_) == 5 == irp.condition_numbers_.shape[0]
    starts = [S[0] for S in irp.anchor_subsets_]
    assert len(set(starts)) == 5
    assert irp.inverse_.shape == (sum(len(S) for S in irp.anchor_subsets_), 8)
    R = rng.uniform(-1, 1, size=(10, 60))
    B_hat = irp.normalized_anchors_
    recon = []
    for S in irp.anchor_subsets_:
        cond = np.linalg.cond(B_hat[S])
        assert cond == pytest.approx(irp.condition_numbers_[len(recon)], rel=1e-6)
        # every kept pair is well separated: |cos| <= 1 - delta
        G = np.abs(B_hat[S] @ B_hat[S].T) - np.eye(len(S))
        assert G.max() <= 0.6 + 1e-12
        dirs = np.linalg.lstsq(B_hat[S], R[:, S].T, rcond=None)[0].T
        recon.append(dirs / np.linalg.norm(dirs, axis=1, keepdims=True))
    # the average of the unit reconstructions, renormalized, then rescaled
    avg = np.mean(recon, axis=0)
    avg /= np.linalg.norm(avg, axis=1, keepdims=True)
    expected = avg * irp.mean_anchor_norm_ + irp.anchor_mean_
    np.testing.assert_allclose(irp.transform(R), expected, rtol=1e-8, atol=1e-8)
    # deterministic under random_state, different starts under another seed
    again = clone(irp).fit(Y)
    for a, b in zip(again.anchor_subsets_, irp.anchor_subsets_):
        np.testing.assert_array_equal(a, b)
    other = clone(irp).set_params(random_state=1).fit(Y)
    assert [S[0] for S in other.anchor_subsets_] != starts


def test_pruning_conditions_the_anchor_matrix():
    # a direction the anchors hardly span makes the full inverse ill-conditioned
    rng = np.random.default_rng(0)
    Y = rng.normal(size=(300, 8)) * np.r_[np.ones(7), 1e-4]
    full = InverseRelativeProjector(64, alpha=0.0, random_state=0).fit(Y)
    pruned = clone(full).set_params(prune_threshold=0.7, n_subspaces=4).fit(Y)
    assert full.condition_numbers_[0] > 1e3
    assert pruned.condition_numbers_.max() < 5
    assert all(len(S) < 8 for S in pruned.anchor_subsets_)


def test_coincident_anchors_warn_and_return_their_mean():
    Y = np.ones((20, 3))
    for params in ({}, {"prune_threshold": 0.5, "n_subspaces": 2}):
        irp = InverseRelativeProjector(5, random_state=0, **params)
        with pytest.warns(UserWarning, match="all anchors coincide"):
            irp.fit(Y)
        out = irp.transform(np.random.default_rng(0).uniform(size=(4, 5)))
        np.testing.assert_allclose(out, np.ones((4, 3)))


@settings(max_examples=40, deadline=None)
@given(
    k=st.integers(2, 40), d=st.integers(1, 10), delta=st.floats(0.05, 1.0),
    seed=st.integers(0, 2**16),
)
def test_prune_anchors_greedy_farthest_point(k, d, delta, seed):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(k, d))
    A[rng.random(k) < 0.1] = 0.0  # zero rows are never selected
    A_hat = F._safe_normalize(torch.from_numpy(A))
    start = int(rng.integers(k))
    if float(A_hat[start].norm()) == 0:
        return
    kept = F.prune_anchors(A_hat, delta, start).numpy()
    U = A_hat.numpy()
    dist = 1.0 - np.abs(U @ U.T)
    assert kept[0] == start and len(set(kept)) == len(kept)
    assert np.all(np.linalg.norm(U[kept], axis=1) > 0.5)
    # every kept pair is at least delta apart ...
    sub = dist[np.ix_(kept, kept)] + 2 * np.eye(len(kept))
    assert sub.min() >= delta - 1e-12
    # ... each was the farthest remaining anchor when picked ...
    for step in range(1, len(kept)):
        gaps = dist[:, kept[:step]].min(axis=1)
        gaps[kept[:step]] = -np.inf
        gaps[np.linalg.norm(U, axis=1) < 0.5] = -np.inf
        assert gaps[kept[step]] >= gaps.max() - 1e-12
    # ... and no remaining non-zero anchor could still be added
    rest = np.setdiff1d(np.flatnonzero(np.linalg.norm(U, axis=1) > 0.5), kept)
    if rest.size:
        assert dist[np.ix_(rest, kept)].min(axis=1).max() < delta


# --------------------------------------------------------------------------
# model selection on paired data
# --------------------------------------------------------------------------
def mean_paired_cosine(estimator, X, Y):
    """Scorer: mean cosine between translated and true target rows."""
    return float(row_cosines(estimator.predict(X), Y).mean())


def test_grid_search_tunes_pruning_on_paired_data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 10)) @ rng.normal(size=(10, 10))
    Y = np.tanh(X @ rng.normal(size=(10, 8)) / 3) + 0.05 * rng.normal(size=(300, 8))
    grid = [
        {"prune_threshold": [None], "n_anchors": [20, 60]},
        {"prune_threshold": [0.3, 0.6], "n_subspaces": [1, 4], "n_anchors": [20, 60]},
    ]
    for scoring in (mean_paired_cosine, None):
        search = GridSearchCV(RelativeTranslator(random_state=0), grid, cv=3,
                              scoring=scoring, error_score="raise").fit(X, Y)
        scores = search.cv_results_["mean_test_score"]
        assert scores.shape == (10,) and np.all(np.isfinite(scores))
        assert np.ptp(scores) > 0.01  # the parameters matter
        assert search.best_score_ == scores.max()
    assert search.best_estimator_.score(X, Y) > 0.3


# --------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "params, error, match",
    [
        (dict(prune_threshold=0.0), ValueError, "prune_threshold == 0.0"),
        (dict(prune_threshold=1.5), ValueError, "prune_threshold == 1.5"),
        (dict(prune_threshold=-0.1), ValueError, "prune_threshold == -0.1"),
        (dict(prune_threshold=0.7, n_subspaces=0), ValueError, "n_subspaces == 0"),
        (dict(n_subspaces=2.5), TypeError, "n_subspaces"),
        (dict(n_subspaces=4), ValueError, "n_subspaces=4 needs prune_threshold"),
        (dict(prune_threshold=0.5, n_subspaces=50), ValueError, "n_subspaces=50 exceeds"),
        (dict(alpha=-1.0), ValueError, "alpha == -1.0"),
        (dict(rescale="max"), ValueError, "rescale='max'"),
        (dict(n_anchors=1.5), ValueError, r"n_anchors=1.5 as a fraction must lie in \(0, 1\]"),
        (dict(n_anchors=1), ValueError, "at least 2 anchors"),
    ],
)
def test_bad_params_leave_estimator_unchanged(params, error, match):
    Y = gaussian(200, 6)
    irp = InverseRelativeProjector(30, random_state=0).fit(Y)
    before = {k: v for k, v in irp.__dict__.items() if k.endswith("_")}
    with pytest.raises(error, match=match):
        irp.set_params(**params).fit(Y)
    after = {k: v for k, v in irp.__dict__.items() if k.endswith("_")}
    assert after.keys() == before.keys()
    assert all(after[k] is before[k] for k in before)


def test_bad_relative_input(backend):
    Y = gaussian(200, 6)
    irp = InverseRelativeProjector(30, random_state=0).fit(backend.asarray(Y))
    R = np.random.default_rng(0).uniform(-1, 1, size=(5, 30))
    with pytest.raises(ValueError, match="X has 6 features, but InverseRelativeProjector is "
                                         "expecting 30 features"):
        irp.transform(backend.asarray(Y))  # absolute vectors instead of R
    bad = R.copy()
    bad[1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        irp.transform(backend.asarray(bad))
    Y_nan = Y.copy()
    Y_nan[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        clone(irp).fit(backend.asarray(Y_nan))
    out = irp.transform(backend.asarray(R))
    assert type(out) is type(backend.asarray(R)) and out.shape == (5, 6)
    assert np.isfinite(backend.to_numpy(out)).all()


def test_translator_bad_input():
    X, Y = gaussian(100, 6), gaussian(100, 4, seed=1)
    tr = RelativeTranslator(20, random_state=0)
    with pytest.raises(ValueError, match="requires y to be passed"):
        tr.fit(X)
    with pytest.raises(ValueError, match="y has 99 rows but X has 100"):
        tr.fit(X, Y[:99])
    with pytest.raises(ValueError, match="'stratified' needs class labels"):
        clone(tr).set_params(anchors="stratified").fit(X, Y)
    with pytest.raises(ValueError, match="ndim=2"):
        clone(tr).set_params(anchors=X[:10]).fit(X, Y)
    for labels in (np.arange(100) % 3, np.arange(100) % 2 == 0, torch.arange(100) % 3):
        with pytest.raises(ValueError, match="looks like class labels"):
            clone(tr).fit(X, labels)
    Y_nan = Y.copy()
    Y_nan[5, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        clone(tr).fit(X, Y_nan)
    fitted = clone(tr).fit(X, Y)
    with pytest.raises(ValueError, match="X has 5 features"):
        fitted.predict(X[:, :5])
    assert fitted.predict(X).shape == (100, 4)
    assert pickle.loads(pickle.dumps(fitted)).predict(X) == pytest.approx(fitted.predict(X))


def test_batches_and_devices(backend):
    X, Y = gaussian(300, 10), gaussian(300, 7, seed=1) + 1
    tr = RelativeTranslator(40, prune_threshold=0.5, n_subspaces=3, random_state=0)
    full = tr.fit(backend.asarray(X), backend.asarray(Y)).predict(backend.asarray(X))
    batched = clone(tr).set_params(batch_size=17).fit(backend.asarray(X), backend.asarray(Y))
    np.testing.assert_allclose(backend.to_numpy(batched.predict(backend.asarray(X))),
                               backend.to_numpy(full), rtol=1e-10, atol=1e-10)
    assert isinstance(tr.inverse_projector_.inverse_, np.ndarray)


@pytest.mark.cuda
@pytest.mark.skipif(not CUDA, reason="needs CUDA")
def test_cuda_device_parameter():
    X, Y = gaussian(300, 10, dtype=np.float32), gaussian(300, 7, seed=1, dtype=np.float32)
    cpu = RelativeTranslator(40, prune_threshold=0.5, n_subspaces=3, random_state=0).fit(X, Y)
    gpu = clone(cpu).set_params(device="cuda").fit(X, Y)
    out = gpu.predict(X)
    assert isinstance(out, np.ndarray)
    np.testing.assert_allclose(out, cpu.predict(X), rtol=1e-3, atol=1e-3)


# --------------------------------------------------------------------------
# real data: conditioning matters on digits
# --------------------------------------------------------------------------
def procrustes_translate(A, B, X):
    """Orthogonal Procrustes on standardized anchors (test-only reference)."""
    mu_a, sd_a = A.mean(0), A.std(0)
    mu_b, sd_b = B.mean(0), B.std(0)
    sd_a[sd_a == 0] = 1.0
    sd_b[sd_b == 0] = 1.0
    Q, _ = orthogonal_procrustes((A - mu_a) / sd_a, (B - mu_b) / sd_b)
    return ((X - mu_a) / sd_a) @ Q * sd_b + mu_b


# Encoder A -> encoder B (64 ReLU units each), anchors random_state=0, target
# classifier LogisticRegression(max_iter=3000) on B's training embeddings.
# Measured: n_anchors -> (procrustes, plain IRP, IRP delta=0.7 omega=8, IRP alpha=1e-2)
DIGITS_A_TO_B = {64: (0.967, 0.274, 0.907, 0.976), 300: (0.972, 0.944, 0.956, 0.969)}


@pytest.mark.slow
def test_digits_conditioning_matters():
    from _digits_encoders import digits_encoder, digits_split, fit_single_thread

    _, _, y_train, y_test = digits_split()
    A_tr, A_te = digits_encoder("A")
    B_tr, B_te = digits_encoder("B")
    clf = fit_single_thread(LogisticRegression(max_iter=3000), B_tr, y_train)
    assert clf.score(A_te, y_test) < 0.2  # absolute baseline: the spaces differ
    measured = {}
    for k, expected in DIGITS_A_TO_B.items():
        src = RelativeProjector(k, random_state=0).fit(A_tr)
        idx = src.anchor_indices_
        R = src.transform(A_te)
        plain = InverseRelativeProjector(anchors=idx, alpha=0.0).fit(B_tr)
        pruned = InverseRelativeProjector(anchors=idx, prune_threshold=0.7, n_subspaces=8,
                                          alpha=0.0,
                                          random_state=0).fit(B_tr)
        ridge = InverseRelativeProjector(anchors=idx, alpha=1e-2).fit(B_tr)
        measured[k] = got = (
            clf.score(procrustes_translate(A_tr[idx], B_tr[idx], A_te), y_test),
            clf.score(plain.transform(R), y_test),
            clf.score(pruned.transform(R), y_test),
            clf.score(ridge.transform(R), y_test),
        )
        assert got == pytest.approx(expected, abs=0.02), (k, got)
        # the full anchor matrix is ill-conditioned (k=64: ~2e3, k=300: ~2e2),
        # the pruned subsets are not
        assert plain.condition_numbers_[0] > 100
        assert pruned.condition_numbers_.max() < 10
    # at k = d = 64 the unpruned inverse collapses and pruning restores it
    procrustes, plain_acc, pruned_acc, _ = measured[64]
    assert plain_acc < 0.5
    assert pruned_acc > 0.85 and pruned_acc - plain_acc > 0.4
    assert procrustes - pruned_acc < 0.1


# --------------------------------------------------------------------------
# conditioning: rank-revealing cutoff, near-constant columns, warnings
# --------------------------------------------------------------------------
def _related(n=500, d=32, seed=0, noise=0.0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    Y = X @ ortho_group.rvs(d, random_state=seed) * 2.0 + 1.0
    return X, Y + noise * rng.normal(size=Y.shape)


@pytest.mark.parametrize("scale", [1e-9, 1e-33])
def test_near_constant_target_column_does_not_take_over(backend, scale):
    # One target feature constant up to 1e-9 (or a dead unit at 1e-33), k >= d:
    # the pseudo-inverse used to amplify it until the output was orthogonal to
    # the truth (cosine -0.000), silently.
    X, Y = _related()
    Y[:, 0] = 5.0 + scale * np.random.default_rng(1).normal(size=len(Y))
    src = RelativeProjector(64, random_state=0).fit(X)
    irp = InverseRelativeProjector(anchors=src.anchor_indices_).fit(backend.asarray(Y))
    out = backend.to_numpy(irp.transform(backend.asarray(src.transform(X))))
    assert irp.constant_features_.tolist() == [0]
    np.testing.assert_allclose(out[:, 0], irp.anchor_mean_[0], atol=1e-6)
    mu = irp.anchor_mean_
    assert row_cosines(out - mu, Y - mu).mean() > 0.9


@pytest.mark.parametrize("k", [48, 64, 200])
def test_k_at_least_d_reconstructs_within_the_space(backend, k):
    X, Y = _related(d=32)
    src = RelativeProjector(k, random_state=0).fit(Y)  # same space: exact up to rounding
    irp = InverseRelativeProjector(anchors=src.anchor_indices_, alpha=0.0).fit(
        backend.asarray(Y))
    out = backend.to_numpy(irp.transform(backend.asarray(src.transform(Y))))
    mu = irp.anchor_mean_
    assert row_cosines(out - mu, Y - mu).min() > 0.999
    assert irp.condition_numbers_[0] < F.INVERSE_COND_WARNING


def test_badly_conditioned_anchors_warn():
    # a feature varying at 1e-5 of the others: kept by the cutoff (1e-6) but the
    # inverse amplifies mismatches ~1e5 times
    X, Y = _related(d=16)
    Y[:, 3] = 2.0 + 1e-5 * np.random.default_rng(2).normal(size=len(Y))
    with pytest.warns(UserWarning, match="badly conditioned"):
        irp = InverseRelativeProjector(40, alpha=0.0, random_state=0).fit(Y)
    assert irp.condition_numbers_[0] > F.INVERSE_COND_WARNING
    # a ridge bounds the amplification: no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ridge = InverseRelativeProjector(40, alpha=0.1, random_state=0).fit(Y)
    assert ridge.condition_numbers_[0] < F.INVERSE_COND_WARNING


@pytest.mark.parametrize("n_anchors", [2, 5])
def test_under_determined_inverse_warns(n_anchors):
    X8 = np.random.default_rng(3).normal(size=(8, 8))
    with pytest.warns(UserWarning, match="determined on only"):
        tr = RelativeTranslator(n_anchors, alpha=0.0, random_state=0).fit(X8, X8)
    assert tr.score(X8, X8) < 0.9
    with pytest.warns(UserWarning, match="determined on only"):
        InverseRelativeProjector(n_anchors, alpha=0.0, random_state=0).fit(X8)


def test_well_determined_inverse_does_not_warn():
    X, Y = _related(d=8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        RelativeTranslator(50, alpha=0.0, random_state=0).fit(X, Y)


def test_default_ridge_survives_where_the_plain_inverse_collapses():
    # Two spaces that disagree (noise on the target) and k just above d: the plain
    # pseudo-inverse amplifies the mismatch (measured mean cosine 0.20), the
    # default ridge alpha=1 does not (0.69); see docs/real_suite.md for the same
    # effect on real encoders, which chose the default.
    X, Y = _related(d=32, noise=1.0)
    src = RelativeProjector(34, random_state=0).fit(X)
    R = src.transform(X)
    default = InverseRelativeProjector(anchors=src.anchor_indices_).fit(Y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        plain = InverseRelativeProjector(anchors=src.anchor_indices_, alpha=0.0).fit(Y)
    assert default.alpha_.tolist() == [1.0] and plain.alpha_.tolist() == [0.0]
    mu = default.anchor_mean_
    cos_default = row_cosines(default.transform(R) - mu, Y - mu).mean()
    cos_plain = row_cosines(plain.transform(R) - mu, Y - mu).mean()
    assert cos_default > 0.5 and cos_default - cos_plain > 0.25, (cos_default, cos_plain)


def test_subspace_average_is_renormalized_before_rescaling(backend):
    X, Y = _related(d=16, noise=1.0)
    src = RelativeProjector(60, random_state=0).fit(X)
    irp = InverseRelativeProjector(anchors=src.anchor_indices_, prune_threshold=0.5,
                                   n_subspaces=5, random_state=0).fit(backend.asarray(Y))
    out = backend.to_numpy(irp.transform(backend.asarray(src.transform(X))))
    norms = np.linalg.norm(out - irp.anchor_mean_, axis=1)
    np.testing.assert_allclose(norms, irp.mean_anchor_norm_, rtol=1e-8)


# --------------------------------------------------------------------------
# alpha="auto"
# --------------------------------------------------------------------------
def _brute_pooled_gcv(A_hat, R, alpha):
    """Pooled GCV of the per-row ridge solves, by explicit hat matrix."""
    k = A_hat.shape[0]
    H = A_hat @ np.linalg.pinv(A_hat.T @ A_hat + alpha * np.eye(A_hat.shape[1])) @ A_hat.T
    rss = np.sum((R - R @ H.T) ** 2)
    return rss / k / (1 - np.trace(H) / k) ** 2


def test_auto_alpha_matches_brute_force_gcv_and_helps(backend):
    # anisotropic spaces (spectrum over 2.5 decades) related up to noise: the
    # plain inverse amplifies the noise along the weak directions
    rng = np.random.default_rng(4)
    X = rng.normal(size=(600, 20)) * np.logspace(0, -2.5, 20)
    Y = X @ ortho_group.rvs(20, random_state=4) * 2 + 1 + 0.05 * rng.normal(size=(600, 20))
    tr = RelativeTranslator(40, alpha="auto", random_state=0).fit(
        backend.asarray(X), backend.asarray(Y)
    )
    irp = tr.inverse_projector_
    A_hat = irp.normalized_anchors_
    R = tr.relative_projector_.transform(X[tr.anchor_indices_])
    alpha, alphas, scores = F.select_inverse_alpha(torch.as_tensor(A_hat), torch.as_tensor(R))
    brute = np.array([_brute_pooled_gcv(A_hat, R, a) if a > 0 else np.inf
                      for a in alphas.numpy()])
    finite = np.isfinite(brute)
    np.testing.assert_allclose(scores.numpy()[finite], brute[finite], rtol=1e-6)
    assert tr.alpha_[0] == pytest.approx(alphas.numpy()[np.argmin(brute)], rel=1e-12)
    assert tr.alpha_[0] > 0
    # it beats no ridge on held-out rows
    plain = clone(tr).set_params(alpha=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain.fit(X, Y)
    test = np.setdiff1d(np.arange(600), tr.anchor_indices_)
    # measured 0.82 vs 0.54
    assert tr.score(X[test], Y[test]) > plain.score(X[test], Y[test]) + 0.1


def test_auto_alpha_of_the_projector_needs_source_relative_representations():
    X, Y = _related(d=8)
    irp = InverseRelativeProjector(20, alpha="auto", random_state=0)
    with pytest.raises(ValueError, match="alpha='auto' needs the anchors' relative"):
        irp.fit(Y)
    with pytest.raises(ValueError, match=r"relative has shape \(5, 20\)"):
        irp.fit(Y, relative=np.zeros((5, 20)))
    with pytest.raises(ValueError, match="alpha='often' must be"):
        InverseRelativeProjector(20, alpha="often").fit(Y)
    src = RelativeProjector(20, random_state=0).fit(X)
    irp = InverseRelativeProjector(anchors=src.anchor_indices_, alpha="auto")
    irp.fit(Y, relative=src.transform(X[src.anchor_indices_]))
    assert irp.alpha_.shape == (1,)


def test_translator_1d_target_predict_and_transform_shapes():
    X = np.random.default_rng(5).normal(size=(100, 6))
    y = X @ np.arange(6.0) + 1.0
    tr = RelativeTranslator(20, random_state=0).fit(X, y)
    assert tr.predict(X).shape == (100,)
    assert tr.transform(X).shape == (100, 1)
    np.testing.assert_array_equal(tr.predict(X), tr.transform(X)[:, 0])


def test_translator_keeps_dtype_and_fit_transform_consistency():
    X, Y = _related(n=120, d=6)
    for dtype in (np.float32, np.float64):
        tr = RelativeTranslator(30, random_state=0)
        out = tr.fit(X.astype(dtype), Y).transform(X.astype(dtype))
        assert out.dtype == dtype
        np.testing.assert_allclose(clone(tr).fit_transform(X.astype(dtype), Y), out, rtol=1e-5)

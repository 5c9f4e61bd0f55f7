"""float32 data far from the origin: as accurate as float32 allows (issue 12).

Every estimator is fitted and applied twice on the *same values*, once stored
as float32 and once as float64, with the same anchors; the float32 result must
match the float64 one to a few units of float32 roundoff of the result
(:func:`_tolerance`).  The data have unit spread and an offset of up to 1e6
(per column), where centering in float32 loses up to ``offset * 2**-24`` per
value: an estimator that centers in float32, or folds the centering into a
float32 intercept, fails here by orders of magnitude (the cosine rows of
``RelativeProjector`` were all zero at offset 1e6).
"""

import numpy as np
import pytest
import torch
from scipy.stats import ortho_group
from sklearn.pipeline import make_pipeline

from sklearn_latent import (
    AnchorMatcher,
    ASIFClassifier,
    InverseRelativeProjector,
    ProcrustesTranslator,
    ProductInvarianceProjector,
    RelativeAggregator,
    RelativeProjector,
    RelativeTranslator,
)
from sklearn_latent import functional as F

OFFSETS = (0.0, 1e3, 1e4, 1e5, 1e6)
N, D, K = 300, 16, 40
EPS32 = float(np.finfo(np.float32).eps)


def _spaces(offset, shifted="xy"):
    """X and a rotated Y of the same items (unit spread) as float32, offset per column.

    ``shifted="xy"``: both spaces carry an offset; ``"x"``: only X, so that the
    result (in Y's space) has a far finer float32 resolution than X: an offset of
    X folded into a float32 intercept shows there.
    """
    rng = np.random.default_rng(0)
    X = rng.normal(size=(N, D))
    Y = X @ ortho_group.rvs(D, random_state=0) + 0.05 * rng.normal(size=(N, D))
    X = X + offset * rng.uniform(0.5, 1.5, size=D)
    Y = Y + (offset if shifted == "xy" else 0.0) * rng.uniform(0.5, 1.5, size=D)
    return X.astype(np.float32), Y.astype(np.float32)


def _tolerance(ref):
    """A few units of float32 roundoff of the result: of its magnitude (the final rounding
    and offsets added back) plus a sum over the D features of terms of its spread (one
    GEMM's accumulated roundoff)."""
    return 4 * EPS32 * (np.abs(ref).max() + D * ref.std())


IDX = np.random.default_rng(1).choice(N, K, replace=False)
LABELS = np.arange(N) % 3


def _relative(metric):
    return lambda X, Y: RelativeProjector(anchors=IDX, metric=metric).fit(X).transform(X)


def _procrustes(method):
    return lambda X, Y: ProcrustesTranslator(method, anchors=IDX).fit(X, Y).transform(X)


def _irp_pipeline(X, Y):
    pipe = make_pipeline(
        RelativeProjector(anchors=IDX).fit(X),
        InverseRelativeProjector(anchors=IDX).fit(Y),
    )
    return pipe.transform(X)


def _aggregator(X, Y):
    XY = np.hstack([X, Y]) if isinstance(X, np.ndarray) else torch.cat([X, Y], dim=1)
    return RelativeAggregator((D, D), anchors=IDX).fit(XY).transform(XY)


def _matcher(X, Y):
    seeds = np.stack([IDX[:12], IDX[:12]], axis=1)
    return AnchorMatcher(30, seeds=seeds).fit(X, Y).transform(X)


CASES = {
    **{f"relative-{m}": _relative(m) for m in F.METRICS},
    "relative-sparse": lambda X, Y: RelativeProjector(
        anchors=IDX, top_k=10, exponent=2.0).fit(X).transform(X),
    "relative-standard": lambda X, Y: RelativeProjector(
        anchors=IDX, normalize="standard").fit(X).transform(X),
    "relative-inverse": lambda X, Y: RelativeProjector(anchors=IDX).fit(X).inverse_transform(
        RelativeProjector(anchors=IDX).fit(X).transform(X)),
    "product": lambda X, Y: ProductInvarianceProjector(anchors=IDX).fit(X).transform(X),
    "irp-pipeline": _irp_pipeline,
    **{f"procrustes-{m}": _procrustes(m) for m in ("orthogonal", "scaled", "linear", "affine")},
    "relative-translator": lambda X, Y: RelativeTranslator(anchors=IDX).fit(X, Y).transform(X),
    "aggregator": _aggregator,
    "asif": lambda X, Y: ASIFClassifier(top_k=20, exponent=2.0, center=True).fit(
        X, LABELS).decision_function(X),
    "matcher": _matcher,
}

#: Cases whose result lives in Y's space: also tested with only X offset.
PAIRED = {name for name in CASES if name.startswith(("procrustes", "irp", "relative-trans"))}
PAIRED |= {"matcher"}

def _params():
    for name in CASES:
        for shifted in ("xy", "x") if name in PAIRED else ("xy",):
            for offset in OFFSETS:
                if shifted == "x" and offset == 0.0:
                    continue
                yield pytest.param(name, shifted, offset,
                                   id=f"{name}-{'xy' if shifted == 'xy' else 'xonly'}-{offset:g}")


@pytest.mark.parametrize("name,shifted,offset", list(_params()))
def test_float32_matches_float64_on_the_same_values(backend, name, shifted, offset):
    X, Y = _spaces(offset, shifted)
    with np.errstate(all="ignore"):
        ref = np.asarray(CASES[name](X.astype(np.float64), Y.astype(np.float64)))
    got = backend.to_numpy(CASES[name](backend.asarray(X), backend.asarray(Y)))
    assert got.dtype == np.float32
    assert np.abs(ref).max() > 0
    err = np.abs(got - ref).max()
    assert err <= _tolerance(ref), (
        f"{name} at offset {offset:g}: max error {err:.3g}, "
        f"{err / (EPS32 * (np.abs(ref).max() + D * ref.std())):.1f} units of roundoff"
    )


@pytest.mark.parametrize("offset", [3e5, 1e6])
def test_cosine_rows_of_offset_float32_data_are_not_zero(backend, offset):
    # the reproducer of issue 12: all rows were zero at offset 1e6 (88 % at 3e5)
    X = (np.random.default_rng(0).normal(size=(500, 32)) + offset).astype(np.float32)
    proj = RelativeProjector(50, random_state=0).fit(backend.asarray(X))
    R = backend.to_numpy(proj.transform(backend.asarray(X)))
    assert (np.abs(R).max(axis=1) > 0.1).all()
    R64 = RelativeProjector(anchors=proj.anchor_indices_).fit(X.astype(np.float64)).transform(
        X.astype(np.float64))
    np.testing.assert_allclose(R, R64, atol=1e-5)


@pytest.mark.parametrize("offset", [0.0, 1e4])
def test_euclidean_distance_of_an_anchor_to_itself_is_zero(backend, offset):
    # float32 ||x||^2 + ||a||^2 - 2 x.a left 2.8e-3 (typical distance 14); now it is 0 up
    # to the float32 resolution of the centered data, as scikit-learn's euclidean_distances
    X = (np.random.default_rng(0).normal(size=(500, 32)) * 2.5 + offset).astype(np.float32)
    proj = RelativeProjector(50, metric="euclidean", random_state=0).fit(backend.asarray(X))
    R = backend.to_numpy(proj.transform(backend.asarray(X)))
    centered_norm = np.linalg.norm(X - X.mean(axis=0), axis=1).max()
    self_dist = R[proj.anchor_indices_, np.arange(50)]
    assert np.abs(self_dist).max() <= 4 * EPS32 * centered_norm
    assert np.median(R) > 10  # the typical distance, for scale


def test_float32_precision_truly_lost_raises():
    # a spread of 1e-3 at offset 1e6 is below float32's resolution (0.06): every row is the
    # same float32 value, so nothing is left to describe; a clear error, never zeros
    X = (1e6 + 1e-3 * np.random.default_rng(0).normal(size=(100, 4))).astype(np.float32)
    assert (X == X[0]).all()
    with pytest.raises(ValueError, match="anchors are all equal"):
        RelativeProjector(10, random_state=0).fit(X)
    with pytest.raises(ValueError, match="anchors are all equal"):
        ProductInvarianceProjector(10, random_state=0).fit(X)
    # the same values in float64 keep their spread and work
    X64 = 1e6 + 1e-3 * np.random.default_rng(0).normal(size=(100, 4))
    R = RelativeProjector(10, random_state=0).fit(X64).transform(X64)
    assert (np.abs(R).max(axis=1) > 0.1).all()

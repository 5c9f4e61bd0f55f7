"""Estimator configurations shared by the test batteries (not public API).

``tests/test_robustness.py`` and ``tests/test_persist.py`` run every entry of
:data:`CASES` through hostile inputs, determinism, thread-safety, memory,
save/load and CPU-only loading checks.  A new estimator of the library is
covered by adding it to ``persist._ESTIMATORS`` (the allow-list of
:func:`sklearn_latent.load`) and a few :class:`Case` entries here.
"""

import copy
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch

from .aggregate import RelativeAggregator
from .inverse import InverseRelativeProjector, RelativeTranslator
from .matching import AnchorMatcher
from .product import ProductInvarianceProjector
from .relative import RelativeProjector
from .translate import ProcrustesTranslator

__all__ = ["CASES", "Case", "assert_same_state", "snapshot"]


def _identity_input(est, X):
    return X


def _fit_on_x(X):
    return (X,)


def _n_features_in(est):
    return est.n_features_in_


def _paired(width_factor=1.0, seed=0):
    """``fit_inputs`` of translators: (X, Y) with Y an affine image of X, ``width_factor`` wider."""

    def make(X):
        d = X.shape[1]
        W = np.random.default_rng(seed).normal(size=(d, max(1, round(d * width_factor))))
        return X, X @ W + 1.0

    return make


def _relative_to_anchors(est, X):
    """``transform_input`` of inverse projectors: cosine relative representations of X
    against the fitted anchors (parallel by construction), centered like them.

    Anchors that all coincide (the inverse projector then returns them for any
    input, with a warning) have no centered representation: uncentered cosines
    stand in."""
    center = est.center and not (est.anchors_ == est.anchors_[0]).all()
    return RelativeProjector(anchors=est.anchors_, center=center).fit(X).transform(X)


def _n_anchors_fitted(est):
    return est.anchors_.shape[0]


@dataclass(frozen=True)
class Case:
    """One estimator configuration of the test batteries.

    Parameters
    ----------
    id : str
        Test id.
    make : callable () -> estimator
        A new unfitted estimator (seeded through ``random_state`` if it has one).
    fit_inputs : callable X -> tuple
        The positional arguments of ``fit`` derived from one float64 matrix
        ``X`` (n, d): ``(X,)`` for projectors, ``(X, Y)`` for translators.
        The hostile-input battery applies the same dtype, layout and scale to
        each of them.
    transform_input : callable (fitted, X) -> array
        What ``transform`` receives for a float64 X (n, d) of the fit's
        distribution (e.g. relative representations for an inverse projector).
    transform_width : callable fitted -> int
        Columns of ``transform``'s input (hostile inputs are drawn this wide).
    min_samples : int
        Rows ``fit`` needs (fewer must raise ValueError).
    scale_degree : int or None
        ``transform`` after ``fit`` on all inputs multiplied by ``s`` equals
        ``s ** scale_degree`` times the unscaled result; None: not homogeneous.
    overflow_degree : int
        Intermediates grow like ``|x| ** overflow_degree``: inputs beyond
        ``(finfo.max / 1e6) ** (1 / overflow_degree)`` may raise an overflow
        ValueError, smaller ones must succeed.
    random : bool
        Whether ``random_state`` changes the result (different seeds must give
        different anchors).
    rejects_constant : bool
        ``fit`` may raise ValueError when an input has identical rows (all of
        them, or all of a sampled anchor subset: nothing to fit, e.g. a
        translation with zero covariance, or centered cosine anchors that are all
        the zero vector).
    magnitude_limit : float or None
        ``fit`` may raise ValueError when the largest |entry| of an input lies
        outside ``[1 / magnitude_limit, magnitude_limit]``; None: any finite
        magnitude must work.
    """

    id: str
    make: Callable
    fit_inputs: Callable = _fit_on_x
    transform_input: Callable = _identity_input
    transform_width: Callable = _n_features_in
    min_samples: int = 1
    scale_degree: Optional[int] = 1
    overflow_degree: int = 1
    random: bool = True
    rejects_constant: bool = False
    magnitude_limit: Optional[float] = None

    def __repr__(self):
        return self.id


CASES = [
    Case("relative-cosine", lambda: RelativeProjector(4, random_state=0),
         min_samples=4, scale_degree=0, rejects_constant=True),
    Case("relative-angular-uncentered-sparse",
         lambda: RelativeProjector(4, metric="angular", center=False, random_state=0),
         min_samples=4, scale_degree=0),
    Case("relative-cosine-topk-standard",
         lambda: RelativeProjector(4, top_k=2, exponent=2.0, normalize="standard",
                                   anchors="fps", random_state=0),
         min_samples=4, scale_degree=0, rejects_constant=True),
    Case("relative-euclidean-fps", lambda: RelativeProjector(4, metric="euclidean",
                                                             anchors="fps", random_state=0),
         min_samples=4, scale_degree=1),
    Case("relative-l1-layer-kmeans",
         lambda: RelativeProjector(4, metric="l1", normalize="layer", anchors="kmeans",
                                   random_state=0),
         min_samples=4, scale_degree=0),
    Case("relative-linf-standard", lambda: RelativeProjector(0.5, metric="linf",
                                                             normalize="standard", random_state=0),
         min_samples=1, scale_degree=0),
    Case("relative-lp3-l2-batched",
         lambda: RelativeProjector(4, metric="lp", p=3.0, normalize="l2", batch_size=3,
                                   random_state=0),
         min_samples=4, scale_degree=0),
    Case("relative-dot", lambda: RelativeProjector(4, metric="dot", random_state=0),
         min_samples=4, scale_degree=2, overflow_degree=2, rejects_constant=True),
    Case("relative-explicit-indices",
         lambda: RelativeProjector(anchors=np.array([0, 2, 3])),
         min_samples=4, scale_degree=0, random=False, rejects_constant=True),
    Case("product-default", lambda: ProductInvarianceProjector(4, random_state=0),
         min_samples=4, scale_degree=0, rejects_constant=True),
    Case("product-cosine-l1-mean-l2-batched",
         lambda: ProductInvarianceProjector(4, metrics=("cosine", "l1"), aggregation="mean",
                                            normalize="l2", anchors="fps", batch_size=3,
                                            random_state=0),
         min_samples=4, scale_degree=0, rejects_constant=True),
    Case("product-block-weighted",
         lambda: ProductInvarianceProjector(4, normalize="block", weights=[1.0, 0.5, 0.0, 2.0],
                                            random_state=0),
         min_samples=4, scale_degree=0, rejects_constant=True),
    Case("product-cosine-dot-sum-layer",
         lambda: ProductInvarianceProjector(4, metrics=("cosine", "dot"), aggregation="sum",
                                            normalize="layer", random_state=0),
         min_samples=4, scale_degree=0, rejects_constant=True),
    # inverse projectors: fit(Y), transform(relative representations)
    Case("inverse-default", lambda: InverseRelativeProjector(4, random_state=0),
         transform_input=_relative_to_anchors, transform_width=_n_anchors_fitted,
         min_samples=4, scale_degree=1),
    Case("inverse-pruned-subspaces-batched",
         lambda: InverseRelativeProjector(6, prune_threshold=0.5, n_subspaces=2, alpha=1e-3,
                                          batch_size=3, random_state=0),
         transform_input=_relative_to_anchors, transform_width=_n_anchors_fitted,
         min_samples=6, scale_degree=1),
    Case("relative-translator", lambda: RelativeTranslator(5, random_state=0),
         fit_inputs=_paired(1.5), min_samples=5, scale_degree=1, rejects_constant=True),
    # translators: fit(X, Y) on paired rows; float64 statistics bound the magnitude
    Case("procrustes-orthogonal", lambda: ProcrustesTranslator(),
         fit_inputs=_paired(), min_samples=2, scale_degree=1, random=False,
         rejects_constant=True, magnitude_limit=2.0**450),
    Case("procrustes-scaled-wider-anchors",
         lambda: ProcrustesTranslator("scaled", n_anchors=5, random_state=0),
         fit_inputs=_paired(1.5), min_samples=5, scale_degree=1,
         rejects_constant=True, magnitude_limit=2.0**450),
    Case("procrustes-affine-narrower", lambda: ProcrustesTranslator("affine", alpha=1e-3),
         fit_inputs=_paired(0.5), min_samples=2, scale_degree=1, random=False,
         rejects_constant=True, magnitude_limit=2.0**450),
    Case("procrustes-linear-unscaled-ridge",
         lambda: ProcrustesTranslator("linear", scaling=None, alpha=0.1),
         fit_inputs=_paired(), min_samples=2, scale_degree=None, random=False,
         rejects_constant=True, magnitude_limit=2.0**450),
    # relative aggregation: X is the stack of spaces; widths=None is one space
    Case("aggregator-mean", lambda: RelativeAggregator(n_anchors=4, random_state=0),
         min_samples=4, scale_degree=0, rejects_constant=True),
    Case("aggregator-concat-standard-fps",
         lambda: RelativeAggregator(n_anchors=4, anchors="fps", aggregation="concat",
                                    normalize="standard", batch_size=3, random_state=0),
         min_samples=4, scale_degree=0, rejects_constant=True),
    # anchor discovery from seeds, then a Procrustes map into the second space
    Case("matcher-mutual-nn",
         lambda: AnchorMatcher(4, seeds=np.array([[0, 0], [1, 1], [2, 2]]), discovery="relative",
                               n_iter=2),
         fit_inputs=_paired(1.5), min_samples=4, scale_degree=1, random=False,
         rejects_constant=True, magnitude_limit=2.0**450),
]


def snapshot(est):
    """Deep copy of ``vars(est)``: compare before and after a call."""
    return copy.deepcopy(vars(est))


def assert_same_state(a, b, path="vars"):
    """Deep, type-exact equality; arrays by value, dtype and shape, floats bit for bit."""
    assert type(a) is type(b), f"{path}: {type(a)} != {type(b)}"
    if isinstance(a, dict):
        assert list(a) == list(b), f"{path}: keys {list(a)} != {list(b)}"
        for k in a:
            assert_same_state(a[k], b[k], f"{path}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_state(x, y, f"{path}[{i}]")
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, f"{path}: {a.dtype}{a.shape}"
        assert np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"), path
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.device == b.device and torch.equal(a, b), path
    elif isinstance(a, np.random.RandomState):
        s, t = a.get_state(), b.get_state()
        assert s[0] == t[0] and np.array_equal(s[1], t[1]) and s[2:] == t[2:], path
    elif isinstance(a, float):
        assert a.hex() == b.hex(), f"{path}: {a!r} != {b!r}"
    elif hasattr(a, "get_params"):
        assert_same_state(vars(a), vars(b), f"{path}<{type(a).__name__}>")
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"

"""Permutation-calibrated similarity scores: the score against its null distribution."""

import dataclasses
import numbers

import numpy as np
import torch

from .._backend import check_input, to_tensor, torch_dtype
from ._common import _F64, _Stats, _cka_from_stats, _check_pair
from ._shape import _cca_cross, _pwcca_from, _reduce, _shape_cross, _shape_side
from ._shape import procrustes_distance, pwcca, shape_distance, svcca
from ._similarity import cknna, knn_jaccard, linear_cka, mutual_knn_alignment, rbf_cka
from ._spectral import laplacian_eigenvalue_distance

#: name -> (function, "similarity" | "distance", needs paired rows, symmetric)
MEASURES = {
    "linear_cka": (linear_cka, "similarity", True, True),
    "rbf_cka": (rbf_cka, "similarity", True, True),
    "cknna": (cknna, "similarity", True, True),
    "mutual_knn_alignment": (mutual_knn_alignment, "similarity", True, True),
    "knn_jaccard": (knn_jaccard, "similarity", True, True),
    "svcca": (svcca, "similarity", True, True),
    "pwcca": (pwcca, "similarity", True, False),
    "shape_distance": (shape_distance, "distance", True, True),
    "procrustes_distance": (procrustes_distance, "distance", True, True),
    "laplacian_eigenvalue_distance": (laplacian_eigenvalue_distance, "distance", False, True),
}


def _resolve(measure):
    """(name, function, kind, paired, symmetric) of a measure name or callable."""
    if isinstance(measure, str):
        if measure not in MEASURES:
            raise ValueError(
                f"measure={measure!r} is not supported; use one of {sorted(MEASURES)} "
                "or a callable (X, Y) -> float."
            )
        return (measure, *MEASURES[measure])
    if callable(measure):
        for name, entry in MEASURES.items():
            if entry[0] is measure:
                return (name, *entry)
        name = getattr(measure, "__name__", repr(measure))
        kind = getattr(measure, "kind", "similarity")
        if kind not in ("similarity", "distance"):
            raise ValueError(f"{name}.kind={kind!r} must be 'similarity' or 'distance'.")
        return name, measure, kind, True, False
    raise TypeError(f"measure must be a measure name or a callable, got {measure!r}.")


@dataclasses.dataclass(frozen=True)
class CalibratedScore:
    """A score and its permutation null, as returned by :func:`calibrate`.

    Attributes
    ----------
    measure : str
        Name of the measure.
    kind : {"similarity", "distance"}
        Whether larger (similarity) or smaller (distance) means more alike.
    score : float
        The measure on the paired data.
    calibrated : float
        ``score - null_mean`` for a similarity, ``null_mean - score`` for a
        distance: about 0 when the spaces are unrelated, at any n and width;
        positive when they are more alike than chance.
    null_mean, null_std : float
        Mean and standard deviation (ddof=1) of the null scores.
    p_value : float
        ``(1 + #{null at least as alike as score}) / (1 + n_permutations)``,
        the one-sided permutation p-value (never 0).
    null : ndarray of shape (n_permutations,)
        The scores with the rows of ``Y`` shuffled, in the order drawn.
    """

    measure: str
    kind: str
    score: float
    calibrated: float
    null_mean: float
    null_std: float
    p_value: float
    null: np.ndarray = dataclasses.field(repr=False)

    @property
    def n_permutations(self):
        """Number of permutations in the null."""
        return int(self.null.size)


def _check_n_permutations(n):
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"n_permutations must be an int, got {n!r}.")
    if n < 1:
        raise ValueError(f"n_permutations={n} must be at least 1.")
    return int(n)


def _seeds(random_state, count):
    """``count`` independent seeds from ``random_state`` (None, int, Generator, RandomState)."""
    if isinstance(random_state, np.random.RandomState):
        random_state = int(random_state.randint(2**31))
    ok = random_state is None or isinstance(random_state, (numbers.Integral, np.random.Generator))
    if not ok or isinstance(random_state, bool):
        raise TypeError(
            f"random_state must be None, an int or a numpy Generator, got {random_state!r}."
        )
    return np.random.default_rng(random_state).integers(2**63 - 1, size=count)


# --------------------------------------------------------------------------
# feature-space fast path: the per-space statistics are computed once
# --------------------------------------------------------------------------
_FEATURE = {"linear_cka", "shape_distance", "procrustes_distance", "svcca", "pwcca"}


class _FeatureNull:
    """Centered data and everything that does not change when ``Y``'s rows are shuffled.

    ``Xc^T Xc`` and ``Yc^T Yc`` with what each measure derives from them
    alone (norms, whiteners, SVD reductions, the unbiased self-HSICs and
    squared row norms) are computed once; each permutation costs one
    cross-covariance GEMM ``Xc^T Yc[perm]`` in the data's dtype, O(n d)
    gathers and the measure's d x d work on the cross term.
    """

    def __init__(self, name, X, Y, dev, params):
        self.name, self.params = name, params
        self.unbiased = bool(params.get("unbiased", False)) and name == "linear_cka"
        dtype = _F64 if _F64 in (torch_dtype(X), torch_dtype(Y)) else torch.float32
        self.n = X.shape[0]
        self.Xc = self._centered(X, dev, dtype)
        self.Yc = self._centered(Y, dev, dtype)
        # exactly centered data: zero column sums, centered Gram = plain Gram
        xx = (self.Xc.T @ self.Xc).to(_F64)
        yy = (self.Yc.T @ self.Yc).to(_F64)
        zx = torch.zeros(xx.shape[0], dtype=_F64, device=dev)
        zy = torch.zeros(yy.shape[0], dtype=_F64, device=dev)
        self.xx, self.yy, self.sx, self.sy = xx, yy, zx, zy
        if name == "linear_cka" and not self.unbiased:
            self.den = torch.linalg.matrix_norm(xx) * torch.linalg.matrix_norm(yy)
        elif self.unbiased:
            self.a = self.Xc.square().sum(dim=1, dtype=_F64)
            self.b = self.Yc.square().sum(dim=1, dtype=_F64)
            self.xa = self._gemv(self.Xc, self.a)
            self.yb = self._gemv(self.Yc, self.b)
        elif name == "shape_distance":
            alpha = float(params.get("alpha", 1.0))
            self.px, self.py = _shape_side(xx, alpha), _shape_side(yy, alpha)
        elif name == "procrustes_distance":
            self.den = torch.sqrt(torch.trace(xx) * torch.trace(yy))
        else:  # svcca, pwcca
            keep = float(params.get("variance", 0.99)) if name == "svcca" else 1.0
            self.rx, self.ry = _reduce(xx, keep), _reduce(yy, keep)

    @staticmethod
    def _gemv(T, v):
        return (T.T @ v.to(T.dtype)).to(_F64)

    @staticmethod
    def _centered(T, dev, dtype):
        mean = torch.zeros(T.shape[1], dtype=_F64, device=dev)
        step = max(1, (1 << 22) // max(1, T.shape[1]))
        for start in range(0, T.shape[0], step):
            mean += to_tensor(T[start : start + step], dev, _F64).sum(dim=0)
        mean /= T.shape[0]
        out = torch.empty(T.shape, dtype=dtype, device=dev)
        for start in range(0, T.shape[0], step):
            out[start : start + step] = to_tensor(T[start : start + step], dev, _F64) - mean
        return out

    def score(self, perm=None):
        Yp = self.Yc if perm is None else self.Yc[perm]
        xy = (self.Xc.T @ Yp).to(_F64)
        n, name = self.n, self.name
        if name == "linear_cka" and not self.unbiased:
            return min(1.0, max(0.0, float(torch.linalg.matrix_norm(xy).square() / self.den)))
        if self.unbiased:
            b = self.b if perm is None else self.b[perm]
            rows = (self.a, b, self.xa, self._gemv(self.Xc, b), self._gemv(Yp, self.a), self.yb)
            st = _Stats(n, self.xx, self.yy, xy, self.sx, self.sy, rows)
            return min(1.0, float(_cka_from_stats(st, True)))
        if name == "shape_distance":
            return float(_shape_cross(n, self.px, self.py, xy, self.params.get("kind", "angular")))
        if name == "procrustes_distance":
            nuc = torch.linalg.svdvals(xy).sum()
            return float((2.0 - 2.0 * nuc / self.den).clamp(0.0, 2.0))
        if name == "svcca":
            return float(_cca_cross(n, self.rx, self.ry, xy, "svcca")[0].mean())
        return float(_pwcca_from(n, self.xx, self.yy, xy, self.rx, self.ry))


def _null_chunk(evaluate, seeds, n, device):
    out = []
    for seed in seeds:
        perm = torch.from_numpy(np.random.default_rng(int(seed)).permutation(n)).to(device)
        out.append(evaluate(perm))
    return out


def calibrate(measure, X, Y, *, n_permutations=100, random_state=None, n_jobs=None, **params):
    """Score two paired spaces against a permutation null (Groger et al. 2026).

    Computes ``measure(X, Y, **params)`` and the same measure with the rows
    of ``Y`` shuffled ``n_permutations`` times (the correspondence broken,
    everything else kept: widths, spectra, n), and reports how far the score
    stands from that null.  Raw scores are inflated by width, depth and small
    n (biased CKA of independent 32 x 64 spaces is about 0.7); the
    calibrated score is about 0 for unrelated spaces whatever those are.

    For the feature-space measures (``linear_cka``, ``shape_distance``,
    ``procrustes_distance``, ``svcca``, ``pwcca``) the per-space statistics
    (``Xc^T Xc``, ``Yc^T Yc``, their eigendecompositions' inputs, the row
    norms of the unbiased CKA) are computed once and each permutation costs
    one cross-covariance GEMM ``Xc^T Yc[perm]``.  Other measures are
    re-evaluated on the permuted data.  The permutations are drawn from
    ``random_state`` before any work is split, so the result does not depend
    on ``n_jobs``.

    Parameters
    ----------
    measure : str or callable
        A name from ``"linear_cka"``, ``"rbf_cka"``, ``"cknna"``,
        ``"mutual_knn_alignment"``, ``"knn_jaccard"``, ``"svcca"``,
        ``"pwcca"``, ``"shape_distance"``, ``"procrustes_distance"``, or a
        callable ``(X, Y, **params) -> float`` (a similarity unless it has an
        attribute ``kind = "distance"``).
        ``"laplacian_eigenvalue_distance"`` needs no correspondences, so
        shuffling rows leaves it unchanged: it is refused.
    X : array-like or Tensor of shape (n_samples, d_x)
    Y : array-like or Tensor of shape (n_samples, d_y)
        Rows paired with ``X``'s.
    n_permutations : int, default=100
    random_state : None, int or numpy.random.Generator, default=None
        Seeds the permutations.
    n_jobs : int or None, default=None
        Parallel workers (:class:`joblib.Parallel`, threads: the GEMMs and
        kernels release the GIL); ``None`` means 1.
    **params
        Passed to the measure (e.g. ``unbiased=True``, ``k=10``,
        ``alpha=0.5``).

    Returns
    -------
    CalibratedScore
        ``score``, ``calibrated``, ``null_mean``, ``null_std``, ``p_value``
        and the ``null`` scores.

    References
    ----------
    Groger et al. (2026), calibration of representational similarity against
    a permutation null (see REFERENCE.md).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_latent.metrics import calibrate
    >>> rng = np.random.default_rng(0)
    >>> X, Y = rng.normal(size=(40, 64)), rng.normal(size=(40, 64))   # unrelated
    >>> res = calibrate("linear_cka", X, Y, n_permutations=50, random_state=0)
    >>> round(res.score, 2), abs(res.calibrated) < 0.05, res.p_value > 0.05
    (0.61, True, True)
    >>> res = calibrate("linear_cka", X, X @ rng.normal(size=(64, 8)), n_permutations=50,
    ...                 random_state=0)
    >>> res.p_value                                  # no shuffle came close
    0.0196078431372549
    """
    from joblib import Parallel, delayed

    name, func, kind, paired, _ = _resolve(measure)
    if not paired:
        raise ValueError(
            f"calibrate: {name} needs no correspondences between rows, so shuffling the rows "
            "of Y never changes it: a permutation null is undefined for it."
        )
    n_permutations = _check_n_permutations(n_permutations)
    seeds = _seeds(random_state, n_permutations)
    if name in _FEATURE:
        Xv, Yv, dev = _check_pair(X, Y, ("X", "Y"), name, min_samples=3, convert=False)
        score = func(Xv, Yv, **params)  # validates params and degenerate input
        null_model = _FeatureNull(name, Xv, Yv, dev, params)
        evaluate = null_model.score
        n, device = Xv.shape[0], dev
    else:
        Xv = check_input(None, X, reset=False, input_name="X")
        Yv = check_input(None, Y, reset=False, input_name="Y")
        score = func(Xv, Yv, **params)
        n = Xv.shape[0]
        device = Yv.device if isinstance(Yv, torch.Tensor) else torch.device("cpu")

        def evaluate(perm):
            if isinstance(Yv, torch.Tensor):
                return func(Xv, Yv[perm], **params)
            return func(Xv, Yv[perm.numpy()], **params)

    jobs = 1 if n_jobs is None else int(n_jobs)
    chunks = [c for c in np.array_split(seeds, max(1, min(jobs, n_permutations))) if c.size]
    if len(chunks) == 1:
        parts = [_null_chunk(evaluate, chunks[0], n, device)]
    else:
        parts = Parallel(n_jobs=jobs, prefer="threads")(
            delayed(_null_chunk)(evaluate, c, n, device) for c in chunks
        )
    null = np.array([v for part in parts for v in part], dtype=np.float64)
    score = float(score)
    mean = float(null.mean())
    std = float(null.std(ddof=1)) if null.size > 1 else 0.0
    if kind == "similarity":
        calibrated, extreme = score - mean, int((null >= score).sum())
    else:
        calibrated, extreme = mean - score, int((null <= score).sum())
    return CalibratedScore(
        measure=name, kind=kind, score=score, calibrated=calibrated, null_mean=mean,
        null_std=std, p_value=(1 + extreme) / (1 + null.size), null=null,
    )

"""Feature-space measures from the cross-covariances: shape metrics, Procrustes, SVCCA, PWCCA.

Each is a function of ``n`` and the centered cross products ``Xc^T Xc``,
``Yc^T Yc`` and ``Xc^T Yc`` (float64, accumulated over row blocks by
:func:`._common._feature_stats`): O(n (d_x + d_y)^2) time, O((d_x + d_y)^2)
memory, never an ``n x n`` matrix.  The ``_*_from`` functions take those
statistics, so a permutation null (:func:`sklearn_latent.metrics.calibrate`)
recomputes only the cross term.
"""

import math
import numbers

import torch

from ._common import _check_pair, _feature_stats, _float

#: Eigenvalues below this fraction of the largest are the covariance's null space.
_EIG_TOL = 1e-10


def _stats(X, Y, func, cross_only=False):
    X, Y, dev = _check_pair(X, Y, ("X", "Y"), func, min_samples=3, convert=False)
    return _feature_stats(X, Y, dev, func=func, cross_only=cross_only).centered(), X.shape[0]


def _eigh(C):
    """Eigenvalues (descending, clipped at the null-space tolerance) and vectors of C."""
    w, V = torch.linalg.eigh(C)
    w, V = w.flip(0), V.flip(1)
    return w.clamp_min(_EIG_TOL * float(w[0])), V


def _check_alpha(alpha):
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real):
        raise TypeError(f"alpha must be a number in [0, 1], got {alpha!r}.")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha={alpha!r} must be in [0, 1].")
    return float(alpha)


def _whitener(C, alpha):
    """Partial whitening ``Z = V diag(d) V^T`` of Williams et al. (2021), variance preserved.

    ``d = alpha + (1 - alpha) lam^-1/2`` for the eigenvalues ``lam`` of
    ``C = Xc^T Xc``, rescaled so that ``||Xc Z||_F = ||Xc||_F`` (netrep's
    ``whiten(..., preserve_variance=True)``).  ``alpha = 1``: ``Z = I``.
    """
    if alpha == 1.0:
        return torch.eye(C.shape[0], dtype=C.dtype, device=C.device)
    lam, V = _eigh(C)
    d = alpha + (1.0 - alpha) * lam.rsqrt()
    new_var = (d.square() * lam).sum()
    d = d * torch.sqrt(lam.sum() / new_var)
    return (V * d) @ V.T


def _shape_side(C, alpha):
    """Per-space part of the shape metric: the whitener Z and ||Xc Z||_F^2."""
    z = _whitener(C, alpha)
    return z, (z * (C @ z)).sum()


def _shape_cross(n, sx, sy, xy, kind):
    (zx, nx2), (zy, ny2) = sx, sy
    nuc = torch.linalg.svdvals(zx.T @ xy @ zy).sum()
    if kind == "angular":
        return torch.arccos((nuc / torch.sqrt(nx2 * ny2)).clamp(-1.0, 1.0))
    return torch.sqrt((nx2 + ny2 - 2.0 * nuc).clamp_min(0.0) / n)


def _shape_from(n, xx, yy, xy, alpha, kind):
    return _shape_cross(n, _shape_side(xx, alpha), _shape_side(yy, alpha), xy, kind)


def shape_distance(X, Y, *, alpha=1.0, kind="angular"):
    """Generalized shape metric of Williams et al. (2021) between two paired spaces (a distance).

    Both spaces are column-centered and partially whitened,
    ``X_w = Xc Z_x`` with ``Z_x = V diag(alpha + (1 - alpha) lam^-1/2) V^T``
    (``Xc^T Xc = V diag(lam) V^T``, rescaled to keep the total variance), the
    narrower one is zero-padded to the other's width, and the best
    orthogonal alignment is taken:

    - ``kind="angular"``: ``arccos(max_R <X_w R, Y_w>_F / (||X_w|| ||Y_w||))
      = arccos(||X_w^T Y_w||_* / (||X_w||_F ||Y_w||_F))``, in [0, pi/2];
    - ``kind="euclidean"``: ``min_R ||X_w R - Y_w||_F / sqrt(n)
      = sqrt((||X_w||^2 + ||Y_w||^2 - 2 ||X_w^T Y_w||_*) / n)``.

    Both are metrics (symmetric, triangle inequality), 0 for identical
    spaces.  Invariances: translation and orthogonal maps of either space
    (any ``alpha``); ``alpha = 0`` (CCA-like) also every invertible linear
    map; ``kind="angular"`` also isotropic scaling when ``alpha`` is 0 or 1
    (for ``0 < alpha < 1`` the mix of raw and whitened data depends on the
    scale, as in the paper).  Not invariant to anisotropic scaling for
    ``alpha > 0``, nor to non-linear maps.  Computed
    in feature space (O(n d^2), see module notes); zero-padding never
    materializes (the nuclear norm of the rectangular cross term is the same).

    Parameters
    ----------
    X : array-like or Tensor of shape (n_samples, d_x)
    Y : array-like or Tensor of shape (n_samples, d_y)
        Rows paired with ``X``'s; the widths may differ.
    alpha : float in [0, 1], default=1.0
        1: rotations only (Procrustes); 0: full whitening (CCA).
    kind : {"angular", "euclidean"}, default="angular"

    Returns
    -------
    float

    See Also
    --------
    procrustes_distance : Ding et al.'s normalized Procrustes distance.

    References
    ----------
    A. H. Williams, E. Kunz, S. Kornblith, S. W. Linderman. "Generalized Shape
    Metrics on Neural Representations", NeurIPS 2021.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_latent.metrics import shape_distance
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(100, 5))
    >>> Q = np.linalg.qr(rng.normal(size=(5, 5)))[0]
    >>> round(shape_distance(X, 2.0 * X @ Q + 1.0), 6)
    0.0
    >>> bool(shape_distance(X, rng.normal(size=(100, 5))) > 1.0)
    True
    """
    alpha = _check_alpha(alpha)
    if kind not in ("angular", "euclidean"):
        raise ValueError(f"kind={kind!r} is not supported; use 'angular' or 'euclidean'.")
    (xx, yy, xy), n = _stats(X, Y, "shape_distance")
    return _float(_shape_from(n, xx, yy, xy, alpha, kind))


def _procrustes_from(n, xx, yy, xy):
    """From the centered cross products; ``xx``, ``yy`` may be just their traces (0-d)."""
    tx = xx if xx.ndim == 0 else torch.trace(xx)
    ty = yy if yy.ndim == 0 else torch.trace(yy)
    nuc = torch.linalg.svdvals(xy).sum()
    return (2.0 - 2.0 * nuc / torch.sqrt(tx * ty)).clamp(0.0, 2.0)


def procrustes_distance(X, Y):
    """Orthogonal Procrustes distance of Ding et al. (2021) between two paired spaces (a distance).

    ``||X~||_F^2 + ||Y~||_F^2 - 2 ||X~^T Y~||_* = 2 - 2 ||X~^T Y~||_*`` with
    ``X~ = Xc / ||Xc||_F`` (column-centered, Frobenius-normalized), the
    squared residual of the best orthogonal map after zero-padding.  In
    [0, 2]; 0 when ``Y`` is a rotated, scaled, shifted copy of ``X``.
    Invariant to translation, orthogonal maps and isotropic scaling of either
    space; not invariant to anisotropic scaling or general linear maps.
    Equals ``2 (1 - cos(shape_distance(X, Y, alpha=1)))``.  Needs only the
    cross product ``Xc^T Yc`` and the two traces: one GEMM over row blocks
    (a third of CKA's work) and one d_x x d_y SVD.

    Parameters
    ----------
    X : array-like or Tensor of shape (n_samples, d_x)
    Y : array-like or Tensor of shape (n_samples, d_y)

    Returns
    -------
    float

    References
    ----------
    F. Ding, J.-S. Denain, J. Steinhardt. "Grounding Representation Similarity
    with Statistical Testing", NeurIPS 2021.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_latent.metrics import procrustes_distance
    >>> X = np.random.default_rng(0).normal(size=(50, 4))
    >>> round(procrustes_distance(X, -3.0 * X[:, ::-1]), 8)
    0.0
    """
    (xx, yy, xy), n = _stats(X, Y, "procrustes_distance", cross_only=True)
    return _float(_procrustes_from(n, xx, yy, xy))


def _reduce(C, keep):
    """Eigenbasis of C (descending) truncated to ``keep`` of the variance (1: numerical rank)."""
    w, V = torch.linalg.eigh(C)
    w, V = w.flip(0).clamp_min(0.0), V.flip(1)
    rank = int((w > _EIG_TOL * float(w[0])).sum())
    r = rank
    if keep < 1.0:
        frac = torch.cumsum(w, 0) / w.sum()
        r = min(rank, int((frac < keep).sum()) + 1)
    return w[:r], V[:, :r]


def _cca(n, xx, yy, xy, keep, func):
    """Canonical correlations (descending) and X-side quantities of CCA on reduced spaces."""
    return _cca_cross(n, _reduce(xx, keep), _reduce(yy, keep), xy, func)


def _cca_cross(n, rx, ry, xy, func):
    (lx, vx), (ly, vy) = rx, ry
    if lx.numel() + ly.numel() >= n - 1:
        raise ValueError(
            f"{func} needs more samples than the two spaces' dimensions together: n={n}, "
            f"{lx.numel()} + {ly.numel()} dimensions kept (CCA finds perfect correlations "
            "in too few samples)."
        )
    T = (vx.T @ xy @ vy) * lx.rsqrt()[:, None] * ly.rsqrt()[None, :]
    U, rho, _ = torch.linalg.svd(T, full_matrices=False)
    return rho.clamp(0.0, 1.0), U, lx, vx


def _svcca_from(n, xx, yy, xy, variance):
    return _cca(n, xx, yy, xy, variance, "svcca")[0].mean()


def svcca(X, Y, *, variance=0.99):
    """SVCCA similarity of Raghu et al. (2017) (a similarity).

    Each space is reduced by SVD to the top directions that explain
    ``variance`` of its variance (column-centered), then CCA between the two
    reduced spaces; the score is the mean of the ``min(r_x, r_y)`` canonical
    correlations.  In [0, 1].  Invariant to translation, orthogonal maps and
    isotropic scaling of either space (and to any invertible linear map when
    ``variance=1``, which keeps every non-null direction: plain CCA); not
    invariant to anisotropic scaling below ``variance=1`` (it changes which
    directions are kept).  From the cross-covariances (O(n d^2)).

    Parameters
    ----------
    X : array-like or Tensor of shape (n_samples, d_x)
    Y : array-like or Tensor of shape (n_samples, d_y)
    variance : float in (0, 1], default=0.99
        Share of each space's variance kept by the SVD step.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If ``n`` does not exceed the kept dimensions of both spaces together
        (CCA would find spurious perfect correlations).

    References
    ----------
    M. Raghu, J. Gilmer, J. Yosinski, J. Sohl-Dickstein. "SVCCA: Singular
    Vector Canonical Correlation Analysis for Deep Learning Dynamics and
    Interpretability", NeurIPS 2017.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_latent.metrics import svcca
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 6))
    >>> round(svcca(X, X @ rng.normal(size=(6, 6)), variance=1.0), 6)
    1.0
    """
    variance = _check_fraction(variance, "variance")
    (xx, yy, xy), n = _stats(X, Y, "svcca")
    return _float(_svcca_from(n, xx, yy, xy, variance))


def _check_fraction(v, name):
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name} must be a number in (0, 1], got {v!r}.")
    if not (math.isfinite(v) and 0.0 < v <= 1.0):
        raise ValueError(f"{name}={v!r} must be in (0, 1].")
    return float(v)


def _pwcca_from(n, xx, yy, xy, rx=None, ry=None):
    rx = _reduce(xx, 1.0) if rx is None else rx
    ry = _reduce(yy, 1.0) if ry is None else ry
    rho, U, lx, vx = _cca_cross(n, rx, ry, xy, "pwcca")
    # canonical variates of X, h_i = Xc a_i with ||h_i|| = 1: Xc^T h_i = V L^1/2 u_i
    weights = (vx @ (lx.sqrt()[:, None] * U[:, : rho.numel()])).abs().sum(dim=0)
    return (weights * rho).sum() / weights.sum()


def pwcca(X, Y):
    """Projection-weighted CCA of Morcos et al. (2018) (a similarity, not symmetric).

    CCA between the two spaces (column-centered, null directions dropped);
    canonical correlation ``rho_i`` is weighted by how much of ``X`` its
    canonical variate ``h_i = Xc a_i`` (unit norm) accounts for,
    ``alpha_i = sum_j |<h_i, x_j>|`` over the columns ``x_j`` of ``Xc``:
    ``PWCCA = sum_i alpha_i rho_i / sum_i alpha_i``.  In [0, 1].  The weights
    come from ``X``: ``pwcca(X, Y) != pwcca(Y, X)`` in general.  Invariant to
    translation and isotropic scaling of either space, to permutations and
    sign flips of ``X``'s columns and to any invertible linear map of ``Y``;
    *not* invariant to rotations of ``X`` (the weights sum absolute values
    over ``X``'s coordinates).  From the cross-covariances (O(n d^2)).

    Parameters
    ----------
    X : array-like or Tensor of shape (n_samples, d_x)
        The space whose canonical variates weight the correlations.
    Y : array-like or Tensor of shape (n_samples, d_y)

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If ``n`` does not exceed ``rank(X) + rank(Y)``.

    References
    ----------
    A. Morcos, M. Raghu, S. Bengio. "Insights on representational similarity
    in neural networks with canonical correlation", NeurIPS 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_latent.metrics import pwcca
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 5))
    >>> round(pwcca(X, X @ rng.normal(size=(5, 5)) + 2.0), 6)
    1.0
    """
    (xx, yy, xy), n = _stats(X, Y, "pwcca")
    return _float(_pwcca_from(n, xx, yy, xy))


__all__ = ["procrustes_distance", "pwcca", "shape_distance", "svcca"]

"""Inverse relative projection (Maiorca et al., 2024): solvers from cosines back to a space.

The normalized anchors ``A^ = norm(A - c)`` (k, d) are the design of a least
squares problem per query: ``y = argmin ||A^ y - r||^2 + alpha ||y||^2``.
Everything here works from one SVD ``A^ = U S V^T``:

* directions with ``s_j < rtol * s_1`` are dropped (a rank-revealing cutoff:
  near-null directions would amplify any mismatch of ``r`` by ``1 / s_j``);
* columns of ``A - c`` that are near-constant relative to the other columns
  (dead units) are set to zero first, so they can neither be amplified nor
  steal the output's norm;
* ``alpha="auto"`` is chosen by generalized cross-validation over a log grid,
  pooled over a set of query rows (:func:`select_inverse_alpha`).

Re-exported by :mod:`sklearn_latent.functional`.
"""

import math

import torch

from . import _EPS, _center_normalize, _safe_normalize
from ._translation import _gcv_scores, ridge_alpha_grid

__all__ = [
    "INVERSE_COND_WARNING",
    "INVERSE_RTOL",
    "anchor_condition_number",
    "inverse_relative_projection",
    "normalized_anchor_inverse",
    "select_inverse_alpha",
]

_F64 = torch.float64

#: Rank-revealing cutoff of the inverse: singular values of the normalized
#: anchors below ``INVERSE_RTOL * s_max`` are dropped (the kept condition
#: number is at most ``1 / INVERSE_RTOL``), and anchor columns whose norm is
#: below ``INVERSE_RTOL`` times the largest column norm are near-constant.
INVERSE_RTOL = 1e-6

#: Effective condition number above which the inverse is unreliable: a
#: mismatch of 1e-4 between the relative representations of two spaces (the
#: float32 rounding of a sum over a few hundred anchors) becomes a relative
#: error of order 1 in the output.
INVERSE_COND_WARNING = 1e4


def near_constant_columns(anchors, center=None, rtol=INVERSE_RTOL):
    """Columns of ``anchors - center`` whose norm is below ``rtol`` of the largest.

    Such columns (dead units, features constant on the anchors up to noise)
    carry no direction the cosines can determine; dividing by them amplifies
    noise.

    Examples
    --------
    >>> import torch
    >>> from sklearn_latent.functional._inverse import near_constant_columns
    >>> A = torch.tensor([[1.0, 3.0, 1e-30], [-1.0, 2.0, -1e-30]])
    >>> near_constant_columns(A, A.mean(0)).tolist()
    [False, False, True]
    """
    A = anchors.to(_F64)
    Ac = A if center is None else A - center.to(_F64)
    top_abs = float(Ac.abs().max()) if Ac.numel() else 0.0
    if top_abs > 0:  # no overflow or underflow of the squares at |A| ~ 1e180 or 1e-180
        Ac = Ac / top_abs
    norms = torch.linalg.vector_norm(Ac, dim=0)
    top = float(norms.max()) if norms.numel() else 0.0
    return norms <= rtol * top


def _design(anchors, center, rtol):
    """The normalized anchors (float64) with near-constant columns set to zero."""
    A = anchors.to(_F64)
    c = None if center is None else center.to(_F64)
    dead = near_constant_columns(A, c, rtol)
    if bool(dead.any()):
        A = A.clone()
        A[:, dead] = 0.0 if c is None else c[dead]
    return _center_normalize(A, c)


def _kept(S, rtol):
    top = float(S[0]) if S.numel() else 0.0
    return S > rtol * top if top > 0 else torch.zeros_like(S, dtype=torch.bool)


def normalized_anchor_inverse(anchors, *, center=None, alpha=0.0, rtol=INVERSE_RTOL):
    """Right inverse of the normalized anchors used by :func:`inverse_relative_projection`.

    Returns ``P`` (k, d) with ``R @ P`` the least-squares (ridge ``alpha``)
    solution ``y`` of ``norm(A - center) y = r`` for every row ``r`` of ``R``:
    ``P = U diag(s / (s^2 + alpha)) V^T`` from the SVD of the normalized
    anchors, keeping only singular values above ``rtol * s_max`` (the rest,
    near-null directions, are dropped rather than amplified), after setting
    near-constant columns (:func:`near_constant_columns`) to zero.  Computed in
    float64, returned in the anchors' dtype.

    Examples
    --------
    >>> import torch
    >>> from sklearn_latent.functional import normalized_anchor_inverse
    >>> A = torch.eye(3, dtype=torch.float64)
    >>> bool(torch.allclose(normalized_anchor_inverse(A), A))
    True
    """
    A_hat = _design(anchors, center, rtol)
    U, S, Vh = torch.linalg.svd(A_hat, full_matrices=False)
    keep = _kept(S, rtol)
    Sk = S[keep]
    gain = Sk / (Sk.square() + alpha) if alpha > 0 else 1.0 / Sk
    P = (U[:, keep] * gain) @ Vh[keep]
    return P.to(anchors.dtype)


def anchor_condition_number(normalized_anchors, *, alpha=0.0, rtol=INVERSE_RTOL):
    """Effective 2-norm condition number of the inverse of a (k, d) anchor matrix.

    The largest gain of the solve relative to the gain of the top direction,
    ``max_j g_j / g_1``, with ``g_j = 1 / s_j`` over the singular values kept
    by :func:`normalized_anchor_inverse` (above ``rtol * s_max``), i.e.
    ``s_max / s_min_kept``; with a ridge ``g_j = s_j / (s_j^2 + alpha)``.
    Exactly or nearly dependent directions (dead units, constant features)
    are dropped by the solve and do not count.  ``inf`` for a zero matrix.

    Examples
    --------
    >>> import torch
    >>> from sklearn_latent.functional import anchor_condition_number
    >>> anchor_condition_number(torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.5, 0.0]]))
    2.0
    """
    A = normalized_anchors.to(_F64)
    s = torch.linalg.svdvals(A)
    if s.numel() == 0 or float(s[0]) == 0.0:
        return math.inf
    kept = s[_kept(s, rtol)]
    if alpha > 0:
        return float((kept / (kept.square() + alpha)).max() * (s[0] + alpha / s[0]))
    return float(s[0] / kept[-1])


def select_inverse_alpha(normalized_anchors, R, *, rtol=INVERSE_RTOL):
    """Ridge penalty of the inverse chosen by GCV, pooled over query rows ``R``.

    Each row ``r`` of ``R`` (m, k) is a least-squares problem with design
    ``A^`` (the normalized anchors, k x d): ``k`` observations.  From one SVD
    of ``A^``, the generalized cross-validation score of every candidate on
    :func:`~sklearn_latent.functional.ridge_alpha_grid` is summed over the
    rows, and the best candidate returned (0 included).  Typical rows: the
    anchors' own relative representations computed in the *source* space, so
    the score measures how the mismatch between the two spaces is amplified.

    Returns
    -------
    alpha : float
    alphas, scores : Tensor
        The candidates and their pooled GCV scores.

    Examples
    --------
    >>> import torch
    >>> from sklearn_latent.functional import select_inverse_alpha
    >>> g = torch.Generator().manual_seed(0)
    >>> A = torch.nn.functional.normalize(torch.randn(40, 30, generator=g, dtype=torch.float64))
    >>> R = A @ A.T + 0.3 * torch.randn(40, 40, generator=g, dtype=torch.float64)
    >>> alpha, alphas, scores = select_inverse_alpha(A, R)
    >>> alpha > 0
    True
    """
    A = normalized_anchors.to(_F64)
    R = R.to(_F64)
    U, S, _ = torch.linalg.svd(A, full_matrices=False)
    keep = _kept(S, rtol)
    Sk, Uk = S[keep], U[:, keep]
    Z = R @ Uk  # (m, q) coordinates of every query along the kept directions
    w = Sk.square()
    e = w * Z.square().sum(0)
    alphas = ridge_alpha_grid(w, A.shape[1])
    scores = _gcv_scores(w, e, float(R.square().sum()), A.shape[0], 0, alphas)
    best = int(torch.argmin(scores)) if bool(torch.isfinite(scores).any()) else len(alphas) - 1
    return float(alphas[best]), alphas, scores


def inverse_relative_projection(R, inverse, *, scale=None, offset=None, columns=None):
    """Absolute vectors whose cosine relative representation is ``R``.

    ``y = norm(R @ inverse) * scale + offset`` (Maiorca et al., 2024), with
    ``inverse`` from :func:`normalized_anchor_inverse`.  ``scale`` (scalar)
    rescales the unit directions (e.g. to the mean anchor norm); ``None`` keeps
    unit norm.  ``offset`` (d,) undoes centering.

    Anchor subsets: ``columns`` (index tensor) restricts ``R`` to the columns
    of the anchors ``inverse`` was computed from.  With a list of inverses and
    a matching list of ``columns`` (``None`` entries = all columns), the
    reconstructions of the subspaces are averaged and the average
    renormalized: ``y = norm(mean_s norm(R[:, c_s] @ inverse_s)) * scale +
    offset``, so disagreeing subspaces do not shrink the output.
    """
    if isinstance(inverse, (list, tuple)):
        cols = columns if columns is not None else [None] * len(inverse)
        Y = None
        for P, c in zip(inverse, cols):
            D = _safe_normalize((R if c is None else R[:, c]) @ P)
            Y = D if Y is None else Y.add_(D)
        Y = _safe_normalize(Y)
    else:
        Y = (R if columns is None else R[:, columns]) @ inverse
        if not (Y.requires_grad or (offset is not None and offset.requires_grad)):
            # Y is a fresh GEMM result: normalize, rescale and shift it in place
            # (two passes over the output instead of four and no copies)
            div = torch.linalg.vector_norm(Y, dim=1, keepdim=True)
            div = div.clamp_min_(_EPS.get(Y.dtype, 1e-12))
            if scale is not None:
                div = div.div_(scale)
            Y = Y.div_(div)
            return Y if offset is None else Y.add_(offset)
        Y = _safe_normalize(Y)
    if scale is not None:
        Y = Y * scale
    if offset is not None:
        Y = Y + offset
    return Y

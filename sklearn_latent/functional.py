"""Stateless torch kernels: the one implementation of every formula.

Functions here take and return :class:`torch.Tensor` on any device, do no
input validation (the estimators validate once at the boundary) and keep no
state.  They are what the estimators, the torch modules and the distributed
helpers call.

Similarities and distances
--------------------------
``cosine``
    ``norm(x) . norm(a)``; a zero vector has cosine 0 with everything.
``angular``
    ``arccos(cosine)`` in radians, in ``[0, pi]``.
``dot``
    ``x . a``.
``euclidean``, ``l1``, ``linf``, ``lp``
    Minkowski distances ``||x - a||_p``.

Cosine, dot and euclidean are computed with one GEMM each (euclidean as
``||x||^2 + ||a||^2 - 2 x.a`` clamped at 0), never through an ``(n, k, d)``
broadcast.
"""

import math

import torch

__all__ = [
    "METRICS",
    "SIMILARITIES",
    "inverse_relative_projection",
    "layer_normalize",
    "normalized_anchor_inverse",
    "pairwise",
    "relative_projection",
    "sparsify",
]

#: Every metric name understood by :func:`pairwise`.
METRICS = ("cosine", "angular", "dot", "euclidean", "l1", "linf", "lp")
#: Metrics whose larger values mean "more similar" (the rest are distances).
SIMILARITIES = ("cosine", "dot")
#: Metrics that only depend on differences ``x - a`` (translation invariant).
_DIFFERENCE_METRICS = ("euclidean", "l1", "linf", "lp")

_EPS = {torch.float16: 1e-4, torch.bfloat16: 1e-3, torch.float32: 1e-12, torch.float64: 1e-300}


def _safe_norms(X):
    """Row L2 norms, shape (n, 1), clamped away from 0: the divisor of every normalization."""
    norms = torch.linalg.vector_norm(X, dim=1, keepdim=True)
    return norms.clamp_min(_EPS.get(X.dtype, 1e-12))


def _safe_normalize(X):
    """Rows divided by their L2 norm; zero rows stay zero (never NaN)."""
    return X / _safe_norms(X)


def _prepare(anchors, metric, center):
    """Anchor-side quantities computed once per call, reused for every chunk."""
    if center is not None:
        anchors = anchors - center
    if metric in ("cosine", "angular"):
        return _safe_normalize(anchors)
    if metric == "euclidean":
        return anchors, (anchors * anchors).sum(dim=1)
    return anchors


# Rows per block of the no-grad GEMM kernels, as a number of elements of the
# (rows, d) block (64 MB of float32 on CPU, 256 MB elsewhere).  A block bounds
# the only temporary, one centered block, so nothing X-sized is allocated
# besides the result; blocks stay large so that the per-op costs (thread-pool
# synchronization on a busy CPU, kernel launches on a GPU) remain negligible.
_BLOCK_ELEMENTS = {"cpu": 1 << 24}
_BLOCK_ELEMENTS_OTHER = 1 << 26
#: Metrics computed from one GEMM per block.
_GEMM_METRICS = ("cosine", "angular", "dot", "euclidean")


def _gemm_blocked(X, prepared, metric, center):
    """Cosine, dot or euclidean (no autograd) by row blocks into one preallocated result.

    Same formulas as the differentiable path of :func:`_pairwise_prepared`:
    each block is centered explicitly (never through the rank-one correction
    ``X @ A.T - c @ A.T``, which cancels catastrophically in float32 on data
    with large offsets) into one reused buffer, the GEMM writes straight into
    the result, and cosine divides the result rows by ``||x - c||`` in place.
    """
    A, a_sq = prepared if metric == "euclidean" else (prepared, None)
    n, d = X.shape
    out = torch.empty((n, A.shape[0]), dtype=X.dtype, device=X.device)
    step = max(1, _BLOCK_ELEMENTS.get(X.device.type, _BLOCK_ELEMENTS_OTHER) // d)
    if center is not None:
        buf = torch.empty((min(step, n), d), dtype=X.dtype, device=X.device)
    for start in range(0, n, step):
        xb = X[start : start + step]
        ob = out[start : start + step]
        if center is not None:
            xb = torch.sub(xb, center, out=buf[: xb.shape[0]])
        if metric == "dot":
            torch.mm(xb, A.T, out=ob)
            continue
        if metric == "euclidean":
            x_sq = torch.linalg.vector_norm(xb, dim=1, keepdim=True).square_()
            torch.addmm(a_sq, xb, A.T, alpha=-2.0, out=ob)
            ob.add_(x_sq).clamp_min_(0.0).sqrt_()
        else:  # same divisor as _safe_normalize: a zero row gives 0
            torch.mm(xb, A.T, out=ob)
            ob.div_(_safe_norms(xb))
    return out


def _pairwise_prepared(X, prepared, metric, center, p):
    parts = prepared if isinstance(prepared, tuple) else (prepared,)
    needs_grad = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (X, center, *parts)
    )
    if metric in _GEMM_METRICS and not needs_grad:
        out = _gemm_blocked(X, prepared, metric, center)
        return torch.arccos(out.clamp_(-1.0, 1.0), out=out) if metric == "angular" else out
    # Differentiable path (also the reference the blocked kernel is tested against).
    if center is not None:
        X = X - center
    if metric in ("cosine", "angular"):
        out = _safe_normalize(X) @ prepared.T
        if metric == "angular":
            out = torch.arccos(out.clamp_(-1.0, 1.0))
        return out
    if metric == "dot":
        return X @ prepared.T
    if metric == "euclidean":
        A, a_sq = prepared
        x_sq = (X * X).sum(dim=1, keepdim=True)
        out = torch.addmm(a_sq.unsqueeze(0), X, A.T, alpha=-2.0)
        return out.add_(x_sq).clamp_min_(0.0).sqrt_()
    if metric == "l1":
        return torch.cdist(X, prepared, p=1.0)
    if metric == "linf":
        return torch.cdist(X, prepared, p=math.inf)
    if metric == "lp":
        return torch.cdist(X, prepared, p=float(p))
    raise ValueError(f"metric={metric!r} is not supported; expected one of {METRICS}.")


def _effective_center(anchors, metric, center):
    # Difference metrics do not change under a common shift; subtracting the
    # anchor mean anyway removes the cancellation of ||x||^2 + ||a||^2 - 2x.a
    # on data with large offsets.
    if center is None and metric in _DIFFERENCE_METRICS:
        return anchors.mean(dim=0)
    return center


def pairwise(X, anchors, metric="cosine", *, center=None, p=2.0):
    """Similarities or distances between rows of ``X`` (n, d) and ``anchors`` (k, d).

    Parameters
    ----------
    X, anchors : Tensor
        Same device and dtype.
    metric : str
        One of :data:`METRICS`.
    center : Tensor of shape (d,) or None
        Subtracted from both sides first (changes cosine, angular and dot; the
        distances are translation invariant anyway).
    p : float
        Order of the ``"lp"`` distance.

    Returns
    -------
    Tensor of shape (n, k)
    """
    center = _effective_center(anchors, metric, center)
    return _pairwise_prepared(X, _prepare(anchors, metric, center), metric, center, p)


def sparsify(R, top_k=None, exponent=1.0):
    """ASIF-style sparse relative representation.

    Keeps the ``top_k`` largest entries of each row (the rest become 0) and
    raises the result to ``exponent`` with its sign kept
    (``sign(r) * |r| ** exponent``, so negative similarities never give NaN).
    """
    if top_k is not None and top_k < R.shape[1]:
        vals, idx = torch.topk(R, top_k, dim=1)
        R = torch.zeros_like(R).scatter_(1, idx, vals)
    if exponent != 1.0:
        R = torch.sign(R) * R.abs().pow(exponent)
    return R


def layer_normalize(R):
    """Per-row standardization (LayerNorm without affine); constant rows become 0."""
    mean = R.mean(dim=1, keepdim=True)
    std = R.std(dim=1, correction=0, keepdim=True)
    return (R - mean) / std.clamp_min(_EPS.get(R.dtype, 1e-12))


def relative_projection(
    X, anchors, metric="cosine", *, center=None, p=2.0, top_k=None, exponent=1.0
):
    """Relative representation of ``X`` with respect to ``anchors``.

    ``r(x) = [sim(x, a_1), ..., sim(x, a_k)]`` (Moschella et al., 2023), with
    optional centering by ``center`` and ASIF sparsification (see
    :func:`sparsify`; only for similarity metrics).

    Returns
    -------
    Tensor of shape (n, k)
    """
    R = pairwise(X, anchors, metric, center=center, p=p)
    if top_k is not None or exponent != 1.0:
        R = sparsify(R, top_k, exponent)
    return R


def _relative_projector(anchors, metric, *, center=None, p=2.0, top_k=None, exponent=1.0):
    """``relative_projection`` with the anchor side precomputed: a closure over chunks."""
    center = _effective_center(anchors, metric, center)
    prepared = _prepare(anchors, metric, center)

    def project(X):
        R = _pairwise_prepared(X, prepared, metric, center, p)
        if top_k is not None or exponent != 1.0:
            R = sparsify(R, top_k, exponent)
        return R

    return project


def normalized_anchor_inverse(anchors, *, center=None, alpha=0.0):
    """Right inverse of the normalized anchors used by :func:`inverse_relative_projection`.

    Returns ``P`` (k, d) with ``R @ P`` the least-squares (ridge ``alpha``)
    solution ``y`` of ``norm(A - center) y = r`` for every row ``r`` of ``R``.
    Computed in float64 for stability, returned in the anchors' dtype.
    """
    A = anchors if center is None else anchors - center
    A_hat = _safe_normalize(A.to(torch.float64))
    if alpha > 0:
        gram = A_hat @ A_hat.T
        gram.diagonal().add_(alpha)
        P = torch.linalg.solve(gram, A_hat)  # (k, d) = (A A^T + a I)^-1 A
    else:
        P = torch.linalg.pinv(A_hat).T  # (k, d)
    return P.to(anchors.dtype)


def inverse_relative_projection(R, inverse, *, scale=None, offset=None):
    """Absolute vectors whose cosine relative representation is ``R``.

    ``y = norm(R @ inverse) * scale + offset`` (Maiorca et al., 2024), with
    ``inverse`` from :func:`normalized_anchor_inverse`.  ``scale`` (scalar)
    rescales the unit directions (e.g. to the mean anchor norm); ``None`` keeps
    unit norm.  ``offset`` (d,) undoes centering.
    """
    Y = _safe_normalize(R @ inverse)
    if scale is not None:
        Y = Y * scale
    if offset is not None:
        Y = Y + offset
    return Y

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
    "alignment_score",
    "csls_knn_mean",
    "csls_mutual_nn",
    "match_centroids",
    "polar",
    "procrustes_polar",
    "quadratic_assignment_2opt",
    "inverse_relative_projection",
    "layer_normalize",
    "mutual_nearest_neighbors",
    "normalized_anchor_inverse",
    "pairwise",
    "relative_projection",
    "sinkhorn",
    "sparse_dot",
    "sparse_rows_to_support",
    "sparsify",
    "topk_similarity",
]

#: Every metric name understood by :func:`pairwise`.
METRICS = ("cosine", "angular", "dot", "euclidean", "l1", "linf", "lp")
#: Metrics whose larger values mean "more similar" (the rest are distances).
SIMILARITIES = ("cosine", "dot")
#: Metrics that only depend on differences ``x - a`` (translation invariant).
_DIFFERENCE_METRICS = ("euclidean", "l1", "linf", "lp")

_EPS = {torch.float16: 1e-4, torch.bfloat16: 1e-3, torch.float32: 1e-12, torch.float64: 1e-300}


#: Rows whose norm is below this many units of roundoff of the operands they were
#: computed from are zero: their direction is rounding noise.
_NOISE_ULPS = 16


def _pow2(m):
    """Powers of two ``2 ** (e - 1)`` for ``m = f * 2 ** e``, ``f`` in [0.5, 1) (0 gives 0.5).

    Dividing by them is exact and brings a non-zero ``m`` into [1, 2).
    """
    return torch.ldexp(torch.ones_like(m), torch.frexp(m).exponent - 1)


def _row_scale(X):
    """Per-row power of two near the largest |entry|: rows divided by it lie in [1, 2)."""
    return _pow2(X.detach().abs().amax(dim=1, keepdim=True))


def _row_norms(X):
    """L2 norm of each row (n, 1) without overflow or underflow of the squares."""
    scale = _row_scale(X)
    return torch.linalg.vector_norm(X / scale, dim=1, keepdim=True) * scale


def _safe_normalize(X, ref=None):
    """Rows divided by their L2 norm; zero rows stay zero (never NaN).

    Each row is first divided by a power of two near its largest entry (exact),
    so rows of any finite magnitude (1e30 or 1e-30 in float32) are normalized
    correctly instead of overflowing or being taken for zero.

    ``ref`` (one entry per row), when given, is the size of the operands a row
    was computed from, e.g. ``||x|| + ||c||`` for ``x - c``: rows whose norm is
    within rounding error of it are zero up to cancellation and also give 0,
    instead of a unit vector pointing in the direction of the rounding noise.
    """
    scale = _row_scale(X)
    X = X / scale
    norms = torch.linalg.vector_norm(X, dim=1, keepdim=True)
    if ref is not None:
        noise = (ref.reshape(-1, 1) / scale) * (_NOISE_ULPS * torch.finfo(X.dtype).eps)
        norms = torch.where(norms <= noise, torch.inf, norms)  # finite / inf = 0
    return X / norms.clamp_min(_EPS.get(X.dtype, 1e-12))


def _center_normalize(X, center):
    """``_safe_normalize(X - center)``, with rows equal to ``center`` up to rounding -> 0."""
    if center is None:
        return _safe_normalize(X)
    ref = _row_norms(X).reshape(-1) + _row_norms(center.reshape(1, -1)).reshape(())
    return _safe_normalize(X - center, ref)


def _prepare(anchors, metric, center):
    """Anchor-side quantities computed once per call, reused for every chunk."""
    if metric in ("cosine", "angular"):
        return _center_normalize(anchors, center)
    if center is not None:
        anchors = anchors - center
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


#: Blocks of the GEMM kernels are whole multiples of this many rows, and a
#: short last block joins the one before: BLAS rounds a row differently
#: depending on where it falls in the call (see ``_backend.MIN_CHUNK_ROWS``),
#: so the kernels must not add block boundaries of their own that chunking
#: would move.
_MIN_BLOCK_ROWS = 32


def _row_blocks(n, step, min_rows=_MIN_BLOCK_ROWS):
    """``(start, stop)`` row blocks of ``step`` rows; a short last one joins the one before."""
    blocks = [(start, min(start + step, n)) for start in range(0, n, step)]
    if len(blocks) > 1 and blocks[-1][1] - blocks[-1][0] < min_rows:
        blocks[-2:] = [(blocks[-2][0], n)]
    return blocks


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
    step = _BLOCK_ELEMENTS.get(X.device.type, _BLOCK_ELEMENTS_OTHER) // d
    step = max(_MIN_BLOCK_ROWS, step - step % _MIN_BLOCK_ROWS)
    blocks = _row_blocks(n, step)
    if center is not None:
        buf = torch.empty((max(b - a for a, b in blocks), d), dtype=X.dtype, device=X.device)
        c_norm = torch.linalg.vector_norm(center)
    for start, stop in blocks:
        xb = X[start:stop]
        ob = out[start:stop]
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
            norms = torch.linalg.vector_norm(xb, dim=1, keepdim=True)
            if center is not None:  # equal to center up to rounding: zero (as _center_normalize)
                ref = torch.linalg.vector_norm(X[start:stop], dim=1, keepdim=True)
                noise = (ref + c_norm) * (_NOISE_ULPS * torch.finfo(X.dtype).eps)
                norms = torch.where(norms <= noise, torch.inf, norms)
            ob.div_(norms.clamp_min_(_EPS.get(X.dtype, 1e-12)))
    return out


def _pairwise_prepared(X, prepared, metric, center, p, blocked=True):
    """``blocked=False`` always takes the single-expression (differentiable) path,
    whose graph does not depend on the number of rows: what ``torch.jit.trace``
    and ``torch.export`` must record (the blocked kernels' Python loops would be
    frozen at the example's size)."""
    parts = prepared if isinstance(prepared, tuple) else (prepared,)
    needs_grad = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (X, center, *parts)
    )
    if metric in _GEMM_METRICS and not needs_grad and blocked:
        out = _gemm_blocked(X, prepared, metric, center)
        return torch.arccos(out.clamp_(-1.0, 1.0), out=out) if metric == "angular" else out
    # Differentiable path (also the reference the blocked kernel is tested against).
    if metric in ("cosine", "angular"):
        out = _center_normalize(X, center) @ prepared.T
        if metric == "angular":
            out = torch.arccos(out.clamp_(-1.0, 1.0))
        return out
    if center is not None:
        X = X - center
    if metric == "dot":
        return X @ prepared.T
    if metric == "euclidean":
        A, a_sq = prepared
        x_sq = (X * X).sum(dim=1, keepdim=True)
        out = torch.addmm(a_sq.unsqueeze(0), X, A.T, alpha=-2.0)
        return out.add_(x_sq).clamp_min_(0.0).sqrt_()
    if metric == "l1":
        return _minkowski(X, prepared, 1.0, blocked)
    if metric == "linf":
        return _minkowski(X, prepared, math.inf, blocked)
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
    return _relative_projector(anchors, metric, center=center, p=p)(X)


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
    """Per-row standardization (LayerNorm without affine); constant rows become 0.

    Rows are first divided by a power of two near their largest entry (exact;
    the variance neither overflows nor underflows).  A row is constant when its
    largest and smallest entries are equal (its computed mean may still differ
    from the constant by rounding, which must not be blown up to +-1).
    """
    lo, hi = torch.aminmax(R.detach(), dim=1, keepdim=True)
    R = R / _pow2(torch.maximum(hi, -lo))
    mean = R.mean(dim=1, keepdim=True)
    std = R.std(dim=1, correction=0, keepdim=True)
    std = torch.where(lo == hi, torch.inf, std)  # finite / inf = 0
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


#: How each metric scales when X, the anchors and the center are multiplied by c > 0.
_SCALE_DEGREE = {"cosine": 0, "angular": 0, "dot": 2, "euclidean": 1, "l1": 1, "linf": 1, "lp": 1}


def _max_abs(T):
    """Largest |entry| of a tensor as a Python float (0 for None or empty)."""
    if T is None or T.numel() == 0:
        return 0.0
    lo, hi = torch.aminmax(T.detach())
    return float(torch.maximum(hi, -lo))


def _rescale_factor(m, dtype, d, q=2.0):
    """1.0 when values of magnitude ``m`` are safe in the kernels, else a power of two.

    Safe: the q-th powers (squares; ``|x - a| ** p`` for ``"lp"``) summed over
    ``d`` features neither overflow nor lose precision to underflow.  Outside
    that range the caller divides by the returned power of two (exact), which
    brings ``m`` into [1, 2).
    """
    if m == 0.0 or not math.isfinite(m):
        return 1.0
    info = torch.finfo(dtype)
    high = math.frexp(info.max)[1] - 4 - math.log2(max(d, 1))
    low = -math.frexp(info.tiny)[1] + math.log2(info.eps)
    limit = max(1.0, min(high, low) / q)
    e = math.frexp(m)[1]
    if -limit <= e <= limit:
        return 1.0
    return math.ldexp(1.0, e - 1)


def _relative_projector(
    anchors, metric, *, center=None, p=2.0, top_k=None, exponent=1.0, row_scale_free=False
):
    """``relative_projection`` with the anchor side precomputed: a closure over chunks.

    Chunks whose magnitude (with the anchors') would overflow or underflow the
    kernels' squares (``|x| ~ 1e30`` or ``1e-30`` in float32) are computed on
    copies of X, anchors and center divided by a power of two ``c`` (exact) and
    the result is multiplied back by ``c ** degree`` (0 for cosine and angular,
    1 for distances, 2 for dot).  Data in the ordinary range take the direct path.
    ``row_scale_free=True`` skips that last product (the caller normalizes each
    row, e.g. L2 or LayerNorm, which a positive factor does not change), so dot
    products beyond the dtype's range still give the normalized result.
    """
    center = _effective_center(anchors, metric, center)
    prepared = {1.0: (center, _prepare(anchors, metric, center))}
    a_max = max(_max_abs(anchors), _max_abs(center))
    q = max(2.0, float(p)) if metric == "lp" else 2.0

    def project(X):
        c = _rescale_factor(max(_max_abs(X), a_max), X.dtype, X.shape[1], q)
        if c not in prepared:
            cen = None if center is None else center / c
            prepared[c] = (cen, _prepare(anchors / c, metric, cen))
        cen, prep = prepared[c]
        R = _pairwise_prepared(X if c == 1.0 else X / c, prep, metric, cen, p)
        for _ in range(_SCALE_DEGREE.get(metric, 0) if c != 1.0 and not row_scale_free else 0):
            R = R * c
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
    A = anchors.to(torch.float64)
    A_hat = _center_normalize(A, None if center is None else center.to(torch.float64))
    if alpha > 0:
        gram = A_hat @ A_hat.T
        gram.diagonal().add_(alpha)
        P = torch.linalg.solve(gram, A_hat)  # (k, d) = (A A^T + a I)^-1 A
    else:
        P = torch.linalg.pinv(A_hat).T  # (k, d)
    return P.to(anchors.dtype)


def inverse_relative_projection(R, inverse, *, scale=None, offset=None, columns=None):
    """Absolute vectors whose cosine relative representation is ``R``.

    ``y = norm(R @ inverse) * scale + offset`` (Maiorca et al., 2024), with
    ``inverse`` from :func:`normalized_anchor_inverse`.  ``scale`` (scalar)
    rescales the unit directions (e.g. to the mean anchor norm); ``None`` keeps
    unit norm.  ``offset`` (d,) undoes centering.

    Anchor subsets: ``columns`` (index tensor) restricts ``R`` to the columns
    of the anchors ``inverse`` was computed from.  With a list of inverses and
    a matching list of ``columns`` (``None`` entries = all columns), the
    reconstructions of the subspaces are averaged:
    ``y = mean_s norm(R[:, c_s] @ inverse_s) * scale + offset`` (the mean of
    unit vectors is not renormalized, so disagreeing subspaces shrink the
    output towards ``offset``).
    """
    if isinstance(inverse, (list, tuple)):
        cols = columns if columns is not None else [None] * len(inverse)
        Y = None
        for P, c in zip(inverse, cols):
            D = _safe_normalize((R if c is None else R[:, c]) @ P)
            Y = D if Y is None else Y.add_(D)
        Y = Y.div_(len(inverse))
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


# --------------------------------------------------------------------------
# --- latent space translation ---
# --------------------------------------------------------------------------
# Maiorca et al., "Latent Space Translation via Semantic Alignment" (NeurIPS
# 2023).  Every closed form below needs only the sufficient statistics of the
# paired rows (count, means, centered sums of squares and cross-products),
# accumulated in float64 and merged exactly (Chan, Golub and LeVeque), so
# ``fit`` on all rows, ``partial_fit`` over chunks and a map-reduce over blocks
# are the same computation.
from typing import NamedTuple, Optional  # noqa: E402

__all__ += [  # extends the list at the top of the module
    "TRANSLATION_METHODS",
    "TRANSLATION_SCALINGS",
    "TranslationMap",
    "TranslationStats",
    "merge_translation_stats",
    "solve_translation",
    "translation_stats",
]

#: Methods understood by :func:`solve_translation`.
TRANSLATION_METHODS = ("orthogonal", "scaled", "linear", "affine")
#: Scalings understood by :func:`solve_translation`.
TRANSLATION_SCALINGS = ("standard", "center", None)

_F64 = torch.float64
_EPS64 = torch.finfo(_F64).eps


class TranslationStats(NamedTuple):
    """Sufficient statistics of paired rows ``(x_i, y_i)``, mergeable exactly.

    Fields are float64 tensors (or float64 numpy arrays: every function here
    accepts both) except ``n``.

    Attributes
    ----------
    n : int
        Number of rows.
    x_mean : (d_x,)
    y_mean : (d_y,)
    x_ss : (d_x,)
        ``sum_i (x_i - x_mean) ** 2`` per column.
    y_ss : (d_y,)
        ``sum_i (y_i - y_mean) ** 2`` per column.
    xy : (d_x, d_y)
        ``sum_i (x_i - x_mean)^T (y_i - y_mean)``.
    xx : (d_x, d_x) or None
        ``sum_i (x_i - x_mean)^T (x_i - x_mean)``; only needed by the
        ``"linear"`` and ``"affine"`` methods and by ``"scaled"`` when
        ``d_x > d_y`` (``None`` saves one GEMM when it is not needed).
    """

    n: int
    x_mean: torch.Tensor
    y_mean: torch.Tensor
    x_ss: torch.Tensor
    y_ss: torch.Tensor
    xy: torch.Tensor
    xx: Optional[torch.Tensor]


class TranslationMap(NamedTuple):
    """The solved translation, folded so that ``y = x @ coef + intercept``.

    Attributes
    ----------
    coef : (d_x, d_y)
    intercept : (d_y,)
    inverse_coef : (d_y, d_x)
    inverse_intercept : (d_x,)
        ``x = y @ inverse_coef + inverse_intercept``: the exact inverse on the
        image (transpose) for ``"orthogonal"``/``"scaled"``, the
        pseudo-inverse for ``"linear"``/``"affine"``.
    map : (d_x, d_y)
        The map between the scaled coordinates ``(x - x_mean) / x_scale`` and
        ``(y - y_mean) / y_scale``: the (semi-)orthogonal ``R`` for
        ``"orthogonal"`` and ``"scaled"`` (without the scale), the least-squares
        ``W`` for ``"linear"`` and ``"affine"``.
    scale : float
        The isotropic scale of ``"scaled"``; 1.0 for the other methods.
    bias : (d_y,)
        Bias in scaled coordinates (non-zero only for ``"affine"`` with
        ``scaling=None``, where the coordinates are not centered).
    x_mean, x_scale : (d_x,)
    y_mean, y_scale : (d_y,)
        The per-space shift and scale defining the scaled coordinates
        (zeros and ones when a scaling does not apply).
    rank : int
        Numerical rank of the matrix the map is solved from (the scaled
        cross-covariance for ``"orthogonal"``/``"scaled"``, the ridge Gram
        matrix for ``"linear"``/``"affine"``).
    full_rank : int
        The rank that determines the map uniquely: ``min(d_x, d_y)`` or ``d_x``.
    """

    coef: torch.Tensor
    intercept: torch.Tensor
    inverse_coef: torch.Tensor
    inverse_intercept: torch.Tensor
    map: torch.Tensor
    scale: float
    bias: torch.Tensor
    x_mean: torch.Tensor
    x_scale: torch.Tensor
    y_mean: torch.Tensor
    y_scale: torch.Tensor
    rank: int
    full_rank: int


def _centered64(X):
    """float64 copy of X minus its float64 column mean (two-pass: exact for offset data)."""
    Xc = X.to(_F64, copy=True)
    mean = Xc.mean(dim=0)
    Xc.sub_(mean)
    return Xc, mean


def translation_stats(X, Y, *, gram=True):
    """Sufficient statistics of the paired rows of ``X`` (n, d_x) and ``Y`` (n, d_y).

    Computed in float64 on the tensors' device, centered on this chunk's own
    means (two passes), so float32 input with large offsets keeps float64
    accuracy.  Cost: one (d_x, d_y) GEMM, plus one (d_x, d_x) GEMM when ``gram``.

    Examples
    --------
    >>> import torch
    >>> from sklearn_latent.functional import translation_stats
    >>> X, Y = torch.randn(100, 4), torch.randn(100, 3)
    >>> s = translation_stats(X, Y, gram=False)
    >>> s.n, tuple(s.xy.shape), s.xx is None
    (100, (4, 3), True)
    """
    Xc, x_mean = _centered64(X)
    Yc, y_mean = _centered64(Y)
    xy = Xc.T @ Yc
    xx = Xc.T @ Xc if gram else None
    # (column norms: one memory-bound pass, no temporary; einsum is ~20x slower here)
    x_ss = torch.linalg.vector_norm(Xc, dim=0).square_()
    y_ss = torch.linalg.vector_norm(Yc, dim=0).square_()
    return TranslationStats(int(X.shape[0]), x_mean, y_mean, x_ss, y_ss, xy, xx)


def _as_stats(stats, device=None):
    """The same statistics as float64 tensors on ``device`` (default: where they are)."""
    if device is None:
        device = stats.x_mean.device if isinstance(stats.x_mean, torch.Tensor) else "cpu"

    def conv(a):
        return None if a is None else torch.as_tensor(a, dtype=_F64, device=device)

    return TranslationStats(int(stats.n), *(conv(f) for f in stats[1:]))


def merge_translation_stats(a, b):
    """Statistics of the union of two disjoint sets of rows (exact, order free).

    Centered merging (Chan, Golub and LeVeque, 1979): the cross terms are
    ``n_a n_b / n * delta_x delta_y^T`` with ``delta`` the difference of the
    two means, so nothing cancels catastrophically on offset data.  ``xx`` is
    kept only when both sides have it.

    Examples
    --------
    >>> import torch
    >>> from sklearn_latent.functional import merge_translation_stats, translation_stats
    >>> X, Y = torch.randn(50, 3, dtype=torch.float64), torch.randn(50, 2, dtype=torch.float64)
    >>> whole = translation_stats(X, Y)
    >>> parts = merge_translation_stats(translation_stats(X[:20], Y[:20]),
    ...                                 translation_stats(X[20:], Y[20:]))
    >>> bool(torch.allclose(whole.xy, parts.xy)), bool(torch.allclose(whole.xx, parts.xx))
    (True, True)
    """
    if int(a.n) == 0:
        return _as_stats(b)
    a = _as_stats(a)
    b = _as_stats(b, a.x_mean.device)
    if b.n == 0:
        return a
    n = a.n + b.n
    dx = b.x_mean - a.x_mean
    dy = b.y_mean - a.y_mean
    w = a.n * b.n / n
    xx = None
    if a.xx is not None and b.xx is not None:
        xx = a.xx + b.xx + w * torch.outer(dx, dx)
    return TranslationStats(
        n,
        a.x_mean + dx * (b.n / n),
        a.y_mean + dy * (b.n / n),
        a.x_ss + b.x_ss + w * dx * dx,
        a.y_ss + b.y_ss + w * dy * dy,
        a.xy + b.xy + w * torch.outer(dx, dy),
        xx,
    )


def _constant_columns(ss, mean, n):
    """Columns whose variance is only rounding noise (the bound of scikit-learn's
    StandardScaler: var <= n eps var + (n eps mean)^2)."""
    var = ss / n
    return var <= n * _EPS64 * var + (n * _EPS64 * mean) ** 2


def _standard_scale(ss, mean, n):
    """Population std from centered sums of squares; (near-)constant columns get 1."""
    var = (ss / n).clamp_min(0)
    return torch.where(_constant_columns(ss, mean, n), torch.ones_like(var), var.sqrt())


def _ridge_solve(G, C, alpha):
    """``(G + alpha I)^+ C`` and the numerical rank of ``G + alpha I`` (symmetric PSD G)."""
    d = G.shape[0]
    G = G.clone()
    G.diagonal().add_(alpha)
    L, info = torch.linalg.cholesky_ex(G)
    if int(info) == 0:
        piv = L.diagonal() ** 2
        if float(piv.min()) > d * _EPS64 * float(piv.max()):
            return torch.cholesky_solve(C, L), d
    # Singular or nearly so: minimum-norm solution through the eigendecomposition.
    w, V = torch.linalg.eigh(G)
    keep = w > d * _EPS64 * float(w.abs().max())
    Vk = V[:, keep]
    return Vk @ ((Vk.T @ C) / w[keep, None]), int(keep.sum())


def _pinv(W):
    """Pseudo-inverse of a well-conditioned map through the smaller Gram matrix, else by SVD."""
    d_x, d_y = W.shape
    small = W.T @ W if d_x >= d_y else W @ W.T
    L, info = torch.linalg.cholesky_ex(small)
    if int(info) == 0:
        piv = L.diagonal() ** 2
        # The Gram matrix squares the condition number: use it only while
        # cond(W) < 1e3 (error ~ cond^2 eps < 1e-9), else fall back to the SVD.
        if float(piv.min()) > 1e-6 * float(piv.max()):
            if d_x >= d_y:
                return torch.cholesky_solve(W.T, L)  # (W^T W)^-1 W^T
            return torch.cholesky_solve(W, L).T  # W^T (W W^T)^-1
    return torch.linalg.pinv(W)


def solve_translation(stats, method="orthogonal", *, scaling="standard", alpha=0.0):
    """Closed-form translation from sufficient statistics.

    Each space is first brought to its scaled coordinates
    ``x~ = (x - mu_x) / sigma_x`` and ``y~ = (y - mu_y) / sigma_y``
    (``scaling="standard"``: means and population stds of the rows, zero std
    -> 1; ``"center"``: sigma = 1; ``None``: mu = 0, sigma = 1).  Then, with
    ``C = X~^T Y~`` and ``G = X~^T X~``:

    ``"orthogonal"``
        ``U S V^T = svd(C)``, ``R = U V^T`` (semi-orthogonal when d_x != d_y).
        When ``C`` has rank ``r < min(d_x, d_y)`` (fewer anchors than
        dimensions, constant features) only ``U_r V_r^T`` is determined and
        kept: directions the anchors do not span map to zero.
    ``"scaled"``
        ``R`` as above times ``s = trace(S) / ||X~ R||_F^2``.
    ``"linear"``
        ``W = (G + alpha I)^+ C`` (ridge least squares, no bias).
    ``"affine"``
        Least squares with a bias, closed form: ``W`` from the centered ``G``
        and ``C``, ``b = mean(y~) - mean(x~) W``; identical to ``"linear"``
        whenever ``scaling`` centers (the bias in centered coordinates is 0).

    The result is folded back to raw coordinates, ``y = x @ coef + intercept``.

    Parameters
    ----------
    stats : TranslationStats
        From :func:`translation_stats` / :func:`merge_translation_stats`
        (tensors or numpy arrays); solved on the device of ``stats.x_mean``.
    method : {"orthogonal", "scaled", "linear", "affine"}
    scaling : {"standard", "center", None}
    alpha : float
        Ridge penalty of ``"linear"`` and ``"affine"`` (not applied to the bias).

    Returns
    -------
    TranslationMap
        float64 tensors.

    Examples
    --------
    >>> import torch
    >>> from sklearn_latent.functional import solve_translation, translation_stats
    >>> X = torch.randn(200, 5, dtype=torch.float64)
    >>> Q = torch.linalg.qr(torch.randn(5, 5, dtype=torch.float64)).Q
    >>> m = solve_translation(translation_stats(X, X @ Q + 3.0), "orthogonal", scaling="center")
    >>> bool(torch.allclose(m.map, Q)), bool(torch.allclose(X @ m.coef + m.intercept, X @ Q + 3.0))
    (True, True)
    """
    s = _as_stats(stats)
    n = s.n
    d_x, d_y = s.xy.shape
    if method not in TRANSLATION_METHODS:
        raise ValueError(
            f"method={method!r} is not supported; expected one of {TRANSLATION_METHODS}."
        )
    if scaling not in TRANSLATION_SCALINGS:
        raise ValueError(
            f"scaling={scaling!r} is not supported; expected one of {TRANSLATION_SCALINGS}."
        )
    needs_gram = method in ("linear", "affine") or (method == "scaled" and d_x > d_y)
    if needs_gram and s.xx is None:
        raise ValueError(f"method={method!r} needs the statistics computed with gram=True.")
    zeros_x, zeros_y = torch.zeros_like(s.x_mean), torch.zeros_like(s.y_mean)
    if scaling is None:
        x_mu, y_mu = zeros_x, zeros_y
        x_sd, y_sd = torch.ones_like(s.x_mean), torch.ones_like(s.y_mean)
    else:
        x_mu, y_mu = s.x_mean, s.y_mean
        if scaling == "standard":
            x_sd, y_sd = _standard_scale(s.x_ss, s.x_mean, n), _standard_scale(s.y_ss, s.y_mean, n)
        else:
            x_sd, y_sd = torch.ones_like(s.x_mean), torch.ones_like(s.y_mean)

    # Moments of the scaled coordinates: about the mean when the coordinates are
    # centered or the method has a bias, about zero otherwise.
    centered = scaling is not None or method == "affine"
    C, G, ss = s.xy, s.xx, s.x_ss
    if not centered:
        C = C + n * torch.outer(s.x_mean, s.y_mean)
        G = None if G is None else G + n * torch.outer(s.x_mean, s.x_mean)
        ss = ss + n * s.x_mean**2
    C = C / torch.outer(x_sd, y_sd)
    if G is not None:
        G = G / torch.outer(x_sd, x_sd)
    ss = ss / x_sd**2

    scale = 1.0
    bias = zeros_y
    if method in ("orthogonal", "scaled"):
        U, S, Vh = torch.linalg.svd(C, full_matrices=False)
        full_rank = min(d_x, d_y)
        top = float(S[0]) if S.numel() else 0.0
        rank = int((S > max(d_x, d_y) * _EPS64 * top).sum()) if top > 0 else 0
        # Singular vectors of (numerically) zero singular values are arbitrary:
        # U V^T would rotate the directions the anchors do not determine at
        # random.  The map keeps only the determined part U_r V_r^T (a partial
        # isometry, zero elsewhere: the minimum-norm solution, as for "linear").
        M = U[:, :rank] @ Vh[:rank] if rank < full_rank else U @ Vh
        if method == "scaled":
            energy = float((M * (G @ M)).sum()) if d_x > d_y else float(ss.sum())
            scale = float(S.sum()) / energy if energy > 0 else 0.0
        inv = M.T / scale if scale != 0 else torch.zeros_like(M.T)
    else:
        M, rank = _ridge_solve(G, C, alpha)
        full_rank = d_x
        if method == "affine" and scaling is None:
            bias = s.y_mean - s.x_mean @ M
        inv = _pinv(M)

    coef = (scale * M) / x_sd[:, None] * y_sd[None, :]
    intercept = y_mu + y_sd * (bias - (x_mu / x_sd) @ (scale * M))
    inverse_coef = inv / y_sd[:, None] * x_sd[None, :]
    inverse_intercept = x_mu + x_sd * (-((y_mu / y_sd + bias) @ inv))
    return TranslationMap(
        coef, intercept, inverse_coef, inverse_intercept, M, scale, bias,
        x_mu, x_sd, y_mu, y_sd, rank, full_rank,
    )


# ==========================================================================
# --- product of invariances / inverse relative projection ---
# (ProductInvarianceProjector, InverseRelativeProjector, the CPU L1/L-inf path)
# ==========================================================================
__all__ += [
    "PRODUCT_METRICS",
    "AGGREGATIONS",
    "aggregate_components",
    "anchor_condition_number",
    "normalize_component",
    "product_projection",
    "prune_anchors",
]

#: Metrics a :func:`product_projection` component may use.
PRODUCT_METRICS = ("cosine", "angular", "dot", "euclidean", "l1", "linf")
#: How :func:`aggregate_components` combines the components.
AGGREGATIONS = ("concat", "sum", "mean")

# Rows (and anchors) per block of the CPU L1 / L-inf kernel: square blocks of
# at most this size keep the concatenated block (2b x d) in the last-level
# cache, and square blocks waste the least work (see _minkowski_blocked).
_MINKOWSKI_BLOCK = 512
# Below this many rows or anchors the blocked kernel's per-call overhead wins.
_MINKOWSKI_MIN_BLOCK = 32
_condensed_index_cache = {}


def _condensed_cross_index(nb, kb, device):
    """Positions of the (row i, anchor j) pairs in ``pdist(cat([X_b, A_b]))``.

    The condensed vector lists pairs (i, j), i < j, of the N = nb + kb stacked
    rows in row-major order; row i's pairs start at ``i N - i (i + 1) / 2`` and
    its pairs with the anchors (j >= nb) are contiguous.
    """
    key = (nb, kb, str(device))
    idx = _condensed_index_cache.get(key)
    if idx is None:
        N = nb + kb
        i = torch.arange(nb, device=device, dtype=torch.int64)
        start = i * N - i * (i + 1) // 2 + (nb - i - 1)
        idx = start[:, None] + torch.arange(kb, device=device, dtype=torch.int64)[None, :]
        # Only plain tensors are cached: under torch.export / torch.compile the index
        # is a FakeTensor (or another tensor subclass) that must not leak into
        # later eager calls (it would index with garbage).
        if type(idx) is torch.Tensor:
            if len(_condensed_index_cache) > 16:
                _condensed_index_cache.clear()
            _condensed_index_cache[key] = idx
    return idx


def _minkowski_blocked(X, anchors, p):
    """Exact L1 (``p=1``) or L-inf (``p=inf``) distances on the CPU.

    ``torch.cdist`` evaluates these norms with a scalar loop on the CPU, while
    ``torch.nn.functional.pdist`` uses the vectorized kernel.  ``pdist`` of
    the stacked block ``[X_b; A_b]`` computes every pair of its rows, the
    (row, anchor) pairs among them; with square blocks (as many rows as
    anchors) half of its work is useful, which still beats ``cdist`` by about
    3x for L1 and 2x for L-inf (benchmarks/RESULTS.md).  Same
    formula (sum / max of ``|x_i - a_i|``), only the summation order differs
    from the naive loop.
    """
    n, k = X.shape[0], anchors.shape[0]
    b = min(n, k, _MINKOWSKI_BLOCK)
    out = torch.empty((n, k), dtype=X.dtype, device=X.device)
    X = X.contiguous()
    anchors = anchors.contiguous()
    for j0 in range(0, k, b):
        A_b = anchors[j0 : j0 + b]
        for i0 in range(0, n, b):
            X_b = X[i0 : i0 + b]
            D = torch.nn.functional.pdist(torch.cat([X_b, A_b]), p=p)
            out[i0 : i0 + b, j0 : j0 + b] = D[
                _condensed_cross_index(X_b.shape[0], A_b.shape[0], X.device)
            ]
    return out


def _minkowski(X, anchors, p, blocked=True):
    """L1 / L-inf distances: the blocked ``pdist`` kernel on CPU, ``cdist`` elsewhere."""
    if (
        blocked
        and X.device.type == "cpu"
        and min(X.shape[0], anchors.shape[0]) >= _MINKOWSKI_MIN_BLOCK
        and not (X.requires_grad or anchors.requires_grad)
    ):
        return _minkowski_blocked(X, anchors, p)
    return torch.cdist(X, anchors, p=p)


def normalize_component(R, normalize=None, *, mean=None, scale=None):
    """Normalize one relative representation before aggregation.

    Parameters
    ----------
    R : Tensor of shape (n, k)
    normalize : {None, "l2", "standard", "layer"}
        ``"l2"``: rows divided by their norm; ``"standard"``: ``(R - mean) /
        scale`` with per-feature statistics fitted on training projections;
        ``"layer"``: per-row mean and std (LayerNorm without affine); ``None``:
        unchanged.
    mean, scale : Tensor of shape (k,)
        Statistics of ``"standard"``.

    Returns
    -------
    Tensor of shape (n, k)
    """
    if normalize is None:
        return R
    if normalize == "l2":
        return _safe_normalize(R)
    if normalize == "layer":
        return layer_normalize(R)
    if normalize == "standard":
        return (R - mean) / scale
    raise ValueError(
        f"normalize={normalize!r} is not supported; expected None, 'l2', 'standard' or 'layer'."
    )


def aggregate_components(components, aggregation="concat"):
    """Combine m relative representations (each (n, k)) into one.

    ``"concat"`` gives (n, k m) with the components side by side in order;
    ``"sum"`` and ``"mean"`` give (n, k).
    """
    if aggregation == "concat":
        return torch.cat(list(components), dim=1)
    if aggregation in ("sum", "mean"):
        out, m = None, 0
        for C in components:
            out = C.clone() if out is None else out.add_(C)
            m += 1
        return out.div_(m) if aggregation == "mean" else out
    raise ValueError(
        f"aggregation={aggregation!r} is not supported; expected one of {AGGREGATIONS}."
    )


def _product_projector(
    anchors, metrics, *, center=None, normalize=None, means=None, scales=None,
    aggregation="concat",
):
    """:func:`product_projection` with the anchor side prepared once: a closure over chunks."""
    row_scale_free = normalize in ("l2", "layer")  # per-row: positive factors cancel
    projectors = [
        _relative_projector(anchors, m, center=center, row_scale_free=row_scale_free)
        for m in metrics
    ]
    means = means if means is not None else [None] * len(metrics)
    scales = scales if scales is not None else [None] * len(metrics)

    def project(X):
        return aggregate_components(
            (
                normalize_component(proj(X), normalize, mean=mu, scale=sd)
                for proj, mu, sd in zip(projectors, means, scales)
            ),
            aggregation,
        )

    return project


def product_projection(
    X, anchors, metrics=("cosine", "euclidean", "l1", "linf"), *, center=None,
    normalize=None, means=None, scales=None, aggregation="concat",
):
    """Product of invariances: several relative projections against one anchor set.

    ``r(x) = phi(N(RR(x; A, d_1)), ..., N(RR(x; A, d_m)))`` (Cannistraci et al.,
    2024) with ``RR`` the relative projection of :func:`relative_projection`,
    ``N`` a per-component normalization (:func:`normalize_component`) and
    ``phi`` the aggregation (:func:`aggregate_components`).

    Parameters
    ----------
    X, anchors : Tensor of shape (n, d) and (k, d)
    metrics : sequence of str
        One entry of :data:`PRODUCT_METRICS` per component.
    center : Tensor of shape (d,) or None
        Subtracted from both sides before every component.
    normalize : {None, "l2", "standard", "layer"}
    means, scales : sequence of Tensor of shape (k,), optional
        Per-component statistics of ``normalize="standard"``.
    aggregation : {"concat", "sum", "mean"}

    Returns
    -------
    Tensor of shape (n, k * len(metrics)) for ``"concat"``, else (n, k)

    Examples
    --------
    >>> import torch
    >>> from sklearn_latent.functional import product_projection
    >>> X, A = torch.randn(10, 4, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    >>> product_projection(X, A, ("cosine", "l1")).shape
    torch.Size([10, 6])
    """
    return _product_projector(
        anchors, metrics, center=center, normalize=normalize, means=means,
        scales=scales, aggregation=aggregation,
    )(X)


def prune_anchors(normalized_anchors, threshold, start=0):
    """Well-conditioned anchor subset by greedy farthest-point selection.

    Starting from anchor ``start``, repeatedly adds the anchor farthest from
    the selected set under ``1 - |cos(a, b)|`` and stops when that distance
    falls below ``threshold`` (Maiorca et al., 2024): every kept pair then has
    ``|cos| <= 1 - threshold``.  Zero rows (anchors equal to the centering
    mean) are never selected.

    Parameters
    ----------
    normalized_anchors : Tensor of shape (k, d)
        Unit (or zero) rows.
    threshold : float in (0, 1]
    start : int
        Index of the first anchor.

    Returns
    -------
    LongTensor of shape (k_kept,)
        Indices in selection order.

    Examples
    --------
    >>> import torch
    >>> from sklearn_latent.functional import prune_anchors
    >>> A = torch.tensor([[1.0, 0.0], [0.99, 0.141], [0.0, 1.0]])
    >>> prune_anchors(A, 0.5).tolist()
    [0, 2]
    """
    A = normalized_anchors.to(torch.float64)
    k = A.shape[0]
    valid = torch.linalg.vector_norm(A, dim=1) > 0.5
    dist = 1.0 - (A @ A[start]).abs()
    dist = torch.where(valid, dist, torch.full_like(dist, -math.inf))
    dist[start] = -math.inf
    chosen = [int(start)]
    for _ in range(k - 1):
        nxt = int(torch.argmax(dist))
        if not float(dist[nxt]) >= threshold:
            break
        chosen.append(nxt)
        torch.minimum(dist, 1.0 - (A @ A[nxt]).abs(), out=dist)
        dist[nxt] = -math.inf
    return torch.as_tensor(chosen, dtype=torch.int64, device=normalized_anchors.device)


def anchor_condition_number(normalized_anchors):
    """Effective 2-norm condition number of a (k, d) anchor matrix.

    ``s_max / s_min`` over the singular values (float64) that the
    pseudo-inverse of :func:`normalized_anchor_inverse` inverts, i.e. those
    above its cutoff ``max(k, d) * eps * s_max``: exactly dependent directions
    (e.g. dead ReLU units, constant features) are ignored by the solve and do
    not count.  ``inf`` for a zero matrix.

    Examples
    --------
    >>> import torch
    >>> from sklearn_latent.functional import anchor_condition_number
    >>> anchor_condition_number(torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.5, 0.0]]))
    2.0
    """
    A = normalized_anchors.to(torch.float64)
    s = torch.linalg.svdvals(A)
    if s.numel() == 0 or float(s[0]) == 0.0:
        return math.inf
    cutoff = float(s[0]) * max(A.shape) * torch.finfo(torch.float64).eps
    kept = s[s > cutoff]
    return float(s[0] / kept[-1])


# --------------------------------------------------------------------------
# sparse relative representations against large banks (ASIF), matching
# --------------------------------------------------------------------------
def topk_similarity(X, bank, top_k, metric="cosine", *, center=None, chunk_size=None):
    """The ``top_k`` largest similarities of each row of ``X`` to the rows of ``bank``.

    Equal to ``torch.topk(pairwise(X, bank, metric, center=center), top_k)``
    but computed by a running top-k merge over chunks of ``chunk_size`` bank
    rows, so memory is ``O(n * (top_k + chunk_size))`` instead of ``O(n *
    n_bank)``: a bank of 10^6 rows never materializes an (n, 10^6) matrix.

    Parameters
    ----------
    X : Tensor of shape (n, d)
    bank : Tensor of shape (N, d)
        Same device and dtype as ``X``.
    top_k : int
        Entries kept per row (at most ``N``).
    metric : {"cosine", "dot"}
        A similarity of :data:`SIMILARITIES`.
    center : Tensor of shape (d,) or None
        Subtracted from both sides first (see :func:`pairwise`).
    chunk_size : int or None
        Bank rows per chunk; ``None`` computes all at once.

    Returns
    -------
    values : Tensor of shape (n, min(top_k, N))
        Similarities, largest first.
    indices : LongTensor of shape (n, min(top_k, N))
        Rows of ``bank`` they belong to.

    Examples
    --------
    >>> import torch
    >>> from sklearn_latent.functional import topk_similarity
    >>> X, B = torch.randn(5, 3, dtype=torch.float64), torch.randn(100, 3, dtype=torch.float64)
    >>> v, i = topk_similarity(X, B, 4, chunk_size=7)
    >>> v_ref, i_ref = torch.topk(torch.nn.functional.normalize(X) @
    ...                           torch.nn.functional.normalize(B).T, 4)
    >>> bool(torch.equal(i, i_ref)) and bool(torch.allclose(v, v_ref))
    True
    """
    n_bank = bank.shape[0]
    k = min(int(top_k), n_bank)
    if chunk_size is None or chunk_size >= n_bank:
        return torch.topk(pairwise(X, bank, metric, center=center), k, dim=1)
    values = indices = None
    for start in range(0, n_bank, chunk_size):
        S = pairwise(X, bank[start : start + chunk_size], metric, center=center)
        v, i = torch.topk(S, min(k, S.shape[1]), dim=1)
        i += start
        if values is not None:
            v, i = torch.cat([values, v], dim=1), torch.cat([indices, i], dim=1)
        values, pos = torch.topk(v, min(k, v.shape[1]), dim=1)
        indices = i.gather(1, pos)
    return values, indices


def sparse_dot(values, indices, support, dense, block_elements=1 << 24):
    """Inner products of row-sparse vectors with the rows of a matrix on a column support.

    Row ``i`` of the sparse side has ``values[i, j]`` in column
    ``indices[i, j]``; the other side is ``dense`` (m, |U|) whose columns are
    the sorted column ids ``support`` (|U|,).  Columns outside ``support``
    contribute 0.  Computed in blocks of ``block_elements`` of the
    (n, block, m) gather, never through an (n, n_columns) matrix.

    Returns
    -------
    Tensor of shape (n, m)

    Examples
    --------
    >>> import torch
    >>> from sklearn_latent.functional import sparse_dot
    >>> vals, idx = torch.tensor([[1.0, 2.0]]), torch.tensor([[7, 3]])
    >>> support, dense = torch.tensor([3, 5]), torch.tensor([[10.0, 1.0], [0.0, 4.0]])
    >>> sparse_dot(vals, idx, support, dense)
    tensor([[20.,  0.]])
    """
    n, k = values.shape
    m = dense.shape[0]
    out = torch.zeros((n, m), dtype=values.dtype, device=values.device)
    if support.numel() == 0 or n == 0 or k == 0:
        return out
    pos = torch.searchsorted(support, indices).clamp_(max=support.numel() - 1)
    weights = torch.where(support[pos] == indices, values, torch.zeros_like(values))
    columns = dense.T
    step = max(1, block_elements // max(1, n * m))
    for start in range(0, k, step):
        block = columns[pos[:, start : start + step]]  # (n, b, m)
        out += torch.einsum("nb,nbm->nm", weights[:, start : start + step], block)
    return out


def sparse_rows_to_support(values, indices):
    """Dense rows over the union of the columns used: ``(support, dense)`` for :func:`sparse_dot`.

    ``support`` is the sorted union of ``indices`` (|U|,) and ``dense`` (n, |U|)
    holds ``values`` in those columns.
    """
    support, inverse = torch.unique(indices, sorted=True, return_inverse=True)
    dense = torch.zeros((values.shape[0], support.numel()), dtype=values.dtype,
                        device=values.device)
    dense.scatter_(1, inverse, values)
    return support, dense


def mutual_nearest_neighbors(S):
    """Pairs ``(i, j)`` where ``j`` is the best column of row ``i`` and ``i`` the best row of ``j``.

    Parameters
    ----------
    S : Tensor of shape (n, m)
        Scores, larger is better.

    Returns
    -------
    rows, cols : LongTensor of shape (p,)
    scores : Tensor of shape (p,)
        ``S[rows, cols]``.

    Examples
    --------
    >>> import torch
    >>> from sklearn_latent.functional import mutual_nearest_neighbors
    >>> S = torch.tensor([[0.5, 0.25], [0.75, 0.125]])
    >>> [t.tolist() for t in mutual_nearest_neighbors(S)]
    [[1], [0], [0.75]]
    """
    best_col = S.argmax(dim=1)
    best_row = S.argmax(dim=0)
    rows = torch.arange(S.shape[0], device=S.device)
    keep = best_row[best_col] == rows
    rows, cols = rows[keep], best_col[keep]
    return rows, cols, S[rows, cols]


def sinkhorn(S, epsilon=0.05, n_iter=100, tol=1e-6):
    """Entropic optimal transport plan between uniform marginals (log-domain Sinkhorn).

    Maximizes ``<P, S> + epsilon * H(P)`` over couplings ``P`` (n, m) with row
    sums ``1 / n`` and column sums ``1 / m`` (Cuturi, 2013), in float64.

    Parameters
    ----------
    S : Tensor of shape (n, m)
        Scores (similarities; the cost is ``-S``).
    epsilon : float
        Entropic regularization (smaller: closer to a permutation, slower).
    n_iter : int
        Maximum number of iterations.
    tol : float
        Stop when the row marginals are within ``tol`` (L1, relative to their
        total 1) of uniform; checked every 10 iterations.

    Returns
    -------
    Tensor of shape (n, m)
        The transport plan, in the dtype of ``S``.

    Examples
    --------
    >>> import torch
    >>> from sklearn_latent.functional import sinkhorn
    >>> P = sinkhorn(torch.eye(3), epsilon=0.01)
    >>> bool(torch.allclose(P, torch.eye(3) / 3, atol=1e-6))
    True
    """
    n, m = S.shape
    logK = S.to(torch.float64) / epsilon
    log_a = torch.full((n,), -math.log(n), dtype=torch.float64, device=S.device)
    log_b = torch.full((m,), -math.log(m), dtype=torch.float64, device=S.device)
    f = torch.zeros_like(log_a)
    g = torch.zeros_like(log_b)
    for it in range(n_iter):
        f = log_a - torch.logsumexp(logK + g[None, :], dim=1)
        g = log_b - torch.logsumexp(logK + f[:, None], dim=0)
        if it % 10 == 9:
            row = torch.logsumexp(logK + f[:, None] + g[None, :], dim=1).exp()
            if float((row - log_a.exp()).abs().sum()) < tol:
                break
    return (logK + f[:, None] + g[None, :]).exp().to(S.dtype)


# alignment without pairs (CSLS, quadratic assignment of centroids, self-learning)
from ._matching import (  # noqa: E402
    alignment_score,
    csls_knn_mean,
    csls_mutual_nn,
    match_centroids,
    polar,
    procrustes_polar,
    quadratic_assignment_2opt,
)

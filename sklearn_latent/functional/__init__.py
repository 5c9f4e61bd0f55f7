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

from . import _lp

__all__ = [
    "METRICS",
    "SIMILARITIES",
    "alignment_score",
    "csls_hubness",
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


# --- centering -------------------------------------------------------------
# A center is None, a tensor of the data's dtype, or a pair ``(hi, lo)`` of
# tensors of the data's dtype whose unevaluated sum is a float64 center
# (:func:`_split_center`).  ``x - hi`` is exact wherever x is within a factor of
# two of hi (Sterbenz), and ``(x - hi) - lo`` is then ``x - center`` rounded
# once: float32 data with offsets of 1e6 times their spread are centered as
# accurately as in float64, at the cost of one in-place subtraction.


def _split_center(center, anchors):
    """A (float64) center in the anchors' dtype: a tensor, or ``(hi, lo)`` when that matters.

    ``lo`` (the part of the center below the resolution of ``hi``) is kept only
    when it exceeds one unit of roundoff of the spread of the centered anchors,
    i.e. when the offset of the data is large relative to its spread: data
    near the origin take the single-subtraction path.
    """
    dtype = anchors.dtype
    if center is None or center.dtype == dtype or not dtype.is_floating_point:
        return None if center is None else center.to(dtype)
    hi = center.to(dtype)
    lo = center - hi.to(center.dtype)
    if torch.jit.is_tracing() or torch.compiler.is_compiling():
        return hi, lo.to(dtype)
    sample = anchors[:: max(1, anchors.shape[0] // 1024)]  # a large bank: 1024 rows suffice
    spread = _row_norms(sample.to(center.dtype) - center).mean()
    if float(_row_norms(lo.reshape(1, -1)).reshape(())) <= torch.finfo(dtype).eps * float(spread):
        return hi
    return hi, lo.to(dtype)


def _sub_center(X, center, out=None):
    """``X - center`` for any center representation (``out`` may be given)."""
    if isinstance(center, tuple):
        hi, lo = center
        return torch.sub(X, hi, out=out).sub_(lo) if out is not None else (X - hi) - lo
    return torch.sub(X, center, out=out) if out is not None else X - center


def _center_hi(center):
    return center[0] if isinstance(center, tuple) else center


def _center_map(center, fn):
    """``fn`` applied to each part of a center."""
    if center is None:
        return None
    return tuple(fn(c) for c in center) if isinstance(center, tuple) else fn(center)


def _center_eps(center, dtype):
    """Relative rounding error of ``x - center`` with respect to ``||x|| + ||center||``.

    One unit of roundoff of the dtype for a plain center; for a split center the
    subtraction is accurate to about the square of it (never below float64's).
    """
    eps = torch.finfo(dtype).eps
    if isinstance(center, tuple):
        return max(eps * eps, torch.finfo(torch.float64).eps)
    return eps


def _center_normalize(X, center):
    """``_safe_normalize(X - center)``, with rows equal to ``center`` up to rounding -> 0."""
    if center is None:
        return _safe_normalize(X)
    c = _center_hi(center)
    ref = _row_norms(X).reshape(-1) + _row_norms(c.reshape(1, -1)).reshape(())
    ref = ref * (_center_eps(center, X.dtype) / torch.finfo(X.dtype).eps)
    return _safe_normalize(_sub_center(X, center), ref)


def _prepare(anchors, metric, center):
    """Anchor-side quantities computed once per call, reused for every chunk."""
    if metric in ("cosine", "angular"):
        return _center_normalize(anchors, center)
    if center is not None:
        anchors = _sub_center(anchors, center)
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


#: Euclidean entries with ``||x - a||^2 <= (||x||^2 + max ||a||^2) / _EXACT_RATIO`` lie
#: where ``||x||^2 + ||a||^2 - 2 x.a`` cancels: their rows are recomputed in float64.
_EXACT_RATIO = 64.0


def _rows64(xb, rows):
    """``(rows, xb[rows] in float64)`` in groups of exactly ``_MIN_BLOCK_ROWS`` rows.

    The last group is padded with zero rows (whose results are dropped), so
    every float64 GEMM has the same shape and a row's result does not depend
    on which rows are recomputed with it: chunking never changes the result.
    """
    m = _MIN_BLOCK_ROWS
    for s in range(0, rows.numel(), m):
        r = rows[s : s + m]
        x64 = torch.zeros((m, xb.shape[1]), dtype=torch.float64, device=xb.device)
        x64[: r.numel()] = xb.index_select(0, r)  # (advanced indexing is 1000x slower on CPU)
        yield r, x64


def _exact_sq_rows(ob, xb, A, a_sq, x_sq, cache):
    """Recompute in float64 the rows of squared distances ``ob`` that cancelled.

    ``||x||^2 + ||a||^2 - 2 x.a`` loses ``eps * (||x||^2 + ||a||^2)`` absolutely,
    which is all of a small distance (an anchor's distance to itself came out
    as 1e-3 of the typical distance in float32).  Rows holding an entry below
    ``1 / _EXACT_RATIO`` of that scale are recomputed in float64 from the same
    (centered) values, so every distance is accurate to a few units of roundoff
    of the typical distance and a row equal to an anchor gets 0 up to the
    resolution of the centered data.  On spread-out data only the rows
    close to an anchor are redone (for float64 data the rows are left as is).
    """
    if ob.dtype == torch.float64 or ob.shape[1] == 0:
        return
    limit = (x_sq.reshape(-1) + a_sq.max()) / _EXACT_RATIO
    rows = torch.nonzero(ob.amin(dim=1) <= limit).reshape(-1)
    if rows.numel() == 0:
        return
    if "A64" not in cache:
        cache["A64"] = A.to(torch.float64)
        cache["a_sq64"] = cache["A64"].square().sum(dim=1)
    for r, x64 in _rows64(xb, rows):
        sq = torch.addmm(cache["a_sq64"], x64, cache["A64"].T, alpha=-2.0)
        sq.add_(x64.square().sum(dim=1, keepdim=True))
        ob.index_copy_(0, r, sq[: r.numel()].to(ob.dtype))


#: Angular entries with ``|cos| >= 1 - _EXACT_COS`` (within about 14 degrees of an
#: anchor or its opposite), where arccos turns one unit of roundoff of the cosine
#: into ``sqrt(2 eps)`` of angle: their rows are recomputed in float64.
_EXACT_COS = 1.0 / 32.0


def _exact_angle_rows(ob, xb, A, cache):
    """Overwrite with float64 angles the rows of ``ob`` (angles) that hold a cosine near +-1.

    ``xb`` is the centered block; its rows and the (normalized) anchors are
    renormalized in float64, so the cosine of a row with itself is 1 to
    float64 precision and its angle 0 up to the float32 resolution of the data.
    """
    if ob.dtype == torch.float64 or ob.shape[1] == 0:
        return
    limit = math.acos(1.0 - _EXACT_COS)
    near = (ob.amin(dim=1) <= limit) | (ob.amax(dim=1) >= math.pi - limit)
    rows = torch.nonzero(near).reshape(-1)
    if rows.numel() == 0:
        return
    if "A64" not in cache:
        cache["A64"] = _safe_normalize(A.to(torch.float64))
    for r, x64 in _rows64(xb, rows):
        cos = _safe_normalize(x64) @ cache["A64"].T
        ob.index_copy_(0, r, torch.arccos(cos.clamp_(-1.0, 1.0))[: r.numel()].to(ob.dtype))


def _gemm_blocked(X, prepared, metric, center):
    """Cosine, dot or euclidean (no autograd) by row blocks into one preallocated result.

    Same formulas as the differentiable path of :func:`_pairwise_prepared`:
    each block is centered explicitly (never through the rank-one correction
    ``X @ A.T - c @ A.T``, which cancels catastrophically in float32 on data
    with large offsets) into one reused buffer, the GEMM writes straight into
    the result, and cosine divides the result rows by ``||x - c||`` in place.
    A split center ``(hi, lo)`` (:func:`_split_center`) costs one more in-place
    subtraction on the buffer.  Euclidean and angular rows near an anchor are
    recomputed in float64 (:func:`_exact_sq_rows`, :func:`_exact_angle_rows`).
    """
    A, a_sq = prepared if metric == "euclidean" else (prepared, None)
    n, d = X.shape
    out = torch.empty((n, A.shape[0]), dtype=X.dtype, device=X.device)
    step = _BLOCK_ELEMENTS.get(X.device.type, _BLOCK_ELEMENTS_OTHER) // d
    step = max(_MIN_BLOCK_ROWS, step - step % _MIN_BLOCK_ROWS)
    blocks = _row_blocks(n, step)
    cache = {}
    if center is not None:
        buf = torch.empty((max(b - a for a, b in blocks), d), dtype=X.dtype, device=X.device)
        c_norm = torch.linalg.vector_norm(_center_hi(center))
        noise_eps = _NOISE_ULPS * _center_eps(center, X.dtype)
    for start, stop in blocks:
        xb = X[start:stop]
        ob = out[start:stop]
        if center is not None:
            xb = _sub_center(xb, center, out=buf[: xb.shape[0]])
        if metric == "dot":
            torch.mm(xb, A.T, out=ob)
            continue
        if metric == "euclidean":
            x_sq = torch.linalg.vector_norm(xb, dim=1, keepdim=True).square_()
            torch.addmm(a_sq, xb, A.T, alpha=-2.0, out=ob)
            ob.add_(x_sq)
            _exact_sq_rows(ob, xb, A, a_sq, x_sq, cache)
            ob.clamp_min_(0.0).sqrt_()
        else:  # same divisor as _safe_normalize: a zero row gives 0
            torch.mm(xb, A.T, out=ob)
            norms = torch.linalg.vector_norm(xb, dim=1, keepdim=True)
            if center is not None:  # equal to center up to rounding: zero (as _center_normalize)
                ref = torch.linalg.vector_norm(X[start:stop], dim=1, keepdim=True)
                noise = (ref + c_norm) * noise_eps
                norms = torch.where(norms <= noise, torch.inf, norms)
            ob.div_(norms.clamp_min_(_EPS.get(X.dtype, 1e-12)))
            if metric == "angular":
                torch.arccos(ob.clamp_(-1.0, 1.0), out=ob)
                _exact_angle_rows(ob, xb, A, cache)
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
        return _gemm_blocked(X, prepared, metric, center)
    # Differentiable path (also the reference the blocked kernel is tested against).
    if metric in ("cosine", "angular"):
        out = _center_normalize(X, center) @ prepared.T
        if metric == "angular":
            out = torch.arccos(out.clamp_(-1.0, 1.0))
        return out
    if center is not None:
        X = _sub_center(X, center)
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
        return _minkowski(X, prepared, float(p), blocked)
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
    if metric == "lp" and float(p) == 2.0:
        metric = "euclidean"  # the same distance; cdist's GEMM path cancels like it
    if center is None and metric in _DIFFERENCE_METRICS:
        center = anchors.to(torch.float64).mean(dim=0)  # see _effective_center
    center = _split_center(center, anchors)
    prepared = {1.0: (center, _prepare(anchors, metric, center))}
    a_max = max(_max_abs(anchors), _max_abs(_center_hi(center)))
    q = max(2.0, float(p)) if metric == "lp" else 2.0

    def project(X):
        c = _rescale_factor(max(_max_abs(X), a_max), X.dtype, X.shape[1], q)
        if c not in prepared:
            cen = _center_map(center, lambda t: t / c)
            prepared[c] = (cen, _prepare(anchors / c, metric, cen))
        cen, prep = prepared[c]
        R = _pairwise_prepared(X if c == 1.0 else X / c, prep, metric, cen, p)
        for _ in range(_SCALE_DEGREE.get(metric, 0) if c != 1.0 and not row_scale_free else 0):
            R = R * c
        if top_k is not None or exponent != 1.0:
            R = sparsify(R, top_k, exponent)
        return R

    return project


# --------------------------------------------------------------------------
# --- latent space translation: sufficient statistics and closed-form solvers
# (functional/_translation.py) ---
# --------------------------------------------------------------------------
from ._translation import (  # noqa: E402
    TRANSLATION_METHODS,
    TRANSLATION_SCALINGS,
    TranslationMap,
    TranslationStats,
    _as_stats,
    _constant_columns,
    _needs_gram,
    _ridge_gcv,
    _standard_scale,
    merge_translation_stats,
    ridge_alpha_grid,
    solve_translation,
    translation_stats,
)

from . import _translation  # noqa: E402

__all__ += _translation.__all__  # extends the list at the top of the module

# --- inverse relative projection (functional/_inverse.py) ---
from ._inverse import (  # noqa: E402
    INVERSE_COND_WARNING,
    INVERSE_RTOL,
    anchor_condition_number,
    inverse_relative_projection,
    normalized_anchor_inverse,
    select_inverse_alpha,
)
from . import _inverse  # noqa: E402
from ._inverse import _design as _inverse_design  # noqa: E402
from ._inverse import near_constant_columns  # noqa: E402

__all__ += [n for n in _inverse.__all__ if n not in __all__]


# ==========================================================================
# --- product of invariances / inverse relative projection ---
# (ProductInvarianceProjector, InverseRelativeProjector, the CPU L1/L-inf path)
# ==========================================================================
__all__ += [
    "PRODUCT_METRICS",
    "AGGREGATIONS",
    "aggregate_components",
    "block_statistics",
    "normalize_component",
    "product_projection",
    "product_transfer_weights",
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
    """Lp distances (p >= 1, inf): the numba kernels of ``_lp`` where installed, else
    the blocked ``pdist`` kernel (L1, L-inf) on CPU, ``cdist`` elsewhere."""
    if blocked and p != 2.0 and _lp.usable(X, anchors):  # p = 2: cdist uses a GEMM
        return _lp.minkowski(X, anchors, p)
    if (
        blocked
        and p in (1.0, math.inf)
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
    normalize : {None, "l2", "standard", "block", "layer"}
        ``"l2"``: rows divided by their norm; ``"standard"``: ``(R - mean) /
        scale`` with per-feature statistics fitted on training projections;
        ``"block"``: the same formula with per-feature means and one scale for
        the whole component (:func:`block_statistics`);
        ``"layer"``: per-row mean and std (LayerNorm without affine); ``None``:
        unchanged.
    mean, scale : Tensor of shape (k,)
        Statistics of ``"standard"`` and ``"block"``.

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
    if normalize in ("standard", "block"):
        return (R - mean) / scale
    raise ValueError(
        f"normalize={normalize!r} is not supported; expected None, 'l2', 'standard', 'block' "
        "or 'layer'."
    )


def block_statistics(R):
    """Statistics of ``normalize="block"`` for one component, from training projections.

    ``mean`` is the per-feature mean of ``R`` (n, k); ``scale`` is one number
    for the whole component, the root mean square of ``R - mean`` over all
    entries (1 when that is zero relative to the entries' magnitude),
    repeated k times.  After ``(R - mean) / scale`` every component has unit
    average feature variance, as with ``"standard"``, but the relative
    spread of its features is kept: a low-variance anchor column is not
    inflated to the size of the informative ones.

    Returns
    -------
    mean, scale : Tensor of shape (k,), float64

    Examples
    --------
    >>> import torch
    >>> from sklearn_latent.functional import block_statistics
    >>> R = torch.tensor([[0.0, 10.0], [2.0, 10.0], [4.0, 10.0]], dtype=torch.float64)
    >>> mean, scale = block_statistics(R)
    >>> mean.tolist(), [round(v, 6) for v in scale.tolist()]
    ([2.0, 10.0], [1.154701, 1.154701])
    """
    R = R.to(torch.float64)
    c = _pow2(R.abs().amax())  # exact rescaling: squares neither overflow nor underflow
    Rc = R / c
    mean = Rc.mean(dim=0)
    rms = (Rc - mean).square().mean().sqrt()
    tiny = 1e3 * torch.finfo(torch.float64).eps * Rc.abs().amax()
    scale = torch.where(rms <= tiny, torch.ones_like(rms), rms * c)
    return mean * c, scale.expand(R.shape[1]).clone()


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
    aggregation="concat", weights=None,
):
    """:func:`product_projection` with the anchor side prepared once: a closure over chunks.

    A component of weight 0 is not computed: its block is zeros.
    """
    row_scale_free = normalize in ("l2", "layer")  # per-row: positive factors cancel
    weights = [None] * len(metrics) if weights is None else [float(w) for w in weights]
    projectors = [
        None if w == 0.0 else
        _relative_projector(anchors, m, center=center, row_scale_free=row_scale_free)
        for m, w in zip(metrics, weights)
    ]
    means = means if means is not None else [None] * len(metrics)
    scales = scales if scales is not None else [None] * len(metrics)
    k = anchors.shape[0]

    def component(X, proj, mu, sd, w):
        if proj is None:
            return X.new_zeros((X.shape[0], k))
        C = normalize_component(proj(X), normalize, mean=mu, scale=sd)
        return C if w is None or w == 1.0 else C * w

    def project(X):
        return aggregate_components(
            (
                component(X, proj, mu, sd, w)
                for proj, mu, sd, w in zip(projectors, means, scales, weights)
            ),
            aggregation,
        )

    return project


def product_projection(
    X, anchors, metrics=("cosine", "euclidean", "l1", "linf"), *, center=None,
    normalize=None, means=None, scales=None, aggregation="concat", weights=None,
):
    """Product of invariances: several relative projections against one anchor set.

    ``r(x) = phi(w_1 N(RR(x; A, d_1)), ..., w_m N(RR(x; A, d_m)))`` (Cannistraci
    et al., 2024) with ``RR`` the relative projection of
    :func:`relative_projection`, ``N`` a per-component normalization
    (:func:`normalize_component`), ``w`` optional component weights (e.g. from
    :func:`product_transfer_weights`) and ``phi`` the aggregation
    (:func:`aggregate_components`).

    Parameters
    ----------
    X, anchors : Tensor of shape (n, d) and (k, d)
    metrics : sequence of str
        One entry of :data:`PRODUCT_METRICS` per component.
    center : Tensor of shape (d,) or None
        Subtracted from both sides before every component.
    normalize : {None, "l2", "standard", "block", "layer"}
    means, scales : sequence of Tensor of shape (k,), optional
        Per-component statistics of ``normalize="standard"`` or ``"block"``.
    aggregation : {"concat", "sum", "mean"}
    weights : sequence of float or None
        One non-negative factor per component, applied after normalization;
        ``None`` = all 1.  A component of weight 0 is not computed (its block
        is zeros).

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
    >>> R = product_projection(X, A, ("cosine", "l1"), weights=[1.0, 0.0])
    >>> bool((R[:, 3:] == 0).all())
    True
    """
    return _product_projector(
        anchors, metrics, center=center, normalize=normalize, means=means,
        scales=scales, aggregation=aggregation, weights=weights,
    )(X)


def _transfer_r2(R, S):
    """Share of the variance of two (k, k) anchor matrices that each reproduces of the other.

    ``1 - sum (R - S)^2 / ((sum (R - mean_R)^2 + sum (S - mean_S)^2) / 2)`` over
    the off-diagonal entries (an anchor against itself is the same constant in
    both spaces), with ``mean`` the per-column mean: the coefficient of
    determination of reading one space's features as the other's, made
    symmetric.  1 for equal matrices; 0 or below when the difference is as
    large as the features' own variation.
    """
    k = R.shape[0]
    off = ~torch.eye(k, dtype=torch.bool, device=R.device)
    R = R.T[off].reshape(k, k - 1)  # row j: feature (column) j without its diagonal entry
    S = S.T[off].reshape(k, k - 1)
    err = (R - S).square().sum()
    var = 0.5 * ((R - R.mean(dim=1, keepdim=True)).square().sum()
                 + (S - S.mean(dim=1, keepdim=True)).square().sum())
    if not var > 0:
        return torch.zeros((), dtype=R.dtype, device=R.device) if err > 0 else err.new_ones(())
    return 1 - err / var


def _anchor_block(A, metric, center, normalize):
    """The normalized relative representation of the anchors against themselves, float64."""
    A = A.to(torch.float64)
    c = A.mean(dim=0) if center else None
    R = _relative_projector(A, metric, center=c)(A)
    if normalize in ("standard", "block"):
        if normalize == "block":
            mean, scale = block_statistics(R)
        else:
            mean, scale = R.mean(dim=0), R.std(dim=0, correction=0)
            scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        return normalize_component(R, normalize, mean=mean, scale=scale)
    return normalize_component(R, normalize)


def _component_agreement(anchors, reference, metrics, *, center=True, normalize="l2"):
    """How much of each component's anchor features one space reproduces of the other's.

    For each metric ``d`` the anchor-by-anchor relative matrices
    ``N(RR(A; A, d))`` of the two spaces (``anchors`` in one, ``reference``
    the same anchors embedded in the other, each centered on its own anchor
    mean when ``center``, normalized with ``normalize`` as the projector
    would, per-feature statistics taken from the anchors themselves) are
    compared entry by entry (the diagonal left out): the agreement is the
    symmetric coefficient of determination ``1 - |R_1 - R_2|^2 / var``, with
    ``var`` the mean of the two matrices' summed squared deviations from
    their column means.  A head fitted on one space's features reads the
    other's as they are, so this is the share of the features' variation it
    will see unchanged; 1 means identical features, 0 or below that the
    difference is as large as the features' own variation (the component is
    noise for a stitched head).

    Parameters
    ----------
    anchors : Tensor of shape (k, d)
    reference : Tensor of shape (k, d_ref)
        The same k anchors, in the same order, embedded in the reference space.
    metrics : sequence of str
        Entries of :data:`PRODUCT_METRICS`.
    center : bool, default=True
    normalize : {None, "l2", "standard", "block", "layer"}, default="l2"

    Returns
    -------
    Tensor of shape (len(metrics),), float64, at most 1

    Examples
    --------
    >>> import torch
    >>> from sklearn_latent.functional import _component_agreement
    >>> A = torch.randn(20, 5, dtype=torch.float64)
    >>> Q = torch.linalg.qr(torch.randn(5, 5, dtype=torch.float64))[0]
    >>> a = _component_agreement(A, A @ Q, ("cosine", "l1"))
    >>> round(float(a[0]), 6)  # cosine ignores the rotation Q, L1 does not
    1.0
    >>> bool(a[1] < 1)
    True
    """
    if anchors.shape[0] != reference.shape[0]:
        raise ValueError(
            f"reference has {reference.shape[0]} rows but there are {anchors.shape[0]} "
            "anchors; give the same anchors embedded in the reference space, row for row."
        )
    if anchors.shape[0] < 3:
        raise ValueError(f"the agreement needs at least 3 anchors, got {anchors.shape[0]}.")
    return torch.stack([
        _transfer_r2(*(_anchor_block(A, metric, center, normalize) for A in (anchors, reference)))
        for metric in metrics
    ])


def product_transfer_weights(
    anchors, reference, metrics, *, center=True, normalize="l2", power=1.0, threshold=0.0,
):
    """Component weights of the product from how well they transfer between two spaces.

    ``a = _component_agreement(anchors, reference, metrics)``: per component,
    the share of the anchors' normalized relative features that the two
    spaces have in common (a symmetric coefficient of determination, see
    :class:`~sklearn_latent.ProductInvarianceProjector`).  A component with
    ``a <= 0`` (its features differ between the spaces as much as they vary)
    or below ``threshold`` times the best agreement is dropped (weight 0);
    the others get ``(a_m / max(a)) ** power``, so the best component weighs 1.
    Only anchors of both spaces are used, no labels; the result is symmetric
    in the two spaces, so both sides of a stitching pair fitted this way get
    the same weights.

    Parameters
    ----------
    anchors : Tensor of shape (k, d)
    reference : Tensor of shape (k, d_ref)
        The same anchors in the reference space, row for row.
    metrics : sequence of str
    center : bool, default=True
    normalize : {None, "l2", "standard", "block", "layer"}, default="l2"
        The projector's normalization (statistics from the anchors).
    power : float, default=1.0
        Sharpening of the weights (0: every kept component weighs 1).
    threshold : float in [0, 1], default=0.0
        Share of the best agreement below which a component is dropped.

    Returns
    -------
    Tensor of shape (len(metrics),), float64, in [0, 1], the largest 1

    Examples
    --------
    >>> import torch
    >>> from sklearn_latent.functional import product_transfer_weights
    >>> A = torch.randn(30, 6, dtype=torch.float64)
    >>> Q = torch.linalg.qr(torch.randn(6, 6, dtype=torch.float64))[0]
    >>> w = product_transfer_weights(A, A @ Q, ("cosine", "euclidean", "l1"), threshold=0.999)
    >>> [round(float(v), 6) for v in w]  # a rotation: L1 changes, cosine and euclidean do not
    [1.0, 1.0, 0.0]
    """
    power, threshold = float(power), float(threshold)
    if not (math.isfinite(power) and power >= 0):
        raise ValueError(f"power must be a finite number >= 0, got {power!r}.")
    if not 0 <= threshold <= 1:
        raise ValueError(f"threshold must be in [0, 1], got {threshold!r}.")
    a = _component_agreement(anchors, reference, metrics, center=center, normalize=normalize)
    best = a.max()
    if not best > 0:
        # no component transfers at all: nothing to prefer, weigh them equally
        return torch.ones_like(a)
    share = a.clamp(min=0) / best
    keep = (share > 0) & (share >= threshold)
    return torch.where(keep, share ** power, torch.zeros_like(share))


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
        values, indices = _merge_topk(values, indices, S, start, k)
    return values, indices


def _merge_topk(values, indices, S, start, k):
    """Running top-k: merge the top-k of block ``S`` (columns ``start:``) into ``(values, indices)``.

    ``values``/``indices`` are None before the first block; the result holds
    the ``k`` largest entries per row seen so far and their global column indices.
    """
    v, i = torch.topk(S, min(k, S.shape[1]), dim=1)
    i += start
    if values is not None:
        v, i = torch.cat([values, v], dim=1), torch.cat([indices, i], dim=1)
    values, pos = torch.topk(v, min(k, v.shape[1]), dim=1)
    return values, i.gather(1, pos)


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


from ._graph import knn_graph_laplacian, knn_search, laplacian_eigenpairs  # noqa: E402

__all__ += ["knn_graph_laplacian", "knn_search", "laplacian_eigenpairs"]

# alignment without pairs (CSLS, quadratic assignment of centroids, self-learning)
from ._matching import (  # noqa: E402
    alignment_score,
    csls_hubness,
    csls_knn_mean,
    csls_mutual_nn,
    match_centroids,
    polar,
    procrustes_polar,
    quadratic_assignment_2opt,
)

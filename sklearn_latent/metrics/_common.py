"""Validation and blocking shared by every metric."""

import math
import numbers

import numpy as np
import torch

from .. import functional as F
from .._backend import (
    check_input,
    to_tensor,
    torch_dtype,
)

_F64 = torch.float64
#: Elements of one row block of an ``(rows, n)`` kernel, similarity or
#: ``(rows, d)`` data block (32 MiB of float64); bounds every temporary.
_BLOCK_ELEMENTS = 1 << 22
#: Elements of the two float64 row-block buffers of :func:`_feature_stats`
#: together (16 MiB): allocated once per call and reused for every block, small
#: enough to stay in the last-level cache between the conversion and the GEMMs.
_FEATURE_BLOCK_ELEMENTS = 1 << 21
#: Above this many rows, ``rbf_cka``'s median heuristic looks at a fixed
#: random subsample of this many rows (about 2.1 million pairs).
_MEDIAN_MAX_ROWS = 2048
#: Seed of that subsample (the same rows on every call and every device).
_MEDIAN_SEED = 0
#: Metrics accepted by the nearest-neighbour functions.
KNN_METRICS = ("cosine", "angular", "dot", "euclidean", "l1", "linf")


# --------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------
def _check_pair(X, Y, names, func, *, min_samples=2, same_width=False, dtype=None, convert=True):
    """Validate two paired inputs and return them as tensors on one device.

    The device is the first tensor argument's (numpy only: CPU).  The dtype is
    ``dtype`` when given, else float64 if either input is float64, else float32.
    ``convert=False`` returns the validated arrays as they are (numpy or
    tensors) and the device, for callers that convert block by block.
    """
    a, b = names
    X = check_input(None, X, reset=False, input_name=a)
    Y = check_input(None, Y, reset=False, input_name=b)
    if X.shape[0] != Y.shape[0]:
        raise ValueError(
            f"{a} and {b} must have the same number of rows (paired samples); got "
            f"{a}.shape={tuple(X.shape)} and {b}.shape={tuple(Y.shape)}."
        )
    if same_width and X.shape[1] != Y.shape[1]:
        raise ValueError(
            f"{a} and {b} must have the same shape (row i of {a} is compared with row i "
            f"of {b}); got {a}.shape={tuple(X.shape)} and {b}.shape={tuple(Y.shape)}."
        )
    n = X.shape[0]
    if n < min_samples:
        raise ValueError(
            f"{func} needs at least {min_samples} paired samples; got {n} "
            f"({a}.shape={tuple(X.shape)})."
        )
    device = next((T.device for T in (X, Y) if isinstance(T, torch.Tensor)), torch.device("cpu"))
    if not convert:
        return X, Y, device
    if dtype is None:
        dtype = _F64 if _F64 in (torch_dtype(X), torch_dtype(Y)) else torch.float32
    return to_tensor(X, device, dtype), to_tensor(Y, device, dtype)


def _check_k(k, low, high, what):
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise TypeError(f"k must be an int, got {k!r}.")
    if not low <= k <= high:
        raise ValueError(f"k={k} is out of range: {what} needs 1 <= k <= {high}.")
    return int(k)


def _duplicate_groups(T, direction=False):
    """Group id (n,) per row of a tensor: rows that are exact duplicates share an id.

    ``direction=True`` groups rows with the same direction: each row is first
    divided by a power of two near its largest |entry| (exact, elementwise),
    so ``x`` and ``2 ** m * x`` fall in one group.  Bitwise comparison, sorted
    by :func:`torch.unique` (O(n d log n)); never depends on row position.
    Returns ``None`` when every row is distinct (the common case).
    """
    C = T.detach()
    if direction:
        C = C / F._row_scale(C)
    C = C + 0.0  # -0.0 and 0.0 compare equal but differ bitwise
    groups, inverse = torch.unique(C, dim=0, return_inverse=True)
    return None if groups.shape[0] == T.shape[0] else inverse


def _check_constant(T, name, func):
    """Raise when every row of ``T`` equals the first (zero variance).

    Compares row blocks with row 0 and stops at the first block that differs:
    on real data one pass over the first block only.
    """
    first = T[0]
    step = _step(T.shape[1])
    for start in range(0, T.shape[0], step):
        if bool((T[start : start + step] != first).any()):  # numpy or torch alike
            return
    raise ValueError(
        f"{name} is constant (all {T.shape[0]} rows are equal): {func} is undefined "
        "for a space with zero variance."
    )


def _max_abs(T):
    """Largest |entry| of float64 data (float32 squares always fit float64: 1)."""
    if torch_dtype(T) != _F64:
        return 1.0
    if isinstance(T, torch.Tensor):
        lo, hi = torch.aminmax(T)  # global: one pass (per-column aminmax is ~25x slower)
    else:
        lo, hi = T.min(), T.max()
    return max(-_float(lo), _float(hi))


def _step(n_cols, batch_size=None):
    """Rows per block: ``batch_size`` or a block of about :data:`_BLOCK_ELEMENTS`."""
    if batch_size is not None:
        return batch_size
    return max(1, _BLOCK_ELEMENTS // max(1, n_cols))


def _float(t):
    return float(t.item() if isinstance(t, torch.Tensor) else t)


# --------------------------------------------------------------------------
# centered kernel alignment
# --------------------------------------------------------------------------
def _gram_scale(max_abs):
    """1, or a power of two bringing ``max_abs`` near 1 when its squares would not fit float64."""
    m = _float(max_abs)
    if 2.0**-250 < m < 2.0**250:
        return 1.0
    return math.ldexp(1.0, math.frexp(m)[1] - 1)


def _shifted_block(T, start, stop, shift, scale, out=None):
    """float64 ``(T[start:stop] - shift) / scale`` on ``shift``'s device.

    Numpy input is converted block by block (a read-only memmap is never
    copied whole); the result is never a view of ``T``.  With ``out`` (a
    float64 buffer of at least ``stop - start`` rows) the block is converted
    into ``out`` in place and a view of it returned: no allocation per block.
    """
    if out is None:
        out = torch.sub(to_tensor(T[start:stop], shift.device, _F64), shift)
        return out if scale == 1.0 else out.div_(scale)
    src = T[start:stop]
    if not isinstance(src, torch.Tensor):
        if not src.flags.writeable or any(s < 0 for s in src.strides):
            src = np.array(src, copy=True)
        src = torch.from_numpy(src)
    out = out[: src.shape[0]]
    out.copy_(src)  # dtype (and device) conversion into the buffer
    out.sub_(shift)
    return out if scale == 1.0 else out.div_(scale)


# --------------------------------------------------------------------------
# feature-space statistics (one pass over row blocks, float64)
# --------------------------------------------------------------------------
class _Stats:
    """Cross products of two shifted spaces ``X' = (X - c_x) / s``, ``Y'`` likewise.

    ``xx = X'^T X'``, ``yy``, ``xy``; ``sx``, ``sy`` the column sums; with
    ``rows=True`` also ``rows = (a, b, X'^T a, X'^T b, Y'^T a, Y'^T b)``
    with ``a``, ``b`` the squared row norms of ``X'``, ``Y'`` (the unbiased
    HSIC's diagonal terms).  The shift is the
    first block's mean (float64 accuracy on data with large offsets); every
    measure built on these is translation invariant, so the shift never
    shows.  ``centered()`` gives ``Xc^T Xc`` etc. of the column-centered data.
    """

    def __init__(self, n, xx, yy, xy, sx, sy, rows=None):
        self.n, self.xx, self.yy, self.xy, self.sx, self.sy = n, xx, yy, xy, sx, sy
        # a, b, X'^T a, X'^T b, Y'^T a, Y'^T b
        self.rows = rows

    def centered(self):
        """Centered ``xx``, ``yy``, ``xy`` (0-d ``xx``, ``yy``: centered traces)."""
        n = self.n

        def center(m, s1, s2):
            return m - (torch.dot(s1, s2) if m.ndim == 0 else torch.outer(s1, s2)) / n

        return (
            center(self.xx, self.sx, self.sx),
            center(self.yy, self.sy, self.sy),
            center(self.xy, self.sx, self.sy),
        )


def _feature_stats(X, Y, dev, *, rows=False, names=("X", "Y"), func="linear_cka",
                   cross_only=False):
    """:class:`_Stats` of two validated inputs (numpy or tensors, converted by blocks).

    One pass over row blocks of :data:`_FEATURE_BLOCK_ELEMENTS`: each block of
    ``X`` and ``Y`` is converted into one reused float64 buffer per space,
    shifted in place, and fed to the three GEMMs; ``rows=True`` adds the
    squared row norms (one fused multiply-reduce per block) and two GEMVs.
    ``cross_only=True`` skips the ``X'^T X'`` and ``Y'^T Y'`` GEMMs and keeps
    only their traces (0-d ``xx``, ``yy``: the sums of squares), a third of
    the work, for measures that need no more (Procrustes).
    """
    n = X.shape[0]
    _check_constant(X, names[0], func)
    _check_constant(Y, names[1], func)
    x_scale, y_scale = _gram_scale(_max_abs(X)), _gram_scale(_max_abs(Y))
    dx, dy = X.shape[1], Y.shape[1]
    step = max(1, min(n, _FEATURE_BLOCK_ELEMENTS // (dx + dy)))
    x_shift = to_tensor(X[:step], dev, _F64).mean(dim=0)
    y_shift = to_tensor(Y[:step], dev, _F64).mean(dim=0)
    xx = torch.zeros(() if cross_only else (dx, dx), dtype=_F64, device=dev)
    yy = torch.zeros(() if cross_only else (dy, dy), dtype=_F64, device=dev)
    xy = torch.zeros((dx, dy), dtype=_F64, device=dev)
    sx = torch.zeros(dx, dtype=_F64, device=dev)
    sy = torch.zeros(dy, dtype=_F64, device=dev)
    x_buf = torch.empty((step, dx), dtype=_F64, device=dev)
    y_buf = torch.empty((step, dy), dtype=_F64, device=dev)
    if rows:
        a = torch.empty(n, dtype=_F64, device=dev)
        b = torch.empty(n, dtype=_F64, device=dev)
        xa = torch.zeros(dx, dtype=_F64, device=dev)  # X'^T a
        xb = torch.zeros(dx, dtype=_F64, device=dev)  # X'^T b
        ya = torch.zeros(dy, dtype=_F64, device=dev)  # Y'^T a
        yb = torch.zeros(dy, dtype=_F64, device=dev)  # Y'^T b
    for start in range(0, n, step):
        xb_ = _shifted_block(X, start, start + step, x_shift, x_scale, x_buf)
        yb_ = _shifted_block(Y, start, start + step, y_shift, y_scale, y_buf)
        if cross_only:
            flat_x, flat_y = xb_.reshape(-1), yb_.reshape(-1)
            xx += torch.dot(flat_x, flat_x)
            yy += torch.dot(flat_y, flat_y)
        else:
            xx.addmm_(xb_.T, xb_)
            yy.addmm_(yb_.T, yb_)
        xy.addmm_(xb_.T, yb_)
        sx += xb_.sum(dim=0)
        sy += yb_.sum(dim=0)
        if rows:
            stop = start + xb_.shape[0]
            a_ = torch.einsum("ij,ij->i", xb_, xb_)
            b_ = torch.einsum("ij,ij->i", yb_, yb_)
            a[start:stop], b[start:stop] = a_, b_
            xa.addmv_(xb_.T, a_)
            xb.addmv_(xb_.T, b_)
            ya.addmv_(yb_.T, a_)
            yb.addmv_(yb_.T, b_)
    if not rows:
        return _Stats(n, xx, yy, xy, sx, sy)
    return _Stats(n, xx, yy, xy, sx, sy, (a, b, xa, xb, ya, yb))


def _hsic_u_terms(n, kl, k_tot, l_tot, k_dot_l):
    """Unbiased HSIC (Song et al. 2012) from its three sums over zero-diagonal kernels.

    ``kl = tr(K~ L~)``, ``k_tot = 1^T K~ 1``, ``l_tot``, ``k_dot_l =
    1^T K~ L~ 1``: ``[kl + k_tot l_tot / ((n-1)(n-2)) - 2 k_dot_l / (n-2)] / (n (n-3))``.
    """
    return (kl + k_tot * l_tot / ((n - 1) * (n - 2)) - 2.0 * k_dot_l / (n - 2)) / (n * (n - 3))


def _cka_from_stats(st, unbiased):
    """Linear CKA (biased or unbiased) from :class:`_Stats`; a float64 0-d tensor."""
    if not unbiased:
        xx, yy, xy = st.centered()
        num = torch.linalg.matrix_norm(xy).square()
        return num / (torch.linalg.matrix_norm(xx) * torch.linalg.matrix_norm(yy))
    n = st.n
    a, b, xa, xb, ya, yb = st.rows

    def hsic(g, u, v, su, sv, gu_v, gv_u):
        # K = X'X'^T (L likewise), s = column sums, u, v squared row norms:
        # tr(K~L~) = ||X'^T Y'||^2 - u.v ; 1^T K~ 1 = ||s_x||^2 - sum u ;
        # 1^T K~ L~ 1 = s_x^T G s_y - s_x^T X'^T v - s_y^T Y'^T u + u.v
        uv = torch.dot(u, v)
        kl = torch.linalg.matrix_norm(g).square() - uv
        k_tot = torch.dot(su, su) - u.sum()
        l_tot = torch.dot(sv, sv) - v.sum()
        kdl = su @ g @ sv - torch.dot(su, gu_v) - torch.dot(sv, gv_u) + uv
        return _hsic_u_terms(n, kl, k_tot, l_tot, kdl)

    h_xy = hsic(st.xy, a, b, st.sx, st.sy, xb, ya)
    h_xx = hsic(st.xx, a, a, st.sx, st.sx, xa, xa)
    h_yy = hsic(st.yy, b, b, st.sy, st.sy, yb, yb)
    return _ratio_u(h_xy, h_xx, h_yy, "linear_cka")


def _ratio_u(h_xy, h_xx, h_yy, func):
    """``h_xy / sqrt(h_xx h_yy)``; raises where an unbiased self-HSIC is not positive."""
    for h, name in ((h_xx, "X"), (h_yy, "Y")):
        if not bool(h > 0):
            raise ValueError(
                f"{func}(unbiased=True): the unbiased HSIC of {name} with itself is "
                f"{_float(h):.3g} (not positive): too few samples or a degenerate kernel, "
                "CKA is undefined."
            )
    return h_xy / torch.sqrt(h_xx * h_yy)

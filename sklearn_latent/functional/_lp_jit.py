"""numba kernels of :mod:`._lp` (imported only when numba is installed and used).

Each kernel computes rows ``[r0, r1)`` of ``out`` (n, k) from ``X`` (n, d) and
``A`` (k, d): a serial loop that releases the GIL; :func:`._lp.minkowski` runs
several row ranges at once in Python threads.  Serial kernels compile in a
fraction of the time of numba's ``parallel=True`` ones and need no threading
layer (numba's may be neither thread- nor fork-safe).

Rows are taken in blocks of ``rb``; for each group of four anchors (12 KiB at
d = 768, in L1) the block's rows (192 KiB for 64 rows, in L2) are swept two at
a time, and the loop over features keeps eight vector accumulators (2 rows x 4
anchors, see :func:`_tile_kernel`).  A distance is computed by the same
instructions whatever block its row is in.
"""

import numba
from llvmlite import ir
from numba.extending import intrinsic

_OPTS = dict(fastmath=True, cache=True, nogil=True)


@intrinsic
def _maxnum(typingctx, a, b):
    """``llvm.maxnum``: the form of ``max`` that LLVM vectorizes as a reduction
    (numba's ``max`` is a compare and branch, which it does not)."""

    def codegen(context, builder, signature, args):
        lty = args[0].type
        fnty = ir.FunctionType(lty, [lty, lty])
        fn = builder.module.declare_intrinsic("llvm.maxnum", [lty], fnty)
        return builder.call(fn, args)

    return a(a, b), codegen


def _tile_kernel(step):
    """A kernel for rows ``[r0, r1)`` whose inner loop is ``s = step(s, |x - a|)``.

    Register tile of 2 rows x 4 anchors: per feature, 2 + 4 loads feed 8
    accumulations (vectorized over features by LLVM: 8 vector accumulators), where
    one row at a time needs 5 loads for 4.  A last odd row is paired with itself
    and a last group of fewer than 4 anchors repeats its last anchor, so every
    distance is computed by the same instructions whatever block, chunk or thread
    its row falls in.
    """

    @numba.njit(**_OPTS)
    def kernel(X, A, out, r0, r1, rb):
        d = X.shape[1]
        k = A.shape[0]
        z = X.dtype.type(0)
        for b0 in range(r0, r1, rb):
            b1 = min(b0 + rb, r1)
            for j0 in range(0, k, 4):
                j1 = min(j0 + 1, k - 1)
                j2 = min(j0 + 2, k - 1)
                j3 = min(j0 + 3, k - 1)
                for i0 in range(b0, b1, 2):
                    i1 = min(i0 + 1, b1 - 1)
                    s00 = s01 = s02 = s03 = z
                    s10 = s11 = s12 = s13 = z
                    for t in range(d):
                        x0 = X[i0, t]
                        x1 = X[i1, t]
                        a0 = A[j0, t]
                        a1 = A[j1, t]
                        a2 = A[j2, t]
                        a3 = A[j3, t]
                        s00 = step(s00, abs(x0 - a0))
                        s01 = step(s01, abs(x0 - a1))
                        s02 = step(s02, abs(x0 - a2))
                        s03 = step(s03, abs(x0 - a3))
                        s10 = step(s10, abs(x1 - a0))
                        s11 = step(s11, abs(x1 - a1))
                        s12 = step(s12, abs(x1 - a2))
                        s13 = step(s13, abs(x1 - a3))
                    out[i0, j0] = s00
                    out[i0, j1] = s01
                    out[i0, j2] = s02
                    out[i0, j3] = s03
                    out[i1, j0] = s10
                    out[i1, j1] = s11
                    out[i1, j2] = s12
                    out[i1, j3] = s13

    return kernel


@numba.njit(inline="always")
def _add(s, v):
    return s + v


@numba.njit(inline="always")
def _max(s, v):
    return _maxnum(s, v)


l1 = _tile_kernel(_add)
linf = _tile_kernel(_max)


@numba.njit(**_OPTS)
def lp_int(X, A, out, r0, r1, rb, m):
    """``(sum |x - a| ** m) ** (1 / m)`` for an integer 2 <= m < 16, the power by
    repeated squaring with a fixed trip count (which vectorizes; ``**`` does not)."""
    d = X.shape[1]
    k = A.shape[0]
    z = X.dtype.type(0)
    one = X.dtype.type(1)
    q = X.dtype.type(1.0 / m)
    for b0 in range(r0, r1, rb):
        b1 = min(b0 + rb, r1)
        for j in range(k):
            for i in range(b0, b1):
                s0 = z
                for t in range(d):
                    v = abs(X[i, t] - A[j, t])
                    r = one
                    e = m
                    for _ in range(4):
                        r = r * v if e & 1 else r
                        v = v * v
                        e >>= 1
                    s0 += r
                out[i, j] = s0**q


@numba.njit(**_OPTS)
def lp(X, A, out, r0, r1, rb, p):
    """``(sum |x - a| ** p) ** (1 / p)`` for any p > 1 (scalar ``pow``: slow)."""
    d = X.shape[1]
    k = A.shape[0]
    z = X.dtype.type(0)
    e = X.dtype.type(p)
    q = X.dtype.type(1.0 / p)
    for b0 in range(r0, r1, rb):
        b1 = min(b0 + rb, r1)
        for j in range(k):
            for i in range(b0, b1):
                s0 = z
                for t in range(d):
                    s0 += abs(X[i, t] - A[j, t]) ** e
                out[i, j] = s0**q


@numba.njit(cache=True, nogil=True)
def fps_update(min_d, sq, g, c, last):
    """One farthest-point step after the GEMV ``g = X @ a``: ``min_d = min(min_d,
    (sq + c) - 2 g)``, then ``min_d[last] = -1``; returns the first index of the
    maximum.  ``c`` is a scalar of ``min_d``'s dtype.

    No fastmath: the same IEEE operations as the torch steps in ``anchors._fps``
    (``-2 g`` is exact, so a fused multiply-add rounds the same), so both pick
    the same rows; one serial pass instead of four multithreaded ones.
    """
    two = g.dtype.type(2)
    best = g.dtype.type(0)
    arg = -1
    for j in range(min_d.shape[0]):
        v = (sq[j] + c) - two * g[j]
        m = min_d[j]
        if v < m:
            m = v
        if j == last:
            m = -1
        min_d[j] = m
        if arg < 0 or m > best:
            best = m
            arg = j
    return arg

"""numba kernels of :mod:`._lp` (imported only when numba is installed and used).

Each kernel computes rows ``[r0, r1)`` of ``out`` (n, k) from ``X`` (n, d) and
``A`` (k, d): a serial loop that releases the GIL; :func:`._lp.minkowski` runs
several row ranges at once in Python threads.  Serial kernels compile in a
fraction of the time of numba's ``parallel=True`` ones and need no threading
layer (numba's may be neither thread- nor fork-safe).

Rows are taken in blocks of ``rb``; for each group of four anchors (12 KiB at
d = 768, in L1) the block's rows (192 KiB for 64 rows, in L2) are swept, and
the loop over features keeps four vector accumulators, one per anchor.  A
distance is computed by the same instructions whatever block its row is in.
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


@numba.njit(**_OPTS)
def l1(X, A, out, r0, r1, rb):
    d = X.shape[1]
    k = A.shape[0]
    k4 = k - k % 4
    z = X.dtype.type(0)
    for b0 in range(r0, r1, rb):
        b1 = min(b0 + rb, r1)
        for j in range(0, k4, 4):
            for i in range(b0, b1):
                s0 = s1 = s2 = s3 = z
                for t in range(d):
                    x = X[i, t]
                    s0 += abs(x - A[j, t])
                    s1 += abs(x - A[j + 1, t])
                    s2 += abs(x - A[j + 2, t])
                    s3 += abs(x - A[j + 3, t])
                out[i, j] = s0
                out[i, j + 1] = s1
                out[i, j + 2] = s2
                out[i, j + 3] = s3
        for j in range(k4, k):
            for i in range(b0, b1):
                s0 = z
                for t in range(d):
                    s0 += abs(X[i, t] - A[j, t])
                out[i, j] = s0


@numba.njit(**_OPTS)
def linf(X, A, out, r0, r1, rb):
    d = X.shape[1]
    k = A.shape[0]
    k4 = k - k % 4
    z = X.dtype.type(0)
    for b0 in range(r0, r1, rb):
        b1 = min(b0 + rb, r1)
        for j in range(0, k4, 4):
            for i in range(b0, b1):
                s0 = s1 = s2 = s3 = z
                for t in range(d):
                    x = X[i, t]
                    s0 = _maxnum(s0, abs(x - A[j, t]))
                    s1 = _maxnum(s1, abs(x - A[j + 1, t]))
                    s2 = _maxnum(s2, abs(x - A[j + 2, t]))
                    s3 = _maxnum(s3, abs(x - A[j + 3, t]))
                out[i, j] = s0
                out[i, j + 1] = s1
                out[i, j + 2] = s2
                out[i, j + 3] = s3
        for j in range(k4, k):
            for i in range(b0, b1):
                s0 = z
                for t in range(d):
                    s0 = _maxnum(s0, abs(X[i, t] - A[j, t]))
                out[i, j] = s0


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

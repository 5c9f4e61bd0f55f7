"""L1, L-inf and Lp distances between rows and anchors, near the hardware on the CPU.

``minkowski(X, anchors, p)`` returns ``D[i, j] = ||X[i] - anchors[j]||_p`` for
``p`` in ``[1, inf]``.  Two implementations give the same results:

* the JIT kernels of :mod:`._lp_jit` (numba, the optional ``fast`` extra),
  compiled on first use per dtype and cached on disk (``cache=True``), run on
  several row ranges at once by Python threads (as many as
  ``torch.get_num_threads()``, which ``threadpoolctl``'s OpenMP limit also sets);
* the pure-torch fallback in :mod:`sklearn_latent.functional` (the blocked
  ``pdist`` kernel for L1 / L-inf, ``torch.cdist`` for other ``p``), used when
  numba is absent, for other devices and dtypes, under autograd, for tiny
  inputs, or when ``SKLEARN_LATENT_NO_JIT=1`` (or :data:`USE_JIT` ``= False``)
  forces it.

"Same results": L-inf is exact in both (a maximum of exactly rounded
differences); L1 and Lp differ only by the order of the summation over
features, a relative difference of order ``d * eps`` (float32: ~1e-5 at
d = 768).  Within the JIT path a row's distances do not depend on the chunk,
block or thread it falls in, so chunked evaluation equals unchunked bit for bit.

The work is ``n k d`` element operations (one ``|x - a|`` accumulated), bound
by the vector units (a subtraction, an AND for the absolute value and an add or
max per element) when operands come from cache: see :mod:`._lp_jit` for the
blocking, and benchmarks/bench_lp.py for the roofline and the alternatives.
"""

import math
import os
import threading

import numpy as np
import torch

__all__ = ["USE_JIT", "jit_available", "minkowski"]

#: Set to False (or the environment variable ``SKLEARN_LATENT_NO_JIT=1``) to force
#: the pure-torch kernels even where numba is installed.
USE_JIT = os.environ.get("SKLEARN_LATENT_NO_JIT", "") in ("", "0")

# Rows per parallel task: a block of float32 rows of width 768 is 192 KiB (L2).
_ROW_BLOCK = 64
# Below this many element operations the JIT's call overhead is not worth it.
_MIN_WORK = 1 << 16

_kernels = None  # name -> numba kernel once _lp_jit is imported; False without numba
_pool = None  # (pid, ThreadPoolExecutor): recreated in a forked child
_pool_lock = threading.Lock()


def _build():
    """The kernels of :mod:`._lp_jit` (compiled lazily per dtype, cached on disk); False
    without numba."""
    try:
        from . import _lp_jit
    except ImportError:
        return False
    return {"l1": _lp_jit.l1, "linf": _lp_jit.linf, "lp": _lp_jit.lp, "lp_int": _lp_jit.lp_int,
            "fps_update": _lp_jit.fps_update}


def jit_available():
    """True when the numba kernels can be used (numba installed and :data:`USE_JIT`)."""
    global _kernels
    if not USE_JIT:
        return False
    if _kernels is None:
        _kernels = _build()
    return _kernels is not False


def _threads():
    """The torch intra-op thread count (``torch.set_num_threads``; ``threadpoolctl``'s
    OpenMP limit sets it too)."""
    return max(1, torch.get_num_threads())


def _executor():
    global _pool
    with _pool_lock:
        if _pool is None or _pool[0] != os.getpid():
            from concurrent.futures import ThreadPoolExecutor

            _pool = (os.getpid(), ThreadPoolExecutor(max_workers=max(os.cpu_count() or 1, 1)))
        return _pool[1]


def usable(X, anchors):
    """Whether :func:`minkowski` takes the JIT path for these operands."""
    return (
        X.device.type == "cpu"
        and anchors.device.type == "cpu"
        and X.dtype in (torch.float32, torch.float64)
        and anchors.dtype == X.dtype
        and not (X.requires_grad or anchors.requires_grad)
        and X.shape[0] * anchors.shape[0] * max(X.shape[1], 1) >= _MIN_WORK
        and jit_available()
    )


def minkowski(X, anchors, p):
    """``||X[i] - anchors[j]||_p`` for CPU float tensors, by the numba kernels.

    Callers check :func:`usable` first.  ``p`` is 1, ``math.inf`` or a float > 1.
    Returns a new (n, k) tensor in X's dtype.
    """
    if not jit_available():
        raise RuntimeError("the numba kernels are unavailable; check usable() first.")
    Xn = X.detach().contiguous().numpy()
    An = anchors.detach().contiguous().numpy()
    n = Xn.shape[0]
    out = np.zeros((n, An.shape[0]), dtype=Xn.dtype)
    if Xn.shape[1] == 0 or n == 0:
        return torch.from_numpy(out)
    if p == 1:
        args = (_kernels["l1"], ())
    elif math.isinf(p):
        args = (_kernels["linf"], ())
    elif float(p).is_integer() and 2 <= p < 16:
        args = (_kernels["lp_int"], (int(p),))
    else:
        args = (_kernels["lp"], (float(p),))
    kernel, extra = args
    # Several row ranges per thread, taken in turn: a core slowed by other work
    # takes fewer of them.  Which range a row falls in does not change its result.
    threads = min(_threads(), -(-n // _ROW_BLOCK))
    if threads == 1:
        kernel(Xn, An, out, 0, n, _ROW_BLOCK, *extra)
        return torch.from_numpy(out)
    step = -(-n // (4 * threads))  # ceil
    step = -(-step // _ROW_BLOCK) * _ROW_BLOCK
    ranges = [(r, min(r + step, n)) for r in range(0, n, step)]
    it = iter(ranges)
    lock = threading.Lock()

    def work():
        while True:
            with lock:
                r = next(it, None)
            if r is None:
                return
            kernel(Xn, An, out, r[0], r[1], _ROW_BLOCK, *extra)

    futures = [_executor().submit(work) for _ in range(threads - 1)]
    work()
    for f in futures:
        f.result()
    return torch.from_numpy(out)

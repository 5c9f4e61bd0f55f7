"""L1 / L-inf / Lp relative-projection kernels against their roofline and the alternatives.

Measures in one process, interleaved (minimum over repeats):

* the roofline: a simple vectorized loop doing the same operations per element
  (``s += |x_t - a_t|`` over two L1-resident vectors, one loop per thread);
* the kernels of ``sklearn_latent.functional._lp`` (numba, the ``fast`` extra);
* alternatives: the pure-torch fallback (blocked ``pdist``), ``torch.cdist``,
  a naive numba loop (one pair at a time) and numba ``parallel=True`` with
  ``prange`` over row blocks (the same blocking as ours).

Throughput is in element operations per second: ``n k d`` per call.

Usage::

    python benchmarks/bench_lp.py            # 100,000 x 768 onto 1,000 (alternatives at 10,000)
    python benchmarks/bench_lp.py --quick
"""

import argparse
import math
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from _common import emit, machine_description, table  # noqa: E402

from sklearn_latent import functional as F  # noqa: E402
from sklearn_latent.functional import _lp  # noqa: E402


def _numba_alternatives():
    import numba

    @numba.njit(fastmath=True, cache=True, nogil=True)
    def roof_loop(x, a, reps):
        s = x.dtype.type(0)
        for _ in range(reps):
            for t in range(x.shape[0]):
                s += abs(x[t] - a[t])
        return s

    @numba.njit(fastmath=True, cache=True, nogil=True, parallel=True)
    def naive(X, A, out):
        for i in numba.prange(X.shape[0]):
            for j in range(A.shape[0]):
                s = X.dtype.type(0)
                for t in range(X.shape[1]):
                    s += abs(X[i, t] - A[j, t])
                out[i, j] = s

    @numba.njit(fastmath=True, cache=True, parallel=True)
    def prange_blocked(X, A, out, rb):
        n, d = X.shape
        k4 = A.shape[0] - A.shape[0] % 4
        z = X.dtype.type(0)
        for b in numba.prange((n + rb - 1) // rb):
            for j in range(0, k4, 4):
                for i in range(b * rb, min(b * rb + rb, n)):
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

    return roof_loop, naive, prange_blocked


def roofline(roof_loop, d, seconds=0.3):
    """Element ops per second of ``threads`` copies of the simple loop at once."""
    threads = torch.get_num_threads()
    x = np.random.default_rng(0).standard_normal((threads, d)).astype(np.float32)
    a = x[:, ::-1].copy()
    reps = max(1, int(seconds * 2e9 / d))
    roof_loop(x[0], a[0], 1)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(threads) as ex:
        t0 = time.perf_counter()
        list(ex.map(lambda i: roof_loop(x[i], a[i], reps), range(threads)))
        dt = time.perf_counter() - t0
    return threads * reps * d / dt


def best_time(fn, repeats):
    fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return min(out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--n-alt", type=int, default=10_000,
                        help="rows for the (slower) alternatives")
    parser.add_argument("--d", type=int, default=768)
    parser.add_argument("--k", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--device", default="cpu", help="only cpu is measured")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.n_alt, args.repeats = 5_000, 500, 1
    if not _lp.jit_available():
        emit("## L1 / L-inf kernels\n\nnumba is not installed: `pip install .[fast]`.", args.out)
        return
    roof_loop, naive, prange_blocked = _numba_alternatives()
    gen = torch.Generator().manual_seed(0)
    d, k = args.d, args.k
    X = torch.randn(args.n, d, generator=gen)
    A = X[torch.randperm(args.n, generator=gen)[:k]].clone()
    Xs = X[: args.n_alt].contiguous()
    t_compile = time.perf_counter()
    _lp.minkowski(Xs[:64], A[:8], 1.0)
    t_compile = time.perf_counter() - t_compile

    def numba_np(kernel, *extra):
        def run(Y):
            out = np.empty((Y.shape[0], k), np.float32)
            return kernel(Y.numpy(), A.numpy(), out, *extra)
        return run

    roofs = []
    rows = []
    for name, p in (("l1", 1.0), ("linf", math.inf), ("lp (p=3)", 3.0)):
        roofs.append(roofline(roof_loop, d))
        alts = {
            "sklearn-latent numba kernel (default)": lambda Y, p=p: _lp.minkowski(Y, A, p),
            "pure-torch fallback (blocked pdist / cdist)": (
                (lambda Y, p=p: F._minkowski_blocked(Y, A, p)) if p in (1.0, math.inf)
                else (lambda Y, p=p: torch.cdist(Y, A, p=p))),
            "torch.cdist": lambda Y, p=p: torch.cdist(Y, A, p=p),
        }
        if p == 1.0:
            alts["numba naive (prange over rows, one pair at a time)"] = numba_np(naive)
            alts["numba parallel prange, same blocking"] = numba_np(prange_blocked, 64)
        # the peers' scalar pow is slow: a quarter of the rows for p = 3
        Y = Xs[: max(64, Xs.shape[0] // 4)] if p == 3.0 else Xs
        ops = Y.shape[0] * k * d
        times = {a: best_time(lambda fn=fn: fn(Y), args.repeats) for a, fn in alts.items()}
        roofs.append(roofline(roof_loop, d))
        t_full = best_time(lambda p=p: _lp.minkowski(X, A, p), max(1, args.repeats - 1))
        roofs.append(roofline(roof_loop, d))
        roof = max(roofs[-3:])
        full = args.n * k * d / t_full
        rows.append([name, f"ours, n={args.n:,}", f"{t_full:.2f}", f"{full / 1e9:.1f}",
                     f"{roof / full:.2f}", "-"])
        best_peer = min(t for a, t in times.items() if "default" not in a)
        for a, t in times.items():
            rows.append([name, f"{a}, n={Y.shape[0]:,}", f"{t:.3f}", f"{ops / t / 1e9:.2f}",
                         f"{roof / (ops / t):.2f}",
                         f"{t / best_peer:.2f}" if "default" in a else "-"])
    head = (
        f"## L1 / L-inf / Lp kernels ({'--quick' if args.quick else 'full'})\n\n"
        f"- machine: {machine_description()}\n"
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n"
        f"- command: `python benchmarks/bench_lp.py {' '.join(sys.argv[1:])}`\n"
        f"- X ({args.n:,} or {args.n_alt:,}) x {d} float32 against {k:,} anchors; best of "
        f"{args.repeats}; numba {__import__('numba').__version__}, first call (load from the "
        f"on-disk cache or compile) {t_compile:.2f} s\n"
        f"- roofline: `s += |x_t - a_t|` over two L1-resident {d}-vectors, one loop per "
        f"thread, measured before, between and after each metric: best "
        f"{max(roofs) / 1e9:.1f}, worst {min(roofs) / 1e9:.1f} G element-ops/s\n"
    )
    emit(head + "\n" + table(
        ["metric", "kernel", "s", "G element-ops/s", "roofline / kernel", "ours / best peer"],
        rows) + "\n", args.out)


if __name__ == "__main__":
    main()

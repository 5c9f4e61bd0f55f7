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

from _common import _command, emit, machine_description, summary, table  # noqa: E402

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


def roofline(roof_loop, d, threads, seconds=0.3):
    """(element ops per wall second, per CPU second) of ``threads`` copies of the
    simple loop at once."""
    x = np.random.default_rng(0).standard_normal((threads, d)).astype(np.float32)
    a = x[:, ::-1].copy()
    reps = max(1, int(seconds * 2e9 / d))
    roof_loop(x[0], a[0], 1)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(threads) as ex:
        c0, t0 = time.process_time(), time.perf_counter()
        list(ex.map(lambda i: roof_loop(x[i], a[i], reps), range(threads)))
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
    return threads * reps * d / dt, threads * reps * d / dc


def best_time(fn, repeats, warmup=True):
    """(best wall, best CPU) seconds of ``fn()``: CPU time counts every thread of
    the process, so work / CPU time is what the cores deliver while they run it."""
    if warmup:
        fn()
    wall, cpu = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return min(wall), min(cpu)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--n-alt", type=int, default=10_000,
                        help="rows for the (slower) alternatives")
    parser.add_argument("--n-one", type=int, default=10_000,
                        help="rows for the single-thread kernel measurement")
    parser.add_argument("--d", type=int, default=768)
    parser.add_argument("--k", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--device", default="cpu", help="only cpu is measured")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.n_alt, args.n_one, args.repeats = 5_000, 500, 1_000, 1
    if not _lp.jit_available():
        emit("## L1 / L-inf kernels\n\nnumba is not installed: `pip install .[fast]`.", args.out)
        return
    from sklearn_latent.functional import _lp_jit

    roof_loop, naive, prange_blocked = _numba_alternatives()
    threads = torch.get_num_threads()
    gen = torch.Generator().manual_seed(0)
    d, k = args.d, args.k
    X = torch.randn(args.n, d, generator=gen)
    A = X[torch.randperm(args.n, generator=gen)[:k]].clone()
    Xs = X[: args.n_alt].contiguous()
    t_compile = time.perf_counter()
    _lp.minkowski(Xs[:64], A[:8], 1.0)
    _lp.minkowski(Xs[:64], A[:8], math.inf)
    t_compile = time.perf_counter() - t_compile

    def numba_np(kernel, *extra):
        def run(Y):
            out = np.empty((Y.shape[0], k), np.float32)
            return kernel(Y.numpy(), A.numpy(), out, *extra)
        return run

    roofs1, roofsT = [], []
    rows, summaries = [], []
    G = 1e9
    for name, p, raw in (("l1", 1.0, _lp_jit.l1), ("linf", math.inf, _lp_jit.linf),
                         ("lp (p=3)", 3.0, None)):
        roofs1.append(roofline(roof_loop, d, 1))
        roofsT.append(roofline(roof_loop, d, threads))
        # one thread, in this thread: the kernel's rate per CPU second
        one = None
        if raw is not None:
            Y1 = X[: args.n_one].numpy()
            o1 = np.empty((Y1.shape[0], k), np.float32)
            w1, c1 = best_time(lambda: raw(Y1, A.numpy(), o1, 0, Y1.shape[0], 64),
                               args.repeats)
            one = Y1.shape[0] * k * d / c1
        alts = {
            "sklearn-latent numba kernel (default)": lambda Y, p=p: _lp.minkowski(Y, A, p),
            "pure-torch fallback (blocked pdist / cdist)": (
                (lambda Y, p=p: F._minkowski_blocked(Y, A, p)) if p in (1.0, math.inf)
                else (lambda Y, p=p: torch.cdist(Y, A, p=p))),
            "torch.cdist": lambda Y, p=p: torch.cdist(Y, A, p=p),
        }
        if p == 1.0:
            alts["numba naive (prange over rows, one pair at a time)"] = numba_np(naive)
            alts["numba parallel prange, 1 row x 4 anchors blocking"] = numba_np(
                prange_blocked, 64)
        # the peers' scalar pow is slow: a quarter of the rows for p = 3
        Y = Xs[: max(64, Xs.shape[0] // 4)] if p == 3.0 else Xs
        ops = Y.shape[0] * k * d
        times = {a: best_time(lambda fn=fn: fn(Y), 1) for a, fn in alts.items()}
        roofs1.append(roofline(roof_loop, d, 1))
        roofsT.append(roofline(roof_loop, d, threads))
        t_full, c_full = best_time(lambda p=p: _lp.minkowski(X, A, p), args.repeats,
                                   warmup=False)
        roofs1.append(roofline(roof_loop, d, 1))
        roofsT.append(roofline(roof_loop, d, threads))
        r1 = max(r[1] for r in roofs1[-3:])  # per CPU second, one thread
        rT = max(r[0] for r in roofsT[-3:])  # wall, all threads
        full_ops = args.n * k * d
        wall_rate, cpu_rate = full_ops / t_full, full_ops / c_full
        rows.append([name, f"ours, {threads} threads, n={args.n:,}", f"{t_full:.2f}",
                     f"{c_full:.2f}", f"{wall_rate / G:.1f}", f"{cpu_rate / G:.1f}",
                     f"{cpu_rate * threads / G:.0f}", f"{r1 / cpu_rate:.2f}", "-"])
        if one is not None:
            rows.append([name, f"ours, 1 thread (raw kernel), n={args.n_one:,}", "-", "-",
                         "-", f"{one / G:.1f}", "-", f"{r1 / one:.2f}", "-"])
        best_peer = min(t[0] for a, t in times.items() if "default" not in a)
        peer_name = min((t[0], a) for a, t in times.items() if "default" not in a)[1]
        for a, (t, c) in times.items():
            rows.append([name, f"{a}, n={Y.shape[0]:,}", f"{t:.3f}", f"{c:.3f}",
                         f"{ops / t / G:.2f}", f"{ops / c / G:.2f}", "-",
                         f"{r1 / (ops / c):.2f}",
                         f"{t / best_peer:.2f}" if "default" in a else "-"])
        t_ours = times["sklearn-latent numba kernel (default)"][0]
        summaries.append(dict(
            case=f"{name} (numba kernel, `fast` extra), {args.n:,} x {d} onto {k:,}",
            ratio_floor=r1 / cpu_rate,
            floor="roofline loop `s += |x - a|`, per CPU second, same run",
            ratio_peer=t_ours / best_peer, peer=f"{peer_name} (n = {Y.shape[0]:,})",
            note=f"{wall_rate / G:.1f} G element-ops/s wall on {threads} threads, "
                 f"{cpu_rate / G:.1f} G per CPU-second"))
    head = (
        f"## L1 / L-inf / Lp kernels ({'--quick' if args.quick else 'full'})\n\n"
        f"- machine: {machine_description()}\n"
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n"
        f"- command: `{_command()}`\n"
        f"- X ({args.n:,}, {args.n_one:,} or {args.n_alt:,}) x {d} float32 against {k:,} "
        f"anchors; best of {args.repeats} (the peers: one call after a warm-up); numba "
        f"{__import__('numba').__version__}, first call (load from the on-disk cache or "
        f"compile) {t_compile:.2f} s\n"
        f"- roofline: `s += |x_t - a_t|` over two L1-resident {d}-vectors, measured "
        f"before, between and after each metric: one thread {min(r[1] for r in roofs1) / G:.1f}"
        f"-{max(r[1] for r in roofs1) / G:.1f} G per CPU-second; {threads} threads at once "
        f"{min(r[0] for r in roofsT) / G:.1f}-{max(r[0] for r in roofsT) / G:.1f} G/s wall\n"
        f"- CPU time is the process's (all its threads): work / CPU time is what the cores "
        f"deliver while they run it, whatever the other processes on the machine take; "
        f"\"x cores\" is that rate times {threads} threads, the wall rate on idle cores\n"
    )
    emit(head + "\n" + table(
        ["metric", "kernel", "wall s", "CPU s", "G element-ops/s wall",
         "G per CPU-second", f"x {threads} cores", "roofline (1 thread, per CPU-s) / kernel",
         "ours / best peer (wall)"],
        rows) + "\n", args.out)
    for srow in summaries:
        summary("relative projection, per metric", out=args.out, quick=args.quick, **srow)


if __name__ == "__main__":
    main()

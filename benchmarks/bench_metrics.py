"""Benchmark of the similarity metrics: linear CKA against its floor and a naive baseline.

1. ``linear_cka`` on ``--n x --d`` paired float32 rows (default 1,000,000 x
   768; numpy on the CPU, tensors on a GPU) against its floor: the three
   float64 GEMMs ``X^T X``, ``Y^T Y``, ``Y^T X`` it needs, run over the same
   row blocks on float64 blocks converted beforehand (so the floor excludes the
   float32 -> float64 conversion and the centering that ``linear_cka`` does).
   Also the extra resident memory of one ``linear_cka`` call (peak RSS minus
   RSS before it), which must stay near the block size, not ``n``.
2. ``linear_cka`` against the naive Gram-matrix HSIC in numpy (float64,
   ``n x n`` Gram matrices centered and compared; Kornblith et al.'s
   reference formulation) at sizes where the naive one fits
   (``--small-n``), with the absolute difference of the two values.
3. ``rbf_cka`` (row blocks) against the naive numpy RBF CKA (full ``n x n``
   kernels) at the same small sizes.

Every comparison is timed interleaved (round-robin, one round per repeat, see
``_common.paired_times``); ratios are medians of per-round ratios.  The load
average is printed with the machine.

Usage::

    python benchmarks/bench_metrics.py                  # full sizes (slow on 2 cores)
    python benchmarks/bench_metrics.py --quick          # smoke test
    python benchmarks/bench_metrics.py --n 200000 --repeats 3 --out /tmp/metrics.md
"""

import argparse
import datetime
import os
import shlex
import statistics
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from _common import (  # noqa: E402
    emit,
    machine_description,
    median_ratio,
    paired_times,
    peak_rss_bytes,
    reset_peak_rss,
    rss_bytes,
    summary,
    sync,
    table,
    times,
)

from sklearn_latent import metrics  # noqa: E402
from sklearn_latent.metrics import linear_cka, rbf_cka  # noqa: E402


def make_pair(n, d, device, seed=0, chunk=50_000):
    """Related float32 spaces: Y = X with permuted, anisotropically scaled columns + noise."""
    gen = torch.Generator(device=device).manual_seed(seed)
    scale = torch.rand(d, generator=gen, device=device) + 0.5
    perm = torch.randperm(d, generator=gen, device=device)
    X = torch.empty((n, d), dtype=torch.float32, device=device)
    Y = torch.empty_like(X)
    for start in range(0, n, chunk):
        xb = torch.randn((min(chunk, n - start), d), generator=gen, device=device)
        X[start : start + len(xb)] = xb
        Y[start : start + len(xb)] = xb[:, perm] * scale + torch.randn(
            xb.shape, generator=gen, device=device
        )
    if device.type == "cpu":
        return X.numpy(), Y.numpy()
    return X, Y


def floor_fn(n, d, device):
    """The three float64 GEMMs of linear_cka over the same row blocks (data converted beforehand)."""
    step = metrics._common._step(2 * d)
    gen = torch.Generator(device=device).manual_seed(1)
    xb = torch.randn((min(step, n), d), dtype=torch.float64, generator=gen, device=device)
    yb = torch.randn_like(xb)
    xx = torch.zeros((d, d), dtype=torch.float64, device=device)
    yy, xy = torch.zeros_like(xx), torch.zeros_like(xx)

    def run():
        for start in range(0, n, step):
            m = min(step, n - start)
            a, b = xb[:m], yb[:m]
            xx.addmm_(a.T, a)
            yy.addmm_(b.T, b)
            xy.addmm_(a.T, b)
        return float(xy[0, 0])

    return run


def naive_linear_cka(X, Y):
    """Gram-matrix HSIC in numpy float64: n x n Gram matrices, centered, compared."""
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)

    def centered_gram(Z):
        G = Z @ Z.T
        means = G.mean(axis=0)
        G -= means[None, :]
        G -= means[:, None]
        G += means.mean()
        return G

    K, L = centered_gram(X), centered_gram(Y)
    return float(K.ravel() @ L.ravel() / np.sqrt((K.ravel() @ K.ravel()) * (L.ravel() @ L.ravel())))


def naive_rbf_cka(X, Y):
    """Full n x n RBF kernels (lower-median heuristic of the non-zero squared distances)."""
    def kernel(Z):
        Z = np.asarray(Z, dtype=np.float64)
        sq = (Z * Z).sum(1)
        D = np.maximum(sq[:, None] + sq[None, :] - 2 * Z @ Z.T, 0.0)
        v = np.sort(D[np.triu_indices(len(Z), 1)])
        v = v[v > 0]
        K = np.exp(-D / (2 * v[(v.size - 1) // 2]))
        means = K.mean(axis=0)
        return K - means[None, :] - means[:, None] + means.mean()

    K, L = kernel(X), kernel(Y)
    return float(K.ravel() @ L.ravel() / np.sqrt((K.ravel() @ K.ravel()) * (L.ravel() @ L.ravel())))


def bench_large(args, device, out):
    X, Y = make_pair(args.n, args.d, device)
    floor = floor_fn(args.n, args.d, device)
    linear_cka(X[:2000], Y[:2000])  # lazy library initialization, outside the timed rounds
    floor_small = floor_fn(2000, args.d, device)
    floor_small()
    value = []
    fns = {"linear_cka": lambda: value.append(linear_cka(X, Y)), "floor": floor}
    t = {name: [] for name in fns}
    # The extra memory of linear_cka is read over the timed rounds (the floor's
    # blocks are allocated beforehand): peak RSS minus RSS before them.
    base = rss_bytes()
    reset_peak_rss()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        cuda_base = torch.cuda.memory_allocated(device)
    for rep in range(args.repeats):  # interleaved rounds, as _common.paired_times
        for name, fn in fns.items():
            t[name].extend(times(fn, repeat=1, warmup=0, device=device))
        print(f"round {rep + 1}/{args.repeats}: "
              + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in t.items()), flush=True)
    extra = (peak_rss_bytes() - base) / 2**20
    med = {k: statistics.median(v) for k, v in t.items()}
    data_mb = 2 * args.n * args.d * 4 / 2**20
    rows = [
        ["float64 GEMMs X^T X, Y^T Y, Y^T X (floor)", f"{med['floor']:.2f}", "1.00"],
        ["`linear_cka(X, Y)`", f"{med['linear_cka']:.2f}",
         f"{median_ratio(t['linear_cka'], t['floor']):.2f}"],
    ]
    emit(f"\n### linear CKA, {args.n:,} x {args.d} float32 (X and Y: {data_mb:,.0f} MiB)\n",
         out)
    emit(table(["", "median s", "ratio to floor"], rows), out)
    summary("metrics", f"linear_cka, {args.n:,} x {args.d} float32",
            median_ratio(t["linear_cka"], t["floor"]), "float64 GEMMs X^T X, Y^T Y, Y^T X",
            out=out, quick=args.quick)
    mem = f"extra peak RSS during the rounds {extra:,.0f} MiB"
    if device.type == "cuda":
        extra_cuda = (torch.cuda.max_memory_allocated(device) - cuda_base) / 2**20
        mem += f", extra CUDA peak {extra_cuda:,.0f} MiB"
    gflop = 2 * args.n * 3 * args.d**2 / 1e9
    emit(f"\nlinear CKA = {value[0]:.6f}; {args.repeats} interleaved round(s); {gflop:,.0f} "
         f"GFLOP per call ({gflop / med['floor']:.1f} GFLOP/s at the floor); {mem} "
         f"(the data: {data_mb:,.0f} MiB).", out)


def bench_small(args, device, out):
    rows = []
    for n in args.small_n:
        X, Y = make_pair(n, args.d, torch.device("cpu"), seed=n)
        Xd, Yd = (torch.from_numpy(X).to(device), torch.from_numpy(Y).to(device)) \
            if device.type == "cuda" else (X, Y)
        fns = {
            "naive_linear": lambda: naive_linear_cka(X, Y),
            "linear": lambda: linear_cka(Xd, Yd),
            "naive_rbf": lambda: naive_rbf_cka(X, Y),
            "rbf": lambda: rbf_cka(Xd, Yd),
        }
        t = paired_times(fns, repeat=args.small_repeats, warmup=1, device=device)
        med = {k: statistics.median(v) for k, v in t.items()}
        d_lin = abs(naive_linear_cka(X, Y) - linear_cka(Xd, Yd))
        d_rbf = abs(naive_rbf_cka(X, Y) - rbf_cka(Xd, Yd))
        rows.append([
            f"{n:,}",
            f"{med['naive_linear']:.3f}", f"{med['linear']:.3f}",
            f"{median_ratio(t['naive_linear'], t['linear']):.1f}x", f"{d_lin:.1e}",
            f"{med['naive_rbf']:.3f}", f"{med['rbf']:.3f}",
            f"{median_ratio(t['naive_rbf'], t['rbf']):.1f}x", f"{d_rbf:.1e}",
        ])
        print(rows[-1], flush=True)
    emit(f"\n### Against the naive n x n Gram formulas (numpy float64), d = {args.d}, "
         f"{args.small_repeats} interleaved rounds\n", out)
    emit(table(
        ["n", "naive linear s", "linear_cka s", "speed-up", "|diff|",
         "naive RBF s", "rbf_cka s", "speed-up", "|diff|"],
        rows,
    ), out)


def main(argv=None):
    p = argparse.ArgumentParser(description="Benchmark of sklearn_latent.metrics.")
    p.add_argument("--n", type=int, default=1_000_000, help="rows of the large linear CKA run")
    p.add_argument("--d", type=int, default=768)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--small-n", type=lambda s: [int(v) for v in s.split(",") if int(v)],
                   default=[1000, 2000, 4000], help="comma-separated sizes; 0 skips")
    p.add_argument("--small-repeats", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="small sizes (a smoke test)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=None, help="also append the report to this file")
    args = p.parse_args(argv)
    if args.quick:
        args.n, args.d, args.repeats = 20_000, 128, 2
        args.small_n, args.small_repeats = [300], 2
    device = torch.device(args.device)
    cmd = "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(__file__)] + sys.argv[1:])
    emit(f"\n## Metrics (issue 5), {args.device}, "
         f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC\n", args.out)
    emit(f"- machine: {machine_description(device)}", args.out)
    emit(f"- command: `{cmd}`", args.out)
    if args.small_n:
        bench_small(args, device, args.out)
    if args.n:
        bench_large(args, device, args.out)
    sync(device)
    emit(f"\n- load average at the end: %.1f / %.1f / %.1f (1 / 5 / 15 min)" % os.getloadavg(),
         args.out)


if __name__ == "__main__":
    main()

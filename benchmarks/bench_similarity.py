"""Benchmark of the issue-16 similarity measures against their floors, in one process.

1. Feature-space measures (``linear_cka`` biased and unbiased,
   ``shape_distance``, ``procrustes_distance``, ``svcca``, ``pwcca``) on
   ``--n x --d`` paired float32 rows against their floor: the three float64
   GEMMs ``X^T X``, ``Y^T Y``, ``X^T Y`` over the same row blocks (float64
   blocks made beforehand) plus the d x d eigendecompositions / SVDs the
   measure needs.  Timed round-robin (one round per repeat, the minimum
   taken) with the extra resident memory of one call.
2. k-NN measures (``mutual_knn_alignment``, ``cknna``) on ``--knn-n`` points:
   time and extra peak memory of one call, and the floor of the two chunked
   top-k searches (``functional.knn_search``) they start with.
3. ``calibrate("linear_cka", n_permutations=--perms)`` on ``--calib-n x --d``
   against the floor of ``--perms`` cross-covariance GEMMs ``Xc^T Yc[perm]``
   of the same shape and dtype (float32), interleaved.

Times are CPU seconds of the process (``time.process_time``, all threads), so
ratios measured in one run hold on a machine shared with other work.

Usage::

    python benchmarks/bench_similarity.py --quick
    python benchmarks/bench_similarity.py --n 100000 --knn-n 20000 --calib-n 10000 \
        --out /tmp/sim.md
    python benchmarks/run.py --merge /tmp/sim.md.summary.jsonl --results benchmarks/RESULTS.md
"""

import argparse
import datetime
import os
import shlex
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from _common import (  # noqa: E402
    emit,
    machine_description,
    peak_rss_bytes,
    reset_peak_rss,
    rss_bytes,
    summary,
    table,
)
from bench_metrics import make_pair  # noqa: E402

from sklearn_latent import functional as F  # noqa: E402
from sklearn_latent.metrics import (  # noqa: E402
    calibrate,
    cknna,
    linear_cka,
    mutual_knn_alignment,
    procrustes_distance,
    pwcca,
    shape_distance,
    svcca,
)
from sklearn_latent.metrics._common import _step  # noqa: E402

MiB = 1 << 20


def timed(fn):
    """CPU seconds of the process (all threads; robust to a loaded machine) and the value."""
    t = time.process_time()
    value = fn()
    return time.process_time() - t, value


def extra_memory(fn):
    """CPU seconds, value and peak RSS above the RSS before the call, in MiB."""
    before = rss_bytes()
    reset_peak_rss()
    t, value = timed(fn)
    return t, value, (peak_rss_bytes() - before) / MiB


def gemm_floor(n, d, cross_only=False):
    """The three float64 GEMMs over row blocks of prepared float64 data (``cross_only``: X^T Y)."""
    step = _step(2 * d)
    gen = torch.Generator().manual_seed(1)
    xb = torch.randn((min(step, n), d), dtype=torch.float64, generator=gen)
    yb = torch.randn_like(xb)

    def run():
        xx = torch.zeros((d, d), dtype=torch.float64)
        yy, xy = torch.zeros_like(xx), torch.zeros_like(xx)
        for start in range(0, n, step):
            rows = min(step, n - start)
            a, b = xb[:rows], yb[:rows]
            if not cross_only:
                xx.addmm_(a.T, a)
                yy.addmm_(b.T, b)
            xy.addmm_(a.T, b)
        return xx, yy, xy

    return run


def post_floor(kind, mats):
    """The d x d decompositions a measure needs after the GEMMs."""
    xx, yy, xy = mats
    if kind == "cka":
        return lambda: torch.linalg.matrix_norm(xy)
    if kind == "svd":
        return lambda: torch.linalg.svdvals(xy)
    # eigendecompositions of both covariances, then an SVD of the d x d cross term
    return lambda: (torch.linalg.eigh(xx), torch.linalg.eigh(yy), torch.linalg.svdvals(xy))


def part_feature(args, out):
    X, Y = make_pair(args.n, args.d, torch.device("cpu"))
    # (name, call, post-GEMM work, GEMMs: "3" = X^T X, Y^T Y, X^T Y; "1" = X^T Y only)
    measures = [
        ("linear_cka", lambda: linear_cka(X, Y), "cka", "3"),
        ("linear_cka(unbiased=True)", lambda: linear_cka(X, Y, unbiased=True), "cka", "3"),
        ("procrustes_distance", lambda: procrustes_distance(X, Y), "svd", "1"),
        ("shape_distance(alpha=0.5)", lambda: shape_distance(X, Y, alpha=0.5), "eig", "3"),
        ("svcca", lambda: svcca(X, Y), "eig", "3"),
        ("pwcca", lambda: pwcca(X, Y), "eig", "3"),
    ]
    floors = {"3": gemm_floor(args.n, args.d), "1": gemm_floor(args.n, args.d, cross_only=True)}
    mats = floors["3"]()
    posts = {k: post_floor(k, mats) for k in ("cka", "svd", "eig")}
    post_t = {k: min(timed(f)[0] for _ in range(3)) for k, f in posts.items()}
    t_floor, t_meas, mem = {k: [] for k in floors}, {m[0]: [] for m in measures}, {}
    for _ in range(args.repeats):  # round-robin
        for k, f in floors.items():
            t_floor[k].append(timed(f)[0])
        for name, fn, _, _ in measures:
            t, v, m = extra_memory(fn)
            t_meas[name].append(t)
            mem[name] = max(mem.get(name, 0.0), m)
    rows = []
    gemm = {k: min(v) for k, v in t_floor.items()}
    for name, _, kind, g in measures:
        fl = gemm[g] + post_t[kind]
        t = min(t_meas[name])
        rows.append([name, f"{t:.2f}", f"{fl:.2f}", f"{t / fl:.2f}", f"{mem[name]:.0f}"])
        summary("metrics", f"{name}, {args.n:,} x {args.d} float32 pairs "
                f"({mem[name]:.0f} MiB extra peak RSS)", t / fl,
                "its float64 GEMMs + d x d decompositions (CPU time, same run)",
                out=out, quick=args.quick)
    emit(f"\n**Feature-space measures**, {args.n:,} x {args.d} float32 pairs "
         f"({2 * args.n * args.d * 4 / 2**30:.2f} GiB of data), min of {args.repeats} "
         "interleaved rounds, CPU time; floor = the float64 GEMMs the measure needs over the "
         f"same blocks (3 GEMMs X^T X, Y^T Y, X^T Y: {gemm['3']:.2f} s; Procrustes needs only "
         f"X^T Y: {gemm['1']:.2f} s) + the measure's d x d decompositions (CKA: a norm "
         f"{post_t['cka']:.2f} s; Procrustes: one SVD {post_t['svd']:.2f} s; the others: two "
         f"eigendecompositions and an SVD {post_t['eig']:.2f} s):\n", out)
    emit(table(["measure", "CPU time (s)", "floor (s)", "ratio", "extra peak RSS (MiB)"], rows),
         out)


def part_knn(args, out):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(args.knn_n, args.knn_d)).astype(np.float32)
    Y = (X @ rng.normal(size=(args.knn_d, args.knn_d)).astype(np.float32)
         + rng.normal(size=X.shape).astype(np.float32))
    Xt, Yt = torch.from_numpy(X), torch.from_numpy(Y)

    def search():
        F.knn_search(Xt, 11, "cosine")
        F.knn_search(Yt, 11, "cosine")

    rows = []
    t_floor, _, m_floor = extra_memory(search)
    rows.append(["floor: two knn_search (k + 1 = 11)", f"{t_floor:.1f}", f"{m_floor:.0f}", ""])
    for name, fn in (("mutual_knn_alignment(k=10)", lambda: mutual_knn_alignment(X, Y, k=10)),
                     ("cknna(k=10)", lambda: cknna(X, Y, k=10))):
        t, v, m = extra_memory(fn)
        rows.append([name, f"{t:.1f}", f"{m:.0f}", f"{v:.4f}"])
        summary("metrics", f"{name}, {args.knn_n:,} x {args.knn_d} points ({t:.0f} CPU s, "
                f"{m:.0f} MiB extra peak RSS)", t / t_floor,
                "its two chunked knn_search calls (CPU time, same run)",
                out=out, quick=args.quick)
    emit(f"\n**k-NN measures**, {args.knn_n:,} x {args.knn_d} float32 points, one call each:\n",
         out)
    emit(table(["call", "CPU time (s)", "extra peak RSS (MiB)", "value"], rows), out)


def part_calibration(args, out):
    X, Y = make_pair(args.calib_n, args.d, torch.device("cpu"), seed=2)
    perms = args.perms
    Xc = torch.from_numpy(X - X.mean(0))
    Yc = torch.from_numpy(Y - Y.mean(0))
    gen = torch.Generator().manual_seed(0)

    def floor():
        for _ in range(perms):
            p = torch.randperm(Xc.shape[0], generator=gen)
            (Xc.T @ Yc[p]).to(torch.float64)

    def cal():
        return calibrate("linear_cka", X, Y, n_permutations=perms, random_state=0)

    tf, tc = [], []
    res = None
    for _ in range(args.calib_repeats):
        tf.append(timed(floor)[0])
        t, res = timed(cal)
        tc.append(t)
    emit(f"\n**Calibration**: calibrate('linear_cka', n_permutations={perms}) on "
         f"{args.calib_n:,} x {args.d} float32, min of {args.calib_repeats} interleaved rounds; "
         f"floor = {perms} cross-covariance GEMMs Xc^T Yc[perm] (float32, with the row "
         "gathers):\n", out)
    emit(table(["call", "CPU time (s)", "ratio to floor"],
               [[f"floor: {perms} GEMMs", f"{min(tf):.1f}", "1.00"],
                ["calibrate", f"{min(tc):.1f}", f"{min(tc) / min(tf):.2f}"]]), out)
    emit(f"\n(score {res.score:.4f}, null mean {res.null_mean:.4f}, p = {res.p_value:.3f})", out)
    summary("metrics", f"calibrate('linear_cka', n_permutations={perms}), {args.calib_n:,} x "
            f"{args.d} float32", min(tc) / min(tf),
            f"{perms} float32 cross-covariance GEMMs Xc^T Yc[perm] (CPU time, same run)",
            out=out, quick=args.quick)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--d", type=int, default=768)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--knn-n", type=int, default=100_000)
    p.add_argument("--knn-d", type=int, default=256)
    p.add_argument("--calib-n", type=int, default=100_000)
    p.add_argument("--perms", type=int, default=100)
    p.add_argument("--calib-repeats", type=int, default=2)
    p.add_argument("--parts", default="feature,knn,calibration")
    p.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    p.add_argument("--out", help="append the results to this markdown file")
    args = p.parse_args(argv)
    if args.quick:
        args.n, args.d, args.knn_n, args.calib_n, args.perms = 5000, 64, 2000, 2000, 10
        args.knn_d = 32
    out = args.out
    cmd = shlex.join(sys.argv[1:] if argv is None else argv)
    emit(f"\n### {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC: "
         f"`python benchmarks/bench_similarity.py {cmd}`\n", out)
    emit(f"Machine: {machine_description()}.",
         out)
    parts = args.parts.split(",")
    if "feature" in parts:
        part_feature(args, out)
    if "knn" in parts:
        part_knn(args, out)
    if "calibration" in parts:
        part_calibration(args, out)
    emit(f"\nLoad average {os.getloadavg()[0]:.1f} at the end.", out)


if __name__ == "__main__":
    main()

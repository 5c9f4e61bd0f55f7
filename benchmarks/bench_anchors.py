"""Anchor selection against its floor and its peer, in one run.

* fps: ``select_anchors(X, k, "fps")`` against its floor, ``k - 1`` GEMVs
  ``X @ v`` over the same data (one per anchor);
* kmeans: ``select_anchors(X, k, "kmeans")`` (k-means++ seeding, at most 20
  Lloyd iterations, snapped to real rows) against scikit-learn's
  ``KMeans(algorithm="lloyd", n_init=1, max_iter=20)`` on the same data.

Rounds interleave the target and its reference; ratios are medians of the
per-round ratios.

Usage::

    python benchmarks/bench_anchors.py            # fps: 100,000 x 768, 100 anchors; kmeans 20,000 x 256, 300
    python benchmarks/bench_anchors.py --quick
"""

import argparse
import os
import statistics
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from _common import _command, emit, machine_description, paired_times, summary, table  # noqa: E402
from sklearn.cluster import KMeans  # noqa: E402

from sklearn_latent import select_anchors  # noqa: E402
from sklearn_latent.functional import _lp  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fps-n", type=int, default=100_000)
    parser.add_argument("--fps-k", type=int, default=100)
    parser.add_argument("--km-n", type=int, default=20_000)
    parser.add_argument("--km-d", type=int, default=256)
    parser.add_argument("--km-k", type=int, default=300)
    parser.add_argument("--d", type=int, default=768)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--device", default="cpu", help="only cpu is measured")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.fps_n, args.fps_k, args.km_n, args.km_k, args.repeats = 20_000, 30, 5_000, 50, 1
    rng = np.random.default_rng(0)
    X = rng.standard_normal((args.fps_n, args.d), dtype=np.float32)
    Xt = torch.from_numpy(X)
    v = Xt[0].clone()

    def floor():
        for _ in range(args.fps_k - 1):
            Xt @ v

    rows = []
    fps = paired_times({
        "fps": lambda: select_anchors(X, args.fps_k, "fps", random_state=0),
        "floor": floor,
    }, repeat=args.repeats, warmup=1)  # the warm-up loads (or compiles) the numba step
    ratio = statistics.median(a / b for a, b in zip(fps["fps"], fps["floor"]))
    summary("anchors", f"fps, {args.fps_n:,} x {args.d}, {args.fps_k} anchors", ratio,
            f"{args.fps_k - 1} GEMVs X @ v", out=args.out, quick=args.quick)
    rows.append([f"fps, {args.fps_n:,} x {args.d}, {args.fps_k} anchors",
                 f"{min(fps['fps']):.2f}", f"{args.fps_k - 1} GEMVs X @ v",
                 f"{min(fps['floor']):.2f}", f"{ratio:.2f}"])
    Xk = rng.standard_normal((args.km_n, args.km_d), dtype=np.float32)
    km = paired_times({
        "ours": lambda: select_anchors(Xk, args.km_k, "kmeans", random_state=0),
        "sklearn": lambda: KMeans(args.km_k, n_init=1, max_iter=20, random_state=0,
                                  algorithm="lloyd").fit(Xk),
    }, repeat=args.repeats, warmup=0)
    ratio = statistics.median(a / b for a, b in zip(km["ours"], km["sklearn"]))
    summary("anchors", f"kmeans, {args.km_n:,} x {args.km_d}, {args.km_k} anchors", "-", "-",
            ratio, "scikit-learn KMeans(lloyd, n_init=1, max_iter=20)", out=args.out,
            quick=args.quick)
    rows.append([f"kmeans, {args.km_n:,} x {args.km_d}, {args.km_k} anchors",
                 f"{min(km['ours']):.2f}", "sklearn KMeans(lloyd, n_init=1, max_iter=20)",
                 f"{min(km['sklearn']):.2f}", f"{ratio:.2f}"])
    head = (
        f"## Anchor selection ({'--quick' if args.quick else 'full'})\n\n"
        f"- machine: {machine_description()}\n"
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n"
        f"- command: `{_command()}`\n"
        f"- float32 standard normal data; {args.repeats} interleaved round(s); numba step of "
        f"fps: {'yes' if _lp.jit_available() else 'no (torch fallback)'}\n"
    )
    emit(head + "\n" + table(
        ["case", "s (best)", "reference", "reference s (best)", "ratio (median of rounds)"],
        rows) + "\n", args.out)


if __name__ == "__main__":
    main()

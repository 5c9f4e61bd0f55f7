"""Does a pre-alignment diagnostic predict where pair-free alignment works? (issue 14, item 4)

For the real-encoder pairs of bench_zeropair.py whose 0-pair outcome is known
(benchmarks/results/zeropair_*.csv: "ok" = top-1 and stitching within 2 points
of the all-pairs ceiling, "fail" = warned and far below), on the same 4,000
rows (duplicate rows dropped: they make k-NN graphs undefined):

* ``LED``: :func:`sklearn_latent.metrics.laplacian_eigenvalue_distance` of the
  two spaces, the second shuffled (Sogaard et al., 2018: larger = less
  isometric); needs no pairs;
* ``LED X/X``: the same between two random halves of the source alone (the
  noise floor of the measure on that data), ``LED X/Y``: between a half of
  the source and the other half of the target (different items);
* ``mutual kNN``: :func:`sklearn_latent.metrics.mutual_knn_alignment` of the
  paired rows (needs the pairs: how similar the neighbourhoods really are).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/zeropair_alignability.py [--root /work/cache/real]
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PAIRS = [("tweets", "minilm-l6", "minilm-l3", "ok"), ("tweets", "minilm-l6", "use-m3", "ok"),
         ("austen", "minilm-l6", "minilm-l3", "ok"), ("austen", "minilm-l3", "minilm-l6", "ok"),
         ("austen", "minilm-l6", "use-m3", "fail"), ("vader", "minilm-l6", "use-m3", "fail"),
         ("digits", "effnet-lite0", "effnet-lite1", "fail"),
         ("mnist", "effnet-lite0", "effnet-lite2", "fail")]


def main(argv=None):
    from sklearn_latent.metrics import laplacian_eigenvalue_distance, mutual_knn_alignment

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default="/work/cache/real")
    args = ap.parse_args(argv)
    print("| pair | 0-pair outcome | rows | LED | LED X/X | LED X/Y | mutual kNN (paired) |")
    print("|---|---|---|---|---|---|---|")
    for ds, a, b, outcome in PAIRS:
        X, Y = (np.load(Path(args.root) / ds / f"{e}.npy") for e in (a, b))
        rng = np.random.default_rng(0)
        idx = rng.permutation(len(X))[:4000]
        X, Y = X[idx], Y[idx]
        keep = np.intersect1d(np.unique(X, axis=0, return_index=True)[1],
                              np.unique(Y, axis=0, return_index=True)[1])
        X, Y = X[keep], Y[keep]
        n = len(X)
        t0 = time.perf_counter()
        led = laplacian_eigenvalue_distance(X, Y[rng.permutation(n)])
        h = rng.permutation(n)
        led_xx = laplacian_eigenvalue_distance(X[h[: n // 2]], X[h[n // 2 :]])
        led_xy = laplacian_eigenvalue_distance(X[h[: n // 2]], Y[h[n // 2 :]])
        mk = mutual_knn_alignment(X, Y, k=10)
        print(f"| {ds}: {a} -> {b} | {outcome} | {n:,} | {led:.1f} | {led_xx:.1f} | "
              f"{led_xy:.1f} | {mk:.3f} |", flush=True)
        print(f"  ({time.perf_counter() - t0:.1f} s)", file=sys.stderr)


if __name__ == "__main__":
    main()

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

``--true-map`` prints another table instead: the failure signal of
:class:`~sklearn_latent.AnchorMatcher` applied to the *true* map (orthogonal
Procrustes on all training pairs of bench_zeropair.py's split, 4,000 rows;
1,198 on digits), on the spaces as the matcher sees them (centered,
row-normalized, 256 principal axes): the share of rows that are mutual CSLS
matches under it, the null from a random start after 3 self-learning rounds,
and the reliability ``(mutual - null) / (1 - null)`` (the warning fires below
0.5).  It needs the pairs: it says whether a pair is alignable from its
geometry at all, not what the matcher finds.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/zeropair_alignability.py [--root /work/cache/real]
    OMP_NUM_THREADS=1 python benchmarks/zeropair_alignability.py --true-map
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

# the 0-pair outcome with the default discovery="auto" (2026-12-07; Austen MiniLM-L6 ->
# USE failed before the profile route)
PAIRS = [("tweets", "minilm-l6", "minilm-l3", "ok"), ("tweets", "minilm-l6", "use-m3", "ok"),
         ("austen", "minilm-l6", "minilm-l3", "ok"), ("austen", "minilm-l3", "minilm-l6", "ok"),
         ("austen", "minilm-l6", "use-m3", "ok"), ("austen", "minilm-l6", "glove-50", "fail"),
         ("vader", "minilm-l6", "use-m3", "fail"),
         ("digits", "effnet-lite0", "effnet-lite1", "fail"),
         ("mnist", "effnet-lite0", "effnet-lite2", "fail"),
         # the other directed pairs among MiniLM-L6, MiniLM-L3 and USE v3 (2026-12-07,
         # eighth session; zeropair_{tweets,austen,vader}_directions.csv)
         ("tweets", "minilm-l3", "minilm-l6", "ok"), ("tweets", "use-m3", "minilm-l6", "ok"),
         ("tweets", "minilm-l3", "use-m3", "ok"), ("tweets", "use-m3", "minilm-l3", "ok"),
         ("austen", "use-m3", "minilm-l6", "ok"), ("austen", "minilm-l3", "use-m3", "fail"),
         ("austen", "use-m3", "minilm-l3", "fail"), ("vader", "minilm-l6", "minilm-l3", "fail"),
         ("vader", "minilm-l3", "minilm-l6", "fail"), ("vader", "minilm-l3", "use-m3", "fail"),
         ("vader", "use-m3", "minilm-l6", "fail"), ("vader", "use-m3", "minilm-l3", "fail")]


def true_map_table(root):
    """The failure signal of AnchorMatcher scored on each pair's true map (see above)."""
    import torch

    from bench_zeropair import split_rows
    from sklearn_latent.functional import _matching as FM
    from sklearn_latent.matching import MAX_WIDTH, _reliability

    print("| pair | 0-pair outcome | rows | true map mutual | null | reliability |")
    print("|---|---|---|---|---|---|")
    for ds, a, b, outcome in PAIRS:
        A, B = (np.load(Path(root) / ds / f"{e}.npy") for e in (a, b))
        train, _ = split_rows(len(A), 4000, 1000)
        X, Y = (FM.principal_width(FM.center_normalize(torch.as_tensor(Z[train]).float()),
                                   MAX_WIDTH) for Z in (A, B))
        _, mutual = FM.alignment_score(FM._normalize(X @ FM.procrustes_polar(X, Y)), Y, 10)
        rng = np.random.default_rng(0)
        Q = FM.polar(torch.as_tensor(rng.normal(size=(X.shape[1], Y.shape[1])))).float()
        Q = FM.refine_by_csls(X, Y, Q, 3)
        _, null = FM.alignment_score(FM._normalize(X @ Q), Y, 10)
        print(f"| {ds}: {a} -> {b} | {outcome} | {len(train):,} | {mutual:.3f} | {null:.3f} | "
              f"{_reliability(mutual, null):.2f} |", flush=True)


def main(argv=None):
    from sklearn_latent.metrics import laplacian_eigenvalue_distance, mutual_knn_alignment

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default="/work/cache/real")
    ap.add_argument("--true-map", action="store_true",
                    help="the failure signal scored on each pair's true map instead")
    args = ap.parse_args(argv)
    if args.true_map:
        return true_map_table(args.root)
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

"""Pair-free alignment by size: ``AnchorMatcher()`` end to end, 2,000-20,000 rows per side.

Issue 14's speed item: end-to-end time and peak memory of the pair-free
pipeline with default settings as the number of rows per side grows, on
synthetic spaces that are alignable by construction (so the run measures the
cost, not whether real encoders happen to be isometric): ``X`` is a mixture
of 40 anisotropic clusters in 64 latent dimensions (power-law scales)
embedded into 384 dimensions; ``Y = X Q + noise`` with a random rotation
``Q`` and noise at 5 % of the signal's scale, its rows shuffled.  Each size
runs in a fresh process (imports done before the measurement); reported:
wall and CPU seconds of ``fit``, the peak resident memory above the level
before ``fit`` (VmHWM reset just before), the input size for comparison, the
precision of the discovered pairs (true pairs / pairs) and whether an
:class:`~sklearn_latent.AlignmentWarning` was raised.

Usage::

    python benchmarks/bench_zeropair_scale.py                  # 2,000 to 20,000 per side (~3 min)
    python benchmarks/bench_zeropair_scale.py --sizes 100000   # one size (~7 min idle, 1.4 GiB)
    python benchmarks/bench_zeropair_scale.py --quick          # 1,000 per side, a smoke test
    python benchmarks/bench_zeropair_scale.py --discovery profiles   # time the profile route
    python benchmarks/bench_zeropair_scale.py --clusters 1   # "auto" where the centroids fail
"""

import argparse
import json
import subprocess
import sys
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # this checkout's package, not an installed one
sys.path.insert(0, str(HERE))

from _common import emit, machine_description, table  # noqa: E402

MiB = 2.0**20


def make_spaces(n, d=384, latent=64, clusters=40, noise=0.05, seed=0):
    """``(X, Y, perm)``: ``Y[perm[i]]`` is the partner of ``X[i]`` (float32)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    scales = 1.0 / np.arange(1, latent + 1) ** 0.7  # anisotropic: power-law spectrum
    centers = 3.0 * rng.normal(size=(clusters, latent)) * scales
    labels = rng.integers(0, clusters, size=n)
    Z = centers[labels] + rng.normal(size=(n, latent)) * scales
    X = Z @ rng.normal(size=(latent, d)) / np.sqrt(latent)
    Q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    Y = X @ Q
    Y += noise * Y.std() * rng.normal(size=Y.shape)
    perm = rng.permutation(n)
    Y_shuffled = np.empty_like(Y)
    Y_shuffled[perm] = Y
    return X.astype(np.float32), Y_shuffled.astype(np.float32), perm


def child(n, seed, discovery="auto", clusters=40):
    """One size in this (fresh) process: the numbers as a JSON line."""
    import numpy as np

    from _common import peak_rss_bytes, reset_peak_rss, rss_bytes
    from sklearn_latent import AlignmentWarning, AnchorMatcher

    X, Y, perm = make_spaces(n, clusters=clusters, seed=seed)
    matcher = AnchorMatcher(discovery=discovery, random_state=seed)
    before = rss_bytes()
    reset_peak_rss()
    t_wall, t_cpu = time.perf_counter(), time.process_time()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", AlignmentWarning)
        matcher.fit(X, Y)
    wall, cpu = time.perf_counter() - t_wall, time.process_time() - t_cpu
    peak = peak_rss_bytes() - before
    pairs = np.asarray(matcher.matched_pairs_)
    precision = float((perm[pairs[:, 0]] == pairs[:, 1]).mean()) if len(pairs) else 0.0
    warned = any(issubclass(w.category, AlignmentWarning) for w in caught)
    return dict(n=n, wall=wall, cpu=cpu, peak_mib=peak / MiB,
                input_mib=(X.nbytes + Y.nbytes) / MiB, pairs=len(pairs),
                precision=precision, warned=warned, route=matcher.discovery_)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", nargs="+", type=int, default=[2_000, 4_000, 10_000, 20_000],
                   help="rows per side")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--discovery", default="auto",
                   help="AnchorMatcher's discovery (the default: 'auto'); 'profiles' times the "
                        "profile route alone")
    p.add_argument("--clusters", type=int, default=40,
                   help="clusters of the synthetic data (1: one anisotropic Gaussian, where "
                        "the centroid route finds no start and 'auto' needs the profile "
                        "route)")
    p.add_argument("--quick", action="store_true", help="1,000 rows per side")
    p.add_argument("--device", default="cpu", help="only cpu is measured here")
    p.add_argument("--out", default=None, help="also append the report to this file")
    p.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child is not None:
        print(json.dumps(child(args.child, args.seed, args.discovery, args.clusters)),
              flush=True)
        return
    if args.quick:
        args.sizes = [1_000]
    rows = []
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    machine = machine_description()
    for n in args.sizes:
        out = subprocess.run([sys.executable, __file__, "--child", str(n), "--seed",
                              str(args.seed), "--discovery", args.discovery,
                              "--clusters", str(args.clusters)], check=True,
                             capture_output=True, text=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"n={n:,}: {r}", flush=True)
        rows.append([f"{n:,}", f"{r['wall']:.1f}", f"{r['cpu']:.1f}", f"{r['peak_mib']:.0f}",
                     f"{r['input_mib']:.0f}", f"{r['pairs']:,}", f"{r['precision']:.3f}",
                     "yes" if r["warned"] else "no", r["route"]])
    emit(f"\n### bench_zeropair_scale.py ({started})\n", args.out)
    emit(f"- command: `python benchmarks/bench_zeropair_scale.py "
         f"{' '.join(argv if argv is not None else sys.argv[1:])}`", args.out)
    emit(f"- machine: {machine}", args.out)
    emit(f"- data: synthetic, 384-d, {args.clusters} anisotropic clusters, Y = X Q + 5 % "
         "noise, rows of Y "
         f"shuffled, seed {args.seed}; `AnchorMatcher(discovery={args.discovery!r}, "
         "random_state=seed).fit(X, Y)`, other settings default, each size in a fresh "
         "process\n", args.out)
    emit(table(["rows per side", "wall s", "CPU s", "peak extra MiB", "input MiB",
                "pairs found", "precision", "AlignmentWarning", "route kept"], rows) + "\n",
         args.out)


if __name__ == "__main__":
    main()

"""Real encoders: the library's defaults against the ceiling and the plain baseline.

The "Real encoders" table of ``benchmarks/RESULTS.md`` (``make bench``): the
protocol of ``benchmarks/real_suite.py`` (its ``quick`` set: each estimator's
default and the plain reference) on the cached embeddings of real pretrained
encoders (``benchmarks/real_data.py``), one text and one image data set by
default.  Per data set and default estimator, the stitched accuracy averaged
over every ordered encoder pair, over

* the ceiling: the target's own head on the target's own test rows (``native``);
* the best peer: orthogonal Procrustes on mean-centered anchors, ten lines of
  numpy (``real_suite.plain_procrustes``), on the same anchors.

These are accuracy ratios: above 1 is better.  Without the cache (a fresh
machine: build it with ``python benchmarks/real_data.py --root DIR tweets
digits``, which needs the ``real`` packages of ``../shared/REFERENCE.md``) the
script says so and records nothing, so ``run.py --results`` keeps the last
recorded rows.

Usage::

    python benchmarks/bench_real.py                      # tweets + digits, k = 500, seed 0
    python benchmarks/bench_real.py --quick              # tweets, 600 rows, k = 200
    python benchmarks/bench_real.py --datasets vader austen mnist --seeds 0 1
"""

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # this checkout's package, not an installed one
sys.path.insert(0, str(HERE))

from _common import emit, machine_description, summary  # noqa: E402

#: the estimators whose defaults are reported, as named by real_suite's quick set
DEFAULTS = (
    ("procrustes (default)", "ProcrustesTranslator()"),
    ("inverse (default)", "RelativeTranslator()"),
    ("irp (default)", "InverseRelativeProjector()"),
    ("relative (default)", "RelativeProjector()"),
    ("product (default)", "ProductInvarianceProjector()"),
)


def rows_of(frame):
    """``[(dataset, modality, estimator, n_pairs, accuracy, native, plain)]`` of a suite frame.

    ``accuracy`` is the stitched accuracy (source != target) averaged over the
    seeds and then over the ordered pairs; ``native`` the mean over the same
    pairs of the target's own accuracy; ``plain`` the plain Procrustes baseline's.
    """
    import real_suite

    pairs = real_suite.pair_means(frame)
    native = (frame[frame["method"] == "native"]
              .groupby(["dataset", "k", "target"])["accuracy"].mean())
    out = []
    for (dataset, modality, k), part in pairs.groupby(["dataset", "modality", "k"]):
        wide = part.pivot_table(index=["source", "target"], columns="method",
                                values="accuracy")
        ceiling = [native[(dataset, k, t)] for _, t in wide.index]
        for method, label in DEFAULTS:
            if method not in wide:
                continue
            out.append((dataset, modality, k, label, len(wide), float(wide[method].mean()),
                        float(sum(ceiling) / len(ceiling)),
                        float(wide["plain procrustes"].mean())))
    return out


def main(argv=None):
    import real_suite

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+", default=["tweets", "digits"],
                   choices=sorted(real_suite.DATASETS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--k", type=int, default=500, help="parallel anchors")
    p.add_argument("--max-n", type=int, default=real_suite.MAX_N,
                   help="rows per data set (stratified subsample)")
    p.add_argument("--cache", default=real_suite.CACHE,
                   help="real-encoder cache (default: $SKLEARN_LATENT_REAL_CACHE or "
                        "/work/cache/real)")
    p.add_argument("--quick", action="store_true", help="tweets only, 600 rows, k = 200")
    p.add_argument("--out", default=None, help="also append the report to this file")
    args = p.parse_args(argv)
    if args.quick:
        args.datasets, args.max_n, args.k = ["tweets"], 600, 200
    missing = [d for d in args.datasets if not (Path(args.cache) / d / "DONE").exists()]
    if missing:
        print(f"bench_real: skipped, no finished real-encoder cache for {', '.join(missing)} "
              f"in {args.cache} (build it with `python benchmarks/real_data.py --root "
              f"{args.cache} {' '.join(missing)}`); nothing recorded", flush=True)
        return
    machine = machine_description()
    t0 = time.perf_counter()
    frame = real_suite.run(args.datasets, args.seeds, [args.k], cache=args.cache,
                           max_n=args.max_n, which="quick", log=lambda m: None)
    seconds = time.perf_counter() - t0
    rows = rows_of(frame)
    emit(f"### bench_real.py ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})\n",
         args.out)
    emit(f"- command: `python benchmarks/bench_real.py "
         f"{' '.join(a for a in (argv if argv is not None else sys.argv[1:]))}`", args.out)
    emit(f"- machine: {machine}; {seconds:.0f} s", args.out)
    emit(f"- data: {', '.join(args.datasets)} from {args.cache}, at most {args.max_n:,} rows "
         f"each, split 70/30, {args.k} random parallel anchors among the training rows, "
         f"seeds {args.seeds}; head LogisticRegression(max_iter=1000) on the target space\n",
         args.out)
    emit("| data set | estimator (default) | ordered pairs | stitched accuracy | ceiling "
         "(target's own head) | plain centered Procrustes | / ceiling | / plain |", args.out)
    emit("|---|---|---|---|---|---|---|---|", args.out)
    for dataset, modality, k, label, n_pairs, acc, native, plain in rows:
        emit(f"| {dataset} ({modality}) | {label} | {n_pairs} | {acc:.3f} | {native:.3f} | "
             f"{plain:.3f} | {acc / native:.3f} | {acc / plain:.3f} |", args.out)
        summary("real encoders",
                f"{label}, {dataset} ({modality}), {n_pairs} ordered encoder pairs, "
                f"{k} anchors, stitched accuracy {acc:.3f}",
                acc / native, f"the target's own head ({native:.3f})",
                acc / plain, f"plain centered Procrustes ({plain:.3f})",
                out=args.out, quick=args.quick, measure="accuracy",
                note=f"seed{'s' * (len(args.seeds) > 1)} {', '.join(map(str, args.seeds))}")
    emit("", args.out)


if __name__ == "__main__":
    main()

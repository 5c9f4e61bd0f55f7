"""``sklearn-latent compare``: similarity of many embedding spaces, as a CSV and a heatmap."""

import inspect
import os

HELP = "similarity of embedding spaces of the same samples (CKA, CKNNA, shape metrics, ...)"


def add_parser(subparsers):
    """Register ``compare`` on the ``sklearn-latent`` subparsers."""
    from ..__main__ import EPILOG_FILES, HelpFormatter, _positive_int
    from ..metrics import MEASURES

    p = subparsers.add_parser(
        "compare", help=HELP, formatter_class=HelpFormatter,
        description="Compare embedding spaces of the same samples (models or layers): every "
                    "pair of --space files with each --measure, optionally calibrated against "
                    "a permutation null (--calibrate N: the score minus the mean score with "
                    "the rows of one space shuffled, and a p-value). Prints the table and "
                    "writes similarity.csv and similarity.png into --out.",
        epilog=EPILOG_FILES,
    )
    p.add_argument("--space", action="append", required=True, metavar="NAME=FILE",
                   help="an embedding file (samples x features) and its name; repeat for "
                        "every space, all with the same samples in the same order")
    p.add_argument("--measure", action="append", choices=sorted(MEASURES), metavar="MEASURE",
                   help="a measure (repeat for several): " + ", ".join(sorted(MEASURES))
                        + "; default: linear_cka")
    p.add_argument("--k", type=_positive_int, default=10, metavar="K",
                   help="neighbours of the k-NN measures; default: 10")
    p.add_argument("--unbiased", action="store_true",
                   help="unbiased HSIC for linear_cka and rbf_cka (fair at small n)")
    p.add_argument("--calibrate", type=_positive_int, metavar="N",
                   help="calibrate every score against N permutations")
    p.add_argument("--seed", type=int, default=0, metavar="S",
                   help="seed of the permutations; default: 0")
    p.add_argument("--jobs", type=_positive_int, default=1, metavar="N",
                   help="pairs evaluated in parallel (threads); default: 1")
    p.add_argument("--backend", choices=("joblib", "dask"), default="joblib",
                   help="how pairs run in parallel: joblib threads or Dask's threaded "
                        "scheduler (needs the dask extra); default: joblib")
    p.add_argument("--out", default="sklearn-latent-compare", metavar="DIR",
                   help="folder for similarity.csv and similarity.png; default: "
                        "./sklearn-latent-compare")
    p.add_argument("--no-plot", action="store_true", help="do not write similarity.png")
    p.set_defaults(run=run)
    return p


def _params(name, args):
    from ..metrics import MEASURES

    accepted = inspect.signature(MEASURES[name][0]).parameters
    out = {}
    if "k" in accepted:
        out["k"] = args.k
    if args.unbiased and "unbiased" in accepted:
        out["unbiased"] = True
    return out


def run(args, out):
    """Run ``compare``; returns the exit status."""
    import pandas as pd

    from ..__main__ import DataError, UsageError, _embeddings
    from ..metrics import plot_similarity_matrix, similarity_matrix

    spaces = {}
    for item in args.space:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise UsageError(f"argument --space: expected NAME=FILE, got {item!r}")
        if name in spaces:
            raise UsageError(f"argument --space: the name {name!r} is given twice")
        spaces[name] = _embeddings(path, f"--space {name}")
    rows = {name: X.shape[0] for name, X in spaces.items()}
    if len(set(rows.values())) > 1:
        raise DataError(
            f"--space: the files must hold the same samples in the same order; their row "
            f"counts differ: {rows}."
        )
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise DataError(f"--out: {args.out!r} exists and is not a folder.")
    tables = []
    for name in args.measure or ["linear_cka"]:
        tables.append(similarity_matrix(
            spaces, name, n_permutations=args.calibrate, random_state=args.seed,
            n_jobs=args.jobs, backend=args.backend, errors="record", **_params(name, args),
        ))
    table = pd.concat(tables, ignore_index=True)
    table.attrs["spaces"] = list(spaces)
    table.attrs["kinds"] = {k: v for t in tables for k, v in t.attrs["kinds"].items()}
    value = "calibrated" if args.calibrate else "score"
    for measure, sub in table.groupby("measure", sort=False):
        kind = table.attrs["kinds"][measure]
        M = sub.pivot(index="a", columns="b", values=value).reindex(
            index=list(spaces), columns=list(spaces))
        M.index.name = M.columns.name = None
        print(f"\n{measure} ({kind}{', calibrated' if args.calibrate else ''})", file=out)
        print(M.to_string(float_format=lambda v: f"{v:.3f}"), file=out)
    failed = table[table["error"] != ""]
    for _, r in failed.drop_duplicates(["measure", "error"]).iterrows():
        print(f"warning: {r['measure']}: {r['error']}", file=out)
    os.makedirs(args.out, exist_ok=True)
    csv = os.path.join(args.out, "similarity.csv")
    table.to_csv(csv, index=False, float_format="%.6g")
    print(f"\nwrote {csv}", file=out)
    if not args.no_plot:
        fig = plot_similarity_matrix(table, value=value)
        png = os.path.join(args.out, "similarity.png")
        fig.savefig(png, dpi=110)
        print(f"wrote {png}", file=out)
    return 0

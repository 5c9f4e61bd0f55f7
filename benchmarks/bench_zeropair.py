"""Zero- and few-pair alignment: pair-free and seeded matchers against 0-100 known pairs.

For each pair of encoders (source -> target) and each number of known pairs s
in ``--pairs`` (``-1``: all training pairs): the training rows of the target
are shuffled (the methods see no correspondence beyond the s seeds), each
method is fitted, and on held-out test rows (never seen in fit) we report

* ``precision``: fraction of the discovered training pairs that are true pairs;
* ``top1``: top-1 retrieval of each translated test row among all test targets;
* ``foscttm``: :func:`sklearn_latent.metrics.foscttm`, the fraction of test
  targets closer (cosine) to a translated row than its true match (0 perfect,
  0.5 random);
* ``stitch``: accuracy of a LogisticRegression trained on the target's training
  rows, applied to the translated source test rows (zero-shot stitching);
* ``warned``: whether the fit raised an :class:`~sklearn_latent.AlignmentWarning`;
* ``cpu_s`` (process CPU time of the fit, all threads), ``wall_s`` and
  ``peak_mib`` (peak resident memory above the level before the fit, sampled
  every 20 ms).

Methods (``--methods``; more with ``--method NAME=module:function``):

* ``pairfree``: ``AnchorMatcher()`` (the pair-free pipeline; seeds, when
  given, enter it as fixed pairs);
* ``seeded``: ``AnchorMatcher(discovery="relative")``, the seed bootstrap
  (s >= 2);
* ``seeds_only``: ``ProcrustesTranslator`` on the s seeds (s >= 2);
* ``ceiling``: ``ProcrustesTranslator`` on all training pairs (once per encoder pair).

A registered method is ``function(X, Y, seeds, random_state)`` returning a
fitted object with ``transform`` (source rows into the target space) and,
if it finds pairs, ``matched_pairs_`` (rows of X, rows of Y); ``seeds`` is an
``(s, 2)`` array or ``None``.  Methods that cannot run with a number of seeds
raise ``ValueError``: the row is skipped and the reason printed.

``--refine-rows N`` sets :data:`sklearn_latent.matching.REFINE_ROWS` (``0``: X
is never sampled), to compare the sampled self-learning with the full one on
the same data (column ``refine_rows``).  ``--unpaired`` gives the two spaces
disjoint halves of the training items (truly unpaired; precision is then
undefined).  The digits data set has 1,797
rows: there the test set is a third of the rows.

Data: the real-encoder cache of benchmarks/real_data.py (``--root``,
``<dataset>/<encoder>.npy``, float32 as cached).  torch runs on ``--threads``
intra-op threads (default 1, column ``threads``; ``--threads 2`` with
``OMP_NUM_THREADS=2`` for the two-core wall times).  Run single-threaded on a
shared machine::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 \\
    python benchmarks/bench_zeropair.py --dataset tweets --encoders minilm-l6:use-m3 \\
        --pairs 0 10 --random-states 0 1 2 --out /tmp/zp.csv
    python benchmarks/bench_zeropair.py --report /tmp/zp*.csv   # docs/_static table + plot
"""

import argparse
import csv
import importlib
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from sklearn_latent import AlignmentWarning, AnchorMatcher, ProcrustesTranslator
from sklearn_latent.metrics import foscttm, top_k_accuracy

sys.path.insert(0, str(Path(__file__).resolve().parent))


class _SeedsOnly:
    def __init__(self, X, Y, seeds):
        if seeds is None or len(seeds) < 2:
            raise ValueError("seeds_only needs 2 or more seeds")
        self.matched_pairs_ = seeds
        self.model = ProcrustesTranslator().fit(X[seeds[:, 0]], Y[seeds[:, 1]])

    def transform(self, X):
        return self.model.transform(X)


def pairfree(X, Y, seeds, random_state):
    return AnchorMatcher(seeds=seeds, random_state=random_state).fit(X, Y)


def seeded(X, Y, seeds, random_state):
    if seeds is None or len(seeds) < 2:
        raise ValueError("the seed bootstrap needs 2 or more seeds")
    return AnchorMatcher(seeds=seeds, discovery="relative", random_state=random_state).fit(X, Y)


def seeds_only(X, Y, seeds, random_state):
    return _SeedsOnly(X, Y, seeds)


#: name -> function(X, Y, seeds, random_state) -> fitted object with transform
METHODS = {"pairfree": pairfree, "seeded": seeded, "seeds_only": seeds_only}


def register(spec):
    """``NAME=module:function`` (module importable, e.g. from benchmarks/) into METHODS."""
    name, _, target = spec.partition("=")
    module, _, func = target.partition(":")
    if not (name and module and func):
        raise SystemExit(f"--method wants NAME=module:function, got {spec!r}")
    METHODS[name] = getattr(importlib.import_module(module), func)
    return name


def load(dataset, root):
    from real_data import load_cache

    spaces, labels, _ = load_cache(dataset, root)
    return spaces, labels


def _rss_mib():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4096 / 2**20


class PeakMemory:
    """Peak resident memory (MiB) above the level at entry, sampled every 20 ms."""

    def __enter__(self):
        self.base = self.peak = _rss_mib()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, _rss_mib())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mib())
        self.delta = self.peak - self.base


def evaluate(translate, A_te, B_te, head, y_te):
    P = np.asarray(translate(A_te), dtype=np.float64)
    B = np.asarray(B_te, dtype=np.float64)
    return dict(top1=top_k_accuracy(P, B), foscttm=foscttm(P, B),
                stitch=float(head.score(P.astype(B_te.dtype), y_te)))


def _refine_rows():
    """The matcher's REFINE_ROWS in force (0: X is never sampled)."""
    import sklearn_latent.matching as matching

    return 0 if matching.REFINE_ROWS >= 2**62 else int(matching.REFINE_ROWS)


def split_rows(n, n_train, n_test):
    n_test = min(n_test, n // 3)
    n_train = min(n_train, n - n_test)
    order = np.random.default_rng(0).permutation(n)
    return order[:n_train], order[n_train : n_train + n_test]


def run_method(func, X, Y, seeds, rs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        c0, t0 = time.process_time(), time.perf_counter()
        with PeakMemory() as mem:
            model = func(X, Y, seeds, rs)
        cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    warned = any(issubclass(w.category, AlignmentWarning) for w in caught)
    return model, dict(cpu_s=round(cpu, 1), wall_s=round(wall, 1),
                       peak_mib=round(mem.delta, 1), warned=warned)


def main_run(args):
    from sklearn.linear_model import LogisticRegression

    spaces, labels = load(args.dataset, args.root)
    rows = []
    for spec in args.encoders:
        a, b = spec.split(":")
        A, B = spaces[a], spaces[b]
        tr, te = split_rows(len(labels), args.n_train, args.n_test)
        A_tr, B_tr, A_te, B_te = A[tr], B[tr], A[te], B[te]
        y_tr, y_te = labels[tr], labels[te]
        head = LogisticRegression(max_iter=1000).fit(B_tr, y_tr)
        own = head.score(B_te, y_te)
        base = dict(dataset=args.dataset, source=a, target=b, d_source=A.shape[1],
                    d_target=B.shape[1], n_train=len(tr), n_test=len(te),
                    unpaired=args.unpaired, target_own=round(own, 4),
                    refine_rows=_refine_rows(), threads=torch.get_num_threads())
        ceil, info = run_method(lambda X, Y, s, r: ProcrustesTranslator().fit(X, Y),
                                A_tr, B_tr, None, 0)
        rows.append(dict(base, method="ceiling", n_pairs=len(tr), random_state=-1,
                         precision=1.0, **info, **evaluate(ceil.transform, A_te, B_te,
                                                           head, y_te)))
        print(rows[-1], flush=True)
        for rs in args.random_states:
            rng = np.random.default_rng(1000 + rs)
            if args.unpaired:  # disjoint halves of the training items
                half = rng.permutation(len(tr))
                ia, ib = np.sort(half[: len(tr) // 2]), np.sort(half[len(tr) // 2 :])
            else:
                ia = ib = np.arange(len(tr))
            perm = rng.permutation(len(ib))  # row j of the target is item ib[perm[j]]
            X, Y = A_tr[ia], B_tr[ib][perm]
            inv = np.full(len(tr), -1)
            inv[ib[perm]] = np.arange(len(ib))  # item -> row of Y
            common = np.intersect1d(ia, ib)
            for s in args.pairs:
                s = len(common) if s < 0 else min(s, len(common))
                items = rng.choice(common, s, replace=False) if s else np.zeros(0, int)
                seeds = np.stack([np.searchsorted(ia, items), inv[items]], axis=1) if s else None
                for name in args.methods:
                    try:
                        model, info = run_method(METHODS[name], X, Y, seeds, rs)
                    except ValueError as exc:
                        print(f"# skip {name} with {s} pairs: {exc}", flush=True)
                        continue
                    pairs = getattr(model, "matched_pairs_", None)
                    precision = float("nan")
                    if pairs is not None and len(pairs) and not args.unpaired:
                        pairs = np.asarray(pairs)
                        precision = float(np.mean(ia[pairs[:, 0]] == ib[perm[pairs[:, 1]]]))
                    extra = {k: getattr(model, k + "_") for k in
                             ("alignment_score", "mutual_fraction", "null_mutual_fraction",
                              "n_centroids") if hasattr(model, k + "_")}
                    rows.append(dict(
                        base, method=name, n_pairs=s, random_state=rs, precision=precision,
                        n_found=0 if pairs is None else len(pairs), **info,
                        **evaluate(model.transform, A_te, B_te, head, y_te), **extra,
                    ))
                    show(rows[-1])
    write_rows(rows, args.out)
    return rows


def show(row):
    """Print one result row, floats rounded (progress of a long run)."""
    print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)


def write_rows(rows, path):
    """The rows as a CSV with the union of their keys as columns (``path`` None: nothing)."""
    if path:
        keys = sorted({k for r in rows for k in r})
        with open(path, "w", newline="") as fh:
            w = csv.DictWriter(fh, keys)
            w.writeheader()
            w.writerows(rows)


#: Result files of pairs whose outcome or time the profile route's soft rounds
#: (2026-12-08) changed, all re-measured since: their runs get their own row in the
#: report, "pairfree (before the soft rounds)", instead of being pooled with the new.
BEFORE_SOFT_ROUNDS = frozenset({
    "zeropair_austen_2lines_4000.csv", "zeropair_austen_2lines_4000_states.csv",
    "zeropair_austen_2lines_9800.csv", "zeropair_austen_all_dropout.csv",
})


def report(csv_files, table_path, plot_path):
    """Markdown table (mean over random states) and a plot of top-1/stitching vs pairs."""
    import pandas as pd

    # each CSV is one run with its own all-pairs ceiling (the translator's defaults may
    # differ between runs): every row is compared with the ceiling of its own file
    df = pd.concat([pd.read_csv(f).assign(file=str(f)) for f in csv_files], ignore_index=True)
    df["unpaired"] = df["unpaired"].astype(bool)
    # one row per training size too: the same pair at 6,500 and 9,800 rows is two cases
    df["key"] = (df["dataset"] + ", " + df["n_train"].map("{:,}".format) + " rows: "
                 + df["source"] + " -> " + df["target"])
    df["pair"] = df["key"] + np.where(df["unpaired"], " (unpaired)", "")
    is_ceil = df["method"] == "ceiling"
    ceilings = df[is_ceil].drop_duplicates(["file", "key"], keep="last")
    ceil_of = {(r.file, r.key): (r.top1, r.stitch) for r in ceilings.itertuples()}
    # the plot's horizontal lines: the last file's ceiling of each pair
    ceil = ceilings.drop_duplicates("key", keep="last").set_index("key")[["top1", "stitch"]]
    runs = df[~is_ceil].copy()
    # a run under another REFINE_ROWS than the library's (--refine-rows) is not the
    # default: its own row, not pooled with the default's runs
    if "refine_rows" in runs:
        other = runs["refine_rows"].notna() & (runs["refine_rows"] != _refine_rows())
        runs.loc[other, "method"] = (runs.loc[other, "method"] + ", refine_rows="
                                     + runs.loc[other, "refine_rows"].astype(int).astype(str))
    before = runs["file"].map(lambda f: Path(f).name in BEFORE_SOFT_ROUNDS)
    runs.loc[before, "method"] = runs.loc[before, "method"] + " (before the soft rounds)"
    # all training pairs given: label it "all" in the table
    runs["pairs"] = np.where((runs["n_pairs"] >= runs["n_train"]) & (runs["n_pairs"] > 0),
                             "all", runs["n_pairs"].astype(str))
    own = [ceil_of.get((r.file, r.key)) for r in runs.itertuples()]
    runs["ceiling top1 / stitch"] = [f"{c[0]:.3f} / {c[1]:.3f}" if c else "" for c in own]
    # success: top-1 and stitching within 2 points of the all-pairs Procrustes ceiling
    runs["success"] = [
        float(r.top1 >= c[0] - 0.02 and r.stitch >= c[1] - 0.02) if c else np.nan
        for r, c in zip(runs.itertuples(), own)]
    # sizes in numeric order (4,000 before 20,000), not the labels' string order
    g = runs.groupby(["dataset", "n_train", "pair", "method", "n_pairs", "pairs",
                      "ceiling top1 / stitch"], sort=True)
    agg = g.agg(runs=("top1", "size"), precision=("precision", "mean"), top1=("top1", "mean"),
                foscttm=("foscttm", "mean"), stitch=("stitch", "mean"),
                success=("success", "mean"), warned=("warned", "sum"),
                cpu_s=("cpu_s", "median"), peak_mib=("peak_mib", "max")).reset_index()
    cols = ["pair", "method", "pairs", "runs", "precision", "top1", "foscttm", "stitch",
            "ceiling top1 / stitch", "success", "warned", "cpu_s", "peak_mib"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in agg[cols].itertuples(index=False):
        lines.append("| " + " | ".join(
            ("" if np.isnan(v) else f"{v:.3f}") if isinstance(v, float) else str(v)
            for v in r) + " |")
    Path(table_path).write_text("\n".join(lines) + "\n")
    plot_sweeps(agg, ceil, plot_path)
    return agg


def plot_sweeps(agg, ceil, plot_path):
    """Top-1 and stitching against the number of known pairs, for the pairs measured at
    two or more numbers of pairs (the runs at 0 pairs alone are in the table only: one
    point each, and dozens of them would bury the curves); ``ceil`` the ceiling of each
    pair (horizontal lines).  Returns the pairs drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    some = agg[agg.pairs != "all"]
    pairs = sorted(p for p, sub in some.groupby("pair") if sub["n_pairs"].nunique() > 1)
    methods = list(some["method"].unique())
    styles = ["-o", "--s", ":^", "-.v", "-D", "--x"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, metric in zip(axes, ("top1", "stitch")):
        for i, pair in enumerate(pairs):
            for method, style in zip(methods, styles):
                sub = some[(some.pair == pair) & (some.method == method)].sort_values("n_pairs")
                if len(sub):
                    x = np.maximum(sub["n_pairs"], 0.5)  # 0 pairs drawn at 0.5 on the log axis
                    ax.plot(x, sub[metric], style, color=f"C{i % 10}", ms=4,
                            label=f"{pair}: {method}" if metric == "top1" else None)
            key = pair.replace(" (unpaired)", "")
            if key in ceil.index:
                ax.axhline(ceil.loc[key, metric], color=f"C{i % 10}", lw=0.8, alpha=0.6)
        ax.set_xscale("log")
        ax.set_xlabel("known pairs (0 drawn at 0.5)")
        ax.set_ylabel({"top1": "top-1 retrieval (held out)",
                       "stitch": "zero-shot stitching accuracy"}[metric])
    # the legend below the axes, two columns; the figure grows by its height
    legend_in = 0.17 * -(-len(axes[0].get_legend_handles_labels()[1]) // 2) + 0.2
    fig.set_size_inches(12, 4.5 + legend_in)
    if pairs:
        fig.legend(loc="lower center", ncol=2, fontsize=7, frameon=False)
    fig.suptitle("Alignment from few pairs; horizontal lines: all-pairs Procrustes ceiling")
    fig.tight_layout(rect=(0, legend_in / (4.5 + legend_in), 1, 1))
    fig.savefig(plot_path, dpi=110)
    plt.close(fig)
    return pairs


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="tweets")
    ap.add_argument("--root", default="/work/cache/real")
    ap.add_argument("--encoders", nargs="+", default=["minilm-l6:minilm-l3"])
    ap.add_argument("--pairs", nargs="+", type=int, default=[0, 1, 5, 10, 20, 50, 100, -1],
                    help="known pairs per run; -1: all training pairs")
    ap.add_argument("--methods", nargs="+", default=["pairfree", "seeded", "seeds_only"])
    ap.add_argument("--method", action="append", default=[], metavar="NAME=module:function",
                    help="register another method (and run it)")
    ap.add_argument("--random-states", nargs="+", type=int, default=[0])
    ap.add_argument("--n-train", type=int, default=4000)
    ap.add_argument("--n-test", type=int, default=1000)
    ap.add_argument("--unpaired", action="store_true")
    ap.add_argument("--refine-rows", type=int, default=None,
                    help="set sklearn_latent.matching.REFINE_ROWS (0: never sample X)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads (default 1, for a shared machine; 2 for the "
                         "two-core timings)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--report", nargs="+", default=None, metavar="CSV",
                    help="only write docs/_static/zero_pair_table.md and zero_pair.png from CSVs")
    args = ap.parse_args(argv)
    if args.report:
        static = Path(__file__).resolve().parent.parent / "docs" / "_static"
        static.mkdir(exist_ok=True)
        return report(args.report, static / "zero_pair_table.md", static / "zero_pair.png")
    args.methods = list(args.methods) + [register(spec) for spec in args.method]
    if args.refine_rows is not None:
        import sklearn_latent.matching as matching

        matching.REFINE_ROWS = args.refine_rows if args.refine_rows > 0 else 2**62
    torch.set_num_threads(args.threads)
    return main_run(args)


if __name__ == "__main__":
    main()

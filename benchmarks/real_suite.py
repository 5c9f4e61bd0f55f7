"""Real-encoder benchmark suite (issue 13): every method of the library on real encoders.

Data sets and encoders come from ``benchmarks/real_data.py`` (its cache,
default ``/work/cache/real``; build it with ``python benchmarks/real_data.py
--root DIR vader tweets austen digits mnist``): 3 text data sets x 4 text
encoders, 2 image data sets x 3 image encoders.

Protocol, the same for every method: each data set is subsampled to at most
``--max-n`` rows (stratified, seed 0), split 70/30 (stratified, ``seed``),
``k`` anchors drawn at random among the training rows (``seed``), the same
rows in every space (parallel anchors).  The head is a
``LogisticRegression(max_iter=1000)`` on the target space, without a
StandardScaler (which inflates dead dimensions).

* translators (``ProcrustesTranslator`` variants, ``RelativeTranslator``
  variants, and the plain reference: orthogonal Procrustes on mean-centered
  anchors written below in numpy): fitted on the anchors, the target's native
  head scores the translated source test rows;
* relative spaces (``RelativeProjector``, ``ProductInvarianceProjector`` and
  single components): each encoder is projected on its own anchors, a head is
  fitted on the target's relative training rows and scores the source's
  relative test rows; ``product weights=transfer`` is fitted per ordered
  pair, each side with the other's training rows as ``reference`` (anchors
  only are compared; no labels); ``product weights=stitch`` too, the
  target's side with its training labels, the source's with its weights;
* ``native``: the target's head on the target's own test rows; ``absolute``:
  the source's raw test rows into the target's native head (same widths only).

Writes a tidy CSV (one row per data set, seed, k, method, source, target)::

    python benchmarks/real_suite.py --out benchmarks/results/real_suite.csv
    python benchmarks/real_suite.py --report benchmarks/results/real_suite.csv \\
        --docs docs/real_suite.md
"""

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_data import DATASETS, load_cache  # noqa: E402

HERE = Path(__file__).resolve().parent
CACHE = os.environ.get("SKLEARN_LATENT_REAL_CACHE", "/work/cache/real")
MAX_N = 2000
TEST_SIZE = 0.3


def plain_procrustes(A, B):
    """The ten-line reference: orthogonal Procrustes on mean-centered anchors.

    Returns ``translate(X) = (X - mean(A)) @ R + mean(B)`` with ``R`` the
    (semi-)orthogonal polar factor of the centered cross-covariance.
    """
    A = np.asarray(A, dtype=np.float64)
    B = np.asarray(B, dtype=np.float64)
    mu_a, mu_b = A.mean(0), B.mean(0)
    U, _, Vt = np.linalg.svd((A - mu_a).T @ (B - mu_b), full_matrices=False)
    R = U @ Vt
    return lambda X: (np.asarray(X, dtype=np.float64) - mu_a) @ R + mu_b


def subsample(labels, max_n, seed=0):
    """Sorted stratified row subset of at most ``max_n`` rows (all rows if fewer)."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    if len(idx) <= max_n:
        return idx
    keep, _ = train_test_split(idx, train_size=max_n, stratify=labels, random_state=seed)
    return np.sort(keep)


def split(labels, seed):
    from sklearn.model_selection import train_test_split

    return train_test_split(
        np.arange(len(labels)), test_size=TEST_SIZE, stratify=labels, random_state=seed
    )


def head():
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=1000)


class _StandaloneInverse:
    """``RelativeProjector`` on the source, ``InverseRelativeProjector`` on the target.

    The two public estimators used separately, as a user would chain them
    (``RelativeTranslator`` does the same in one object): ``irp_kw`` are the
    inverse's parameters, so ``{}`` measures its own defaults.  With
    ``alpha="auto"`` the anchors' source relative rows are passed to ``fit``.
    """

    def __init__(self, idx, **irp_kw):
        self.idx, self.irp_kw = idx, irp_kw

    def fit(self, X, Y):
        from sklearn_latent import InverseRelativeProjector, RelativeProjector

        self.rel_ = RelativeProjector(anchors=self.idx).fit(X)
        self.inv_ = InverseRelativeProjector(anchors=self.idx, **self.irp_kw)
        relative = None
        if isinstance(self.inv_.get_params()["alpha"], str):
            relative = self.rel_.transform(np.asarray(X)[self.idx])
        self.inv_.fit(Y, relative=relative)
        return self

    def transform(self, X):
        return self.inv_.transform(self.rel_.transform(X))


#: spec sets: "quick" (the defaults and the plain reference), "criterion" (the
#: defaults and the options the defaults were chosen among), "full" (everything)
SETS = ("quick", "criterion", "full")


def translator_specs(which="full"):
    """``{name: factory(anchor_indices, seed) -> unfitted translator}``."""
    from sklearn_latent import ProcrustesTranslator, RelativeTranslator

    if which is True or which is False:  # backward compatible full=True/False
        which = "full" if which else "quick"

    def pt(method, **kw):
        return lambda idx, seed: ProcrustesTranslator(method, anchors=idx, **kw)

    def rt(**kw):
        return lambda idx, seed: RelativeTranslator(anchors=idx, random_state=seed, **kw)

    def irp(**kw):
        return lambda idx, seed: _StandaloneInverse(idx, **kw)

    specs = {
        "procrustes (default)": lambda idx, seed: ProcrustesTranslator(anchors=idx),
        "orthogonal standard": pt("orthogonal", scaling="standard"),
        "orthogonal center": pt("orthogonal", scaling="center"),
        "orthogonal isotropic": pt("orthogonal", scaling="isotropic"),
        "inverse (default)": lambda idx, seed: RelativeTranslator(
            anchors=idx, random_state=seed
        ),
        "inverse alpha=1": rt(alpha=1.0),
        "irp (default)": irp(),
    }
    if which in ("criterion", "full"):
        specs.update({
            "scaled center": pt("scaled", scaling="center"),
            "linear center alpha=auto": pt("linear", scaling="center"),
            "affine standard alpha=auto": pt("affine", scaling="standard"),
            "inverse alpha=0": rt(alpha=0.0),
        })
    if which == "full":
        specs.update({
            "scaled standard": pt("scaled", scaling="standard"),
            "linear center alpha=0": pt("linear", scaling="center", alpha=0.0),
            "linear center alpha=10": pt("linear", scaling="center", alpha=10.0),
            "linear standard alpha=auto": pt("linear", scaling="standard"),
            "affine standard alpha=0": pt("affine", scaling="standard", alpha=0.0),
            "affine standard alpha=10": pt("affine", scaling="standard", alpha=10.0),
            "affine center alpha=auto": pt("affine", scaling="center"),
            "inverse alpha=3": rt(alpha=3.0),
            "inverse pruned": rt(prune_threshold=0.7, n_subspaces=8),
            "irp alpha=1": irp(alpha=1.0),
        })
    return specs


METRICS4 = ("cosine", "euclidean", "l1", "linf")


def projector_specs(which="full"):
    """``{name: factory(anchor_indices) -> unfitted projector}`` (relative heads)."""
    from sklearn_latent import ProductInvarianceProjector, RelativeProjector

    if which is True or which is False:
        which = "full" if which else "quick"

    def rp(**kw):
        return lambda idx: RelativeProjector(anchors=idx, **kw)

    def pp(**kw):
        return lambda idx: ProductInvarianceProjector(anchors=idx, **kw)

    specs = {
        "relative (default)": lambda idx: RelativeProjector(anchors=idx),
        "product (default)": lambda idx: ProductInvarianceProjector(anchors=idx),
    }
    if which == "criterion":
        specs.update({
            "relative normalize=l2": rp(normalize="l2"),
            "relative normalize=standard": rp(normalize="standard"),
            "product normalize=standard": pp(normalize="standard"),
        })
    if which == "full":
        specs.update({
            "relative normalize=None": rp(normalize=None),
            "relative normalize=l2": rp(normalize="l2"),
            "relative normalize=standard": rp(normalize="standard"),
            "relative normalize=layer": rp(normalize="layer"),
            "product normalize=standard": pp(normalize="standard"),
            "product normalize=l2": pp(normalize="l2"),
            "product normalize=layer": pp(normalize="layer"),
            "product normalize=None": pp(normalize=None),
            "product l2 no-linf": pp(normalize="l2", metrics=METRICS4[:3]),
            "product normalize=block": pp(normalize="block"),
        })
        for m in METRICS4:
            for norm in ("l2", "standard"):
                specs[f"single {m} normalize={norm}"] = pp(metrics=(m,), normalize=norm)
    return specs


def pair_projector_specs(full=True):
    """Projectors fitted per ordered pair, each side with the other as ``reference``.

    ``{name: factory(anchor_indices) -> unfitted projector}``; ``fit(X_e,
    reference=X_other)`` on the training rows of both spaces, except for
    ``weights="stitch"``: the target's fitted with its training labels, the
    source's with the target's ``weights_``.
    """
    from sklearn_latent import ProductInvarianceProjector

    specs = {
        "product weights=transfer": lambda idx: ProductInvarianceProjector(
            anchors=idx, weights="transfer"),
        "product weights=stitch": lambda idx: ProductInvarianceProjector(
            anchors=idx, weights="stitch"),
    }
    if full:
        specs["product block weights=transfer"] = lambda idx: ProductInvarianceProjector(
            anchors=idx, weights="transfer", normalize="block")
    return specs


def _score(clf, X, y):
    return float((clf.predict(X) == y).mean())


def run_config(spaces, labels, seed, k, *, which="full", log=print):
    """Rows ``dict(seed, k, method, source, target, accuracy)`` of one split and anchor set."""
    from sklearn.exceptions import ConvergenceWarning

    train, test = split(labels, seed)
    rng = np.random.default_rng(seed)
    anchors = np.sort(rng.choice(train, size=min(k, len(train)), replace=False))
    names = list(spaces)
    y_tr, y_te = labels[train], labels[test]
    rows = []

    def add(method, s, t, acc, seconds=np.nan):
        rows.append(dict(seed=seed, k=k, method=method, source=s, target=t,
                         accuracy=acc, seconds=seconds))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        heads = {t: head().fit(spaces[t][train], y_tr) for t in names}
        for t in names:
            add("native", t, t, _score(heads[t], spaces[t][test], y_te))
        for s in names:
            for t in names:
                if s == t:
                    continue
                Xs, Yt = spaces[s], spaces[t]
                if Xs.shape[1] == Yt.shape[1]:
                    add("absolute", s, t, _score(heads[t], Xs[test], y_te))
                t0 = time.perf_counter()
                plain = plain_procrustes(Xs[anchors], Yt[anchors])
                add("plain procrustes", s, t, _score(heads[t], plain(Xs[test]), y_te),
                    time.perf_counter() - t0)
                for name, make in translator_specs(which).items():
                    t0 = time.perf_counter()
                    try:
                        tr = make(anchors, seed).fit(Xs, Yt)
                        acc = _score(heads[t], tr.transform(Xs[test]), y_te)
                    except Exception as exc:  # a failing method is a result, not a crash
                        log(f"  {name} {s}->{t}: {type(exc).__name__}: {exc}")
                        acc = np.nan
                    add(name, s, t, acc, time.perf_counter() - t0)
        in_train = np.flatnonzero(np.isin(train, anchors))  # the anchors, as rows of train
        for name, make in projector_specs(which).items():
            t0 = time.perf_counter()
            rel = {}
            for e in names:
                proj = make(in_train).fit(spaces[e][train])
                rel[e] = proj.transform(spaces[e])
            for t in names:
                clf = head().fit(rel[t][train], y_tr)
                for s in names:
                    add(name, s, t, _score(clf, rel[s][test], y_te))
            log(f"  {name}: {time.perf_counter() - t0:.0f} s")
        pair_specs = {} if which == "quick" else pair_projector_specs(which == "full")
        for name, make in pair_specs.items():
            t0 = time.perf_counter()
            for t in names:
                for s in names:
                    if s == t:
                        continue
                    Xs, Xt = spaces[s][train], spaces[t][train]
                    pt = make(in_train)
                    if pt.weights == "stitch":  # picked on the head's side, with its labels
                        pt.fit(Xt, y_tr, reference=Xs)
                        ps = make(in_train).set_params(weights=pt.weights_).fit(Xs)
                    else:
                        ps = make(in_train).fit(Xs, reference=Xt)
                        pt.fit(Xt, reference=Xs)
                    clf = head().fit(pt.transform(Xt), y_tr)
                    add(name, s, t, _score(clf, ps.transform(spaces[s][test]), y_te))
            log(f"  {name}: {time.perf_counter() - t0:.0f} s")
    return rows


def run(datasets, seeds, ks, cache=CACHE, max_n=MAX_N, which="full", log=print):
    import pandas as pd

    frames = []
    for dataset in datasets:
        spaces, labels, _ = load_cache(dataset, cache)
        keep = subsample(labels, max_n)
        spaces = {e: X[keep] for e, X in spaces.items()}
        labels = labels[keep]
        for k in ks:
            for seed in seeds:
                t0 = time.perf_counter()
                log(f"{dataset} k={k} seed={seed}")
                rows = run_config(spaces, labels, seed, k, which=which, log=log)
                frame = pd.DataFrame(rows)
                frame.insert(0, "dataset", dataset)
                frame.insert(1, "modality", DATASETS[dataset][0])
                frames.append(frame)
                log(f"{dataset} k={k} seed={seed}: {time.perf_counter() - t0:.0f} s")
    return pd.concat(frames, ignore_index=True)


# ----------------------------------------------------------------------------
# report
# ----------------------------------------------------------------------------


def pair_means(frame):
    """Stitched accuracy (source != target) averaged over seeds: one value per pair."""
    off = frame[frame["source"] != frame["target"]]
    return (
        off.groupby(["dataset", "modality", "k", "method", "source", "target"])["accuracy"]
        .mean()
        .reset_index()
    )


def method_table(frame, k):
    """Mean stitched accuracy per method (rows) and data set (columns), at ``k`` anchors."""
    pairs = pair_means(frame[frame["k"] == k])
    table = pairs.pivot_table(index="method", columns="dataset", values="accuracy", aggfunc="mean")
    table["mean"] = table.mean(axis=1)
    native = frame[(frame["k"] == k) & (frame["method"] == "native")]
    row = native.groupby("dataset")["accuracy"].mean()
    table.loc["native (target's own head)"] = list(row.reindex(table.columns[:-1])) + [row.mean()]
    return table.sort_values("mean", ascending=False)


def versus(frame, k, reference):
    """Per method: mean and min over pairs of (method - reference), and the share of pairs >= -0.005."""
    import pandas as pd

    pairs = pair_means(frame[frame["k"] == k])
    wide = pairs.pivot_table(index=["dataset", "source", "target"], columns="method",
                             values="accuracy")
    if isinstance(reference, str):
        ref = wide[reference]
    else:
        ref = reference(wide)
    diff = wide.sub(ref, axis=0)
    return pd.DataFrame({
        "mean diff": diff.mean(), "min diff": diff.min(),
        "pairs >= ref - 0.5 pt": (diff >= -0.005).mean(), "pairs": diff.count(),
    }).sort_values("mean diff", ascending=False)


def best_single(wide):
    """Per pair, the best single-metric relative space of the suite (any normalization)."""
    cols = [c for c in wide.columns if c.startswith("single ")]
    return wide[cols].max(axis=1)


def anchor_table(frame, methods=None):
    pairs = pair_means(frame)
    table = pairs.pivot_table(index="method", columns="k", values="accuracy", aggfunc="mean")
    if methods is not None:
        table = table.reindex([m for m in methods if m in table.index])
    return table


def markdown(table, fmt="{:.3f}"):
    cols = [str(c) for c in table.columns]
    lines = ["| | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, row in table.iterrows():
        cells = []
        for v in row:
            if isinstance(v, (int, np.integer)):
                cells.append(str(v))
            elif v is None or (isinstance(v, float) and np.isnan(v)):
                cells.append("n/a")
            else:
                cells.append(fmt.format(v))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_anchors(frame, path, methods):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = anchor_table(frame, methods)
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for method, row in table.iterrows():
        ax.plot(row.index, row.to_numpy(), marker="o", label=method)
    ax.set_xscale("log")
    ax.set_xlabel("parallel anchors")
    ax.set_ylabel("stitched accuracy (mean over pairs)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


#: rows of the evidence tables: estimator -> {option: suite method name}
DEFAULTS_EVIDENCE = {
    "ProcrustesTranslator scaling": {
        '"isotropic"': "orthogonal isotropic", '"standard" (paper)': "orthogonal standard",
        '"center"': "orthogonal center",
    },
    "RelativeProjector normalize": {
        f"{v}": f"relative normalize={v}" for v in ("None", "l2", "standard", "layer")
    },
    "ProductInvarianceProjector normalize": {
        f"{v}": f"product normalize={v}" for v in ("standard", "l2", "layer", "None")
    },
}


#: estimator -> (its default's method name, prefixes of the suite's methods that are
#: configurations of that estimator).  RelativeTranslator is RelativeProjector +
#: InverseRelativeProjector, so its configurations count as the inverse's too.
ESTIMATORS = {
    "ProcrustesTranslator": ("procrustes (default)", (
        "procrustes", "orthogonal", "scaled", "linear", "affine", "lowrank")),
    "RelativeTranslator": ("inverse (default)", ("inverse",)),
    "InverseRelativeProjector": ("irp (default)", ("irp", "inverse")),
    "RelativeProjector": ("relative (default)", ("relative",)),
    "ProductInvarianceProjector": ("product (default)", ("product",)),
}


def criterion_table(frame, k):
    """The issue's done criterion, per modality and estimator, at ``k`` anchors.

    For each estimator: its default's stitched accuracy, the best configuration
    of it in the suite, and plain Procrustes, each the mean over every
    (data set, ordered pair) of the modality (seeds averaged first); the gaps in
    points (default minus best, default minus plain); "met" when both gaps are
    at least -1 point.
    """
    import pandas as pd

    pairs = pair_means(frame[frame["k"] == k])
    rows = []
    for modality, sub in pairs.groupby("modality"):
        means = sub.groupby("method")["accuracy"].mean()
        if "plain procrustes" not in means:
            continue
        plain = means["plain procrustes"]
        for estimator, (default, prefixes) in ESTIMATORS.items():
            if default not in means:
                continue
            configs = means[[m for m in means.index if m.startswith(prefixes)]]
            best = configs.idxmax()
            d_best = 100 * (means[default] - configs[best])
            d_plain = 100 * (means[default] - plain)
            rows.append({
                "modality": modality, "estimator": estimator,
                "pairs": int(sub[sub["method"] == default].shape[0]),
                "default": means[default], "best config": best,
                "best": configs[best], "plain Procrustes": plain,
                "default - best (pts)": d_best, "default - plain (pts)": d_plain,
                "met": "yes" if min(d_best, d_plain) >= -1.0 else "no",
            })
    return pd.DataFrame(rows)


def criterion_markdown(table):
    cols = list(table.columns)
    lines = ["| " + " | ".join(cols) + " |", "|---" * len(cols) + "|"]
    for _, row in table.iterrows():
        cells = []
        for c in cols:
            v = row[c]
            if isinstance(v, float):
                cells.append(f"{v:+.1f}" if "pts" in c else f"{v:.3f}")
            else:
                cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report(frame, k=500, figure=None):
    """Markdown: method table, versus plain Procrustes, product versus best single, evidence."""
    out = [f"Done criterion at k = {k} anchors (each estimator's default against the best "
           "configuration of it found and against plain Procrustes, mean over pairs):", ""]
    out.append(criterion_markdown(criterion_table(frame, k)))
    out += ["", f"Stitched accuracy at k = {k} anchors, mean over ordered encoder pairs "
            "and seeds:", ""]
    out.append(markdown(method_table(frame, k)))
    out += ["", "Each method minus plain Procrustes on centered anchors, per pair:", ""]
    out.append(markdown(versus(frame, k, "plain procrustes")))
    products = [m for m in frame["method"].unique() if m.startswith("product")]
    if any(m.startswith("single ") for m in frame["method"].unique()):
        sub = frame[frame["method"].isin(products) | frame["method"].str.startswith("single ")]
        table = versus(sub, k, best_single).loc[lambda t: t.index.isin(products)]
        out += ["", "Product of invariances minus the best single component of the suite "
                "(any normalization), per pair:", ""]
        out.append(markdown(table))
    wide = method_table(frame, k)
    out += ["", "Evidence for the defaults (mean stitched accuracy at k = %d):" % k, ""]
    rows = []
    for estimator, options in DEFAULTS_EVIDENCE.items():
        for option, method in options.items():
            if method in wide.index:
                rows.append((f"{estimator}={option}", wide.loc[method, "mean"]))
    import pandas as pd

    out.append(markdown(pd.DataFrame(rows, columns=["", "accuracy"]).set_index("")))
    if frame["k"].nunique() > 1:
        out += ["", "Stitched accuracy by number of anchors (mean over pairs):", ""]
        out.append(markdown(anchor_table(frame)))
        if figure is not None:
            plot_anchors(frame, figure, [m for m in (
                "plain procrustes", "procrustes (default)", "relative (default)",
                "product (default)", "inverse (default)", "inverse alpha=1",
            )])
    return "\n".join(out) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--anchors", nargs="+", type=int, default=[500])
    parser.add_argument("--max-n", type=int, default=MAX_N)
    parser.add_argument("--cache", default=CACHE)
    parser.add_argument("--quick", action="store_true",
                        help="only the default configurations and the plain reference "
                             "(same as --set quick)")
    parser.add_argument("--set", choices=SETS, default="full",
                        help="configurations: quick (defaults), criterion (the defaults and "
                             "the options they were chosen among), full (everything)")
    parser.add_argument("--out", help="CSV to write (appended if it exists)")
    parser.add_argument("--report", nargs="+", help="CSV files to summarize as markdown")
    parser.add_argument("--k", type=int, default=500, help="anchors of the report's tables")
    parser.add_argument("--figure", help="PNG of accuracy against anchors (with --report)")
    args = parser.parse_args(argv)
    import pandas as pd

    if args.report:
        frame = pd.concat([pd.read_csv(f) for f in args.report], ignore_index=True)
        print(report(frame, args.k, args.figure))
        return
    if not args.out:
        parser.error("--out is required unless --report is given")
    import torch

    # one thread: on a loaded machine multi-threaded BLAS made one SVD 10-20x slower
    torch.set_num_threads(1)
    result = run(args.datasets, args.seeds, args.anchors, args.cache, args.max_n,
                 which="quick" if args.quick else args.set, log=lambda m: print(m, file=sys.stderr, flush=True))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists():
        result = pd.concat([pd.read_csv(out), result], ignore_index=True)
    result.to_csv(out, index=False)
    print(f"wrote {len(result)} rows to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()

"""Weighting and selecting the components of the product of invariances (issue 13, item 5).

Protocol of ``real_product_variants.py`` (1,500 items, 70/30 split, 500 random
parallel anchors, a LogisticRegression head fitted on the target's relative
training rows and scoring the source's relative test rows).  For every ordered
pair of encoders of a cached data set it scores:

* ``single <metric>``: one component (``normalize="l2"``), and their maximum
  per pair, ``best single`` (an oracle: it looks at the test labels);
* ``product l2`` (the default), ``product block`` (per feature mean, one scale
  per component), ``product nolinf``;
* ``cka`` / ``cka select``: weights from, or the argmax of, the linear CKA of
  each component with its own input space (source side only);
* ``corr ...``: weights from (``power=1``), or the argmax of (``select``), the
  mean row correlation of the anchors' relative matrices across the two
  spaces (the previous attempt's score);
* ``transfer ...``: the library's ``weights="transfer"``
  (``functional.product_transfer_weights``): the agreement (symmetric R^2) of
  each component's anchor-by-anchor relative matrix across the two spaces,
  and variants of the map from agreements to weights (``power``, ``select`` =
  the argmax, ``drop`` = drop components below a share of the best
  agreement), with ``"l2"`` or ``"block"`` normalization;
  none looks at labels;
* ``corr power=2/4``: the row-correlation weights sharpened; ``transfer argmax``:
  the component with the highest raw R^2 even when every R^2 is <= 0 (the
  library's ``threshold=1`` then keeps all four: see docs/product_inverse.md);
  ``transfer argmax | corr power=4``: that selection when the best R^2 is > 0,
  else the row-correlation weights; ``colcorr``: mean per-feature (anchor
  column) correlation across the spaces; ``xcka``: linear CKA of each
  component's anchor-by-anchor matrices across the spaces (weights, argmax);
* ``product l2 centered`` / ``product l2 block``: the row L2 followed by each
  side's own per-feature centering (and one scale per component);
  ``product l2 matched``: centered likewise, each component's spread set to
  the mean of the two sides' spreads (also with the ``corr power=4`` weights);
* ``stitch``: the library's ``weights="stitch"``, emulated from the single
  components' heads: the component whose target head is the most accurate on
  the source's *training* rows (their labels are the target's training
  labels; the test labels are not looked at);
* ``fixed 0.25/2/0/0 (oracle-chosen)``: NOT label-free as chosen; the weights
  that passed the one failing VADER pair in both directions in a grid scored
  on its test labels, fixed to see whether they hold on the other pairs.

``--diagnose SOURCE TARGET`` reads one pair both ways (block spreads, ROC AUC,
the head's ``C``, a grid of weights); it looks at the test labels and chooses
nothing.  ``--report`` prints, per variant and per data set and seed, the pairs >= the
best single component / within 1 point / all pairs and the worst gap, then
the pooled shares.

``--estimator`` additionally runs ``ProductInvarianceProjector(weights="transfer")``
(fit with ``reference=``) and ``weights="stitch"`` (fit on the target with its
training labels and the source as reference; the source's projector takes its
``weights_``) end to end, to check them against the emulations::

    OMP_NUM_THREADS=1 python benchmarks/real_product_weights.py tweets 0 --out t0.csv
    OMP_NUM_THREADS=1 python benchmarks/real_product_weights.py digits-mlp 0 --out m0.csv
    python benchmarks/real_product_weights.py --report t0.csv v0.csv d0.csv
    # the whole suite, seed 0, as recorded in benchmarks/RESULTS.md (issue 13, item 5)
    for d in tweets vader austen digits mnist; do
      OMP_NUM_THREADS=1 python benchmarks/real_product_weights.py $d 0 --out $d-0.csv; done
"""

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import real_suite as S  # noqa: E402
from real_data import load_cache  # noqa: E402

METRICS = ("cosine", "euclidean", "l1", "linf")


def norm_l2(B, tr):
    return B / np.maximum(np.linalg.norm(B, axis=1, keepdims=True), 1e-300)


def norm_block(B, tr):
    mu = B[tr].mean(0)
    return (B - mu) / np.sqrt(((B[tr] - mu) ** 2).mean())


def report(paths):
    """Per variant: pairs >= best single / within 1 point / all, worst gap; per data set, pooled."""
    import pandas as pd

    table = pd.concat([pd.read_csv(p) for p in paths], ignore_index=True)
    keys = ["dataset", "seed", "source", "target"]
    best = table[[f"single {m}" for m in METRICS]].max(axis=1)
    scores = ("stitch score ", "agree ", "corr cosine", "corr euclidean", "corr l1",
              "corr linf", "r2 ")
    rows = []
    for col in table.columns:
        if col in keys or col.startswith(scores):
            continue
        d = table[col] - best
        row = dict(variant=col)
        for (ds, seed), g in d.groupby([table.dataset, table.seed]):
            row[f"{ds} {seed}"] = (f"{(g >= -1e-9).sum()}/{(g >= -0.01).sum()}/{len(g)} "
                                   f"{100 * g.min():+.1f}")
        row.update(mean=table[col].mean(), share_ge=(d >= -1e-9).mean(),
                   share_within_1=(d >= -0.01).mean(), worst_pt=100 * d.min(), pairs=len(d))
        rows.append(row)
    out = pd.DataFrame(rows).set_index("variant")
    print("cells: pairs >= best single / within 1 point / pairs, worst gap in points")
    print(out.round(3).to_string())
    return table, out


def diagnose(source, target, *, blocks, labels, train, test):
    """One pair both ways: block spreads, ROC AUC, the head's C, a grid of weights.

    Looks at the test labels (it explains a failure, it chooses nothing).
    """
    import itertools

    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    for e in (source, target):
        spread = [np.sqrt(((B[train] - B[train].mean(0)) ** 2).sum(1).mean())
                  for B in blocks[(e, "l2")]]
        print(f"{e}: RMS deviation of the L2 blocks from their feature means",
              dict(zip(METRICS, np.round(spread, 3))))

    def stitch(s, t, w, C=1.0):
        Fs = np.hstack([B * wi for B, wi in zip(blocks[(s, "l2")], w) if wi > 0])
        Ft = np.hstack([B * wi for B, wi in zip(blocks[(t, "l2")], w) if wi > 0])
        clf = LogisticRegression(max_iter=3000, C=C).fit(Ft[train], labels[train])
        acc = float((clf.predict(Fs[test]) == labels[test]).mean())
        auc = (roc_auc_score(labels[test], clf.decision_function(Fs[test]))
               if len(np.unique(labels)) == 2 else float("nan"))
        return acc, auc

    for s, t in ((source, target), (target, source)):
        for c, m in enumerate(METRICS):
            acc, auc = stitch(s, t, np.eye(4)[c])
            print(f"{s} -> {t} single {m}: accuracy {acc:.3f}, ROC AUC {auc:.3f}")
        for C in (0.1, 1.0, 10.0, 100.0):
            print(f"{s} -> {t} C={C}: cosine {stitch(s, t, np.eye(4)[0], C)[0]:.3f}, "
                  f"product l2 {stitch(s, t, np.ones(4), C)[0]:.3f}")
    best = [max(stitch(s, t, np.eye(4)[c])[0] for c in range(4))
            for s, t in ((source, target), (target, source))]
    passing = []
    for w in itertools.product((0.1, 0.25, 0.5, 1), (0, 0.5, 1, 2, 4, 8), (0, 1, 4), (0, 0.5, 1)):
        if w[1] == w[2] == 0:
            continue
        accs = [stitch(s, t, w)[0] for s, t in ((source, target), (target, source))]
        if all(a >= b - 0.01 for a, b in zip(accs, best)):
            passing.append((w, np.round(accs, 3).tolist()))
    print(f"weights (cosine, euclidean, l1, linf) within 1 point of the best single both ways "
          f"({len(passing)}):", passing)


def main(argv=None):
    import pandas as pd
    import torch

    from sklearn_latent import ProductInvarianceProjector
    from sklearn_latent import functional as F
    from sklearn_latent.metrics import linear_cka

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", nargs="?")
    parser.add_argument("seed", type=int, nargs="?", default=0)
    parser.add_argument("--cache", default=S.CACHE)
    parser.add_argument("--max-n", type=int, default=1500)
    parser.add_argument("--estimator", action="store_true")
    parser.add_argument("--report", nargs="+")
    parser.add_argument("--only", nargs="+", help="variant name prefixes to run")
    parser.add_argument("--out")
    parser.add_argument("--diagnose", nargs=2, metavar=("SOURCE", "TARGET"),
                        help="read one pair both ways instead of running the variants")
    args = parser.parse_args(argv)
    if args.report:
        report(args.report)
        return
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    if args.dataset == "digits-mlp":
        # the small MLP encoders of the test suite (tests/_digits_encoders.py)
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from _digits_encoders import ENCODERS, digits_encoder, digits_split

        _, _, y_tr, y_te = digits_split()
        spaces = {e: np.vstack(digits_encoder(e)) for e in ENCODERS}
        labels = np.concatenate([y_tr, y_te])
        train, test = np.arange(len(y_tr)), np.arange(len(y_tr), len(labels))
        n_anchors = 300
    else:
        spaces, labels, _ = load_cache(args.dataset, args.cache)
        keep = S.subsample(labels, args.max_n)
        spaces = {e: X[keep] for e, X in spaces.items()}
        labels = labels[keep]
        train, test = S.split(labels, args.seed)
        n_anchors = 500
    anchors = np.sort(np.random.default_rng(args.seed).choice(train, n_anchors, replace=False))
    in_train = np.flatnonzero(np.isin(train, anchors))
    raw = {
        e: ProductInvarianceProjector(anchors=in_train, normalize=None)
        .fit(X[train]).transform(X).reshape(len(X), len(METRICS), -1)
        for e, X in spaces.items()
    }
    norms = {"l2": norm_l2, "block": norm_block}
    blocks = {(e, n): [f(raw[e][:, c], train) for c in range(4)]
              for e in spaces for n, f in norms.items()}
    cka = {e: np.array([linear_cka(b[train], spaces[e][train].astype(np.float64))
                        for b in blocks[(e, "l2")]]) for e in spaces}
    names = list(spaces)

    def agreement(s, t, normalize="l2"):
        A_s = torch.as_tensor(spaces[s][anchors], dtype=torch.float64)
        A_t = torch.as_tensor(spaces[t][anchors], dtype=torch.float64)
        return F.product_transfer_weights(A_s, A_t, METRICS, normalize=normalize)

    agree = {(s, t): agreement(s, t).numpy() for s in names for t in names if s != t}
    block_agree = {(s, t): agreement(s, t, "block").numpy()
                   for s in names for t in names if s != t}
    rows_a = train[in_train]  # the anchors, in the column order of the relative blocks
    off = ~np.eye(len(rows_a), dtype=bool)

    def corr(s, t):
        """Mean off-diagonal row correlation of the anchors' relative matrices (l2)."""
        out = []
        for c in range(4):
            Ns, Nt = blocks[(s, "l2")][c][rows_a], blocks[(t, "l2")][c][rows_a]
            Ns = Ns[off].reshape(len(Ns), -1)
            Nt = Nt[off].reshape(len(Nt), -1)
            Ns = Ns - Ns.mean(1, keepdims=True)
            Nt = Nt - Nt.mean(1, keepdims=True)
            num = (Ns * Nt).sum(1)
            out.append(np.mean(num / np.linalg.norm(Ns, axis=1) / np.linalg.norm(Nt, axis=1)))
        return np.array(out)

    fit_corr = {(s, t): corr(s, t) for s in names for t in names if s != t}

    def colcorr(s, t):
        """Mean per-feature (anchor column) correlation over the other anchors (l2)."""
        out = []
        for c in range(4):
            Ns = np.where(off, blocks[(s, "l2")][c][rows_a], np.nan)
            Nt = np.where(off, blocks[(t, "l2")][c][rows_a], np.nan)
            Ns = np.nan_to_num(Ns - np.nanmean(Ns, 0))
            Nt = np.nan_to_num(Nt - np.nanmean(Nt, 0))
            num = (Ns * Nt).sum(0)
            out.append(np.mean(num / np.linalg.norm(Ns, axis=0) / np.linalg.norm(Nt, axis=0)))
        return np.array(out)

    fit_colcorr = {(s, t): colcorr(s, t) for s in names for t in names if s != t}
    # linear CKA of each component's anchor-by-anchor relative matrices across the spaces
    fit_xcka = {(s, t): np.array([linear_cka(blocks[(s, "l2")][c][rows_a],
                                             blocks[(t, "l2")][c][rows_a]) for c in range(4)])
                for s in names for t in names if s != t}
    # the raw symmetric R^2 (not clipped, not divided by the best)
    raw_r2 = {(s, t): F._component_agreement(
        torch.as_tensor(spaces[s][anchors], dtype=torch.float64),
        torch.as_tensor(spaces[t][anchors], dtype=torch.float64), METRICS).numpy()
        for s in names for t in names if s != t}
    # own-side per-feature centering (and one scale per component) after the row L2
    for e in spaces:
        b = blocks[(e, "l2")]
        blocks[(e, "l2 centered")] = [B - B[train].mean(0) for B in b]
        blocks[(e, "l2 block")] = [norm_block(B, train) for B in b]

    def fit_head(Ft):
        clf = S.head()
        if args.dataset == "digits-mlp":
            clf.set_params(max_iter=3000)
        return clf.fit(Ft[train], labels[train])

    def fit_score(Fs, Ft):
        return S._score(fit_head(Ft), Fs[test], labels[test])

    def weighted(e, w, norm="l2"):
        return np.hstack([b * wi for b, wi in zip(blocks[(e, norm)], w) if wi > 0])

    def power_w(a, p):
        a = np.clip(a, 0, None)
        return (a / a.max()) ** p

    variants = {
        "product l2": lambda s, t: np.ones(4),
        "product block": lambda s, t: ("block", np.ones(4)),
        "product nolinf": lambda s, t: np.array([1, 1, 1, 0.0]),
        "cka": lambda s, t: power_w(np.minimum(cka[s], cka[t]), 1),
        "cka select": lambda s, t: np.eye(4)[np.argmax(cka[s] + cka[t])],
    }
    variants["corr power=1"] = lambda s, t: power_w(fit_corr[(s, t)], 1)
    variants["corr select"] = lambda s, t: np.eye(4)[np.argmax(fit_corr[(s, t)])]
    for p in (1, 2, 4):
        variants[f"transfer power={p}"] = (lambda p: lambda s, t: power_w(agree[(s, t)], p))(p)
    variants["transfer select"] = lambda s, t: np.eye(4)[np.argmax(agree[(s, t)])]
    for tau in (0.5, 0.8):
        variants[f"transfer drop={tau}"] = (
            lambda tau: lambda s, t: (power_w(agree[(s, t)], 1) >= tau).astype(float))(tau)
    for p in (2, 4):
        variants[f"corr power={p}"] = (lambda p: lambda s, t: power_w(fit_corr[(s, t)], p))(p)
    variants["transfer argmax"] = lambda s, t: np.eye(4)[np.argmax(raw_r2[(s, t)])]
    variants["transfer argmax | corr power=4"] = lambda s, t: (
        np.eye(4)[np.argmax(raw_r2[(s, t)])] if raw_r2[(s, t)].max() > 0
        else power_w(fit_corr[(s, t)], 4))
    for p in (1, 4):
        variants[f"colcorr power={p}"] = (lambda p: lambda s, t: power_w(fit_colcorr[(s, t)], p))(p)
        variants[f"xcka power={p}"] = (lambda p: lambda s, t: power_w(fit_xcka[(s, t)], p))(p)
    variants["xcka select"] = lambda s, t: np.eye(4)[np.argmax(fit_xcka[(s, t)])]
    variants["product l2 centered"] = lambda s, t: ("l2 centered", np.ones(4))
    variants["product l2 block"] = lambda s, t: ("l2 block", np.ones(4))
    variants["product l2 matched"] = lambda s, t: ("l2 matched", np.ones(4))
    variants["l2 matched, corr power=4"] = lambda s, t: (
        "l2 matched", power_w(fit_corr[(s, t)], 4))
    # NOT label-free as chosen: the weights that passed the VADER glove-50/use-m3 pair in
    # both directions (seeds 0 and 1) in a grid scored on its test labels; fixed here to
    # see whether they would hold elsewhere
    variants["fixed 0.25/2/0/0 (oracle-chosen)"] = lambda s, t: np.array([0.25, 2, 0, 0.0])
    variants["block nolinf"] = lambda s, t: ("block", np.array([1, 1, 1, 0.0]))
    variants["transfer block power=1"] = lambda s, t: (
        "block", block_agree[(s, t)])
    if args.diagnose:
        diagnose(*args.diagnose, blocks=blocks, labels=labels, train=train, test=test)
        return
    rows = []
    for s in names:
        for t in names:
            if s == t:
                continue
            row = dict(dataset=args.dataset, seed=args.seed, source=s, target=t)
            for c, m in enumerate(METRICS):
                Fs, Ft = blocks[(s, "l2")][c], blocks[(t, "l2")][c]
                clf = fit_head(Ft)
                row[f"single {m}"] = S._score(clf, Fs[test], labels[test])
                # weights="stitch": the head of the target read on the source's training rows
                row[f"stitch score {m}"] = S._score(clf, Fs[train], labels[train])
            picked = int(np.argmax([row[f"stitch score {m}"] for m in METRICS]))
            row["stitch"] = row[f"single {METRICS[picked]}"]
            for name, wf in variants.items():
                if args.only and not name.startswith(tuple(args.only)):
                    continue
                w = wf(s, t)
                norm = "l2"
                if isinstance(w, tuple):
                    norm, w = w
                if norm == "l2 matched":
                    # each side centered on its own feature means; each component's
                    # spread set to the mean of the two sides' spreads (the row-L2
                    # product's balance of components kept, the offset and scale
                    # mismatch between the spaces removed)
                    sp = {e: np.array([np.sqrt((B[train] ** 2).sum(1).mean())
                                       for B in blocks[(e, "l2 centered")]]) for e in (s, t)}
                    shared = (sp[s] + sp[t]) / 2
                    Fs, Ft = (weighted(e, w * shared / sp[e], "l2 centered") for e in (s, t))
                else:
                    Fs, Ft = weighted(s, w, norm), weighted(t, w, norm)
                row[name] = fit_score(Fs, Ft)
            for c, m in enumerate(METRICS):
                row[f"agree {m}"] = agree[(s, t)][c]  # share of the best, clipped at 0
                row[f"corr {m}"] = fit_corr[(s, t)][c]
                row[f"r2 {m}"] = raw_r2[(s, t)][c]
            if args.estimator:
                kw = dict(anchors=in_train, weights="transfer")
                Ps = ProductInvarianceProjector(**kw).fit(
                    spaces[s][train], reference=spaces[t][train])
                Pt = ProductInvarianceProjector(**kw).fit(
                    spaces[t][train], reference=spaces[s][train])
                row["estimator transfer"] = fit_score(Ps.transform(spaces[s]),
                                                      Pt.transform(spaces[t]))
                # the head's side picks the component; the source takes its weights
                Pt = ProductInvarianceProjector(anchors=in_train, weights="stitch").fit(
                    spaces[t][train], labels[train], reference=spaces[s][train])
                Ps = ProductInvarianceProjector(anchors=in_train, weights=Pt.weights_).fit(
                    spaces[s][train])
                row["estimator stitch"] = fit_score(Ps.transform(spaces[s]),
                                                    Pt.transform(spaces[t]))
            rows.append(row)
            print(s, t, {k: round(v, 3) for k, v in row.items() if isinstance(v, float)},
                  flush=True)
    table = pd.DataFrame(rows)
    if args.out:
        table.to_csv(args.out, index=False)
    print(table.drop(columns=["seed"]).mean(numeric_only=True).round(3).to_string())


if __name__ == "__main__":
    main()

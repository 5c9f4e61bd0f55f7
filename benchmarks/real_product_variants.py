"""Product-of-invariances variants on real encoders (issue 13, item 5).

The experiment behind "What lost where" in docs/real_suite.md: the four raw
relative components (cosine, euclidean, L1, L-inf; ``normalize=None``) of every
encoder of a cached data set, then per-component normalizations and
aggregations applied here, fitted on each space's own training rows (no
labels at transform time).  Protocol as ``real_suite.py`` (1,500 items, 70/30,
500 random anchors).  Prints the mean stitched accuracy over ordered pairs of
each variant and writes the per-pair table::

    OMP_NUM_THREADS=1 python benchmarks/real_product_variants.py vader 0 --out v0.csv

Normalizations: ``standard`` (per feature), ``l2`` (per row), ``block`` (per
feature mean, one scale per component), ``l2c`` (per feature mean, then per
row L2).  Variants: ``cka`` weights each component by its linear CKA with the
input space, ``sum`` sums the components, ``nolinf`` drops L-inf.
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


def norm_standard(B, tr):
    mu, sd = B[tr].mean(0), B[tr].std(0)
    sd[sd == 0] = 1
    return (B - mu) / sd


def norm_l2(B, tr):
    return B / np.linalg.norm(B, axis=1, keepdims=True)


def norm_block(B, tr):
    mu = B[tr].mean(0)
    return (B - mu) / np.sqrt(((B[tr] - mu) ** 2).mean())


def norm_l2c(B, tr):
    C = B - B[tr].mean(0)
    return C / np.linalg.norm(C, axis=1, keepdims=True)


NORMS = {"standard": norm_standard, "l2": norm_l2, "block": norm_block, "l2c": norm_l2c}


def main(argv=None):
    import pandas as pd
    import torch

    from sklearn_latent import ProductInvarianceProjector
    from sklearn_latent.metrics import linear_cka

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset")
    parser.add_argument("seed", type=int)
    parser.add_argument("--cache", default=S.CACHE)
    parser.add_argument("--norms", nargs="+", default=list(NORMS), choices=list(NORMS))
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    spaces, labels, _ = load_cache(args.dataset, args.cache)
    keep = S.subsample(labels, 1500)
    spaces = {e: X[keep] for e, X in spaces.items()}
    labels = labels[keep]
    train, test = S.split(labels, args.seed)
    anchors = np.sort(np.random.default_rng(args.seed).choice(train, 500, replace=False))
    in_train = np.flatnonzero(np.isin(train, anchors))
    raw = {
        e: ProductInvarianceProjector(anchors=in_train, normalize=None)
        .fit(X[train]).transform(X).reshape(len(X), len(METRICS), -1)
        for e, X in spaces.items()
    }

    def feats(e, norm, comps, weight=None, agg="concat"):
        blocks = [NORMS[norm](raw[e][:, c], train) for c in comps]
        if weight == "cka":
            X = spaces[e][train].astype(np.float64)
            w = np.array([linear_cka(b[train], X) for b in blocks])
            blocks = [b * wi for b, wi in zip(blocks, w / w.max())]
        return np.sum(blocks, axis=0) if agg == "sum" else np.hstack(blocks)

    def evaluate(f):
        F = {e: f(e) for e in spaces}
        res = {}
        for t in spaces:
            clf = S.head().fit(F[t][train], labels[train])
            for s in spaces:
                if s != t:
                    res[(s, t)] = S._score(clf, F[s][test], labels[test])
        return res

    out = {}
    for norm in args.norms:
        for c, m in enumerate(METRICS):
            out[f"single {m} {norm}"] = evaluate(lambda e: feats(e, norm, [c]))
        out[f"product {norm}"] = evaluate(lambda e: feats(e, norm, range(4)))
        out[f"product {norm} cka"] = evaluate(lambda e: feats(e, norm, range(4), "cka"))
        out[f"product {norm} sum"] = evaluate(lambda e: feats(e, norm, range(4), None, "sum"))
        out[f"product {norm} nolinf"] = evaluate(lambda e: feats(e, norm, range(3)))
    table = pd.DataFrame(out)
    table.index.names = ["source", "target"]
    if args.out:
        table.to_csv(args.out)
    print(table.mean().sort_values().round(3).to_string())
    for norm in args.norms:
        own = table[[f"single {m} {norm}" for m in METRICS]].max(axis=1)
        for col in [c for c in table.columns if c.startswith(f"product {norm}")]:
            if col.split(" ")[1] != norm:
                continue
            d = table[col] - own
            print(f"{col:24s} minus best own component: mean {d.mean():+.3f} "
                  f"min {d.min():+.3f} share >= -0.005: {(d >= -0.005).mean():.2f}")


if __name__ == "__main__":
    main()

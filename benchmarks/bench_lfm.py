"""Latent functional maps (FunctionalMapTranslator) with 5-50 known pairs on real encoders.

For each encoder pair (source -> target), random state and number of known
pairs s: the target's training rows are shuffled (only the s seeds are known
pairs), the methods are fitted and evaluated on held-out test rows (never seen
in fit) with the metrics of ``bench_zeropair.py``: ``precision`` of the pairs
used for the final Procrustes fit, ``top1`` retrieval among the test targets,
``foscttm`` (0 perfect, 0.5 random), ``stitch`` (a LogisticRegression trained
on the target's training rows applied to the translated source test rows),
``similarity`` (the functional-map similarity ``similarity_`` of the fit) and
the CPU seconds of ``fit`` (``time.process_time``; loaded machine).

Methods: ``lfm`` (FunctionalMapTranslator defaults: spectral mutual nearest
neighbours, then Procrustes, "LFM + Ortho"), ``lfm_refine`` (the same with
``n_refine=3`` self-learning rounds), ``seeds_only`` (ProcrustesTranslator
on the s seeds) and ``ceiling`` (ProcrustesTranslator on all training pairs).

Data: the real-encoder cache (``--root``, ``<dataset>/<encoder>.npy``) or
``--dataset mlp-digits`` (the MLP encoders of
:func:`sklearn_latent.datasets.make_digits_spaces`)::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 nice -n 10 python benchmarks/bench_lfm.py \\
        --dataset tweets --encoders minilm-l6:minilm-l3 minilm-l6:use-m3 \\
        --pairs 5 10 20 50 --random-states 0 1 2 --n-train 3000 --out /tmp/lfm_tweets.csv
"""

import argparse
import importlib.util
import time
from pathlib import Path

import numpy as np
import torch

from sklearn_latent import FunctionalMapTranslator, ProcrustesTranslator

HERE = Path(__file__).resolve().parent


def _zeropair():
    spec = importlib.util.spec_from_file_location("bench_zeropair", HERE / "bench_zeropair.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load(dataset, root):
    if dataset == "mlp-digits":
        from sklearn_latent.datasets import make_digits_spaces

        data = make_digits_spaces()
        return data.spaces, data.target
    folder = Path(root) / dataset
    if not (folder / "labels.npy").exists():
        raise SystemExit(f"{folder} has no labels.npy (build it with real_data.py)")
    spaces = {p.stem: np.load(p).astype(np.float64) for p in folder.glob("*.npy")
              if p.stem != "labels"}
    return spaces, np.load(folder / "labels.npy")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="tweets")
    ap.add_argument("--root", default="/work/cache/real")
    ap.add_argument("--encoders", nargs="+", default=["minilm-l6:minilm-l3"])
    ap.add_argument("--pairs", nargs="+", type=int, default=[5, 10, 20, 50])
    ap.add_argument("--methods", nargs="+", default=["lfm", "lfm_refine", "seeds_only"])
    ap.add_argument("--random-states", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--n-train", type=int, default=3000)
    ap.add_argument("--n-test", type=int, default=1000)
    ap.add_argument("--n-components", type=int, default=30)
    ap.add_argument("--n-neighbors", type=int, default=10)
    ap.add_argument("--alpha", type=float, default=1.0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    from sklearn.linear_model import LogisticRegression

    zp = _zeropair()
    spaces, labels = load(args.dataset, args.root)
    order = np.random.default_rng(0).permutation(len(labels))
    n_test = min(args.n_test, len(labels) // 2)
    te = order[:n_test]
    tr = order[n_test : n_test + args.n_train]
    rows = []
    for spec in args.encoders:
        a, b = spec.split(":")
        A, B = spaces[a], spaces[b]
        A_tr, B_tr, A_te, B_te = A[tr], B[tr], A[te], B[te]
        y_tr, y_te = labels[tr], labels[te]
        head = LogisticRegression(max_iter=500).fit(B_tr, y_tr)
        base = dict(dataset=args.dataset, source=a, target=b, n_train=len(tr), n_test=len(te),
                    target_own=head.score(B_te, y_te))
        ceil = ProcrustesTranslator().fit(A_tr, B_tr)
        rows.append(dict(base, method="ceiling", n_pairs=len(tr), random_state=-1,
                         precision=1.0, n_found=len(tr), seconds=0.0,
                         **zp.evaluate(ceil.transform, A_te, B_te, head, y_te)))
        print(rows[-1], flush=True)
        for rs in args.random_states:
            rng = np.random.default_rng(1000 + rs)
            perm = rng.permutation(len(tr))  # row j of Y is training item perm[j]
            X, Y = A_tr, B_tr[perm]
            inv = np.argsort(perm)  # item -> row of Y
            for s in args.pairs:
                items = rng.choice(len(tr), s, replace=False)
                seeds = np.stack([items, inv[items]], axis=1)
                for method in args.methods:
                    t0 = time.process_time()
                    extra = {}
                    if method == "seeds_only":
                        model = ProcrustesTranslator().fit(X[seeds[:, 0]], Y[seeds[:, 1]])
                        pairs = seeds
                    else:
                        model = FunctionalMapTranslator(
                            seeds, n_components=args.n_components,
                            n_neighbors=args.n_neighbors, alpha=args.alpha,
                            n_refine=3 if method == "lfm_refine" else 0,
                        ).fit(X, Y)
                        pairs = model.matched_pairs_
                        extra = dict(similarity=model.similarity_)
                    seconds = time.process_time() - t0
                    truth = pairs[:, 0] == perm[pairs[:, 1]]
                    rows.append(dict(
                        base, method=method, n_pairs=s, random_state=rs,
                        precision=float(truth.mean()), n_found=len(pairs),
                        seconds=round(seconds, 1),
                        **zp.evaluate(model.transform, A_te, B_te, head, y_te), **extra,
                    ))
                    zp.show(rows[-1])
    zp.write_rows(rows, args.out)
    return rows


if __name__ == "__main__":
    main()

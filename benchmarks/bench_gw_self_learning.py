"""Gromov-Wasserstein matching and self-learning refinement on real encoders (issue 14).

Same protocol and metrics as bench_zeropair.py (target training rows shuffled,
held-out test rows, top-1 / FOSCTTM / zero-shot stitching, precision of the
found pairs, whether an AlignmentWarning was raised), for

* ``gw``: ``AnchorMatcher(discovery="gw", gw_samples=...)``, no pairs;
* ``selflearn``: ``SelfLearningTranslator(seeds=s known pairs)`` (s >= 2);
* ``selflearn_standard``: the same around ``ProcrustesTranslator(scaling="standard")``;
* ``seeds_only``: ProcrustesTranslator("orthogonal", scaling="center") on the s seeds;
* ``ceiling``: orthogonal ProcrustesTranslator on all training pairs with
  ``scaling="standard"`` (the library default before 2026-12-07);
  ``ceiling_center``: ``scaling="center"``; ``ceiling_isotropic``:
  ``scaling="isotropic"``, the library default and the translator
  SelfLearningTranslator refits by default.

Run single-threaded on a shared machine::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 \\
    python benchmarks/bench_gw_self_learning.py --dataset tweets \\
        --encoders minilm-l6:minilm-l3 minilm-l6:use --pairs 0 10 50 --n-train 3000
"""

import argparse
import time
import warnings

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from bench_zeropair import evaluate, show, write_rows
from bench_zeropair import load as load_cached
from sklearn_latent import (
    AlignmentWarning,
    AnchorMatcher,
    ProcrustesTranslator,
    SelfLearningTranslator,
)


def load(dataset, root):
    """``(spaces, labels, split)``: ``mlp-digits`` is the digits MLP encoders of
    ``sklearn_latent.datasets`` with their own train / test split; any other name is
    a real-encoder cache folder (split drawn in ``main``)."""
    if dataset == "mlp-digits":
        from sklearn_latent.datasets import make_digits_spaces

        data = make_digits_spaces()
        return data.spaces, data.target, (data.train, data.test)
    spaces, labels = load_cached(dataset, root)
    return spaces, labels, None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="tweets")
    ap.add_argument("--root", default="/work/cache/real")
    ap.add_argument("--encoders", nargs="+", default=["minilm-l6:minilm-l3"])
    ap.add_argument("--pairs", nargs="+", type=int, default=[0, 10, 50])
    ap.add_argument("--methods", nargs="+", default=["gw", "selflearn", "seeds_only"])
    ap.add_argument("--random-states", nargs="+", type=int, default=[0])
    ap.add_argument("--n-train", type=int, default=3000)
    ap.add_argument("--n-test", type=int, default=1000)
    ap.add_argument("--gw-samples", type=int, default=1000)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    spaces, labels, split = load(args.dataset, args.root)
    rows = []
    for spec in args.encoders:
        a, b = spec.split(":")
        A, B = spaces[a], spaces[b]
        if split is None:
            order = np.random.default_rng(0).permutation(len(labels))
            tr, te = order[: args.n_train], order[args.n_train : args.n_train + args.n_test]
        else:
            tr, te = split
        A_tr, B_tr, A_te, B_te = A[tr], B[tr], A[te], B[te]
        head = LogisticRegression(max_iter=500).fit(B_tr, labels[tr])
        base = dict(dataset=args.dataset, source=a, target=b, n_train=len(tr), n_test=len(te))
        for name, scaling in (("ceiling", "standard"), ("ceiling_center", "center"),
                              ("ceiling_isotropic", "isotropic")):
            ceil = ProcrustesTranslator(scaling=scaling).fit(A_tr, B_tr)
            rows.append(dict(base, method=name, n_pairs=len(tr), random_state=-1,
                             **evaluate(ceil.transform, A_te, B_te, head, labels[te])))
            print(rows[-1], flush=True)
        for rs in args.random_states:
            rng = np.random.default_rng(1000 + rs)
            perm = rng.permutation(len(tr))  # row j of Y is item perm[j]
            X, Y = A_tr, B_tr[perm]
            inv = np.argsort(perm)
            for s in args.pairs:
                items = rng.choice(len(tr), s, replace=False)
                seeds = np.stack([items, inv[items]], axis=1)
                for method in args.methods:
                    if (method == "gw") != (s == 0):
                        continue
                    t0 = time.process_time()
                    with warnings.catch_warnings(record=True) as caught:
                        warnings.simplefilter("always")
                        extra = {}
                        if method == "seeds_only":
                            model = ProcrustesTranslator(scaling="center").fit(
                                X[seeds[:, 0]], Y[seeds[:, 1]])
                            pairs = seeds
                        elif method in ("selflearn", "selflearn_standard"):
                            # selflearn_standard refits a scaling="standard" translator
                            # instead of the wrapper's default ("isotropic")
                            inner = (ProcrustesTranslator(scaling="standard")
                                     if method == "selflearn_standard" else None)
                            model = SelfLearningTranslator(inner, seeds=seeds, random_state=rs)
                            pairs = model.fit(X, Y).dictionary_
                        else:
                            model = AnchorMatcher(discovery="gw", gw_samples=args.gw_samples,
                                                  random_state=rs).fit(X, Y)
                            pairs = model.matched_pairs_
                        if method != "seeds_only":
                            extra = dict(score=model.alignment_score_,
                                         mutual=model.mutual_fraction_,
                                         null_mutual=model.null_mutual_fraction_)
                    cpu = time.process_time() - t0
                    warned = any(issubclass(w.category, AlignmentWarning) for w in caught)
                    rows.append(dict(
                        base, method=method, n_pairs=s, random_state=rs,
                        precision=float(np.mean(perm[pairs[:, 1]] == pairs[:, 0])),
                        n_found=len(pairs), warned=warned, cpu_seconds=round(cpu, 1),
                        **evaluate(model.transform, A_te, B_te, head, labels[te]), **extra,
                    ))
                    show(rows[-1])
    write_rows(rows, args.out)
    return rows


if __name__ == "__main__":
    main()

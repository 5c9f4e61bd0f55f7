"""Zero- and few-pair alignment: AnchorMatcher without pairs and with 1-100 seeds.

For each pair of encoders (source -> target) and each number of known pairs s
in ``--pairs``: the training rows of the target are shuffled (the pair-free
methods see no correspondence beyond the s seeds), the methods are fitted, and
on held-out test rows (never seen in fit) we report

* ``precision``: fraction of the discovered training pairs that are true pairs;
* ``top1``: top-1 retrieval of each translated test row among all test targets;
* ``foscttm``: fraction of test targets closer (cosine) to a translated row than
  its true match (0 perfect, 0.5 random);
* ``stitch``: accuracy of a LogisticRegression trained on the target's training
  rows, applied to the translated source test rows (zero-shot stitching);
* ``warned``: whether AnchorMatcher raised an AlignmentWarning; ``seconds``: fit time.

Methods: ``centroids`` (AnchorMatcher default, the pair-free pipeline, seeds as
fixed pairs), ``relative`` (the seed bootstrap, s >= 2), ``seeds_only``
(ProcrustesTranslator on the s seeds, s >= 2) and ``ceiling`` (ProcrustesTranslator
on all training pairs).  ``--unpaired`` gives the two spaces disjoint halves of
the training items (truly unpaired; precision is then undefined).

Data: the real-encoder cache of benchmarks/real_data.py (``--root``,
``<dataset>/<encoder>.npy``) or ``--dataset digits`` (the digits encoders of
:func:`sklearn_latent.datasets.make_digits_spaces`).  Run single-threaded on a
shared machine::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 \\
    python benchmarks/bench_zeropair.py --dataset tweets --encoders minilm-l6:minilm-l3 \\
        --pairs 0 10 --random-states 0 1 2 --out /tmp/zp.csv
"""

import argparse
import csv
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from sklearn_latent import AlignmentWarning, AnchorMatcher, ProcrustesTranslator
from sklearn_latent.metrics import top_k_accuracy


def load(dataset, root):
    if dataset == "digits":
        from sklearn_latent.datasets import make_digits_spaces

        data = make_digits_spaces()
        return data.spaces, data.target, (data.train, data.test)
    folder = Path(root) / dataset
    if not (folder / "DONE").exists():
        raise SystemExit(f"{folder} is not complete (no DONE file)")
    spaces = {p.stem: np.load(p).astype(np.float64) for p in folder.glob("*.npy")
              if p.stem != "labels"}
    return spaces, np.load(folder / "labels.npy"), None


def foscttm(P, T):
    """Mean fraction of rows of T more cosine-similar to P_i than T_i (chunked)."""
    Pn = P / np.linalg.norm(P, axis=1, keepdims=True).clip(1e-12)
    Tn = T / np.linalg.norm(T, axis=1, keepdims=True).clip(1e-12)
    out = []
    for s in range(0, len(P), 512):
        S = Pn[s : s + 512] @ Tn.T
        diag = S[np.arange(S.shape[0]), np.arange(s, s + S.shape[0])]
        out.append((S > diag[:, None]).sum(1) / (len(T) - 1))
    return float(np.concatenate(out).mean())


def evaluate(translate, A_te, B_te, head, y_te):
    P = translate(A_te)
    return dict(top1=top_k_accuracy(P, B_te), foscttm=foscttm(P, B_te),
                stitch=float(head.score(P, y_te)))


def report(csv_files, table_path, plot_path):
    """Markdown table (mean over random states) and a plot of top-1/stitching vs pairs."""
    import pandas as pd

    df = pd.concat([pd.read_csv(f) for f in csv_files], ignore_index=True)
    df["pair"] = df["dataset"] + ": " + df["source"] + " -> " + df["target"]
    df["unpaired"] = df["unpaired"].astype(bool)
    df.loc[df["unpaired"], "pair"] += " (unpaired)"
    ok = df["method"] != "ceiling"
    ceil = df[~ok].drop_duplicates("pair").set_index("pair")[["top1", "stitch"]]
    g = df[ok].groupby(["pair", "method", "n_pairs"])
    agg = g.agg(runs=("top1", "size"), precision=("precision", "mean"), top1=("top1", "mean"),
                foscttm=("foscttm", "mean"), stitch=("stitch", "mean"),
                warned=("warned", "sum"), seconds=("seconds", "median")).reset_index()
    agg["ceiling top1 / stitch"] = [
        f"{ceil.loc[p, 'top1']:.3f} / {ceil.loc[p, 'stitch']:.3f}" if p in ceil.index else ""
        for p in agg["pair"]]
    # success: top-1 within 2 points of the all-pairs Procrustes ceiling
    df_ok = df[ok].copy()
    df_ok["success"] = [r.top1 >= ceil.loc[r.pair, "top1"] - 0.02 if r.pair in ceil.index
                        else np.nan for r in df_ok.itertuples()]
    succ = df_ok.groupby(["pair", "method", "n_pairs"])["success"].mean().reset_index()
    agg = agg.merge(succ, on=["pair", "method", "n_pairs"])
    cols = ["pair", "method", "n_pairs", "runs", "precision", "top1", "foscttm", "stitch",
            "ceiling top1 / stitch", "success", "warned", "seconds"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in agg[cols].itertuples(index=False):
        lines.append("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v)
                                       for v in r) + " |")
    Path(table_path).write_text("\n".join(lines) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = sorted(agg["pair"].unique())
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, metric in zip(axes, ("top1", "stitch")):
        for i, pair in enumerate(pairs):
            for method, style in (("centroids", "-o"), ("relative", "--s"), ("seeds_only", ":^")):
                sub = agg[(agg.pair == pair) & (agg.method == method)].sort_values("n_pairs")
                if len(sub):
                    x = np.maximum(sub["n_pairs"], 0.5)  # 0 pairs drawn at 0.5 on the log axis
                    ax.plot(x, sub[metric], style, color=f"C{i}",
                            label=f"{pair} {method}" if metric == "top1" else None)
            if pair in ceil.index:
                ax.axhline(ceil.loc[pair, metric], color=f"C{i}", lw=0.8, alpha=0.6)
        ax.set_xscale("log")
        ax.set_xlabel("known pairs (0 drawn at 0.5)")
        ax.set_ylabel({"top1": "top-1 retrieval (held out)", "stitch": "stitching accuracy"}[metric])
    axes[0].legend(fontsize=6)
    fig.suptitle("AnchorMatcher vs known pairs; lines: all-pairs Procrustes ceiling")
    fig.tight_layout()
    fig.savefig(plot_path, dpi=110)
    return agg


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="tweets")
    ap.add_argument("--root", default="/work/cache/real")
    ap.add_argument("--encoders", nargs="+", default=["minilm-l6:minilm-l3"])
    ap.add_argument("--pairs", nargs="+", type=int, default=[0, 1, 5, 10, 20, 50, 100])
    ap.add_argument("--methods", nargs="+", default=["centroids", "relative", "seeds_only"])
    ap.add_argument("--random-states", nargs="+", type=int, default=[0])
    ap.add_argument("--n-train", type=int, default=4000)
    ap.add_argument("--n-test", type=int, default=1000)
    ap.add_argument("--unpaired", action="store_true")
    ap.add_argument("--out", default=None)
    ap.add_argument("--report", nargs="+", default=None, metavar="CSV",
                    help="only write docs/_static/zero_pair_table.md and zero_pair.png from CSVs")
    args = ap.parse_args(argv)
    if args.report:
        static = Path(__file__).resolve().parent.parent / "docs" / "_static"
        static.mkdir(exist_ok=True)
        return report(args.report, static / "zero_pair_table.md", static / "zero_pair.png")
    torch.set_num_threads(1)
    from sklearn.linear_model import LogisticRegression

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
        y_tr, y_te = labels[tr], labels[te]
        head = LogisticRegression(max_iter=500).fit(B_tr, y_tr)
        print(f"# {a} -> {b}: target head fitted", flush=True)
        own = head.score(B_te, y_te)
        ceil = ProcrustesTranslator().fit(A_tr, B_tr)
        base = dict(dataset=args.dataset, source=a, target=b, n_train=len(tr),
                    n_test=len(te), unpaired=args.unpaired, target_own=own)
        rows.append(dict(base, method="ceiling", n_pairs=len(tr), random_state=-1,
                         precision=1.0, warned=False, seconds=0.0,
                         **evaluate(ceil.transform, A_te, B_te, head, y_te)))
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
                items = rng.choice(common, s, replace=False) if s else np.zeros(0, int)
                seeds = np.stack([np.searchsorted(ia, items), inv[items]], axis=1)
                for method in args.methods:
                    if method != "centroids" and s < 2:
                        continue
                    t0 = time.perf_counter()
                    with warnings.catch_warnings(record=True) as caught:
                        warnings.simplefilter("always")
                        if method == "seeds_only":
                            model = ProcrustesTranslator().fit(X[seeds[:, 0]], Y[seeds[:, 1]])
                            pairs = seeds
                        else:
                            model = AnchorMatcher(
                                None if method == "centroids" else 1000,
                                seeds=seeds if s else None, discovery=method, random_state=rs,
                            ).fit(X, Y)
                            pairs = model.matched_pairs_
                    seconds = time.perf_counter() - t0
                    warned = any(issubclass(w.category, AlignmentWarning) for w in caught)
                    truth = ia[pairs[:, 0]] == ib[perm[pairs[:, 1]]]
                    extra = {}
                    if method == "centroids":
                        extra = dict(score=model.alignment_score_,
                                     mutual=model.mutual_fraction_,
                                     null_mutual=model.null_mutual_fraction_,
                                     n_centroids=model.n_centroids_)
                    rows.append(dict(
                        base, method=method, n_pairs=s, random_state=rs,
                        precision=float(truth.mean()) if not args.unpaired else float("nan"),
                        n_found=len(pairs), warned=warned, seconds=round(seconds, 1),
                        **evaluate(model.transform, A_te, B_te, head, y_te), **extra,
                    ))
                    print({k: (round(v, 4) if isinstance(v, float) else v)
                           for k, v in rows[-1].items()}, flush=True)
    if args.out:
        keys = sorted({k for r in rows for k in r})
        with open(args.out, "w", newline="") as fh:
            w = csv.DictWriter(fh, keys)
            w.writeheader()
            w.writerows(rows)
    return rows


if __name__ == "__main__":
    main()

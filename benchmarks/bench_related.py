"""Related methods (issue 7): ASIF, anchor discovery, relative aggregation.

1. ``--part digits``: accuracies on scikit-learn digits (the offline real
   data of tests/_digits_encoders.py):
   - ASIF zero-shot classification with a bank of (original image, mirrored
     and pooled image) pairs through two independently trained encoders,
     against a Procrustes translator fitted on the same pairs and chance;
   - anchor discovery from 10 / 20 seeds between encoders A and B (Y rows
     shuffled): precision of the discovered pairs and stitching accuracy
     with discovered anchors, the same number of true anchors, the seeds only;
   - relative aggregation of encoders A, B, C (mean and concat) against each
     single relative space and an end-to-end MLP on the pixels.
2. ``--part scale``: ASIF prediction against banks of 10^5 and 10^6 pairs,
   chunked (running top-k over bank chunks) against the unchunked top-k of
   the full (n, N) similarity matrix, interleaved; peak RSS of each.

Run from the repository root::

    python benchmarks/bench_related.py                  # both parts (as run.py calls it)
    python benchmarks/bench_related.py --part digits
    python benchmarks/bench_related.py --part scale [--sizes 100000 1000000]
    python benchmarks/bench_related.py --quick          # scale part, a 10^4 bank
"""

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from _common import (  # noqa: E402
    emit,
    machine_description,
    median_ratio,
    paired_times,
    peak_rss_bytes,
    reset_peak_rss,
    rss_bytes,
    table,
)

from sklearn_latent import (  # noqa: E402
    ASIFClassifier,
    ProcrustesTranslator,
    RelativeAggregator,
    RelativeProjector,
    discover_anchors,
)
from sklearn_latent import functional as F  # noqa: E402


def _view(X):
    """Mirrored, 2x2-pooled (4 x 4) digits: the second 'modality'."""
    return X.reshape(-1, 8, 8)[:, :, ::-1].reshape(-1, 4, 2, 4, 2).mean((2, 4)).reshape(-1, 16)


def digits_asif():
    from _digits_encoders import digits_encoder, digits_split, fit_single_thread
    from sklearn.neural_network import MLPClassifier

    X_train, X_test, y_train, y_test = digits_split()
    A_train, A_test = digits_encoder("A")
    mlp = fit_single_thread(MLPClassifier((48,), random_state=5), _view(X_train), y_train)
    B_train = np.maximum(_view(X_train) @ mlp.coefs_[0] + mlp.intercepts_[0], 0.0)
    rng = np.random.default_rng(0)
    few = np.concatenate([rng.choice(np.flatnonzero(y_train == c), 5, replace=False)
                          for c in range(10)])
    prompts = np.stack([B_train[few][y_train[few] == c].mean(0) for c in range(10)])
    rows = [["chance", "", "0.100"],
            ["view-B encoder's own MLP head on the view (ceiling of the Y side)", "",
             f"{mlp.score(_view(X_test), y_test):.3f}"]]
    for top_k, exponent in [(800, 8.0), (200, 8.0), (100, 8.0), (50, 4.0), (50, 8.0),
                            (30, 1.0)]:
        for center in (False, True):
            clf = ASIFClassifier(top_k, exponent, center=center)
            acc = clf.fit(A_train, B_train, prompts=prompts).score(A_test, y_test)
            rows.append([f"ASIF top_k={top_k}, exponent={exponent:g}, center={center}", "",
                         f"{acc:.3f}"])
    for method in ("orthogonal", "linear"):
        T = ProcrustesTranslator(method).fit(A_train, B_train).transform(A_test)
        for metric, pick in (("cosine", np.argmax), ("euclidean", np.argmin)):
            S = F.pairwise(torch.from_numpy(T), torch.from_numpy(prompts), metric).numpy()
            acc = float((pick(S, axis=1) == y_test).mean())
            rows.append([f"Procrustes {method}, nearest prompt by {metric}", "", f"{acc:.3f}"])
    return table(["method", "", "test accuracy"], rows)


def digits_matching():
    from _digits_encoders import digits_encoder, digits_split, fit_single_thread
    from sklearn.linear_model import LogisticRegression

    _, _, y_train, y_test = digits_split()
    A_train, A_test = digits_encoder("A")
    B_train, _ = digits_encoder("B")
    head = fit_single_thread(LogisticRegression(max_iter=2000), B_train, y_train)
    n = len(A_train)
    perm = np.random.default_rng(0).permutation(n)  # row j of Y is item perm[j]
    inv = np.argsort(perm)
    Y = B_train[perm]
    rows = [["absolute (A into B's head, no translation)", "", "", "",
             f"{head.score(A_test, y_test):.3f}", ""]]
    for s in (10, 20):
        items = np.random.default_rng(s).choice(n, s, replace=False)
        seeds = np.stack([items, inv[items]], axis=1)
        acc_seeds = head.score(
            ProcrustesTranslator().fit(A_train[items], B_train[items]).transform(A_test), y_test)
        rows.append([f"{s} seeds only", s, "1.000", "", f"{acc_seeds:.3f}", ""])
        for matching, n_anchors in (("mutual_nn", 300), ("mutual_nn", 600), ("sinkhorn", 300)):
            t0 = time.perf_counter()
            pairs, _ = discover_anchors(A_train, Y, seeds, n_anchors, matching=matching)
            elapsed = time.perf_counter() - t0
            precision = float(np.mean(perm[pairs[:, 1]] == pairs[:, 0]))
            found = ProcrustesTranslator().fit(A_train[pairs[:, 0]], Y[pairs[:, 1]])
            true = ProcrustesTranslator().fit(A_train[pairs[:, 0]], B_train[pairs[:, 0]])
            rows.append([
                f"{s} seeds -> {matching}", len(pairs), f"{precision:.3f}",
                f"{head.score(true.transform(A_test), y_test):.3f}",
                f"{head.score(found.transform(A_test), y_test):.3f}", f"{elapsed:.1f}",
            ])
    return table(["anchors", "pairs", "precision", "stitching, true anchors (same X items)",
                  "stitching, discovered", "s"], rows)


def digits_aggregation():
    from _digits_encoders import digits_encoder, digits_split, fit_single_thread
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline

    X_train, X_test, y_train, y_test = digits_split()
    spaces = {name: digits_encoder(name) for name in "ABC"}
    train = np.hstack([s[0] for s in spaces.values()])
    test = np.hstack([s[1] for s in spaces.values()])
    widths = tuple(s[0].shape[1] for s in spaces.values())
    rows = []
    for k in (32, 64, 128):
        idx = RelativeAggregator(widths, k, random_state=0).fit(train).anchor_indices_

        def acc(tr, Xtr, Xte):
            pipe = make_pipeline(tr, LogisticRegression(max_iter=3000))
            return fit_single_thread(pipe, Xtr, y_train).score(Xte, y_test)

        single = {name: acc(RelativeProjector(anchors=idx), *s) for name, s in spaces.items()}
        mean = acc(RelativeAggregator(widths, anchors=idx), train, test)
        concat = acc(RelativeAggregator(widths, anchors=idx, aggregation="concat"), train, test)
        rows.append([k] + [f"{single[n]:.3f}" for n in "ABC"] + [f"{mean:.3f}",
                                                                 f"{concat:.3f}"])
    e2e = fit_single_thread(MLPClassifier((64,), random_state=0), X_train, y_train)
    note = f"end-to-end MLPClassifier(64) on the pixels: {e2e.score(X_test, y_test):.3f}"
    header = ["anchors", "relative A", "relative B", "relative C", "mean (A, B, C)",
              "concat (A, B, C)"]
    return table(header, rows) + "\n\n" + note


def scale(sizes, n_queries, d, repeat, device=None):
    rng = np.random.default_rng(0)
    out = []
    Q = rng.standard_normal((n_queries, d), dtype=np.float32)
    for N in sizes:
        bank_x = rng.standard_normal((N, d), dtype=np.float32)
        bank_y = rng.standard_normal((N, d), dtype=np.float32)
        prompts = rng.standard_normal((10, d), dtype=np.float32)
        chunked = ASIFClassifier(800, 8.0, device=device).fit(bank_x, bank_y, prompts=prompts)
        full = ASIFClassifier(800, 8.0, bank_batch_size=None, device=device).fit(
            bank_x, bank_y, prompts=prompts)
        peaks = {}
        for name, clf in (("chunked", chunked), ("unchunked", full)):
            before = rss_bytes()
            ok = reset_peak_rss()
            clf.decision_function(Q)
            peaks[name] = (peak_rss_bytes() - before) / 2**20 if ok else float("nan")
        assert np.array_equal(chunked.predict(Q), full.predict(Q))
        t = paired_times({"chunked": lambda: chunked.decision_function(Q),
                          "unchunked": lambda: full.decision_function(Q)}, repeat=repeat)
        load = os.getloadavg()[0]
        out.append([f"{N:,}", n_queries, d,
                    f"{np.median(t['chunked']):.2f}", f"{np.median(t['unchunked']):.2f}",
                    f"{median_ratio(t['chunked'], t['unchunked']):.2f}",
                    f"{peaks['chunked']:.0f}", f"{peaks['unchunked']:.0f}", f"{load:.1f}"])
        print(out[-1], flush=True)
        del bank_x, bank_y, chunked, full
    return table(["bank pairs", "queries", "d", "chunked s", "unchunked s",
                  "chunked / unchunked (median of rounds)", "chunked peak MiB",
                  "unchunked peak MiB", "load avg"], out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["digits", "scale", "all"], default="all")
    parser.add_argument("--quick", action="store_true", help="scale part with a 10^4 bank")
    parser.add_argument("--device", default=None, help="device of the ASIF scale part")
    parser.add_argument("--out", default=None, help="append the report to this file")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=256)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    if args.quick:
        args.part, args.sizes, args.repeat = "scale", [10_000], 1
    emit("## Related methods (bench_related.py)\n\n" + machine_description(args.device or "cpu")
         + "\n", args.out)
    if args.part in ("digits", "all"):
        for fn in (digits_asif, digits_matching, digits_aggregation):
            t0 = time.perf_counter()
            emit(f"### {fn.__name__}\n\n{fn()}\n\n({time.perf_counter() - t0:.0f} s)\n",
                 args.out)
    if args.part in ("scale", "all"):
        emit("### ASIF bank scaling\n\n"
             + scale(args.sizes, args.queries, args.dim, args.repeat, args.device), args.out)


if __name__ == "__main__":
    main()

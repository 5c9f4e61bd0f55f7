"""Embedding migration benchmark (issue 15): retention, scale, query latency.

``retention``
    Real text encoders on Jane Austen lines (benchmarks/migration_cache.py) or
    on a realsuite cache ``/work/cache/real/<dataset>/<encoder>.npy``.  Fixed
    split (seed 0): the first 4,000 rows of a permutation are the calibration
    pool, the next 1,000 the queries, the rest the corpus, so queries and
    corpus never meet the calibration pairs (a cache of fewer than 7,000 rows:
    a third of the rows outside the pool are queries).  For each (legacy, new) encoder
    pair, method and calibration size (250, 500, 1,000, 2,000, 4,000: the
    first n of the pool), a translator legacy -> new translates the corpus
    and one new -> legacy translates the queries; relevance is the
    re-embedding ceiling's own top-10 (new queries against the corpus
    re-embedded by the new model) and, as a second reading, the chapter label.
    Cosine ranking, exact search (:func:`sklearn_latent.metrics.retention_report`).
``scale``
    Migrates an N x 384 float32 synthetic store (a .npy file, read in chunks)
    into a FAISS flat index, a LanceDB table and a .npy file with
    :func:`~sklearn_latent.stores.migrate_store`, and into a .npy file through
    :func:`sklearn_latent.dask.transform` (2 threads, :func:`dask.array.store`;
    ``dask``: the .npy files read and written by ``pread`` / ``pwrite``,
    ``dask-mmap``: both memory-mapped, whose touched pages count in the
    resident memory), each in a fresh process
    (peak resident memory: ``VmHWM``), against the floor of reading
    the store and one GEMM per chunk, repeated round-robin.
``zeropair``
    Calibration-free migration: :class:`~sklearn_latent.AnchorMatcher` aligns
    the legacy and new embeddings of the calibration pool with their rows
    shuffled independently (no pair known), then the same retention as
    above with the map fitted on the pairs it found (and, as a second row,
    ranked by CSLS); the share of found pairs that are right is reported.
``adapter``
    The linear maps' limit: at 2,000 calibration pairs, the affine map against
    a residual MLP adapter on top of it (Drift-Adapter's non-linear adapter,
    early-stopped on held-out calibration pairs; a probe in this script, not a
    library estimator), same split and readings as ``retention``.
``plot``
    The calibration curve (retention against calibration pairs, one line per
    method) of a ``retention`` JSON, for docs/migration.md.
``latency``
    Query-side translation: ``ProcrustesTranslator.transform`` on 1 query and
    on batches, against the bare ``q @ W + b`` GEMM.

    python benchmarks/bench_migration.py retention --cache /work/cache/migration/austen
    python benchmarks/bench_migration.py zeropair --cache /work/cache/real/tweets \
        --pairs minilm-l3:minilm-l6
    python benchmarks/bench_migration.py adapter --cache /work/cache/real/austen \
        --pairs minilm-l3:minilm-l6,minilm-l6:minilm-l3
    python benchmarks/bench_migration.py plot /tmp/bench_migration_retention.json \
        --out docs/images/migration_curve.png
    python benchmarks/bench_migration.py scale --rows 1000000
    python benchmarks/bench_migration.py latency
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

SIZES = (250, 500, 1000, 2000, 4000)
POOL, N_QUERIES = 4000, 1000
K = 10


def machine():
    import torch

    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
            f"{torch.__version__}, {torch.get_num_threads()} threads, load average "
            f"{os.getloadavg()[0]:.1f}")


# --------------------------------------------------------------------------
# retention
# --------------------------------------------------------------------------
def methods(n_cal, width=None):
    """(name, ProcrustesTranslator kwargs): every method of the translator.

    "linear" is plain least squares (``alpha=0``); "ridge" is ``alpha = 0.1 * n``
    (the statistics are sums over n standardized rows), fixed before any
    result was seen; "ridge-auto" / "affine" / "lowrank-128" use the
    translator's default ``alpha="auto"`` (generalized cross-validation).
    "lowrank-128" is left out when ``width`` (the smaller of the two widths)
    is at most 128: it would not be low rank.
    """
    out = [("orthogonal", {"method": "orthogonal"}), ("scaled", {"method": "scaled"}),
           ("linear", {"method": "linear", "alpha": 0.0}),
           ("ridge", {"method": "linear", "alpha": 0.1 * n_cal}),
           ("ridge-auto", {"method": "linear", "alpha": "auto"}),
           ("affine", {"method": "affine", "alpha": "auto"})]
    if width is None or width > 128:
        out.append(("lowrank-128", {"method": "lowrank", "rank": 128, "alpha": "auto"}))
    return out


def load_cache(cache):
    cache = Path(cache)
    labels = np.load(cache / "labels.npy") if (cache / "labels.npy").exists() else None
    spaces = {p.stem: np.load(p) for p in sorted(cache.glob("*.npy")) if p.stem != "labels"}
    spaces = {k: v for k, v in spaces.items() if v.shape[0] >= POOL + 100}
    return spaces, labels


def _split(cache, pairs):
    """The cached spaces, the encoder pairs and the fixed split (seed 0) into the
    calibration pool, the queries and the corpus: the first 4,000 rows of a
    permutation, the next 1,000 (a cache of fewer than 7,000 rows: a third of
    the rest), the remainder."""
    spaces, labels = load_cache(cache)
    n = next(iter(spaces.values())).shape[0]
    perm = np.random.default_rng(0).permutation(n)
    n_q = min(N_QUERIES, (n - POOL) // 3)
    names = sorted(spaces)
    pairs = pairs or [(a, b) for a in names for b in names if a != b]
    return spaces, labels, pairs, (perm[:POOL], perm[POOL : POOL + n_q], perm[POOL + n_q :])


def _one_thread():
    """Single-threaded torch and BLAS: on a shared, loaded machine two spinning threads
    per process made the same fits and searches ~25x slower."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    threadpool_limits(1)


def _reports(Nw, L, labels, queries, corpus, **common):
    """The retention reports of each reading, by key prefix: ``""`` (relevant: the
    re-embedding ceiling's top 10), ``"top1_"`` (its best hit) and, with labels,
    ``"label_"`` (same label); ``common``: translators, ``k``, ``csls``."""
    from sklearn_latent.metrics import retention_report

    readings = {"": {}, "top1_": {"n_relevant": 1}}
    if labels is not None:
        readings["label_"] = {"query_labels": labels[queries], "corpus_labels": labels[corpus]}
    return {tag: retention_report(Nw[queries], Nw[corpus], L[corpus], queries_legacy=L[queries],
                                  **common, **kw)
            for tag, kw in readings.items()}


def retention(cache, out, pairs=None):
    from sklearn_latent import ProcrustesTranslator

    _one_thread()

    spaces, labels, pairs, (pool, queries, corpus) = _split(cache, pairs)
    n, n_q = pool.size + queries.size + corpus.size, queries.size
    rows = []
    t_start = time.perf_counter()
    for legacy_name, new_name in pairs:
        L, Nw = spaces[legacy_name], spaces[new_name]
        for size in SIZES:
            cal = pool[:size]
            for mname, kw in methods(size, min(L.shape[1], Nw.shape[1])):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    fwd = ProcrustesTranslator(**kw).fit(L[cal], Nw[cal])
                    bwd = ProcrustesTranslator(**kw).fit(Nw[cal], L[cal])
                reports = _reports(Nw, L, labels, queries, corpus, corpus_translator=fwd,
                                   query_translator=bwd, k=K)
                row = {"legacy": legacy_name, "new": new_name, "n_cal": size, "method": mname}
                for s in ("translated_corpus", "translated_queries", "legacy"):
                    for m in ("ndcg", "mrr"):
                        row[f"{s}/{m}"] = reports[""].retention(s, m)
                    for tag, r in reports.items():
                        row[f"{tag}{s}/recall"] = r.retention(s, "recall")
                if "label_" in reports:
                    row["label_ceiling/recall"] = reports["label_"].scores["ceiling"]["recall"]
                rows.append(row)
                print(f"{legacy_name}->{new_name} n={size:5d} {mname:12s} R@10 ret corpus "
                      f"{row['translated_corpus/recall']:.3f} queries "
                      f"{row['translated_queries/recall']:.3f}; top-1 in top-10: corpus "
                      f"{row['top1_translated_corpus/recall']:.3f} queries "
                      f"{row['top1_translated_queries/recall']:.3f}", flush=True)
    result = {"machine": machine(), "cache": str(cache), "n_rows": n, "n_queries": int(n_q),
              "n_corpus": int(corpus.size), "seconds": time.perf_counter() - t_start,
              "rows": rows}
    Path(out).write_text(json.dumps(result, indent=1))
    return result


def retention_markdown(result):
    rows = result["rows"]
    lines = [f"{result['n_queries']} queries, {result['n_corpus']} corpus rows, cosine; cells: "
             "translated corpus / translated queries"]
    readings = (("", "Recall@10 retention, relevance = the re-embedding ceiling's top-10 "
                     "(overlap of the two top-10 lists)"),
                ("top1_", "Recall@10 of the re-embedding ceiling's top-1 (one pseudo-relevant "
                          "row per query)"))
    for legacy, new in dict.fromkeys((r["legacy"], r["new"]) for r in rows):
        sub = [r for r in rows if (r["legacy"], r["new"]) == (legacy, new)]
        ms = list(dict.fromkeys(r["method"] for r in sub))
        for prefix, title in readings:
            if f"{prefix}translated_corpus/recall" not in sub[0]:
                continue
            lines += [f"\n{legacy} -> {new}: {title}\n",
                      "| n_cal | " + " | ".join(ms) + " | best (corpus) |",
                      "|---|" + "---|" * (len(ms) + 1)]
            for size in SIZES:
                cells, best = [], None
                for m in ms:
                    r = next(x for x in sub if x["n_cal"] == size and x["method"] == m)
                    c = r[f"{prefix}translated_corpus/recall"]
                    q = r[f"{prefix}translated_queries/recall"]
                    cells.append(f"{c:.3f} / {q:.3f}")
                    if best is None or c > best[1]:
                        best = (m, c)
                lines.append(f"| {size} | " + " | ".join(cells) + f" | {best[0]} |")
            lines.append(f"\nthe legacy model alone (old queries, old corpus), same reading: "
                         f"{sub[0][prefix + 'legacy/recall']:.3f}")
        if "label_ceiling/recall" in sub[0]:
            r2000 = [r for r in sub if r["n_cal"] == 2000]
            best = max(r2000, key=lambda r: r["label_translated_corpus/recall"])
            lines.append(
                f"label relevance (same class): ceiling Recall@10 "
                f"{best['label_ceiling/recall']:.3f}; "
                f"at 2,000 pairs best retention {best['label_translated_corpus/recall']:.3f} "
                f"(corpus, {best['method']}), legacy model "
                f"{best['label_legacy/recall']:.3f}")
    return "\n".join(lines)


def zeropair(cache, out, pairs=None, n_centroids="auto", n_runs=30):
    """Retention with 0 calibration pairs: AnchorMatcher on the shuffled pool."""
    from sklearn_latent import AnchorMatcher, ProcrustesTranslator

    _one_thread()
    spaces, labels, pairs, (pool, queries, corpus) = _split(cache, pairs)
    n_q = queries.size
    rows = []
    for legacy_name, new_name in pairs:
        L, Nw = spaces[legacy_name], spaces[new_name]
        # the two sides listed in unrelated orders: no pair is known
        shuffle = np.random.default_rng(1).permutation(POOL)
        t0, c0 = time.perf_counter(), time.process_time()
        m = AnchorMatcher(n_centroids=n_centroids, n_runs=n_runs, random_state=0)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            m.fit(L[pool], Nw[pool[shuffle]])
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        found = m.matched_pairs_
        correct = float(np.mean(shuffle[found[:, 1]] == found[:, 0]))
        fwd = m.translator_
        bwd = ProcrustesTranslator("orthogonal").fit(Nw[pool[shuffle]][found[:, 1]],
                                                      L[pool][found[:, 0]])
        row = {"legacy": legacy_name, "new": new_name, "n_cal": 0, "method": "zero-pair",
               "n_found": int(len(found)), "correct": correct, "fit_wall_s": wall,
               "fit_cpu_s": cpu, "n_centroids": m.n_centroids_,
               "warnings": [str(w.message)[:200] for w in caught]}
        for csls in (None, 10):
            ranking = "" if csls is None else "csls_"
            for tag, r in _reports(Nw, L, labels, queries, corpus, corpus_translator=fwd,
                                   query_translator=bwd, k=K, csls=csls).items():
                for s_ in ("translated_corpus", "translated_queries"):
                    row[f"{ranking}{tag}{s_}/recall"] = r.retention(s_, "recall")
        rows.append(row)
        print(json.dumps(row), flush=True)
    result = {"machine": machine(), "cache": str(cache), "n_queries": int(n_q),
              "n_corpus": int(corpus.size), "rows": rows}
    Path(out).write_text(json.dumps(result, indent=1))
    return result


class _ResidualMLP:
    """A Drift-Adapter-style residual adapter, for the ``adapter`` probe only (not
    a library estimator): ``affine(x) + MLP(x)``, the affine part the library's
    ``ProcrustesTranslator("affine")``, the MLP (one GELU hidden layer, its last
    layer started at zero, so training starts from the affine map) trained on
    ``1 - cos`` with AdamW, early-stopped on a held-out tenth of the pairs."""

    def __init__(self, hidden=512, epochs=100, lr=1e-3, weight_decay=1e-4, seed=0):
        self.hidden, self.epochs, self.lr, self.wd, self.seed = (hidden, epochs, lr,
                                                                  weight_decay, seed)

    def fit(self, X, Y):
        import torch
        from sklearn_latent import ProcrustesTranslator

        g = torch.Generator().manual_seed(self.seed)
        torch.manual_seed(self.seed)
        self.base_ = ProcrustesTranslator("affine").fit(X, Y)
        Xt, Yt = torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(Y, dtype=torch.float32)
        Bt = torch.as_tensor(self.base_.transform(X), dtype=torch.float32)
        idx = torch.randperm(len(Xt), generator=g)
        val, train = idx[: len(Xt) // 10], idx[len(Xt) // 10 :]
        net = torch.nn.Sequential(torch.nn.Linear(Xt.shape[1], self.hidden), torch.nn.GELU(),
                                  torch.nn.Linear(self.hidden, Yt.shape[1]))
        torch.nn.init.zeros_(net[2].weight)
        torch.nn.init.zeros_(net[2].bias)
        opt = torch.optim.AdamW(net.parameters(), lr=self.lr, weight_decay=self.wd)

        def loss(rows):
            pred = Bt[rows] + net(Xt[rows])
            return 1.0 - torch.nn.functional.cosine_similarity(pred, Yt[rows]).mean()

        with torch.no_grad():
            best, state, self.best_epoch_ = float(loss(val)), None, -1  # -1: the affine map
        for epoch in range(self.epochs):
            for batch in train[torch.randperm(len(train), generator=g)].split(128):
                opt.zero_grad()
                loss(batch).backward()
                opt.step()
            with torch.no_grad():
                v = float(loss(val))
            if v < best:
                best, self.best_epoch_ = v, epoch
                state = {k: t.clone() for k, t in net.state_dict().items()}
        if state is None:  # no epoch beat the affine map on the held-out pairs
            torch.nn.init.zeros_(net[2].weight)
            torch.nn.init.zeros_(net[2].bias)
        else:
            net.load_state_dict(state)
        self.net_ = net
        return self

    def transform(self, X):
        import torch

        with torch.no_grad():
            X = np.asarray(X, dtype=np.float32)
            return (torch.as_tensor(self.base_.transform(X), dtype=torch.float32)
                    + self.net_(torch.as_tensor(X))).numpy()


def adapter(cache, out, pairs=None, n_cal=2000):
    """The affine map against a residual MLP adapter (:class:`_ResidualMLP`), same split."""
    from sklearn_latent import ProcrustesTranslator

    _one_thread()
    spaces, labels, pairs, (pool, queries, corpus) = _split(cache, pairs)
    cal = pool[:n_cal]
    rows = []
    for legacy_name, new_name in pairs:
        L, Nw = spaces[legacy_name], spaces[new_name]
        for name, make in (("affine", lambda: ProcrustesTranslator("affine")),
                           ("residual MLP", _ResidualMLP)):
            fwd, bwd = make().fit(L[cal], Nw[cal]), make().fit(Nw[cal], L[cal])
            row = {"legacy": legacy_name, "new": new_name, "n_cal": n_cal, "method": name,
                   "best_epochs": [getattr(t, "best_epoch_", None) for t in (fwd, bwd)]}
            for tag, r in _reports(Nw, L, labels, queries, corpus, corpus_translator=fwd,
                                   query_translator=bwd, k=K).items():
                for s_ in ("translated_corpus", "translated_queries"):
                    row[f"{tag}{s_}/recall"] = r.retention(s_, "recall")
            rows.append(row)
            print(json.dumps(row), flush=True)
    result = {"machine": machine(), "cache": str(cache), "n_cal": n_cal, "rows": rows}
    Path(out).write_text(json.dumps(result, indent=1))
    return result


def adapter_markdown(result):
    lines = [f"\n{result['cache']}, {result['n_cal']:,} calibration pairs; Recall@10 "
             "retention, translated corpus / translated queries\n",
             "| pair | map | model B's top 10 | B's top-1 in top 10 | labels | best epochs |",
             "|---|---|---|---|---|---|"]
    for r in result["rows"]:
        cells = [f"{r.get(f'{t}translated_corpus/recall', float('nan')):.3f} / "
                 f"{r.get(f'{t}translated_queries/recall', float('nan')):.3f}"
                 for t in ("", "top1_", "label_")]
        epochs = "-" if r["best_epochs"][0] is None else ", ".join(map(str, r["best_epochs"]))
        lines.append(f"| {r['legacy']} -> {r['new']} | {r['method']} | " + " | ".join(cells)
                     + f" | {epochs} |")
    return "\n".join(lines)


def zeropair_markdown(result):
    lines = ["\n| pair | pairs found | share correct | fit CPU s (wall) | reading | corpus | "
             "queries | corpus, CSLS-10 | queries, CSLS-10 |", "|---" * 9 + "|"]
    for r in result["rows"]:
        for prefix, name in (("", "top-10 overlap"), ("top1_", "top-1 in top-10"),
                             ("label_", "labels")):
            if f"{prefix}translated_corpus/recall" not in r:
                continue
            cells = [f"{r[f'{tag}{prefix}{s}/recall']:.3f}" for tag in ("", "csls_")
                     for s in ("translated_corpus", "translated_queries")]
            lines.append(f"| {r['legacy']} -> {r['new']} | {r['n_found']} | {r['correct']:.3f} "
                         f"| {r['fit_cpu_s']:.0f} ({r['fit_wall_s']:.0f}) | {name} | "
                         + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(result, out, reading="top1_", legacy=None, new=None):
    """Calibration curve: retention of the translated corpus against calibration pairs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    legacy = legacy or rows[0]["legacy"]
    new = new or rows[0]["new"]
    sub = [r for r in rows if (r["legacy"], r["new"]) == (legacy, new)]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for m in dict.fromkeys(r["method"] for r in sub):
        pts = sorted((r["n_cal"], r[f"{reading}translated_corpus/recall"])
                     for r in sub if r["method"] == m)
        ax.plot(*zip(*pts), marker="o", label=m)
    ax.axhline(sub[0][f"{reading}legacy/recall"], color="gray", ls="--",
               label="legacy model alone")
    ax.set_xscale("log")
    ax.set_xticks(SIZES, [str(x) for x in SIZES])
    ax.set_xlabel("calibration pairs")
    ax.set_ylabel("Recall@10 retention")
    ax.set_title(f"{legacy} -> {new}, translated corpus" + (
        ", re-embedding's top-1 as relevant" if reading == "top1_" else ""), fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    return out


# --------------------------------------------------------------------------
# scale
# --------------------------------------------------------------------------
_CHILD = r"""
import json, sys, time
import numpy as np, torch
torch.set_num_threads(2)
from sklearn_latent import ProcrustesTranslator
from sklearn_latent.stores import migrate_store, open_store
import faiss, lancedb  # imported before the clock starts, as the floor's torch is
mode, src, dst, chunk = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
rng = np.random.default_rng(1)
cal = open_store(src).get(np.arange(2000))
t = ProcrustesTranslator().fit(cal, cal @ np.linalg.qr(rng.normal(size=(cal.shape[1],) * 2))[0])
def hwm():  # peak RSS of this process image in KiB: getrusage's ru_maxrss also carries the
    # peak of the parent that forked us (Linux keeps it across exec), here the store writer
    return int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])
base = hwm()
t0 = time.perf_counter()
if mode == "floor":
    W = torch.from_numpy(np.ascontiguousarray(t.coef_, dtype=np.float32))
    s = 0.0
    for c in open_store(src).read_chunks(chunk):
        s += float((torch.from_numpy(c.vectors) @ W)[0, 0])
elif mode.startswith("dask"):  # the store as a dask array, 2 scheduler threads
    import os, dask, dask.array as da
    from sklearn_latent import dask as sld
    torch.set_num_threads(1)  # one per dask thread
    class Rows:  # rows of a .npy file by pread / pwrite: no mapped pages
        def __init__(self, path, shape=None):
            if shape is None:
                m = np.load(path, mmap_mode="r")
                shape, self.offset = m.shape, m.offset
            else:
                np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=shape)
                self.offset = np.load(path, mmap_mode="r").offset
            self.shape, self.dtype, self.ndim = shape, np.dtype(np.float32), 2
            self.fd = os.open(path, os.O_RDWR)
            self.row = shape[1] * 4
        def __getitem__(self, key):
            r = key[0]
            b = os.pread(self.fd, (r.stop - r.start) * self.row, self.offset + r.start * self.row)
            return np.frombuffer(b, np.float32).reshape(-1, self.shape[1])
        def __setitem__(self, key, value):
            os.pwrite(self.fd, np.ascontiguousarray(value, np.float32).tobytes(),
                      self.offset + key[0].start * self.row)
    if mode == "dask-mmap":
        X = da.from_array(np.load(src, mmap_mode="r"), chunks=(chunk, -1))
    else:
        X = da.from_array(Rows(src), chunks=(chunk, -1), asarray=False)
    Y = sld.transform(t, X)
    if mode == "dask-mmap":
        out = np.lib.format.open_memmap(dst, mode="w+", dtype=Y.dtype, shape=Y.shape)
    else:
        out = Rows(dst, Y.shape)
    with dask.config.set(scheduler="threads", num_workers=2):
        da.store(Y, out, lock=False)
    del out
else:
    migrate_store(src, dst, t, chunk_size=chunk, overwrite=True)
sec = time.perf_counter() - t0
peak = hwm()
print(json.dumps({"mode": mode, "seconds": sec, "peak_mib": peak / 1024,
                  "before_mib": base / 1024}))
"""


def scale(rows, out, repeats=2, chunk=65_536, dim=384, modes=None):
    folder = Path(tempfile.mkdtemp(prefix="bench_migration_"))
    src = folder / "store.npy"
    store = np.lib.format.open_memmap(src, mode="w+", dtype=np.float32, shape=(rows, dim))
    rng = np.random.default_rng(0)
    for s in range(0, rows, chunk):
        block = rng.normal(size=(min(chunk, rows - s), dim)).astype(np.float32)
        store[s : s + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    store.flush()
    del store
    env = dict(os.environ, OMP_NUM_THREADS="2", PYTHONPATH=str(Path(__file__).parents[1]))
    targets = {"floor": folder / "none", "faiss": folder / "new.faiss",
               "lancedb": folder / "db" / "new.lance", "npy": folder / "new.npy",
               "dask": folder / "new_dask.npy", "dask-mmap": folder / "new_dask_mmap.npy"}
    (folder / "db").mkdir()
    if modes:
        targets = {m: p for m, p in targets.items() if m in modes}
    runs = {m: [] for m in targets}
    for _ in range(repeats):
        for mode, dst in targets.items():
            res = subprocess.run([sys.executable, "-c", _CHILD, mode, str(src), str(dst),
                                  str(chunk)], env=env, capture_output=True, text=True)
            if res.returncode:
                raise RuntimeError(res.stderr)
            runs[mode].append(json.loads(res.stdout.strip().splitlines()[-1]))
            print(mode, runs[mode][-1], flush=True)
    result = {"machine": machine(), "rows": rows, "dim": dim, "chunk": chunk,
              "store_mib": rows * dim * 4 / 2**20, "runs": runs}
    Path(out).write_text(json.dumps(result, indent=1))
    for p in sorted(folder.rglob("*"), reverse=True):
        p.unlink() if p.is_file() else p.rmdir()
    folder.rmdir()
    return result


def scale_markdown(result):
    runs, rows = result["runs"], result["rows"]
    floor = min(r["seconds"] for r in runs["floor"]) if "floor" in runs else float("nan")
    lines = [f"\n{rows:,} x {result['dim']} float32 ({result['store_mib']:.0f} MiB), chunks of "
             f"{result['chunk']:,} rows, best of {len(next(iter(runs.values())))} "
             "round-robin runs\n",
             "| run | seconds | rows/s | x floor | peak RSS MiB (before the run) |",
             "|---|---|---|---|---|"]
    for mode, rs in runs.items():
        best = min(rs, key=lambda r: r["seconds"])
        lines.append(f"| {mode} | {best['seconds']:.1f} | {rows / best['seconds']:,.0f} | "
                     f"{best['seconds'] / floor:.2f} | {max(r['peak_mib'] for r in rs):.0f} "
                     f"({best['before_mib']:.0f}) |")
    return "\n".join(lines)


# --------------------------------------------------------------------------
# query latency
# --------------------------------------------------------------------------
def latency(out, dim=384, repeat=200):
    from sklearn_latent import ProcrustesTranslator

    # one thread: a query server translates many queries concurrently, and on
    # a shared machine two spinning BLAS threads only measure the contention
    _one_thread()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, dim)).astype(np.float32)
    t = ProcrustesTranslator("affine").fit(X, X @ np.linalg.qr(rng.normal(size=(dim, dim)))[0])
    W, b = t.coef_.astype(np.float32), t.intercept_.astype(np.float32)
    result = {"machine": machine(), "dim": dim, "rows": []}
    for batch in (1, 32, 1024):
        Q = rng.normal(size=(batch, dim)).astype(np.float32)
        best = {"transform": np.inf, "gemm": np.inf}
        for _ in range(5):
            for name, fn in (("transform", lambda: t.transform(Q)),
                             ("gemm", lambda: Q @ W + b)):
                t0 = time.perf_counter()
                for _ in range(repeat if batch < 1024 else 20):
                    fn()
                best[name] = min(best[name], (time.perf_counter() - t0)
                                 / (repeat if batch < 1024 else 20))
        result["rows"].append({"batch": batch, "transform_us": best["transform"] * 1e6,
                               "gemm_us": best["gemm"] * 1e6})
        print(result["rows"][-1], flush=True)
    Path(out).write_text(json.dumps(result, indent=1))
    return result


def latency_markdown(result):
    lines = ["\n| batch | transform µs / batch | µs / query | bare q @ W + b µs / batch |",
             "|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['batch']} | {r['transform_us']:.1f} | "
                     f"{r['transform_us'] / r['batch']:.2f} | {r['gemm_us']:.1f} |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=("retention", "zeropair", "adapter", "plot", "scale",
                                     "latency"))
    p.add_argument("json", nargs="?", help="plot: the retention JSON")
    p.add_argument("--n-centroids", default="auto",
                   help="zeropair: AnchorMatcher n_centroids ('auto' or an int)")
    p.add_argument("--n-runs", type=int, default=30, help="zeropair: AnchorMatcher n_runs")
    p.add_argument("--cache", default="/work/cache/migration/austen")
    p.add_argument("--pairs", default=None, help="LEGACY:NEW,... (default: every ordered pair)")
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--modes", default=None,
                   help="scale: comma-separated subset of floor,faiss,lancedb,npy,dask,dask-mmap")
    p.add_argument("--out", default=None, help="JSON results (default: /tmp/bench_migration_*)")
    args = p.parse_args(argv)
    out = args.out or f"/tmp/bench_migration_{args.what}.json"
    pairs = [tuple(x.split(":")) for x in args.pairs.split(",")] if args.pairs else None
    if args.what == "retention":
        print(retention_markdown(retention(args.cache, out, pairs)))
    elif args.what == "zeropair":
        nc = args.n_centroids if args.n_centroids == "auto" else int(args.n_centroids)
        print(zeropair_markdown(zeropair(args.cache, out, pairs, nc, args.n_runs)))
    elif args.what == "adapter":
        print(adapter_markdown(adapter(args.cache, out, pairs)))
    elif args.what == "plot":
        print(plot(json.loads(Path(args.json).read_text()), args.out or "migration_curve.png"))
    elif args.what == "scale":
        modes = args.modes.split(",") if args.modes else None
        print(scale_markdown(scale(args.rows, out, args.repeats, modes=modes)))
    else:
        print(latency_markdown(latency(out)))


if __name__ == "__main__":
    main()

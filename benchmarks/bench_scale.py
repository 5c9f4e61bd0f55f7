"""Scale and speed suite (issue 6): every operation against its baselines, in the same run.

Each case is timed round-robin with its baselines (one call of each per
round, after one warm-up round) and printed as one table row per baseline:
the case's median, the baseline's median and the median over rounds of the
per-round ratio ``case / baseline`` (below 1: the case is faster).

Cases and baselines:

- relative projection per metric (cosine, angular, euclidean, dot, l1, linf)
  through ``RelativeProjector.transform`` (numpy in and out): the bare GEMM
  ``X @ A.T`` (the limit of the GEMM metrics), naive numpy / scipy code
  (``sklearn.preprocessing.normalize`` + matmul, ``scipy.spatial.distance.cdist``),
  ``torch.cdist`` for the distances, and latentis 0.0.8 where it has the op;
- anchor selection per strategy (random, fps, kmeans, stratified): numpy
  ``choice``, a naive numpy farthest point sampling, scikit-learn's ``KMeans``
  (k-means++, one init, 20 iterations), per-class numpy ``choice``;
- translator fit per method (orthogonal, scaled, linear, affine): the floor
  ``X^T Y`` plus one SVD of it (float32 and float64), ``scipy.linalg.orthogonal_procrustes``,
  latentis ``svd_align_state`` / ``lstsq_align_state``;
- ``partial_fit`` over a stream of chunks: the chunks' ``X^T Y`` GEMMs;
- IRP transform: the GEMM ``R @ P`` of the same shape;
- peak memory of ``transform`` with ``batch_size="auto"`` from a read-only
  memmap into an ``out=`` memmap (fresh process; anonymous memory sampled).

latentis 0.0.8 (optional): its dependencies pull a second torch, so install
it and its light dependencies without dependencies into a folder and pass it::

    pip install --target /tmp/latentis_env --no-deps latentis==0.0.8 GitPython gitdb \\
        smmap python-dotenv backports.strenum faiss-cpu lightning torchmetrics \\
        lightning-utilities fire
    python benchmarks/bench_scale.py --latentis /tmp/latentis_env

Run from the repository root::

    python benchmarks/bench_scale.py            # issue sizes (long on 2 cores)
    python benchmarks/bench_scale.py --quick    # smoke sizes
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's package, not an installed one
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import scipy.linalg  # noqa: E402
import scipy.spatial.distance  # noqa: E402
import torch  # noqa: E402
from _common import (  # noqa: E402
    emit,
    machine_description,
    median_ratio,
    paired_times,
    summary,
    table,
)
from sklearn.cluster import KMeans  # noqa: E402
from sklearn.preprocessing import normalize  # noqa: E402

import sklearn_latent  # noqa: E402
from sklearn_latent import (  # noqa: E402
    InverseRelativeProjector,
    ProcrustesTranslator,
    RelativeProjector,
    select_anchors,
)

MB = 1024.0**2
METRICS = ("cosine", "angular", "euclidean", "dot", "l1", "linf")
STRATEGIES = ("random", "fps", "kmeans", "stratified")
METHODS = ("orthogonal", "scaled", "linear", "affine")


def load_latentis(path):
    """latentis 0.0.8's pure-torch functions, or the reason they are not available."""
    if not path:
        return None, "not run (pass --latentis DIR, see the module docstring)"
    sys.path.insert(0, str(path))
    # latentis.data.utils imports transformers.BatchEncoding for type hints only.
    sys.modules.setdefault("transformers", types.SimpleNamespace(BatchEncoding=dict))
    try:
        import latentis  # noqa: F401
        from latentis.transform import projection as P
        from latentis.transform.translate import functional as T
    except Exception as exc:  # an optional baseline must not stop the suite
        return None, f"not available: {type(exc).__name__}: {exc}"
    return {"P": P, "T": T}, "latentis 0.0.8 from " + str(path)


def rows_for(name, fns, rounds, device):
    """Time ``fns`` (the case first) round-robin; one row per baseline."""
    ts = paired_times(fns, repeat=rounds, device=device)
    names = list(fns)
    case = names[0]
    med = {k: float(np.median(v)) for k, v in ts.items()}
    out = []
    for base in names[1:]:
        out.append([name, f"{med[case]:.4f}", base, f"{med[base]:.4f}",
                    f"{median_ratio(ts[case], ts[base]):.2f}"])
    if len(names) == 1:
        out.append([name, f"{med[case]:.4f}", "-", "-", "-"])
    return out


HEADER = ["case", "median s", "baseline", "baseline median s", "ratio case / baseline"]


def bench_relative(args, X, A, lat, device):
    idx = np.arange(args.k)  # the anchors are the first k rows of X
    Xt, At = torch.from_numpy(X), torch.from_numpy(A)
    X64, A64 = X.astype(np.float64), A.astype(np.float64)
    rows, checks = [], []
    for metric in METRICS:
        est = RelativeProjector(anchors=idx, metric=metric, center=False, device=device).fit(X)
        fns = {f"RelativeProjector({metric})": lambda est=est: est.transform(X),
               "GEMM X @ A.T (torch)": lambda: Xt @ At.T}
        if metric in ("cosine", "angular"):
            def naive(angular=metric == "angular"):
                C = normalize(X) @ normalize(A).T
                return np.arccos(np.clip(C, -1, 1)) if angular else C
        elif metric == "dot":
            def naive():
                return X @ A.T
        else:
            scipy_name = {"euclidean": "euclidean", "l1": "cityblock", "linf": "chebyshev"}[metric]

            def naive(scipy_name=scipy_name):
                return scipy.spatial.distance.cdist(X, A, scipy_name)
        fns["naive numpy/scipy"] = naive
        if metric in ("euclidean", "l1", "linf"):
            p = {"euclidean": 2.0, "l1": 1.0, "linf": float("inf")}[metric]
            fns[f"torch.cdist(p={p})"] = lambda p=p: torch.cdist(Xt, At, p=p)
        if lat is not None:
            P = lat["P"]
            fn = {"cosine": P.cosine_proj, "angular": P.angular_proj,
                  "euclidean": P.euclidean_proj, "l1": getattr(P, "l1_proj", None)}.get(metric)
            if fn is not None:
                fns["latentis 0.0.8"] = lambda fn=fn: fn(Xt, anchors=At)
        rows += rows_for(f"relative {metric}", fns, args.repeat, device)
        ref = naive() if metric not in ("l1", "linf") else scipy.spatial.distance.cdist(
            X64, A64, "cityblock" if metric == "l1" else "chebyshev")
        err = np.abs(est.transform(X) - ref).max() / max(np.abs(ref).max(), 1e-30)
        checks.append(f"{metric} {err:.1e}")
    return rows, "max |ours - naive| / max |naive|: " + ", ".join(checks)


def naive_fps(X, k, rng):
    """Farthest point sampling in plain numpy: one distance pass per anchor."""
    idx = [int(rng.integers(X.shape[0]))]
    d = np.full(X.shape[0], np.inf, dtype=X.dtype)
    for _ in range(k - 1):
        diff = X - X[idx[-1]]
        d = np.minimum(d, np.einsum("ij,ij->i", diff, diff))
        idx.append(int(np.argmax(d)))
    return np.asarray(idx)


def bench_anchors(args, X, device):
    Xa = X[: args.anchor_n]
    y = np.arange(Xa.shape[0]) % 10
    k = args.k
    rows = []
    for strategy in STRATEGIES:
        case = {f"select_anchors({strategy})": lambda s=strategy: select_anchors(
            Xa, k, s, y=y, random_state=0, device=device)}
        if strategy == "random":
            base = {"numpy choice": lambda: np.sort(
                np.random.default_rng(0).choice(len(Xa), k, replace=False))}
        elif strategy == "fps":
            base = {"naive numpy fps": lambda: naive_fps(Xa, k, np.random.default_rng(0))}
        elif strategy == "kmeans":
            base = {"sklearn KMeans(k-means++, n_init=1, max_iter=20)": lambda: KMeans(
                k, n_init=1, max_iter=20, random_state=0).fit(Xa)}
        else:
            def base_fn():
                rng = np.random.default_rng(0)
                return np.concatenate([rng.choice(np.flatnonzero(y == c), k // 10, replace=False)
                                       for c in range(10)])
            base = {"numpy choice per class": base_fn}
        rows += rows_for(f"anchors {strategy}", {**case, **base}, args.anchor_repeat, device)
    return rows


def bench_translate(args, X, lat, device):
    n = args.fit_n
    Xf = X[:n]
    rng = np.random.default_rng(1)
    Q = np.linalg.qr(rng.standard_normal((args.d, args.d)))[0].astype(np.float32)
    Y = Xf @ Q + 0.01 * rng.standard_normal(Xf.shape, dtype=np.float32)
    Xt, Yt = torch.from_numpy(Xf), torch.from_numpy(Y)
    X64, Y64 = Xt.double(), Yt.double()
    floors = {
        "floor X^T Y + SVD (float32)": lambda: torch.linalg.svd(Xt.T @ Yt),
        "floor X^T Y + SVD (float64)": lambda: torch.linalg.svd(X64.T @ Y64),
        "scipy orthogonal_procrustes": lambda: scipy.linalg.orthogonal_procrustes(Xf, Y),
    }
    rows = []
    for method in METHODS:
        est = ProcrustesTranslator(method, device=device)
        fns = {f"ProcrustesTranslator({method}).fit": lambda est=est: est.fit(Xf, Y), **floors}
        if lat is not None and method == "orthogonal":
            fns["latentis svd_align_state"] = lambda: lat["T"].svd_align_state(Xt, Yt)
        if lat is not None and method == "linear":
            fns["latentis lstsq_align_state"] = lambda: lat["T"].lstsq_align_state(Xt, Yt)
        rows += rows_for(f"fit {method} (n={n})", fns, args.repeat, device)
    return rows


def bench_stream(args, X, device):
    chunk = args.chunk
    n = min(args.stream_n, X.shape[0])
    rng = np.random.default_rng(2)
    Y = X[:n] @ np.linalg.qr(rng.standard_normal((args.d, args.d)))[0].astype(np.float32)
    Xt, Yt = torch.from_numpy(X[:n]), torch.from_numpy(Y)

    def stream():
        est = ProcrustesTranslator(device=device)
        for s in range(0, n, chunk):
            est.partial_fit(X[s : s + chunk], Y[s : s + chunk])
        return est

    def floor():
        return [Xt[s : s + chunk].double().T @ Yt[s : s + chunk].double()
                for s in range(0, n, chunk)]

    return rows_for(f"partial_fit stream ({n} rows, chunks of {chunk})",
                    {"partial_fit stream": stream, "floor: float64 X^T Y per chunk": floor},
                    args.repeat, device)


def bench_irp(args, X, device):
    Y = X[: args.n]
    irp = InverseRelativeProjector(args.k, random_state=0, device=device).fit(Y)
    R = RelativeProjector(anchors=irp.anchors_).fit(Y).transform(Y)
    Rt, P = torch.from_numpy(R), torch.from_numpy(irp.inverse_)
    fns = {"InverseRelativeProjector.transform": lambda: irp.transform(R),
           "GEMM R @ P (torch)": lambda: Rt @ P}
    return rows_for("IRP transform", fns, args.repeat, device)


def memory_child(n, d, k, folder):
    """Fresh process: peak anonymous memory of a memmap -> memmap transform with "auto"."""
    rng = np.random.default_rng(0)
    Xm = np.lib.format.open_memmap(Path(folder) / "X.npy", "w+", np.float32, (n, d))
    block = rng.standard_normal((65536, d), dtype=np.float32)
    for s in range(0, n, 65536):
        Xm[s : s + 65536] = block[: min(65536, n - s)]
    Xm.flush()
    est = RelativeProjector(k, batch_size="auto", random_state=0).fit(block[: max(k, 20000)])
    del Xm, block
    Xm = np.load(Path(folder) / "X.npy", mmap_mode="r")
    out = np.lib.format.open_memmap(Path(folder) / "R.npy", "w+", np.float32, (n, k))
    est.transform(Xm[:1000])  # warm up

    def anon():
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
        return 0

    before, peak, done = anon(), [0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], anon())
            time.sleep(0.005)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    t0 = time.perf_counter()
    est.transform(Xm, out=out)
    seconds = time.perf_counter() - t0
    done.set()
    th.join()
    rows = sklearn_latent._backend.auto_batch_rows(d, k, 4, n)
    return {"extra": max(peak[0], anon()) - before, "seconds": seconds, "rows": rows}


def bench_memory(args):
    with tempfile.TemporaryDirectory(dir=args.tmp) as folder:
        cmd = [sys.executable, __file__, "--memory-child",
               json.dumps([args.mem_n, args.d, args.k, folder])]
        res = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True)
                         .stdout.strip().splitlines()[-1])
    chunk = res["rows"] * (args.d + args.k) * 4
    summary("memory", f"RelativeProjector.transform, memmap -> out= memmap, {args.mem_n:,} x "
            f"{args.d} onto {args.k:,}, batch_size='auto' ({res['extra'] / MB:.0f} MB extra)",
            res["extra"] / chunk, f"one chunk: {res['rows']:,} rows x (d + k) x 4 bytes = "
            f"{chunk / MB:.0f} MB", out=args.out, quick=args.quick, measure="memory")
    return (
        f"memmap ({args.mem_n} x {args.d} float32, {args.mem_n * args.d * 4 / MB:.0f} MB, "
        f"mode 'r') -> out= memmap ({args.mem_n} x {args.k}), batch_size='auto' "
        f"(working_memory 1024 MiB: {res['rows']} rows, chunk = rows x (d + k) x 4 = "
        f"{chunk / MB:.0f} MB): peak anonymous memory (RssAnon, sampled every 5 ms) "
        f"{res['extra'] / MB:.0f} MB = {res['extra'] / chunk:.2f} chunks beyond the "
        f"memmaps, {res['seconds']:.1f} s."
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--d", type=int, default=768)
    parser.add_argument("--k", type=int, default=1000)
    parser.add_argument("--anchor-n", type=int, default=20_000)
    parser.add_argument("--fit-n", type=int, default=100_000)
    parser.add_argument("--stream-n", type=int, default=100_000)
    parser.add_argument("--chunk", type=int, default=10_000)
    parser.add_argument("--mem-n", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--anchor-repeat", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--latentis", default=os.environ.get("LATENTIS_PATH"))
    parser.add_argument("--only", nargs="*", default=None,
                        choices=["relative", "anchors", "translate", "stream", "irp", "memory"])
    parser.add_argument("--tmp", default=None, help="folder for the memmap files")
    parser.add_argument("--quick", action="store_true", help="small smoke sizes")
    parser.add_argument("--out", default=None, help="also append the report to this file")
    parser.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child is not None:
        print(json.dumps(memory_child(*json.loads(args.memory_child))))
        return
    if args.quick:
        args.n, args.d, args.k = 2_000, 64, 100
        args.anchor_n = args.fit_n = args.stream_n = 2_000
        args.chunk, args.mem_n, args.repeat = 500, 20_000, 2
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device} was given but CUDA is not available")
    only = set(args.only or ["relative", "anchors", "translate", "stream", "irp", "memory"])
    lat, lat_note = load_latentis(args.latentis)

    cmd = "python benchmarks/bench_scale.py " + " ".join(sys.argv[1:] if argv is None else argv)
    emit(f"### bench_scale.py ({datetime.datetime.now().isoformat(timespec='minutes')})\n",
         args.out)
    emit(f"- command: `{cmd.strip()}`", args.out)
    emit(f"- machine: {machine_description(device)}", args.out)
    emit(f"- sizes: n={args.n}, d={args.d}, k={args.k}, float32, device={device}; "
         f"{args.repeat} round-robin rounds (anchors: {args.anchor_repeat}) after one warm-up",
         args.out)
    emit(f"- latentis: {lat_note}\n", args.out)
    n_data = max(args.n, args.fit_n, args.stream_n, args.anchor_n)
    X = np.random.default_rng(0).standard_normal((n_data, args.d), dtype=np.float32)
    # one table per group, printed as soon as it is measured
    if "relative" in only:
        rows, note = bench_relative(args, X[: args.n], X[: args.k], lat, device)
        emit(table(HEADER, rows) + "\n", args.out)
        emit(f"- {note}\n", args.out)
    if "anchors" in only:
        emit(table(HEADER, bench_anchors(args, X, device)) + "\n", args.out)
    if "translate" in only:
        emit(table(HEADER, bench_translate(args, X, lat, device)) + "\n", args.out)
    if "stream" in only:
        emit(table(HEADER, bench_stream(args, X, device)) + "\n", args.out)
    if "irp" in only:
        emit(table(HEADER, bench_irp(args, X, device)) + "\n", args.out)
    if "memory" in only:
        emit("- memory: " + bench_memory(args), args.out)
    emit(f"- load average at the end: {'%.1f / %.1f / %.1f' % os.getloadavg()}\n", args.out)


if __name__ == "__main__":
    main()

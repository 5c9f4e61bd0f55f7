"""Foundation benchmarks (issue 2): relative projection, anchor selection, chunked memory.

1. Relative projection of an (n, d) float32 matrix onto k anchors against the
   bare GEMM ``X @ A.T`` of the same shape, measured round-robin in the same
   run (targets: cosine <= 1.15x, euclidean <= 1.3x the GEMM), through the
   estimator and through ``functional.relative_projection`` on tensors.
2. Anchor selection of k anchors by ``random``, ``fps`` and ``kmeans``.
3. Peak memory of ``transform`` on a (mem_n, d) float32 matrix with and
   without ``batch_size``, each in a fresh subprocess: peak RSS (VmHWM) minus
   the RSS just before the call minus the output (on CUDA: peak allocated GPU
   memory minus input and output).

Run from the repository root::

    python benchmarks/bench_relative.py            # default sizes
    python benchmarks/bench_relative.py --quick    # small smoke sizes
    python benchmarks/bench_relative.py --device cuda
"""

import argparse
import datetime
import gc
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's package, not an installed one
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from _common import (  # noqa: E402
    emit,
    machine_description,
    median_time,
    median_ratio,
    paired_times,
    peak_rss_bytes,
    reset_peak_rss,
    rss_bytes,
    sync,
    summary,
    table,
    times,
)

import sklearn_latent  # noqa: E402
from sklearn_latent import RelativeProjector, select_anchors  # noqa: E402
from sklearn_latent import functional as F  # noqa: E402

MB = 1024.0**2


def make_data(n, d, seed=0, block=65536):
    """(n, d) float32 standard normal rows; beyond ``block`` rows the block is repeated.

    Repeating keeps the 10^6-row memory benchmark quick to set up; timing and
    memory do not depend on the values.
    """
    rng = np.random.default_rng(seed)
    if n <= 4 * block:
        return rng.standard_normal((n, d), dtype=np.float32)
    base = rng.standard_normal((block, d), dtype=np.float32)
    X = np.empty((n, d), dtype=np.float32)
    for start in range(0, n, block):
        stop = min(start + block, n)
        X[start:stop] = base[: stop - start]
    return X


def on_device(X, device):
    """Input as the estimator gets it: numpy on CPU, a tensor already on a GPU."""
    return X if device.type == "cpu" else torch.from_numpy(X).to(device)


def bench_projection(args, device, X):
    Xin = on_device(X, device)
    Xt = Xin if isinstance(Xin, torch.Tensor) else torch.from_numpy(X)
    fitted = {}
    for name, metric, center in [
        ("cosine, center=True", "cosine", True),
        ("cosine, center=False", "cosine", False),
        ("euclidean", "euclidean", True),
    ]:
        fitted[name] = RelativeProjector(
            args.k, metric=metric, center=center, random_state=0
        ).fit(Xin)
    anchors = torch.from_numpy(fitted["cosine, center=True"].anchors_).to(device)
    center = anchors.mean(dim=0)

    def gemm():
        return Xt @ anchors.T

    fns = {"GEMM X @ A.T": gemm}
    for name, est in fitted.items():
        fns[f"RelativeProjector({name}).transform"] = lambda est=est: est.transform(Xin)
    fns["F.relative_projection(cosine, center)"] = lambda: F.relative_projection(
        Xt, anchors, "cosine", center=center
    )
    fns["F.relative_projection(cosine)"] = lambda: F.relative_projection(Xt, anchors, "cosine")
    fns["F.relative_projection(euclidean)"] = lambda: F.relative_projection(
        Xt, anchors, "euclidean"
    )
    a_hat = F._safe_normalize(anchors - center)
    # The unblocked formula (what functional did before issue 2): two X-sized temporaries.
    fns["naive cosine: norm(X - c) @ norm(A - c).T"] = (
        lambda: F._safe_normalize(Xt - center) @ a_hat.T
    )
    a_unit = F._safe_normalize(anchors)
    fns["naive cosine: norm(X) @ norm(A).T"] = lambda: F._safe_normalize(Xt) @ a_unit.T
    fns["torch.cdist(X, A)"] = lambda: torch.cdist(Xt, anchors)
    with torch.no_grad():
        res = paired_times(fns, repeat=args.repeat, warmup=1, device=device)
    base = res["GEMM X @ A.T"]
    peers = {  # the other implementation of the same output, measured in the same rounds
        "cosine, center=True": "naive cosine: norm(X - c) @ norm(A - c).T",
        "cosine, center=False": "naive cosine: norm(X) @ norm(A).T",
        "euclidean": "torch.cdist(X, A)",
    }
    rows = []
    for name, ts in res.items():
        ratio = median_ratio(ts, base)
        target = ""
        if args.quick:  # the targets are for the default sizes only
            target = "(smoke sizes)" if name.startswith("RelativeProjector") else ""
        elif name.startswith("RelativeProjector(cosine"):
            target = "<= 1.15" + (" met" if ratio <= 1.15 else " MISSED")
        elif name.startswith("RelativeProjector(euclidean"):
            target = "<= 1.3" + (" met" if ratio <= 1.3 else " MISSED")
        rows.append([name, f"{statistics.median(ts):.3f}", f"{ratio:.3f}", target])
        if name.startswith("RelativeProjector("):
            case = name[len("RelativeProjector("):-len(").transform")]
            summary("relative projection, per metric",
                    f"{case}, {args.n:,} x {args.d} onto {args.k:,}", ratio,
                    "bare GEMM X @ A.T (same shapes, same run)",
                    median_ratio(ts, res[peers[case]]), peers[case],
                    out=args.out, quick=args.quick)
    return table(["operation", "median s", "ratio to GEMM (median of rounds)", "target"], rows)


def bench_anchors(args, device, X):
    Xin = on_device(X, device)
    rows = []
    for method in ("random", "fps", "kmeans"):
        ts = times(
            lambda: select_anchors(Xin, args.k, method, random_state=0),
            repeat=args.anchor_repeat, warmup=0, device=device,
        )
        rows.append([method, f"{statistics.median(ts):.3f}", len(ts)])
    # fps makes k - 1 passes over X, each one matrix-vector product: its floor.
    Xt = Xin if isinstance(Xin, torch.Tensor) else torch.from_numpy(X)
    v = Xt[0].clone()
    gemv = median_time(lambda: Xt @ v, repeat=5, device=device)
    rows.append([f"(floor of fps: {args.k - 1} x GEMV X @ v)", f"{(args.k - 1) * gemv:.3f}", 5])
    return table(["select_anchors method", "median s", "runs"], rows)


def memory_child(n, d, k, batch_size, device):
    """Runs in a fresh process: peak memory of one transform beyond input and output."""
    device = torch.device(device)
    X = make_data(n, d)
    est = RelativeProjector(k, batch_size=batch_size, random_state=0).fit(X[: max(k, 20000)])
    if device.type == "cuda":
        Xin = torch.from_numpy(X).to(device)
        del X
        est.set_params(device=device)
        est.transform(Xin[:1000])  # warm up kernels and caches
        sync(device)
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        t0 = time.perf_counter()
        R = est.transform(Xin)
        sync(device)
        seconds = time.perf_counter() - t0
        out_bytes = R.numel() * R.element_size()
        extra = torch.cuda.max_memory_allocated(device) - before - out_bytes
        how = "torch.cuda.max_memory_allocated"
    else:
        est.transform(X[:1000])  # warm up allocator, threads, fitted tensors
        gc.collect()
        exact = reset_peak_rss()
        before = rss_bytes()
        t0 = time.perf_counter()
        R = est.transform(X)
        seconds = time.perf_counter() - t0
        out_bytes = R.nbytes
        extra = peak_rss_bytes() - before - out_bytes
        how = "VmHWM reset before the call" if exact else "VmHWM (not resettable here)"
    return {"extra_bytes": int(extra), "out_bytes": int(out_bytes), "seconds": seconds, "how": how}


def bench_memory(args):
    rows = []
    how = set()
    itemsize = 4
    for batch_size in [*args.batch_sizes, None]:
        cmd = [
            sys.executable, __file__, "--memory-child",
            json.dumps([args.mem_n, args.d, args.mem_k, batch_size, args.device]),
        ]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        res = json.loads(out.strip().splitlines()[-1])
        how.add(res["how"])
        extra = res["extra_bytes"]
        if batch_size is None:
            chunk = "-"
            units = f"{extra / res['out_bytes']:.3f} x output"
            ratio, floor = extra / res["out_bytes"], f"the output ({res['out_bytes'] / MB:.0f} MB)"
        else:
            chunk_bytes = batch_size * (args.d + args.mem_k) * itemsize
            chunk = f"{chunk_bytes / MB:.0f}"
            units = f"{extra / chunk_bytes:.2f} chunks"
            ratio, floor = extra / chunk_bytes, f"one input + one output chunk ({chunk} MB)"
        summary("memory", f"RelativeProjector.transform, {args.mem_n:,} x {args.d} onto "
                f"{args.mem_k:,}, batch_size={'None' if batch_size is None else f'{batch_size:,}'}"
                f" ({extra / MB:.0f} MB extra)", ratio, floor,
                out=args.out, quick=args.quick, measure="memory")
        rows.append([
            "None" if batch_size is None else batch_size, chunk,
            f"{extra / MB:.0f}", units, f"{res['seconds']:.1f}",
        ])
    note = (
        f"input {args.mem_n} x {args.d} float32 = {args.mem_n * args.d * itemsize / MB:.0f} MB, "
        f"output {args.mem_n} x {args.mem_k} = {args.mem_n * args.mem_k * itemsize / MB:.0f} MB; "
        "chunk = batch_size x (d + k) x 4 bytes (one input and one output chunk); "
        f"measured by {', '.join(sorted(how))}."
    )
    return note + "\n\n" + table(
        ["batch_size", "chunk MB", "peak extra MB", "peak extra", "transform s"], rows
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--d", type=int, default=768)
    parser.add_argument("--k", type=int, default=1000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeat", type=int, default=3,
                        help="rounds of the projection timings (median reported)")
    parser.add_argument("--anchor-repeat", type=int, default=1)
    parser.add_argument("--mem-n", type=int, default=1_000_000)
    parser.add_argument("--mem-k", type=int, default=None, help="anchors in the memory runs")
    parser.add_argument("--batch-sizes", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--skip", nargs="*", default=[],
                        choices=["projection", "anchors", "memory"])
    parser.add_argument("--quick", action="store_true", help="small smoke sizes")
    parser.add_argument("--out", default=None, help="also append the report to this file")
    parser.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child is not None:
        print(json.dumps(memory_child(*json.loads(args.memory_child))))
        return
    if args.quick:
        args.n, args.d, args.k, args.mem_n = 5_000, 64, 100, 50_000
        args.batch_sizes = [1_000, 10_000]
        args.repeat = min(args.repeat, 3)
    args.mem_k = args.mem_k or args.k
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device} was given but CUDA is not available")

    cmd = "python benchmarks/bench_relative.py " + " ".join(sys.argv[1:] if argv is None else argv)
    emit(f"### bench_relative.py ({datetime.date.today().isoformat()})\n", args.out)
    emit(f"- command: `{cmd.strip()}`", args.out)
    emit(f"- machine: {machine_description(device)}", args.out)
    emit(f"- sklearn_latent from {Path(sklearn_latent.__file__).parent}", args.out)
    emit(f"- sizes: n={args.n}, d={args.d}, k={args.k}, float32, device={device}\n", args.out)
    X = make_data(args.n, args.d) if {"projection", "anchors"} - set(args.skip) else None
    if "projection" not in args.skip:
        emit(f"Relative projection, {args.repeat} round-robin rounds after one warm-up:\n",
             args.out)
        emit(bench_projection(args, device, X) + "\n", args.out)
    if "anchors" not in args.skip:
        emit(f"Anchor selection of k={args.k} from n={args.n}:\n", args.out)
        emit(bench_anchors(args, device, X) + "\n", args.out)
    if "memory" not in args.skip:
        del X
        emit(f"Peak memory of transform, n={args.mem_n}, k={args.mem_k}:\n", args.out)
        emit(bench_memory(args) + "\n", args.out)


if __name__ == "__main__":
    main()

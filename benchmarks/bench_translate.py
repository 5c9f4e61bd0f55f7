"""Benchmark of ProcrustesTranslator: fit cost against its floor, and streaming.

1. ``fit`` on ``n x d`` paired float32 rows (default 20,000 x 768) for every
   method, median of ``--repeats`` runs, divided by the floor measured in the
   same run: one ``X^T Y`` GEMM plus one ``d x d`` SVD.  The floor is reported
   twice: with the float64 GEMM and SVD (what float64-accurate statistics
   need, see the issue) and with the float32 GEMM and SVD (the input dtype).
2. ``partial_fit`` throughput over a ``--stream-rows`` stream (default
   2,000,000 x 768) in chunks of ``--chunk`` rows generated on the fly
   (generation not timed), with the peak resident memory at chunk 10 and at
   the end (and the CUDA peak allocation on a GPU), which must not grow.

Results are appended as a markdown section to ``--out``.

Usage::

    python benchmarks/bench_translate.py                       # CPU, full sizes
    python benchmarks/bench_translate.py --device cuda
    python benchmarks/bench_translate.py --stream-rows 0       # fit only
"""

import argparse
import datetime
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from sklearn_latent import ProcrustesTranslator  # noqa: E402
from sklearn_latent import functional as F  # noqa: E402
from _common import _command, summary  # noqa: E402

METHODS = ("orthogonal", "scaled", "linear", "affine", "lowrank")


def machine():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = next(
            (ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")),
            platform.processor(),
        )
    except (OSError, subprocess.CalledProcessError):
        model = platform.processor() or "unknown CPU"
    desc = f"{model}, nproc={os.cpu_count()}, torch threads={torch.get_num_threads()}"
    if torch.cuda.is_available():
        desc += f", GPU: {torch.cuda.get_device_name()}"
    try:
        desc += f", load avg {os.getloadavg()[0]:.1f}"
    except OSError:
        pass
    return desc


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def rss_peak_mb():
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return peak / 1024


def rss_now_mb():
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return float("nan")


def make_pair(n, d, device, gen, Q):
    X = torch.randn(n, d, generator=gen, device=device, dtype=torch.float32)
    Y = X @ Q + 0.1 * torch.randn(n, d, generator=gen, device=device, dtype=torch.float32)
    return X, Y


def once(fn, device):
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def bench_fit(args, device, lines):
    """Floor and fits measured interleaved, repeat by repeat, so that load drift on a
    shared machine hits both; the ratio is the median of the per-repeat ratios."""
    gen = torch.Generator(device=device).manual_seed(0)
    Q = torch.linalg.qr(torch.randn(args.d, args.d, generator=gen, device=device)).Q
    X, Y = make_pair(args.n, args.d, device, gen, Q)
    X64, Y64 = X.double(), Y.double()
    M64 = X64.T @ Y64
    M32 = M64.float()
    # numpy input on CPU (the common case), tensors on a GPU
    Xin, Yin = (X.cpu().numpy(), Y.cpu().numpy()) if device.type == "cpu" else (X, Y)
    kw = {"device": device} if device.type == "cuda" else {}
    steps = {
        "gemm64": lambda: X64.T @ Y64,
        "svd64": lambda: torch.linalg.svd(M64, full_matrices=False),
        "gemm32": lambda: X.T @ Y,
        "svd32": lambda: torch.linalg.svd(M32, full_matrices=False),
    }
    for method in METHODS:
        rank = 8 if method == "lowrank" else None
        steps[method] = (
            lambda m, r: lambda: ProcrustesTranslator(m, rank=r, **kw).fit(Xin, Yin)
        )(method, rank)
    peers = {}  # the best-known other implementation of each fit, on the same numpy input
    if device.type == "cpu":
        import scipy.linalg

        steps["scipy.linalg.orthogonal_procrustes"] = (
            lambda: scipy.linalg.orthogonal_procrustes(Xin, Yin))
        steps["numpy.linalg.lstsq"] = lambda: np.linalg.lstsq(Xin, Yin, rcond=None)
        peers = {"orthogonal": "scipy.linalg.orthogonal_procrustes",
                 "scaled": "scipy.linalg.orthogonal_procrustes",
                 "linear": "numpy.linalg.lstsq", "affine": "numpy.linalg.lstsq"}
    for fn in steps.values():  # warm-up: lazy library initialization, caches
        fn()
    times = {k: [] for k in steps}
    for rep in range(args.repeats):
        for k, fn in steps.items():
            times[k].append(once(fn, device))
        print(f"repeat {rep + 1}/{args.repeats}: "
              + ", ".join(f"{k} {v[-1]:.3f}" for k, v in times.items()), flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    floor64 = [a + b for a, b in zip(times["gemm64"], times["svd64"])]
    floor32 = [a + b for a, b in zip(times["gemm32"], times["svd32"])]
    lines.append(
        f"Floor, same run: X^T Y GEMM float64 {med['gemm64']:.3f} s + SVD {args.d}x{args.d} "
        f"float64 {med['svd64']:.3f} s = **{statistics.median(floor64):.3f} s**; float32: GEMM "
        f"{med['gemm32']:.3f} s + SVD {med['svd32']:.3f} s = {statistics.median(floor32):.3f} s.\n"
    )
    lines.append("| method | fit median (s) | ratio to float64 floor | ratio to float32 floor |")
    lines.append("|---|---|---|---|")
    for method in METHODS:
        r64 = statistics.median(t / f for t, f in zip(times[method], floor64))
        r32 = statistics.median(t / f for t, f in zip(times[method], floor32))
        peer = peers.get(method)
        rp = (statistics.median(t / p for t, p in zip(times[method], times[peer]))
              if peer else "-")
        summary("translation fit and stream", f"ProcrustesTranslator({method!r}).fit, "
                f"{args.n:,} x {args.d} pairs", r64, "float64 XᵀY GEMM + SVD", rp,
                f"{peer} (float32)" if peer else "-", out=args.out,
                quick=args.quick, note=f"{r32:.2f} x the float32 floor")
        lines.append(f"| {method} | {med[method]:.3f} | {r64:.2f} | {r32:.2f} |")
    for peer in sorted(set(peers.values())):
        lines.append(f"| peer: {peer} | {med[peer]:.3f} | "
                     f"{statistics.median(t / f for t, f in zip(times[peer], floor64)):.2f} | "
                     f"{statistics.median(t / f for t, f in zip(times[peer], floor32)):.2f} |")
    lines.append("")
    return med


def bench_stream(args, device, lines):
    gen = torch.Generator(device=device).manual_seed(1)
    Q = torch.linalg.qr(torch.randn(args.d, args.d, generator=gen, device=device)).Q
    n_chunks = args.stream_rows // args.chunk
    tr = ProcrustesTranslator(args.stream_method, device=device if device.type == "cuda" else None,
                              rank=8 if args.stream_method == "lowrank" else None)
    gram = args.stream_method in ("linear", "affine", "lowrank")
    busy = 0.0
    floor = 0.0
    at10 = None
    rss10 = None
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for i in range(n_chunks):
        X, Y = make_pair(args.chunk, args.d, device, gen, Q)
        if device.type == "cpu":
            X, Y = X.numpy(), Y.numpy()
        sync(device)
        t0 = time.perf_counter()
        tr.partial_fit(X, Y)
        sync(device)
        busy += time.perf_counter() - t0
        # the floor, interleaved on the same chunk: its float64 statistics alone
        Xt, Yt = torch.as_tensor(X), torch.as_tensor(Y)
        sync(device)
        t0 = time.perf_counter()
        F.translation_stats(Xt, Yt, gram=gram)
        sync(device)
        floor += time.perf_counter() - t0
        del X, Y, Xt, Yt
        if i + 1 == min(10, n_chunks):
            at10 = rss_peak_mb()
            rss10 = rss_now_mb()
            cuda10 = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else 0
        if (i + 1) % 10 == 0:
            print(f"  chunk {i + 1}/{n_chunks}: {(i + 1) * args.chunk / busy:,.0f} rows/s, "
                  f"rss {rss_now_mb():.0f} MiB", flush=True)
    rows = n_chunks * args.chunk
    t0 = time.perf_counter()
    tr.coef_  # noqa: B018 -- the lazy solve, once, at first use
    sync(device)
    solve = time.perf_counter() - t0
    end_peak, end_rss = rss_peak_mb(), rss_now_mb()
    msg = (
        f"partial_fit ({args.stream_method}) over {rows:,} x {args.d} float32 rows in chunks of "
        f"{args.chunk:,}: **{rows / busy:,.0f} rows/s** ({busy:.1f} s in partial_fit, which "
        f"only accumulates; the map is solved once, lazily, at first use: {solve:.2f} s); "
        f"floor (float64 statistics of each chunk, `functional.translation_stats`, interleaved "
        f"on the same chunks) {floor:.1f} s: **ratio {busy / floor:.2f}** (with the final solve "
        f"{(busy + solve) / floor:.2f}); peak RSS {at10:.0f} MiB at chunk {min(10, n_chunks)} "
        f"vs {end_peak:.0f} MiB at the end (current RSS {rss10:.0f} -> {end_rss:.0f} MiB)"
    )
    if device.type == "cuda":
        msg += (f"; CUDA peak allocated {cuda10:.0f} MiB at chunk {min(10, n_chunks)} vs "
                f"{torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB at the end")
    lines.append(msg + ".\n")
    summary("translation fit and stream", f"ProcrustesTranslator({args.stream_method!r})"
            f".partial_fit stream, {rows:,} x {args.d} in chunks of {args.chunk:,}",
            busy / floor, "float64 statistics of the same chunks (translation_stats)",
            out=args.out, quick=args.quick,
            note=f"{(busy + solve) / floor:.2f} with the one lazy solve")
    print(msg, flush=True)


def latentis_note():
    return (
        "latentis 0.0.8 comparison: not run. `pip download latentis==0.0.8 --no-deps` works, but "
        "its requirements (lightning, torchmetrics: both require torch; faiss-cpu, GitPython, "
        "python-dotenv, fire, matplotlib) cannot be installed here without pulling a second "
        "torch into a fresh venv (a venv sharing the system torch is not allowed), and its "
        "`latentis/__init__.py` imports `git` and loads `.env` files at import time."
    )


def main(argv=None):
    p = argparse.ArgumentParser(description="Benchmark of ProcrustesTranslator.")
    p.add_argument("--n", type=int, default=20_000)
    p.add_argument("--d", type=int, default=768)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--stream-rows", type=int, default=2_000_000)
    p.add_argument("--chunk", type=int, default=50_000)
    p.add_argument("--stream-method", default="orthogonal", choices=METHODS)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=None, help="also append the report to this file")
    p.add_argument("--quick", action="store_true",
                   help="5,000 x 256 fits, 2 repeats, a 200,000-row stream")
    args = p.parse_args(argv)
    if args.quick:
        args.n, args.d, args.repeats, args.stream_rows, args.chunk = 5_000, 256, 2, 200_000, 25_000
    device = torch.device(args.device)
    cmd = _command()
    lines = [
        f"## ProcrustesTranslator, {args.device}, {datetime.date.today().isoformat()}",
        "",
        f"- machine: {machine()}",
        f"- command: `{cmd}`",
        f"- fit: {args.n:,} x {args.d} paired float32 rows, median of {args.repeats} repeats "
        "(after one warm-up), floor and fits interleaved per repeat; ratios are medians of "
        "per-repeat ratios",
        "",
    ]
    if args.n:
        bench_fit(args, device, lines)
    if args.stream_rows:
        bench_stream(args, device, lines)
    lines.append(latentis_note())
    lines.append("")
    if args.out:
        with open(args.out, "a") as f:
            f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

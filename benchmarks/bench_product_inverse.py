"""Speed of ProductInvarianceProjector components and of the inverse relative projection.

Measures, in one run and on one device:

* each component of ``ProductInvarianceProjector(metrics=("cosine", "euclidean",
  "l1", "linf"))`` on an (n, d) float32 matrix onto k anchors, against one GEMM
  of the same shape (cosine, euclidean) and against ``torch.cdist(p=1)`` /
  ``torch.cdist(p=inf)`` on the same (centered) operands (l1, linf);
* the whole ``ProductInvarianceProjector.transform`` (numpy in, numpy out);
* ``InverseRelativeProjector.transform`` of (n, k) relative representations
  into d dimensions against one GEMM of that shape (n x k @ k x d).

Usage::

    python benchmarks/bench_product_inverse.py                 # 100,000 x 768 onto 1,000
    python benchmarks/bench_product_inverse.py --n 20000 --repeats 3
    python benchmarks/bench_product_inverse.py --device cuda

Prints a markdown report (machine, date, command, medians, ratios).
"""

import argparse
import datetime
import math
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from sklearn_latent import InverseRelativeProjector, ProductInvarianceProjector  # noqa: E402
from sklearn_latent import functional as F  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import summary  # noqa: E402


def machine(device):
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = [
            line.split(":", 1)[1].strip()
            for line in out.splitlines()
            if line.startswith("Model name")
        ][0]
    except Exception:  # pragma: no cover - lscpu missing
        model = platform.processor() or "unknown"
    info = (
        f"nproc {os.cpu_count()}, CPU {model}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads, {torch.backends.cpu.get_cpu_capability()})"
    )
    if device.type == "cuda":
        info += f", GPU {torch.cuda.get_device_name(device)}"
    try:
        info += f", load average {os.getloadavg()[0]:.1f}"
    except OSError:  # pragma: no cover
        pass
    return info


def timers(fns, device, repeats):
    """Median wall time of each ``fn()``; the functions run round-robin.

    Interleaving the repeats makes the ratios between them robust to load
    changes on a shared machine.  One warm-up each on CUDA.
    """
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if device.type == "cuda":
        for fn in fns:
            fn()
        sync()
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, ts in zip(fns, times):
            sync()
            t0 = time.perf_counter()
            out = fn()
            sync()
            ts.append(time.perf_counter() - t0)
            del out
    return [statistics.median(ts) for ts in times]


def sweep_blocks(args):
    """L1 / L-inf: torch.cdist against the blocked pdist kernel at several block sizes."""
    device = torch.device(args.device)
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(args.n, args.d, generator=gen).to(device)
    A = torch.randn(args.k, args.d, generator=gen).to(device)
    blocks = (256, 512, 1024)
    print(f"### block sizes: n={args.n}, d={args.d}, k={args.k}, float32, "
          f"median of {args.repeats}\n")
    print(f"- machine: {machine(device)}")
    print(f"- date: {datetime.datetime.now().isoformat(timespec='minutes')}")
    print(f"- command: `python benchmarks/bench_product_inverse.py {' '.join(sys.argv[1:])}`")
    print("\n| kernel | L1 s | cdist / ours | L-inf s | cdist / ours |\n|---|---|---|---|---|")
    default = F._MINKOWSKI_BLOCK
    res = {}
    for p in (1.0, math.inf):
        fns = [lambda: torch.cdist(X, A, p=p)]
        for b in blocks:
            def run(b=b):
                F._MINKOWSKI_BLOCK = b
                return F._minkowski_blocked(X, A, p)
            fns.append(run)
        res[p] = timers(fns, device, args.repeats)
    F._MINKOWSKI_BLOCK = default
    names = ["torch.cdist"] + [f"pdist blocks of {b}" + (" (default)" if b == default else "")
                               for b in blocks]
    for i, name in enumerate(names):
        l1, linf = res[1.0][i], res[math.inf][i]
        print(f"| {name} | {l1:.3f} | {res[1.0][0] / l1:.2f} | {linf:.3f} | "
              f"{res[math.inf][0] / linf:.2f} |")
    print()


class _Tee:
    def __init__(self, *streams):
        self.streams = streams

    def write(self, text):
        for st in self.streams:
            st.write(text)

    def flush(self):
        for st in self.streams:
            st.flush()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--d", type=int, default=768)
    parser.add_argument("--k", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sweep-blocks", action="store_true",
                        help="only compare block sizes of the L1 / L-inf kernel with cdist")
    parser.add_argument("--quick", action="store_true", help="1,000 rows, one round")
    parser.add_argument("--out", default=None, help="also append the report to this file")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.repeats = 1_000, 1
    if args.out:  # everything printed also goes to the file
        sys.stdout = _Tee(sys.stdout, open(args.out, "a"))
    if args.sweep_blocks:
        return sweep_blocks(args)
    device = torch.device(args.device)
    n, d, k, reps = args.n, args.d, args.k, args.repeats
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(n, d, generator=gen, dtype=torch.float32) + 0.5
    A_idx = torch.randperm(n, generator=gen)[:k]
    Xd = X.to(device)
    A = Xd[A_idx.to(device)]
    mu = A.mean(dim=0)
    Xc, Ac = Xd - mu, A - mu

    print(f"### {device.type}: n={n}, d={d}, k={k}, float32, median of {reps}\n")
    print(f"- machine: {machine(device)}")
    print(f"- date: {datetime.datetime.now().isoformat(timespec='minutes')}")
    print(f"- command: `python benchmarks/bench_product_inverse.py {' '.join(sys.argv[1:])}`")
    print("\n| operation | median s | ratio |\n|---|---|---|", flush=True)

    def row(name, t, ratio):
        print(f"| {name} | {t:.4f} | {ratio} |", flush=True)

    checks = []
    X_np = X.numpy()
    # explicit anchor vectors: the normalization statistics are fitted on 20,000 rows
    proj = ProductInvarianceProjector(anchors=X_np[A_idx.numpy()], device=device)
    proj.fit(X_np[:20_000])
    with torch.no_grad():
        cos = F._relative_projector(A, "cosine", center=mu)
        euc = F._relative_projector(A, "euclidean", center=mu)
        t_gemm, t_cos, t_euc, t_prod = timers(
            [lambda: Xd @ A.T, lambda: cos(Xd), lambda: euc(Xd),
             lambda: proj.transform(X_np)], device, reps)
        row("GEMM (n x d) @ (d x k)", t_gemm, "1.00 x GEMM")
        row("component cosine", t_cos, f"{t_cos / t_gemm:.2f} x GEMM")
        row("component euclidean", t_euc, f"{t_euc / t_gemm:.2f} x GEMM")
        for metric, p in (("l1", 1.0), ("linf", math.inf)):
            project = F._relative_projector(A, metric, center=mu)
            t, t_cdist = timers(
                [lambda: project(Xd), lambda: torch.cdist(Xc, Ac, p=p)], device, reps)
            row(f"component {metric}", t,
                f"torch.cdist / ours = {t_cdist / t:.2f}; {t / t_gemm:.1f} x GEMM")
            row(f"torch.cdist(p={p})", t_cdist, f"{t_cdist / t_gemm:.1f} x GEMM")
            m = min(n, 2000)
            ref = torch.cdist(Xc[:m].double(), Ac.double(), p=p)
            checks.append(f"{metric}: max |ours - cdist(float64)| / max = "
                          f"{float((project(Xd[:m]).double() - ref).abs().max() / ref.max()):.1e}")
    row("ProductInvarianceProjector.transform (4 metrics, standard, concat; numpy)",
        t_prod, f"{t_prod / t_gemm:.1f} x GEMM (sum of components: "
        f"{(t_cos + t_euc) / t_gemm:.1f} + l1 + linf)")

    # inverse relative projection: (n, k) -> (n, d)
    # a structured target space (rank-64 signal plus noise), like real embeddings
    rng = np.random.default_rng(1)
    Y = (rng.normal(size=(5 * k, 64)) @ rng.normal(size=(64, d))
         + 0.5 * rng.normal(size=(5 * k, d))).astype(np.float32)
    irp = InverseRelativeProjector(k, random_state=0, device=device).fit(Y)
    pruned = InverseRelativeProjector(k, prune_threshold=0.7, n_subspaces=8, random_state=0,
                                      device=device).fit(Y)
    R = np.random.default_rng(2).uniform(-1, 1, size=(n, k)).astype(np.float32)
    Rd = torch.from_numpy(R).to(device)
    P = torch.from_numpy(irp.inverse_).to(device)

    def gemm():
        with torch.no_grad():
            return Rd @ P

    t_gemm2, t_irp, t_irp_t, t_pr = timers(
        [gemm, lambda: irp.transform(R), lambda: irp.transform(Rd),
         lambda: pruned.transform(Rd)], device, reps)
    row("GEMM (n x k) @ (k x d)", t_gemm2, "1.00 x GEMM")
    row("InverseRelativeProjector.transform (numpy in/out)", t_irp,
        f"{t_irp / t_gemm2:.2f} x GEMM")
    row(f"InverseRelativeProjector.transform ({device.type} tensor in/out)", t_irp_t,
        f"{t_irp_t / t_gemm2:.2f} x GEMM")
    for case, t in ((f"InverseRelativeProjector.transform, numpy, {n:,} x {k:,} -> {d}", t_irp),
                    (f"InverseRelativeProjector.transform, {device.type} tensor", t_irp_t)):
        summary("inverse projection", case, t / t_gemm2, "GEMM (n x k) @ (k x d), same run",
                out=args.out, quick=args.quick)
    sizes = [len(S) for S in pruned.anchor_subsets_]
    row(f"... pruned delta=0.7, omega=8 (subset sizes {min(sizes)}-{max(sizes)})",
        t_pr, f"{t_pr / t_gemm2:.2f} x GEMM")
    print()
    for c in checks:
        print(f"- correctness: {c}")
    print()


if __name__ == "__main__":
    main()

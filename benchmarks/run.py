"""Run every ``bench_*.py`` script in this folder and print their reports.

Usage (from the repository root; ``make bench`` calls the first form)::

    python benchmarks/run.py                 # default sizes
    python benchmarks/run.py --quick         # small sizes, a smoke test (under 5 minutes idle)
    python benchmarks/run.py --device cuda   # on a GPU
    python benchmarks/run.py --out report.md # also write the reports to a file (replaced)

Each script runs in its own process, so one's memory does not count against
another's measurements.
"""

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv=None):
    parser = argparse.ArgumentParser(description="Run all benchmarks in this folder.")
    parser.add_argument("--quick", action="store_true", help="small sizes, quickly")
    parser.add_argument("--device", default=None, help="passed to every script")
    parser.add_argument("--out", default=None,
                        help="write every report to this file (emptied first)")
    parser.add_argument("scripts", nargs="*", help="names of bench_*.py scripts (default: all)")
    args = parser.parse_args(argv)
    scripts = [HERE / s for s in args.scripts] or sorted(HERE.glob("bench_*.py"))
    extra = ["--quick"] * args.quick
    if args.device:
        extra += ["--device", args.device]
    if args.out:
        Path(args.out).write_text("")
        extra += ["--out", str(Path(args.out).resolve())]
    failed = []
    for script in scripts:
        t0 = time.perf_counter()
        rc = subprocess.run([sys.executable, str(script), *extra]).returncode
        print(f"[{script.name}: {'ok' if rc == 0 else f'FAILED rc={rc}'}, "
              f"{time.perf_counter() - t0:.0f} s]\n", flush=True)
        if rc:
            failed.append(script.name)
    if failed:
        sys.exit(f"benchmarks failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()

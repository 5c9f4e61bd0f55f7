"""Evidence for the translators' defaults on real encoders (scaling, alpha="auto").

For each directed pair of cached real-encoder embeddings, a LogisticRegression
head is trained on the target space (two thirds of the rows, seed 0) and
scores the held-out third translated from the source space; the anchors are
drawn from the training rows.  Compared: plain orthogonal Procrustes on
mean-centered anchors (a numpy reference), ProcrustesTranslator orthogonal
with ``scaling="standard"`` / ``"center"``, ``"affine"`` with ``alpha=0`` /
``"auto"`` / a fixed 30, RelativeTranslator with ``alpha=0`` / ``"auto"`` / 1.

The cache is the one of ``benchmarks/real_stitching.py`` (``<modality>_<encoder>.npy``
and ``<modality>_labels.npy``)::

    python benchmarks/real_stitching.py --modality text --cache /tmp/cache
    python benchmarks/translation_defaults.py --cache /tmp/cache --modality text \\
        --encoders minilm-l6,use-m3,minilm-l3 --pairs 2 --anchors 100,500,1000
"""

import argparse
import warnings

import numpy as np
from sklearn.linear_model import LogisticRegression

from sklearn_latent import ProcrustesTranslator, RelativeTranslator

CONFIGS = {
    "plain-procrustes": None,
    "orth-standard": dict(method="orthogonal", scaling="standard"),
    "orth-center": dict(method="orthogonal", scaling="center"),
    "affine-a0": dict(method="affine", alpha=0.0),
    "affine-auto": dict(method="affine", alpha="auto"),
    "affine-a30": dict(method="affine", alpha=30.0),
    "rel-a0": ("rel", 0.0),
    "rel-auto": ("rel", "auto"),
    "rel-a1": ("rel", 1.0),
}


def plain_procrustes(Xa, Ya):
    mx, my = Xa.mean(0), Ya.mean(0)
    U, _, Vt = np.linalg.svd((Xa - mx).T @ (Ya - my), full_matrices=False)
    R = U @ Vt
    return lambda Z: (Z - mx) @ R + my


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cache", required=True)
    p.add_argument("--modality", default="text")
    p.add_argument("--encoders", default="minilm-l6,use-m3,minilm-l3")
    p.add_argument("--pairs", type=int, default=2, help="first N directed pairs")
    p.add_argument("--anchors", default="100,500,1000")
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    names = args.encoders.split(",")
    pairs = [(a, b) for a in names for b in names if a != b][: args.pairs]
    labels = np.load(f"{args.cache}/{args.modality}_labels.npy")
    spaces = {n: np.load(f"{args.cache}/{args.modality}_{n}.npy").astype(np.float64)
              for n in names}
    perm = np.random.default_rng(0).permutation(len(labels))
    test, pool = perm[: len(labels) // 3], perm[len(labels) // 3:]
    heads = {n: LogisticRegression(max_iter=2000).fit(spaces[n][pool], labels[pool])
             for n in {t for _, t in pairs}}
    rows = []
    for k in (int(v) for v in args.anchors.split(",")):
        anc = np.random.default_rng(100).choice(pool, k, replace=False)
        scores = {name: [] for name in CONFIGS}
        for s, t in pairs:
            Xa, Ya, Xt = spaces[s][anc], spaces[t][anc], spaces[s][test]
            for name, cfg in CONFIGS.items():
                if cfg is None:
                    Yh = plain_procrustes(Xa, Ya)(Xt)
                elif isinstance(cfg, dict):
                    Yh = ProcrustesTranslator(**cfg).fit(Xa, Ya).transform(Xt)
                else:
                    Yh = RelativeTranslator(n_anchors=None, alpha=cfg[1]).fit(Xa, Ya).transform(Xt)
                scores[name].append(heads[t].score(Yh, labels[test]))
            print(k, s, t, {n: round(v[-1], 4) for n, v in scores.items()}, flush=True)
        rows.append((k, {n: float(np.mean(v)) for n, v in scores.items()}))
    print(f"\n{args.modality}, pairs {pairs}, mean accuracy over pairs\n")
    print("| anchors | " + " | ".join(CONFIGS) + " |")
    print("|---" * (len(CONFIGS) + 1) + "|")
    for k, sc in rows:
        print(f"| {k} | " + " | ".join(f"{sc[n]:.3f}" for n in CONFIGS) + " |")


if __name__ == "__main__":
    main()

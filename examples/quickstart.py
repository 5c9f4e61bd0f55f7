"""
Zero-shot stitching on scikit-learn's digits with relative representations
===========================================================================

Two encoders (the hidden ReLU layer of two MLPs trained with different seeds)
embed the same images in two unrelated spaces.  A classifier trained on the
relative representation of encoder A is applied, unchanged, to the relative
representation of encoder B computed against the same anchor images.

Run: ``make demo`` (or ``python examples/quickstart.py``).
"""

import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from threadpoolctl import threadpool_limits

from sklearn_latent import RelativeProjector


def encoder(X, y, seed, width=64):
    """The hidden layer of an MLP trained on (X, y): a map into a private latent space."""
    # small model: one BLAS thread is much faster than several contending ones
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp = MLPClassifier((width,), random_state=seed, max_iter=300).fit(X, y)
    return lambda Z: np.maximum(Z @ mlp.coefs_[0] + mlp.intercepts_[0], 0.0)


def main():
    X, y = load_digits(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(
        X / 16.0, y, test_size=0.3, random_state=0, stratify=y
    )
    enc_a, enc_b = encoder(X_tr, y_tr, seed=0), encoder(X_tr, y_tr, seed=1)
    A_tr, A_te, B_tr, B_te = enc_a(X_tr), enc_a(X_te), enc_b(X_tr), enc_b(X_te)

    # Absolute baseline: a classifier of space A fed with space B.
    with threadpool_limits(1):
        clf_abs = LogisticRegression(max_iter=2000).fit(A_tr, y_tr)

    # Relative: anchors picked in A, the same samples (indices) used in B.
    proj_a = RelativeProjector(n_anchors=300, random_state=0).fit(A_tr)
    proj_b = RelativeProjector(anchors=proj_a.anchor_indices_).fit(B_tr)
    with threadpool_limits(1):
        clf_rel = LogisticRegression(max_iter=2000).fit(proj_a.transform(A_tr), y_tr)
    stitched = make_pipeline(FrozenEstimator(proj_b), FrozenEstimator(clf_rel))

    print("zero-shot stitching on digits (10 classes, chance 0.10)")
    print(f"  absolute, A -> A : {clf_abs.score(A_te, y_te):.3f}")
    print(f"  absolute, B -> A : {clf_abs.score(B_te, y_te):.3f}   (B's embeddings into A's head)")
    print(f"  relative, A -> A : {clf_rel.score(proj_a.transform(A_te), y_te):.3f}")
    print(f"  relative, B -> A : {stitched.score(B_te, y_te):.3f}   (zero-shot, no retraining)")


if __name__ == "__main__":
    main()

"""Hidden ReLU layers of small MLPs trained on scikit-learn's digits (test helper).

Independently trained encoders of the same data: the real-data case of latent
space communication that runs offline.  Digits / 16, 70/30 stratified split
(random_state=0); encoders are cached per process.  ``fit_single_thread`` fits
small scikit-learn models with one BLAS thread (much faster on a busy 2-core
machine).
"""

import functools
import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from threadpoolctl import threadpool_limits

#: name -> (hidden width, random_state)
ENCODERS = {"A": (64, 0), "B": (64, 1), "C": (32, 2)}


@functools.lru_cache(maxsize=None)
def digits_split():
    X, y = load_digits(return_X_y=True)
    return train_test_split(X / 16.0, y, test_size=0.3, stratify=y, random_state=0)


@functools.lru_cache(maxsize=None)
def digits_encoder(name):
    """(H_train, H_test) of encoder ``name``: relu(X W + b) of its hidden layer."""
    width, seed = ENCODERS[name]
    X_train, X_test, y_train, _ = digits_split()
    # one BLAS thread: these small GEMMs are 5-10x slower when threads contend
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp = MLPClassifier((width,), random_state=seed).fit(X_train, y_train)
    W, b = mlp.coefs_[0], mlp.intercepts_[0]
    return np.maximum(X_train @ W + b, 0.0), np.maximum(X_test @ W + b, 0.0)


def fit_single_thread(estimator, X, y):
    with threadpool_limits(1):
        return estimator.fit(X, y)

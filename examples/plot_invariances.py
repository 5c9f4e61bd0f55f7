"""
Invariances of relative representations
=======================================

A relative representation describes each sample by its similarities (or
distances) to a few anchor samples.  Whatever transformation of the latent space
leaves those similarities unchanged leaves the representation unchanged: that is
why two models whose spaces differ by such a transformation become comparable.

Each similarity has its own invariances (Moschella et al. 2023; Cannistraci et
al. 2024):

==========  =====================================================  ==============================
similarity  invariant to                                           not invariant to
==========  =====================================================  ==============================
cosine      rotations, isotropic scaling (centered: translations)  anisotropic scaling
euclidean   rotations, translations                                any scaling
L1          translations, coordinate permutations, sign flips      rotations, scaling
==========  =====================================================  ==============================

Here the latent space is the hidden layer of a small MLP trained on the digits.
We transform it in several ways and measure how much each relative
representation moves: ``||R(T(X)) - R(X)|| / ||R(X)||`` (0 = invariant).
"""

# %%
# A latent space and some transformations of it
# ---------------------------------------------
import warnings

import matplotlib.pyplot as plt
import numpy as np
from scipy.stats import ortho_group
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier
from threadpoolctl import threadpool_limits

from sklearn_latent import RelativeProjector

X_digits, y_digits = load_digits(return_X_y=True)
with warnings.catch_warnings(), threadpool_limits(1):  # small model: one BLAS thread is faster
    warnings.simplefilter("ignore", ConvergenceWarning)
    mlp = MLPClassifier((64,), random_state=0).fit(X_digits / 16.0, y_digits)
X = np.maximum(X_digits / 16.0 @ mlp.coefs_[0] + mlp.intercepts_[0], 0.0)  # (1797, 64)
n, d = X.shape

rng = np.random.default_rng(0)
Q = ortho_group.rvs(d, random_state=0)
scale = np.linalg.norm(X - X.mean(0), axis=1).mean()  # typical size of the cloud
shift = rng.normal(size=d)
shift *= 2 * scale / np.linalg.norm(shift)
perm, signs = rng.permutation(d), rng.choice([-1.0, 1.0], size=d)

transforms = {
    "rotation": lambda Z: Z @ Q,
    "isotropic\nscaling (x3)": lambda Z: 3.0 * Z,
    "translation": lambda Z: Z + shift,
    "anisotropic\nscaling": lambda Z: Z * np.geomspace(0.2, 5.0, d),
    "permutation\n+ sign flips": lambda Z: Z[:, perm] * signs,
}

# %%
# Relative representations before and after
# -----------------------------------------
# The anchors are the same rows (``anchor_indices_``) before and after the
# transformation: parallel anchors.
projectors = {
    "cosine": dict(metric="cosine", center=False),
    "cosine, centered": dict(metric="cosine", center=True),
    "euclidean": dict(metric="euclidean"),
    "L1": dict(metric="l1"),
}


def relative_change(params, transform):
    before = RelativeProjector(n_anchors=100, random_state=0, **params).fit(X)
    after = RelativeProjector(anchors=before.anchor_indices_, **params).fit(transform(X))
    R, R_t = before.transform(X), after.transform(transform(X))
    return np.linalg.norm(R_t - R) / np.linalg.norm(R)


change = np.array(
    [[relative_change(p, t) for t in transforms.values()] for p in projectors.values()]
)

fig, ax = plt.subplots(figsize=(10, 4.2))
im = ax.imshow(np.log10(np.maximum(change, 1e-16)), cmap="magma_r", vmin=-16, vmax=0)
ax.set_xticks(range(len(transforms)), labels=list(transforms), fontsize=9)
ax.set_yticks(range(len(projectors)), labels=list(projectors))
for i in range(change.shape[0]):
    for j in range(change.shape[1]):
        ax.text(j, i, f"{change[i, j]:.1e}", ha="center", va="center",
                color="white" if change[i, j] > 1e-3 else "black", fontsize=9)
fig.colorbar(im, ax=ax, label="log10 relative change")
ax.set_title("How much the relative representation changes")
fig.tight_layout()

# %%
# Invariant entries are at rounding level (about 1e-16 for the similarities,
# 1e-10 for the distances, whose square root amplifies the rounding of
# nearly equal squared distances); the others move by a sizable fraction of
# the representation.  A permutation with sign flips is an orthogonal map,
# so the cosine does not see it either, while the L1 distance does not see
# the translation but does see the rotation.  Centering (the default,
# ``center=True``) is what makes the cosine translation invariant.
#
# How fast does an invariance break?
# ----------------------------------
# Sweeping the size of a translation and of an isotropic scaling shows the
# contrast: the uncentered cosine drifts with the translation, the euclidean
# and L1 representations change by ``|factor - 1|`` (the two curves
# coincide), and both cosines stay put under scaling.
sizes = np.linspace(0.0, 3.0, 7)
factors = np.geomspace(0.25, 4.0, 9)
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
styles = {"cosine": "o-", "cosine, centered": "s--", "euclidean": "^-", "L1": "x--"}
for name, params in projectors.items():
    ax1.plot(sizes, [relative_change(params, lambda Z, t=t: Z + t * shift / 2) for t in sizes],
             styles[name], label=name)
    ax2.plot(factors, [relative_change(params, lambda Z, f=f: f * Z) for f in factors],
             styles[name], label=name)
ax1.set_xlabel("translation (in units of the mean distance to the centroid)")
ax2.set_xlabel("scaling factor")
ax1.set_ylabel("relative change")
ax2.legend()
fig.tight_layout()
plt.show()

"""
The stitching matrix
====================

Five small networks are trained on the digits (different seeds, widths 32 to
128, one with two hidden layers); each embeds the images in its own latent space
(its last hidden layer).  :func:`~sklearn_latent.stitching_matrix` trains a
classifier on every space and scores it, zero-shot, on every other space's test
embeddings, brought over by each method:

- ``"absolute"``: unchanged (the baseline; undefined between different widths);
- ``"relative"``: relative representations against parallel anchors
  (Moschella et al. 2023), the head trained on the target's relative space;
- ``"orthogonal"``: orthogonal Procrustes fitted on the anchors (Maiorca et al.
  2023), the head trained on the target's own space;
- ``"inverse"``: the inverse relative projection (Maiorca et al. 2024).

:func:`~sklearn_latent.plot_stitching_matrix` draws one heatmap per method:
rows are the sources, columns the targets, the diagonal is each space's own
accuracy.
"""

# %%
# Five encoders of the digits
# ---------------------------
# :func:`~sklearn_latent.datasets.make_digits_spaces` trains them (a few
# seconds each, nothing downloaded; 100 epochs are enough here) and returns
# the embeddings of all 1797 digits together with the train/test split the
# encoders were trained on.
import warnings

import matplotlib.pyplot as plt

from sklearn_latent import plot_stitching_matrix, stitching_matrix
from sklearn_latent.datasets import make_digits_spaces

data = make_digits_spaces(max_iter=100, random_state=0)
for name, space in data.spaces.items():
    print(f"{name:>12}: width {space.shape[1]:>3}, own test accuracy {data.accuracy[name]:.3f}")

# %%
# Stitching every pair
# --------------------
# The anchors (300 training rows, the same rows in every space) and the
# split are shared by all methods; the heads are logistic regressions.
with warnings.catch_warnings():
    # The fits warn that a few ReLU units are dead (constant) on the anchors,
    # so Procrustes pins the map down on fewer dimensions than the width; the
    # messages are kept in results.attrs["warnings"].
    warnings.simplefilter("ignore", UserWarning)
    results = stitching_matrix(
        data.spaces,
        data.target,
        methods=["absolute", "relative", "orthogonal", "inverse"],
        split=(data.train, data.test),
        n_anchors=300,
        random_state=0,
    )
print(f"{len(results.attrs['warnings'])} warnings during the fits, e.g.:")
print(results.attrs["warnings"][0] if results.attrs["warnings"] else "(none)")
print(results.head(10).to_string(index=False))

# %%
# The heatmaps
# ------------
fig = plot_stitching_matrix(results)
fig.suptitle("Zero-shot stitching accuracy on digits (rows: source, columns: target)")

# %%
# Off the diagonal, the absolute spaces are incompatible even between two
# networks of the same architecture (near chance, 0.1), while relative
# representations and Procrustes translation stitch every pair, across
# widths and depths, close to the target's own accuracy.  The inverse
# relative projection, which fits each side on its own data and only shares
# the anchor indices, is close behind on most pairs.  A summary per method
# over the ordered pairs of distinct spaces (for ``"absolute"`` only the
# pairs of equal widths):
off_diagonal = results[results.source != results.target]
print(off_diagonal.groupby("method", sort=False)["accuracy"].agg(["mean", "min", "max"]))
plt.show()

"""CaSpeR on digits: does the spectral regularizer partition the latent space by class?
====================================================================================

A small MLP (``64-64-16``) is trained on sklearn's digits with cross-entropy
alone and with cross-entropy + ``lam * spectral_partition_loss`` in two settings:

- ``semi``: cross-entropy on 5 labelled digits per class, the regularizer on
  random unlabelled batches of 128 with ``n_classes=10``, 150 Adam steps;
- ``supervised``: cross-entropy on batches of 128 and the regularizer on the
  same batch (its labels give c), 5 epochs.

Reported on the held-out digits: the CaSpeR score itself (sum of the first 10
eigenvalues of the normalized Laplacian of the test set's 10-NN graph minus the
11th; lower = closer to one component per class), the eigengap
``lambda_11 - lambda_10``, a k-NN classifier's accuracy on the latents (1-NN on
the labelled digits for ``semi``, 10-NN on the training set for
``supervised``) and the head's accuracy.

Run: ``python examples/casper_digits.py`` (about a second of CPU per model).
"""

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier
from torch import nn

from sklearn_latent.nn import _knn_laplacian_eigvals, spectral_partition_loss


def digits_data():
    X, y = load_digits(return_X_y=True)
    parts = train_test_split((X / 16.0).astype(np.float32), y, test_size=0.3, stratify=y,
                             random_state=0)
    return tuple(map(torch.from_numpy, parts))  # X_tr, X_te, y_tr, y_te


def train(seed, lam, data, setting="semi", k=10):
    """Encoder, head and the rows whose labels were used, from ``torch.manual_seed(seed)``."""
    X_tr, _, y_tr, _ = data
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    enc = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 16))
    head = nn.Linear(16, 10)
    opt = torch.optim.Adam([*enc.parameters(), *head.parameters()], lr=3e-3)

    def step(loss):
        opt.zero_grad()
        loss.backward()
        opt.step()

    if setting == "semi":
        labelled = torch.cat([
            torch.nonzero(y_tr == c).ravel()[torch.randperm(int((y_tr == c).sum()), generator=g)]
            [:5] for c in range(10)
        ])
        for _ in range(150):
            loss = nn.functional.cross_entropy(head(enc(X_tr[labelled])), y_tr[labelled])
            if lam:
                b = torch.randint(len(X_tr), (128,), generator=g)  # labels unused: n_classes
                loss = loss + lam * spectral_partition_loss(enc(X_tr[b]), y_tr[b], k=k,
                                                            n_classes=10)
            step(loss)
    elif setting == "supervised":
        labelled = torch.arange(len(X_tr))
        for _ in range(5):
            for idx in torch.randperm(len(X_tr), generator=g).split(128):
                z = enc(X_tr[idx])
                loss = nn.functional.cross_entropy(head(z), y_tr[idx])
                if lam and len(idx) > k:
                    loss = loss + lam * spectral_partition_loss(z, y_tr[idx], k=k)
                step(loss)
    else:
        raise ValueError(f"setting={setting!r}; expected 'semi' or 'supervised'.")
    return enc.eval(), head.eval(), labelled


@torch.no_grad()
def evaluate(enc, head, labelled, data, setting="semi"):
    """(held-out CaSpeR score, eigengap, k-NN accuracy, head accuracy)."""
    X_tr, X_te, y_tr, y_te = data
    z_tr, z_te = enc(X_tr[labelled]), enc(X_te)
    score = float(spectral_partition_loss(z_te, y_te, k=10))
    lam = _knn_laplacian_eigvals(z_te, 10)
    gap = float(lam[10] - lam[9])
    knn = KNeighborsClassifier(1 if setting == "semi" else 10).fit(z_tr.numpy(),
                                                                   y_tr[labelled].numpy())
    knn_acc = float(knn.score(z_te.numpy(), y_te.numpy()))
    head_acc = float((head(z_te).argmax(dim=1) == y_te).float().mean())
    return score, gap, knn_acc, head_acc


def main(seeds=range(5), lam=1.0):
    torch.set_num_threads(1)
    data = digits_data()
    for setting in ("semi", "supervised"):
        print(f"\n{setting}: seed, lambda, held-out score, eigengap, k-NN acc, head acc")
        rows = {0.0: [], lam: []}
        for seed in seeds:
            for w in (0.0, lam):
                r = evaluate(*train(seed, w, data, setting), data, setting)
                rows[w].append(r)
                print(f"  {seed} {w:4.1f}  " + "  ".join(f"{v:7.3f}" for v in r))
        for w, r in rows.items():
            print(f"  mean {w:4.1f} " + "  ".join(f"{v:7.3f}" for v in np.mean(r, axis=0)))


if __name__ == "__main__":
    main()

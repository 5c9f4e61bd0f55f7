"""Zero-shot stitching of encoders and heads trained end to end with a relative layer.
===================================================================================

Two small MLP encoders are trained on sklearn's digits with different seeds
(initialization and batch order), each with its own head, in three ways:

- ``relative``: a relative layer between encoder and head
  (:class:`sklearn_latent.nn.RelativeProjection`), anchors re-embedded by the
  encoder at every step with gradients through them (Moschella et al. 2023);
- ``relative-ema``: the same layer, its anchor buffer refreshed at every step
  by an exponential moving average of the encoder's (detached) anchor
  embeddings (R3L, Ricciardi et al.);
- ``absolute``: the head on the absolute latents.

Then the encoders and heads are swapped without any further training
(encoder of seed A with head of seed B): the relative heads keep working on
the other encoder's latent space, the absolute heads do not.

Run: ``python examples/train_relative_digits.py`` (a few seconds per model
on one CPU core).
"""

import time

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

from sklearn_latent.nn import RelativeProjection

N_ANCHORS = 64
LATENT = 32


def digits_data(seed=0):
    """Digits scaled to [0, 1] as float32 tensors, stratified 70/30 split, and anchor inputs."""
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, stratify=y, random_state=seed)
    anchor_idx = np.random.default_rng(seed).choice(len(X_tr), N_ANCHORS, replace=False)
    t = torch.from_numpy
    return t(X_tr), t(X_te), t(y_tr), t(y_te), t(X_tr[anchor_idx])


def make_encoder():
    return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, LATENT))


class Head(nn.Module):
    """Classifier on the encoder's latents: relative layer + linear, or linear only."""

    def __init__(self, mode):
        super().__init__()
        self.mode = mode
        self.relative = None
        if mode != "absolute":
            momentum = 0.1 if mode == "relative-ema" else None
            self.relative = RelativeProjection(
                n_anchors=N_ANCHORS, momentum=momentum, output_norm="layernorm"
            )
        self.linear = nn.Linear(LATENT if mode == "absolute" else N_ANCHORS, 10)

    def forward(self, z, anchor_z=None):
        """``anchor_z``: this encoder's anchor embeddings; ``None`` uses the EMA buffer."""
        if self.relative is not None:
            z = self.relative(z, anchor_z)
        return self.linear(z)


def train(seed, mode, data, epochs=30, batch_size=64, lr=3e-3):
    """Encoder and head trained jointly with cross-entropy from ``torch.manual_seed(seed)``."""
    X_tr, _, y_tr, _, anchors_in = data
    torch.manual_seed(seed)
    encoder, head = make_encoder(), Head(mode)
    params = list(encoder.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=lr)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(len(X_tr), generator=gen).split(batch_size):
            if mode == "relative-ema":
                # R3L: the buffer tracks the encoder's anchor embeddings, no gradient
                with torch.no_grad():
                    head.relative.update_anchors(encoder(anchors_in))
                logits = head(encoder(X_tr[idx]))
            else:
                # anchors re-embedded by the same encoder at every step: gradients flow
                # through them (ignored by the absolute head)
                logits = head(encoder(X_tr[idx]), encoder(anchors_in))
            loss = nn.functional.cross_entropy(logits, y_tr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return encoder.eval(), head.eval()


@torch.no_grad()
def accuracy(encoder, head, data):
    """Test accuracy of ``head(encoder(x))``, anchors embedded by that same encoder
    (zero-shot stitching: the relative layer sees the anchors in the encoder's space)."""
    _, X_te, _, y_te, anchors_in = data
    pred = head(encoder(X_te), encoder(anchors_in)).argmax(dim=1)
    return float((pred == y_te).float().mean())


def stitching_table(seeds=(0, 1), data_seed=0, modes=("relative", "relative-ema", "absolute"),
                    **train_kw):
    """Accuracies of every encoder/head pair, relative and absolute.

    Returns a dict ``{mode: {(enc_seed, head_seed): accuracy}}`` and the
    training time per model.
    """
    data = digits_data(data_seed)
    table, seconds = {}, []
    for mode in modes:
        models = {}
        for s in seeds:
            t0 = time.perf_counter()
            models[s] = train(s, mode, data, **train_kw)
            seconds.append(time.perf_counter() - t0)
        table[mode] = {
            (a, b): accuracy(models[a][0], models[b][1], data) for a in seeds for b in seeds
        }
    return table, float(np.mean(seconds))


def summarize(table):
    """Mean accuracy of the original pairs (same seed) and of the swapped pairs."""
    out = {}
    for mode, acc in table.items():
        same = [v for (a, b), v in acc.items() if a == b]
        swap = [v for (a, b), v in acc.items() if a != b]
        out[mode] = (float(np.mean(same)), float(np.mean(swap)))
    return out


def main():
    torch.set_num_threads(1)
    table, sec = stitching_table()
    print(f"digits, encoders 64-64-{LATENT}, {N_ANCHORS} anchors; {sec:.1f} s per model\n")
    print(f"{'head on':<13} {'encoder':>8} {'head':>5} {'test accuracy':>14}")
    for mode, acc in table.items():
        for (a, b), v in acc.items():
            tag = "" if a == b else "  (swapped, zero-shot)"
            print(f"{mode:<13} {a:>8} {b:>5} {v:>14.3f}{tag}")
    print()
    for mode, (same, swap) in summarize(table).items():
        print(f"{mode:<13} original {same:.3f}   swapped {swap:.3f}")


if __name__ == "__main__":
    main()

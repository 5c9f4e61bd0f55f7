"""Torch modules: relative layers for end-to-end training, export of fitted estimators.

Everything here is a :class:`torch.nn.Module` (or a differentiable loss) that
calls the kernels of :mod:`sklearn_latent.functional`; no formula is written
twice.

- :class:`RelativeProjection`: a differentiable relative layer
  (Moschella et al., 2023) with anchors given per step (gradients flow
  through them), fixed, or tracked by an exponential moving average (R3L,
  Ricciardi et al.).
- :func:`to_module`: a fitted projector or translator of the library (or a
  Pipeline of them) as an ``nn.Module`` whose ``forward`` equals ``transform``.
- :func:`spectral_partition_loss`: the CaSpeR regularizer (Frascaroli et al.)
  on the Laplacian spectrum of the batch's latent k-NN graph.
"""

import numbers

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted
from torch import nn

from . import functional as F

__all__ = [
    "AffineTranslation",
    "InverseRelativeProjection",
    "ProductProjection",
    "RelativeProjection",
    "spectral_partition_loss",
    "to_module",
]

_NORMALIZATIONS = (None, "l2", "standard", "layer")
_OUTPUT_NORMS = (None, "layernorm")


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------
def _check_choice(value, name, options):
    if not any(value is o or (isinstance(value, str) and value == o) for o in options):
        raise ValueError(f"{name}={value!r} is not supported; expected one of {options}.")


def _check_float_matrix(x, name, n_features=None):
    """TypeError / ValueError for anything but a 2-D floating tensor of the right width."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}.")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating point tensor, got dtype {x.dtype}.")
    if x.dim() != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape "
                         f"{tuple(x.shape)}.")
    if n_features is not None and x.shape[1] != n_features:
        raise ValueError(f"{name} has {x.shape[1]} features, but the module expects "
                         f"{n_features}.")


def _as_buffer(array):
    """A fitted numpy attribute as a tensor keeping its dtype (None stays None)."""
    if array is None:
        return None
    return torch.as_tensor(np.ascontiguousarray(array)).clone()


def _mean_center(anchors):
    """The anchor mean as the estimators compute it: float64 accumulation, cast back."""
    return anchors.to(torch.float64).mean(dim=0).to(anchors.dtype)


def _relative(x, anchors, metric, center, p):
    """``functional`` relative projection with the anchor side prepared for this call.

    The same kernels as the estimators' ``transform`` (the blocked GEMM kernel
    under ``torch.no_grad`` or when nothing needs a gradient, the
    differentiable path otherwise or while tracing / exporting), without their
    rescaling of data whose squares would overflow the dtype (``|x|`` beyond about
    2**50).
    """
    center = F._effective_center(anchors, metric, center)
    prepared = F._prepare(anchors, metric, center)
    # Under torch.jit.trace / torch.export / torch.compile: the single-expression
    # path, whose graph holds for any number of rows (the blocked kernels loop in
    # Python over row blocks, which a trace would freeze at the example's size).
    tracing = torch.jit.is_tracing() or torch.compiler.is_compiling()
    return F._pairwise_prepared(x, prepared, metric, center, p, blocked=not tracing)


# --------------------------------------------------------------------------
# the relative layer
# --------------------------------------------------------------------------
class RelativeProjection(nn.Module):
    """Differentiable relative layer: ``r(x) = [sim(x, a_1), ..., sim(x, a_k)]``.

    Three ways to give the anchors, which differ in what receives gradients:

    ``forward(x, anchors)``
        Anchors passed at every call, typically ``encoder(anchor_inputs)``
        re-embedded by the same encoder at each step (Moschella et al.): the
        gradients flow into ``x`` **and** ``anchors`` (and so through both
        into the encoder), and the centering mean is that of these anchors.
    fixed buffer
        ``RelativeProjection(anchors=A)``: ``A`` is copied into the buffer
        ``anchors`` (no gradient; moved by ``.to()``, saved in the
        ``state_dict``).  Gradients flow into ``x`` only.
    refreshed buffer (R3L)
        ``update_anchors(encoder(anchor_inputs))`` at every step stores the
        detached embeddings in the buffer, replacing it (``momentum=None``)
        or as an exponential moving average (Ricciardi et al.'s R3L):
        ``anchors <- (1 - momentum) * anchors + momentum * new`` (the
        convention of :class:`torch.nn.BatchNorm1d`).  The buffer never
        carries gradients; ``forward(x)`` then differentiates through ``x``.

    Parameters
    ----------
    anchors : Tensor of shape (n_anchors, n_features) or None, default=None
        Initial anchor buffer (copied, detached).  ``None``: anchors are
        passed to ``forward`` or set by :meth:`update_anchors`.
    n_anchors : int or None, default=None
        Number of anchors, needed when ``anchors`` is None and
        ``output_norm="layernorm"`` (the LayerNorm's width); checked at
        every call when given.
    metric : {"cosine", "angular", "dot", "euclidean", "l1", "linf", "lp"}, default="cosine"
        As in :class:`~sklearn_latent.RelativeProjector`.
    center : bool, default=True
        Subtract the anchor mean from samples and anchors first.
    top_k : int or None, default=None
        Keep the ``top_k`` largest similarities of each row (ASIF); gradients
        flow through the kept entries only.
    exponent : float, default=1.0
        ``sign(r) * |r| ** exponent`` after ``top_k``.
    normalize : {None, "l2", "layer"}, default=None
        Parameter-free output normalization, as in the estimator.
        (``"standard"`` needs fitted statistics: only modules made by
        :func:`to_module` use it.)
    p : float, default=2.0
        Order of the ``"lp"`` distance.
    momentum : float in (0, 1] or None, default=None
        EMA weight of new anchor embeddings in :meth:`update_anchors`.
    output_norm : {None, "layernorm"}, default=None
        ``"layernorm"`` appends a learnable :class:`torch.nn.LayerNorm`
        (with affine parameters) over the ``n_anchors`` outputs, as the
        authors put before the decoders.

    Attributes
    ----------
    anchors : Tensor buffer of shape (n_anchors, n_features) or None
    anchor_mean : Tensor buffer of shape (n_features,) or None
        Mean of the buffered anchors (``center=True``), accumulated in float64.
    output_norm : torch.nn.LayerNorm or None

    Notes
    -----
    Computation happens in the dtype of ``x``: the buffers are cast to it,
    as the estimators cast their fitted arrays to the input's dtype.
    Without gradients (``torch.no_grad`` or nothing requiring grad) the
    layer runs the estimators' blocked GEMM kernels, so its output equals
    ``RelativeProjector.transform`` for the same anchors (inputs of ordinary
    magnitude, ``|x|`` below about 2**50; the estimators additionally rescale
    more extreme data).

    References
    ----------
    .. [1] L. Moschella, V. Maiorca, M. Fumero, A. Norelli, F. Locatello and
       E. Rodolà, "Relative representations enable zero-shot latent space
       communication", ICLR 2023.
    .. [2] A. P. Ricciardi, V. Maiorca, L. Moschella, R. Marin and E. Rodolà,
       "R3L: Relative Representations for Reinforcement Learning", 2024.

    Examples
    --------
    >>> import torch
    >>> from sklearn_latent.nn import RelativeProjection
    >>> _ = torch.manual_seed(0)
    >>> encoder = torch.nn.Linear(8, 4)
    >>> anchor_inputs, x = torch.randn(6, 8), torch.randn(3, 8)
    >>> rel = RelativeProjection(n_anchors=6, output_norm="layernorm")
    >>> out = rel(encoder(x), encoder(anchor_inputs))  # gradients reach both
    >>> out.shape
    torch.Size([3, 6])
    >>> out.sum().backward(); encoder.weight.grad is not None
    True
    >>> ema = RelativeProjection(n_anchors=6, momentum=0.1)
    >>> with torch.no_grad():
    ...     _ = ema.update_anchors(encoder(anchor_inputs))
    >>> ema(encoder(x)).shape
    torch.Size([3, 6])
    """

    def __init__(
        self,
        anchors=None,
        *,
        n_anchors=None,
        metric="cosine",
        center=True,
        top_k=None,
        exponent=1.0,
        normalize=None,
        p=2.0,
        momentum=None,
        output_norm=None,
    ):
        super().__init__()
        _check_choice(metric, "metric", F.METRICS)
        _check_choice(normalize, "normalize", _NORMALIZATIONS)
        _check_choice(output_norm, "output_norm", _OUTPUT_NORMS)
        if not isinstance(center, (bool, np.bool_)):
            raise TypeError(f"center must be a bool, got {center!r}.")
        if isinstance(exponent, bool) or not isinstance(exponent, numbers.Real) or exponent <= 0:
            raise ValueError(f"exponent={exponent!r} must be a positive number.")
        if (top_k is not None or exponent != 1.0) and metric not in F.SIMILARITIES:
            raise ValueError(
                f"top_k and exponent apply to similarity metrics {F.SIMILARITIES}, "
                f"not to metric={metric!r}."
            )
        if top_k is not None and (
            isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral) or top_k < 1
        ):
            raise ValueError(f"top_k={top_k!r} must be None or a positive int.")
        if momentum is not None and (
            isinstance(momentum, bool) or not isinstance(momentum, numbers.Real)
            or not 0.0 < momentum <= 1.0
        ):
            raise ValueError(f"momentum={momentum!r} must be None or a float in (0, 1].")
        if metric == "lp" and not (isinstance(p, numbers.Real) and p >= 1):
            raise ValueError(f"p={p!r} must be a number >= 1.")
        if anchors is not None:
            _check_float_matrix(anchors, "anchors")
            if n_anchors is not None and n_anchors != anchors.shape[0]:
                raise ValueError(
                    f"n_anchors={n_anchors} does not match the {anchors.shape[0]} rows of anchors."
                )
            n_anchors = int(anchors.shape[0])
        if n_anchors is not None and (
            isinstance(n_anchors, bool) or not isinstance(n_anchors, numbers.Integral)
            or n_anchors < 1
        ):
            raise ValueError(f"n_anchors={n_anchors!r} must be a positive int.")
        if output_norm == "layernorm" and n_anchors is None:
            raise ValueError("output_norm='layernorm' needs n_anchors (or anchors) to size it.")
        if top_k is not None and n_anchors is not None and top_k > n_anchors:
            raise ValueError(f"top_k={top_k} must lie in [1, n_anchors={n_anchors}].")
        self.n_anchors = n_anchors
        self.metric = metric
        self.center = bool(center)
        self.top_k = top_k
        self.exponent = float(exponent)
        self.normalize = normalize
        self.p = float(p)
        self.momentum = momentum
        A = None if anchors is None else anchors.detach().clone()
        self.register_buffer("anchors", A)
        self.register_buffer("anchor_mean", _mean_center(A) if A is not None and center else None)
        # statistics of normalize="standard" (set by to_module only)
        self.register_buffer("output_mean", None)
        self.register_buffer("output_scale", None)
        self.output_norm = nn.LayerNorm(n_anchors) if output_norm == "layernorm" else None

    def extra_repr(self):
        parts = [f"n_anchors={self.n_anchors}", f"metric={self.metric!r}",
                 f"center={self.center}"]
        if self.top_k is not None:
            parts.append(f"top_k={self.top_k}")
        if self.exponent != 1.0:
            parts.append(f"exponent={self.exponent}")
        if self.normalize is not None:
            parts.append(f"normalize={self.normalize!r}")
        if self.momentum is not None:
            parts.append(f"momentum={self.momentum}")
        return ", ".join(parts)

    def _check_anchors(self, anchors, name):
        _check_float_matrix(anchors, name)
        if self.n_anchors is not None and anchors.shape[0] != self.n_anchors:
            raise ValueError(
                f"{name} has {anchors.shape[0]} rows, but the layer has n_anchors={self.n_anchors}."
            )
        if self.top_k is not None and self.top_k > anchors.shape[0]:
            raise ValueError(f"top_k={self.top_k} exceeds the {anchors.shape[0]} anchors.")

    @torch.no_grad()
    def update_anchors(self, anchor_embeddings):
        """Refresh the anchor buffer from new embeddings of the anchor inputs.

        ``momentum=None`` replaces the buffer; otherwise
        ``anchors <- (1 - momentum) * anchors + momentum * anchor_embeddings``
        (the first call initializes it).  The embeddings are detached: the
        buffer never carries gradients.

        Parameters
        ----------
        anchor_embeddings : Tensor of shape (n_anchors, n_features)

        Returns
        -------
        self : RelativeProjection
        """
        self._check_anchors(anchor_embeddings, "anchor_embeddings")
        new = anchor_embeddings.detach()
        old = self.anchors
        if old is not None and old.shape != new.shape:
            raise ValueError(
                f"anchor_embeddings has shape {tuple(new.shape)}, but the anchor buffer has "
                f"shape {tuple(old.shape)}."
            )
        if old is None or self.momentum is None:
            self.anchors = new.clone()
        else:
            old.mul_(1.0 - self.momentum).add_(new.to(old.dtype), alpha=self.momentum)
        if self.n_anchors is None:
            self.n_anchors = int(new.shape[0])
        self.anchor_mean = _mean_center(self.anchors) if self.center else None
        return self

    def forward(self, x, anchors=None):
        """Relative representation of ``x``.

        Parameters
        ----------
        x : Tensor of shape (n_samples, n_features)
        anchors : Tensor of shape (n_anchors, n_features) or None
            Anchor embeddings of this step (gradients flow into them); ``None``
            uses the buffer.

        Returns
        -------
        Tensor of shape (n_samples, n_anchors)
        """
        if anchors is None:
            anchors = self.anchors
            if anchors is None:
                raise RuntimeError(
                    "RelativeProjection has no anchors: pass them to forward(x, anchors), "
                    "to the constructor, or call update_anchors first."
                )
            center = self.anchor_mean
        else:
            self._check_anchors(anchors, "anchors")
            center = anchors.mean(dim=0) if self.center else None
        _check_float_matrix(x, "x", anchors.shape[1])
        anchors = anchors.to(x.dtype)
        center = None if center is None else center.to(x.dtype)
        R = _relative(x, anchors, self.metric, center, self.p)
        if self.top_k is not None or self.exponent != 1.0:
            R = F.sparsify(R, self.top_k, self.exponent)
        if self.normalize == "l2":
            R = F._safe_normalize(R)
        elif self.normalize == "layer":
            R = F.layer_normalize(R)
        elif self.normalize == "standard":
            if self.output_mean is None:
                raise RuntimeError("normalize='standard' needs fitted output statistics "
                                   "(modules from to_module(RelativeProjector(...)) have them).")
            R = (R - self.output_mean.to(R.dtype)) / self.output_scale.to(R.dtype)
        if self.output_norm is not None:
            R = self.output_norm(R)
        return R


# --------------------------------------------------------------------------
# modules of the other fitted estimators
# --------------------------------------------------------------------------
class ProductProjection(nn.Module):
    """Frozen :class:`~sklearn_latent.ProductInvarianceProjector` as a module.

    ``r(x) = phi(w_1 N(RR(x; A, d_1)), ..., w_m N(RR(x; A, d_m)))`` with the
    fitted anchors, centering mean, per-component statistics and weights as buffers (see
    :func:`sklearn_latent.functional.product_projection`).  Build it with
    :func:`to_module`.

    Parameters
    ----------
    anchors : Tensor of shape (k, d)
    metrics : tuple of str
    anchor_mean : Tensor of shape (d,) or None
    normalize : {None, "l2", "standard", "block", "layer"}
    output_mean, output_scale : Tensor of shape (m, k) or None
    aggregation : {"concat", "sum", "mean"}
    weights : Tensor of shape (m,) or None
        Factor of each component (``None``: all 1); a component of weight 0
        is not computed.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from sklearn_latent import ProductInvarianceProjector
    >>> from sklearn_latent.nn import to_module
    >>> X = np.random.default_rng(0).normal(size=(50, 5))
    >>> est = ProductInvarianceProjector(8, random_state=0).fit(X)
    >>> out = to_module(est)(torch.as_tensor(X))
    >>> bool(torch.allclose(out, torch.as_tensor(est.transform(X))))
    True
    """

    def __init__(self, anchors, metrics, *, anchor_mean=None, normalize=None,
                 output_mean=None, output_scale=None, aggregation="concat", weights=None):
        super().__init__()
        self.metrics = tuple(metrics)
        self.normalize = normalize
        self.aggregation = aggregation
        self.register_buffer("anchors", anchors)
        self.register_buffer("weights", weights)
        self.register_buffer("anchor_mean", anchor_mean)
        self.register_buffer("output_mean", output_mean)
        self.register_buffer("output_scale", output_scale)

    def forward(self, x):
        """Aggregated, normalized relative representations of ``x`` (n, d)."""
        _check_float_matrix(x, "x", self.anchors.shape[1])
        A = self.anchors.to(x.dtype)
        c = None if self.anchor_mean is None else self.anchor_mean.to(x.dtype)
        comps = []
        for i, metric in enumerate(self.metrics):
            w = None if self.weights is None else float(self.weights[i])
            if w == 0.0:
                comps.append(x.new_zeros((x.shape[0], A.shape[0])))
                continue
            R = _relative(x, A, metric, c, 2.0)
            mu = sd = None
            if self.normalize in ("standard", "block"):
                mu, sd = self.output_mean[i].to(x.dtype), self.output_scale[i].to(x.dtype)
            R = F.normalize_component(R, self.normalize, mean=mu, scale=sd)
            comps.append(R if w is None or w == 1.0 else R * w)
        return F.aggregate_components(comps, self.aggregation)


class InverseRelativeProjection(nn.Module):
    """Frozen :class:`~sklearn_latent.InverseRelativeProjector` as a module.

    ``y = mean_s norm(R[:, c_s] @ P_s) * scale + offset`` (one subspace
    without pruning); see
    :func:`sklearn_latent.functional.inverse_relative_projection`.  Build it
    with :func:`to_module`.

    Parameters
    ----------
    inverse : Tensor of shape (sum_s k_s, d)
        The stacked right inverses ``P_s`` of the anchor subsets.
    n_anchors : int
        Width of the relative input.
    subsets : list of LongTensor or None
        Anchor columns of each pruned subspace (``None``: all columns, no pruning).
    anchor_mean : Tensor of shape (d,) or None
        Offset added back (``center=True``).
    scale : float or None
        Norm of the output directions (``rescale="mean_norm"``); ``None`` = unit.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from sklearn_latent import InverseRelativeProjector, RelativeProjector
    >>> from sklearn_latent.nn import to_module
    >>> Y = np.random.default_rng(0).normal(size=(60, 4))
    >>> inv = InverseRelativeProjector(10, random_state=0).fit(Y)
    >>> R = RelativeProjector(anchors=inv.anchor_indices_).fit(Y).transform(Y)
    >>> out = to_module(inv)(torch.as_tensor(R))
    >>> bool(torch.allclose(out, torch.as_tensor(inv.transform(R))))
    True
    """

    def __init__(self, inverse, n_anchors, *, subsets=None, anchor_mean=None, scale=None):
        super().__init__()
        self.n_anchors = int(n_anchors)
        self.register_buffer("inverse", inverse)
        self.register_buffer("anchor_mean", anchor_mean)
        self.register_buffer(
            "scale", None if scale is None else torch.tensor(float(scale), dtype=torch.float64)
        )
        self.subset_sizes = None if subsets is None else [int(len(s)) for s in subsets]
        for i, s in enumerate(subsets or []):
            self.register_buffer(f"subset_{i}", torch.as_tensor(s, dtype=torch.int64))

    def forward(self, r):
        """Absolute vectors whose cosine relative representation is ``r`` (n, n_anchors)."""
        _check_float_matrix(r, "r", self.n_anchors)
        P = self.inverse.to(r.dtype)
        offset = None if self.anchor_mean is None else self.anchor_mean.to(r.dtype)
        scale = None if self.scale is None else self.scale.to(r.dtype)
        if self.subset_sizes is None:
            return F.inverse_relative_projection(r, P, scale=scale, offset=offset)
        inverse = list(torch.split(P, self.subset_sizes))
        columns = [getattr(self, f"subset_{i}") for i in range(len(self.subset_sizes))]
        return F.inverse_relative_projection(r, inverse, scale=scale, offset=offset,
                                             columns=columns)


class AffineTranslation(nn.Module):
    """Frozen :class:`~sklearn_latent.ProcrustesTranslator`: ``y = x @ coef + intercept``.

    Parameters
    ----------
    coef : Tensor of shape (d_x, d_y)
    intercept : Tensor of shape (d_y,)

    Examples
    --------
    >>> import numpy as np, torch
    >>> from sklearn_latent import ProcrustesTranslator
    >>> from sklearn_latent.nn import to_module
    >>> rng = np.random.default_rng(0)
    >>> X, Y = rng.normal(size=(40, 3)), rng.normal(size=(40, 2))
    >>> est = ProcrustesTranslator().fit(X, Y)
    >>> out = to_module(est)(torch.as_tensor(X))
    >>> bool(torch.allclose(out, torch.as_tensor(est.transform(X))))
    True
    """

    def __init__(self, coef, intercept):
        super().__init__()
        self.register_buffer("coef", coef)
        self.register_buffer("intercept", intercept)

    def forward(self, x):
        """Translate ``x`` (n, d_x) into the target space."""
        _check_float_matrix(x, "x", self.coef.shape[0])
        return torch.addmm(self.intercept.to(x.dtype), x, self.coef.to(x.dtype))


# --------------------------------------------------------------------------
# export
# --------------------------------------------------------------------------
def _relative_module(est):
    mod = RelativeProjection(
        _as_buffer(est.anchors_), metric=est.metric, center=bool(est.center),
        top_k=est.top_k, exponent=est.exponent, normalize=est.normalize, p=est.p,
    )
    if est.center:  # the estimator's own mean (identical computation, kept verbatim)
        mod.anchor_mean = _as_buffer(est.anchor_mean_)
    mod.output_mean = _as_buffer(est.output_mean_)
    mod.output_scale = _as_buffer(est.output_scale_)
    return mod


def _product_weights(est):
    w = getattr(est, "weights_", None)  # None: fitted before weights existed
    return None if w is None or (w == 1).all() else _as_buffer(w)


def _product_module(est):
    return ProductProjection(
        _as_buffer(est.anchors_), est.metrics_,
        anchor_mean=_as_buffer(est.anchor_mean_) if est.center else None,
        normalize=est.normalize, output_mean=_as_buffer(est.output_mean_),
        output_scale=_as_buffer(est.output_scale_), aggregation=est.aggregation,
        weights=_product_weights(est),
    )


def _inverse_module(est):
    return InverseRelativeProjection(
        _as_buffer(est.inverse_), est.anchors_.shape[0],
        subsets=list(est.anchor_subsets_) if est._pruned else None,
        anchor_mean=_as_buffer(est.anchor_mean_) if est.center else None,
        scale=est.mean_anchor_norm_ if est.rescale == "mean_norm" else None,
    )


def _procrustes_module(est):
    return AffineTranslation(_as_buffer(est.coef_), _as_buffer(est.intercept_))


def _relative_translator_module(est):
    return nn.Sequential(to_module(est.relative_projector_), to_module(est.inverse_projector_))


def _exporters():
    from .inverse import InverseRelativeProjector, RelativeTranslator
    from .product import ProductInvarianceProjector
    from .relative import RelativeProjector
    from .translate import ProcrustesTranslator

    return {
        RelativeProjector: _relative_module,
        ProductInvarianceProjector: _product_module,
        InverseRelativeProjector: _inverse_module,
        ProcrustesTranslator: _procrustes_module,
        RelativeTranslator: _relative_translator_module,
    }


def to_module(estimator):
    """A fitted estimator of the library as a frozen :class:`torch.nn.Module`.

    ``to_module(est)(x)`` equals ``est.transform(x)`` for a tensor ``x``
    (same kernels, same dtype handling), so a fitted projector or translator
    can be deployed inside a torch model, saved with its ``state_dict``,
    traced with :func:`torch.jit.trace` or exported with
    :func:`torch.export.export`.

    Supported: :class:`~sklearn_latent.RelativeProjector` (-> a
    :class:`RelativeProjection` with fixed anchors),
    :class:`~sklearn_latent.ProductInvarianceProjector` (->
    :class:`ProductProjection`), :class:`~sklearn_latent.InverseRelativeProjector`
    (-> :class:`InverseRelativeProjection`),
    :class:`~sklearn_latent.ProcrustesTranslator` (-> :class:`AffineTranslation`,
    the ``transform`` direction), :class:`~sklearn_latent.RelativeTranslator`
    (-> ``nn.Sequential`` of the two), a :class:`sklearn.pipeline.Pipeline`
    of these (-> ``nn.Sequential``; ``"passthrough"`` steps are skipped) and
    :class:`sklearn.frozen.FrozenEstimator` wrappers of them.

    Parameters
    ----------
    estimator : fitted estimator

    Returns
    -------
    torch.nn.Module
        In eval mode.  Its buffers hold the fitted arrays in the estimator's
        dtype (float32 for a float32 fit, float64 otherwise); ``forward``
        computes in the input's dtype (buffers cast on the fly, as
        ``transform`` casts its fitted arrays).  Modules own copies: refitting
        the estimator does not change them.

    Raises
    ------
    TypeError
        For an estimator that cannot be exported.
    sklearn.exceptions.NotFittedError
        For an unfitted estimator.

    Notes
    -----
    Inputs of ordinary magnitude (``|x|`` below about 2**50) give exactly the
    ``transform`` result; the estimators also rescale data beyond that range,
    which the module does not.  The module checks the input's width and
    dtype but not its finiteness.  Under :func:`torch.jit.trace`,
    :func:`torch.export.export` and ``torch.compile`` it records the
    single-expression kernels (valid for any batch size; equal to
    ``transform`` up to rounding); :func:`torch.jit.script` is not supported.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from sklearn_latent import RelativeProjector
    >>> from sklearn_latent.nn import to_module
    >>> X = np.random.default_rng(0).normal(size=(100, 8)).astype(np.float32)
    >>> est = RelativeProjector(16, random_state=0).fit(X)
    >>> module = to_module(est)
    >>> out = module(torch.from_numpy(X))
    >>> bool(torch.equal(out, torch.from_numpy(est.transform(X))))
    True
    """
    from sklearn.pipeline import Pipeline

    try:
        from sklearn.frozen import FrozenEstimator
    except ImportError:  # scikit-learn < 1.6
        FrozenEstimator = ()
    if FrozenEstimator and isinstance(estimator, FrozenEstimator):
        return to_module(estimator.estimator)
    if isinstance(estimator, Pipeline):
        steps = [step for _, step in estimator.steps if step is not None and step != "passthrough"]
        if not steps:
            raise ValueError("the Pipeline has no step to export.")
        return nn.Sequential(*(to_module(step) for step in steps)).eval()
    exporters = _exporters()
    for cls, export in exporters.items():
        if isinstance(estimator, cls):
            check_is_fitted(estimator)
            return export(estimator).eval()
    names = ", ".join(sorted(c.__name__ for c in exporters))
    raise TypeError(
        f"to_module cannot export {type(estimator).__name__}; supported: {names}, and "
        "Pipelines / FrozenEstimators of them."
    )


# --------------------------------------------------------------------------
# CaSpeR
# --------------------------------------------------------------------------
def _knn_laplacian_eigvals(Z, k):
    """Ascending eigenvalues of the normalized Laplacian of the weighted k-NN graph of Z."""
    n = Z.shape[0]
    gram = F.pairwise(Z, Z, "dot")  # the library's GEMM kernel (differentiable)
    sq = gram.diagonal()
    D = (sq[:, None] + sq[None, :] - 2.0 * gram).clamp_min(0.0)
    eye = torch.eye(n, dtype=torch.bool, device=Z.device)
    D_off = D.masked_fill(eye, torch.inf)
    knn = torch.topk(D_off.detach(), k, dim=1, largest=False).indices
    mask = torch.zeros((n, n), dtype=torch.bool, device=Z.device).scatter_(1, knn, True)
    mask = mask | mask.T
    scale = D[mask].mean().clamp_min(torch.finfo(Z.dtype).tiny)
    W = torch.where(mask, torch.exp(-D / scale), torch.zeros_like(D))
    deg = W.sum(dim=1)
    inv_sqrt = torch.where(deg > 0, deg.clamp_min(torch.finfo(Z.dtype).tiny).rsqrt(),
                           torch.zeros_like(deg))
    L = torch.eye(n, dtype=Z.dtype, device=Z.device) - inv_sqrt[:, None] * W * inv_sqrt[None, :]
    return torch.linalg.eigvalsh(L)


def spectral_partition_loss(embeddings, labels, k=10, *, n_classes=None):
    r"""CaSpeR spectral regularizer: one k-NN graph component per class in the batch.

    With ``Z`` the batch embeddings (n, d) and ``c`` the number of distinct
    labels in the batch:

    1. k-NN graph: ``i ~ j`` when ``j`` is among the ``k`` nearest
       neighbours of ``i`` (squared euclidean distance ``D_ij``) or ``i``
       among those of ``j`` (symmetrized by "or").
    2. Gaussian weights on its edges, ``W_ij = exp(-D_ij / s)`` with ``s``
       the mean squared distance over the edges (so the loss does not change
       when the embeddings are rotated, shifted or scaled), ``W_ij = 0``
       otherwise and on the diagonal.
    3. Normalized Laplacian ``L = I - G^{-1/2} W G^{-1/2}``, ``G = diag(W 1)``;
       eigenvalues ``0 = lambda_1 <= ... <= lambda_n <= 2`` by
       :func:`torch.linalg.eigvalsh` (differentiable).
    4. ``loss = sum_{j=1}^{c} lambda_j - lambda_{c+1}``.

    ``lambda_j = 0`` for ``j <= c`` exactly when the graph has at least ``c``
    connected components, and ``lambda_{c+1}`` (the eigengap after them) is
    large when the graph splits cleanly into ``c`` well-connected parts; the
    loss rewards both, so it pushes the latent space towards one cluster per
    class.  It is the ``l_CaSpeR = -lambda_{g+1} + sum_{j<=g} lambda_j`` of
    Frascaroli et al.  The labels only decide ``c``: the graph is built from
    the embeddings alone, as in the paper (a weak requirement on the spectrum,
    not a supervised contrastive loss), so it also applies to unlabelled
    batches with ``n_classes`` given.  Gradients flow through the edge
    weights and ``s``; the choice of edges (the k-NN sets) is piecewise
    constant, so the gradient is exact wherever the neighbour sets do not
    change.

    Differences from the authors' code (aimagelab/CaSpeR): there the edges
    are binary (0/1) in the forward pass and the gradient comes from a soft
    k-NN relaxation (straight-through); here the edge weights are Gaussian
    and differentiated exactly.  Their code also sums ``c + 1`` eigenvalues
    and subtracts the ``(c + 2)``-th; this follows the paper's formula.  The
    paper's Monte Carlo variant (``p`` classes sampled from the buffer,
    ``m`` examples each) is a choice of batch and needs no option here.

    Parameters
    ----------
    embeddings : Tensor of shape (n_samples, n_features)
        Floating point, ``n_samples >= 2``.
    labels : Tensor or array-like of shape (n_samples,)
        Class labels of the rows (any hashable integers).
    k : int, default=10
        Neighbours per node, ``1 <= k < n_samples``.
    n_classes : int or None, default=None
        ``c``; default the number of distinct labels in the batch.  Must be
        below ``n_samples``.

    Returns
    -------
    Tensor of shape ()
        In ``[-2, 2 c]``, in the embeddings' dtype.

    References
    ----------
    .. [1] E. Frascaroli, R. Benaglia, M. Boschini, L. Moschella, C. Fiorini,
       E. Rodolà and S. Calderara, "Latent spectral regularization for
       continual learning" (CaSpeR), Pattern Recognition Letters, 2024.

    Examples
    --------
    >>> import torch
    >>> from sklearn_latent.nn import spectral_partition_loss
    >>> g = torch.Generator().manual_seed(0)
    >>> centers = torch.tensor([[0.0, 0.0], [10.0, 10.0]])
    >>> labels = torch.tensor([0] * 10 + [1] * 10)
    >>> Z = centers[labels] + 0.5 * torch.randn(20, 2, generator=g)
    >>> separated = spectral_partition_loss(Z, labels, k=4)
    >>> mixed = spectral_partition_loss(torch.randn(20, 2, generator=g), labels, k=4)
    >>> bool(separated < mixed)
    True
    >>> round(float(separated), 2)  # two components: -lambda_3 of the graph
    -0.17
    """
    _check_float_matrix(embeddings, "embeddings")
    n = embeddings.shape[0]
    labels_t = torch.as_tensor(labels)
    if labels_t.dim() != 1:
        raise ValueError(f"labels must be 1-D, got shape {tuple(labels_t.shape)}.")
    if labels_t.shape[0] != n:
        raise ValueError(
            f"labels has {labels_t.shape[0]} entries but embeddings has {n} rows."
        )
    if n < 2:
        raise ValueError(f"spectral_partition_loss needs at least 2 samples, got {n}.")
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 1 <= k < n:
        raise ValueError(f"k={k!r} must be an int in [1, n_samples - 1 = {n - 1}].")
    c = int(torch.unique(labels_t).numel()) if n_classes is None else n_classes
    if isinstance(c, bool) or not isinstance(c, numbers.Integral) or not 1 <= c < n:
        raise ValueError(f"n_classes={c!r} must be an int in [1, n_samples - 1 = {n - 1}].")
    lam = _knn_laplacian_eigvals(embeddings, k)
    return lam[:c].sum() - lam[c]

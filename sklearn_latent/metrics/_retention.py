"""Retrieval retention of an embedding migration: Recall@k, nDCG@k and MRR@k.

A corpus indexed with a legacy model is moved to a new model without
re-embedding it, through a translator fitted on a calibration sample (either
the stored corpus is translated legacy -> new, or new queries are translated
new -> legacy into the unchanged index).  :func:`retention_report` compares
those settings with the *re-embedding ceiling* (new queries against the
corpus re-embedded by the new model) on held-out queries and corpus embedded
by both models, by exact search over corpus chunks.
"""

import math
import numbers
from dataclasses import dataclass, field

import numpy as np
import torch

from .. import functional as F
from .._backend import (
    check_batch_size,
    check_csls,
    check_input,
    check_option,
    to_tensor,
    torch_dtype,
)
from ._common import _BLOCK_ELEMENTS

#: Settings of a :class:`RetentionReport`, in display order.
RETENTION_SETTINGS = ("ceiling", "legacy", "translated_queries", "translated_corpus")
#: Rankings accepted by :func:`retention_report` and :func:`search_top_k`.
SEARCH_METRICS = ("cosine", "dot", "euclidean")
_SCORES = ("recall", "ndcg", "mrr")


@dataclass(frozen=True)
class RetentionReport:
    """Retrieval quality of each migration setting and its retention.

    Attributes
    ----------
    k : int
        Cut-off of Recall@k, nDCG@k and MRR@k.
    relevance : str
        ``"labels"`` (same label), ``"given"`` (explicit relevant sets) or
        ``"ceiling_top_<n>"`` (the re-embedding ceiling's own top-n, see
        ``n_relevant``).
    n_queries : int
        Queries scored (those with at least one relevant corpus row).
    n_corpus : int
        Rows of the corpus searched.
    scores : dict
        ``{setting: {"recall": float, "ndcg": float, "mrr": float}}`` for the
        settings evaluated, among :data:`RETENTION_SETTINGS`: ``"ceiling"``
        (new queries, corpus re-embedded by the new model), ``"legacy"``
        (the old model on both sides), ``"translated_queries"`` (new queries
        translated into the legacy index) and ``"translated_corpus"``
        (legacy corpus translated, searched by new queries).
    csls : int or None
        Neighbours of the CSLS ranking of the translated settings (None:
        plain similarity).

    Examples
    --------
    >>> r = RetentionReport(10, "labels", 5, 100, {"ceiling": {"recall": 0.8, "ndcg": 0.7,
    ...     "mrr": 0.6}, "translated_corpus": {"recall": 0.76, "ndcg": 0.63, "mrr": 0.6}})
    >>> round(r.retention("translated_corpus"), 3)
    0.95
    """

    k: int
    relevance: str
    n_queries: int
    n_corpus: int
    scores: dict = field(default_factory=dict)
    csls: object = None

    def retention(self, setting, score="recall"):
        """``scores[setting][score] / scores["ceiling"][score]`` (NaN when the ceiling is 0)."""
        check_option(setting, "setting", tuple(self.scores))
        check_option(score, "score", _SCORES)
        ceiling = self.scores["ceiling"][score]
        return self.scores[setting][score] / ceiling if ceiling > 0 else math.nan

    def rows(self):
        """Tidy rows ``(setting, score, k, value, retention)``, one per setting and score."""
        return [
            (s, m, self.k, self.scores[s][m], self.retention(s, m))
            for s in RETENTION_SETTINGS
            if s in self.scores
            for m in _SCORES
        ]

    def to_frame(self):
        """The :meth:`rows` as a pandas DataFrame (needs pandas, the ``eval`` extra)."""
        try:
            import pandas as pd
        except ImportError as exc:  # pragma: no cover - pandas is in the test extra
            raise ImportError(
                "RetentionReport.to_frame needs pandas: pip install sklearn-latent[eval]"
            ) from exc
        return pd.DataFrame(self.rows(), columns=["setting", "score", "k", "value", "retention"])

    def __str__(self):
        head = (
            f"retrieval at k={self.k} ({self.relevance} relevance, {self.n_queries} queries, "
            f"{self.n_corpus} corpus rows"
            f"{'' if self.csls is None else f', translated settings ranked by CSLS-{self.csls}'})"
        )
        lines = [head, f"{'setting':<20}" + "".join(f"{m + '@k':>9}{'ret.':>7}" for m in _SCORES)]
        for s in RETENTION_SETTINGS:
            if s in self.scores:
                cells = "".join(
                    f"{self.scores[s][m]:9.4f}{self.retention(s, m):7.3f}" for m in _SCORES
                )
                lines.append(f"{s:<20}{cells}")
        return "\n".join(lines)


# --------------------------------------------------------------------------
# exact chunked search
# --------------------------------------------------------------------------
def _search_operands(T, metric, side):
    """Rows whose dot product ranks like ``metric`` (queries: ``side='q'``)."""
    if metric == "cosine":
        return F._safe_normalize(T)
    if metric == "euclidean":  # -||q - c||^2 + ||q||^2 = [q, 1] . [2c, -||c||^2]
        if side == "q":
            return torch.cat([T, T.new_ones(T.shape[0], 1)], dim=1)
        sq = (T.to(torch.float64) ** 2).sum(dim=1, keepdim=True).to(T.dtype)
        return torch.cat([2 * T, -sq], dim=1)
    return T


def _corpus_chunks(corpus, translator, step, device, dtype):
    for start in range(0, corpus.shape[0], step):
        block = corpus[start : start + step]
        if translator is not None:
            block = translator.transform(block)
        yield start, to_tensor(block, device, dtype)


def _check_csls(csls, metric):
    csls = check_csls(csls)
    if csls is None:
        return None
    if metric != "cosine":
        raise ValueError(f"csls ranks by cosines; it needs metric='cosine', got {metric!r}.")
    return csls


def search_top_k(queries, corpus, k, *, metric="cosine", transform=None, batch_size=None,
                 csls=None):
    """Exact top-``k`` corpus rows of each query, by a running merge over corpus chunks.

    Equal to sorting the full ``(n_queries, n_corpus)`` score matrix, which
    is never formed: memory is ``O(n_queries * (k + batch_size))``.  Each
    corpus chunk is read once (a read-only memmap is fine) and, when
    ``transform`` is given, translated on the fly.

    With ``csls`` (a number of neighbours), corpus rows are ranked by CSLS
    (Conneau et al., 2018), ``2 cos(q, c) - r(c) - r(q)``, which penalizes
    *hubs* (translated rows close to every query): ``r(c)`` is the mean
    cosine of corpus row ``c`` to its ``csls`` most similar queries *of this
    batch*, ``r(q)`` that of query ``q`` to its ``csls`` most similar corpus
    rows.  The hubness of a corpus row is measured against the queries
    given, so search a representative batch of queries (hundreds), not one;
    still one pass over the corpus.

    Parameters
    ----------
    queries : array-like or Tensor of shape (n_queries, d)
    corpus : array-like or Tensor of shape (n_corpus, d_c)
        ``d_c == d``, or the input width of ``transform``.
    k : int
        ``1 <= k <= n_corpus``.
    metric : {"cosine", "dot", "euclidean"}, default="cosine"
        Ranking: largest cosine or inner product, or smallest euclidean
        distance (as FAISS ``METRIC_INNER_PRODUCT`` / ``METRIC_L2``).
    transform : fitted transformer or None
        Applied to each corpus chunk (e.g. a fitted
        :class:`~sklearn_latent.ProcrustesTranslator`).
    batch_size : int or None
        Corpus rows per chunk (default: about 4 M scores per chunk).
    csls : int or None, default=None
        Rank by CSLS with this many neighbours in the hubness terms (needs
        ``metric="cosine"``); None: plain ``metric``.

    Returns
    -------
    scores : ndarray of shape (n_queries, k)
        Cosine or inner product, or squared euclidean distance for
        ``"euclidean"``, or the CSLS score; best first.
    indices : ndarray of int64, shape (n_queries, k)
        Corpus rows.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_latent.metrics import search_top_k
    >>> corpus = np.array([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]])
    >>> search_top_k([[1.0, 0.2]], corpus, 2, batch_size=1)[1]
    array([[0, 2]])
    >>> search_top_k([[1.0, 0.2], [0.9, 0.3]], corpus, 2, csls=1)[1]
    array([[0, 2],
           [0, 2]])
    """
    metric = check_option(metric, "metric", SEARCH_METRICS)
    csls = _check_csls(csls, metric)
    queries = check_input(None, queries, reset=False, input_name="queries")
    corpus = check_input(None, corpus, reset=False, input_name="corpus")
    n_corpus = corpus.shape[0]
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 1 <= k <= n_corpus:
        raise ValueError(f"k={k!r} must be an int with 1 <= k <= n_corpus={n_corpus}.")
    batch_size = check_batch_size(batch_size)
    device = queries.device if isinstance(queries, torch.Tensor) else torch.device("cpu")
    dtype = torch.float64 if torch_dtype(queries) == torch.float64 else torch.float32
    Q = _search_operands(to_tensor(queries, device, dtype), metric, "q")
    step = batch_size or max(32, _BLOCK_ELEMENTS // max(1, Q.shape[0]))
    values = indices = r_q = r_q_idx = None
    for start, C in _corpus_chunks(corpus, transform, step, device, dtype):
        if C.shape[1] != queries.shape[1]:
            raise ValueError(
                f"queries have {queries.shape[1]} features but the corpus"
                f"{' (after transform)' if transform is not None else ''} has {C.shape[1]}."
            )
        S = Q @ _search_operands(C, metric, "c").T
        if csls is not None:  # CSLS: 2 cos - r(c) - r(q); r(q) from a running top-csls
            r_q, r_q_idx = F._merge_topk(r_q, r_q_idx, S, start, csls)
            r_c = torch.topk(S, min(csls, S.shape[0]), dim=0).values.mean(dim=0)
            S = 2 * S - r_c[None, :]
        values, indices = F._merge_topk(values, indices, S, start, k)
    if csls is not None:
        values = values - r_q.mean(dim=1, keepdim=True)
    if metric == "euclidean":
        q2 = (Q[:, :-1].to(torch.float64) ** 2).sum(dim=1, keepdim=True)
        values = (q2 - values.to(torch.float64)).clamp_min(0).to(dtype)
    return values.cpu().numpy(), indices.cpu().numpy()


# --------------------------------------------------------------------------
# relevance and scores
# --------------------------------------------------------------------------
def _hits_from_sets(indices, relevant):
    hits = np.zeros(indices.shape, dtype=bool)
    n_rel = np.empty(indices.shape[0], dtype=np.int64)
    for q, rel in enumerate(relevant):
        rel = np.unique(np.asarray(rel, dtype=np.int64).reshape(-1))
        hits[q] = np.isin(indices[q], rel)
        n_rel[q] = rel.size
    return hits, n_rel


def _scores(hits, n_rel, k):
    """Mean Recall@k (capped: hits / min(k, |R|)), nDCG@k and MRR@k over queries with |R| > 0."""
    keep = n_rel > 0
    hits, n_rel = hits[keep], n_rel[keep]
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.cumsum(discount)[np.minimum(n_rel, k) - 1]
    first = np.where(hits.any(axis=1), hits.argmax(axis=1) + 1, np.inf)
    return {
        "recall": float(np.mean(hits.sum(axis=1) / np.minimum(n_rel, k))),
        "ndcg": float(np.mean((hits * discount).sum(axis=1) / ideal)),
        "mrr": float(np.mean(1.0 / first)),
    }


def _check_labels(labels, n, name):
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.shape[0] != n:
        raise ValueError(
            f"{name} must be 1-D with one label per row ({n}); got shape {labels.shape}."
        )
    return labels


def _check_translator(t, name):
    if t is not None and not callable(getattr(t, "transform", None)):
        raise TypeError(f"{name} must be a fitted transformer with .transform; got {t!r}.")


def retention_report(
    queries_new,
    corpus_new,
    corpus_legacy,
    *,
    queries_legacy=None,
    corpus_translator=None,
    query_translator=None,
    query_labels=None,
    corpus_labels=None,
    relevant=None,
    k=10,
    n_relevant=None,
    metric="cosine",
    batch_size=None,
    csls=None,
):
    """Retrieval retention of an embedding migration against re-embedding.

    Queries and corpus held out from the calibration sample are embedded by
    both models.  Settings (each scored by Recall@k, nDCG@k and MRR@k):

    * ``ceiling``: ``queries_new`` against ``corpus_new`` (re-embedding
      everything with the new model);
    * ``legacy``: ``queries_legacy`` against ``corpus_legacy`` (the old
      model), when ``queries_legacy`` is given;
    * ``translated_queries``: ``query_translator.transform(queries_new)``
      against ``corpus_legacy`` (the legacy index kept, queries translated
      new -> legacy);
    * ``translated_corpus``: ``queries_new`` against
      ``corpus_translator.transform(corpus_legacy)`` (the stored vectors
      translated legacy -> new, chunk by chunk).

    Retention is a setting's score divided by the ceiling's.  Relevance is,
    in order of precedence: ``query_labels`` / ``corpus_labels`` (a corpus
    row is relevant to a query with the same label), ``relevant`` (explicit
    sets), else the ceiling's own top-``n_relevant`` (default ``k``: then the
    ceiling scores 1 and a setting's Recall@k is its overlap with what
    re-embedding would return; ``n_relevant=1``: whether a setting finds
    re-embedding's best hit in its top k, one pseudo-relevant row per query
    as in single-answer benchmarks).
    Recall@k is capped, ``hits / min(k, |R|)``, so it reaches 1 when the
    first k results are all relevant; MRR@k counts the first relevant row in
    the top k (0 if none).  Search is exact (:func:`search_top_k`).

    Parameters
    ----------
    queries_new : array-like or Tensor of shape (n_queries, d_new)
    corpus_new : array-like or Tensor of shape (n_corpus, d_new)
    corpus_legacy : array-like or Tensor of shape (n_corpus, d_legacy)
        The same corpus rows embedded by the legacy model.
    queries_legacy : array-like or Tensor of shape (n_queries, d_legacy), optional
    corpus_translator : fitted transformer, optional
        Legacy -> new (e.g. ``ProcrustesTranslator().fit(legacy, new)``).
    query_translator : fitted transformer, optional
        New -> legacy.  At least one translator is required.
    query_labels, corpus_labels : array-like of shape (n_queries,), (n_corpus,)
        Labelled relevance (both or neither).
    relevant : sequence of n_queries array-likes of int, optional
        Relevant corpus rows of each query.
    k : int, default=10
    n_relevant : int or None, default=None
        Without labels or ``relevant``: how many of the ceiling's top results
        are relevant (``None``: ``k``).
    metric : {"cosine", "dot", "euclidean"}, default="cosine"
        Ranking used by every setting (the index's metric).
    batch_size : int or None
        Corpus rows per search chunk.
    csls : int or None, default=None
        Rank the *translated* settings by CSLS with this many neighbours
        (:func:`search_top_k`; needs ``metric="cosine"``), which can undo
        the hubness a map introduces; the ceiling and legacy settings keep
        plain cosines.

    Returns
    -------
    RetentionReport

    See Also
    --------
    search_top_k : the exact chunked search.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_latent import ProcrustesTranslator
    >>> from sklearn_latent.metrics import retention_report
    >>> rng = np.random.default_rng(0)
    >>> legacy = rng.normal(size=(700, 16))
    >>> rotation = np.linalg.qr(rng.normal(size=(16, 16)))[0]
    >>> new = legacy @ rotation + 0.05 * rng.normal(size=(700, 16))
    >>> t = ProcrustesTranslator().fit(legacy[:200], new[:200])   # calibration pairs
    >>> r = retention_report(new[600:], new[200:600], legacy[200:600],
    ...                      corpus_translator=t, k=10)
    >>> r.scores["ceiling"]["recall"], r.retention("translated_corpus") > 0.9
    (1.0, True)
    """
    metric = check_option(metric, "metric", SEARCH_METRICS)
    csls = _check_csls(csls, metric)
    if corpus_translator is None and query_translator is None:
        raise ValueError(
            "retention_report needs corpus_translator (legacy -> new) or query_translator "
            "(new -> legacy), or both."
        )
    _check_translator(corpus_translator, "corpus_translator")
    _check_translator(query_translator, "query_translator")
    queries_new = check_input(None, queries_new, reset=False, input_name="queries_new")
    corpus_new = check_input(None, corpus_new, reset=False, input_name="corpus_new")
    corpus_legacy = check_input(None, corpus_legacy, reset=False, input_name="corpus_legacy")
    n_q, n_c = queries_new.shape[0], corpus_new.shape[0]
    if corpus_legacy.shape[0] != n_c:
        raise ValueError(
            f"corpus_new and corpus_legacy must embed the same corpus rows; got "
            f"{n_c} and {corpus_legacy.shape[0]} rows."
        )
    if queries_new.shape[1] != corpus_new.shape[1]:
        raise ValueError(
            f"queries_new has {queries_new.shape[1]} features, corpus_new {corpus_new.shape[1]}."
        )
    if queries_legacy is not None:
        queries_legacy = check_input(None, queries_legacy, reset=False, input_name="queries_legacy")
        if queries_legacy.shape[0] != n_q:
            raise ValueError(
                f"queries_new and queries_legacy must embed the same queries; got {n_q} and "
                f"{queries_legacy.shape[0]} rows."
            )
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 1 <= k <= n_c:
        raise ValueError(f"k={k!r} must be an int with 1 <= k <= n_corpus={n_c}.")
    k = int(k)
    if n_relevant is None:
        n_relevant = k
    elif isinstance(n_relevant, bool) or not isinstance(n_relevant, numbers.Integral) or not (
        1 <= n_relevant <= n_c
    ):
        raise ValueError(f"n_relevant={n_relevant!r} must be an int with 1 <= n_relevant <= "
                         f"n_corpus={n_c}.")
    if (query_labels is None) != (corpus_labels is None):
        raise ValueError("query_labels and corpus_labels go together: give both or neither.")

    def search(Q, C, transform=None, top=k, hub=None):
        return search_top_k(Q, C, top, metric=metric, transform=transform,
                            batch_size=batch_size, csls=hub)[1]

    ceiling = search(queries_new, corpus_new, top=max(k, int(n_relevant)))
    found = {"ceiling": ceiling[:, :k]}
    if queries_legacy is not None:
        found["legacy"] = search(queries_legacy, corpus_legacy)
    if query_translator is not None:
        found["translated_queries"] = search(
            query_translator.transform(queries_new), corpus_legacy, hub=csls
        )
    if corpus_translator is not None:
        found["translated_corpus"] = search(queries_new, corpus_legacy, corpus_translator,
                                            hub=csls)

    if query_labels is not None:
        relevance = "labels"
        ql = _check_labels(query_labels, n_q, "query_labels")
        cl = _check_labels(corpus_labels, n_c, "corpus_labels")
        values, counts = np.unique(cl, return_counts=True)
        pos = np.searchsorted(values, ql).clip(0, len(values) - 1)
        n_rel = np.where(values[pos] == ql, counts[pos], 0)

        def judge(idx):
            return cl[idx] == ql[:, None], n_rel

    else:
        if relevant is None:
            relevance, relevant = f"ceiling_top_{n_relevant}", ceiling[:, :n_relevant]
        else:
            relevance = "given"
            if len(relevant) != n_q:
                raise ValueError(
                    f"relevant must hold one set of corpus rows per query ({n_q}); got "
                    f"{len(relevant)}."
                )
            for q, rel in enumerate(relevant):
                rel = np.asarray(rel).reshape(-1)
                if rel.size and (rel.min() < 0 or rel.max() >= n_c):
                    raise ValueError(
                        f"relevant[{q}] holds corpus rows outside [0, {n_c}): {rel.tolist()[:5]}"
                    )

        def judge(idx):
            return _hits_from_sets(idx, relevant)

    scores = {}
    for setting, idx in found.items():
        hits, n_rel_q = judge(idx)
        if not (n_rel_q > 0).any():
            raise ValueError("no query has a relevant corpus row: retention is undefined.")
        scores[setting] = _scores(hits, n_rel_q, k)
    return RetentionReport(k, relevance, int((n_rel_q > 0).sum()), n_c, scores, csls)

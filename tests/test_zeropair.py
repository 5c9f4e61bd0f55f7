"""Alignment without pairs: CSLS, 2-opt assignment, AnchorMatcher(seeds=None), its warning."""

import pickle
import warnings

import numpy as np
import pytest
import sklearn
import torch
from numpy.testing import assert_array_equal
from scipy.stats import ortho_group
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from sklearn_latent import AlignmentWarning, AnchorMatcher, ProcrustesTranslator
from sklearn_latent import matching
from sklearn_latent.functional import _matching as FM
from sklearn_latent.metrics import mean_rank, mean_reciprocal_rank, top_k_accuracy

# fewer runs and rounds than the defaults (the defaults run in the check_estimator battery)
AUTO = dict(n_runs=4, n_refine=10, random_state=0)
# one cluster count for the API tests: about 1 s a fit
FAST = dict(AUTO, n_centroids=16)


def _hierarchical(n=400, d=10, d_y=None, seed=1, isotropic=False):
    """Anisotropic, hierarchically clustered X; Y = X rotated (into d_y >= d), rows shuffled."""
    rng = np.random.default_rng(seed)
    scale = np.ones(d) if isotropic else np.geomspace(3.0, 0.3, d)
    top = rng.normal(size=(4, d)) * scale * 2.0
    sub = top[rng.integers(4, size=12)] + rng.normal(size=(12, d)) * scale
    X = sub[rng.integers(12, size=n)] + 0.5 * rng.normal(size=(n, d)) * scale
    d_y = d if d_y is None else d_y
    Q = ortho_group.rvs(d_y, random_state=seed)[:d]  # (d, d_y), orthonormal rows
    perm = rng.permutation(n)  # row j of Y is item perm[j]
    return X, (X @ Q + 3.0)[perm], perm


def _isotropic(n=400, d=10, seed=0, noise=0.5):
    """One isotropic Gaussian, rotated, shuffled, and ``noise`` of its scale in noise on
    top: every rotation fits it about equally well."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    perm = rng.permutation(n)
    Y = X @ ortho_group.rvs(d, random_state=seed) + noise * rng.normal(size=(n, d))
    return X, Y[perm], perm


def _precision(pairs, perm):
    return float(np.mean(perm[pairs[:, 1]] == pairs[:, 0]))


def _random_soft_map(X, Y, W, PX, PY, **kw):
    """A stand-in for the soft rounds that fails: a random orthogonal map."""
    gen = torch.Generator().manual_seed(0)
    return FM.polar(torch.randn((X.shape[1], Y.shape[1]), generator=gen,
                                dtype=torch.float64)).to(X.dtype)


def _soft_fails(monkeypatch):
    """Make the profile route's first try (the soft rounds) fail, so that its dropout
    streams run."""
    monkeypatch.setattr(FM, "refine_soft", _random_soft_map)


def _profiles_rescue(X, Y, perm, kw):
    """``discovery="centroids"`` fails and warns; the default ``"auto"`` keeps the profile
    route's map, finds the pairs (measured 1.0) and does not warn.  The "auto" matcher."""
    with pytest.warns(AlignmentWarning, match="unlikely to be right"):
        centroids = AnchorMatcher(discovery="centroids", **kw).fit(X, Y)
    assert _precision(centroids.matched_pairs_, perm) < 0.3
    with warnings.catch_warnings():
        warnings.simplefilter("error", AlignmentWarning)
        auto = AnchorMatcher(**kw).fit(X, Y)
    assert auto.discovery_ == "profiles"
    assert _precision(auto.matched_pairs_, perm) > 0.97
    return auto


# --------------------------------------------------------------------------
# functional pieces
# --------------------------------------------------------------------------
def _dense_csls(A, B, k):
    S = A @ B.T
    r_a = np.sort(S, axis=1)[:, ::-1][:, :k].mean(1)
    r_b = np.sort(S.T, axis=1)[:, ::-1][:, :k].mean(1)
    return 2 * S - r_a[:, None] - r_b[None, :]


def test_csls_equals_the_dense_formula_for_any_block_size():
    rng = np.random.default_rng(0)
    A = FM._normalize(torch.as_tensor(rng.normal(size=(70, 6))))
    B = FM._normalize(torch.as_tensor(rng.normal(size=(50, 6))))
    C = _dense_csls(A.numpy(), B.numpy(), 5)
    got = np.concatenate([S.numpy() for *_, S in FM.csls_blocks(A, B, 5)])
    np.testing.assert_allclose(got, C, atol=1e-12)
    rows = C.argmax(1)
    mutual_rows = np.flatnonzero(C.argmax(0)[rows] == np.arange(70))
    ref = FM.csls_mutual_nn(A, B, 5)
    assert_array_equal(ref[0].numpy(), mutual_rows)
    assert_array_equal(ref[1].numpy(), rows[mutual_rows])
    for batch_size in (1, 7, 70, 75):
        out = FM.csls_mutual_nn(A, B, 5, batch_size)
        for a, b in zip(out, ref):
            assert_array_equal(a.numpy(), b.numpy())
    # the dictionary and the alignment score from one evaluation: both as alone
    *dictionary, score, mutual = FM.csls_dictionary(A, B, 5)
    for a, b in zip(dictionary, ref):
        assert_array_equal(a.numpy(), b.numpy())
    assert (score, mutual) == FM.alignment_score(A, B, 5)
    assert score == pytest.approx(C.max(1).mean()) and mutual == len(mutual_rows) / 70


@pytest.mark.parametrize("shape", [(1, 1), (3, 700), (1030, 9), (512, 512)])
def test_blocked_transposed_copy_equals_the_transpose(shape, monkeypatch):
    M = torch.as_tensor(np.random.default_rng(0).normal(size=shape), dtype=torch.float32)
    for rows in (512, 7):
        monkeypatch.setattr(FM, "_TRANSPOSE_ROWS", rows)
        out = FM._transposed(M)
        assert out.is_contiguous() and torch.equal(out, M.T)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_relative_pseudo_pairs_equal_the_dense_formula(dtype, monkeypatch):
    # relative representations against the matched centroids, columns centered,
    # rows normalized (in place, float64 column means over row blocks), then the
    # mean of the top-k most similar target rows: as the plain numpy formula.  Seed 15:
    # every query's 5th and 6th similarities differ by >= 1.5e-3, so the top 5 is not
    # decided by float32 rounding (seed 3 had a gap of 5e-6)
    rng = np.random.default_rng(15)
    Xs = FM._normalize(torch.as_tensor(rng.normal(size=(30, 8)), dtype=dtype))
    Y = FM._normalize(torch.as_tensor(rng.normal(size=(90, 8)), dtype=dtype))
    CX = FM._normalize(torch.as_tensor(rng.normal(size=(12, 8)), dtype=dtype))
    CY = FM._normalize(torch.as_tensor(rng.normal(size=(12, 8)), dtype=dtype))

    def relative(Z, C):
        R = Z.numpy().astype(np.float64) @ C.numpy().astype(np.float64).T
        R -= R.mean(0)
        return R / np.linalg.norm(R, axis=1, keepdims=True)

    top = np.argsort(-(relative(Xs, CX) @ relative(Y, CY).T), axis=1, kind="stable")[:, :5]
    ref = Y.numpy().astype(np.float64)[top].mean(1)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    np.testing.assert_allclose(FM.relative_pseudo_pairs(Xs, Y, CX, CY, 5).numpy(), ref, atol=tol)
    # column means over several row blocks (here of 7 rows) give the same
    monkeypatch.setattr(FM, "_MEAN_BLOCK_ELEMENTS", 7 * 12)
    R = FM._relative_centered_normalized(Y, CY).numpy()
    np.testing.assert_allclose(R, relative(Y, CY), atol=tol)


def test_two_opt_gains_and_a_planted_permutation():
    rng = np.random.default_rng(0)
    C = rng.normal(size=(7, 3)) * [3.0, 1.0, 0.3]
    A = C @ C.T
    p = rng.permutation(7)
    G = FM._swap_gains(A, A[np.ix_(p, p)])
    objective = (A * A[np.ix_(p, p)]).sum()
    for i in range(7):
        for j in range(7):
            q = p.copy()
            q[i], q[j] = q[j], q[i]
            assert abs((A * A[np.ix_(q, q)]).sum() - objective - G[i, j]) < 1e-9
    # centroids of distinct, anisotropic clusters, listed in another order and rotated
    CY = (C @ ortho_group.rvs(3, random_state=0))[p]
    col, obj = FM.match_centroids(C, CY, n_restarts=10, rng=0)
    assert_array_equal(p[col], np.arange(7))  # CX[i] matched to the row of CY holding i
    assert obj == pytest.approx(1.0)


def test_similarity_profiles_ignore_rotation_and_row_order():
    # sorted similarities to the space's own rows: the profile of an item is the
    # same after a rotation (into another width) and a new order of the rows
    X, Y, perm = _hierarchical(n=300, d=8, d_y=12)
    rng = np.random.default_rng(0)
    PX = FM.similarity_profiles(FM.center_normalize(torch.as_tensor(X)), 1000, 100, rng)
    PY = FM.similarity_profiles(FM.center_normalize(torch.as_tensor(Y)), 1000, 100, rng)
    assert PX.shape == PY.shape == (300, 100)
    np.testing.assert_allclose(PY.numpy(), PX.numpy()[perm], atol=1e-8)
    np.testing.assert_allclose(torch.linalg.vector_norm(PX, dim=1).numpy(), 1.0)
    # above n_ref rows: the profiles against a sample of n_ref rows
    sub = FM.similarity_profiles(FM.center_normalize(torch.as_tensor(X)), 150, 100, rng)
    assert sub.shape == (300, 100) and not torch.allclose(sub, PX)
    short = FM.similarity_profiles(FM.center_normalize(torch.as_tensor(X)), 40, 100, rng)
    assert short.shape == (300, 40)  # never more order statistics than reference rows


def test_similarity_profiles_sort_blocks_within_working_memory(monkeypatch):
    # each block is sorted (values and int64 indices beside it): blocks of half the
    # rows of a plain similarity block keep it within scikit-learn's working_memory;
    # the blocks change nothing
    from sklearn import config_context

    from sklearn_latent import _backend

    Z = FM.center_normalize(torch.as_tensor(np.random.default_rng(0).normal(size=(3000, 8))))
    whole = FM.similarity_profiles(Z, 3000, 50, np.random.default_rng(0))
    rows, sort = [], torch.sort

    def spy(S, *args, **kw):
        rows.append(S.shape[0])
        return sort(S, *args, **kw)

    monkeypatch.setattr(torch, "sort", spy)
    with config_context(working_memory=16):
        blocked = FM.similarity_profiles(Z, 3000, 50, np.random.default_rng(0))
        plain = _backend.auto_batch_rows(8, 3000, 8, 3000)
        halved = _backend.auto_batch_rows(8, 6000, 8, 3000)
    assert rows[0] == halved < plain and max(rows) < 2 * halved  # the last takes the rest
    assert halved * 3000 * (8 + 8 + 8) <= 16 * 2**20  # block, sorted values, indices
    torch.testing.assert_close(blocked, whole, rtol=0, atol=0)


def _profiles(X, Y):
    Xn, Yn = FM.center_normalize(torch.as_tensor(X)), FM.center_normalize(torch.as_tensor(Y))
    rng = np.random.default_rng(0)
    PX = FM.similarity_profiles(Xn, len(X), 100, rng)
    return Xn, Yn, PX, FM.similarity_profiles(Yn, len(Y), 100, rng)


def _first_match_precision(Xn, Yn, W, perm):
    fwd = FM._union_dictionary(FM._normalize(Xn @ W), Yn, 10, None)[0].numpy()
    return float(np.mean(fwd == np.argsort(perm)))


def test_refine_soft_finds_the_rotation_from_the_profiles():
    # 32 anisotropic dimensions, rotated, shuffled, with noise: the profiles' soft start
    # is weak (its first matches are right for 3 % of the rows), the annealed rounds
    # end at the true map; deterministic, the same for any block size
    rng = np.random.default_rng(0)
    scale = np.geomspace(1.0, 0.3, 32)
    X = rng.normal(size=(500, 32)) * scale
    perm = rng.permutation(500)
    Y = (X @ ortho_group.rvs(32, random_state=0) + 0.4 * scale.mean()
         * rng.normal(size=(500, 32)))[perm]
    Xn, Yn, PX, PY = _profiles(X, Y)
    start = FM.refine_soft(Xn, Yn, None, PX, PY, temperatures=())
    assert _first_match_precision(Xn, Yn, start, perm) < 0.3  # measured 0.03
    W = FM.refine_soft(Xn, Yn, None, PX, PY)
    torch.testing.assert_close(W @ W.T, torch.eye(32, dtype=W.dtype))
    assert _first_match_precision(Xn, Yn, W, perm) > 0.97  # measured 1.0
    blocked = FM.refine_soft(Xn, Yn, None, PX, PY, batch_size=32)
    torch.testing.assert_close(blocked, W, rtol=0, atol=1e-10)
    # into another width (zero columns added to Y): a semi-orthogonal map
    wide = torch.cat([Yn, torch.zeros(500, 4, dtype=Yn.dtype)], dim=1)
    W_wide = FM.refine_soft(Xn, wide, None, PX, PY)
    assert W_wide.shape == (32, 36)
    torch.testing.assert_close(W_wide[:, :32], W, rtol=0, atol=1e-8)
    # from a given map, without the profiles' prior: rounds on the cosines alone
    again = FM.refine_soft(Xn, Yn, W, None, None, temperatures=(0.03,), n_rounds=3)
    assert _first_match_precision(Xn, Yn, again, perm) > 0.97  # measured 1.0


def test_refine_soft_counts_the_seeds_in_every_fit():
    # a random start and no prior at a low temperature stays wrong; 40 known pairs,
    # each weighing as 10 rows, pull every fit to the true map
    X, Y, perm = _hierarchical(n=400, d=8, seed=3)
    Xn, Yn, _, _ = _profiles(X, Y)
    Q = FM.polar(torch.as_tensor(np.random.default_rng(0).normal(size=(8, 8))))
    alone = FM.refine_soft(Xn, Yn, Q, None, None, temperatures=(0.03,), n_rounds=5)
    assert _first_match_precision(Xn, Yn, alone, perm) < 0.5  # measured 0.01
    rows = np.arange(40)
    sx, sy = Xn[rows], Yn[torch.as_tensor(np.argsort(perm)[rows])]
    W = FM.refine_soft(Xn, Yn, Q, None, None, temperatures=(0.03,), n_rounds=5,
                       seeds_x=sx, seeds_y=sy, seed_weight=10.0)
    assert _first_match_precision(Xn, Yn, W, perm) > 0.95  # measured 0.99


def test_stochastic_self_learning_from_a_weak_start():
    # a start from 40 right pairs among 400 (the map pairs 2 % right): the stochastic
    # rounds end at the true map (measured 0.9975 from 8 such starts x 3 seeds), are
    # deterministic and are the same for any block size
    X, Y, perm = _hierarchical(n=400, seed=2)
    Xn, Yn = FM.center_normalize(torch.as_tensor(X)), FM.center_normalize(torch.as_tensor(Y))
    rng = np.random.default_rng(0)
    inv = np.argsort(perm)
    cols = rng.permutation(400)
    right = rng.choice(400, 40, replace=False)
    cols[right] = inv[right]
    W0 = FM.procrustes_polar(Xn, Yn[torch.as_tensor(cols)])
    start = FM._union_dictionary(FM._normalize(Xn @ W0), Yn, 10, None)[0].numpy()
    assert np.mean(start == inv) < 0.05
    W, rounds = FM.refine_stochastic(Xn, Yn, W0, rounds_per_level=3, seed=1)
    assert 12 < rounds <= 200
    fwd = FM._union_dictionary(FM._normalize(Xn @ W), Yn, 10, None)[0].numpy()
    assert np.mean(fwd == inv) > 0.97  # measured 1.0
    again, _ = FM.refine_stochastic(Xn, Yn, W0, rounds_per_level=3, seed=1, batch_size=32)
    np.testing.assert_allclose(again.numpy(), W.numpy(), atol=1e-10)
    # the seed draws the dropout: after the same 3 rounds, another seed, another map
    first, _ = FM.refine_stochastic(Xn, Yn, W0, rounds_per_level=3, seed=1, max_rounds=3)
    other, _ = FM.refine_stochastic(Xn, Yn, W0, rounds_per_level=3, seed=2, max_rounds=3)
    assert not torch.allclose(other, first)


def _keep_schedule(monkeypatch, objectives, asked=None, answer=False, **kw):
    """The keep probability of each round of ``refine_stochastic`` when its rounds read
    the given objectives (one per round, the last repeated), from the dropout masks;
    with ``asked`` (a list), ``done`` appends the rounds run when asked and answers
    ``answer``."""
    seen = []
    if asked is not None:
        kw["done"] = lambda W: asked.append(len(seen)) or answer

    def scripted(A, B, k, batch_size, dropped=None):
        seen.append(1.0 if dropped is None else 1.0 - float(dropped.to(torch.float64).mean()))
        rows = torch.arange(A.shape[0])
        return rows, rows, objectives[min(len(seen), len(objectives)) - 1]

    monkeypatch.setattr(FM, "_union_dictionary", scripted)
    X = FM._normalize(torch.as_tensor(np.random.default_rng(0).normal(size=(128, 4))))
    _, rounds = FM.refine_stochastic(X, X, torch.eye(4, dtype=X.dtype), keep=0.25, **kw)
    assert rounds == len(seen)
    return np.round(np.array(seen) * 4) / 4  # 128 x 128 masks: within 0.02 of keep


def test_refine_stochastic_stall_schedule_doubles_keep_after_rounds_without_a_new_best(
        monkeypatch):
    # the objective rises for 10 rounds, then stays: with stall=3 keep stays at 0.25
    # through those 10 and 3 more, 3 rounds at 0.5, then one at 1, which ends it
    rising = [0.1 * (i + 1) for i in range(10)]
    keeps = _keep_schedule(monkeypatch, rising, stall=3, rounds_per_level=2)
    assert_array_equal(keeps, [0.25] * 13 + [0.5] * 3 + [1.0])
    # a fixed schedule (stall=None) doubles keep every rounds_per_level rounds whatever
    # the objective, and at keep 1 goes on while the objective rises
    keeps = _keep_schedule(monkeypatch, rising + [1.1, 1.2, 1.3], rounds_per_level=2)
    assert_array_equal(keeps, [0.25] * 2 + [0.5] * 2 + [1.0] * 10)
    # never more than max_rounds
    keeps = _keep_schedule(monkeypatch, rising, stall=3, max_rounds=8)
    assert_array_equal(keeps, [0.25] * 8)
    # done(W) is asked whenever keep is about to double, and a true answer ends the rounds
    asked = []
    keeps = _keep_schedule(monkeypatch, rising, stall=3, done=lambda W: asked.append(W) or 0)
    assert len(keeps) == 17 and len(asked) == 2
    asked.clear()
    keeps = _keep_schedule(monkeypatch, rising, stall=3, done=lambda W: asked.append(W) or 1)
    assert len(keeps) == 13 and len(asked) == 1
    asked.clear()
    keeps = _keep_schedule(monkeypatch, rising, rounds_per_level=2,
                           done=lambda W: asked.append(W) or 0)
    assert len(keeps) == 11 and len(asked) == 2  # 0.25 -> 0.5 and 0.5 -> 1


def test_refine_stochastic_asks_done_when_the_objective_rises(monkeypatch):
    # rise=0.15: asked at round 4 (0.26 from the first round's 0.1), not at round 7 (0.4
    # is 0.14 above the 0.26 of the last ask), at the raise after round 10, not at round
    # 11 (the first round at the new keep: its 0.6 is measured from), at the raise after 14
    objectives = [0.1, 0.15, 0.2, 0.26, 0.3, 0.36, 0.4, 0.4, 0.4, 0.4, 0.6]
    asked = []
    keeps = _keep_schedule(monkeypatch, objectives, asked, stall=3, rise=0.15)
    assert asked == [4, 10, 14]
    assert_array_equal(keeps, [0.25] * 10 + [0.5] * 4 + [1.0])
    # a true answer ends the rounds at the rise; without rise only the raises are asked
    asked = []
    keeps = _keep_schedule(monkeypatch, objectives, asked, True, stall=3, rise=0.15)
    assert len(keeps) == 4 and asked == [4]
    asked = []
    _keep_schedule(monkeypatch, objectives, asked, stall=3)
    assert asked == [10, 14]


def test_union_dictionary_drops_the_masked_entries():
    rng = np.random.default_rng(0)
    A = FM._normalize(torch.as_tensor(rng.normal(size=(40, 6))))
    B = FM._normalize(torch.as_tensor(rng.normal(size=(50, 6))))
    C = torch.as_tensor(_dense_csls(A.numpy(), B.numpy(), 10))
    fwd, bwd, objective = FM._union_dictionary(A, B, 10, 32)
    assert_array_equal(fwd.numpy(), C.argmax(1).numpy())
    assert_array_equal(bwd.numpy(), C.argmax(0).numpy())
    S = A @ B.T
    assert objective == pytest.approx(0.5 * float(S.max(1).values.mean() + S.max(0).values.mean()))
    dropped = torch.zeros(40, 50, dtype=torch.bool)
    dropped[torch.arange(40), fwd] = True  # every row's best is dropped: its second wins
    fwd2, _, _ = FM._union_dictionary(A, B, 10, 32, dropped)
    assert_array_equal(fwd2.numpy(), torch.topk(C, 2, dim=1).indices[:, 1].numpy())


def test_dropout_masks_are_uniform_random_bytes():
    # each byte of the 64-bit draws is uniform (the sign byte too), any shape
    generator = torch.Generator().manual_seed(0)
    b = FM._random_bytes((1000, 803), generator, "cpu")
    assert b.shape == (1000, 803) and b.dtype == torch.uint8
    by_position = b.reshape(-1)[:800_000].view(-1, 8).double().mean(dim=0)
    assert torch.all((by_position - 127.5).abs() < 1.5)  # measured within 0.3
    counts = torch.bincount(b.reshape(-1).long(), minlength=256).double()
    assert float(counts.min()) > 0.9 * 803_000 / 256  # measured 0.97
    # a seed gives its masks again
    again = FM._random_bytes((1000, 803), torch.Generator().manual_seed(0), "cpu")
    assert torch.equal(b, again)


def test_union_dictionary_with_plain_cosines_and_any_column_chunk(monkeypatch):
    # k=0: the best plain cosine both ways (the hubness terms left out)
    rng = np.random.default_rng(1)
    A = FM._normalize(torch.as_tensor(rng.normal(size=(300, 5))))
    B = FM._normalize(torch.as_tensor(rng.normal(size=(280, 5))))
    S = A @ B.T
    fwd, bwd, objective = FM._union_dictionary(A, B, 0, None)
    assert_array_equal(fwd.numpy(), S.argmax(1).numpy())
    assert_array_equal(bwd.numpy(), S.argmax(0).numpy())
    assert np.isfinite(objective)
    # the column maxima are taken a few rows at a time: the chunk changes nothing
    reference = FM._union_dictionary(A, B, 10, None)
    for chunk in (1, 7, 1000):
        monkeypatch.setattr(FM, "_COLUMN_CHUNK", chunk)
        got = FM._union_dictionary(A, B, 10, None)
        assert_array_equal(got[0].numpy(), reference[0].numpy())
        assert_array_equal(got[1].numpy(), reference[1].numpy())
        assert got[2] == reference[2]


# --------------------------------------------------------------------------
# the pair-free pipeline: known answers
# --------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1])
def test_no_pairs_recovers_the_true_permutation(backend, seed):
    if seed == 0 and backend.name != "numpy":
        pytest.skip("one data set is enough for the other backends (run time)")
    X, Y, perm = _hierarchical(seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("error", AlignmentWarning)
        matcher = AnchorMatcher(**AUTO).fit(backend.asarray(X), backend.asarray(Y))
    pairs = matcher.matched_pairs_
    assert pairs.shape[0] > 0.9 * len(X) and not matcher.is_seed_.any()
    assert _precision(pairs, perm) > 0.97  # measured 1.0
    assert matcher.mutual_fraction_ > 0.9 > 0.5 > matcher.null_mutual_fraction_
    # translation as good as Procrustes on all true pairs (the supervised ceiling)
    Y_true = Y[np.argsort(perm)]
    ceiling = top_k_accuracy(ProcrustesTranslator().fit(X, Y_true).transform(X), Y_true)
    out = backend.to_numpy(matcher.transform(backend.asarray(X)))
    assert top_k_accuracy(out, Y_true) > ceiling - 0.03


@pytest.mark.parametrize("backend_name", ["numpy", "torch"])
def test_profiles_discovery_recovers_the_permutation(backend_name):
    X, Y, perm = _hierarchical(n=400, d=8, d_y=12, seed=3)
    if backend_name == "torch":
        X, Y = torch.as_tensor(X), torch.as_tensor(Y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", AlignmentWarning)
        matcher = AnchorMatcher(discovery="profiles", random_state=0).fit(X, Y)
    assert matcher.discovery_ == "profiles" and matcher.n_centroids_ == 0
    assert matcher.candidate_scores_.shape == (0, 3)
    assert _precision(matcher.matched_pairs_, perm) > 0.97  # measured 1.0
    assert matcher.transform(X).shape == (400, 12)


def test_profiles_discovery_without_hubness_correction():
    # csls_k=0 matches by plain cosines in every step of the route (it produced NaN
    # scores before, and a wrong map with a warning)
    X, Y, perm = _hierarchical(n=400, d=8, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", AlignmentWarning)
        matcher = AnchorMatcher(discovery="profiles", csls_k=0, random_state=0).fit(X, Y)
    assert _precision(matcher.matched_pairs_, perm) > 0.97  # measured 1.0


def test_profile_route_tries_more_dropout_streams_while_they_fail(monkeypatch):
    X, Y, perm = _hierarchical(n=400, d=8, seed=3)
    _soft_fails(monkeypatch)  # the first try (the soft rounds) fails: the streams run
    real = FM.refine_stochastic
    streams = []

    def noise(W):  # a random orthogonal map: a stream that never took off
        gen = torch.Generator().manual_seed(len(streams))
        return FM.polar(torch.randn(W.shape, generator=gen, dtype=torch.float64)).to(W.dtype)

    def failing(fail):
        def stream(X_, Y_, W, **kw):
            streams.append(kw)
            return (noise(W), 1) if len(streams) - 1 in fail else real(X_, Y_, W, **kw)
        return stream

    def fit():
        streams.clear()
        with warnings.catch_warnings():
            warnings.simplefilter("error", AlignmentWarning)
            matcher = AnchorMatcher(discovery="profiles", random_state=0).fit(X, Y)
        assert _precision(matcher.matched_pairs_, perm) > 0.97  # measured 1.0

    # the first stream fails: a second on the same fixed schedule, another seed
    monkeypatch.setattr(FM, "refine_stochastic", failing((0,)))
    fit()
    assert len(streams) == 2 and streams[0]["seed"] != streams[1]["seed"]
    assert streams[0]["stall"] is None and streams[1]["stall"] is None
    assert streams[0]["done"] is None and streams[1]["done"] is None
    # both fail: the last stream, on the stall schedule, which ends at the first map
    # that passes the failure signal
    monkeypatch.setattr(FM, "refine_stochastic", failing((0, 1)))
    fit()
    assert len(streams) == matching.PROFILE_TRIES == 3
    assert streams[2]["stall"] == matching.STALL_ROUNDS and streams[2]["done"] is not None
    assert streams[2]["max_rounds"] == matching.MAX_STALL_ROUNDS

    def passes_then_drifts(X_, Y_, W, **kw):
        # the last stream's map passes when checked, then the stream drifts off: the
        # checked map is kept
        streams.append(kw)
        if kw["done"] is None:
            return noise(W), 1
        good = real(X_, Y_, W, **dict(kw, stall=None, done=None))[0]
        assert kw["done"](good)
        return noise(W), 1

    monkeypatch.setattr(FM, "refine_stochastic", passes_then_drifts)
    fit()
    # every stream fails: no more than PROFILE_TRIES, and the warning
    streams.clear()
    monkeypatch.setattr(FM, "refine_stochastic", failing((0, 1, 2, 3)))
    with pytest.warns(AlignmentWarning, match="unlikely to be right"):
        AnchorMatcher(discovery="profiles", random_state=0).fit(X, Y)
    assert len(streams) == 3


def test_profile_route_keeps_the_soft_map_where_it_passes(monkeypatch):
    # the first try: soft rounds with the profiles' prior, then without; their map
    # passes the failure signal and no dropout stream runs
    X, Y, perm = _hierarchical(n=400, d=8, d_y=12, seed=3)
    calls, streams, refine_soft = [], [], FM.refine_soft

    def spy_soft(Xa, Ya, W, PX, PY, **kw):
        calls.append((W is None, PX is not None, kw["temperatures"]))
        return refine_soft(Xa, Ya, W, PX, PY, **kw)

    monkeypatch.setattr(FM, "refine_soft", spy_soft)
    monkeypatch.setattr(FM, "refine_stochastic", lambda *a, **kw: streams.append(kw))
    with warnings.catch_warnings():
        warnings.simplefilter("error", AlignmentWarning)
        matcher = AnchorMatcher(discovery="profiles", random_state=0).fit(X, Y)
    assert calls == [(True, True, matching.SOFT_PRIOR_TEMPERATURES),
                     (False, False, matching.SOFT_TEMPERATURES)]
    assert streams == []
    assert _precision(matcher.matched_pairs_, perm) > 0.97  # measured 1.0


def test_auto_falls_back_to_profiles_where_the_centroids_fail(monkeypatch):
    # centroid matching that pairs the centroids at random (a failure of step 1):
    # "centroids" keeps that map and warns; "auto" sees the failure signal, runs the
    # profile route, and keeps it because it passes the signal
    X, Y, perm = _hierarchical(n=400, seed=3)
    centroid_pairs = FM.centroid_pairs

    def scrambled(X_, Y_, k, n_runs, subsample, n_restarts, rng):
        CX, CY, obj = centroid_pairs(X_, Y_, k, n_runs, subsample, n_restarts, rng)
        return CX, CY[torch.as_tensor(np.random.default_rng(0).permutation(len(CY)))], obj

    monkeypatch.setattr(FM, "centroid_pairs", scrambled)
    auto = _profiles_rescue(X, Y, perm, dict(FAST, n_refine=0, n_self_learning=1))
    assert auto.candidate_scores_.shape == (1, 3)  # the centroid candidate that failed
    # where the centroid route passes, "auto" is "centroids", with the same result
    monkeypatch.setattr(FM, "centroid_pairs", centroid_pairs)
    a, c = AnchorMatcher(**FAST).fit(X, Y), AnchorMatcher(discovery="centroids", **FAST).fit(X, Y)
    assert a.discovery_ == c.discovery_ == "centroids"
    assert_array_equal(a.matched_pairs_, c.matched_pairs_)


def test_different_widths_and_row_counts():
    X, Y, perm = _hierarchical(d=8, d_y=14)
    keep = np.flatnonzero(perm < 300)  # Y holds 300 of X's 400 items
    matcher = AnchorMatcher(**AUTO).fit(X, Y[keep])
    assert _precision(matcher.matched_pairs_, perm[keep]) > 0.95
    assert matcher.transform(X).shape == (400, 14)
    assert matcher.get_feature_names_out().tolist()[:2] == ["anchormatcher0", "anchormatcher1"]


def test_seeds_join_as_fixed_pairs_and_n_anchors_keeps_the_most_confident():
    X, Y, perm = _hierarchical()
    inv = np.argsort(perm)
    seeds = np.stack([np.arange(3), inv[:3]], axis=1)
    matcher = AnchorMatcher(50, seeds=seeds, **FAST).fit(X, Y)
    assert_array_equal(matcher.matched_pairs_[:3], seeds)
    assert matcher.matched_pairs_.shape == (50, 2)
    assert np.isinf(matcher.confidence_[:3]).all()
    assert (np.diff(matcher.confidence_[3:]) <= 0).all()
    assert _precision(matcher.matched_pairs_, perm) > 0.97


def test_isotropic_or_unrelated_spaces_warn_instead_of_a_silent_wrong_map():
    # no geometry tells the points of a noisy isotropic cloud apart: both routes
    # fail and the warning says so
    X, Y, perm = _isotropic()
    with pytest.warns(AlignmentWarning, match="unlikely to be right"):
        matcher = AnchorMatcher(**AUTO).fit(X, Y)
    assert _precision(matcher.matched_pairs_, perm) < 0.3  # the warning is deserved
    # measured: 62 % of the rows are mutual matches, as from a random start (66 %)
    assert matcher.mutual_fraction_ < 0.5 * (1 + matcher.null_mutual_fraction_)
    # of two failed maps, the one with more mutual matches is kept
    with pytest.warns(AlignmentWarning, match="unlikely to be right"):
        centroids = AnchorMatcher(discovery="centroids", **AUTO).fit(X, Y)
    assert matcher.mutual_fraction_ >= centroids.mutual_fraction_
    unrelated = np.random.default_rng(1).normal(size=(300, 12))
    with pytest.warns(AlignmentWarning, match="unlikely to be right"):
        AnchorMatcher(**FAST).fit(X, unrelated)


def test_two_maps_that_fit_equally_well_warn_as_ambiguous(monkeypatch):
    # a point set symmetric under x -> -x: W and -W fit it equally well (every row a
    # mutual match under both) and pair the rows differently.  The final rounds are
    # made to end on the other map: it passes the failure signal, the candidates
    # (measured: every one passes) disagree with it, and the warning says so
    P, _, _ = _hierarchical(n=200, seed=1)
    P = P - P.mean(axis=0)
    X = np.vstack([P, -P])
    perm = np.random.default_rng(0).permutation(400)
    Y = np.empty_like(X)
    Y[perm] = X @ ortho_group.rvs(10, random_state=0)
    real = FM.refine_by_neighbours
    final_rounds = AUTO["n_refine"] - max(1, AUTO["n_refine"] // 5)

    def other_map(X_, Y_, W, n_rounds, **kw):
        W = real(X_, Y_, W, n_rounds, **kw)
        return -W if n_rounds == final_rounds else W

    monkeypatch.setattr(FM, "refine_by_neighbours", other_map)
    with pytest.warns(AlignmentWarning, match="ambiguous: another candidate map fits"):
        matcher = AnchorMatcher(**AUTO).fit(X, Y)
    # the kept map passes the failure signal: only the agreement can tell
    assert matcher.mutual_fraction_ > 0.9 > 0.5 > matcher.null_mutual_fraction_
    assert _precision(matcher.matched_pairs_, perm) < 0.1  # each x paired with -x's partner


def test_an_exact_rotated_copy_of_isotropic_data_is_found_by_its_profiles():
    # without noise the same isotropic cloud, rotated and shuffled, has the same sorted
    # similarities in both spaces: the centroid route fails (warned), the profile
    # route of "auto" finds every pair
    X, Y, perm = _isotropic(noise=0.0)
    _profiles_rescue(X, Y, perm, AUTO)


def test_no_warning_when_the_seeds_determine_the_map():
    # related but far from isometric (noise as large as the signal): even the true map
    # makes few rows mutual matches (measured 0.59 against a random start's 0.60), so
    # the pair-free signal fires; with more known pairs than dimensions it does not apply
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 10))
    perm = rng.permutation(400)
    Y = (X @ ortho_group.rvs(10, random_state=0) + rng.normal(size=(400, 10)))[perm]
    inv = np.argsort(perm)
    seeds = np.stack([np.arange(400), inv], axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", AlignmentWarning)
        matcher = AnchorMatcher(seeds=seeds, **FAST).fit(X, Y)
    assert matcher.mutual_fraction_ < 0.5 * (1 + matcher.null_mutual_fraction_)
    assert_array_equal(matcher.matched_pairs_[:400], seeds)
    # 10 seeds (not more than the 10 dimensions) leave it to the signal: warned
    with pytest.warns(AlignmentWarning, match="unlikely to be right"):
        AnchorMatcher(seeds=seeds[:10], **FAST).fit(X, Y)


def test_deterministic_under_random_state():
    X, Y, _ = _hierarchical(n=300, seed=1)
    a = AnchorMatcher(**FAST).fit(X, Y)
    b = AnchorMatcher(**FAST).fit(X, Y)
    assert_array_equal(a.matched_pairs_, b.matched_pairs_)
    assert_array_equal(a.transform(X), b.transform(X))
    assert a.alignment_score_ == b.alignment_score_


def test_above_refine_rows_self_learning_runs_on_a_sample_of_x(monkeypatch):
    # above REFINE_ROWS rows of X, every CSLS evaluation but the last runs on a
    # fixed sample of X against all of Y; the last one, over all rows, gives the pairs
    X, Y, perm = _hierarchical(n=600, seed=1)
    monkeypatch.setattr(matching, "REFINE_ROWS", 250)
    queries, best_matches = [], FM._best_matches

    def spy(A, B, k, batch_size):
        queries.append((A.shape[0], B.shape[0]))
        return best_matches(A, B, k, batch_size)

    monkeypatch.setattr(FM, "_best_matches", spy)
    with warnings.catch_warnings():
        warnings.simplefilter("error", AlignmentWarning)
        matcher = AnchorMatcher(**AUTO).fit(X, Y)
    assert queries.count((600, 600)) == 1
    assert {q for q in queries if q != (600, 600)} == {(250, 600)}  # never a sample of Y
    pairs = matcher.matched_pairs_
    assert np.unique(pairs[:, 0]).shape[0] > 0.9 * 600 > 250  # rows outside the sample too
    assert _precision(pairs, perm) > 0.97
    # the found map and the null measured on the same sample
    assert matcher.mutual_fraction_ > 0.9 > 0.5 > matcher.null_mutual_fraction_
    again = AnchorMatcher(**AUTO).fit(X, Y)  # the sample follows random_state
    assert_array_equal(again.matched_pairs_, pairs)
    assert again.alignment_score_ == matcher.alignment_score_
    assert_array_equal(again.transform(X), matcher.transform(X))
    Xi, Yi, perm_i = _isotropic()
    monkeypatch.setattr(matching, "REFINE_ROWS", 200)
    with pytest.warns(AlignmentWarning, match="unlikely to be right"):
        iso = AnchorMatcher(**AUTO).fit(Xi, Yi)
    assert _precision(iso.matched_pairs_, perm_i) < 0.3


def test_profile_route_samples_the_same_items_of_both_spaces(monkeypatch):
    # above PROFILE_ROWS rows the profile route runs on the PROFILE_ROWS rows of each
    # space farthest from its mean: an order a rotation, a shift and a shuffle leave
    # unchanged, so both samples hold the same items (independent random samples of
    # 400 of 600 rows would share about two thirds of them); its dropout rounds on
    # the REFINE_ROWS farthest of them
    X, Y, perm = _hierarchical(n=600, seed=1)
    monkeypatch.setattr(matching, "REFINE_ROWS", 250)
    monkeypatch.setattr(matching, "PROFILE_ROWS", 400)
    seen, profile_map, refine_stochastic = [], FM.profile_map, FM.refine_stochastic

    def spy(Xs, Ys, *args, **kw):
        seen.append((Xs, Ys))
        return profile_map(Xs, Ys, *args, **kw)

    def spy_stochastic(Xd, Yd, *args, **kw):
        seen.append((Xd, Yd))
        return refine_stochastic(Xd, Yd, *args, **kw)

    def spy_soft(Xa, Ya, W, PX, PY, **kw):  # records its rows, then fails
        seen.append((Xa, Ya))
        return _random_soft_map(Xa, Ya, W, PX, PY)

    monkeypatch.setattr(matching, "SOFT_ROWS", 300)
    monkeypatch.setattr(FM, "profile_map", spy)
    monkeypatch.setattr(FM, "refine_stochastic", spy_stochastic)
    monkeypatch.setattr(FM, "refine_soft", spy_soft)
    with warnings.catch_warnings():
        warnings.simplefilter("error", AlignmentWarning)
        matcher = AnchorMatcher(discovery="profiles", random_state=0).fit(X, Y)
    # two soft calls (with the prior, then without), the profiles' first map (the
    # streams' start), one dropout stream (the first passes)
    (Xa, Ya), soft_again, (Xs, Ys), (Xd, Yd) = seen
    assert soft_again[0].shape == Xa.shape
    order_x = np.argsort(-np.linalg.norm(X - X.mean(axis=0), axis=1))
    order_y = np.argsort(-np.linalg.norm(Y - Y.mean(axis=0), axis=1))
    Xn, Yn = FM.center_normalize(torch.as_tensor(X)), FM.center_normalize(torch.as_tensor(Y))
    for got, Z, order, rows in ((Xs, Xn, order_x, 400), (Ys, Yn, order_y, 400),
                                (Xa, Xn, order_x, 300), (Ya, Yn, order_y, 300),
                                (Xd, Xn, order_x, 250), (Yd, Yn, order_y, 250)):
        assert_array_equal(got.numpy(), Z[np.sort(order[:rows])].numpy())
    assert np.intersect1d(order_x[:400], perm[order_y[:400]]).shape[0] > 0.95 * 400
    assert _precision(matcher.matched_pairs_, perm) > 0.97  # measured 1.0
    # every row up to PROFILE_ROWS, farthest first
    for n in (200, 400, 1000):
        Z = np.random.default_rng(0).normal(size=(n, 3))
        far = np.linalg.norm(Z - Z.mean(axis=0), axis=1)
        got = matching._farthest_rows(torch.as_tensor(Z)).numpy()
        assert_array_equal(got, np.argsort(-far)[:min(n, 400)])


def test_profile_route_pairs_every_row_once_for_the_map_it_keeps(monkeypatch):
    # above REFINE_ROWS rows of X the maps are checked on a sample of X; the pairs of
    # every row (an n_x x n_y pass) come once, for the map kept, whatever its route and
    # however many dropout streams and checks ran
    X, Y, perm = _hierarchical(n=600, seed=1)
    monkeypatch.setattr(matching, "REFINE_ROWS", 250)
    monkeypatch.setattr(matching, "PROFILE_ROWS", 400)
    full, csls_mutual_nn = [], FM.csls_mutual_nn

    def spy(A, *args, **kw):
        full.append(A.shape[0] == len(X))
        return csls_mutual_nn(A, *args, **kw)

    def never_takes_off(X_, Y_, W, **kw):
        gen = torch.Generator().manual_seed(kw["seed"])
        return FM.polar(torch.randn(W.shape, generator=gen, dtype=W.dtype)), 1

    monkeypatch.setattr(FM, "csls_mutual_nn", spy)
    with warnings.catch_warnings():
        warnings.simplefilter("error", AlignmentWarning)
        matcher = AnchorMatcher(discovery="profiles", random_state=0).fit(X, Y)
    assert sum(full) == 1
    assert _precision(matcher.matched_pairs_, perm) > 0.97  # measured 1.0
    assert matcher.matched_pairs_[:, 0].max() >= 250  # pairs beyond the sample of X
    full.clear()
    AnchorMatcher(random_state=0).fit(X, Y)  # "auto": the centroid route's map, once too
    assert sum(full) == 1
    full.clear()
    monkeypatch.setattr(FM, "refine_stochastic", never_takes_off)
    _soft_fails(monkeypatch)
    with pytest.warns(AlignmentWarning, match="unlikely to be right"):
        AnchorMatcher(discovery="profiles", random_state=0).fit(X, Y)
    assert sum(full) == 1


def test_pair_free_blocks_follow_working_memory_and_never_change_the_result():
    # the pair-free pipeline never forms an n_x x n_y similarity matrix: with
    # batch_size None or "auto" its blocks come from scikit-learn's working_memory
    X, Y, _ = _hierarchical(n=300, seed=1)
    ref = AnchorMatcher(batch_size=32, **FAST).fit(X, Y)
    for batch_size in (None, "auto"):
        with sklearn.config_context(working_memory=1):  # 1 MiB: many blocks here
            got = AnchorMatcher(batch_size=batch_size, **FAST).fit(X, Y)
        assert_array_equal(got.matched_pairs_, ref.matched_pairs_)
        assert got.alignment_score_ == pytest.approx(ref.alignment_score_, rel=1e-12)
    Q, B = torch.zeros(1000, 16), torch.zeros(2000, 16)
    with sklearn.config_context(working_memory=1):
        blocks = FM._blocks(Q, B, None)
    sizes = [stop - start for start, stop in blocks]
    assert sum(sizes) == 1000 and len(sizes) > 10
    assert max(sizes) * (16 + 2000) * 4 * 2 <= 2**20  # a block and its temporaries in 1 MiB
    assert FM._blocks(Q, B, 700) == [(0, 704), (704, 1000)]  # an int: as given (32-row multiples)


def test_pickle_pipeline_and_pandas_output():
    X, Y, perm = _hierarchical(n=300)
    labels = (X[:, 0] > np.median(X[:, 0])).astype(int)
    matcher = AnchorMatcher(**AUTO).fit(X, Y)
    other = pickle.loads(pickle.dumps(matcher))
    assert_array_equal(other.transform(X), matcher.transform(X))
    head = LogisticRegression().fit(Y, labels[perm])  # a classifier of the target space
    pipe = make_pipeline(matcher, head)
    ceiling = make_pipeline(ProcrustesTranslator().fit(X, Y[np.argsort(perm)]), head)
    # zero-shot stitching through the found map, as through the map fitted on all pairs
    assert pipe.score(X, labels) > ceiling.score(X, labels) - 0.03
    df = AnchorMatcher(**FAST).set_output(transform="pandas").fit(X, Y).transform(X)
    assert list(df.columns[:2]) == ["anchormatcher0", "anchormatcher1"]


# --------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------
def test_bad_input_raises_clearly():
    X, Y, _ = _hierarchical(n=60)
    with pytest.raises(ValueError, match=r"n_centroids=20 leaves fewer than 5 rows per cluster"):
        AnchorMatcher(n_centroids=20).fit(X, Y)
    with pytest.raises(ValueError, match=r"needs at least 10 rows .* n_samples=8"):
        AnchorMatcher().fit(X[:8], Y)
    with pytest.raises(ValueError, match="y is constant"):
        AnchorMatcher(n_centroids=4).fit(X, np.ones_like(Y))
    with pytest.raises(ValueError, match="NaN"):
        AnchorMatcher(n_centroids=4).fit(np.where(X > 2, np.nan, X), Y)
    with pytest.raises(ValueError, match="discovery='wrong'"):
        AnchorMatcher(discovery="wrong").fit(X, Y)
    with pytest.raises(TypeError, match="n_runs must be an int"):
        AnchorMatcher(n_runs=2.5).fit(X, Y)
    # one seed: the bootstrap cannot use it, and says what to do instead
    with pytest.raises(ValueError, match="needs at least 2.*discovery='centroids'"):
        AnchorMatcher(seeds=np.array([[0, 0]]), discovery="relative").fit(X, Y)


# --------------------------------------------------------------------------
# CSLS in the retrieval metrics
# --------------------------------------------------------------------------
def test_retrieval_metrics_under_csls():
    rng = np.random.default_rng(0)
    T = rng.normal(size=(60, 5))
    P = T + 0.8 * rng.normal(size=T.shape)
    P[:, 0] += 3.0  # a shared offset: some targets become hubs under the cosine
    Pn = P / np.linalg.norm(P, axis=1, keepdims=True)
    Tn = T / np.linalg.norm(T, axis=1, keepdims=True)
    C = _dense_csls(Pn, Tn, 4)
    ranks = 1 + (C > np.diag(C)[:, None]).sum(1)
    assert top_k_accuracy(P, T, csls=4) == pytest.approx(np.mean(ranks == 1))
    assert top_k_accuracy(P, T, k=3, csls=4, batch_size=7) == pytest.approx(np.mean(ranks <= 3))
    assert mean_rank(P, T, csls=4) == pytest.approx(ranks.mean())
    assert mean_reciprocal_rank(P, T, csls=4) == pytest.approx(np.mean(1 / ranks))
    assert top_k_accuracy(P, T, csls=4) > top_k_accuracy(P, T)  # the hubness correction helps
    with pytest.raises(ValueError, match="csls must be a positive number of neighbours, got 0"):
        top_k_accuracy(P, T, csls=0)
    with pytest.raises(TypeError, match="csls must be None or an int"):
        mean_rank(P, T, csls=2.5)

"""datasets: synthetic related spaces with a known map, digits encoders."""

import numpy as np
import pytest

from sklearn_latent import ProcrustesTranslator, RelativeProjector
from sklearn_latent.datasets import DIGITS_ENCODERS, make_digits_spaces, make_related_spaces

TRANSFORMS = ("orthogonal", "scaled", "linear", "affine", "permutation")


# --------------------------------------------------------------------------
# make_related_spaces
# --------------------------------------------------------------------------
@pytest.mark.parametrize("transform", TRANSFORMS)
def test_related_spaces_follow_the_returned_map(transform):
    X, Y, coef, intercept = make_related_spaces(200, 12, transform=transform, random_state=0)
    assert X.shape == (200, 12) and Y.shape == (200, 12)
    assert coef.shape == (12, 12) and intercept.shape == (12,)
    np.testing.assert_allclose(Y, X @ coef + intercept, atol=1e-12)
    has_offset = transform in ("scaled", "affine", "permutation")
    assert bool(np.any(intercept != 0)) == has_offset


@pytest.mark.parametrize("d_y", [5, 12, 20])
def test_orthogonal_map_is_semi_orthogonal_for_any_widths(d_y):
    _, Y, coef, _ = make_related_spaces(50, 12, n_target_features=d_y, random_state=1)
    assert Y.shape == (50, d_y)
    if d_y <= 12:  # orthonormal columns: lengths and angles of the kept part preserved
        np.testing.assert_allclose(coef.T @ coef, np.eye(d_y), atol=1e-12)
    else:  # orthonormal rows: an isometric embedding
        np.testing.assert_allclose(coef @ coef.T, np.eye(12), atol=1e-12)


def test_scaled_is_an_isotropic_scaling_of_an_orthogonal_map():
    _, _, coef, _ = make_related_spaces(50, 10, transform="scaled", random_state=3)
    gram = coef.T @ coef
    s2 = gram[0, 0]
    assert 0.25 <= s2 <= 4.0
    np.testing.assert_allclose(gram, s2 * np.eye(10), atol=1e-12)


def test_permutation_is_a_signed_permutation():
    _, _, coef, _ = make_related_spaces(50, 9, transform="permutation", random_state=2)
    assert set(np.unique(coef)) <= {-1.0, 0.0, 1.0}
    np.testing.assert_array_equal(np.abs(coef).sum(axis=0), np.ones(9))
    np.testing.assert_array_equal(np.abs(coef).sum(axis=1), np.ones(9))


def test_noise_is_added_with_the_requested_std():
    X, Y, coef, intercept = make_related_spaces(4000, 8, noise=0.5, random_state=0)
    residual = Y - (X @ coef + intercept)
    assert residual.std() == pytest.approx(0.5, rel=0.05)


def test_related_spaces_are_deterministic_under_random_state():
    a = make_related_spaces(30, 4, transform="affine", noise=0.1, random_state=7)
    b = make_related_spaces(30, 4, transform="affine", noise=0.1, random_state=7)
    c = make_related_spaces(30, 4, transform="affine", noise=0.1, random_state=8)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a[0], c[0])


def test_related_spaces_are_what_translators_and_relative_projections_assume():
    X, Y, coef, _ = make_related_spaces(300, 8, transform="orthogonal", random_state=0)
    tr = ProcrustesTranslator(scaling=None).fit(X, Y)
    np.testing.assert_allclose(tr.coef_, coef, atol=1e-10)
    # cosine relative representations with parallel anchors are invariant to it
    proj = RelativeProjector(20, center=False, random_state=0).fit(X)
    other = RelativeProjector(anchors=proj.anchor_indices_, center=False).fit(Y)
    np.testing.assert_allclose(proj.transform(X), other.transform(Y), atol=1e-12)
    # ... but not to a general linear map (the non-invariance really holds)
    X2, Y2, _, _ = make_related_spaces(300, 8, transform="linear", random_state=0)
    p2 = RelativeProjector(20, center=False, random_state=0).fit(X2)
    o2 = RelativeProjector(anchors=p2.anchor_indices_, center=False).fit(Y2)
    assert np.abs(p2.transform(X2) - o2.transform(Y2)).max() > 0.1


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(n_samples=0), ValueError, "n_samples=0"),
        (dict(n_features=2.5), TypeError, "n_features"),
        (dict(n_target_features=-1), ValueError, "n_target_features=-1"),
        (dict(transform="rotation"), ValueError, "transform='rotation'"),
        (dict(noise=-1.0), ValueError, "noise"),
        (dict(noise=float("nan")), ValueError, "noise"),
        (dict(transform="permutation", n_target_features=3), ValueError, "permutation"),
    ],
)
def test_related_spaces_bad_parameters(kwargs, error, match):
    with pytest.raises(error, match=match):
        make_related_spaces(**{"n_samples": 10, "n_features": 4, **kwargs})


# --------------------------------------------------------------------------
# make_digits_spaces
# --------------------------------------------------------------------------
TINY = {"a": (16, 0), "b": ((16, 8), 1)}


@pytest.fixture(scope="module")
def tiny_digits():
    return make_digits_spaces(TINY, max_iter=30)


def test_digits_spaces_structure(tiny_digits):
    data = tiny_digits
    assert list(data.spaces) == ["a", "b"]
    assert data.spaces["a"].shape == (1797, 16)
    assert data.spaces["b"].shape == (1797, 8)  # last hidden layer of the deeper network
    assert data.target.shape == (1797,) and set(np.unique(data.target)) == set(range(10))
    # a stratified 70/30 split covering every sample once
    assert len(data.train) == 1257 and len(data.test) == 540
    np.testing.assert_array_equal(np.sort(np.concatenate([data.train, data.test])),
                                  np.arange(1797))
    assert np.all(np.diff(data.train) > 0) and np.all(np.diff(data.test) > 0)
    # hidden ReLU layers: non-negative
    for H in data.spaces.values():
        assert H.min() >= 0.0 and np.isfinite(H).all()
    assert set(data.accuracy) == {"a", "b"}
    assert data.encoders == {"a": ((16,), 0), "b": ((16, 8), 1)}


def test_digits_encoders_learn_and_differ(tiny_digits):
    # 30 epochs of a 16-unit MLP: about 0.8 (measured), far above chance (0.1)
    assert min(tiny_digits.accuracy.values()) > 0.6
    # the same architecture with another seed gives another space
    other = make_digits_spaces({"a": (16, 5)}, max_iter=30)
    assert not np.allclose(other.spaces["a"], tiny_digits.spaces["a"])


def test_digits_spaces_are_deterministic(tiny_digits):
    again = make_digits_spaces({"a": (16, 0)}, max_iter=30)
    np.testing.assert_array_equal(again.spaces["a"], tiny_digits.spaces["a"])
    np.testing.assert_array_equal(again.test, tiny_digits.test)


def test_default_digits_encoders_are_documented():
    widths = [sizes[-1] for sizes, _ in DIGITS_ENCODERS.values()]
    assert len(DIGITS_ENCODERS) >= 3 and len(set(widths)) >= 3
    assert len({seed for _, seed in DIGITS_ENCODERS.values()}) == len(DIGITS_ENCODERS)


@pytest.mark.parametrize(
    "encoders, kwargs, error, match",
    [
        ({}, {}, TypeError, "non-empty dict"),
        ({"a": 8}, {}, TypeError, "pair"),
        ({"a": ((0,), 0)}, {}, ValueError, "hidden_layer_sizes"),
        ({"a": (8, 0)}, dict(test_size=1.5), ValueError, "test_size"),
        ({"a": (8, 0)}, dict(max_iter=0), ValueError, "max_iter"),
    ],
)
def test_digits_spaces_bad_parameters(encoders, kwargs, error, match):
    with pytest.raises(error, match=match):
        make_digits_spaces(encoders, **kwargs)

"""Tests of chromtune.train.baselines."""

import numpy as np
import pytest

from chromtune.train import baselines
from chromtune.train.baselines import (
    expression_similarity,
    mean_accessibility,
    mean_baseline,
    weighted_mean_baseline,
)


def _fold(seed=0, n_bins=300, n_cells=8, n_genes=30):
    rng = np.random.default_rng(seed)
    labels = (rng.random((n_bins, n_cells)) < 0.2).astype(np.uint8)
    expression = rng.normal(size=(n_cells, n_genes)).astype(np.float32)
    return labels, expression, [0, 1, 2, 4, 5], [3, 6]


def test_mean_accessibility_by_hand():
    labels = np.array([
        [1, 0, 1, 1],
        [0, 1, 0, 0],
        [1, 1, 1, 0],
        [0, 1, 0, 1],
    ], dtype=np.uint8)
    mean = mean_accessibility(labels, [0, 2, 3])
    assert mean.dtype == np.float32
    np.testing.assert_allclose(mean, [1.0, 0.0, 2 / 3, 1 / 3], rtol=1e-6)


def test_mean_baseline_repeats_mean_for_each_target():
    labels, _, train, target = _fold()
    scores = mean_baseline(labels, train, target)
    assert scores.shape == (labels.shape[0], len(target)) and scores.dtype == np.float32
    expected = labels[:, train].mean(axis=1)
    for j in range(len(target)):
        np.testing.assert_allclose(scores[:, j], expected, rtol=1e-6)


def test_similarity_is_clipped_pearson_normalised():
    _, expression, train, target = _fold(seed=1)
    weights = expression_similarity(expression, train, target)
    corr = np.corrcoef(expression.astype(np.float64))[np.ix_(target, train)]
    expected = np.clip(corr, 0, None)
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(weights, expected, atol=1e-10)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    assert (corr < 0).any() and (weights[corr < 0] == 0).all()


def test_identical_expression_gives_the_mean_baseline():
    labels, _, train, target = _fold(seed=2)
    profile = np.random.default_rng(9).normal(size=30)
    expression = np.tile(profile, (labels.shape[1], 1))
    np.testing.assert_allclose(
        weighted_mean_baseline(labels, expression, train, target),
        mean_baseline(labels, train, target),
        rtol=1e-6,
    )


def test_target_matching_one_training_cell_takes_all_weight():
    labels, _, _, _ = _fold(seed=3, n_cells=4)
    rng = np.random.default_rng(4)
    v = rng.normal(size=50)
    expression = np.stack([
        -2.0 * v + 3.0,                        # train 0: anti-correlated
        v,                                     # train 1: the target's exact profile
        -v + rng.normal(0, 0.1, 50),           # train 2: anti-correlated
        v,                                     # target
    ])
    weights = expression_similarity(expression, [0, 1, 2], [3])
    np.testing.assert_allclose(weights, [[0.0, 1.0, 0.0]], atol=1e-12)
    scores = weighted_mean_baseline(labels, expression, [0, 1, 2], [3])
    np.testing.assert_array_equal(scores[:, 0], labels[:, 1].astype(np.float32))


def test_no_positive_correlation_falls_back_to_uniform():
    v = np.arange(10.0)
    expression = np.stack([-v, -v ** 2, np.ones(10), v])  # anti-correlated, anti-correlated, constant
    np.testing.assert_allclose(expression_similarity(expression, [0, 1, 2], [3]), [[1 / 3] * 3])


def test_baselines_never_read_held_out_labels():
    labels, expression, train, target = _fold(seed=5)
    held_out = [c for c in range(labels.shape[1]) if c not in train]
    before = (
        mean_accessibility(labels, train),
        mean_baseline(labels, train, target),
        weighted_mean_baseline(labels, expression, train, target),
    )
    garbage = labels.astype(np.float64)
    garbage[:, held_out] = np.nan
    rng = np.random.default_rng(6)
    scrambled = labels.copy()
    scrambled[:, held_out] = rng.integers(0, 256, (labels.shape[0], len(held_out)), dtype=np.uint8)
    for changed in (garbage, scrambled):
        after = (
            mean_accessibility(changed, train),
            mean_baseline(changed, train, target),
            weighted_mean_baseline(changed, expression, train, target),
        )
        for b, a in zip(before, after):
            np.testing.assert_array_equal(a, b)
    # the check has teeth: the same garbage in a training column does change the output
    leaky = labels.copy()
    leaky[:, train[0]] = 1 - leaky[:, train[0]]
    assert not np.array_equal(mean_accessibility(leaky, train), before[0])


def test_weighted_baseline_chunks_match_one_product(monkeypatch):
    labels, expression, train, target = _fold(seed=7, n_bins=101)
    whole = labels[:, train].astype(np.float64) @ expression_similarity(expression, train, target).T
    monkeypatch.setattr(baselines, "_CHUNK_ROWS", 7)
    np.testing.assert_allclose(weighted_mean_baseline(labels, expression, train, target), whole, rtol=1e-6)


@pytest.mark.parametrize("train, target", [([0, 1], [1, 2]), ([], [2]), ([0, 9], [2]), ([0, 0], [2])])
def test_bad_cell_indices_raise(train, target):
    labels, expression, _, _ = _fold(n_cells=4)
    with pytest.raises(ValueError):
        weighted_mean_baseline(labels, expression, train, target)

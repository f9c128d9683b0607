"""Tests of chromtune.train.metrics (and the PR-curve plot in chromtune.train.plots)."""

import json
import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from chromtune.train.metrics import auprc, auroc, binned_auprc, evaluate_scores, mean_task_auprc
from chromtune.train.plots import plot_pr_curves


def _random_pairs(seed=0, n_bins=400, n_cells=5, rate=0.1):
    rng = np.random.default_rng(seed)
    labels = (rng.random((n_bins, n_cells)) < rate).astype(np.uint8)
    scores = labels * rng.normal(1.0, 1.0, labels.shape) + rng.normal(0.0, 1.0, labels.shape)
    return labels, scores.astype(np.float32)


def test_auprc_auroc_equal_sklearn():
    labels, scores = _random_pairs()
    y, s = labels[:, 0], scores[:, 0]
    assert auprc(y, s) == pytest.approx(average_precision_score(y, s), abs=1e-12)
    assert auroc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert 0.1 < auprc(y, s) < 1.0 and 0.5 < auroc(y, s) < 1.0


@pytest.mark.parametrize("value", [0, 1])
def test_single_class_gives_nan(value):
    y = np.full(50, value, dtype=np.uint8)
    s = np.linspace(0, 1, 50)
    assert math.isnan(auprc(y, s)) and math.isnan(auroc(y, s))
    assert math.isnan(auprc([], []))


def test_evaluate_scores_pooled_and_per_cell_equal_sklearn():
    labels, scores = _random_pairs(seed=1)
    result = evaluate_scores(labels, scores)
    assert result["auprc"] == pytest.approx(average_precision_score(labels.ravel(), scores.ravel()))
    assert result["auroc"] == pytest.approx(roc_auc_score(labels.ravel(), scores.ravel()))
    per = [average_precision_score(labels[:, j], scores[:, j]) for j in range(labels.shape[1])]
    per_roc = [roc_auc_score(labels[:, j], scores[:, j]) for j in range(labels.shape[1])]
    assert result["per_cell"]["auprc"] == pytest.approx(per)
    assert result["per_cell"]["auroc"] == pytest.approx(per_roc)
    assert result["auprc_mean_per_cell"] == pytest.approx(np.mean(per))
    assert result["auroc_mean_per_cell"] == pytest.approx(np.mean(per_roc))
    assert "binned" not in result
    json.dumps(result)  # plain Python values throughout
    assert all(type(v) is float for v in result["per_cell"]["auprc"])


def test_pooled_differs_from_per_cell_when_cells_are_offset():
    # Within each cell type the ranking is perfect, but cell 0's scores are all shifted above
    # cell 1's, so pooled over pairs cell 0's negatives outrank cell 1's positives.
    labels = np.array([[1, 1], [0, 0], [0, 0], [0, 0]], dtype=np.uint8)
    scores = np.array([[11.0, 1.0], [10.0, 0.0], [10.0, 0.0], [10.0, 0.0]])
    result = evaluate_scores(labels, scores)
    assert result["auprc_mean_per_cell"] == 1.0 and result["auroc_mean_per_cell"] == 1.0
    assert result["auprc"] == pytest.approx(average_precision_score(labels.ravel(), scores.ravel()))
    assert result["auprc"] < 0.9 and result["auroc"] < 0.9


def test_single_class_cells_are_nan_and_skipped_in_means():
    labels, scores = _random_pairs(seed=2, n_cells=4)
    labels[:, 2] = 0
    result = evaluate_scores(labels, scores)
    assert math.isnan(result["per_cell"]["auprc"][2]) and math.isnan(result["per_cell"]["auroc"][2])
    kept = [0, 1, 3]
    expected = np.mean([average_precision_score(labels[:, j], scores[:, j]) for j in kept])
    assert result["auprc_mean_per_cell"] == pytest.approx(expected)
    assert not math.isnan(result["auroc_mean_per_cell"])
    assert mean_task_auprc(labels, scores) == pytest.approx(expected)


def test_mean_task_auprc_all_single_class_is_nan():
    labels = np.zeros((10, 3), dtype=np.uint8)
    assert math.isnan(mean_task_auprc(labels, np.random.default_rng(0).random((10, 3))))


def test_binned_auprc_uses_minority_class_above_half():
    rng = np.random.default_rng(3)
    n_train, n_bins, n_cells = 10, 3000, 4
    # float32 k/10 fractions, as mean_accessibility returns them (float32(0.7) < 0.7)
    fraction = (rng.integers(0, n_train + 1, n_bins) / n_train).astype(np.float32)
    labels = (rng.random((n_bins, n_cells)) < fraction[:, None]).astype(np.uint8)
    scores = fraction[:, None] + rng.normal(0.0, 0.3, labels.shape) + 0.3 * labels
    result = evaluate_scores(labels, scores, train_fraction=fraction)
    binned = result["binned"]
    assert [b["lo"] for b in binned] == pytest.approx(np.arange(10) / 10)
    assert binned[-1]["hi"] == 1.0
    tenths = np.round(fraction * 10).astype(int)
    for k, b in enumerate(binned):
        rows = (tenths == k) | ((k == 9) & (tenths == 10))  # [k/10, (k+1)/10), last bin closed
        y, s = labels[rows].ravel(), scores[rows].ravel()
        assert b["n_pairs"] == y.size
        assert b["positive_rate"] == pytest.approx(y.mean())
        if k >= 5:
            assert b["minority"] == "inaccessible"
            assert b["auprc"] == pytest.approx(average_precision_score(1 - y, -s))
            assert abs(b["auprc"] - average_precision_score(y, s)) > 0.05
        else:
            assert b["minority"] == "accessible"
            if k == 0:  # fraction exactly 0: no positives in this construction
                assert math.isnan(b["auprc"])
            else:
                assert b["auprc"] == pytest.approx(average_precision_score(y, s))
    assert sum(b["n_pairs"] for b in binned) == labels.size
    json.dumps(result)


def test_binned_auprc_custom_edges_leave_out_pairs_outside():
    labels = np.array([[1], [0], [1], [0]], dtype=np.uint8)
    scores = np.array([[0.9], [0.1], [0.8], [0.2]])
    binned = binned_auprc(labels, scores, np.array([0.05, 0.1, 0.3, 0.4]), edges=[0.1, 0.35])
    assert len(binned) == 1 and binned[0]["n_pairs"] == 2 and binned[0]["auprc"] == 1.0


def test_shape_mismatch_raises():
    with pytest.raises(ValueError):
        evaluate_scores(np.zeros((4, 2)), np.zeros((4, 3)))
    with pytest.raises(ValueError):
        evaluate_scores(np.zeros((4, 2)), np.zeros((4, 2)), train_fraction=np.zeros(3))


def test_plot_pr_curves_writes_small_png(tmp_path):
    labels, scores = _random_pairs(seed=4, n_bins=5000, n_cells=4)  # 20,000 thresholds: thinned
    y = labels.ravel()
    curves = {
        "model": (y, scores.ravel()),
        "mean": (y, scores.ravel() + np.random.default_rng(5).normal(0, 2, y.size)),
        "one class": (np.zeros(10), np.arange(10)),
    }
    path = tmp_path / "plots" / "pr.png"
    plot_pr_curves(curves, path, title="test fold")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert 1000 < len(data) < 500_000
    assert [p.name for p in path.parent.iterdir()] == ["pr.png"]  # no temporary file left


def test_cell_type_specific_auprc_is_that_of_bins_open_in_under_30_percent():
    from chromtune.train.metrics import StreamingMetrics
    rng = np.random.default_rng(5)
    n_train, n_bins, n_cells = 20, 4000, 3
    fraction = (rng.integers(0, n_train + 1, n_bins) / n_train).astype(np.float32)  # 0.3 = 6/20 is not specific
    labels = (rng.random((n_bins, n_cells)) < fraction[:, None]).astype(np.uint8)
    scores = (fraction[:, None] + rng.normal(0.0, 0.3, labels.shape) + 0.3 * labels).astype(np.float32)
    result = evaluate_scores(labels, scores, train_fraction=fraction)
    rows = np.round(fraction * n_train) < 6
    assert result["n_specific"] == rows.sum() * n_cells
    assert result["auprc_specific"] == pytest.approx(average_precision_score(labels[rows].ravel(), scores[rows].ravel()))
    assert result["auprc_specific"] < result["auprc"]  # the hard part, as in the paper
    stream = StreamingMetrics(n_cells)
    for part in np.array_split(np.arange(n_bins), 3):
        stream.add(labels[part], scores[part], fraction[part])
    half = scores.astype(np.float16).astype(np.float64)
    got = stream.result()
    assert got["n_specific"] == result["n_specific"]
    assert got["auprc_specific"] == pytest.approx(average_precision_score(labels[rows].ravel(), half[rows].ravel()))
    assert "auprc_specific" not in evaluate_scores(labels, scores)

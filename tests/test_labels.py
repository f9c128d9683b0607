"""Compact labels: one bit per (bin, cell type), bit-exact through the file, and every reader of labels
(samplers, the mean feature, the baselines) giving the numbers it gives from the dense matrix."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from chromtune.data.dataset import DatasetError, open_dataset, write_dataset
from chromtune.data.labels import PackedLabels
from chromtune.data.sampling import Stage1Sampler, Stage2Sampler
from chromtune.train.baselines import MeanAccessibility, mean_accessibility, mean_baseline, weighted_mean_baseline
from conftest import random_dataset, write_version_1


@pytest.mark.parametrize("n_cells", [1, 8, 65, 123, 300])
def test_labels_round_trip_bit_exact_through_the_file(tmp_path, n_cells):
    ds = random_dataset(n_cells=n_cells, positive_rate=0.1, seed=n_cells)
    dense = ds.labels.copy()
    write_dataset(tmp_path / "d.h5", ds)
    back = open_dataset(tmp_path / "d.h5")
    assert isinstance(back.labels, PackedLabels)
    assert back.labels.shape == dense.shape and back.labels.dtype == np.uint8 and back.labels.ndim == 2
    with h5py.File(tmp_path / "d.h5") as f:
        stored = f["labels_packed"]
        assert stored.shape == (len(dense), -(-n_cells // 8)) and stored.dtype == np.uint8
        assert stored.size * 8 <= dense.size + 7 * len(dense)  # at most one bit per pair, plus row padding
    assert back.labels.nbytes == -(-n_cells // 8) * len(dense)
    np.testing.assert_array_equal(np.asarray(back.labels), dense)
    rows = np.array([5, 0, len(dense) - 1, 5])
    cols = np.unique([n_cells - 1, 0, n_cells // 2])
    np.testing.assert_array_equal(back.labels[rows], dense[rows])
    np.testing.assert_array_equal(back.labels[np.ix_(rows, cols)], dense[np.ix_(rows, cols)])
    np.testing.assert_array_equal(back.labels[rows[:3], cols], dense[rows[:3], cols])
    np.testing.assert_array_equal(back.labels[3], dense[3])
    np.testing.assert_array_equal(back.labels.count(rows, cols), dense[np.ix_(rows, cols)].sum(1))
    np.testing.assert_array_equal(back.labels.column_counts(), dense.sum(0))
    assert back.labels.rows_positive_anywhere() == int(dense.any(1).sum())


def test_labels_are_mapped_from_the_file_read_only(tmp_path):
    write_dataset(tmp_path / "d.h5", random_dataset(n_cells=70))
    back = open_dataset(tmp_path / "d.h5")
    for array in (back.labels.packed, back.sequence, back.bin_start, back.bin_chrom):
        assert isinstance(array, np.memmap) and not array.flags.writeable


def test_old_dense_files_still_open(tmp_path):
    ds = random_dataset(n_cells=130, seed=3)
    write_version_1(tmp_path / "v1.h5", ds)
    back = open_dataset(tmp_path / "v1.h5")
    np.testing.assert_array_equal(np.asarray(back.labels), ds.labels)
    bins = np.arange(0, ds.n_bins, 7)
    np.testing.assert_array_equal(back.window_codes(bins), ds.window_codes(bins))


def test_bits_past_the_last_cell_type_are_a_one_line_error(tmp_path):
    write_dataset(tmp_path / "d.h5", random_dataset(n_cells=11))
    with h5py.File(tmp_path / "d.h5", "r+") as f:
        f["labels_packed"][4, 1] |= 0x01  # bit of cell type 15: there are 11
    with pytest.raises(DatasetError, match="other than 0 and 1") as err:
        open_dataset(tmp_path / "d.h5")
    assert "\n" not in str(err.value)


def test_samplers_mean_and_baselines_match_dense_labels(tmp_path):
    ds = random_dataset(n_cells=70, positive_rate=0.06, seed=9)
    dense = ds.labels.copy()
    write_dataset(tmp_path / "d.h5", ds)
    packed = open_dataset(tmp_path / "d.h5").labels
    train, target, bins = np.arange(0, 70, 2), np.array([1, 9, 33, 69]), np.arange(3, ds.n_bins, 3)
    for cls in (Stage1Sampler, Stage2Sampler):
        a = cls(dense, bins, train, 64, seed=4, rank=1, world_size=2)
        b = cls(packed, bins, train, 64, seed=4, rank=1, world_size=2)
        for step in range(3):
            for x, y in zip(a.batch(2, step), b.batch(2, step)):
                np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(mean_accessibility(packed, train), dense[:, train].mean(1).astype(np.float32))
    feature = MeanAccessibility(packed, train)
    np.testing.assert_array_equal(feature[bins], mean_accessibility(dense, train, bins))
    np.testing.assert_array_equal(feature.counts(bins), dense[np.ix_(bins, train)].sum(1))
    np.testing.assert_array_equal(mean_baseline(packed, train, target, bins), mean_baseline(dense, train, target)[bins])
    np.testing.assert_allclose(weighted_mean_baseline(packed, ds.expression, train, target, bins),
                               weighted_mean_baseline(dense, ds.expression, train, target)[bins], rtol=1e-6)


def test_stage2_positives_are_uniform_over_positive_training_pairs():
    dense = np.zeros((40, 6), dtype=np.uint8)
    positives = [(3, 0), (3, 1), (17, 4), (25, 2), (39, 5)]
    for row, col in positives:
        dense[row, col] = 1
    dense[10, 3] = 1  # a held-out column: never drawn
    sampler = Stage2Sampler(PackedLabels.from_dense(dense), np.arange(40), [0, 1, 2, 4, 5], 16, seed=1)
    seen = {}
    for step in range(200):
        bins, cells, y = sampler.batch(0, step)
        assert y.sum() == 4 and (cells != 3).all()
        np.testing.assert_array_equal(y, dense[bins, cells])
        for pair in zip(bins[y == 1].tolist(), cells[y == 1].tolist()):
            seen[pair] = seen.get(pair, 0) + 1
    assert set(seen) == set(positives)
    counts = np.array([seen[p] for p in positives])
    assert counts.min() > 0.6 * counts.mean() and counts.max() < 1.4 * counts.mean()  # 800 draws over 5 pairs

import numpy as np
import torch

from chromtune.data.encoding import one_hot
from chromtune.io.fasta import decode, encode


def test_encode_codes_lowercase_and_iupac():
    assert encode("ACGTacgtNRYn").tolist() == [0, 1, 2, 3, 0, 1, 2, 3, 4, 4, 4, 4]
    assert decode(encode("ACGTNacgt")) == "ACGTNACGT"


def test_one_hot_matches_direct_construction():
    codes = np.random.default_rng(0).integers(0, 5, (7, 33), dtype=np.uint8)
    expected = np.zeros((7, 4, 33), np.float32)
    for i in range(7):
        for pos in range(33):
            if codes[i, pos] < 4:
                expected[i, codes[i, pos], pos] = 1
    got = one_hot(codes)
    assert got.dtype == torch.float32 and got.shape == (7, 4, 33)
    assert np.array_equal(got.numpy(), expected)


def test_one_hot_n_is_all_zero_and_dtype_follows():
    got = one_hot(encode("NNAN")[None], dtype=torch.bfloat16)
    assert got.dtype == torch.bfloat16
    assert got.float().sum().item() == 1.0 and got[0, 0, 2].item() == 1.0

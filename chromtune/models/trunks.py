"""Convolutional sequence trunks: Basset, Factorized Basset and ResNet (Nair et al. 2019).

Shape contract
--------------
input   x: float tensor (N, 4, L), one-hot over channels A, C, G, T (other bases all-zero),
        L == trunk.seq_len.
output  (N, trunk.out_features) = the final (N, out_channels, out_length) map flattened
        channel-major (the reference's ``view(-1, 4200)`` order).

Every convolution is Conv1d -> BatchNorm1d -> ReLU with "same" padding (k // 2, all kernels are
odd) unless a padding is given; max-pools have stride = size and floor the length. A residual
block is conv-BN-ReLU-...-conv-BN, plus the identity, then ReLU. At width 1.0 and L = 1000
every trunk ends in 200 channels x 21 positions = 4200 features.

Architectures are data: each is a tuple of layer specs (see ``SPECS``), built by ``Trunk``.
``width`` multiplies every channel count (rounded, at least 1).
"""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["ARCHITECTURES", "SPECS", "ResidualBlock", "Trunk", "check_arch", "scale_channels"]


def _conv(channels: int, kernel: int, padding: int | None = None) -> tuple:
    """Spec of one conv-BN-ReLU layer; padding defaults to "same" (kernel // 2)."""
    return ("conv", channels, kernel, kernel // 2 if padding is None else padding)


def _pool(size: int) -> tuple:
    """Spec of a max-pool with stride = size."""
    return ("pool", size)


def _blocks(channels: int, *kernels: int, repeat: int = 2) -> tuple:
    """Specs of `repeat` residual blocks, each with one "same" conv per kernel size."""
    return (("res", channels, kernels),) * repeat


SPECS: dict[str, tuple] = {
    "basset": (
        _conv(300, 19), _pool(3),
        _conv(200, 11), _pool(4),
        _conv(200, 7, padding=4), _pool(4),
    ),
    "factorized": (
        _conv(48, 3), _conv(64, 3), _conv(100, 3), _conv(150, 7), _conv(300, 7), _pool(3),
        _conv(200, 7), _conv(200, 3), _conv(200, 3), _pool(4),
        _conv(200, 7, padding=4), _pool(4),
    ),
    "resnet": (
        _conv(48, 3), _conv(64, 3), *_blocks(64, 3, 3),
        _conv(128, 3), *_blocks(128, 7, 7), _pool(3),
        _conv(200, 1, padding=3), *_blocks(200, 7, 3, 3), _pool(4),
        *_blocks(200, 7, 7),
        _conv(200, 7, padding=4), _pool(4),
    ),
}
ARCHITECTURES: tuple[str, ...] = tuple(SPECS)


def check_arch(arch: str) -> None:
    """Raise ValueError, listing the valid names, unless `arch` is one."""
    if arch not in SPECS:
        raise ValueError(f"unknown architecture {arch!r}; valid names: {', '.join(ARCHITECTURES)}")


def scale_channels(channels: int, width: float) -> int:
    """Channel count at a width multiplier: round(channels * width), at least 1."""
    return max(1, round(channels * width))


def _conv_bn(c_in: int, c_out: int, kernel: int, padding: int, relu: bool = True) -> list[nn.Module]:
    layers = [nn.Conv1d(c_in, c_out, kernel, padding=padding), nn.BatchNorm1d(c_out)]
    return layers + [nn.ReLU(inplace=True)] if relu else layers


class ResidualBlock(nn.Module):
    """Same-length, same-channel residual block: relu(x + BN(conv(...relu(BN(conv(x)))...)))."""

    def __init__(self, channels: int, kernels: tuple[int, ...]):
        super().__init__()
        layers: list[nn.Module] = []
        for i, k in enumerate(kernels):
            layers += _conv_bn(channels, channels, k, k // 2, relu=i < len(kernels) - 1)
        self.body = nn.Sequential(*layers)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.body(x) + x)


def _output_length(spec: tuple, seq_len: int) -> int:
    """Length after the layers of `spec` for an input of `seq_len`; 0 if it vanishes on the way."""
    length = seq_len
    for layer in spec:
        if layer[0] == "conv":
            _, _, kernel, padding = layer
            length = length + 2 * padding - kernel + 1
        elif layer[0] == "pool":
            length //= layer[1]
        if length < 1:
            return 0
    return length


class Trunk(nn.Module):
    """A named convolutional trunk: (N, 4, seq_len) one-hot -> (N, out_features) features."""

    def __init__(self, arch: str, seq_len: int = 1000, width: float = 1.0):
        super().__init__()
        check_arch(arch)
        if width <= 0:
            raise ValueError(f"width must be > 0, got {width}")
        spec = SPECS[arch]
        self.arch, self.seq_len, self.width = arch, int(seq_len), float(width)
        self.out_length = _output_length(spec, self.seq_len)
        if self.out_length < 1:
            shortest = next(n for n in range(1, 10_000) if _output_length(spec, n) > 0)
            raise ValueError(f"seq_len={seq_len} is too short for {arch} (needs >= {shortest})")

        layers: list[nn.Module] = []
        channels = 4
        for layer in spec:
            if layer[0] == "conv":
                _, c, kernel, padding = layer
                c = scale_channels(c, width)
                layers += _conv_bn(channels, c, kernel, padding)
                channels = c
            elif layer[0] == "pool":
                layers.append(nn.MaxPool1d(layer[1]))
            else:  # "res": same channels in and out, as produced by the conv before it
                layers.append(ResidualBlock(scale_channels(layer[1], width), layer[2]))
        self.layers = nn.Sequential(*layers)
        self.out_channels = channels
        self.out_features = channels * self.out_length

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 3 or x.shape[1] != 4 or x.shape[2] != self.seq_len:
            raise ValueError(f"expected input of shape (N, 4, {self.seq_len}), got {tuple(x.shape)}")
        return self.layers(x).flatten(1)

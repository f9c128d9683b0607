"""The demo's sequence (:mod:`chromtune.data.demo`): the JASPAR profiles it plants, a dinucleotide Markov
background, and motif instances drawn from sharpened PWMs and written into the genome in clusters."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources

import numpy as np

COPY_GAP = (4, 20)          # bp between neighbouring instances of a cluster
SHARPEN = 3.0               # instances are drawn from pwm ** SHARPEN (renormalised): near-consensus

# Approximate human dinucleotide frequencies (%, rows: first base A,C,G,T; columns: second base).
DINUCLEOTIDE_PERCENT = np.array([
    [9.8, 5.0, 7.0, 7.7],
    [7.3, 5.2, 1.0, 7.0],
    [6.0, 4.2, 5.2, 5.0],
    [6.5, 6.0, 7.3, 9.8],
])


@dataclass(frozen=True)
class Motif:
    """One JASPAR profile: ``pwm`` is (4, width) probabilities over A, C, G, T."""

    jaspar_id: str
    name: str
    tfs: tuple[str, ...]
    pwm: np.ndarray

    @property
    def width(self) -> int:
        return int(self.pwm.shape[1])


def load_motifs() -> list[Motif]:
    """The profiles shipped in ``chromtune/data/motifs.json`` (JASPAR 2024, CC BY 4.0)."""
    doc = json.loads(resources.files("chromtune.data").joinpath("motifs.json").read_text())
    motifs = []
    for entry in doc["motifs"]:
        counts = np.asarray(entry["counts"], dtype=np.float64)
        motifs.append(Motif(entry["jaspar_id"], entry["name"], tuple(entry["tfs"]), counts / counts.sum(0)))
    return motifs


def markov_background(rng: np.random.Generator, length: int, chains: int = 1024) -> np.ndarray:
    """(length,) uint8 codes from the dinucleotide Markov chain, run as ``chains`` parallel chains."""
    transition = DINUCLEOTIDE_PERCENT / DINUCLEOTIDE_PERCENT.sum(1, keepdims=True)
    cumulative = np.cumsum(transition, axis=1)[:, :3]
    stationary = DINUCLEOTIDE_PERCENT.sum(1) / DINUCLEOTIDE_PERCENT.sum()
    steps = -(-length // chains)
    uniform = rng.random((steps, chains))
    out = np.empty((steps, chains), dtype=np.uint8)
    state = np.searchsorted(np.cumsum(stationary), rng.random(chains)).astype(np.uint8)
    for step in range(steps):
        state = (uniform[step][:, None] > cumulative[state]).sum(1).astype(np.uint8)
        out[step] = state
    return out.T.reshape(-1)[:length]


def sharpened(pwm: np.ndarray, power: float) -> np.ndarray:
    """(4, W) ``pwm ** power`` renormalised per column: same consensus, instances closer to it."""
    raised = pwm ** power
    return raised / raised.sum(0)


def sample_instances(rng: np.random.Generator, motif: Motif, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, width) uint8 codes drawn from the sharpened PWM, reverse-complemented on a random strand; and the strands."""
    cumulative = np.cumsum(sharpened(motif.pwm, SHARPEN), axis=0)[:3]  # (3, W)
    codes = (rng.random((n, motif.width))[:, None, :] > cumulative[None]).sum(1).astype(np.uint8)
    strand = np.where(rng.random(n) < 0.5, 1, -1).astype(np.int8)
    reverse = strand < 0
    codes[reverse] = 3 - codes[reverse][:, ::-1]
    return codes, strand


def plant_instances(rng: np.random.Generator, genome: np.ndarray, chrom_offset: np.ndarray,
                    sites: dict[str, np.ndarray], motifs: list[Motif]) -> dict[str, np.ndarray]:
    """Write each site's cluster of instances into the flat ``genome`` (in place), centred on the site; return them."""
    two = sites["site_motif2"] >= 0
    per_site = np.where(two, 2, sites["site_copies"])
    inst_site = np.repeat(np.arange(len(per_site)), per_site)
    first = np.cumsum(per_site) - per_site                             # index of each site's first instance
    rank = np.arange(len(inst_site)) - first[inst_site]
    inst_motif = np.where((rank > 0) & two[inst_site], sites["site_motif2"][inst_site], sites["site_motif"][inst_site])
    width = np.asarray([m.width for m in motifs])[inst_motif]
    gap = np.where(rank > 0, rng.integers(COPY_GAP[0], COPY_GAP[1] + 1, size=len(inst_site)), 0)
    footprint = gap + width                                            # an instance and the gap before it
    before = np.cumsum(footprint) - footprint
    within = before - before[first][inst_site] + gap                   # start inside the cluster
    span = np.add.reduceat(footprint, first)
    inst_start = (sites["site_center"] - span // 2)[inst_site] + within
    inst_strand = np.zeros(len(inst_site), dtype=np.int8)
    flat_start = chrom_offset[sites["site_chrom"][inst_site]] + inst_start
    for m, motif in enumerate(motifs):
        rows = np.flatnonzero(inst_motif == m)
        codes, inst_strand[rows] = sample_instances(rng, motif, len(rows))
        genome[flat_start[rows, None] + np.arange(motif.width)] = codes
    return dict(instance_site=inst_site.astype(np.int32), instance_motif=inst_motif.astype(np.int32),
                instance_start=inst_start.astype(np.int64), instance_strand=inst_strand)

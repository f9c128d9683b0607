"""A real-data case for ``chromtune prepare``, built only from registry packages installed here.

Sources (each installed by ``.ci/run``; nothing is downloaded at run time):

- **Sequence**: GRCh37 chromosome X, its first 70 Mb (NCBI NC_000023.10, record ``X``), from the
  test data of the SMALT aligner, Debian package ``smalt-examples`` (0.7.6; package GPL-3, the
  sequence is the public GRC assembly): ``/usr/share/doc/smalt/test/data/hs37chrXtrunc.fa.gz``.
- **Peaks**: the cis-regulatory elements (CREs) of REMO v1 (Stuart lab; PyPI ``remopy`` 1.1.0,
  Artistic-2.0), modules of co-accessible CREs from human single-cell ATAC atlases, each module
  annotated with the Cell Ontology cell types it is accessible in. A cell type's peaks are the
  CREs of its modules. REMO is on GRCh38; the CREs are lifted to GRCh37 here (below).
- **Liftover anchors**: RefSeq exons and CpG islands of hg19 and hg38 shipped with ChromHMM,
  Debian package ``chromhmm-example`` (1.24; GPL-3+).
- **Expression**: 10x Genomics' PBMC 68k (Zheng et al. 2017), the reduced copy bundled with
  scanpy (PyPI ``scanpy`` 1.11.5, BSD-3; installed ``--no-deps``, only for this file): 700 cells,
  765 genes, log-normalised; each cell type's value per gene is the mean of ``expm1`` over its
  cells (normalised counts, TPM-like).

``new_expression.tsv`` holds PBMC 68k's CD34+ cells, a cell type with no peaks here: the RNA-only
cell type that ``predict`` and ``variants`` are given. Nine blood cell types are matched by name between REMO's Cell Ontology terms and PBMC 68k's
``bulk_labels`` (:data:`CELL_TYPES`); the match is by name only, the cells are not the same cells.

**The liftover** (GRCh38 -> GRCh37, chrX): an hg38 exon and an hg19 exon of the same length give a
candidate offset (hg19 start - hg38 start); an exon's offset is accepted when a neighbouring exon
(within 200 kb, hg38) has the same candidate, so anchors are pairs of exons that moved together.
A CRE is lifted when the anchors on either side of it (each within :data:`MAX_ANCHOR_GAP`) have the
same offset, and dropped otherwise. The check: hg38 CpG islands lifted the same way land on an hg19
CpG island (``cpg_overlapping`` in :func:`build_case`'s summary: 634 of the 645 lifted; 528 of them,
``cpg_exact``, on its exact bases; islands are computed from the sequence, so an exact hit means the
lift is right to the base there, and a near one that the island's call moved with the sequence).

The peak files name the chromosome ``chrX`` (UCSC style) while the FASTA names it ``X``: prepare
must match the two.

    python tests/real_case.py --out case/ [--length 70000000]
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
from bisect import bisect_left, bisect_right
from collections import defaultdict
from pathlib import Path

import numpy as np

SEQUENCE = Path("/usr/share/doc/smalt/test/data/hs37chrXtrunc.fa.gz")
COORDS = Path("/usr/share/doc/chromhmm/examples/COORDS")
CHROM_FASTA, CHROM_PEAKS = "X", "chrX"
FULL_LENGTH = 70_000_000
MAX_ANCHOR_GAP = 1_000_000
NEIGHBOUR_WINDOW = 200_000
MAX_OFFSET = 3_000_000  # |hg19 - hg38| position on chrX stays well below this

NEW_CELL_TYPE = ("CD34_progenitor", "CD34+")  # expression only: our name, PBMC 68k bulk label
# our name: (REMO Cell Ontology term, PBMC 68k bulk label)
CELL_TYPES = {
    "B": ("B cell", "CD19+ B"),
    "CD14_monocyte": ("classical monocyte", "CD14+ Monocyte"),
    "NK": ("natural killer cell", "CD56+ NK"),
    "dendritic": ("dendritic cell", "Dendritic"),
    "Treg": ("regulatory T cell", "CD4+/CD25 T Reg"),
    "CD4_naive": ("naive thymus-derived CD4-positive, alpha-beta T cell", "CD4+/CD45RA+/CD25- Naive T"),
    "CD4_memory": ("central memory CD4-positive, alpha-beta T cell", "CD4+/CD45RO+ Memory"),
    "CD8": ("CD8-positive, alpha-beta T cell", "CD8+ Cytotoxic T"),
    "CD8_naive": ("naive thymus-derived CD8-positive, alpha-beta T cell", "CD8+/CD45RA+ Naive Cytotoxic"),
}


def _package_file(package: str, relative: str) -> Path | None:
    """A data file inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / relative


def source_paths() -> dict[str, Path | None]:
    return {
        "sequence (Debian smalt-examples)": SEQUENCE,
        "hg19 exons (Debian chromhmm-example)": COORDS / "hg19/RefSeqExon.hg19.bed.gz",
        "hg38 exons (Debian chromhmm-example)": COORDS / "hg38/RefSeqExon.hg38.bed.gz",
        "hg19 CpG islands (Debian chromhmm-example)": COORDS / "hg19/CpGIsland.hg19.bed.gz",
        "hg38 CpG islands (Debian chromhmm-example)": COORDS / "hg38/CpGIsland.hg38.bed.gz",
        "REMO CREs (PyPI remopy)": _package_file("remopy", "data/REMOv1_GRCh38.bed.gz"),
        "REMO cell types (PyPI remopy)": _package_file("remopy", "data/terms.json"),
        "PBMC 68k (PyPI scanpy)": _package_file("scanpy", "datasets/10x_pbmc68k_reduced.h5ad"),
    }


def missing_sources() -> str | None:
    """None when every source is installed, else one line naming what is absent (a test's skip reason)."""
    absent = [name for name, path in source_paths().items() if path is None or not path.is_file()]
    if not absent:
        return None
    return ("real-data material not installed: " + "; ".join(absent)
            + " (.ci/run installs them: apt-get install smalt-examples chromhmm-example; "
              "pip install --no-deps remopy==1.1.0 scanpy==1.11.5)")


def _intervals(path: Path, chrom: str) -> np.ndarray:
    """Sorted unique (start, end) rows of ``chrom`` in a gzipped BED."""
    rows = set()
    with gzip.open(path, "rt") as f:
        for line in f:
            fields = line.split("\t", 3)
            if fields[0] == chrom:
                rows.add((int(fields[1]), int(fields[2])))
    return np.array(sorted(rows), dtype=np.int64).reshape(-1, 2)


def exon_anchors(hg38: np.ndarray, hg19: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(hg38 positions, offsets) of exons whose offset a neighbouring exon confirms, sorted by position."""
    by_length = defaultdict(list)
    for s, e in hg19:
        by_length[e - s].append(s)
    by_length = {k: np.array(v, dtype=np.int64) for k, v in by_length.items()}  # sorted: hg19 is sorted
    candidates = []
    for s, e in hg38:
        same = by_length.get(e - s, np.empty(0, dtype=np.int64))
        near = same[np.searchsorted(same, s - MAX_OFFSET):np.searchsorted(same, s + MAX_OFFSET)]
        candidates.append(set((near - s).tolist()))
    starts = hg38[:, 0]
    positions, offsets = [], []
    for i, (s, _) in enumerate(hg38):
        lo, hi = bisect_left(starts, s - NEIGHBOUR_WINDOW), bisect_right(starts, s + NEIGHBOUR_WINDOW)
        confirmed = {d for d in candidates[i]
                     if any(d in candidates[k] for k in range(lo, hi) if k != i and hg38[k, 0] != s)}
        if len(confirmed) == 1:
            positions.append(s)
            offsets.append(confirmed.pop())
    return np.array(positions, dtype=np.int64), np.array(offsets, dtype=np.int64)


def lift(intervals: np.ndarray, positions: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GRCh37 (start, end) of the intervals whose flanking anchors agree, and which intervals they are."""
    left = np.searchsorted(positions, intervals[:, 0], side="right") - 1
    right = np.searchsorted(positions, intervals[:, 1], side="left")
    ok = (left >= 0) & (right < len(positions))
    left, right = np.clip(left, 0, len(positions) - 1), np.clip(right, 0, len(positions) - 1)
    ok &= offsets[left] == offsets[right]
    ok &= (intervals[:, 0] - positions[left] <= MAX_ANCHOR_GAP) & (positions[right] - intervals[:, 1] <= MAX_ANCHOR_GAP)
    kept = np.flatnonzero(ok)
    return intervals[kept] + offsets[left[kept], None], kept


def _read_fasta_prefix(path: Path, length: int) -> tuple[str, str]:
    """The header and the first ``length`` bases of a one-record gzipped FASTA."""
    chunks, total = [], 0
    with gzip.open(path, "rt") as f:
        header = f.readline().rstrip("\n")
        for line in f:
            line = line.strip()
            chunks.append(line)
            total += len(line)
            if total >= length:
                break
    return header, "".join(chunks)[:length]


def _pbmc_expression(path: Path) -> tuple[list[str], dict[str, np.ndarray]]:
    """Genes and, per PBMC 68k bulk label, the mean of expm1(log-normalised expression) over its cells."""
    import h5py
    from scipy.sparse import csr_matrix

    with h5py.File(path, "r") as f:
        genes = [g.decode() for g in f["raw.var"]["index"]]
        x = csr_matrix((f["raw.X/data"][:], f["raw.X/indices"][:], f["raw.X/indptr"][:]),
                       shape=(len(f["obs"]), len(genes)))
        codes = f["obs"]["bulk_labels"]
        names = [c.decode() for c in f["uns/bulk_labels_categories"][:]]
    x.data = np.expm1(x.data)
    return genes, {name: np.asarray(x[codes == k].mean(axis=0)).ravel() for k, name in enumerate(names)}


def build_case(out: str | Path, length: int = FULL_LENGTH) -> dict:
    """Write ``genome.fa``, ``peaks/<cell type>.bed``, ``samples.tsv``, ``expression.tsv`` and ``new_expression.tsv`` into
    ``out`` (chrX's first ``length`` bp); returns a summary (sources, peak counts, liftover check)."""
    if not 0 < length <= FULL_LENGTH:
        raise ValueError(f"length {length}: must be in 1..{FULL_LENGTH}")
    reason = missing_sources()
    if reason:
        raise FileNotFoundError(reason)
    paths = source_paths()
    out = Path(out)
    (out / "peaks").mkdir(parents=True, exist_ok=True)

    header, sequence = _read_fasta_prefix(paths["sequence (Debian smalt-examples)"], length)
    with open(out / "genome.fa", "w") as f:
        f.write(header.split()[0] + f" GRCh37 NC_000023.10 bases 1-{len(sequence)}\n")
        for i in range(0, len(sequence), 60):
            f.write(sequence[i:i + 60] + "\n")

    exons38 = _intervals(paths["hg38 exons (Debian chromhmm-example)"], CHROM_PEAKS)
    exons19 = _intervals(paths["hg19 exons (Debian chromhmm-example)"], CHROM_PEAKS)
    positions, offsets = exon_anchors(exons38, exons19)
    cgi38 = _intervals(paths["hg38 CpG islands (Debian chromhmm-example)"], CHROM_PEAKS)
    cgi19 = _intervals(paths["hg19 CpG islands (Debian chromhmm-example)"], CHROM_PEAKS)
    cgi_lifted, _ = lift(cgi38, positions, offsets)
    exact = {tuple(r) for r in cgi19.tolist()}
    cgi_exact = sum(tuple(r) in exact for r in cgi_lifted.tolist())
    i = np.searchsorted(cgi19[:, 0], cgi_lifted[:, 1])  # hg19 islands starting before each lifted end
    previous_end = np.maximum.accumulate(cgi19[:, 1])
    cgi_overlap = int(np.sum((i > 0) & (previous_end[np.maximum(i - 1, 0)] > cgi_lifted[:, 0])))

    modules = defaultdict(list)
    with gzip.open(paths["REMO CREs (PyPI remopy)"], "rt") as f:
        for line in f:
            chrom, start, end, module = line.split("\t")[:4]
            if chrom == CHROM_PEAKS:
                modules[module.strip()].append((int(start), int(end)))
    terms = json.loads(paths["REMO cell types (PyPI remopy)"].read_text())
    genes, means = _pbmc_expression(paths["PBMC 68k (PyPI scanpy)"])

    summary = {"length": len(sequence), "anchors": int(len(positions)), "cpg_islands_lifted": int(len(cgi_lifted)),
               "cpg_exact": int(cgi_exact), "cpg_overlapping": cgi_overlap, "cpg_hg38": int(len(cgi38)), "peaks": {}, "cres_hg38": {}}
    lines = ["cell_type\tpeaks"]
    for name, (term, _) in CELL_TYPES.items():
        cres = np.array(sorted({c for m in terms[term] for c in modules.get(m, ())}), dtype=np.int64).reshape(-1, 2)
        lifted, _ = lift(cres, positions, offsets)
        lifted = lifted[lifted[:, 1] <= len(sequence)]
        with open(out / "peaks" / f"{name}.bed", "w") as f:
            f.writelines(f"{CHROM_PEAKS}\t{s}\t{e}\tREMO_{name}_{k}\n" for k, (s, e) in enumerate(lifted))
        summary["peaks"][name], summary["cres_hg38"][name] = int(len(lifted)), int(len(cres))
        lines.append(f"{name}\tpeaks/{name}.bed")
    (out / "samples.tsv").write_text("\n".join(lines) + "\n")

    for name, columns in (("expression.tsv", {n: label for n, (_, label) in CELL_TYPES.items()}),
                          ("new_expression.tsv", dict([NEW_CELL_TYPE]))):
        with open(out / name, "w") as f:
            f.write("gene\t" + "\t".join(columns) + "\n")
            for g, gene in enumerate(genes):
                f.write(gene + "\t" + "\t".join(f"{means[label][g]:.4f}" for label in columns.values()) + "\n")
    summary["genes"] = len(genes)
    (out / "case.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder to write the case into")
    parser.add_argument("--length", type=int, default=FULL_LENGTH, help="bases of chrX to keep (from 1)")
    args = parser.parse_args()
    print(json.dumps(build_case(args.out, args.length), indent=1))

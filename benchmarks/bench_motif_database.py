"""A real motif database through interpret's matching: what its names link to, and what its bias motifs do.

Reads a MEME/JASPAR file (default: chrombpnet's ``motifs.meme.txt``, 2,193 motifs, from ``pip install
--no-deps chrombpnet``), counts its bias motifs, its joined names (two or more factors) and its
HOCOMOCO names that translate to another gene symbol, then matches noisy copies (85 % motif, 15 %
random columns, ``--seed``) of every bias motif against the whole database with Tomtom: how many
copies best match a bias motif, how many have a TF motif at q < 0.05 as well (what a pattern that
is really Tn5's or DNase I's cutting preference would have been credited to before bias motifs were
reported apart), and how many are credited to a TF now (should be 0). Times the read and Tomtom.

    python benchmarks/bench_motif_database.py
    python benchmarks/bench_motif_database.py --motifs JASPAR2024_CORE.meme
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

import numpy as np

from chromtune.interpret.motif_match import match_motifs, match_rows
from chromtune.interpret.motif_names import is_bias_motif, tf_names
from chromtune.io.motifs import read_motif_file

MATCH_Q = 0.05


def chrombpnet_database() -> Path | None:
    """chrombpnet's motifs.meme.txt where the package is installed (found without importing it: TensorFlow)."""
    spec = importlib.util.find_spec("chrombpnet")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "motifs.meme.txt"
    return path if path.is_file() else None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--motifs", type=Path, default=chrombpnet_database(),
                   help="MEME or JASPAR file (default: chrombpnet's, if installed)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    if args.motifs is None:
        raise SystemExit("no --motifs and chrombpnet is not installed (pip install --no-deps chrombpnet)")
    started = time.perf_counter()
    database = read_motif_file(args.motifs)
    read_s = time.perf_counter() - started
    names = list(database)
    hocomoco = [n for n in names if ".H11MO." in n or ".H12" in n]
    translated = [n for n in hocomoco
                  if tf_names(n) and tf_names(n)[0].upper() != n.split("_")[0].split(".")[0].upper()]
    bias = [n for n in names if is_bias_motif(n)]
    print(f"{args.motifs}: {len(names)} motifs read in {read_s:.1f} s; {len(bias)} bias motifs; "
          f"{sum(len(tf_names(n)) > 1 for n in names)} joined names; {len(hocomoco)} HOCOMOCO names, "
          f"{len(translated)} of them translated to another gene symbol; "
          f"{sum(not tf_names(n) for n in names) - len(bias)} other names naming no TF")
    if not bias:
        return
    rng = np.random.default_rng(args.seed)
    queries = [0.85 * database[n] + 0.15 * rng.dirichlet(np.ones(4), database[n].shape[1]).T for n in bias]
    started = time.perf_counter()
    rows = match_rows(match_motifs(queries, database), names, MATCH_Q)
    tomtom_s = time.perf_counter() - started
    print(f"Tomtom of {len(queries)} noisy bias-motif copies against {len(names)} motifs: {tomtom_s:.1f} s")
    print(f"best match a bias motif: {sum(r['best_is_bias'] for r in rows)} of {len(rows)}; best TF match at "
          f"q < {MATCH_Q} too: {sum(r['tf_matched'] for r in rows)}; credited to a TF: "
          f"{sum(bool(r['motif']) for r in rows)}")
    for name, r in zip(bias, rows):
        print(f"  {name:10s} best {r['best_match']:10s} q {r['q_value']:.1e}   best TF {r['best_tf_match']} "
              f"q {r['tf_q_value']:.1e}")


if __name__ == "__main__":
    main()

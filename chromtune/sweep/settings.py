"""A sweep's settings as plain data: the keyword arguments of :func:`chromtune.sweep.sweep` and the
flags of ``chromtune sweep`` (each field is the flag of its name), and back to flags for the
command that resumes it. Imports nothing heavy (the command's ``--help`` reads the defaults)."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from typing import Sequence

SAMPLE_SIZES = ("valid_bins", "valid_pairs")  # 0 is written "all" on the command line
NEGATABLE = ("early_stopping", "with_mean")  # --flag / --no-flag


@dataclass(frozen=True)
class SweepSettings:
    """One sweep: one architecture and one stage-2 paradigm. A size left None takes its data set's
    default (the demo's, a smoke test's, or full size; chromtune.train.config.size_defaults)."""

    arch: str = "resnet"
    paradigm: str = "tune"
    data: str | None = None
    folds: int = 5
    split: str = "kfold"
    seed: int = 0
    seeds: tuple[int, ...] = ()  # several: the whole cross-validation once per seed, each a sweep of its own
    stage1_space: str = "stage1"
    stage2_space: str = "stage2"
    early_stopping: bool = True
    with_mean: bool = True
    mean_feature: str = "reference"
    width: float | None = None
    eval_every: int | None = None
    valid_bins: int | None = None
    valid_pairs: int | None = None
    test_every: int = 0
    test_max_pairs: int | None = None
    precision: str = "fp32"  # auto, fp32 or bf16 (chromtune.train.precision)
    pairs_per_bin: int = 1  # stage-2 training pairs grouped by bin (chromtune.data.sampling.Stage2Sampler)
    smoke_test: bool = False
    # where and how the sweep runs: its results do not depend on these
    storage: str = "ray_results"
    tracking_uri: str | None = None
    experiment: str | None = None
    workers_per_trial: int = 0
    cpus_per_worker: float = 1
    gpus_per_worker: float = 0
    max_concurrent_trials: int = 0
    concurrent_folds: int = 0
    address: str | None = None
    resume: bool = False
    force: bool = False

    def __post_init__(self):
        for name in ("data", "storage", "stage1_space", "stage2_space"):  # a pathlib.Path from Python
            value = getattr(self, name)
            if isinstance(value, os.PathLike):
                object.__setattr__(self, name, os.fspath(value))
        object.__setattr__(self, "seeds", tuple(dict.fromkeys(self.seeds or ())))


DEFAULTS = SweepSettings()


def each_sweep(arch: str | Sequence[str] = DEFAULTS.arch, paradigm: str | Sequence[str] = DEFAULTS.paradigm,
               **values) -> list[SweepSettings]:
    """One SweepSettings per (architecture, paradigm, seed), in the order given, each named once;
    the seeds are ``seeds`` when given, else ``seed``."""
    known = {f.name for f in fields(SweepSettings)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise TypeError(f"unknown sweep setting(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    archs = [arch] if isinstance(arch, str) else list(arch)
    paradigms = [paradigm] if isinstance(paradigm, str) else list(paradigm)
    base = SweepSettings(**values)
    return [replace(base, arch=a, paradigm=p, seed=seed) for a in dict.fromkeys(archs) for p in dict.fromkeys(paradigms)
            for seed in base.seeds or [base.seed]]


def flag(name: str) -> str:
    """The command-line flag of a field: ``valid_pairs`` -> ``--valid-pairs`` (``with_mean``: ``--mean``)."""
    return "--mean" if name == "with_mean" else "--" + name.replace("_", "-")


def command_flags(sweeps: list[SweepSettings]) -> list[str]:
    """The ``chromtune sweep`` flags that give these sweeps (several: one per --arch x --paradigm):
    every setting that differs from its default."""
    out = []
    for f in fields(SweepSettings):
        if f.name == "seed" and sweeps[0].seeds:
            continue  # --seeds gives them
        if f.name in ("arch", "paradigm"):
            values = list(dict.fromkeys(getattr(s, f.name) for s in sweeps))
            if values != [f.default]:
                out += [flag(f.name), *values]
            continue
        value = getattr(sweeps[0], f.name)
        if value == f.default:
            continue
        if f.name in NEGATABLE:
            out.append(flag(f.name) if value else "--no-" + flag(f.name)[2:])
        elif isinstance(value, bool):
            out.append(flag(f.name))
        elif isinstance(value, tuple):
            out += [flag(f.name), *map(str, value)]
        else:
            out += [flag(f.name), "all" if f.name in SAMPLE_SIZES and value == 0 else f"{value:g}"
                    if isinstance(value, float) else str(value)]
    return out

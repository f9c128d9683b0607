"""TrainConfig: every setting of one training run, as plain data (it travels to Ray workers and MLflow)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

from chromtune.errors import UserError
from chromtune.io.files import absolute

PARADIGMS = ("tune", "freeze")
MEAN_FEATURES = ("loo", "reference")  # stage-2 training pairs' mean input: leave-one-out, or with the own label
PRECISIONS = ("auto", "fp32", "bf16")  # chromtune.train.precision resolves auto where the device is known
VALID_BINS = 20_000  # stage 1: held-out bins scored each epoch (x every training cell type)
VALID_PAIRS = 256_000  # stage 2: (bin, validation cell type) pairs each epoch; the reference's 500 x 512
TEST_MAX_PAIRS = 1_000_000  # test pairs when test_every is 0 (automatic)
# The embedded demo data set (20,000 bins of 300 bp, 30 cell types) trains a narrower model and
# validates stage 2 on fewer pairs than a user's data set: the ResNet at width 0.125 reached width
# 0.25's test AUPRC on the demo at about half the compute, and 48,000 pairs cost less than scoring all
# 20,000 bins each epoch (BENCHMARKS.md, "The main job"). They were sized as 8,000 bins x 6 validation
# cell types; a 5-fold split of the demo has 3, so they are 16,000 bins (issue 22), 42 % of a stage-2 trial.
DEMO_WIDTH = 0.125
DEMO_VALID_PAIRS = 48_000
# A smoke test (``--smoke-test``) is as small on any data set as on the demo: a narrow model, every
# 4th held-out bin, 2,000 stage-1 validation bins and about 5,000 bins for stage-2 validation and
# for the test (the demo's 2,000 held-out-block bins and 20,000 / 4 evaluation bins: there it
# changes nothing), so a chromosome-scale set is not scored whole on every epoch.
SMOKE = {"width": 0.125, "eval_every": 4, "valid_bins": 2_000}
SMOKE_BINS = 5_000


def size_defaults(on_demo: bool, smoke: bool = False, valid_cells: int = 1, test_cells: int = 1) -> dict:
    """The sizes for flags left unset: full on a user's data set, a narrower model and fewer
    validation pairs on the demo, small everywhere in a smoke test. ``valid_cells`` / ``test_cells``:
    the most validation / test cell types of any fold (a smoke test's pairs are bins x those)."""
    sizes = {"width": 1.0, "eval_every": 1, "valid_bins": VALID_BINS, "valid_pairs": VALID_PAIRS,
             "test_max_pairs": TEST_MAX_PAIRS}
    if on_demo:
        sizes.update(width=DEMO_WIDTH, valid_pairs=DEMO_VALID_PAIRS)
    if smoke:
        sizes.update(SMOKE, valid_pairs=SMOKE_BINS * valid_cells, test_max_pairs=SMOKE_BINS * test_cells)
    return sizes


def data_file(data: str | None) -> str:
    """The data set a run reads: ``data`` made absolute (a URI as it is), or the demo's file when None."""
    if data:
        return absolute(data)
    from chromtune.data.demo import demo_path

    return str(demo_path())


def config_values(data: str | None, cpus_per_worker: float = 1, smoke: bool = False, valid_cells: int = 1,
                  test_cells: int = 1, **flags) -> dict:
    """TrainConfig's keyword arguments from command-line values, the one mapping that ``chromtune train``
    and the sweep share: a value left unset (None) takes :func:`size_defaults` or TrainConfig's
    default; ``data`` becomes an absolute path (a URI stays as it is), the demo's file when None;
    torch threads are the worker's whole CPUs (at least one)."""
    values = {name: value for name, value in flags.items() if value is not None}
    for name, value in size_defaults(data is None, smoke, valid_cells, test_cells).items():
        values.setdefault(name, value)
    values["data"] = data_file(data)
    values["threads"] = max(1, int(cpus_per_worker))
    return values


def sample_size(text: str) -> int:
    """A command-line sample size: a positive count, or "all" (stored as 0). ValueError otherwise."""
    value = 0 if text == "all" else int(text)
    if text != "all" and value < 1:
        raise ValueError(f"{text!r}: give a positive count or 'all'")
    return value


# Each stage's learning rate and batch size where none is given (train, train_fold).
STAGE_DEFAULTS = {1: {"lr": 2e-3, "batch_size": 128}, 2: {"lr": 1e-3, "batch_size": 256}}

@dataclass
class TrainConfig:
    """One stage of one fold. ``init`` is the stage-1 best checkpoint that stage 2 starts from.

    Bounded evaluation (chromtune.train.evaluate): each epoch validates on a fixed sample seeded
    by (seed, fold, stage), the same in every epoch and trial of a stage — ``valid_bins`` bins of
    the held-out blocks (stage 1) or about ``valid_pairs`` pairs, sampled bins x every validation
    cell type (stage 2); 0 means all. The test scores every ``test_every``-th test bin; 0 picks the
    smallest step that keeps bins x test cell types within ``test_max_pairs``; 1 scores them all.
    Stage 2 scores the test cell types only with ``evaluate_test`` (the sweep sets it for the one
    evaluation of each fold's selected model), so no run invites choosing on test.

    The budget is counted in training samples, ``epochs`` x ``samples_per_epoch``, so a larger
    batch takes fewer steps for the same cost (``steps_per_epoch``); an epoch is the unit at which
    the model is validated, checkpointed and (in a sweep) compared by the early-stopping scheduler.
    """

    data: str
    arch: str = "resnet"
    stage: int = 1
    fold: int = 0
    folds: int = 5
    split: str = "kfold"
    n_valid: int | None = None
    seed: int = 0
    lr: float = 2e-3
    batch_size: int = 128
    epochs: int = 4
    samples_per_epoch: int = 6400
    width: float = 1.0
    paradigm: str = "tune"
    with_mean: bool = True
    mean_feature: str = "reference"
    head: str = "simple"
    init: str | None = None
    test_chroms: list[str] = field(default_factory=list)
    valid_fraction: float = 0.1
    eval_every: int = 1
    valid_bins: int = VALID_BINS
    valid_pairs: int = VALID_PAIRS
    test_every: int = 0
    test_max_pairs: int = TEST_MAX_PAIRS
    evaluate_test: bool = False
    eval_batch_size: int = 512
    precision: str = "fp32"  # bf16 becomes the default only after a 5-fold x 3-seed check (issue 22)
    pairs_per_bin: int = 1  # stage 2: training pairs grouped up to this many per bin (chromtune.data.sampling)
    threads: int = 0

    def __post_init__(self):
        checks = [
            (self.stage in (1, 2), f"--stage {self.stage}: choose 1 or 2"),
            (self.paradigm in PARADIGMS, f"--paradigm {self.paradigm!r}: choose {' or '.join(PARADIGMS)}"),
            (self.mean_feature in MEAN_FEATURES,
             f"--mean-feature {self.mean_feature!r}: choose {' or '.join(MEAN_FEATURES)}"),
            (self.precision in PRECISIONS, f"--precision {self.precision!r}: choose {', '.join(PRECISIONS)}"),
            (self.lr > 0, f"--lr {self.lr}: must be positive"),
            (self.batch_size >= 4, f"--batch-size {self.batch_size}: must be at least 4"),
            (self.pairs_per_bin >= 1, f"--pairs-per-bin {self.pairs_per_bin}: must be at least 1"),
            (self.epochs >= 1, f"--epochs {self.epochs}: must be at least 1"),
            (self.samples_per_epoch >= self.batch_size,
             f"--samples-per-epoch {self.samples_per_epoch}: must be at least the batch size ({self.batch_size})"),
            (self.width > 0, f"--width {self.width}: must be positive"),
            (self.eval_every >= 1, f"--eval-every {self.eval_every}: must be at least 1"),
            (self.valid_bins >= 0, f"--valid-bins {self.valid_bins}: must be a count, or 0 for all"),
            (self.valid_pairs >= 0, f"--valid-pairs {self.valid_pairs}: must be a count, or 0 for all"),
            (self.test_every >= 0, f"--test-every {self.test_every}: must be >= 1, or 0 for automatic"),
            (self.test_max_pairs >= 1, f"--test-max-pairs {self.test_max_pairs}: must be at least 1"),
            (0 < self.valid_fraction < 1, f"--valid-fraction {self.valid_fraction}: must lie in (0, 1)"),
            (self.stage == 1 or self.init, "--init: stage 2 needs the stage-1 run (its folder or best.pt)"),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(message)

    @property
    def steps_per_epoch(self) -> int:
        """Optimizer steps per epoch: the epoch's samples in whole batches (rounded up)."""
        return math.ceil(self.samples_per_epoch / self.batch_size)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

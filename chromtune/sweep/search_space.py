"""Search spaces: YAML files validated against an allow-list, turned into Optuna searches for Ray Tune.

    sampler: grid | tpe            grid: every combination exactly once (Optuna GridSampler);
                                   tpe: seeded TPE over any parameter kinds
    num_samples: N                 trials (grid: optional, must equal the grid's size)
    params:                        searched settings, each one of
      NAME: {choice: [v1, v2, ...]}
      NAME: {uniform: [low, high]}
      NAME: {loguniform: [low, high]}      (0 < low < high)
      NAME: {int: [low, high]}             (inclusive)
    fixed:                         settings held constant
      NAME: value
    scheduler:                     optional early stopping over epochs (rungs at grace_period x
      asha: {grace_period: 1, reduction_factor: 2}      reduction_factor^k; the sweep fixes its metric)

A space may set only what :class:`TrialSettings` lists: optimiser and budget settings. Everything
that defines the fold split (seed, folds, held-out chromosomes, validation sizes, evaluation
stride) or the model's identity (architecture, width, paradigm, mean feature, head) comes from the
sweep's flags, so the MLflow tags, the comparison's labels and the test sets always describe what
was trained; a space that names one of them is refused. The schema is pydantic models with
``extra="forbid"``: anything not on the list is an error. Any problem is one line naming the file,
the key and what is wrong.

The spaces shipped with chromtune live in ``search_spaces/`` at the top of the repository, the one
source; the wheel carries them as ``chromtune/search_spaces/`` (pyproject's package-dir mapping). They
are named by their stem: ``stage1``, ``stage2``, ``stage2_tpe``.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal, Union

import yaml
from pydantic import (BaseModel, ConfigDict, Discriminator, Field, PositiveInt, Tag, ValidationError,
                      create_model, model_validator)

from chromtune.errors import UserError
from chromtune.train.config import TrainConfig

KINDS = ("choice", "uniform", "loguniform", "int")
def _shipped_folder():
    """Where the shipped spaces are: ``search_spaces/`` of the source checkout this module runs from (on
    PYTHONPATH or installed editable), else the installed wheel's ``chromtune/search_spaces/``."""
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "search_spaces").is_dir() and (checkout / "pyproject.toml").is_file():
        return checkout / "search_spaces"
    return resources.files("chromtune") / "search_spaces"


SHIPPED = _shipped_folder()


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class TrialSettings(_Strict):
    """The allow-list: what a search space may search (``params``) or hold constant (``fixed``)."""

    lr: Annotated[float, Field(gt=0)] | None = None
    batch_size: Annotated[int, Field(ge=4)] | None = None
    epochs: PositiveInt | None = None
    samples_per_epoch: PositiveInt | None = None
    eval_batch_size: PositiveInt | None = None


ALLOWED = tuple(TrialSettings.model_fields)
NOT_ALLOWED = tuple(f.name for f in fields(TrainConfig) if f.name not in ALLOWED)

Number = Union[int, float]
Pair = Annotated[list[Number], Field(min_length=2, max_length=2)]  # [low, high]
IntPair = Annotated[list[int], Field(min_length=2, max_length=2)]


class Choice(_Strict):
    choice: Annotated[list[Number], Field(min_length=1)]

    @model_validator(mode="after")
    def _distinct(self):
        if len(set(map(repr, self.choice))) != len(self.choice):
            raise ValueError("repeats a value")
        return self


class Uniform(_Strict):
    uniform: Pair

    @model_validator(mode="after")
    def _ordered(self):
        if not self.uniform[0] < self.uniform[1]:
            raise ValueError(f"low {self.uniform[0]} must be below high {self.uniform[1]}")
        return self


class LogUniform(_Strict):
    loguniform: Pair

    @model_validator(mode="after")
    def _ordered(self):
        low, high = self.loguniform
        if low <= 0:
            raise ValueError("low must be positive")
        if not low < high:
            raise ValueError(f"low {low} must be below high {high}")
        return self


class IntRange(_Strict):
    bounds: IntPair = Field(alias="int")

    @model_validator(mode="after")
    def _ordered(self):
        if not self.bounds[0] < self.bounds[1]:
            raise ValueError(f"low {self.bounds[0]} must be below high {self.bounds[1]}")
        return self


def _kind(spec) -> str | None:
    return next(iter(spec)) if isinstance(spec, dict) and len(spec) == 1 else None


ParamSpec = Annotated[
    Union[Annotated[Choice, Tag("choice")], Annotated[Uniform, Tag("uniform")],
          Annotated[LogUniform, Tag("loguniform")], Annotated[IntRange, Tag("int")]],
    Discriminator(_kind, custom_error_type="kind",
                  custom_error_message=f"must be one of {{{', '.join(f'{k}: [...]' for k in KINDS)}}}"),
]

SearchedParams = create_model("SearchedParams", __base__=_Strict,
                              **{name: (ParamSpec | None, None) for name in ALLOWED})


class Asha(_Strict):
    grace_period: PositiveInt | None = None
    reduction_factor: Annotated[int, Field(ge=2)] | None = None


class Scheduler(_Strict):
    asha: Asha | None = None


class SpaceFile(_Strict):
    """A search-space file as written."""

    sampler: Literal["grid", "tpe"] = "grid"
    num_samples: PositiveInt | None = None
    params: SearchedParams
    fixed: TrialSettings | None = None
    scheduler: Scheduler | None = None


@dataclass
class SearchSpace:
    sampler: str
    params: dict[str, tuple[str, list]]
    num_samples: int
    fixed: dict = field(default_factory=dict)
    asha: dict | None = None
    source: str = "<search space>"

    def content(self) -> dict:
        """What the space searches and fixes, without where it was read from (plain data)."""
        return {"sampler": self.sampler, "params": self.params, "num_samples": self.num_samples,
                "fixed": self.fixed, "asha": self.asha}

    def grid(self) -> dict[str, list]:
        return {name: values for name, (_, values) in self.params.items()}

    def distributions(self) -> dict:
        """Optuna distributions of the searched settings."""
        import optuna
        out = {}
        for name, (kind, values) in self.params.items():
            if kind == "choice":
                out[name] = optuna.distributions.CategoricalDistribution(values)
            elif kind == "int":
                out[name] = optuna.distributions.IntDistribution(*values)
            else:
                out[name] = optuna.distributions.FloatDistribution(*values, log=kind == "loguniform")
        return out

    def optuna_sampler(self, seed: int):
        import optuna
        if self.sampler == "grid":
            return optuna.samplers.GridSampler(self.grid(), seed=seed)
        return optuna.samplers.TPESampler(seed=seed)

    def shrunk(self) -> "SearchSpace":
        """The smoke-test budget: two trials at most, two epochs of one or two batches, the same
        scheduler with its rung after the first epoch (so trials can stop early). The smoke test's
        model width and evaluation sizes are the plan's (chromtune.train.config.size_defaults)."""
        params = {name: (kind, values[:2] if i == 0 else values[:1]) if kind == "choice" else (kind, values)
                  for i, (name, (kind, values)) in enumerate(self.params.items())}
        grid_size = math.prod(len(v) for _, v in params.values()) if self.sampler == "grid" else 2
        _, batches = params.get("batch_size", ("choice", [self.fixed.get("batch_size", 128)]))
        fixed = {**self.fixed, "epochs": 2, "samples_per_epoch": int(max(batches))}
        asha = {**self.asha, "grace_period": 1} if self.asha is not None else None
        return SearchSpace(self.sampler, params, min(grid_size, 2), fixed, asha, self.source)


def _fail(source: str, key: str, problem: str) -> UserError:
    return UserError(f"{source}: {key}: {problem}")


def _explain(source: str, err: ValidationError) -> UserError:
    """The first pydantic error as one line: the dotted key and what is wrong with it."""
    first = err.errors()[0]
    parts = list(first["loc"])
    index = next((i for i, part in enumerate(parts) if isinstance(part, int)), None)
    if index is not None:  # an item of a list: name the list and the item, not pydantic's union members
        first = {**first, "msg": f"item {parts[index]} ({first['input']!r}): {first['msg']}"}
        parts = parts[:index]
    loc = [str(part) for part in parts]
    key = ".".join(part for i, part in enumerate(loc) if i == 0 or part != loc[i - 1]) or "(top level)"
    if first["type"] == "extra_forbidden":
        name = loc[-1]
        if len(loc) == 1:
            problem = f"unknown key; valid keys: {', '.join(SpaceFile.model_fields)}"
        elif loc[0] == "scheduler" and len(loc) > 2:
            problem = f"unknown ASHA setting; valid: {', '.join(Asha.model_fields)}"
        elif loc[0] == "scheduler":
            problem = "unknown scheduler; only asha: {grace_period: N, reduction_factor: N} is supported"
        elif loc[0] in ("params", "fixed") and len(loc) == 2:
            if name in NOT_ALLOWED:
                problem = ("defines the fold split or the model's identity, so a search space may not set it; "
                           "use the sweep's flags")
            else:
                problem = f"unknown setting; a search space may set only {', '.join(ALLOWED)}"
        else:
            problem = "unknown key"
    else:
        problem = first["msg"].removeprefix("Value error, ")
    return _fail(source, key, problem)


def parse_search_space(raw, source: str) -> SearchSpace:
    if not isinstance(raw, dict):
        raise _fail(source, "(top level)", "must be a mapping with 'sampler' and 'params'")
    if isinstance(raw.get("scheduler"), dict) and raw["scheduler"].get("asha", 0) is None:
        raw = {**raw, "scheduler": {"asha": {}}}  # `asha:` alone means Ray's defaults
    try:
        spec = SpaceFile.model_validate(raw)
    except ValidationError as err:
        raise _explain(source, err) from None
    order = [str(name) for name in raw["params"]]
    searched = {name: getattr(spec.params, name) for name in order}
    if not searched:
        raise _fail(source, "params", "needs at least one parameter")
    params = {}
    for name, s in searched.items():
        kind = _kind(s.model_dump(by_alias=True))
        values = list(s.model_dump(by_alias=True)[kind])
        if kind in ("uniform", "loguniform"):
            values = [float(v) for v in values]
        for value in values:  # each value must suit the setting (an int batch size, a positive rate, ...)
            try:
                TrialSettings.model_validate({name: value})
            except ValidationError as err:
                raise _fail(source, f"params.{name}.{kind}", f"{value!r}: {err.errors()[0]['msg']}") from None
        params[name] = (kind, values)
    fixed = spec.fixed.model_dump(exclude_none=True) if spec.fixed else {}
    for name in fixed:
        if name in params:
            raise _fail(source, f"fixed.{name}", "is also searched in params")
    sampler = spec.sampler
    grid_size = math.prod(len(v) for _, v in params.values())
    if sampler == "grid":
        not_choice = [n for n, (kind, _) in params.items() if kind != "choice"]
        if not_choice:
            raise _fail(source, f"params.{not_choice[0]}", "a grid holds only 'choice' parameters (or use sampler: tpe)")
    num_samples = spec.num_samples or (grid_size if sampler == "grid" else None)
    if num_samples is None:
        raise _fail(source, "num_samples", "a tpe search needs a positive integer")
    if sampler == "grid" and num_samples != grid_size:
        raise _fail(source, "num_samples", f"{num_samples} differs from the grid's {grid_size} points")
    asha = None
    if spec.scheduler is not None:
        asha = spec.scheduler.asha.model_dump(exclude_none=True) if spec.scheduler.asha else None
    space = SearchSpace(sampler, params, num_samples, fixed, asha, source)
    _check_trial_configs(space)
    return space


def _check_trial_configs(space: SearchSpace) -> None:
    """The fixed settings, and every grid point (or both ends of each range), make valid TrainConfigs."""
    try:
        TrainConfig(data="-", **space.fixed)
    except (UserError, TypeError) as err:
        raise _fail(space.source, "fixed", str(err)) from None
    for name, (_, values) in space.params.items():
        for value in values:
            try:
                TrainConfig(data="-", **{**space.fixed, name: value})
            except (UserError, TypeError) as err:
                raise _fail(space.source, f"params.{name}", str(err)) from None


def shipped_spaces() -> list[str]:
    """Names of the search spaces shipped in the package (``stage1``, ``stage2``, ...)."""
    return sorted(p.name[:-5] for p in SHIPPED.iterdir() if p.name.endswith(".yaml"))


def load_search_space(path: str | Path) -> SearchSpace:
    """Read and validate a search-space YAML file, or a shipped space named by its stem."""
    source = str(path)
    name = source[:-5] if source.endswith(".yaml") else source
    shipped = not Path(path).exists() and "/" not in source and name in shipped_spaces()
    try:
        text = SHIPPED.joinpath(f"{name}.yaml").read_text() if shipped else Path(path).read_text()
    except FileNotFoundError:
        raise UserError(f"{source}: no such search-space file (shipped spaces: "
                        f"{', '.join(shipped_spaces())})") from None
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"{source}: unreadable ({err.__class__.__name__})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "(top level)"
        raise _fail(source, where, "not valid YAML") from None
    return parse_search_space(raw, f"search space {name}" if shipped else source)


def grid_points(space: SearchSpace) -> list[dict]:
    """Every combination of a grid space (for checks and summaries)."""
    names = list(space.params)
    return [dict(zip(names, combo)) for combo in itertools.product(*(v for _, v in space.params.values()))]

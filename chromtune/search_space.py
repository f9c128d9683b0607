"""Search spaces: YAML files with a small, validated schema, turned into Optuna searches for Ray Tune.

    sampler: grid | tpe            grid: every combination exactly once (Optuna GridSampler);
                                   tpe: seeded TPE over any parameter kinds
    num_samples: N                 trials (grid: optional, must equal the grid's size)
    params:                        searched TrainConfig fields, each one of
      NAME: {choice: [v1, v2, ...]}
      NAME: {uniform: [low, high]}
      NAME: {loguniform: [low, high]}      (0 < low < high)
      NAME: {int: [low, high]}             (inclusive)
    fixed:                         TrainConfig fields held constant (epochs, batches_per_epoch, width, ...)
      NAME: value
    scheduler:                     optional early stopping
      asha: {grace_period: 1, reduction_factor: 2}

A grid may only hold ``choice`` parameters. Any problem is one line naming the file, the key and
what is wrong.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field, fields
from pathlib import Path

import optuna
import yaml

from chromtune.errors import UserError
from chromtune.train.config import TrainConfig

KINDS = ("choice", "uniform", "loguniform", "int")
SAMPLERS = ("grid", "tpe")
TOP_KEYS = ("sampler", "num_samples", "params", "fixed", "scheduler")
NOT_SEARCHABLE = ("data", "stage", "fold", "folds", "init", "seed", "split")


@dataclass
class SearchSpace:
    sampler: str
    params: dict[str, tuple[str, list]]
    num_samples: int
    fixed: dict = field(default_factory=dict)
    asha: dict | None = None
    source: str = "<search space>"

    def grid(self) -> dict[str, list]:
        return {name: values for name, (_, values) in self.params.items()}

    def distributions(self) -> dict[str, optuna.distributions.BaseDistribution]:
        out = {}
        for name, (kind, values) in self.params.items():
            if kind == "choice":
                out[name] = optuna.distributions.CategoricalDistribution(values)
            elif kind == "int":
                out[name] = optuna.distributions.IntDistribution(*values)
            else:
                out[name] = optuna.distributions.FloatDistribution(*values, log=kind == "loguniform")
        return out

    def optuna_sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        if self.sampler == "grid":
            return optuna.samplers.GridSampler(self.grid(), seed=seed)
        return optuna.samplers.TPESampler(seed=seed)

    def shrunk(self) -> "SearchSpace":
        """The smoke-test version: two trials at most, one epoch of two batches, a narrow model."""
        params = {name: (kind, values[:2] if i == 0 else values[:1]) if kind == "choice" else (kind, values)
                  for i, (name, (kind, values)) in enumerate(self.params.items())}
        grid_size = math.prod(len(v) for _, v in params.values()) if self.sampler == "grid" else 2
        fixed = {**self.fixed, "epochs": 1, "batches_per_epoch": 2, "width": 0.125, "eval_every": 4}
        return SearchSpace(self.sampler, params, min(grid_size, 2), fixed, None, self.source)


def _fail(source: str, key: str, problem: str) -> UserError:
    return UserError(f"{source}: {key}: {problem}")


def _number(value, source: str, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(source, key, f"{value!r} is not a number")
    return value


def _parse_param(name: str, spec, source: str) -> tuple[str, list]:
    key = f"params.{name}"
    if name in NOT_SEARCHABLE or name not in {f.name for f in fields(TrainConfig)}:
        raise _fail(source, key, "not a searchable training setting")
    if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in KINDS:
        raise _fail(source, key, f"must be one of {{{', '.join(f'{k}: [...]' for k in KINDS)}}}")
    kind, values = next(iter(spec.items()))
    if not isinstance(values, list) or not values:
        raise _fail(source, f"{key}.{kind}", "needs a non-empty list")
    if kind == "choice":
        if len(set(map(repr, values))) != len(values):
            raise _fail(source, f"{key}.choice", "repeats a value")
        return kind, values
    if len(values) != 2:
        raise _fail(source, f"{key}.{kind}", "needs [low, high]")
    low, high = (_number(v, source, f"{key}.{kind}") for v in values)
    if not low < high:
        raise _fail(source, f"{key}.{kind}", f"low {low} must be below high {high}")
    if kind == "loguniform" and low <= 0:
        raise _fail(source, f"{key}.loguniform", "low must be positive")
    if kind == "int" and not (float(low).is_integer() and float(high).is_integer()):
        raise _fail(source, f"{key}.int", "bounds must be integers")
    return kind, [int(low), int(high)] if kind == "int" else [float(low), float(high)]


def parse_search_space(raw, source: str) -> SearchSpace:
    if not isinstance(raw, dict):
        raise _fail(source, "(top level)", "must be a mapping with 'sampler' and 'params'")
    unknown = sorted(set(raw) - set(TOP_KEYS))
    if unknown:
        raise _fail(source, unknown[0], f"unknown key; valid keys: {', '.join(TOP_KEYS)}")
    sampler = raw.get("sampler", "grid")
    if sampler not in SAMPLERS:
        raise _fail(source, "sampler", f"{sampler!r}: choose {' or '.join(SAMPLERS)}")
    if not isinstance(raw.get("params"), dict) or not raw["params"]:
        raise _fail(source, "params", "needs at least one parameter")
    params = {str(name): _parse_param(str(name), spec, source) for name, spec in raw["params"].items()}
    fixed = raw.get("fixed") or {}
    if not isinstance(fixed, dict):
        raise _fail(source, "fixed", "must be a mapping of training settings")
    for name, value in fixed.items():
        if name in NOT_SEARCHABLE or name not in {f.name for f in fields(TrainConfig)}:
            raise _fail(source, f"fixed.{name}", "not a training setting that a search space may fix")
        if name in params:
            raise _fail(source, f"fixed.{name}", "is also searched in params")
    grid_size = math.prod(len(v) for _, v in params.values())
    if sampler == "grid":
        not_choice = [n for n, (kind, _) in params.items() if kind != "choice"]
        if not_choice:
            raise _fail(source, f"params.{not_choice[0]}", "a grid holds only 'choice' parameters (or use sampler: tpe)")
    num_samples = raw.get("num_samples", grid_size if sampler == "grid" else None)
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise _fail(source, "num_samples", f"{num_samples!r}: needs a positive integer")
    if sampler == "grid" and num_samples != grid_size:
        raise _fail(source, "num_samples", f"{num_samples} differs from the grid's {grid_size} points")
    asha = None
    if raw.get("scheduler") is not None:
        scheduler = raw["scheduler"]
        if not isinstance(scheduler, dict) or set(scheduler) != {"asha"} or not isinstance(scheduler["asha"] or {}, dict):
            raise _fail(source, "scheduler", "only {asha: {grace_period: N, reduction_factor: N}} is supported")
        asha = dict(scheduler["asha"] or {})
        bad = sorted(set(asha) - {"grace_period", "reduction_factor"})
        if bad:
            raise _fail(source, f"scheduler.asha.{bad[0]}", "unknown ASHA setting")
    space = SearchSpace(sampler, params, num_samples, dict(fixed), asha, source)
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


def load_search_space(path: str | Path) -> SearchSpace:
    """Read and validate a search-space YAML file."""
    source = str(path)
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"{source}: no such search-space file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"{source}: unreadable ({err.__class__.__name__})") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "(top level)"
        raise _fail(source, where, "not valid YAML") from None
    return parse_search_space(raw, source)


def grid_points(space: SearchSpace) -> list[dict]:
    """Every combination of a grid space (for checks and summaries)."""
    names = list(space.params)
    return [dict(zip(names, combo)) for combo in itertools.product(*(v for _, v in space.params.values()))]

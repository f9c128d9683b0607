import optuna
import pytest
import yaml

from chromtune.errors import UserError
from chromtune.sweep.search_space import NOT_ALLOWED, SHIPPED, grid_points, load_search_space, shipped_spaces


def write(tmp_path, text):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return path


def test_paper_grids():
    stage1 = load_search_space("stage1")
    stage2 = load_search_space("stage2")
    assert stage1.sampler == stage2.sampler == "grid"
    assert stage1.grid() == {"batch_size": [128, 256], "lr": [0.02, 0.002, 0.0002]}
    assert stage2.grid() == {"batch_size": [256, 512, 1024], "lr": [0.001, 0.0001]}
    assert stage1.num_samples == len(grid_points(stage1)) == 6 and stage2.num_samples == 6


def test_grid_sampler_visits_each_point_exactly_once():
    space = load_search_space("stage2")
    study = optuna.create_study(sampler=space.optuna_sampler(seed=0), direction="maximize")
    seen = []

    def objective(trial):
        seen.append((trial.suggest_categorical("batch_size", space.grid()["batch_size"]),
                     trial.suggest_categorical("lr", space.grid()["lr"])))
        return 0.5
    study.optimize(objective, n_trials=2 * space.num_samples)  # the grid stops the study when exhausted
    assert sorted(seen) == sorted((p["batch_size"], p["lr"]) for p in grid_points(space))


def test_tpe_space_is_seeded():
    space = load_search_space("stage2_tpe")
    assert space.sampler == "tpe" and space.asha == {"grace_period": 1, "reduction_factor": 2}

    def draws(seed):
        study = optuna.create_study(sampler=space.optuna_sampler(seed), direction="maximize")
        return [study.ask(space.distributions()).params["lr"] for _ in range(3)]
    assert draws(1) == draws(1) != draws(2)


def test_smoke_shrinks_to_two_short_trials():
    space = load_search_space("stage1").shrunk()
    assert space.num_samples == 2 == len(grid_points(space))
    assert space.fixed["epochs"] == 2 and space.fixed["samples_per_epoch"] == 256  # 2 and 1 steps
    assert space.asha == {**load_search_space("stage1").asha, "grace_period": 1}  # a trial may stop after epoch 1


@pytest.mark.parametrize("text,key", [
    ("sampler: grid\nparams: {lr: {choice: [0.1]}}\nextra: 1\n", "extra"),
    ("sampler: random\nparams: {lr: {choice: [0.1]}}\n", "sampler"),
    ("params: {}\n", "params"),
    ("params: {lr: {normal: [0, 1]}}\n", "params.lr"),
    ("params: {lr: {loguniform: [0.01, 0.001]}}\nsampler: tpe\nnum_samples: 3\n", "params.lr.loguniform"),
    ("params: {lr: {loguniform: [0.0, 0.1]}}\nsampler: tpe\nnum_samples: 3\n", "params.lr.loguniform"),
    ("params: {lr: {loguniform: [0.0001, 0.1]}}\n", "params.lr"),
    ("params: {lr: {choice: [0.1, 0.01]}}\nnum_samples: 5\n", "num_samples"),
    ("params: {lr: {choice: [-0.1]}}\n", "params.lr"),
    ("params: {fold: {choice: [1, 2]}}\n", "params.fold"),
    ("params: {colour: {choice: [1]}}\n", "params.colour"),
    ("params: {lr: {choice: [0.1]}}\nfixed: {epochs: 0}\n", "fixed"),
    ("params: {lr: {choice: [0.1]}}\nfixed: {lr: 0.2}\n", "fixed.lr"),
    ("params: {lr: {choice: [0.1]}}\nscheduler: {hyperband: {}}\n", "scheduler"),
    ("params: {lr: {choice: [0.1, 0.1]}}\n", "params.lr.choice"),
    ("params: [lr\n", "line"),
])
def test_malformed_files_name_file_key_and_problem(tmp_path, text, key):
    path = write(tmp_path, text)
    with pytest.raises(UserError) as err:
        load_search_space(path)
    message = str(err.value)
    assert str(path) in message and key in message and "\n" not in message


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match="no such search-space file"):
        load_search_space(tmp_path / "nope.yaml")


def test_every_shipped_space_is_valid():
    assert {"stage1", "stage2", "stage2_tpe"} <= set(shipped_spaces())
    for name in shipped_spaces():
        assert load_search_space(name).num_samples >= 1
        assert load_search_space(f"{name}.yaml").params == load_search_space(name).params
        assert isinstance(yaml.safe_load(SHIPPED.joinpath(f"{name}.yaml").read_text()), dict)


def test_a_file_beside_the_caller_wins_over_a_shipped_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "stage1.yaml").write_text("params: {lr: {choice: [0.5]}}\n")
    assert load_search_space("stage1.yaml").grid() == {"lr": [0.5]}
    assert load_search_space("stage1").grid()["lr"] == [0.02, 0.002, 0.0002]


IDENTITY = ["arch", "width", "paradigm", "with_mean", "head", "init", "data", "stage"]
SPLIT = ["fold", "folds", "split", "seed", "test_chroms", "valid_fraction", "eval_every", "n_valid", "n_test"]


@pytest.mark.parametrize("name", IDENTITY + SPLIT)
@pytest.mark.parametrize("where", ["params", "fixed"])
def test_split_and_model_identity_are_refused(tmp_path, name, where):
    """Only optimiser and budget settings may vary: anything else changes what is measured behind the flags."""
    value = {"test_chroms": ["chr1"], "with_mean": False, "arch": "basset", "paradigm": "freeze",
             "head": "complex", "split": "reference", "width": 0.5, "valid_fraction": 0.2}.get(name, 2)
    raw = ({"sampler": "grid", "params": {name: {"choice": [value]}}} if where == "params"
           else {"params": {"lr": {"choice": [0.1]}}, "fixed": {name: value}})
    path = write(tmp_path, yaml.safe_dump(raw))
    with pytest.raises(UserError) as err:
        load_search_space(path)
    assert f"{where}.{name}:" in str(err.value)
    assert "\n" not in str(err.value)


def test_the_allow_list_is_what_may_vary():
    assert set(NOT_ALLOWED) >= {"arch", "width", "paradigm", "with_mean", "head", "fold", "folds", "split",
                                "seed", "test_chroms", "valid_fraction", "eval_every"}
    space = load_search_space("stage2_tpe")
    assert set(space.params) | set(space.fixed) <= {"lr", "batch_size", "epochs", "samples_per_epoch",
                                                    "eval_batch_size"}

import optuna
import pytest
import yaml

from chromtune.errors import UserError
from chromtune.search_space import grid_points, load_search_space
from chromtune.sweep.plan import SPACES


def write(tmp_path, text):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return path


def test_paper_grids():
    stage1 = load_search_space(SPACES / "stage1.yaml")
    stage2 = load_search_space(SPACES / "stage2.yaml")
    assert stage1.sampler == stage2.sampler == "grid"
    assert stage1.grid() == {"batch_size": [128, 256], "lr": [0.02, 0.002, 0.0002]}
    assert stage2.grid() == {"batch_size": [256, 512, 1024], "lr": [0.001, 0.0001]}
    assert stage1.num_samples == len(grid_points(stage1)) == 6 and stage2.num_samples == 6


def test_grid_sampler_visits_each_point_exactly_once():
    space = load_search_space(SPACES / "stage2.yaml")
    study = optuna.create_study(sampler=space.optuna_sampler(seed=0), direction="maximize")
    seen = []

    def objective(trial):
        seen.append((trial.suggest_categorical("batch_size", space.grid()["batch_size"]),
                     trial.suggest_categorical("lr", space.grid()["lr"])))
        return 0.5
    study.optimize(objective, n_trials=2 * space.num_samples)  # the grid stops the study when exhausted
    assert sorted(seen) == sorted((p["batch_size"], p["lr"]) for p in grid_points(space))


def test_tpe_space_is_seeded():
    space = load_search_space(SPACES / "stage2_tpe.yaml")
    assert space.sampler == "tpe" and space.asha == {"grace_period": 1, "reduction_factor": 2}

    def draws(seed):
        study = optuna.create_study(sampler=space.optuna_sampler(seed), direction="maximize")
        return [study.ask(space.distributions()).params["lr"] for _ in range(3)]
    assert draws(1) == draws(1) != draws(2)


def test_smoke_shrinks_to_two_short_trials():
    space = load_search_space(SPACES / "stage1.yaml").shrunk()
    assert space.num_samples == 2 == len(grid_points(space))
    assert space.fixed["epochs"] == 1 and space.fixed["batches_per_epoch"] == 2


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
    for path in SPACES.glob("*.yaml"):
        assert load_search_space(path).num_samples >= 1
        assert isinstance(yaml.safe_load(path.read_text()), dict)

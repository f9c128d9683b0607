"""The Ray cluster launcher configs (cluster.yaml for AWS, cluster-gcp.yaml for GCP), checked offline.

Each file must pass Ray's own schema (``ray/autoscaler/ray-schema.json`` of the installed Ray) and
Ray's own config preparation (``prepare_config`` + ``validate_config``, what ``ray up`` runs before
it contacts the cloud); the cloud bootstrap itself is never called, and any network connection
fails the test. AWS node configs are also checked against botocore's RunInstances model (offline
service data), so a misspelt EC2 field fails too. Then what chromtune needs from a cluster: exactly
the installed Ray on every node, spot GPU workers scaling from zero, no trials on the head, MLflow
bound to 127.0.0.1, shared storage from an environment variable, and no secrets.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import json
import re
import shlex
import socket
import subprocess
from pathlib import Path

import pytest
import ray
import ray.autoscaler
import yaml

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = {"aws": ROOT / "cluster.yaml", "gcp": ROOT / "cluster-gcp.yaml"}
STORAGE_SCHEME = {"aws": "s3://", "gcp": "gs://"}
RAY_SCHEMA = Path(ray.autoscaler.__file__).parent / "ray-schema.json"
# botocore (boto3, which `ray up` on AWS needs anyway) carries the EC2 API model offline.
HAS_BOTOCORE = importlib.util.find_spec("botocore") is not None
NEEDS_BOTOCORE = pytest.mark.skipif(not HAS_BOTOCORE, reason="botocore checks the EC2 node configs")

# vCPUs and GPUs per instance type: a worker type's declared `resources` must agree with its machine.
MACHINES = {
    "aws": {"g4dn.xlarge": (4, 1), "g4dn.2xlarge": (8, 1), "g5.xlarge": (4, 1), "g5.2xlarge": (8, 1),
            "g5.4xlarge": (16, 1), "g6.xlarge": (4, 1), "g6.2xlarge": (8, 1)},
    "gcp": {"g2-standard-4": (4, 1), "g2-standard-8": (8, 1), "g2-standard-12": (12, 1)},
}
MACHINE_KEY = {"aws": "InstanceType", "gcp": "machineType"}

SECRET_PATTERNS = {
    "AWS access key ID": r"\b(AKIA|ASIA)[0-9A-Z]{16}\b",
    "AWS secret key setting": r"(?i)aws_secret_access_key|aws_session_token",
    "private key": r"-----BEGIN [A-Z ]*PRIVATE KEY-----",
    "ssh private key setting": r"\bssh_private_key\b",
    "embedded GCP credentials": r"\bgcp_credentials\b|\"private_key\"",
    "GitHub token": r"\bgh[pousr]_[A-Za-z0-9]{36}\b",
}


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """Any network connection attempt fails the test: validation must never reach a cloud."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access during a cluster-config test: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def load(provider: str) -> dict:
    return yaml.safe_load(CONFIGS[provider].read_text())


@functools.cache
def ray_schema() -> dict:
    return json.loads(RAY_SCHEMA.read_text())


@functools.cache
def run_instances_shape():
    """botocore's offline model of EC2 RunInstances' input (what Ray's create_instances receives)."""
    import botocore.session

    return botocore.session.get_session().get_service_model("ec2").operation_model("RunInstances").input_shape


def schema_problems(config: dict) -> list[str]:
    """Every violation of the installed Ray's cluster-config schema."""
    import jsonschema

    schema = ray_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [f"schema at /{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(config)]


def provider_key_problems(config: dict) -> list[str]:
    """Provider keys the schema does not name (the schema itself lets any key through there)."""
    known = ray_schema()["properties"]["provider"]["properties"]
    return [f"provider: unknown key {key!r}" for key in config.get("provider", {}) if key not in known]


def ec2_problems(config: dict) -> list[str]:
    """AWS node configs checked against botocore's offline RunInstances model: names, types, enums."""
    from botocore.exceptions import ParamValidationError
    from botocore.validate import validate_parameters

    shape = run_instances_shape()
    problems = []
    for name, node_type in config.get("available_node_types", {}).items():
        # Ray adds the counts itself when it calls create_instances.
        params = {**node_type.get("node_config", {}), "MinCount": 1, "MaxCount": 1}
        try:
            validate_parameters(params, shape)
        except ParamValidationError as err:
            problems.append(f"{name}: {err}")
        problems += [f"{name}: {p}" for p in enum_problems(params, shape, "node_config")]
    return problems


def enum_problems(value, shape, where: str) -> list[str]:
    """String values outside their botocore enum (validate_parameters checks names and types only)."""
    if shape.type_name == "structure" and isinstance(value, dict):
        return [p for key, item in value.items() if key in shape.members
                for p in enum_problems(item, shape.members[key], f"{where}.{key}")]
    if shape.type_name == "list" and isinstance(value, list):
        return [p for i, item in enumerate(value) for p in enum_problems(item, shape.member, f"{where}[{i}]")]
    if getattr(shape, "enum", None) and value not in shape.enum:
        return [f"{where}: {value!r} is not one of {shape.enum}"]
    return []


def config_problems(provider: str, config: dict) -> list[str]:
    """What `ray up` would reject before it contacts the cloud, plus the provider-specific checks."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    problems = schema_problems(config) + provider_key_problems(config)
    try:
        validate_config(prepare_config(copy.deepcopy(config)))
    except Exception as err:  # Ray raises ValidationError, ValueError, KeyError, AssertionError, ...
        problems.append(f"prepare/validate_config: {type(err).__name__}: {err}")
    if provider == "aws" and HAS_BOTOCORE:
        problems += ec2_problems(config)
    return problems


def prepared(provider: str) -> dict:
    from ray.autoscaler._private.util import prepare_config

    return prepare_config(load(provider))


def worker_type(config: dict) -> dict:
    """The one worker node type (every node type but the head's)."""
    workers = [t for name, t in config["available_node_types"].items() if name != config["head_node_type"]]
    assert len(workers) == 1, "expected exactly one worker node type"
    return workers[0]


def head_type(config: dict) -> dict:
    return config["available_node_types"][config["head_node_type"]]


def pip_requirements(commands: list[str], package: str) -> list[tuple[str, str]]:
    """(extras, version specifier) of `package` in every `pip install` among ``commands``; '' if absent."""
    found = []
    for command in commands:
        for part in re.split(r"&&|;|\|\|", command):
            words = shlex.split(part)
            if "pip" not in words or "install" not in words:
                continue
            for word in words:
                match = re.fullmatch(rf"{re.escape(package)}(\[[\w,-]+\])?\s*((?:[=<>!~]=?|===).*)?", word)
                if match:
                    found.append((match.group(1) or "", match.group(2) or ""))
    return found


def mlflow_server_options(command: str) -> dict[str, str]:
    """The `--flag value` options of the `mlflow server` call inside a shell command."""
    match = re.search(r"mlflow server (.*?)(?:[<>&;|]|$)", command)
    assert match, f"no mlflow server call in {command!r}"
    words = shlex.split(match.group(1))
    return dict(zip(words[::2], words[1::2]))


COMMAND_WORDS = ("ray", "export", "python", "mlflow", "pip", "chromtune")


def shell_commands(text: str) -> list[str]:
    """The commands of a README code block or a YAML header comment, continuations joined and
    re-quoted by shlex without their comments (``ray up cluster.yaml  # note`` -> ``ray up cluster.yaml``)."""
    lines = "\n".join(re.sub(r"^#\s?", "", line) for line in text.splitlines()).replace("\\\n", " ")
    return [shlex.join(shlex.split(line, comments=True)) for line in lines.splitlines()
            if line.strip().split(" ", 1)[0] in COMMAND_WORDS]


def sweep_invocation(commands: list[str]) -> tuple[str, dict]:
    """The storage exported in ``commands`` and the parsed flags of the sweep they submit."""
    from chromtune.cli.sweep import build_parser

    exports = [shlex.split(c, comments=True)[1] for c in commands if c.startswith("export CHROMTUNE_STORAGE=")]
    assert exports, "no `export CHROMTUNE_STORAGE=...` line"
    storage = exports[0].split("=", 1)[1]
    submits = [c for c in commands if re.match(r"ray (job submit|submit)\b", c)]
    assert submits, "no `ray job submit` line"
    words = shlex.split(submits[0], comments=True)
    assert "chromtune.sweep" in words, f"the submitted command does not run chromtune.sweep: {submits[0]}"
    sweep_args = words[words.index("chromtune.sweep") + 1:]
    assert "$CHROMTUNE_STORAGE" in sweep_args or "${CHROMTUNE_STORAGE}" in sweep_args, \
        "the sweep's --storage must come from $CHROMTUNE_STORAGE"
    expanded = [a.replace("${CHROMTUNE_STORAGE}", storage).replace("$CHROMTUNE_STORAGE", storage) for a in sweep_args]
    try:
        args = build_parser().parse_args(expanded)
    except SystemExit:
        pytest.fail(f"python -m chromtune.sweep rejects {shlex.join(sweep_args)}")
    return storage, vars(args)


def usage_header(provider: str) -> str:
    """The leading comment block of a config file."""
    text = CONFIGS[provider].read_text()
    return "\n".join(line for line in text.split("\n\n", 1)[0].splitlines() if line.startswith("#"))


PROVIDERS = pytest.mark.parametrize("provider", sorted(CONFIGS))


@PROVIDERS
def test_config_passes_ray_schema_and_preparation(provider):
    config = load(provider)
    assert config["provider"]["type"] == provider
    assert config_problems(provider, config) == []
    ready = prepared(provider)
    assert head_type(ready)["max_workers"] == 0
    assert 1 <= worker_type(ready)["max_workers"] <= ready["max_workers"]


def rename(config: dict, path: tuple, old: str, new: str) -> dict:
    broken = copy.deepcopy(config)
    parent = broken
    for key in path:
        parent = parent[key]
    parent[new] = parent.pop(old)
    return broken


COMMON_TYPOS = [
    ((), "max_workers", "max_worker"),
    ((), "setup_commands", "setup_comands"),
    ((), "head_start_ray_commands", "head_start_ray_command"),
    ((), "available_node_types", "available_node_type"),
    (("available_node_types", "worker_gpu"), "node_config", "node_confg"),
    (("available_node_types", "worker_gpu"), "min_workers", "min_worker"),
    (("available_node_types", "worker_gpu"), "resources", "resource"),
    (("provider",), "availability_zone", "availability_zones"),
]
AWS_TYPOS = [
    (("available_node_types", "worker_gpu", "node_config"), "InstanceType", "InstanceTyp"),
    (("available_node_types", "worker_gpu", "node_config"), "InstanceMarketOptions", "InstanceMarketOption"),
    (("available_node_types", "head_cpu", "node_config", "IamInstanceProfile"), "Name", "name"),
]


@pytest.mark.parametrize("provider,path,old,new",
                         [(p, *t) for p in sorted(CONFIGS) for t in COMMON_TYPOS]
                         + [pytest.param("aws", *t, marks=NEEDS_BOTOCORE) for t in AWS_TYPOS])
def test_misspelt_key_is_rejected(provider, path, old, new):
    problems = config_problems(provider, rename(load(provider), path, old, new))
    assert any(new in p or old in p for p in problems), problems


@NEEDS_BOTOCORE
def test_wrong_spot_value_is_rejected():
    config = load("aws")
    config["available_node_types"]["worker_gpu"]["node_config"]["InstanceMarketOptions"]["MarketType"] = "spott"
    assert any("spott" in p for p in config_problems("aws", config))


@PROVIDERS
def test_every_node_installs_exactly_the_installed_ray(provider):
    ready = prepared(provider)
    for role in ("head_setup_commands", "worker_setup_commands"):
        pins = pip_requirements(ready[role], "ray")
        assert pins, f"{role}: Ray is not installed"
        assert {spec for _, spec in pins} == {f"=={ray.__version__}"}, f"{role}: {pins}"
        assert all({"default", "tune", "train"} <= set(extras.strip("[]").split(",")) for extras, _ in pins), pins


@PROVIDERS
def test_torch_is_the_same_version_everywhere_and_cuda_on_workers(provider):
    ready = prepared(provider)
    head = pip_requirements(ready["head_setup_commands"], "torch")
    workers = pip_requirements(ready["worker_setup_commands"], "torch")
    assert head and workers
    versions = {spec for _, spec in head + workers}
    assert len(versions) == 1 and next(iter(versions)).startswith("=="), versions
    worker_torch = [c for c in ready["worker_setup_commands"] if pip_requirements([c], "torch")]
    assert not any("whl/cpu" in c for c in worker_torch), "GPU workers must not get the CPU build of torch"


@PROVIDERS
def test_every_node_installs_the_mounted_checkout(provider):
    ready = prepared(provider)
    assert ready["file_mounts"].get("~/chromtune") == "."
    assert ".gitignore" in ready["rsync_filter"]
    for role in ("head_setup_commands", "worker_setup_commands"):
        assert any(re.search(r"pip install -e ~/chromtune\b", c) for c in ready[role]), role


@PROVIDERS
def test_every_node_command_is_valid_bash(provider):
    ready = prepared(provider)
    roles = ("initialization_commands", "head_setup_commands", "worker_setup_commands",
             "head_start_ray_commands", "worker_start_ray_commands")
    commands = [c for role in roles for c in ready[role]]
    assert len(commands) >= len(roles)
    for command in commands:
        check = subprocess.run(["bash", "-n", "-c", command], capture_output=True, text=True)
        assert check.returncode == 0, f"{command}: {check.stderr}"


@PROVIDERS
def test_head_can_launch_workers(provider):
    client = {"aws": "boto3", "gcp": "google-api-python-client"}[provider]
    assert pip_requirements(prepared(provider)["head_setup_commands"], client)


@PROVIDERS
def test_gpu_workers_are_spot_and_scale_from_zero(provider):
    config = load(provider)
    worker = worker_type(config)
    node = worker["node_config"]
    assert worker["min_workers"] == 0
    assert 1 <= worker["max_workers"] <= config["max_workers"]
    machine = node[MACHINE_KEY[provider]]
    assert machine in MACHINES[provider], f"{machine}: add its vCPU and GPU counts to MACHINES"
    assert (worker["resources"]["CPU"], worker["resources"]["GPU"]) == MACHINES[provider][machine]
    if provider == "aws":
        assert node["InstanceMarketOptions"]["MarketType"] == "spot"
    else:
        scheduling = node["scheduling"]
        assert scheduling.get("provisioningModel") == "SPOT" or scheduling.get("preemptible") is True
        assert scheduling["onHostMaintenance"] == "TERMINATE"  # required with GPUs


@PROVIDERS
def test_head_runs_no_trials_and_is_not_spot(provider):
    head = head_type(load(provider))
    assert head["resources"].get("CPU") == 0 and not head["resources"].get("GPU")
    assert "InstanceMarketOptions" not in head["node_config"] and "scheduling" not in head["node_config"]


@PROVIDERS
def test_mlflow_server_on_head_binds_localhost(provider):
    ready = prepared(provider)
    servers = [c for c in ready["head_start_ray_commands"] if "mlflow server" in c]
    assert len(servers) == 1
    options = mlflow_server_options(servers[0])
    assert options["--host"] == "127.0.0.1"
    assert options["--backend-store-uri"].startswith("sqlite:///")
    port = options["--port"]
    worker_commands = ready["worker_setup_commands"] + ready["worker_start_ray_commands"]
    assert not any("mlflow server" in c for c in worker_commands)
    # The usage header forwards that port and points the driver at it.
    header = usage_header(provider)
    assert f"ray attach {CONFIGS[provider].name} -p {port}" in header
    _, args = sweep_invocation(shell_commands(header))
    assert args["tracking_uri"] == f"http://127.0.0.1:{port}"


@PROVIDERS
def test_nodes_get_cloud_access_from_instance_identities(provider):
    config = load(provider)
    if provider == "aws":
        for name, node_type in config["available_node_types"].items():
            assert node_type["node_config"]["IamInstanceProfile"], name
    else:  # Ray gives the head its service account; the workers name the same one
        accounts = worker_type(config)["node_config"]["serviceAccounts"]
        assert accounts[0]["email"].startswith("ray-autoscaler-sa-v1@")


def secrets_in(text: str) -> list[str]:
    return [name for name, pattern in SECRET_PATTERNS.items() if re.search(pattern, text)]


@PROVIDERS
def test_config_holds_no_secrets(provider):
    assert secrets_in(CONFIGS[provider].read_text()) == []


@pytest.mark.parametrize("leak", [
    "AKIAIOSFODNN7EXAMPLE",
    "aws_secret_access_key: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "-----BEGIN OPENSSH PRIVATE KEY-----",
    "  ssh_private_key: ~/.ssh/id_rsa",
    "  gcp_credentials: {type: service_account}",
])
def test_secret_scan_catches_a_leak(leak):
    assert CONFIGS
    for provider in CONFIGS:
        assert secrets_in(CONFIGS[provider].read_text() + "\n" + leak + "\n")


@PROVIDERS
def test_region_and_zone_are_marked_placeholders(provider):
    lines = CONFIGS[provider].read_text().splitlines()
    for key in ("region:", "availability_zone:"):
        line = next(line for line in lines if line.strip().startswith(key))
        assert "PLACEHOLDER" in line, line


@PROVIDERS
def test_usage_header_submits_the_sweep_with_shared_storage_from_the_environment(provider):
    commands = shell_commands(usage_header(provider))
    name = CONFIGS[provider].name
    for step in (f"ray up {name}", f"ray down {name}"):
        assert step in commands
    storage, args = sweep_invocation(commands)
    assert storage.startswith(STORAGE_SCHEME[provider])
    assert args["storage"] == storage and args["address"] == "auto"
    assert args["gpus_per_worker"] >= 1


def readme_cluster_section() -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"^## On a cluster\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert match, "README.md has no '## On a cluster' section"
    return match.group(1)


def test_readme_cluster_section_runs_the_sweep_on_s3_storage():
    section = readme_cluster_section()
    blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", section, re.S)
    commands = shell_commands("\n".join(blocks))
    for step in ("ray up cluster.yaml", "ray down cluster.yaml"):
        assert any(c.startswith(step) for c in commands), step
    assert any(c.startswith("ray attach cluster.yaml -p 5000") or c.startswith("ray dashboard cluster.yaml")
               for c in commands)
    storage, args = sweep_invocation(commands)
    assert storage.startswith("s3://")
    assert args["storage"] == storage and args["address"] == "auto"
    servers = [c for c in prepared("aws")["head_start_ray_commands"] if "mlflow server" in c]
    assert args["tracking_uri"] in {f"http://127.0.0.1:{mlflow_server_options(c)['--port']}" for c in servers}


@PROVIDERS
def test_dashboard_binds_localhost_and_is_reached_through_ray_dashboard(provider):
    """The dashboard's job API runs any command it is sent: only an SSH tunnel may reach it."""
    ready = prepared(provider)
    heads = [c for c in ready["head_start_ray_commands"] if "ray start" in c and "--head" in c]
    assert len(heads) == 1
    hosts = re.findall(r"--dashboard-host[= ](\S+)", heads[0])
    assert hosts in ([], ["127.0.0.1"]), hosts  # Ray's default is 127.0.0.1
    assert not any("0.0.0.0" in c for c in ready["head_start_ray_commands"] + ready["worker_start_ray_commands"])
    commands = shell_commands(usage_header(provider))
    assert f"ray dashboard {CONFIGS[provider].name}" in commands
    assert "0.0.0.0" not in CONFIGS[provider].read_text()

"""Shared fixtures: small, real data sets built in memory or written to HDF5 in tmp_path."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import pytest

from chromtune import progress
from chromtune.data.dataset import Dataset, write_dataset
from chromtune.errors import run_cli


@pytest.fixture(autouse=True)
def no_progress_lines(monkeypatch):
    """Commands run in a test print no progress line unless the test asks for one (FIRST_LINE_AFTER = 0):
    the first line comes 5 s after a command starts, which a loaded machine can reach before the one
    line of a bad input's error."""
    monkeypatch.setattr(progress, "FIRST_LINE_AFTER", 3600.0)


def run_command(main, argv, capsys) -> tuple[int, str, str]:
    """Run a command's ``main`` as the console does (errors -> one line, exit 2): (code, stdout, stderr)."""
    capsys.readouterr()
    code = run_cli(main, [str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def gone_pid() -> int:
    """The id of a process that has ended (what a killed run's temporary file names)."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def assert_one_line_error(code, err, *fragments):
    """Exit status 2 and one ``chromtune: error:`` line holding every fragment."""
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("chromtune: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def random_dataset(n_chroms: int = 3, chrom_len: int = 20_000, n_cells: int = 12, n_genes: int = 8,
                   bin_size: int = 200, stride: int = 100, context: int = 400, positive_rate: float = 0.08,
                   seed: int = 0) -> Dataset:
    """A genome-backed data set with random sequence, labels and expression."""
    rng = np.random.default_rng(seed)
    chromosomes = [f"chr{i + 1}" for i in range(n_chroms)]
    genome = {c: rng.integers(0, 4, chrom_len, dtype=np.uint8) for c in chromosomes}
    starts = np.arange(0, chrom_len - bin_size + 1, stride)
    bin_chrom = np.repeat(np.arange(n_chroms), len(starts))
    bin_start = np.tile(starts, n_chroms)
    labels = (rng.random((len(bin_chrom), n_cells)) < positive_rate).astype(np.uint8)
    return Dataset(
        chromosomes=chromosomes, bin_chrom=bin_chrom, bin_start=bin_start, labels=labels,
        cell_types=[f"cell{j}" for j in range(n_cells)],
        expression=rng.random((n_cells, n_genes)).astype(np.float32),
        genes=[f"TF{g}" for g in range(n_genes)], bin_size=bin_size, stride=stride, context=context,
        genome=genome,
    )


def write_version_1(path, ds: Dataset) -> None:
    """``ds`` in the format_version 1 layout: gzip-compressed genome per chromosome, dense chunked labels."""
    with h5py.File(path, "w") as f:
        f.attrs.update(format="chromtune-dataset", format_version=1, bin_size=ds.bin_size, stride=ds.stride,
                       context=ds.context, provenance="{}")
        f["chromosomes"] = np.array(ds.chromosomes, dtype=h5py.string_dtype())
        for chrom in ds.chromosomes:
            f.create_dataset(f"genome/{chrom}", data=ds.genome[chrom], compression="gzip")
        f["bins/chrom"], f["bins/start"] = ds.bin_chrom.astype(np.int32), ds.bin_start
        f.create_dataset("labels", data=ds.labels, chunks=True, compression="gzip")
        f["cell_types"] = np.array(ds.cell_types, dtype=h5py.string_dtype())
        f["expression"], f["genes"] = ds.expression, np.array(ds.genes, dtype=h5py.string_dtype())


def private_local_ray(num_cpus: int, namespace: str):
    """A private loopback Ray for one test module (started, yielded, stopped)."""
    import ray

    ray.init(address="local", num_cpus=num_cpus, _node_ip_address="127.0.0.1", include_dashboard=False,
             log_to_driver=False, namespace=namespace)
    yield
    ray.shutdown()


def sweep_ray():
    """The sweep's own local Ray (start_ray), yielded, then shut down unless one was running before."""
    import ray

    from chromtune.sweep.ray_runtime import start_ray

    started = not ray.is_initialized()
    start_ray()
    yield
    if started:
        ray.shutdown()


def randomize_batchnorm(model, seed: int):
    """Give every BatchNorm1d non-trivial running statistics and scales (eval mode is then an affine
    map worth testing); returns the model in eval mode."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.copy_(torch.randn(module.num_features, generator=generator))
            module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
            module.weight.data.copy_(torch.randn(module.num_features, generator=generator))
    return model.eval()


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models run fastest, and least disturbed by other processes, on one thread."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def small_dataset() -> Dataset:
    return random_dataset()


@pytest.fixture
def small_dataset_file(tmp_path, small_dataset):
    path = tmp_path / "small.h5"
    write_dataset(path, small_dataset)
    return path


# -- chromtune installed from its wheel, and the smoke sweep that installation runs --------------
ROOT = Path(__file__).resolve().parent.parent
SMOKE_SWEEP = ["--arch", "basset", "--folds", "2", "--smoke-test", "--stage2-space", "stage2_tpe"]


@dataclass
class Installed:
    """A fresh venv holding chromtune's wheel (its other packages are the running environment's)."""

    wheel: Path
    venv: Path
    python: Path
    env: dict  # the environment its commands run in: no PYTHONPATH, so nothing reaches this checkout

    def command(self, name: str = "chromtune") -> Path:
        return self.venv / "bin" / name


@pytest.fixture(scope="session")
def installed_chromtune(tmp_path_factory) -> Installed:
    """Build the wheel from the tracked files and install it with ``--no-deps --no-index`` in a new
    venv. A .pth file puts the running interpreter's site-packages behind the venv's own (torch, Ray,
    MLflow, ...); its .pth files are not run, so an editable chromtune there is not reached."""
    import site

    root = tmp_path_factory.mktemp("wheel")
    source = root / "src"
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        if name.startswith(("chromtune/", "search_spaces/", "pyproject.toml", "README.md")):
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(root / "dist"), str(source)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    (wheel,) = (root / "dist").glob("chromtune-*.whl")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    installed = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
                                "--no-index", "-q", "--disable-pip-version-check", str(wheel)],
                               capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    running = site.getsitepackages() + ([site.getusersitepackages()] if site.ENABLE_USER_SITE else [])
    running = [p for p in running if Path(p).is_dir()]
    (Path(purelib) / "running_environment.pth").write_text("\n".join(running) + "\n")
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")}
    env.update(PYTHONUNBUFFERED="1", RAY_USAGE_STATS_ENABLED="0", PATH=f"{venv / 'bin'}:{env.get('PATH', '')}")
    return Installed(wheel=wheel, venv=venv, python=python, env=env)


@dataclass
class SweepRun:
    """A finished sweep: its folder and log, and what the listening-socket sampler saw."""

    workdir: Path
    log: str
    listening: set = field(default_factory=set)  # (process name, address, port)
    samples: int = 0
    samples_with_trials: int = 0  # samples taken while a Tune trial's process was alive


def listening_sockets(root) -> tuple[set, bool]:
    """The listening inet sockets of ``root``'s whole process tree, and whether a Tune trial runs in it."""
    import psutil

    found, trial = set(), False
    try:
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return found, trial
    for process in processes:
        try:
            name = process.name()
            connections = process.net_connections(kind="inet")
        except psutil.Error:
            continue
        trial |= name.startswith("ray::ImplicitFunc")
        found |= {(name, c.laddr.ip, c.laddr.port) for c in connections if c.status == psutil.CONN_LISTEN}
    return found, trial


@pytest.fixture(scope="session")
def smoke_sweep_run(installed_chromtune, tmp_path_factory) -> SweepRun:
    """``chromtune sweep --smoke-test`` (basset, 2 folds; stage 1 a grid, stage 2 TPE; ASHA in both),
    run by the wheel-installed console script from an empty folder, as a user runs it, in its own
    process group. Every second the listening sockets of its process tree (driver, GCS, raylet,
    agents, workers) are sampled."""
    import psutil

    workdir = tmp_path_factory.mktemp("sweep")
    cache = tmp_path_factory.mktemp("cache")
    log_path = workdir.parent / f"{workdir.name}.log"
    run = SweepRun(workdir=workdir, log="")
    with open(log_path, "w") as log:
        proc = subprocess.Popen([str(installed_chromtune.command()), "sweep", *SMOKE_SWEEP], cwd=workdir,
                                env={**installed_chromtune.env, "CHROMTUNE_CACHE": str(cache)},
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        root = psutil.Process(proc.pid)
        deadline = time.time() + 900
        while proc.poll() is None and time.time() < deadline:
            sockets, trial = listening_sockets(root)
            run.listening |= sockets
            run.samples += 1
            run.samples_with_trials += trial
            time.sleep(1)
        code = proc.wait(timeout=max(1.0, deadline - time.time()))
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # whatever the sweep left behind
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)
    run.log = log_path.read_text()
    assert code == 0, run.log[-3000:]
    return run


# -- the demo ResNet that the slow interpret and variants tests share ----------------------------
@pytest.fixture(scope="session")
def trained_demo_resnet(tmp_path_factory):
    """The stage-2 run folder of a small ResNet trained on the demo (both stages, fold 0, seed 0, two threads).

    Shared by the slow interpret and variants tests, so a run of both trains once (≈ 6 min on two idle
    cores). Sizes: stage 1, 400 batches of 128; stage 2 (trunk tuned), 300 batches of 256. The trunk
    learns its motifs in stage 1: with 200 stage-1 batches FOXA2 (the weakest driver, an AT-rich motif)
    was missed (seed 0, here and on CI), and 600 stage-2 batches did not bring it back.
    """
    from chromtune.data.demo import demo_path
    from chromtune.train.config import TrainConfig
    from chromtune.train.runner import run_training  # imports Ray: only here

    folder = tmp_path_factory.mktemp("demo-resnet")
    common = dict(data=str(demo_path()), arch="resnet", width=0.25, fold=0, epochs=1, eval_every=10, seed=0,
                  threads=2)
    started = time.perf_counter()
    run_training(TrainConfig(stage=1, samples_per_epoch=400 * 128, lr=2e-3, batch_size=128, **common),
                 folder / "s1", workers=0)
    run_training(TrainConfig(stage=2, samples_per_epoch=300 * 256, lr=1e-3, batch_size=256, init=str(folder / "s1"),
                             **common), folder / "s2", workers=0)
    print(f"\ntrained the demo ResNet in {time.perf_counter() - started:.0f} s")
    return folder / "s2"

"""Multi-node sweeps on a real Ray cluster of two nodes on this machine (``ray.cluster_utils.Cluster``):
trials spread over both nodes, a killed trial process resumes from its checkpoint, a node that
disappears has its trials rescheduled, and in both cases the results equal an undisturbed run's.
The two folds run at once (``--concurrent-folds 2``), as they would on a larger cluster.

The sweep runs as its own process against the cluster (``--address``), with shared storage given
as a ``file://`` URI (one filesystem that every node of this test cluster mounts).
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from ray.cluster_utils import Cluster

from chromtune.data import demo

pytestmark = pytest.mark.slow

EXPERIMENT = f"chromtune-{Path(demo.cache_file(0)).stem}"
STAGE1 = """sampler: grid
params:
  lr: {choice: [0.01, 0.001]}
fixed: {batch_size: 32, epochs: 4, samples_per_epoch: 192}
"""
STAGE2 = """sampler: grid
params:
  lr: {choice: [0.001, 0.0001]}
fixed: {batch_size: 32, epochs: 1, samples_per_epoch: 128}
"""


def start_cluster() -> tuple[Cluster, object]:
    node_args = {"num_cpus": 1, "node_ip_address": "127.0.0.1"}
    cluster = Cluster(initialize_head=True, head_node_args={**node_args, "include_dashboard": False})
    worker = cluster.add_node(**node_args)
    cluster.wait_for_nodes()
    return cluster, worker


def start_sweep(workdir: Path, cluster: Cluster) -> subprocess.Popen:
    (workdir / "stage1.yaml").write_text(STAGE1)
    (workdir / "stage2.yaml").write_text(STAGE2)
    # The test cluster listens on 127.0.0.1 only; Ray rewrites a loopback address to the machine's
    # own IP unless its single-machine mode is set, which makes it keep 127.0.0.1.
    env = {**os.environ, "CHROMTUNE_CACHE": str(workdir / "cache"), "PYTHONUNBUFFERED": "1",
           "RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    args = ["--arch", "basset", "--folds", "2", "--concurrent-folds", "2", "--address", cluster.address,
            "--storage", f"file://{workdir / 'storage'}", "--stage1-space", "stage1.yaml", "--stage2-space", "stage2.yaml",
            "--width", "0.125", "--eval-every", "4"]
    log = open(workdir / "sweep.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "chromtune.sweep", *args], cwd=workdir, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    return proc


def wait(proc: subprocess.Popen, workdir: Path, timeout: float = 600) -> None:
    try:
        code = proc.wait(timeout=timeout)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert code == 0, (workdir / "sweep.log").read_text()[-3000:]


def trial_runs(workdir: Path) -> list:
    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        return []
    return client.search_runs([experiment.experiment_id], "tags.`chromtune.level` = 'trial'", max_results=1000)


def running_trial_after_second_epoch(workdir: Path, node_id: str | None = None):
    """A trial still training (on ``node_id``) that has reported its second epoch. Tune registers an
    epoch's checkpoint just after its result, so by then the first epoch's checkpoint is safe."""
    for run in trial_runs(workdir):
        if (run.info.status == "RUNNING" and run.data.metrics.get("epoch", 0) >= 2
                and (node_id is None or run.data.tags.get("node_id") == node_id)):
            return run
    return None


def poll(condition, proc: subprocess.Popen, timeout: float = 300):
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        found = condition()
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError("the sweep ended or timed out before the disturbance could be made")


def results(workdir: Path) -> dict:
    """(fold, stage, lr) -> the trial's validation AUPRC per epoch, and its MLflow run's status."""
    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    out = {}
    for run in trial_runs(workdir):
        key = (run.data.tags["fold"], run.data.tags["stage"], run.data.params["lr"])
        history = client.get_metric_history(run.info.run_id, "valid_auprc")
        assert key not in out, f"two MLflow runs for trial {key}"
        by_epoch = {m.step: m.value for m in sorted(history, key=lambda m: m.timestamp)}  # a retrained epoch: its last
        out[key] = {"status": run.info.status, "valid_auprc": [by_epoch[e] for e in sorted(by_epoch)]}
    return out


@pytest.fixture(scope="module")
def undisturbed(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("undisturbed")
    cluster, worker = start_cluster()
    try:
        wait(start_sweep(workdir, cluster), workdir)
        nodes = {run.data.tags.get("node_id") for run in trial_runs(workdir)}
        return workdir, nodes, {cluster.head_node.node_id, worker.node_id}
    finally:
        cluster.shutdown()


def assert_same_results(disturbed: dict, reference: dict) -> None:
    assert disturbed.keys() == reference.keys()
    for key, result in disturbed.items():
        assert result["status"] == "FINISHED", key
        assert result["valid_auprc"] == pytest.approx(reference[key]["valid_auprc"], abs=1e-6), key


def test_trials_spread_over_both_nodes(undisturbed):
    workdir, trial_nodes, cluster_nodes = undisturbed
    assert trial_nodes == cluster_nodes
    assert all(r["status"] == "FINISHED" for r in results(workdir).values())
    assert len(results(workdir)) == 8  # 2 folds x 2 stages x 2 grid points, each one run
    log = (workdir / "sweep.log").read_text()  # the fold processes' trials reach the driver's progress line
    assert "[fold 1 stage 2] trial 2/2" in log and "folds 2/2 | trials 8/8 done, 0 running" in log


def test_a_killed_trial_process_resumes_from_its_checkpoint(undisturbed, tmp_path):
    cluster, _ = start_cluster()
    try:
        proc = start_sweep(tmp_path, cluster)
        victim = poll(lambda: running_trial_after_second_epoch(tmp_path), proc)
        pid = int(victim.data.metrics["worker_pid"])
        os.kill(pid, signal.SIGKILL)
        wait(proc, tmp_path)
    finally:
        cluster.shutdown()
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    pids = {m.value for m in client.get_metric_history(victim.info.run_id, "worker_pid")}
    epochs = [m.value for m in client.get_metric_history(victim.info.run_id, "epoch")]
    assert len(pids) == 2 and pid in pids  # it went on in a new process ...
    assert epochs.count(1.0) == 1 and epochs[-1] == 4.0  # ... from a checkpoint: epoch 1 was not trained again
    assert_same_results(results(tmp_path), results(undisturbed[0]))


def test_trials_of_a_lost_node_are_rescheduled(undisturbed, tmp_path):
    cluster, worker = start_cluster()
    head = cluster.head_node.node_id
    try:
        proc = start_sweep(tmp_path, cluster)
        victim = poll(lambda: running_trial_after_second_epoch(tmp_path, worker.node_id), proc)
        cluster.remove_node(worker, allow_graceful=False)
        wait(proc, tmp_path)
    finally:
        cluster.shutdown()
    moved = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").get_run(victim.info.run_id)
    assert moved.data.tags["node_id"] == head
    assert_same_results(results(tmp_path), results(undisturbed[0]))

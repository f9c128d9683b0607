"""The sweep's live progress line, its closing summary and its trial concurrency (no Ray started)."""

import io
import math
import multiprocessing
import threading
from types import SimpleNamespace

import pytest

from chromtune.sweep import plan as sweep_plan
from chromtune import progress as shared_progress
from chromtune.progress import CLEAR
from chromtune.sweep.progress import Progress, ProgressCallback, connect, relay, say
from chromtune.sweep.summary import FoldModel, closing_text, human_bytes, summary_table


class Watched(io.StringIO):
    """A log stream a test can wait on: ``wait_for(text)`` returns once ``text`` has been written."""

    def __init__(self):
        super().__init__()
        self.written = threading.Condition()

    def write(self, text):
        with self.written:
            count = super().write(text)
            self.written.notify_all()
        return count

    def wait_for(self, text, timeout=10.0):
        with self.written:
            return self.written.wait_for(lambda: text in self.getvalue(), timeout)


class Terminal(Watched):
    def isatty(self):
        return True


class Clock:
    """A clock the test moves by hand."""

    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def trial(trial_id):
    return SimpleNamespace(trial_id=trial_id)


def test_counts_folds_and_trials_and_estimates_the_rest_from_finished_ones():
    clock = Clock()
    progress = Progress(folds=2, stage_trials={1: 3, 2: 2}, label="resnet tune+mean", stream=io.StringIO(),
                        clock_fn=clock)
    assert progress.status() == ("resnet tune+mean | 0:00 | folds 0/2 | trials 0/10 done, 0 running | "
                                 "estimate after the first trial")
    clock.t += 5
    for t in ("a", "b"):
        progress.handle(("start", 0, 1, t))
    clock.t += 120
    progress.handle(("end", 0, 1, "a"))
    # 120 s for one finished trial, 9 left: about 18 min
    assert progress.status() == ("resnet tune+mean | 2:05 | folds 0/2 | trials 1/10 done, 1 running | "
                                 "about 18 min left")
    progress.handle(("start", 0, 1, "a"))  # Tune starting a finished trial again counts it once
    progress.handle(("end", 0, 1, "a"))
    progress.handle(("end", 0, 1, "b"))
    progress.handle(("stage_done", 0, 1))  # the third trial was never started (a stage's selection ends it)
    progress.handle(("fold_done", 0))
    clock.t += 3600
    assert progress.status().startswith("resnet tune+mean | 1:02:05 | folds 1/2 | trials 5/10 done, 0 running")
    assert progress.status().endswith("about 2.6 h left")  # 3,720 s for the 2 trials finished here; 5 left


def test_resumed_sweep_counts_earlier_trials_as_finished_but_not_in_the_estimate():
    clock = Clock()
    progress = Progress(folds=2, stage_trials={1: 2, 2: 2}, stream=io.StringIO(), clock_fn=clock)
    progress.seed(stages_done={(0, 1), (0, 2)}, finished={(1, 1): {"x"}}, folds_done={0})
    assert "folds 1/2 | trials 5/8 done" in progress.status()
    progress.handle(("stage", 1, 1, {"x"}))  # the stage's own count, when it begins
    progress.handle(("start", 1, 1, "x"))   # finished before: not running again
    progress.handle(("start", 1, 1, "y"))
    clock.t += 60
    progress.handle(("end", 1, 1, "y"))
    assert progress.status() == "1:00 | folds 1/2 | trials 6/8 done, 0 running | about 2 min left"
    progress.handle(("stage", 1, 2, set()))  # a stage that starts again from nothing forgets its trials
    assert "trials 6/8" in progress.status()


def test_plain_lines_when_not_a_terminal():
    out = Watched()
    with Progress(folds=1, stage_trials={1: 1, 2: 1}, stream=out, interval=0.05) as progress:
        ProgressCallback(0, 1).on_trial_start(0, [], trial("t1"))
        assert out.wait_for("trials 0/2 done, 1 running")  # the drawing thread's next line
        say("[fold 0 stage 1] trial 1/1 finished")
        ProgressCallback(0, 1).on_trial_complete(0, [], trial("t1"))
        assert progress.running == set()
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("0:00 | folds 0/1 | trials 0/2 done, 0 running")  # drawn at once
    assert any("trials 0/2 done, 1 running" in line for line in lines)  # redrawn while the trial runs
    assert "[fold 0 stage 1] trial 1/1 finished" in lines
    assert "trials 1/2 done, 0 running" in lines[-1]  # the last state, when the sweep ends
    assert "\r" not in out.getvalue() and all(len(line) <= 100 for line in lines)
    say("after the sweep")  # no Progress open: not an event


def test_a_log_gets_the_line_at_each_folds_end():
    out = io.StringIO()
    progress = Progress(folds=2, stage_trials={1: 1, 2: 1}, stream=out, interval=3600)
    progress.handle(("fold_done", 0))
    progress.handle(("fold_done", 0))  # announced again (--resume): not a second line
    assert out.getvalue() == "0:00 | folds 1/2 | trials 2/4 done, 0 running | estimate after the first trial\n"
    terminal = Terminal()
    Progress(folds=2, stage_trials={1: 1, 2: 1}, stream=terminal, interval=3600).handle(("fold_done", 0))
    assert terminal.getvalue() == ""  # a terminal's line is redrawn every second anyway


def test_one_line_redrawn_in_place_on_a_terminal():
    out = Terminal()
    with Progress(folds=1, stage_trials={1: 2, 2: 2}, stream=out, interval=0.05) as progress:
        progress.handle(("start", 0, 1, "t1"))
        assert out.wait_for("1 running")  # redrawn in place by the drawing thread
        say("a finished trial")
    text = out.getvalue()
    assert CLEAR + "a finished trial\n" in text  # the status line cleared, the line printed, the status redrawn
    assert text.count("\n") == 2  # that line and the final status: the rest redraws in place
    assert text.endswith("trials 0/4 done, 1 running | estimate after the first trial\n")


def test_a_long_status_is_cut_to_the_terminal(monkeypatch):
    out = Terminal()
    monkeypatch.setattr(shared_progress.shutil, "get_terminal_size", lambda fallback: SimpleNamespace(columns=40))
    progress = Progress(folds=5, stage_trials={1: 6, 2: 6}, label="factorized freeze+mean(loo)", stream=out)
    progress.draw()
    assert len(out.getvalue()) == len(CLEAR) + 39 and out.getvalue().endswith("…")


def _fold_process(queue):
    connect(queue)
    say("[fold 1 stage 1] trial 1/2 finished")
    ProgressCallback(1, 1).on_trial_start(0, [], trial("t9"))
    ProgressCallback(1, 1).on_trial_complete(0, [], trial("t9"))


def test_a_fold_process_reports_through_the_drivers_queue():
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    out = io.StringIO()
    with Progress(folds=2, stage_trials={1: 2, 2: 2}, stream=out, interval=60) as progress:
        reader = relay(queue, progress)
        proc = context.Process(target=_fold_process, args=(queue,))
        proc.start()
        proc.join(60)
        queue.put(None)
        reader.join(10)
        assert proc.exitcode == 0 and progress.finished == {(1, 1): {"t9"}}
    assert "[fold 1 stage 1] trial 1/2 finished" in out.getvalue().splitlines()


def result(fold, model, mean, weighted):
    return {"fold": fold, "model": {"auprc": model, "auroc": 0.95, "auprc_specific": 0.4},
            "mean_baseline": {"auprc": mean, "auroc": 0.9, "auprc_specific": 0.2},
            "weighted_mean_baseline": {"auprc": weighted, "auroc": 0.91}}


def test_summary_fits_100_columns_and_points_to_the_models():
    table = summary_table([result(0, 0.8, 0.6, 0.65), result(1, 0.6, 0.62, 0.61)])
    assert table.loc["mean", "model AUPRC"] == pytest.approx(0.7)
    run = "0123456789abcdef" * 2
    models = [FoldModel(fold, run.replace("0", str(fold)), f"ray_results/demo-resnet/fold{fold}-selected/best.pt",
                        {"batch_size": 256, "lr": 0.001}) for fold in (1, 0)]
    text = closing_text("demo-resnet-tune-mean-k2-s0", table, models, "f" * 32, "ray_results/demo-resnet",
                        123_456_789, "sqlite:////work/mlflow.db", "chromtune-demo", default_store=True)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 100, text
    header = next(i for i, line in enumerate(lines) if line.startswith("fold "))
    assert lines[header + 2].startswith("0 ") and lines[header + 4].startswith("mean ")
    assert lines[header + 4].split()[1:4] == ["0.7000", "0.6100", "0.6300"]  # AUPRC: model, mean, RNA-weighted
    assert lines[header + 2].split()[-1] == "–"  # no specific AUPRC for that baseline
    assert "on 1 of 2 fold(s)" in text
    assert text.index(models[1].run_id) < text.index(models[0].run_id)  # fold order
    assert "fold1-selected/best.pt" in text and "batch_size=256 lr=0.001" in text
    assert f"chromtune predict --model {models[1].run_id} " in text and f"--model {'f' * 32}" in text
    assert "  mlflow ui  #" in text and "chromtune compare --experiment chromtune-demo" in text
    assert "the runs (in this folder)" in text  # no experiment id: no address
    with_page = closing_text("k", table, models, "f" * 32, "s", 10, "sqlite:////work/mlflow.db", "e",
                             default_store=True, experiment_id="7")
    assert "  mlflow ui  # then open http://127.0.0.1:5000/#/experiments/7/runs?workflowType=machine_learning\n" \
        in with_page
    assert "--tracking-uri" not in text
    assert lines[-1] == "storage: 123.5 MB in ray_results/demo-resnet"
    other = closing_text("k", table, models, "f" * 32, "s", 10, "sqlite:////elsewhere/x.db", "e", default_store=False)
    assert "mlflow ui --backend-store-uri sqlite:////elsewhere/x.db" in other
    assert "--tracking-uri sqlite:////elsewhere/x.db" in other


def test_sizes_read_as_people_write_them():
    assert [human_bytes(n) for n in (999, 1000, 1_234_567, 5e12)] == ["999 B", "1.0 kB", "1.2 MB", "5000.0 GB"]


@pytest.mark.parametrize("capacity,slots,folds", [({"CPU": 2.0}, 2, 1), ({"CPU": 64.0}, 64, 5),
                                                  ({"CPU": math.inf}, math.inf, 5)])
def test_trial_concurrency_follows_the_cluster(monkeypatch, capacity, slots, folds):
    import chromtune.sweep.ray_runtime

    monkeypatch.setattr(chromtune.sweep.ray_runtime, "cluster_capacity", lambda: capacity)
    settings = SimpleNamespace(max_concurrent_trials=0, concurrent_folds=0, workers_per_trial=0, cpus_per_worker=1,
                               gpus_per_worker=0)
    plan = SimpleNamespace(settings=settings, n_folds=5,
                           spaces={1: SimpleNamespace(num_samples=6), 2: SimpleNamespace(num_samples=6)})
    assert sweep_plan.concurrency(plan, 6) == min(slots, 6)  # an unbounded autoscaler: the whole grid at once
    assert sweep_plan.concurrent_folds(plan) == folds


def test_the_default_store_is_mlflow_db_in_this_folder(tmp_path, monkeypatch):
    from chromtune.tracking import is_default_store, resolve_tracking_uri

    monkeypatch.chdir(tmp_path)
    (tmp_path / "mlflow.db").mkdir()  # the summary's check never validates: a folder there is not its business
    assert is_default_store(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert not is_default_store(resolve_tracking_uri(f"sqlite:///{tmp_path / 'other' / 'mlflow.db'}"))

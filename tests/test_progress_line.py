"""A long command's progress line (chromtune.progress): its text and estimate, and when and how it is
drawn on a terminal and in a log, driven by a clock the test moves by hand."""

import io

import pytest

from chromtune import progress as progress_module
from chromtune.progress import CLEAR, FIRST_LINE_AFTER, Progress, Throttled, left_text, rate_text
from test_progress import Clock, Terminal


@pytest.fixture(autouse=True)
def first_line_after_5_s(monkeypatch):
    """These tests drive the line by hand: the default delay of the first line, not the suite's."""
    monkeypatch.setattr(progress_module, "FIRST_LINE_AFTER", FIRST_LINE_AFTER)


def test_counts_units_from_when_the_work_begins_and_estimates_the_rest():
    clock = Clock()
    progress = Progress("predict", stream=io.StringIO(), clock_fn=clock, tick=None)
    progress.update(phase="loading the model")
    assert progress.status() == "predict | 0:00 | loading the model"
    clock.t += 20  # loading is not work: the rate starts with the count
    progress.begin(10_000, "bins")
    assert progress.status() == "predict | 0:20 | 0/10,000 bins"
    clock.t += 10
    progress.advance(2_000)
    assert progress.status() == "predict | 0:30 | 2,000/10,000 bins | 200 bins/s | about 40 s left"
    clock.t += 30
    progress.advance(2_000)  # 4,000 in 40 s: 100/s, 6,000 left
    assert progress.status() == "predict | 1:00 | 4,000/10,000 bins | 100 bins/s | about 1 min left"
    clock.t += 90
    progress.advance(6_000)
    assert progress.status() == "predict | 2:30 | 10,000/10,000 bins | 77 bins/s"  # done: no time left


def test_a_resumed_count_leaves_earlier_work_out_of_the_rate():
    clock = Clock()
    progress = Progress("train stage 1 fold 0", stream=io.StringIO(), clock_fn=clock, tick=None)
    progress.update(done=100, total=400, phase="epoch 2/4", unit="batches")  # epoch 1 ran before the resume
    clock.t += 50
    progress.update(done=110)
    assert progress.status() == ("train stage 1 fold 0 | 0:50 | epoch 2/4 | 110/400 batches | 5.0 s each | "
                                 "about 24 min left")
    progress.update(done=200, total=999, phase="epoch 3/4")  # a later total changes nothing
    assert progress.total == 400 and "epoch 3/4 | 200/400 batches" in progress.status()


def test_estimates_read_as_people_say_them():
    assert [left_text(s) for s in (3, 41, 70, 600, 7200)] == [
        "about 10 s left", "about 50 s left", "about 1 min left", "about 10 min left", "about 2.0 h left"]
    assert [rate_text(r, "bins") for r in (0.0123, 0.3125, 3.14159, 12.5, 43_210.4)] == [
        "81 s each", "3.2 s each", "3.1 bins/s", "12 bins/s", "43,210 bins/s"]


def test_a_log_gets_a_line_5_s_after_the_start_then_every_30_s_and_at_the_end():
    clock, out = Clock(), io.StringIO()
    with Progress("predict", stream=out, clock_fn=clock, tick=None) as progress:
        progress.update(phase="loading the model")
        clock.t += 2
        progress.begin(100, "bins")
        for _ in range(63):  # a minute in steps of a second
            clock.t += 1
            progress.advance(1)
            progress.poll()
        clock.t += 1
        progress.advance(37)
    assert out.getvalue().splitlines() == ["predict | 0:05 | 3/100 bins | 1 bins/s | about 2 min left",
                                           "predict | 0:35 | 33/100 bins | 1 bins/s | about 1 min left",
                                           "predict | 1:05 | 63/100 bins | 1 bins/s | about 40 s left",
                                           "predict | 1:06 | 100/100 bins | 1.6 bins/s"]
    assert "\r" not in out.getvalue()


def test_a_quick_command_prints_nothing_but_a_slow_one_shows_its_line_within_5_s():
    clock, out = Clock(), io.StringIO()
    with Progress("inspect d.h5", stream=out, clock_fn=clock, tick=None) as progress:
        progress.begin(3, "MB")
        clock.t += 4.9
        progress.advance(3)
        progress.poll()
    assert out.getvalue() == ""  # done (or failed on its input) at once: only its result (or error) is printed
    with Progress("train stage 1 fold 0", stream=out, clock_fn=clock, tick=None) as progress:
        progress.update(phase="starting Ray")
        clock.t += 4.9
        progress.poll()
        assert out.getvalue() == ""
        clock.t += 0.1
        progress.poll()
        assert out.getvalue() == "train stage 1 fold 0 | 0:05 | starting Ray\n"
    assert out.getvalue().splitlines() == ["train stage 1 fold 0 | 0:05 | starting Ray"] * 2  # and the closing line


def test_a_terminal_line_is_redrawn_in_place_and_other_lines_go_above_it():
    clock, out = Clock(), Terminal()
    with Progress("inspect", stream=out, clock_fn=clock, tick=None, first_after=0) as progress:
        progress.begin(4, "MB")  # shown at once (first_after=0), and again as the count begins
        clock.t += 1
        progress.advance(1)
        progress.poll()
        progress.write_line("a note")
        progress.update(phase="labels")  # a new phase shows at once
    text = out.getvalue()
    assert text.count("\n") == 2  # the note and the last line; the rest is redrawn in place
    assert text.startswith(CLEAR + "inspect | 0:00 | starting" + CLEAR + "inspect | 0:00 | 0/4 MB" + CLEAR
                           + "inspect | 0:01 | 1/4 MB | 1 MB/s")
    assert CLEAR + "a note\ninspect | 0:01 | 1/4 MB" in text
    assert text.endswith(CLEAR + "inspect | 0:01 | labels | 1/4 MB | 1 MB/s | about 10 s left\n")


def test_a_stopped_or_failed_command_leaves_no_status_behind():
    for stream in (Terminal(), io.StringIO()):
        try:
            with Progress("predict", stream=stream, clock_fn=Clock(), tick=None, first_after=0) as progress:
                progress.begin(10, "bins")
                raise KeyboardInterrupt
        except KeyboardInterrupt:
            pass
        # the terminal's line is cleared; a log keeps the lines it had, with no closing one
        assert stream.getvalue() == (CLEAR + "predict | 0:00 | starting" + CLEAR + "predict | 0:00 | 0/10 bins" + CLEAR
                                     if stream.isatty() else "predict | 0:00 | starting\n")


def test_progress_from_another_process_is_sent_once_a_second_and_at_each_new_phase():
    clock, sent = Clock(), []
    send = Throttled(lambda *call: sent.append(call), clock_fn=clock)
    for step in range(1, 31):  # 30 batches, 0.1 s each
        clock.t += 0.1
        send(step, 60, "epoch 1/2")
    send(30, 60, "epoch 1/2: validating")
    assert sent == [(1, 60, "epoch 1/2"), (11, 60, "epoch 1/2"), (21, 60, "epoch 1/2"),
                    (30, 60, "epoch 1/2: validating")]

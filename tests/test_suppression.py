"""The request path's local dedup cache."""

from __future__ import annotations

import sys
import threading

from lark_alert_middleware._pipeline.windows import SuppressionWindows


def test_unknown_fingerprints_need_a_decision() -> None:
    assert not SuppressionWindows(10).count_repeat("GET / 500", now=0.0)


def test_repeats_inside_an_open_window_are_counted_and_handed_to_the_next_window() -> None:
    windows = SuppressionWindows(10)
    assert windows.open("f", ends=60.0, now=0.0) == 0
    assert all(windows.count_repeat("f", now=float(second)) for second in range(1, 11))
    assert not windows.count_repeat("f", now=60.0)
    assert windows.open("f", ends=120.0, now=60.0) == 10


def test_extend_moves_the_end_of_the_window() -> None:
    windows = SuppressionWindows(10)
    windows.open("f", ends=60.0, now=0.0)
    windows.extend("f", ends=5.0)
    assert not windows.count_repeat("f", now=6.0)


def test_expired_repeats_are_taken_once() -> None:
    windows = SuppressionWindows(10)
    windows.open("f", ends=10.0, now=0.0)
    windows.count_repeat("f", now=1.0)
    assert windows.take_repeats(now=5.0) == {}
    assert windows.take_repeats(now=11.0) == {"f": 1}
    assert windows.take_repeats(now=12.0) == {}


def test_capacity_bounds_memory() -> None:
    windows = SuppressionWindows(100)
    for index in range(10_000):
        windows.open(f"f{index}", ends=float(index), now=float(index))
    assert len(windows) <= 100


def test_counting_from_many_threads_loses_nothing() -> None:
    windows = SuppressionWindows(10)
    windows.open("f", ends=1e12, now=0.0)

    def hammer() -> None:
        for _ in range(10_000):
            windows.count_repeat("f", now=1.0)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert windows.open("f", ends=2e12, now=1.0) == 40_000


def test_repeats_taken_while_threads_count_are_each_reported_once() -> None:
    windows = SuppressionWindows(10)
    windows.open("f", ends=1e12, now=0.0)
    counting_done = threading.Event()
    reported: list[int] = []

    def count() -> None:
        for _ in range(20_000):
            windows.count_repeat("f", now=1.0)

    def take_while_counting() -> None:
        while not counting_done.is_set():
            reported.append(windows.open("f", ends=1e12, now=1.0))

    previous_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible, to provoke any race
    try:
        taker = threading.Thread(target=take_while_counting)
        taker.start()
        counters = [threading.Thread(target=count) for _ in range(3)]
        for thread in counters:
            thread.start()
        for thread in counters:
            thread.join()
        counting_done.set()
        taker.join()
    finally:
        sys.setswitchinterval(previous_interval)
    reported.append(windows.open("f", ends=1e12, now=1.0))
    assert len(reported) > 2
    assert sum(reported) == 60_000
    assert windows.repeats_counted == 60_000


def test_an_expired_window_with_untaken_repeats_is_kept_until_they_are_taken() -> None:
    windows = SuppressionWindows(3)
    windows.open("counted", ends=1.0, now=0.0)
    windows.count_repeat("counted", now=0.5)
    windows.open("quiet", ends=1.0, now=0.0)
    windows.open("third", ends=100.0, now=0.0)
    windows.open("fourth", ends=100.0, now=2.0)  # full: the expired window without repeats goes
    assert windows.take_repeats(now=2.0) == {"counted": 1}


def test_a_kept_window_follows_its_fingerprint_across_windows() -> None:
    windows = SuppressionWindows(10)
    assert windows.window_of("f").ends < 0.0  # none yet: always ended
    windows.open("f", ends=10.0, now=0.0)
    kept = windows.window_of("f")
    next(kept.steps)
    assert kept.ends == 10.0
    assert windows.open("f", ends=20.0, now=10.0) == 1  # the next window is the same object
    assert kept.ends == 20.0


def test_a_window_dropped_to_make_room_is_ended_for_whoever_kept_it() -> None:
    windows = SuppressionWindows(10)
    windows.open("oldest", ends=100.0, now=0.0)
    kept = windows.window_of("oldest")
    assert windows.count_repeat("oldest", now=0.0)  # one repeat, in the window and in the total
    for index in range(10):
        windows.open(f"f{index}", ends=100.0, now=0.0)  # all open: the oldest goes
    assert kept.ends == float("-inf")
    assert windows.window_of("oldest").ends < 0.0
    assert windows.repeats_counted == 1  # its repeat still counts in the total
    assert windows.open("oldest", ends=200.0, now=1.0) == 0  # a new window counts from zero...
    # ...and the repeat of the dropped one goes to the store with the ended windows', once.
    assert windows.take_repeats(now=1.0) == {"oldest": 1}
    assert windows.take_repeats(now=1.0) == {}


def test_repeats_counted_is_every_repeat_whatever_became_of_its_window() -> None:
    windows = SuppressionWindows(10)
    windows.open("a", ends=10.0, now=0.0)
    windows.open("b", ends=100.0, now=0.0)
    for _ in range(3):
        windows.count_repeat("a", now=1.0)
    windows.count_repeat("b", now=1.0)
    assert windows.take_repeats(now=11.0) == {"a": 3}
    assert windows.repeats_counted == 4
    assert windows.repeats_counted == 4  # reading counts nothing


def test_a_forked_child_keeps_the_windows_but_not_the_parents_repeats() -> None:
    windows = SuppressionWindows(10)
    windows.open("ended", ends=1.0, now=0.0)
    windows.open("open", ends=100.0, now=0.0)
    windows.count_repeat("ended", now=0.5)
    windows.count_repeat("open", now=0.5)
    windows.forget_after_fork()  # what a child runs: the parent reports those two
    assert windows.repeats_counted == 0
    assert windows.take_repeats(now=2.0) == {}
    assert windows.count_repeat("open", now=2.0)  # still known to be reported
    assert windows.open("open", ends=200.0, now=100.0) == 1

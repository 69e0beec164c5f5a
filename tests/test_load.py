"""Admission by measured load (stream.load) with planted figures: exact decisions, exact load figures; the
per-stage accumulators (stream.stages); the OS names of threads (stream.threadnames)."""

from __future__ import annotations

import math
import threading
from pathlib import Path

import pytest

from stream.load import LoadGauge, LoadPolicy
from stream.stages import StageClock
from stream.threadnames import name_os_threads

POLICY = LoadPolicy(threshold=0.9, keep_goal=0.95, window_s=10.0, min_ticks=20)


def run(gauge: LoadGauge, session: str, seconds: int, tick_s: float, fps: int = 10, skip_every: int = 0) -> None:
    """`seconds` of one-second samples of a session at `fps` ticks/s, each tick taking `tick_s`; every
    `skip_every`-th tick skipped instead (0: none)."""
    processed = skipped = 0
    busy = 0.0
    gauge.sample(session, 0.0, 0, 0, 0.0)
    for second in range(1, seconds + 1):
        for tick in range(fps):
            if skip_every and (second * fps + tick) % skip_every == 0:
                skipped += 1
            else:
                processed += 1
                busy += tick_s
        gauge.sample(session, float(second), processed, skipped, busy)


def test_before_anything_is_measured_only_the_hard_cap_decides() -> None:
    gauge = LoadGauge(cores=2, max_sessions=3, policy=POLICY)
    assert gauge.snapshot([], reserved=0)["admitting"]
    assert gauge.snapshot(["a", "b"], reserved=0) == {
        "sessions": 2,
        "measured": 0,
        "max_sessions": 3,
        "cores": 2,
        "threshold": 0.9,
        "load": 0.0,
        "session_cost": None,
        "capacity": 3,
        "kept_min": None,
        "admitting": True,
    }
    assert not gauge.snapshot(["a", "b"], reserved=1)["admitting"]  # the cap counts offers being answered


def test_sessions_at_a_quarter_core_each_admit_up_to_the_threshold() -> None:
    """25 ms ticks at 10 ticks/s: 0.25 of a core each, 0.125 of two cores; 0.9 allows 7 sessions."""
    gauge = LoadGauge(cores=2, max_sessions=10, policy=POLICY)
    live = [f"s{i}" for i in range(6)]
    for session in live:
        run(gauge, session, seconds=10, tick_s=0.025)
    six = gauge.snapshot(live)
    assert (six["measured"], six["load"], six["session_cost"], six["capacity"]) == (6, 0.75, 0.125, 7)
    assert six["kept_min"] == 1.0 and six["admitting"]  # 0.75 + 0.125 = 0.875 <= 0.9
    assert not gauge.snapshot(live, reserved=1)["admitting"]  # the 7th is being answered: 1.0 > 0.9


def test_an_unmeasured_session_counts_at_the_measured_cost() -> None:
    gauge = LoadGauge(cores=2, max_sessions=10, policy=POLICY)
    run(gauge, "a", seconds=10, tick_s=0.05)  # half a core: 0.25 of the machine
    gauge.sample("new", 10.0, 0, 0, 0.0)
    snapshot = gauge.snapshot(["a", "new"], reserved=1)
    assert (snapshot["measured"], snapshot["load"], snapshot["session_cost"]) == (1, 0.75, 0.25)
    assert not snapshot["admitting"]  # 0.75 + 0.25 > 0.9
    assert gauge.snapshot(["a", "new"])["admitting"]  # 0.5 + 0.25 <= 0.9


def test_a_session_under_the_keep_goal_means_no_more_sessions() -> None:
    """Light ticks, but one tick in ten skipped: the machine is past its capacity whatever the busy sum says."""
    gauge = LoadGauge(cores=2, max_sessions=10, policy=POLICY)
    run(gauge, "a", seconds=10, tick_s=0.01)
    run(gauge, "b", seconds=10, tick_s=0.01, skip_every=10)
    snapshot = gauge.snapshot(["a", "b"])
    assert (snapshot["kept_min"], snapshot["load"], snapshot["admitting"]) == (0.9, 1.0, False)
    assert snapshot["capacity"] == 1


def test_the_window_forgets_old_figures() -> None:
    """A slow start (100 ms ticks) then 10 s of 20 ms ticks: only the last window counts."""
    gauge = LoadGauge(cores=1, max_sessions=10, policy=POLICY)
    run(gauge, "a", seconds=5, tick_s=0.1)
    processed, busy = 50, 5.0
    for second in range(6, 16):
        processed, busy = processed + 10, busy + 10 * 0.02
        gauge.sample("a", float(second), processed, 0, busy)
    figures = gauge.session_load("a")
    assert figures is not None and (figures.due, figures.kept) == (100, 1.0)
    assert figures.busy == pytest.approx(0.2)


def test_too_few_ticks_is_not_a_measurement() -> None:
    gauge = LoadGauge(cores=2, max_sessions=10, policy=POLICY)
    run(gauge, "a", seconds=1, tick_s=0.5)  # 10 ticks < min_ticks
    assert gauge.session_load("a") is None and gauge.snapshot(["a"])["session_cost"] is None


def test_an_ended_session_leaves_its_cost_for_the_next_offers() -> None:
    gauge = LoadGauge(cores=2, max_sessions=10, policy=POLICY)
    run(gauge, "a", seconds=10, tick_s=0.1)  # a whole core: 0.5 of the machine
    after = gauge.snapshot([], reserved=0)  # "a" ended: forgotten, its cost kept
    assert (after["sessions"], after["load"], after["session_cost"], after["capacity"]) == (0, 0.0, 0.5, 1)
    assert after["admitting"]  # an idle server always takes a session
    two = gauge.snapshot(["b"], reserved=0)  # "b" not measured yet: it counts at 0.5
    assert (two["load"], two["admitting"]) == (0.5, False)


def test_the_hard_cap_holds_whatever_the_load() -> None:
    gauge = LoadGauge(cores=2, max_sessions=2, policy=POLICY)
    for session in ("a", "b"):
        run(gauge, session, seconds=10, tick_s=0.001)
    snapshot = gauge.snapshot(["a", "b"])
    assert (snapshot["capacity"], snapshot["admitting"]) == (2, False)


def test_an_infinite_threshold_leaves_admission_to_the_cap() -> None:
    gauge = LoadGauge(cores=2, max_sessions=4, policy=LoadPolicy(threshold=math.inf))
    for session in ("a", "b", "c"):
        run(gauge, session, seconds=10, tick_s=0.5)  # 5 cores each asked of 2
    snapshot = gauge.snapshot(["a", "b", "c"])
    assert (snapshot["load"], snapshot["capacity"], snapshot["admitting"]) == (7.5, 4, True)


def test_bad_policies_and_gauges_are_refused() -> None:
    with pytest.raises(ValueError):
        LoadPolicy(threshold=0)
    with pytest.raises(ValueError):
        LoadPolicy(keep_goal=1.5)
    with pytest.raises(ValueError):
        LoadGauge(cores=0, max_sessions=3)


def test_stage_clock_totals_and_tick_percentiles() -> None:
    clock = StageClock()
    for ms in (10, 20, 30, 40, 1000):
        clock.add("pose", ms / 1000)
        clock.tick(ms / 1000)
    clock.set_total("decode", 1.5, 90)
    clock.set_total("decode", 2.0, 120)  # a running total: replaced, not added
    assert clock.totals_ms()["pose"] == 1100.0 and clock.counts["pose"] == 5
    assert (clock.totals_ms()["decode"], clock.counts["decode"]) == (2000.0, 120)
    assert clock.tick_times() == {"p50": 30.0, "p95": 808.0, "n": 5}
    assert clock.total_s() == pytest.approx(1.1 + 2.0)
    with pytest.raises(ValueError, match="unknown stage"):
        clock.add("paint", 1.0)


def test_os_threads_take_their_python_names() -> None:
    started, release = threading.Event(), threading.Event()

    def wait() -> None:
        started.set()
        release.wait(10)

    thread = threading.Thread(target=wait, name="video-decoder-and-more")
    thread.start()
    try:
        started.wait(10)
        name_os_threads()
        comm = Path(f"/proc/self/task/{thread.native_id}/comm").read_text().strip()
        assert comm == "video-decoder-a"  # the kernel's 15 bytes
        assert name_os_threads() == 0  # nothing left to rename
    finally:
        release.set()
        thread.join()

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from stream.clock import REWIND_S, ReferenceClock, TickSampler

# --- ReferenceClock ---------------------------------------------------------------------------------------


def test_ref_time_is_none_before_first_message() -> None:
    assert ReferenceClock().ref_time(123.0) is None


def test_playing_extrapolates_at_rate_1() -> None:
    clock = ReferenceClock()
    assert clock.update(10.0, True, now=100.0) is False
    assert clock.ref_time(100.0) == pytest.approx(10.0)
    assert clock.ref_time(102.5) == pytest.approx(12.5)


def test_pause_holds_and_resume_continues() -> None:
    clock = ReferenceClock()
    clock.update(10.0, True, now=100.0)
    clock.update(10.3, False, now=100.3)
    assert clock.ref_time(100.3) == clock.ref_time(150.0) == 10.3
    clock.update(10.3, True, now=150.0)
    assert clock.ref_time(151.0) == pytest.approx(11.3)


def test_paused_scrubbing_is_followed_exactly() -> None:
    clock = ReferenceClock()
    for i, t in enumerate([5.0, 5.1, 30.0, 2.0]):
        clock.update(t, False, now=float(i))
        assert clock.ref_time(i + 0.5) == t
    assert clock.seeks == 2  # 5.1 -> 30 and 30 -> 2


@pytest.mark.parametrize("target", [20.0, 10.9, 9.3, 0.0])
def test_seek_while_playing_is_taken_exactly(target: float) -> None:
    clock = ReferenceClock()
    clock.update(10.0, True, now=100.0)
    clock.update(10.1, True, now=100.1)
    assert clock.update(target, True, now=100.2) is True
    assert clock.ref_time(100.2) == target
    assert clock.ref_time(100.7) == pytest.approx(target + 0.5)
    assert clock.seeks == 1


def test_small_offset_is_slewed_in_without_running_backwards() -> None:
    clock = ReferenceClock()
    clock.update(10.0, True, now=100.0)
    # The video stalled for 0.4 s: the page reports 0.4 s behind our estimate.
    assert clock.update(10.6, True, now=101.0) is False
    times = np.arange(101.0, 103.0, 0.01)
    estimates = np.array([clock.ref_time(t) for t in times])
    assert np.all(np.diff(estimates) >= 0)
    assert estimates[0] == pytest.approx(11.0)
    assert clock.ref_time(101.5) == pytest.approx(10.6 + 0.5)  # settled after `slew` s
    assert clock.ref_time(102.0) == pytest.approx(11.6)


def test_jitter_is_smoothed_and_estimate_never_runs_backwards() -> None:
    rng = np.random.default_rng(7)
    clock = ReferenceClock()
    start, offset = 1000.0, 3.0  # media time = now - start + offset
    errors, raw_errors, last = [], [], -math.inf
    for now in np.arange(start, start + 30.0, 1 / 30):
        if round((now - start) * 30) % 3 == 0:  # a message every 0.1 s, delayed 0..80 ms on the way
            delay = rng.uniform(0.0, 0.08)
            clock.update(now - start + offset - delay, True, now=now)
            raw_errors.append(delay)
        ref = clock.ref_time(now)
        assert ref is not None and ref >= last
        last = ref
        errors.append(now - start + offset - ref)
    settled = np.array(errors[30:])
    assert clock.seeks == 0
    assert np.abs(settled - np.mean(raw_errors)).max() < 0.04  # the mean delay stays, as documented
    assert np.std(settled) < 0.5 * np.std(raw_errors)


def test_slew_must_cover_seek_threshold() -> None:
    with pytest.raises(ValueError):
        ReferenceClock(seek_threshold=1.0, slew=0.5)


# --- TickSampler ------------------------------------------------------------------------------------------


def run(sampler: TickSampler, ref_times: np.ndarray | list[float]) -> list[int]:
    return [k for t in ref_times if (k := sampler.take(float(t))) is not None]


@pytest.mark.parametrize("phase", [0.0, 0.013, 1 / 60])
@pytest.mark.parametrize(("webcam_fps", "tick_fps"), [(30, 10), (30, 5), (30, 2), (25, 10), (15, 15)])
def test_fast_webcam_takes_every_tick_once(webcam_fps: float, tick_fps: float, phase: float) -> None:
    total = int(12 * tick_fps)
    sampler = TickSampler(tick_fps, total)
    frames = np.arange(0, 13 * webcam_fps) / webcam_fps + phase
    assert run(sampler, frames) == list(range(total))
    assert (sampler.taken, sampler.skipped, sampler.elapsed) == (total, 0, total)


def test_slow_webcam_skips_and_counts_the_right_ticks() -> None:
    sampler = TickSampler(10, 100)
    frames = np.arange(0, 70) / 7  # 7 fps for 10 s
    expected = sorted({math.floor(j * 10 / 7 + 1e-9) for j in range(70)})
    taken = run(sampler, frames)
    assert taken == expected
    assert sampler.taken == len(expected)
    assert sampler.elapsed == expected[-1] + 1
    assert sampler.skipped == expected[-1] + 1 - len(expected) == 29


def test_pause_holds() -> None:
    sampler = TickSampler(10, 100)
    assert run(sampler, [1.0, 1.05] + [1.1] * 50) == [10, 11]
    assert sampler.elapsed == 2


@pytest.mark.parametrize(("ref", "expected"), [(-0.05, None), (-1e-12, 0), (9.99, 99), (10.0, None), (50.0, None)])
def test_out_of_range_times(ref: float, expected: int | None) -> None:
    assert TickSampler(10, 100).take(ref) == expected


def test_none_reference_time_is_ignored() -> None:
    sampler = TickSampler(10, 100)
    assert sampler.take(None) is None
    assert sampler.take(0.0) == 0


def test_run_in_from_before_start_and_out_past_end() -> None:
    sampler = TickSampler(10, 20)
    assert run(sampler, np.arange(-0.5, 2.5, 0.2)) == list(range(1, 20, 2))
    assert (sampler.taken, sampler.skipped) == (10, 10)


def test_seek_forward_does_not_count_jumped_ticks() -> None:
    sampler = TickSampler(10, 1000)
    run(sampler, np.arange(0, 1, 1 / 30))
    assert run(sampler, np.arange(50, 51, 1 / 30)) == list(range(500, 510))
    assert (sampler.taken, sampler.skipped) == (20, 0)


def test_a_small_step_back_never_repeats_a_tick_but_fills_skipped_ones() -> None:
    sampler = TickSampler(10, 100)
    times = np.arange(0, 3, 1 / 7)  # 7 fps: some ticks skipped
    first_pass = run(sampler, times)
    assert sampler.skipped == first_pass[-1] + 1 - len(first_pass) > 0
    back = times[-1] - REWIND_S + 0.05  # a step back just short of a rewind
    replay = run(sampler, np.arange(back, 4, 1 / 30))
    assert replay == [k for k in range(math.floor(back * 10), 40) if k not in first_pass]
    assert sampler.passes == 1


def test_a_jump_back_starts_a_new_pass_over_the_same_ticks() -> None:
    """An A-B loop from 1.0 s to 3.0 s, played three times at 30 fps: every tick of the loop is taken once a
    pass; counts are kept over all passes (elapsed = taken + skipped, each tick once a pass)."""
    sampler = TickSampler(10, 100)
    passes = [run(sampler, np.arange(1.0, 3.0, 1 / 30) + 1 / 60) for _ in range(3)]
    assert passes == [list(range(10, 30))] * 3
    assert (sampler.passes, sampler.taken, sampler.skipped, sampler.elapsed) == (3, 60, 0, 60)


def test_a_tick_of_the_old_pass_can_still_be_given_back() -> None:
    sampler = TickSampler(10, 100)
    assert run(sampler, [2.0, 2.1]) == [20, 21]
    assert run(sampler, [1.0]) == [10]  # tick 21 may still wait in the mailbox ...
    sampler.mark_skipped(21)  # ... and be replaced: it counts as skipped, and the new pass may take it
    with pytest.raises(ValueError, match="not a taken tick"):
        sampler.mark_skipped(21)
    assert run(sampler, np.arange(11, 23) / 10 + 0.01) == list(range(11, 23))
    assert (sampler.passes, sampler.taken, sampler.skipped) == (2, 14, 1)


def test_stall_shorter_than_threshold_counts_skipped_ticks() -> None:
    sampler = TickSampler(10, 100)
    run(sampler, [0.0, 0.1, 0.2])
    assert sampler.take(1.0) == 10
    assert sampler.skipped == 7


def test_note_seek_stops_counting_the_jump() -> None:
    sampler = TickSampler(10, 100)
    run(sampler, [0.0, 0.1, 0.2])
    sampler.note_seek()
    assert sampler.take(0.8) == 8
    assert sampler.skipped == 0


def test_mark_skipped_gives_a_tick_back_for_good() -> None:
    sampler = TickSampler(10, 100)
    assert run(sampler, [0.0, 0.1]) == [0, 1]
    sampler.mark_skipped(0)
    assert (sampler.taken, sampler.skipped, sampler.elapsed) == (1, 1, 2)
    assert sampler.take(0.0) is None
    with pytest.raises(ValueError):
        sampler.mark_skipped(0)
    with pytest.raises(ValueError):
        sampler.mark_skipped(5)


def test_session_loop_with_mailbox() -> None:
    """Clock + sampler + a one-slot mailbox that inference drains every third frame at 30 fps, F = 10."""
    clock, sampler = ReferenceClock(), TickSampler(10, 100)
    clock.update(0.0, True, now=0.0)
    mailbox: int | None = None
    processed = []
    for i in range(int(10.5 * 30)):
        now = i / 30
        if i % 3 == 0:
            clock.update(now, True, now=now)
        k = sampler.take(clock.ref_time(now))
        if k is not None:
            if mailbox is not None:
                sampler.mark_skipped(mailbox)
            mailbox = k
        if i % 5 == 4 and mailbox is not None:  # inference runs at 6 per second
            processed.append(mailbox)
            mailbox = None
    assert len(processed) == len(set(processed)) == sampler.taken - (mailbox is not None)
    assert sampler.elapsed == 100
    assert (sampler.taken, sampler.skipped) == (60, 40)  # inference drains the mailbox 6 times a second for 10 s


@pytest.mark.parametrize(("fps", "total"), [(0, 10), (-1, 10), (10, -1)])
def test_sampler_rejects_bad_arguments(fps: float, total: int) -> None:
    with pytest.raises(ValueError):
        TickSampler(fps, total)


@pytest.mark.parametrize("rate", [Fraction(1, 2), Fraction(3, 4), Fraction(1)])
@pytest.mark.parametrize("page_sends_rate", [True, False])
def test_ticks_follow_media_time_at_any_rate_and_across_an_a_b_loop(rate: Fraction, page_sends_rate: bool) -> None:
    """The dancer video plays an A-B loop (12 s to 20 s) at `rate`; the page sends the clock every 0.1 s and on
    each loop seek. At every webcam frame (30 fps, between tick boundaries) the clock's tick is exactly the
    tick of the media time, before and after each loop; without `rate` in the messages the server measures it,
    which takes `RATE_MIN_SPAN_S`."""
    fps, start, a, b = 10, Fraction(100), Fraction(12), Fraction(20)
    loop_s = (b - a) / rate

    def media(now: Fraction) -> Fraction:
        return a + (rate * (now - start)) % (b - a)

    end = start + 2 * loop_s + 3
    ticks = [start + Fraction(i, 10) for i in range(int((end - start) * 10))]
    loops = [start + k * loop_s for k in (1, 2)]
    messages = sorted({*ticks, *loops})
    frames = [start + Fraction(2 * i + 1, 60) for i in range(int((end - start) * 30))]  # never on a tick boundary
    clock, sampler = ReferenceClock(), TickSampler(fps, 1000)
    settled = start + (0 if page_sends_rate else Fraction(3, 2))
    events = sorted([(t, 0) for t in messages] + [(t, 1) for t in frames])
    checked = 0
    for now, kind in events:
        if kind == 0:
            clock.update(float(media(now)), True, float(now), float(rate) if page_sends_rate else None)
        elif now >= settled:
            ref = clock.ref_time(float(now))
            assert ref is not None
            assert sampler.tick_at(ref) == math.floor(media(now) * fps), (float(now), ref, float(media(now)))
            checked += 1
    assert checked > 0.9 * len(frames)
    assert clock.seeks == 2 and clock.rate == float(rate)

from __future__ import annotations

import threading

import pytest

from peerlog import ClockSkewError, Hlc
from peerlog.sync.hlc import COUNTER_BITS, ts_millis


class Wall:
    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


def test_now_uses_wall_millis_in_the_high_bits() -> None:
    clock = Hlc(Wall(1_700_000_000_000))
    assert ts_millis(clock.now()) == 1_700_000_000_000


def test_now_is_strictly_increasing_within_one_millisecond() -> None:
    clock = Hlc(Wall(1000))
    stamps = [clock.now() for _ in range(100)]
    assert stamps == sorted(set(stamps))


def test_now_stays_monotonic_when_the_wall_clock_steps_back() -> None:
    wall = Wall(10_000)
    clock = Hlc(wall)
    before = clock.now()
    wall.ms = 5_000
    assert clock.now() > before


def test_counter_overflow_borrows_the_next_millisecond() -> None:
    clock = Hlc(Wall(1000))
    stamps = [clock.now() for _ in range((1 << COUNTER_BITS) + 5)]
    assert stamps == sorted(set(stamps))
    assert ts_millis(stamps[-1]) == 1001


def test_observe_returns_a_stamp_past_the_remote_one() -> None:
    clock = Hlc(Wall(1000))
    remote = (1500 << COUNTER_BITS) + 7
    assert clock.observe(remote) > remote
    assert clock.now() > remote


def test_observe_rejects_a_remote_clock_over_60_seconds_ahead() -> None:
    clock = Hlc(Wall(1000))
    before = clock.last
    with pytest.raises(ClockSkewError, match="ahead"):
        clock.observe((1000 + 60_001) << COUNTER_BITS)
    assert clock.last == before
    clock.observe((1000 + 60_000) << COUNTER_BITS)  # exactly at the bound is fine


def test_starts_past_a_persisted_last_value() -> None:
    clock = Hlc(Wall(1000), last=(5000 << COUNTER_BITS))
    assert clock.now() > (5000 << COUNTER_BITS)


def test_now_is_unique_across_threads() -> None:
    clock = Hlc(Wall(1000))
    out: list[int] = []

    def work() -> None:
        out.extend(clock.now() for _ in range(2000))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(out)) == len(out) == 8000

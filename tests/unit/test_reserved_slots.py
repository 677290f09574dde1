"""Blocks of send slots reserved from a shared pace (PostgreSQL, Redis) and placed on the
worker's own clock: handed out in order, passed ones dropped, and a block whose answer came
early never starts before the block reserved ahead of it has ended."""

from __future__ import annotations

from wagate.dispatch.pacing import Reserved

MS = 1000  # microseconds


def test_slots_are_handed_out_in_order_and_passed_ones_are_dropped() -> None:
    slots = Reserved()
    slots.add(answered=10.0, now_us=5_000 * MS, first_us=5_000 * MS, interval_us=10 * MS, count=3)
    first = slots.take(10.0, None)
    assert (first.wait, first.granted) == (0.0, True)
    slots.drop_passed(10.015)  # the second (10.010) has passed unused
    third = slots.take(10.015, None)
    assert round(third.wait, 6) == 0.005 and third.starts_at == 5.02
    assert not slots


def test_a_slot_past_max_wait_is_refused_and_kept() -> None:
    slots = Reserved()
    slots.add(answered=0.0, now_us=0, first_us=200 * MS, interval_us=10 * MS, count=1)
    refused = slots.take(0.0, 0.1)
    assert not refused.granted and round(refused.wait, 6) == 0.2
    assert slots.take(0.15, 0.1).granted


def test_a_block_answered_sooner_does_not_start_before_the_last_one_ends() -> None:
    slots = Reserved()
    # The first block's answer came 40 ms late: its slots sit 40 ms later on our clock.
    slots.add(answered=1.040, now_us=1_000 * MS, first_us=1_000 * MS, interval_us=10 * MS, count=5)
    given = [slots.take(1.040 + n * 0.010, None) for n in range(5)]
    assert [round(g.wait, 6) for g in given] == [0.0] * 5
    # The next block follows on the shared clock (1.050) and its answer came at once, at 1.050:
    # placed as it says it would overlap the last 40 ms of the first block.
    slots.add(answered=1.050, now_us=1_050 * MS, first_us=1_050 * MS, interval_us=10 * MS, count=5)
    nxt = slots.take(1.050, None)
    assert round(nxt.wait, 6) == 0.04  # starts at 1.090, after the first block's last (1.080)


def test_cleared_slots_still_bound_the_next_block() -> None:
    slots = Reserved()
    slots.add(answered=2.0, now_us=2_000 * MS, first_us=2_000 * MS, interval_us=10 * MS, count=10)
    slots.take(2.0, None)
    slots.clear()  # throttled: the rest is given up
    slots.add(answered=2.0, now_us=2_000 * MS, first_us=2_100 * MS, interval_us=20 * MS, count=1)
    assert round(slots.take(2.0, None).wait, 6) == 0.1

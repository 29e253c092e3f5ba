"""8254 PIT and port 0x61, driven by a hand-set virtual clock."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from replayvm.devices.base import NS_PER_SEC, IrqLine, ManualClock
from replayvm.devices.pit8254 import (
    PIT_CONTROL,
    PIT_COUNTER0,
    PIT_COUNTER2,
    PIT_HZ,
    PORTB_OUT2,
    PORTB_REFRESH,
    PORTB_SPEAKER_DATA,
    PORTB_TIMER2_GATE,
    REFRESH_TOGGLE_NS,
    STATUS_NULL_COUNT,
    STATUS_OUT,
    Pit8254,
    SystemControlPortB,
    ticks_at,
    time_of_tick,
)

# Control words: counter << 6 | access << 4 | mode << 1 | bcd.
CH0_MODE0 = 0x30
CH0_MODE2 = 0x34
CH0_MODE3 = 0x36
CH0_MODE4 = 0x38
CH0_MODE6 = 0x3C
CH0_LSB_MODE2 = 0x14
CH0_MSB_MODE2 = 0x24
CH0_MODE2_BCD = 0x35
CH0_LATCH = 0x00
CH2_MODE0 = 0xB0
CH2_MODE1 = 0xB2
CH2_MODE2 = 0xB4
READ_BACK_STATUS_CH0 = 0xE2  # COUNT# set: status only
READ_BACK_COUNT_CH0 = 0xD2  # STATUS# set: count only
READ_BACK_BOTH_CH0_CH2 = 0xCA


class Rig:
    def __init__(self) -> None:
        self.clock = ManualClock()
        self.irq = IrqLine("irq0")
        self.pit = Pit8254(self.clock, self.irq)
        self.port_b = SystemControlPortB(self.pit)

    def at_tick(self, tick: int) -> None:
        self.clock.t = time_of_tick(tick)

    def program(self, control: int, count: int, counter: int = PIT_COUNTER0) -> None:
        self.pit.write(PIT_CONTROL, 1, control)
        self.pit.write(counter, 1, count & 0xFF)
        self.pit.write(counter, 1, count >> 8)

    def read_count(self, counter: int = PIT_COUNTER0) -> int:
        low = self.pit.read(counter, 1)
        return low | self.pit.read(counter, 1) << 8

    def status(self) -> int:
        self.pit.write(PIT_CONTROL, 1, READ_BACK_STATUS_CH0)
        return self.pit.read(PIT_COUNTER0, 1)

    def run_to_deadline(self) -> int:
        deadline = self.pit.next_deadline()
        assert deadline is not None
        self.clock.t = deadline
        self.pit.advance(deadline)
        return deadline


@pytest.fixture
def rig() -> Rig:
    return Rig()


# -- virtual time ----------------------------------------------------------------


def test_one_second_is_1193182_ticks() -> None:
    assert ticks_at(NS_PER_SEC) == PIT_HZ
    assert time_of_tick(PIT_HZ) == NS_PER_SEC


@given(st.integers(0, 10**15))
def test_time_of_tick_is_first_ns_reaching_tick(tick: int) -> None:
    t = time_of_tick(tick)
    assert ticks_at(t) >= tick > ticks_at(t - 1)


# -- counting and reads ---------------------------------------------------------------


def test_count_is_loaded_on_next_tick_then_decrements(rig: Rig) -> None:
    rig.at_tick(100)
    rig.program(CH0_MODE0, 1000)
    rig.at_tick(101)
    assert rig.read_count() == 1000
    rig.at_tick(351)
    assert rig.read_count() == 750


def test_count_reads_lsb_then_msb(rig: Rig) -> None:
    rig.program(CH0_MODE0, 0x1234)
    rig.at_tick(1)
    assert rig.pit.read(PIT_COUNTER0, 1) == 0x34
    assert rig.pit.read(PIT_COUNTER0, 1) == 0x12


def test_unlatched_msb_is_sampled_at_its_own_read(rig: Rig) -> None:
    rig.program(CH0_MODE0, 0x0200)
    rig.at_tick(1)
    assert rig.pit.read(PIT_COUNTER0, 1) == 0x00
    rig.at_tick(2)
    assert rig.pit.read(PIT_COUNTER0, 1) == 0x01  # 0x01FF now


def test_count_zero_means_65536(rig: Rig) -> None:
    rig.program(CH0_MODE2, 0)
    rig.at_tick(2)
    assert rig.read_count() == 0xFFFF
    assert rig.pit.next_deadline() == time_of_tick(1 + 0x10000)


def test_mode0_wraps_after_terminal_count(rig: Rig) -> None:
    rig.program(CH0_MODE0, 10)
    rig.at_tick(1 + 12)
    assert rig.read_count() == 0xFFFE


def test_mode2_count_reloads_each_period(rig: Rig) -> None:
    rig.program(CH0_MODE2, 100)
    rig.at_tick(1 + 100 + 30)
    assert rig.read_count() == 70


def test_mode3_count_decrements_by_two(rig: Rig) -> None:
    rig.program(CH0_MODE3, 100)
    rig.at_tick(1 + 10)
    assert rig.read_count() == 80
    rig.at_tick(1 + 60)  # second half period
    assert rig.read_count() == 80


def test_lsb_only_access(rig: Rig) -> None:
    rig.pit.write(PIT_CONTROL, 1, CH0_LSB_MODE2)
    rig.pit.write(PIT_COUNTER0, 1, 0x50)
    rig.at_tick(1)
    assert [rig.pit.read(PIT_COUNTER0, 1) for _ in range(2)] == [0x50, 0x50]


def test_msb_only_access(rig: Rig) -> None:
    rig.pit.write(PIT_CONTROL, 1, CH0_MSB_MODE2)
    rig.pit.write(PIT_COUNTER0, 1, 0x02)
    rig.at_tick(1 + 0x100)
    assert rig.pit.read(PIT_COUNTER0, 1) == 0x01


def test_counter_latch_holds_value_until_read(rig: Rig) -> None:
    rig.program(CH0_MODE0, 5000)
    rig.at_tick(1 + 1000)
    rig.pit.write(PIT_CONTROL, 1, CH0_LATCH)
    rig.at_tick(1 + 2000)
    assert rig.read_count() == 4000
    assert rig.read_count() == 3000


def test_second_latch_is_ignored_until_read(rig: Rig) -> None:
    rig.program(CH0_MODE0, 5000)
    rig.at_tick(1 + 1000)
    rig.pit.write(PIT_CONTROL, 1, CH0_LATCH)
    rig.at_tick(1 + 2000)
    rig.pit.write(PIT_CONTROL, 1, CH0_LATCH)
    assert rig.read_count() == 4000


def test_bcd_counting(rig: Rig) -> None:
    rig.program(CH0_MODE2_BCD, 0x1000)  # 1000 decimal
    rig.at_tick(1 + 1)
    assert rig.read_count() == 0x0999
    assert rig.pit.next_deadline() == time_of_tick(1 + 1000)


def test_control_word_register_reads_all_ones(rig: Rig) -> None:
    assert rig.pit.read(PIT_CONTROL, 1) == 0xFF


# -- read-back -------------------------------------------------------------------


def test_read_back_status_reports_programming(rig: Rig) -> None:
    rig.program(CH0_MODE4, 100)
    rig.at_tick(5)
    assert rig.status() == STATUS_OUT | (CH0_MODE4 & 0x3F)


def test_status_null_count_until_count_loaded(rig: Rig) -> None:
    rig.pit.write(PIT_CONTROL, 1, CH0_MODE2)
    assert rig.status() & STATUS_NULL_COUNT
    rig.pit.write(PIT_COUNTER0, 1, 0)
    rig.pit.write(PIT_COUNTER0, 1, 1)
    assert rig.status() & STATUS_NULL_COUNT  # loads on the next tick
    rig.at_tick(1)
    assert not rig.status() & STATUS_NULL_COUNT


def test_read_back_count_latches_count(rig: Rig) -> None:
    rig.program(CH0_MODE0, 300)
    rig.at_tick(101)
    rig.pit.write(PIT_CONTROL, 1, READ_BACK_COUNT_CH0)
    rig.at_tick(201)
    assert rig.read_count() == 200


def test_read_back_status_is_read_before_count(rig: Rig) -> None:
    rig.program(CH0_MODE0, 300)
    rig.program(CH2_MODE0, 500, PIT_COUNTER2)
    rig.at_tick(101)
    rig.pit.write(PIT_CONTROL, 1, READ_BACK_BOTH_CH0_CH2)
    assert rig.pit.read(PIT_COUNTER0, 1) == CH0_MODE0 & 0x3F
    assert rig.read_count() == 200
    assert rig.pit.read(PIT_COUNTER2, 1) == CH2_MODE0 & 0x3F  # gate low: OUT still low
    assert rig.read_count(PIT_COUNTER2) == 500


# -- IRQ0 deadlines ---------------------------------------------------------------


def test_unprogrammed_pit_has_no_deadline(rig: Rig) -> None:
    assert rig.pit.next_deadline() is None


def test_mode2_rate_generator_deadlines_are_periodic(rig: Rig) -> None:
    rig.at_tick(10)
    rig.program(CH0_MODE2, 1193)
    assert rig.run_to_deadline() == time_of_tick(11 + 1193)
    assert rig.irq.raises == 1
    assert rig.run_to_deadline() == time_of_tick(11 + 2 * 1193)
    assert rig.irq.raises == 2
    assert not rig.irq.level  # a pulse: the PIC latched the edge


def test_mode3_square_wave_deadlines_are_periodic(rig: Rig) -> None:
    rig.program(CH0_MODE3, 0)
    assert rig.run_to_deadline() == time_of_tick(1 + 65536)
    assert rig.pit.next_deadline() == time_of_tick(1 + 2 * 65536)


def test_missed_periods_collapse_into_one_edge(rig: Rig) -> None:
    rig.program(CH0_MODE2, 100)
    late = time_of_tick(1 + 550)
    rig.clock.t = late
    rig.pit.advance(late)
    assert rig.irq.raises == 1
    assert rig.pit.next_deadline() == time_of_tick(1 + 600)


def test_advance_before_deadline_does_nothing(rig: Rig) -> None:
    rig.program(CH0_MODE2, 100)
    early = rig.pit.next_deadline() - 1
    rig.clock.t = early
    rig.pit.advance(early)
    assert rig.irq.raises == 0


def test_mode0_fires_once_at_terminal_count(rig: Rig) -> None:
    rig.program(CH0_MODE0, 500)
    assert rig.run_to_deadline() == time_of_tick(1 + 500)
    assert rig.irq.raises == 1
    assert rig.pit.next_deadline() is None


def test_mode4_oneshot_fires_one_tick_after_terminal_count(rig: Rig) -> None:
    rig.pit.write(PIT_CONTROL, 1, CH0_MODE4)
    rig.at_tick(1000)
    rig.pit.write(PIT_COUNTER0, 1, 100)
    rig.pit.write(PIT_COUNTER0, 1, 0)
    assert rig.run_to_deadline() == time_of_tick(1000 + 1 + 100 + 1)
    assert rig.pit.next_deadline() is None


def test_mode4_rearms_on_each_count_write(rig: Rig) -> None:
    rig.pit.write(PIT_CONTROL, 1, CH0_MODE4)
    for start in (0, 5000):
        rig.at_tick(start)
        rig.pit.write(PIT_COUNTER0, 1, 50)
        rig.pit.write(PIT_COUNTER0, 1, 0)
        rig.run_to_deadline()
    assert rig.irq.raises == 2


def test_control_word_cancels_deadline(rig: Rig) -> None:
    rig.program(CH0_MODE2, 100)
    rig.pit.write(PIT_CONTROL, 1, CH0_MODE4)
    assert rig.pit.next_deadline() is None


def test_mode6_aliases_mode2(rig: Rig) -> None:
    rig.program(CH0_MODE6, 100)
    rig.run_to_deadline()
    assert rig.pit.next_deadline() == time_of_tick(1 + 200)


def test_mode0_out_low_until_terminal_count(rig: Rig) -> None:
    rig.program(CH0_MODE0, 100)
    rig.at_tick(1 + 99)
    assert not rig.pit.out(PIT_COUNTER0)
    rig.at_tick(1 + 100)
    assert rig.pit.out(PIT_COUNTER0)


def test_mode2_out_low_for_one_tick_per_period(rig: Rig) -> None:
    rig.program(CH0_MODE2, 10)
    outs = []
    for tick in range(1, 1 + 21):
        rig.at_tick(tick)
        outs.append(rig.pit.out(PIT_COUNTER0))
    assert [i for i, out in enumerate(outs) if not out] == [9, 19]


@given(st.integers(2, 0x10000), st.sampled_from([CH0_MODE0, CH0_MODE2, CH0_MODE3, CH0_MODE4]), st.integers(1, 20))
def test_deadlines_strictly_increase(count: int, control: int, steps: int) -> None:
    rig = Rig()
    rig.program(control, count & 0xFFFF)
    last = rig.clock.t
    for _ in range(steps):
        deadline = rig.pit.next_deadline()
        if deadline is None:
            break
        assert deadline > last
        rig.clock.t = last = deadline
        rig.pit.advance(deadline)


# -- counter 2 and port 0x61 ---------------------------------------------------------


def test_port61_reads_back_gate_and_speaker_bits(rig: Rig) -> None:
    rig.port_b.write(0, 1, PORTB_TIMER2_GATE | PORTB_SPEAKER_DATA)
    assert rig.port_b.read(0, 1) & 0x0F == PORTB_TIMER2_GATE | PORTB_SPEAKER_DATA


def test_port61_out2_rises_at_mode0_terminal_count(rig: Rig) -> None:
    """Linux's pit_calibrate_tsc: gate on, speaker off, mode 0, poll bit 5."""
    rig.port_b.write(0, 1, (rig.port_b.read(0, 1) & ~PORTB_SPEAKER_DATA) | PORTB_TIMER2_GATE)
    latch = PIT_HZ // 20  # 50 ms
    rig.program(CH2_MODE0, latch, PIT_COUNTER2)
    rig.at_tick(latch)
    assert not rig.port_b.read(0, 1) & PORTB_OUT2
    rig.at_tick(latch + 1)
    assert rig.port_b.read(0, 1) & PORTB_OUT2


def test_low_gate_pauses_mode0_counting(rig: Rig) -> None:
    rig.port_b.write(0, 1, PORTB_TIMER2_GATE)
    rig.program(CH2_MODE0, 1000, PIT_COUNTER2)
    rig.at_tick(101)
    rig.port_b.write(0, 1, 0)
    rig.at_tick(5000)
    assert rig.read_count(PIT_COUNTER2) == 900
    rig.port_b.write(0, 1, PORTB_TIMER2_GATE)
    rig.at_tick(5100)
    assert rig.read_count(PIT_COUNTER2) == 800


def test_count_written_with_gate_low_waits_for_gate(rig: Rig) -> None:
    rig.program(CH2_MODE0, 1000, PIT_COUNTER2)
    rig.at_tick(500)
    assert rig.read_count(PIT_COUNTER2) == 1000
    rig.port_b.write(0, 1, PORTB_TIMER2_GATE)
    rig.at_tick(1000)
    assert rig.read_count(PIT_COUNTER2) == 500


def test_gate_rising_edge_restarts_mode2(rig: Rig) -> None:
    rig.port_b.write(0, 1, PORTB_TIMER2_GATE)
    rig.program(CH2_MODE2, 1000, PIT_COUNTER2)
    rig.at_tick(400)
    rig.port_b.write(0, 1, 0)
    assert rig.port_b.read(0, 1) & PORTB_OUT2  # low gate forces OUT high
    rig.port_b.write(0, 1, PORTB_TIMER2_GATE)
    rig.at_tick(401)
    assert rig.read_count(PIT_COUNTER2) == 1000


def test_mode1_one_shot_is_triggered_by_gate(rig: Rig) -> None:
    rig.program(CH2_MODE1, 100, PIT_COUNTER2)
    rig.at_tick(50)
    assert rig.pit.out(PIT_COUNTER2)  # waiting for a trigger
    rig.port_b.write(0, 1, PORTB_TIMER2_GATE)
    rig.at_tick(52)
    assert not rig.pit.out(PIT_COUNTER2)
    rig.at_tick(51 + 100)
    assert rig.pit.out(PIT_COUNTER2)


def test_refresh_bit_toggles_every_15085_ns(rig: Rig) -> None:
    rig.clock.t = REFRESH_TOGGLE_NS - 1
    before = rig.port_b.read(0, 1) & PORTB_REFRESH
    rig.clock.t = REFRESH_TOGGLE_NS
    assert rig.port_b.read(0, 1) & PORTB_REFRESH != before
    assert rig.port_b.read(0, 1) & PORTB_REFRESH != before  # time, not reads, toggles it


# -- state -------------------------------------------------------------------------


def test_save_load_state_round_trip(rig: Rig) -> None:
    rig.port_b.write(0, 1, PORTB_TIMER2_GATE)
    rig.program(CH0_MODE2, 1193)
    rig.program(CH2_MODE0, 0x4000, PIT_COUNTER2)
    rig.at_tick(700)
    rig.pit.write(PIT_CONTROL, 1, CH0_LATCH)
    rig.pit.read(PIT_COUNTER2, 1)
    pit_state, port_state = rig.pit.save_state(), rig.port_b.save_state()
    other = Rig()
    other.clock.t = rig.clock.t
    other.pit.load_state(pit_state)
    other.port_b.load_state(port_state)
    assert other.pit.save_state() == pit_state
    assert other.pit.next_deadline() == rig.pit.next_deadline()
    assert other.port_b.read(0, 1) == rig.port_b.read(0, 1)
    for counter in (PIT_COUNTER0, PIT_COUNTER2):
        assert other.pit.read(counter, 1) == rig.pit.read(counter, 1)


def test_state_is_plain_data(rig: Rig) -> None:
    rig.program(CH0_MODE2, 100)
    rig.pit.write(PIT_CONTROL, 1, CH0_LATCH)
    for value in rig.pit.save_state().values():
        assert isinstance(value, int | list)


@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 255), st.booleans(), st.integers(0, 10**6)), max_size=60))
def test_random_accesses_never_raise(ops: list[tuple[int, int, bool, int]]) -> None:
    rig = Rig()
    for offset, value, is_write, dt in ops:
        rig.clock.t += dt
        if offset == 4:
            rig.port_b.write(0, 1, value)
        elif is_write:
            rig.pit.write(offset, 1, value)
        else:
            assert 0 <= rig.pit.read(offset, 1) <= 0xFF
        deadline = rig.pit.next_deadline()
        if deadline is not None and deadline <= rig.clock.t:
            rig.pit.advance(rig.clock.t)
            later = rig.pit.next_deadline()
            assert later is None or later > rig.clock.t

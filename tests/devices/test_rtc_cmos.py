"""MC146818A RTC and CMOS RAM, driven by a hand-set virtual clock."""

from __future__ import annotations

import calendar
import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from replayvm.devices.base import NS_PER_SEC, IrqLine, ManualClock
from replayvm.devices.rtc_cmos import (
    ALARM_DONT_CARE,
    CENTURY,
    CMOS_DATA,
    CMOS_EQUIPMENT,
    CMOS_INDEX,
    EQUIPMENT_FPU,
    HOUR_PM,
    INDEX_NMI_DISABLE,
    REG_A_UIP,
    REG_B_24H,
    REG_B_AIE,
    REG_B_BINARY,
    REG_B_PIE,
    REG_B_SET,
    REG_B_UIE,
    REG_C_AF,
    REG_C_IRQF,
    REG_C_PF,
    REG_C_UF,
    REG_D_VRT,
    RTC_DAY_OF_MONTH,
    RTC_DAY_OF_WEEK,
    RTC_HOURS,
    RTC_HOURS_ALARM,
    RTC_MINUTES,
    RTC_MINUTES_ALARM,
    RTC_MONTH,
    RTC_REG_A,
    RTC_REG_B,
    RTC_REG_C,
    RTC_REG_D,
    RTC_SECONDS,
    RTC_SECONDS_ALARM,
    RTC_YEAR,
    UIP_NS,
    CmosRtc,
    civil_from_days,
    days_from_civil,
)

LEAP_DAY_EVENING = calendar.timegm((2024, 2, 29, 23, 59, 58))  # a Thursday
RATE_1024HZ = 0x26
PERIOD_1024HZ_NS = NS_PER_SEC // 1024
DAY = 86_400


class Rig:
    def __init__(self, seconds: int = LEAP_DAY_EVENING, phase_ns: int = 0) -> None:
        self.clock = ManualClock()
        self.irq = IrqLine("irq8")
        self.rtc = CmosRtc(self.clock, seconds * NS_PER_SEC + phase_ns, self.irq)

    def r(self, index: int) -> int:
        self.rtc.write(CMOS_INDEX, 1, index)
        return self.rtc.read(CMOS_DATA, 1)

    def w(self, index: int, value: int) -> None:
        self.rtc.write(CMOS_INDEX, 1, index)
        self.rtc.write(CMOS_DATA, 1, value)

    def time(self) -> tuple[int, ...]:
        return tuple(self.r(i) for i in (RTC_YEAR, RTC_MONTH, RTC_DAY_OF_MONTH, RTC_HOURS, RTC_MINUTES, RTC_SECONDS))

    def advance_to(self, t: int) -> None:
        self.clock.t = t
        self.rtc.advance(t)


@pytest.fixture
def rig() -> Rig:
    return Rig()


# -- calendar -----------------------------------------------------------------


@given(st.dates(min_value=datetime.date(1, 1, 1), max_value=datetime.date(9999, 12, 31)))
def test_civil_day_counts_match_the_gregorian_calendar(date: datetime.date) -> None:
    days = date.toordinal() - datetime.date(1970, 1, 1).toordinal()
    assert days_from_civil(date.year, date.month, date.day) == days
    assert civil_from_days(days) == (date.year, date.month, date.day)


# -- time registers ------------------------------------------------------------


def test_time_registers_report_wall_base_in_bcd(rig: Rig) -> None:
    assert rig.time() == (0x24, 0x02, 0x29, 0x23, 0x59, 0x58)
    assert rig.r(CENTURY) == 0x20


def test_time_follows_virtual_clock_across_midnight(rig: Rig) -> None:
    rig.clock.t = 3 * NS_PER_SEC
    assert rig.time() == (0x24, 0x03, 0x01, 0x00, 0x00, 0x01)


def test_day_of_week_counts_sunday_as_one(rig: Rig) -> None:
    assert rig.r(RTC_DAY_OF_WEEK) == 5  # Thursday
    rig.clock.t = (3 * DAY) * NS_PER_SEC
    assert rig.r(RTC_DAY_OF_WEEK) == 1  # Sunday 2024-03-03


def test_binary_mode(rig: Rig) -> None:
    rig.w(RTC_REG_B, REG_B_24H | REG_B_BINARY)
    assert rig.time() == (24, 2, 29, 23, 59, 58)
    assert rig.r(CENTURY) == 20


def test_12_hour_mode_sets_pm_bit(rig: Rig) -> None:
    rig.w(RTC_REG_B, 0)
    assert rig.r(RTC_HOURS) == HOUR_PM | 0x11


def test_12_hour_mode_shows_midnight_as_12_am() -> None:
    rig = Rig(calendar.timegm((2000, 1, 1, 0, 30, 0)))
    rig.w(RTC_REG_B, 0)
    assert rig.r(RTC_HOURS) == 0x12


# -- registers A-D and RAM ---------------------------------------------------------


def test_uip_set_in_last_244us_of_second(rig: Rig) -> None:
    rig.clock.t = NS_PER_SEC - UIP_NS - 1
    assert not rig.r(RTC_REG_A) & REG_A_UIP
    rig.clock.t = NS_PER_SEC - UIP_NS
    assert rig.r(RTC_REG_A) & REG_A_UIP
    rig.clock.t = NS_PER_SEC
    assert not rig.r(RTC_REG_A) & REG_A_UIP


def test_uip_follows_wall_clock_phase() -> None:
    rig = Rig(phase_ns=NS_PER_SEC - UIP_NS)
    assert rig.r(RTC_REG_A) & REG_A_UIP


def test_register_a_keeps_rate_bits_but_not_uip(rig: Rig) -> None:
    rig.w(RTC_REG_A, REG_A_UIP | 0x2F)
    assert rig.r(RTC_REG_A) == 0x2F


def test_register_d_reports_valid_ram_and_time(rig: Rig) -> None:
    rig.w(RTC_REG_D, 0)
    assert rig.r(RTC_REG_D) == REG_D_VRT


def test_index_ignores_nmi_disable_bit(rig: Rig) -> None:
    rig.rtc.write(CMOS_INDEX, 1, INDEX_NMI_DISABLE | RTC_SECONDS)
    assert rig.rtc.read(CMOS_DATA, 1) == 0x58


def test_index_port_reads_all_ones(rig: Rig) -> None:
    assert rig.rtc.read(CMOS_INDEX, 1) == 0xFF


def test_cmos_ram_reads_back(rig: Rig) -> None:
    rig.w(0x40, 0xA5)
    rig.w(0x7F, 0x5A)
    assert (rig.r(0x40), rig.r(0x7F)) == (0xA5, 0x5A)


def test_set_memory_size_fills_bios_bytes(rig: Rig) -> None:
    rig.rtc.set_memory_size(64 << 20)
    assert rig.r(0x15) | rig.r(0x16) << 8 == 640
    assert rig.r(0x17) | rig.r(0x18) << 8 == 63 * 1024
    assert rig.r(0x30) | rig.r(0x31) << 8 == 63 * 1024
    assert rig.r(0x34) | rig.r(0x35) << 8 == (48 << 20) // 65536
    assert rig.r(CMOS_EQUIPMENT) == EQUIPMENT_FPU


# -- setting the time ----------------------------------------------------------------


def test_set_freezes_registers_until_cleared(rig: Rig) -> None:
    rig.w(RTC_REG_B, REG_B_SET | REG_B_24H)
    rig.clock.t = 5 * NS_PER_SEC
    assert rig.r(RTC_SECONDS) == 0x58
    assert not rig.r(RTC_REG_A) & REG_A_UIP


def test_time_written_under_set_applies_when_cleared(rig: Rig) -> None:
    """Linux's mc146818_set_time: SET, write the registers, clear SET."""
    rig.w(RTC_REG_B, REG_B_SET | REG_B_24H)
    for index, value in ((RTC_YEAR, 0x99), (RTC_MONTH, 0x12), (RTC_DAY_OF_MONTH, 0x31),
                         (RTC_HOURS, 0x23), (RTC_MINUTES, 0x59), (RTC_SECONDS, 0x59), (CENTURY, 0x19)):  # fmt: skip
        rig.w(index, value)
    rig.w(RTC_REG_B, REG_B_24H)
    assert rig.time() == (0x99, 0x12, 0x31, 0x23, 0x59, 0x59)
    rig.clock.t = NS_PER_SEC
    assert rig.time() == (0x00, 0x01, 0x01, 0x00, 0x00, 0x00)
    assert rig.r(CENTURY) == 0x20


def test_setting_time_keeps_subsecond_phase(rig: Rig) -> None:
    rig.clock.t = NS_PER_SEC // 2
    rig.w(RTC_MINUTES, 0x00)
    rig.clock.t = NS_PER_SEC - 1
    assert rig.r(RTC_SECONDS) == 0x58
    rig.clock.t = NS_PER_SEC
    assert rig.r(RTC_SECONDS) == 0x59


def test_time_register_write_while_running_takes_effect(rig: Rig) -> None:
    rig.w(RTC_HOURS, 0x05)
    assert rig.time() == (0x24, 0x02, 0x29, 0x05, 0x59, 0x58)


def test_day_of_week_writes_are_ignored(rig: Rig) -> None:
    rig.w(RTC_DAY_OF_WEEK, 0x02)
    assert rig.r(RTC_DAY_OF_WEEK) == 5
    assert rig.time() == (0x24, 0x02, 0x29, 0x23, 0x59, 0x58)


def test_set_clears_uie(rig: Rig) -> None:
    rig.w(RTC_REG_B, REG_B_SET | REG_B_UIE | REG_B_24H)
    assert rig.r(RTC_REG_B) == REG_B_SET | REG_B_24H


# -- flags and interrupts ----------------------------------------------------------------


def test_update_flag_set_after_second_boundary(rig: Rig) -> None:
    rig.clock.t = NS_PER_SEC - 1
    assert not rig.r(RTC_REG_C) & REG_C_UF
    rig.clock.t = NS_PER_SEC
    assert rig.r(RTC_REG_C) & REG_C_UF


def test_register_c_read_clears_flags(rig: Rig) -> None:
    rig.clock.t = NS_PER_SEC
    rig.r(RTC_REG_C)
    assert rig.r(RTC_REG_C) == 0


def test_no_update_flag_while_set(rig: Rig) -> None:
    rig.w(RTC_REG_B, REG_B_SET | REG_B_24H)
    rig.clock.t = 3 * NS_PER_SEC
    assert not rig.r(RTC_REG_C) & REG_C_UF


def test_update_interrupt_raises_irq8_at_next_second(rig: Rig) -> None:
    rig.clock.t = 100
    rig.w(RTC_REG_B, REG_B_24H | REG_B_UIE)
    assert rig.rtc.next_deadline() == NS_PER_SEC
    rig.advance_to(NS_PER_SEC)
    assert rig.irq.level
    assert rig.rtc.next_deadline() is None  # line up until register C is read


def test_register_c_read_lowers_irq8(rig: Rig) -> None:
    rig.w(RTC_REG_B, REG_B_24H | REG_B_UIE)
    rig.advance_to(NS_PER_SEC)
    assert rig.r(RTC_REG_C) & (REG_C_IRQF | REG_C_UF) == REG_C_IRQF | REG_C_UF
    assert not rig.irq.level
    assert rig.rtc.next_deadline() == 2 * NS_PER_SEC


def test_enabling_interrupt_with_flag_set_raises_irq8(rig: Rig) -> None:
    rig.clock.t = NS_PER_SEC
    rig.w(RTC_REG_B, REG_B_24H | REG_B_UIE)
    assert rig.irq.level


def test_periodic_interrupt_at_1024_hz(rig: Rig) -> None:
    rig.w(RTC_REG_A, RATE_1024HZ)
    rig.w(RTC_REG_B, REG_B_24H | REG_B_PIE)
    deadline = rig.rtc.next_deadline()
    assert deadline == -(-NS_PER_SEC // 1024)
    rig.advance_to(deadline)
    assert rig.r(RTC_REG_C) & (REG_C_IRQF | REG_C_PF) == REG_C_IRQF | REG_C_PF


def test_periodic_flag_without_interrupt(rig: Rig) -> None:
    rig.w(RTC_REG_A, RATE_1024HZ)
    rig.r(RTC_REG_C)
    rig.clock.t = PERIOD_1024HZ_NS + 1
    assert rig.r(RTC_REG_C) & (REG_C_PF | REG_C_IRQF) == REG_C_PF
    assert not rig.irq.level


def test_alarm_interrupt_at_matching_time(rig: Rig) -> None:
    rig.w(RTC_SECONDS_ALARM, 0x05)
    rig.w(RTC_MINUTES_ALARM, 0x00)
    rig.w(RTC_HOURS_ALARM, 0x00)
    rig.w(RTC_REG_B, REG_B_24H | REG_B_AIE)
    assert rig.rtc.next_deadline() == 7 * NS_PER_SEC  # 00:00:05 next day
    rig.advance_to(7 * NS_PER_SEC)
    assert rig.irq.level
    assert rig.r(RTC_REG_C) & (REG_C_AF | REG_C_IRQF) == REG_C_AF | REG_C_IRQF


def test_alarm_dont_care_bytes_match_every_second(rig: Rig) -> None:
    for index in (RTC_SECONDS_ALARM, RTC_MINUTES_ALARM, RTC_HOURS_ALARM):
        rig.w(index, ALARM_DONT_CARE)
    rig.w(RTC_REG_B, REG_B_24H | REG_B_AIE)
    assert rig.rtc.next_deadline() == NS_PER_SEC


def test_impossible_alarm_never_fires(rig: Rig) -> None:
    rig.w(RTC_SECONDS_ALARM, 0x60)
    rig.w(RTC_REG_B, REG_B_24H | REG_B_AIE)
    assert rig.rtc.next_deadline() is None
    rig.clock.t = 3 * DAY * NS_PER_SEC
    assert not rig.r(RTC_REG_C) & REG_C_AF


def test_alarm_flag_found_across_a_long_gap(rig: Rig) -> None:
    rig.w(RTC_SECONDS_ALARM, 0x30)
    rig.w(RTC_MINUTES_ALARM, 0x15)
    rig.w(RTC_HOURS_ALARM, 0x12)
    rig.r(RTC_REG_C)
    rig.clock.t = 2 * DAY * NS_PER_SEC
    assert rig.r(RTC_REG_C) & REG_C_AF


def test_no_deadline_without_irq_line() -> None:
    clock = ManualClock()
    rtc = CmosRtc(clock, LEAP_DAY_EVENING * NS_PER_SEC)
    rtc.write(CMOS_INDEX, 1, RTC_REG_B)
    rtc.write(CMOS_DATA, 1, REG_B_24H | REG_B_UIE)
    assert rtc.next_deadline() is None


# -- state ----------------------------------------------------------------------------


def test_save_load_state_round_trip(rig: Rig) -> None:
    rig.rtc.set_memory_size(64 << 20)
    rig.w(RTC_REG_B, REG_B_24H | REG_B_UIE | REG_B_BINARY)
    rig.w(RTC_HOURS, 3)
    rig.advance_to(NS_PER_SEC + 5)
    rig.rtc.write(CMOS_INDEX, 1, RTC_MINUTES)
    state = rig.rtc.save_state()
    other = Rig(seconds=0)
    other.clock.t = rig.clock.t
    other.rtc.load_state(state)
    assert other.rtc.save_state() == state
    assert other.irq.level == rig.irq.level
    assert other.rtc.read(CMOS_DATA, 1) == rig.rtc.read(CMOS_DATA, 1)
    assert [other.r(i) for i in range(128)] == [rig.r(i) for i in range(128)]


def test_state_is_plain_data(rig: Rig) -> None:
    assert all(isinstance(v, int | bytes) for v in rig.rtc.save_state().values())


@given(st.lists(st.tuples(st.integers(0, 127), st.integers(0, 255), st.integers(0, 3 * NS_PER_SEC)), max_size=40))
def test_random_register_writes_never_raise(ops: list[tuple[int, int, int]]) -> None:
    rig = Rig()
    for index, value, dt in ops:
        rig.clock.t += dt
        rig.w(index, value)
        assert 0 <= rig.r(index) <= 0xFF
        deadline = rig.rtc.next_deadline()
        if deadline is not None and deadline <= rig.clock.t:
            rig.rtc.advance(rig.clock.t)

"""Motorola MC146818A real-time clock and CMOS RAM (datasheet, "MC146818A
Real-Time Clock Plus RAM"), at ports 0x70 (index) and 0x71 (data).

The clock is never stepped. The RTC's time is ``base_ns + clock.now()``
(Unix epoch ns, UTC): ``base_ns`` starts as the wall-clock base the machine
logged at boot, and changes only when the guest sets the time, by whole
seconds, so the divider chain keeps its phase as it does on the chip. The
calendar is pure integer arithmetic (Hinnant's days-from-civil algorithms).

Timing model (datasheet, "Update Cycle"): the update happens exactly at each
virtual second boundary and UIP (register A bit 7) is set during the last
244 us before it. Update-ended (UF), alarm (AF) and periodic (PF) flags are
accumulated lazily from virtual time whenever the guest touches the chip or
the machine calls ``advance``; reading register C returns and clears them
and lowers IRQ8, whose level is IRQF = PF·PIE + AF·AIE + UF·UIE. With an
IRQ line, ``next_deadline`` is the next moment an enabled flag would raise
it.

Simplifications: the divider bits of register A and the DSE and SQWE bits
of register B are stored but have no effect (the time base always runs at
32.768 kHz, UTC has no daylight saving, there is no SQW pin). The day of the
week is derived from the date; writes to it are ignored. Writes to the time
registers while SET is clear take effect at once; while SET is set they are
held and applied when SET is cleared (updates are inhibited meanwhile, and
writing SET clears UIE, as on the chip).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from replayvm.devices.base import NS_PER_SEC, ByteDevice, Clock, IrqLine

CMOS_INDEX = 0  # port 0x70, write only
CMOS_DATA = 1  # port 0x71
CMOS_WINDOW = 2
INDEX_NMI_DISABLE = 0x80  # ignored: there is no NMI source
CMOS_SIZE = 128

RTC_SECONDS = 0x00
RTC_SECONDS_ALARM = 0x01
RTC_MINUTES = 0x02
RTC_MINUTES_ALARM = 0x03
RTC_HOURS = 0x04
RTC_HOURS_ALARM = 0x05
RTC_DAY_OF_WEEK = 0x06
RTC_DAY_OF_MONTH = 0x07
RTC_MONTH = 0x08
RTC_YEAR = 0x09
RTC_REG_A = 0x0A
RTC_REG_B = 0x0B
RTC_REG_C = 0x0C
RTC_REG_D = 0x0D

# PC/AT CMOS layout (IBM PC/AT Technical Reference; QEMU's pc_cmos_init).
CMOS_FLOPPY_TYPES = 0x10
CMOS_EQUIPMENT = 0x14
CMOS_BASE_MEMORY = 0x15  # KiB below 640 KiB, 16 bits
CMOS_EXTENDED_MEMORY = 0x17  # KiB above 1 MiB (max 65535), 16 bits
CMOS_EXTENDED_MEMORY_POST = 0x30  # the same, as POST found it
CENTURY = 0x32
CMOS_MEMORY_ABOVE_16M = 0x34  # 64 KiB units between 16 MiB and 4 GiB, 16 bits
CMOS_MEMORY_ABOVE_4G = 0x5B  # 64 KiB units above 4 GiB, 24 bits

EQUIPMENT_FPU = 0x02

REG_A_UIP = 0x80
REG_A_RATE = 0x0F
REG_A_RESET = 0x26  # 32.768 kHz time base, 1024 Hz periodic rate

REG_B_SET = 0x80
REG_B_PIE = 0x40
REG_B_AIE = 0x20
REG_B_UIE = 0x10
REG_B_SQWE = 0x08
REG_B_BINARY = 0x04  # DM: binary, else BCD
REG_B_24H = 0x02
REG_B_DSE = 0x01
REG_B_RESET = REG_B_24H

REG_C_IRQF = 0x80
REG_C_PF = 0x40  # each flag sits at the bit of its enable in register B
REG_C_AF = 0x20
REG_C_UF = 0x10
INTERRUPT_SOURCES = REG_C_PF | REG_C_AF | REG_C_UF

REG_D_VRT = 0x80  # valid RAM and time: the battery is always good

HOUR_PM = 0x80  # 12-hour mode
ALARM_DONT_CARE = 0xC0  # an alarm byte with both top bits set matches anything

UIP_NS = 244_000
TIME_BASE_HZ = 32_768
SECONDS_PER_DAY = 86_400

TIME_REGISTERS = (
    RTC_SECONDS, RTC_MINUTES, RTC_HOURS, RTC_DAY_OF_WEEK, RTC_DAY_OF_MONTH,
    RTC_MONTH, RTC_YEAR, CENTURY,
)  # fmt: skip


def days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant)."""
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146_097 + day_of_era - 719_468


def civil_from_days(days: int) -> tuple[int, int, int]:
    """(year, month, day) of a day count since 1970-01-01 (H. Hinnant)."""
    days += 719_468
    era = days // 146_097
    day_of_era = days - era * 146_097
    year_of_era = (day_of_era - day_of_era // 1460 + day_of_era // 36_524 - day_of_era // 146_096) // 365
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    mp = (5 * day_of_year + 2) // 153
    day = day_of_year - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return year_of_era + era * 400 + (month <= 2), month, day


class CmosRtc(ByteDevice):
    """RTC and 128 bytes of CMOS RAM; ``irq8`` (optional) is the RTC interrupt."""

    name = "rtc_cmos"

    def __init__(self, clock: Clock, wall_base_ns: int, irq8: IrqLine | None = None) -> None:
        self._clock = clock
        self._irq = irq8
        self._cmos = bytearray(CMOS_SIZE)
        self._cmos[RTC_REG_A] = REG_A_RESET
        self._cmos[RTC_REG_B] = REG_B_RESET
        self._cmos[CMOS_EQUIPMENT] = EQUIPMENT_FPU
        self._index = 0
        self._base_ns = wall_base_ns  # RTC time at virtual time 0
        self._synced_ns = clock.now()  # flags in register C cover time up to here

    def set_memory_size(self, below_4g: int, above_4g: int = 0) -> None:
        """Fill the BIOS memory-size bytes as a PC BIOS POST would."""
        kib = 1024
        self._put(CMOS_BASE_MEMORY, 2, min(below_4g // kib, 640))
        extended = min(max(below_4g - 1024 * kib, 0) // kib, 0xFFFF)
        self._put(CMOS_EXTENDED_MEMORY, 2, extended)
        self._put(CMOS_EXTENDED_MEMORY_POST, 2, extended)
        self._put(CMOS_MEMORY_ABOVE_16M, 2, min(max(below_4g - 16 * kib * kib, 0) // (64 * kib), 0xFFFF))
        self._put(CMOS_MEMORY_ABOVE_4G, 3, min(above_4g // (64 * kib), 0xFFFFFF))

    def _put(self, index: int, size: int, value: int) -> None:
        self._cmos[index : index + size] = value.to_bytes(size, "little")

    # -- registers -------------------------------------------------------

    def read_byte(self, offset: int) -> int:
        if offset != CMOS_DATA:
            return 0xFF  # the index port is write only
        index = self._index
        now = self._clock.now()
        if index in TIME_REGISTERS and not self._cmos[RTC_REG_B] & REG_B_SET:
            return self._time_registers(self._seconds(now))[index]
        if index == RTC_REG_A:
            return self._cmos[RTC_REG_A] | (REG_A_UIP if self._update_in_progress(now) else 0)
        if index == RTC_REG_C:
            return self._read_c(now)
        if index == RTC_REG_D:
            return REG_D_VRT
        return self._cmos[index]

    def write_byte(self, offset: int, value: int) -> None:
        if offset == CMOS_INDEX:
            self._index = value & ~INDEX_NMI_DISABLE
            return
        if offset != CMOS_DATA:
            return
        index = self._index
        now = self._clock.now()
        if index in TIME_REGISTERS:
            self._write_time(now, index, value)
        elif index == RTC_REG_A:
            self._sync(now)
            self._cmos[RTC_REG_A] = value & ~REG_A_UIP
        elif index == RTC_REG_B:
            self._write_b(now, value)
        elif index not in (RTC_REG_C, RTC_REG_D):  # C and D are read only
            self._cmos[index] = value

    def _read_c(self, now: int) -> int:
        self._sync(now)
        flags = self._cmos[RTC_REG_C]
        value = flags | (REG_C_IRQF if self._irqf() else 0)
        self._cmos[RTC_REG_C] = 0
        self._update_irq()
        return value

    def _write_b(self, now: int, value: int) -> None:
        self._sync(now)
        was_set = self._cmos[RTC_REG_B] & REG_B_SET
        if value & REG_B_SET:
            value &= ~REG_B_UIE
        self._cmos[RTC_REG_B] = value
        if value & REG_B_SET and not was_set:
            # Freeze the registers; the guest edits them until SET is cleared.
            for index, byte in self._time_registers(self._seconds(now)).items():
                self._cmos[index] = byte
        elif was_set and not value & REG_B_SET:
            self._set_seconds(now, self._seconds_from(self._cmos))
        self._update_irq()

    def _write_time(self, now: int, index: int, value: int) -> None:
        if self._cmos[RTC_REG_B] & REG_B_SET:
            self._cmos[index] = value
            return
        self._sync(now)
        registers = self._time_registers(self._seconds(now))
        registers[index] = value
        self._set_seconds(now, self._seconds_from(registers))

    # -- time ------------------------------------------------------------

    def _seconds(self, now: int) -> int:
        return (self._base_ns + now) // NS_PER_SEC

    def _set_seconds(self, now: int, seconds: int) -> None:
        """Make the current second ``seconds``, keeping the sub-second phase."""
        self._base_ns += (seconds - self._seconds(now)) * NS_PER_SEC

    def _update_in_progress(self, now: int) -> bool:
        if self._cmos[RTC_REG_B] & REG_B_SET:
            return False
        return (self._base_ns + now) % NS_PER_SEC >= NS_PER_SEC - UIP_NS

    def _encode(self, value: int) -> int:
        if self._cmos[RTC_REG_B] & REG_B_BINARY:
            return value
        return (value // 10) << 4 | value % 10

    def _decode(self, byte: int) -> int:
        if self._cmos[RTC_REG_B] & REG_B_BINARY:
            return byte
        return (byte >> 4) * 10 + (byte & 0x0F)

    def _encode_hour(self, hour: int) -> int:
        if self._cmos[RTC_REG_B] & REG_B_24H:
            return self._encode(hour)
        return self._encode(hour % 12 or 12) | (HOUR_PM if hour >= 12 else 0)

    def _decode_hour(self, byte: int) -> int:
        if self._cmos[RTC_REG_B] & REG_B_24H:
            return self._decode(byte)
        return self._decode(byte & ~HOUR_PM) % 12 + (12 if byte & HOUR_PM else 0)

    def _time_registers(self, seconds: int) -> dict[int, int]:
        days, second_of_day = divmod(seconds, SECONDS_PER_DAY)
        year, month, day = civil_from_days(days)
        hour, rest = divmod(second_of_day, 3600)
        minute, second = divmod(rest, 60)
        return {
            RTC_SECONDS: self._encode(second),
            RTC_MINUTES: self._encode(minute),
            RTC_HOURS: self._encode_hour(hour),
            RTC_DAY_OF_WEEK: self._encode((days + 4) % 7 + 1),  # 1970-01-01: Thursday; Sunday = 1
            RTC_DAY_OF_MONTH: self._encode(day),
            RTC_MONTH: self._encode(month),
            RTC_YEAR: self._encode(year % 100),
            CENTURY: self._encode(year // 100 % 100),
        }

    def _seconds_from(self, registers: dict[int, int] | bytearray) -> int:
        """Epoch seconds of the time registers (any byte values: never raises)."""
        year = self._decode(registers[CENTURY]) * 100 + self._decode(registers[RTC_YEAR])
        days = days_from_civil(year, self._decode(registers[RTC_MONTH]), self._decode(registers[RTC_DAY_OF_MONTH]))
        return (
            days * SECONDS_PER_DAY
            + self._decode_hour(registers[RTC_HOURS]) * 3600
            + self._decode(registers[RTC_MINUTES]) * 60
            + self._decode(registers[RTC_SECONDS])
        )

    # -- flags and interrupts ----------------------------------------------

    def _periodic_cycles(self) -> int:
        """Periodic interrupt period in 32.768 kHz cycles (datasheet Table 3), 0 = off."""
        rate = self._cmos[RTC_REG_A] & REG_A_RATE
        if rate == 0:
            return 0
        return 1 << ((rate + 7 if rate < 3 else rate) - 1)

    def _next_alarm(self, after: int) -> int | None:
        """The first second after ``after`` whose time matches the alarm bytes."""

        def matching(index: int, limit: int, encode: Callable[[int], int]) -> Iterable[int]:
            want = self._cmos[index]
            if want & ALARM_DONT_CARE == ALARM_DONT_CARE:
                return range(limit)
            return [v for v in range(limit) if encode(v) == want]

        hours = matching(RTC_HOURS_ALARM, 24, self._encode_hour)
        minutes = matching(RTC_MINUTES_ALARM, 60, self._encode)
        seconds = matching(RTC_SECONDS_ALARM, 60, self._encode)
        day_start = after - after % SECONDS_PER_DAY
        time_of_day = after - day_start
        for day in (0, SECONDS_PER_DAY):
            for hour in hours:
                if day + hour * 3600 + 3599 <= time_of_day:
                    continue
                for minute in minutes:
                    start = day + hour * 3600 + minute * 60
                    if start + 59 <= time_of_day:
                        continue
                    for second in seconds:
                        if start + second > time_of_day:
                            return day_start + start + second
        return None

    def _sync(self, now: int) -> None:
        """Set the flags of the events in (synced, now] (datasheet, "Register C")."""
        if now <= self._synced_ns:
            return
        start, end = self._base_ns + self._synced_ns, self._base_ns + now
        flags = 0
        if not self._cmos[RTC_REG_B] & REG_B_SET:
            first, last = start // NS_PER_SEC, end // NS_PER_SEC
            if last > first:
                flags |= REG_C_UF
                alarm = self._next_alarm(first)
                if alarm is not None and alarm <= last:
                    flags |= REG_C_AF
        period = self._periodic_cycles()
        if period and _cycles(end) // period > _cycles(start) // period:
            flags |= REG_C_PF
        self._cmos[RTC_REG_C] |= flags
        self._synced_ns = now

    def _irqf(self) -> bool:
        return bool(self._cmos[RTC_REG_C] & self._cmos[RTC_REG_B] & INTERRUPT_SOURCES)

    def _update_irq(self) -> None:
        if self._irq is not None:
            self._irq.set_level(self._irqf())

    def next_deadline(self) -> int | None:
        """When an enabled, not yet flagged event next raises IRQ8 (None if the
        line is already up: nothing changes until the guest reads register C)."""
        if self._irq is None or self._irqf():
            return None
        reg_b = self._cmos[RTC_REG_B]
        start = self._base_ns + self._synced_ns
        candidates = []
        period = self._periodic_cycles()
        if reg_b & REG_B_PIE and period:
            cycle = (_cycles(start) // period + 1) * period
            candidates.append(-(-cycle * NS_PER_SEC // TIME_BASE_HZ))
        if not reg_b & REG_B_SET:
            second = start // NS_PER_SEC
            if reg_b & REG_B_UIE:
                candidates.append((second + 1) * NS_PER_SEC)
            alarm = self._next_alarm(second) if reg_b & REG_B_AIE else None
            if alarm is not None:
                candidates.append(alarm * NS_PER_SEC)
        return min(candidates) - self._base_ns if candidates else None

    def advance(self, now: int) -> None:
        self._sync(now)
        self._update_irq()

    # -- state -----------------------------------------------------------

    def save_state(self) -> dict[str, Any]:
        return {
            "cmos": bytes(self._cmos),
            "index": self._index,
            "base_ns": self._base_ns,
            "synced_ns": self._synced_ns,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self._cmos = bytearray(state["cmos"])
        self._index = state["index"]
        self._base_ns = state["base_ns"]
        self._synced_ns = state["synced_ns"]
        self._update_irq()


def _cycles(rtc_ns: int) -> int:
    """32.768 kHz time-base cycles at RTC time ``rtc_ns``."""
    return rtc_ns * TIME_BASE_HZ // NS_PER_SEC

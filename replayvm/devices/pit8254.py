"""Intel 8254 programmable interval timer (datasheet, order no. 231164), as
wired on the PC, and the IBM PC/AT system control port B (port 0x61).

The counters are not stepped: each one remembers the input-clock tick at
which it was loaded, and its count and OUT pin are computed from virtual
time on demand (input clock 1 193 182 Hz; tick = now_ns * 1193182 // 10**9,
integer math only). A count written at tick t is loaded into the counting
element at tick t + 1 and then decrements once per tick (datasheet,
"Operational Description": "the count is loaded on the next CLK pulse").

PC wiring: the gates of counters 0 and 1 are tied high; counter 0's OUT
drives IRQ0; counter 2's gate and OUT are bits 0 and 5 of port 0x61
(:class:`SystemControlPortB`).

IRQ0 follows the rising edges of OUT0 that counting produces: terminal
count in mode 0; one tick after terminal count in modes 4 (OUT is low for
that one tick); every period in modes 2 and 3. ``next_deadline`` gives the
virtual ns of the next one and ``advance`` pulses ``irq0`` once however
many were passed (the PIC latches a single IRR bit anyway). OUT changes
caused by writing a control word do not interrupt (neither do they in
QEMU's model, whose IRQ level never rises on a control word).

Deviations, all harmless for PC software:
- A count written while a mode 2/3 counter runs restarts the period at once
  (as in QEMU) instead of at the end of the current period.
- In mode 0, writing the first byte of a two-byte count does not pause
  counting; the count is replaced when the second byte arrives.
- A count of 1 in modes 2 and 3 (illegal per the datasheet) gives an edge
  every tick.
"""

from __future__ import annotations

from copy import copy
from dataclasses import dataclass, field, fields
from typing import Any

from replayvm.devices.base import NS_PER_SEC, ByteDevice, Clock, IrqLine

PIT_HZ = 1_193_182

PIT_COUNTER0 = 0
PIT_COUNTER1 = 1
PIT_COUNTER2 = 2
PIT_CONTROL = 3  # control word register (write only)
PIT_WINDOW = 4

# Control word (datasheet Figure 7): SC1 SC0 RW1 RW0 M2 M1 M0 BCD.
CW_SELECT_SHIFT = 6
CW_SELECT_READ_BACK = 3
CW_ACCESS_SHIFT = 4
CW_MODE_SHIFT = 1
CW_BCD = 0x01
CW_PROGRAM_MASK = 0x3F  # RW, mode and BCD: what the status byte reports

ACCESS_LATCH = 0  # counter latch command
ACCESS_LSB = 1
ACCESS_MSB = 2
ACCESS_LSB_MSB = 3

# Read-back command (datasheet Figure 10): 1 1 COUNT# STATUS# CNT2 CNT1 CNT0 0.
READ_BACK_NO_COUNT = 0x20
READ_BACK_NO_STATUS = 0x10
READ_BACK_COUNTER0 = 0x02

STATUS_OUT = 0x80
STATUS_NULL_COUNT = 0x40

BINARY_MODULUS = 0x10000  # a written 0 means 2**16 ...
BCD_MODULUS = 10000  # ... or 10**4 in BCD

RESET_CONTROL = 0x36  # LSB-then-MSB, mode 3, binary (as a PC BIOS leaves it)


def ticks_at(ns: int) -> int:
    """Input clock ticks elapsed at virtual time ``ns``."""
    return ns * PIT_HZ // NS_PER_SEC


def time_of_tick(tick: int) -> int:
    """The earliest virtual ns at which ``ticks_at`` reaches ``tick``."""
    return -(-tick * NS_PER_SEC // PIT_HZ)


def _from_bcd(value: int) -> int:
    return sum(((value >> (4 * i)) & 0xF) * 10**i for i in range(4))


def _to_bcd(value: int) -> int:
    return sum(((value // 10**i) % 10) << (4 * i) for i in range(4))


@dataclass
class _Counter:
    control: int = RESET_CONTROL & CW_PROGRAM_MASK
    reload: int = BINARY_MODULUS  # the count register, decoded: 1..modulus
    has_count: bool = False  # a count was written since the control word
    loaded: bool = False  # the counting element holds it
    counting: bool = False  # decrementing (loaded, and the gate allows)
    origin: int = 0  # while counting: the tick at which it held `reload`
    held: int = 0  # while not counting: ticks counted since it was loaded
    gate: bool = True
    write_lsb: int = 0
    write_msb_next: bool = False
    read_msb_next: bool = False
    latched: list[int] = field(default_factory=list)  # latched count bytes, in read order
    status_latched: bool = False
    status: int = 0

    @property
    def access(self) -> int:
        return self.control >> CW_ACCESS_SHIFT

    @property
    def mode(self) -> int:
        mode = (self.control >> CW_MODE_SHIFT) & 7
        return mode & 3 if mode >= 6 else mode  # 6 and 7 alias 2 and 3

    @property
    def modulus(self) -> int:
        return BCD_MODULUS if self.control & CW_BCD else BINARY_MODULUS

    def elapsed(self, tick: int) -> int | None:
        """Ticks counted since the count was loaded: None if there is none,
        negative while it waits for the next tick to load."""
        if not self.loaded:
            return None
        return tick - self.origin if self.counting else self.held

    def out(self, tick: int) -> bool:
        """The OUT pin (datasheet, "Mode Definitions")."""
        mode = self.mode
        if mode in (2, 3) and not self.gate:
            return True
        e = self.elapsed(tick)
        if e is None or e < 0:
            return mode != 0
        n = self.reload
        if mode in (0, 1):
            return e >= n
        if mode == 2:
            return e % n != n - 1
        if mode == 3:
            return e % n < (n + 1) // 2
        return e != n

    def count(self, tick: int) -> int:
        """The counting element as the guest reads it (BCD-encoded in BCD mode)."""
        e = max(self.elapsed(tick) or 0, 0)
        n = self.reload
        mode = self.mode
        if mode == 2:
            value = n - e % n
        elif mode == 3:
            # Decrements by two; an odd count loads n - 1 and the high half
            # lasts one tick longer.
            phase = e % n
            if phase >= (n + 1) // 2:
                phase -= (n + 1) // 2
            value = n - (n & 1) - 2 * phase
        else:
            value = n - e
        value %= self.modulus
        return _to_bcd(value) if self.control & CW_BCD else value

    def next_rising_edge(self, after: int) -> int | None:
        """The first tick > ``after`` at which counting raises OUT."""
        if not self.counting:
            return None
        n = self.reload
        if self.mode in (2, 3):
            return self.origin + n * max(1, (after - self.origin) // n + 1)
        edge = self.origin + n + (1 if self.mode in (4, 5) else 0)
        return edge if edge > after else None


class Pit8254(ByteDevice):
    """The PIT: a 4-port window (0x40-0x43); counter 0 drives ``irq0``."""

    name = "pit8254"

    def __init__(self, clock: Clock, irq0: IrqLine) -> None:
        self.clock = clock
        self._irq0 = irq0
        # Gates 0 and 1 are tied high; gate 2 follows port 0x61, which resets to 0.
        self._counters = [_Counter(gate=index != PIT_COUNTER2) for index in range(3)]
        self._irq_after = 0  # IRQ0 edges up to this tick are delivered or void

    # -- the machine's side ------------------------------------------------

    def next_deadline(self) -> int | None:
        edge = self._counters[0].next_rising_edge(self._irq_after)
        return None if edge is None else time_of_tick(edge)

    def advance(self, now: int) -> None:
        tick = ticks_at(now)
        edge = self._counters[0].next_rising_edge(self._irq_after)
        if edge is not None and edge <= tick:
            self._irq0.pulse()
            self._irq_after = tick

    def set_gate(self, index: int, level: bool) -> None:
        """Drive a counter's GATE input (datasheet, "Gate Pin Operations Summary")."""
        counter = self._counters[index]
        if counter.gate == level:
            return
        tick = self._tick()
        counter.gate = level
        mode = counter.mode
        if not level:
            if counter.counting and mode in (0, 2, 3, 4):  # low disables counting
                counter.held = max(tick - counter.origin, 0)
                counter.counting = False
        elif counter.has_count and mode in (1, 2, 3, 5):  # (re)start from the count
            counter.loaded = counter.counting = True
            counter.origin = tick + 1
        elif counter.has_count:  # modes 0 and 4 resume where they stopped
            counter.counting = True
            counter.origin = tick - counter.held
        if index == PIT_COUNTER0:
            self._irq_after = tick

    def out(self, index: int) -> bool:
        return self._counters[index].out(self._tick())

    # -- registers -------------------------------------------------------

    def read_byte(self, offset: int) -> int:
        if offset > PIT_COUNTER2:
            return 0xFF  # the control word register is write only
        counter = self._counters[offset]
        if counter.status_latched:
            counter.status_latched = False
            return counter.status
        if counter.latched:
            return counter.latched.pop(0)
        count = counter.count(self._tick())
        if counter.access == ACCESS_LSB:
            return count & 0xFF
        if counter.access == ACCESS_MSB:
            return count >> 8
        counter.read_msb_next = not counter.read_msb_next
        return count & 0xFF if counter.read_msb_next else count >> 8

    def write_byte(self, offset: int, value: int) -> None:
        if offset == PIT_CONTROL:
            self._write_control(value)
            return
        if offset > PIT_COUNTER2:
            return
        counter = self._counters[offset]
        if counter.access == ACCESS_LSB:
            self._load(offset, value)
        elif counter.access == ACCESS_MSB:
            self._load(offset, value << 8)
        elif not counter.write_msb_next:
            counter.write_lsb = value
            counter.write_msb_next = True
        else:
            counter.write_msb_next = False
            self._load(offset, counter.write_lsb | (value << 8))

    def _write_control(self, value: int) -> None:
        select = value >> CW_SELECT_SHIFT
        if select == CW_SELECT_READ_BACK:
            self._read_back(value)
            return
        counter = self._counters[select]
        if (value >> CW_ACCESS_SHIFT) & 3 == ACCESS_LATCH:
            self._latch_count(counter)
            return
        # A control word resets the counter's control logic; it waits for a count.
        self._counters[select] = _Counter(control=value & CW_PROGRAM_MASK, gate=counter.gate)
        if select == PIT_COUNTER0:
            self._irq_after = self._tick()

    def _read_back(self, value: int) -> None:
        tick = self._tick()
        for index, counter in enumerate(self._counters):
            if not value & (READ_BACK_COUNTER0 << index):
                continue
            if not value & READ_BACK_NO_COUNT:
                self._latch_count(counter)
            if not value & READ_BACK_NO_STATUS and not counter.status_latched:
                e = counter.elapsed(tick)
                counter.status = (
                    (STATUS_OUT if counter.out(tick) else 0)
                    | (STATUS_NULL_COUNT if e is None or e < 0 else 0)
                    | counter.control
                )
                counter.status_latched = True

    def _latch_count(self, counter: _Counter) -> None:
        """A second latch before the first is read is ignored (datasheet)."""
        if counter.latched:
            return
        count = counter.count(self._tick())
        low, high = count & 0xFF, count >> 8
        counter.latched = {ACCESS_LSB: [low], ACCESS_MSB: [high]}.get(counter.access, [low, high])

    def _load(self, index: int, raw: int) -> None:
        counter = self._counters[index]
        decoded = _from_bcd(raw) if counter.control & CW_BCD else raw
        counter.reload = decoded or counter.modulus
        counter.has_count = True
        tick = self._tick()
        if counter.mode not in (1, 5):  # modes 1 and 5 wait for a gate trigger
            counter.loaded = True
            counter.counting = counter.gate
            counter.origin, counter.held = tick + 1, 0
        if index == PIT_COUNTER0:
            self._irq_after = tick

    def _tick(self) -> int:
        return ticks_at(self.clock.now())

    # -- state -----------------------------------------------------------

    def save_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {f.name: [copy(getattr(c, f.name)) for c in self._counters] for f in fields(_Counter)}
        state["irq_after"] = self._irq_after
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        self._counters = [_Counter(**{f.name: copy(state[f.name][i]) for f in fields(_Counter)}) for i in range(3)]
        self._irq_after = state["irq_after"]


# IBM PC/AT Technical Reference, "System Timers" / port 61h (8255 port B).
PORTB_TIMER2_GATE = 0x01
PORTB_SPEAKER_DATA = 0x02
PORTB_WRITABLE = 0x0F  # gate, speaker, parity and I/O channel check enables
PORTB_REFRESH = 0x10  # read: toggles with every DRAM refresh request
PORTB_OUT2 = 0x20  # read: counter 2's OUT
REFRESH_TOGGLE_NS = 15_085  # one DRAM refresh request every 15.085 us


class SystemControlPortB(ByteDevice):
    """Port 0x61 (one port, offset 0): counter 2's gate and OUT, the speaker
    data enable, and a refresh bit that toggles every 15 085 virtual ns."""

    name = "port61"

    def __init__(self, pit: Pit8254) -> None:
        self._pit = pit
        self._control = 0

    def read_byte(self, offset: int) -> int:
        if offset != 0:
            return 0xFF
        refresh = PORTB_REFRESH if (self._pit.clock.now() // REFRESH_TOGGLE_NS) & 1 else 0
        out2 = PORTB_OUT2 if self._pit.out(PIT_COUNTER2) else 0
        return self._control | refresh | out2

    def write_byte(self, offset: int, value: int) -> None:
        if offset == 0:
            self._control = value & PORTB_WRITABLE
            self._pit.set_gate(PIT_COUNTER2, bool(value & PORTB_TIMER2_GATE))

    def save_state(self) -> dict[str, Any]:
        return {"control": self._control}

    def load_state(self, state: dict[str, Any]) -> None:
        self._control = state["control"]

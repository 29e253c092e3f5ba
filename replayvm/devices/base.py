"""What every emulated device sees of the machine, and nothing more.

A device knows only offsets within its own window (STYLE.md, after
Firecracker/vm-superio): ``read(offset, size)`` and ``write(offset, size,
value)``. It raises interrupts through an :class:`IrqLine`, reads virtual
time from a :class:`Clock`, and asks for a wake-up by returning a deadline
from :meth:`Device.next_deadline`. The machine calls :meth:`Device.advance`
at slice boundaries once virtual time reaches that deadline. Devices never
import ``time``/``random``/``os``/``threading`` (DESIGN.md §1): all host input
arrives through methods the machine calls, at logged positions.

Virtual time is in nanoseconds: one guest instruction is one nanosecond, plus
whatever idle time HLT skipped (DESIGN.md §1).
"""

from __future__ import annotations

from typing import Any, Protocol

NS_PER_SEC = 1_000_000_000


class Clock(Protocol):
    """Virtual time, exact at any point a device can observe (I/O exits)."""

    def now(self) -> int:
        """Current virtual time in nanoseconds."""
        ...


class ManualClock:
    """A clock a test (or the machine between slices) sets by hand."""

    def __init__(self, t: int = 0) -> None:
        self.t = t

    def now(self) -> int:
        return self.t


class IrqLine:
    """One interrupt request wire from a device to an interrupt controller.

    The level is remembered so that controllers can detect edges and tests can
    assert on it without a PIC. ``sink(level)`` is called on every change.
    """

    __slots__ = ("_sink", "level", "name", "raises")

    def __init__(self, name: str = "irq", sink: Any = None) -> None:
        self.name = name
        self.level = False
        self._sink = sink
        self.raises = 0  # rising edges seen, for tests and statistics

    def connect(self, sink: Any) -> None:
        self._sink = sink

    def set_level(self, level: bool) -> None:
        level = bool(level)
        if level == self.level:
            return
        self.level = level
        if level:
            self.raises += 1
        if self._sink is not None:
            self._sink(level)

    def raise_(self) -> None:
        self.set_level(True)

    def lower(self) -> None:
        self.set_level(False)

    def pulse(self) -> None:
        """An edge: raise then lower (ISA edge-triggered interrupt)."""
        self.set_level(True)
        self.set_level(False)


class Device:
    """Base class of port-I/O and MMIO devices.

    Subclasses override ``read``/``write`` and, if they keep time-dependent
    behaviour, ``next_deadline``/``advance``. State is plain data:
    ``save_state()`` returns a dict of ints/bytes/bools/lists/str (no objects,
    no wiring), ``load_state()`` takes it back.
    """

    name = "device"

    def read(self, offset: int, size: int) -> int:
        raise NotImplementedError

    def write(self, offset: int, size: int, value: int) -> None:
        raise NotImplementedError

    def next_deadline(self) -> int | None:
        """Virtual time (ns) at which ``advance`` must next be called, or None."""
        return None

    def advance(self, now: int) -> None:
        """Bring time-dependent state up to virtual time ``now``."""

    def save_state(self) -> dict[str, Any]:
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        pass


class ByteDevice(Device):
    """A device whose registers are all 8 bits wide (the ISA 8-bit peripherals).

    A wider IN/OUT is split into byte accesses at consecutive offsets, least
    significant byte first, as the AT bus (and QEMU's memory core, for devices
    with ``impl.max_access_size = 1``) splits it. Subclasses implement
    ``read_byte``/``write_byte`` and treat offsets outside their window as
    unmapped: reads give 0xFF, writes are dropped.
    """

    def read(self, offset: int, size: int) -> int:
        value = 0
        for i in range(size):
            value |= (self.read_byte(offset + i) & 0xFF) << (8 * i)
        return value

    def write(self, offset: int, size: int, value: int) -> None:
        for i in range(size):
            self.write_byte(offset + i, (value >> (8 * i)) & 0xFF)

    def read_byte(self, offset: int) -> int:
        raise NotImplementedError

    def write_byte(self, offset: int, value: int) -> None:
        raise NotImplementedError

"""The port-I/O bus: absolute port -> (device, offset within its window).

Ranges are registered once at machine build time; an overlap is a
configuration error. Lookup is a flat 64 Ki table because every guest IN/OUT
goes through it (one exit per access is the cost of full virtualization).
Unknown ports read all-ones and drop writes, and are counted, never a crash
(DESIGN.md §2).
"""

from __future__ import annotations

from replayvm.devices.base import Device
from replayvm.errors import ConfigError

PORT_SPACE = 0x10000


class PortBus:
    def __init__(self) -> None:
        self._table: list[tuple[Device, int] | None] = [None] * PORT_SPACE
        self._ranges: list[tuple[int, int, Device]] = []
        self.unknown_reads = 0
        self.unknown_writes = 0

    def register(self, base: int, length: int, device: Device, offset: int = 0) -> None:
        """Map ports ``base..base+length-1`` to ``device`` offsets ``offset..``.

        ``offset`` lets one device own non-contiguous windows (the i8042 has
        its data port at 0x60 and its command port at 0x64).
        """
        if length <= 0 or base < 0 or base + length > PORT_SPACE:
            raise ConfigError(f"port range {base:#x}+{length} out of the I/O space")
        for b, n, d in self._ranges:
            if base < b + n and b < base + length:
                raise ConfigError(
                    f"ports {base:#x}-{base + length - 1:#x} ({device.name}) overlap {b:#x}-{b + n - 1:#x} ({d.name})"
                )
        self._ranges.append((base, length, device))
        self._ranges.sort(key=lambda r: r[0])
        for i in range(length):
            self._table[base + i] = (device, offset + i)

    def lookup(self, port: int) -> tuple[Device, int] | None:
        return self._table[port & 0xFFFF]

    def ranges(self) -> list[tuple[int, int, Device]]:
        return list(self._ranges)

    def read(self, port: int, size: int) -> int:
        hit = self._table[port & 0xFFFF]
        if hit is None:
            self.unknown_reads += 1
            return (1 << (8 * size)) - 1
        return hit[0].read(hit[1], size)

    def write(self, port: int, size: int, value: int) -> None:
        hit = self._table[port & 0xFFFF]
        if hit is None:
            self.unknown_writes += 1
            return
        hit[0].write(hit[1], size, value)

"""QEMU's isa-debug-exit device (QEMU hw/misc/debugexit.c), at port 0xF4 with
iosize 4 on rv-pc: a test guest's way to end the run with a status.

A write of value v, of any size at any offset of the window, calls
``on_exit((v << 1) | 1)`` exactly as QEMU calls ``exit()``; QEMU's process
status is the low 8 bits of that, so a guest cannot exit with 0 and a
runner maps the code it expects for success. Reads return all-ones.
"""

from __future__ import annotations

from collections.abc import Callable

from replayvm.devices.base import Device

DEBUG_EXIT_WINDOW = 4


class DebugExit(Device):
    name = "isa-debug-exit"

    def __init__(self, on_exit: Callable[[int], None]) -> None:
        self._on_exit = on_exit

    def read(self, offset: int, size: int) -> int:
        return (1 << (8 * size)) - 1

    def write(self, offset: int, size: int, value: int) -> None:
        value &= (1 << (8 * size)) - 1
        self._on_exit((value << 1) | 1)

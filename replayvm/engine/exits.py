"""VM exits, named as KVM names them, and their statistics.

A *synchronous* exit (port I/O, MMIO, CPUID, RDTSC, an exception) is handled
inside the Unicorn hook that caught it and the guest goes on; it is only
counted. A *slice-ending* exit returns control to the run loop: the slice's
instruction budget ran out, the guest halted, it asked for a stop (debug-exit,
reset) or it can take an interrupt now. The statistics are what `stats`
prints: the cost of full virtualization shows as one IO_INSTRUCTION exit per
byte on the UART.
"""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass, field


class ExitReason(enum.Enum):
    IO_INSTRUCTION = "io"
    MMIO = "mmio"
    HLT = "hlt"
    CPUID = "cpuid"
    RDTSC = "rdtsc"
    MSR = "msr"
    EXCEPTION = "exception"
    EXTERNAL_INTERRUPT = "external-interrupt"
    INTERRUPT_WINDOW = "interrupt-window"
    SHUTDOWN = "shutdown"
    DEBUG = "debug"
    SLICE_END = "slice-end"  # KVM's preemption-timer exit: the slice budget ran out
    STOP = "stop"  # the platform asked to stop (debug-exit write, reset line)


@dataclass(slots=True)
class ExitStats:
    by_reason: Counter[str] = field(default_factory=Counter)
    io_ports: Counter[int] = field(default_factory=Counter)
    mmio_pages: Counter[int] = field(default_factory=Counter)
    exceptions: Counter[int] = field(default_factory=Counter)
    interrupts: Counter[int] = field(default_factory=Counter)

    def total(self) -> int:
        return sum(self.by_reason.values())

    def as_dict(self) -> dict[str, object]:
        return {
            "total": self.total(),
            "by_reason": dict(sorted(self.by_reason.items())),
            "io_ports": {f"{p:#x}": n for p, n in sorted(self.io_ports.items())},
            "mmio_pages": {f"{p:#x}": n for p, n in sorted(self.mmio_pages.items())},
            "exceptions": {str(v): n for v, n in sorted(self.exceptions.items())},
            "interrupts": {str(v): n for v, n in sorted(self.interrupts.items())},
        }
